"""`agent-otel report` against the e2e Prometheus scraping the demo (seed 7): the real CLI in each format,
its numbers checked against what the demo is built to do (src/agent_otel/demo/fleet.py) and against
independent queries of the same Prometheus at the same evaluation time."""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import json
import math
import time
import urllib.parse
from typing import Any

import pytest

from agent_otel import semconv as sc
from agent_otel._cli import main
from agent_otel._ops.demo import workflow
from agent_otel._ops.report.queries import ACTIVITY, FIRST_LOOK_S
from tests.support.e2e import E2E, settled_time
from tests.support.http import http_get_json
from tests.support.polling import wait_until

pytestmark = pytest.mark.e2e

AGENTS = ("coder", "planner", "reviewer", "tester")
PROVIDERS = ("anthropic", "local", "openai")
AGENT, PROVIDER, ERROR_TYPE = (sc.prometheus_label(key) for key in (sc.GEN_AI_AGENT_NAME, sc.GEN_AI_PROVIDER_NAME,
                                                                 sc.ERROR_TYPE))
SECTIONS = ("report", "agents", "patterns", "providers", "provider_models", "calibration", "evolution", "kpis",
            "jobs", "tools", "phases", "plugins_by_phase", "workflow_patterns", "agent_versions")
JOB_TYPES = ("bugfix", "feature", "refactor")
TOOLS = ("apply_patch", "lint", "run_tests", "search_docs")
#: The meta-orchestrator's workflows (src/agent_otel/_ops/demo/workflow.py): a job type of their own, and plugins.
WORKFLOW = "workflow"


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["report", *args])
    return code, out.getvalue(), err.getvalue()


def rows(section: list[dict[str, Any]], **keys: str) -> list[dict[str, Any]]:
    return [row for row in section if all(row[k] == v for k, v in keys.items())]


def one(section: list[dict[str, Any]], **keys: str) -> dict[str, Any]:
    [row] = rows(section, **keys)
    return row


def ready(document: dict[str, Any]) -> bool:
    """Enough volume in the window for the demo's rates to show through the noise."""
    agents = {row["agent"]: row for row in document["agents"]}
    providers = {row["provider"]: row for row in document["providers"]}
    evolution = {row["agent"]: row for row in document["evolution"]}
    kpis = {row["agent"] for row in document["kpis"]}
    high = rows(document["calibration"], agent="reviewer", band="high")
    return (all((agents.get(a) or {}).get("invocations", 0) >= 60 for a in AGENTS)
            and all((providers.get(p) or {}).get("calls", 0) >= 60 for p in PROVIDERS)
            and all((evolution.get(a) or {}).get("attempts", 0) >= 10 for a in AGENTS)
            and bool(high) and high[0]["invocations"] >= 60 and kpis >= set(AGENTS))


@pytest.fixture(scope="module")
def url(e2e: E2E) -> str:
    prometheus = e2e.stack.prometheus_url

    def enough() -> bool:
        e2e.demo_alive()
        code, out, _ = run("--prometheus", prometheus, "--format", "json")
        return code == 0 and ready(json.loads(out))

    wait_until(enough, "the report to cover enough demo traffic", timeout_s=120)
    return prometheus


def report_json(url: str, *extra: str) -> dict[str, Any]:
    code, out, err = run("--prometheus", url, "--format", "json", "--at", f"{settled_time(url):.3f}", *extra)
    assert code == 0, err
    return json.loads(out)


def scalar(e2e: E2E, expr: str, at: float) -> float:
    [sample] = e2e.api("/api/v1/query", query=expr, time=f"{at:.3f}")["result"]
    return float(sample["value"][1])


def counted(e2e: E2E, selector: str, document: dict[str, Any]) -> float:
    """What the counters ``selector`` matches counted in the report's hour, from their raw samples, independently
    of the report's PromQL: the data starts in the window, so a series seen in its first minute counts its growth
    since then, one first seen later everything it holds."""
    meta = document["report"]
    at, since = meta["time"], meta["data_since"]
    assert meta["partial"], meta
    total = 0.0
    for series in e2e.api("/api/v1/query", query=f"{selector}[1h]", time=f"{at:.3f}")["result"]:
        samples = [(float(t), float(v)) for t, v in series["values"]]
        values = [v for _, v in samples]
        assert values == sorted(values), series["metric"]  # no restart in the demo
        total += values[-1] - (values[0] if samples[0][0] <= since + FIRST_LOOK_S else 0.0)
    return total


