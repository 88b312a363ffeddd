"""What ``agent-otel report`` asks Prometheus, and how it asks.

Every metric and label name comes from :mod:`agent_otel.semconv`. Queries run over the raw series
(what each series counted in the window, :func:`count_expr`, summed ``by`` the labels of the section)
because the recording rules only exist for a few windows and extrapolate as rates do; the confidence bands
are the shipped calibration rules' expressions (``band_expr``, checked against the shipped
prometheus/agent-otel.rules.yaml by the tests) counted that way.
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from agent_otel import semconv as sc
from agent_otel._ops.assets import ASSETS_ENV, AssetsError, assets_root

#: The windows the report offers, in seconds (PromQL durations as keys).
WINDOWS = {"1h": 3600, "1d": 86400, "7d": 604800}

#: The series selector of the shipped rules when no thresholds.yaml is found in the assets directory ('': every
#: agent-otel series). tests/ops/test_report.py fails when it differs from the shipped thresholds.yaml.
DEFAULT_SELECTOR = ""
#: Every query also matches agent-otel's instrumentation scope, as the shipped rules do: another GenAI
#: instrumentation's gen_ai_* series in the same Prometheus are not ours.
OURS = f'otel_scope_name="{sc.SCOPE_NAME}"'
#: The labels that tell services and environments apart on both paths (semconv.SCOPING_RESOURCE_ATTRIBUTES).
SERVICE_LABELS = tuple(sc.prometheus_label(key) for key in sc.SCOPING_RESOURCE_ATTRIBUTES)
THRESHOLDS_FILE = "thresholds.yaml"


label = sc.prometheus_label


AGENT = label(sc.GEN_AI_AGENT_NAME)
OUTCOME = label(sc.AGENT_OUTCOME)
PATTERN = label(sc.AGENT_PATTERN)
PROVIDER = label(sc.GEN_AI_PROVIDER_NAME)
MODEL = label(sc.GEN_AI_REQUEST_MODEL)
ERROR_TYPE = label(sc.ERROR_TYPE)
EVO_TYPE = label(sc.EVOLUTION_TYPE)
EVO_STATUS = label(sc.EVOLUTION_STATUS)
KPI = label(sc.AGENT_KPI_NAME)
JOB_TYPE = label(sc.JOB_TYPE)
JOB_OUTCOME = label(sc.JOB_OUTCOME)
TOOL = label(sc.GEN_AI_TOOL_NAME)

AGENT_DUR = sc.AGENT_DURATION.prometheus
CONFIDENCE = sc.AGENT_CONFIDENCE_HISTOGRAM.prometheus
PATTERNS = sc.AGENT_PATTERNS_USED.prometheus
CLIENT_DUR = sc.CLIENT_INFERENCE_DURATION.prometheus
COST = sc.CLIENT_COST.prometheus
RETRIES = sc.CLIENT_RETRIES.prometheus
FALLBACKS = sc.CLIENT_FALLBACKS.prometheus
EVO_ATTEMPTS = sc.EVOLUTION_ATTEMPTS.prometheus
EVO_IMPROVEMENT = sc.EVOLUTION_PERFORMANCE_IMPROVEMENT.prometheus
KPI_CURRENT = sc.AGENT_KPI_CURRENT.prometheus
JOB_DUR = sc.JOB_DURATION.prometheus
JOB_COST = sc.JOB_COST.prometheus
TOOL_DUR = sc.TOOL_DURATION.prometheus
#: The series whose first sample in the window says since when the window holds data: every kind of call.
ACTIVITY = (f"{AGENT_DUR}_count", f"{CLIENT_DUR}_count", f"{TOOL_DUR}_count", f"{JOB_DUR}_count", EVO_ATTEMPTS)
#: Steps of the query that finds the window's first data: its resolution is the window / this.
COVERAGE_STEPS = 120

#: Calibration bands, the one definition the shipped rules use too (mixin/rules/calibration.py).
BANDS = sc.CONFIDENCE_BANDS


class PrometheusUnreachable(Exception):
    """Prometheus could not be asked or did not answer like Prometheus (exit 2)."""


class NoData(Exception):
    """Prometheus answered, but holds no agent-otel data for the window (exit 1)."""



#: How often, over the window, the report looks for runs that just ended (at most 2,000 steps; within a run's
#: 20 minutes, so none is missed). The alert looks every 5 minutes over its day.
_AFTER_RUNS_STEP = {"1h": "15s", "1d": "1m", "7d": "5m"}


_NOT_FAILED = f'{EVO_STATUS}!="{sc.EvolutionStatus.FAILED.value}"'
#: Per deployment and agent: a run in one service is no run of another's.
_RUN_LABELS = f"job, {', '.join(SERVICE_LABELS)}, {AGENT}, {EVO_TYPE}"


def _runs_just_ended(attempts: str) -> str:
    """The deployments' agents and evolution types whose run that did not fail ended within the last 20 minutes
    (``attempts``: their attempts counter, without the failed runs, which set no improvement when they failed before
    their KPIs were read): it rose, or appeared (a first run: ``increase()`` does not count a series' first value).
    As the shipped AgentOtelEvolutionNoProgress reads them (``mixin/rules/evolution.py``)."""
    return (f"(sum by ({_RUN_LABELS}) (increase({attempts}[20m])) > 0 or group by ({_RUN_LABELS}) ({attempts} "
            f"unless {attempts} offset 20m))")


def default_selector() -> str:
    """``selector`` of the shipped thresholds.yaml (or $AGENT_OTEL_ASSETS's), the one the shipped rules apply,
    else :data:`DEFAULT_SELECTOR`. Read with a regex: PyYAML is not a runtime dependency. It selects series by
    their own labels (service_name, deployment_environment_name...), so it finds the data on the direct path
    and behind a Collector alike, where ``job`` is the service name."""
    file = assets_root() / THRESHOLDS_FILE
    try:
        text = file.read_text()
    except OSError as exc:
        if os.environ.get(ASSETS_ENV):  # an operator's copy that is not there: never the default in silence
            raise AssetsError(f"cannot read {file} ({exc.strerror or exc}; the assets directory is set by "
                              f"{ASSETS_ENV}): set it to a copy made by `agent-otel assets --copy DIR`, "
                              "or pass --selector") from None
        return DEFAULT_SELECTOR
    found = re.search(r"""^selector:\s*(?:'((?:[^']|'')*)'|"((?:[^"\\]|\\.)*)")\s*(?:#.*)?$""", text, re.M)
    if found and found[1] is not None:
        return found[1].replace("''", "'")
    if found:
        try:  # a double-quoted YAML string's escapes, as far as JSON shares them
            selector: str = json.loads(f'"{found[2]}"')
            return selector
        except ValueError:  # YAML's own (\x41, \.): PyYAML is not a runtime dependency
            raise AssetsError(f"{file}: selector: an escape in a double-quoted string that the report cannot read; "
                              "write it in single quotes (selector: 'service_name=\"checkout\"')") from None
    if re.search(r"^selector:", text, re.M):
        raise AssetsError(f"{file}: selector: expected a quoted string of label matchers, e.g. "
                          """selector: 'deployment_environment_name="prod"' (or '' for every series)""")
    return DEFAULT_SELECTOR


