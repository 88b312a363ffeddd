"""The job id in OTel context and W3C baggage, and the carriers that move it.

A job's state lives in the OTel context (so everything that copies the context — asyncio tasks,
the threading instrumentation, our process and subprocess carriers — shares it) and its id also
in W3C baggage (so it survives process and service boundaries as text). A span processor stamps
``job.id`` on every span started under a job, whichever library starts it. The id is never put on
a metric.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
from collections.abc import Iterator, Mapping, MutableMapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from typing import Any

import wrapt
from opentelemetry import baggage, propagate
from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import get_current_span

from . import semconv
from .policy import SCRUBBED_KEY

JOB_KEY = otel_context.create_key("agent_otel.job")
_get_value = otel_context.get_value
AGENT_KEY = otel_context.create_key("agent_otel.agent")

#: Environment variables of the subprocess carrier (upper-case, as other OTel tools use them).
ENV_CARRIER_KEYS = {"traceparent": "TRACEPARENT", "tracestate": "TRACESTATE", "baggage": "BAGGAGE"}


@dataclass(eq=False)
class JobState:
    """One running job. Shared by reference by everything that inherits the context, so roll-ups
    are correct when the job fans out to threads and tasks."""

    id: str
    type: str
    agent_calls: int = 0
    provider_calls: int = 0
    tool_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **deltas: float) -> None:
        values = self.__dict__  # the counters are plain fields: no getattr/setattr per delta
        with self._lock:
            for name, delta in deltas.items():
                values[name] += delta

    def rollup_attributes(self) -> dict[str, Any]:
        with self._lock:
            return {
                semconv.JOB_ROLLUP_AGENT_CALLS: self.agent_calls,
                semconv.JOB_ROLLUP_PROVIDER_CALLS: self.provider_calls,
                semconv.JOB_ROLLUP_TOOL_CALLS: self.tool_calls,
                semconv.JOB_ROLLUP_INPUT_TOKENS: self.input_tokens,
                semconv.JOB_ROLLUP_OUTPUT_TOKENS: self.output_tokens,
                semconv.JOB_ROLLUP_COST: round(self.cost, 10),
            }


def current_job(ctx: Context | None = None) -> JobState | None:
    """The job running in this context, if it was started in this process."""
    return otel_context.get_value(JOB_KEY, ctx)  # type: ignore[return-value]


def current_job_id(ctx: Context | None = None) -> str | None:
    """The id of the job this code runs under: from this process's job, else from W3C baggage."""
    state = otel_context.get_value(JOB_KEY, ctx)
    if state is not None:
        return state.id  # type: ignore[attr-defined]
    return _baggage_job_id(ctx)


def _baggage_job_id(ctx: Context | None) -> str | None:
    value = baggage.get_baggage(semconv.BAGGAGE_JOB_ID, ctx)
    return str(value) if value is not None else None


def context_with_job(state: JobState, ctx: Context | None = None) -> Context:
    ctx = otel_context.set_value(JOB_KEY, state, ctx)
    ctx = baggage.set_baggage(semconv.BAGGAGE_JOB_ID, state.id, ctx)
    return baggage.set_baggage(semconv.BAGGAGE_JOB_TYPE, state.type, ctx)


class JobIdSpanProcessor(SpanProcessor):
    """Stamps ``job.id`` on every span started under a job, from any library."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if parent_context is not None and _get_value(SCRUBBED_KEY, parent_context):
            return  # one of agent-otel's own spans: it started with the job id among its attributes
        state = _get_value(JOB_KEY, parent_context)  # current_job_id(), inlined: this runs for every span
        job_id = state.id if state is not None else _baggage_job_id(parent_context)
        if job_id is not None:
            span.set_attribute(semconv.JOB_ID, job_id)

    def on_end(self, span: ReadableSpan) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


# --------------------------------------------------------------------------------------------------
# Text carriers: HTTP headers, environment, pickled process calls
# --------------------------------------------------------------------------------------------------


def inject(carrier: MutableMapping[str, str], ctx: Context | None = None) -> MutableMapping[str, str]:
    """Write the trace context and baggage (with the job id) into ``carrier``, e.g. HTTP headers."""
    propagate.inject(carrier, context=ctx)
    return carrier


def extract(carrier: Mapping[str, str], ctx: Context | None = None) -> Context:
    """Read trace context and baggage (with the job id) from ``carrier``, e.g. incoming headers."""
    lowered = {key.lower(): value for key, value in carrier.items()}
    return propagate.extract(lowered, context=ctx)


@contextlib.contextmanager
def attached(carrier: Mapping[str, str]) -> Iterator[Context]:
    """Run a block in the context a carrier brings (e.g. an HTTP handler continuing the caller's job)."""
    ctx = extract(carrier)
    token = otel_context.attach(ctx)
    try:
        yield ctx
    finally:
        otel_context.detach(token)


def subprocess_env(env: Mapping[str, str] | None = None, ctx: Context | None = None) -> dict[str, str]:
    """A copy of ``env`` (default: ``os.environ``) with ``TRACEPARENT``/``TRACESTATE``/``BAGGAGE``."""
    result = dict(os.environ if env is None else env)
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=ctx)
    for key, env_key in ENV_CARRIER_KEYS.items():
        if key in carrier:
            result[env_key] = carrier[key]
    return result


