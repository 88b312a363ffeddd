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
import inspect
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter, SpanExportResult

from . import semconv
from .context import (
    JobIdSpanProcessor,
    context_from_environment,
    instrument_process_carriers,
    uninstrument_process_carriers,
)
from .errors import ConfigurationError, report_error
from .policy import HashingSpanProcessor
from .runtime import build_runtime, enabled_from_env, reset_runtime

logger = logging.getLogger("agent_otel")

TRACES_EXPORTERS = ("otlp", "console", "none")
METRICS_EXPORTERS = ("prometheus", "otlp", "console", "none")
PROTOCOLS = ("grpc", "http/protobuf")
DEFAULT_PROMETHEUS_HOST = "127.0.0.1"
DEFAULT_PROMETHEUS_PORT = 9464


@dataclass
class Settings:
    """What configure() resolved from arguments and environment (arguments win)."""

    service_name: str
    traces_exporters: tuple[str, ...]
    metrics_exporters: tuple[str, ...]
    otlp_endpoint: str | None
    otlp_protocol: str
    prometheus_host: str
    prometheus_port: int
    metric_export_interval_ms: int = 10_000


@dataclass
class Telemetry:
    """The handle configure() returns; ``shutdown()`` flushes and releases what it owns."""

    settings: Settings | None
    tracer_provider: Any
    meter_provider: Any
    owns_tracer_provider: bool = False
    owns_meter_provider: bool = False
    prometheus_server: Any = None
    environment_token: object = None
    instrumentors: list[Any] = field(default_factory=list)
    span_processors: list[ReportingBatchSpanProcessor] = field(default_factory=list)
    loss: LossReporter = field(default_factory=lambda: LossReporter())

    @property
    def prometheus_url(self) -> str | None:
        if self.prometheus_server is None or self.settings is None:
            return None
        host, port = self.prometheus_server.server_address[:2]
        return f"http://{host}:{port}/metrics"


_telemetry: Telemetry | None = None
_lock = threading.RLock()


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip().lower() for part in value.split(",") if part.strip())


def _choose(name: str, value: str | tuple[str, ...], allowed: tuple[str, ...]) -> tuple[str, ...]:
    chosen = _split(value) if isinstance(value, str) else tuple(v.lower() for v in value)
    for item in chosen:
        if item not in allowed:
            raise ConfigurationError(f"{name}: unknown exporter {item!r}; expected one of {', '.join(allowed)}")
    return tuple(item for item in chosen if item != "none")


def _endpoint_problem(endpoint: str) -> str | None:
    try:
        parts = urlsplit(endpoint)
    except ValueError as exc:  # e.g. "Invalid IPv6 URL" for an unclosed bracket
        return str(exc)
    if parts.scheme not in ("http", "https"):
        return "scheme must be http or https"
    if not parts.hostname:
        return "no host"
    try:
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return "malformed port"
    return None


def _check_endpoint(endpoint: str, source: str) -> str:
    problem = _endpoint_problem(endpoint)
    if problem:
        raise ConfigurationError(f"{source}={endpoint!r}: malformed OTLP endpoint ({problem}); "
                                 "expected e.g. http://localhost:4317")
    return endpoint.rstrip("/")


