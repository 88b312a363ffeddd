"""Test your own instrumentation: agent-otel wired to the real OpenTelemetry SDK, exporting to memory.

Spans and metrics go through the same processors, views and instruments as in production; only the
exporters are in-memory, so a test asserts on exactly what a collector or Prometheus would receive::

    from agent_otel.testing import capture_telemetry

    with capture_telemetry() as telemetry:
        answer("what is 2 + 2?")          # a function decorated with @agent_otel.agent(...)
        span = telemetry.span("invoke_agent support-bot")
        [point] = telemetry.points("gen_ai.invoke_agent.duration")

With pytest, installing agent-otel is enough: its plugin provides the same object as the fixture
``agent_otel_telemetry``. Neither needs a collector, a port or a global provider; a library that takes its tracer
from the global provider (AutoGen, Semantic Kernel) is captured with ``global_tracer_provider=True``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, cast

from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import DataPointT, InMemoryMetricReader, Metric
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util.types import Attributes

from agent_otel import semconv
from agent_otel._calls.evaluation import reset_baselines
from agent_otel._calls.pricing import reset_prices
from agent_otel._engine.instruments import enabled_from_env
from agent_otel._engine.policy import reset_policy
from agent_otel._engine.self_telemetry import count_unreported, forget_reports
from agent_otel._engine.wrappers import end_in_flight
from agent_otel._environment import AGENT_OTEL_SPAN_BRIDGE, env_flag
from agent_otel._sdk.configure import (
    configure,
    current_telemetry,
    metric_views,
    our_tracer_provider,
    runtime_without_configuration,
    shutdown,
)
from agent_otel._sdk.metric_ids import without_ids
from agent_otel.errors import ConfigurationError

__all__ = ["TelemetryCapture", "capture_telemetry", "restore_defaults"]


def restore_defaults() -> None:
    """Undo ``set_policy()`` and ``set_prices()``: the policy comes from the environment again and the
    price table is the shipped one, so that one test's settings do not leak into the next; evaluation
    scores are no evolution run's baseline any more, and a failure an earlier test logged is logged again."""
    reset_policy()
    reset_prices()
    reset_baselines()
    forget_reports()


