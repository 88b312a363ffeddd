"""``configure()`` and ``shutdown()``: the SDK wiring, from arguments and the standard OTEL_* env.

Embedded default: metrics served on 127.0.0.1:9464 for a local Prometheus, traces kept in-process
(not exported). OTLP for traces and metrics as soon as an endpoint is given. A host that already
installed SDK providers keeps them: we add our span processor and instruments, replace nothing.

Telemetry lost on the way out is counted on ``agent_otel.instrumentation.errors`` like any other
failure of ours: spans of a failed export (stage ``export.traces``, one per span), spans dropped
because the export queue was full (``export.traces.queue_full``), spans still queued when
``shutdown()`` ran out of time (``export.traces.shutdown``) and failed metric exports
(``export.metrics``, one per export). The span counts are approximate (may under-count, never
over-count): each lost span is counted at most once, and a loss is counted only when it is certain
(see :class:`ReportingBatchSpanProcessor`). ``shutdown()`` returns within its timeout even when the
collector never answers, and runs at interpreter exit if the host never called it.

"""

from __future__ import annotations

import atexit
import errno
import functools
import logging
import os
import socketserver
import sys
import threading
import time
import urllib.parse
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from opentelemetry import metrics, trace

# the module is marked `# type: ignore` upstream: mypy sees none of its names
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.metrics import _internal as metrics_internal
from opentelemetry.sdk.environment_variables import (
    OTEL_EXPERIMENTAL_RESOURCE_DETECTORS,
    OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE,
    OTEL_EXPORTER_PROMETHEUS_HOST,
    OTEL_EXPORTER_PROMETHEUS_PORT,
    OTEL_RESOURCE_ATTRIBUTES,
)
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    MeterProvider,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    ConsoleMetricExporter,
    MetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import OTELResourceDetector, Resource, ServiceInstanceIdResourceDetector
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import DEFAULT_ON
from opentelemetry.semconv.resource import ResourceAttributes
from opentelemetry.util._once import Once

from agent_otel import semconv
from agent_otel._bridge.processor import GenAiSpanBridge
from agent_otel._bridge.sampling import dropping_parts, records_dropped_genai_spans
from agent_otel._context import stamping as _stamping
from agent_otel._context.carriers import (
    before_reloader_child,
    flush_before_raised_signals,
    flush_on_the_programs_terminate,
    flush_this_worker_on_exit,
    instrument_process_carriers,
    instrument_thread_subclasses,
    terminate_flush_timed_out,
    uninstrument_process_carriers,
    uninstrument_thread_subclasses,
    unwrap_instrumented_thread_run,
)
from agent_otel._context.job import BAGGAGE_KEY
from agent_otel._context.propagation import (
    Attachment,
    attach_here,
    context_from_environment,
    release_environment,
)
from agent_otel._engine.exit_signals import deliver, held_over_exit_flush
from agent_otel._engine.ids import OwnIdGenerator
from agent_otel._engine.instruments import Runtime, build_runtime, enabled_from_env, forget_runtime
from agent_otel._engine.own_work import own_work
from agent_otel._engine.policy import check_policy_environment, policy
from agent_otel._engine.self_telemetry import count_unreported, report_error
from agent_otel._engine.threads import ExitThread, host_signals_blocked
from agent_otel._engine.wrappers import end_in_flight
from agent_otel._environment import (
    AGENT_OTEL_DEBUG,
    AGENT_OTEL_EXIT_FLUSH_TIMEOUT_MS,
    AGENT_OTEL_INSTANCE_ID_OWNER,
    AGENT_OTEL_SPAN_BRIDGE,
    OTEL_PYTHON_LOGGER_PROVIDER,
    env_flag,
)
from agent_otel._sdk.exemplars import exemplar_views
from agent_otel._sdk.export_loss import (
    LossReporter,
    ReportingBatchSpanProcessor,
    ReportingMetricExporter,
    Stopped,
    resume_retrying,
    stop_retrying,
)
from agent_otel._sdk.fork_handover import (
    HANDOVER,
    SYSTEM_METRICS_SCOPE,
    AgentOtelMeterProvider,
    detach_reader,
    forward_spans,
    host_span_processors,
    measurements_unlocked,
    retire,
    retire_reader,
)
from agent_otel._sdk.idle_flush import flush_when_idle, stop_flushing_when_idle
from agent_otel._sdk.settings import Settings, exporter_names, resolve_settings, traces_sampler
from agent_otel._sdk.span_processor import AgentOtelSpanProcessor
from agent_otel.errors import ConfigurationError
from agent_otel.version import __version__

logger = logging.getLogger("agent_otel")


_DEFAULT_EXIT_FLUSH_TIMEOUT_MS = 1000
#: Where a /metrics port in use is counted (agent_otel.instrumentation.errors).
METRICS_PORT_BUSY_STAGE = "metrics.port_busy"


@dataclass
class Telemetry:
    """The handle configure() returns; ``shutdown()`` flushes and releases what it owns."""

    settings: Settings | None
    tracer_provider: TracerProvider | None
    meter_provider: MeterProvider | None
    owns_tracer_provider: bool = False
    owns_meter_provider: bool = False
    prometheus_server: socketserver.TCPServer | None = None
    environment: Attachment | None = None
    instrumentors: list[BaseInstrumentor] = field(default_factory=list)
    span_processors: list[ReportingBatchSpanProcessor] = field(default_factory=list)
    metric_exporters: list[ReportingMetricExporter] = field(default_factory=list)
    metric_readers: list[MetricReader] = field(default_factory=list)  # on the meter provider built here
    loss: LossReporter = field(default_factory=lambda: LossReporter())
    arguments: dict[str, object] = field(default_factory=dict)  # configure()'s, to set up again in a forked child
    exit_flush_timeout_millis: int = _DEFAULT_EXIT_FLUSH_TIMEOUT_MS
    pid: int = field(default_factory=os.getpid)  # the process configure() set it up in
    #: Why this process serves no /metrics though its configuration asks for it: the port is in use (another
    #: process serves it: a sibling worker of a server whose workers each call configure(), an earlier run's
    #: child). None when it serves them, or was not asked to.
    metrics_unserved: str | None = None

    def __repr__(self) -> str:
        """What a program reads of the handle: a notebook shows it for ``configure()`` on a cell's last line, where the
        whole dataclass (providers, processors, the arguments) printed some 1.5 kB."""
        return (f"Telemetry(set_up={self.settings is not None}, prometheus_url={self.prometheus_url!r}, "
                f"metrics_unserved={self.metrics_unserved!r})")

    @property
    def prometheus_url(self) -> str | None:
        if self.prometheus_server is None or self.settings is None:
            return None
        host, port = self.prometheus_server.socket.getsockname()[:2]  # its server_address, as bound
        return f"http://[{host}]:{port}/metrics" if ":" in host else f"http://{host}:{port}/metrics"


_telemetry: Telemetry | None = None
_lock = threading.RLock()


def _new_lock_in_child() -> None:
    """A forked child's lock is new: a thread that held it at the fork (a ``shutdown()`` flushing) does not exist
    there, and the exit hook, registered whoever owns the providers, takes it."""
    global _lock
    _lock = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_lock_in_child)  # first: _after_fork_in_child takes it
V = TypeVar("V")


class _HeldWeakly(Generic[V]):
    """Objects mapped to a value by identity, weakly. A provider may be unhashable: logfire's proxy providers are
    dataclasses, whose ``__eq__`` takes their hash away, so looking one up in a ``WeakSet`` raised ``TypeError``
    out of ``configure()``."""

    def __init__(self) -> None:
        self._entries: dict[int, tuple[weakref.ref[object], V]] = {}

    def get(self, held: object) -> V | None:
        entry = self._entries.get(id(held))
        return entry[1] if entry is not None and entry[0]() is held else None

    def __contains__(self, held: object) -> bool:
        entry = self._entries.get(id(held))
        return entry is not None and entry[0]() is held

    def set(self, held: object, value: V) -> None:
        key = id(held)

        def forget(reference: weakref.ref[object]) -> None:
            entry = self._entries.get(key)
            if entry is not None and entry[0] is reference:
                del self._entries[key]

        self._entries[key] = (weakref.ref(held, forget), value)


#: The SDK providers configure() built: never taken for a host's, even once shut down, so that
#: configure() after shutdown() builds anew (and replaces them as the global providers).
_built: _HeldWeakly[bool] = _HeldWeakly()
#: Resource attributes of this process when it is a forked child of a configured one (its ``process.pid``):
#: what tells its telemetry from its parent's and its siblings'.
_forked_resource: dict[str, int] = {}
#: The SDK's detected resource per service name, as this process last built it. A forked child reuses its
#: parent's instead of running the default detectors again (a thread pool; what they read is the same in
#: the child), which halves the time it takes to set a worker up.
_detected: dict[str, Resource] = {}


