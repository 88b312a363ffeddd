"""A forked child keeps recording what its parent handed out before the fork.

A configured process that forks sets agent-otel up again in the child: providers of its own, with a resource
of its own and state from zero (``configure``'s fork handler). What the program and other libraries obtained
from the parent's providers before the fork stays bound to them: a module's ``trace.get_tracer(__name__)``, an
instrumentation's tracer and meters (Celery's, an HTTP client's, made when ``agent-otel run`` turned them on),
a counter. Those providers export nothing in the child, so a pre-fork server's workers (``gunicorn
--preload``, Celery's prefork pool, a forking ``multiprocessing`` pool) lost every span and metric recorded
through them, where the SDK alone would have exported them. The parent's providers hand over to the child's:

- a span of the parent's tracers goes to the child's span processors: agent-otel's processor on the parent's
  provider forwards to the child's (:func:`forward_spans`); a host's processor on it is added to the child's
  provider too (:func:`host_span_processors`), each span reaching it once;
- the parent's meter provider gets a fresh reader of the child's exporters (:func:`handover_exporter`): the
  measurements made in the child, from zero (what the parent recorded is the parent's to export); agent-otel's
  own instruments and the system metrics, which the child set up again, are left out;
- what the exporters send carries the child's resource (:func:`spans_in_resource`, :func:`metrics_in_resource`),
  its ``process.pid`` and ``service.instance.id``, as the child's own telemetry does.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Iterable, Sequence
from typing import TypeVar

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, MetricsData
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.util import BoundedList

from agent_otel import semconv

T = TypeVar("T")

#: The instrumentation scopes a child sets up again on its own provider: on the parent's, they record nothing
#: of the child's (agent-otel's instruments) or the parent's process (the system metrics' ``psutil.Process``).
OWN_SCOPES = frozenset((semconv.SCOPE_NAME, "opentelemetry.instrumentation.system_metrics"))


def forward_spans(processor: SpanProcessor, successors: Sequence[SpanProcessor]) -> None:
    """Make ``processor`` (agent-otel's, on the parent's tracer provider) pass each span of that provider to
    ``successors`` (the processors agent-otel added to the child's, in their order) instead of doing its work:
    set on the instance, so that a chain of forks forwards through each generation's processor."""
    successors = tuple(successors)

    def on_start(span: Span, parent_context: Context | None = None) -> None:
        for successor in successors:
            successor.on_start(span, parent_context=parent_context)

    def on_ending(span: Span) -> None:
        for successor in successors:
            successor._on_ending(span)  # the SDK's own hook, as its multi-processor calls it

    def on_end(span: ReadableSpan) -> None:
        for successor in successors:
            successor.on_end(span)

    vars(processor).update(on_start=on_start, _on_ending=on_ending, on_end=on_end)


def host_span_processors(provider: TracerProvider, ours: Iterable[SpanProcessor]) -> list[SpanProcessor]:
    """The span processors on ``provider`` that are not in ``ours``: a host's (e.g. its own exporter, added to
    the global provider). Read from the SDK's multi-processor (pinned SDK; no public API lists them): none
    where it has another shape."""
    active = getattr(provider, "_active_span_processor", None)
    found = getattr(active, "_span_processors", ())
    excluded = {id(processor) for processor in ours}
    return [processor for processor in found if id(processor) not in excluded] if isinstance(found, tuple) else []


def remove_reader(provider: MeterProvider, reader: MetricReader, timeout_millis: float = 30_000) -> None:
    """Shut ``reader`` down (its last export, within ``timeout_millis``) and take it off ``provider``, which
    would otherwise keep storing measurements for it, with nothing on the host's stderr. The SDK's
    ``remove_metric_reader`` unregisters a reader before shutting it down, so that a periodic reader's last
    collection logs "Cannot call collect..." from its thread: shut down first, the second shutdown's "Can't
    shutdown multiple times" left unsaid."""
    reader.shutdown(timeout_millis=timeout_millis)
    sdk_logger = logging.getLogger(type(reader).__module__)
    unsaid = _OnThisThread()
    sdk_logger.addFilter(unsaid)
    try:
        provider.remove_metric_reader(reader)
    finally:
        sdk_logger.removeFilter(unsaid)


class _OnThisThread(logging.Filter):
    """Drops the records logged on the thread that made it."""

    def __init__(self) -> None:
        super().__init__()
        self.thread = threading.get_ident()

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread != self.thread


def spans_in_resource(spans: Sequence[ReadableSpan], resource: Resource) -> Sequence[ReadableSpan]:
    """``spans`` with ``resource``: a span of the parent's provider carries the parent's resource, and is copied
    with the child's (its attributes, events and links as they are, with their dropped counts)."""
    if all(span.resource is resource for span in spans):
        return spans
    return [span if span.resource is resource else _with_resource(span, resource) for span in spans]


def _with_resource(span: ReadableSpan, resource: Resource) -> ReadableSpan:
    attributes = BoundedAttributes(maxlen=None, attributes=span.attributes, immutable=True)
    attributes.dropped = span.dropped_attributes
    return ReadableSpan(name=span.name, context=span.context, parent=span.parent, resource=resource,
                        attributes=attributes, events=_bounded(span.events, span.dropped_events),
                        links=_bounded(span.links, span.dropped_links), kind=span.kind, status=span.status,
                        start_time=span.start_time, end_time=span.end_time,
                        instrumentation_scope=span.instrumentation_scope)


def _bounded(items: Sequence[T], dropped: int) -> BoundedList[T]:
    kept = BoundedList.from_seq(None, items)
    kept.dropped = dropped
    return kept


def metrics_in_resource(data: MetricsData, resource: Resource, left_out: frozenset[str]) -> MetricsData:
    """``data`` (collected from the parent's meter provider) with ``resource``, without the scopes ``left_out``."""
    resources = []
    for resource_metrics in data.resource_metrics:
        scopes = [scope for scope in resource_metrics.scope_metrics if scope.scope.name not in left_out]
        if scopes:
            resources.append(dataclasses.replace(resource_metrics, resource=resource, scope_metrics=scopes))
    return dataclasses.replace(data, resource_metrics=resources)
