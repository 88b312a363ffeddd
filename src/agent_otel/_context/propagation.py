"""Text carriers of the trace context, the job and the conversation: HTTP headers, the environment,
pickled process calls.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from contextvars import ContextVar, Token
from typing import Any, Generic, NamedTuple, ParamSpec, TypeVar

from opentelemetry import baggage, propagate
from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.trace import Span, get_current_span, set_span_in_context

from agent_otel._context.baggage_header import merged_baggage
from agent_otel._context.continued import continued_here
from agent_otel._context.job import AGENT_KEY, AGENT_VERSION_KEY
from agent_otel._context.phase import PHASE_KEY, PhaseState
from agent_otel._context.stamping import stamped_ids
from agent_otel._engine.self_telemetry import report_error
from agent_otel._engine.tracebacks import leave_out_callers_frame

P = ParamSpec("P")
R = TypeVar("R")

#: Environment variables of the subprocess carrier (upper-case, as other OTel tools use them).
ENV_CARRIER_KEYS = {"traceparent": "TRACEPARENT", "tracestate": "TRACESTATE", "baggage": "BAGGAGE"}


def inject(carrier: MutableMapping[str, str], ctx: Context | None = None) -> MutableMapping[str, str]:
    """Write the trace context and baggage (with the job and conversation ids) into ``carrier``, e.g. HTTP headers."""
    propagate.inject(carrier, context=ctx)
    return carrier


def extract(carrier: Mapping[str, str], ctx: Context | None = None) -> Context:
    """Read trace context and baggage (with the job and conversation ids) from ``carrier``, e.g. incoming headers,
    onto ``ctx`` (default: an empty context, as OpenTelemetry's extract has it, with the current span in place of the
    carrier's when it already continues it, as a server instrumentation's does). A carrier with neither (or with no
    trace nor baggage after all) brings nothing, and ``ctx`` (default: the current context) is the answer: a request
    with no caller to continue leaves its handler in its job and span. So does a carrier that is no mapping of names
    (e.g. None), counted, never raised into the handler reading it."""
    lowered: dict[str, str] = {}
    try:
        for key, value in carrier.items():  # a header sent twice (a proxy's own baggage line) is one list, as HTTP
            name = key.lower()  # has it: by its name alone, the last line hid the first, and its job id
            lowered[name] = f"{lowered[name]},{value}" if name in lowered else value
    except (AttributeError, TypeError) as exc:
        report_error("propagation.extract", exc)
        return ctx if ctx is not None else otel_context.get_current()
    if lowered.keys().isdisjoint(propagate.get_global_textmap().fields):  # no caller to continue: the block keeps
        return ctx if ctx is not None else otel_context.get_current()  # its job and span (a request from curl)
    # onto an empty context given, not None: the baggage propagator reads None as the current one (first in
    # OTEL_PROPAGATORS, the server's own job, baggage and suppression came through)
    extracted = propagate.extract(lowered, context=ctx if ctx is not None else Context())
    theirs = get_current_span(extracted)
    if not theirs.get_span_context().is_valid and not baggage.get_all(extracted):
        # no caller to continue after all (a ``tracestate`` alone, a malformed ``traceparent``): as with neither
        return ctx if ctx is not None else otel_context.get_current()
    if ctx is None:
        here = get_current_span()
        if _continues(here, theirs):
            # a span here continues the caller's trace already (a server instrumentation's, started from these
            # headers): the block runs under it, not beside it as another child of the caller's span; the rest is
            # the carrier's (this process's own job, baggage and suppression are not the caller's)
            return set_span_in_context(here, extracted)
    return extracted


def _continues(here: Span, caller: Span) -> bool:
    """Whether ``here`` (the current span) is a span of this process that continues ``caller`` (a carrier's span):
    started under it (a server instrumentation's span), or under a span of this process below such a span (a
    framework's span between that one and the handler: A2A's request handler, a router's). Not one with another remote
    parent, nor one above a caller of this process (a carrier handed between two steps of one request: see continued),
    nor one a forked worker inherited (started before the fork, in its parent's trace)."""
    theirs, ours = caller.get_span_context(), here.get_span_context()
    if not (theirs.is_valid and ours.is_valid and not ours.is_remote and ours.trace_id == theirs.trace_id):
        return False
    parent = getattr(here, "parent", None)  # the SDK's spans know it
    if parent is None:
        return False
    if getattr(parent, "span_id", None) == theirs.span_id:
        return True
    started = getattr(here, "start_time", None)
    return getattr(parent, "is_remote", True) is False and isinstance(started, int) and started > _forked_at_ns and (
        continued_here(theirs, started))


#: When this process was forked (wall clock ns, as a span's start time; 0 if it was not): a span started before was
#: the parent's.
_forked_at_ns = 0


def _note_fork() -> None:
    global _forked_at_ns
    _forked_at_ns = time.time_ns()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_note_fork)


@contextlib.contextmanager
def attached(carrier: Mapping[str, str]) -> Iterator[Context]:
    """Run a block in the context a carrier brings (e.g. an HTTP handler continuing the caller's job). A block that
    ends in another ``contextvars.Context`` than it began in (a streamed body's generator whose steps each run in a
    fresh copy: Starlette's ``iterate_in_threadpool``) leaves the context where it attached it, as ``job()`` does:
    detached there, OpenTelemetry printed "Failed to detach context" and a traceback on the program's stderr."""
    attachment = attach_here(extract(carrier))
    try:
        yield attachment.context
    finally:
        detach_here(attachment)


class Attachment(NamedTuple):
    """A context made current, and where: see :func:`attach_here`."""

    context: Context
    token: Token[Context]
    #: Set beside it, in the same Context: only that Context can reset it (see :func:`detach_here`).
    here: Token[None]


#: Marks the ``contextvars.Context`` a context was attached in (see :func:`attach_here`).
_ATTACHED_HERE: ContextVar[None] = ContextVar("agent_otel_attached_here", default=None)


def attach_here(ctx: Context) -> Attachment:
    """Make ``ctx`` current, noting in which ``contextvars.Context``."""
    return Attachment(ctx, otel_context.attach(ctx), _ATTACHED_HERE.set(None))


def detach_here(attachment: Attachment) -> None:
    """Detach ``attachment`` if this runs in the Context it was attached in; else leave it there. Detached in another
    (an asyncio task's copy, a pool thread's), OpenTelemetry printed "Failed to detach context" and a traceback on
    the program's stderr."""
    try:
        _ATTACHED_HERE.reset(attachment.here)
    except (ValueError, RuntimeError):  # another Context's (a copy inherits the value, not the token), or taken already
        return
    otel_context.detach(attachment.token)


def release_environment(attachment: Attachment) -> None:
    """Take back the context ``configure()`` made current from the parent process's (:func:`context_from_environment`)
    where that leaves the program's context as it would be: in the Context it was attached in (``shutdown()``, or
    the exit flush of a SIGTERM, may run in an asyncio task) and with nothing of the program's current above it."""
    if otel_context.get_current() is attachment.context:
        detach_here(attachment)


def subprocess_env(env: Mapping[str, str] | None = None, ctx: Context | None = None) -> dict[str, str]:
    """A copy of ``env`` (default: ``os.environ``) with ``TRACEPARENT``/``TRACESTATE``/``BAGGAGE``: the trace context
    replaces the one ``env`` holds (a ``TRACESTATE`` without one of ours goes with the trace it belonged to), and a
    ``BAGGAGE`` of ``env`` keeps its members, the job's and conversation's replaced. Names given as bytes (an
    environment POSIX Python takes) are kept as bytes."""
    if env is not None and not isinstance(env, Mapping):
        raise TypeError(f"subprocess_env(): env must map variable names to values, not {type(env).__name__}")
    result: dict[Any, Any] = dict(os.environ if env is None else env)
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=ctx)
    if not carrier:
        return result
    in_bytes = bool(result) and all(type(name) is bytes for name in result)
    for key, env_key in ENV_CARRIER_KEYS.items():
        value: str | bytes | None = carrier.get(key)
        if value is None and not (key == "tracestate" and "traceparent" in carrier):
            continue  # the program's own, if any, as it gave it (a TRACESTATE goes with the trace it belongs to)
        given = [name for name in (env_key, os.fsencode(env_key)) if name in result]
        program = result[given[0]] if given else None
        for name in given:
            del result[name]
        if key == "baggage" and program and isinstance(value, str):
            text = os.fsdecode(program) if isinstance(program, bytes) else str(program)
            value = merged_baggage(text, value) or text  # (unchanged, or too long with ours: the program's as is)
        if value is None:
            continue
        name = given[0] if given else (os.fsencode(env_key) if in_bytes else env_key)
        result[name] = os.fsencode(value) if type(name) is bytes and not isinstance(value, bytes) else value
    return result


def child_environment(env: object) -> object:
    """What a patched ``subprocess.Popen``, ``os.exec*`` or ``os.posix_spawn`` passes as the child's environment:
    :func:`subprocess_env` of ``env``, or ``env`` itself, as the program gave it, when it is no mapping (python then
    takes or refuses it as without agent-otel) or when that fails (counted, never raised)."""
    if env is not None and not isinstance(env, Mapping):
        return env
    try:
        return subprocess_env(env)
    except Exception as exc:
        report_error("autoinstrument.subprocess_env", exc)
        return env


def context_from_environment(env: Mapping[str, str] | None = None) -> Context | None:
    """The context a parent process passed in ``TRACEPARENT``/``BAGGAGE``, or None. A ``BAGGAGE`` member that is no
    UTF-8 (its bytes held as surrogates) made the propagator raise, and the program never ran: it is left out,
    counted, and the rest (the trace, the job's members) read; None when nothing can be."""
    env = os.environ if env is None else env
    carrier = {key: env[env_key] for key, env_key in ENV_CARRIER_KEYS.items() if env.get(env_key)}
    if not carrier:
        return None
    try:
        return propagate.extract(carrier)
    except Exception as exc:
        report_error("propagation.environment", exc)
    if "baggage" in carrier:
        carrier["baggage"] = ",".join(member for member in carrier["baggage"].split(",") if _encodes(member))
    try:
        return propagate.extract(carrier)
    except Exception:  # counted above
        return None


def _encodes(text: str) -> bool:
    try:
        text.encode()
    except UnicodeError:
        return False
    return True


def _has_context_to_carry() -> bool:
    """A span, a job or a conversation to carry."""
    return get_current_span().get_span_context().is_valid or stamped_ids() is not None


class CarriedCall(Generic[P, R]):
    """A picklable callable that runs ``func`` in the context serialized at submit time.

    Used for ``ProcessPoolExecutor.submit`` and ``multiprocessing.Process`` targets, with spawn
    as well as fork: the child unpickles it (importing this module) and attaches the carrier.
    """

    __slots__ = ("carrier", "func")

    def __init__(self, func: Callable[P, R], carrier: dict[str, str]) -> None:
        self.func = func
        self.carrier = carrier

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        token = otel_context.attach(carried_context(self.carrier))
        try:
            return self.func(*args, **kwargs)
        except BaseException as error:  # the child's traceback (a pool's RemoteTraceback) is the program's own
            leave_out_callers_frame(error)
            raise
        finally:
            otel_context.detach(token)

    def __getstate__(self) -> tuple[Callable[P, R], dict[str, str]]:
        return self.func, self.carrier

    def __setstate__(self, state: tuple[Callable[P, R], dict[str, str]]) -> None:
        self.func, self.carrier = state


class CarriedRun(CarriedCall[P, R]):
    """A ``multiprocessing.Process`` subclass's own ``run`` carried (see ``carriers``): set on its object while
    ``start()`` hands it to the child, where it takes itself off the object again before it runs, so that the
    child's object has the attributes the program gave it (``vars(self)``), as the parent's has after ``start()``."""

    __slots__ = ()

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        owner = getattr(self.func, "__self__", None)
        if owner is not None and vars(owner).get("run") is self:
            del vars(owner)["run"]
        try:
            return super().__call__(*args, **kwargs)
        except BaseException as error:
            leave_out_callers_frame(error)
            raise


def carry(func: Callable[P, R], always: bool = False) -> Callable[P, R]:
    """``func`` bound to the current trace context, job and conversation, for running in another process.
    ``always`` binds it even to an empty context (pool workers are reused across submits)."""
    if isinstance(func, CarriedCall) or not (always or _has_context_to_carry()):
        return func
    return CarriedCall(func, process_carrier())


def process_carrier() -> dict[str, str]:
    """The current trace context, job, conversation, agent and phase, as text another process of the program reads
    back with :func:`carried_context`."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    ctx = otel_context.get_current()
    for key, name in _AGENT_ENTRIES:
        value = ctx.get(key)
        if type(value) is str:
            carrier[name] = value
    phase = ctx.get(PHASE_KEY)
    if isinstance(phase, PhaseState):
        carrier[_PHASE_ENTRY] = phase.name
    return carrier


def carried_context(carrier: Mapping[str, str]) -> Context:
    """The context a :func:`process_carrier` brings, on an empty base: a forked worker must not keep whatever
    context it was forked in."""
    ctx = propagate.extract(carrier, context=Context())
    entries: dict[str, object] = {key: carrier[name] for key, name in _AGENT_ENTRIES if name in carrier}
    phase = carrier.get(_PHASE_ENTRY)
    if phase is not None:  # its name, not its count: steps are numbered where the phase runs
        entries[PHASE_KEY] = PhaseState(phase, None)
    return Context({**ctx, **entries}) if entries else ctx


#: The agent a call runs under (its bounded name and version), carried to another process with the call: the tool
#: and model calls it makes there are that agent's (``gen_ai.agent.name``, cost by agent), as in a thread. Not in
#: the W3C headers: for this process's own children only.
_AGENT_ENTRIES = ((AGENT_KEY, "agent-otel-agent"), (AGENT_VERSION_KEY, "agent-otel-agent-version"))
#: The phase a call runs in (its bounded name), carried the same way: the calls it makes there are in the phase.
_PHASE_ENTRY = "agent-otel-phase"