def test_json_has_every_section_agent_and_provider(url: str) -> None:
    document: dict[str, Any] = {}

    def counts_the_demo() -> bool:  # polled: a failed scrape leaves the demo's series stale until the next one
        document.update(report_json(url))
        return bool(document["report"]["targets"] == 1)

    wait_until(counts_the_demo, "a report that counts the demo's service", timeout_s=30)
    assert tuple(document) == SECTIONS
    meta = document["report"]
    assert meta["prometheus"] == url and meta["window"] == "1h"
    assert meta["selector"] == '{otel_scope_name="agent_otel"}' and meta["slow_bound_s"] is None
    assert {row["agent"] for row in document["agents"]} == set(AGENTS)
    assert {row["provider"] for row in document["providers"]} == set(PROVIDERS)
    assert {row["agent"] for row in document["calibration"]} == set(AGENTS)
    assert {row["agent"] for row in document["evolution"]} == set(AGENTS)
    assert {(row["agent"], row["pattern"]) for row in document["patterns"]} >= {
        ("planner", "decompose"), ("coder", "react"), ("reviewer", "checklist"), ("tester", "property_based")}
    for row in document["agents"]:
        # (no order between mean and p95: histogram_quantile interpolates inside a bucket)
        assert row["avg_cost_usd"] > 0 and row["avg_latency_s"] > 0 and row["p95_latency_s"] > 0, row


def test_agents_match_the_demo_and_prometheus(e2e: E2E, url: str) -> None:
    document = report_json(url)
    agents = {row["agent"]: row for row in document["agents"]}
    assert agents["reviewer"]["success_ratio"] < 0.5
    assert agents["planner"]["success_ratio"] > 0.9
    # the same numbers, counted independently of the report's code, at the report's evaluation time
    dur = sc.AGENT_DURATION.prometheus
    planner = f'{AGENT}="planner"'
    calls = counted(e2e, f"{dur}_count{{{planner}}}", document)
    assert agents["planner"]["invocations"] == calls
    cost = counted(e2e, f"{sc.CLIENT_COST.prometheus}{{{planner}}}", document)
    assert agents["planner"]["avg_cost_usd"] == pytest.approx(cost / calls, rel=1e-6)


def test_providers_match_the_demo(e2e: E2E, url: str) -> None:
    document = report_json(url)
    providers = {row["provider"]: row for row in document["providers"]}
    assert providers["anthropic"]["availability"] < 0.9
    assert providers["openai"]["availability"] > 0.95
    assert providers["local"]["availability"] > 0.95
    # coder falls back from anthropic to openai: fallbacks are counted away from anthropic only
    assert providers["anthropic"]["fallbacks"] > 0
    assert providers["openai"]["fallbacks"] == 0 and providers["local"]["fallbacks"] == 0
    assert providers["anthropic"]["retries"] > providers["openai"]["retries"]
    for row in document["providers"]:
        assert row["cost_usd"] > 0 and row["p95_latency_s"] > 0, row
    models = {(row["provider"], row["model"]) for row in document["provider_models"]}
    assert models == {("openai", "gpt-4o-mini"), ("anthropic", "claude-3-5-haiku"), ("local", "llama-3.1-8b"),
                      ("openai", "summarizer-mini")}  # the last one through the span bridge
    dur = sc.CLIENT_INFERENCE_DURATION.prometheus
    anthropic = f'{PROVIDER}="anthropic"'
    errors = counted(e2e, f'{dur}_count{{{anthropic},{ERROR_TYPE}!=""}}', document)
    calls = counted(e2e, f"{dur}_count{{{anthropic}}}", document)
    assert (providers["anthropic"]["calls"], providers["anthropic"]["errors"]) == (calls, errors)
    assert providers["anthropic"]["availability"] == pytest.approx(1 - errors / calls, rel=1e-9)


def test_slow_ms_counts_slow_calls_as_unavailable_and_names_the_bound(url: str) -> None:
    plain = {row["provider"]: row for row in report_json(url)["providers"]}
    document = report_json(url, "--slow-ms", "1")
    assert document["report"]["slow_ms"] == 1 and document["report"]["slow_bound_s"] == 0.01
    slow = {row["provider"]: row for row in document["providers"]}
    for provider in PROVIDERS:
        # every simulated call takes more than 10 ms
        assert slow[provider]["slow"] > 0
        assert slow[provider]["availability"] < plain[provider]["availability"] - 0.5, provider
    code, out, _ = run("--prometheus", url, "--slow-ms", "1")
    assert code == 0
    assert "slower than 0.01 s as unavailable" in out and "--slow-ms 1 " in out


