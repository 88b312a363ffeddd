"""A forked child keeps recording what its parent handed out before the fork.

A configured process that forks sets agent-otel up again in the child: providers of its own, with a resource
of its own and state from zero (``configure``'s fork handler). What the program and other libraries obtained
from the parent's providers before the fork stays bound to them: a module's ``trace.get_tracer(__name__)``, an
instrumentation's tracer and meters (Celery's, an HTTP client's, made when ``agent-otel run`` turned them on),
a counter. Those providers export nothing in the child, so a pre-fork server's workers (``gunicorn
--preload``, Celery's prefork pool, a forking ``multiprocessing`` pool) lost every span and metric recorded
through them, where the SDK alone would have exported them. The parent's providers hand over to the child's:

- A span that the parent's tracers start in the child goes to the span processors of the tracer provider
  agent-otel built there (one set up again after ``shutdown()`` included): agent-otel's processor on the
  parent's provider forwards it (:func:`forward_spans`). A host's processor on the parent's provider is added
  to each provider agent-otel builds in the child (:func:`host_span_processors`), and each span reaches it
  once. A span that started in the parent is the parent's, which exports it.
- The program's meters stay on the meter provider its process started with, the *root* (a child's provider
  gives it every meter but agent-otel's own, :class:`AgentOtelMeterProvider`): an instrument taken before
  the fork and the same one taken after it are one instrument, one series, as with the SDK alone. The root
  gets a fresh reader of the child's exporters in each child: what is recorded there, from zero (what the
  parent recorded is the parent's to export), without agent-otel's own scopes, which the child sets up again.
  The parent's readers there are retired (:func:`retire_reader`), not taken off: the SDK's removal takes
  locks that a thread of the parent may have held at the fork, which no thread releases in the child. Their
  storages drop what they are given, so that each generation of forks adds one call, not one storage, to what
  a measurement of the program costs.
- What agent-otel's exporters send carries the child's resource (:func:`spans_in_resource`,
  :func:`metrics_in_resource`), its ``process.pid`` and ``service.instance.id``, as the child's own
  telemetry does.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable, Sequence
from typing import TypeVar

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.metrics import Meter, NoOpMeter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, MetricsData
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.util import BoundedList
from opentelemetry.util.types import Attributes

from agent_otel import semconv
from agent_otel._sdk.span_processor import AgentOtelSpanProcessor

T = TypeVar("T")

SYSTEM_METRICS_SCOPE = "opentelemetry.instrumentation.system_metrics"
#: The instrumentation scopes a child sets up on its own provider: agent-otel's instruments, and the system
#: metrics (whose ``psutil.Process`` is the process's own).
OWN_SCOPES = frozenset((semconv.SCOPE_NAME, SYSTEM_METRICS_SCOPE))


class Handover:
    """This process's hand-over, once it is a forked child of a configured process (:data:`HANDOVER`)."""

    def __init__(self) -> None:
        #: The meter provider of the process the program started in, where its meters are; None: not a child
        self.root: MeterProvider | None = None
        #: The scopes of agent-otel's own on the root, which a child sets up again on its own provider
        self.left_out: frozenset[str] = frozenset()
        #: This process's readers on the root (one per push exporter of its configuration)
        self.readers: list[MetricReader] = []
        #: The tracer provider agent-otel built, which spans are forwarded to (None between ``shutdown()`` and
        #: ``configure()``, or when it built none)
        self.tracer_provider: TracerProvider | None = None
        #: The host's span processors found on a parent's provider: on each tracer provider agent-otel builds here
        self.carried: list[SpanProcessor] = []
        #: The ids of the spans that a parent's tracer started in this process (cleared in each fork)
        self.started: set[int] = set()


HANDOVER = Handover()