def resolve_settings(
    service_name: str | None = None,
    traces_exporter: str | tuple[str, ...] | None = None,
    metrics_exporter: str | tuple[str, ...] | None = None,
    otlp_endpoint: str | None = None,
    otlp_protocol: str | None = None,
    prometheus_host: str | None = None,
    prometheus_port: int | None = None,
    env: dict[str, str] | None = None,
) -> Settings:
    env = dict(os.environ) if env is None else env
    endpoint_source = "otlp_endpoint" if otlp_endpoint else "OTEL_EXPORTER_OTLP_ENDPOINT"
    endpoint = otlp_endpoint or env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None
    if endpoint:
        endpoint = _check_endpoint(endpoint, endpoint_source)
    default_traces = "otlp" if endpoint else "none"
    default_metrics = "otlp" if endpoint else "prometheus"
    traces = _choose("OTEL_TRACES_EXPORTER" if traces_exporter is None else "traces_exporter",
                     traces_exporter if traces_exporter is not None
                     else env.get("OTEL_TRACES_EXPORTER", default_traces), TRACES_EXPORTERS)
    metrics_ = _choose("OTEL_METRICS_EXPORTER" if metrics_exporter is None else "metrics_exporter",
                       metrics_exporter if metrics_exporter is not None
                       else env.get("OTEL_METRICS_EXPORTER", default_metrics), METRICS_EXPORTERS)
    if ("otlp" in traces or "otlp" in metrics_) and not endpoint:
        endpoint = "http://localhost:4317"
    protocol = (otlp_protocol or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
                or ("http/protobuf" if endpoint and endpoint.endswith(":4318") else "grpc"))
    if protocol not in PROTOCOLS:
        raise ConfigurationError(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: expected grpc or http/protobuf")
    raw_port = prometheus_port if prometheus_port is not None else env.get("OTEL_EXPORTER_PROMETHEUS_PORT")
    try:
        port = DEFAULT_PROMETHEUS_PORT if raw_port in (None, "") else int(raw_port)
        if not 0 <= port <= 65535:
            raise ValueError
    except ValueError:
        raise ConfigurationError(f"OTEL_EXPORTER_PROMETHEUS_PORT={raw_port!r}: expected a port number "
                                 "0..65535") from None
    interval = env.get("OTEL_METRIC_EXPORT_INTERVAL", "10000")
    try:
        interval_ms = int(interval)
        if interval_ms <= 0:  # the SDK's periodic reader would raise a bare ValueError in configure()
            raise ValueError
    except ValueError:
        raise ConfigurationError(f"OTEL_METRIC_EXPORT_INTERVAL={interval!r}: expected milliseconds > 0") from None
    return Settings(
        service_name=service_name or env.get("OTEL_SERVICE_NAME") or "agent-otel-app",
        traces_exporters=traces,
        metrics_exporters=metrics_,
        otlp_endpoint=endpoint,
        otlp_protocol=protocol,
        prometheus_host=prometheus_host or env.get("OTEL_EXPORTER_PROMETHEUS_HOST") or DEFAULT_PROMETHEUS_HOST,
        prometheus_port=port,
        metric_export_interval_ms=interval_ms,
    )


def histogram_views() -> list[View]:
    """Explicit buckets for every histogram of the contract (the SDK default is for ms)."""
    return [
        View(instrument_name=spec.name,
             aggregation=ExplicitBucketHistogramAggregation(boundaries=list(spec.buckets or ())))
        for spec in semconv.INSTRUMENTS
        if spec.kind is semconv.Kind.HISTOGRAM
    ]


def metric_views() -> list[View]:
    """The views configure() installs: contract buckets, plus the process metric renames in semconv."""
    renames = [View(instrument_name=old, name=new) for old, new in semconv.PROCESS_RENAMES.items()]
    return [*histogram_views(), *renames]


def _otlp_url(settings: Settings, signal: str) -> str:
    assert settings.otlp_endpoint
    if settings.otlp_protocol == "grpc":
        return settings.otlp_endpoint
    return f"{settings.otlp_endpoint}/v1/{signal}"


# --------------------------------------------------------------------------------------------------
# Export loss: counted, never raised, and a shutdown that keeps its timeout
# --------------------------------------------------------------------------------------------------


class ExportLossError(RuntimeError):
    """Telemetry that did not reach its destination (reported on the errors counter, never raised)."""


class LossReporter:
    """Where the export wrappers count losses: the errors counter of the configuration that built
    them. Set once its runtime exists and cleared by ``shutdown()``, so that a late failure on a
    stuck exporter thread is logged but never counted into a later configuration."""

    def __init__(self) -> None:
        self.counter: Any = None

    def __call__(self, stage: str, exc: BaseException, count: int = 1) -> None:
        counter = self.counter
        report_error(stage, exc, count if counter is not None else 0, counter)


def _shutdown_within(target: Any, timeout_millis: float, **kwargs: Any) -> Any:
    """``target.shutdown()``, passing the timeout when its signature takes one."""
    try:
        takes_timeout = "timeout_millis" in inspect.signature(target.shutdown).parameters
    except (TypeError, ValueError):
        takes_timeout = False
    return target.shutdown(timeout_millis=timeout_millis, **kwargs) if takes_timeout else target.shutdown()


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

    def export(self, spans: Any) -> SpanExportResult:
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

    def on_end(self, span: Any) -> None:
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
            return super().shutdown()
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

    def export(self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
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


def _span_exporter(name: str, settings: Settings) -> SpanExporter:
    if name == "console":
        return ConsoleSpanExporter()
    if settings.otlp_protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    return OTLPSpanExporter(endpoint=_otlp_url(settings, "traces"))


def _metric_reader(name: str, settings: Settings, telemetry: Telemetry) -> MetricReader:
    if name == "prometheus":
        return _prometheus_reader(settings, telemetry)
    if name == "console":
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

        exporter: Any = ConsoleMetricExporter()
    elif settings.otlp_protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        exporter = OTLPMetricExporter(endpoint=_otlp_url(settings, "metrics"))
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        exporter = OTLPMetricExporter(endpoint=_otlp_url(settings, "metrics"))
    return PeriodicExportingMetricReader(ReportingMetricExporter(exporter, telemetry.loss),
                                         export_interval_millis=settings.metric_export_interval_ms)


def _prometheus_reader(settings: Settings, telemetry: Telemetry) -> MetricReader:
    from prometheus_client import CollectorRegistry

    from .exposition import AgentOtelPrometheusReader, serve_metrics

    # Our own registry: /metrics carries the contract, target_info and process metrics, not
    # prometheus_client's default python_* collectors. It is rendered by the reader itself.
    registry = CollectorRegistry(auto_describe=True)
    reader = AgentOtelPrometheusReader()
    try:
        server, _thread = serve_metrics(reader, registry, settings.prometheus_port, addr=settings.prometheus_host)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot serve /metrics on {settings.prometheus_host}:{settings.prometheus_port} ({exc.strerror or exc}); "
            "the port is probably in use: set OTEL_EXPORTER_PROMETHEUS_PORT to a free port"
        ) from None
    telemetry.prometheus_server = server
    registry.register(reader.collector)
    return reader


def _is_sdk(provider: Any, sdk_type: type) -> bool:
    return isinstance(provider, sdk_type)


def configure(
    *,
    service_name: str | None = None,
    traces_exporter: str | tuple[str, ...] | None = None,
    metrics_exporter: str | tuple[str, ...] | None = None,
    otlp_endpoint: str | None = None,
    otlp_protocol: str | None = None,
    prometheus_host: str | None = None,
    prometheus_port: int | None = None,
    tracer_provider: Any = None,
    meter_provider: Any = None,
    instrument_threads: bool = True,
    instrument_processes: bool = True,
    system_metrics: bool = True,
    set_global: bool = True,
) -> Telemetry:
    """Set up tracing and metrics for agent-otel. Safe to call twice (the second call is a no-op).

    ``tracer_provider``/``meter_provider`` use the given SDK providers instead of building ours
    (as does a host that installed SDK providers globally before calling this).
    """
    global _telemetry
    with _lock:
        if _telemetry is not None:
            logger.debug("agent-otel: configure() called again; keeping the first configuration")
            return _telemetry
        if not enabled_from_env():
            build_runtime(enabled=False)
            _telemetry = Telemetry(settings=None, tracer_provider=None, meter_provider=None)
            return _telemetry

        settings = resolve_settings(service_name, traces_exporter, metrics_exporter, otlp_endpoint,
                                    otlp_protocol, prometheus_host, prometheus_port)
        telemetry = Telemetry(settings=settings, tracer_provider=None, meter_provider=None)
        resource = Resource.create({"service.name": settings.service_name}).merge(
            OTELResourceDetector().detect())

        host_tp = tracer_provider or trace.get_tracer_provider()
        if _is_sdk(host_tp, TracerProvider):
            if tracer_provider is None:
                logger.info("agent-otel: using the SDK TracerProvider the host program installed")
            tp = host_tp
        else:
            tp = TracerProvider(resource=resource, shutdown_on_exit=False)  # see _register_exit_hook
            for name in settings.traces_exporters:
                processor = ReportingBatchSpanProcessor(_span_exporter(name, settings), telemetry.loss)
                telemetry.span_processors.append(processor)
                tp.add_span_processor(processor)
            telemetry.owns_tracer_provider = True
        tp.add_span_processor(JobIdSpanProcessor())
        tp.add_span_processor(HashingSpanProcessor())

        host_mp = meter_provider or metrics.get_meter_provider()
        if _is_sdk(host_mp, MeterProvider):
            if meter_provider is None:
                logger.info("agent-otel: using the SDK MeterProvider the host program installed")
            mp = host_mp
        else:
            readers = [_metric_reader(name, settings, telemetry) for name in settings.metrics_exporters]
            mp = MeterProvider(resource=resource, metric_readers=readers, views=metric_views(),
                               shutdown_on_exit=False)
            telemetry.owns_meter_provider = True

        if set_global:
            if telemetry.owns_tracer_provider:
                trace.set_tracer_provider(tp)
            if telemetry.owns_meter_provider:
                metrics.set_meter_provider(mp)
        telemetry.tracer_provider = tp
        telemetry.meter_provider = mp
        telemetry.loss.counter = build_runtime(tp, mp, enabled=True).errors

        parent = context_from_environment()
        if parent is not None:  # a parent process handed us its trace and job (TRACEPARENT/BAGGAGE)
            telemetry.environment_token = otel_context.attach(parent)
        if instrument_threads:
            from opentelemetry.instrumentation.threading import ThreadingInstrumentor

            instrumentor = ThreadingInstrumentor()
            if not instrumentor.is_instrumented_by_opentelemetry:
                instrumentor.instrument()
                telemetry.instrumentors.append(instrumentor)
        if instrument_processes:
            instrument_process_carriers()
        if system_metrics:
            from opentelemetry.instrumentation.system_metrics import SystemMetricsInstrumentor

            system = SystemMetricsInstrumentor(config=semconv.PROCESS_METRICS_CONFIG)
            if not system.is_instrumented_by_opentelemetry:
                system.instrument(meter_provider=mp)
                telemetry.instrumentors.append(system)
        if telemetry.owns_tracer_provider or telemetry.owns_meter_provider:
            _register_exit_hook()
        _telemetry = telemetry
        return telemetry


_exit_hook_registered = False


def _register_exit_hook() -> None:
    """Shut down what we own at interpreter exit, within ``shutdown()``'s timeout. The SDK's own
    exit hooks (turned off on the providers we build) wait 30 s per provider for a collector that
    never answers, so a host that never called ``shutdown()`` would hang on exit."""
    global _exit_hook_registered
    if not _exit_hook_registered:
        _exit_hook_registered = True
        atexit.register(shutdown)


def current_telemetry() -> Telemetry | None:
    return _telemetry


def _start(what: str, step: Any) -> threading.Thread | None:
    """Run ``step`` on a daemon thread (None: it ran here, threads being unavailable); a failure is
    logged, never raised."""

    def run() -> None:
        try:
            step()
        except Exception as exc:
            logger.warning("agent-otel: shutdown of the %s failed (%s: %s)", what, type(exc).__name__, exc)

    thread = threading.Thread(target=run, name=f"agent-otel-shutdown-{what.replace(' ', '-')}", daemon=True)
    try:
        thread.start()
    except RuntimeError:  # e.g. no new threads at interpreter shutdown: run it here
        run()
        return None
    return thread


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
    global _telemetry
    with _lock:
        telemetry, _telemetry = _telemetry, None
        if telemetry is None:
            return
        deadline = time.monotonic() + timeout_millis / 1000

        def remaining_millis() -> float:
            return max(1.0, (deadline - time.monotonic()) * 1000)  # never 0: the SDK refuses to start

        def wait(thread: threading.Thread | None) -> None:
            if thread is not None:
                thread.join(max(0.0, deadline - time.monotonic()))

        server = telemetry.prometheus_server
        # serve_forever() notices a shutdown request within 0.5 s: let that overlap with the flush
        stop_server = _start("metrics server", server.shutdown) if server is not None else None
        for instrumentor in telemetry.instrumentors:
            try:
                instrumentor.uninstrument()
            except Exception:
                logger.debug("agent-otel: uninstrument failed", exc_info=True)
        uninstrument_process_carriers()
        # TracerProvider.shutdown() takes no timeout: shut our batch processors down first, in time.
        steps: list[tuple[str, Any]] = [("span processor", lambda p=p: p.shutdown(remaining_millis()))
                                        for p in telemetry.span_processors]
        for provider, owned in ((telemetry.tracer_provider, telemetry.owns_tracer_provider),
                                (telemetry.meter_provider, telemetry.owns_meter_provider)):
            if provider is None:
                continue
            if not owned:
                steps.append(("flush", lambda p=provider: p.force_flush(int(remaining_millis()))))
            elif isinstance(provider, MeterProvider):
                steps.append(("meter provider", lambda p=provider: p.shutdown(timeout_millis=remaining_millis())))
            else:
                steps.append(("tracer provider", provider.shutdown))
        for what, step in steps:
            wait(_start(what, step))
        telemetry.loss.counter = None
        if server is not None:
            wait(stop_server)
            server.server_close()  # if serve_forever() is still polling, it stops at its next poll
        if telemetry.environment_token is not None:
            try:
                otel_context.detach(telemetry.environment_token)  # type: ignore[arg-type]
            except Exception:
                pass
        reset_runtime()