def exit_flush_timeout_millis(env: Mapping[str, str] | None = None) -> int:
    """The budget of the flush at process exit, from ``AGENT_OTEL_EXIT_FLUSH_TIMEOUT_MS`` (a clear error if bad)."""
    raw = (os.environ if env is None else env).get(AGENT_OTEL_EXIT_FLUSH_TIMEOUT_MS, "").strip()
    if not raw:
        return _DEFAULT_EXIT_FLUSH_TIMEOUT_MS
    if not (raw.isascii() and raw.isdigit()):  # '²' is a digit to str.isdigit(), not to int()
        raise ConfigurationError(f"environment variable {AGENT_OTEL_EXIT_FLUSH_TIMEOUT_MS}={raw!r}: "
                                 "expected a whole number of milliseconds")
    return int(raw)


def histogram_views() -> list[View]:
    """Explicit buckets for every histogram of the contract (the SDK default is for ms)."""
    return [
        View(instrument_name=spec.name,
             aggregation=ExplicitBucketHistogramAggregation(boundaries=list(spec.buckets or ())))
        for spec in semconv.INSTRUMENTS
        if spec.kind is semconv.Kind.HISTOGRAM
    ]


def metric_views() -> list[View]:
    """The views configure() installs: the process metric renames in semconv, the exemplar reservoirs that leave the
    program's random stream alone (see exemplars). Our histograms carry the contract's
    buckets as advisory (create_instrument), so no view names them: a view matching a standard name that a
    library instrumentation records too (gen_ai.client.token.usage) makes the SDK warn on the host's stderr."""
    return [*(View(instrument_name=old, name=new) for old, new in semconv.PROCESS_RENAMES.items()), *exemplar_views()]


def _span_exporter(name: str, settings: Settings) -> SpanExporter:
    if name == "console":
        return ConsoleSpanExporter()
    # The OTLP exporters are imported only when chosen: they pull in grpc or protobuf and requests.
    url, protocol = settings.otlp_signals["traces"]
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter

        return GrpcSpanExporter(endpoint=url)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter

    return HttpSpanExporter(endpoint=url)


def _metric_reader(name: str, settings: Settings, telemetry: Telemetry) -> MetricReader | None:
    """The reader of one metrics exporter; None for /metrics when its port is in use (see _prometheus_reader)."""
    if name == "prometheus":
        return _prometheus_reader(settings, telemetry)
    exporter: MetricExporter
    if name == "console":
        exporter = ConsoleMetricExporter()
    else:
        url, protocol = settings.otlp_signals["metrics"]
        _note_temporality_preference()
        if protocol == "grpc":  # OTLP imported only when chosen, as in _span_exporter
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
                OTLPMetricExporter as GrpcMetricExporter,
            )

            exporter = GrpcMetricExporter(endpoint=url, preferred_temporality=_CUMULATIVE)
        else:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
                OTLPMetricExporter as HttpMetricExporter,
            )

            exporter = HttpMetricExporter(endpoint=url, preferred_temporality=_CUMULATIVE)
    reporting = ReportingMetricExporter(exporter, telemetry.loss)
    telemetry.metric_exporters.append(reporting)
    return PeriodicExportingMetricReader(reporting, export_interval_millis=settings.metric_export_interval_ms)


#: What agent-otel's OTLP metric exporter sends, whatever OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE asks: a
#: delta point that follows an interval with no data does not continue the one before it, and the Collector's Prometheus
#: exporter (and remote write, which drops delta) started over from it, so a program working in bursts lost counts,
#: silently. Cumulative points also carry the totals across a failed export. A delta backend converts in the
#: Collector (``cumulativetodelta``).
_CUMULATIVE: dict[type, AggregationTemporality] = dict.fromkeys(
    (Counter, UpDownCounter, Histogram, ObservableCounter, ObservableUpDownCounter, ObservableGauge),
    AggregationTemporality.CUMULATIVE)  # the rest (the synchronous gauge) is cumulative by the SDK's default


def _note_temporality_preference() -> None:
    preference = os.environ.get(OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE, "").strip()
    if preference.lower() in ("delta", "lowmemory"):  # (an unknown value: the SDK's exporter says so itself)
        logger.warning("agent-otel: %s=%s is not used: agent-otel's OTLP metrics are cumulative, which the Collector's "
                       "Prometheus exporter and remote write need (convert with the Collector's cumulativetodelta "
                       "processor for a delta backend)", OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE,
                       preference)


def _prometheus_reader(settings: Settings, telemetry: Telemetry) -> MetricReader | None:
    # Imported only when /metrics is served: a host exporting by OTLP never loads prometheus_client.
    from agent_otel._sdk.prometheus import AgentOtelPrometheusReader, metrics_registry, serve_metrics

    registry = metrics_registry()
    reader = AgentOtelPrometheusReader()
    try:
        server, _thread = serve_metrics(reader, registry, settings.prometheus_port, addr=settings.prometheus_host)
    except OSError as exc:
        address = f"{settings.prometheus_host}:{settings.prometheus_port}"
        where = f"cannot serve /metrics on {address} ({exc.strerror or exc})"
        if exc.errno == errno.EADDRINUSE:
            # Another process serves /metrics there: a sibling worker of a server whose workers each call configure()
            # (uvicorn --workers, gunicorn without --preload), an earlier run's child. Raising stopped such a server
            # from booting, where it runs without agent-otel: this process serves none, and says so (configure()).
            telemetry.metrics_unserved = (f"{where}; the port is probably in use: set {OTEL_EXPORTER_PROMETHEUS_PORT} "
                                          "to a free port")
            return None
        if exc.errno == errno.EACCES:
            raise ConfigurationError(f"{where}; ports below 1024 need privileges: set "
                                     f"{OTEL_EXPORTER_PROMETHEUS_PORT} to a port above 1023") from None
        # The host: a name that does not resolve (socket.gaierror) or an address that is not this machine's.
        raise ConfigurationError(f"{where}; set {OTEL_EXPORTER_PROMETHEUS_HOST} to an address of this machine, "
                                 "e.g. 127.0.0.1 or 0.0.0.0") from None
    telemetry.prometheus_server = server
    registry.register(reader.collector)
    return reader


def _hand_metrics_port_to_reloader_child() -> None:
    """This process starts a development server's reloader child (Flask's debug mode, Django's ``runserver``), which
    runs the program while this one only watches its files: the child serves /metrics, on the port this process
    releases now. Kept, the port left the child without /metrics (its port in use), and this process served none of
    the program's metrics."""
    telemetry = _telemetry
    if telemetry is None or telemetry.prometheus_server is None:
        return
    server, telemetry.prometheus_server = telemetry.prometheus_server, None
    server.shutdown()
    server.server_close()
    logger.info("agent-otel: this process starts a reloader's child, which serves /metrics: it serves none itself")


def _say_metrics_unserved(why: str, rt: Runtime) -> None:
    """One warning line and a count (stage ``metrics.port_busy``): the program goes on, with its other exporters
    (OTLP), and without /metrics from this process."""
    logger.warning("agent-otel: %s; this process serves no /metrics (in a server whose worker processes each call "
                   "configure(), only one can: export their metrics over OTLP, or configure() before the server forks "
                   "its workers)", why)
    rt.errors.add(1, {semconv.INSTRUMENTATION_STAGE: METRICS_PORT_BUSY_STAGE})


#: What each of configure()'s arguments takes besides None (its default), and what an error calls it.
_ARGUMENT_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    **dict.fromkeys(("service_name", "otlp_endpoint", "otlp_protocol", "prometheus_host"), ((str,), "a string")),
    **dict.fromkeys(("traces_exporter", "metrics_exporter"), ((str, tuple, list), "a name or a tuple of names")),
    "prometheus_port": ((int,), "a port number 0..65535"),
    "resource": ((Resource,), "an opentelemetry.sdk.resources.Resource"),
    # the SDK's own classes (or subclasses): agent-otel adds its span processor and instruments to the provider, which
    # an API provider of another kind (a no-op one, logfire's proxies) cannot take; one was ignored, silently
    "tracer_provider": ((TracerProvider,), "an opentelemetry.sdk.trace.TracerProvider (for a provider that wraps one, "
                                           "as logfire's do, pass the one it wraps)"),
    "meter_provider": ((MeterProvider,), "an opentelemetry.sdk.metrics.MeterProvider (for a provider that wraps one, "
                                         "as logfire's do, pass the one it wraps)"),
    **dict.fromkeys(("instrument_threads", "instrument_processes", "system_metrics", "set_global", "span_bridge"),
                    ((bool,), "True or False")),
}


