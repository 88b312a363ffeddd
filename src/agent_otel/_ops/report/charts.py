"""The time series behind the HTML report's charts: the key panels of the dashboards, asked of Prometheus
with range queries built from the report's own expressions (:mod:`.queries`).

Each point covers the :func:`resolution`'s range (at least 5 minutes, so that a 15 s scrape interval
gives increase() enough samples) and the points are spaced so that a window has about 240 of them.
Standard library only: drawing is :mod:`.page`'s job.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from agent_otel import semconv as sc
from agent_otel._ops.report.queries import (
    AGENT,
    AGENT_DUR,
    CLIENT_DUR,
    COST,
    ERROR_TYPE,
    EVO_ATTEMPTS,
    EVO_STATUS,
    OUTCOME,
    PROVIDER,
    WINDOWS,
    Prometheus,
    increase_expr,
    label,
    p95_expr,
)

JOB_DUR = sc.JOB_DURATION.prometheus
JOB_TYPE = label(sc.JOB_TYPE)
JOB_OUTCOME = label(sc.JOB_OUTCOME)

#: Points per window, and the shortest range one point covers (seconds).
POINTS = 240
MIN_RANGE_S = 300

#: (label values) -> [(Unix time, value), ...]
Series = dict[tuple[str, ...], list[tuple[float, float]]]


@dataclass(frozen=True)
class Chart:
    """One chart: ``expr(selector, range_s)`` is its PromQL, each point covering ``range_s`` seconds; ``unit`` is
    ratio, seconds, usd_per_hour or per_hour."""

    key: str
    title: str
    description: str
    unit: str
    by: tuple[str, ...]
    expr: Callable[[str, int], str]


def _ratio_by(by: tuple[str, ...], series: str, part: str) -> Callable[[str, int], str]:
    """Share of ``series``'s increase with the ``part`` matcher; 0 (not a gap) where no sample matches it."""
    def expr(selector: str, range_s: int) -> str:
        whole = increase_expr(series, by, selector, f"{range_s}s")
        return f"(({increase_expr(series, by, selector, f'{range_s}s', part)}) or ({whole}) * 0)\n/\n({whole})"
    return expr


def _available_by_provider(selector: str, range_s: int) -> str:
    failed = _ratio_by((PROVIDER,), f"{CLIENT_DUR}_count", f'{ERROR_TYPE}!=""')
    return f"1 - {failed(selector, range_s)}"


def _per_hour(series: str, by: tuple[str, ...]) -> Callable[[str, int], str]:
    def expr(selector: str, range_s: int) -> str:
        return f"{increase_expr(series, by, selector, f'{range_s}s')} * 3600 / {range_s}"
    return expr


CHARTS: tuple[Chart, ...] = (
    Chart("success", "Success ratio per agent", "Share of invocations that ended in success.", "ratio",
          (AGENT,), _ratio_by((AGENT,), f"{AGENT_DUR}_count", f'{OUTCOME}="{sc.Outcome.SUCCESS}"')),
    Chart("latency", "Agent latency p95", "95th percentile of invocation duration, per agent.", "seconds",
          (AGENT,), lambda selector, range_s: p95_expr(AGENT_DUR, (AGENT,), selector, f"{range_s}s")),
    Chart("availability", "Provider availability", "Share of model calls without error.type, per provider.",
          "ratio", (PROVIDER,), _available_by_provider),
    Chart("spend", "Spend per hour by agent", "Estimated model spend (local price table), US dollars per hour.",
          "usd_per_hour", (AGENT,), _per_hour(COST, (AGENT,))),
    Chart("evolution", "Evolution outcomes", "Evolution attempts per hour, all agents, by status.", "per_hour",
          (EVO_STATUS,), _per_hour(EVO_ATTEMPTS, (EVO_STATUS,))),
    Chart("jobs", "Jobs", "Jobs finishing per hour, by type and outcome.", "per_hour",
          (JOB_TYPE, JOB_OUTCOME), _per_hour(f"{JOB_DUR}_count", (JOB_TYPE, JOB_OUTCOME))),
)


@dataclass(frozen=True)
class Resolution:
    """Points every ``step_s`` seconds, each covering the ``range_s`` seconds before it."""

    step_s: int
    range_s: int


def resolution(window: str) -> Resolution:
    step = max(15, WINDOWS[window] // POINTS)
    return Resolution(step, max(step, MIN_RANGE_S))


def chart_series(prom: Prometheus, window: str, selector: str) -> dict[str, Series]:
    """Every chart's series over the window ending at ``prom.time``, keyed by :attr:`Chart.key`."""
    res = resolution(window)
    start = prom.time - WINDOWS[window]
    with ThreadPoolExecutor(max_workers=len(CHARTS)) as pool:
        futures = {chart.key: pool.submit(prom.matrix, chart.expr(selector, res.range_s), chart.by, start, res.step_s)
                   for chart in CHARTS}
        return {key: future.result() for key, future in futures.items()}