class TelemetryCapture:
    """The spans and metrics agent-otel recorded since the capture started (or since :meth:`reset`).

    Read them inside the capture: leaving it shuts the providers down.
    """

    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader
    tracer_provider: TracerProvider
    meter_provider: MeterProvider

    def __init__(self, *, instrument_threads: bool = True, instrument_processes: bool = True,
                 global_tracer_provider: bool = False) -> None:
        for name, value in (("instrument_threads", instrument_threads), ("instrument_processes", instrument_processes),
                            ("global_tracer_provider", global_tracer_provider)):
            if not isinstance(value, bool):
                raise ConfigurationError(f"capture_telemetry(): {name}={value!r}: expected True or False")
        self._instrument_threads = instrument_threads
        self._instrument_processes = instrument_processes
        if global_tracer_provider:
            _route_global_tracer_provider()
        self._start()

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        """Finished spans, oldest first; only those called ``name`` if given."""
        return [span for span in self.exporter.get_finished_spans() if name is None or span.name == name]

    def span(self, name: str) -> ReadableSpan:
        """The one finished span called ``name``; fails listing the spans there are if not exactly one."""
        found = self.spans(name)
        if len(found) != 1:
            raise AssertionError(f"expected one span {name!r}, got {len(found)}; "
                                 f"finished spans: {[span.name for span in self.spans()]}")
        return found[0]

    def metrics(self, scope: str | None = semconv.SCOPE_NAME) -> dict[str, Metric]:
        """Metric name -> metric (unit, description, data points), from one collection now: agent-otel's
        own (``scope``), or those of another instrumentation scope (e.g. an instrumentation that records
        the standard GenAI metrics itself), or of every scope with ``scope=None`` (where names recorded
        in several scopes are agent-otel's)."""
        count_unreported()  # as an export or a scrape does
        data = self.reader.get_metrics_data()
        if data is None:
            return {}
        data = without_ids(data)  # as every exporter configure() builds has them: no id on another library's points
        found: dict[str, Metric] = {}
        for resource_metrics in data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                name = scope_metrics.scope.name
                if scope is not None and name != scope:
                    continue
                for metric in scope_metrics.metrics:
                    if metric.name not in found or name == semconv.SCOPE_NAME:
                        found[metric.name] = metric
        return found

    def points(self, name: str, where: Mapping[str, object] | None = None) -> list[DataPointT]:
        """Data points of metric ``name`` (none if it was never recorded) whose attributes include all
        of ``where``, e.g. ``points("gen_ai.client.inference.duration", {"gen_ai.provider.name": "openai"})``."""
        metric = self.metrics().get(name)
        if metric is None:
            return []
        wanted = dict(where or {})
        return [point for point in metric.data.data_points
                if all((point.attributes or {}).get(key) == value for key, value in wanted.items())]

    def reset(self) -> None:
        """Forget every span and metric recorded so far (new providers, configured afresh: an instrumentation
        given the old ``tracer_provider`` or ``meter_provider`` records nothing here until given the new ones).
        Call it between the phases of a test, not while an instrumented call or job is open."""
        self._stop()
        self._start()

    def _start(self) -> None:
        if not enabled_from_env():  # configure() would set nothing up, and every capture would read empty
            raise ConfigurationError("capture_telemetry(): OTEL_SDK_DISABLED=true or AGENT_OTEL_ENABLED=false turns "
                                     "agent-otel off, so nothing would be captured: unset it for these tests "
                                     "(pytest: monkeypatch.delenv)")
        self.exporter = InMemorySpanExporter()
        # the sampler configure() gives its own provider by default: with the SDK's, the span bridge missed the GenAI
        # spans of other libraries that production counts (those of a trace that came in unsampled). Not the one
        # OTEL_TRACES_SAMPLER names: a test sees every span, whatever ratio the environment it runs in samples at
        self.tracer_provider = our_tracer_provider(env_flag(AGENT_OTEL_SPAN_BRIDGE, True), {})
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader], views=metric_views(),
                                            shutdown_on_exit=False)
        shutdown()  # configure() keeps an earlier configuration: this capture must be the one in use
        configure(tracer_provider=self.tracer_provider, meter_provider=self.meter_provider, set_global=False,
                  system_metrics=False, instrument_threads=self._instrument_threads,
                  instrument_processes=self._instrument_processes)

    def _stop(self) -> None:
        # the jobs, agents, evolution runs and phases still open (a generator a failed test left half-read) end
        # here, closed, as at a process's exit: ended later, they recorded into the next test's capture
        end_in_flight(None, _END_IN_FLIGHT_S)
        shutdown()
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()
        runtime_without_configuration()  # calls record as with no configure(): not into these, shut down


#: How long the end of a capture waits for the calls still open to end (see ``end_in_flight``).
_END_IN_FLIGHT_S = 1.0


@contextmanager
def capture_telemetry(*, instrument_threads: bool = True, instrument_processes: bool = True,
                      global_tracer_provider: bool = False) -> Iterator[TelemetryCapture]:
    """Configure agent-otel to record into a :class:`TelemetryCapture` for the duration of the block.

    An earlier ``configure()`` is shut down first; policy and prices start and end at their defaults
    (:func:`restore_defaults`). ``instrument_threads``/``instrument_processes`` are passed to
    ``configure()`` (job and trace context carried into threads and child processes).
    ``global_tracer_provider``: the spans of tracers taken from OpenTelemetry's global provider (a library's own
    tracing) are captured too (see :func:`_route_global_tracer_provider`).
    """
    restore_defaults()
    capture = TelemetryCapture(instrument_threads=instrument_threads, instrument_processes=instrument_processes,
                               global_tracer_provider=global_tracer_provider)
    try:
        yield capture
    finally:
        capture._stop()
        restore_defaults()


