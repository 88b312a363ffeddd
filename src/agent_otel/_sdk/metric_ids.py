"""No id is a metric label on the way out of the process, another library's metric's neither.

agent-otel records no id (:data:`semconv.ID_ATTRIBUTES`: job, conversation, user, session, trace ids...) on its
own metrics, but another library may (``requests.add(1, {"user.id": ...})``), and its points leave through the
same readers: ``/metrics``, scraped with no Collector in between, and the push exporters ``configure()`` builds.
Each collection is rewritten as the Collector configs' ``transform/privacy`` does it: the ids are deleted from
every data point, and the points that differed only by them are added up (so the series counts them all); an
id among the resource's attributes (``target_info``'s labels) is deleted too.
A collection with no id anywhere is passed on as it is, after one set operation per point.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.metrics.export import (
    Buckets,
    ExponentialHistogramDataPoint,
    Gauge,
    HistogramDataPoint,
    MetricsData,
    NumberDataPoint,
)
from opentelemetry.sdk.resources import Resource

from agent_otel import semconv
from agent_otel._engine.self_telemetry import report_error

_IDS = semconv.ID_ATTRIBUTES


def without_ids(metrics_data: MetricsData) -> MetricsData:
    """``metrics_data`` with no id attribute on any data point (see the module); the same object when none had
    one. Rebuilds only the metrics holding such a point. Never raises: on an error (counted at stage
    ``metrics.ids``), what it was given."""
    try:
        return _without_ids(metrics_data)
    except Exception as exc:
        report_error("metrics.ids", exc)
        return metrics_data


def _without_ids(metrics_data: MetricsData) -> MetricsData:
    changed = False
    resources = []
    for resource_metrics in metrics_data.resource_metrics:
        scopes = []
        scopes_changed = False
        for scope_metrics in resource_metrics.scope_metrics:
            metrics = []
            metrics_changed = False
            for metric in scope_metrics.metrics:
                data: Any = metric.data  # any of the SDK's point types (all frozen dataclasses)
                points = getattr(data, "data_points", None)
                if points and not all(_IDS.isdisjoint(point.attributes or ()) for point in points):
                    merged = _merged(points, gauge=isinstance(data, Gauge))
                    metric = dataclasses.replace(metric, data=dataclasses.replace(data, data_points=merged))
                    metrics_changed = True
                metrics.append(metric)
            if metrics_changed:
                scope_metrics = dataclasses.replace(scope_metrics, metrics=metrics)
                scopes_changed = True
            scopes.append(scope_metrics)
        if scopes_changed:
            resource_metrics = dataclasses.replace(resource_metrics, scope_metrics=scopes)
            changed = True
        resource = resource_metrics.resource
        if not _IDS.isdisjoint(resource.attributes):  # OTEL_RESOURCE_ATTRIBUTES=user.id=...: target_info's labels
            kept = {key: value for key, value in resource.attributes.items() if key not in _IDS}
            resource_metrics = dataclasses.replace(resource_metrics, resource=Resource(kept, resource.schema_url))
            changed = True
        resources.append(resource_metrics)
    return dataclasses.replace(metrics_data, resource_metrics=resources) if changed else metrics_data


def _merged(points: Sequence[Any], *, gauge: bool) -> list[Any]:
    """The points with their ids deleted, those left with the same attributes made one, in the order met."""
    by_attributes: dict[tuple[tuple[str, str], ...], Any] = {}
    for point in points:
        attributes = {key: value for key, value in (point.attributes or {}).items() if key not in _IDS}
        point = dataclasses.replace(point, attributes=attributes)
        key = tuple(sorted((name, repr(value)) for name, value in attributes.items()))  # a list value too
        found = by_attributes.get(key)
        if found is None:
            by_attributes[key] = point
        elif gauge:  # a gauge's last value: the newest point's
            if point.time_unix_nano >= found.time_unix_nano:
                by_attributes[key] = point
        else:
            by_attributes[key] = _add(found, point)
    return list(by_attributes.values())


def _add(one: Any, other: Any) -> Any:
    """Two points of one sum or histogram as one: counts and sums added, over the span of both."""
    common: dict[str, Any] = {
        "start_time_unix_nano": min(one.start_time_unix_nano, other.start_time_unix_nano),
        "time_unix_nano": max(one.time_unix_nano, other.time_unix_nano),
        "exemplars": [*(one.exemplars or ()), *(other.exemplars or ())],
    }
    if isinstance(one, NumberDataPoint):
        return dataclasses.replace(one, value=one.value + other.value, **common)
    spread: dict[str, Any] = {"count": one.count + other.count, "sum": one.sum + other.sum,
                              "min": min(one.min, other.min), "max": max(one.max, other.max)}
    if isinstance(one, HistogramDataPoint):
        if list(one.explicit_bounds) != list(other.explicit_bounds):  # one instrument's: never differ
            return one
        counts = [a + b for a, b in zip(one.bucket_counts, other.bucket_counts, strict=True)]
        return dataclasses.replace(one, bucket_counts=counts, **spread, **common)
    if isinstance(one, ExponentialHistogramDataPoint):
        scale = min(one.scale, other.scale)
        return dataclasses.replace(
            one, scale=scale, zero_count=one.zero_count + other.zero_count,
            positive=_buckets(scale, (one.scale, one.positive), (other.scale, other.positive)),
            negative=_buckets(scale, (one.scale, one.negative), (other.scale, other.negative)), **spread, **common)
    return one


def _buckets(scale: int, *found: tuple[int, Buckets]) -> Buckets:
    """Exponential histogram buckets of several points, at ``scale`` (at most each one's)."""
    counts: dict[int, int] = {}
    for own_scale, buckets in found:
        shift = own_scale - scale
        for i, count in enumerate(buckets.bucket_counts):
            index = (buckets.offset + i) >> shift
            counts[index] = counts.get(index, 0) + count
    if not counts:
        return Buckets(offset=0, bucket_counts=[])
    low = min(counts)
    return Buckets(offset=low, bucket_counts=[counts.get(i, 0) for i in range(low, max(counts) + 1)])
