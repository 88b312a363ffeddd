"""The Collector's privacy net through the real Collector and its Prometheus exporter (no Prometheus): another
library's points that differed only by an id are added up, whatever the kind of histogram."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import Aggregation, ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource

from tests.support.collector import start_collector
from tests.support.polling import wait_until

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("aggregation", [None, ExponentialBucketHistogramAggregation()])
def test_another_librarys_histogram_points_that_differed_by_an_id_add_up(
        tmp_path: Path, aggregation: Aggregation | None) -> None:
    """An exponential histogram (a library's view, or OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION)
    with a session.id per point showed only the last session's recordings (count 1 of 3): the net added up sums
    and explicit-bucket histograms only."""
    collector = start_collector("otelcol.yaml", tmp_path, {"OTEL_TRACES_BACKEND_ENDPOINT": "127.0.0.1:9",
                                                          "AGENT_OTEL_HASH_SALT": "salt"})
    try:
        reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{collector.otlp_http}/v1/metrics"),
                                               export_interval_millis=3_600_000)
        views = [View(instrument_name="another.latency", aggregation=aggregation)] if aggregation else []
        provider = MeterProvider([reader], resource=Resource({"service.name": "another-library"}),
                                 views=views)
        histogram = provider.get_meter("another.library").create_histogram("another.latency")
        for n in range(3):
            histogram.record(1.0 + n, {"session.id": f"session-{n}", "route": "/search"})
        provider.shutdown()  # exports once
        lines: list[str] = []

        def arrived() -> bool:
            with urllib.request.urlopen(f"http://{collector.prometheus_target}/metrics", timeout=5) as response:
                lines[:] = [line for line in response.read().decode().splitlines()
                            if line.startswith("another_latency_count")]
            return bool(lines)

        wait_until(arrived, "another library's histogram on the Collector's /metrics", timeout_s=30)
        [line] = lines
        assert "session" not in line and float(line.rsplit(" ", 1)[1]) == 3, line
    finally:
        collector.stop()
