"""A collector that refuses connections, or accepts them and never answers, costs the host nothing.

configure() builds its own TracerProvider exporting over OTLP (HTTP and gRPC) to the bad endpoint;
the errors counter is read from a host MeterProvider with an in-memory reader (or, for the metrics
path, from our /metrics). While the exporter fails: 20,000 wrapped calls complete, the span queue
never grows beyond ``max_queue_size`` (and fills up to it while exports hang), RSS stays bounded,
the lost spans are counted on ``agent_otel.instrumentation.errors`` (approximately: never more than
were lost), and ``shutdown()`` returns within its timeout.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

import psutil
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    InMemoryMetricReader,
    MetricExporter,
    MetricExportResult,
    PeriodicExportingMetricReader,
)

import agent_otel
from agent_otel import semconv
from agent_otel._ops.stack import free_port
from agent_otel._sdk.configure import histogram_views
from agent_otel._sdk.export_loss import LossReporter, ReportingMetricExporter
from tests.support.polling import wait_until
from tests.support.reliability import completes

CALLS = 20_000
# Hang detection only, never a measured-duration check: "calls do not block" (each call blocking on
# the exporter would take hours) and "shutdown() returns within its timeout" (the SDK's own waits
# 30 s per processor or provider on a silent collector: below that, so the regression is still caught).
CALLS_HANG_S = 120.0
SHUTDOWN_TIMEOUT_MS = 1_000
SHUTDOWN_HANG_S = 20.0
EXIT_HANG_S = 25.0  # a child's start-up and imports included
EXPORT_TIMEOUT_S = "0.5"  # OTEL_EXPORTER_OTLP_TIMEOUT: how long one export may wait for the collector
RSS_GROWTH_LIMIT = 64 * 2**20


class SilentCollector:
    """Accepts TCP connections (HTTP or HTTP/2), reads what arrives, and never answers."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(128)
        self.port = self._sock.getsockname()[1]
        self.connections: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections.append(conn)

    def close(self) -> None:
        self._closed = True
        self._sock.close()
        for conn in self.connections:
            conn.close()


@pytest.fixture(params=["refusing", "silent"])
def bad_endpoint(request: pytest.FixtureRequest) -> Iterator[tuple[str, Any]]:
    if request.param == "refusing":
        yield f"http://127.0.0.1:{free_port()}", None  # nothing listens there
        return
    collector = SilentCollector()
    yield f"http://127.0.0.1:{collector.port}", collector
    collector.close()


@pytest.fixture
def export_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("OTEL_", "AGENT_OTEL_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", EXPORT_TIMEOUT_S)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "100")


def lost(reader: InMemoryMetricReader) -> dict[str, int]:
    """agent_otel.instrumentation.errors by stage, for the export stages."""
    data = reader.get_metrics_data()
    result: dict[str, int] = {}
    for rm in data.resource_metrics if data is not None else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == semconv.INSTRUMENTATION_ERRORS.name:
                    for point in metric.data.data_points:
                        stage = str(point.attributes[semconv.INSTRUMENTATION_STAGE])
                        if stage.startswith("export."):
                            result[stage] = result.get(stage, 0) + int(point.value)
    return result


