"""What the wrappers need at call time: tracer, instruments, and the enabled switch.

Built lazily from the global providers on first use, so a host that set up its own SDK (and never
calls ``configure()``) still gets telemetry; ``configure()`` rebuilds it from the providers it chose.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Any, cast

from opentelemetry import metrics, trace
from opentelemetry.metrics import Counter, Histogram
from opentelemetry.metrics import _Gauge as Gauge
from opentelemetry.sdk.environment_variables import OTEL_SDK_DISABLED

from agent_otel import semconv
from agent_otel._environment import AGENT_OTEL_ENABLED, env_flag, semconv_opt_in
from agent_otel.errors import ConfigurationError
from agent_otel.semconv import InstrumentT
from agent_otel.version import __version__


def enabled_from_env() -> bool:
    return not sdk_disabled() and env_flag(AGENT_OTEL_ENABLED, True)


def sdk_disabled() -> bool:
    """``OTEL_SDK_DISABLED`` read as the SDK reads it, and as the specification has a boolean: true is ``true`` in
    any case, anything else is false. (Read as our own switches, ``1`` turned agent-otel off while the SDK went on
    exporting the program's spans, and ``maybe`` raised where the SDK runs.)"""
    return os.environ.get(OTEL_SDK_DISABLED, "").strip().lower() == "true"


def previous_names_from_env() -> bool:
    """Whether the previous metric and attribute names are emitted too (``semconv.STABILITY_OPT_IN_DUP``)."""
    return semconv.STABILITY_OPT_IN_DUP in semconv_opt_in()


def create_instrument(meter: metrics.Meter, spec: semconv.Instrument[InstrumentT]) -> InstrumentT:
    """Create one contract instrument; histograms carry their buckets as advisory too, so they are
    right even on a host MeterProvider we could not add views to."""
    created: Counter | Histogram | Gauge
    if spec.kind is semconv.Kind.COUNTER:
        created = meter.create_counter(spec.name, unit=spec.unit, description=spec.description)
    elif spec.kind is semconv.Kind.GAUGE:
        created = meter.create_gauge(spec.name, unit=spec.unit, description=spec.description)
    else:
        created = meter.create_histogram(
            spec.name, unit=spec.unit, description=spec.description,
            explicit_bucket_boundaries_advisory=list(spec.buckets or ()),
        )
    return cast(InstrumentT, created)  # the row's kind decides its type parameter (see semconv.Instrument)


@dataclass
class Runtime:
    enabled: bool
    tracer: trace.Tracer
    meter: metrics.Meter
    #: Also emit the previous layout (semconv.PREVIOUS_LAYOUT), for a transition.
    previous_names: bool = False
    #: name -> instrument; values typed Any so that a lookup is a plain dict read (it is on every call)
    instruments: dict[str, Any] = field(default_factory=dict)
    #: With ``previous_names``: current instrument name -> the previous instrument, and the previous token
    #: usage histogram (``previous_token_usage``); empty and None otherwise, so recording sites test one value.
    previous: dict[str, Any] = field(default_factory=dict)
    previous_token_usage: Any = None
    #: The provider ``meter`` came from (see :func:`build_runtime`).
    meter_provider: metrics.MeterProvider | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for spec in semconv.INSTRUMENTS:
            self.instruments[spec.name] = create_instrument(self.meter, spec)
        self.errors = self[semconv.INSTRUMENTATION_ERRORS]
        if self.previous_names:
            for name, spec in semconv.PREVIOUS_INSTRUMENTS.items():
                self.previous[name] = create_instrument(self.meter, spec)
            self.previous_token_usage = create_instrument(self.meter, semconv.PREVIOUS_CLIENT_TOKEN_USAGE)

    def __getitem__(self, spec: semconv.Instrument[InstrumentT]) -> InstrumentT:
        instrument: InstrumentT = self.instruments[spec.name]  # created from this very row in __post_init__
        return instrument


_runtime: Runtime | None = None
_lock = threading.Lock()


def build_runtime(
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
    enabled: bool | None = None,
    previous_names: bool | None = None,
) -> Runtime:
    """Install a fresh runtime over the given (or global) providers. Over the meter provider of the runtime it
    replaces, it keeps that runtime's meter, which the provider would give again (the SDK keeps one per scope)
    unless it was shut down since (a host's, before ``agent_otel.shutdown()``): the SDK then warns on the
    program's stderr."""
    global _runtime
    tp = tracer_provider or trace.get_tracer_provider()
    mp = meter_provider or metrics.get_meter_provider()
    replaced = _runtime
    malformed: ConfigurationError | None = None
    if enabled is None:
        try:
            enabled = enabled_from_env()
        except ConfigurationError as exc:
            # built by a wrapped call with no configure() first, which must never raise: on, as when unset
            # (configure() raises it), and counted once this runtime can count it
            enabled, malformed = True, exc
    rt = Runtime(
        enabled=enabled,
        tracer=tp.get_tracer(semconv.SCOPE_NAME, __version__),
        meter=replaced.meter if replaced is not None and replaced.meter_provider is mp else mp.get_meter(
            semconv.SCOPE_NAME, __version__),
        previous_names=previous_names_from_env() if previous_names is None else previous_names,
        meter_provider=mp,
    )
    with _lock:
        _runtime = rt
    if malformed is not None:
        from agent_otel._engine.self_telemetry import report_error  # it counts on this module's runtime

        report_error("runtime.environment", malformed)
    return rt


def forget_runtime() -> None:
    """The next call builds the runtime from the global providers again, as in a program that never called
    ``configure()``: after a capture of ``agent_otel.testing``, whose providers are shut down."""
    global _runtime
    with _lock:
        _runtime = None


def runtime() -> Runtime:
    rt = _runtime
    if rt is None:
        with _lock:
            rt = _runtime
        if rt is None:
            rt = build_runtime()
    return rt

