"""Agent versions end to end: the demo's evolution runs put new agent versions in place (fleet.py), the
shipped version rules compare each new version with the one it replaced, the Evolution dashboard's version
panels have data (test_prometheus_e2e), and `agent-otel report` shows every agent's current and previous
version side by side."""

from __future__ import annotations

import contextlib
import io
import json
from typing import Any

import pytest
from mixin.rules import versions as rules

from agent_otel import semconv as sc
from agent_otel._cli import main
from tests.support.e2e import E2E, settled_time
from tests.support.polling import wait_until

pytestmark = pytest.mark.e2e

AGENTS = ("coder", "planner", "reviewer", "tester")
AGENT, VERSION = sc.prometheus_label(sc.GEN_AI_AGENT_NAME), sc.prometheus_label(sc.GEN_AI_AGENT_VERSION)
PREVIOUS = sc.prometheus_label(sc.AGENT_VERSION_PREVIOUS)


def report(url: str) -> dict[str, Any]:
    """The report at a settled moment: its sections are compared with each other."""
    out, err = io.StringIO(), io.StringIO()
    at = f"{settled_time(url):.3f}"
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["report", "--prometheus", url, "--format", "json", "--at", at])
    assert code == 0, err.getvalue()
    document: dict[str, Any] = json.loads(out.getvalue())
    return document


def test_each_new_version_is_compared_with_the_one_it_replaced(e2e: E2E) -> None:
    def compared() -> list[dict[str, Any]]:  # both rules: each one's result is stored on its own
        e2e.demo_alive()
        found = e2e.query(rules.PREVIOUS_SUCCESS_RATIO)
        means = e2e.query(rules.PREVIOUS_MEAN)
        return found if {s["metric"][AGENT] for s in found} == {s["metric"][AGENT] for s in means} == set(
            AGENTS) else []

    wait_until(compared, "every demo agent's new version compared with its previous one", timeout_s=180)
    for sample in e2e.query(rules.PREVIOUS_SUCCESS_RATIO):
        labels = sample["metric"]
        assert labels[VERSION] != labels[PREVIOUS] and labels[PREVIOUS].startswith("v"), labels
        assert 0 <= float(sample["value"][1]) <= 1
    # the demo's versions all succeed alike: no success regression fires (their latency is the machine's: a
    # loaded moment of a 2-core CI machine may slow one version's calls, a latency alert then is right)
    alerts = e2e.api("/api/v1/alerts")["alerts"]
    assert not [a for a in alerts if a["labels"]["alertname"] == "AgentOtelVersionSuccessRegression"
                and a["state"] == "firing"]


def test_report_shows_current_and_previous_version_side_by_side(e2e: E2E) -> None:
    url = e2e.stack.prometheus_url
    document: dict[str, Any] = {}

    def every_agent_has_a_previous_version() -> bool:
        e2e.demo_alive()
        document.update(report(url))
        rows = {row["agent"]: row for row in document["agent_versions"]}
        # (a version put in place a moment ago has had no call yet, or one that rounds away)
        return set(rows) == set(AGENTS) and all(row["previous_version"] and (row["calls"] or 0) >= 5
                                                and (row["previous_calls"] or 0) >= 5 for row in rows.values())

    wait_until(every_agent_has_a_previous_version, "a previous version with calls for every demo agent",
               timeout_s=180)
    invocations = {row["agent"]: row["invocations"] for row in document["agents"]}
    for row in document["agent_versions"]:
        assert row["version"] != row["previous_version"], row
        for side in ("", "previous_"):
            assert row[side + "calls"] > 0 and 0 <= row[side + "success_ratio"] <= 1, row
            assert row[side + "avg_latency_s"] > 0 and row[side + "avg_cost_usd"] > 0, row
        # two of the agent's versions: at most the agent's calls (each count is rounded on its own)
        assert row["calls"] + row["previous_calls"] <= invocations[row["agent"]] + 1, row
