"""Exact SDK floors: the OpenTelemetry SDK alone doing what one wrapped call of ours records.

A floor is derived, not written by hand: one call of the wrapped function runs under an in-memory
SDK, and what it produced (its span's name, kind and attributes; every metric point it recorded, with
its attributes) is replayed per call through the SDK's public API with no wrapper around it: start the
span with the attributes ours started it with, make it current (as any instrumentation must, so that nested
calls find their parent), run the host's body in the same shape timed by the clock ours reads
(``time.perf_counter_ns``: a duration instrument records the measured time, every other measurement its
recorded value), record every measurement inside the span's context, set the attributes ours set as the
call ended in one ``set_attributes()`` (the outcome, the usage and cost, a job's roll-ups: what no wrapper
knows before the call has run), end the span. So
``ours / floor`` is exactly what our own code adds, whatever a kind records today; a kind that records
one more attribute or instrument moves its floor with it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import Gauge, Histogram, InMemoryMetricReader, Sum
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from agent_otel import semconv
from agent_otel._engine import instruments as runtime_module


@dataclass(frozen=True)
class Recorded:
    """What one wrapped call produced: its span (None when tracing is off) and its measurements."""

    span_name: str | None
    span_kind: SpanKind
    #: The attributes the span started with
    span_attributes: dict[str, Any]
    #: The others it ended with (the outcome, the usage, a job's roll-ups), set as the call ends
    ended_attributes: dict[str, Any]
    #: (instrument name, value, attributes), one per record/add/set
    measurements: tuple[tuple[str, float, dict[str, Any]], ...]


def record_one_call(call: Callable[[], Any], tracing: bool) -> Recorded:
    """Run ``call`` once under in-memory providers; what our wrapper recorded."""
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    started = _StartAttributes()
    tracer_provider.add_span_processor(started)
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    runtime_module.build_runtime(tracer_provider if tracing else trace.NoOpTracerProvider(), meter_provider)
    call()
    measurements: list[tuple[str, float, dict[str, Any]]] = []
    data = reader.get_metrics_data()
    for resource_metrics in data.resource_metrics if data else ():
        for scope in resource_metrics.scope_metrics:
            if scope.scope.name != semconv.SCOPE_NAME:
                continue
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    attributes = dict(point.attributes or {})
                    if isinstance(metric.data, Histogram):
                        measurements += [(metric.name, point.sum / point.count, attributes)] * point.count
                    elif isinstance(metric.data, Sum | Gauge):
                        measurements.append((metric.name, point.value, attributes))
    finished = spans.get_finished_spans()
    if tracing and len(finished) != 1:
        raise RuntimeError(f"a floor replays one span per call; the call made {len(finished)}")
    span = finished[0] if finished else None
    attributes = dict(span.attributes or {}) if span else {}
    at_start = {key: value for key, value in attributes.items() if started.attributes.get(key, _MISSING) == value}
    return Recorded(span.name if span else None, span.kind if span else SpanKind.INTERNAL, at_start,
                    {key: value for key, value in attributes.items() if key not in at_start}, tuple(measurements))


_MISSING = object()


class _StartAttributes(SpanProcessor):
    """The attributes the last span started with."""

    attributes: dict[str, Any] = {}

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.attributes = dict(span.attributes or {})


_FLOOR_KEY = otel_context.create_key("bench-floor")
_SPECS = {spec.name: spec for spec in semconv.INSTRUMENTS}


def _recorders(meter_provider: MeterProvider, recorded: Recorded) -> list[tuple[Callable[..., None], float | None,
                                                                               dict[str, Any]]]:
    """(record, add or set; the value, None for a duration, which is measured per call; attributes) per
    measurement of ``recorded``."""
    meter = meter_provider.get_meter("floor")
    made: dict[str, Any] = {}
    recorders = []
    for name, value, attributes in recorded.measurements:
        spec = _SPECS[name]
        instrument = made.get(name)
        if instrument is None:
            instrument = made[name] = runtime_module.create_instrument(meter, spec)
        method = instrument.add if spec.kind is semconv.Kind.COUNTER else (
            instrument.set if spec.kind is semconv.Kind.GAUGE else instrument.record)
        recorders.append((method, None if spec.unit == "s" else value, attributes))
    return recorders


def floor_function(recorded: Recorded, tracer_provider: Any, meter_provider: MeterProvider, shape: str,
                   body: Callable[..., Any]) -> Callable[[int], Any]:
    """A function of ``shape`` (sync, async, generator) that calls ``body``, times it and records exactly
    ``recorded`` through the SDK's public API; ``tracer_provider`` None when tracing is off (no span, no
    context)."""
    recorders = _recorders(meter_provider, recorded)
    attach, detach = otel_context.attach, otel_context.detach
    set_span = trace.set_span_in_context
    now_ns = time.perf_counter_ns
    if tracer_provider is None:  # tracing off: no span, but the call's context is still made current, as
        # every kind must for the calls nested in it (their agent, job and phase come from it)
        set_value = otel_context.set_value

        def enter() -> tuple[Any, object, int]:
            ctx = set_value(_FLOOR_KEY, True)
            return ctx, attach(ctx), now_ns()

        def leave(ctx: Any, token: object, started_ns: int) -> None:
            duration_s = (now_ns() - started_ns) / 1e9
            detach(token)  # type: ignore[arg-type]
            for method, value, attributes in recorders:
                method(duration_s if value is None else value, attributes, context=ctx)

        if shape == "sync":
            def sync_metrics(x: int) -> Any:
                ctx, token, started_ns = enter()
                result = body(x)
                leave(ctx, token, started_ns)
                return result
            return sync_metrics
        if shape == "async":
            async def async_metrics(x: int) -> Any:
                ctx, token, started_ns = enter()
                result = await body(x)
                leave(ctx, token, started_ns)
                return result
            return async_metrics

        def generator_metrics(x: int) -> Any:
            ctx = set_value(_FLOOR_KEY, True)
            started_ns = now_ns()
            yield from _stepped(body(x), ctx)
            duration_s = (now_ns() - started_ns) / 1e9
            for method, value, attributes in recorders:
                method(duration_s if value is None else value, attributes, context=ctx)
        return generator_metrics

    tracer = tracer_provider.get_tracer("floor")
    name, kind, span_attributes = recorded.span_name or "floor", recorded.span_kind, recorded.span_attributes
    ended = recorded.ended_attributes

    def start() -> tuple[Any, Any, object, int]:
        span = tracer.start_span(name, kind=kind, attributes=span_attributes)
        ctx = set_span(span)
        return span, ctx, attach(ctx), now_ns()

    def finish(span: Any, ctx: Any, token: object, started_ns: int) -> None:
        duration_s = (now_ns() - started_ns) / 1e9
        detach(token)  # type: ignore[arg-type]
        for method, value, attributes in recorders:
            method(duration_s if value is None else value, attributes, context=ctx)
        if ended:
            span.set_attributes(ended)
        span.end()

    if shape == "sync":
        def sync(x: int) -> Any:
            span, ctx, token, started_ns = start()
            result = body(x)
            finish(span, ctx, token, started_ns)
            return result
        return sync
    if shape == "async":
        async def asynchronous(x: int) -> Any:
            span, ctx, token, started_ns = start()
            result = await body(x)
            finish(span, ctx, token, started_ns)
            return result
        return asynchronous

    def generator(x: int) -> Any:
        span = tracer.start_span(name, kind=kind, attributes=span_attributes)
        ctx = set_span(span)
        started_ns = now_ns()
        yield from _stepped(body(x), ctx)
        duration_s = (now_ns() - started_ns) / 1e9
        for method, value, attributes in recorders:
            method(duration_s if value is None else value, attributes, context=ctx)
        if ended:
            span.set_attributes(ended)
        span.end()
    return generator


def _stepped(gen: Iterator[Any], ctx: Any) -> Iterator[Any]:
    """``gen``'s items, each step run with ``ctx`` current and none between them: the least a wrapper of a
    generator must do, since the consumer's code between two items is not the call's (a floor that kept the
    context current across the yields would run it inside the call, parenting the consumer's own calls to it)."""
    attach, detach = otel_context.attach, otel_context.detach
    while True:
        token = attach(ctx)
        try:
            item = next(gen)
        except StopIteration:
            detach(token)
            return
        detach(token)
        yield item
