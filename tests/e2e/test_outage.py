"""A Collector outage, end to end: an instrumented program (tests/support/instrumented_app.py) sends OTLP/HTTP to
our Collector running the shipped otelcol.yaml (traces to a test OTLP/gRPC backend, metrics scraped by a real
Prometheus); the test hangs the Collector (SIGSTOP), kills it (SIGKILL) while the program keeps working, then
starts it again on the same ports.

Asserted (qualitative facts only; the measured figures are printed with ``-s`` and written up in
docs/operations.md, "Collector outage"):
- the program's calls complete during the outage, with their results (nothing blocks on export);
- its memory stays bounded (RSS within a generous bound of what it was before);
- after recovery Prometheus has the right totals: the SDK's cumulative metrics carry every call made
  during the outage in the next export, with no counter reset;
- every span either arrived or is counted as lost: spans that arrived + ``agent_otel_instrumentation_errors_total
  {agent_otel_stage="export.traces"}`` (in Prometheus, after recovery) = spans ended, exactly; some were lost;
  and the failed metric exports are counted at ``export.metrics``.
Every process is stopped by PID in teardown.
"""

from __future__ import annotations

import os
import signal
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from agent_otel import semconv
from tests.support.app_process import AppProcess
from tests.support.collector import RunningCollector, start_collector
from tests.support.instrumented_app import AGENT, SPANS_PER_TRACE
from tests.support.otlp_receiver import OtlpGrpcReceiver
from tests.support.polling import wait_until
from tests.support.prometheus import RunningPrometheus

pytestmark = pytest.mark.e2e

SERVICE = "agent-otel-outage"
#: Jobs per phase: 4 spans each, so that the two outage phases together (1600 spans) stay under the SDK's span
#: queue (2048): every loss is then an export failure, which agent-otel counts exactly.
JOBS = 200
#: The SDK exporter's timeout (seconds, OTEL_EXPORTER_OTLP_TIMEOUT; default 10): how long a batch is retried.
EXPORT_TIMEOUT_S = 2
#: The generous memory bound: the outage may not add more than this to the program's RSS.
RSS_BOUND = 64 * 2**20
STAGE = semconv.prometheus_label(semconv.INSTRUMENTATION_STAGE)
ERRORS = semconv.INSTRUMENTATION_ERRORS.prometheus


@dataclass
class Outage:
    collector: RunningCollector
    prometheus: RunningPrometheus
    backend: OtlpGrpcReceiver
    app: AppProcess

    def invocations(self, at: float | None = None) -> float | None:
        return self.prometheus.value(
            f'sum(gen_ai_invoke_agent_duration_seconds_count{{job="{SERVICE}",gen_ai_agent_name="{AGENT}"}})', at)

    def lost(self, stage: str, at: float | None = None) -> float:
        return self.prometheus.value(f'sum({ERRORS}{{job="{SERVICE}",{STAGE}="{stage}"}})', at) or 0.0

    def rss(self) -> int:
        return int(psutil.Process(self.app.pid).memory_info().rss)


@pytest.fixture
def outage(tmp_path: Path) -> Iterator[Outage]:
    started: list[Any] = []
    try:
        backend = OtlpGrpcReceiver()
        backend.start()
        started.append(backend)

        def fast_flush(config: dict[str, Any]) -> None:
            # timing only: spans leave the Collector's sending queue after 1 s instead of 5 s
            config["exporters"]["otlp_grpc/traces"]["sending_queue"]["batch"]["flush_timeout"] = "1s"

        collector = start_collector("otelcol.yaml", tmp_path, {
            "OTEL_TRACES_BACKEND_ENDPOINT": backend.endpoint.removeprefix("http://"),
            "OTEL_TRACES_BACKEND_INSECURE": "true", "AGENT_OTEL_HASH_SALT": "outage-salt"}, fast_flush)
        started.append(collector)
        prometheus = RunningPrometheus(tmp_path / "prometheus", {
            "global": {"scrape_interval": "1s"},
            "scrape_configs": [{"job_name": "agent-otel-collector", "honor_labels": True,
                                "static_configs": [{"targets": [collector.prometheus_target]}]}]})
        started.append(prometheus)
        app = AppProcess(tmp_path, collector.otlp_http, SERVICE, OTEL_EXPORTER_OTLP_TIMEOUT=str(EXPORT_TIMEOUT_S))
        started.append(app)
        yield Outage(collector, prometheus, backend, app)
    finally:
        for server in reversed(started):
            if isinstance(server, RunningCollector) and server.process.pid:
                try:
                    os.kill(server.process.pid, signal.SIGCONT)  # a stopped process cannot act on SIGTERM
                except ProcessLookupError:
                    pass
            server.stop()


def summary(durations: list[float]) -> str:
    ordered = sorted(durations)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (f"median {statistics.median(ordered) * 1e3:.3f} ms, p99 {p99 * 1e3:.3f} ms, "
            f"max {ordered[-1] * 1e3:.3f} ms")