def _check_argument_types(arguments: dict[str, object]) -> None:
    """One clear error for an argument of another type: it gave a bare TypeError or AttributeError deep in the
    set-up (``otlp_endpoint=4317``, ``resource={...}``), or was taken by its truth (``span_bridge="no"``, on) or
    by int() (``prometheus_port=True``, port 1)."""
    for name, (accepted, expected) in _ARGUMENT_TYPES.items():
        value = arguments.get(name)
        if value is None:
            continue
        wrong = not isinstance(value, accepted) or (bool not in accepted and isinstance(value, bool))
        if isinstance(value, tuple | list):
            wrong = wrong or not all(isinstance(item, str) for item in value)
        if wrong:
            shown = repr(value) if isinstance(value, str | int | float | tuple | list | dict) else (
                f"<{type(value).__module__}.{type(value).__qualname__} object>")  # an object's repr may be pages long
            raise ConfigurationError(f"configure(): {name}={shown}: expected {expected}")


def configure(
    *,
    service_name: str | None = None,
    traces_exporter: str | tuple[str, ...] | None = None,
    metrics_exporter: str | tuple[str, ...] | None = None,
    otlp_endpoint: str | None = None,
    otlp_protocol: str | None = None,
    prometheus_host: str | None = None,
    prometheus_port: int | None = None,
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
    resource: Resource | None = None,
    instrument_threads: bool = True,
    instrument_processes: bool = True,
    system_metrics: bool = True,
    set_global: bool = True,
    span_bridge: bool | None = None,
) -> Telemetry:
    """Set up tracing and metrics for agent-otel. Safe to call twice: the second call returns the first one's handle
    and changes nothing (it logs a warning naming the arguments it ignored).

    ``tracer_provider``/``meter_provider`` use the given SDK providers instead of building ours
    (as does a host that installed SDK providers globally before calling this). ``resource`` adds the
    host's own resource attributes to the providers we build; they win over ours and the environment's.
    ``span_bridge`` (default: ``AGENT_OTEL_SPAN_BRIDGE``, true) turns the GenAI spans of other
    instrumentations into agent-otel metrics (:mod:`agent_otel._bridge.processor`).
    """
    global _telemetry
    # the API's stand-ins before any provider is set (``trace.get_tracer_provider()`` then): no provider, as not given
    if isinstance(tracer_provider, trace.ProxyTracerProvider):
        tracer_provider = None
    if isinstance(meter_provider, metrics_internal._ProxyMeterProvider):
        meter_provider = None
    arguments = dict(locals())
    _check_argument_types(arguments)
    with _lock, host_signals_blocked():  # the SDK's export threads start here: see _engine/threads.py
        if _telemetry is not None:
            _say_ignored(_telemetry, arguments)
            return _telemetry
        if not enabled_from_env():
            build_runtime(enabled=False)
            _telemetry = Telemetry(settings=None, tracer_provider=None, meter_provider=None)
            return _telemetry

        found_tp = tracer_provider or trace.get_tracer_provider()
        host_tp = found_tp if isinstance(found_tp, TracerProvider) and not (
            tracer_provider is None and found_tp in _built) else None  # the host's SDK provider: used, not replaced
        if tracer_provider is None and not isinstance(found_tp, (TracerProvider, trace.ProxyTracerProvider,
                                                                  trace.NoOpTracerProvider)):
            logger.warning("agent-otel: the global TracerProvider is %s, not the OpenTelemetry SDK's: agent-otel "
                           "records through a provider of its own, and does not see the spans made through that one "
                           "(other instrumentations' model and agent calls are not counted); pass configure() the SDK "
                           "providers it wraps, or call configure() first",  # by module: logfire's ProxyTracerProvider
                           f"{type(found_tp).__module__}.{type(found_tp).__qualname__}")
        found_mp = meter_provider or metrics.get_meter_provider()
        host_mp = found_mp if isinstance(found_mp, MeterProvider) and not (
            meter_provider is None and found_mp in _built) else None
        # the exporter variables of a signal whose provider is the host's are the host's (the distro's entry-point
        # names, otlp_proto_http...): not read, where a name of theirs stopped agent-otel's set-up
        settings = resolve_settings(service_name, traces_exporter, metrics_exporter, otlp_endpoint,
                                    otlp_protocol, prometheus_host, prometheus_port,
                                    host_traces=host_tp is not None, host_metrics=host_mp is not None)
        sampler = None if host_tp is not None else traces_sampler(os.environ)  # checked before anything is built
        check_policy_environment()
        env_flag(AGENT_OTEL_DEBUG, False)  # read when logging, where a bad value cannot be said: said here
        telemetry = Telemetry(settings=settings, tracer_provider=None, meter_provider=None, arguments=arguments,
                              exit_flush_timeout_millis=exit_flush_timeout_millis())
        try:
            our_resource = _resource(settings.service_name, resource)

            bridged = span_bridge if span_bridge is not None else env_flag(AGENT_OTEL_SPAN_BRIDGE, True)
            if host_tp is not None:
                if tracer_provider is None:
                    logger.info("agent-otel: using the SDK TracerProvider the host program installed")
                tp = host_tp
                if not _fork_child_setup:  # said in the parent
                    _say_unused_for_spans(arguments, settings.metrics_exporters)
                host_sampler = getattr(tp, "sampler", None)
                if bridged and not records_dropped_genai_spans(host_sampler):
                    logger.info("agent-otel: the span bridge sees only the spans the host's sampler records (%s); "
                                "wrap it in agent_otel.GenAiMetricsSampler to count the GenAI spans it drops",
                                _what_is_dropped(host_sampler))
            else:
                tp = our_tracer_provider(bridged, resource=our_resource)  # (its sampler checked above)
                for name in settings.traces_exporters:
                    processor = ReportingBatchSpanProcessor(_span_exporter(name, settings), telemetry.loss)
                    processor._reporting.resource = our_resource  # a parent's span, in a forked child (fork_handover)
                    telemetry.span_processors.append(processor)
                    tp.add_span_processor(processor)
                telemetry.owns_tracer_provider = True
                _built.set(tp, True)
            telemetry.tracer_provider = tp
            ours = _processors.get(tp)
            if ours is None:  # a host's provider set up again after shutdown() keeps the one it has (no SDK call
                # removes it): a second one bridged and counted every GenAI call again
                ours = AgentOtelSpanProcessor(None)
                _processors.set(tp, ours)
                # the SDK's own method, not a subclass's: Phoenix's provider shuts its exporting processor down
                # when another is added (unless told not to), and the program's spans stopped reaching Phoenix
                TracerProvider.add_span_processor(tp, ours)
            if bridged != (ours.bridge is not None):
                ours.bridge = GenAiSpanBridge() if bridged else None
            if telemetry.owns_tracer_provider:  # a forked child: the host's processors of its parents' (fork_handover)
                for host in HANDOVER.carried:
                    tp.add_span_processor(host)
            if _logs_sdk_in_use():  # hashed keys in a host's log records; evaluation results sent as log records
                from agent_otel._bridge.logs import add_to_global_logger_provider

                add_to_global_logger_provider(scores=bridged)

            if host_mp is not None:
                if meter_provider is None:
                    logger.info("agent-otel: using the SDK MeterProvider the host program installed")
                mp = host_mp
            else:
                readers = [reader for reader in (_metric_reader(name, settings, telemetry)
                                                 for name in settings.metrics_exporters) if reader is not None]
                # beside the host's TracerProvider, its resource: one service, whose exemplars link to its own traces
                # (ours named another, agent-otel-app by default), its SDK placeholder name included unless the service
                # was named here; a ``resource`` given here adds to it, as to ours, and a forked child's instance id is
                # its own (see _resource)
                if host_tp is None:
                    mp_resource = our_resource
                else:
                    host_resource = _named_service(host_tp.resource) if settings.service_named else host_tp.resource
                    mp_resource = _resource(settings.service_name, host_resource.merge(resource or Resource({})))
                mp = AgentOtelMeterProvider(resource=mp_resource, metric_readers=readers, views=metric_views(),
                                            shutdown_on_exit=False)
                telemetry.metric_readers = readers
                if HANDOVER.root is not None:  # a forked child: the program's meters are on the root (fork_handover)
                    _hand_over_meters(telemetry, mp, HANDOVER.root, settings, mp_resource)
                telemetry.owns_meter_provider = True
                _built.set(mp, True)
            telemetry.meter_provider = mp

            if set_global:
                _set_global_providers(telemetry, tp, mp)
            if telemetry.owns_tracer_provider:  # where a parent's provider forwards in a forked child
                HANDOVER.tracer_provider = tp
            rt = build_runtime(tp, mp, enabled=True)
            telemetry.loss.counter = rt.errors
            # the service's heartbeat, before any call: a process that is up and idle reports it
            rt[semconv.BUILD_INFO].set(1, {semconv.AGENT_OTEL_VERSION: __version__})
            if telemetry.metrics_unserved is not None:
                _say_metrics_unserved(telemetry.metrics_unserved, rt)

            parent = context_from_environment() if not _fork_child_setup else None
            if parent is not None:  # a parent process handed us its trace and job (TRACEPARENT/BAGGAGE)
                telemetry.environment = attach_here(parent)
                _stamping.startup_baggage = parent.get(BAGGAGE_KEY)
            if instrument_threads:  # the instrumentors are imported only when switched on
                from opentelemetry.instrumentation.threading import ThreadingInstrumentor

                instrumentor = ThreadingInstrumentor()
                instrument_thread_subclasses()  # threads whose class overrides run(): see carriers
                if not instrumentor.is_instrumented_by_opentelemetry:
                    instrumentor.instrument(skip_dep_check=_fork_child_setup)  # a forked child: the parent checked
                    telemetry.instrumentors.append(instrumentor)
                    unwrap_instrumented_thread_run()  # no frame of it in a thread's traceback: see carriers
                    _instrumented_quietly(instrumentor)
            if instrument_processes:
                instrument_process_carriers()
                if telemetry.prometheus_server is not None and \
                        _hand_metrics_port_to_reloader_child not in before_reloader_child:
                    before_reloader_child.append(_hand_metrics_port_to_reloader_child)
            if system_metrics:
                from opentelemetry.instrumentation.system_metrics import SystemMetricsInstrumentor

                if not _instrumented(SystemMetricsInstrumentor):
                    system = SystemMetricsInstrumentor(config=semconv.PROCESS_METRICS_CONFIG)
                    system.instrument(meter_provider=mp, skip_dep_check=_fork_child_setup)
                    telemetry.instrumentors.append(system)
            if not _fork_child_setup:  # (a forked child keeps its parent's, in the parent's order)
                _register_exit_hook(not (telemetry.owns_tracer_provider and telemetry.owns_meter_provider))
            if telemetry.owns_tracer_provider or telemetry.owns_meter_provider:
                _register_fork_handler()
            _telemetry = telemetry
            if exports_from_this_process():
                flush_when_idle(_flush_in_the_background)  # a Ray worker: no exit hook runs there
                flush_before_raised_signals()  # a forked child's too: its parent's went with the parent's release
                if not _fork_child_setup:  # a forked child's bootstrap is the wrapped one
                    flush_this_worker_on_exit()
                    flush_on_the_programs_terminate()
            return telemetry
        except BaseException as exc:
            raised = isinstance(exc, ConfigurationError) or not isinstance(exc, Exception)
            if not raised:  # ours: one line, counted (before the release, which exports the count), never raised
                report_error("configure", exc)
            _abandon(telemetry)
            if raised:
                raise
            return Telemetry(settings=None, tracer_provider=None, meter_provider=None)


