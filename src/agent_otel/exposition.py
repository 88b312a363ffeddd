"""Our `/metrics`: the SDK's metric data as a prometheus_client collector, with trace exemplars.

The stock OTel Prometheus reader drops exemplars, so a latency spike on a dashboard cannot lead to
the trace that caused it. This reader serves the same names and labels (dots to underscores, unit
suffixes, ``_total`` on counters, ``otel_scope_*`` labels, ``target_info``) and adds each
histogram bucket's and counter's latest exemplar (``trace_id``, ``span_id``) in the OpenMetrics
format, which Prometheus requests when scraping. Names are translated once and cached, which makes
it cheaper than the stock reader at high series counts.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

from opentelemetry.sdk.metrics.export import (
    Gauge,
    MetricReader,
    MetricsData,
    Sum,
)
from opentelemetry.sdk.metrics.export import (
    Histogram as HistogramData,
)
from prometheus_client.registry import Collector
from prometheus_client.samples import Exemplar, Sample

from .errors import report_error

_INVALID = re.compile(r"[^a-zA-Z0-9_:]")
_UNIT_SUFFIXES = {"s": "seconds", "ms": "milliseconds", "By": "bytes", "KiBy": "kibibytes", "MiBy": "mebibytes"}
_SCOPE_NAME = "otel_scope_name"
_SCOPE_VERSION = "otel_scope_version"


def _sanitize(name: str) -> str:
    name = _INVALID.sub("_", name)
    return "_" + name if name[:1].isdigit() else name


def prometheus_name(name: str, unit: str) -> tuple[str, str]:
    """Base Prometheus name and OpenMetrics unit for an OTel instrument (counters add ``_total`` later)."""
    base = _sanitize(name)
    suffix = "" if not unit or unit == "1" or unit.startswith("{") else _UNIT_SUFFIXES.get(unit, _sanitize(unit))
    if suffix and not base.endswith("_" + suffix):
        base = f"{base}_{suffix}"
    return base, suffix


def _format_bound(bound: float) -> str:
    return "+Inf" if bound == float("inf") else str(bound)  # as the stock reader writes it


def _exemplar(exemplar: Any) -> Exemplar | None:
    if exemplar.trace_id is None or exemplar.span_id is None:
        return None
    return Exemplar({"trace_id": format(exemplar.trace_id, "032x"), "span_id": format(exemplar.span_id, "016x")},
                    exemplar.value, exemplar.time_unix_nano / 1e9)


class _Family:
    """A prometheus_client-compatible metric family built from samples directly (no label zipping)."""

    __slots__ = ("documentation", "name", "samples", "type", "unit")

    def __init__(self, name: str, documentation: str, typ: str, unit: str) -> None:
        self.name = name
        self.documentation = documentation
        self.type = typ
        self.unit = unit
        self.samples: list[Sample] = []


class AgentOtelPrometheusReader(MetricReader):
    """A pull reader: each scrape collects from the SDK and renders through prometheus_client."""

    def __init__(self, disable_target_info: bool = False) -> None:
        super().__init__()  # cumulative temporality for every instrument: what Prometheus expects
        self._data: MetricsData | None = None
        self._disable_target_info = disable_target_info
        self.collector = _Translator(self)

    def _receive_metrics(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> None:
        self._data = metrics_data

    def scrape(self) -> MetricsData | None:
        self._data = None
        self.collect()
        return self._data

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        pass


class _Translator(Collector):
    def __init__(self, reader: AgentOtelPrometheusReader) -> None:
        self._reader = reader
        self._names: dict[tuple[str, str], tuple[str, str]] = {}
        self._label_keys: dict[str, str] = {}

    def describe(self) -> list:
        return []  # collecting has side effects; never run it at registration time

    def _label(self, key: str) -> str:
        label = self._label_keys.get(key)
        if label is None:
            label = self._label_keys[key] = _sanitize(key)
        return label

    def collect(self) -> Iterator[Any]:
        try:
            data = self._reader.scrape()
        except Exception as exc:
            report_error("exposition.collect", exc)
            return
        if data is None:
            return
        families: dict[str, _Family] = {}
        label = self._label
        for resource_metrics in data.resource_metrics:
            if not self._reader._disable_target_info and resource_metrics.resource.attributes:
                info = _Family("target", "Target metadata", "info", "")
                info.samples.append(Sample("target_info", {label(k): str(v) for k, v in
                                                           resource_metrics.resource.attributes.items()}, 1.0))
                families["target"] = info
            for scope_metrics in resource_metrics.scope_metrics:
                scope = {_SCOPE_NAME: scope_metrics.scope.name}
                if scope_metrics.scope.version:
                    scope[_SCOPE_VERSION] = scope_metrics.scope.version
                for metric in scope_metrics.metrics:
                    try:
                        self._add(families, metric, scope)
                    except Exception as exc:
                        report_error("exposition.translate", exc)
        yield from families.values()

    def _add(self, families: dict[str, _Family], metric: Any, scope: dict[str, str]) -> None:
        key = (metric.name, metric.unit)
        names = self._names.get(key)
        if names is None:
            names = self._names[key] = prometheus_name(metric.name, metric.unit)
        base, unit = names
        data = metric.data
        label = self._label
        if isinstance(data, HistogramData):
            family = families.get(base) or families.setdefault(base, _Family(base, metric.description, "histogram",
                                                                             unit))
            append = family.samples.append
            for point in data.data_points:
                labels = {label(k): str(v) for k, v in point.attributes.items()}
                labels.update(scope)
                bounds = [*point.explicit_bounds, float("inf")]
                exemplars: dict[int, Exemplar] = {}
                for exemplar in point.exemplars:
                    converted = _exemplar(exemplar)
                    if converted is not None:
                        exemplars[bisect_left(bounds, exemplar.value)] = converted
                cumulative = 0
                for index, (bound, count) in enumerate(zip(bounds, point.bucket_counts, strict=False)):
                    cumulative += count
                    append(Sample(base + "_bucket", {**labels, "le": _format_bound(bound)}, cumulative, None,
                                  exemplars.get(index)))
                append(Sample(base + "_count", labels, point.count))
                append(Sample(base + "_sum", labels, point.sum))
        elif isinstance(data, Sum) and data.is_monotonic:
            family = families.get(base) or families.setdefault(base, _Family(base, metric.description, "counter",
                                                                             unit))
            for point in data.data_points:
                labels = {label(k): str(v) for k, v in point.attributes.items()}
                labels.update(scope)
                exemplar = None
                for candidate in point.exemplars or ():
                    exemplar = _exemplar(candidate) or exemplar
                family.samples.append(Sample(base + "_total", labels, point.value, None, exemplar))
        elif isinstance(data, Sum | Gauge):
            family = families.get(base) or families.setdefault(base, _Family(base, metric.description, "gauge", unit))
            for point in data.data_points:
                labels = {label(k): str(v) for k, v in point.attributes.items()}
                labels.update(scope)
                family.samples.append(Sample(base, labels, point.value))
