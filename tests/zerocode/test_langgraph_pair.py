"""One config entry for a real framework's sync/async pair (issue 13, item 9): LangGraph's compiled
graphs run through ``Pregel.invoke`` and ``Pregel.ainvoke``; one ``[[job]]`` names both."""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import Iterator
from typing import Any, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph

from agent_otel import semconv
from agent_otel._zerocode.config import parse_config
from agent_otel._zerocode.patching import instrument, uninstrument

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
    config = parse_config(tomllib.loads(
        '[[agent]]\ntarget = ["langgraph.pregel.main:Pregel.invoke", "langgraph.pregel.main:Pregel.ainvoke", '
        '"langgraph.pregel.main:Pregel.stream", "langgraph.pregel.main:Pregel.astream"]\n'
        'name = { path = "self.name" }\n'), "langgraph.toml")
    instrument(config)
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
