"""Prometheus recording and alerting rules: promtool, conventions, coverage by unit tests, runbooks."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
from mixin.rules.__main__ import main as generate_rules

from agent_otel import semconv
from tests.support.ops import (
    ALERTS,
    ALERTS_FILE,
    DASHBOARDS,
    RULE_TESTS,
    RULES_FILE,
    RUNBOOKS,
    all_rules,
    binary,
    load_yaml,
    markdown_anchors,
    metric_names,
    numbers,
    rule_groups,
)
from tests.support.paths import ASSETS, ROOT

SEVERITIES = {"critical", "warning", "info"}
PREFIX = "AgentOtel"
WINDOWS = ("5m", "1h", "1d", "7d")
THRESHOLDS = load_yaml(ASSETS / "thresholds.yaml")
#: The group that reads the previous layout under the current names (mixin/rules/layout.py): its rules record
#: series of the contract, named as those series are.
LAYOUT_GROUP = "agent-otel-previous-layout"


def alerts() -> list[dict]:
    return all_rules(ALERTS_FILE)


def recordings() -> list[dict]:
    """The recording rules named level:metric:operations: all but the previous-layout group's."""
    return [rule for group in rule_groups(RULES_FILE) if group["name"] != LAYOUT_GROUP for rule in group["rules"]]


def layout_rules() -> list[dict]:
    return [rule for group in rule_groups(RULES_FILE) if group["name"] == LAYOUT_GROUP for rule in group["rules"]]


def alert_id(rule: dict) -> str:
    """An alert's identity: its name and labels (severity, and the window a low-traffic variant judges over)."""
    window = rule["labels"].get("window")
    return f"{rule['alert']}:{rule['labels']['severity']}" + (f":{window}" if window else "")


# --------------------------------------------------------------------------------------------------
# promtool
# --------------------------------------------------------------------------------------------------


