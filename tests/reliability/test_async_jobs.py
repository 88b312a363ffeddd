"""10,000 concurrent asyncio tasks, each in its own job, interleaving at every await: a job id never
crosses from one task to another, neither in ``current_job_id()`` nor on any span."""

from __future__ import annotations

import asyncio
from typing import Any

from opentelemetry import trace

import agent_otel
from agent_otel import semconv
from tests.support.reliability import Counted

TASKS = 10_000
ROLE = "test.task"


def mark(n: int) -> None:
    """Tag the current span with the task that made it, to check its job id against."""
    trace.get_current_span().set_attribute(ROLE, n)


@agent_otel.tool("step")
async def step(n: int) -> str | None:
    mark(n)
    await asyncio.sleep(0)
    return agent_otel.current_job_id()


@agent_otel.agent("worker")
def think(n: int) -> dict[str, Any]:
    mark(n)
    return {"success": True, "job": agent_otel.current_job_id()}


@agent_otel.provider("fake", model="m")
def stream(n: int) -> Any:
    mark(n)
    yield agent_otel.current_job_id()
    yield agent_otel.current_job_id()


@agent_otel.tool("agen")
async def astream(n: int) -> Any:
    mark(n)
    for _ in range(2):
        await asyncio.sleep(0)
        yield agent_otel.current_job_id()


async def one_task(n: int, seen: dict[int, list[str | None]]) -> None:
    mine = f"task-{n}"
    observed = seen.setdefault(n, [])
    await asyncio.sleep(0)
    async with agent_otel.job(mine, type="fanout"):
        observed.append(agent_otel.current_job_id())
        await asyncio.sleep(0)
        observed.append(await step(n))
        observed.append(agent_otel.current_job_id())
        observed.append(think(n)["job"])
        await asyncio.sleep(0)
        for item in stream(n):
            observed.append(item)
            await asyncio.sleep(0)
        async for item in astream(n):
            observed.append(item)
        observed.append(agent_otel.current_job_id())
    observed.append(agent_otel.current_job_id())  # after the job: nothing left behind


def test_ten_thousand_tasks_each_in_its_own_job_never_share_a_job_id(counted: Counted) -> None:
    seen: dict[int, list[str | None]] = {}
    by_span: list[tuple[int, Any]] = []

    original_on_end = counted.spans.on_end

    def on_end(span: Any) -> None:  # keep (task, job id) of the call spans, count everything
        original_on_end(span)
        if ROLE in span.attributes:
            by_span.append((span.attributes[ROLE], span.attributes.get(semconv.JOB_ID)))

    counted.spans.on_end = on_end  # type: ignore[method-assign]

    async def main() -> None:
        await asyncio.gather(*(one_task(n, seen) for n in range(TASKS)))

    asyncio.run(main())

    crossed = {n: ids for n, ids in seen.items()
               if ids[:-1] != [f"task-{n}"] * (len(ids) - 1) or ids[-1] is not None}
    assert len(seen) == TASKS
    assert all(len(ids) == 10 for ids in seen.values())
    assert not crossed, list(crossed.items())[:5]

    assert len(by_span) == 4 * TASKS  # step, think, stream, astream per task
    wrong = [(n, job_id) for n, job_id in by_span if job_id != f"task-{n}"]
    assert not wrong, wrong[:5]
    # one job span per task, carrying its own id, and nothing outside a job
    spans = counted.spans
    assert spans.without_job == []
    assert len(spans.job_spans) == TASKS
    assert all(spans.per_job[f"task-{n}"] == 5 for n in range(TASKS))
    assert spans.ended == spans.started == 5 * TASKS and spans.ended_twice == 0