def _instrumented_quietly(instrumentor: BaseInstrumentor) -> None:
    """The program's own ``ThreadingInstrumentor().instrument()`` once configure() has turned it on (strands' tracer
    makes that call) finds what it asks for, threads carrying the context, and says nothing: the instrumentor's
    "Attempting to instrument while already instrumented" warning was printed on the program's stderr (no handler:
    Python's last resort), where without agent-otel the program's call is the first. The instrumentor is a singleton;
    its ``instrument`` is shadowed on it (see :class:`_InstrumentUnlessOn`)."""
    vars(instrumentor)["instrument"] = _InstrumentUnlessOn(instrumentor)


class _InstrumentUnlessOn:
    """An instrumentor's ``instrument`` while agent-otel has it on: the program's call is noted, and the shutdown
    then leaves the instrumentation on, as the program's (see :func:`_uninstrument`); once it is off, the class's own
    (noted too: the program turned it off and on again)."""

    def __init__(self, instrumentor: BaseInstrumentor) -> None:
        self.instrumentor = instrumentor
        self.asked = False
        functools.update_wrapper(self, type(instrumentor).instrument)

    def __call__(self, **kwargs: Any) -> Any:
        self.asked = True
        if self.instrumentor.is_instrumented_by_opentelemetry:
            return None
        return type(self.instrumentor).instrument(self.instrumentor, **kwargs)


def _uninstrument(instrumentor: BaseInstrumentor) -> None:
    """Turn off what configure() turned on, unless the program has turned it off itself (the instrumentor's
    "Attempting to uninstrument while already uninstrumented" on its stderr). One the program asked for too is on
    again after, as the instrumentor itself sets it up (agent-otel's own carrier of the threads' context goes)."""
    shadow = vars(instrumentor).pop("instrument", None)
    if not instrumentor.is_instrumented_by_opentelemetry:
        return
    instrumentor.uninstrument()
    if isinstance(shadow, _InstrumentUnlessOn) and shadow.asked:
        instrumentor.instrument()


#: The budget of undoing a configure() that failed half-way: nothing was exported yet, but its own failure count.
_ABANDON_TIMEOUT_MS = 1000


def _abandon(telemetry: Telemetry) -> None:
    """Undo a ``configure()`` that failed half-way (a server listening, providers made global, instrumentors on),
    as ``shutdown()`` would, rather than leave it running half set up: calls then record as after ``shutdown()``,
    and a later ``configure()`` sets up anew. Never raises."""
    global _telemetry
    if _telemetry is telemetry:
        _telemetry = None
    try:
        _release(telemetry, _ABANDON_TIMEOUT_MS, retry=False)
    except Exception as exc:
        report_error("configure.abandon", exc)


def _instrumented(kind: type[BaseInstrumentor]) -> bool:
    """Whether the instrumentor (a singleton) is instrumented already, e.g. by ``opentelemetry-instrument``'s
    distro: asked without constructing it, as ``__init__`` runs again on the one instance and, for the
    system-metrics one, replaces the config (and labels) that the callbacks it registered read (a KeyError per
    callback at every collection, and its system.* and process.* metrics gone)."""
    instance = kind.__dict__.get("_instance")
    return instance is not None and bool(instance.is_instrumented_by_opentelemetry)


def _logs_sdk_in_use() -> bool:
    """Whether an SDK ``LoggerProvider`` can be installed: its module is imported, or the Logs API is told
    to build one. Otherwise the logs SDK is not imported at all (a fifth of ``import agent_otel``)."""
    return "opentelemetry.sdk._logs" in sys.modules or bool(os.environ.get(OTEL_PYTHON_LOGGER_PROVIDER))


def _resource(service_name: str, host: Resource | None) -> Resource:
    """The resource of the providers we build. ``service.instance.id`` is a random UUID per process (the
    SDK's resource detector; a forked child gets its own), so that processes of one service never share a
    series identity behind a Collector, whose Prometheus exporter makes ``instance`` of it. The host's own
    values win: ``OTEL_RESOURCE_ATTRIBUTES``/``OTEL_SERVICE_NAME``, then a ``resource`` given to configure().
    The host chose its id for one process, the first configured with it, which keeps it as given and records
    so in the environment (:func:`claim_instance_id`). Every other process given that id gets it with ``-<pid>``
    appended: a forked child set up again from its parent's configuration, a ``multiprocessing`` worker that
    sets itself up (``uvicorn --workers``, a spawned pool's initializer), and a process started otherwise (by
    ``subprocess``, a grandchild...) that inherits the record. Processes sharing the id would overwrite each
    other's cumulative series (a pre-fork server's workers counted as one; the conventions want one id per SDK
    instance)."""
    instance_id = ServiceInstanceIdResourceDetector().detect()  # the SDK's: one per process (pid)
    # reused only with the SDK's default detectors: others (``process``) detect what a fork changes
    reuse = _fork_child_setup and not os.environ.get(OTEL_EXPERIMENTAL_RESOURCE_DETECTORS)
    inherited = _detected.get(service_name) if reuse else None
    if inherited is None:
        detected = _detected[service_name] = Resource.create({ResourceAttributes.SERVICE_NAME: service_name})
        ours = instance_id.merge(detected)
    else:  # the parent's detection, its instance id replaced by this process's
        ours = inherited.merge(instance_id)
    ours = ours.merge(Resource(_forked_resource))
    with_environment = ours.merge(OTELResourceDetector().detect())
    resource = with_environment if host is None else with_environment.merge(host)
    chosen = resource.attributes.get(ResourceAttributes.SERVICE_INSTANCE_ID)
    hosts = chosen is not None and chosen != instance_id.attributes.get(ResourceAttributes.SERVICE_INSTANCE_ID)
    if hosts and (_fork_child_setup or _a_multiprocessing_worker() or not claim_instance_id(str(chosen))):
        resource = resource.merge(Resource({ResourceAttributes.SERVICE_INSTANCE_ID: f"{chosen}-{os.getpid()}"}))
    current = policy()
    if not current.hashed_keys.isdisjoint(resource.attributes):  # OTEL_RESOURCE_ATTRIBUTES=user.id=...: it went
        resource = Resource(current.scrub(dict(resource.attributes)), resource.schema_url)  # with every span
    return resource


