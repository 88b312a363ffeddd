"""`agent-otel report --format html` without a real Prometheus: the optional extra, the charts' range queries
and the page built from canned answers. (Against a real Prometheus, opened in Chromium:
tests/e2e/test_report_html_e2e.py.)"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import urllib.parse
from typing import Any

from agent_otel._ops.report.charts import CHARTS, chart_series, resolution
from agent_otel._ops.report.page import html_page
from agent_otel._ops.report.queries import Prometheus, Report

NOW = 1_800_000_000.0


def python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_without_matplotlib_html_exits_2_naming_the_extra_before_asking_prometheus() -> None:
    done = python("import sys; sys.modules['matplotlib'] = None\n"
                  "from agent_otel._cli import main\n"
                  "sys.exit(main(['report', '--prometheus', 'http://127.0.0.1:1', '--format', 'html']))")
    assert done.returncode == 2, done.stderr
    assert "pip install matplotlib" in done.stderr and "pip install -e '.[html]'" in done.stderr
    assert "cannot query Prometheus" not in done.stderr


def test_the_text_report_does_not_import_matplotlib() -> None:
    done = python("import sys\n"
                  "from agent_otel._cli import main\n"
                  "main(['report', '--prometheus', 'http://127.0.0.1:1', '--format', 'table'])\n"
                  "assert 'matplotlib' not in sys.modules, 'matplotlib imported'")
    assert done.returncode == 0, done.stderr


class Canned:
    """An ``opener`` for :class:`Prometheus` that records the range queries and answers each with ``series``."""

    def __init__(self, series: list[dict[str, Any]]) -> None:
        self.series = series
        self.asked: list[dict[str, str]] = []

    def __call__(self, url: str, timeout: float) -> io.BytesIO:
        endpoint, _, query = url.partition("?")
        assert endpoint.endswith("/api/v1/query_range"), url
        self.asked.append(dict(urllib.parse.parse_qsl(query)))
        return io.BytesIO(json.dumps({"status": "success",
                                      "data": {"resultType": "matrix", "result": self.series}}).encode())


def prometheus(canned: Canned) -> Prometheus:
    return Prometheus("http://prometheus.test", NOW, opener=canned)


def test_every_chart_query_is_a_range_query_with_the_selector_over_the_window() -> None:
    canned = Canned([])
    series = chart_series(prometheus(canned), "1d", 'service_name="shop"')
    assert set(series) == {chart.key for chart in CHARTS}
    res = resolution("1d")
    assert (res.step_s, res.range_s) == (360, 360)
    assert len(canned.asked) == len(CHARTS)
    for asked in canned.asked:
        assert float(asked["end"]) == NOW and float(asked["start"]) == NOW - 86400 and asked["step"] == "360"
        assert 'service_name="shop"' in asked["query"] and "[360s]" in asked["query"], asked["query"]


def test_resolution_keeps_a_point_over_at_least_five_minutes() -> None:
    assert (resolution("1h").step_s, resolution("1h").range_s) == (15, 300)
    assert resolution("7d").step_s == resolution("7d").range_s == 604800 // 240


def report() -> Report:
    meta = {"prometheus": "http://prometheus.test", "window": "1h", "selector": '{job=~"agent-otel.*"}',
            "time": NOW, "time_iso": "2027-01-15T08:00:00Z", "targets": 1, "slow_ms": None, "slow_bound_s": None}
    agents = [{"agent": "planner <a>", "invocations": 12.0, "successes": 11.0, "success_ratio": 11 / 12,
               "avg_cost_usd": 0.002, "avg_latency_s": 0.5, "p95_latency_s": 1.2}]
    return Report(meta, {"agents": agents})


def test_the_page_has_the_tables_escaped_and_a_chart_per_panel() -> None:
    points = [[NOW - 3600 + 15 * i, str(0.9 + i / 10000)] for i in range(240)]
    canned = Canned([{"metric": {"gen_ai_agent_name": "planner"}, "values": points}])
    text = html_page(report(), prometheus(canned))
    assert text.startswith("<!doctype html>") and "<script" not in text
    assert "Content-Security-Policy" in text
    assert "<td>planner &lt;a&gt;</td>" in text and "91.7 %" in text and "$0.002" in text
    assert text.count("<svg") == len(CHARTS)
    assert "(no data in this window)" not in text and "no data in this window" in text  # the empty sections
    assert "covers only" not in text


def test_a_chart_without_series_says_so_and_short_data_is_named() -> None:
    canned = Canned([{"metric": {}, "values": [[NOW - 60, "1"], [NOW, "1"]]}])
    short = report()
    short.meta.update(partial=True, covered_s=60.0, data_since_iso="2027-01-15T07:59:00Z")
    text = html_page(short, prometheus(canned))
    assert "The data covers only the last 1m of the 1h window (since about 2027-01-15T07:59:00Z)" in text
    empty = html_page(report(), prometheus(Canned([])))
    assert "<svg" not in empty and empty.count('<p class="empty">no data in this window</p>') >= len(CHARTS)
