"""One ``job()`` object reused and shared: every entry is its own job, whichever task or thread enters it."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import agent_otel
from agent_otel import semconv
from agent_otel._engine.instruments import build_runtime
from tests.support.telemetry import points

WORKFLOW = semconv.job_span_name("batch")


@agent_otel.tool("step")
def step() -> None:
    return None


def job_span(otel: Any, job_id: str) -> Any:
    [span] = [s for s in otel.spans(WORKFLOW) if s.attributes[semconv.JOB_ID] == job_id]
    return span


def test_one_job_object_shared_by_overlapping_asyncio_tasks(otel: Any) -> None:
    shared = agent_otel.job(type="batch")
    seen: dict[str, Any] = {}

    async def first(entered: asyncio.Event, release: asyncio.Event) -> None:
        async with shared:
            seen["first"] = shared.id
            entered.set()
            await release.wait()
            step()
            shared.set_outcome("failure")
        seen["first after"] = agent_otel.current_job_id()

    async def second(entered: asyncio.Event, first_done: asyncio.Task[None]) -> None:
        await entered.wait()
        async with shared:  # enters while the first task is inside
            seen["second"] = shared.id
            release.set()
            await first_done  # the first task leaves while this one is inside
            seen["second after first left"] = (shared.id, agent_otel.current_job_id())
            step()

    async def main() -> None:
        nonlocal release
        entered, release = asyncio.Event(), asyncio.Event()
        first_task = asyncio.create_task(first(entered, release))
        await asyncio.gather(first_task, second(entered, first_task))

    release: asyncio.Event
    asyncio.run(main())

    first_id, second_id = seen["first"], seen["second"]
    assert first_id and second_id and first_id != second_id
    assert seen["first after"] is None  # not left current after its block
    assert seen["second after first left"] == (second_id, second_id)
    first_span, second_span = job_span(otel, first_id), job_span(otel, second_id)
    assert first_span.end_time < second_span.end_time  # each span ended when its own block did
    assert first_span.attributes[semconv.JOB_OUTCOME] == "failure"
    assert second_span.attributes[semconv.JOB_OUTCOME] == "success"
    steps = otel.spans(semconv.tool_span_name("step"))
    assert sorted(s.attributes[semconv.JOB_ID] for s in steps) == sorted([first_id, second_id])
    for span in (first_span, second_span):
        assert span.attributes[semconv.JOB_ROLLUP_TOOL_CALLS] == 1


def test_one_job_object_shared_by_threads_and_reused_in_sequence(otel: Any) -> None:
    shared = agent_otel.job(type="batch")
    first_inside, second_inside, first_left = threading.Event(), threading.Event(), threading.Event()
    ids: list[str | None] = []
    left_current: list[str | None] = []

    def worker(inside: threading.Event, wait_for: threading.Event, left: threading.Event | None) -> None:
        with shared:
            job_id = shared.id
            inside.set()
            assert wait_for.wait(timeout=30)
            ids.append(job_id if (shared.id, agent_otel.current_job_id()) == (job_id, job_id) else None)
        left_current.append(agent_otel.current_job_id())
        if left is not None:
            left.set()

    # the first thread to enter leaves first, while the second is still inside
    threads = [threading.Thread(target=worker, args=(first_inside, second_inside, first_left)),
               threading.Thread(target=worker, args=(second_inside, first_left, None))]
    threads[0].start()
    assert first_inside.wait(timeout=30)
    threads[1].start()
    for thread in threads:
        thread.join(timeout=30)
    with shared:
        ids.append(shared.id)
        with shared:  # re-entered: a nested job of its own
            inner = shared.id
        assert shared.id == ids[-1]
    assert shared.id is None
    assert None not in ids and len(set(ids)) == 3 and inner not in ids
    assert left_current == [None, None]
    assert len(otel.spans(WORKFLOW)) == 4


def test_a_manual_call_reused_or_shared_reports_each_blocks_own_outcome(otel: Any) -> None:
    """What ``set_outcome()`` reports belongs to the block it runs in. Before, it stayed on the object: a
    second block that reported nothing recorded the first one's tokens, a failure stayed a failure, and two
    threads sharing the object recorded one's usage twice."""
    call = agent_otel.provider_call("openai", model="gpt-4o")
    with call:
        call.set_outcome(usage={"input_tokens": 1000, "output_tokens": 10})
    with call:
        pass
    agent = agent_otel.agent_call("planner")
    with agent:
        agent.set_outcome(success=False)
    with agent:
        pass
    shared = agent_otel.provider_call("anthropic", model="claude-sonnet-4")
    first_reported, second_may_report = threading.Event(), threading.Event()

    def report(tokens: int, wait_for: threading.Event | None, then: threading.Event) -> None:
        with shared:
            shared.set_outcome(usage={"input_tokens": tokens, "output_tokens": 1})
            then.set()
            if wait_for is not None:
                assert wait_for.wait(30)

    threads = [threading.Thread(target=report, args=(100, second_may_report, first_reported)),
               threading.Thread(target=report, args=(999, None, second_may_report))]
    threads[0].start()
    assert first_reported.wait(30)
    threads[1].start()
    for thread in threads:
        thread.join(30)
    tokens = [span.attributes.get(semconv.GEN_AI_USAGE_INPUT_TOKENS) for span in otel.spans("chat gpt-4o")]
    assert tokens == [1000, None]
    assert [span.attributes[semconv.AGENT_OUTCOME] for span in otel.spans("invoke_agent planner")] == [
        "failure", "success"]
    assert sorted(span.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS]
                  for span in otel.spans("chat claude-sonnet-4")) == [100, 999]


