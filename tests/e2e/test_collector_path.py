"""The Collector path: two `agent-otel demo` processes of one service send OTLP/HTTP to our Collector
(bin/otelcol-agent-otel running the shipped otelcol.yaml, ports moved to loopback), whose Prometheus
exporter a real Prometheus scrapes with the shipped rules, as the shipped prometheus.yml does
(honor_labels: job and instance come from service.name and service.instance.id).

The rules alert to a real Alertmanager, whose webhook posts to this test; the Collector's traces exporter
(otlp_grpc/traces) sends to an OTLP/gRPC trace backend in this test.

Asserted: every contract metric with its labels and no id label, under the same names as on the direct
path (no `_ratio` on unit-1 gauges), every recording rule and every dashboard query returns data, the
shipped alerts reach the webhook (and the silent ones stay silent), exemplars carry the trace ids of
exported agent spans, and the two processes do not collide (two instances, no false resets).
Every server is stopped by PID in teardown.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from agent_otel import semconv
from agent_otel._ops.stack import ALERTMANAGER_PATH, RULE_PATHS, LocalStack, WebhookReceiver, free_port
from tests.support.alerts import (
    check_chosen_alerts_reach_the_webhook_with_labels_and_annotations,
    check_silent_counterparts_stay_silent,
    check_warnings_covered_by_a_critical_are_inhibited,
)
from tests.support.collector import RunningCollector, start_collector
from tests.support.dashboards import SELECTIONS, check_every_dashboard_query_returns_data
from tests.support.demo import stop
from tests.support.e2e import (
    RATE,
    SEED,
    check_contract_series,
    fast_alertmanager,
    fast_rules,
    recording_rules,
    wait_for_series,
)
from tests.support.http import http_get_json
from tests.support.otlp_receiver import OtlpGrpcReceiver, OtlpReceiver
from tests.support.paths import ASSETS
from tests.support.polling import wait_until

pytestmark = pytest.mark.e2e

SERVICE = "agent-otel-demo"
ENVIRONMENT = "e2e"
#: Labels on every series through the Collector: job/instance (honoured), the instrumentation scope (the
#: Collector's exporter adds scope attributes and schema URL as otel_scope_*), and the service and its
#: environment (semconv.SCOPING_RESOURCE_ATTRIBUTES, as on the direct path).
SCRAPE_LABELS = {"__name__", "job", "instance", "otel_scope_name", "otel_scope_version"} | {
    semconv.prometheus_label(key) for key in semconv.SCOPING_RESOURCE_ATTRIBUTES}
PROCESSES = 2


@dataclass
class CollectorPath:
    collector: RunningCollector
    stack: LocalStack
    webhook: WebhookReceiver
    #: The trace backend the Collector's otlp_grpc/traces exporter sends to.
    spans: OtlpReceiver
    demos: list[subprocess.Popen[bytes]]
    logs: list[Path]

    def api(self, path: str, **params: Any) -> Any:
        url = f"{self.stack.prometheus_url}{path}?" + urllib.parse.urlencode(params, doseq=True)
        answer = http_get_json(url)
        assert answer["status"] == "success", answer
        return answer["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.api("/api/v1/query", query=expr)["result"]
        return result

    def alertmanager_alerts(self) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = http_get_json(f"{self.stack.alertmanager_url}/api/v2/alerts")
        return alerts

    def alive(self) -> None:
        for demo, log in zip(self.demos, self.logs, strict=True):
            code = demo.poll()
            assert code is None, f"a demo exited with {code}:\n{log.read_text()[-3000:]}"
        code = self.collector.process.exited()
        assert code is None, f"the Collector exited with {code}:\n{self.collector.process.log_tail(40)}"

    demo_alive = alive


@pytest.fixture(scope="module")
def path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectorPath]:
    work = tmp_path_factory.mktemp("collector-path")
    rules = [fast_rules(ASSETS / name, work / Path(name).name) for name in RULE_PATHS]
    demos: list[subprocess.Popen[bytes]] = []
    logs = [work / f"demo-{n}.log" for n in range(PROCESSES)]
    with OtlpGrpcReceiver() as spans, WebhookReceiver() as webhook:
        collector = start_collector("otelcol.yaml", work, {
            # The shipped traces exporter (otlp_grpc/traces) sends to a trace backend in this test.
            "OTEL_TRACES_BACKEND_ENDPOINT": spans.endpoint.removeprefix("http://"),
            "OTEL_TRACES_BACKEND_INSECURE": "true", "AGENT_OTEL_HASH_SALT": "e2e-salt"})
        stack = LocalStack(work / "stack", scrape_targets=[collector.prometheus_target], webhook_url=webhook.url,
                           rule_files=rules, alertmanager_yml=fast_alertmanager(ASSETS / ALERTMANAGER_PATH),
                           scrape_interval="1s", evaluation_interval="1s", job_name="agent-otel-collector",
                           honor_labels=True)
        try:
            env = {**os.environ, "OTEL_TRACES_EXPORTER": "otlp", "OTEL_METRICS_EXPORTER": "otlp",
                   "OTEL_EXPORTER_OTLP_ENDPOINT": collector.otlp_http, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                   "OTEL_METRIC_EXPORT_INTERVAL": "1000", "OTEL_BSP_SCHEDULE_DELAY": "500",
                   "OTEL_SERVICE_NAME": SERVICE,
                   # The dashboards' Environment variable offers the values of this attribute.
                   "OTEL_RESOURCE_ATTRIBUTES": f"deployment.environment.name={ENVIRONMENT}"}
            for n, log_path in enumerate(logs):
                with open(log_path, "wb") as log:
                    demos.append(subprocess.Popen(
                        [sys.executable, "-m", "agent_otel", "demo", "--port", str(free_port()), "--rate", str(RATE),
                         "--seed", str(SEED + n), "--evolve-every", "1", "--duration", "3600"],
                        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=work))
            stack.start()
            setup = CollectorPath(collector, stack, webhook, spans, demos, logs)
            wait_until(lambda: (setup.alive(), setup.query(
                f'count(count by (instance) (gen_ai_invoke_agent_duration_seconds_count{{job="{SERVICE}"}})) '
                f"== {PROCESSES}"))[1], "both demo processes' metrics in Prometheus through the Collector",
                timeout_s=90)
            wait_until(lambda: setup.query(
                "count_over_time(gen_ai_invoke_agent_duration_seconds_count[1m]) > 2"),
                "three scrapes with agent invocations", timeout_s=60)
            yield setup
        finally:
            stack.stop()
            for demo in demos:
                stop(demo)
            collector.stop()


def series_of(path: CollectorPath, name: str) -> list[dict[str, str]]:
    return wait_for_series(path.api, name, path.alive)


@pytest.mark.parametrize("instrument", semconv.INSTRUMENTS, ids=lambda i: i.name)
def test_every_contract_metric_arrives_with_its_labels_and_no_id(path: CollectorPath,
                                                                  instrument: semconv.Instrument) -> None:
    """The same series names as the direct path (instrument.prometheus_series, what the SDK's /metrics
    serves), with the contract's labels only (plus the Collector's otel_scope_* labels)."""
    check_contract_series(instrument, lambda name: series_of(path, name), common_labels=SCRAPE_LABELS, job=SERVICE,
                          ignored=lambda label: label.startswith("otel_scope_"))


def test_no_ratio_suffix_on_unit_1_gauges(path: CollectorPath) -> None:
    gauges = [i for i in semconv.INSTRUMENTS if i.kind is semconv.Kind.GAUGE and i.unit == "1"]
    assert gauges
    for gauge in gauges:
        assert series_of(path, gauge.prometheus)
    wait_until(lambda: path.query(semconv.PROCESS_CPU_UTILIZATION_PROMETHEUS), "process CPU utilisation",
               timeout_s=60)
    assert path.api("/api/v1/label/__name__/values") and not [
        name for name in path.api("/api/v1/label/__name__/values") if name.endswith("_ratio")]


def test_two_processes_of_one_service_do_not_collide(path: CollectorPath) -> None:
    """Each process has its own service.instance.id, which the Collector makes `instance`: two series per
    label set, each counting up on its own (a shared identity would overwrite and look like resets)."""
    metric = f'gen_ai_invoke_agent_duration_seconds_count{{job="{SERVICE}"}}'
    # over the last scrapes, not at the last one: a failed scrape of the Collector leaves every series stale
    # until the next
    instances = {series["metric"]["instance"] for series in path.query(f"last_over_time({metric}[15s])")}
    assert len(instances) == PROCESSES
    for instance in instances:
        assert uuid.UUID(instance).version == 4
    wait_until(lambda: path.query(f"count_over_time({metric}[1m]) > 5"), "six scrapes of both processes",
               timeout_s=60)
    assert path.query(f"sum(resets({metric}[1m])) > 0") == []
    target_info = path.query(f'last_over_time(target_info{{job="{SERVICE}"}}[15s])')
    assert {series["metric"]["instance"] for series in target_info} == instances


def test_exemplars_carry_trace_ids_of_exported_agent_spans(path: CollectorPath) -> None:
    """The Collector serves OpenMetrics (enable_open_metrics), the only format with exemplars: Prometheus
    stores the trace ids the SDK attached to agent latencies, and each one is the trace id of an agent span
    that the Collector's traces pipeline exported to the trace backend."""
    exemplars: set[str] = set()

    def found() -> bool:
        path.alive()
        data = path.api("/api/v1/query_exemplars", query="gen_ai_invoke_agent_duration_seconds_bucket",
                        start="0", end="9999999999")
        exemplars.update(exemplar["labels"]["trace_id"] for series in data for exemplar in series["exemplars"])
        return bool(exemplars)

    wait_until(found, "an exemplar on an agent latency bucket", timeout_s=60)
    assert all(re.fullmatch(r"[0-9a-f]{32}", trace_id) for trace_id in exemplars), exemplars
    exported: set[str] = set()

    def all_exported() -> bool:  # the exporter's sending queue flushes every 5 s
        path.alive()
        exported.update(span.trace_id.hex() for span in path.spans.spans() if span.name.startswith("invoke_agent "))
        return exemplars <= exported

    try:
        wait_until(all_exported, "the agent spans of every exemplar's trace at the trace backend", timeout_s=60)
    except AssertionError:
        raise AssertionError(f"exemplar trace ids without an exported agent span: {exemplars - exported}") from None


