"""Shared fixtures: the real OTel SDK with in-memory exporters, wired through configure()."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import agent_otel
from agent_otel._sdk.configure import histogram_views


@dataclass
class Harness:
    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader
    tracer_provider: TracerProvider
    meter_provider: MeterProvider

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        spans = list(self.exporter.get_finished_spans())
        return [s for s in spans if name is None or s.name == name]

    def span(self, name: str) -> ReadableSpan:
        found = self.spans(name)
        assert len(found) == 1, f"expected one span {name!r}, got {[s.name for s in self.spans()]}"
        return found[0]

    def metrics(self) -> dict[str, Any]:
        """Metric name -> metric (with unit and data points), from one collection."""
        data = self.reader.get_metrics_data()
        result: dict[str, Any] = {}
        if data is None:
            return result
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    result[metric.name] = metric
        return result

    def points(self, name: str) -> list[Any]:
        metric = self.metrics().get(name)
        return list(metric.data.data_points) if metric is not None else []


@pytest.fixture
def otel() -> Any:
    """Real SDK providers with in-memory exporters, given to configure() as a host would."""
    agent_otel.shutdown()
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader], views=histogram_views())
    agent_otel.configure(tracer_provider=tracer_provider, meter_provider=meter_provider,
                         set_global=False, system_metrics=False)
    yield Harness(exporter, reader, tracer_provider, meter_provider)
    agent_otel.shutdown()


@pytest.fixture(autouse=True)
def fresh_guards() -> Any:
    """Each test starts from the environment's policy and the shipped price table."""
    from agent_otel._calls import pricing
    from agent_otel._engine import policy

    policy._policy = None
    pricing.reset_prices()
    yield
    policy._policy = None
    pricing.reset_prices()
