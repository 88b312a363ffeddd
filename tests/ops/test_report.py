"""`agent-otel report` without a real Prometheus: exit codes and messages for unreachable, empty and
broken servers, argument errors, the arithmetic over canned query results, and the output formats.
(Against a real Prometheus: tests/e2e/test_report_e2e.py.)"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent_otel import semconv as sc
from agent_otel._cli import main
from agent_otel._ops.report import queries, render
from agent_otel._ops.report import workflows as report_workflows
from agent_otel._ops.report.queries import (
    BANDS,
    DEFAULT_SELECTOR,
    Options,
    Prometheus,
    band_expr,
    collect,
    default_selector,
    matchers,
    scoped,
    slow_bound,
)
from agent_otel._ops.stack import free_port
from tests.support.paths import ASSETS
from tests.support.report_versions import version_answers


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["report", *args])
    return code, out.getvalue(), err.getvalue()


@contextlib.contextmanager
def server(respond: Callable[[BaseHTTPRequestHandler], None]) -> Iterator[str]:
    """A local HTTP server answering every GET with ``respond``; yields its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            respond(self)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def answer(status: int, body: bytes, content_type: str = "application/json") -> Callable[[Any], None]:
    def respond(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
    return respond


EMPTY_VECTOR = json.dumps({"status": "success", "data": {"resultType": "vector", "result": []}}).encode()

# --------------------------------------------------------------------------------------------------
# Exit codes and messages
# --------------------------------------------------------------------------------------------------


def test_unreachable_prometheus_exits_2_naming_the_url_and_the_cause() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, out, err = run("--prometheus", url)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert url in err and "connection refused" in err


def test_unknown_host_exits_2() -> None:
    code, _, err = run("--prometheus", "http://prometheus.invalid:9090")
    assert code == 2
    assert "http://prometheus.invalid:9090" in err and "cannot resolve" in err


def test_a_url_without_scheme_means_http() -> None:
    port = free_port()
    code, _, err = run("--prometheus", f"127.0.0.1:{port}/")
    assert code == 2
    assert f"http://127.0.0.1:{port}:" in err


def test_empty_window_exits_1_with_a_no_data_message() -> None:
    with server(answer(200, EMPTY_VECTOR)) as url:
        code, out, err = run("--prometheus", url, "--window", "7d")
    assert code == 1
    assert out == ""
    assert f"no agent-otel data in the last 7d at {url}" in err
    assert 'no agent-otel series match {otel_scope_name="agent_otel"}' in err


def test_targets_without_agent_data_are_named_in_the_no_data_message() -> None:
    def respond(handler: BaseHTTPRequestHandler) -> None:
        result = [{"metric": {}, "value": [0, "2"]}] if "count%28count" in handler.path else []
        answer(200, json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}})
               .encode())(handler)

    with server(respond) as url:
        code, _, err = run("--prometheus", url, "--selector", 'job="mine"')
    assert code == 1
    assert '2 services match {otel_scope_name="agent_otel",job="mine"}, but none recorded' in err


def test_garbage_exits_2() -> None:
    with server(answer(200, b"<html>hello</html>", "text/html")) as url:
        code, out, err = run("--prometheus", url)
    assert code == 2
    assert out == ""
    assert url in err and "not JSON" in err


def test_json_that_is_not_a_prometheus_answer_exits_2() -> None:
    with server(answer(200, b'{"hello": "world"}')) as url:
        code, _, err = run("--prometheus", url)
    assert code == 2
    assert "unexpected answer" in err


def test_http_error_exits_2_with_prometheus_error_text() -> None:
    body = json.dumps({"status": "error", "errorType": "bad_data", "error": "parse error at char 5"}).encode()
    with server(answer(400, body)) as url:
        code, _, err = run("--prometheus", url, "--selector", "job=")
    assert code == 2
    assert "HTTP 400" in err and "parse error at char 5" in err


def test_http_404_exits_2() -> None:
    with server(answer(404, b"404 page not found", "text/plain")) as url:
        code, _, err = run("--prometheus", url)
    assert code == 2
    assert "HTTP 404" in err


def test_a_server_that_never_answers_times_out_with_exit_2() -> None:
    release = threading.Event()

    def hang(handler: BaseHTTPRequestHandler) -> None:
        release.wait(10)

    with server(hang) as url:
        try:
            code, _, err = run("--prometheus", url, "--timeout", "0.2")
        finally:
            release.set()
    assert code == 2
    assert "timed out" in err