def _named_service(resource: Resource) -> Resource:
    """A host provider's resource without the SDK's placeholder name (``unknown_service:python``, a resource made
    with no name): the name configure() was given (its argument, ``OTEL_SERVICE_NAME``) goes in its place. Not
    agent-otel's default: the host's spans keep the placeholder, and the metrics named another service."""
    name = resource.attributes.get(ResourceAttributes.SERVICE_NAME)
    if not (isinstance(name, str) and name.startswith("unknown_service")):
        return resource
    named = {key: value for key, value in resource.attributes.items() if key != ResourceAttributes.SERVICE_NAME}
    return Resource(named, resource.schema_url)


def claim_instance_id(chosen: str | None = None) -> bool:
    """Whether this process keeps the ``service.instance.id`` its host chose as given (``chosen``, by default
    the one of ``OTEL_RESOURCE_ATTRIBUTES``; without one there is nothing to claim: True). It does unless the
    environment records another process as the one keeping that same id (:data:`AGENT_OTEL_INSTANCE_ID_OWNER`,
    inherited from an ancestor): then it is not the process the host chose the id for, and returns False,
    leaving the record as it is (its own children are not that process either). Otherwise it records itself,
    for the processes it starts: a child given another id in its environment keeps that one and records
    itself; an ``exec`` keeps the pid, so the program exec'd keeps the id too."""
    if chosen is None:
        chosen = _instance_id_from_environment()
        if chosen is None:
            return True
    owner_pid, _, owner_id = os.environ.get(AGENT_OTEL_INSTANCE_ID_OWNER, "").partition(":")
    if owner_id == chosen and owner_pid != str(os.getpid()):
        return False
    try:
        os.environ[AGENT_OTEL_INSTANCE_ID_OWNER] = f"{os.getpid()}:{chosen}"
    except (ValueError, UnicodeError):  # an id no environment can hold (a NUL, a lone surrogate): nor a child's
        pass
    return True


def _instance_id_from_environment() -> str | None:
    """``service.instance.id`` in ``OTEL_RESOURCE_ATTRIBUTES``, read as the SDK's ``OTELResourceDetector`` reads
    it (the last one wins) but without its warning on a malformed item, which the program's own SDK says."""
    chosen = None
    for item in os.environ.get(OTEL_RESOURCE_ATTRIBUTES, "").split(","):
        key, equals, value = item.partition("=")
        if equals and key.strip() == ResourceAttributes.SERVICE_INSTANCE_ID:
            chosen = urllib.parse.unquote(value.strip())
    return chosen


def _a_multiprocessing_worker() -> bool:
    """Whether ``multiprocessing`` started this process (fork, spawn or forkserver); read only where it is
    imported already, as it is in every worker it starts once the worker runs, and from the command line of a
    spawned one (``--multiprocessing-fork``), which ``agent-otel run`` sets up before that import."""
    if "--multiprocessing-fork" in sys.orig_argv:
        return True
    started = sys.modules.get("multiprocessing")
    return started is not None and started.parent_process() is not None


def _set_global_providers(telemetry: Telemetry, tp: TracerProvider, mp: MeterProvider) -> None:
    """Install the providers we built as the global ones. The API installs a provider once per process:
    a global one that we built earlier (and shut down) is replaced, resetting the API's guard (pinned
    API internals); a host's is never replaced (we do not build providers when the host has an SDK one; one
    of another kind, a no-op provider, stays global without the API's "Overriding ... is not allowed" warning
    on the program's stderr, and agent-otel records through its own)."""
    if telemetry.owns_tracer_provider:
        current_tp = trace.get_tracer_provider()
        if current_tp in _built:
            trace._TRACER_PROVIDER_SET_ONCE = Once()
        if current_tp in _built or isinstance(current_tp, trace.ProxyTracerProvider):
            trace.set_tracer_provider(tp)
    if telemetry.owns_meter_provider:
        current_mp = metrics.get_meter_provider()
        if current_mp in _built:
            metrics_internal._METER_PROVIDER_SET_ONCE = Once()
        if current_mp in _built or isinstance(current_mp, metrics_internal._ProxyMeterProvider):
            metrics.set_meter_provider(mp)


#: The arguments that choose where spans go: beside a host's TracerProvider they choose nothing for them.
_SPAN_EXPORT_ARGUMENTS = ("traces_exporter", "otlp_endpoint", "otlp_protocol")


def _say_unused_for_spans(arguments: dict[str, object], metrics_exporters: tuple[str, ...]) -> None:
    """Spans go through the host's TracerProvider, to its exporters: an export argument given to ``configure()``
    does not reach them (``traces_exporter="none"`` asks for what happens). Said once, the arguments named, not their
    values, and that the endpoint still takes the metrics exported over OTLP; a program that wants its spans there adds
    an exporter to its provider."""
    given = [name for name in _SPAN_EXPORT_ARGUMENTS if arguments.get(name) is not None
             and not (name == "traces_exporter" and exporter_names(arguments[name]) == ("none",))]  # type: ignore[arg-type]
    if given:
        metrics = "; the metrics go to the endpoint" if "otlp" in metrics_exporters and given != [
            "traces_exporter"] else ""
        logger.warning("agent-otel: configure(%s) does not reach the spans: they go to the exporters of the host's "
                       "TracerProvider; add an exporter to it to send them there too%s", ", ".join(given), metrics)


def our_tracer_provider(bridged: bool, env: Mapping[str, str] = os.environ,
                        resource: Resource | None = None) -> TracerProvider:
    """A TracerProvider of agent-otel's (``configure()``'s, a capture's). Its sampler is the one ``OTEL_TRACES_SAMPLER``
    in ``env`` names (by default ``ParentBased(ALWAYS_ON)``), with the GenAI spans its parts drop recorded (not sampled)
    for the span bridge when it is on; its ids come from agent-otel's own generator (see :mod:`agent_otel._engine.ids`);
    no exit hook of the SDK's (see _register_exit_hook)."""
    sampler = traces_sampler(env, dropping_parts()) if bridged else traces_sampler(env)
    return TracerProvider(resource=resource, sampler=sampler, id_generator=OwnIdGenerator(), shutdown_on_exit=False)


def _what_is_dropped(sampler: object) -> str:
    """Which spans a host's sampler drops, for the bridge's line: the SDK's default one drops only those of a trace
    that came in unsampled, which a program that never receives a ``traceparent`` never sees."""
    if sampler is DEFAULT_ON:
        return "the SDK's default, ParentBased(ALWAYS_ON), drops the spans of a trace that came in unsampled"
    try:
        return str(sampler.get_description())  # type: ignore[attr-defined]
    except Exception:  # a host's sampler with no description, or one that fails
        return type(sampler).__qualname__


