"""Agent versions and evolution lineage: the version on agent spans and metrics (capped, aging out), prompt
name and version on spans, what evolution runs and rollbacks record about versions, and an agent driven
through two evolution runs, one that improves it and one that regresses it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import agent_otel
from agent_otel import path, semconv
from agent_otel._engine.policy import OTHER, policy, set_policy
from tests.support.telemetry import assert_instrument, error_count, points
from tests.zerocode.test_patching import Package, config, package  # noqa: F401 (the fixture)

DURATION = semconv.AGENT_DURATION.name
INTRODUCED = semconv.AGENT_VERSION_INTRODUCED.name
VERSION = semconv.GEN_AI_AGENT_VERSION


class Agent:
    """An agent whose version evolution runs change; ``quality`` is its chance of success."""

    def __init__(self, version: str, quality: int) -> None:
        self.version = version
        self.quality = quality  # successes out of every 10 calls
        self.calls = 0

    @agent_otel.agent("coder", version=path("self.version"), prompt_name="fix-bug",
                      prompt_version=path("self.version"))
    def handle(self, issue: str) -> dict[str, Any]:
        self.calls += 1
        return {"success": self.calls % 10 < self.quality}

    @agent_otel.evolution("coder", type="nightly", version_from=path("self.version"),
                          version_to=path("self.version", at="end"), kpi="success_rate")
    def evolve(self, version: str, quality: int) -> dict[str, Any]:
        before = self.quality / 10
        self.version, self.quality = version, quality
        return {"kpis_before": {"success_rate": before}, "kpis_after": {"success_rate": quality / 10}}


def outcomes_by_version(otel: Any) -> dict[tuple[str | None, str], int]:
    return {(p.attributes.get(VERSION), p.attributes[semconv.AGENT_OUTCOME]): p.count
            for p in points(otel, DURATION)}


def introductions(otel: Any) -> dict[tuple[str, str], float]:
    return {(p.attributes[VERSION], p.attributes[semconv.AGENT_VERSION_PREVIOUS]): p.value
            for p in points(otel, INTRODUCED)}


def test_two_evolution_runs_one_improves_one_regresses(otel: Any) -> None:
    coder = Agent("v1", quality=7)
    for _ in range(10):
        coder.handle("bug")
    coder.evolve("v2", 9)  # improves
    for _ in range(10):
        coder.handle("bug")
    coder.evolve("v3", 4)  # regresses
    for _ in range(10):
        coder.handle("bug")

    assert outcomes_by_version(otel) == {("v1", "success"): 7, ("v1", "failure"): 3, ("v2", "success"): 9,
                                         ("v2", "failure"): 1, ("v3", "success"): 4, ("v3", "failure"): 6}
    first, second = sorted(otel.spans("evolve coder"), key=lambda s: s.start_time or 0)
    assert first.attributes[semconv.EVOLUTION_VERSION_FROM] == "v1"
    assert first.attributes[semconv.EVOLUTION_VERSION_TO] == "v2"
    assert first.attributes[semconv.EVOLUTION_KPI_DELTA_PREFIX + "success_rate"] == pytest.approx(0.2)
    assert second.attributes[semconv.EVOLUTION_VERSION_FROM] == "v2"
    assert second.attributes[semconv.EVOLUTION_VERSION_TO] == "v3"
    assert second.attributes[semconv.EVOLUTION_KPI_DELTA_PREFIX + "success_rate"] == pytest.approx(-0.5)
    assert semconv.EVOLUTION_ROLLBACK_VERSION not in second.attributes
    assert_instrument(otel, semconv.AGENT_VERSION_INTRODUCED)
    introduced = introductions(otel)
    assert set(introduced) == {("v2", "v1"), ("v3", "v2")}
    assert introduced[("v3", "v2")] >= introduced[("v2", "v1")] > 1.7e9  # Unix time of the run
    assert all(p.attributes[semconv.GEN_AI_AGENT_NAME] == "coder" for p in points(otel, INTRODUCED))
    span = max(otel.spans("invoke_agent coder"), key=lambda s: s.start_time or 0)
    assert span.attributes[VERSION] == "v3"
    assert span.attributes[semconv.GEN_AI_PROMPT_NAME] == "fix-bug"
    assert span.attributes[semconv.PROMPT_VERSION] == "v3"


def test_prompt_name_and_version_stay_off_the_metrics(otel: Any) -> None:
    Agent("v1", 10).handle("bug")
    [point] = points(otel, DURATION)
    assert semconv.GEN_AI_PROMPT_NAME not in point.attributes
    assert semconv.PROMPT_VERSION not in point.attributes
    assert point.attributes[VERSION] == "v1"


def test_an_agent_without_a_version_has_no_version_label(otel: Any) -> None:
    @agent_otel.agent("plain")
    def run() -> dict[str, Any]:
        return {"success": True}

    run()
    [point] = points(otel, DURATION)
    assert VERSION not in point.attributes
    assert VERSION not in otel.span("invoke_agent plain").attributes


def test_manual_handle_and_integer_versions(otel: Any) -> None:
    with agent_otel.agent_call("planner", version=3, prompt_name="plan", prompt_version=12) as call:
        call.set_outcome(success=True)
    attrs = otel.span("invoke_agent planner").attributes
    assert attrs[VERSION] == "3" and attrs[semconv.PROMPT_VERSION] == "12"
    [point] = points(otel, DURATION)
    assert point.attributes[VERSION] == "3"


def test_a_version_extractor_that_finds_nothing_records_no_version(otel: Any) -> None:
    @agent_otel.agent("reader", version=path("args.meta.version"))
    def run(meta: dict[str, Any]) -> dict[str, Any]:
        return {"success": True}

    assert run({}) == {"success": True}
    [point] = points(otel, DURATION)
    assert VERSION not in point.attributes


def test_rollback_records_the_version_returned_to(otel: Any) -> None:
    @agent_otel.evolution("coder", version_from="v3")
    def rollback_run() -> dict[str, Any]:
        return {"rolled_back": True, "rolled_back_to": "v2"}

    @agent_otel.evolution("coder", version_from="v4", version_to="v5")
    def rolled_back_inside() -> dict[str, Any]:
        return {"rolled_back": True}  # back to where it started: no version change

    @agent_otel.evolution("coder", version_from="v5")
    def failed() -> dict[str, Any]:
        return {"success": False, "version_to": "v6"}

    rollback_run()
    rolled_back_inside()
    failed()
    first, second, third = sorted(otel.spans("evolve coder"), key=lambda s: s.start_time or 0)
    assert first.attributes[semconv.EVOLUTION_STATUS] == "rolled_back"
    assert first.attributes[semconv.EVOLUTION_ROLLBACK_VERSION] == "v2"
    assert second.attributes[semconv.EVOLUTION_ROLLBACK_VERSION] == "v4"
    assert second.attributes[semconv.EVOLUTION_VERSION_TO] == "v5"
    assert third.attributes[semconv.EVOLUTION_VERSION_TO] == "v6"
    assert semconv.EVOLUTION_ROLLBACK_VERSION not in third.attributes
    assert set(introductions(otel)) == {("v2", "v3")}  # the only run that changed the version in place


def test_configured_rollback_target_records_its_version(otel: Any, package: Package) -> None:  # noqa: F811
    mod = package.write("engine", """
        class Engine:
            def __init__(self):
                self.version = "v1"

            def evolve(self, version):
                old = self.version
                self.version = version
                self.restore(old)
                return {}

            def restore(self, version):
                self.version = version

            def serve(self):
                return {"success": True}
        """)
    agent_otel.instrument(config(f"""
        [[agent]]
        target = "{mod}:Engine.serve"
        name = "engine"
        version = {{ path = "self.version" }}
        prompt_name = "serve"

        [[evolution]]
        target = "{mod}:Engine.evolve"
        agent = "engine"
        version_from = {{ path = "self.version" }}
        version_to = {{ path = "args.version" }}

        [[rollback]]
        target = "{mod}:Engine.restore"
        version = {{ path = "args.version" }}
        """))
    engine = package.load("engine").Engine()
    engine.serve()
    engine.evolve("v2")
    engine.serve()
    span = otel.span("evolve engine")
    assert span.attributes[semconv.EVOLUTION_STATUS] == "rolled_back"
    assert span.attributes[semconv.EVOLUTION_VERSION_FROM] == "v1"
    assert span.attributes[semconv.EVOLUTION_VERSION_TO] == "v2"
    assert span.attributes[semconv.EVOLUTION_ROLLBACK_VERSION] == "v1"
    assert {p.attributes[VERSION] for p in points(otel, DURATION)} == {"v1"}
    assert introductions(otel) == {}


def test_a_rollback_after_its_run_ended_is_counted_as_outside_a_run(otel: Any, package: Package) -> None:  # noqa: F811
    """A guard task the run started, rolling back once the run had returned: the run was recorded already, so the
    rollback was set on it and lost, neither on the run nor counted."""
    mod = package.write("guarded", """
        import asyncio

        class Engine:
            def restore(self, version):
                return version

            async def evolve(self):
                async def guard():
                    await asyncio.sleep(0)
                    await asyncio.sleep(0)
                    self.restore("v1")
                self.guard = asyncio.get_running_loop().create_task(guard())
                return {"kpis_before": {"acc": 0.5}, "kpis_after": {"acc": 0.6}}
        """)
    agent_otel.instrument(config(f"""
        [[evolution]]
        target = "{mod}:Engine.evolve"
        agent = "engine"
        sample_resources = false

        [[rollback]]
        target = "{mod}:Engine.restore"
        version = {{ path = "args.version" }}
        """))
    engine = package.load("guarded").Engine()

    async def main() -> None:
        await engine.evolve()
        await engine.guard

    asyncio.run(main())
    assert otel.span("evolve engine").attributes[semconv.EVOLUTION_STATUS] == "succeeded"
    assert error_count(otel, "rollback.outside_run") == 1


def test_config_rejects_a_version_read_off_the_result() -> None:
    with pytest.raises(agent_otel.ConfigurationError, match=r"agent\[0\]\.version"):
        config('[[agent]]\ntarget = "m:f"\nversion = { path = "result.version" }\n')


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_versions_age_out_of_the_cap(otel: Any) -> None:
    clock = Clock()
    guard = set_policy(cardinality_limit=2)
    guard.clock, guard.aging_idle_seconds = clock, 3600.0
    assert [guard.bounded_recent(VERSION, v) for v in ("v1", "v2")] == ["v1", "v2"]
    clock.now = 10.0
    assert guard.bounded_recent(VERSION, "v3") == OTHER  # nobody idle long enough: a bug would stop here
    assert error_count(otel, "cardinality." + VERSION) == 1
    clock.now = 3000.0
    assert guard.bounded_recent(VERSION, "v2") == "v2"  # still in use
    clock.now = 3700.0
    assert guard.bounded_recent(VERSION, "v3") == "v3"  # v1 idle for over an hour: it ages out
    assert guard.bounded_recent(VERSION, "v1") == OTHER  # v2 was used 700 s ago, v3 just now
    assert policy() is guard


def test_agent_metrics_follow_the_cap(otel: Any) -> None:
    set_policy(cardinality_limit=1)
    for version in ("v1", "v2"):
        Agent(version, 10).handle("bug")
    assert {p.attributes[VERSION] for p in points(otel, DURATION)} == {"v1", OTHER}
    assert {s.attributes[VERSION] for s in otel.spans("invoke_agent coder")} == {"v1", "v2"}  # spans keep it


def test_model_calls_cost_by_the_version_of_their_agent(otel: Any) -> None:
    @agent_otel.provider("openai", model="gpt-4o", cost=0.5)
    def complete() -> dict[str, Any]:
        return {"usage": {"prompt_tokens": 10, "completion_tokens": 5}}

    @agent_otel.agent("helper")  # no version: not its caller's
    def helper() -> dict[str, Any]:
        complete()
        return {"success": True}

    @agent_otel.agent("coder", version=path("args.version"))
    def code(version: str) -> dict[str, Any]:
        complete()
        helper()
        return {"success": True}

    code("v1")
    code("v2")
    complete()  # under no agent
    costs = {(p.attributes.get(semconv.GEN_AI_AGENT_NAME), p.attributes.get(VERSION)): p.value
             for p in points(otel, semconv.CLIENT_COST.name)}
    assert costs == {("coder", "v1"): 0.5, ("coder", "v2"): 0.5, ("helper", None): 1.0, (None, None): 0.5}


def test_manual_evolution_run_records_its_lineage(otel: Any) -> None:
    with agent_otel.evolution_run("planner", version_from="2025-05-01") as run:
        run.set_outcome(version_to="2025-06-01", kpis_before={"accuracy": 0.7}, kpis_after={"accuracy": 0.75})
    attrs = otel.span("evolve planner").attributes
    assert (attrs[semconv.EVOLUTION_VERSION_FROM], attrs[semconv.EVOLUTION_VERSION_TO]) == ("2025-05-01", "2025-06-01")
    assert set(introductions(otel)) == {("2025-06-01", "2025-05-01")}


def test_another_instrumentations_agent_span_counts_under_its_version(otel: Any) -> None:
    tracer = otel.tracer_provider.get_tracer("opentelemetry.instrumentation.somelib")
    with tracer.start_as_current_span("invoke_agent researcher", attributes={
            semconv.GEN_AI_OPERATION_NAME: "invoke_agent", semconv.GEN_AI_AGENT_NAME: "researcher", VERSION: "1.2"}):
        pass
    [point] = points(otel, DURATION)
    assert point.attributes[semconv.GEN_AI_AGENT_NAME] == "researcher" and point.attributes[VERSION] == "1.2"


def test_a_rollback_then_a_raise_still_records_the_version_returned_to(otel: Any, package: Package) -> None:  # noqa: F811
    """The engine calls its ``[[rollback]]`` target, then raises: the run failed (a raise is a failure), and the
    agent runs the version the rollback returned to. Before, the failure dropped the rollback's version and the
    lineage point, though ``evolution.version.to`` said where the engine had gone."""
    mod = package.write("raising_engine", """
        class Engine:
            def __init__(self):
                self.version = "v3"

            def evolve(self):
                self.restore("v2")
                raise RuntimeError("candidate worse; rolled back")

            def restore(self, version):
                self.version = version
        """)
    agent_otel.instrument(config(f"""
        [[evolution]]
        target = "{mod}:Engine.evolve"
        agent = "engine"
        version_from = {{ path = "self.version" }}

        [[rollback]]
        target = "{mod}:Engine.restore"
        version = {{ path = "args.version" }}
        """))
    engine = package.load("raising_engine").Engine()
    with pytest.raises(RuntimeError, match="rolled back"):
        engine.evolve()
    span = otel.span("evolve engine")
    assert span.attributes[semconv.EVOLUTION_STATUS] == "failed"
    assert span.attributes[semconv.EVOLUTION_ROLLBACK_VERSION] == "v2"
    assert set(introductions(otel)) == {("v2", "v3")}


def test_a_version_object_bumped_in_place_is_read_as_it_was_when_the_run_started(otel: Any) -> None:
    """``version_from`` read at the start off an object the engine then changes in place: before, the read kept the
    object, so the run went from 1.5 to 1.5 and no lineage point was recorded."""
    from dataclasses import dataclass

    @dataclass
    class Version:
        major: int
        minor: int

        def __str__(self) -> str:
            return f"{self.major}.{self.minor}"

    class Engine:
        def __init__(self) -> None:
            self.version = Version(1, 4)

        @agent_otel.evolution("bumped", version_from=path("self.version"),
                              version_to=path("self.version", at="end"))
        def evolve(self) -> dict[str, Any]:
            self.version.minor += 1
            return {"success": True}

    Engine().evolve()
    span = otel.span("evolve bumped")
    assert (span.attributes[semconv.EVOLUTION_VERSION_FROM], span.attributes[semconv.EVOLUTION_VERSION_TO]) == (
        "1.4", "1.5")
    assert set(introductions(otel)) == {("1.5", "1.4")}


def test_a_run_record_or_a_dump_is_no_version(otel: Any) -> None:
    """``version_to = { path = "result" }`` on openevolve put the run's whole record (prompt, answer, program) in
    the version labels, 5,056 characters: a collection is refused as for an agent's version, and a label longer than
    the limit is ``_OTHER``, its length counted, never its text."""
    class Record:
        def __str__(self) -> str:
            return "prompt: " + "x" * 600

    @agent_otel.evolution("coder", version_from=path("args.before"), version_to=path("result"))
    def evolve(before: Any, after: Any) -> Any:
        return after

    evolve("v1", {"prompt": "secret", "program": "code"})
    evolve(Record(), "v2")
    for span in otel.spans():
        assert "secret" not in repr(dict(span.attributes))
    labels = {(p.attributes[VERSION], p.attributes[semconv.AGENT_VERSION_PREVIOUS]) for p in points(otel, INTRODUCED)}
    assert labels == {("v2", OTHER)}
    assert error_count(otel, "text." + VERSION) == 1
    assert error_count(otel, "cardinality." + semconv.AGENT_VERSION_PREVIOUS) == 1
    assert all("xxx" not in str(p.attributes) for p in otel.points(semconv.INSTRUMENTATION_ERRORS.name))


def test_a_name_longer_than_the_label_limit_is_other(otel: Any) -> None:
    assert policy().bounded(semconv.GEN_AI_TOOL_NAME, "t" * 257) == OTHER
    assert policy().bounded(semconv.GEN_AI_TOOL_NAME, "t" * 256) == "t" * 256
    assert policy().bounded_recent(VERSION, "v" * 257) == OTHER