def slow_bound(slow_ms: float) -> float:
    """The GenAI duration bucket bound that counts calls slower than ``slow_ms``: the smallest bound >= it."""
    seconds = slow_ms / 1000
    for bound in sc.GENAI_DURATION_BUCKETS:
        if bound >= seconds - 1e-12:
            return bound
    raise ValueError(f"{slow_ms:g} ms is above the largest duration bucket bound "
                     f"({sc.GENAI_DURATION_BUCKETS[-1]:g} s)")


def matchers(selector: str, *extra: str) -> str:
    """``{selector,extra...}``; the selector may come with or without braces, or be empty."""
    parts = [part for part in (selector.strip().removeprefix("{").removesuffix("}").strip(), *extra) if part]
    return "{" + ",".join(parts) + "}" if parts else ""


def scoped(selector: str) -> str:
    """``selector`` and agent-otel's instrumentation scope: what every query of the report matches."""
    return ",".join(part for part in (OURS, selector.strip().removeprefix("{").removesuffix("}").strip()) if part)


def increase_expr(series: str, by: tuple[str, ...], selector: str, window: str, *extra: str) -> str:
    """How much ``series`` grew over ``window``, summed by the ``by`` labels, as a rate reads it (extrapolated to
    the window's edges): the charts' points, over a sliding range."""
    return f"sum by ({', '.join(by)}) (increase({series}{matchers(selector, *extra)}[{window}]))"