class AgentOtelMeterProvider(MeterProvider):
    """The meter provider ``configure()`` builds. In a forked child, every meter but agent-otel's own comes
    from :attr:`root` (the provider of the process the program started in), where the program's meters of
    before the fork are: one instrument per name, whenever it was taken. Its ``force_flush()`` (the global
    provider's, the root's kept by the program) flushes this process's readers of the root too."""

    root: MeterProvider | None = None
    #: Shut down. It stays the global provider (the API sets one once), and a meter the program asks for then is a
    #: no-op one, as in a program with no provider, quietly: the SDK's said "A shutdown `MeterProvider` can not
    #: provide a `Meter`" on the program's stderr at every ``get_meter()`` after ``agent_otel.shutdown()``.
    released = False

    def get_meter(self, name: str, version: str | None = None, schema_url: str | None = None,
                  attributes: Attributes = None) -> Meter:
        if self.released:
            return NoOpMeter(name, version=version, schema_url=schema_url)
        root = self.root
        if root is not None and name not in OWN_SCOPES:
            return root.get_meter(name, version, schema_url, attributes)
        return super().get_meter(name, version, schema_url, attributes)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        done = super().force_flush(timeout_millis)
        for reader in HANDOVER.readers:
            done = reader.force_flush(timeout_millis) and done
        return done

    def shutdown(self, timeout_millis: float = 30_000) -> None:
        """Its own readers, and this process's on the root: their last export (later shutdowns do nothing)."""
        self.released = True
        super().shutdown(timeout_millis)
        for reader in HANDOVER.readers:
            reader.shutdown(timeout_millis=timeout_millis)
            vars(reader)["shutdown"] = _ignored


def forward_spans(processor: AgentOtelSpanProcessor, skipped: Iterable[SpanProcessor]) -> None:
    """Make ``processor`` (agent-otel's, on a parent's tracer provider) pass the spans that start on that provider
    in this process to the span processors of :attr:`Handover.tracer_provider` instead of doing its work, except
    ``skipped`` (the host's on that parent's provider: they have the span already). The processors are read from
    the SDK's multi-processor at each span (pinned SDK; no public API lists them), so that one the program adds
    after the fork (in a post-fork hook) gets them too; none where it has another shape. A span that started in
    a parent is that parent's, which exports it: its copy here is only hashed and stripped of content as it
    ends (the host's processors on that provider see it, as they would without agent-otel), not bridged (the
    parent counts it). Set on the instance: a chain of forks forwards each generation's spans the same way."""
    processor.bridge = None
    own_ending = functools.partial(AgentOtelSpanProcessor._on_ending, processor)
    excluded = frozenset(id(each) for each in skipped)
    started = HANDOVER.started
    kept: list[tuple[SpanProcessor, ...]] = [(), ()]  # the SDK's tuple, and the successors made from it

    def successors() -> tuple[SpanProcessor, ...]:
        found = _span_processors_of(HANDOVER.tracer_provider)
        if found is not kept[0]:  # another provider, or a processor added since
            kept[:] = [found, tuple(each for each in found if id(each) not in excluded)]
        return kept[1]

    def on_start(span: Span, parent_context: Context | None = None) -> None:
        for successor in successors():  # one that raises: the program's start_span() raises, the span never ends
            successor.on_start(span, parent_context=parent_context)
        started.add(span.context.span_id)

    def on_ending(span: Span) -> None:
        if span.context.span_id not in started:
            own_ending(span)
            return
        for successor in successors():
            successor._on_ending(span)  # the SDK's own hook, as its multi-processor calls it

    def on_end(span: ReadableSpan) -> None:
        context = span.context
        if context is not None and context.span_id in started:
            started.discard(context.span_id)
            for successor in successors():
                successor.on_end(span)

    def force_flush(timeout_millis: int = 30_000) -> bool:
        provider = HANDOVER.tracer_provider
        return provider.force_flush(timeout_millis) if provider is not None else True

    vars(processor).update(on_start=on_start, _on_ending=on_ending, on_end=on_end, force_flush=force_flush)


