"""Exceptions that frameworks raise as control flow (a LangGraph pause or hand-off, a pydantic-ai deferred tool call,
Streamlit's rerun and stop, click's exit 0) leave a call that did not fail: no error outcome, no ``error.type``, the
exception the same object."""

from __future__ import annotations

import sys
from typing import Any, TypedDict

import click
import pytest
from opentelemetry.trace import StatusCode

import agent_otel
from agent_otel import semconv
from tests.support.telemetry import points


class Draft(TypedDict):
    draft: str
    approved: bool


def test_a_langgraph_node_that_pauses_for_a_human_is_no_failed_agent_call(otel: Any) -> None:
    """The node pauses (``interrupt()`` raises GraphInterrupt through it) and runs again when resumed: it was an
    error each time it paused, an agent that asks every time read 50% success and set off the success-ratio alert."""
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import Command, interrupt

    @agent_otel.agent("approver")
    def approve(state: Draft) -> dict[str, bool]:
        return {"approved": interrupt({"draft": state["draft"]}) == "yes"}

    graph = StateGraph(Draft).add_node("approve", approve).add_edge(START, "approve").add_edge("approve", END)
    app = graph.compile(checkpointer=InMemorySaver())
    config: Any = {"configurable": {"thread_id": "1"}}
    assert "__interrupt__" in app.invoke({"draft": "Dear Bob", "approved": False}, config)
    assert app.invoke(Command(resume="yes"), config)["approved"] is True
    paused, resumed = sorted(otel.spans("invoke_agent approver"), key=lambda span: span.start_time)
    assert paused.attributes[semconv.CONTROL_FLOW] == "GraphInterrupt"
    assert semconv.ERROR_TYPE not in paused.attributes and paused.status.status_code is not StatusCode.ERROR
    assert not paused.events  # no exception event: the draft it pauses on stays out of the trace
    assert semconv.CONTROL_FLOW not in resumed.attributes
    assert {(p.attributes[semconv.AGENT_OUTCOME], p.count)
            for p in points(otel, semconv.AGENT_DURATION.name)} == {("success", 2)}


def test_a_pause_reads_no_result_and_the_rest_as_ever(otel: Any) -> None:
    """A given ``success`` read the result a pause does not have: the call was recorded as failed (with the pause on
    its span), and extractors written for a result raised, counted as ours. What the options read of the object
    when the call ends (``at = "end"``) is read as ever."""
    from langgraph.errors import GraphInterrupt

    @agent_otel.agent("reviewer", success=lambda call: bool(call.result["scores"]),
                      work={"fixes": lambda call: len(call.result["fixes"])},
                      result_attributes={"review.size": lambda call: call.result["size"]})
    def review() -> dict[str, list[int]]:
        raise GraphInterrupt()

    class Engine:
        version = "v1"

        @agent_otel.evolution("planner", version_from=agent_otel.path("self.version"),
                              version_to=agent_otel.path("self.version", at="end"),
                              rollback=agent_otel.path("result.verdict", not_in=["keep"]), sample_resources=False)
        def evolve(self) -> None:
            self.version = "v2"
            raise GraphInterrupt()

    for call in (review, Engine().evolve):
        with pytest.raises(GraphInterrupt):
            call()
    [duration] = points(otel, semconv.AGENT_DURATION.name)
    assert duration.attributes[semconv.AGENT_OUTCOME] == "success"
    assert not points(otel, semconv.INSTRUMENTATION_ERRORS.name)
    evolved = otel.span("evolve planner").attributes
    assert (evolved[semconv.EVOLUTION_VERSION_FROM], evolved[semconv.EVOLUTION_VERSION_TO]) == ("v1", "v2")
    assert evolved[semconv.EVOLUTION_STATUS] == "succeeded"  # a rollback judged on no result: not rolled back


def test_a_deferred_tool_call_is_no_failed_one_and_raises_the_same_exception(otel: Any) -> None:
    from pydantic_ai.exceptions import ApprovalRequired

    raised = ApprovalRequired()

    @agent_otel.tool("delete_file")
    def delete_file(path: str) -> str:
        raise raised

    with pytest.raises(ApprovalRequired) as caught:
        delete_file("/tmp/x")
    assert caught.value is raised
    [duration] = points(otel, semconv.TOOL_DURATION.name)
    assert semconv.ERROR_TYPE not in duration.attributes
    assert otel.span("execute_tool delete_file").attributes[semconv.CONTROL_FLOW] == "ApprovalRequired"


