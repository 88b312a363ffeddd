"""Load: 8 threads x 12,000 mixed-shape wrapped calls, each thread driving an asyncio loop.

Every call is one of 9 combinations (agent, tool, provider) x (sync, async, generator), a tenth of
them raising; calls run in jobs of 1,000. Afterwards the metric counts and sums must be exact, every
span started must have ended exactly once, and every span must carry the job id of its own job.
Spans are counted by a span processor, not stored. 96,000 calls keep the eight threads contending for the
same instruments and span pipeline for over a minute on a 2-core machine.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from typing import Any

import agent_otel
from agent_otel import path, semconv
from tests.support.reliability import Counted, points

THREADS = 8
CALLS_PER_THREAD = 12_000
CALLS_PER_JOB = 1_000
KINDS = ("agent", "tool", "provider")
SHAPES = ("sync", "async", "generator")


class LoadError(ValueError):
    pass


def plan(i: int) -> tuple[str, str, bool]:
    """What call number ``i`` of a thread does: (kind, shape, raises)."""
    combo = i % 9
    return KINDS[combo % 3], SHAPES[combo // 3], (i // 9) % 10 == 9


def result_of(kind: str, i: int) -> dict[str, Any]:
    if kind == "agent":
        return {"success": i % 2 == 0, "fixes_applied": i % 4}
    if kind == "provider":
        # costs are multiples of 1/4, so float sums are exact in any order
        return {"usage": {"input_tokens": i % 10, "output_tokens": 1}, "cost": (i % 3) * 0.25}
    return {"ok": True}


def body(kind: str, i: int, raises: bool) -> dict[str, Any]:
    if raises:
        raise LoadError(i)
    return result_of(kind, i)


def make_calls() -> dict[tuple[str, str], Any]:
    decorators = {
        "agent": agent_otel.agent("load-agent"),
        "tool": agent_otel.tool("load-tool"),
        "provider": agent_otel.provider("load-provider", model="load-model", cost=path("result.cost")),
    }
    calls: dict[tuple[str, str], Any] = {}
    for kind, decorate in decorators.items():
        def sync_call(i: int, raises: bool, kind: str = kind) -> Any:
            return body(kind, i, raises)

        async def async_call(i: int, raises: bool, kind: str = kind) -> Any:
            return body(kind, i, raises)  # one loop per thread runs its calls in turn: no await needed

        def gen_call(i: int, raises: bool, kind: str = kind) -> Any:
            yield i
            return body(kind, i, raises)

        calls[kind, "sync"] = decorate(sync_call)
        calls[kind, "async"] = decorate(async_call)
        calls[kind, "generator"] = decorate(gen_call)
    return calls


def expected_totals(calls: range = range(CALLS_PER_THREAD), threads: int = THREADS) -> dict[str, Any]:
    """The exact totals of ``calls`` in each of ``threads`` threads, from the plan alone."""
    totals: Counter[str] = Counter()
    for i in calls:
        kind, _shape, raises = plan(i)
        totals[f"{kind}.calls"] += 1
        if raises:
            totals[f"{kind}.error"] += 1
            continue
        result = result_of(kind, i)
        if kind == "agent":
            totals["agent.success" if result["success"] else "agent.failure"] += 1
            totals["agent.fixes"] += result["fixes_applied"]
        elif kind == "provider":
            totals["provider.input_tokens"] += result["usage"]["input_tokens"]
            totals["provider.output_tokens"] += result["usage"]["output_tokens"]
            totals["provider.cost_quarters"] += int(result["cost"] * 4)
    return Counter({key: value * threads for key, value in totals.items()})


async def drive_thread(thread: int, calls: dict[tuple[str, str], Any], failures: list[str]) -> None:
    for start in range(0, CALLS_PER_THREAD, CALLS_PER_JOB):
        job_id = f"load-{thread}-{start // CALLS_PER_JOB}"
        with agent_otel.job(job_id, type="load"):
            for i in range(start, start + CALLS_PER_JOB):
                kind, shape, raises = plan(i)
                func = calls[kind, shape]
                try:
                    if shape == "sync":
                        value = func(i, raises)
                    elif shape == "async":
                        value = await func(i, raises)
                    else:
                        gen = func(i, raises)
                        assert next(gen) == i
                        try:
                            next(gen)
                        except StopIteration as stop:
                            value = stop.value
                        else:
                            failures.append(f"{kind}/{shape} #{i}: generator did not stop")
                            continue
                except LoadError as exc:
                    if not raises or exc.args != (i,):
                        failures.append(f"{kind}/{shape} #{i}: unexpected {exc!r}")
                    continue
                if raises or value != result_of(kind, i):
                    failures.append(f"{kind}/{shape} #{i}: returned {value!r}")
            if agent_otel.current_job_id() != job_id:
                failures.append(f"thread {thread}: job id {agent_otel.current_job_id()!r} inside {job_id!r}")


def histogram_count(metrics: dict[str, Any], name: str, **match: Any) -> int:
    return sum(p.count for p in points(metrics, name, **match))


def test_eight_threads_of_mixed_calls_give_exact_metrics_and_each_span_ends_once(counted: Counted) -> None:
    calls = make_calls()
    failures: list[str] = []
    crashed: list[BaseException] = []

    def run(thread: int) -> None:
        try:
            asyncio.run(drive_thread(thread, calls, failures))
        except BaseException as exc:  # reported below
            crashed.append(exc)

    threads = [threading.Thread(target=run, args=(n,), name=f"load-{n}") for n in range(THREADS)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    elapsed = time.perf_counter() - began
    assert not any(thread.is_alive() for thread in threads), "load threads did not finish"
    assert not crashed, crashed[:3]
    assert not failures, failures[:10]

    total_calls = THREADS * CALLS_PER_THREAD
    jobs = total_calls // CALLS_PER_JOB
    spans = counted.spans
    # every span started ended, exactly once, and nothing touched a span after its end
    assert spans.started == total_calls + jobs
    assert spans.ended == spans.started
    assert spans.ended_twice == 0
    assert counted.ended_twice_log.count == 0
    # every span carries the id of its own job: 1 job span + 1,000 call spans per job id
    assert spans.without_job == []
    assert len(spans.per_job) == jobs
    assert set(spans.per_job.values()) == {CALLS_PER_JOB + 1}

    # each job's roll-ups count exactly the calls that ran in it, whatever the other threads did
    assert len(spans.job_spans) == jobs
    for job_id, attributes in spans.job_spans.items():
        start = int(job_id.rsplit("-", 1)[1]) * CALLS_PER_JOB
        in_job = expected_totals(range(start, start + CALLS_PER_JOB), threads=1)
        assert attributes[semconv.JOB_ROLLUP_AGENT_CALLS] == in_job["agent.calls"], job_id
        assert attributes[semconv.JOB_ROLLUP_TOOL_CALLS] == in_job["tool.calls"], job_id
        assert attributes[semconv.JOB_ROLLUP_PROVIDER_CALLS] == in_job["provider.calls"], job_id
        assert attributes[semconv.JOB_ROLLUP_INPUT_TOKENS] == in_job["provider.input_tokens"], job_id
        assert attributes[semconv.JOB_ROLLUP_COST] == in_job["provider.cost_quarters"] / 4, job_id

    want = expected_totals()

    metrics = counted.metrics()
    agent = semconv.AGENT_DURATION.name
    assert histogram_count(metrics, agent) == want["agent.calls"]
    for outcome in ("success", "failure", "error"):
        assert histogram_count(metrics, agent, **{semconv.AGENT_OUTCOME: outcome}) == want[f"agent.{outcome}"]
    assert histogram_count(metrics, agent, **{semconv.ERROR_TYPE: "LoadError"}) == want["agent.error"]
    assert sum(p.value for p in points(metrics, semconv.AGENT_WORK_ITEMS.name)) == want["agent.fixes"]

    tool = semconv.TOOL_DURATION.name
    assert histogram_count(metrics, tool) == want["tool.calls"]
    assert histogram_count(metrics, tool, **{semconv.ERROR_TYPE: "LoadError"}) == want["tool.error"]

    client = semconv.CLIENT_INFERENCE_DURATION.name
    assert histogram_count(metrics, client) == want["provider.calls"]
    assert histogram_count(metrics, client, **{semconv.ERROR_TYPE: "LoadError"}) == want["provider.error"]
    for kind, _, histogram in semconv.PREVIOUS_TOKEN_SPLIT:
        token_type, token_points = kind.value, points(metrics, histogram.name)
        assert sum(p.count for p in token_points) == want["provider.calls"] - want["provider.error"]
        assert sum(p.sum for p in token_points) == want[f"provider.{token_type}_tokens"]
    cost = sum(p.value for p in points(metrics, semconv.CLIENT_COST.name))
    assert cost == want["provider.cost_quarters"] / 4

    assert histogram_count(metrics, semconv.JOB_DURATION.name, **{semconv.JOB_TYPE: "load"}) == jobs
    assert not points(metrics, semconv.INSTRUMENTATION_ERRORS.name)
    print(f"\n{total_calls} wrapped calls + {jobs} jobs in {THREADS} threads: {elapsed:.1f} s")