@pytest.mark.parametrize("selection", SELECTIONS)
def test_every_dashboard_query_returns_data(path: CollectorPath, selection: str) -> None:
    """Every panel query, with the variables at All and at their first value (tests/support/dashboards.py,
    as on the direct path)."""
    check_every_dashboard_query_returns_data(path.api, path.query, selection, path.alive)


def test_chosen_alerts_reach_the_webhook_with_labels_and_annotations(path: CollectorPath) -> None:
    """The direct path's alert checks (tests/support/alerts.py) through the Collector: rules on the
    Collector's series fire, Alertmanager sends them to the webhook."""
    check_chosen_alerts_reach_the_webhook_with_labels_and_annotations(path)


def test_warnings_covered_by_a_critical_are_inhibited(path: CollectorPath) -> None:
    check_warnings_covered_by_a_critical_are_inhibited(path)


def test_silent_counterparts_stay_silent(path: CollectorPath) -> None:
    check_silent_counterparts_stay_silent(path)


def test_another_librarys_ids_never_become_labels_and_its_points_still_add_up(path: CollectorPath) -> None:
    """The Collector's privacy net: a library that is not agent-otel records one counter point per user, session
    and conversation (every id of semconv.ID_ATTRIBUTES). Prometheus gets one series without any id label,
    counting all of them. Before, five of the ids (session.id and enduser.id raw) became labels, one series each;
    and points that the net merged showed only the last one's value."""
    ids = sorted(semconv.ID_ATTRIBUTES)
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{path.collector.otlp_http}/v1/metrics"),
                                           export_interval_millis=3_600_000)
    provider = MeterProvider([reader], resource=Resource({"service.name": "another-library"}))
    counter = provider.get_meter("another.library").create_counter("another.requests")
    for n in range(3):
        counter.add(2, {**{key: f"{key}-{n}" for key in ids}, "route": "/search"})
    provider.shutdown()  # exports once
    found: list[dict[str, Any]] = []

    def arrived() -> bool:
        path.alive()
        found[:] = path.query('another_requests_total{job="another-library"}')
        return bool(found)

    wait_until(arrived, "another library's counter in Prometheus", timeout_s=60)
    [series] = found
    assert not {semconv.prometheus_label(key) for key in ids} & set(series["metric"]), series["metric"]
    assert series["metric"]["route"] == "/search" and float(series["value"][1]) == 6