#: A series seen this soon after the data starts was there when Prometheus first looked (a scrape interval of
#: up to a minute): what it counted before then is not known.
FIRST_LOOK_S = 60


@dataclass(frozen=True)
class Window:
    """What the report's counts are over: the window (``1h``...) and, when the data starts inside it, when
    (Unix seconds)."""

    name: str
    data_since: float | None = None


def count_expr(series: str, by: tuple[str, ...], selector: str, window: Window, *extra: str) -> str:
    """How much the counter ``series`` counted in ``window``, summed by the ``by`` labels: exactly the samples
    Prometheus holds, where ``increase()`` extrapolates each series to the window's edges (half a scrape interval
    at each end: 10 to 20 % too many over minutes of data) and never counts a series' first value (a new label
    set starts at its first count: one error of a new type read 0).

    Per series: its last value minus its value when the window starts (its last one before, however long its
    target was down: a window long); a series first seen in the window counts from zero, and so does one whose
    first value in the window is below its value before (a process restarted under the same labels across the
    window's start); unless it was there when Prometheus first looked (the data starts in the window, and the
    series within :data:`FIRST_LOOK_S` of it): then what it counted before is unknown, and its growth since is
    counted. A series that went down in the window is counted as ``increase()`` counts it."""
    selected = f"{series}{matchers(selector, *extra)}"
    w = window.name
    last = f"last_over_time({selected}[{w}])"
    least = f"min_over_time({selected}[{w}])"  # its first value in the window, as long as it never went down there
    if window.data_since is None:
        before = f"last_over_time({selected}[{w}] offset {w})"  # its value when the window starts
        counted = f"(({last} - {before}) and (({least} - {before}) >= 0)) or {last}"
    else:
        first_look = f"last_over_time({selected}[{FIRST_LOOK_S}s] @ {window.data_since + FIRST_LOOK_S:.3f})"
        counted = f"({last} unless {first_look}) or ({last} - {least})"
    per_series = f"(({counted}) unless resets({selected}[{w}]) > 0) or increase({selected}[{w}])"
    return f"sum by ({', '.join(by)}) ({per_series})"


def band_expr(band: str, window: str | Window, selector: str = "") -> str:
    """Invocations per agent and outcome in one confidence band: the shipped rules' expression over a window
    named by its range (``1h``), and the report's count (:func:`count_expr`) over a :class:`Window`."""
    _, lower, upper = next(entry for entry in BANDS if entry[0] == band)
    by = f"{AGENT}, {OUTCOME}"

    def cumulative(le: str) -> str:
        bound = f"le={json.dumps(le)}"
        if isinstance(window, Window):
            return count_expr(f"{CONFIDENCE}_bucket", (AGENT, OUTCOME), selector, window, bound)
        return f"sum by ({by}) (increase({CONFIDENCE}_bucket{matchers(selector, bound)}[{window}]))"

    return cumulative(upper) if lower is None else f"{cumulative(upper)}\n-\n{cumulative(lower)}"


def p95_expr(histogram: str, by: tuple[str, ...], selector: str, window: str) -> str:
    """The 95th percentile of ``histogram`` over ``window``, per value of the ``by`` labels."""
    return (f"histogram_quantile(0.95, sum by ({', '.join((*by, 'le'))}) "
            f"(increase({histogram}_bucket{matchers(selector)}[{window}])))")