class _RoutingTracerProvider(trace.TracerProvider):
    """OpenTelemetry's global tracer provider in a process whose captures ask for it: each span of a tracer taken from
    it starts in agent-otel's provider in use at that moment (a capture's, or a later ``configure()``'s), or nowhere
    (not recording) when there is none. OpenTelemetry sets the global provider once per process, and a library keeps
    the tracer it took at import: routing, rather than a capture's own provider, lets every capture of a test session
    see those spans."""

    def get_tracer(self, instrumenting_module_name: str, instrumenting_library_version: str | None = None,
                   schema_url: str | None = None, attributes: Attributes | None = None) -> trace.Tracer:
        return _RoutingTracer((instrumenting_module_name, instrumenting_library_version, schema_url, attributes))

    def __getattr__(self, name: str) -> Any:
        """The other members of the SDK provider in use (``add_span_processor``, ``force_flush``, ``resource``): a
        test's code reaches for them on the global provider, where a ``configure()`` would have put its own."""
        provider = _provider_in_use()
        if provider is None or name.startswith("__"):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r} (no agent-otel provider "
                                 f"is in use: no capture, no configure())")
        return getattr(provider, name)


def _provider_in_use() -> TracerProvider | None:
    """agent-otel's tracer provider in use: a capture's, or a ``configure()``'s (None when neither is)."""
    telemetry = current_telemetry()
    provider = telemetry.tracer_provider if telemetry is not None else None
    return provider if isinstance(provider, TracerProvider) else None


class _RoutingTracer(trace.Tracer):
    """A tracer of :class:`_RoutingTracerProvider`: the tracer of the same scope of the provider in use, at each
    span's start (a function decorated with ``start_as_current_span`` too, at each call)."""

    def __init__(self, scope: tuple[str, str | None, str | None, Attributes]) -> None:
        self._scope = scope

    def _tracer(self) -> trace.Tracer:
        provider = _provider_in_use()
        return _NOWHERE if provider is None else provider.get_tracer(*self._scope)

    def start_span(self, name: str, context: Any = None, kind: trace.SpanKind = trace.SpanKind.INTERNAL,
                   attributes: Attributes = None, links: Sequence[trace.Link] | None = None,
                   start_time: int | None = None, record_exception: bool = True,
                   set_status_on_exception: bool = True) -> trace.Span:
        return self._tracer().start_span(name, context, kind, attributes, links, start_time, record_exception,
                                         set_status_on_exception)

    def start_as_current_span(self, name: str, context: Any = None, kind: trace.SpanKind = trace.SpanKind.INTERNAL,
                              attributes: Attributes = None, links: Sequence[trace.Link] | None = None,
                              start_time: int | None = None, record_exception: bool = True,
                              set_status_on_exception: bool = True, end_on_exit: bool = True) -> Any:
        return _CurrentSpan(self, (name, context, kind, attributes, links, start_time, record_exception,
                                   set_status_on_exception, end_on_exit))


class _CurrentSpan:
    """What :meth:`_RoutingTracer.start_as_current_span` returns: a context manager, or a decorator, as the API's, whose
    span starts in the provider in use when the block is entered or the decorated function called."""

    def __init__(self, tracer: _RoutingTracer, arguments: tuple[Any, ...]) -> None:
        self._tracer = tracer
        self._arguments = arguments
        self._entered: list[Any] = []

    def _manager(self) -> Any:
        return self._tracer._tracer().start_as_current_span(*self._arguments)

    def __enter__(self) -> trace.Span:
        manager = self._manager()
        span = manager.__enter__()
        self._entered.append(manager)
        return cast(trace.Span, span)

    def __exit__(self, *exc_info: Any) -> Any:
        return self._entered.pop().__exit__(*exc_info)

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                with self._manager():
                    return await func(*args, **kwargs)
            return run_async

        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            with self._manager():
                return func(*args, **kwargs)
        return run


_NOWHERE = trace.NoOpTracer()
_ROUTER = _RoutingTracerProvider()


def _route_global_tracer_provider() -> None:
    """Make :data:`_ROUTER` OpenTelemetry's global tracer provider, once per process; a global provider of the
    program's own (set before, by a conftest or the code under test) is one ConfigurationError, as OpenTelemetry
    would keep it."""
    found = trace.get_tracer_provider()
    if found is _ROUTER:
        return
    if not isinstance(found, trace.ProxyTracerProvider):
        raise ConfigurationError(f"capture_telemetry(global_tracer_provider=True): this process has a global tracer "
                                 f"provider of its own ({type(found).__name__}), which OpenTelemetry keeps: give it "
                                 f"up (set none) in these tests, or capture without global_tracer_provider")
    trace.set_tracer_provider(_ROUTER)
