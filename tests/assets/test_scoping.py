"""Scoping, as the monitoring mixins do it: one selector and one list of scope labels in thresholds.yaml,
kept by every recording rule, alert and panel; the service and environment labels exist on both paths.

The behaviour (two services and two environments in one Prometheus, on both paths) is
tests/e2e/test_scoping_e2e.py; the per-service absence alert is tests/alerts-scope.test.yaml (promtool).
"""

from __future__ import annotations

import json
import re

import pytest
from mixin.scope import OURS, Scope, load_scope

from agent_otel import semconv as sc
from tests.support.ops import (
    ALERTS_FILE,
    COLLECTOR,
    DASHBOARDS,
    RULES_FILE,
    WORST_DEPLOYMENT_MATRIX,
    all_rules,
    load_yaml,
    metric_names,
    selectors,
)
from tests.support.paths import ASSETS

THRESHOLDS = load_yaml(ASSETS / "thresholds.yaml")
SCOPE = load_scope(THRESHOLDS)
PROMOTED = [sc.prometheus_label(key) for key in sc.SCOPING_RESOURCE_ATTRIBUTES]
#: Alerts on `up`, which has neither a service nor an environment label on either path.
TARGET_ALERTS = {"AgentOtelTargetDown", "AgentOtelTelemetryAbsent"}
#: Series of other instrumentations or of Prometheus: matched without agent-otel's scope.
NOT_OURS = {sc.PROCESS_MEMORY_USAGE_PROMETHEUS, sc.PROCESS_CPU_TIME_PROMETHEUS, sc.PROCESS_THREAD_COUNT_PROMETHEUS,
            sc.PROCESS_CPU_UTILIZATION_PROMETHEUS, sc.PROCESS_MEMORY_VIRTUAL_PROMETHEUS, "up", "ALERTS"}
CONTRACT_SERIES = {series for instrument in sc.INSTRUMENTS for series in instrument.prometheus_series}


def test_the_shipped_scope_keeps_job_service_and_environment() -> None:
    assert Scope("", ("job", *PROMOTED)) == SCOPE
    assert PROMOTED == ["service_name", "deployment_environment_name"]


@pytest.mark.parametrize(("key", "value", "message"), [
    ("selector", '{job="x"}', "selector: expected label matchers without braces"),
    ("selector", 3, "selector: expected label matchers without braces"),
    ("scope_labels", "job", "scope_labels: expected a list of label names"),
    ("scope_labels", ["job", "service_name", "deployment_environment_name", "instance"],
     "scope_labels: ['instance'] are not on every series"),
    ("scope_labels", ["job", "service_name"], "scope_labels: must keep service_name, deployment_environment_name"),
])
def test_a_bad_scope_is_a_clear_error_naming_the_file_and_key(key: str, value: object, message: str) -> None:
    with pytest.raises(SystemExit) as raised:
        load_scope({**THRESHOLDS, key: value})
    assert str(raised.value).startswith(f"thresholds.yaml: {message}"), raised.value


def test_a_selector_is_applied_to_every_raw_series() -> None:
    scope = Scope('deployment_environment_name="prod"', ("job",))
    assert scope.series("m", 'le="1"') == f'm{{{OURS},deployment_environment_name="prod",le="1"}}'
    assert scope.series("process_threads", ours=False) == 'process_threads{deployment_environment_name="prod"}'


def _rule_exprs() -> list[tuple[str, str]]:
    return ([(f"rule {r['record']}", r["expr"]) for r in all_rules(RULES_FILE)]
            + [(f"alert {r['alert']}", r["expr"]) for r in all_rules(ALERTS_FILE) if r["alert"] not in TARGET_ALERTS])


@pytest.mark.parametrize(("where", "expr"), _rule_exprs(), ids=[w for w, _ in _rule_exprs()])
def test_every_aggregation_keeps_the_scope_labels(where: str, expr: str) -> None:
    for keyword, labels in re.findall(r"\b(by|on)\s*\(([^()]*)\)", expr):
        kept = [label.strip() for label in labels.split(",")]
        assert kept[: len(SCOPE.labels)] == list(SCOPE.labels), f"{where}: {keyword} ({labels}) drops the scope"
    assert not re.search(r"\b(sum|max|min|avg|count|group)\s*\(", expr), f"{where}: aggregates everything into one"