def coverage_expr(window: str, step_s: int, selector: str = "", at: float | None = None) -> str:
    """The earliest step (every ``step_s`` seconds) of ``window`` (ending ``at``, default the query's time) at
    which any agent-otel call series matching ``selector`` had data (Unix seconds): a subquery, cheap over 7
    days too."""
    names = "|".join(ACTIVITY)
    series = matchers(selector, f'__name__=~"{names}"')
    end = f" @ {at:.3f}" if at is not None else ""
    return f"min_over_time(timestamp(count({series}))[{window}:{step_s}s]{end})"


def coverage_step(window: str) -> int:
    """The resolution of the coverage query over ``window``: 1/:data:`COVERAGE_STEPS` of it."""
    return max(1, WINDOWS[window] // COVERAGE_STEPS)


# --------------------------------------------------------------------------------------------------
# The HTTP API
# --------------------------------------------------------------------------------------------------


def normalize_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", url):
        url = "http://" + url
    return url


def _cause(exc: BaseException) -> str:
    """One readable phrase for why a request failed."""
    reason: Any = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused (is Prometheus running there?)"
    if isinstance(reason, socket.gaierror):
        return f"cannot resolve the host name ({reason.strerror or reason})"
    if isinstance(reason, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__


@dataclass
class Prometheus:
    """Instant queries against one Prometheus, all evaluated at the same ``time``."""

    url: str
    time: float
    timeout: float = 30.0
    opener: Callable[..., Any] = field(default=urllib.request.urlopen, repr=False)

    def query(self, expr: str) -> list[dict[str, Any]]:
        return self._ask("query", {"query": expr, "time": f"{self.time:.3f}"}, "vector")

    def query_range(self, expr: str, start: float, step: float) -> list[dict[str, Any]]:
        """``expr`` every ``step`` seconds from ``start`` to :attr:`time` (``/api/v1/query_range``)."""
        return self._ask("query_range", {"query": expr, "start": f"{start:.3f}", "end": f"{self.time:.3f}",
                                         "step": f"{step:g}"}, "matrix")

    def _ask(self, endpoint: str, params: dict[str, str], result_type: str) -> list[dict[str, Any]]:
        target = f"{self.url}/api/v1/{endpoint}?" + urllib.parse.urlencode(params)
        try:
            with self.opener(target, timeout=self.timeout) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            detail = _error_detail(exc)
            raise PrometheusUnreachable(f"HTTP {exc.code} {exc.reason}" + (f": {detail}" if detail else "")) from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise PrometheusUnreachable(_cause(exc)) from None
        try:
            answer = json.loads(body)
        except ValueError:
            raise PrometheusUnreachable("the answer is not JSON (is this a Prometheus server?)") from None
        if not isinstance(answer, dict) or answer.get("status") != "success":
            error = answer.get("error") if isinstance(answer, dict) else None
            raise PrometheusUnreachable(f"query failed: {error}" if error else
                                        "unexpected answer (not a Prometheus query API response)")
        data = answer.get("data")
        if (not isinstance(data, dict) or data.get("resultType") != result_type
                or not isinstance(data.get("result"), list)):
            raise PrometheusUnreachable(f"unexpected answer (no {result_type} result)")
        result: list[dict[str, Any]] = data["result"]  # checked to be a list just above; JSON samples
        return result

    def vector(self, expr: str, by: tuple[str, ...]) -> dict[tuple[str, ...], float]:
        """The result of ``expr`` keyed by the values of the ``by`` labels ('' when absent); NaN dropped."""
        found: dict[tuple[str, ...], float] = {}
        for sample in self.query(expr):
            try:
                value = float(sample["value"][1])
                labels = sample.get("metric", {})
            except (KeyError, IndexError, TypeError, ValueError):
                raise PrometheusUnreachable("unexpected answer (malformed sample)") from None
            if not math.isnan(value):
                found[tuple(labels.get(name, "") for name in by)] = value
        return found

    def matrix(self, expr: str, by: tuple[str, ...], start: float, step: float
               ) -> dict[tuple[str, ...], list[tuple[float, float]]]:
        """The range query's series keyed by the values of the ``by`` labels: (Unix time, value) points, NaN dropped."""
        found: dict[tuple[str, ...], list[tuple[float, float]]] = {}
        for series in self.query_range(expr, start, step):
            try:
                points = [(float(at), float(value)) for at, value in series["values"]]
                labels = series.get("metric", {})
            except (KeyError, TypeError, ValueError):
                raise PrometheusUnreachable("unexpected answer (malformed series)") from None
            found[tuple(labels.get(name, "") for name in by)] = [p for p in points if not math.isnan(p[1])]
        return found


def _error_detail(exc: urllib.error.HTTPError) -> str:
    try:
        answer = json.loads(exc.read())
        return str(answer.get("error") or "")
    except Exception:
        return ""


# --------------------------------------------------------------------------------------------------
# The report's data
# --------------------------------------------------------------------------------------------------


@dataclass
class Options:
    prometheus: str
    window: str = "1h"
    selector: str = DEFAULT_SELECTOR
    slow_ms: float | None = None
    timeout: float = 30.0


@dataclass
class Report:
    """``meta`` describes the run; ``sections`` maps a section name to its rows (dicts, same keys per section)."""

    meta: dict[str, Any]
    sections: dict[str, list[dict[str, Any]]]


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def _whole(count: float | None) -> int | None:
    """A count as a whole number (an int): the counts are whole already, but for a series that went down in the
    window, which ``increase()`` counts, extrapolating it to the window's edges (5 runs come back as 5.07); ratios
    are computed from the whole counts, so that 2 of 5 reads 40 %, not 40.1 %."""
    return None if count is None else max(0, round(count))


def _sum_whole(counts: dict[tuple[str, ...], float], keys: list[tuple[str, ...]]) -> int:
    return sum(_whole(counts.get(key, 0.0)) or 0 for key in keys)


def collect(prom: Prometheus, options: Options) -> Report:
    """Ask every question of the report; raise NoData when the window holds no agent-otel data."""
    w = options.window
    sel = scoped(options.selector)

    def m(*extra: str) -> str:
        return matchers(sel, *extra)

    # One query first, so that an unreachable or wrong server fails once, fast, not once per query.
    # ...and counts the services (service and environment) whose agent-otel series match: `up` would count
    # the Collector behind a Collector, and misses a selector on the series' own labels.
    r = {"targets": prom.vector(f"count(count by ({', '.join(SERVICE_LABELS)}) ({m()}))", ())}
    # When Prometheus first saw agent-otel data, whatever the selector: a series there then may have counted before
    # it (its growth since is counted); one first seen later is a new process's, from zero. The selection's own first
    # sample read a service deployed inside the window as there from the start: each series' first value was lost
    # (a first error read 0), and the report said the data covered only the service's life.
    first = _data_since(prom, scoped(""), w)
    # (the data starts in the window as the report says it does: `first` is a second precise then, else a step's)
    counted_over = Window(w, first if _coverage(first, prom.time, w)["partial"] else None)

    def increase(series: str, by: tuple[str, ...], *extra: str) -> tuple[str, tuple[str, ...]]:
        return count_expr(series, by, sel, counted_over, *extra), by

    def p95(series: str, by: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
        return p95_expr(series, by, sel, w), by

    bound = slow_bound(options.slow_ms) if options.slow_ms is not None else None
    pm = (PROVIDER, MODEL)
    queries: dict[str, tuple[str, tuple[str, ...]]] = {
        "agent_calls": increase(f"{AGENT_DUR}_count", (AGENT,)),
        "agent_successes": increase(f"{AGENT_DUR}_count", (AGENT,), f'{OUTCOME}="{sc.Outcome.SUCCESS}"'),
        "agent_seconds": increase(f"{AGENT_DUR}_sum", (AGENT,)),
        "agent_p95": p95(AGENT_DUR, (AGENT,)),
        "agent_cost": increase(COST, (AGENT,)),
        "patterns": increase(PATTERNS, (AGENT, PATTERN)),
        "model_calls": increase(f"{CLIENT_DUR}_count", pm),
        "model_errors": increase(f"{CLIENT_DUR}_count", pm, f'{ERROR_TYPE}!=""'),
        "model_p95": p95(CLIENT_DUR, pm),
        "provider_p95": p95(CLIENT_DUR, (PROVIDER,)),
        "model_retries": increase(RETRIES, pm),
        "model_cost": increase(COST, pm),
        "fallbacks": increase(FALLBACKS, (PROVIDER,)),
        "evolution": increase(EVO_ATTEMPTS, (AGENT, EVO_TYPE, EVO_STATUS)),
        # the gauge just after each run of the window (it holds a run's value until the next run, so its best value
        # over the window included a run from before it), as AgentOtelEvolutionNoProgress reads it
        "improvement": (f"max by ({AGENT}, {EVO_TYPE}) (max_over_time(({EVO_IMPROVEMENT}{m()} and on ({_RUN_LABELS}) "
                        f"{_runs_just_ended(EVO_ATTEMPTS + m(_NOT_FAILED))})[{w}:{_AFTER_RUNS_STEP[w]}]))",
                        (AGENT, EVO_TYPE)),
        "kpis": (f"avg by ({AGENT}, {KPI}) (last_over_time({KPI_CURRENT}{m()}[{w}]))", (AGENT, KPI)),
        "job_runs": increase(f"{JOB_DUR}_count", (JOB_TYPE,)),
        "job_failures": increase(f"{JOB_DUR}_count", (JOB_TYPE,), f'{JOB_OUTCOME}!="{sc.Outcome.SUCCESS}"'),
        "job_p95": p95(JOB_DUR, (JOB_TYPE,)),
        "job_cost": increase(f"{JOB_COST}_sum", (JOB_TYPE,)),
        "tool_calls": increase(f"{TOOL_DUR}_count", (TOOL,)),
        "tool_errors": increase(f"{TOOL_DUR}_count", (TOOL,), f'{ERROR_TYPE}!=""'),
        "tool_p95": p95(TOOL_DUR, (TOOL,)),
    }
    if bound is not None:
        # As the shipped *_availability_with_slow rules: slow calls are counted among the calls without
        # error only, so that a call that timed out is not counted twice.
        ok = f'{ERROR_TYPE}=""'
        queries["model_slow"] = (
            f"{count_expr(f'{CLIENT_DUR}_count', pm, sel, counted_over, ok)}\n-\n"
            f"{count_expr(f'{CLIENT_DUR}_bucket', pm, sel, counted_over, ok, f'le={json.dumps(str(bound))}')}", pm)
    for band, _, _ in BANDS:
        queries[f"band_{band}"] = (band_expr(band, counted_over, sel), (AGENT, OUTCOME))
    # The workflow sections build on this module's helpers, so they are imported here, when the report runs.
    from agent_otel._ops.report import workflows

    queries.update(workflows.queries(sel, counted_over))
    from agent_otel._ops.report import versions  # as workflows

    queries.update(versions.queries(sel, counted_over))
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = {name: pool.submit(prom.vector, expr, by) for name, (expr, by) in queries.items()}
        r.update({name: future.result() for name, future in futures.items()})

    sections: dict[str, list[dict[str, Any]]] = {}
    agents = sorted({key[0] for key in r["agent_calls"]})
    sections["agents"] = []
    for agent in agents:
        invocations = _whole(r["agent_calls"].get((agent,)))
        successes = _whole(r["agent_successes"].get((agent,), 0.0))
        sections["agents"].append({
            "agent": agent,
            "invocations": invocations,
            "successes": successes,
            "success_ratio": _ratio(successes, invocations),
            # Averages divide the counts as counted (not made whole).
            "avg_cost_usd": _ratio(r["agent_cost"].get((agent,), 0.0), r["agent_calls"].get((agent,))),
            "avg_latency_s": _ratio(r["agent_seconds"].get((agent,)), r["agent_calls"].get((agent,))),
            "p95_latency_s": r["agent_p95"].get((agent,)),
        })
    uses = {key: _whole(value) or 0 for key, value in r["patterns"].items()}
    uses_per_agent: dict[str, int] = {}
    for (agent, _), used in uses.items():
        uses_per_agent[agent] = uses_per_agent.get(agent, 0) + used
    sections["patterns"] = [
        {"agent": agent, "pattern": pattern, "uses": used, "share": _ratio(used, uses_per_agent[agent])}
        for (agent, pattern), used in sorted(uses.items())
    ]

    def provider_row(calls: int, errors: int, slow: int | None, retries: int, cost: float,
                     latency: float | None) -> dict[str, Any]:
        unavailable = errors + (slow or 0)
        return {"calls": calls, "errors": errors, "slow": slow,
                "availability": None if not calls else max(0.0, 1 - unavailable / calls),
                "p95_latency_s": latency, "retries": retries, "cost_usd": cost}

    slow = {key: max(0.0, value) for key, value in r.get("model_slow", {}).items()}
    models = sorted(r["model_calls"])
    per_provider: dict[str, list[tuple[str, ...]]] = {}
    for key in models:
        per_provider.setdefault(key[0], []).append(key)
    sections["providers"] = []
    for provider, keys in sorted(per_provider.items()):
        row = provider_row(
            _sum_whole(r["model_calls"], keys), _sum_whole(r["model_errors"], keys),
            None if bound is None else _sum_whole(slow, keys),
            _sum_whole(r["model_retries"], keys), sum(r["model_cost"].get(k, 0.0) for k in keys),
            r["provider_p95"].get((provider,)))
        row["fallbacks"] = _whole(r["fallbacks"].get((provider,), 0.0))
        row["fallback_ratio"] = _ratio(row["fallbacks"], row["calls"])
        sections["providers"].append({"provider": provider, **row})
    sections["provider_models"] = [
        {"provider": key[0], "model": key[1],
         **provider_row(_sum_whole(r["model_calls"], [key]), _sum_whole(r["model_errors"], [key]),
                        None if bound is None else _sum_whole(slow, [key]),
                        _sum_whole(r["model_retries"], [key]), r["model_cost"].get(key, 0.0), r["model_p95"].get(key))}
        for key in models
    ]

    calibration: dict[tuple[str, str], list[int]] = {}
    for band, _, _ in BANDS:
        for (agent, outcome), count in r[f"band_{band}"].items():
            entry = calibration.setdefault((agent, band), [0, 0])
            entry[0] += _whole(count) or 0
            if outcome == sc.Outcome.SUCCESS:
                entry[1] += _whole(count) or 0
    sections["calibration"] = []
    for agent in sorted({agent for agent, _ in calibration}):
        for band, _, _ in BANDS:  # every band of every agent, so that an empty band shows as such
            invocations, successes = calibration.get((agent, band), [0, 0])
            sections["calibration"].append({"agent": agent, "band": band, "invocations": invocations,
                                            "successes": successes, "success_ratio": _ratio(successes, invocations)})

    attempts: dict[tuple[str, str], dict[str, int]] = {}
    for (agent, kind, status), count in r["evolution"].items():
        attempts.setdefault((agent, kind), {})[status] = _whole(count) or 0
    for agent, kind in r["improvement"]:
        attempts.setdefault((agent, kind), {})
    sections["evolution"] = []
    for (agent, kind), by_status in sorted(attempts.items()):
        total = sum(by_status.values())
        succeeded = by_status.get(sc.EvolutionStatus.SUCCEEDED, 0)
        sections["evolution"].append({
            "agent": agent, "evolution_type": kind, "attempts": total, "succeeded": succeeded,
            "failed": by_status.get(sc.EvolutionStatus.FAILED, 0),
            "rolled_back": by_status.get(sc.EvolutionStatus.ROLLED_BACK, 0),
            "success_ratio": _ratio(succeeded, total),
            "best_improvement": r["improvement"].get((agent, kind)),
        })
    sections["kpis"] = [{"agent": agent, "kpi": kpi, "value": value}
                        for (agent, kpi), value in sorted(r["kpis"].items())]
    sections["jobs"] = []
    for (kind,), runs in sorted(r["job_runs"].items()):
        whole_runs, failures = _whole(runs), _whole(r["job_failures"].get((kind,), 0.0))
        sections["jobs"].append({"job_type": kind, "runs": whole_runs, "failures": failures,
                                 "failure_ratio": _ratio(failures, whole_runs),
                                 "p95_duration_s": r["job_p95"].get((kind,)),
                                 # none recorded: not known (a job with no priced call records none), not free
                                 "cost_usd": r["job_cost"].get((kind,))})
    sections["tools"] = []
    for (tool,), executions in sorted(r["tool_calls"].items()):
        whole_calls, errors = _whole(executions), _whole(r["tool_errors"].get((tool,), 0.0))
        sections["tools"].append({"tool": tool, "calls": whole_calls, "errors": errors,
                                  "error_ratio": _ratio(errors, whole_calls),
                                  "p95_latency_s": r["tool_p95"].get((tool,))})

    sections.update(workflows.sections(r))
    sections.update(versions.sections(r))

    targets = int(r["targets"].get((), 0.0))
    meta = {"prometheus": prom.url, "window": w, "selector": matchers(sel), "time": round(prom.time, 3),
            "time_iso": _iso(prom.time), "targets": targets, "slow_ms": options.slow_ms, "slow_bound_s": bound,
            **_coverage(first, prom.time, w)}
    if not any(sections[name] for name in ("agents", "providers", "calibration", "evolution", "jobs", "tools",
                                           "phases", "workflow_patterns")):
        why = (f"no agent-otel series match {matchers(sel)}; check --selector" if not targets else
               f"{targets} service{'s' if targets != 1 else ''} match {matchers(sel)}, but none recorded agent, "
               f"provider, evolution, job or tool metrics in that window")
        raise NoData(f"no agent-otel data in the last {w} at {prom.url} ({why})")
    return Report(meta, sections)


def _data_since(prom: Prometheus, sel: str, w: str) -> float | None:
    """When the window's first agent-otel data was scraped (Unix seconds, to the second), None without any."""
    step = coverage_step(w)
    first = prom.vector(coverage_expr(w, step, sel), ()).get(())
    while first is None and step > 1:
        # Subquery steps are aligned to multiples of the step: data younger than one step is seen by none. Then
        # it is younger than the step, and a finer look over that step finds where it starts (7d: 5040 s, 42 s,
        # then 1 s steps).
        window, step = f"{step}s", max(1, step // COVERAGE_STEPS)
        first = prom.vector(coverage_expr(window, step, sel), ()).get(())
    while first is not None and step > 1 and prom.time - first < WINDOWS[w] - step:
        # The first step with data is up to a step after the data starts (7d: 84 minutes): look at that step
        # before it, finer, until the resolution is a second.
        window, step = f"{step}s", max(1, step // COVERAGE_STEPS)
        earlier = prom.vector(coverage_expr(window, step, sel, at=first), ()).get(())
        first = min(first, earlier) if earlier is not None else first
    return first


def _iso(unix_seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix_seconds))


def _coverage(first: float | None, now: float, window: str) -> dict[str, Any]:
    """Since when the window holds data: ``data_since`` (Unix seconds, None without data), ``covered_s`` and
    ``partial`` (the data starts later than the window, by more than the coverage query's resolution)."""
    if first is None:
        return {"data_since": None, "data_since_iso": None, "covered_s": None, "partial": False}
    covered = max(0.0, now - first)
    return {"data_since": round(first, 3), "data_since_iso": _iso(first), "covered_s": round(covered, 3),
            "partial": covered < WINDOWS[window] - 2 * coverage_step(window)}