def test_promtool_check_rules():
    promtool = binary("promtool")
    result = subprocess.run(
        [promtool, "check", "rules", str(RULES_FILE), str(ALERTS_FILE)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == 2


def test_promtool_check_config_with_rules():
    """The Prometheus config of compose.yaml is valid and loads both rule files."""
    result = subprocess.run(
        [binary("promtool"), "check", "config", str(ALERTS / "prometheus.yml")],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 rule files found" in result.stdout


@pytest.fixture(scope="module")
def promtool_test_runs() -> dict[str, subprocess.CompletedProcess]:
    """Start `promtool test rules` on every test file at once (they are independent), then collect."""
    promtool = binary("promtool")
    procs = {
        path.name: subprocess.Popen(
            [promtool, "test", "rules", path.name],
            cwd=path.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for path in RULE_TESTS
    }
    results = {}
    for name, proc in procs.items():
        out, _ = proc.communicate(timeout=120)
        results[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, "")
    return results


@pytest.mark.parametrize("test_file", [p.name for p in RULE_TESTS])
def test_promtool_test_rules(promtool_test_runs, test_file):
    result = promtool_test_runs[test_file]
    assert result.returncode == 0, result.stdout
    assert "SUCCESS" in result.stdout


def test_rule_test_files_exist():
    names = {p.name for p in RULE_TESTS}
    assert {"alerts.test.yaml", "recording-short.test.yaml", "recording-long.test.yaml"} <= names


# --------------------------------------------------------------------------------------------------
# Generated files are what the generator produces now
# --------------------------------------------------------------------------------------------------


def test_generated_rule_files_are_fresh(capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m mixin.rules --check`: every generated file is what the generator writes now."""
    assert generate_rules(["--check"]) == 0, capsys.readouterr().err


# --------------------------------------------------------------------------------------------------
# Alert style (mixtool's alert lint rules, plus ours)
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rule", alerts(), ids=alert_id)
def test_alert_style(rule):
    name = rule["alert"]
    assert re.fullmatch(r"[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]+)+", name), f"{name} is not CamelCase"
    assert name.startswith(PREFIX), f"{name} lacks the shared prefix {PREFIX}"
    assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}
    assert rule.get("for"), f"{name} has no `for:` and would fire on a single blip"
    labels, annotations = rule["labels"], rule["annotations"]
    assert labels.get("severity") in SEVERITIES
    assert set(annotations) >= {"summary", "description", "runbook_url"}
    summary = annotations["summary"]
    assert "{{" not in summary, "summary must be static; put values in the description"
    assert summary[0].isupper() and summary.endswith("."), summary
    assert "{{" in annotations["description"], "description must be templated"
    assert annotations["description"].rstrip().endswith("."), annotations["description"]


def test_alert_names_and_severities_are_unique():
    ids = [alert_id(rule) for rule in alerts()]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("rule", alerts(), ids=alert_id)
def test_runbook_url_resolves_to_a_heading(rule):
    url = rule["annotations"]["runbook_url"]
    base, _, anchor = url.partition("#")
    assert base == THRESHOLDS["runbook_base_url"]
    assert base.endswith("/docs/runbooks.md")
    assert anchor == rule["alert"].lower()
    assert anchor in markdown_anchors(RUNBOOKS), f"docs/runbooks.md has no heading for #{anchor}"


def test_every_runbook_section_belongs_to_an_alert():
    headings = {
        line[3:].strip() for line in RUNBOOKS.read_text().splitlines() if line.startswith("## ")
    }
    assert headings == {rule["alert"] for rule in alerts()}


def test_issue_for_durations():
    """The `for:` durations the issue asks for."""
    by_name = {rule["alert"]: rule for rule in alerts() if "window" not in rule["labels"]}
    assert by_name["AgentOtelEvolutionFailureRateHigh"]["for"] == "10m"
    assert "ratio_increase1h" in by_name["AgentOtelEvolutionFailureRateHigh"]["expr"]
    assert by_name["AgentOtelEvolutionMemoryPeakHigh"]["for"] == "5m"
    # Issue 18: no improvement over a day while runs happened, not the latest run's delta for 24h (which
    # flapped with every run): the window is in the expression, `for` only rides out a scrape gap.
    no_progress = by_name["AgentOtelEvolutionNoProgress"]
    assert no_progress["for"] == "1h"
    assert "increase((agent_otel_evolution_improvement_count" in no_progress["expr"]
    assert "increase(evolution_attempts_total" in no_progress["expr"] and "[1d]" in no_progress["expr"]


def test_no_progress_reads_the_improvement_histogram_at_the_bound_below_its_minimum():
    """The runs that improved by at least the minimum are the count minus one cumulative bucket: the minimum must be
    an edge of the histogram, which has a bound just below it."""
    from mixin.config import load_thresholds
    from mixin.rules.evolution import alert_group
    from mixin.scope import load_scope

    thresholds = load_thresholds()
    assert thresholds["evolution_min_improvement"] in semconv.IMPROVEMENT_EDGES
    [no_progress] = [rule for rule in alerts() if rule.get("alert") == "AgentOtelEvolutionNoProgress"]
    assert 'le="0.009999999999999998"' in no_progress["expr"] and 0.009999999999999998 in semconv.IMPROVEMENT_BUCKETS
    with pytest.raises(ValueError, match=r"thresholds\.yaml: evolution_min_improvement: 0\.03 is not one of the "
                                         r"improvement histogram's edges"):
        alert_group({**thresholds, "evolution_min_improvement": 0.03}, load_scope(thresholds))


def test_required_alerts_exist():
    names = {rule["alert"] for rule in alerts()}
    assert names >= {
        "AgentOtelEvolutionFailureRateHigh", "AgentOtelEvolutionMemoryPeakHigh", "AgentOtelEvolutionNoProgress",
        "AgentOtelAgentSuccessRatioLow", "AgentOtelAgentLatencyHigh", "AgentOtelAgentConfidenceInflated",
        "AgentOtelProviderAvailabilityLow", "AgentOtelProviderLatencyHigh", "AgentOtelProviderFallbackRateHigh",
        "AgentOtelTokenSpendOverBudget", "AgentOtelAgentErrorRateAnomaly",
        "AgentOtelProcessMemoryExhaustionPredicted", "AgentOtelTargetDown", "AgentOtelTelemetryAbsent",
        "AgentOtelInstrumentationErrorsRising",
    }
    # A warning/critical pair exists, so the inhibition rule of alertmanager.yml has something to do.
    severities = {}
    for rule in alerts():
        severities.setdefault(rule["alert"], set()).add(rule["labels"]["severity"])
    assert any(s >= {"warning", "critical"} for s in severities.values())


# --------------------------------------------------------------------------------------------------
# Thresholds: one documented place
# --------------------------------------------------------------------------------------------------

#: Numbers that are units, not tunables: seconds per hour, and `== 0` for `up`.
UNIT_CONSTANTS = {0.0, 3600.0, 86400.0, 24.0, 168.0}  # (seconds an hour, a day; hours a day, a week)


@pytest.mark.parametrize("rule", alerts(), ids=alert_id)
def test_alert_thresholds_come_from_thresholds_yaml(rule):
    tunables = {float(v) for v in THRESHOLDS.values() if isinstance(v, int | float)}
    literals = numbers(rule["expr"]) - UNIT_CONSTANTS
    assert literals <= tunables, f"{rule['alert']}: literals {literals - tunables} are not in thresholds.yaml"


def test_every_threshold_is_used_and_documented():
    text = (ASSETS / "thresholds.yaml").read_text()
    lines = text.splitlines()
    rendered = ALERTS_FILE.read_text() + RULES_FILE.read_text()
    for index, line in enumerate(lines):
        key = re.match(r"([a-z0-9_]+):", line)
        if not key:
            continue
        value = THRESHOLDS[key.group(1)]
        text = ", ".join(value) if isinstance(value, list) else str(value)  # scope_labels: a `by (...)` list
        assert text in rendered, f"{key.group(1)} is not used by any rule"
        above = index - 1
        while above >= 0 and re.match(r"[a-z0-9_]+:", lines[above]):
            above -= 1
        assert above >= 0 and lines[above].startswith("#"), f"{key.group(1)} has no comment explaining it"


# --------------------------------------------------------------------------------------------------
# Recording rules
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rule", recordings(), ids=lambda r: r["record"] + str(r.get("labels", "")))
def test_recording_rule_naming(rule):
    name = rule["record"]
    assert re.fullmatch(r"[a-z][a-z_]*:[a-z][a-z0-9_]*:[a-z][a-z0-9_]*", name), f"{name}: not level:metric:operations"
    _level, metric, operations = name.split(":")
    assert not metric.endswith("_total"), f"{name}: strip _total once rated"
    # The one windowless rule: an instant count of series (scope:agent_otel_series:count, the services' heartbeat).
    assert re.search(r"(rate|increase|mean|histogram_quantile_rate|over_time1d_ratio_rate|max_over_time)(5m|1h|1d|7d)$",
                     operations) or operations == "count", f"{name}: operations must end with the window"


def test_the_previous_layout_is_read_under_the_current_names():
    """Every series of the previous layout is copied to a series of the contract, and nothing else is."""
    current = {series for spec in semconv.INSTRUMENTS for series in spec.prometheus_series}
    previous = {series for spec in semconv.PREVIOUS_LAYOUT for series in spec.prometheus_series}
    recorded = {rule["record"] for rule in layout_rules()}
    assert recorded <= current
    read = set().union(*(metric_names(rule["expr"]) for rule in layout_rules()))
    assert previous <= read and read <= previous | recorded
    assert not (previous & current)


def test_recording_groups_are_small():
    for group in rule_groups(RULES_FILE) + rule_groups(ALERTS_FILE):
        assert len(group["rules"]) <= 20, f"{group['name']} has more than 20 rules"
        assert group["name"].startswith("agent-otel-")


def test_recording_windows():
    names = {rule["record"] for rule in recordings()}
    for w in WINDOWS:
        for family in (
            "agent:gen_ai_invoke_agent_successes_per_invocations:ratio_rate{w}",
            "agent:gen_ai_invoke_agent_duration_seconds_count:rate{w}",
            "agent_quantile:gen_ai_invoke_agent_duration_seconds:histogram_quantile_rate{w}",
            "agent:agent_otel_client_cost_per_invocations:ratio_rate{w}",
        ):
            assert family.format(w=w) in names
    for w in ("5m", "1h", "1d"):
        assert f"provider:gen_ai_client_inference_availability:ratio_rate{w}" in names
        assert f"provider:gen_ai_client_inference_availability_with_slow:ratio_rate{w}" in names
        assert f"tool:gen_ai_execute_tool_errors_per_executions:ratio_rate{w}" in names
        assert f"job_type:job_failures_per_jobs:ratio_rate{w}" in names
    for w in ("1h", "1d", "7d"):
        assert f"agent_band:agent_confidence_successes_per_invocations:ratio_increase{w}" in names
        assert f"agent_evolution_type:evolution_attempts_succeeded_per_attempts:ratio_increase{w}" in names


@pytest.mark.parametrize("rule", [r for r in recordings() if r["record"].split(":")[2].startswith("ratio")],
                         ids=lambda r: r["record"])
def test_ratios_divide_separately_aggregated_series(rule):
    """Never average a ratio: a ratio rule divides two sums (or recorded sums), never avg()s a ratio."""
    expr = rule["expr"]
    assert "/" in expr
    assert not re.search(r"\bavg\s*(by|without)?\s*(\([^)]*\))?\s*\(\s*[a-z_]*:[a-z_]*ratio", expr)


# --------------------------------------------------------------------------------------------------
# Unit-test coverage
# --------------------------------------------------------------------------------------------------


def _unit_tests() -> list[dict]:
    return [test for path in RULE_TESTS for test in load_yaml(path)["tests"]]


def test_every_alert_has_a_firing_and_a_silent_case():
    firing: dict[str, set[str]] = {}
    silent: set[str] = set()
    for test in _unit_tests():
        for case in test.get("alert_rule_test", []):
            expected = case.get("exp_alerts") or []
            if not expected:
                silent.add(case["alertname"])
            for alert in expected:
                firing.setdefault(case["alertname"], set()).add(alert["exp_labels"]["severity"])
                # Exact labels and annotations, as the issue asks: all three annotations are asserted.
                assert set(alert["exp_annotations"]) == {"summary", "description", "runbook_url"}
    for rule in alerts():
        name, severity = rule["alert"], rule["labels"]["severity"]
        assert severity in firing.get(name, set()), f"no test where {name} ({severity}) fires"
        assert name in silent, f"no test where {name} stays silent"


def test_every_recording_rule_has_a_promql_expr_test():
    tested: set[str] = set()
    for test in _unit_tests():
        for case in test.get("promql_expr_test", []):
            tested |= metric_names(case["expr"])
    missing = sorted({rule["record"] for rule in recordings() + layout_rules()} - tested)
    assert not missing, f"recording rules without promql_expr_test: {missing}"


def test_unit_tests_load_the_shipped_rule_files():
    for path in RULE_TESTS:
        files = {(path.parent / f).resolve() for f in load_yaml(path)["rule_files"]}
        assert RULES_FILE.resolve() in files


def test_operations_doc_lists_every_alert_and_threshold():
    text = (ROOT / "docs" / "operations.md").read_text()
    for rule in alerts():
        assert f"`{rule['alert']}`" in text
    for key in THRESHOLDS:
        assert f"`{key}`" in text, f"docs/operations.md does not mention threshold {key}"


def _panel_titles() -> dict[str, set[str]]:
    """Each dashboard's short title (``agent-otel / Agents`` -> ``Agents``) and the titles of its panels and rows."""
    titles = {}
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        titles[dashboard["title"].split(" / ", 1)[-1]] = {panel["title"] for panel in dashboard["panels"]}
    return titles


def test_every_panel_a_runbook_names_is_on_the_dashboard_it_names():
    """A runbook line that names a dashboard (*Agents*) quotes panels of it; one that names several, of one of
    them. An on-call person following the runbook must find what it names."""
    titles = _panel_titles()
    wrong = []
    for line in RUNBOOKS.read_text().splitlines():
        line = re.sub(r"`[^`]*`", "", line)  # code: queries quote label values, not panels
        named = [name for name in re.findall(r"\*([^*]+)\*", line) if name in titles]
        if not named:
            continue
        panels = set().union(*(titles[name] for name in named))
        wrong += [f"{'/'.join(named)}: {quoted}" for quoted in re.findall(r'"([^"]+)"', line)
                  if quoted not in panels]
    assert not wrong, wrong


def test_the_docs_count_the_alerts_there_are():
    names = {rule["alert"] for rule in alerts()}
    for doc in (ROOT / "README.md", ROOT / "docs" / "operations.md"):
        counts = {int(n) for n in re.findall(r"\b(\d+) alerts\b", doc.read_text())}
        assert counts == {len(names)}, f"{doc.name} says {sorted(counts)} alerts; the rules have {len(names)}"


def test_an_edited_copy_of_the_assets_is_regenerated_in_place(tmp_path) -> None:
    """`agent-otel assets --copy DIR`, an edited `thresholds.yaml` there, then the generators with `--assets DIR`
    (what the copy's thresholds.yaml and the README say): the copy's rules, alerts, rule tests and dashboards follow
    the edit, and the package's own files stay as they are. Before, the generators always read and wrote the
    package's assets: an operator's edit reached only `agent-otel report`. AGENT_OTEL_ASSETS, which an operator
    exports for the report and the demo, moves neither the generators nor these tests."""
    copy = tmp_path / "assets"
    copied = subprocess.run([sys.executable, "-m", "agent_otel", "assets", "--copy", str(copy)],
                            capture_output=True, text=True, timeout=120)
    assert copied.returncode == 0, copied.stderr
    thresholds = copy / "thresholds.yaml"
    scoped = 'deployment_environment_name="prod"'
    thresholds.write_text(thresholds.read_text().replace("\nselector: ''\n", f"\nselector: '{scoped}'\n"))
    package_files = {path: path.read_bytes() for path in ASSETS.rglob("*") if path.is_file()}
    env = {**os.environ, "AGENT_OTEL_ASSETS": str(copy)}  # (the report's: the generators do not follow it)
    for generator in ("mixin.rules", "mixin.dashboards"):
        done = subprocess.run([sys.executable, "-m", generator, "--assets", str(copy)], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    for generated in ("prometheus/agent-otel.rules.yaml", "prometheus/agent-otel.alerts.yaml",
                      "prometheus/tests/recording-short.test.yaml", "grafana/dashboards/agents.json"):
        text = (copy / generated).read_text()
        assert scoped in (json.dumps(json.loads(text)) if generated.endswith(".json") else text).replace('\\"', '"'), \
            generated
    assert {path: path.read_bytes() for path in ASSETS.rglob("*") if path.is_file()} == package_files
    # the copy is fresh by the same check, and the package's own files are still fresh by theirs
    for generator in ("mixin.rules", "mixin.dashboards"):
        for extra in (["--assets", str(copy)], []):  # the copy by its flag; the package's own, AGENT_OTEL_ASSETS set
            checked = subprocess.run([sys.executable, "-m", generator, "--check", *extra], cwd=ROOT, env=env,
                                     capture_output=True, text=True, timeout=300)
            assert checked.returncode == 0, (extra, checked.stderr)
    shutil.rmtree(copy)
    for generator in ("mixin.rules", "mixin.dashboards"):
        missing = subprocess.run([sys.executable, "-m", generator, "--assets", str(copy)], cwd=ROOT, env=env,
                                 capture_output=True, text=True, timeout=120)
        assert missing.returncode == 1 and "no thresholds.yaml there" in missing.stderr, missing.stderr
