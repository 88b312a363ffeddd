"""Export loss: counted on the errors counter, never raised, and shutdowns that keep their timeout.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any, Protocol

from opentelemetry.metrics import Counter
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    MetricsData,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from agent_otel._engine.self_telemetry import report_error


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


class ReportingSpanExporter(SpanExporter):
    """Wraps a span exporter: a batch it fails to deliver (FAILURE, or an exception) is counted, one
    per span, at stage ``export.traces`` (only logged once ``closed``: an export that starts after
    that is of spans :meth:`ReportingBatchSpanProcessor.shutdown` counted already, or may be).

    ``calls`` (exports started) and ``exporting`` (an export is running) tell the processor when no
    span can be leaving its queue: the SDK takes spans from it only just before calling ``export``.
    """

    def __init__(self, exporter: SpanExporter, loss: LossReporter) -> None:
        self.exporter = exporter
        self._loss = loss
        self.closed = False
        self.calls = 0
        self.exporting = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        count = 0 if self.closed else len(spans)  # read before exporting: see the class docstring
        self.calls += 1
        self.exporting = True
        try:
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
        _shutdown_within(self.exporter, timeout_millis)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
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
        left = len(self.queue) if self.queue is not None else 0
        if left:  # the export in flight outlived the timeout: what is still queued is never sent
            self._loss("export.traces.shutdown", ExportLossError(
                f"shutdown timed out with {left} spans not exported"), left)


class ReportingMetricExporter(MetricExporter):
    """Wraps a push metric exporter: a failed export (FAILURE, or an exception) is counted at stage
    ``export.metrics``."""

    def __init__(self, exporter: MetricExporter, loss: LossReporter) -> None:
        # the SDK's MetricExporter keeps them there; a custom exporter may not have them (SDK defaults)
        super().__init__(preferred_temporality=getattr(exporter, "_preferred_temporality", None),
                         preferred_aggregation=getattr(exporter, "_preferred_aggregation", None))
        self.exporter = exporter
        self._loss = loss

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        try:
            result = self.exporter.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        except Exception as exc:
            self._loss("export.metrics", exc)
            return MetricExportResult.FAILURE
        if result is not MetricExportResult.SUCCESS:
            self._loss("export.metrics", ExportLossError(f"{type(self.exporter).__name__} failed to export metrics"))
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self.exporter.force_flush(timeout_millis=timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        # PeriodicExportingMetricReader calls shutdown(timeout=<milliseconds left>), not timeout_millis
        timeout_millis = max(0.0, kwargs.pop("timeout", timeout_millis))
        self.exporter.shutdown(timeout_millis=timeout_millis, **kwargs)
