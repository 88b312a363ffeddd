"""Grafana dashboards and provisioning: a port of grafana/dashboard-linter's rules, plus freshness.

Ported rules: template-datasource-rule, template-label-promql-rule, template-on-time-change-reload-rule,
panel-datasource-rule, panel-title-description-rule, panel-units-rule, panel-no-targets-rule,
target-promql-rule, target-rate-interval-rule, target-counter-agg-rule, uneditable-dashboard. Not ported:
template-job/instance-rule and target-job/instance-rule (excluded by kubernetes-mixin, mimir and loki too:
the agent metrics are not per scrape job), and the LogQL rules (no Loki).
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import yaml
from mixin.dashboards import generate

from agent_otel import semconv as sc
from tests.support.ops import ALERTS, DASHBOARDS, WORST_DEPLOYMENT_MATRIX, binary, load_yaml, substitute_grafana
from tests.support.paths import ASSETS, ROOT

DS_REF = {"type": "prometheus", "uid": "${datasource}"}
#: Grafana unit ids the dashboards may use (a subset of Grafana's valid units).
UNITS = {"percentunit", "percent", "s", "ms", "bytes", "decbytes", "ops", "reqps", "short", "none",
         "currencyUSD", "dtdurations"}
UNIT_PANELS = {"stat", "timeseries", "table", "gauge", "bargauge", "heatmap", "status-history"}

#: Raw series that are counters: a query must rate() or increase() them, never plot them raw.
COUNTER_SERIES = {
    series
    for instrument in sc.INSTRUMENTS
    for series in instrument.prometheus_series
    if instrument.kind is not sc.Kind.GAUGE
} | {sc.PROCESS_CPU_TIME_PROMETHEUS}


def load(path) -> dict:
    return json.loads(path.read_text())


def panels(dashboard: dict) -> list[dict]:
    out, stack = [], list(dashboard["panels"])
    while stack:
        panel = stack.pop(0)
        stack.extend(panel.get("panels", []))
        out.append(panel)
    return out


def data_panels(dashboard: dict) -> list[dict]:
    return [p for p in panels(dashboard) if p["type"] != "row"]


def targets(dashboard: dict) -> list[tuple[str, dict]]:
    return [(p["title"], t) for p in data_panels(dashboard) for t in p.get("targets", [])]


IDS = [p.name for p in DASHBOARDS]


def test_dashboards_exist():
    assert {p.name for p in DASHBOARDS} == {"agents.json", "providers.json", "evolution.json", "jobs-tools.json",
                                             "workflows.json", "system.json"}


def test_committed_json_equals_a_fresh_generation():
    stale = [str(p.relative_to(ROOT)) for p, text in generate.render().items()
             if not p.exists() or p.read_text() != text]
    assert not stale, f"regenerate with `python -m mixin.dashboards`: {stale}"


def test_uids_and_titles_are_fixed_and_unique():
    dashboards = [load(p) for p in DASHBOARDS]
    uids = [d["uid"] for d in dashboards]
    assert all(re.fullmatch(r"agent-otel-[a-z-]+", u) and len(u) <= 40 for u in uids)
    assert len(set(uids)) == len(uids)
    assert len({d["title"] for d in dashboards}) == len(dashboards)


@pytest.mark.parametrize("path", DASHBOARDS, ids=IDS)
def test_dashboard_settings(path):
    d = load(path)
    assert d["editable"] is False  # uneditable-dashboard
    assert d["tags"] == ["agent-otel"]
    assert d["refresh"] and d["time"]["from"].startswith("now-")
    assert isinstance(d["schemaVersion"], int) and d["schemaVersion"] >= 36
    assert "__inputs" not in d, "file provisioning never resolves __inputs (grafana/grafana#10786)"
    assert d["title"].startswith("agent-otel / ") and d["description"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=IDS)
def test_template_variables(path):
    variables = load(path)["templating"]["list"]
    datasources = [v for v in variables if v["type"] == "datasource"]
    assert len(datasources) == 1  # template-datasource-rule
    ds = datasources[0]
    assert (ds["name"], ds["label"], ds["query"]) == ("datasource", "Data source", "prometheus")
    queries = [v for v in variables if v["type"] == "query"]
    assert queries, "filter variables (agent, provider, model, evolution type...) expected"
    for v in queries:
        assert v["datasource"] == DS_REF
        assert v["refresh"] == 2, f"${v['name']} must refresh on time range change"  # on-time-change rule
        assert v["includeAll"] and v["multi"] and v["allValue"] == ".*"
        assert re.fullmatch(r"label_values\(.+, [a-z_]+\)", v["query"]["query"])
        assert v["definition"] == v["query"]["query"]


def test_required_filter_variables():
    names = {p.name: {v["name"] for v in load(p)["templating"]["list"]} for p in DASHBOARDS}
    assert "agent" in names["agents.json"]
    assert {"provider", "model"} <= names["providers.json"]
    assert {"agent", "evolution_type"} <= names["evolution.json"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=IDS)
def test_panels(path):
    d = load(path)
    for p in data_panels(d):
        title = p.get("title")
        assert title and p.get("description"), f"panel {p.get('id')} needs a title and a description"
        assert p["datasource"] == DS_REF, f"{title}: panel datasource must be ${{datasource}}"
        assert p.get("targets"), f"{title}: no targets"  # panel-no-targets-rule
        if p["type"] in UNIT_PANELS:
            assert p["fieldConfig"]["defaults"].get("unit") in UNITS, f"{title}: missing or unknown unit"
        for t in p["targets"]:
            assert t["datasource"] == DS_REF, f"{title}: target datasource must be ${{datasource}}"
            assert t.get("expr") and t.get("refId")
        ref_ids = [t["refId"] for t in p["targets"]]
        assert len(set(ref_ids)) == len(ref_ids)


@pytest.mark.parametrize("path", DASHBOARDS, ids=IDS)
def test_layout_has_no_overlaps(path):
    taken = set()
    for p in panels(load(path)):
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24
        cells = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & taken, f"{p['title']} overlaps another panel"
        taken |= cells
    assert len({p["id"] for p in panels(load(path))}) == len(panels(load(path)))


@pytest.mark.parametrize("path", DASHBOARDS, ids=IDS)
def test_rate_interval(path):
    """target-rate-interval-rule: rate/irate/increase use $__rate_interval."""
    for title, t in targets(load(path)):
        for match in re.finditer(r"\b(rate|irate|increase)\s*\(", t["expr"]):
            window = re.search(r"\[([^\]]*)\]", t["expr"][match.end():])
            assert window and window.group(1) == "$__rate_interval", f"{title}: {t['expr']}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=IDS)
def test_counters_are_rated(path):
    """target-counter-agg-rule, for *_total and for histogram _bucket/_count/_sum series alike."""
    for title, t in targets(load(path)):
        for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", t["expr"]):
            if match.group(0) in COUNTER_SERIES:
                before = t["expr"][: match.start()].rstrip()
                assert re.search(r"\b(rate|irate|increase)\s*\($", before), f"{title}: raw counter in {t['expr']}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=IDS)
def test_services_and_environments_never_merge_on_a_panel(path):
    """With the Service and Environment variables at All (their default), every line is one deployment's and its
    legend says which: an aggregation keeps the scope labels (``sum by (gen_ai_agent_name)`` added prod and staging
    into one line), and a legend given names the deployment (two lines of the recording rules, which keep them, had
    one legend). A heatmap's ``sum by (le)`` is one distribution of everything selected; a total is one series."""
    service, environment = (sc.prometheus_label(key) for key in sc.SCOPING_RESOURCE_ATTRIBUTES)
    for p in data_panels(load(path)):
        if p["title"] == WORST_DEPLOYMENT_MATRIX:  # one cell per plugin and phase: the worst of them (test_scoping)
            continue
        for t in p["targets"]:
            kept = [labels for labels in re.findall(r"\b(?:sum|max|min|avg|count) by \(([^)]*)\)", t["expr"])
                    if labels.strip() != "le"]
            for labels in kept:
                assert service in labels and environment in labels, f"{p['title']}: {t['expr']}"
            legend = t.get("legendFormat", "__auto")
            total = re.search(r"\b(?:sum|max|min|avg|count)\s*\(", t["expr"])
            if legend not in ("__auto", "{{le}}") and not total:
                assert legend.startswith(f"{{{{{service}}}}} {{{{{environment}}}}}"), f"{p['title']}: {legend}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=IDS)
