"""What ``configure()`` resolves from its arguments and the standard ``OTEL_*`` environment.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from opentelemetry.environment_variables import OTEL_METRICS_EXPORTER, OTEL_TRACES_EXPORTER
from opentelemetry.sdk.environment_variables import (
    OTEL_ATTRIBUTE_COUNT_LIMIT,
    OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT,
    OTEL_BSP_MAX_EXPORT_BATCH_SIZE,
    OTEL_BSP_MAX_QUEUE_SIZE,
    OTEL_BSP_SCHEDULE_DELAY,
    OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT,
    OTEL_EXPORTER_OTLP_ENDPOINT,
    OTEL_EXPORTER_OTLP_METRICS_ENDPOINT,
    OTEL_EXPORTER_OTLP_METRICS_PROTOCOL,
    OTEL_EXPORTER_OTLP_PROTOCOL,
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
    OTEL_EXPORTER_PROMETHEUS_HOST,
    OTEL_EXPORTER_PROMETHEUS_PORT,
    OTEL_LINK_ATTRIBUTE_COUNT_LIMIT,
    OTEL_METRIC_EXPORT_INTERVAL,
    OTEL_METRICS_EXEMPLAR_FILTER,
    OTEL_RESOURCE_ATTRIBUTES,
    OTEL_SERVICE_NAME,
    OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT,
    OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT,
    OTEL_SPAN_EVENT_COUNT_LIMIT,
    OTEL_SPAN_LINK_COUNT_LIMIT,
    OTEL_TRACES_SAMPLER,
    OTEL_TRACES_SAMPLER_ARG,
)
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased, Sampler, TraceIdRatioBased

from agent_otel.errors import ConfigurationError

TRACES_EXPORTERS = ("otlp", "console", "none")
METRICS_EXPORTERS = ("prometheus", "otlp", "console", "none")
PROTOCOLS = ("grpc", "http/protobuf")
DEFAULT_PROMETHEUS_HOST = "127.0.0.1"
DEFAULT_PROMETHEUS_PORT = 9464
#: The per-signal variables of the OTLP exporter spec: (endpoint, protocol) of each signal, over the generic ones.
_SIGNAL_VARIABLES = {"traces": (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_PROTOCOL),
                     "metrics": (OTEL_EXPORTER_OTLP_METRICS_ENDPOINT, OTEL_EXPORTER_OTLP_METRICS_PROTOCOL)}


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
    #: The service was named (configure()'s argument, ``OTEL_SERVICE_NAME``), not given agent-otel's default.
    service_named: bool = False
    #: Signal -> (URL given to its OTLP exporter, protocol): a signal's own variables win over the generic
    #: ones, and its endpoint is used as it is (the spec's rule: no ``/v1/<signal>`` appended).
    otlp_signals: dict[str, tuple[str, str]] = field(default_factory=dict)


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip().lower() for part in value.split(",") if part.strip())


def exporter_names(value: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The exporters an argument or variable names (``"otlp,prometheus"``, ``("otlp",)``), lower case, in order."""
    return _split(value) if isinstance(value, str) else tuple(v.lower() for v in value)


def _choose(name: str, value: str | tuple[str, ...], allowed: tuple[str, ...]) -> tuple[str, ...]:
    chosen = exporter_names(value)
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


def check_resource_attributes(raw: str | None) -> None:
    """``OTEL_RESOURCE_ATTRIBUTES`` is comma-separated ``key=value`` pairs. An item without ``=`` is an error
    here: the SDK drops it with a warning, printed through Python's last-resort handler on the host's stderr,
    once per resource it builds (twice per configure())."""
    if not raw:
        return
    for item in raw.split(","):
        if "=" not in item or not item.partition("=")[0].strip():  # (an empty key: the SDK drops it, warning)
            problem = "has an empty key" if "=" in item else "is not key=value"
            raise ConfigurationError(f"{OTEL_RESOURCE_ATTRIBUTES}={raw!r}: {item.strip()!r} {problem}; "
                                     "expected comma-separated key=value pairs (values URL-encoded)")


