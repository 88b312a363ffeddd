"""Issue 19: a meta-orchestrator's phases, steps, plugins and patterns, instrumented by decorators and by
config (``orchestrator.toml``): the same spans, metrics and roll-ups either way."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from agent_otel import semconv
from agent_otel._zerocode.config import load_file
from agent_otel._zerocode.patching import instrument, uninstrument
from tests.support.paths import ROOT
from tests.support.telemetry import assert_instrument, point, points
from tests.workflows.orchestrator import Workflow

CONFIG = ROOT / "tests" / "workflows" / "orchestrator.toml"
PLUGINS: dict[str, dict[str, object]] = {"search": {}, "writer": {"files": 2}, "pytest": {}, "flaky": {"failing": True}}
#: Passes every phase.
GOOD = Workflow("wf-1", "feature", "research-first",
                (("research", ("search",)), ("design", ("writer",)), ("implement", ("writer", "writer")),
                 ("test", ("pytest",))))
#: Fails in its test phase, at its second step.
BAD = Workflow("wf-2", "feature", "tdd", (("implement", ("writer",)), ("test", ("pytest", "flaky", "pytest"))))


@pytest.fixture(params=["decorator", "config"])
def orchestrator(request: Any, otel: Any) -> Iterator[Any]:
    if request.param == "decorator":
        from tests.workflows.decorated import Orchestrator

        yield Orchestrator(PLUGINS)
        return
    instrument(load_file(CONFIG))
    try:
        from tests.workflows.orchestrator import Orchestrator as Plain

        yield Plain(PLUGINS)
    finally:
        uninstrument()


def attrs(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})


def test_phases_are_spans_under_their_job_with_duration_by_job_type_phase_and_outcome(orchestrator: Any,
                                                                                       otel: Any) -> None:
    assert orchestrator.run(GOOD).success
    assert not orchestrator.run(BAD).success
    jobs = {attrs(span)[semconv.JOB_ID]: span for span in otel.spans("invoke_workflow feature")}
    phases = [span for span in otel.spans() if span.name.startswith("run_phase ")]
    assert [span.name for span in phases] == ["run_phase research", "run_phase design", "run_phase implement",
                                              "run_phase test", "run_phase implement", "run_phase test"]
    for span in phases:
        job = jobs["wf-1"] if span.context.trace_id == jobs["wf-1"].context.trace_id else jobs["wf-2"]
        assert span.parent is not None and span.parent.span_id == job.context.span_id
        assert attrs(span)[semconv.WORKFLOW_PHASE] == span.name.removeprefix("run_phase ")
    failed = [span for span in phases if attrs(span)[semconv.WORKFLOW_PHASE_OUTCOME] == "failure"]
    assert [span.context.trace_id for span in failed] == [jobs["wf-2"].context.trace_id]
    assert failed[0].name == "run_phase test"

    assert_instrument(otel, semconv.PHASE_DURATION)
    name = semconv.PHASE_DURATION.name
    assert point(otel, name, {semconv.WORKFLOW_PHASE: "implement"}).count == 2
    assert point(otel, name, {semconv.WORKFLOW_PHASE: "test", semconv.WORKFLOW_PHASE_OUTCOME: "success"}).count == 1
    assert point(otel, name, {semconv.WORKFLOW_PHASE: "test", semconv.WORKFLOW_PHASE_OUTCOME: "failure"}).count == 1
    assert {p.attributes[semconv.JOB_TYPE] for p in points(otel, name)} == {"feature"}


def test_plugin_and_agent_calls_carry_their_phase_and_steps_are_numbered_on_spans_only(orchestrator: Any,
                                                                                        otel: Any) -> None:
    orchestrator.run(GOOD)
    orchestrator.run(BAD)
    tool = semconv.TOOL_DURATION.name
    assert_instrument(otel, semconv.TOOL_DURATION)
    assert point(otel, tool, {semconv.GEN_AI_TOOL_NAME: "writer", semconv.WORKFLOW_PHASE: "implement"}).count == 3
    flaky = point(otel, tool, {semconv.GEN_AI_TOOL_NAME: "flaky"})
    assert flaky.attributes[semconv.WORKFLOW_PHASE] == "test"
    assert flaky.attributes[semconv.ERROR_TYPE] == "PluginError"
    designer = point(otel, semconv.AGENT_DURATION.name, {semconv.GEN_AI_AGENT_NAME: "designer"})
    assert designer.attributes[semconv.WORKFLOW_PHASE] == "design"
    steps = [(attrs(span)[semconv.WORKFLOW_PHASE], attrs(span)[semconv.WORKFLOW_STEP])
             for span in otel.spans() if span.name.startswith("execute_tool ")]
    assert steps == [("research", 1), ("design", 1), ("implement", 1), ("implement", 2), ("test", 1),
                     ("implement", 1), ("test", 1), ("test", 2)]
    for metric in otel.metrics().values():
        for p in metric.data.data_points:
            assert semconv.WORKFLOW_STEP not in (p.attributes or {}), metric.name


def test_pattern_executions_by_outcome_and_the_job_span_roll_ups(orchestrator: Any, otel: Any) -> None:
    orchestrator.run(GOOD)
    orchestrator.run(BAD)
    assert_instrument(otel, semconv.PATTERN_DURATION)
    name = semconv.PATTERN_DURATION.name
    by_pattern = {(p.attributes[semconv.WORKFLOW_PATTERN], p.attributes[semconv.WORKFLOW_PATTERN_OUTCOME]): p.count
                  for p in points(otel, name)}
    # each job follows its workflow's pattern; the designer agent follows the same one (one more execution)
    assert by_pattern == {("research-first", "success"): 2, ("tdd", "failure"): 1}
    jobs = {attrs(span)[semconv.JOB_ID]: attrs(span) for span in otel.spans("invoke_workflow feature")}
    good, bad = jobs["wf-1"], jobs["wf-2"]
    assert good[semconv.WORKFLOW_PATTERN] == "research-first" and bad[semconv.WORKFLOW_PATTERN] == "tdd"
    assert list(good[semconv.JOB_ROLLUP_PLUGINS_USED]) == ["pytest", "search", "writer"]
    assert list(good[semconv.JOB_ROLLUP_PHASES]) == ["research", "design", "implement", "test"]
    # writer: 3 steps x 2 files; the designer: its DESIGN.md
    assert good[semconv.JOB_ROLLUP_FILES_CREATED] == 7
    assert list(bad[semconv.JOB_ROLLUP_PLUGINS_USED]) == ["flaky", "pytest", "writer"]
    assert bad[semconv.JOB_ROLLUP_FILES_CREATED] == 2
    assert bad[semconv.JOB_OUTCOME] == "failure"
