"""Fixtures for the reliability tests: an SDK that counts spans instead of storing them (helpers in
tests/support/reliability.py)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

import agent_otel
from agent_otel._sdk.configure import histogram_views
from tests.support.reliability import Counted, CountingSpanProcessor, EndedTwiceLog


@pytest.fixture
def counted() -> Any:
    """configure() over SDK providers whose span processor counts instead of storing."""
    agent_otel.shutdown()
    spans = CountingSpanProcessor()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(spans)
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader], views=histogram_views())
    agent_otel.configure(tracer_provider=tracer_provider, meter_provider=meter_provider, set_global=False,
                         system_metrics=False, instrument_threads=False, instrument_processes=False)
    log = EndedTwiceLog()
    sdk_logger = logging.getLogger("opentelemetry.sdk.trace")
    sdk_logger.addHandler(log)
    yield Counted(spans, reader, tracer_provider, meter_provider, log)
    sdk_logger.removeHandler(log)
    agent_otel.shutdown()