@pytest.mark.parametrize("args", [
    ["--window", "2h"], ["--format", "xml"], ["--slow-ms", "0"], ["--slow-ms", "-5"], ["--slow-ms", "abc"],
    ["--slow-ms", "81921"], ["--timeout", "0"], ["--timeout", "inf"], ["--timeout", "1e300"], ["--at", "yesterday"],
    ["--at", "inf"], ["--at", "nan"], ["--at", "1e30"], ["--at", "-1"], ["--at", "0001-01-01T00:00:00Z"],
], ids=lambda a: " ".join(a))
def test_bad_arguments_are_argparse_errors(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["report", "--prometheus", "http://127.0.0.1:9", *args])
    assert exited.value.code == 2
    assert "agent-otel report: error:" in capsys.readouterr().err


@pytest.mark.parametrize("url", ["localhost:notaport", "ftp://127.0.0.1:9090", "http://:9090",
                                 "http://127.0.0.1:99999", "http://127.0.0.1:0"])
def test_a_prometheus_url_that_is_none_is_an_argparse_error(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A port that is no number printed http.client's InvalidURL traceback; another scheme was tried as a host."""
    with pytest.raises(SystemExit) as exited:
        main(["report", "--prometheus", url])
    assert exited.value.code == 2
    assert "argument --prometheus: --prometheus must be an http(s) URL" in capsys.readouterr().err


@pytest.mark.parametrize("rate", ["nan", "inf", "-1", "0"])
def test_a_demo_rate_that_is_no_finite_positive_number_is_an_argparse_error(
        rate: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["demo", "--rate", rate])
    assert exited.value.code == 2
    assert "argument --rate: --rate must be" in capsys.readouterr().err


@pytest.mark.parametrize(("text", "seconds"), [("1795300000", 1795300000.0), ("1795300000.5", 1795300000.5),
                                               ("2026-11-21T09:00:00Z", 1795251600.0),
                                               ("2026-11-21T10:00:00+01:00", 1795251600.0),
                                               ("2026-11-21T09:00:00", 1795251600.0)])
def test_at_takes_unix_seconds_or_iso_8601(text: str, seconds: float) -> None:
    from agent_otel._ops.report import _at

    assert _at(text) == seconds


def test_prometheus_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["report"])
    assert "--prometheus" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------
# One source of truth: the rules' bands, the alerts' selector, semconv's buckets
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("window", ["1h", "1d", "7d"])
def test_bands_are_computed_exactly_as_the_shipped_calibration_rules(window: str) -> None:
    rules = yaml.safe_load((ASSETS / "prometheus/agent-otel.rules.yaml").read_text())
    record = f"agent_outcome_band:{sc.AGENT_CONFIDENCE_HISTOGRAM.prometheus}_invocations:increase{window}"
    shipped = {rule["labels"]["confidence_band"]: rule["expr"]
               for group in rules["groups"] for rule in group["rules"] if rule.get("record") == record}
    assert set(shipped) == {band for band, _, _ in BANDS}
    # The rules also keep the scope labels (job, service, environment); the report sums over them.
    scope = ", ".join(yaml.safe_load((ASSETS / "thresholds.yaml").read_text())["scope_labels"])
    for band, expr in shipped.items():
        assert band_expr(band, window, scoped("")).split() == expr.replace(f"({scope}, ", "(").split(), band


def test_bands_with_a_selector_only_add_the_selector() -> None:
    expr = band_expr("high", "1d", 'job=~"agent-otel.*"')
    assert expr.count('{job=~"agent-otel.*",le=') == 2
    assert expr.replace('job=~"agent-otel.*",', "") == band_expr("high", "1d")


def test_default_selector_is_the_rules_selector() -> None:
    thresholds = yaml.safe_load((ASSETS / "thresholds.yaml").read_text())
    assert thresholds["selector"] == DEFAULT_SELECTOR
    assert default_selector() == thresholds["selector"]


def test_default_selector_follows_the_assets_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "thresholds.yaml").write_text("a: 1\nselector: 'job=\"x\",env=''prod'''\nb: 2\n")
    monkeypatch.setenv("AGENT_OTEL_ASSETS", str(tmp_path))
    assert default_selector() == yaml.safe_load((tmp_path / "thresholds.yaml").read_text())["selector"]