def test_every_recording_rule_returns_data(path: CollectorPath) -> None:
    """The shipped rules work on the Collector path's series as they do on the direct path's."""
    names = recording_rules(previous_layout=False)
    assert len(names) > 100
    missing: list[str] = []

    def all_have_data() -> bool:
        path.alive()
        missing[:] = [name for name in names if not path.query(name)]
        return not missing

    try:
        wait_until(all_have_data, "data from every recording rule", timeout_s=90)
    except AssertionError:
        raise AssertionError(f"recording rules without data: {missing}") from None


BURSTS_PROGRAM = """
import logging, sys
from opentelemetry import metrics
import agent_otel

logging.basicConfig(format="%(levelname)s %(message)s")
agent_otel.configure()
tool = agent_otel.tool("burst")(lambda: None)
flush = metrics.get_meter_provider().force_flush
for _ in range(3):
    tool()
flush()  # the first burst exported
flush()  # then an interval with no call
for _ in range(4):
    tool()
agent_otel.shutdown()
"""


def test_a_program_working_in_bursts_is_counted_in_full_whatever_temporality_it_asks_for(path: CollectorPath) -> None:
    """With OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=delta, the point after an interval with no data does
    not continue the one before it, and the Collector's Prometheus exporter started over from it: 4 calls of 7
    reached Prometheus, silently. agent-otel's OTLP metrics are cumulative, and the ignored preference is said."""
    service = f"bursts-{uuid.uuid4().hex[:8]}"
    child = subprocess.run([sys.executable, "-c", BURSTS_PROGRAM], capture_output=True, text=True, timeout=120, env={
        **os.environ, "OTEL_METRICS_EXPORTER": "otlp", "OTEL_TRACES_EXPORTER": "none",
        "OTEL_EXPORTER_OTLP_ENDPOINT": path.collector.otlp_http, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_METRIC_EXPORT_INTERVAL": "600000", "OTEL_SERVICE_NAME": service,
        "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "delta"})
    assert child.returncode == 0, child.stderr
    warnings = [line for line in child.stderr.splitlines() if "TEMPORALITY_PREFERENCE" in line]
    assert len(warnings) == 1 and warnings[0].startswith("WARNING agent-otel: ") and "cumulative" in warnings[0]
    metric = f'gen_ai_execute_tool_duration_seconds_count{{job="{service}", gen_ai_tool_name="burst"}}'
    wait_until(lambda: (path.alive(), path.query(f"{metric} == 7"))[1], "all 7 calls in Prometheus", timeout_s=60)
