"""``phase()``: the phase kind as a context manager and a decorator (the orchestrator app in tests/workflows
drives it end to end, by decorator and by config)."""

from __future__ import annotations

import asyncio
import enum
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import agent_otel
from agent_otel import ConfigurationError, path, semconv
from tests.support.telemetry import SHAPES, drive, error_count, point, points, shaped

PHASE = semconv.PHASE_DURATION.name


@agent_otel.tool(path("args.name"))
def plugin(name: str) -> str:
    return name


def test_a_with_block_is_a_phase_of_its_job_and_numbers_its_tool_calls(otel: Any) -> None:
    with agent_otel.job(type="workflow"), agent_otel.phase("research"):
        plugin("search")
        with ThreadPoolExecutor(2) as pool:  # steps in threads of the phase are its steps too
            list(pool.map(plugin, ["fetch", "fetch"]))
    job, phase = otel.span("invoke_workflow workflow"), otel.span("run_phase research")
    assert phase.parent.span_id == job.context.span_id
    assert phase.attributes[semconv.WORKFLOW_PHASE_OUTCOME] == "success"
    steps = sorted(span.attributes[semconv.WORKFLOW_STEP] for span in otel.spans()
                   if span.name.startswith("execute_tool "))
    assert steps == [1, 2, 3]
    duration = point(otel, PHASE, {semconv.WORKFLOW_PHASE: "research"})
    assert dict(duration.attributes) == {semconv.JOB_TYPE: "workflow", semconv.WORKFLOW_PHASE: "research",
                                         semconv.WORKFLOW_PHASE_OUTCOME: "success"}
    assert {p.attributes[semconv.WORKFLOW_PHASE] for p in points(otel, semconv.TOOL_DURATION.name)} == {"research"}


def test_a_phase_outcome_the_program_sets_is_read_as_a_jobs_and_never_raised(otel: Any) -> None:
    """``set_outcome()`` raised ValueError into the block for a value in another case (``"FAILURE"``) or no
    outcome at all, and the phase was then recorded as an error; a job's takes both."""
    with agent_otel.phase("review") as review:
        review.set_outcome("FAILURE")
    with agent_otel.phase("deploy") as deploy:
        deploy.set_outcome("shipped")  # the program's own status: no outcome
    outcomes = {p.attributes[semconv.WORKFLOW_PHASE]: p.attributes[semconv.WORKFLOW_PHASE_OUTCOME]
                for p in points(otel, PHASE)}
    assert outcomes == {"review": "failure", "deploy": "success"}
    assert error_count(otel, "phase.outcome") == 1


def test_outcomes_raised_reported_and_set(otel: Any) -> None:
    with pytest.raises(ValueError), agent_otel.phase("build"):
        raise ValueError("boom")
    with agent_otel.phase("review") as review:
        review.set_outcome("failure")

    @agent_otel.phase("test")
    def run_tests(ok: bool) -> dict[str, Any]:
        return {"success": ok, "error": "2 tests failed"}

    run_tests(True)
    run_tests(False)
    outcomes = {(p.attributes[semconv.WORKFLOW_PHASE], p.attributes[semconv.WORKFLOW_PHASE_OUTCOME]): p.count
                for p in points(otel, PHASE)}
    assert outcomes == {("build", "error"): 1, ("review", "failure"): 1, ("test", "success"): 1,
                        ("test", "failure"): 1}
    failed = [s for s in otel.spans("run_phase test") if s.attributes[semconv.WORKFLOW_PHASE_OUTCOME] == "failure"]
    assert failed[0].attributes[semconv.ERROR_MESSAGE] == "2 tests failed"
    # outside any job: the default job type
    assert {p.attributes[semconv.JOB_TYPE] for p in points(otel, PHASE)} == {"default"}


@pytest.mark.parametrize("shape", SHAPES)
def test_the_decorator_on_every_shape_reads_its_name_per_call(otel: Any, shape: str) -> None:
    func = shaped(shape, agent_otel.phase(path("args.task")), lambda task: plugin("lint"))
    drive(shape, func, "implement")
    assert otel.span("run_phase implement").attributes[semconv.WORKFLOW_PHASE] == "implement"
    assert point(otel, semconv.TOOL_DURATION.name).attributes[semconv.WORKFLOW_PHASE] == "implement"


