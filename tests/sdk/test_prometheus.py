"""Our /metrics exposition: same names and labels as the stock OTel reader, plus trace exemplars."""

from __future__ import annotations

import subprocess

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families

from agent_otel import semconv
from agent_otel._engine.instruments import Runtime
from agent_otel._sdk.configure import histogram_views
from agent_otel._sdk.prometheus import AgentOtelPrometheusReader, prometheus_name


def record_everything(meter_provider: MeterProvider, tracer_provider: TracerProvider) -> str:
    """Record every contract instrument inside a sampled span; returns that span's trace id."""
    rt = Runtime(enabled=True, tracer=tracer_provider.get_tracer("t"), meter=meter_provider.get_meter("agent_otel"))
    with rt.tracer.start_as_current_span("recording") as span:
        for spec in semconv.INSTRUMENTS:
            attributes = {key: "v" for key in spec.attributes if key != semconv.ERROR_TYPE}
            if spec.kind is semconv.Kind.COUNTER:
                rt[spec].add(2, attributes)
            elif spec.kind is semconv.Kind.GAUGE:
                rt[spec].set(0.25, attributes)
            else:
                rt[spec].record(0.3, attributes)
        return format(span.get_span_context().trace_id, "032x")


def both_expositions() -> tuple[CollectorRegistry, CollectorRegistry, str]:
    ours_registry, stock_registry = CollectorRegistry(), CollectorRegistry()
    ours = AgentOtelPrometheusReader()
    ours_registry.register(ours.collector)
    stock = PrometheusMetricReader(registry=stock_registry)
    provider = MeterProvider(metric_readers=[ours, stock], views=histogram_views())
    trace_id = record_everything(provider, TracerProvider())
    return ours_registry, stock_registry, trace_id


def samples(text: str) -> set[tuple[str, frozenset]]:
    result = set()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = {k: v for k, v in sample.labels.items() if v != ""}  # Prometheus drops empty labels
            result.add((sample.name, frozenset(labels.items()), float(sample.value)))
    return result


def test_same_series_and_values_as_the_stock_reader() -> None:
    ours, stock, _ = both_expositions()
    ours_samples = samples(generate_latest(ours).decode())
    stock_samples = samples(generate_latest(stock).decode())
    assert ours_samples == stock_samples
    names = {name for name, _, _ in ours_samples}
    assert {series for spec in semconv.INSTRUMENTS for series in spec.prometheus_series} <= names


def test_openmetrics_output_carries_trace_exemplars_and_passes_promtool() -> None:
    ours, _, trace_id = both_expositions()
    text = generate_openmetrics(ours).decode()
    bucket_line = next(line for line in text.splitlines()
                       if line.startswith("gen_ai_invoke_agent_duration_seconds_bucket") and 'le="0.4"' in line)
    assert '# {span_id="' in bucket_line and f'trace_id="{trace_id}"' in bucket_line
    counter_line = next(line for line in text.splitlines() if line.startswith("agent_work_items_total{"))
    assert f'trace_id="{trace_id}"' in counter_line
    assert "# UNIT gen_ai_invoke_agent_duration_seconds seconds" in text
    # promtool lints the classic text format; the OpenMetrics one is checked by a strict parser.
    parsed = {family.name for family in openmetrics_families(text)}
    assert "gen_ai_invoke_agent_duration_seconds" in parsed
    result = subprocess.run(["promtool", "check", "metrics"], input=generate_latest(ours).decode(), text=True,
                            capture_output=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_name_translation_rules() -> None:
    assert prometheus_name("gen_ai.client.operation.duration", "s") == ("gen_ai_client_operation_duration_seconds",
                                                                        "seconds")
    assert prometheus_name("evolution.memory.peak", "By") == ("evolution_memory_peak_bytes", "bytes")
    assert prometheus_name("gen_ai.client.token.usage", "{token}") == ("gen_ai_client_token_usage", "")
    assert prometheus_name("agent.kpi.current", "1") == ("agent_kpi_current", "")