def test_an_outage_neither_blocks_nor_grows_the_program_and_every_loss_is_counted(outage: Outage) -> None:
    app, backend, prometheus = outage.app, outage.backend, outage.prometheus
    phases: dict[str, dict[str, Any]] = {}
    rss: dict[str, int] = {}

    # Before: everything arrives (and nothing waits in the Collector's queue when it goes down).
    phases["before"] = app.command(jobs=JOBS)
    wait_until(lambda: len(backend.spans()) == JOBS * SPANS_PER_TRACE, "the spans of the first jobs at the backend")
    wait_until(lambda: outage.invocations() == JOBS, "the first invocations in Prometheus")
    rss["before"] = outage.rss()

    # Hung: the Collector accepts connections (the kernel does) but never answers; exports time out.
    collector_pid = outage.collector.process.pid
    assert collector_pid is not None
    os.kill(collector_pid, signal.SIGSTOP)
    outage_started = time.monotonic()
    phases["hung"] = app.command(jobs=JOBS)
    wait_until(lambda: "export.traces failed" in app.log() and "export.metrics failed" in app.log(),
               "the program to count a failed span export and a failed metric export", timeout_s=30)
    # Down: killed; connections are refused.
    os.kill(collector_pid, signal.SIGKILL)
    wait_until(lambda: outage.collector.process.exited() is not None, "the Collector to die")
    phases["down"] = app.command(jobs=JOBS)
    rss["during"] = outage.rss()

    # Back, on the same ports.
    outage.collector.restart()
    outage_s = time.monotonic() - outage_started
    phases["after"] = app.command(jobs=JOBS)
    ended = 4 * JOBS * SPANS_PER_TRACE
    arrived: list[int] = []

    # Read at the moment every span was accounted for: Prometheus's figures below all come from the scrapes
    # before it (read "now", a failed scrape leaves the program's series stale until the next one).
    moments: list[float] = []

    def accounted() -> bool:
        moments.append(time.time())
        arrived[:] = [len(backend.spans())]
        return arrived[0] + outage.lost("export.traces", moments[-1]) == ended

    wait_until(lambda: outage.invocations() == 4 * JOBS,
               "every invocation, those of the outage included, in Prometheus", timeout_s=30)
    wait_until(accounted, "every span to have arrived or been counted as lost", timeout_s=30)
    rss["after"] = outage.rss()

    # Calls completed, with their results, in every phase.
    for name, phase in phases.items():
        assert len(phase["traces"]) == JOBS and len(phase["durations_s"]) == JOBS, name
        assert len({trace_id for trace_id, _ in phase["traces"]}) == JOBS, name  # one trace per job
    # Memory bounded.
    assert rss["during"] - rss["before"] < RSS_BOUND, rss
    assert rss["after"] - rss["before"] < RSS_BOUND, rss
    # Totals right after recovery: one series per process, no reset across the outage.
    at = moments[-1]
    series = prometheus.query(f'gen_ai_invoke_agent_duration_seconds_count{{job="{SERVICE}"}}', at)
    assert len({s["metric"]["instance"] for s in series}) == 1
    assert prometheus.query(f'resets(gen_ai_invoke_agent_duration_seconds_count{{job="{SERVICE}"}}[5m]) > 0',
                            at) == []
    # Losses: spans of the outage only, all counted; failed metric exports counted.
    by_phase = {name: {trace_id for trace_id, _ in phase["traces"]} for name, phase in phases.items()}
    arrived_traces: dict[str, int] = {}
    for span in backend.spans():
        trace_id = span.trace_id.hex()
        arrived_traces[trace_id] = arrived_traces.get(trace_id, 0) + 1
    for name in ("before", "after"):
        assert all(arrived_traces.get(trace_id) == SPANS_PER_TRACE for trace_id in by_phase[name]), name
    lost_spans = outage.lost("export.traces", at)
    assert lost_spans > 0
    assert outage.lost("export.metrics", at) >= 1
    outage_spans = {name: sum(arrived_traces.get(t, 0) for t in by_phase[name]) for name in ("hung", "down")}

    print("\nper-call time (job with agent, tool and provider calls): "
          + "; ".join(f"{name}: {summary(phase['durations_s'])}" for name, phase in phases.items()))
    print(f"outage {outage_s:.1f} s (SDK export timeout {EXPORT_TIMEOUT_S} s)")
    print(f"RSS: before {rss['before'] / 2**20:.1f} MiB, during {rss['during'] / 2**20:.1f} MiB, "
          f"after {rss['after'] / 2**20:.1f} MiB")
    print(f"spans ended {ended}, arrived {arrived[0]}, counted lost {lost_spans:g} (export.traces); "
          f"of the outage's {2 * JOBS * SPANS_PER_TRACE}: hung phase arrived {outage_spans['hung']}, "
          f"down phase arrived {outage_spans['down']}; failed metric exports counted "
          f"{outage.lost('export.metrics'):g}")