def test_nested_phases_the_inner_one_wins_and_the_outer_returns(otel: Any) -> None:
    async def main() -> None:
        async with agent_otel.phase("outer"):
            plugin("a")
            async with agent_otel.phase("inner"):
                plugin("b")
            plugin("c")

    asyncio.run(main())
    by_tool = {p.attributes[semconv.GEN_AI_TOOL_NAME]: p.attributes[semconv.WORKFLOW_PHASE]
               for p in points(otel, semconv.TOOL_DURATION.name)}
    assert by_tool == {"a": "outer", "b": "inner", "c": "outer"}
    steps = {span.name: span.attributes[semconv.WORKFLOW_STEP] for span in otel.spans()
             if span.name.startswith("execute_tool ")}
    assert steps == {"execute_tool a": 1, "execute_tool b": 1, "execute_tool c": 2}


def test_a_call_outside_any_phase_has_no_phase_label_and_no_step(otel: Any) -> None:
    plugin("alone")
    assert semconv.WORKFLOW_PHASE not in point(otel, semconv.TOOL_DURATION.name).attributes
    assert semconv.WORKFLOW_STEP not in otel.span("execute_tool alone").attributes


def test_an_agent_pattern_counts_its_executions_by_the_agent_outcome(otel: Any) -> None:
    @agent_otel.agent("planner", pattern=path("result.pattern"))
    def plan(ok: bool) -> dict[str, Any]:
        return {"success": ok, "pattern": "plan-and-execute", "patterns_used": ["decompose"]}

    plan(True)
    plan(False)
    found = {p.attributes[semconv.WORKFLOW_PATTERN_OUTCOME]: p.count
             for p in points(otel, semconv.PATTERN_DURATION.name, {semconv.WORKFLOW_PATTERN: "plan-and-execute"})}
    assert found == {"success": 1, "failure": 1}
    # the patterns the result says it applied stay on their own counter
    assert point(otel, semconv.AGENT_PATTERNS_USED.name).attributes[semconv.AGENT_PATTERN] == "decompose"


def test_a_job_pattern_read_when_the_job_ends_and_a_failing_one_is_counted(otel: Any) -> None:
    @agent_otel.job(type="workflow", pattern=path("result.pattern"))
    def run(pattern: object) -> dict[str, Any]:
        return {"pattern": pattern}

    run("tdd")
    run(None)  # names none: no execution
    [p] = points(otel, semconv.PATTERN_DURATION.name)
    assert dict(p.attributes) == {semconv.WORKFLOW_PATTERN: "tdd", semconv.WORKFLOW_PATTERN_OUTCOME: "success"}

    class Spec:
        @property
        def pattern(self) -> str:
            raise RuntimeError("not loaded")

    @agent_otel.job(pattern=path("args.spec.pattern"))
    def broken(spec: object) -> None: ...

    broken(Spec())  # the path fails: counted, the job runs
    assert error_count(otel, "job.extract.pattern") == 1


def test_extractors_need_a_decorated_function_and_a_name_is_required() -> None:
    with pytest.raises(ConfigurationError, match="only meaningful when phase\\(\\) decorates"), \
            agent_otel.phase(path("args.name")):
        pass
    for nothing in ("", None):  # a decorator's name is code
        with pytest.raises(ConfigurationError, match="phase\\(\\): name is required"):
            agent_otel.phase(nothing)(lambda: None)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="reads the result but this key is read when the call starts"):
        agent_otel.phase(path("result.name"))


def test_a_block_whose_name_is_the_programs_value_and_names_nothing_runs_as_a_phase_named_phase(otel: Any) -> None:
    """The name of a ``with`` block is often run-time data (a workflow step's phase): None or empty raised
    ConfigurationError into the program, where a job's type or an agent_call()'s name falls back, counted."""
    class Step(enum.Enum):
        PLAN = "plan"

    ran = []
    names: list[Any] = ["research", None, "", ["x"], Step.PLAN, 5.5]
    for name in names:
        with agent_otel.job(type="flow"), agent_otel.phase(name):
            ran.append(name)
    assert ran == names
    assert [span.name for span in otel.spans() if span.name.startswith("run_phase ")] == [
        "run_phase research", "run_phase phase", "run_phase phase", "run_phase phase", "run_phase Step.PLAN",
        "run_phase 5.5"]  # (an Enum member or a number is its text, as a decorator's literal is)
    assert error_count(otel, "phase.name") == 3


def test_phase_names_are_capped(otel: Any) -> None:
    agent_otel.set_policy(cardinality_limit=2)
    for name in ("a", "b", "c"):
        with agent_otel.phase(name):
            plugin("p")
    assert {p.attributes[semconv.WORKFLOW_PHASE] for p in points(otel, PHASE)} == {"a", "b", "_OTHER"}
