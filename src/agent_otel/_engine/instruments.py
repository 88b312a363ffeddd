"""What the wrappers need at call time: tracer, instruments, and the enabled switch.

Built lazily from the global providers on first use, so a host that set up its own SDK (and never
calls ``configure()``) still gets telemetry; ``configure()`` rebuilds it from the providers it chose.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, cast

from opentelemetry import metrics, trace
from opentelemetry.metrics import Counter, Histogram
from opentelemetry.metrics import _Gauge as Gauge
from opentelemetry.sdk.environment_variables import OTEL_SDK_DISABLED

from agent_otel import semconv
from agent_otel._environment import AGENT_OTEL_ENABLED, env_flag
from agent_otel.semconv import InstrumentT
from agent_otel.version import __version__


def enabled_from_env() -> bool:
    return not env_flag(OTEL_SDK_DISABLED, False) and env_flag(AGENT_OTEL_ENABLED, True)


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
    #: name -> instrument; values typed Any so that a lookup is a plain dict read (it is on every call)
    instruments: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for spec in semconv.INSTRUMENTS:
            self.instruments[spec.name] = create_instrument(self.meter, spec)
        self.errors = self[semconv.INSTRUMENTATION_ERRORS]

    def __getitem__(self, spec: semconv.Instrument[InstrumentT]) -> InstrumentT:
        instrument: InstrumentT = self.instruments[spec.name]  # created from this very row in __post_init__
        return instrument


_runtime: Runtime | None = None
_lock = threading.Lock()


def build_runtime(
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
    enabled: bool | None = None,
) -> Runtime:
    """Install a fresh runtime over the given (or global) providers."""
    global _runtime
    tp = tracer_provider or trace.get_tracer_provider()
    mp = meter_provider or metrics.get_meter_provider()
    rt = Runtime(
        enabled=enabled_from_env() if enabled is None else enabled,
        tracer=tp.get_tracer(semconv.SCOPE_NAME, __version__),
        meter=mp.get_meter(semconv.SCOPE_NAME, __version__),
    )
    with _lock:
        _runtime = rt
    return rt


def runtime() -> Runtime:
    rt = _runtime
    if rt is None:
        with _lock:
            rt = _runtime
        if rt is None:
            rt = build_runtime()
    return rt


def reset_runtime() -> None:
    """Forget the runtime (tests, shutdown)."""
    global _runtime
    with _lock:
        _runtime = None