def test_latency_panels_enable_exemplars(path):
    for p in data_panels(load(path)):
        for t in p["targets"]:
            seconds_histogram = re.search(r"_seconds_bucket\{", t["expr"])
            if seconds_histogram and ("histogram_quantile" in t["expr"] or p["type"] == "heatmap"):
                assert t["exemplar"] is True, f"{p['title']}: exemplars off on a latency query"


def test_every_query_parses_with_promtool(tmp_path):
    """target-promql-rule and template-label-promql-rule: every query, as a rule, passes promtool."""
    groups = []
    for path in DASHBOARDS:
        d = load(path)
        exprs = [t["expr"] for _, t in targets(d)]
        for v in d["templating"]["list"]:
            if v["type"] == "query":
                metric, label = re.fullmatch(r"label_values\((.+), ([a-z_]+)\)", v["query"]["query"]).groups()
                exprs.append(f"group by ({label}) ({metric})")
        for i, expr in enumerate(exprs):
            groups.append({"name": f"{path.stem}-{i}",
                           "rules": [{"record": f"lint:query_{len(groups)}", "expr": substitute_grafana(expr)}]})
    rules = tmp_path / "dashboard-queries.rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    result = subprocess.run([binary("promtool"), "check", "rules", str(rules)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(groups)} rules found" in result.stdout


