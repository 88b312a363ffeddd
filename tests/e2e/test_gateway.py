"""Past one machine, on loopback: an instrumented program (tests/support/instrumented_app.py) sends OTLP/HTTP to
an agent Collector running the shipped agent-to-gateway.yaml, which load-balances traces by trace id and metrics
by stream id to TWO gateway Collectors running the shipped gateway.yaml. Each gateway tail-samples (the shipped
policies) and sends the traces it keeps to its own test OTLP/gRPC backend, and remote-writes metrics to one real
Prometheus started with ``--web.enable-remote-write-receiver`` (which also scrapes the gateways' own metrics).

The configs are the shipped ones with ports moved to loopback; the DNS resolvers become static lists of the two
gateways (nothing resolves one name to two loopback ports), tail sampling decides after 2 s instead of 60 s
and the gateways' trace export flushes after 1 s instead of 5 s (timing only).

Asserted: every trace lands whole on exactly one gateway, both gateways get traces, every error trace is kept
and the others are sampled, and the metrics in Prometheus are exactly what the program recorded (not double
counted, one series per label set, each stream through one gateway). Every process is stopped by PID.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from agent_otel._ops.stack import free_port
from tests.support.app_process import AppProcess
from tests.support.collector import RunningCollector, loopback, start_collector
from tests.support.instrumented_app import AGENT, SPANS_PER_TRACE
from tests.support.otlp_receiver import OtlpGrpcReceiver
from tests.support.polling import wait_until
from tests.support.prometheus import RunningPrometheus

pytestmark = pytest.mark.e2e

SERVICE = "agent-otel-gateway"
JOBS = 90
#: Every third job's agent raises: 30 error traces, 60 others (of which the baseline policy keeps ~10%).
ERROR_EVERY = 3
GATEWAYS = 2
INVOCATIONS = f'gen_ai_invoke_agent_duration_seconds_count{{job="{SERVICE}",gen_ai_agent_name="{AGENT}"}}'
TOOLS = f'gen_ai_execute_tool_duration_seconds_count{{job="{SERVICE}"}}'


@dataclass
class Topology:
    gateways: list[RunningCollector]
    backends: list[OtlpGrpcReceiver]
    agent: RunningCollector
    prometheus: RunningPrometheus
    app: AppProcess
    #: trace id (hex) -> whether the program made it an error trace
    traces: dict[str, bool]

    def kept(self) -> list[Counter[str]]:
        """Per gateway: trace id -> spans of it that gateway's backend received."""
        return [Counter(span.trace_id.hex() for span in backend.spans()) for backend in self.backends]

    def alive(self) -> None:
        for collector in (*self.gateways, self.agent):
            code = collector.process.exited()
            assert code is None, f"{collector.process.name} exited with {code}:\n{collector.process.log_tail(40)}"

    def gateway_total(self, metric: str, matchers: str = "", job: str = "gateways") -> float:
        """The sum over both gateways (or the agent: ``job="agent"``) of one of their own counters."""
        return self.prometheus.value(f'sum({metric}{{job="{job}"{matchers}}})') or 0.0


