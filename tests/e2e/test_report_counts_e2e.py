"""`agent-otel report` counts exactly what Prometheus holds: known samples are written into a real Prometheus's
storage (``promtool tsdb create-blocks-from openmetrics``, every 15 s as a scrape writes them), and the real CLI's
counts are checked against the counts those samples are built to hold. ``increase()``, which the report used
before, reads more (it extrapolates each series to the window's edges) or less (it never counts a series' first
value: one error of a new type read 0)."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from agent_otel import semconv as sc
from agent_otel._cli import main
from tests.support.ops import binary
from tests.support.prometheus import RunningPrometheus

pytestmark = pytest.mark.e2e

SCRAPE_S = 15
SERIES = f"{sc.TOOL_DURATION.prometheus}_count"
TOOL, ERROR_TYPE = sc.prometheus_label(sc.GEN_AI_TOOL_NAME), sc.prometheus_label(sc.ERROR_TYPE)
SERVICE = sc.prometheus_label(sc.SCOPING_RESOURCE_ATTRIBUTES[0])
#: The report's time: the last sample, a few minutes ago (backfilled blocks hold the past, not the head's present).
AT = (int(time.time()) - 600) // SCRAPE_S * SCRAPE_S


def _samples(start: int, values: Any) -> list[tuple[int, float]]:
    """A sample every scrape from ``start`` to :data:`AT`, ``values(t)`` at time t (None: no sample then)."""
    points = ((t, values(t)) for t in range(start, AT + 1, SCRAPE_S))
    return [(t, float(v)) for t, v in points if v is not None]


def _series() -> dict[tuple[str, str, str], list[tuple[int, float]]]:
    """(service, tool, error type) -> samples, built to hold the counts the tests expect."""
    hour = 3600
    return {
        # running for two hours, a call a minute: 60 in the last hour
        ("mature", "lint", ""): _samples(AT - 2 * hour, lambda t: (t - (AT - 2 * hour)) // 60),
        # a first error half an hour ago, none since: one error in the hour (increase() reads 0)
        ("mature", "lint", "ValueError"): _samples(AT - 1800, lambda t: 1),
        # a process restarted under the same labels 20 minutes ago: 39 calls before (from 60 at the window's start
        # to 99), then 10 from zero
        ("mature", "deploy", ""): _samples(AT - 2 * hour, lambda t: (t - (AT - 2 * hour)) // 60 if t < AT - 1200
                                           else min(10, (t - (AT - 1200)) // 60 + 1)),
        # a target down for 12 minutes across the window's start, the process counting on (a call every 10 minutes):
        # 6 calls in the window and 1 in the gap before its start (which no sample places before it: counted), not
        # the 1,018 it holds
        ("mature", "search", ""): _samples(AT - 3 * hour, lambda t: None if AT - hour - 360 < t < AT - hour + 360
                                           else 1000 + (t - (AT - 3 * hour)) // 600),
        # a process that ended at 50 just before the window, and one under the same labels from a minute into it,
        # to 20: 20 calls
        ("mature", "review", ""): _samples(AT - 2 * hour, lambda t: min(50, (t - (AT - 2 * hour)) // 60)
                                           if t < AT - hour - 120 else None if t < AT - hour + 60
                                           else min(20, (t - (AT - hour + 60)) // 60 + 1)),
        # a service deployed two minutes ago, long after Prometheus first saw agent-otel data: its first samples are
        # its first calls, 6 (2 of them errors), 6 (2) more since, and a first timeout 30 s ago
        ("young", "search", ""): _samples(AT - 120, lambda t: 4 if t < AT - 60 else 8),
        ("young", "search", "ValueError"): _samples(AT - 120, lambda t: 2 if t < AT - 60 else 4),
        ("young", "search", "TimeoutError"): _samples(AT - 30, lambda t: 1),
    }


def _openmetrics(series: dict[tuple[str, str, str], list[tuple[int, float]]]) -> str:
    lines = []
    for (service, tool, error), samples in series.items():
        labels = (f'{SERVICE}="{service}",otel_scope_name="{sc.SCOPE_NAME}",{TOOL}="{tool}"'
                  + (f',{ERROR_TYPE}="{error}"' if error else ""))
        lines += [f"{SERIES}{{{labels}}} {value:g} {t}" for t, value in samples]
    return "\n".join([*lines, "# EOF", ""])


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPrometheus]:
    work = tmp_path_factory.mktemp("report-counts")
    source = work / "samples.om"
    source.write_text(_openmetrics(_series()))
    subprocess.run([binary("promtool"), "tsdb", "create-blocks-from", "openmetrics", str(source), str(work / "data")],
                   check=True, capture_output=True, text=True, timeout=120)
    running = RunningPrometheus(work, {"global": {"scrape_interval": f"{SCRAPE_S}s"}})
    try:
        yield running
    finally:
        running.stop()


def report(prometheus: RunningPrometheus, service: str, at: int = AT) -> dict[str, Any]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["report", "--prometheus", prometheus.url, "--at", str(at), "--format", "json",
                     "--selector", f'{SERVICE}="{service}"'])
    assert code == 0, err.getvalue()
    document: dict[str, Any] = json.loads(out.getvalue())
    return document


def tools(document: dict[str, Any]) -> dict[str, tuple[int, int]]:
    return {row["tool"]: (row["calls"], row["errors"]) for row in document["tools"]}


@pytest.mark.parametrize("seconds_later", [0, 7, 16])  # the coverage query's steps are every 30 s: its first step
# with data is after the window's start unless the report's time is on a step (a window full of data read as one
# the data starts in)
def test_a_window_full_of_data_counts_each_series_from_the_windows_start(prometheus: RunningPrometheus,
                                                                         seconds_later: int) -> None:
    document = report(prometheus, "mature", AT + seconds_later)
    assert document["report"]["partial"] is False
    # lint: 60 calls and a first error (61 calls, 1 error); deploy: 39 calls, then 10 after its restart; search: 7
    # calls; review: 20 calls of the process that started in the window
    assert tools(document) == {"lint": (61, 1), "deploy": (49, 0), "search": (7, 0), "review": (20, 0)}


def test_a_service_deployed_inside_the_window_counts_from_its_first_sample(prometheus: RunningPrometheus) -> None:
    """Prometheus held agent-otel data (the mature service's) before the young one appeared: the young one's series
    are a new process's, counted from zero, and the window is not partial. The report took the selection's own first
    sample for the start of the data: 7 calls and 3 errors for 13 and 5, "covers only the last 2m"."""
    document = report(prometheus, "young")
    assert document["report"]["partial"] is False
    assert tools(document) == {"search": (13, 5)}


def test_a_window_the_data_starts_in_counts_what_came_after_prometheus_first_saw_each_series(
        prometheus: RunningPrometheus) -> None:
    """Half an hour into the data: the first series was there when Prometheus first looked, with 1000 calls it had
    counted before, not known to be in the window; it counts the 3 calls it made since."""
    document = report(prometheus, "mature", AT - 2 * 3600 - 1800)
    assert document["report"]["partial"] is True
    assert tools(document) == {"search": (3, 0)}
