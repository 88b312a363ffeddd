"""The contract's instruments, through the real OTel Prometheus reader, give exactly the table's names."""

from __future__ import annotations

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from agent_otel import semconv
from agent_otel._engine.instruments import Runtime
from agent_otel._sdk.configure import histogram_views


def sample_attributes(spec: semconv.Instrument) -> dict[str, str]:
    return {key: "x" for key in spec.attributes if key != semconv.ERROR_TYPE}


def contract_exposition() -> str:
    registry = CollectorRegistry(auto_describe=True)
    reader = PrometheusMetricReader(registry=registry)
    meter_provider = MeterProvider(metric_readers=[reader], views=histogram_views())
    rt = Runtime(enabled=True, tracer=TracerProvider().get_tracer("t"),
                 meter=meter_provider.get_meter(semconv.SCOPE_NAME))
    for spec in semconv.INSTRUMENTS:
        instrument = rt[spec]
        attributes = sample_attributes(spec)
        if spec.kind is semconv.Kind.COUNTER:
            instrument.add(1, attributes)
        elif spec.kind is semconv.Kind.GAUGE:
            instrument.set(0.5, attributes)
        else:
            instrument.record(0.5, attributes)
    text = generate_latest(registry).decode()
    meter_provider.shutdown()
    return text


def test_exposition_has_exactly_the_contract_names_units_and_buckets() -> None:
    text = contract_exposition()
    families = {f.name: f for f in text_string_to_metric_families(text) if f.name != "target_info"}
    samples = {s.name for f in families.values() for s in f.samples}
    expected = {name for spec in semconv.INSTRUMENTS for name in spec.prometheus_series}
    assert samples == expected
    for spec in semconv.INSTRUMENTS:
        series = [s for f in families.values() for s in f.samples if s.name in spec.prometheus_series]
        assert series, spec.name
        for sample in series:
            labels = set(sample.labels) - {"le", "otel_scope_name", "otel_scope_version", "otel_scope_schema_url"}
            assert labels == {semconv.prometheus_label(key) for key in sample_attributes(spec)}, spec.name
            assert not labels & {semconv.prometheus_label(key) for key in semconv.ID_ATTRIBUTES}
        if spec.kind is semconv.Kind.HISTOGRAM:
            bounds = [float(s.labels["le"]) for s in series if s.name.endswith("_bucket")]
            assert bounds == [*spec.buckets, float("inf")], spec.name
    assert "HELP agent_otel_client_cost_total Estimated cost" in text


def test_confidence_bands_end_on_bucket_bounds() -> None:
    """The calibration bands are read from the cumulative buckets at their bounds: a bound that is not a
    bucket bound would make every band query wrong."""
    assert set(semconv.CONFIDENCE_BAND_BOUNDS) <= set(semconv.CONFIDENCE_BUCKETS)


def _band_counts(values: list[float]) -> dict[str, float]:
    """Each band's count when ``values`` go through the real SDK and Prometheus reader, counted from the
    cumulative buckets exactly as the rules do (upper bucket minus lower bucket)."""
    registry = CollectorRegistry(auto_describe=True)
    reader = PrometheusMetricReader(registry=registry)
    meter_provider = MeterProvider(metric_readers=[reader], views=histogram_views())
    rt = Runtime(enabled=True, tracer=TracerProvider().get_tracer("t"),
                 meter=meter_provider.get_meter(semconv.SCOPE_NAME))
    for value in values:
        rt[semconv.AGENT_CONFIDENCE_HISTOGRAM].record(value, {semconv.GEN_AI_AGENT_NAME: "a"})
    bucket = f"{semconv.AGENT_CONFIDENCE_HISTOGRAM.prometheus}_bucket"
    cumulative = {sample.labels["le"]: sample.value
                  for family in text_string_to_metric_families(generate_latest(registry).decode())
                  for sample in family.samples if sample.name == bucket}
    return {band: cumulative[upper] - (cumulative[lower] if lower else 0.0)
            for band, lower, upper in semconv.CONFIDENCE_BANDS}


def test_confidence_bands_are_low_below_half_medium_below_0_8_high_from_0_8() -> None:
    """low < 0.5 <= medium < 0.8 <= high, exactly at the edges (a stated 0.8 is high, 0.5 medium)."""
    assert _band_counts([0.0, 0.3, 0.4999]) == {"low": 3, "medium": 0, "high": 0}
    assert _band_counts([0.5, 0.65, 0.7999]) == {"low": 0, "medium": 3, "high": 0}
    assert _band_counts([0.8, 0.95, 1.0]) == {"low": 0, "medium": 0, "high": 3}
