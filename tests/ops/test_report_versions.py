"""The report's agent-version section over canned Prometheus answers: the current version (called last), the
previous one (from the evolution lineage, else called before it) and each one's numbers side by side."""

from __future__ import annotations

from typing import Any

from agent_otel._ops.report import render
from agent_otel._ops.report import versions as v
from agent_otel._ops.report.queries import Options, collect
from tests.ops.test_report import by, canned


def test_current_and_previous_version_side_by_side() -> None:
    prom = canned()  # its answers include tests.support.report_versions
    report = collect(prom, Options("http://canned", selector=""))
    coder = by(report.sections["agent_versions"], agent="coder")
    assert coder == {
        "agent": "coder", "version": "v3", "calls": 60, "success_ratio": 0.5, "avg_latency_s": 4.0,
        "avg_cost_usd": 0.02, "previous_version": "v2", "previous_calls": 100, "previous_success_ratio": 0.9,
        "previous_avg_latency_s": 2.0, "previous_avg_cost_usd": 0.01}
    planner = by(report.sections["agent_versions"], agent="planner")  # one version, no lineage: nothing before
    assert planner["version"] == "p1" and planner["success_ratio"] == 1.0
    assert planner["previous_version"] is None and planner["previous_calls"] is None
    text = render.table(report)
    assert "Agent versions" in text and "PREVIOUS" in text
    assert any(f'{v.VERSION}!=""' in expr for expr in prom.asked)


def test_without_lineage_the_previous_version_is_the_one_called_before() -> None:
    r: dict[str, dict[tuple[str, ...], float]] = {
        "version_last_called": {("a", "x"): 10.0, ("a", "y"): 20.0, ("a", "z"): 5.0},
        "version_calls": {("a", "x"): 4.0, ("a", "y"): 2.0}, "version_successes": {("a", "y"): 2.0},
        "version_seconds": {}, "version_cost": {}, "version_introduced": {}}
    [row] = v.sections(r)["agent_versions"]
    assert (row["version"], row["previous_version"], row["calls"], row["previous_calls"]) == ("y", "x", 2, 4)
    assert row["success_ratio"] == 1.0 and row["previous_success_ratio"] == 0.0


def test_a_rollback_makes_the_version_returned_to_current_with_the_bad_one_as_previous() -> None:
    r: dict[str, dict[tuple[str, ...], Any]] = {
        "version_last_called": {("a", "v2"): 100.0, ("a", "v3"): 100.0},  # both called in the last minute
        "version_calls": {}, "version_successes": {}, "version_seconds": {}, "version_cost": {},
        "version_introduced": {("a", "v3", "v2"): 50.0, ("a", "v2", "v3"): 90.0, ("a", "v2", "v1"): 10.0}}
    [row] = v.sections(r)["agent_versions"]
    assert (row["version"], row["previous_version"]) == ("v2", "v3")