def context_from_environment(env: Mapping[str, str] | None = None) -> Context | None:
    """The context a parent process passed in ``TRACEPARENT``/``BAGGAGE``, or None."""
    env = os.environ if env is None else env
    carrier = {key: env[env_key] for key, env_key in ENV_CARRIER_KEYS.items() if env.get(env_key)}
    if not carrier:
        return None
    return propagate.extract(carrier)


def _has_context_to_carry() -> bool:
    return get_current_span().get_span_context().is_valid or current_job_id() is not None


class CarriedCall:
    """A picklable callable that runs ``func`` in the context serialized at submit time.

    Used for ``ProcessPoolExecutor.submit`` and ``multiprocessing.Process`` targets, with spawn
    as well as fork: the child unpickles it (importing this module) and attaches the carrier.
    """

    __slots__ = ("carrier", "func")

    def __init__(self, func: Any, carrier: dict[str, str]) -> None:
        self.func = func
        self.carrier = carrier

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # An empty base: a forked worker must not keep whatever context it was forked in.
        token = otel_context.attach(propagate.extract(self.carrier, context=Context()))
        try:
            return self.func(*args, **kwargs)
        finally:
            otel_context.detach(token)

    def __getstate__(self) -> tuple[Any, dict[str, str]]:
        return self.func, self.carrier

    def __setstate__(self, state: tuple[Any, dict[str, str]]) -> None:
        self.func, self.carrier = state


def carry(func: Any, always: bool = False) -> Any:
    """``func`` bound to the current trace context and job, for running in another process.
    ``always`` binds it even to an empty context (pool workers are reused across submits)."""
    if isinstance(func, CarriedCall) or not (always or _has_context_to_carry()):
        return func
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return CarriedCall(func, carrier)


def _wrap_pool_submit(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    if args:
        args = (carry(args[0], always=True), *args[1:])
    elif "fn" in kwargs:
        kwargs["fn"] = carry(kwargs["fn"], always=True)
    return wrapped(*args, **kwargs)


#: Worker processes of pools serve many submits: each submit carries its own context instead.
_POOL_WORKER_MODULES = ("concurrent.futures.process", "multiprocessing.pool")


def _wrap_process_start(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    target = getattr(instance, "_target", None)
    if target is not None and getattr(target, "__module__", None) not in _POOL_WORKER_MODULES:
        instance._target = carry(target)
    return wrapped(*args, **kwargs)


def _wrap_popen_init(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    if _has_context_to_carry():
        # Popen(args, bufsize, executable, stdin, stdout, stderr, preexec_fn, close_fds, shell, cwd, env)
        if len(args) > 10:
            args = (*args[:10], subprocess_env(args[10]), *args[11:])
        else:
            kwargs["env"] = subprocess_env(kwargs.get("env"))
    return wrapped(*args, **kwargs)


_PATCHES = (
    (ProcessPoolExecutor, "submit", _wrap_pool_submit),
    (BaseProcess, "start", _wrap_process_start),
    (subprocess.Popen, "__init__", _wrap_popen_init),
)


def instrument_process_carriers() -> None:
    """Carry the context into ProcessPoolExecutor jobs, multiprocessing children and subprocesses.
    Idempotent."""
    for owner, name, wrapper in _PATCHES:
        current = owner.__dict__[name]
        if not getattr(current, "_self_agent_otel_carrier", False):
            patched = wrapt.FunctionWrapper(current, wrapper)
            patched._self_agent_otel_carrier = True  # type: ignore[attr-defined]
            setattr(owner, name, patched)


def uninstrument_process_carriers() -> None:
    for owner, name, _ in _PATCHES:
        current = owner.__dict__[name]
        if getattr(current, "_self_agent_otel_carrier", False):
            setattr(owner, name, current.__wrapped__)