def test_reviewer_is_overconfident(e2e: E2E, url: str) -> None:
    document = report_json(url)
    high = one(document["calibration"], agent="reviewer", band="high")
    assert high["invocations"] > 0 and high["success_ratio"] < 0.5
    assert one(document["calibration"], agent="reviewer", band="low")["invocations"] == 0
    assert one(document["calibration"], agent="planner", band="high")["success_ratio"] > 0.9
    # the shipped recording rule (evaluated every second) agrees with the report's band arithmetic
    rule = (f'agent_band:{sc.AGENT_CONFIDENCE_HISTOGRAM.prometheus}_successes_per_invocations:ratio_increase1h'
            f'{{{AGENT}="reviewer",confidence_band="high"}}')
    assert scalar(e2e, rule, document["report"]["time"]) == pytest.approx(high["success_ratio"], abs=0.1)


def test_evolution_and_kpis(url: str) -> None:
    document = report_json(url)
    evolution = {row["agent"]: row for row in document["evolution"]}
    assert evolution["reviewer"]["success_ratio"] < 0.5
    assert evolution["planner"]["success_ratio"] > evolution["reviewer"]["success_ratio"]
    for row in document["evolution"]:
        assert row["attempts"] == pytest.approx(row["succeeded"] + row["failed"] + row["rolled_back"])
    assert any(row["best_improvement"] is not None and row["best_improvement"] > 0 for row in document["evolution"])
    kpis = {(row["agent"], row["kpi"]): row["value"] for row in document["kpis"]}
    assert kpis[("reviewer", "success_rate")] < 0.5 < kpis[("planner", "success_rate")]


def test_workflow_sections_match_the_demo(url: str) -> None:
    """The orchestrator's phases (each pattern's), its plugins in their phases (run_pytest fails 8 % of its runs,
    read_docs never) and its two patterns."""
    document = report_json(url)
    phases = {(row["job_type"], row["phase"]): row for row in document["phases"]}
    assert set(phases) == {(WORKFLOW, phase) for steps in workflow.PATTERNS.values() for phase, _ in steps}
    for row in phases.values():
        assert row["runs"] > 0 and row["avg_duration_s"] > 0 and row["p95_duration_s"] > 0, row
    plugins = {(row["phase"], row["plugin"]): row for row in document["plugins_by_phase"]}
    assert {(phase, plugin) for steps in workflow.PATTERNS.values() for phase, names in steps
            for plugin in names} <= set(plugins)
    assert plugins[("research", "read_docs")]["errors"] == 0
    assert 0 < plugins[("test", "run_pytest")]["error_ratio"] < 0.3
    patterns = {row["pattern"]: row for row in document["workflow_patterns"]}
    assert set(patterns) == set(workflow.PATTERNS)
    for row in patterns.values():
        assert 0.5 < row["success_ratio"] <= 1 and row["avg_duration_s"] > 0, row


def test_jobs_and_tools_match_the_demo(e2e: E2E, url: str) -> None:
    """A job fails whenever the reviewer rejects it (about half of every type); run_tests fails 15 % of its
    runs, lint never (src/agent_otel/_ops/demo/fleet.py)."""
    document = report_json(url)
    jobs = {row["job_type"]: row for row in document["jobs"]}
    assert set(jobs) == {*JOB_TYPES, WORKFLOW}
    for row in (jobs[kind] for kind in JOB_TYPES):
        assert isinstance(row["runs"], int) and row["runs"] > 0 and row["p95_duration_s"] > 0, row
        assert 0.2 < row["failure_ratio"] < 0.8, row
        assert row["failure_ratio"] == row["failures"] / row["runs"]
    tools = {row["tool"]: row for row in document["tools"]}
    assert set(tools) == {*TOOLS, *workflow.PLUGIN_FAILURE_RATE}
    assert tools["run_tests"]["error_ratio"] > 0.1 > tools["search_docs"]["error_ratio"]
    assert tools["lint"]["errors"] == 0 and tools["lint"]["p95_latency_s"] > 0
    assert jobs["bugfix"]["runs"] == counted(e2e, f'{sc.JOB_DURATION.prometheus}_count{{job_type="bugfix"}}',
                                             document)
    # each job type's cost, as the Spend per job type panel reads it (the README said there was none)
    assert jobs["bugfix"]["cost_usd"] > 0
    assert jobs["bugfix"]["cost_usd"] == pytest.approx(
        counted(e2e, f'{sc.JOB_COST.prometheus}_sum{{job_type="bugfix"}}', document), rel=1e-6)