def grpc_endpoint(collector: RunningCollector, receiver: str) -> str:
    return str(collector.config["receivers"][receiver]["protocols"]["grpc"]["endpoint"])


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    work = tmp_path_factory.mktemp("gateway")
    started: list[Any] = []
    try:
        sampling = [loopback() for _ in range(GATEWAYS)]
        telemetry = [free_port() for _ in range(GATEWAYS)]
        agent_telemetry = free_port()
        backends = []
        for _ in range(GATEWAYS):
            backend = OtlpGrpcReceiver()
            backend.start()
            started.append(backend)
            backends.append(backend)
        # Remote write in; the Collectors' own metrics (otelcol_*) scraped, to see which one did what.
        prometheus = RunningPrometheus(work / "prometheus", {
            "global": {"scrape_interval": "1s"},
            "scrape_configs": [
                {"job_name": "gateways", "static_configs": [{"targets": [f"127.0.0.1:{port}" for port in telemetry]}]},
                {"job_name": "agent", "static_configs": [{"targets": [f"127.0.0.1:{agent_telemetry}"]}]}]},
            "--web.enable-remote-write-receiver")
        started.append(prometheus)

        gateways = []
        for n, backend in enumerate(backends):
            def gateway_edit(config: dict[str, Any], own: str = sampling[n], port: int = telemetry[n]) -> None:
                config["receivers"]["otlp/sampling"]["protocols"]["grpc"]["endpoint"] = own
                [reader] = config["service"]["telemetry"]["metrics"]["readers"]
                reader["pull"]["exporter"]["prometheus"]["port"] = port
                config["exporters"]["load_balancing"]["resolver"] = {"static": {"hostnames": sampling}}
                config["processors"]["tail_sampling"]["decision_wait"] = "2s"
                config["exporters"]["otlp_grpc/traces"]["sending_queue"]["batch"]["flush_timeout"] = "1s"

            (work / f"gateway-{n}").mkdir()
            gateway = start_collector("gateway.yaml", work / f"gateway-{n}", {
                "OTEL_TRACES_BACKEND_ENDPOINT": backend.endpoint.removeprefix("http://"),
                "OTEL_TRACES_BACKEND_INSECURE": "true", "GATEWAY_SAMPLING_HOSTNAME": "unused.invalid",
                "PROMETHEUS_REMOTE_WRITE_ENDPOINT": prometheus.remote_write_url}, gateway_edit)
            started.append(gateway)
            gateways.append(gateway)

        ingest = [grpc_endpoint(gateway, "otlp") for gateway in gateways]

        def agent_edit(config: dict[str, Any]) -> None:
            [reader] = config["service"]["telemetry"]["metrics"]["readers"]
            reader["pull"]["exporter"]["prometheus"]["port"] = agent_telemetry
            config["exporters"]["load_balancing/traces"]["resolver"] = {"static": {"hostnames": sampling}}
            config["exporters"]["load_balancing/metrics"]["resolver"] = {"static": {"hostnames": ingest}}

        agent = start_collector("agent-to-gateway.yaml", work, {
            "GATEWAY_SAMPLING_HOSTNAME": "unused.invalid", "AGENT_OTEL_HASH_SALT": "gateway-salt"}, agent_edit)
        started.append(agent)
        app = AppProcess(work, agent.otlp_http, SERVICE)
        started.append(app)
        answer = app.command(jobs=JOBS, error_every=ERROR_EVERY)
        setup = Topology(gateways, backends, agent, prometheus, app, dict(answer["traces"]))
        app.command(flush=True)

        def decided() -> bool:
            setup.alive()
            return setup.gateway_total("otelcol_processor_tail_sampling_global_count_traces_sampled") >= JOBS

        wait_until(decided, "both gateways' tail sampling to decide on every trace", timeout_s=40)

        def kept_traces_exported() -> bool:
            kept = setup.gateway_total("otelcol_processor_tail_sampling_global_count_traces_sampled",
                                       ',sampled="true"')
            return sum(len(backend.spans()) for backend in backends) == SPANS_PER_TRACE * kept

        wait_until(kept_traces_exported, "every span of every kept trace at a backend", timeout_s=30)
        def invocations_arrived() -> bool:  # and the tool calls: their points may go through the other gateway
            setup.alive()
            return prometheus.value(f"sum({INVOCATIONS})") == JOBS and prometheus.value(f"sum({TOOLS})") == JOBS

        wait_until(invocations_arrived, "the program's invocations in Prometheus through remote write", timeout_s=40)
        app.stop()  # its last export done, the Collectors' counters stop moving
        yield setup
    finally:
        for server in reversed(started):
            server.stop()


def test_whole_traces_land_on_one_gateway(topology: Topology) -> None:
    kept = topology.kept()
    per_gateway = [set(spans) for spans in kept]
    assert all(per_gateway), f"a gateway kept no trace: {[len(s) for s in per_gateway]}"
    assert not per_gateway[0] & per_gateway[1], "a trace reached both gateways"
    for spans in kept:
        for trace_id, count in spans.items():
            assert trace_id in topology.traces
            assert count == SPANS_PER_TRACE, f"trace {trace_id}: {count} of its {SPANS_PER_TRACE} spans on one gateway"
    print(f"\ntraces kept per gateway: {[len(s) for s in per_gateway]}")


def test_every_error_trace_is_kept_and_the_others_are_sampled(topology: Topology) -> None:
    errors = {trace_id for trace_id, failed in topology.traces.items() if failed}
    others = set(topology.traces) - errors
    kept = set().union(*topology.kept())
    assert len(errors) == JOBS // ERROR_EVERY
    # The baseline policy keeps a share (10%) of the rest: not all of 60 (the chance that it keeps all is 1e-60).
    assert len(kept & others) < len(others)
    print(f"\nerror traces kept {len(kept & errors)}/{len(errors)}, others kept {len(kept & others)}/{len(others)}")


def test_metrics_are_not_double_counted(topology: Topology) -> None:
    prometheus = topology.prometheus
    errors = JOBS // ERROR_EVERY
    by_outcome = {series["metric"]["agent_outcome"]: float(series["value"][1])
                  for series in prometheus.query(INVOCATIONS)}
    assert by_outcome == {"success": JOBS - errors, "error": errors}
    # One series per label set: no copy per gateway, one process (instance).
    assert len(prometheus.query(INVOCATIONS)) == 2
    assert len({s["metric"]["instance"] for s in prometheus.query(f'{{job="{SERVICE}"}}')}) == 1
    tools = prometheus.value(f"sum({TOOLS})")
    assert tools == JOBS
    # Each data point went to one gateway only: the points both gateways accepted are the points the agent sent
    # (a copy to each would double them), and the streams spread over both.
    sent: list[float] = []

    def settled() -> bool:
        sent[:] = [topology.gateway_total("otelcol_exporter_sent_metric_points", ',exporter="load_balancing/metrics"',
                                          job="agent"),
                   topology.gateway_total("otelcol_receiver_accepted_metric_points", ',receiver="otlp"')]
        return sent[0] > 0 and sent[0] == sent[1]

    wait_until(settled, "the points the gateways accepted to equal those the agent sent", timeout_s=30)
    accepted = [float(series["value"][1]) for series in prometheus.query(
        'sum by (instance) (otelcol_receiver_accepted_metric_points{job="gateways",receiver="otlp"})')]
    assert len(accepted) == GATEWAYS and all(accepted), f"streams did not spread over both gateways: {accepted}"
    print(f"\nmetric points sent by the agent {sent[0]:g}, accepted per gateway: {accepted}")