def test_a_selector_with_a_comment_after_it_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before, a comment after the value (valid YAML, read by the mixin) made the report select every series."""
    (tmp_path / "thresholds.yaml").write_text("selector: 'service_name=\"x\"'   # one service\n")
    monkeypatch.setenv("AGENT_OTEL_ASSETS", str(tmp_path))
    assert default_selector() == 'service_name="x"'


@pytest.mark.parametrize(("thresholds", "message"), [
    (None, "cannot read {dir}/thresholds.yaml (No such file or directory; the assets directory is set by "
           "AGENT_OTEL_ASSETS): set it to a copy made by `agent-otel assets --copy DIR`, or pass --selector"),
    ('selector: service_name="x"\n', "{dir}/thresholds.yaml: selector: expected a quoted string of label "
                                      "matchers, e.g. selector: 'deployment_environment_name=\"prod\"'"),
    # YAML's escapes that JSON does not share: a JSONDecodeError traceback, exit 1
    ('selector: "service_name=\\"\\x41pp\\""\n', "{dir}/thresholds.yaml: selector: an escape in a double-quoted "
                                                "string that the report cannot read; write it in single quotes"),
])
def test_an_assets_copy_without_a_readable_selector_is_an_error_not_every_series(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        thresholds: str | None, message: str) -> None:
    """Before, AGENT_OTEL_ASSETS naming no copy (a typo), or a selector the report could not read (unquoted, as
    YAML allows), silently reported on every agent-otel series instead of the operator's selection."""
    if thresholds is not None:
        (tmp_path / "thresholds.yaml").write_text(thresholds)
    monkeypatch.setenv("AGENT_OTEL_ASSETS", str(tmp_path))
    assert main(["report", "--prometheus", "http://127.0.0.1:1"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("agent-otel report: " + message.format(dir=tmp_path)), err
    assert main(["report", "--prometheus", "http://127.0.0.1:1", "--selector", ""]) == 2  # given: not read
    assert "cannot query Prometheus" in capsys.readouterr().err


def test_metric_and_label_names_come_from_semconv() -> None:
    for instrument in sc.INSTRUMENTS:
        for attribute in instrument.attributes:
            assert queries.label(attribute) == sc.prometheus_label(attribute)
    assert sc.CLIENT_INFERENCE_DURATION.prometheus == queries.CLIENT_DUR
    assert sc.CLIENT_COST.prometheus == queries.COST
    assert queries.AGENT in {queries.label(a) for a in sc.CLIENT_COST.attributes}


@pytest.mark.parametrize(("ms", "bound"), [(1, 0.01), (10, 0.01), (10.5, 0.02), (100, 0.16), (20480, 20.48),
                                           (81920, 81.92)])
def test_slow_bound_is_the_smallest_bucket_bound_at_or_above(ms: float, bound: float) -> None:
    assert slow_bound(ms) == bound
    assert bound in sc.GENAI_DURATION_BUCKETS


def test_slow_bound_above_the_buckets_is_an_error() -> None:
    with pytest.raises(ValueError, match="largest duration bucket bound"):
        slow_bound(81921)


def test_matchers() -> None:
    assert matchers('job=~"a.*"') == '{job=~"a.*"}'
    assert matchers('{job="a"}', 'le="0.5"') == '{job="a",le="0.5"}'
    assert matchers("", 'le="0.5"') == '{le="0.5"}'
    assert matchers("  ") == ""


# --------------------------------------------------------------------------------------------------
# The arithmetic, over canned query results
# --------------------------------------------------------------------------------------------------

A, OC, P, M = queries.AGENT, queries.OUTCOME, queries.PROVIDER, queries.MODEL
wf = report_workflows


class CannedPrometheus(Prometheus):
    """Answers each query from the first (substring, rows) pair whose substrings all occur in it."""

    def __init__(self, table: list[tuple[tuple[str, ...], list[tuple[dict[str, str], float]]]]) -> None:
        super().__init__("http://canned", 1_700_000_000.0)
        self.table = table
        self.asked: list[str] = []

    def query(self, expr: str) -> list[dict[str, Any]]:
        self.asked.append(expr)
        for needles, rows in self.table:
            if all(needle in expr for needle in needles):
                return [{"metric": labels, "value": [self.time, str(value)]} for labels, value in rows]
        return []


def workflow_answers() -> list[tuple[tuple[str, ...], list[tuple[dict[str, str], float]]]]:
    """Phases, plugins in a phase and patterns (before the tool rows: those queries name the tool series too)."""
    phase = {wf.JOB_TYPE: "workflow", wf.PHASE: "test"}
    in_phase = f'{wf.PHASE}!=""'
    plugin = {wf.PHASE: "test", wf.TOOL: "pytest"}
    return [
        ((f"{wf.PHASE_DUR}_count", f'{wf.PHASE_OUTCOME}!="success"'), [(phase, 4.9)]),
        ((f"{wf.PHASE_DUR}_count",), [(phase, 20.2)]),
        ((f"{wf.PHASE_DUR}_sum",), [(phase, 10.1)]),
        ((f"{wf.PHASE_DUR}_bucket",), [(phase, 0.95)]),
        ((f"{wf.TOOL_DUR}_count", in_phase, f'{wf.ERROR_TYPE}!=""'), [(plugin, 2.1)]),
        ((f"{wf.TOOL_DUR}_count", in_phase), [(plugin, 40.0)]),
        ((f"{wf.TOOL_DUR}_bucket", in_phase), [(plugin, 0.02)]),
        ((f"{wf.PATTERN_DUR}_count", f'{wf.PATTERN_OUTCOME}="success"'), [({wf.PATTERN: "tdd"}, 7.1)]),
        ((f"{wf.PATTERN_DUR}_count",), [({wf.PATTERN: "tdd"}, 7.9)]),
        ((f"{wf.PATTERN_DUR}_sum",), [({wf.PATTERN: "tdd"}, 3.95)]),  # raw increases divided: 0.5 s
    ]


def test_workflow_sections_phases_plugins_by_phase_and_patterns() -> None:
    report = collect(canned(), Options("http://canned", selector=""))
    assert report.sections["phases"] == [{
        "job_type": "workflow", "phase": "test", "runs": 20, "failures": 5, "failure_ratio": 0.25,
        "avg_duration_s": 0.5, "p95_duration_s": 0.95}]
    assert report.sections["plugins_by_phase"] == [{
        "phase": "test", "plugin": "pytest", "calls": 40, "errors": 2, "error_ratio": 0.05, "p95_latency_s": 0.02}]
    assert report.sections["workflow_patterns"] == [{
        "pattern": "tdd", "executions": 8, "successes": 7, "success_ratio": 0.875, "avg_duration_s": 0.5}]
    text = render.table(report)
    assert "Workflow patterns" in text and "87.5 %" in text
    # the plain tool rows do not count the plugins of a phase twice: they come from their own query
    assert by(report.sections["tools"], tool="run_tests")["calls"] == 100


def canned() -> CannedPrometheus:
    dur, cdur = queries.AGENT_DUR, queries.CLIENT_DUR
    conf = queries.CONFIDENCE
    return CannedPrometheus([
        (("count(count by",), [({}, 1)]),
        *version_answers(),
        (("timestamp(",), [({}, 1_700_000_000.0 - 1020)]),  # data since 17 minutes
        *workflow_answers(),
        ((f"{queries.JOB_DUR}_count", f'{queries.JOB_OUTCOME}!="success"'), [({queries.JOB_TYPE: "nightly"}, 45.2)]),
        ((f"{queries.JOB_DUR}_count",), [({queries.JOB_TYPE: "nightly"}, 99.6), ({queries.JOB_TYPE: "adhoc"}, 3.1)]),
        ((f"{queries.JOB_DUR}_bucket",), [({queries.JOB_TYPE: "nightly"}, 42.0)]),
        ((f"{queries.JOB_COST}_sum",), [({queries.JOB_TYPE: "nightly"}, 12.5)]),
        ((f"{queries.TOOL_DUR}_count", f'{queries.ERROR_TYPE}!=""'), [({queries.TOOL: "run_tests"}, 10.9)]),
        ((f"{queries.TOOL_DUR}_count",), [({queries.TOOL: "run_tests"}, 100.4), ({queries.TOOL: "lint"}, 50.0)]),
        ((f"{queries.TOOL_DUR}_bucket",), [({queries.TOOL: "run_tests"}, 0.25)]),
        ((f"{dur}_count", f'{OC}="success"'), [({A: "good"}, 90), ({A: "bad"}, 3)]),
        ((f"{dur}_count",), [({A: "good"}, 100), ({A: "bad"}, 10)]),
        ((f"{dur}_sum",), [({A: "good"}, 50), ({A: "bad"}, 20)]),
        ((f"{dur}_bucket",), [({A: "good"}, 0.9), ({A: "bad"}, "NaN")]),
        ((f"{queries.COST}{{{queries.OURS}}}[", f"by ({A})"), [({A: "good"}, 2.0), ({A: ""}, 1.0)]),
        ((queries.PATTERNS,), [({A: "good", queries.PATTERN: "react"}, 30),
                               ({A: "good", queries.PATTERN: "plan"}, 10)]),
        # calls without error minus those within the bound (one query; canned, its result)
        ((f"{cdur}_bucket", f'{queries.ERROR_TYPE}=""', 'le="0.16"'),
         [({P: "x", M: "m1"}, 20), ({P: "x", M: "m2"}, 0)]),
        ((f"{cdur}_count", f'{queries.ERROR_TYPE}!=""'), [({P: "x", M: "m1"}, 20)]),
        ((f"{cdur}_count", f'{queries.ERROR_TYPE}=""'), [({P: "x", M: "m1"}, 80), ({P: "x", M: "m2"}, 0)]),
        ((f"{cdur}_count",), [({P: "x", M: "m1"}, 100), ({P: "x", M: "m2"}, 0)]),
        ((f"{cdur}_bucket", f"by ({P}, {M}, le)"), [({P: "x", M: "m1"}, 1.5)]),
        ((f"{cdur}_bucket", f"by ({P}, le)"), [({P: "x"}, 1.25)]),
        ((queries.RETRIES,), [({P: "x", M: "m1"}, 7)]),
        ((f"{queries.COST}{{{queries.OURS}}}[",), [({P: "x", M: "m1"}, 3.0)]),
        ((queries.FALLBACKS,), [({P: "x"}, 5)]),
        # (the improvement's query reads the attempts too: first)
        ((queries.EVO_IMPROVEMENT,), [({A: "good", queries.EVO_TYPE: "t"}, 0.04)]),
        # increase() extrapolates: 3 and 1 runs come back as 3.04 and 0.98
        ((queries.EVO_ATTEMPTS,), [({A: "good", queries.EVO_TYPE: "t", queries.EVO_STATUS: "succeeded"}, 3.04),
                                   ({A: "good", queries.EVO_TYPE: "t", queries.EVO_STATUS: "failed"}, 0.98)]),
        ((queries.KPI_CURRENT,), [({A: "good", queries.KPI: "success_rate"}, 0.9)]),
        ((f'{conf}_bucket{{{queries.OURS},le="+Inf"}}',),
         [({A: "bad", OC: "success"}, 3), ({A: "bad", OC: "failure"}, 7)]),
    ])


def by(rows: list[dict[str, Any]], **keys: str) -> dict[str, Any]:
    [row] = [row for row in rows if all(row[k] == v for k, v in keys.items())]
    return row


def test_collect_computes_ratios_averages_and_availability() -> None:
    prom = canned()
    report = collect(prom, Options("http://canned", selector=""))
    good = by(report.sections["agents"], agent="good")
    assert good["invocations"] == 100 and good["success_ratio"] == 0.9
    assert good["avg_cost_usd"] == 0.02 and good["avg_latency_s"] == 0.5 and good["p95_latency_s"] == 0.9
    bad = by(report.sections["agents"], agent="bad")
    assert bad["avg_cost_usd"] == 0.0 and bad["p95_latency_s"] is None  # NaN (no increase) is no data
    assert [row["agent"] for row in report.sections["agents"]] == ["bad", "good"]  # cost of agent "" is no row
    assert by(report.sections["patterns"], pattern="react")["share"] == 0.75
    x = by(report.sections["providers"], provider="x")
    assert x["calls"] == 100 and x["errors"] == 20 and x["availability"] == 0.8 and x["slow"] is None
    assert x["retries"] == 7 and x["fallbacks"] == 5 and x["fallback_ratio"] == 0.05 and x["cost_usd"] == 3.0
    assert x["p95_latency_s"] == 1.25
    assert by(report.sections["provider_models"], model="m1")["p95_latency_s"] == 1.5
    assert by(report.sections["provider_models"], model="m2")["availability"] is None  # no calls: no ratio
    evolution = by(report.sections["evolution"], agent="good")
    assert evolution["attempts"] == 4 and evolution["success_ratio"] == 0.75 and evolution["best_improvement"] == 0.04
    assert report.sections["kpis"] == [{"agent": "good", "kpi": "success_rate", "value": 0.9}]
    assert report.meta["slow_bound_s"] is None
    assert not any("{}" in expr or "{," in expr for expr in prom.asked)


def test_calibration_counts_each_band_of_each_agent() -> None:
    report = collect(canned(), Options("http://canned", selector=""))
    rows = [row for row in report.sections["calibration"] if row["agent"] == "bad"]
    assert [row["band"] for row in rows] == ["low", "medium", "high"]
    high = by(rows, band="high")
    assert high["invocations"] == 10 and high["successes"] == 3 and high["success_ratio"] == 0.3
    assert by(rows, band="low")["success_ratio"] is None


def test_slow_calls_count_as_unavailable_with_the_bound_used() -> None:
    prom = canned()
    report = collect(prom, Options("http://canned", selector="", slow_ms=100))
    x = by(report.sections["providers"], provider="x")
    assert x["slow"] == 20 and x["availability"] == pytest.approx(0.6)  # (20 errors + 20 slow) of 100
    assert report.meta["slow_bound_s"] == 0.16 and report.meta["slow_ms"] == 100
    assert any('le="0.16"' in expr for expr in prom.asked)


def test_every_query_carries_the_selector_and_the_window() -> None:
    prom = canned()
    collect(prom, Options("http://canned", window="1d", selector='job=~"agent-otel.*"', slow_ms=5))
    assert prom.asked
    for expr in prom.asked:
        if expr.startswith("min_over_time(timestamp(count("):  # when Prometheus first held agent-otel data, whatever
            # the selector picks (see test_report_counts_e2e): agent-otel's scope only
            assert 'otel_scope_name="agent_otel"' in expr and "job=~" not in expr, expr
            continue
        assert expr.count('job=~"agent-otel.*"') >= 1, expr
        if not expr.startswith("count(count by") and " @ " not in expr:  # the services matching, an instant count;
            assert "[1d]" in expr or "[1d:" in expr, expr  # a range, or the coverage's subquery (then refined
            # over its first step, ending there: `@`)


def test_counts_are_whole_and_ratios_come_from_the_whole_counts() -> None:
    report = collect(canned(), Options("http://canned", selector=""))
    evolution = by(report.sections["evolution"], agent="good")
    assert (evolution["attempts"], evolution["succeeded"], evolution["failed"]) == (4, 3, 1)
    assert evolution["success_ratio"] == 0.75
    assert all(isinstance(row[key], int) for name, key in (("agents", "invocations"), ("providers", "calls"),
                                                             ("calibration", "invocations"), ("jobs", "runs"),
                                                             ("tools", "calls"), ("patterns", "uses"))
               for row in report.sections[name])


def test_jobs_by_type_and_tools() -> None:
    report = collect(canned(), Options("http://canned", selector=""))
    assert by(report.sections["jobs"], job_type="nightly") == {
        "job_type": "nightly", "runs": 100, "failures": 45, "failure_ratio": 0.45, "p95_duration_s": 42.0,
        "cost_usd": 12.5}
    assert by(report.sections["jobs"], job_type="adhoc")["failure_ratio"] == 0.0
    assert by(report.sections["jobs"], job_type="adhoc")["cost_usd"] is None  # no cost recorded: not known, not $0
    assert by(report.sections["tools"], tool="run_tests") == {
        "tool": "run_tests", "calls": 100, "errors": 11, "error_ratio": 0.11, "p95_latency_s": 0.25}
    assert by(report.sections["tools"], tool="lint")["errors"] == 0
    text = render.table(report)
    assert "Jobs by type" in text and "Tools" in text
    assert "nightly" in text.split("Jobs by type")[1] and "45.0 %" in text


@pytest.mark.parametrize("window", ["1h", "1d", "7d"])
def test_a_window_longer_than_the_data_says_how_much_it_covers(window: str) -> None:
    """Asked for 7 days over 17 minutes of data, the report says so instead of silently printing 17 minutes."""
    report = collect(canned(), Options("http://canned", window=window, selector=""))
    assert report.meta["partial"] is True and report.meta["covered_s"] == 1020
    assert (f"The data covers only the last 17m of the {window} window (since about 2023-11-14T21:56:20Z)"
            in render.table(report))


def test_a_window_full_of_data_says_nothing_about_coverage() -> None:
    prom = canned()
    prom.table[1] = (("timestamp(",), [({}, prom.time - 3600)])
    report = collect(prom, Options("http://canned", selector=""))
    assert report.meta["partial"] is False and "covers only" not in render.table(report)


# --------------------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "text"), [(None, "-"), (0, "$0.00"), (12.345, "$12.35"), (1234.5, "$1,234.50"),
                                             (0.05, "$0.05"), (0.00123, "$0.00123"), (0.0000518, "$0.0000518"),
                                             (0.010827, "$0.0108"), (0.0149, "$0.0149"), (0.0099, "$0.0099"),
                                             (0.123456, "$0.123"), (0.9999, "$1.00")])
