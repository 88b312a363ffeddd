"""The report's agent-version section (issue 20): per agent, the version it runs now and the one before, with
each one's calls, success ratio, mean latency and mean cost over the report's window, side by side.

The current version is the one called last; the previous one is the version it replaced according to the
evolution run that put it in place (``agent_otel_agent_version_introduced_timestamp_seconds``, over the last week), else
the version called last before it (both within the window). Only agents given a ``version`` appear.
"""

from __future__ import annotations

from typing import Any

from agent_otel import semconv as sc
from agent_otel._ops.report.queries import AGENT, AGENT_DUR, COST, OUTCOME, Window, _ratio, _whole, count_expr, matchers

VERSION = sc.prometheus_label(sc.GEN_AI_AGENT_VERSION)
PREVIOUS = sc.prometheus_label(sc.AGENT_VERSION_PREVIOUS)
INTRODUCED = sc.AGENT_VERSION_INTRODUCED.prometheus
_VERSIONED = f'{VERSION}!=""'
_SIDES = (("", "version"), ("previous_", "previous_version"))
_SIDE_KEYS = ("calls", "success_ratio", "avg_latency_s", "avg_cost_usd")

#: (key, header, format) per section, in output order (see render.COLUMNS).
COLUMNS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "agent_versions": (
        ("agent", "AGENT", "text"), ("version", "VERSION", "text"), ("calls", "CALLS", "count"),
        ("success_ratio", "SUCCESS", "ratio"), ("avg_latency_s", "AVG LATENCY", "seconds"),
        ("avg_cost_usd", "AVG COST", "usd"), ("previous_version", "PREVIOUS", "text"),
        ("previous_calls", "CALLS", "count"), ("previous_success_ratio", "SUCCESS", "ratio"),
        ("previous_avg_latency_s", "AVG LATENCY", "seconds"), ("previous_avg_cost_usd", "AVG COST", "usd")),
}
TITLES = {
    "agent_versions": "Agent versions (current, then the version it replaced; each over its calls in the window)",
}


def queries(selector: str, window: Window) -> dict[str, tuple[str, tuple[str, ...]]]:
    """The instant queries of the section, by name: (expression, the labels of its result)."""
    av = (AGENT, VERSION)

    def increase(series: str, *extra: str) -> tuple[str, tuple[str, ...]]:
        return count_expr(series, av, selector, window, _VERSIONED, *extra), av

    calls_per_minute = f"sum by ({AGENT}, {VERSION}) (increase({AGENT_DUR}_count{matchers(selector, _VERSIONED)}[1m]))"
    return {
        "version_calls": increase(f"{AGENT_DUR}_count"),
        "version_successes": increase(f"{AGENT_DUR}_count", f'{OUTCOME}="{sc.Outcome.SUCCESS.value}"'),
        "version_seconds": increase(f"{AGENT_DUR}_sum"),
        "version_cost": increase(COST),
        # The last minute each version was called in.
        "version_last_called": (f"max by ({AGENT}, {VERSION}) (last_over_time(timestamp({calls_per_minute} > 0)"
                                f"[{window.name}:1m]))", av),
        "version_introduced": (f"max by ({AGENT}, {VERSION}, {PREVIOUS}) "
                               f"(last_over_time({INTRODUCED}{matchers(selector)}[{window.name}]))",
                               (AGENT, VERSION, PREVIOUS)),
    }


def _side(r: dict[str, dict[tuple[str, ...], float]], key: tuple[str, str]) -> dict[str, Any]:
    calls = r["version_calls"].get(key)
    whole_calls = _whole(calls)
    return {"calls": whole_calls,
            "success_ratio": _ratio(_whole(r["version_successes"].get(key, 0.0)), whole_calls),
            # Averages divide the counts as counted (not made whole).
            "avg_latency_s": _ratio(r["version_seconds"].get(key), calls),
            "avg_cost_usd": _ratio(r["version_cost"].get(key, 0.0), calls)}


def sections(r: dict[str, dict[tuple[str, ...], float]]) -> dict[str, list[dict[str, Any]]]:
    """The section's rows from the answers to :func:`queries`."""
    called: dict[str, dict[str, float]] = {}  # agent -> version -> when it was called last
    for (agent, version), at in r["version_last_called"].items():
        if agent and version:
            called.setdefault(agent, {})[version] = at
    for agent, version in r["version_calls"]:
        if agent and version:
            called.setdefault(agent, {}).setdefault(version, 0.0)
    introduced: dict[tuple[str, str], tuple[float, str]] = {}  # (agent, version) -> its latest introduction
    for (agent, version, replaced), at in r["version_introduced"].items():
        if replaced and ((agent, version) not in introduced or at > introduced[(agent, version)][0]):
            introduced[(agent, version)] = (at, replaced)
    rows = []
    for agent, versions in sorted(called.items()):
        # Called last; among versions called in the same minute, the one introduced last.
        order = sorted(versions, key=lambda v: (versions[v], introduced.get((agent, v), (0.0, ""))[0]), reverse=True)
        current = order[0]
        previous: str | None = introduced[(agent, current)][1] if (agent, current) in introduced else \
            (order[1] if len(order) > 1 else None)
        row: dict[str, Any] = {"agent": agent}
        for prefix, name in _SIDES:
            shown = current if not prefix else previous
            row[name] = shown
            side = _side(r, (agent, shown)) if shown is not None else dict.fromkeys(_SIDE_KEYS)
            row.update({prefix + key: value for key, value in side.items()})
        rows.append(row)
    return {"agent_versions": rows}