#: The span limits the SDK reads from the environment when a tracer provider is built (each a non-negative integer;
#: empty: no limit). OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT is read as the SDK is imported too: a malformed one fails that.
_SPAN_LIMITS = (OTEL_ATTRIBUTE_COUNT_LIMIT, OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT, OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT,
                OTEL_LINK_ATTRIBUTE_COUNT_LIMIT, OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT,
                OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT, OTEL_SPAN_EVENT_COUNT_LIMIT, OTEL_SPAN_LINK_COUNT_LIMIT)

#: What ``OTEL_METRICS_EXEMPLAR_FILTER`` may say (the SDK raises a bare ValueError for anything else).
_EXEMPLAR_FILTERS = ("always_on", "always_off", "trace_based")


def _check_sdk_choices(env: dict[str, str], *, exports_traces: bool) -> None:
    """Values the SDK refuses with a bare ValueError in the middle of configure(): one ConfigurationError naming
    the variables, before anything is built."""
    exemplar_filter = env.get(OTEL_METRICS_EXEMPLAR_FILTER, "").strip()
    if exemplar_filter and exemplar_filter not in _EXEMPLAR_FILTERS:
        raise ConfigurationError(f"{OTEL_METRICS_EXEMPLAR_FILTER}={exemplar_filter!r}: expected one of "
                                 f"{', '.join(_EXEMPLAR_FILTERS)}")
    for name in _SPAN_LIMITS:  # read by the SDK as a tracer provider is built: a bare ValueError out of configure()
        raw = env.get(name, "").strip()
        if not raw:  # (no limit, to the SDK)
            continue
        try:
            valid = int(raw) >= 0
        except ValueError:
            valid = False
        if not valid:
            raise ConfigurationError(f"{name}={raw!r}: expected a non-negative integer (empty: no limit)")
    if not exports_traces:  # no batch span processor is built
        return
    values = {}
    for name, default in ((OTEL_BSP_MAX_EXPORT_BATCH_SIZE, 512), (OTEL_BSP_MAX_QUEUE_SIZE, 2048),
                          (OTEL_BSP_SCHEDULE_DELAY, 5000)):
        try:  # a value that is no integer: the SDK's default, with its warning, as the SDK has it
            values[name] = int(env.get(name, "").strip() or default)
        except ValueError:
            values[name] = default
        if values[name] <= 0:
            raise ConfigurationError(f"{name}={values[name]}: expected a positive integer")
    batch, queue = values[OTEL_BSP_MAX_EXPORT_BATCH_SIZE], values[OTEL_BSP_MAX_QUEUE_SIZE]
    if batch > queue:
        raise ConfigurationError(f"{OTEL_BSP_MAX_EXPORT_BATCH_SIZE}={batch} is above {OTEL_BSP_MAX_QUEUE_SIZE}={queue}:"
                                 " a batch is taken from the queue")


#: What a sampler that drops spans becomes in the sampler :func:`traces_sampler` builds: itself, or (configure()'s, with
#: the span bridge on) a sampler that records the GenAI spans it drops (see _bridge/sampling.py).
SamplerWrap = Callable[[Sampler], Sampler]


def _as_is(sampler: Sampler) -> Sampler:
    return sampler


def _parent_based(root: Sampler, dropping: SamplerWrap) -> Sampler:
    """``ParentBased(root)``, its delegates for an unsampled parent given to ``dropping``: the SDK's defaults
    otherwise, so that a span of a sampled trace, most spans, goes through no wrapper."""
    return ParentBased(root, remote_parent_not_sampled=dropping(ALWAYS_OFF),
                       local_parent_not_sampled=dropping(ALWAYS_OFF))