def test_usd(value: float | None, text: str) -> None:
    """Three significant digits below a dollar: cents alone read $0.01 for $0.010827 (8 % low) and for $0.0149, both
    below the $0.00990 a smaller amount read."""
    assert render.fmt_usd(value) == text


def test_ratio_seconds_counts_and_numbers() -> None:
    assert render.fmt_ratio(0.9374) == "93.7 %"
    assert render.fmt_ratio(None) == "-"
    assert render.fmt_seconds(0.1784) == "0.178 s"
    assert render.fmt_seconds(81.92) == "81.9 s"
    assert render.fmt_count(1234.6) == "1,235"
    assert render.fmt_number(0.029412) == "0.02941"
    assert render.fmt_text("") == "-"


def test_table_is_aligned_with_a_header_per_section() -> None:
    text = render.table(collect(canned(), Options("http://canned", selector="")))
    lines = text.splitlines()
    assert lines[0].startswith("agent-otel report: last 1h at http://canned")
    for title in render.TITLES.values():
        assert title in lines
    start = lines.index("Agents")
    header, *rows = lines[start + 1:lines.index("", start)]
    assert header.split() == ["AGENT", "INVOCATIONS", "SUCCESS", "AVG", "COST", "AVG", "LATENCY", "P95", "LATENCY"]
    assert rows[0].split() == ["bad", "10", "30.0", "%", "$0.00", "2.000", "s", "-"]
    assert rows[1].split() == ["good", "100", "90.0", "%", "$0.02", "0.500", "s", "0.900", "s"]
    # right-aligned numbers: every row ends its INVOCATIONS cell where the header does
    end = header.index("INVOCATIONS") + len("INVOCATIONS")
    assert all(row[end - 1] != " " and row[end] == " " for row in rows)
    assert "SLOW" not in text  # only with --slow-ms


