"""Evolution runs: status, KPIs before/after/delta, improvement, KPI gauges, resource sampling."""

from __future__ import annotations

import collections
import importlib
import mmap
import os
import threading
import time
import types
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

import pytest
from opentelemetry.trace import StatusCode
from pydantic import BaseModel

import agent_otel
from agent_otel import ConfigurationError, path, semconv
from agent_otel._calls import process_usage as resources
from tests.support.polling import wait_until
from tests.support.telemetry import SHAPES, assert_instrument, drive, error_count, point, points, shaped

ATTEMPTS = semconv.EVOLUTION_ATTEMPTS.name
DURATION = semconv.EVOLUTION_DURATION.name
IMPROVEMENT = semconv.EVOLUTION_PERFORMANCE_IMPROVEMENT.name
MEMORY = semconv.EVOLUTION_MEMORY_PEAK.name
KPI = semconv.AGENT_KPI_CURRENT.name
SAMPLER_THREAD = "agent-otel-resource-sampler"

BEFORE = {"success_rate": 0.6, "latency_s": 10.0}
AFTER = {"success_rate": 0.8, "latency_s": 8.0}


@dataclass
class AgentRef:
    agent_id: str


@pytest.fixture
def samplers(monkeypatch: pytest.MonkeyPatch) -> list[resources.ResourceSampler]:
    """Every ResourceSampler the runs create, to check each one stopped."""
    created: list[resources.ResourceSampler] = []
    original = resources.ResourceSampler

    class Tracking(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            created.append(self)

    evolution_module = importlib.import_module("agent_otel._calls.evolution")
    monkeypatch.setattr(evolution_module, "ResourceSampler", Tracking)
    yield created
    assert created, "no sampler was started"
    assert not any(s.running for s in created)
    assert not [t for t in threading.enumerate() if t.name == SAMPLER_THREAD]


def labels(status: str | None = None) -> dict[str, str]:
    found = {semconv.GEN_AI_AGENT_NAME: "refactor-agent", semconv.EVOLUTION_TYPE: "nightly"}
    if status is not None:
        found[semconv.EVOLUTION_STATUS] = status
    return found


def kpi_values(otel: Any) -> dict[str, float]:
    return {p.attributes[semconv.AGENT_KPI_NAME]: p.value for p in otel.points(KPI)}


@pytest.mark.parametrize("shape", SHAPES)
def test_succeeded_run_records_every_row(otel: Any, samplers: list[Any], shape: str) -> None:
    evolve = shaped(shape, agent_otel.evolution(path("args.task.agent_id"), type="nightly",
                                                strategy="prompt_optimization",
                                                kpis_before=BEFORE if shape == "async_generator" else None,
                                                kpis_after=AFTER if shape == "async_generator" else None),
                    lambda task: {"kpis_before": BEFORE, "kpis_after": AFTER, "iterations": 4})
    with agent_otel.job(type="evolve") as job:
        job_id = job.id
        drive(shape, evolve, AgentRef("refactor-agent"))

    span = otel.span("evolve refactor-agent")
    attrs = dict(span.attributes)
    assert attrs[semconv.JOB_ID] == job_id
    assert attrs[semconv.GEN_AI_OPERATION_NAME] == "evolve"
    assert attrs[semconv.EVOLUTION_TYPE] == "nightly"
    assert attrs[semconv.EVOLUTION_STRATEGY] == "prompt_optimization"
    assert attrs[semconv.EVOLUTION_STATUS] == "succeeded"
    assert attrs[semconv.EVOLUTION_ROLLBACK] is False
    if shape != "async_generator":
        assert attrs[semconv.EVOLUTION_ITERATIONS] == 4
    assert attrs["evolution.kpi.before.success_rate"] == 0.6
    assert attrs["evolution.kpi.after.success_rate"] == 0.8
    assert attrs["evolution.kpi.delta.success_rate"] == pytest.approx(0.2)
    assert attrs["evolution.kpi.delta.latency_s"] == pytest.approx(-2.0)
    assert attrs[semconv.EVOLUTION_IMPROVEMENT] == pytest.approx((0.2 - 2.0) / 2)
    assert attrs[semconv.RESOURCE_MEMORY_PEAK] > 0
    assert attrs[semconv.RESOURCE_CPU_TIME] >= 0
    assert attrs[semconv.RESOURCE_CPU_UTILIZATION] >= 0

    [attempt] = assert_instrument(otel, semconv.EVOLUTION_ATTEMPTS)
    assert dict(attempt.attributes) == labels("succeeded") and attempt.value == 1
    [duration] = assert_instrument(otel, semconv.EVOLUTION_DURATION)
    assert dict(duration.attributes) == labels("succeeded") and duration.count == 1
    [improvement] = assert_instrument(otel, semconv.EVOLUTION_PERFORMANCE_IMPROVEMENT)
    assert dict(improvement.attributes) == labels() and improvement.value == pytest.approx(-0.9)
    [memory] = assert_instrument(otel, semconv.EVOLUTION_MEMORY_PEAK)
    assert dict(memory.attributes) == labels()
    assert memory.value == attrs[semconv.RESOURCE_MEMORY_PEAK] > 0
    assert_instrument(otel, semconv.AGENT_KPI_CURRENT)
    assert kpi_values(otel) == AFTER
    assert all(p.attributes[semconv.GEN_AI_AGENT_NAME] == "refactor-agent" for p in otel.points(KPI))


def test_primary_kpi_is_the_improvement(otel: Any, samplers: list[Any]) -> None:
    @agent_otel.evolution("refactor-agent", type="nightly", kpi="success_rate")
    def evolve() -> dict[str, Any]:
        return {"before": BEFORE, "after": AFTER}

    evolve()
    assert point(otel, IMPROVEMENT).value == pytest.approx(0.2)


def test_an_engine_that_reports_one_score_gives_one_kpi(otel: Any) -> None:
    """GEPA's and DSPy's runs report a score, a number: read for ``kpis_before``/``kpis_after`` it was no KPI (a
    mapping was required), and the run recorded none, with no improvement. It is the one KPI, named by ``kpi``: given
    as an option or in a result's KPI fields, not in its generic ``before``/``after``."""
    import numpy

    @agent_otel.evolution("prompt-agent", kpis_before=agent_otel.path("result.scores[0]"),
                          kpis_after=agent_otel.path("result.best"), sample_resources=False)
    def optimize() -> dict[str, Any]:
        return {"scores": [0.25, 0.5, 0.75], "best": 0.75}

    @agent_otel.evolution("named", kpi="val_accuracy", kpis_before=agent_otel.path("args.seed_score"),
                          kpis_after=agent_otel.path("result"), sample_resources=False)
    def compile_program(seed_score: float) -> float:
        return 0.5

    @agent_otel.evolution("reported", sample_resources=False)  # read off the result's KPI fields, numpy's numbers
    def reported() -> dict[str, Any]:
        return {"kpis_before": numpy.float32(0.5), "post_kpis": numpy.int64(1)}

    @agent_otel.evolution("timed", sample_resources=False)  # its generic before/after: as often a time as a score
    def timed() -> dict[str, Any]:
        return {"before": 1733500000.0, "after": 1733500042.5}

    optimize()
    compile_program(0.25)
    reported()
    timed()
    by_agent = {p.attributes[semconv.GEN_AI_AGENT_NAME]: p.value for p in otel.points(IMPROVEMENT)}
    assert by_agent == {"prompt-agent": pytest.approx(0.5), "named": pytest.approx(0.25), "reported": 0.5}
    assert {(p.attributes[semconv.GEN_AI_AGENT_NAME], p.attributes[semconv.AGENT_KPI_NAME]): p.value
            for p in otel.points(KPI)} == {("prompt-agent", "score"): 0.75, ("named", "val_accuracy"): 0.5,
                                           ("reported", "score"): 1.0}
    assert error_count(otel, "evolution.kpis_before") == error_count(otel, "evolution.kpis_after") == 1  # timed()'s


def test_a_kpi_that_rose_one_step_improved_by_that_step(otel: Any) -> None:
    """0.11 - 0.10 is 0.009999999999999995 in binary floats: 18 of the 99 one-point steps from 0.00 to 0.99 were
    counted below 0.01 in the improvement histogram, whose bounds sit just below each step (so that the no-progress
    alert reads "improved by at least 0.01" as the count minus the bucket below), and the alert took them for none."""
    @agent_otel.evolution("planner", kpi="accuracy", sample_resources=False)
    def evolve(before: float, after: float) -> dict[str, Any]:
        return {"kpis_before": {"accuracy": before, "cost": 1.0}, "kpis_after": {"accuracy": after, "cost": 1.5}}

    @agent_otel.evolution("mean", sample_resources=False)  # no primary KPI: the mean of the changes
    def evolve_mean(before: float, after: float) -> dict[str, Any]:
        return {"kpis_before": {"a": before, "b": before}, "kpis_after": {"a": after, "b": after}}

    steps = [(step / 100, (step + 1) / 100) for step in range(99)] + [(0.5, 0.6)]
    for before, after in steps:
        evolve(before, after)
        evolve_mean(before, after)
    improvements = [span.attributes[semconv.EVOLUTION_IMPROVEMENT] for span in otel.spans()]
    assert improvements == [0.01, 0.01] * 99 + [0.1, 0.1]
    [planner] = points(otel, semconv.EVOLUTION_IMPROVEMENT_HISTOGRAM.name, {semconv.GEN_AI_AGENT_NAME: "planner"})
    counted = dict(zip(planner.explicit_bounds, planner.bucket_counts, strict=False))  # each bucket's own count
    assert not any(count for bound, count in counted.items() if bound < 0.01)  # none below 0.01
    assert counted[0.01] == 99 and counted[0.1] == 1
    # an exact float keeps its exact change, however large (rounding to the KPIs' digits made these 0.0 and 10.0)
    assert evolve(1e15, 1e15 + 4) == {"kpis_before": {"accuracy": 1e15, "cost": 1.0},
                                      "kpis_after": {"accuracy": 1e15 + 4, "cost": 1.5}}
    assert otel.spans()[-1].attributes[semconv.EVOLUTION_IMPROVEMENT] == 4.0


def test_kpi_changes_do_not_depend_on_the_programs_decimal_context(otel: Any) -> None:
    """Review: computed in the program's own ``decimal`` context (a money app rounds to 2 digits, or traps inexact
    results), the changes came out rounded, or the run's span lost every ``evolution.*`` attribute."""
    import decimal

    @agent_otel.evolution("planner", kpi="cost", sample_resources=False)
    def evolve() -> dict[str, Any]:
        return {"kpis_before": {"cost": 1000.1234, "acc": 1 / 3}, "kpis_after": {"cost": 1234.5678, "acc": 2 / 3}}

    with decimal.localcontext() as program:
        program.prec = 2
        program.traps[decimal.Inexact] = True
        evolve()
    attributes = otel.span("evolve planner").attributes
    assert attributes[semconv.EVOLUTION_STATUS] == "succeeded"
    assert attributes[semconv.EVOLUTION_IMPROVEMENT] == 234.4444
    assert attributes[semconv.EVOLUTION_KPI_DELTA_PREFIX + "acc"] == pytest.approx(1 / 3)


def test_a_kpi_option_naming_no_kpi_of_the_run_is_counted(otel: Any) -> None:
    """``kpi="accuracy"`` on a run reporting ``acc``: no improvement, no histogram, nothing said; a misspelt name
    turned the improvement metrics and the no-progress alert off in silence."""
    @agent_otel.evolution("planner", kpi="accuracy", sample_resources=False)
    def evolve() -> dict[str, Any]:
        return {"kpis_before": {"acc": 0.5}, "kpis_after": {"acc": 0.7}}

    assert evolve() == {"kpis_before": {"acc": 0.5}, "kpis_after": {"acc": 0.7}}
    assert semconv.EVOLUTION_IMPROVEMENT not in otel.span("evolve planner").attributes
    assert error_count(otel, "evolution.kpi") == 1


def test_a_kpi_option_naming_an_evaluation_with_no_before_yet_is_no_error(otel: Any) -> None:
    """Review: the README's ``kpi="relevance", evaluations=["relevance"]`` with scores recorded inside runs only has
    an "after" and no "before" on its first run: that is no misspelt name, and was counted as one."""
    @agent_otel.evolution("writer", kpi="relevance", evaluations=["relevance"], sample_resources=False)
    def evolve() -> dict[str, Any]:
        agent_otel.record_evaluation("relevance", 0.8)
        return {"kpis_before": {"acc": 0.5}, "kpis_after": {"acc": 0.7}}

    evolve()
    assert otel.span("evolve writer").attributes[semconv.EVOLUTION_KPI_AFTER_PREFIX + "relevance"] == 0.8
    assert error_count(otel, "evolution.kpi") == 0


@pytest.mark.parametrize(("result", "status"), [
    ({"success": False, "rolled_back": True}, "rolled_back"),  # before: failed, and no rollback version
    ({"success": False}, "failed"),
    ({"success": True, "rolled_back": True}, "rolled_back"),
])
def test_a_run_that_rolls_back_and_reports_failure_is_rolled_back(otel: Any, samplers: list[Any],
                                                                  result: dict[str, Any], status: str) -> None:
    @agent_otel.evolution("coder", type="nightly", version_from="v2")
    def evolve() -> dict[str, Any]:
        return result

    evolve()
    attributes = otel.span("evolve coder").attributes
    assert attributes[semconv.EVOLUTION_STATUS] == status
    assert (attributes.get(semconv.EVOLUTION_ROLLBACK_VERSION) == "v2") is (status == "rolled_back")


def test_rolled_back_run_keeps_the_old_kpis(otel: Any, samplers: list[Any]) -> None:
    @agent_otel.evolution("refactor-agent", type="nightly")
    def evolve() -> dict[str, Any]:
        return {"kpis_before": BEFORE, "kpis_after": {"success_rate": 0.4}, "rolled_back": True}

    evolve()
    span = otel.span("evolve refactor-agent")
    assert span.attributes[semconv.EVOLUTION_STATUS] == "rolled_back"
    assert span.attributes[semconv.EVOLUTION_ROLLBACK] is True
    assert point(otel, ATTEMPTS).attributes[semconv.EVOLUTION_STATUS] == "rolled_back"
    assert point(otel, DURATION).attributes[semconv.EVOLUTION_STATUS] == "rolled_back"
    assert point(otel, IMPROVEMENT).value == pytest.approx(-0.2)
    assert kpi_values(otel) == BEFORE


def test_unsuccessful_run_failed(otel: Any, samplers: list[Any]) -> None:
    @agent_otel.evolution("refactor-agent", type="nightly", success=path("result.ok"))
    def evolve() -> dict[str, Any]:
        return {"ok": False, "kpis_before": BEFORE, "kpis_after": AFTER}

    evolve()
    assert otel.span("evolve refactor-agent").attributes[semconv.EVOLUTION_STATUS] == "failed"
    assert dict(point(otel, ATTEMPTS).attributes) == labels("failed")
    assert kpi_values(otel) == BEFORE


class EvolutionCrashed(Exception):
    pass


@pytest.mark.parametrize("shape", SHAPES)
def test_exception_fails_the_run_and_stops_the_sampler(otel: Any, samplers: list[Any], shape: str) -> None:
    def body(task: Any) -> Any:
        assert [s.running for s in samplers] == [True]
        assert [t for t in threading.enumerate() if t.name == SAMPLER_THREAD]
        raise EvolutionCrashed

    evolve = shaped(shape, agent_otel.evolution("refactor-agent", type="nightly"), body)
    with pytest.raises(EvolutionCrashed):
        drive(shape, evolve, None)
    span = otel.span("evolve refactor-agent")
    assert span.attributes[semconv.EVOLUTION_STATUS] == "failed"
    assert span.attributes[semconv.ERROR_TYPE] == "EvolutionCrashed"
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[semconv.RESOURCE_MEMORY_PEAK] > 0
    assert dict(point(otel, ATTEMPTS).attributes) == labels("failed")
    assert point(otel, MEMORY).value > 0
    assert [s.running for s in samplers] == [False]


def test_no_sampler_unless_a_run_is_active_or_when_disabled(otel: Any) -> None:
    assert not [t for t in threading.enumerate() if t.name == SAMPLER_THREAD]

    @agent_otel.evolution("refactor-agent", sample_resources=False)
    def evolve() -> bool:
        assert not [t for t in threading.enumerate() if t.name == SAMPLER_THREAD]
        return True

    evolve()
    assert MEMORY not in otel.metrics()
    assert semconv.RESOURCE_MEMORY_PEAK not in otel.span("evolve refactor-agent").attributes
    assert point(otel, ATTEMPTS).attributes[semconv.EVOLUTION_TYPE] == "default"


def test_sampler_reports_usage_and_stops() -> None:
    baseline = resources._process.memory_info().rss
    sampler = resources.ResourceSampler(interval_s=0.001)
    assert sampler.running
    # Fresh anonymous pages, written so resident: a bytes object could reuse heap the allocator kept from an
    # earlier test, already counted in the baseline.
    blob = mmap.mmap(-1, 32 * 1024 * 1024)
    for page in range(0, len(blob), mmap.PAGESIZE):
        blob[page] = 1
    usage = sampler.stop()
    blob.close()
    assert not sampler.running
    assert usage.peak_rss_bytes >= baseline + 30 * 1024 * 1024
    assert usage.cpu_time_s >= 0 and usage.wall_s > 0
    assert sampler.stop() is usage
    assert set(usage.span_attributes()) == {semconv.RESOURCE_MEMORY_PEAK, semconv.RESOURCE_CPU_TIME,
                                            semconv.RESOURCE_CPU_UTILIZATION}


def test_runs_active_at_once_share_one_sampling_thread(otel: Any) -> None:
    """An asyncio program evaluating candidates at once: each run started a sampler thread of its own (1,000 runs, 1,001
    threads, each waking every 50 ms), which held the event loop for seconds and stretched every run's duration."""
    import asyncio

    runs = 200
    seen: list[int] = []

    @agent_otel.evolution("refactor-agent", type="nightly")
    async def evolve(started: asyncio.Event) -> bool:
        seen.append(sum(t.name == SAMPLER_THREAD for t in threading.enumerate()))
        await started.wait()
        return True

    async def main() -> list[bool]:
        started = asyncio.Event()
        pending = asyncio.gather(*(evolve(started) for _ in range(runs)))
        while len(seen) < runs:  # every run is in flight
            await asyncio.sleep(0)
        seen.append(sum(t.name == SAMPLER_THREAD for t in threading.enumerate()))
        started.set()
        return await pending

    assert asyncio.run(main()) == [True] * runs
    assert seen[-1] == 1 and set(seen) == {1}
    assert not [t for t in threading.enumerate() if t.name == SAMPLER_THREAD]  # the last run out ended it
    assert len(otel.spans("evolve refactor-agent")) == runs
    assert all(span.attributes[semconv.RESOURCE_MEMORY_PEAK] > 0 for span in otel.spans("evolve refactor-agent"))


def test_the_shared_thread_gives_every_active_run_what_it_reads() -> None:
    first, second = resources.ResourceSampler(interval_s=0.001), resources.ResourceSampler(interval_s=0.001)
    baseline = max(first.peak_so_far, second.peak_so_far)
    blob = mmap.mmap(-1, 32 * 1024 * 1024)
    for page in range(0, len(blob), mmap.PAGESIZE):
        blob[page] = 1
    try:
        # read by the thread, while both run (not by stop(), which reads once more)
        wait_until(lambda: first.peak_so_far >= baseline + 30 * 1024 * 1024, "the thread to read the growth")
        assert second.peak_so_far >= baseline + 30 * 1024 * 1024  # in the same pass
    finally:
        blob.close()
        first.stop()
        second.stop()
    assert not [t for t in threading.enumerate() if t.name == SAMPLER_THREAD]


def test_a_nested_runs_readings_are_its_enclosing_runs_too() -> None:
    """An inner run that grew the memory and let it go between two of the thread's readings reported a higher peak
    than the run it ran inside: its first and last readings were its own only."""
    outer = resources.ResourceSampler(interval_s=3600)
    blob = mmap.mmap(-1, 32 * 1024 * 1024)
    for page in range(0, len(blob), mmap.PAGESIZE):
        blob[page] = 1
    inner = resources.ResourceSampler(interval_s=3600)
    inner_usage = inner.stop()
    blob.close()
    last = resources.ResourceSampler(interval_s=3600)  # started and stopped once the memory is let go
    blob = mmap.mmap(-1, 32 * 1024 * 1024)
    try:
        for page in range(0, len(blob), mmap.PAGESIZE):
            blob[page] = 1
        last_usage = last.stop()  # its last reading, with the memory grown again
    finally:
        blob.close()
    outer_usage = outer.stop()
    assert outer_usage.peak_rss_bytes >= max(inner_usage.peak_rss_bytes, last_usage.peak_rss_bytes)


def test_a_run_ended_in_the_sampling_thread_itself_ends_and_sampling_goes_on() -> None:
    """A garbage collection runs in whichever thread allocates, and a sampled generator the program dropped in a cycle
    then ends its run there: in the sampling thread, which held its lock while it allocated, that run's end waited for
    the lock the thread held, for ever, and so did every later sampled run. Here a reading the thread gives one run
    ends another, as such a finalizer would."""
    ending, ended = threading.Event(), threading.Event()
    other = resources.ResourceSampler(interval_s=3600)

    class EndsAnotherRun(resources.ResourceSampler):
        def note(self, rss: int) -> None:
            super().note(rss)
            if threading.current_thread().name == SAMPLER_THREAD and not ending.is_set():
                ending.set()  # (once: the run ending gives its last reading to this one too)
                other.stop()
                ended.set()

    first = EndsAnotherRun(interval_s=0.001)
    try:
        wait_until(ended.is_set, "the run ended in the sampling thread", timeout_s=10)
        later = resources.ResourceSampler(interval_s=0.001)  # starts and ends: the lock is free
        assert later.stop().peak_rss_bytes > 0
    finally:
        first.stop()
    assert not other.running
    wait_until(lambda: not [t for t in threading.enumerate() if t.name == SAMPLER_THREAD], "the thread to end",
               timeout_s=10)


def test_a_higher_reading_given_while_the_thread_stores_a_lower_one_is_kept() -> None:
    """The thread's reading and a run's first or last one went to one field, each compared and then stored: a higher
    reading stored between the thread's compare and its store was overwritten by the thread's lower one. Here the
    thread's reading, as it is compared, lets another run end and give its higher last reading, as a thread switch
    there would."""
    sampler = resources.ResourceSampler(interval_s=3600)
    start = sampler.peak_so_far

    class ComparedAsAnotherRunEnds(int):
        def __gt__(self, other: object) -> bool:
            sampler.note_under_lock(start + 2_000_000)  # another run's last reading, higher
            return int(self) > int(cast(int, other))

    sampler.note(ComparedAsAnotherRunEnds(start + 1_000_000))
    try:
        assert sampler.peak_so_far == start + 2_000_000
    finally:
        sampler.stop()


def test_a_forked_child_starts_with_no_run_of_its_parents() -> None:
    """The child kept its parent's runs in flight at the fork, which never end there: its first sampled run started a
    thread that read the memory every 50 ms for the child's whole life."""
    running = resources.ResourceSampler(interval_s=3600)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            resources.ResourceSampler(interval_s=3600).stop()
            alive = any(t.name == SAMPLER_THREAD and t.is_alive() for t in threading.enumerate())
            os.write(write_end, f"{len(resources._active.samplers)} {alive}".encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        told = pipe.read()
    os.waitpid(pid, 0)
    running.stop()
    assert told == "0 False"


def test_a_short_runs_cpu_time_is_measured_not_rounded_to_clock_ticks() -> None:
    sampler = resources.ResourceSampler()
    start = time.process_time()
    while time.process_time() - start < 0.002:  # 2 ms of CPU work: a fifth of a clock tick
        pass
    usage = sampler.stop()
    assert usage.cpu_time_s >= 0.002
    assert usage.cpu_utilization <= (os.cpu_count() or 1)  # CPU time within the run's wall time


def test_manual_handle(otel: Any, samplers: list[Any]) -> None:
    with agent_otel.job(type="evolve"), agent_otel.evolution_run("refactor-agent", type="nightly",
                                                                 strategy="few_shot") as run:
        run.set_outcome(kpis_before=BEFORE, kpis_after=AFTER, iterations=2)
    span = otel.span("evolve refactor-agent")
    assert span.attributes[semconv.EVOLUTION_STRATEGY] == "few_shot"
    assert span.attributes[semconv.EVOLUTION_ITERATIONS] == 2
    assert span.attributes[semconv.JOB_ID] == otel.span("invoke_workflow evolve").attributes[semconv.JOB_ID]
    assert dict(point(otel, ATTEMPTS).attributes) == labels("succeeded")
    assert kpi_values(otel) == AFTER


def test_a_block_run_in_a_generator_its_consumer_stops_reading_counts_as_it_reports(otel: Any) -> None:
    """Review: a run closed before it gave anything was taken for one the exit cut off (failed); a block its
    generator's consumer stopped reading is closed by ``GeneratorExit`` the same way, and counts as it reports."""
    def candidates() -> Any:
        with agent_otel.evolution_run("engine") as run:
            run.set_outcome(kpis_before={"acc": 0.5}, kpis_after={"acc": 0.6})
            yield "first"
            yield "second"

    taken = candidates()
    assert next(taken) == "first"
    taken.close()
    assert otel.span("evolve engine").attributes[semconv.EVOLUTION_STATUS] == "succeeded"
    assert point(otel, ATTEMPTS).attributes[semconv.EVOLUTION_STATUS] == "succeeded"


def test_a_manual_run_that_raises_keeps_what_it_reported(otel: Any, samplers: list[Any]) -> None:
    """KPIs and a rollback reported with ``set_outcome`` before the block raised were dropped: the run was
    recorded as if it had reported nothing (no before KPIs, no rollback, no version returned to)."""
    with pytest.raises(EvolutionCrashed), agent_otel.evolution_run("refactor-agent", type="nightly",
                                                                  version_from="v3") as run:
        run.set_outcome(kpis_before=BEFORE)
        run.set_outcome(rolled_back=True, rolled_back_to="v2")
        raise EvolutionCrashed
    attributes = otel.span("evolve refactor-agent").attributes
    assert attributes[semconv.EVOLUTION_STATUS] == "failed" and attributes[semconv.EVOLUTION_ROLLBACK] is True
    assert kpi_values(otel) == BEFORE
    [introduced] = points(otel, semconv.AGENT_VERSION_INTRODUCED.name)
    assert introduced.attributes[semconv.GEN_AI_AGENT_VERSION] == "v2"


def test_a_failed_runs_improvement_is_at_most_zero(otel: Any, samplers: list[Any]) -> None:
    """A run that scored a better candidate and then raised (or reported failure) adopted nothing: the gauge said it
    improved the agent, and AgentOtelEvolutionNoProgress took it for progress. The span keeps the delta measured."""
    @agent_otel.evolution("refactor-agent", type="nightly", kpi="accuracy")
    def evolve() -> None:
        with agent_otel.evolution_run("inner", type="nightly", kpi="accuracy") as run:
            run.set_outcome(kpis_before={"accuracy": 0.5}, kpis_after={"accuracy": 0.9})
            raise EvolutionCrashed

    with pytest.raises(EvolutionCrashed):
        evolve()
    improvement = {p.attributes[semconv.GEN_AI_AGENT_NAME]: p.value for p in points(otel, IMPROVEMENT)}
    assert improvement == {"inner": 0.0}
    assert otel.span("evolve inner").attributes[semconv.EVOLUTION_IMPROVEMENT] == pytest.approx(0.4)


def test_a_rolled_back_runs_improvement_is_at_most_zero(otel: Any, samplers: list[Any]) -> None:
    """A run that measured a better candidate and rolled it back (another KPI, a regression guard) adopted nothing
    either: the gauge said the agent gained, while its current KPI stayed, and NoProgress took it for progress."""
    @agent_otel.evolution("refactor-agent", type="nightly", kpi="accuracy")
    def evolve() -> dict[str, Any]:
        return {"kpis_before": {"accuracy": 0.4}, "kpis_after": {"accuracy": 0.6}, "rolled_back": True}

    evolve()
    assert [p.value for p in points(otel, IMPROVEMENT)] == [0.0]
    assert kpi_values(otel) == {"accuracy": 0.4}
    assert otel.span("evolve refactor-agent").attributes[semconv.EVOLUTION_IMPROVEMENT] == pytest.approx(0.2)


def test_counts_over_runs_and_odd_kpis(otel: Any, samplers: list[Any]) -> None:
    @agent_otel.evolution("refactor-agent", type="nightly")
    def evolve(result: Any) -> Any:
        return result

    evolve({"kpis_before": BEFORE, "kpis_after": AFTER})
    evolve({"kpis_before": "not a mapping", "kpis_after": {"success_rate": "0.9", "bad": "x"}})
    evolve({"rolled_back": "yes"})
    assert {p.attributes[semconv.EVOLUTION_STATUS]: p.value for p in otel.points(ATTEMPTS)} == {
        "succeeded": 2, "rolled_back": 1}
    assert point(otel, DURATION, {semconv.EVOLUTION_STATUS: "succeeded"}).count == 2
    assert kpi_values(otel) == {"success_rate": 0.9, "latency_s": 8.0}
    assert error_count(otel, "evolution.kpis_before") == 1
    assert error_count(otel, "evolution.kpis_after") == 1
    assert len(points(otel, semconv.INSTRUMENTATION_ERRORS.name)) == 2


def test_kpis_too_large_to_subtract_or_average_record_no_infinity(otel: Any, samplers: list[Any],
                                                                     capfd: pytest.CaptureFixture[str]) -> None:
    """A delta or a mean beyond a float was infinite: the SDK refused the improvement with a warning on the
    program's stderr, and the span said inf."""
    @agent_otel.evolution("refactor-agent", type="nightly")
    def evolve(result: Any) -> Any:
        return result

    huge = {"a": 1e308, "b": 1e308}
    evolve({"kpis_before": {"a": 0.0, "b": 0.0}, "kpis_after": huge})  # each delta finite, their sum not
    assert point(otel, IMPROVEMENT).value == 1e308
    evolve({"kpis_before": {"a": -1e308, "b": 0.0}, "kpis_after": huge})  # a's delta beyond a float: left out
    assert point(otel, IMPROVEMENT).value == 1e308
    spans = otel.spans("evolve refactor-agent")
    assert [span.attributes[semconv.EVOLUTION_IMPROVEMENT] for span in spans] == [1e308, 1e308]
    assert f"{semconv.EVOLUTION_KPI_DELTA_PREFIX}a" not in spans[1].attributes
    assert error_count(otel, "evolution.kpi_delta") == 1
    assert capfd.readouterr().err == ""


@dataclass
class KpiRecord:
    success_rate: float
    latency_s: float


class KpiTuple(NamedTuple):
    success_rate: float
    latency_s: float


class KpiModel(BaseModel):
    success_rate: float
    latency_s: float


@pytest.mark.parametrize("record", [KpiRecord, KpiTuple, KpiModel])
def test_kpis_kept_in_a_record_object_are_read(otel: Any, samplers: list[Any], record: Any) -> None:
    """Engines keep their metrics in dataclasses, named tuples and pydantic models as often as in dicts."""
    @agent_otel.evolution("refactor-agent", type="nightly", kpi="success_rate")
    def evolve() -> dict[str, Any]:
        return {"kpis_before": record(**BEFORE), "kpis_after": record(**AFTER)}

    evolve()
    attributes = otel.span("evolve refactor-agent").attributes
    assert attributes["evolution.kpi.before.latency_s"] == 10.0
    assert attributes["evolution.kpi.delta.success_rate"] == pytest.approx(0.2)
    assert point(otel, IMPROVEMENT).value == pytest.approx(0.2)
    assert kpi_values(otel) == AFTER
    assert not points(otel, semconv.INSTRUMENTATION_ERRORS.name)


@pytest.mark.parametrize("record", [KpiRecord, KpiModel])
def test_kpis_before_of_a_record_the_run_updates_in_place_are_its_values_at_the_start(
        otel: Any, samplers: list[Any], record: Any) -> None:
    class Engine:
        def __init__(self) -> None:
            self.kpis = record(**BEFORE)

        @agent_otel.evolution("refactor-agent", kpis_before=path("self.kpis"), kpis_after=path("self.kpis"))
        def evolve(self) -> None:
            self.kpis.success_rate, self.kpis.latency_s = AFTER["success_rate"], AFTER["latency_s"]

    Engine().evolve()
    attributes = otel.span("evolve refactor-agent").attributes
    assert attributes["evolution.kpi.before.success_rate"] == 0.6
    assert attributes["evolution.kpi.after.success_rate"] == 0.8


@pytest.mark.parametrize("table", [
    dict, collections.OrderedDict, lambda values: collections.defaultdict(float, values), types.MappingProxyType,
], ids=["dict", "OrderedDict", "defaultdict", "read-only view"])
def test_kpis_before_of_a_table_the_run_updates_in_place_are_its_values_at_the_start(
        otel: Any, samplers: list[Any], table: Any) -> None:
    """Only an exact dict was copied when the run started: a defaultdict's or an OrderedDict's values were read
    again at the end, so before was after and the delta 0."""
    values = dict(BEFORE)

    class Engine:
        kpis = table(values)

        @agent_otel.evolution("refactor-agent", kpis_before=path("self.kpis"), kpis_after=path("self.kpis"))
        def evolve(self) -> None:
            target = values if isinstance(self.kpis, types.MappingProxyType) else self.kpis
            target.update(AFTER)

    Engine().evolve()
    attributes = otel.span("evolve refactor-agent").attributes
    assert attributes["evolution.kpi.before.success_rate"] == 0.6
    assert attributes["evolution.kpi.delta.success_rate"] == pytest.approx(0.2)


def test_a_class_is_no_kpi_record(otel: Any, samplers: list[Any]) -> None:
    @agent_otel.evolution("refactor-agent", type="nightly")
    def evolve() -> dict[str, Any]:
        return {"kpis_before": KpiRecord, "kpis_after": AFTER}

    evolve()
    assert "evolution.kpi.before.latency_s" not in otel.span("evolve refactor-agent").attributes
    assert error_count(otel, "evolution.kpis_before") == 1


def test_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="agent is required"):
        agent_otel.evolution("")


def test_a_run_with_more_kpis_than_the_span_has_room_for_keeps_its_name_agent_and_status(
        otel: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Each KPI is three span attributes (before, after, delta). Before, past the SDK's attribute limit (128) the
    SDK dropped the oldest ones: with 41 KPIs the run lost ``evolution.status`` and ``gen_ai.agent.name``, and the
    SDK said "Attributes dict is full" on the program's stderr once per dropped attribute (331 lines for 150)."""
    kpis = {f"k{n:03d}": float(n) for n in range(150)}

    @agent_otel.evolution("wide", kpi="k149")
    def evolve() -> dict[str, Any]:
        return {"kpis_before": kpis, "kpis_after": {name: value + 1 for name, value in kpis.items()}}

    evolve()
    attributes = otel.span("evolve wide").attributes
    assert attributes[semconv.EVOLUTION_STATUS] == "succeeded"
    assert attributes[semconv.GEN_AI_AGENT_NAME] == "wide"
    assert attributes[semconv.EVOLUTION_KPI_DELTA_PREFIX + "k149"] == 1.0  # the primary KPI first
    assert len(attributes) <= 128
    assert not [record for record in caplog.records if record.name.startswith("opentelemetry")]
    assert error_count(otel, "evolution.kpi_attributes") == 1


def test_a_result_objects_methods_are_not_read_as_its_flags(otel: Any) -> None:
    """A result object that offers ``rollback()`` or ``success()`` methods: before, the bound method was read as
    the field (a method is true), so the run was ``rolled_back`` and published its KPIs before as current."""

    class Outcome:
        kpis_before = {"acc": 0.5}
        kpis_after = {"acc": 0.6}

        def rollback(self) -> None:
            raise AssertionError("never called")

        def success(self) -> bool:
            raise AssertionError("never called")

    @agent_otel.evolution("methodical")
    def evolve() -> Outcome:
        return Outcome()

    evolve()
    attributes = otel.span("evolve methodical").attributes
    assert (attributes[semconv.EVOLUTION_STATUS], attributes[semconv.EVOLUTION_ROLLBACK]) == ("succeeded", False)
    assert point(otel, KPI).value == 0.6


def test_a_run_whose_span_cannot_start_leaves_no_sampler_thread_and_no_run_in_flight(otel: Any) -> None:
    """A span processor of the program's that raises in ``on_start`` makes the SDK's ``start_span`` raise: the call
    runs as if not wrapped, the failure counted. The run's resource sampler and its place among the runs a SIGTERM
    ends were made before its span had started (a per-call cut): a psutil thread left for the process's life, and the
    run recorded as an attempt at exit, one that never ran."""
    from opentelemetry.sdk.trace import SpanProcessor

    from agent_otel._engine import wrappers

    class Refusing(SpanProcessor):
        def on_start(self, span: Any, parent_context: Any = None) -> None:
            raise RuntimeError("the program's processor")

    otel.tracer_provider.add_span_processor(Refusing())
    in_flight = set(wrappers._in_flight)

    @agent_otel.evolution("refactor-agent", type="nightly")
    def evolve() -> dict[str, Any]:
        return {"success": True}

    assert [evolve() for _ in range(3)] == [{"success": True}] * 3
    assert not [t for t in threading.enumerate() if t.name == SAMPLER_THREAD]
    assert wrappers._in_flight == in_flight
    wrappers.end_in_flight(None, 1.0)
    assert otel.points(ATTEMPTS) == []
    assert error_count(otel, "evolution.begin") == 3


def test_a_signal_that_ends_a_manual_run_records_what_its_block_reported(otel: Any) -> None:
    """SIGTERM ends an open run as raising would (README): a block that raises records what it reported with
    ``set_outcome()``; one a signal ended recorded nothing of it (no rollback, no KPIs)."""
    import signal

    from agent_otel._engine import wrappers

    with agent_otel.evolution_run("manual") as run:
        run.set_outcome(kpis_before={"q": 0.5}, rolled_back=True, rolled_back_to="v0", version_from="v1")
        wrappers.end_in_flight(signal.SIGTERM, 5.0)  # what the SIGTERM handler does
    attributes = otel.span(semconv.evolution_span_name("manual")).attributes or {}
    assert attributes[semconv.ERROR_TYPE] == "SIGTERM"
    assert attributes[semconv.EVOLUTION_ROLLBACK] is True
    assert attributes[semconv.EVOLUTION_KPI_BEFORE_PREFIX + "q"] == 0.5
    assert attributes[semconv.EVOLUTION_ROLLBACK_VERSION] == "v0"


def test_every_run_with_kpis_counts_on_the_improvement_histogram_a_regression_as_zero(
        otel: Any, caplog: pytest.LogCaptureFixture) -> None:
    """The SDK refuses a negative value on a histogram, with a line on the program's stderr for each: a run that made
    the KPI worse was left off, and an agent whose runs only regressed had no series for AgentOtelEvolutionNoProgress
    to fire on."""
    @agent_otel.evolution("planner", type="nightly", kpi="score")
    def evolve(before: float, after: float) -> dict[str, Any]:
        return {"kpis_before": {"score": before}, "kpis_after": {"score": after}}

    with caplog.at_level("DEBUG"):
        for before, after in ((0.5, 0.4), (0.4, 0.45), (0.45, 0.2)):
            evolve(before, after)
    [runs] = points(otel, semconv.EVOLUTION_IMPROVEMENT_HISTOGRAM.name)
    assert runs.count == 3 and runs.min == 0.0 and runs.max == pytest.approx(0.05)
    bounds = list(runs.explicit_bounds)
    assert runs.bucket_counts[bounds.index(0.0)] == 2  # the two regressions
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == []
