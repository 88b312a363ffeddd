"""Per-invocation counts (``gen_ai.invoke_agent.inference_calls`` / ``.tool_calls``): every model and tool call
under an agent invocation counts for the nearest one (a sub-agent's for the sub-agent), failed calls included,
one logical request once, calls on other threads and calls another instrumentation traces included."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from opentelemetry.trace import SpanKind

import agent_otel
from agent_otel import semconv

INFERENCE = semconv.AGENT_INFERENCE_CALLS.name
TOOLS = semconv.AGENT_TOOL_CALLS.name


class RateLimited(Exception):
    pass


@agent_otel.provider("openai", model="gpt-4o-mini")
def complete(prompt: str) -> dict[str, Any]:
    if prompt == "fail":
        raise RateLimited(prompt)
    return {"usage": {"prompt_tokens": 10, "completion_tokens": 2}}


@agent_otel.tool("search")
def search(query: str) -> str:
    return query


def counts(otel: Any, agent: str) -> tuple[list[float], list[float]]:
    """(inference, tool) call counts recorded per invocation of ``agent``, as histogram sums per series."""
    where = {semconv.GEN_AI_AGENT_NAME: agent}
    return ([p.sum for p in otel.points(INFERENCE, where)], [p.sum for p in otel.points(TOOLS, where)])


def test_an_invocation_counts_its_own_calls_and_a_sub_agent_its_own(otel: Any) -> None:
    @agent_otel.agent("researcher")
    def research() -> dict[str, Any]:
        complete("look up")
        search("docs")
        return {"success": True}

    @agent_otel.agent("planner")
    def plan() -> dict[str, Any]:
        complete("plan")
        try:
            complete("fail")  # a failed call still counts
        except RateLimited:
            pass
        search("a")
        search("b")
        research()
        complete("summarise")
        return {"success": True}

    plan()
    assert counts(otel, "planner") == ([3], [2])
    assert counts(otel, "researcher") == ([1], [1])
    [planner] = otel.points(INFERENCE, {semconv.GEN_AI_AGENT_NAME: "planner"})
    assert planner.count == 1 and dict(planner.attributes) == {semconv.GEN_AI_AGENT_NAME: "planner"}
    assert list(planner.explicit_bounds) == list(semconv.CALL_COUNT_BUCKETS)


def test_an_invocation_without_calls_records_zero(otel: Any) -> None:
    with agent_otel.agent_call("idle"):
        pass
    assert counts(otel, "idle") == ([0], [0])


def test_one_logical_request_counts_once_however_many_wrappers_it_has(otel: Any) -> None:
    @agent_otel.provider("openai", model="gpt-4o-mini")
    def with_retries(prompt: str) -> dict[str, Any]:
        return complete(prompt)  # the raw request, wrapped too: the same logical request

    with agent_otel.agent_call("writer"):
        with_retries("draft")
    assert counts(otel, "writer") == ([1], [0])


def test_an_invocation_that_raises_records_its_counts_with_the_error_type(otel: Any) -> None:
    @agent_otel.agent("looper")
    def loop() -> None:
        for index in range(40):
            search(str(index))
        raise TimeoutError("step limit")

    with pytest.raises(TimeoutError):
        loop()
    [tools] = otel.points(TOOLS, {semconv.GEN_AI_AGENT_NAME: "looper"})
    assert tools.sum == 40 and tools.attributes[semconv.ERROR_TYPE] == "TimeoutError"
    assert tools.bucket_counts[list(semconv.CALL_COUNT_BUCKETS).index(64)] == 1  # above 32: a runaway


def test_calls_on_other_threads_count_for_the_invocation_that_started_them(otel: Any) -> None:
    @agent_otel.agent("fan-out")
    def fan_out() -> None:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(complete, ["a", "b", "c", "d", "e"]))
            list(pool.map(search, ["x", "y"]))

    fan_out()
    assert counts(otel, "fan-out") == ([5], [2])


def test_calls_another_instrumentation_traces_count_for_the_invocation_they_run_under(otel: Any) -> None:
    tracer = otel.tracer_provider.get_tracer("opentelemetry.instrumentation.somelib")
    with agent_otel.agent_call("bridged"):
        for _ in range(2):
            with tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT, attributes={
                    semconv.GEN_AI_OPERATION_NAME: "chat", semconv.GEN_AI_PROVIDER_NAME: "openai",
                    semconv.GEN_AI_REQUEST_MODEL: "gpt-4o"}):
                pass
        with tracer.start_as_current_span("execute_tool lookup", attributes={
                semconv.GEN_AI_OPERATION_NAME: "execute_tool", semconv.GEN_AI_TOOL_NAME: "lookup"}):
            pass
        complete("ours")  # ours and theirs together
    assert counts(otel, "bridged") == ([3], [1])


def test_calls_outside_any_agent_count_for_none(otel: Any) -> None:
    complete("alone")
    search("alone")
    assert not otel.points(INFERENCE) and not otel.points(TOOLS)


def test_a_long_lived_invocations_counts_take_the_same_memory_whatever_it_counts(otel: Any) -> None:
    """A worker loop decorated as one agent for the life of the process: its counts appended an entry per call
    (8 bytes a call, freed only when the invocation ended)."""
    import sys

    from agent_otel._calls.call_counts import TOOL, current_counts

    @agent_otel.agent("worker")
    def work(calls: int) -> int:
        counts = current_counts()
        assert counts is not None
        sizes = []
        for done in range(calls):
            search("q")
            if done in (99, calls - 1):
                sizes.append(sys.getsizeof(counts._per_thread) + sum(
                    sys.getsizeof(value) for value in counts._per_thread.values()))
        counts.add(TOOL)  # and counted from another thread too
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda _: counts.add(TOOL), range(10)))
        return sizes[1] - sizes[0]

    assert work(20_000) == 0
    assert counts(otel, "worker")[1] == [20_000 + 11]
