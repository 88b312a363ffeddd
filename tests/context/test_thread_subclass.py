"""Threads the program subclasses: a ``threading.Thread`` subclass that overrides ``run()`` gets the job
and the parent span of the code that started it, as a ``Thread(target=...)`` does."""

from __future__ import annotations

import threading
import traceback
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace

import agent_otel
from agent_otel import semconv


def current_ids() -> tuple[str | None, int]:
    return agent_otel.current_job_id(), trace.get_current_span().get_span_context().span_id


def test_thread_subclass_that_overrides_run_gets_the_job_and_parent_span(otel: Any) -> None:
    seen: dict[str, Any] = {}
    lookup = agent_otel.tool("lookup")(lambda: "found")

    class Worker(threading.Thread):
        def run(self) -> None:  # overrides Thread.run: the threading instrumentation's run wrapper never runs
            seen["worker"] = current_ids()
            lookup()

    class Delayed(threading.Timer):  # a Timer subclass overriding run() too
        def run(self) -> None:
            seen["timer"] = current_ids()

    with agent_otel.job("subclassed"):
        expected = current_ids()
        for thread in (Worker(), Delayed(0, print)):
            thread.start()
            thread.join()
    assert seen == {"worker": expected, "timer": expected}
    job_span = otel.span("invoke_workflow default")
    assert job_span.attributes[semconv.JOB_ROLLUP_TOOL_CALLS] == 1
    tool_span = otel.span(semconv.tool_span_name("lookup"))
    assert tool_span.parent.span_id == job_span.context.span_id
    assert tool_span.attributes[semconv.JOB_ID] == "subclassed"


def test_a_thread_started_outside_any_job_sees_none(otel: Any) -> None:
    seen: list[Any] = []

    class Worker(threading.Thread):
        def run(self) -> None:
            seen.append(agent_otel.current_job_id())

    with agent_otel.job("elsewhere"):
        pass
    worker = Worker()
    worker.start()
    worker.join()
    assert seen == [None]


def fail() -> None:
    raise ValueError("thread failed")


class SuperRun(threading.Thread):
    def run(self) -> None:  # overrides run() and calls Thread.run, which the threading instrumentation wraps
        super().run()


@pytest.mark.parametrize(("make", "run_frames"), [
    (lambda: threading.Thread(target=fail), ["threading.py:run"]),
    (lambda: SuperRun(target=fail), ["test_thread_subclass.py:run", "threading.py:run"]),
    (lambda: threading.Timer(0, fail), ["threading.py:run"]),
], ids=["thread", "subclass", "timer"])
def test_an_uncaught_thread_exception_has_plain_pythons_frames_and_still_the_job(otel: Any, make: Any,
                                                                                   run_frames: list[str]) -> None:
    """threading.excepthook printed a frame of the threading instrumentation's run() wrapper (plain python has
    none): every thread already runs in the context of its start() through the patched _bootstrap_inner."""
    seen: list[tuple[list[str], str | None]] = []

    def hook(args: Any) -> None:
        frames = [f"{Path(frame.filename).name}:{frame.name}" for frame in traceback.extract_tb(args.exc_traceback)]
        seen.append((frames, agent_otel.current_job_id()))

    original, threading.excepthook = threading.excepthook, hook
    try:
        with agent_otel.job("failing"):
            thread = make()
            thread.start()
            thread.join()
    finally:
        threading.excepthook = original
    assert seen == [(["threading.py:_bootstrap_inner", *run_frames, "test_thread_subclass.py:fail"], "failing")]


def test_a_pools_worker_threads_keep_no_job_of_the_call_that_happened_to_start_them(otel: Any) -> None:
    """A thread pool starts its workers lazily, in the context of whichever submit needed one: each task runs in
    the context of its own submit, and what the worker runs outside a task (a future's done callback, a
    ``ThreadPool``'s result callback) ran in that first job's context for the pool's life (job A's id, under A's
    ended span, in neither roll-up), where plain python has none. Now a pool's threads start with no context."""
    from concurrent.futures import ThreadPoolExecutor
    from multiprocessing.pool import ThreadPool

    seen: dict[str, Any] = {}
    executor, pool = ThreadPoolExecutor(1), None
    try:
        with agent_otel.job("A"):
            executor.submit(lambda: None).result()  # starts the executor's worker
            pool = ThreadPool(1)
        with agent_otel.job("B"):
            seen["task"] = executor.submit(agent_otel.current_job_id).result()
            done = threading.Event()
            future = executor.submit(lambda: None)
            future.add_done_callback(lambda _: (seen.setdefault("done callback", current_ids()), done.set()))
            assert done.wait(10)
            called = threading.Event()
            pool.apply_async(lambda: None, callback=lambda _: (seen.setdefault("pool callback", current_ids()),
                                                               called.set()))
            assert called.wait(10)
    finally:
        executor.shutdown()
        if pool is not None:
            pool.close()
            pool.join()
    assert seen["task"] == "B"
    assert seen["done callback"] == seen["pool callback"] == (None, 0)


def test_trios_cached_worker_threads_keep_no_job_of_the_call_that_happened_to_start_them(otel: Any) -> None:
    """trio keeps the threads ``trio.to_thread`` starts, and hands them later work: given with
    ``trio.lowlevel.start_thread_soon``, which copies no context, that work ran in the job whose call started the
    thread (its spans carried job A's id, A long ended), where plain python runs it in none."""
    import trio

    seen: list[object] = []

    async def main() -> None:
        with agent_otel.job("A"):
            await trio.to_thread.run_sync(lambda: None)  # starts the cache's worker thread inside job A
        done = threading.Event()
        trio.lowlevel.start_thread_soon(agent_otel.current_job_id, lambda outcome: (seen.append(outcome.unwrap()),
                                                                                   done.set()))
        await trio.to_thread.run_sync(done.wait)

    trio.run(main)
    assert seen == [None]