#: What ``OTEL_TRACES_SAMPLER`` may name (the SDK's samplers), from the sampling ratio its argument gives and what a
#: sampler that drops spans becomes.
_SAMPLERS: dict[str, Callable[[float, SamplerWrap], Sampler]] = {
    "always_on": lambda ratio, dropping: ALWAYS_ON,
    "always_off": lambda ratio, dropping: dropping(ALWAYS_OFF),
    "traceidratio": lambda ratio, dropping: dropping(TraceIdRatioBased(ratio)),
    "parentbased_always_on": lambda ratio, dropping: _parent_based(ALWAYS_ON, dropping),
    "parentbased_always_off": lambda ratio, dropping: _parent_based(dropping(ALWAYS_OFF), dropping),
    "parentbased_traceidratio": lambda ratio, dropping: _parent_based(dropping(TraceIdRatioBased(ratio)), dropping),
}


def traces_sampler(env: Mapping[str, str], dropping: SamplerWrap = _as_is) -> Sampler:
    """The sampler the environment names, for a TracerProvider configure() builds, each of its parts that drops spans
    given to ``dropping`` (an empty variable is an unset one:
    the default, ``parentbased_always_on``); a name or ratio the SDK cannot use is one ConfigurationError naming the
    variable. The SDK's own reading warns on the host's stderr for an empty or unknown name and an argument that is
    no number, then samples everything. A host's own provider keeps its sampler, whatever the variable says (the
    distro's entry-point samplers included)."""
    name = env.get(OTEL_TRACES_SAMPLER, "").strip().lower() or "parentbased_always_on"
    make = _SAMPLERS.get(name)
    if make is None:
        raise ConfigurationError(f"{OTEL_TRACES_SAMPLER}={env[OTEL_TRACES_SAMPLER]!r}: expected one of "
                                 f"{', '.join(_SAMPLERS)}")
    raw = env.get(OTEL_TRACES_SAMPLER_ARG, "").strip()
    try:
        ratio = float(raw) if raw and name.endswith("traceidratio") else 1.0
        if not 0.0 <= ratio <= 1.0:
            raise ValueError
    except ValueError:
        raise ConfigurationError(f"{OTEL_TRACES_SAMPLER_ARG}={raw!r}: expected a sampling ratio from 0 to 1 "
                                 f"(for {OTEL_TRACES_SAMPLER}={name})") from None
    return make(ratio, dropping)