def test_mini_swe_agents_finish_and_format_errors_are_no_failed_calls(otel: Any) -> None:
    """mini-swe-agent (its own deterministic model, a real local shell) finishes by raising ``Submitted`` out of the
    environment's ``execute``, and its model's ``query`` raises ``FormatError`` for a reply it cannot parse: both caught
    by its run loop. Every finished run recorded its last tool call as an error. Its limits are failures."""
    from minisweagent.agents.default import DefaultAgent
    from minisweagent.environments.local import LocalEnvironment
    from minisweagent.exceptions import FormatError, LimitsExceeded
    from minisweagent.models.test_models import DeterministicModel, make_output

    class Shell(LocalEnvironment):
        execute = agent_otel.tool("bash")(LocalEnvironment.execute)

    class Model(DeterministicModel):
        replied = False

        @agent_otel.provider("openai", model="deterministic")
        def query(self, messages: list[dict[str, str]], **kwargs: Any) -> dict[str, Any]:
            if not self.replied:  # its first reply is one it cannot parse
                self.replied = True
                raise FormatError({"role": "user", "content": "one command, please"})
            return super().query(messages, **kwargs)

    model = Model(outputs=[
        make_output("listing", [{"command": "echo hello"}]),
        make_output("done", [{"command": "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT"}]),
    ])
    agent = DefaultAgent(model, Shell(), system_template="You fix code.", instance_template="{{task}}")
    with agent_otel.job("fix-1"):
        assert agent.run(task="say hello")["exit_status"] == "Submitted"
    tools = sorted(otel.spans("execute_tool bash"), key=lambda span: span.start_time)
    assert [span.status.status_code for span in tools] == [StatusCode.UNSET, StatusCode.UNSET]
    assert tools[-1].attributes[semconv.CONTROL_FLOW] == "Submitted"
    assert all(semconv.ERROR_TYPE not in point.attributes for point in points(otel, semconv.TOOL_DURATION.name))
    calls = sorted(otel.spans("chat deterministic"), key=lambda span: span.start_time)
    assert calls[0].attributes[semconv.CONTROL_FLOW] == "FormatError"
    assert [span.status.status_code for span in calls] == [StatusCode.UNSET] * 3
    assert otel.span("invoke_workflow default").attributes[semconv.JOB_OUTCOME] == "success"

    @agent_otel.tool("budgeted")
    def over_budget() -> None:
        raise LimitsExceeded()

    with pytest.raises(LimitsExceeded):  # its limits cut a run short: a failure, as LangGraph's GraphDrained
        over_budget()
    assert otel.span("execute_tool budgeted").attributes[semconv.ERROR_TYPE] == "LimitsExceeded"


def test_a_llama_index_step_waiting_for_a_human_is_no_failed_call(otel: Any) -> None:
    """``ctx.wait_for_event()`` raises ``WaitingForEvent`` out of the step, and the workflow runs the step again once
    the event has come: the first run was a failed tool call each time (and the second a success)."""
    import asyncio

    from workflows.events import HumanResponseEvent, InputRequiredEvent, StartEvent, StopEvent

    from workflows import Context, Workflow, step

    class Asker(Workflow):
        @step
        @agent_otel.tool("ask")
        async def ask(self, ctx: Context, ev: StartEvent) -> StopEvent:
            answer = await ctx.wait_for_event(HumanResponseEvent, waiter_id="name",
                                              waiter_event=InputRequiredEvent(prefix="name? "))
            return StopEvent(result=f"hello {answer.response}")

    async def main() -> str:
        handler = Asker(timeout=30).run()
        async for event in handler.stream_events():
            if isinstance(event, InputRequiredEvent):
                handler.ctx.send_event(HumanResponseEvent(response="bob"))
        return str(await handler)

    assert asyncio.run(main()) == "hello bob"
    paused, answered = sorted(otel.spans("execute_tool ask"), key=lambda span: span.start_time)
    assert paused.attributes[semconv.CONTROL_FLOW] == "WaitingForEvent"
    assert [span.status.status_code for span in (paused, answered)] == [StatusCode.UNSET, StatusCode.UNSET]
    assert all(semconv.ERROR_TYPE not in point.attributes for point in points(otel, semconv.TOOL_DURATION.name))


@pytest.mark.parametrize(("code", "outcome"), [(0, "success"), (3, "error")])
def test_a_click_exit_is_a_success_as_its_status_says(otel: Any, code: int, outcome: str) -> None:
    """``ctx.exit(0)`` (click's, typer's) ends a command early with status 0, as ``sys.exit(0)`` does: it was a failed
    job."""
    @agent_otel.job(type="cli")
    def command() -> None:
        raise click.exceptions.Exit(code)

    with pytest.raises(click.exceptions.Exit):
        command()
    [duration] = points(otel, semconv.JOB_DURATION.name)
    assert duration.attributes[semconv.JOB_OUTCOME] == outcome


