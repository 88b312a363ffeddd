"""Our /metrics exposition: same names, labels and values as the stock OTel reader, plus trace exemplars.

How it is rendered and served (byte for byte prometheus_client's output) is test_prometheus_render.py.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families

import agent_otel
from agent_otel import semconv
from agent_otel._sdk.configure import histogram_views
from agent_otel._sdk.prometheus import AgentOtelPrometheusReader, prometheus_name
from tests.support.every_kind import record_everything, use_every_kind
from tests.support.ops import binary

Registries = tuple[CollectorRegistry, CollectorRegistry]  # ours, stock


def both_readers() -> tuple[MeterProvider, CollectorRegistry, CollectorRegistry]:
    """A meter provider with our reader and the stock one, each in its own registry."""
    ours_registry, stock_registry = CollectorRegistry(), CollectorRegistry()
    ours = AgentOtelPrometheusReader()
    ours_registry.register(ours.collector)
    stock = PrometheusMetricReader(registry=stock_registry)
    return MeterProvider(metric_readers=[ours, stock], views=histogram_views()), ours_registry, stock_registry


@pytest.fixture
def every_kind() -> Iterator[Registries]:
    """A process that used every kind of call, exposed by our reader and by the stock one."""
    agent_otel.shutdown()
    meter_provider, ours, stock = both_readers()
    agent_otel.configure(tracer_provider=TracerProvider(), meter_provider=meter_provider, set_global=False,
                         system_metrics=False)
    use_every_kind()
    yield ours, stock
    agent_otel.shutdown()
    meter_provider.shutdown()


#: The labels our reader adds to every series (from the resource) and the stock reader does not.
PROMOTED = {semconv.prometheus_label(key) for key in semconv.SCOPING_RESOURCE_ATTRIBUTES}


def samples(text: str, *, promoted: bool = False) -> set[tuple[str, frozenset[tuple[str, str]], float]]:
    """Every sample; without the promoted resource labels unless ``promoted`` (target_info keeps them)."""
    result = set()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = {k: v for k, v in sample.labels.items() if v != ""  # Prometheus drops empty labels
                      and (promoted or sample.name == "target_info" or k not in PROMOTED)}
            result.add((sample.name, frozenset(labels.items()), float(sample.value)))
    return result


def test_every_series_carries_the_service_and_environment_of_its_resource() -> None:
    resource = Resource.create({"service.name": "checkout", "deployment.environment.name": "staging"})
    ours = AgentOtelPrometheusReader()
    meter_provider = MeterProvider(resource=resource, metric_readers=[ours])
    record_everything(meter_provider, TracerProvider())
    registry = CollectorRegistry()
    registry.register(ours.collector)
    found = samples(generate_latest(registry).decode(), promoted=True)
    assert found
    for name, labels, _ in found:
        assert {("service_name", "checkout"), ("deployment_environment_name", "staging")} <= labels, name
    meter_provider.shutdown()


def test_same_series_and_values_as_the_stock_reader() -> None:
    meter_provider, ours, stock = both_readers()
    record_everything(meter_provider, TracerProvider())
    ours_samples = samples(generate_latest(ours).decode())
    stock_samples = samples(generate_latest(stock).decode())
    assert ours_samples == stock_samples
    names = {name for name, _, _ in ours_samples}
    assert {series for spec in semconv.INSTRUMENTS for series in spec.prometheus_series} <= names


def test_an_attribute_named_as_a_label_prometheus_keeps_for_itself_never_fails_a_scrape() -> None:
    """``le`` on a histogram's ``_count``/``_sum`` and ``__name__`` (any ``__`` name, a resource's too) made
    promtool, Prometheus's parser, refuse the whole scrape: they get ``key_`` in front."""
    registry, reader = CollectorRegistry(), AgentOtelPrometheusReader()
    registry.register(reader.collector)
    provider = MeterProvider(metric_readers=[reader], resource=Resource.create({"__meta": "r"}))
    meter = provider.get_meter("host.lib")
    meter.create_histogram("host.latency", unit="s", description="Latency.").record(0.3, {"le": "x"})
    meter.create_counter("host.calls", description="Calls.").add(1, {"__name__": "x"})
    text = generate_latest(registry).decode()
    result = subprocess.run([binary("promtool"), "check", "metrics"], input=text, text=True, capture_output=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr + text
    assert 'host_latency_seconds_count{key_le="x"' in text and 'host_calls_total{key___name__="x"' in text
    assert 'key___meta="r"' in text
    provider.shutdown()


def test_every_kind_passes_promtool_and_has_no_id_label(every_kind: Registries) -> None:
    ours, stock = every_kind
    text = generate_latest(ours).decode()
    assert samples(text) == samples(generate_latest(stock).decode())
    result = subprocess.run([binary("promtool"), "check", "metrics"], input=text, text=True, capture_output=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr + text
    assert result.stdout.strip() == "" and result.stderr.strip() == "", result.stdout + result.stderr

    families = list(text_string_to_metric_families(text))
    sample_names = {s.name for f in families for s in f.samples}
    for spec in semconv.INSTRUMENTS:
        assert set(spec.prometheus_series) <= sample_names, spec.name
    id_labels = {semconv.prometheus_label(key) for key in semconv.ID_ATTRIBUTES}
    id_labels |= {"id", "job_id", "user_id", "trace_id"}
    labels = {label for f in families for s in f.samples for label in s.labels}
    assert not labels & id_labels, labels & id_labels
    assert "alice" not in text
    assert 'agent_otel_stage="agent.confidence"' in text
    assert 'gen_ai_agent_name="refactor-agent"' in text


def test_openmetrics_output_carries_trace_exemplars() -> None:
    meter_provider, ours, _ = both_readers()
    trace_id = record_everything(meter_provider, TracerProvider())
    text = generate_openmetrics(ours).decode()
    bucket_line = next(line for line in text.splitlines()
                       if line.startswith("gen_ai_invoke_agent_duration_seconds_bucket") and 'le="0.4"' in line)
    assert '# {span_id="' in bucket_line and f'trace_id="{trace_id}"' in bucket_line
    counter_line = next(line for line in text.splitlines() if line.startswith("agent_work_items_total{"))
    assert f'trace_id="{trace_id}"' in counter_line
    assert "# UNIT gen_ai_invoke_agent_duration_seconds seconds" in text
    # promtool lints the classic text format (above); the OpenMetrics one is checked by a strict parser.
    parsed = {family.name for family in openmetrics_families(text)}
    assert "gen_ai_invoke_agent_duration_seconds" in parsed


def test_name_translation_rules() -> None:
    assert prometheus_name("gen_ai.client.operation.duration", "s") == ("gen_ai_client_operation_duration_seconds",
                                                                        "seconds")
    assert prometheus_name("evolution.memory.peak", "By") == ("evolution_memory_peak_bytes", "bytes")
    assert prometheus_name("gen_ai.client.token.usage", "{token}") == ("gen_ai_client_token_usage", "")
    assert prometheus_name("agent.kpi.current", "1") == ("agent_kpi_current", "")