@pytest.mark.parametrize(("where", "expr"), _rule_exprs(), ids=[w for w, _ in _rule_exprs()])
def test_every_raw_series_is_agent_otels_own(where: str, expr: str) -> None:
    for metric, labels in selectors(expr):
        if metric in CONTRACT_SERIES or metric is None:
            assert "otel_scope_name" in labels, f"{where}: {metric} is read without agent-otel's scope"
    for metric in metric_names(expr) & CONTRACT_SERIES:
        assert re.search(rf"\b{metric}\{{{re.escape(OURS)}", expr), f"{where}: {metric} without {OURS}"


def _dashboard(path: object) -> dict:
    return json.loads(path.read_text())  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_dashboard_has_service_and_environment_variables_applied_in_every_query(path: object) -> None:
    dashboard = _dashboard(path)
    variables = [v["name"] for v in dashboard["templating"]["list"]]
    assert variables[:3] == ["datasource", "service", "environment"], variables
    for variable in dashboard["templating"]["list"][1:3]:
        assert variable["includeAll"] and variable["multi"] and variable["allValue"] == ".*"
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    queries += [v["definition"] for v in dashboard["templating"]["list"][3:] if v.get("definition")]
    assert queries
    for expr in queries:
        if re.fullmatch(r"sum\(up\{[^}]*\}\)", expr):
            continue  # `up` has no service or environment label (the System dashboard's "Targets up")
        assert '$service"' in expr and '$environment"' in expr, f"{path}: {expr}"  # type: ignore[attr-defined]
        for metric in metric_names(expr.replace("$", "var_")) & CONTRACT_SERIES:
            assert re.search(rf"\b{metric}\{{{re.escape(OURS)}", expr), f"{metric} without {OURS} in {expr}"


#: Panels that take the worst over deployments on purpose: red when any selected service is (per process: the
#: System dashboard's memory and threads, by job and instance).
WORST_OF_DEPLOYMENTS = {WORST_DEPLOYMENT_MATRIX, "Process memory", "Threads"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_no_panel_hides_one_deployment_behind_another(path: object) -> None:
    """A max (or min) over the ratios and gauges the rules keep per deployment keeps the scope labels: with the
    service variable at All, a failing deployment's agent showed the figures of a healthy one of the same name."""
    for panel in _dashboard(path)["panels"]:
        for target in panel.get("targets", []):
            for labels in re.findall(r"\b(?:max|min)\s+by\s*\(([^()]*)\)", target["expr"]):
                kept = [label.strip() for label in labels.split(",")]
                if panel["title"] in WORST_OF_DEPLOYMENTS:
                    continue
                assert kept[: len(SCOPE.labels)] == list(SCOPE.labels), f"{panel['title']}: by ({labels})"


def test_the_plugin_matrix_shows_the_worst_deployment_in_each_cell() -> None:
    """A matrix cell shows one value: the generator kept the scope labels in the panel's ``max by`` as in every other
    aggregation, so a cell had a row per deployment and Grafana showed the last one's, not the worst (a plugin down
    in one service read as its healthy neighbour's 90 %)."""
    [panel] = [panel for path in DASHBOARDS for panel in _dashboard(path)["panels"]
               if panel["title"] == WORST_DEPLOYMENT_MATRIX]
    [target] = panel["targets"]
    [labels] = re.findall(r"\bmax\s+by\s*\(([^()]*)\)", target["expr"])
    assert not set(SCOPE.labels) & {label.strip() for label in labels.split(",")}, labels


def test_the_spend_stat_is_per_deployment_as_the_budget_alert() -> None:
    """Red at the budget, as AgentOtelTokenSpendOverBudget, which compares each deployment with it: the stat summed
    every selected service, and turned red with none of them over budget."""
    [panel] = [panel for path in DASHBOARDS for panel in _dashboard(path)["panels"]
               if panel["title"] == "Spend in the last hour"]
    [target] = panel["targets"]
    assert target["expr"].startswith(f"sum by ({SCOPE.by()}) ("), target["expr"]
    red = [step["value"] for step in panel["fieldConfig"]["defaults"]["thresholds"]["steps"] if step["color"] == "red"]
    assert red == [THRESHOLDS["spend_budget_usd_per_hour"]]


@pytest.mark.parametrize("name", ["otelcol.yaml", "gateway.yaml"])
def test_collector_configs_put_service_and_environment_on_every_series(name: str) -> None:
    config = load_yaml(COLLECTOR / name)
    processors = config["service"]["pipelines"]["metrics"]["processors"]
    assert "transform/scope_labels" in processors
    [block] = config["processors"]["transform/scope_labels"]["metric_statements"]
    assert block["context"] == "datapoint"
    assert block["statements"] == [
        f'set(attributes["{key}"], resource.attributes["{key}"]) where resource.attributes["{key}"] != nil'
        for key in sc.SCOPING_RESOURCE_ATTRIBUTES]
