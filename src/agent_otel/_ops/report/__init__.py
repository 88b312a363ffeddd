"""``agent-otel report``: what the fleet did over a window, read from Prometheus.

Per agent (invocations, success ratio, average cost, average and p95 latency, patterns used), per
provider and model (calls, availability, p95 latency, retries, fallbacks, cost), confidence
calibration per agent and band, evolution per agent and type, the current KPIs, jobs by type (runs,
failure ratio, p95 duration) and tools (calls, error ratio, p95 latency). Counts are whole numbers, and
the report says when the data covers less than the window asked for. The queries are in
:mod:`.queries`, the output formats in :mod:`.render`. Only the standard library talks to
Prometheus's HTTP API.

``--format html`` (:mod:`.page`) also draws charts from range queries, with matplotlib: the optional
``html`` extra, imported only then.

Exit status: 0 the report was printed; 1 Prometheus holds no agent-otel data for the window;
2 Prometheus could not be queried, --format html without matplotlib, --output not writable (or bad
arguments, from argparse).
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from agent_otel import semconv as sc
from agent_otel._ops.assets import AssetsError
from agent_otel._ops.report.queries import (
    WINDOWS,
    NoData,
    Options,
    Prometheus,
    PrometheusUnreachable,
    Report,
    collect,
    default_selector,
    normalize_url,
    slow_bound,
)
from agent_otel._ops.report.render import RENDERERS

__all__ = ["Options", "Report", "add_report_arguments", "build_report", "run_report"]

#: agent-otel is installed from its checkout (it is not on PyPI): the extra from there, or matplotlib alone
HTML_EXTRA = "pip install matplotlib (agent-otel's html extra: pip install -e '.[html]' in its checkout)"


def _slow_ms(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--slow-ms must be a number of milliseconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"--slow-ms must be > 0, got {text!r}")
    try:
        slow_bound(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--slow-ms {text}: {exc}") from None
    return value


#: The Unix seconds --at takes: from 1970 to the end of year 9999, what the report can print as a date.
_AT_RANGE = (0.0, 253402300800.0)


def _at(text: str) -> float:
    """Unix seconds, or an ISO 8601 time (a trailing Z or an offset; naive means UTC)."""
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"--at must be Unix seconds or an ISO 8601 time such as "
                                             f"2026-11-21T09:00:00Z, got {text!r}") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.UTC)
        seconds = moment.timestamp()
    low, high = _AT_RANGE
    if not low <= seconds < high:  # nan included: inf, nan and 1e30 failed later, with a traceback
        raise argparse.ArgumentTypeError(f"--at must be a time from 1970 to 9999, got {text!r}")
    return seconds


def _timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--timeout must be a number of seconds, got {text!r}") from None
    if not 0 < value <= _LONGEST_TIMEOUT_S:  # (inf and 1e300 are no time a socket can wait: a traceback)
        raise argparse.ArgumentTypeError(f"--timeout must be > 0 and at most {_LONGEST_TIMEOUT_S} seconds (a day), "
                                         f"got {text!r}")
    return value


#: The longest --timeout: a day is far beyond any query's; a socket refuses an infinite one.
_LONGEST_TIMEOUT_S = 86400


def _prometheus_url(text: str) -> str:
    """Prometheus's base URL, http or https, with a host and a port that is one: a bad one was a traceback."""
    url = normalize_url(text)
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port  # raises for a port that is no number, or out of 0..65535
    except ValueError:
        port = -1
    if parts.scheme not in ("http", "https") or not parts.hostname or port == -1 or port == 0:
        raise argparse.ArgumentTypeError(f"--prometheus must be an http(s) URL with a host and an optional port "
                                         f"1..65535, e.g. http://127.0.0.1:9090, got {text!r}")
    return url


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    bounds = sc.GENAI_DURATION_BUCKETS
    parser.add_argument("--prometheus", required=True, metavar="URL", type=_prometheus_url,
                        help="base URL of Prometheus, e.g. http://127.0.0.1:9090")
    parser.add_argument("--window", choices=tuple(WINDOWS), default="1h", help="period to report on (default 1h)")
    parser.add_argument("--format", choices=(*RENDERERS, "html"), default="table",
                        help="table (aligned text), json (one object, a key per section), csv (one table, "
                             "a `section` column; columns a section does not use are empty) or html (one "
                             "self-contained page: the tables and time-series charts; needs "
                             f"{HTML_EXTRA}) (default table)")
    parser.add_argument("--output", metavar="FILE", help="write the report to FILE instead of standard output")
    parser.add_argument("--slow-ms", type=_slow_ms, metavar="N",
                        help="also count provider calls slower than N ms as unavailable; counted with the "
                             f"smallest duration bucket bound >= N ({bounds[0]:g} .. {bounds[-1]:g} s, doubling), "
                             "which the output names")
    parser.add_argument("--selector", metavar="MATCHERS",
                        help="label matchers selecting the series to report on, e.g. "
                             "'deployment_environment_name=\"prod\"' or 'service_name=\"checkout\"' (default: "
                             "selector of the shipped thresholds.yaml, as the rules use: every agent-otel series; "
                             "agent-otel's own instrumentation scope is always matched too)")
    parser.add_argument("--timeout", type=_timeout, default=30.0, metavar="S",
                        help="seconds to wait for each query (default 30, Grafana's own default)")
    parser.add_argument("--at", type=_at, metavar="TIME",
                        help="evaluate the window ending at TIME (Unix seconds or ISO 8601, e.g. "
                             "2026-11-21T09:00:00Z) instead of now")


def build_report(options: Options, now: float | None = None, opener: Callable[..., Any] | None = None) -> Report:
    """The report's data; raises PrometheusUnreachable or NoData."""
    prom = Prometheus(normalize_url(options.prometheus), time.time() if now is None else now, options.timeout)
    if opener is not None:
        prom.opener = opener
    return collect(prom, options)


def _html_renderer() -> Callable[[Report, Prometheus], str] | None:
    """The HTML page's renderer, or None when matplotlib (the ``html`` extra) is not installed."""
    try:
        from agent_otel._ops.report.page import html_page
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] != "matplotlib":
            raise
        return None
    return html_page


def run_report(args: argparse.Namespace) -> int:
    try:
        selector = default_selector() if args.selector is None else args.selector
    except AssetsError as exc:
        print(f"agent-otel report: {exc}", file=sys.stderr)
        return 2
    options = Options(prometheus=args.prometheus, window=args.window, selector=selector,
                      slow_ms=args.slow_ms, timeout=args.timeout)
    url = normalize_url(options.prometheus)
    html_page = _html_renderer() if args.format == "html" else None
    if args.format == "html" and html_page is None:
        print(f"agent-otel report: --format html draws its charts with matplotlib, which is not installed: "
              f"{HTML_EXTRA}", file=sys.stderr)
        return 2
    try:
        report = build_report(options, now=args.at)
        if html_page is not None:
            text = html_page(report, Prometheus(url, report.meta["time"], options.timeout))
        else:
            text = RENDERERS[args.format](report)
    except PrometheusUnreachable as exc:
        print(f"agent-otel report: cannot query Prometheus at {url}: {exc}", file=sys.stderr)
        return 2
    except NoData as exc:
        print(f"agent-otel report: {exc}", file=sys.stderr)
        return 1
    if args.output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return 0
    try:
        with open(args.output, "w", encoding="utf-8") as out:
            out.write(text)
    except OSError as exc:
        print(f"agent-otel report: cannot write {args.output}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0