def _seconds_with_data(url: str, at: float) -> list[float]:
    """The whole seconds, within the hour before ``at`` (the shared demo may be older than half an hour by
    now), at which any call series of the demo is stored (the grid the report's finest coverage query evaluates on)."""
    names = "|".join(ACTIVITY)
    answer = http_get_json(f"{url}/api/v1/query_range?" + urllib.parse.urlencode({
        "query": f'count({{otel_scope_name="agent_otel",__name__=~"{names}"}})', "start": f"{math.ceil(at - 3600)}",
        "end": f"{math.floor(at)}", "step": "1s"}), timeout=30)
    return [float(second) for second, _ in answer["data"]["result"][0]["values"]]


def test_a_week_over_minutes_of_data_says_how_much_it_covers(url: str) -> None:
    """The demo has run for minutes: asked for 7 days, the report says how much of the window it covers."""
    document = report_json(url, "--window", "7d")
    meta = document["report"]
    assert meta["partial"] is True and 0 < meta["covered_s"] < 3600, meta
    # to the second, whatever the window: the first second at which Prometheus holds any of the series. Once the
    # data is older than the coverage query's second step (42 s over 7d, 30 s over 1h), the first step of that
    # grid with data was up to a step late: 84 minutes late over hours of data.
    seconds = _seconds_with_data(url, meta["time"])
    first_second = seconds[0]
    wait_until(lambda: time.time() - first_second > 50, "the demo's data to be older than 50 s", timeout_s=120)
    for window in ("7d", "1h"):
        covered = report_json(url, "--window", window)["report"]
        since = covered["data_since"]
        # Later only across a gap: a scrape that fails (a timeout on a loaded machine) marks every series of the
        # demo stale until the next good one, and a gap over the first step of the report's coarse grid with data
        # hides what came before it. Over data with no gap, the report finds the first second.
        gap = any(later - earlier > 1 for earlier, later in itertools.pairwise(seconds) if later <= since)
        assert abs(since - first_second) <= 2 or (gap and since in seconds), (
            window, covered, seconds[:20])
    code, out, err = run("--prometheus", url, "--window", "7d")
    assert code == 0, err
    assert out.splitlines()[1].startswith("The data covers only the last ") and "of the 7d window" in out


def test_table(url: str) -> None:
    code, out, err = run("--prometheus", url, "--window", "1d")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"agent-otel report: last 1d at {url}")
    for title in ("Agents", "Patterns used", "Providers", "Providers by model", "Evolution", "Current KPIs",
                  "Jobs by type (failed: ended in failure or error)", "Tools (errors: executions that raised)"):
        assert title in lines
    agents = lines[lines.index("Agents") + 1:]
    assert agents[0].split()[:3] == ["AGENT", "INVOCATIONS", "SUCCESS"]
    reviewer = next(line for line in agents if line.startswith("reviewer"))
    success = float(reviewer.split()[2])  # e.g. "reviewer  213  32.4 %  $0.000277 ..."
    assert success < 50 and "$" in reviewer and " s" in reviewer
    anthropic = next(line for line in lines[lines.index("Providers"):] if line.startswith("anthropic"))
    assert "%" in anthropic


def test_csv(url: str) -> None:
    code, out, err = run("--prometheus", url, "--format", "csv")
    assert code == 0, err
    table = list(csv.DictReader(io.StringIO(out)))
    assert {row["section"] for row in table} == set(SECTIONS)
    agents = {row["agent"]: row for row in table if row["section"] == "agents"}
    assert set(agents) == set(AGENTS)
    assert float(agents["reviewer"]["success_ratio"]) < 0.5 < float(agents["planner"]["success_ratio"])
    providers = {row["provider"]: row for row in table if row["section"] == "providers"}
    assert float(providers["anthropic"]["availability"]) < 0.9 < float(providers["openai"]["availability"])


def test_a_selector_matching_nothing_is_an_empty_window(url: str) -> None:
    code, out, err = run("--prometheus", url, "--selector", 'job="not-agent-otel"')
    assert code == 1 and out == ""
    assert 'no agent-otel series match {otel_scope_name="agent_otel",job="not-agent-otel"}' in err