def _say_ignored(first: Telemetry, arguments: dict[str, object]) -> None:
    """configure() again keeps the first configuration: the arguments of this call that ask for something else are
    named (as the SDK warns of a global provider it refuses), never their values. An argument left at its default
    asks for nothing, so the defensive ``configure()`` of a library or a second module says nothing, nor does one
    that names what is in effect (the provider in use, the exporters by another spelling)."""
    settings = first.settings
    if settings is None:  # agent-otel is disabled: nothing was set up to differ from
        return
    defaults = configure.__kwdefaults__ or {}
    processor = _processors.get(first.tracer_provider)
    resource = getattr(first.tracer_provider, "resource", None)
    in_effect: dict[str, object] = {
        "service_name": settings.service_name, "otlp_endpoint": settings.otlp_endpoint,
        "otlp_protocol": settings.otlp_protocol, "prometheus_host": settings.prometheus_host,
        "prometheus_port": settings.prometheus_port, "tracer_provider": first.tracer_provider,
        "meter_provider": first.meter_provider,
        "span_bridge": None if processor is None else processor.bridge is not None}
    ignored = []
    for name, value in arguments.items():
        if name == "service_name" and isinstance(resource, Resource) and value == resource.attributes.get(
                ResourceAttributes.SERVICE_NAME):
            continue  # the name the providers carry (from OTEL_RESOURCE_ATTRIBUTES, a resource given)
        if name == "otlp_endpoint" and isinstance(value, str) and any(
                isinstance(other, str) and value.rstrip("/") == other.rstrip("/")
                for other in (settings.otlp_endpoint, first.arguments.get(name))):
            continue
        if name in ("traces_exporter", "metrics_exporter") and isinstance(value, str | tuple | list):
            value = _exporters(value)
            asked = {_exporters(given) for given in (first.arguments.get(name), defaults.get(name))
                     if isinstance(given, str | tuple | list)}
            asked.add(settings.traces_exporters if name == "traces_exporter" else settings.metrics_exporters)
            if value not in asked:
                ignored.append(name)
        elif name == "resource" and isinstance(value, Resource) and not value.attributes:
            continue  # adds nothing
        elif not any(_same(value, other) for other in (defaults.get(name), first.arguments.get(name),
                                                       in_effect.get(name, _NOTHING))):
            ignored.append(name)
    if ignored:
        logger.warning("agent-otel: configure() was called again with other %s; the first configuration stays "
                       "(call shutdown() first to set up again)", ", ".join(ignored))
    else:
        logger.debug("agent-otel: configure() called again; keeping the first configuration")