def retire(processor: SpanProcessor) -> None:
    """Make a parent's span processor of ours, shut down in the child, take no more spans: a shut-down batch
    processor logs "Shutdown called, ignoring Span." for the first one and counts each as dropped, where the
    spans are forwarded (:func:`forward_spans`), not lost; and its flush fails."""
    vars(processor).update(on_start=_ignored, _on_ending=_ignored, on_end=_ignored, force_flush=_flushed)


def retire_reader(provider: MeterProvider, reader: MetricReader, timeout_millis: float) -> None:
    """Shut down a reader a parent made on ``provider``, in the child, collecting nothing: its exporter is the
    parent's (which exports what it holds), and a collection would run the program's observable callbacks in the
    fork handler, where one waiting for a lock that a thread of the parent held at the fork waits for ever. Its
    collections are made to do nothing (set on the instance: the SDK's fork handler starts its thread again in
    later forks, and the program may flush the provider it is on), before its shutdown stops its thread. It stays
    on the provider (see the module), whose measurements its storage then takes and drops: one call each, where
    storing them cost a measurement of the program as much again per reader (its storage read from the SDK's
    measurement consumer, pinned SDK; stored as before where that has another shape)."""
    vars(reader)["collect"] = _ignored
    storages = getattr(getattr(provider, "_measurement_consumer", None), "_reader_storages", None)
    storage: object = storages.get(reader) if isinstance(storages, dict) else None
    if storage is not None:
        vars(storage)["consume_measurement"] = _ignored
    reader.shutdown(timeout_millis=timeout_millis)
    vars(reader)["shutdown"] = _ignored  # the program's shutdown() of the provider it is on: once is enough


def measurements_unlocked(provider: MeterProvider, timeout_s: float) -> bool:
    """Whether ``provider``'s measurement lock (pinned SDK; True where it has another shape) can be taken within
    ``timeout_s``. Adding a reader takes it, and in a forked child it stays taken for ever when a thread of the
    parent held it at the fork (a collection under way): checked first, so that the child goes on without the
    reader rather than hang in ``os.fork()``."""
    lock = getattr(getattr(provider, "_measurement_consumer", None), "_lock", None)
    if lock is None or not hasattr(lock, "acquire"):
        return True
    if not lock.acquire(timeout=timeout_s):
        return False
    lock.release()
    return True


def detach_reader(provider: MeterProvider, reader: MetricReader, timeout_millis: float) -> None:
    """Shut ``reader`` down (its last export, within ``timeout_millis``) and take it off ``provider``, which would
    otherwise keep storing measurements for it (``configure()`` after ``shutdown()`` in a child adds another).
    Outside a fork handler: the SDK's removal takes the provider's locks. Its second shutdown there (the SDK's
    removal shuts down, after unregistering, so that a periodic reader's last collection logged "Cannot call
    collect...") and any later collection do nothing."""
    reader.shutdown(timeout_millis=timeout_millis)
    vars(reader).update(collect=_ignored, shutdown=_ignored)
    provider.remove_metric_reader(reader)


def _ignored(*_: object, **__: object) -> None:
    """Takes a call and does nothing."""


def _flushed(*_: object, **__: object) -> bool:
    """Takes a flush and says it is done."""
    return True


def host_span_processors(provider: TracerProvider, ours: Iterable[SpanProcessor]) -> list[SpanProcessor]:
    """The span processors on ``provider`` that are not in ``ours``: a host's (e.g. its own exporter, added to
    the global provider)."""
    excluded = {id(processor) for processor in ours}
    return [processor for processor in _span_processors_of(provider) if id(processor) not in excluded]


def _span_processors_of(provider: TracerProvider | None) -> tuple[SpanProcessor, ...]:
    """The span processors on ``provider``, from the SDK's multi-processor (pinned SDK; no public API lists them):
    none where it has another shape."""
    found = getattr(getattr(provider, "_active_span_processor", None), "_span_processors", None)
    return found if isinstance(found, tuple) else ()


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
