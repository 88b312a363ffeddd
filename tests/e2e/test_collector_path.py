"""The Collector path: two `agent-otel demo` processes of one service send OTLP/HTTP to our Collector
(bin/otelcol-agent-otel running the shipped otelcol.yaml, ports moved to loopback), whose Prometheus
exporter a real Prometheus scrapes with the shipped rules, as the shipped prometheus.yml does
(honor_labels: job and instance come from service.name and service.instance.id).

Asserted: every contract metric with its labels and no id label, under the same names as on the direct
path (no `_ratio` on unit-1 gauges), every recording rule returns data, exemplars arrive, and the two
processes do not collide (two instances, no false resets).
Every server is stopped by PID in teardown.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent_otel import semconv
from agent_otel._ops.stack import ALERTMANAGER_PATH, RULE_PATHS, LocalStack, WebhookReceiver, free_port, http_get_json
from tests.support.collector import RunningCollector, start_collector
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
from tests.support.paths import ASSETS
from tests.support.polling import wait_until

pytestmark = pytest.mark.e2e

SERVICE = "agent-otel-demo"
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

    def alive(self) -> None:
        for demo, log in zip(self.demos, self.logs, strict=True):
            code = demo.poll()
            assert code is None, f"a demo exited with {code}:\n{log.read_text()[-3000:]}"
        code = self.collector.process.exited()
        assert code is None, f"the Collector exited with {code}:\n{self.collector.process.log_tail(40)}"


@pytest.fixture(scope="module")
def path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectorPath]:
    work = tmp_path_factory.mktemp("collector-path")
    rules = [fast_rules(ASSETS / name, work / Path(name).name) for name in RULE_PATHS]
    collector = start_collector("otelcol.yaml", work, {
        # Nothing listens there: spans wait in the sending queue; this test is about metrics.
        "OTEL_TRACES_BACKEND_ENDPOINT": f"127.0.0.1:{free_port()}", "OTEL_TRACES_BACKEND_INSECURE": "true",
        "AGENT_OTEL_HASH_SALT": "e2e-salt"})
    demos: list[subprocess.Popen[bytes]] = []
    logs = [work / f"demo-{n}.log" for n in range(PROCESSES)]
    stack = LocalStack(work / "stack", scrape_targets=[collector.prometheus_target], webhook_url="",
                       rule_files=rules, alertmanager_yml=fast_alertmanager(ASSETS / ALERTMANAGER_PATH),
                       scrape_interval="1s", evaluation_interval="1s", job_name="agent-otel-collector",
                       honor_labels=True)
    try:
        with WebhookReceiver() as webhook:
            stack.webhook_url = webhook.url
            env = {**os.environ, "OTEL_TRACES_EXPORTER": "otlp", "OTEL_METRICS_EXPORTER": "otlp",
                   "OTEL_EXPORTER_OTLP_ENDPOINT": collector.otlp_http, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                   "OTEL_METRIC_EXPORT_INTERVAL": "1000", "OTEL_BSP_SCHEDULE_DELAY": "500",
                   "OTEL_SERVICE_NAME": SERVICE}
            env.pop("OTEL_RESOURCE_ATTRIBUTES", None)
            for n, log_path in enumerate(logs):
                with open(log_path, "wb") as log:
                    demos.append(subprocess.Popen(
                        [sys.executable, "-m", "agent_otel", "demo", "--port", str(free_port()), "--rate", str(RATE),
                         "--seed", str(SEED + n), "--evolve-every", "1", "--duration", "900"],
                        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=work))
            stack.start()
            setup = CollectorPath(collector, stack, demos, logs)
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
    instances = {series["metric"]["instance"] for series in path.query(metric)}
    assert len(instances) == PROCESSES
    for instance in instances:
        assert uuid.UUID(instance).version == 4
    wait_until(lambda: path.query(f"count_over_time({metric}[1m]) > 5"), "six scrapes of both processes",
               timeout_s=60)
    assert path.query(f"sum(resets({metric}[1m])) > 0") == []
    target_info = path.query(f'target_info{{job="{SERVICE}"}}')
    assert {series["metric"]["instance"] for series in target_info} == instances


def test_exemplars_arrive_through_the_collector(path: CollectorPath) -> None:
    """The Collector serves OpenMetrics (enable_open_metrics), the only format with exemplars: Prometheus
    stores the trace ids the SDK attached to agent latencies. (Which spans they lead to is the direct-path
    test's job: here spans go to a trace backend that is not running.)"""
    trace_ids: set[str] = set()

    def found() -> bool:
        path.alive()
        data = path.api("/api/v1/query_exemplars", query="gen_ai_invoke_agent_duration_seconds_bucket",
                        start="0", end="9999999999")
        trace_ids.update(exemplar["labels"]["trace_id"] for series in data for exemplar in series["exemplars"])
        return bool(trace_ids)

    wait_until(found, "an exemplar on an agent latency bucket", timeout_s=60)
    assert all(len(trace_id) == 32 and int(trace_id, 16) for trace_id in trace_ids)


def test_every_recording_rule_returns_data(path: CollectorPath) -> None:
    """The shipped rules work on the Collector path's series as they do on the direct path's."""
    names = recording_rules()
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
