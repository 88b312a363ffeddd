"""What the wrappers need at call time: tracer, instruments, and the enabled switch.

Built lazily from the global providers on first use, so a host that set up its own SDK (and never
calls ``configure()``) still gets telemetry; ``configure()`` rebuilds it from the providers it chose.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import metrics, trace

from agent_otel import semconv
from agent_otel.errors import ConfigurationError
from agent_otel.version import __version__

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_flag(name: str, default: bool) -> bool:
    """Read a boolean env var; an unparseable value is a configuration error naming the variable."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigurationError(f"environment variable {name}={raw!r}: expected true or false")


def enabled_from_env() -> bool:
    return not env_flag("OTEL_SDK_DISABLED", False) and env_flag("AGENT_OTEL_ENABLED", True)


def create_instrument(meter: metrics.Meter, spec: semconv.Instrument) -> Any:
    """Create one contract instrument; histograms carry their buckets as advisory too, so they are
    right even on a host MeterProvider we could not add views to."""
    if spec.kind is semconv.Kind.COUNTER:
        return meter.create_counter(spec.name, unit=spec.unit, description=spec.description)
    if spec.kind is semconv.Kind.GAUGE:
        return meter.create_gauge(spec.name, unit=spec.unit, description=spec.description)
    return meter.create_histogram(
        spec.name, unit=spec.unit, description=spec.description,
        explicit_bucket_boundaries_advisory=list(spec.buckets or ()),
    )


@dataclass
class Runtime:
    enabled: bool
    tracer: trace.Tracer
    meter: metrics.Meter
    instruments: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for spec in semconv.INSTRUMENTS:
            self.instruments[spec.name] = create_instrument(self.meter, spec)
        self.errors = self.instruments[semconv.INSTRUMENTATION_ERRORS.name]

    def __getitem__(self, spec: semconv.Instrument) -> Any:
        return self.instruments[spec.name]


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
