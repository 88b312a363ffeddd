"""Issue 19 end to end: the demo's meta-orchestrator (src/agent_otel/_ops/demo/workflow.py, instrumented by its
config) fills every workflow rule and every panel of the Workflows dashboard in a real Prometheus, puts step
numbers on spans only, and rolls its plugins, phases and files up on the job span."""

from __future__ import annotations

from typing import Any

import pytest

from agent_otel import semconv
from agent_otel._ops.demo import workflow
from tests.support.dashboards import queries_without_data
from tests.support.e2e import E2E, recording_rules, wait_for_series
from tests.support.otlp_receiver import attributes_of
from tests.support.polling import wait_until

pytestmark = pytest.mark.e2e

#: The recording rules of mixin/rules/workflows.py: plugins by phase, and patterns.
WORKFLOW_RULES = [name for name in recording_rules() if name.startswith(("tool_phase:", "pattern:"))]


def test_every_workflow_rule_returns_data(e2e: E2E) -> None:
    assert len(WORKFLOW_RULES) == 3 * 3 + 5 * 3  # 3 rules over 5m/1h/1d, 5 over 1h/1d/7d
    missing: list[str] = []

    def all_have_data() -> bool:
        missing[:] = [name for name in WORKFLOW_RULES if not e2e.query(name)]
        return not missing

    wait_until(all_have_data, f"data from every workflow rule (missing: {missing})", timeout_s=90)


@pytest.mark.parametrize("selection", ["all", "first"])
def test_every_workflows_panel_returns_data(e2e: E2E, selection: str) -> None:
    failures: list[str] = []

    def all_return_data() -> bool:
        e2e.demo_alive()
        failures[:] = [line for line in queries_without_data(e2e.api, e2e.query, selection)
                       if line.startswith("workflows")]
        return not failures

    wait_until(all_return_data, f"data for every Workflows panel (without: {failures})", timeout_s=90)


def test_plugins_carry_their_phase_and_no_series_carries_a_step(e2e: E2E) -> None:
    series = wait_for_series(e2e.api, f'{semconv.TOOL_DURATION.prometheus}_count{{gen_ai_tool_name="run_pytest"}}')
    assert {s[semconv.prometheus_label(semconv.WORKFLOW_PHASE)] for s in series} == {"test"}
    step = semconv.prometheus_label(semconv.WORKFLOW_STEP)
    assert not e2e.api("/api/v1/series", **{"match[]": f'{{{step}!=""}}'})


def _value(attribute: Any) -> Any:
    kind = attribute.value.WhichOneof("value")
    if kind == "array_value":
        return [getattr(v, v.WhichOneof("value")) for v in attribute.value.array_value.values]
    return getattr(attribute.value, kind) if kind else None


def test_workflow_spans_number_their_steps_and_roll_up_on_the_job(e2e: E2E) -> None:
    def successful_workflow() -> dict[str, Any] | None:
        for span in e2e.spans.spans():
            if span.name == semconv.job_span_name("workflow"):
                found = {a.key: _value(a) for a in span.attributes}
                if found.get(semconv.JOB_OUTCOME) == "success":
                    return found
        return None

    wait_until(lambda: successful_workflow() is not None, "a workflow that succeeded", timeout_s=60)
    job = successful_workflow()
    assert job is not None
    pattern = job[semconv.WORKFLOW_PATTERN]
    phases = workflow.PATTERNS[pattern]
    assert job[semconv.JOB_ROLLUP_PHASES] == list(dict.fromkeys(phase for phase, _ in phases))
    plugins = {plugin for _, names in phases for plugin in names}
    assert plugins <= set(job[semconv.JOB_ROLLUP_PLUGINS_USED])  # and the planner's tool in the design phase
    assert job[semconv.JOB_ROLLUP_FILES_CREATED] == sum(workflow.PLUGIN_FILES.get(p, 0)
                                                        for _, names in phases for p in names)
    steps = {(attributes_of(span).get(semconv.WORKFLOW_PHASE), attributes_of(span).get(semconv.WORKFLOW_STEP))
             for span in e2e.spans.spans() if span.name == semconv.tool_span_name("format_code")}
    assert steps == {("implement", 2)}
    assert any(span.name == semconv.phase_span_name("research") for span in e2e.spans.spans())
