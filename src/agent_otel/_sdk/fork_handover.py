"""A forked child keeps recording what its parent handed out before the fork.

A configured process that forks sets agent-otel up again in the child: providers of its own, with a resource
of its own and state from zero (``configure``'s fork handler). What the program and other libraries obtained
from the parent's providers before the fork stays bound to them: a module's ``trace.get_tracer(__name__)``, an
instrumentation's tracer and meters (Celery's, an HTTP client's, made when ``agent-otel run`` turned them on),
a counter. Those providers export nothing in the child, so a pre-fork server's workers (``gunicorn
--preload``, Celery's prefork pool, a forking ``multiprocessing`` pool) lost every span and metric recorded
through them, where the SDK alone would have exported them. The parent's providers hand over to the child's:

- a span that the parent's tracers start in the child goes to the child's span processors: agent-otel's
  processor on the parent's provider forwards it (:func:`forward_spans`). A host's processor on the parent's
  provider is added to the child's too (:func:`host_span_processors`), and each span reaches it once. A span
  that started before the fork is the parent's, which exports it.
- The program's meters stay on the meter provider its process started with, the *root* (a child's provider
  gives it every meter but agent-otel's own, :class:`AgentOtelMeterProvider`): an instrument taken before
  the fork and the same one taken after it are one instrument, one series, as with the SDK alone. The root
  gets a fresh reader of the child's exporters in each child: what is recorded there, from zero (what the
  parent recorded is the parent's to export), without agent-otel's own scopes, which the child sets up again.
- What agent-otel's exporters send carries the child's resource (:func:`spans_in_resource`,
  :func:`metrics_in_resource`), its ``process.pid`` and ``service.instance.id``, as the child's own
  telemetry does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import TypeVar

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.metrics import Meter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricsData
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.util import BoundedList
from opentelemetry.util.types import Attributes

from agent_otel import semconv

T = TypeVar("T")

#: The instrumentation scopes a child sets up again on its own provider: on the parent's, they record nothing
#: of the child's (agent-otel's instruments) or the parent's process (the system metrics' ``psutil.Process``).
OWN_SCOPES = frozenset((semconv.SCOPE_NAME, "opentelemetry.instrumentation.system_metrics"))


class AgentOtelMeterProvider(MeterProvider):
    """The meter provider ``configure()`` builds. In a forked child, every meter but agent-otel's own comes
    from :attr:`root` (the provider of the process the program started in), where the program's meters of
    before the fork are: one instrument per name, whenever it was taken."""

    root: MeterProvider | None = None

    def get_meter(self, name: str, version: str | None = None, schema_url: str | None = None,
                  attributes: Attributes = None) -> Meter:
        root = self.root
        if root is not None and name not in OWN_SCOPES:
            return root.get_meter(name, version, schema_url, attributes)
        return super().get_meter(name, version, schema_url, attributes)


def root_of(provider: MeterProvider) -> MeterProvider:
    """The provider a forked child's meters of the program are on (see :class:`AgentOtelMeterProvider`)."""
    root = provider.root if isinstance(provider, AgentOtelMeterProvider) else None
    return root if root is not None else provider


class Handover:
    """This process's hand-over, once it is a forked child of a configured process (:data:`HANDOVER`)."""

    def __init__(self) -> None:
        #: When this process was forked (``time.time_ns()``): a span that started before is the parent's
        self.forked_ns = 0
        #: The meter provider of the process the program started in, where its meters are; None: not a child
        self.root: MeterProvider | None = None
        #: The tracer provider agent-otel records into now (None between ``shutdown()`` and ``configure()``)
        self.tracer_provider: TracerProvider | None = None
        #: The host's span processors that are on a parent's provider and this process's too (their ids)
        self.carried: frozenset[int] = frozenset()


HANDOVER = Handover()


def forward_spans(processor: SpanProcessor) -> None:
    """Make ``processor`` (agent-otel's, on a parent's tracer provider) pass the spans of that provider to
    the span processors of the one agent-otel records into now (``configure()`` again after ``shutdown()``
    included), except the host's carried over (they have the span already), instead of doing its work. The
    processors are read from the SDK's multi-processor at each span (pinned SDK; no public API lists them), so
    that one the program adds after the fork (in a post-fork hook) gets them too; none where it has another
    shape. A span that started before the fork is the parent's: its copy here ends unseen, as the parent exports
    it. Set on the instance: a chain of forks forwards each generation's spans the same way."""
    kept: list[tuple[SpanProcessor, ...]] = [(), ()]  # the SDK's tuple, and the successors made from it

    def successors() -> tuple[SpanProcessor, ...]:
        active = getattr(HANDOVER.tracer_provider, "_active_span_processor", None)
        found = getattr(active, "_span_processors", None)
        if not isinstance(found, tuple):
            return ()
        if found is not kept[0]:  # another provider, or a processor added since
            kept[:] = [found, tuple(each for each in found if id(each) not in HANDOVER.carried)]
        return kept[1]

    def on_start(span: Span, parent_context: Context | None = None) -> None:
        for successor in successors():
            successor.on_start(span, parent_context=parent_context)

    def on_ending(span: Span) -> None:
        if (span.start_time or 0) >= HANDOVER.forked_ns:
            for successor in successors():
                successor._on_ending(span)  # the SDK's own hook, as its multi-processor calls it

    def on_end(span: ReadableSpan) -> None:
        if (span.start_time or 0) >= HANDOVER.forked_ns:
            for successor in successors():
                successor.on_end(span)

    vars(processor).update(on_start=on_start, _on_ending=on_ending, on_end=on_end)


def retire(processor: SpanProcessor) -> None:
    """Make a parent's span processor of ours, shut down in the child, take no more spans: a shut-down batch
    processor logs "Shutdown called, ignoring Span." for the first one and counts each as dropped, where the
    spans are forwarded (:func:`forward_spans`), not lost."""
    vars(processor).update(on_start=_ignored, _on_ending=_ignored, on_end=_ignored)


def _ignored(*_: object, **__: object) -> None:
    """Takes a span processor's call and does nothing."""


def host_span_processors(provider: TracerProvider, ours: Iterable[SpanProcessor]) -> list[SpanProcessor]:
    """The span processors on ``provider`` that are not in ``ours``: a host's (e.g. its own exporter, added to
    the global provider). Read from the SDK's multi-processor (pinned SDK; no public API lists them): none
    where it has another shape."""
    active = getattr(provider, "_active_span_processor", None)
    found = getattr(active, "_span_processors", ())
    excluded = {id(processor) for processor in ours}
    return [processor for processor in found if id(processor) not in excluded] if isinstance(found, tuple) else []


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