def _exporters(value: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The exporters named, as configure() resolves them (``"none"`` names none)."""
    return tuple(name for name in exporter_names(value) if name != "none")


#: What no argument is.
_NOTHING = object()


def _same(value: object, other: object) -> bool:
    if value is other:
        return True
    try:
        return bool(value == other)
    except Exception:  # a host object whose == raises
        return False


_fork_child_setup = False


@own_work()  # (its setup, as configure()'s, makes no call of the program's)
def _after_fork_in_child() -> None:
    """``os.fork()`` in a configured process: the child starts its own configuration, from the same
    configure() arguments. It does not inherit the parent's: the copy of the /metrics socket is closed
    (the parent keeps serving; the child serves no /metrics, as the port is the parent's), the
    inherited exporters drop what they hold (the parent's spans and cumulative metric state, which
    the parent exports), and nothing waits for the parent's threads, which do not exist here. The
    new providers start from zero and carry ``process.pid``, so each worker of a pre-fork server
    reports its own telemetry; the parent's providers hand over to them what is recorded through the
    tracers and instruments made from them before the fork (:mod:`~agent_otel._sdk.fork_handover`).
    Never raises: a failure leaves the child without telemetry."""
    global _telemetry, _fork_child_setup
    inherited = _telemetry
    if inherited is None or inherited.settings is None:
        return
    _forked_resource[ResourceAttributes.PROCESS_PID] = os.getpid()
    HANDOVER.started.clear()  # the spans a parent's tracers started in the parent are the parent's
    if not (inherited.owns_tracer_provider or inherited.owns_meter_provider):
        return  # the host's providers: the SDK resets their queues and threads in the child itself
    try:
        server, inherited.prometheus_server = inherited.prometheus_server, None
        if server is not None:
            server.socket.close()  # this process's copy only: the parent's socket stays open
        for processor in inherited.span_processors:
            processor._reporting.abandoned = True
            retire(processor)  # agent-otel's processor on that provider forwards its spans (fork_handover)
        for exporter in inherited.metric_exporters:
            exporter.abandoned = True
        _telemetry = None
        environment, inherited.environment = inherited.environment, None  # the context stays as it is
        _release(inherited, inherited.exit_flush_timeout_millis, retry=False, forked=True)
        settings = inherited.settings
        hosts = _hand_over(inherited)
        arguments = {**inherited.arguments, "metrics_exporter": tuple(
            name for name in settings.metrics_exporters if name != "prometheus") or "none"}
        _fork_child_setup = True
        try:
            configure(**arguments)  # type: ignore[arg-type]  # configure()'s own arguments
        finally:
            _fork_child_setup = False
        renewed = current_telemetry()
        if renewed is not None:
            renewed.environment = environment
            renewed.arguments = inherited.arguments  # the program's, for a configure() of its own here to compare
        old_tp = inherited.tracer_provider
        old_ours = _processors.get(old_tp) if inherited.owns_tracer_provider and old_tp is not None else None
        if old_ours is not None:
            forward_spans(old_ours, hosts)
    except Exception as exc:
        report_error("fork.configure", exc)


def _hand_over(inherited: Telemetry) -> list[SpanProcessor]:
    """In a forked child, before it sets up again: where the program's meters stay (the root provider, and the
    scopes of agent-otel's own there), and the host's span processors on the parent's tracer provider, which the
    child's providers get too (returned: see fork_handover)."""
    old_mp = inherited.meter_provider
    if HANDOVER.root is None and inherited.owns_meter_provider and isinstance(old_mp, MeterProvider):
        HANDOVER.root = old_mp  # the first fork: the parent's is the root
        ours = any(type(each).__module__ == SYSTEM_METRICS_SCOPE for each in inherited.instrumentors)
        HANDOVER.left_out = frozenset((semconv.SCOPE_NAME, *([SYSTEM_METRICS_SCOPE] if ours else [])))
    old_tp = inherited.tracer_provider
    if not (inherited.owns_tracer_provider and isinstance(old_tp, TracerProvider)):
        return []
    hosts = host_span_processors(old_tp, [*inherited.span_processors, *filter(None, [_processors.get(old_tp)])])
    HANDOVER.carried.extend(host for host in hosts if all(host is not kept for kept in HANDOVER.carried))
    return hosts


def _hand_over_meters(telemetry: Telemetry, mp: AgentOtelMeterProvider, root: MeterProvider, settings: Settings,
                      resource: Resource) -> None:
    """In a forked child: the program's meters come from the ``root`` provider, which gets a reader of each
    of this configuration's push exporters, without agent-otel's own scopes, with this process's resource."""
    mp.root = root
    pushed = [name for name in settings.metrics_exporters if name != "prometheus"]  # a worker's own /metrics: its own
    if pushed and not measurements_unlocked(root, _MEASUREMENT_LOCK_WAIT_S):
        report_error("fork.hand_over", TimeoutError("the parent was collecting metrics as it forked: this process "
                                                    "exports none of the program's instruments taken before"))
        return
    for name in pushed:
        reader = _metric_reader(name, settings, telemetry)
        if reader is None:  # (only /metrics has none, and it is not pushed)
            continue
        telemetry.metric_exporters[-1].handover = (resource, HANDOVER.left_out)
        root.add_metric_reader(reader)
        HANDOVER.readers.append(reader)


#: How long a forked child waits for its root meter provider's measurement lock (see measurements_unlocked): a
#: collection of the parent's under way at the fork holds it for good there, one of this process's only briefly.
_MEASUREMENT_LOCK_WAIT_S = 1.0


_fork_handler_registered = False


def _register_fork_handler() -> None:
    """Registered once, by the first configure(): after-fork handlers run in registration order, so
    ours runs after those of the modules setting up imported (e.g. ``concurrent.futures.thread``,
    whose lock would otherwise still be held when ours sets up again)."""
    global _fork_handler_registered
    if not _fork_handler_registered and hasattr(os, "register_at_fork"):
        _fork_handler_registered = True
        os.register_at_fork(after_in_child=_after_fork_in_child)


#: The span processor configure() added to each tracer provider (weakly: a host's outlives our configuration).
_processors: _HeldWeakly[AgentOtelSpanProcessor] = _HeldWeakly()


def _register_exit_hook(uses_programs_provider: bool) -> None:
    """Shut down what we own at interpreter exit, within ``shutdown()``'s timeout, the calls still running ended
    first (on a host's providers too, whose own exit hooks, registered before, run after it and export them). The
    SDK's own exit hooks (turned off on the providers we build) wait 30 s per provider for a collector that never
    answers, so a host that never called ``shutdown()`` would hang on exit. SIGTERM is held meanwhile
    (:func:`flush_at_exit`): a spawned pool worker leaving as ``Pool.terminate()`` signals it ran the SIGTERM
    flush inside this one, which found it under way and killed the process before it had exported.
    Registered again by a set-up on a provider of the program's (``uses_programs_provider``), so that it runs before
    that provider's own exit hook, which may have been registered since an earlier set-up (a test's capture, then the
    program's own providers); only the latest registration flushes (not ``atexit.unregister``, which compares every
    hook of the program's with ``==``)."""
    global _exit_hooks_registered
    if _exit_hooks_registered and not uses_programs_provider:
        return
    _exit_hooks_registered += 1
    atexit.register(functools.partial(_at_interpreter_exit, _exit_hooks_registered))


#: How many times the exit hook was registered: the latest registration is the one that flushes.
_exit_hooks_registered = 0


def _at_interpreter_exit(registration: int) -> None:
    if registration == _exit_hooks_registered:  # (an earlier one, superseded, does nothing)
        flush_at_exit(at_interpreter_exit=True)


def current_telemetry() -> Telemetry | None:
    return _telemetry


def _start(what: str, step: Callable[[], object]) -> ExitThread | None:
    """Run ``step`` on a daemon thread (None: it ran here, threads being unavailable); a failure is
    logged, never raised."""

    def run() -> None:
        try:
            step()
        except Exception as exc:
            report_error("shutdown." + what.replace(" ", "_"), exc)  # one line, no message: it may quote host data

    try:
        return ExitThread(run, f"agent-otel-shutdown-{what.replace(' ', '-')}")
    except RuntimeError:  # e.g. no new threads at interpreter shutdown: run it here
        run()
        return None


def shutdown_at_exit(at_interpreter_exit: bool = False) -> None:
    """The flush at process exit: within ``AGENT_OTEL_EXIT_FLUSH_TIMEOUT_MS`` (default 1 s), and each
    exporter makes one attempt, no retry: a collector that is down costs the exit no more than that,
    and what it did not take is counted as lost. The jobs, agents, evolution runs and phases still open (a
    generator suspended half-read, a call on a daemon thread) end first, closed, within half of it. Never
    raises. ``at_interpreter_exit``: called by an exit hook, which the host's providers' own exit hooks follow (see
    :func:`_release`)."""
    telemetry = _telemetry
    budget_ms = telemetry.exit_flush_timeout_millis if telemetry is not None else _DEFAULT_EXIT_FLUSH_TIMEOUT_MS
    if terminate_flush_timed_out():  # the SIGTERM's flush found the endpoint not answering: not again at length
        budget_ms = min(budget_ms, _AFTER_A_TIMED_OUT_FLUSH_MS)
    started = time.monotonic()
    if telemetry is not None and telemetry.settings is not None:  # half the budget at most: the flush is the rest
        end_in_flight(None, budget_ms / 2000, spans_closed=_spans_closed(telemetry))
    _shutdown(max(1, budget_ms - int((time.monotonic() - started) * 1000)), retry=False,
              hosts_flush_themselves=at_interpreter_exit)


#: The exit flush's budget after a SIGTERM's flush ran out of its own (ms): what ended since, if the endpoint is
#: back; a program's handler that exits paid the whole budget twice.
_AFTER_A_TIMED_OUT_FLUSH_MS = 50


@own_work()  # (what the SDK calls as it flushes is not the program's call)
def flush_at_exit(leaving: bool = False, at_interpreter_exit: bool = False) -> None:
    """:func:`shutdown_at_exit` with SIGTERM and SIGHUP held until it is done, then delivered, or dropped when
    nothing of the program runs after it (``leaving``: see :mod:`~agent_otel._engine.exit_signals`). Raises only what
    the program's handler of a delivered signal raises. ``at_interpreter_exit``: called by an exit hook (not before
    ``os._exit()``, an exec or a signal's default action, which run none)."""
    held: list[int] = []
    try:
        with held_over_exit_flush() as held:
            try:
                shutdown_at_exit(at_interpreter_exit)
            except Exception as exc:
                report_error("exit.flush", exc)
    except KeyboardInterrupt:  # Ctrl-C during a slow flush: the exit goes on, without it, as the user asked; the
        pass  # interpreter printed our frames as "Exception ignored in atexit callback"
    if not leaving:
        deliver(held)


def exports_from_this_process() -> bool:
    """Whether the telemetry in use exports and was set up in this process (in a forked child, by its fork handler, from
    the parent's arguments, with a lock and exporters of its own): only then may a multiprocessing worker
    flush it before ``os._exit()``. A host's providers in a forked child (and our state around them, whose
    lock another thread of the parent may have held at the fork) are left alone, as before; and a worker whose
    telemetry exports nothing (no exporter: the default's traces, and /metrics is the parent's) exits as fast
    as without the flush."""
    telemetry = _telemetry
    return telemetry is not None and telemetry.pid == os.getpid() and bool(
        telemetry.span_processors or telemetry.metric_exporters)  # nothing exported: nothing to wait for


def _stop_retrying(telemetry: Telemetry) -> Stopped:
    """Each of ``telemetry``'s exporters makes single attempts from now on (see ``stop_retrying``); what to clear to
    undo it."""
    stopped: Stopped = []
    for processor in telemetry.span_processors:
        stopped += stop_retrying(processor._reporting.exporter)
    for metric_exporter in telemetry.metric_exporters:
        stopped += stop_retrying(metric_exporter.exporter)
    return stopped


def flush_queued(retry: bool = True) -> bool:
    """Export what is queued (spans that ended, the metrics since the last export), within the exit flush budget,
    shutting nothing down: before ``os.exec*``, which replaces the process with no exit flush (and may fail, the
    process going on), and on a SIGTERM the program's own handler takes (see ``carriers``). ``retry=False``: the
    process may leave next (``os._exit()``, an exec), and each exporter tries once in this flush,
    as at exit: a Collector that is down cost the whole budget in backoff retries, on every forked work-horse an RQ
    worker runs a job in; then they retry again, for a process that goes on. Whether it was done within the budget."""
    telemetry = _telemetry
    if telemetry is None or not exports_from_this_process():
        return True
    stopped = _stop_retrying(telemetry) if not retry else []
    try:
        budget_s = min(telemetry.exit_flush_timeout_millis, _LONGEST_RELEASE_MILLIS) / 1000
        deadline = time.monotonic() + budget_s
        done = True
        providers: tuple[TracerProvider | MeterProvider | None, ...] = (telemetry.tracer_provider,
                                                                         telemetry.meter_provider)
        for provider in providers:  # a forked child's meter provider flushes its readers of the root too
            if provider is not None:
                flushing = _start("flush", functools.partial(provider.force_flush,
                                                             max(1, int((deadline - time.monotonic()) * 1000))))
                if flushing is not None:
                    flushing.join(max(0.0, deadline - time.monotonic()))
                    done = done and not flushing.is_alive()
        return done
    finally:  # the process may go on (an exec that failed, a Ray worker's next task): retrying as before
        resume_retrying(stopped)


def _flush_in_the_background() -> None:
    """What is queued, exported on the thread of ``idle_flush`` (a Ray worker, once no call of ours runs in it), one
    flush at a time: with the exporters' own retries and timeouts, as their periodic exports, since no task waits for
    it (it left no thread behind, as a budget would, for the next one to pile up on)."""
    telemetry = _telemetry
    if telemetry is None or not exports_from_this_process():
        return
    for provider in (telemetry.tracer_provider, telemetry.meter_provider):
        if provider is not None:
            provider.force_flush()


def end_in_flight_on(signum: int) -> None:
    """A signal ends the process (SIGTERM under ``agent-otel run``, or in a worker): the jobs, agents, evolution
    runs and phases still running end as an exception would end them, with ``error.type`` the signal's name,
    within the exit flush budget, so that the flush that follows exports them. Never raises."""
    telemetry = _telemetry
    if telemetry is not None and telemetry.settings is not None:
        end_in_flight(signum, telemetry.exit_flush_timeout_millis / 1000, spans_closed=_spans_closed(telemetry))


def _spans_closed(telemetry: Telemetry) -> bool:
    """Whether the program shut the tracer provider down itself (``trace.get_tracer_provider().shutdown()``, as
    OpenTelemetry's examples end): a span ending there now is dropped, with a warning of the SDK's processors."""
    provider = telemetry.tracer_provider
    ours = _processors.get(provider) if provider is not None else None
    return ours is not None and ours.provider_shut_down


def shutdown(timeout_millis: int = 10_000) -> None:
    """Flush telemetry and release what configure() set up, within ``timeout_millis`` overall (what
    an unreachable collector did not take by then is lost, and counted). The host's own providers
    are flushed, not shut down. Never raises.

    Each step (our span processors, the providers, including the span processors a host added to
    a TracerProvider we built, whose shutdown takes no timeout, and stopping the /metrics server)
    runs on a daemon thread that is waited for only until the deadline: one still running then is
    left to finish in the background (what it then loses is logged, no longer counted). Beyond the deadline
    come only the few milliseconds of uninstrumenting, starting those threads and closing the
    /metrics socket."""
    _shutdown(timeout_millis, retry=True)


@own_work()
def _shutdown(timeout_millis: int, *, retry: bool, hosts_flush_themselves: bool = False) -> None:
    global _telemetry
    with _lock:
        telemetry, _telemetry = _telemetry, None
        if telemetry is None:
            return
        _release(telemetry, timeout_millis, retry=retry, hosts_flush_themselves=hosts_flush_themselves)


def _shuts_down_at_exit(provider: TracerProvider | MeterProvider) -> bool:
    """Whether an SDK provider has its own exit hook (``shutdown_on_exit``, the default): the SDK keeps no public
    record of it, so the attribute it keeps it in is read; a provider made with ``shutdown_on_exit=False``, or an SDK
    that keeps it elsewhere, is flushed at exit, as before."""
    return getattr(provider, "_atexit_handler", None) is not None


#: The longest budget a release waits, whatever it was given (11.6 days): the threads' waits take no more
#: (``threading.TIMEOUT_MAX``, the platform's time_t), and a budget beyond them raised out of the exit hook.
_LONGEST_RELEASE_MILLIS = 10**9


def _release(telemetry: Telemetry, timeout_millis: int, *, retry: bool, forked: bool = False,
             hosts_flush_themselves: bool = False) -> None:
    """Flush and release what ``telemetry`` set up (see shutdown()); ``retry=False``: the exporters
    make one attempt each, without their backoff retries. ``forked``: the parent's, in a forked child,
    whose providers stay, for what was made from them before the fork (see fork_handover): only our
    readers and span processors on them go."""
    timeout_millis = min(timeout_millis, _LONGEST_RELEASE_MILLIS)
    stop_flushing_when_idle()
    if HANDOVER.tracer_provider is telemetry.tracer_provider:  # spans forwarded from a parent's provider: none now
        HANDOVER.tracer_provider = None
    count_unreported()  # in the last export
    if not retry:
        _stop_retrying(telemetry)
    deadline = time.monotonic() + timeout_millis / 1000
    # At exit (no retries), the spans' steps get half of it at most: a backlog of spans or a slow trace endpoint took
    # it all, and the metrics, the run's totals (after the spans, so that what their flush lost is counted among them),
    # had nothing left: every count of the run lost, silently. What the spans leave, the metrics get. A shutdown() the
    # program calls keeps its whole timeout for each in turn, as documented.
    spans_deadline = deadline if retry else time.monotonic() + timeout_millis / 2000

    def remaining_millis(until: float = deadline) -> float:
        return max(1.0, (until - time.monotonic()) * 1000)  # never 0: the SDK refuses to start

    def wait(thread: ExitThread | None, until: float = deadline) -> None:
        if thread is not None:
            thread.join(max(0.0, until - time.monotonic()))

    server = telemetry.prometheus_server
    # stopping the server takes about a millisecond (_Server.shutdown): let it overlap with the flush
    stop_server = _start("metrics server", server.shutdown) if server is not None else None
    for instrumentor in telemetry.instrumentors:
        try:
            _uninstrument(instrumentor)
        except Exception as exc:
            report_error("shutdown.uninstrument", exc)
    uninstrument_process_carriers()
    uninstrument_thread_subclasses()
    # TracerProvider.shutdown() takes no timeout: shut our batch processors down first, in time.
    def processor_shutdown(processor: ReportingBatchSpanProcessor) -> Callable[[], None]:
        return lambda: processor.shutdown(remaining_millis(spans_deadline))

    def flush(provider: TracerProvider | MeterProvider, until: float) -> Callable[[], bool]:
        return lambda: provider.force_flush(int(remaining_millis(until)))  # (a host's: flushed, not shut down)

    def meter_provider_shutdown(provider: MeterProvider) -> Callable[[], None]:
        # not again when the program shut it down itself (``metrics.get_meter_provider().shutdown()`` at its end, as
        # OpenTelemetry's examples do): the SDK's "shutdown can only be called once" on the program's stderr
        return lambda: None if getattr(provider, "released", False) else provider.shutdown(
            timeout_millis=remaining_millis())

    def reader_retirement(provider: MeterProvider, reader: MetricReader) -> Callable[[], None]:
        return lambda: retire_reader(provider, reader, remaining_millis())

    def reader_detachment(provider: MeterProvider, reader: MetricReader) -> Callable[[], None]:
        return lambda: detach_reader(provider, reader, remaining_millis())

    def processor_step(processor: SpanProcessor) -> tuple[str, Callable[[], object]]:
        if any(processor is host for host in HANDOVER.carried):  # a parent's provider has it too: flushed only
            return "span processor", lambda: processor.force_flush(int(remaining_millis(spans_deadline)))
        return "span processor", processor.shutdown

    # (what, the step, when waiting for it ends: the spans' share for a step that flushes spans)
    steps: list[tuple[str, Callable[[], object], float]] = [("span processor", processor_shutdown(p), spans_deadline)
                                                            for p in telemetry.span_processors]
    providers: tuple[tuple[TracerProvider | MeterProvider | None, bool], ...] = (
        (telemetry.tracer_provider, telemetry.owns_tracer_provider),
        (telemetry.meter_provider, telemetry.owns_meter_provider))
    for provider, owned in providers:
        if provider is None:
            continue
        until = spans_deadline if isinstance(provider, TracerProvider) else deadline
        if forked and owned:  # its readers only: the provider stays, for what was made from it (fork_handover)
            if isinstance(provider, MeterProvider):
                steps.extend(("metric reader", reader_retirement(provider, reader), until)
                             for reader in telemetry.metric_readers)
        elif not owned:
            # At the interpreter's exit the host's provider exports what it holds in its own exit hook, which comes
            # after ours (registered when it was made, before configure()): its exporters, which we cannot stop
            # retrying, flushed here first ran their retries against a collector that was down, and its own
            # shutdown, waiting behind that, ran them again (an exit twice as long as without agent-otel)
            # When agent-otel owns neither provider, the program's are wholly its own at exit, as without agent-otel:
            # one made with ``shutdown_on_exit=False`` was not flushed then either (flushed, its exporters' retries,
            # which we cannot stop, lengthened the exit and printed theirs against a Collector that was down)
            owns_one = telemetry.owns_tracer_provider or telemetry.owns_meter_provider
            if not (hosts_flush_themselves and (_shuts_down_at_exit(provider) or not owns_one)):
                steps.append(("flush", flush(provider, until), until))
        elif isinstance(provider, MeterProvider):
            steps.append(("meter provider", meter_provider_shutdown(provider), until))
        elif HANDOVER.carried:  # a forked child's: the host's processors it shares with a parent's stay up
            steps.extend((*processor_step(processor), until) for processor in host_span_processors(provider, ()))
        else:
            steps.append(("tracer provider", provider.shutdown, until))
    root, readers, HANDOVER.readers = HANDOVER.root, HANDOVER.readers, []  # this process's, on the root
    if root is not None:
        steps.extend(("metric reader", reader_retirement(root, reader) if forked else reader_detachment(root, reader),
                      deadline) for reader in readers)
    for what, step, until in steps:
        wait(_start(what, step), until)
    telemetry.loss.counter = None
    if server is not None:
        wait(stop_server)
        server.server_close()  # if serve_forever() is still polling, it stops at its next poll
    if telemetry.environment is not None:
        release_environment(telemetry.environment)
    _runtime_after_release(telemetry)


def runtime_without_configuration() -> None:
    """Calls after a capture of ``agent_otel.testing``: as with no ``configure()``, from the global providers (the
    next call builds it), each signal's but one whose global provider is ours, shut down: nothing goes there. (Both
    went to no-op ones when one was ours: a test suite's own global tracer provider, beside the meter provider a
    ``configure()`` of its conftest built, got no span after the first capture.)"""
    global_tp, global_mp = trace.get_tracer_provider(), metrics.get_meter_provider()
    if global_tp in _built or global_mp in _built:
        _runtime_over(None if global_tp in _built else global_tp, None if global_mp in _built else global_mp)
    else:
        forget_runtime()


def _runtime_after_release(telemetry: Telemetry) -> None:
    """What calls record after shutdown() (until configure() runs again): nothing into a provider we shut
    down (the SDK would refuse, and warn on the host's stderr), still everything into a host's."""
    _runtime_over(None if telemetry.owns_tracer_provider else telemetry.tracer_provider,
                  None if telemetry.owns_meter_provider else telemetry.meter_provider)


def _runtime_over(host_tp: trace.TracerProvider | None, host_mp: metrics.MeterProvider | None) -> None:
    """Calls record into the host's providers given, and nothing where a signal has none (a no-op provider)."""
    build_runtime(host_tp or trace.NoOpTracerProvider(), host_mp or metrics.NoOpMeterProvider(),
                  enabled=False if host_tp is None and host_mp is None else None)
