"""Every query of the shipped Grafana dashboards, run against a real Prometheus as Grafana would run it: the
template variables at All (Grafana's default here) or at the first value their `label_values` query offers,
Grafana's interval variables at fixed values. Used by both export paths' e2e tests (direct scrape and
through the Collector), so that they check the same queries the same way."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from tests.support.paths import ASSETS
from tests.support.polling import wait_until

#: GET an /api/v1 path of Prometheus with query parameters, returning its `data`.
Api = Callable[..., Any]
#: Run an instant query, returning its result vector.
Query = Callable[[str], list[dict[str, Any]]]

GRAFANA_INTERVALS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}
#: How to set the template variables: "all" (Grafana's default here) or "first" (each one's first value).
SELECTIONS = ("all", "first")


def dashboard_targets() -> list[tuple[str, str, str, dict[str, Any]]]:
    """(dashboard, panel title, expr, the dashboard's query variables by name) for every panel query."""
    out = []
    for path in sorted((ASSETS / "grafana/dashboards").glob("*.json")):
        dashboard = json.loads(path.read_text())
        variables = {v["name"]: v for v in dashboard["templating"]["list"] if v["type"] == "query"}
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                if "expr" in target:
                    out.append((path.stem, panel["title"], target["expr"], variables))
    return out


def resolve_variable(api: Api, definition: dict[str, Any], chosen: dict[str, str]) -> str | None:
    """The first value Grafana's `label_values(selector, label)` would offer, escaped as Grafana escapes a
    single value for a `=~` matcher (regex metacharacters, then backslashes for the PromQL string); None
    while it offers nothing."""
    query = definition["query"]["query"] if isinstance(definition["query"], dict) else definition["query"]
    match = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", query.strip())
    assert match, query
    selector = substitute(match.group(1), chosen)
    values = sorted({series[match.group(2)] for series in api("/api/v1/series", **{"match[]": selector})
                     if match.group(2) in series})
    return re.escape(values[0]).replace("\\", "\\\\") if values else None


def substitute(expr: str, chosen: dict[str, str]) -> str:
    for name, value in GRAFANA_INTERVALS.items():
        expr = expr.replace(name, value)
    for name, value in chosen.items():
        expr = expr.replace("${" + name + "}", value).replace("$" + name, value)
    return expr


def queries_without_data(api: Api, query: Query, selection: str) -> list[str]:
    """Each panel query that returns nothing ("dashboard / panel: query"), with the variables set by
    ``selection``."""
    failures: list[str] = []
    for dashboard, title, expr, variables in dashboard_targets():
        chosen: dict[str, str] = {}
        for name, definition in variables.items():  # in order: later variables may use earlier ones
            value = ((definition.get("allValue") or ".*") if selection == "all"
                     else resolve_variable(api, definition, chosen))
            if value is None:
                failures.append(f"{dashboard}: variable {name} ({definition['query']}) offers nothing")
                break
            chosen[name] = value
        else:
            resolved = substitute(expr, chosen)
            assert "$" not in resolved, resolved
            if not query(resolved):
                failures.append(f"{dashboard} / {title}: {resolved}")
    return failures


def check_every_dashboard_query_returns_data(api: Api, query: Query, selection: str,
                                             alive: Callable[[], None] = lambda: None) -> None:
    """Every panel query returns data within 90 s; ``alive`` fails the wait early when a process died."""
    assert len(dashboard_targets()) > 50
    failures: list[str] = []

    def all_return_data() -> bool:
        alive()
        failures[:] = queries_without_data(api, query, selection)
        return not failures

    try:
        wait_until(all_return_data, "data for every dashboard query", timeout_s=90)
    except AssertionError:
        raise AssertionError("queries without data:\n" + "\n".join(failures)) from None
