"""One bad value never fails a scrape or an OTLP export (issue 12, items 7, 8 and 9, export side).

Values recorded through agent-otel are made valid when recorded (tests/engine/test_valid_values.py);
here the values come from elsewhere (a host's own instrument on the same MeterProvider, a resource
attribute) or go all the way through the exporters configure() builds, to an in-test OTLP receiver.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricsData, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.parser import text_string_to_metric_families

import agent_otel
from agent_otel import path, semconv
from agent_otel._sdk.export_loss import LossReporter, ReportingMetricExporter
from agent_otel._sdk.metric_ids import without_ids
from agent_otel._sdk.prometheus import AgentOtelPrometheusReader
from tests.support.otlp_receiver import OtlpHttpReceiver, attributes_of, data_points_of
from tests.support.polling import wait_until
from tests.support.telemetry import error_count

BAD_TEXT = json.loads('{"kind": "fix \\ud83d"}')["kind"]


@pytest.fixture
def receiver() -> Iterator[OtlpHttpReceiver]:
    with OtlpHttpReceiver() as started:
        yield started


def test_a_lone_surrogate_from_a_host_instrument_never_fails_a_scrape(otel: Any) -> None:
    reader = AgentOtelPrometheusReader()
    registry = CollectorRegistry()
    registry.register(reader.collector)
    provider = MeterProvider(metric_readers=[reader], resource=Resource.create({"host.note": BAD_TEXT}),
                             shutdown_on_exit=False)
    try:
        counter = provider.get_meter("host").create_counter("host.tasks", description=f"tasks {BAD_TEXT}")
        counter.add(1, {"kind": BAD_TEXT})
        outputs = [reader.render(), reader.render(openmetrics=True), generate_latest(registry),
                   generate_openmetrics(registry), reader.render()]  # the fast renderer keeps series: twice
    finally:
        provider.shutdown()
    for output in outputs:
        assert "fix \ufffd" in output.decode("utf-8")
    families = {f.name: f for f in text_string_to_metric_families(outputs[0].decode())}
    assert [s.labels["kind"] for s in families["host_tasks"].samples] == ["fix \ufffd"]
    assert error_count(otel, "invalid_text.kind") >= 1
    assert error_count(otel, "invalid_text.host.note") >= 1


def test_a_count_beyond_int64_from_a_host_counter_never_stops_otlp_metrics(
        otel: Any, receiver: OtlpHttpReceiver) -> None:
    loss = LossReporter()
    loss.counter = otel.meter_provider.get_meter(semconv.SCOPE_NAME).create_counter(semconv.INSTRUMENTATION_ERRORS.name)
    exporter = ReportingMetricExporter(OTLPMetricExporter(endpoint=receiver.endpoint + "/v1/metrics"), loss)
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    try:
        counter = provider.get_meter("host").create_counter("host.items")
        counter.add(10**20, {"kind": "huge"})
        counter.add(1, {"kind": "small"})
        for expected in (1, 2):
            assert provider.force_flush()
            wait_until(lambda e=expected: len(receiver.metrics) >= e, "an OTLP metric export")  # type: ignore[misc]
        counter.add(2, {"kind": "small"})
        assert provider.force_flush()
        wait_until(lambda: len(receiver.metrics) >= 3, "a later OTLP metric export")
    finally:
        provider.shutdown()
    points = [attributes_of(p)["kind"] for m in receiver.metrics_named("host.items") for p in data_points_of(m)]
    assert points[:3] == ["small", "small", "small"]
    assert error_count(otel, "export.metrics.out_of_range") >= 3


def sha(value: str) -> str:
    return hashlib.sha256(("pepper" + value).encode()).hexdigest()


def configure_to(receiver: OtlpHttpReceiver, traces_exporter: str) -> Any:
    """configure() exporting metrics (and traces, if asked) over OTLP/HTTP to ``receiver``, nothing else on."""
    return agent_otel.configure(
        service_name="safety", traces_exporter=traces_exporter, metrics_exporter="otlp",
        otlp_endpoint=receiver.endpoint, otlp_protocol="http/protobuf", set_global=False, system_metrics=False,
        instrument_threads=False, instrument_processes=False)


def test_through_the_otlp_exporters_configure_builds(receiver: OtlpHttpReceiver) -> None:
    """Items 7, 8 and 9 together, end to end: every export arrives whole, hashed keys hashed."""
    agent_otel.shutdown()
    telemetry = configure_to(receiver, traces_exporter="otlp")
    try:
        agent_otel.set_policy(salt="pepper")
        assert telemetry.tracer_provider is not None

        @agent_otel.agent("fixer", task_type=path("args.kind"))
        def fix(kind: str, fixes: int) -> dict[str, Any]:
            from opentelemetry import trace

            trace.get_current_span().set_attribute("user.id", "alice")
            return {"success": True, "fixes_applied": fixes}

        fix(BAD_TEXT, 10**20)
        fix("plain", 2)
        foreign = telemetry.tracer_provider.get_tracer("some.library")
        with foreign.start_as_current_span("foreign") as span:
            span.set_attribute("user.id", "bob")
    finally:
        agent_otel.shutdown()
    spans = {span.name: attributes_of(span) for span in receiver.spans()}
    assert spans["invoke_agent fixer"]["user.id"] == sha("alice")
    assert spans["foreign"]["user.id"] == sha("bob")
    durations = [attributes_of(p) for m in receiver.metrics_named(semconv.AGENT_DURATION.name)
                 for p in data_points_of(m)]
    assert sorted(d[semconv.AGENT_TASK_TYPE] for d in durations) == ["fix \ufffd", "plain"]
    work = [p.as_int for m in receiver.metrics_named(semconv.AGENT_WORK_ITEMS.name) for p in data_points_of(m)]
    assert work == [2]


def host_metrics_with_ids(provider: MeterProvider) -> None:
    """Another library's instruments, recorded with ids beside their own labels (two users of one route)."""
    meter = provider.get_meter("host")
    requests = meter.create_counter("host.requests")
    requests.add(2, {"route": "/a", "user.id": "alice@example.com", "session.id": "session-xyz"})
    # a GenAI instrumentation's ids of one response, one tool call
    requests.add(3, {"route": "/a", "user.id": "bob@example.com", semconv.GEN_AI_CONVERSATION_ID: "conversation-xyz",
                     "gen_ai.response.id": "response-xyz"})
    requests.add(1, {"route": "/b"})
    latency = meter.create_histogram("host.latency", unit="s")
    latency.record(0.5, {"route": "/a", "user.id": "alice@example.com"})
    latency.record(7.0, {"route": "/a", "enduser.id": "bob@example.com", semconv.JOB_ID: "job-xyz",
                         "gen_ai.tool.call.id": "call-xyz"})
    meter.create_gauge("host.queue").set(4, {"user.id": "alice@example.com"})


