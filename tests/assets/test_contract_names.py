"""Every metric and label that a rule, an alert or a dashboard uses is produced by the telemetry contract.

A renamed instrument in agent_otel.semconv must break this test, not leave a panel silently empty.
"""

from __future__ import annotations

import json
import re

import pytest
from mixin.rules.layout import MARKER as LAYOUT_MARKER

from agent_otel import semconv as sc
from tests.support.ops import (
    ALERTS_FILE,
    DASHBOARDS,
    RULES_FILE,
    all_rules,
    created_labels,
    function_string_labels,
    grouping_labels,
    metric_names,
    selectors,
    substitute_grafana,
)

#: Labels every scraped series may carry: the scrape target's, the OTel exporters' scope labels, and the
#: service and environment of its resource (our /metrics and the Collector configs put them on every series).
SCRAPE_LABELS = {"job", "instance", "otel_scope_name", "otel_scope_version",
                 *(sc.prometheus_label(a) for a in sc.SCOPING_RESOURCE_ATTRIBUTES)}

#: metric name -> label names it can carry.
CONTRACT: dict[str, set[str]] = {}
for instrument in sc.INSTRUMENTS:
    labels = {sc.prometheus_label(a) for a in instrument.attributes} | SCRAPE_LABELS
    assert not labels & {sc.prometheus_label(a) for a in sc.ID_ATTRIBUTES}, f"{instrument.name} has an id label"
    for series in instrument.prometheus_series:
        CONTRACT[series] = labels | ({"le"} if series.endswith("_bucket") else set())
# The previous layout, read by the agent-otel-previous-layout group only (mixin/rules/layout.py), and the label
# that group puts on its copies under the current names.
for instrument in sc.PREVIOUS_LAYOUT:
    for series in instrument.prometheus_series:
        CONTRACT[series] = ({sc.prometheus_label(a) for a in instrument.attributes} | SCRAPE_LABELS
                            | ({"le"} if series.endswith("_bucket") else set()))
for series in {series for instrument in sc.INSTRUMENTS for series in instrument.prometheus_series}:
    CONTRACT[series] |= {LAYOUT_MARKER}
# Process metrics of opentelemetry-instrumentation-system-metrics, as configure() enables them.
CONTRACT[sc.PROCESS_CPU_TIME_PROMETHEUS] = SCRAPE_LABELS | {"type"}
for name in (sc.PROCESS_CPU_UTILIZATION_PROMETHEUS, sc.PROCESS_MEMORY_USAGE_PROMETHEUS,
             sc.PROCESS_MEMORY_VIRTUAL_PROMETHEUS, sc.PROCESS_THREAD_COUNT_PROMETHEUS):
    CONTRACT[name] = set(SCRAPE_LABELS)
# Series Prometheus itself or the OTel exporters add.
CONTRACT["up"] = {"job", "instance"}
CONTRACT["target_info"] = {"job", "instance", "service_name", "service_namespace", "service_version",
                           "service_instance_id", "telemetry_sdk_name", "telemetry_sdk_language",
                           "telemetry_sdk_version", "deployment_environment",
                           "deployment_environment_name"}
CONTRACT["ALERTS"] = {"alertname", "alertstate", "severity"} | set().union(*CONTRACT.values())

RECORDING_RULES = all_rules(RULES_FILE)
RECORDED = {rule["record"] for rule in RECORDING_RULES}
#: Labels recording rules add themselves (quantile, confidence_band).
RULE_LABELS = {key for rule in RECORDING_RULES for key in rule.get("labels", {})}
ALL_LABELS = set().union(*CONTRACT.values()) | RULE_LABELS | {"le"}


def dashboard_queries() -> list[tuple[str, str]]:
    out = []
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        panels = list(dashboard.get("panels", []))
        while panels:
            panel = panels.pop()
            panels.extend(panel.get("panels", []))
            for target in panel.get("targets", []):
                if target.get("expr"):
                    out.append((f"{path.name}:{panel.get('title')}", target["expr"]))
        for variable in dashboard.get("templating", {}).get("list", []):
            query = variable.get("query")
            query = query.get("query") if isinstance(query, dict) else query
            m = re.fullmatch(r"label_values\((.*),\s*([a-zA-Z_]\w*)\)", query or "")
            if variable.get("type") == "query" and m:
                selector = m.group(1)
                out.append((f"{path.name}:${variable['name']}", f"group by ({m.group(2)}) ({selector})"))
    return out


QUERIES = (
    [(f"rule {rule['record']}", rule["expr"]) for rule in RECORDING_RULES]
    + [(f"alert {rule['alert']}", rule["expr"]) for rule in all_rules(ALERTS_FILE)]
    + dashboard_queries()
)


@pytest.mark.parametrize(("where", "expr"), QUERIES, ids=[q[0] for q in QUERIES])
def test_metrics_and_labels_exist(where, expr):
    expr = substitute_grafana(expr)
    names = metric_names(expr)
    # A selector without a metric name may only select agent-otel's own series, by instrumentation scope.
    unnamed = [labels for metric, labels in selectors(expr) if metric is None and "otel_scope_name" in labels]
    assert names or unnamed, f"{where}: no metric found in {expr!r}"
    for name in names:
        assert name in CONTRACT or name in RECORDED, f"{where}: {name} is neither in the contract nor recorded"
    for metric, labels in selectors(expr):
        allowed = CONTRACT.get(metric, ALL_LABELS) if metric else ALL_LABELS
        unknown = set(labels) - allowed - {"__name__"}
        assert not unknown, f"{where}: {metric} has no label(s) {unknown}"
    unknown = (grouping_labels(expr) | function_string_labels(expr)) - ALL_LABELS - created_labels(expr)
    assert not unknown, f"{where}: unknown label(s) {unknown}"


def test_the_extractor_sees_what_it_must():
    """Guard the guard: the regex extractor finds names and labels in the shapes our queries use."""
    expr = ('histogram_quantile(0.95, sum by (le, gen_ai_agent_name) (rate(gen_ai_invoke_agent_duration_seconds_bucket'
            '{gen_ai_agent_name=~"var_agent", agent_outcome!="success"}[5m]))) / on (x) group_left (y) '
            'agent:gen_ai_invoke_agent_duration_seconds_count:rate5m offset 1h')
    assert metric_names(expr) == {"gen_ai_invoke_agent_duration_seconds_bucket",
                                  "agent:gen_ai_invoke_agent_duration_seconds_count:rate5m"}
    assert selectors(expr) == [("gen_ai_invoke_agent_duration_seconds_bucket",
                                ["gen_ai_agent_name", "agent_outcome"])]
    assert grouping_labels(expr) == {"le", "gen_ai_agent_name", "x", "y"}
    assert function_string_labels('label_replace(up, "dst", "$1", "src", "(.*)")') == {"dst", "src"}
    # strings inside the vector argument (a selector's values) are not label names
    joined = 'label_join(max by (a) (m{x=~"v1",y="v2"}), "dst", "", "s1", "s2")'
    assert function_string_labels(joined) == {"dst", "s1", "s2"} and created_labels(joined) == {"dst"}
    assert substitute_grafana('rate(x{a=~"$agent", b="${model:regex}"}[$__rate_interval])') == (
        'rate(x{a=~"var_agent", b="var_model"}[5m])')


def test_rules_and_dashboards_use_no_id_label():
    ids = {sc.prometheus_label(a) for a in sc.ID_ATTRIBUTES}
    for where, expr in QUERIES:
        used = grouping_labels(expr) | {label for _, labels in selectors(expr) for label in labels}
        assert not used & ids, f"{where} uses id label(s) {used & ids}"