def resolve_settings(
    service_name: str | None = None,
    traces_exporter: str | tuple[str, ...] | None = None,
    metrics_exporter: str | tuple[str, ...] | None = None,
    otlp_endpoint: str | None = None,
    otlp_protocol: str | None = None,
    prometheus_host: str | None = None,
    prometheus_port: int | None = None,
    env: dict[str, str] | None = None,
    *,
    host_traces: bool = False,
    host_metrics: bool = False,
) -> Settings:
    """The settings of what configure() builds; ``host_traces``/``host_metrics``: that signal's provider is the
    host's, whose exporter variable is then not ours to read (nor to refuse)."""
    env = dict(os.environ) if env is None else env
    endpoint_source = "otlp_endpoint" if otlp_endpoint else OTEL_EXPORTER_OTLP_ENDPOINT
    endpoint = otlp_endpoint or env.get(OTEL_EXPORTER_OTLP_ENDPOINT) or None
    if endpoint:
        endpoint = _check_endpoint(endpoint, endpoint_source)
    # a signal's own endpoint (the argument, for every signal, wins over the environment, as arguments do)
    own = {signal: _check_endpoint(value, variable) for signal, (variable, _) in _SIGNAL_VARIABLES.items()
           if not otlp_endpoint and (value := env.get(variable))}
    default_traces = "otlp" if endpoint or "traces" in own else "none"
    default_metrics = "otlp" if endpoint or "metrics" in own else "prometheus"
    # an empty variable is an unset one, as the OpenTelemetry configuration spec has it
    traces = () if host_traces and traces_exporter is None else _choose(
        OTEL_TRACES_EXPORTER if traces_exporter is None else "traces_exporter",
        traces_exporter if traces_exporter is not None
        else env.get(OTEL_TRACES_EXPORTER, "").strip() or default_traces, TRACES_EXPORTERS)
    metrics_ = () if host_metrics and metrics_exporter is None else _choose(
        OTEL_METRICS_EXPORTER if metrics_exporter is None else "metrics_exporter",
        metrics_exporter if metrics_exporter is not None
        else env.get(OTEL_METRICS_EXPORTER, "").strip() or default_metrics, METRICS_EXPORTERS)
    if ("otlp" in traces or "otlp" in metrics_) and not endpoint and len(own) < len(_SIGNAL_VARIABLES):
        endpoint = "http://localhost:4317"
    protocol = _protocol(otlp_protocol, OTEL_EXPORTER_OTLP_PROTOCOL, env, endpoint)
    signals = {}
    for signal, chosen in (("traces", traces), ("metrics", metrics_)):
        if "otlp" not in chosen:
            continue
        protocol_variable = _SIGNAL_VARIABLES[signal][1]
        if signal in own:
            signals[signal] = (own[signal], _protocol(otlp_protocol, protocol_variable, env, own[signal],
                                                      fallback=env.get(OTEL_EXPORTER_OTLP_PROTOCOL)))
        else:
            assert endpoint is not None
            signal_protocol = _protocol(otlp_protocol, protocol_variable, env, endpoint, fallback=protocol)
            signals[signal] = (endpoint if signal_protocol == "grpc" else f"{endpoint}/v1/{signal}", signal_protocol)
    raw_port = prometheus_port if prometheus_port is not None else env.get(OTEL_EXPORTER_PROMETHEUS_PORT)
    try:
        if isinstance(raw_port, bool) or not isinstance(raw_port, int | str | None):  # True is no port 1, 0.9 no 0
            raise ValueError
        port = DEFAULT_PROMETHEUS_PORT if raw_port in (None, "") else int(raw_port)
        if not 0 <= port <= 65535:
            raise ValueError
    except ValueError:
        source = OTEL_EXPORTER_PROMETHEUS_PORT if prometheus_port is None else "prometheus_port"
        raise ConfigurationError(f"{source}={raw_port!r}: expected a port number 0..65535") from None
    check_resource_attributes(env.get(OTEL_RESOURCE_ATTRIBUTES))
    interval = env.get(OTEL_METRIC_EXPORT_INTERVAL, "").strip() or "10000"
    try:
        interval_ms = int(interval)
        if interval_ms <= 0:  # the SDK's periodic reader would raise a bare ValueError in configure()
            raise ValueError
    except ValueError:
        raise ConfigurationError(
            f"{OTEL_METRIC_EXPORT_INTERVAL}={interval!r}: expected a whole number of milliseconds > 0") from None
    _check_sdk_choices(env, exports_traces=bool(traces))  # each traces exporter, console too, gets a batch processor
    return Settings(
        service_name=service_name or env.get(OTEL_SERVICE_NAME) or "agent-otel-app",
        service_named=bool(service_name or env.get(OTEL_SERVICE_NAME)),
        traces_exporters=traces,
        metrics_exporters=metrics_,
        otlp_endpoint=endpoint,
        otlp_protocol=protocol,
        prometheus_host=prometheus_host or env.get(OTEL_EXPORTER_PROMETHEUS_HOST) or DEFAULT_PROMETHEUS_HOST,
        prometheus_port=port,
        metric_export_interval_ms=interval_ms,
        otlp_signals=signals,
    )


def _protocol(argument: str | None, variable: str, env: dict[str, str], endpoint: str | None,
              fallback: str | None = None) -> str:
    """The OTLP protocol: the argument, else ``variable``, else ``fallback``, else http/protobuf for an endpoint on
    the OTLP/HTTP port 4318 and grpc otherwise."""
    chosen = argument or env.get(variable) or fallback
    source = "otlp_protocol" if argument else variable
    if chosen is None:
        port = urlsplit(endpoint).port if endpoint else None
        return "http/protobuf" if port == 4318 else "grpc"
    if chosen not in PROTOCOLS:
        raise ConfigurationError(f"{source}={chosen!r}: expected grpc or http/protobuf")
    return chosen
