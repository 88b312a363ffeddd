"""Export loss: counted on the errors counter, never raised, and shutdowns that keep their timeout.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import logging
import threading
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from opentelemetry.metrics import Counter
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    MetricsData,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from agent_otel._engine.self_telemetry import count_unreported, report_error
from agent_otel._sdk.fork_handover import metrics_in_resource, spans_in_resource
from agent_otel._sdk.metric_ids import without_ids


class ExportLossError(RuntimeError):
    """Telemetry that did not reach its destination (reported on the errors counter, never raised)."""


class LossReporter:
    """Where the export wrappers count losses: the errors counter of the configuration that built
    them. Set once its runtime exists and cleared by ``shutdown()``, so that a late failure on a
    stuck exporter thread is logged but never counted into a later configuration."""

    def __init__(self) -> None:
        self.counter: Counter | None = None

    def __call__(self, stage: str, exc: BaseException, count: int = 1) -> None:
        counter = self.counter
        report_error(stage, exc, count if counter is not None else 0, counter)


class _ShutsDown(Protocol):
    def shutdown(self) -> None: ...


def _shutdown_within(target: _ShutsDown, timeout_millis: float) -> None:
    """``target.shutdown()``, passing the timeout when its signature takes one (a span exporter's
    ``shutdown`` takes none in the SDK's interface, but some exporters accept it)."""
    try:
        takes_timeout = "timeout_millis" in inspect.signature(target.shutdown).parameters
    except (TypeError, ValueError):
        takes_timeout = False
    if takes_timeout:
        target.shutdown(timeout_millis=timeout_millis)  # type: ignore[call-arg]  # checked just above
    else:
        target.shutdown()


#: What :func:`stop_retrying` set: the exporter, and its event.
Stopped = list[tuple[object, threading.Event]]


def stop_retrying(exporter: object) -> Stopped:
    """Make ``exporter``'s exports single attempts: the OTLP exporters skip their backoff retries once their shutdown
    event is set (the HTTP client's ``_shutdown_event``, the gRPC exporter's ``_shutdown_in_progress``: pinned SDK
    internals), until :func:`resume_retrying` clears it. The events it set (they were clear). Other exporters keep
    their own behaviour."""
    stopped: Stopped = []
    for owner, name in ((exporter, "_shutdown_in_progress"), (getattr(exporter, "_client", None), "_shutdown_event")):
        event = getattr(owner, name, None)
        if isinstance(event, threading.Event) and not event.is_set():
            event.set()
            stopped.append((exporter, event))
    return stopped


def resume_retrying(stopped: Stopped) -> None:
    """Undo :func:`stop_retrying` for a process that goes on (an exec that failed): the exporters retry again, as
    ``shutdown()`` and their periodic exports do; not one shut down meanwhile (its own ``shutdown()`` sets the event
    too, and keeps it set)."""
    for exporter, event in stopped:
        if not getattr(exporter, "_shutdown", False):
            event.clear()


class _OursWhileExporting(logging.Filter):
    """On the loggers an exporter of ours logs its failures on (a retry, a refused connection: the OTLP
    exporters log on their module loggers, which the host's own exporters share). A record logged while one
    of our exporters runs on this thread, when no handler would take it (the host configured no logging), is
    dropped: it would reach the host's stderr through Python's last-resort handler. A host with logging
    still gets it through its handlers, and its own exporters' records are never touched. The loss itself
    is counted by the wrappers here."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (_ours.depth and not logging.getLogger(record.name).hasHandlers())


class _OursState(threading.local):
    depth = 0  # calls into an exporter of ours running on this thread


_ours = _OursState()
_FILTER = _OursWhileExporting()


def _quiet_when_ours(exporter: object) -> None:
    """Put the filter on the loggers of the modules ``exporter``'s classes come from (the gRPC exporter logs
    on its base class's module, the HTTP ones on their own), not on the SDK's interfaces', and on the OTLP
    encoder's (a value it cannot encode, an integer beyond 64 bits on another library's span, is dropped with
    a traceback per span)."""
    for cls in type(exporter).__mro__:
        module = cls.__module__
        if not (module.startswith("opentelemetry.sdk") or module in ("builtins", "abc", "typing")):
            _filter_logger(module)
    if type(exporter).__module__.startswith("opentelemetry.exporter.otlp"):
        for name in _OTLP_ENCODER_LOGGERS:
            _filter_logger(name)


#: The loggers of the OTLP encoder the OTLP exporters share (``opentelemetry-exporter-otlp-proto-common``): a
#: logger's filter does not apply to its children's records.
_OTLP_ENCODER_LOGGERS = tuple(f"opentelemetry.exporter.otlp.proto.common._internal{part}"
                              for part in ("", ".trace_encoder", ".metrics_encoder", "._log_encoder"))


def _filter_logger(name: str) -> None:
    logger = logging.getLogger(name)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)


@contextlib.contextmanager
def _exporting_ours() -> Iterator[None]:
    _ours.depth += 1
    try:
        yield
    finally:
        _ours.depth -= 1


class ReportingSpanExporter(SpanExporter):
    """Wraps a span exporter: a batch it fails to deliver (FAILURE, or an exception) is counted, one
    per span, at stage ``export.traces`` (only logged once ``closed``: an export that starts after
    that is of spans :meth:`ReportingBatchSpanProcessor.shutdown` counted already, or may be).

    ``calls`` (exports started) and ``exporting`` (an export is running) tell the processor when no
    span can be leaving its queue: the SDK takes spans from it only just before calling ``export``.
    """

    def __init__(self, exporter: SpanExporter, loss: LossReporter) -> None:
        _quiet_when_ours(exporter)
        self.exporter = exporter
        self._loss = loss
        self.closed = False
        self.abandoned = False  # in a forked child: what it holds is the parent's to export
        #: In a forked child, its provider's resource: the spans the parent's provider hands over get it too
        self.resource: Resource | None = None
        self.calls = 0
        self.exporting = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self.abandoned:
            return SpanExportResult.SUCCESS
        if self.resource is not None:
            spans = spans_in_resource(spans, self.resource)
        count = 0 if self.closed else len(spans)  # read before exporting: see the class docstring
        self.calls += 1
        self.exporting = True
        try:
            with _exporting_ours():
                result = self.exporter.export(spans)
        except Exception as exc:
            self._loss("export.traces", exc, count)
            return SpanExportResult.FAILURE
        finally:
            self.exporting = False
        if result is not SpanExportResult.SUCCESS:
            self._loss("export.traces", ExportLossError(
                f"{type(self.exporter).__name__} failed to export {len(spans)} spans"), count)
        return result

    def shutdown(self, timeout_millis: float = 30_000) -> None:
        with _exporting_ours():
            _shutdown_within(self.exporter, timeout_millis)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        with _exporting_ours():
            return self.exporter.force_flush(timeout_millis)


class ReportingBatchSpanProcessor(BatchSpanProcessor):
    """The SDK's BatchSpanProcessor over a :class:`ReportingSpanExporter`, which also counts the
    spans it drops because its queue is full (stage ``export.traces.queue_full``, one per span) and
    whose ``shutdown(timeout_millis)`` keeps the timeout (the SDK's waits up to 30 s for the export
    in flight) and counts the spans it abandons (``export.traces.shutdown``). Both reach into the
    SDK's ``BatchProcessor`` (pinned version); without it they fall back to the SDK's behaviour.

    The counts are approximate (may under-count, never over-count). A queue-full drop is counted
    only when it is certain: the queue was full as the span was queued while an export ran all
    along (the SDK's worker takes spans from the queue only between exports); a drop while the
    worker is between exports, or idle, is missed. At shutdown, the exporter is closed before the
    spans still queued are counted, so a span is counted either as left in the queue or as part of a
    failed export that started before that, never both; a batch taken between the two is missed.
    """

    def __init__(self, exporter: SpanExporter, loss: LossReporter) -> None:
        self._reporting = ReportingSpanExporter(exporter, loss)
        super().__init__(self._reporting)
        self._loss = loss
        self._batch = getattr(self, "_batch_processor", None)
        if self._batch is not None:  # it logs each span it drops, on the host's thread (see on_end)
            _filter_logger(type(self._batch).__module__)
        queue = getattr(self._batch, "_queue", None)
        self.queue = queue if queue is not None and getattr(queue, "maxlen", None) else None

    def on_end(self, span: ReadableSpan) -> None:
        queue = self.queue
        if queue is None or len(queue) < queue.maxlen:
            return super().on_end(span)
        exporter = self._reporting
        calls = exporter.calls
        exporting = exporter.exporting
        full = len(queue) >= queue.maxlen
        with _exporting_ours():  # the SDK logs the drop ("Queue full, dropping span."): counted below
            super().on_end(span)
        # the same export ran all along: no span left the queue, so queueing this one dropped one
        if (full and exporting and exporter.exporting and exporter.calls == calls
                and span.context.trace_flags.sampled):
            self._loss("export.traces.queue_full", ExportLossError(
                f"span export queue full (max_queue_size={queue.maxlen}): a span was dropped"))

    def shutdown(self, timeout_millis: float = 30_000) -> None:
        if self._batch is None or not hasattr(self._batch, "shutdown"):
            super().shutdown()  # type: ignore[no-untyped-call]  # not annotated in the SDK
            return
        if getattr(self._batch, "_shutdown", False):
            return None  # already shut down: TracerProvider.shutdown() comes after ours
        self._batch.shutdown(timeout_millis=timeout_millis)
        # Close the exporter first: a batch the worker takes from now on is not counted by it, so
        # each span still queued is counted here only (see the class docstring).
        self._reporting.closed = True
        left = len(self.queue) if self.queue is not None and not self._reporting.abandoned else 0
        if left:  # the export in flight outlived the timeout: what is still queued is never sent (in a forked
            # child, what the parent's processor holds is the parent's copy, which the parent exports)
            self._loss("export.traces.shutdown", ExportLossError(
                f"shutdown timed out with {left} spans not exported"), left)


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _int64(value: object) -> bool:
    return type(value) is not int or _INT64_MIN <= value <= _INT64_MAX


def _point_fits(point: Any) -> bool:
    return _int64(getattr(point, "value", None)) and all(_int64(e.value) for e in point.exemplars or ())


def _within_int64(metrics_data: MetricsData) -> tuple[MetricsData, int]:
    """``metrics_data`` without the data points whose integer value (or an exemplar's) is beyond int64,
    which OTLP cannot encode (one such point makes the exporter fail the whole export, and a cumulative
    sum stays beyond it: every later export would fail); and how many were dropped. Scans every point,
    and rebuilds only the metrics holding a bad one."""
    dropped = 0
    resources = []
    for resource_metrics in metrics_data.resource_metrics:
        scopes = []
        for scope_metrics in resource_metrics.scope_metrics:
            metrics = []
            for metric in scope_metrics.metrics:
                data: Any = metric.data  # any of the SDK's point types (all frozen dataclasses)
                points = getattr(data, "data_points", None)
                if points and not all(_point_fits(point) for point in points):
                    kept = [point for point in points if _point_fits(point)]
                    dropped += len(points) - len(kept)
                    metric = dataclasses.replace(metric, data=dataclasses.replace(data, data_points=kept))
                metrics.append(metric)
            scopes.append(dataclasses.replace(scope_metrics, metrics=metrics) if dropped else scope_metrics)
        resources.append(dataclasses.replace(resource_metrics, scope_metrics=scopes) if dropped else resource_metrics)
    return (dataclasses.replace(metrics_data, resource_metrics=resources) if dropped else metrics_data), dropped


class ReportingMetricExporter(MetricExporter):
    """Wraps a push metric exporter: a failed export (FAILURE, or an exception) is counted at stage
    ``export.metrics``. Data points beyond what OTLP carries (an integer beyond int64, e.g. from a
    host's own counter: agent-otel's counts are bounded when recorded) are left out of the export,
    so that they never stop it, and counted at ``export.metrics.out_of_range`` (one per point and export). No
    id is exported as a metric attribute, another library's neither (:mod:`agent_otel._sdk.metric_ids`)."""

    def __init__(self, exporter: MetricExporter, loss: LossReporter) -> None:
        # the SDK's MetricExporter keeps them there; a custom exporter may not have them (SDK defaults)
        super().__init__(preferred_temporality=getattr(exporter, "_preferred_temporality", None),
                         preferred_aggregation=getattr(exporter, "_preferred_aggregation", None))
        _quiet_when_ours(exporter)
        self.exporter = exporter
        self._loss = loss
        self.abandoned = False  # in a forked child: the state it would export is a copy of the parent's
        #: Set on the exporter of a forked child's reader of its parent's meter provider (see fork_handover): the
        #: child's resource, and the scopes the child records on its own provider
        self.handover: tuple[Resource, frozenset[str]] | None = None

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        if self.abandoned:
            return MetricExportResult.SUCCESS
        if self.handover is not None:
            metrics_data = metrics_in_resource(metrics_data, *self.handover)
            if not metrics_data.resource_metrics:
                return MetricExportResult.SUCCESS
        count_unreported()  # in the next export
        metrics_data = without_ids(metrics_data)  # another library's ids too: no metric label
        try:
            metrics_data, dropped = _within_int64(metrics_data)
        except Exception as exc:  # exported as it is, then
            self._loss("export.metrics.out_of_range", exc, 0)
        else:
            if dropped:
                self._loss("export.metrics.out_of_range", ExportLossError(
                    f"{dropped} data points beyond int64 left out of the export"), dropped)
        try:
            with _exporting_ours():
                result = self.exporter.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        except Exception as exc:
            self._loss("export.metrics", exc)
            return MetricExportResult.FAILURE
        if result is not MetricExportResult.SUCCESS:
            self._loss("export.metrics", ExportLossError(f"{type(self.exporter).__name__} failed to export metrics"))
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        with _exporting_ours():
            return self.exporter.force_flush(timeout_millis=timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        # PeriodicExportingMetricReader calls shutdown(timeout=<milliseconds left>), not timeout_millis
        timeout_millis = max(0.0, kwargs.pop("timeout", timeout_millis))
        with _exporting_ours():
            self.exporter.shutdown(timeout_millis=timeout_millis, **kwargs)
