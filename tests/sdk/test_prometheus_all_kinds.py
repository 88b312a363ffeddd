"""A process that used every kind, exposed by the real OTel Prometheus reader, passes promtool."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import agent_otel
from agent_otel import semconv
from agent_otel._sdk.configure import histogram_views
from tests.support.every_kind import use_every_kind

PROMTOOL = "/usr/bin/promtool"


@pytest.fixture
def registry() -> Iterator[CollectorRegistry]:
    agent_otel.shutdown()
    registry = CollectorRegistry(auto_describe=True)
    meter_provider = MeterProvider(metric_readers=[PrometheusMetricReader(registry=registry)],
                                   views=histogram_views())
    agent_otel.configure(tracer_provider=TracerProvider(), meter_provider=meter_provider, set_global=False,
                         system_metrics=False)
    yield registry
    agent_otel.shutdown()
    meter_provider.shutdown()


def exposition_of_every_kind(registry: CollectorRegistry) -> str:
    use_every_kind()
    return generate_latest(registry).decode()


def test_every_kind_passes_promtool_and_has_no_id_label(registry: CollectorRegistry) -> None:
    text = exposition_of_every_kind(registry)
    assert os.access(PROMTOOL, os.X_OK), f"{PROMTOOL} is required for this test (install Debian's prometheus)"
    result = subprocess.run([PROMTOOL, "check", "metrics"], input=text, text=True, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr + text
    assert result.stdout.strip() == "" and result.stderr.strip() == "", result.stdout + result.stderr

    families = list(text_string_to_metric_families(text))
    samples = {s.name for f in families for s in f.samples}
    for spec in semconv.INSTRUMENTS:
        assert set(spec.prometheus_series) <= samples, spec.name
    id_labels = {key.replace(".", "_") for key in semconv.ID_ATTRIBUTES} | {"id", "job_id", "user_id", "trace_id"}
    labels = {label for f in families for s in f.samples for label in s.labels}
    assert not labels & id_labels, labels & id_labels
    assert "alice" not in text
    assert 'agent_otel_stage="agent.confidence"' in text
    assert 'gen_ai_agent_name="refactor-agent"' in text