def test_promtool_rejects_a_broken_query(tmp_path):
    """The parse check above is not vacuous."""
    rules = tmp_path / "bad.rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": [
        {"record": "lint:query", "expr": substitute_grafana("sum by (x (rate(up[$__rate_interval]))")}]}]}))
    result = subprocess.run([binary("promtool"), "check", "rules", str(rules)], capture_output=True, text=True)
    assert result.returncode != 0


@pytest.mark.parametrize("path", DASHBOARDS, ids=IDS)
def test_foundation_sdk_decodes_the_dashboard(path):
    """The classic model decodes into grafana-foundation-sdk 11.6 types: panels typed, queries Prometheus."""
    from grafana_foundation_sdk.cog.plugins import register_default_plugins
    from grafana_foundation_sdk.models.dashboard import Dashboard, Panel, RowPanel
    from grafana_foundation_sdk.models.prometheus import Dataquery

    register_default_plugins()
    raw = load(path)
    model = Dashboard.from_json(raw)
    assert model.uid == raw["uid"] and len(model.panels) == len(raw["panels"])
    for decoded in model.panels:
        assert isinstance(decoded, Panel | RowPanel)
        for t in getattr(decoded, "targets", None) or []:
            assert isinstance(t, Dataquery)


# --------------------------------------------------------------------------------------------------
# Provisioning
# --------------------------------------------------------------------------------------------------

PROVISIONING = ASSETS / "grafana" / "provisioning"


def compose_service(name: str) -> dict:
    return load_yaml(ROOT / "compose.yaml")["services"][name]


def test_datasource_provisioning():
    [path] = sorted((PROVISIONING / "datasources").glob("*.yaml"))
    config = load_yaml(path)
    assert config["apiVersion"] == 1
    by_uid = {ds["uid"]: ds for ds in config["datasources"]}
    [prom] = [ds for ds in config["datasources"] if ds["type"] == "prometheus"]
    assert prom["url"] == "http://prometheus:9090" and prom["isDefault"] is True
    destinations = prom["jsonData"]["exemplarTraceIdDestinations"]
    assert destinations and all(d["datasourceUid"] in by_uid for d in destinations)
    assert all(d["name"] == "trace_id" for d in destinations)
    scrape_interval = load_yaml(ALERTS / "prometheus.yml")["global"]["scrape_interval"]
    assert prom["jsonData"]["timeInterval"] == scrape_interval
    services = load_yaml(ROOT / "compose.yaml")["services"]
    for ds in config["datasources"]:
        host = re.match(r"https?://([^:/]+)", ds["url"]).group(1)
        assert host in services, f"datasource {ds['name']} points at {host}, not a compose service"


def test_dashboard_provisioning_matches_compose_mounts():
    [path] = sorted((PROVISIONING / "dashboards").glob("*.yaml"))
    config = load_yaml(path)
    assert config["apiVersion"] == 1
    [provider] = config["providers"]
    assert provider["type"] == "file" and provider["allowUiUpdates"] is False and provider["disableDeletion"]
    mounts = {}
    for volume in compose_service("grafana")["volumes"]:
        source, target = volume.split(":")[:2]
        mounts[target] = source
    assert mounts[provider["options"]["path"]] == "./src/agent_otel/assets/grafana/dashboards"
    assert mounts["/etc/grafana/provisioning/dashboards"] == "./src/agent_otel/assets/grafana/provisioning/dashboards"
    assert mounts["/etc/grafana/provisioning/datasources"] == "./src/agent_otel/assets/grafana/provisioning/datasources"