def test_table_names_the_slow_bound() -> None:
    text = render.table(collect(canned(), Options("http://canned", selector="", slow_ms=100)))
    assert "slower than 0.16 s" in text and "--slow-ms 100" in text
    assert "SLOW" in text


def test_empty_section_says_so() -> None:
    report = collect(canned(), Options("http://canned", selector=""))
    report.sections["kpis"] = []
    assert "Current KPIs\n(no data in this window)" in render.table(report)


def test_json_has_every_section_numbers_as_numbers_and_null_for_no_data() -> None:
    document = json.loads(render.as_json(collect(canned(), Options("http://canned", selector=""))))
    assert list(document) == ["report", *render.COLUMNS]
    assert document["report"]["window"] == "1h" and document["report"]["slow_bound_s"] is None
    bad = by(document["agents"], agent="bad")
    assert bad["success_ratio"] == 0.3 and bad["p95_latency_s"] is None
    assert isinstance(bad["invocations"], int | float)


def test_csv_is_one_table_with_a_section_column() -> None:
    text = render.as_csv(collect(canned(), Options("http://canned", selector="", slow_ms=1)))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {row["section"] for row in rows} == {"report", *render.COLUMNS}
    meta = {row["key"]: row["value"] for row in rows if row["section"] == "report"}
    assert meta["slow_bound_s"] == "0.01" and meta["window"] == "1h"
    agents = [row for row in rows if row["section"] == "agents"]
    assert float(by(agents, agent="good")["success_ratio"]) == 0.9
    assert by(agents, agent="bad")["p95_latency_s"] == ""
    assert by(agents, agent="good")["provider"] == ""  # columns of other sections stay empty