def test_calls_in_many_threads_of_one_job_are_counted_exactly(otel: Any) -> None:
    """Each thread counts its agent and tool calls on its own (no lock per call); the job's roll-up adds them
    all up, those of threads that ended before it (whose thread ids later threads may reuse) included."""
    @agent_otel.agent("worker")
    def work(n: int) -> dict[str, bool]:
        step()
        return {"success": True}

    calls, waves, threads_per_wave = 500, 2, 8
    with agent_otel.job(type="batch") as job:
        job_id = job.id or ""
        for _ in range(waves):  # the second wave starts once the first has ended
            threads = [threading.Thread(target=lambda: [work(n) for n in range(calls)])
                       for _ in range(threads_per_wave)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=120)
            assert not any(thread.is_alive() for thread in threads)
        work(0)
    attributes = job_span(otel, job_id).attributes
    total = waves * threads_per_wave * calls + 1
    assert attributes[semconv.JOB_ROLLUP_AGENT_CALLS] == total
    assert attributes[semconv.JOB_ROLLUP_TOOL_CALLS] == total


def test_a_block_in_a_generator_stepped_in_fresh_context_copies_is_recorded(otel: Any) -> None:
    """Each step in a fresh copy of the caller's context, as Starlette's ``iterate_in_threadpool`` and
    ``anyio.to_thread`` step a sync iterator: the block was left in a context that never entered it, and
    nothing was recorded (no span, no ``job.duration``), for a job, a phase and a manual agent call alike."""
    import contextvars

    def steps() -> Any:
        with agent_otel.job("J-gen", type="stream"), agent_otel.phase("emit"), agent_otel.agent_call("writer"):
            yield from range(3)

    stepped = steps()
    items = []
    while True:
        try:
            items.append(contextvars.copy_context().run(next, stepped))
        except StopIteration:
            break
    assert items == [0, 1, 2]
    assert [span.name for span in otel.spans()] == ["invoke_agent writer", "run_phase emit", "invoke_workflow stream"]
    assert otel.span("invoke_workflow stream").attributes[semconv.JOB_ID] == "J-gen"
    assert len(points(otel, semconv.JOB_DURATION.name)) == 1