def test_a_job_in_a_node_that_pauses_is_no_failure_and_a_drained_run_is_one(otel: Any) -> None:
    """A job can run inside a node (a review step of its own): the node's pause leaves it, and LangGraph catches the
    pause above it. LangGraph's GraphDrained is a run cut short (``request_drain()`` on SIGTERM), not a pause."""
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.errors import GraphDrained
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import interrupt

    @agent_otel.job(type="review")
    def review(draft: str) -> bool:
        return bool(interrupt({"draft": draft}) == "yes")

    def approve(state: Draft) -> dict[str, bool]:
        return {"approved": review(state["draft"])}

    graph = StateGraph(Draft).add_node("approve", approve).add_edge(START, "approve").add_edge("approve", END)
    app = graph.compile(checkpointer=InMemorySaver())
    assert "__interrupt__" in app.invoke({"draft": "Dear Bob", "approved": False}, {"configurable": {"thread_id": "1"}})

    @agent_otel.agent("drained")
    def drained() -> None:
        raise GraphDrained("shutdown")

    with pytest.raises(GraphDrained):
        drained()
    [job] = points(otel, semconv.JOB_DURATION.name)
    [agent] = points(otel, semconv.AGENT_DURATION.name)
    assert job.attributes[semconv.JOB_OUTCOME] == "success"
    assert otel.span("invoke_workflow review").attributes[semconv.CONTROL_FLOW] == "GraphInterrupt"
    assert (agent.attributes[semconv.AGENT_OUTCOME], agent.attributes[semconv.ERROR_TYPE]) == ("error", "GraphDrained")


def _chat_app() -> None:  # a Streamlit script (AppTest runs its body): answer, rerun to show it, stop at a guard
    import streamlit as st

    import agent_otel

    @agent_otel.agent("support")
    def answer(question: str) -> str:
        st.session_state["answered"] = st.session_state.get("answered", 0) + 1
        if st.session_state["answered"] == 1:
            st.rerun()
        return f"answer to {question}"

    @agent_otel.tool("guard")
    def guard() -> None:
        st.stop()

    with agent_otel.job(type="turn"):
        st.write(answer("q"))
    guard()
    st.write("never shown")


def test_a_streamlit_rerun_or_stop_in_a_call_is_no_failure(otel: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """``st.rerun()`` and ``st.stop()`` end the script's run through the calls they are raised in (a chat app reruns
    after each answer): they were errors (``RerunException``, ``StopException``), half of the agent calls and jobs."""
    from streamlit.testing.v1 import AppTest

    # AppTest makes the script's module ``__main__`` and leaves it there: a spawned process of a later test then
    # failed to start, again and again (it imports the parent's ``__main__``)
    monkeypatch.setitem(sys.modules, "__main__", sys.modules["__main__"])

    app = AppTest.from_function(_chat_app).run(timeout=60)
    assert [element.value for element in app.markdown] == ["answer to q"] and not app.exception
    assert {(p.attributes[semconv.AGENT_OUTCOME], p.count)
            for p in points(otel, semconv.AGENT_DURATION.name)} == {("success", 2)}
    assert {(p.attributes.get(semconv.ERROR_TYPE), p.count)
            for p in points(otel, semconv.TOOL_DURATION.name)} == {(None, 1)}
    assert {(p.attributes[semconv.JOB_OUTCOME], p.count)
            for p in points(otel, semconv.JOB_DURATION.name)} == {("success", 2)}
    assert sorted(span.attributes.get(semconv.CONTROL_FLOW, "") for span in otel.spans("invoke_agent support")) == [
        "", "RerunException"]


def test_an_exception_class_that_cannot_be_looked_up_is_the_hosts_own_failure(otel: Any) -> None:
    """A class whose metaclass defines ``__eq__`` alone is not hashable: looking it up raised a TypeError of ours in
    place of the program's exception, and the call's span never ended."""
    class ComparedByName(type):
        def __eq__(cls, other: object) -> bool:
            return isinstance(other, type) and cls.__name__ == other.__name__

    class AppError(Exception, metaclass=ComparedByName):
        pass

    raised = AppError("real failure")

    @agent_otel.tool("lookup")
    def lookup() -> None:
        raise raised

    with pytest.raises(AppError) as caught:
        lookup()
    assert caught.value is raised
    [duration] = points(otel, semconv.TOOL_DURATION.name)
    assert duration.attributes[semconv.ERROR_TYPE] == "AppError"
