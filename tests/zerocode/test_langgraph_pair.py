"""One config entry for a real framework's sync/async pair (issue 13, item 9): LangGraph's compiled
graphs run through ``Pregel.invoke`` and ``Pregel.ainvoke``; one ``[[job]]`` names both."""

from __future__ import annotations

import asyncio
import gc
import sys
import tomllib
from collections.abc import Iterator
from typing import Any, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph

from agent_otel import semconv
from agent_otel._zerocode.config import parse_config
from agent_otel._zerocode.patching import instrument, uninstrument
from tests.support.genai_apps import LANGGRAPH_GRAPHS_AS_AGENTS, two_step_graph

CONFIG = """
[[job]]
target = ["langgraph.pregel.main:Pregel.invoke", "langgraph.pregel.main:Pregel.ainvoke"]
type = { path = "self.name" }
"""


class State(TypedDict):
    count: int


def build() -> Any:
    graph = StateGraph(State)
    graph.add_node("step", lambda state: {"count": state["count"] + 1})
    graph.add_edge(START, "step")
    graph.add_edge("step", END)
    return graph.compile(name="counter")


@pytest.fixture
def instrumented(otel: Any) -> Iterator[None]:
    config = parse_config(tomllib.loads(CONFIG), "langgraph.toml")
    assert [spec.key for spec in config.targets] == ["job[0].target[0]", "job[0].target[1]"]
    instrument(config)
    yield
    uninstrument()


@pytest.mark.usefixtures("instrumented")
def test_one_entry_covers_the_sync_and_async_runs(otel: Any) -> None:
    graph = build()
    assert graph.invoke({"count": 1}) == {"count": 2}
    assert asyncio.run(graph.ainvoke({"count": 5})) == {"count": 6}
    jobs = otel.spans(semconv.job_span_name("counter"))
    assert len(jobs) == 2  # one per run, sync and async
    assert len({span.attributes[semconv.JOB_ID] for span in jobs}) == 2


def test_one_agent_entry_over_invoke_and_stream_counts_one_run_per_call(otel: Any) -> None:
    """``Pregel.invoke`` runs the graph through ``self.stream`` (``ainvoke`` through ``self.astream``): with
    one ``[[agent]]`` entry naming all four, a run is one call, counted by the outermost, not two."""
    instrument(parse_config(tomllib.loads(LANGGRAPH_GRAPHS_AS_AGENTS), "langgraph.toml"))
    try:
        graph = build()
        assert graph.invoke({"count": 1}) == {"count": 2}
        assert list(graph.stream({"count": 1})) == [{"step": {"count": 2}}]
        assert asyncio.run(graph.ainvoke({"count": 5})) == {"count": 6}

        async def astream() -> list[Any]:
            return [chunk async for chunk in graph.astream({"count": 5})]

        assert asyncio.run(astream()) == [{"step": {"count": 6}}]
    finally:
        uninstrument()
    assert len(otel.spans("invoke_agent counter")) == 4
    assert sum(point.count for point in otel.points(semconv.AGENT_DURATION.name)) == 4


def test_a_stream_left_early_under_the_langchain_instrumentation_is_closed_as_without_agent_otel(otel: Any) -> None:
    """The LangChain instrumentation's wrapper on ``Pregel.astream`` returns its proxy of the graph's async generator;
    agent-otel's wrapper around it drove that proxy with an async generator of its own. A program that left the
    stream early (``break``) got "async generator ignored GeneratorExit" and "Task was destroyed but it is pending!"
    at ``asyncio.run()``'s end: the event loop closed ours and theirs at once, and the graph's cleanup, which awaits,
    was cut short. The proxy is now timed as the stream it is, the run one call, closed early."""
    from tests.support.genai_apps import instrumented as instrumentation_on

    compiled = two_step_graph("counter")

    async def first_chunk() -> Any:
        async for chunk in compiled.astream({"count": 1}):
            return chunk
        return None

    def run_reporting_unraisable() -> tuple[Any, list[str]]:
        unraisable: list[str] = []
        hook, sys.unraisablehook = sys.unraisablehook, lambda report: unraisable.append(repr(report.exc_value))
        try:
            result = asyncio.run(first_chunk())
            gc.collect()
        finally:
            sys.unraisablehook = hook
        return result, unraisable

    config = parse_config(tomllib.loads('[[agent]]\ntarget = "langgraph.pregel.main:Pregel.astream"\n'
                                        'name = { path = "self.name" }\n'), "langgraph.toml")
    with instrumentation_on("langchain", otel.tracer_provider, otel.meter_provider):
        plain = run_reporting_unraisable()
        instrument(config)  # over the instrumentation's wrapper, as `agent-otel run` or a later instrument() puts it
        try:
            traced = run_reporting_unraisable()
        finally:
            uninstrument()
    assert plain == ({"first": {"count": 2}}, [])
    assert traced == plain
    (run,) = otel.spans("invoke_agent counter")
    assert run.attributes.get(semconv.STREAM_CLOSED_EARLY) is True and semconv.ERROR_TYPE not in run.attributes