@agent_otel.tool("faulty-export")
def work(i: int) -> int:
    return i


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_failing_collector_never_blocks_calls_bounds_the_queue_and_counts_the_loss(
        export_env: None, bad_endpoint: tuple[str, Any], protocol: str) -> None:
    endpoint, silent = bad_endpoint
    agent_otel.shutdown()
    reader = InMemoryMetricReader()
    telemetry = agent_otel.configure(
        otlp_endpoint=endpoint, otlp_protocol=protocol, traces_exporter="otlp",
        meter_provider=MeterProvider(metric_readers=[reader], views=histogram_views()),
        set_global=False, system_metrics=False, instrument_threads=False, instrument_processes=False)
    try:
        [processor] = telemetry.span_processors
        queue = processor.queue
        max_queue = queue.maxlen
        max_batch = processor._batch._max_export_batch_size  # SDK internals (pinned version)
        rss_before = psutil.Process().memory_info().rss

        def calls() -> int:
            longest = 0
            with agent_otel.job("faulty"):
                for i in range(CALLS):
                    assert work(i) == i
                    if i % 50 == 0:
                        longest = max(longest, len(queue))
            return longest

        longest_queue, calls_s = completes(calls, f"{CALLS} calls on a failing exporter", timeout_s=CALLS_HANG_S)
        rss_growth = psutil.Process().memory_info().rss - rss_before
        assert longest_queue <= max_queue
        assert rss_growth < RSS_GROWTH_LIMIT
        expected = {"export.traces"}
        if silent is not None:  # exports hang: the queue fills up, and no further, and drops spans
            assert silent.connections, "the exporter never reached the silent collector"
            assert longest_queue == max_queue
            expected.add("export.traces.queue_full")
        # the loss is counted while the collector stays bad
        wait_until(lambda: expected <= set(lost(reader)), f"{sorted(expected)} on the errors counter", timeout_s=30)
    finally:
        _, shutdown_s = completes(lambda: agent_otel.shutdown(timeout_millis=SHUTDOWN_TIMEOUT_MS),
                                  "shutdown() to return", timeout_s=SHUTDOWN_HANG_S)
    # the count is approximate: it may miss some (a batch in flight at shutdown, a drop while the
    # worker is between exports), never counts more spans than were lost
    spans = CALLS + 1
    counted = sum(lost(reader).values())
    assert counted <= spans, lost(reader)
    print(f"\n{protocol} {'silent' if silent else 'refusing'}: {CALLS} calls in {calls_s:.2f} s, "
          f"queue max {longest_queue}/{max_queue} (batches of {max_batch}), RSS +{rss_growth / 2**20:.1f} MiB, "
          f"shutdown {shutdown_s:.2f} s, lost {lost(reader)}: {counted}/{spans} spans counted")


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def errors_on_metrics(body: str, stage: str) -> float:
    name = semconv.INSTRUMENTATION_ERRORS.prometheus
    label = semconv.prometheus_label(semconv.INSTRUMENTATION_STAGE)
    pattern = rf'^{name}{{[^}}]*{label}="{re.escape(stage)}"[^}}]*}} (\S+)'
    found = re.search(pattern, body, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_failing_metric_export_is_counted_and_shutdown_keeps_its_timeout(
        export_env: None, bad_endpoint: tuple[str, Any]) -> None:
    protocol = "http/protobuf"  # the metric exporter wrapper does not depend on it; gRPC is covered above
    endpoint, _silent = bad_endpoint
    agent_otel.shutdown()
    telemetry = agent_otel.configure(
        otlp_endpoint=endpoint, otlp_protocol=protocol, traces_exporter="otlp", metrics_exporter="otlp,prometheus",
        prometheus_port=free_port(), set_global=False, system_metrics=False, instrument_threads=False,
        instrument_processes=False)
    try:
        url = telemetry.prometheus_url
        assert url is not None

        def calls() -> None:
            for i in range(CALLS // 4):
                assert work(i) == i

        completes(calls, f"{CALLS // 4} calls on failing exporters", timeout_s=CALLS_HANG_S)
        wait_until(lambda: errors_on_metrics(scrape(url), "export.metrics") >= 1,
                   "a failed metric export on /metrics", timeout_s=30)
    finally:
        completes(lambda: agent_otel.shutdown(timeout_millis=SHUTDOWN_TIMEOUT_MS), "shutdown() to return",
                  timeout_s=SHUTDOWN_HANG_S)


class RecordingMetricExporter(MetricExporter):
    """A push exporter that records the timeout its shutdown was given. It does not call
    ``MetricExporter.__init__`` (so it lacks the SDK's private preference attributes), as a custom
    exporter may not."""

    def __init__(self) -> None:
        self.shutdown_timeout_millis: float | None = None

    def export(self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.shutdown_timeout_millis = timeout_millis


def test_the_wrapped_metric_exporter_gets_the_readers_remaining_shutdown_time() -> None:
    exporter = RecordingMetricExporter()
    wrapped = ReportingMetricExporter(exporter, LossReporter())  # no AttributeError: SDK defaults
    reader = PeriodicExportingMetricReader(wrapped, export_interval_millis=60_000)
    reader.shutdown(timeout_millis=SHUTDOWN_TIMEOUT_MS)  # calls wrapped.shutdown(timeout=<ms left>)
    assert exporter.shutdown_timeout_millis is not None
    assert 0 <= exporter.shutdown_timeout_millis <= SHUTDOWN_TIMEOUT_MS  # not the 30 s default


EXIT_CHILD = """
import logging, socket, sys, threading
import agent_otel

logging.basicConfig()  # a host that shows warnings (without it, agent-otel's NullHandler keeps stderr clean)
from agent_otel._sdk import configure as setup

sock = socket.socket()
sock.bind(("127.0.0.1", 0))
sock.listen(16)
held = []
threading.Thread(target=lambda: [held.append(sock.accept()) for _ in iter(int, 1)], daemon=True).start()
agent_otel.configure(otlp_endpoint=f"http://127.0.0.1:{sock.getsockname()[1]}", otlp_protocol=sys.argv[1],
                     metrics_exporter="otlp", system_metrics=False)

@agent_otel.tool("t")
def work(i):
    return i

for i in range(5_000):
    work(i)
# the host never calls shutdown(); the exit hook does, with shutdown()'s default timeout (shortened here)
setup.shutdown.__defaults__ = (%d,)
print("exiting", flush=True)
"""


@pytest.mark.parametrize("protocol", ["http/protobuf"])
def test_a_host_that_never_calls_shutdown_exits_within_the_shutdown_timeout(protocol: str) -> None:
    """With a collector that never answers, the SDK's own exit hooks waited 30 s per provider."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENT_OTEL_"))}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen([sys.executable, "-c", EXIT_CHILD % SHUTDOWN_TIMEOUT_MS, protocol], env=env,
                                 stdout=out, stderr=err, text=True)
        try:
            wait_until(lambda: child.poll() is not None, "the child to exit", timeout_s=EXIT_HANG_S)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    assert child.returncode == 0, stderr
    assert stdout == "exiting\n"
    assert "export.traces" in stderr  # the loss was reported on the way out