def test_a_generators_block_overlapping_another_entry_of_its_object_is_still_recorded(otel: Any) -> None:
    """A generator's block stepped in fresh context copies while the same job object is entered elsewhere: its
    exit, in a context that never entered it, is matched to its entry by the frame that made both. Before, with two
    entries open it ended none, its entry stayed open for good, and every later generator block of that object
    (with no overlap at all) was never recorded either: no span, no ``job.duration``."""
    import contextvars

    shared = agent_otel.job(type="stream")

    def steps() -> Any:
        with shared:
            yield agent_otel.current_job_id()

    overlapped = steps()
    contextvars.copy_context().run(next, overlapped)  # the generator's block entered
    with shared:  # another entry of the same object meanwhile
        assert list(contextvars.copy_context().run(lambda: list(overlapped))) == []  # left in another copy
        assert len(otel.spans()) == 1  # the generator's job, ended inside the other entry
    for _ in range(3):
        stepped = steps()
        while True:
            try:
                contextvars.copy_context().run(next, stepped)
            except StopIteration:
                break
    assert [span.name for span in otel.spans()] == ["invoke_workflow stream"] * 5
    assert sum(point.count for point in points(otel, semconv.JOB_DURATION.name)) == 5
    assert not shared._open  # nothing left open, nothing kept alive


def test_a_handle_reports_from_the_threads_its_block_fans_out_to(otel: Any) -> None:
    """A worker started in a job's block (a pool task, a thread, ``run_in_executor``) is in the job: its calls count
    there, and ``job.id`` and ``job.set_outcome()`` are the job's. They were None and dropped, silently (only
    ``asyncio.to_thread``, which copies every context variable, worked), and so was a manual call's outcome."""
    def worker(job: Any, seen: list[str | None]) -> None:
        seen.append(job.id)
        job.set_outcome("failure")

    seen: list[str | None] = []
    with agent_otel.job("via-pool", type="batch") as job, ThreadPoolExecutor(1) as pool:
        pool.submit(worker, job, seen).result()
    with agent_otel.job("via-thread", type="batch") as job:
        thread = threading.Thread(target=worker, args=(job, seen))
        thread.start()
        thread.join()

    async def in_executor() -> None:
        async with agent_otel.job("via-executor", type="batch") as job:
            await asyncio.get_running_loop().run_in_executor(None, worker, job, seen)

    asyncio.run(in_executor())
    assert seen == ["via-pool", "via-thread", "via-executor"]
    for job_id in seen:
        assert job_span(otel, str(job_id)).attributes[semconv.JOB_OUTCOME] == "failure"

    with agent_otel.agent_call("planner") as call, ThreadPoolExecutor(1) as pool:
        pool.submit(call.set_outcome, success=False).result()
    assert otel.span("invoke_agent planner").attributes[semconv.AGENT_OUTCOME] == "failure"
    assert not points(otel, semconv.INSTRUMENTATION_ERRORS.name)

    agent_otel.job(type="batch").set_outcome("failure")  # outside any block: counted, as the other handles'
    errors = points(otel, semconv.INSTRUMENTATION_ERRORS.name, {semconv.INSTRUMENTATION_STAGE: "job.outcome"})
    assert [error.value for error in errors] == [1]


def test_a_block_leaves_no_cycle_and_a_thread_it_started_does_not_keep_it(otel: Any) -> None:
    """The block's invocation travels in the context weakly: held strongly, every block (a per-call ``tool_call``
    too) was a reference cycle freed only by the garbage collector, and kept alive by a thread still running."""
    release = threading.Event()
    gc.disable()
    try:
        refs = []
        for handle in (agent_otel.tool_call("t"), agent_otel.agent_call("a"), agent_otel.phase("p"),
                       agent_otel.job(type="batch")):
            with handle:
                refs.append(weakref.ref(handle.invocation))
                worker = threading.Thread(target=release.wait)
                worker.start()
        assert [ref() for ref in refs] == [None] * 4
    finally:
        gc.enable()
        release.set()
        worker.join()


def test_a_disabled_handle_says_nothing_in_a_worker(otel: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Disabled, no block's invocation travels to a worker: its ``set_outcome()`` records nothing, as everywhere when
    disabled, and is no miss to log ("job.outcome failed (LookupError)" was logged)."""
    build_runtime(otel.tracer_provider, otel.meter_provider, enabled=False)
    with caplog.at_level(logging.DEBUG, logger="agent_otel"):
        with agent_otel.job(type="batch") as job, ThreadPoolExecutor(1) as pool:
            pool.submit(job.set_outcome, "failure").result()
        assert [record.getMessage() for record in caplog.records if record.name.startswith("agent_otel")] == []