def test_no_id_of_another_librarys_metric_is_a_label_of_metrics(otel: Any) -> None:
    """/metrics is scraped with no Collector in between: it deletes the ids as the Collector's privacy net does,
    and adds up the points that differed only by them; an id of the resource is no label of target_info."""
    reader = AgentOtelPrometheusReader()
    registry = CollectorRegistry()
    registry.register(reader.collector)
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False,
                             resource=Resource.create({"service.name": "svc", "enduser.id": "carol@example.com"}))
    try:
        host_metrics_with_ids(provider)
        outputs = [reader.render().decode(), reader.render(openmetrics=True).decode(),
                   generate_latest(registry).decode()]
    finally:
        provider.shutdown()
    for output in outputs:
        # ids with letters no hex digit has: the resource's random service.instance.id (a UUID) cannot hold one
        assert not any(secret in output for secret in ("example.com", "session-xyz", "conversation-xyz", "job-xyz",
                                                       "response-xyz", "call-xyz")), output
        assert 'service_name="svc"' in output
    families = {f.name: f for f in text_string_to_metric_families(outputs[0])}
    assert {(s.labels.get("route"), s.value) for s in families["host_requests"].samples
            if s.name == "host_requests_total"} == {("/a", 5.0), ("/b", 1.0)}
    latency = {s.name: s.value for s in families["host_latency_seconds"].samples
               if s.labels.get("le") in (None, "+Inf")}
    assert latency == {"host_latency_seconds_bucket": 2.0, "host_latency_seconds_count": 2.0,
                       "host_latency_seconds_sum": 7.5}
    assert [(set(s.labels) - {"otel_scope_name", "service_name"}, s.value)
            for s in families["host_queue"].samples] == [(set(), 4.0)]


def test_no_id_of_another_librarys_metric_leaves_by_otlp(receiver: OtlpHttpReceiver) -> None:
    agent_otel.shutdown()
    telemetry = configure_to(receiver, traces_exporter="none")
    try:
        assert isinstance(telemetry.meter_provider, MeterProvider)
        host_metrics_with_ids(telemetry.meter_provider)
    finally:
        agent_otel.shutdown()
    requests = {attributes_of(p).get("route"): p.as_int for m in receiver.metrics_named("host.requests")
                for p in data_points_of(m)}
    assert requests == {"/a": 5, "/b": 1}
    keys = {key for m in receiver.metric_list() for p in data_points_of(m) for key in attributes_of(p)}
    assert not keys & semconv.ID_ATTRIBUTES


def test_exponential_histogram_points_that_differed_by_an_id_add_up_as_if_recorded_as_one() -> None:
    def recorded(with_ids: bool) -> MetricsData:
        reader = InMemoryMetricReader()
        provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False, views=[
            View(instrument_name="h", aggregation=ExponentialBucketHistogramAggregation(max_size=20))])
        histogram = provider.get_meter("host").create_histogram("h")
        for i, value in enumerate((0.0, 0.003, 0.2, 1.5, 40.0, 900.0, 2e5, 7e6, 3.0)):  # each user at its own scale
            histogram.record(value, {"user.id": f"u{i % 3}", "k": "v"} if with_ids else {"k": "v"})
        data = reader.get_metrics_data()
        provider.shutdown()
        assert data is not None
        return data

    def points(data: MetricsData) -> Any:
        return data.resource_metrics[0].scope_metrics[0].metrics[0].data.data_points

    def buckets(point: Any, scale: int) -> dict[int, int]:
        found: dict[int, int] = {}
        for i, count in enumerate(point.positive.bucket_counts):
            index = (point.positive.offset + i) >> (point.scale - scale)
            found[index] = found.get(index, 0) + count
        return {index: count for index, count in found.items() if count}

    with_ids = recorded(True)
    assert len(points(with_ids)) == 3
    [merged] = points(without_ids(with_ids))
    [single] = points(recorded(False))
    assert dict(merged.attributes) == {"k": "v"}
    assert (merged.count, merged.sum, merged.zero_count, merged.min, merged.max) == (
        single.count, pytest.approx(single.sum), single.zero_count, single.min, single.max)
    scale = min(merged.scale, single.scale)
    assert buckets(merged, scale) == buckets(single, scale)
