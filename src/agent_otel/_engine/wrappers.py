"""One wrapper engine for every kind of call.

Agents, providers, tools, evolution runs and jobs differ only in what they record; how a call is
timed does not change with the kind. A kind plugs in a :class:`Handler` whose ``begin()`` starts an
:class:`Invocation` (a span, its context, a clock); the engine runs the call in that context and
ends the invocation exactly once, whatever shape the callable has:

* sync functions, including ones that return a coroutine, a future, a generator or (if the invocation asks
  for it) a stream object: timed until that result completes (another awaitable is the program's object, and
  the call ends as it returns);
* coroutine functions; generator and async-generator functions, where the span covers the whole
  iteration and ``send``/``throw``/``close``, an early ``break`` and a dropped generator each end
  it once, with the outcome that happened.

The host never sees the instrumentation: return values, exceptions (same object; its traceback has the
wrapper's frame too, as under any decorator), yielded items and generator protocol are passed through
untouched; failures of the instrumentation
are counted and logged by :func:`agent_otel._engine.self_telemetry.report_error`. When disabled, a wrapper makes no
OpenTelemetry call at all.
"""

from __future__ import annotations

import asyncio
import collections.abc
import concurrent.futures
import contextlib
import copy
import dis
import functools
import inspect
import operator
import os
import pkgutil
import signal
import sys
import threading
import time
import types
import weakref
from collections.abc import (
    AsyncGenerator,
    Awaitable,
    Callable,
    Coroutine,
    Generator,
    Iterator,
)
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from contextvars import ContextVar, Token
from enum import Enum
from types import TracebackType
from typing import Any, Generic, Self, SupportsIndex, TypeAlias, TypeGuard, TypeVar, cast

import wrapt
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, Span, Status, StatusCode

from agent_otel import semconv
from agent_otel._engine import collection
from agent_otel._engine import inside as _inside
from agent_otel._engine import instruments as _instruments
from agent_otel._engine.control_flow import is_control_flow
from agent_otel._engine.inside import INSIDE, SPANS_OPEN, Entry, leave, note_inside, running
from agent_otel._engine.instruments import runtime
from agent_otel._engine.own_work import OWN_WORK, own_work
from agent_otel._engine.self_telemetry import report_error
from agent_otel._engine.threads import ExitThread
from agent_otel._engine.tracebacks import leave_out_callers_frame

#: pytest leaves this module's frames out of its reports (as it does its own), and so out of a failing test's: the
#: call's traceback there reads as without agent-otel, with ``-l`` too (whose locals were agent-otel's). IPython (a
#: notebook) reads a frame's own locals, in its tracebacks and its debugger: the frames a call's traceback passes
#: through set it too. A program's own printing of a traceback still shows the wrapper's frame (see the README).
__tracebackhide__ = True

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")
Y = TypeVar("Y")

#: The host call's positional and keyword arguments: whatever the program passes.
Args: TypeAlias = tuple[Any, ...]
Kwargs: TypeAlias = dict[str, Any]
#: A wrapt wrapper function: ``(wrapped, instance, args, kwargs) -> result``.
WrapperFunction: TypeAlias = Callable[[Callable[..., Any], Any, Args, Kwargs], Any]

_attach = otel_context.attach
_detach = otel_context.detach
_get_current = otel_context.get_current
#: What ``opentelemetry.instrumentation.utils.suppress_instrumentation()`` sets (the key, and the older plain name),
#: as the SDK's exporters do around each export: a wrapped call made under it runs as if it were not wrapped, as
#: the OpenTelemetry instrumentations' calls do (a target on ``requests`` traced the exporter's own requests, each
#: export making the span that the next one sent).
_SUPPRESSED = otel_context._SUPPRESS_INSTRUMENTATION_KEY
_SUPPRESSED_PLAIN = "suppress_instrumentation"
_now_ns = time.perf_counter_ns


def _begin_recording(handler: Handler, wrapped: Callable[..., Any], instance: object, args: Args, kwargs: Kwargs,
                     current: Context) -> Invocation | None:
    """``handler.begin()``, or None (the call runs unrecorded) inside agent-otel's recording, or any other work of its
    own (see own_work). The handler itself, not its bound method: every wrapped call begins here."""
    if OWN_WORK.active:
        return None
    OWN_WORK.active = True
    try:
        return handler.begin(wrapped, instance, args, kwargs, current)
    finally:
        OWN_WORK.active = False


class End(Enum):
    """How a call ended."""

    RETURNED = "returned"
    RAISED = "raised"
    CLOSED = "closed"  # a stream the consumer closed, broke out of or dropped before exhaustion


class Invocation:
    """One instrumented call. Kinds subclass it and override :meth:`record` (and maybe
    :meth:`on_chunk`, :meth:`wants_stream`); the engine guarantees :meth:`end` runs once."""

    # iteration_step: set (True) only for a ``__next__``/``__anext__`` call whose result completes later (see
    # _end_raised); in_block: set only for a ``with`` block's (see InvocationScope._enter). Never read but with
    # getattr(), so that no call pays for setting them
    __slots__ = ("__weakref__", "_ended", "context", "first_chunk_ns", "in_block", "iteration_step", "span", "stage",
                 "start_ns")
    iteration_step: bool
    in_block: tuple[InvocationScope, _ScopeEntry] | None

    def __init__(self, span: Span, context: Context, stage: str) -> None:
        self.span = span
        self.context = context
        self.stage = stage
        self.start_ns = _now_ns()
        self.first_chunk_ns: int | None = None
        self._ended = False
        if _when_idle is not None:
            _running.add(self)

    # -- hooks for kinds ----------------------------------------------------------------------
    def record(self, how: End, value: object, error: BaseException | None, duration_s: float) -> None:
        """Record the kind's span attributes and metrics. Runs once, before the span ends."""

    def on_chunk(self, item: object) -> None:
        """Called for every item a stream yields (after the first-chunk time is taken)."""

    def wants_stream(self, result: object) -> bool:
        """Whether a returned object, neither a generator nor a value of :data:`PLAIN_TYPES`, is a stream to be
        timed until exhausted."""
        return False

    #: Whether the kind overrides :meth:`on_chunk` (set for each subclass): if not, a generator's item only
    #: takes the first-chunk time, without calling :meth:`chunk`.
    custom_chunk = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.custom_chunk = cls.on_chunk is not Invocation.on_chunk

    def mark_left_by(self, flow: BaseException) -> None:
        """A framework's control flow (a pause) left the call: its views for extractors have no result to read (see
        KindHandler.option)."""
        call = getattr(self, "call", None)  # the kinds' view, when the kind made one
        if call is not None and hasattr(call, "left_by"):
            call.left_by = flow

    def on_stream_exit(self, stream: object) -> bool:
        """A stream manager's block is left before the stream it handed out was read to its end through
        us (an SDK helper also reads it through iterators of its own, e.g. ``text_stream``), or the block of a
        manager that handed out something else (a response) is left: read what it kept of the response, and
        say whether it was read to the end."""
        return False

    def stream_started(self, stream: object) -> bool:
        """Whether the stream a manager handed out shows that its response began, read by the SDK's own iterators
        (``text_stream``, ``get_final_message()``) and not through us, which saw no chunk."""
        return False

    def on_stream_close(self, stream: object) -> bool:
        """A stream the call returned is closed (``close()``): read what it kept of the response, and say whether it
        was read to the end (the call then returned, rather than closed early)."""
        return False

    # -- engine side ----------------------------------------------------------------------------
    def chunk(self, item: object) -> None:
        if self.first_chunk_ns is None:
            self.first_chunk_ns = _now_ns()
        try:
            self.on_chunk(item)
        except Exception as exc:
            report_error(self.stage + ".chunk", exc)

    @property
    def ended(self) -> bool:
        """Whether the call was recorded (what is noted on it since is lost)."""
        return self._ended

    @property
    def time_to_first_chunk_s(self) -> float | None:
        if self.first_chunk_ns is None:
            return None
        return (self.first_chunk_ns - self.start_ns) / 1e9

    def first_chunk_at(self, wall_ns: int) -> None:
        """The first chunk came at ``wall_ns`` (the wall clock, as a span's times are: another library's span of a
        streamed request inside the call said so, the call reading no stream itself), unless one came already (a
        retry's request came later) or the call has ended."""
        if self.first_chunk_ns is None and not self._ended:
            self.first_chunk_ns = self.start_ns + max(wall_ns - (time.time_ns() - (_now_ns() - self.start_ns)), 0)

    def end(self, how: End, value: object = None, error: BaseException | None = None) -> None:
        if self._ended:
            return
        was = OWN_WORK.active  # (an end may run inside other work of ours: a dropped generator's, as memory is freed)
        OWN_WORK.active = True
        try:
            self._end(how, value, error)
        finally:
            OWN_WORK.active = was

    def _end(self, how: End, value: object, error: BaseException | None) -> None:
        self._ended = True
        if self.start_ns < _forked_at_ns:  # started before this process was forked: its parent's, which records it
            if _when_idle is not None:
                _one_less_running(self)
            return
        duration_s = (_now_ns() - self.start_ns) / 1e9
        flow: BaseException | None = None  # a framework's control flow the call was left by (see control_flow)
        if error is not None:
            if isinstance(error, _NOT_FAILURES):
                how, error = _as_ending(how, error)
            elif is_control_flow(error):
                self.mark_left_by(error)
                how, error, flow = End.RETURNED, None, error
        # A signal's exception (Ctrl-C's KeyboardInterrupt, a handler's SystemExit) raised in our recording: the span
        # still ends, with the call's own outcome, as the metrics recorded it (it was left open for good, never
        # exported), and then the exception goes on, the same object, as it would have at the program's next step
        interrupted: BaseException | None = None
        try:
            self.record(how, value, error, duration_s)
        except Exception as exc:
            report_error(self.stage + ".record", exc)
        except BaseException as interrupt:
            interrupted = interrupt
        call = getattr(self, "call", None)  # the kind's view for extractors, when it made one
        if call is not None:
            call.release()
        span = self.span
        if type(span) is NonRecordingSpan:  # tracing off or sampled out: nothing to set, and end() does nothing
            if _when_idle is not None:
                _one_less_running(self)
            if interrupted is not None:
                raise interrupted
            return
        try:
            if error is not None or how is End.CLOSED:  # (a call that returned has nothing to mark: no call for it)
                _mark_outcome(span, how, error, True)
            elif flow is not None and span.is_recording():
                span.set_attribute(semconv.CONTROL_FLOW, type(flow).__name__)
            span.end()
        except Exception as exc:
            report_error(self.stage + ".end", exc)
        except BaseException:  # (the same, while the span ends: its outcome set again, without the exception's event,
            # unless the SDK's end() has begun, which warns at a second)
            if getattr(span, "end_time", None) is None:
                try:
                    _mark_outcome(span, how, error, False)
                    span.end()
                except Exception as exc:
                    report_error(self.stage + ".end", exc)
            if _when_idle is not None:
                _one_less_running(self)
            raise
        if _when_idle is not None:
            _one_less_running(self)
        if interrupted is not None:
            raise interrupted


#: Called once no call of ours runs in the process any more, in a process that ends with no exit hook (a Ray worker:
#: see ``_sdk.idle_flush``); None elsewhere, where each call pays one look at it as it begins and as it ends.
_when_idle: Callable[[], None] | None = None
#: The calls begun while :data:`_when_idle` is set and not ended (weakly: one the program drops unended goes).
_running: weakref.WeakSet[Invocation] = weakref.WeakSet()


def call_when_idle(hook: Callable[[], None] | None) -> None:
    """Call ``hook`` each time the last call of ours running in the process ends (None: stop). It must not raise."""
    global _when_idle
    _running.clear()
    _when_idle = hook


def _one_less_running(inv: Invocation) -> None:
    _running.discard(inv)
    hook = _when_idle
    if hook is not None and not _running:
        hook()


def _mark_outcome(span: Span, how: End, error: BaseException | None, with_event: bool) -> None:
    """A call's outcome on its span as it ends: its error (with the exception's event), or a stream closed early."""
    if span.is_recording():
        if error is not None:
            span.set_attribute(semconv.ERROR_TYPE, type(error).__name__)
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
            if with_event:
                span.record_exception(error)
        elif how is End.CLOSED:
            span.set_attribute(semconv.STREAM_CLOSED_EARLY, True)


#: The long-lived invocations in flight (jobs, agents, evolution runs, phases): what :func:`end_in_flight` ends
#: (innermost first, by their start) when a signal ends the process, at exit and when a test's capture ends. Other
#: tool and model calls, short and many, are not, but for those in :data:`_open`. A forked child starts with none:
#: its parent's are the parent's to end.
_in_flight: set[Invocation] = set()

#: The calls of any kind whose end waits for what they handed out (a generator, an async one, a stream, a future),
#: which the program may hold half-read for good: :func:`end_in_flight` ends them too. Held weakly: an invocation
#: goes with what the program holds (a generator dropped where its ``finally`` never runs, on a loop closed without
#: ``shutdown_asyncgens()``, kept one for ever when held strongly). A list, appended to (the cheapest: one per
#: call), whose references to invocations gone or ended are let go of as it grows (:func:`hold_open`).
_open: list[weakref.ref[Invocation]] = []
_pruning = threading.Lock()
_prune_at = 1024


@own_work()  # (see own_work: its lock is no call of the program's)
def _open_in_child() -> None:
    """A forked child starts with no call held open (its parent's are the parent's to end), and a pruning lock of its
    own: one a thread of the parent held as it forked stayed held there, and the list grew for ever. A call that
    started before the fork and ends in the child (a job whose block the child leaves, by ``sys.exit()`` or
    running on) is not recorded there: the parent records it, and the job counted twice."""
    global _pruning, _prune_at, _forked_at_ns
    _open.clear()
    _pruning, _prune_at = threading.Lock(), 1024
    _forked_at_ns = _now_ns()


#: When this process was forked (``perf_counter_ns``, a monotonic clock the whole system shares), in a forked child;
#: 0 in a process that was not. Compared with a call's start, which it has already: nothing stored per call.
_forked_at_ns = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_in_flight.clear)
    os.register_at_fork(after_in_child=_open_in_child)


def hold_open(inv: Invocation) -> None:
    """``inv`` ends with what it handed out, later: among the calls :func:`end_in_flight` ends."""
    _open.append(weakref.ref(inv))
    if len(_open) > _prune_at:
        _prune_open()


def _prune_open() -> None:
    """Keep the references of :data:`_open` to invocations still open; then let it grow to twice that. The ones
    appended meanwhile (by other threads) are past the part replaced, and stay."""
    global _prune_at
    if not _pruning.acquire(blocking=False):  # another thread prunes it
        return
    try:
        seen = len(_open)
        kept = [reference for reference in _open[:seen] if (inv := reference()) is not None and not inv._ended]
        _open[:seen] = kept
        _prune_at = max(1024, 2 * len(kept))
    finally:
        _pruning.release()


#: Called by the kinds :func:`end_in_flight` ends, when their invocation starts (the set's own method: no Python
#: frame per call)...
track: Callable[[Invocation], None] = _in_flight.add
#: ... and when it ends (first thing in their ``record()``).
untrack: Callable[[Invocation], None] = _in_flight.discard


class Terminated(BaseException):
    """What a tracked call still running when a signal ends the process ends with: a subclass named after the
    signal, so that ``error.type`` is ``SIGTERM`` (as it is ``KeyboardInterrupt`` for Ctrl-C, which raises)."""


#: The invocations the interpreter's exit found running and ended closed (see :func:`end_in_flight`): a kind whose
#: outcome is more than "it ended" tells them from a consumer's close (an evolution run on a daemon thread did not
#: succeed).
CUT_OFF_AT_EXIT: weakref.WeakSet[Invocation] = weakref.WeakSet()


def end_in_flight(signum: int | None, timeout_s: float, *, spans_closed: bool = False) -> None:
    """End the tracked invocations still running, innermost first, so that a flush next exports them: as
    raising :class:`Terminated` when a signal ends the process (outcome ``error``, ``error.type`` the signal's
    name); with ``signum`` None, when the interpreter exits with them open (a generator suspended half-read, a
    call on a daemon thread), as closed before the end, as a generator dropped unfinished ends (the interpreter
    closes it during its teardown, after the exit flush: its span was lost). On a thread waited for at most
    ``timeout_s``: the interrupted thread (a signal handler runs on the main thread) may hold a lock that
    recording takes (a job's roll-up lock), and then they stay open rather than hang the process. ``spans_closed``:
    the tracer provider was shut down (the program's own, by the program): their metrics are recorded, their spans,
    which it would drop with a warning each on the program's stderr, are not ended. Never raises."""
    global _ending
    try:
        held = [inv for inv in map(weakref.ref.__call__, list(_open)) if inv is not None and not inv._ended]
        running = sorted({*_in_flight.copy(), *held}, key=_started_at)
        if not running or (_ending is not None and _ending.is_alive()):  # an earlier end waits on a lock: so would
            return  # this one
        error = None if signum is None else type(signal.Signals(signum).name, (Terminated,),
                                                  {"__module__": __name__})()

        def end_all() -> None:
            for inv in reversed(running):
                if spans_closed and inv.span.is_recording():
                    inv.span = NonRecordingSpan(inv.span.get_span_context())
                # a block's: what it reported so far (set_outcome()), as when it raises
                block = getattr(inv, "in_block", None)
                reported = block[0]._returned(block[1][3]) if block is not None else None
                if error is None:
                    CUT_OFF_AT_EXIT.add(inv)
                    inv.end(End.CLOSED, reported)
                else:
                    inv.end(End.RAISED, reported, error=error)

        try:
            _ending = ExitThread(end_all, "agent-otel-end-in-flight")
        except RuntimeError:  # no new thread in the exit hooks (Python 3.12): here, as the exit flush then runs
            _ending = None
            end_all()
            return
        _ending.join(timeout_s)
    except Exception as exc:
        report_error("terminate.end_in_flight", exc)


#: The thread :func:`end_in_flight` last started.
_ending: ExitThread | None = None


def _started_at(inv: Invocation) -> int:
    return inv.start_ns


_RETURNED = End.RETURNED  # read per call: a module global is cheaper than the Enum's attribute

#: Exceptions that do not always mean the call failed (see :func:`_as_ending`).
_NOT_FAILURES = (SystemExit, GeneratorExit)


def _as_ending(how: End, error: BaseException) -> tuple[End, BaseException | None]:
    """``sys.exit(0)``/``sys.exit()`` is a success, as the exit status says; any other code is an error.
    GeneratorExit means the consumer closed a generator or coroutine: closed early, not failed.
    (KeyboardInterrupt and everything else stay errors, but a framework's control flow: see control_flow.)"""
    if isinstance(error, GeneratorExit):
        return End.CLOSED, None
    code = cast(SystemExit, error).code
    if code is None or (isinstance(code, int) and code == 0):
        return End.RETURNED, None
    return how, error


#: The iteration protocol's steps: a wrapped one (a configured ``__next__``) raises StopIteration or
#: StopAsyncIteration at the end of every loop.
_ITERATION_STEPS = frozenset({"__next__", "__anext__"})


def _end_raised(inv: Invocation, exc: BaseException, handler: Handler | None = None) -> None:
    """End ``inv`` by what the call raised: the end of an iteration out of a ``__next__``/``__anext__`` (the
    ``handler``'s, else the invocation's, see :attr:`Handler.iteration_step`) is no failure; StopIteration out of any
    other call is one, as ever."""
    if isinstance(exc, StopIteration | StopAsyncIteration) and (
            handler.iteration_step if handler is not None else getattr(inv, "iteration_step", False)):
        inv.end(End.RETURNED)
    else:
        inv.end(End.RAISED, error=exc)


class Handler:
    """What a kind plugs into the engine: how to start an invocation for a call."""

    #: The wrapped callable is an iteration step, ``__next__`` or ``__anext__`` (set when it is wrapped): the
    #: StopIteration or StopAsyncIteration it raises at the end of every loop is no failure.
    iteration_step = False

    stage = "wrapper"
    #: Set when the decorated function turns out to be defined in a class body (see :class:`_Decorated`):
    #: a call through the class, ``Class.method(obj, ...)``, then has ``obj`` as its instance. None until
    #: the first call when only the class can tell (see :meth:`decide_method`).
    method: bool | None = False
    #: False once the wrapper should pass calls through untouched (a configured target uninstrumented since,
    #: whose wrapper escaped into an alias). Read by the wrappers whose invocation begins later (coroutines,
    #: generators), so that they return the program's own object then; :meth:`begin` returning None is the
    #: same answer for the others.
    active = True
    #: False: a generator a sync function returns is the program's, as is, and the call ends when it returns (a
    #: provider's ``stream=False``). A generator function's own run is its call, whatever this says (above or below
    #: ``@contextmanager``, the ``with`` block).
    times_generators = True
    #: The function and its plain wrapper whose ``method`` the first call decides.
    _method_of: tuple[types.FunctionType, Callable[..., Any]] | None = None
    #: Attributes caching what calls computed once per policy (or per job): a policy and a job hold locks.
    _caches: tuple[str, ...] = ()

    def __getstate__(self) -> dict[str, Any]:
        """Pickled by value with the function it wraps (cloudpickle's, of a function or class of ``__main__``: dask,
        Ray, loky): without its caches (:attr:`_caches`), which a call fills with objects that hold locks."""
        state = dict(vars(self))
        for name in self._caches:
            if name in state:
                state[name] = None
        return state

    def decide_method(self, args: Args) -> bool:
        """A plain wrapper of a function in a class body whose first parameter is not named ``self`` or
        ``cls``: a method (its object first) if the class of its first argument (or that class itself)
        holds it as itself or as a class method, not if as a static method. Decided at the first call
        with an argument, when the class exists (a class inside a function included)."""
        if self._method_of is None or not args:
            return False
        func, wrapper = self._method_of
        first = args[0]
        # along the whole MRO: a subclass's override of the name (calling ``super().run(...)``) is held first
        for owner in (first if isinstance(first, type) else type(first)).__mro__:
            held = vars(owner).get(func.__name__)
            if held is wrapper or (isinstance(held, classmethod) and held.__func__ is wrapper):
                self.method = True
                return True
            if isinstance(held, staticmethod) and held.__func__ is wrapper:
                self.method = False
                return False
        return False  # not held by its first argument's classes: this call is a function's, the next ones undecided

    def begin(self, wrapped: Callable[..., Any], instance: object, args: Args, kwargs: Kwargs,
              parent: Context) -> Invocation | None:
        """The call's invocation; None runs this call as if it were not wrapped. ``parent``: the context the call
        is made in (the current one, which the wrapper has read already)."""
        raise NotImplementedError


#: A call whose invocation begins when its generator first runs: ``_begin``'s arguments.
_PendingCall: TypeAlias = tuple[Handler, Callable[..., Any], object, Args, Kwargs]


def _begin(handler: Handler, wrapped: Callable[..., Any], instance: object, args: Args,
           kwargs: Kwargs) -> Invocation | None:
    try:
        current = _get_current()  # instrumentation suppressed where the call runs (see _SUPPRESSED): no invocation
        return None if current.get(_SUPPRESSED) or current.get(_SUPPRESSED_PLAIN) else _begin_recording(
            handler, wrapped, instance, args, kwargs, current)
    except Exception as exc:
        report_error(handler.stage + ".begin", exc)
        return None


# --------------------------------------------------------------------------------------------------
# Shapes
# --------------------------------------------------------------------------------------------------


def _sync_wrapper(handler: Handler) -> WrapperFunction:
    def wrapper(wrapped: Callable[..., Any], instance: object, args: Args, kwargs: Kwargs) -> Any:
        __tracebackhide__ = True  # (see the module's: IPython reads a frame's own)
        rt = _instruments._runtime  # runtime() without its call, once it is built
        inv = None
        if (rt if rt is not None else runtime()).enabled:  # mirrors _begin() deliberately (inlined: hot path)
            try:
                current = _get_current()
                inv = None if current.get(_SUPPRESSED) or current.get(_SUPPRESSED_PLAIN) else _begin_recording(
                    handler, wrapped, instance, args, kwargs, current)
            except Exception as exc:
                report_error(handler.stage + ".begin", exc)
        if inv is None:
            try:
                return wrapped(*args, **kwargs)
            except RecursionError:  # at the stack's limit a call raises again: the program's error as it is
                raise
            except BaseException as exc:  # (the program's traceback, as it would be unwrapped: see tracebacks)
                leave_out_callers_frame(exc)
                raise
        token = _attach(inv.context)
        noted = note_inside(inv, current) if SPANS_OPEN else None  # (see inside: under another library's span)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            leave_out_callers_frame(exc)
            if noted is not None:
                leave(noted)
            _detach(token)
            _end_raised(inv, exc, handler)
            raise
        if noted is not None:
            leave(noted)
        _detach(token)
        if type(result) in PLAIN_TYPES:  # what _finish_result() does for it
            inv.end(_RETURNED, result)
            return result
        return _finish_result(inv, result, handler)

    return wrapper


def _note_iteration_step(handler: Handler, func: object) -> None:
    if getattr(func, "__name__", None) in _ITERATION_STEPS:
        handler.iteration_step = True


def _plain_sync_function(handler: Handler, func: types.FunctionType) -> types.FunctionType:
    """A decorated sync function as a plain function, as a ``functools.wraps`` decorator makes it: one
    frame per call. On Python 3.11 a call into wrapt's proxy also counts against the recursion limit
    (it has no vectorcall), so a recursive function decorated through it reached depth 331, against
    498 under a ``functools.wraps`` decorator. See :func:`instrument` for when it is used.

    Its globals are the program's function's (see :func:`_plain_call`): Prefect resolves a flow's string annotations
    (``from __future__ import annotations``) in the ``__globals__`` of the function it is given, and pydantic could
    not build the flow's parameter model from agent-otel's module."""
    made = _plain_call(handler, func)
    call = types.FunctionType(made.__code__, func.__globals__, made.__name__, made.__defaults__, made.__closure__)
    # inspect.signature() follows __wrapped__ (and evaluates string annotations in the function's module with
    # eval_str=True, as FastAPI asks); getfullargspec() shows (*args, **kwargs), as under any functools.wraps decorator:
    # a __signature__ of the function's would be copied by a functools.wraps decorator above this one, whose own
    # parameters getfullargspec() must show (Celery's argument check of a decorator that injects one refused calls)
    functools.update_wrapper(call, func)
    _note_iteration_step(handler, func)
    takes_self = _takes_self(func)
    if takes_self is None:
        handler.method, handler._method_of = None, (func, call)
    elif takes_self:
        handler.method = True  # ``obj.method(...)`` passes obj first, as ``Class.method(obj, ...)`` does
    _PLAIN_WRAPPERS[call] = weakref.ref(handler)  # the wrapper holds its handler; the registry holds neither
    return call


#: The plain-function wrappers :func:`instrument` made, and their handlers (see :func:`is_wrapper`), weakly: a
#: handler may refer back to its wrapper (``_method_of``), which a strong value would keep alive for ever.
_PLAIN_WRAPPERS: weakref.WeakKeyDictionary[Callable[..., Any], weakref.ref[Handler]] = weakref.WeakKeyDictionary()
#: Those of them that are context managers made again above a decorated generator (see :func:`_over_context_manager`),
#: and the program's context manager each was made from (see :func:`replacing_own`).
_MADE_MANAGERS: weakref.WeakKeyDictionary[Callable[..., Any], Callable[..., Any]] = weakref.WeakKeyDictionary()


def plain_wrapper(handler: Handler, func: types.FunctionType) -> types.FunctionType:
    """``func`` wrapped as a plain function (see :func:`_plain_sync_function`), for a runner that pickles it by value
    (cloudpickle: Ray's remote functions), which pickles a wrapt proxy of a function as the function it wraps."""
    return _plain_sync_function(handler, func)


def _takes_self(func: types.FunctionType) -> bool | None:
    """Whether ``func``'s first argument is the object (or class) it is called on: True when it is
    defined in a class body with ``self`` or ``cls`` first; None when it is defined there with another
    name first (a method naming its object otherwise, or a static method: its class decides, see
    :meth:`Handler.decide_method`)."""
    owner, _, _ = func.__qualname__.rpartition(".")
    code = func.__code__
    if not owner or owner.endswith("<locals>") or code.co_argcount == 0:
        return False
    return True if code.co_varnames[0] in ("self", "cls") else None


#: Results that are never a coroutine, generator, future, awaitable or stream (checked by exact type: cheap).
PLAIN_TYPES = frozenset({dict, list, tuple, str, bytes, int, float, bool, type(None)})


def _finish_result(inv: Invocation, result: object, handler: Handler) -> object:
    """End the invocation now, or hand it to whatever will complete later."""
    try:
        plain = type(result) in PLAIN_TYPES
        if not plain:
            if handler.iteration_step:  # a plain ``def __anext__`` returning a coroutine (see _end_raised)
                inv.iteration_step = True
            if isinstance(result, types.CoroutineType):
                return _TracedCoroutine(result, inv)
            if isinstance(result, types.GeneratorType) and handler.times_generators and not _started(result):
                traced = _traced_generator_of(result, inv)
                _end_when_dropped(traced, inv)
                hold_open(inv)
                return traced
            if isinstance(result, types.AsyncGeneratorType) and handler.times_generators and not _started(result):
                traced_async = _named_as(_traced_async_generator(result, inv), result)
                _end_when_dropped(traced_async, inv)
                hold_open(inv)
                return traced_async
            if asyncio.isfuture(result) or isinstance(result, concurrent.futures.Future):  # (a pure-Python task too)
                # one that is destroyed while pending (a task whose loop was closed) ends closed, as a dropped
                # coroutine does; it stayed open, a job among the in-flight ones for the process's life
                dropped = _end_when_dropped(result, inv)
                result.add_done_callback(lambda future: _end_from_future(inv, future, dropped))
                hold_open(inv)
                return result
            if inv.wants_stream(result):
                traced_stream = _traced_stream(result, inv)
                hold_open(inv)  # (a model's stream object left half-read at exit was lost, and ended after the flush)
                return traced_stream
        # Any other awaitable (a query builder whose methods return it, awaited at the end of the chain or
        # never) is the program's object as is: a proxy would change its type and its identity (``return
        # self``), and a call it timed until an await that may never come would end closed when dropped.
    except Exception as exc:
        report_error(inv.stage + ".result", exc)
    inv.end(End.RETURNED, result)
    return result


def _plain_call(handler: Handler, func: types.FunctionType, *, type: Any = type,
                BaseException: Any = BaseException, Exception: Any = Exception, RecursionError: Any = RecursionError,
                _instruments: Any = _instruments, runtime: Any = runtime, _get_current: Any = _get_current,
                otel_context: Any = otel_context, _SUPPRESSED_PLAIN: Any = _SUPPRESSED_PLAIN,
                report_error: Any = report_error, leave_out_callers_frame: Any = leave_out_callers_frame,
                _attach: Any = _attach, _detach: Any = _detach,
                note_inside: Any = note_inside, _inside: Any = _inside, leave: Any = leave,
                _end_raised: Any = _end_raised, PLAIN_TYPES: Any = PLAIN_TYPES, _RETURNED: Any = _RETURNED,
                _finish_result: Any = _finish_result, _begin_recording: Any = _begin_recording) -> types.FunctionType:
    """The body of :func:`_plain_sync_function`'s wrapper. Every name it reads is a parameter here, so a closure's
    (no global, no builtin): it is made again with the program's globals, in which a name of ours would not resolve
    and a name of the program's (a global ``type``) would shadow a builtin. The registry of open spans and the key
    that suppresses instrumentation are read through their modules: pickled by value (cloudpickle's, of a function of
    ``__main__``), a closure's dict goes as a copy, which the loading process's spans never reach, and the key (a name
    with a random part, made per process) as one the loading process never sets."""

    def call(*args: Any, **kwargs: Any) -> Any:
        # mirrors _sync_wrapper's wrapper deliberately (a shared helper would be the extra frame this
        # function exists to avoid); change both together
        __tracebackhide__ = True  # (see the module's: IPython reads a frame's own)
        rt = _instruments._runtime  # runtime() without its call, once it is built
        inv = None
        if (rt if rt is not None else runtime()).enabled:
            try:
                current = _get_current()
                inv = None if current.get(otel_context._SUPPRESS_INSTRUMENTATION_KEY) or current.get(
                    _SUPPRESSED_PLAIN) else _begin_recording(
                    handler, func, None, args, kwargs, current)
            except Exception as exc:
                report_error(handler.stage + ".begin", exc)
        if inv is None:
            try:
                return func(*args, **kwargs)
            except RecursionError:  # at the stack's limit a call raises again: the program's error as it is
                raise
            except BaseException as exc:  # (the program's traceback, as it would be unwrapped: see tracebacks)
                leave_out_callers_frame(exc)
                raise
        token = _attach(inv.context)
        noted = note_inside(inv, current) if _inside.SPANS_OPEN else None  # (see inside: under another library's span)
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            leave_out_callers_frame(exc)
            if noted is not None:
                leave(noted)
            _detach(token)
            _end_raised(inv, exc, handler)
            raise
        if noted is not None:
            leave(noted)
        _detach(token)
        if type(result) in PLAIN_TYPES:  # what _finish_result() does for it
            inv.end(_RETURNED, result)
            return result
        return _finish_result(inv, result, handler)

    return cast(types.FunctionType, call)


def _started(gen: types.GeneratorType[Any, Any, Any] | types.AsyncGeneratorType[Any, Any]) -> bool:
    """Whether a returned generator has run already (a priming decorator's ``next(gen)``, one kept and handed out
    again): it is the program's object as is, its state with it (a ``send()`` of a value is due next), and the call
    ends now, as for any other result. (3.11 has no ``inspect.getasyncgenstate``: a frame that moved tells; from 3.12
    it tells, as 3.13's fresh async generator has a frame that moved past its first instructions already.)"""
    if isinstance(gen, types.GeneratorType):
        return inspect.getgeneratorstate(gen) != inspect.GEN_CREATED
    if _ASYNC_GENERATOR_STATE is not None:
        return bool(_ASYNC_GENERATOR_STATE(gen) != "AGEN_CREATED")
    frame = gen.ag_frame
    if gen.ag_running or frame is None:
        return True
    # a fresh one's frame stands at its RETURN_GENERATOR, after a MAKE_CELL per cell variable and a COPY_FREE_VARS
    # when it has free ones (agno's ``_arun_stream``: read as started at 4 > 0, handed out untimed)
    return frame.f_lasti > _fresh_at(frame.f_code)


@functools.lru_cache(maxsize=1024)
def _fresh_at(code: types.CodeType) -> int:
    """Where a fresh generator of ``code`` stands (Python 3.11): the offset of its RETURN_GENERATOR, after the
    instructions that make its cells (one per cell variable, each with an EXTENDED_ARG past 255 slots)."""
    raw = code.co_code
    for offset in range(0, len(raw), 2):
        if raw[offset] == _RETURN_GENERATOR:
            return offset
    return 0


_RETURN_GENERATOR = dis.opmap.get("RETURN_GENERATOR", -1)


#: ``inspect.getasyncgenstate`` (Python 3.12 and later).
_ASYNC_GENERATOR_STATE: Callable[[Any], str] | None = getattr(inspect, "getasyncgenstate", None)


#: The weak references that end a call when what it returned is dropped before it completed (a generator, a future,
#: a coroutine's driver never stepped; also :func:`_awaited_in`'s), each kept until its callback runs or it is let go.
#: Not ``weakref.finalize``: the first one made registers weakref's own exit hook with ``atexit``, which put the
#: program's finalizers (a ``TemporaryDirectory``'s cleanup) after the exit hooks the program registered before it,
#: instead of before. Keyed by the reference's own id: a weak reference hashes as its object, which may be unhashable
#: (a future with an ``__eq__``) or run the program's ``__hash__``.
_ENDED_WHEN_DROPPED: dict[int, weakref.ref[Any]] = {}


def _end_when_dropped(result: object, inv: Invocation) -> weakref.ref[Any]:
    """End ``inv`` closed when ``result`` is collected; pop the returned reference from :data:`_ENDED_WHEN_DROPPED`
    (by its id) to stop that."""

    def dropped(reference: weakref.ref[Any]) -> None:
        if _ENDED_WHEN_DROPPED.pop(id(reference), None) is not None:  # (popped before: nothing to end)
            inv.end(End.CLOSED)

    reference = weakref.ref(result, dropped)
    _ENDED_WHEN_DROPPED[id(reference)] = reference
    return reference


def _end_from_future(inv: Invocation, future: asyncio.Future[Any] | concurrent.futures.Future[Any],
                     dropped: weakref.ref[Any]) -> None:
    _ENDED_WHEN_DROPPED.pop(id(dropped), None)
    if future.cancelled():
        inv.end(End.RAISED, error=asyncio.CancelledError())
        return
    error = _error_of(future)
    if error is not None:
        _end_raised(inv, error)
    else:
        inv.end(End.RETURNED, future.result())


def _error_of(future: asyncio.Future[Any] | concurrent.futures.Future[Any]) -> BaseException | None:
    """A done future's exception, read without retrieving it: asyncio reports a future's or a task's exception
    that the program never retrieved ("Task exception was never retrieved") when it is collected, and
    ``exception()`` would mark it retrieved and silence that report. Both of asyncio's future types (C and
    Python) keep it as ``_exception``."""
    if isinstance(future, asyncio.Future) and hasattr(future, "_exception"):
        return future._exception
    return future.exception()


def _making_wrapper(handler: Handler, traced: Callable[[Any, _PendingCall], Any]) -> WrapperFunction:
    """The wrapper of a function that makes a coroutine, a generator or an async generator: made at call time, so that
    bad arguments raise then, as they would unwrapped; its call begins when it first runs (``traced`` hands out ours),
    so one never run leaves no open span."""

    def wrapper(wrapped: Callable[..., Any], instance: object, args: Args, kwargs: Kwargs) -> Any:
        __tracebackhide__ = True  # (see the module's: IPython reads a frame's own)
        call = (handler, wrapped, instance, args, kwargs)  # (made first: the span bridge reads it here, see MADE_BY)
        try:
            made = wrapped(*args, **kwargs)
        except RecursionError:  # (as in _sync_wrapper)
            raise
        except BaseException as exc:  # its arguments' error, with the traceback it would have unwrapped
            leave_out_callers_frame(exc)
            raise
        rt = _instruments._runtime  # runtime() without its call, once it is built
        if not ((rt if rt is not None else runtime()).enabled and handler.active):
            return made
        return traced(made, call)

    return wrapper


#: The code of every wrapper :func:`_making_wrapper` makes. A frame running it is a call of ours being made, whose
#: call begins only once the function it wraps has returned: another library's wrapper there may have started its span
#: of the same request, not current, and returned its own stream object, a proxy of the generator, which ours then
#: drives (google-genai's instrumentation of ``generate_content_stream``), or another object (see
#: :func:`_not_a_generator`). The span bridge notes such a span with the identity of the frame's ``call``, the pending
#: call the wrapper made before calling, and pairs it with the call that begins with it (``inside.MADE_BY``).
MAKING_CALL_CODE: types.CodeType = _making_wrapper(cast(Any, None), cast(Any, None)).__code__


def _async_wrapper(handler: Handler) -> WrapperFunction:
    return _making_wrapper(handler, _pending_coroutine)


def _coroutine_like(made: object) -> bool:
    """A coroutine of another kind (a compiled one, registered as ``collections.abc.Coroutine``) or a generator-based
    one (``types.coroutine``): what our proxy stands for as the program's own would."""
    return not asyncio.isfuture(made) and (isinstance(made, collections.abc.Coroutine) or (
        isinstance(made, types.GeneratorType) and bool(made.gi_code.co_flags & _ITERABLE_COROUTINE)))


def _pending_coroutine(coro: Any, call: _PendingCall) -> Any:
    if type(coro) is not types.CoroutineType and not _coroutine_like(coro):
        # another library's wrapt wrapper of the function returned a task, another awaitable, or none at all: as a
        # generator function's that returned no generator (a task is timed until it is done; before, asyncio took our
        # proxy for the future itself, and the call recorded nothing; an object with only ``__await__`` in it read as a
        # coroutine, and create_task() took it)
        return _not_a_generator(coro, call)
    try:
        return _PendingCoroutine(coro, call)
    except BaseException:  # (a RecursionError: see _traced_coroutine) the program's, never started
        if type(coro) is types.CoroutineType and coro.cr_frame is not None and not coro.cr_suspended:
            coro.close()
        raise


def _steps_of(awaitable: Awaitable[T]) -> Generator[Any, Any, T]:
    """What ``await awaitable`` steps through: a generator-based coroutine (``types.coroutine``) itself, which has no
    ``__await__``; any other awaitable's ``__await__()``."""
    __tracebackhide__ = True  # (see the module's: IPython reads a frame's own)
    candidate: object = awaitable
    if type(candidate) is types.GeneratorType:
        return cast("Generator[Any, Any, T]", candidate)
    return awaitable.__await__()


def _traced_coroutine(coro: Awaitable[T], inv_or_call: Invocation | _PendingCall,
                      unstepped: list[weakref.ref[Any]] | None = None) -> Generator[Any, Any, T]:
    """Await ``coro`` inside the invocation's context; given the call instead, the invocation begins here,
    as the coroutine first runs (one frame either way: a second one awaiting it costs a frame per call). A
    generator, not a coroutine, as what ``__await__`` returns may be: one that never runs gives no "never awaited"
    warning of its own, so the program's coroutine gives it, when it would without agent-otel. ``unstepped``: the
    reference that ends the call if this generator is dropped before its first step (see _TracedCoroutine), let go
    of at that step: the call goes on after this generator (a stream it returned), or ends in it."""
    __tracebackhide__ = True  # (see the module's: IPython reads a frame's own)
    if unstepped:
        _ENDED_WHEN_DROPPED.pop(id(unstepped[0]), None)
    inv: Invocation | None = None
    noted: Token[Any] | None = None
    try:
        if isinstance(inv_or_call, Invocation):
            inv = inv_or_call
        elif getattr(coro, "cr_frame", True) is not None:  # (else closed before it ever ran: awaiting it raises)
            inv = _begin(*inv_or_call)
        if inv is None:
            steps = coro.__await__() if type(coro) is types.CoroutineType else _steps_of(coro)
        else:
            began_in = otel_context.get_current() if SPANS_OPEN else None
            token = _attach(inv.context)
            noted = note_inside(inv, began_in) if began_in is not None else None  # (see _sync_wrapper)
    except BaseException as exc:
        # a RecursionError at the stack's limit, raised in a frame of ours before the program's coroutine ran, where
        # plain Python raises it in the coroutine's first frame: it is closed (never started, none of it runs), with no
        # call of ours (at the limit, the call raised again, and the coroutine warned "never awaited")
        if type(coro) is types.CoroutineType and not (coro.cr_running or coro.cr_suspended) and (
                coro.cr_frame is not None):
            coro.close()
        if inv is not None:
            _end_raised(inv, exc, inv_or_call[0] if type(inv_or_call) is tuple else None)
        raise
    if inv is None:
        try:
            return (yield from steps)
        except BaseException as exc:  # (as below)
            leave_out_callers_frame(exc)
            raise
    try:  # (what _steps_of() returns, without its call for a coroutine of ``async def``: the usual case)
        result = yield from (coro.__await__() if type(coro) is types.CoroutineType else _steps_of(coro))
    except BaseException as exc:
        leave_out_callers_frame(exc)  # (the program's traceback, as it would be unwrapped: see tracebacks)
        # Closed while suspended (GeneratorExit), it may run in any context: a task destroyed while pending is
        # closed by the garbage collector, where the token cannot be reset and OpenTelemetry printed "Failed to
        # detach context" with a traceback. The context it was attached in is left as it is, gone or not ours.
        if type(exc) is not GeneratorExit or otel_context.get_current() is inv.context:
            if noted is not None:
                leave(noted)
            _detach(token)
        _end_raised(inv, exc, inv_or_call[0] if type(inv_or_call) is tuple else None)
        raise
    if noted is not None:
        leave(noted)
    _detach(token)
    if type(result) not in PLAIN_TYPES:  # e.g. ``await client.chat.completions.create(stream=True)``
        try:
            if inv.wants_stream(result):
                traced_stream = _traced_stream(result, inv)
                hold_open(inv)  # (as for a sync call's: one left half-read at exit ended after the flush, and was lost)
                return cast(T, traced_stream)
        except Exception as exc:
            report_error(inv.stage + ".result", exc)
    inv.end(_RETURNED, result)
    return result


def call_timing(coroutine: object) -> Invocation | None:
    """The call a coroutine of ours times, when a sync call returned it (its invocation began when it was called,
    wherever the coroutine runs later), else None."""
    return cast(Invocation, coroutine._self_call) if type(coroutine) is _TracedCoroutine else None


#: wrapt's C proxies are in use (its pure-Python ones, ``WRAPT_DISABLE_EXTENSIONS``, set ``_self_binding`` as an
#: attribute, read ``self.__wrapped__`` for every call, and look ``__self__`` up either way): a function's proxy is a
#: :class:`_CallsDirectly`, and the proxy's ``__wrapped__`` the callable's own (:attr:`_HostIdentity.__wrapped__`),
#: only then.
_WRAPT_IN_C = not hasattr(wrapt.FunctionWrapper.__call__, "__code__")
#: wrapt's own reading of what a proxy wraps: the C proxy's slot (the class's ``__wrapped__`` may answer otherwise)
_read_wrapped: Callable[[object], Any] = (
    cast(Any, wrapt.BaseObjectProxy).__dict__["__wrapped__"].__get__ if _WRAPT_IN_C
    else operator.attrgetter("__wrapped__"))


def wrapped_of(proxy: object) -> Any:
    """The object a wrapt proxy of ours wraps, as wrapt holds it: a callable's proxy answers ``__wrapped__`` with what
    the callable itself holds there, when it holds one (see :attr:`_HostIdentity.__wrapped__`)."""
    return _read_wrapped(proxy)


def _program_object(proxy: object) -> Any:
    """What a proxy of ours stands for: a wrapt proxy's wrapped object, a pending coroutine's coroutine."""
    try:
        return _read_wrapped(proxy)
    except TypeError:  # no wrapt proxy (a _PendingCoroutine)
        return cast(Any, proxy).__wrapped__


class _WrappedAnnotations(dict[str, Any]):
    """A proxy class's ``__annotations__``: empty, as a class without annotations shows, and, read or set on a proxy,
    the wrapped object's. Python reads a class's ``__annotations__`` from its own dict and, finding none, puts an
    empty dict there (typing's runtime protocol checks read each class of an object's MRO so: ``isinstance(stream,
    contextlib.AbstractContextManager)`` did, on 3.13), which from then on shadowed the wrapped object's on every
    proxy of the class: ``{}`` for a function or a stream, one appearing on a coroutine."""

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        if instance is None:
            return self
        return _program_object(instance).__annotations__

    def __set__(self, instance: object, value: object) -> None:
        _program_object(instance).__annotations__ = value

    def __delete__(self, instance: object) -> None:
        del _program_object(instance).__annotations__


class _ShowsWrappedAnnotations:
    """Gives each class below it an ``__annotations__`` of its own (see :class:`_WrappedAnnotations`)."""

    __slots__ = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        setattr(cls, "__annotations__", _WrappedAnnotations())  # noqa: B010  (no annotation in a proxy class)


class _PendingCoroutine(_ShowsWrappedAnnotations, Generic[T]):
    # The coroutine an ``async def`` returned, whose invocation begins when it first runs (_traced_coroutine). Let
    # go before that (a task cancelled before it starts, ``close()``, ``throw()``, dropped), it is the program's own
    # coroutine: no span, and Python's "never awaited" warning exactly when the program's coroutine would give it.
    # Still a coroutine to ``inspect`` and asyncio (its ``__class__`` is the coroutine's), with the program's
    # coroutine's attributes (read and set), repr, and refusal to be copied or pickled. Not a wrapt proxy: making
    # one cost about 0.55 µs, a third of what an async call added. (No docstring: ``__doc__`` is the coroutine's,
    # None.)

    __slots__ = ("__weakref__", "__wrapped__", "_self_call", "_self_driver")

    def __init__(self, coro: Coroutine[Any, Any, T], call: _PendingCall | Invocation) -> None:
        _set_wrapped(self, coro)
        # the call whose invocation begins when the coroutine first runs, or (see _TracedCoroutine) the invocation
        _set_call(self, call)
        _set_driver(self, None)
        self._self_driver: Generator[Any, Any, T] | None  # (for the type checker)

    @property  # type: ignore[misc]  # the coroutine's class, as a proxy shows it: isinstance() reads it
    def __class__(self) -> type:
        return cast(type, self.__wrapped__.__class__)  # (a _PendingCoroutine's, when it wraps one: a coroutine)

    def __getattr__(self, name: str) -> Any:
        """What the object does not have (``cr_frame``, ``__name__``, ``__qualname__``...) is the program's
        coroutine's."""
        if name == "__wrapped__":  # not set yet (a failed __init__): not the coroutine's
            raise AttributeError(name)
        return getattr(self.__wrapped__, name)

    def __setattr__(self, name: str, value: Any) -> None:
        """Set on the program's coroutine (``__qualname__``...), as on it; ours are set through their slots."""
        setattr(self.__wrapped__, name, value)

    def __reduce_ex__(self, protocol: SupportsIndex) -> Any:
        return self.__wrapped__.__reduce_ex__(protocol)  # copy, deepcopy and pickle refuse it as the coroutine

    def __repr__(self) -> str:
        return repr(self.__wrapped__)

    def __await__(self) -> Generator[Any, Any, T]:
        """Our driver, made at the first step (``await``: stepped by the interpreter, not through this object).
        A second ``await`` while another awaits it is refused as python refuses it for a coroutine (a check the
        interpreter makes only of a coroutine itself): the second awaiter took the first one's steps over."""
        __tracebackhide__ = True  # (see the module's: IPython reads a frame's own)
        driver = self._self_driver
        if driver is None:  # what _driver() does, without its call (the first await of every async call)
            driver = _traced_coroutine(self.__wrapped__, self._self_call)
            _set_driver(self, driver)
        elif cast("types.GeneratorType[Any, Any, T]", driver).gi_yieldfrom is not None:  # (a new one awaits nothing)
            raise RuntimeError("coroutine is being awaited already")
        elif cast("types.GeneratorType[Any, Any, T]", driver).gi_frame is None:  # it ran to its end, or was closed
            raise RuntimeError("cannot reuse already awaited coroutine")
        return driver

    def _driver(self) -> Generator[Any, Any, T]:
        __tracebackhide__ = True  # (see the module's: IPython reads a frame's own)
        driver = self._self_driver
        if driver is None:
            driver = _traced_coroutine(self.__wrapped__, self._self_call)
            _set_driver(self, driver)
        return driver

    def send(self, value: object) -> object:
        __tracebackhide__ = True  # (see the module's: IPython reads a frame's own)
        driver = self._driver()  # stepped by hand (a task made of it): the driver's own steps
        if cast("types.GeneratorType[Any, Any, T]", driver).gi_frame is None:  # it ran to its end, or was closed
            raise RuntimeError("cannot reuse already awaited coroutine")
        try:
            return driver.send(value)
        except BaseException as exc:  # (as in _traced_coroutine)
            leave_out_callers_frame(exc)
            raise

    def _running_driver(self) -> Generator[Any, Any, T] | None:
        """The driver once it took a step; else None, and a driver made but never stepped (``__await__()`` taken) is
        closed: ``throw()`` and ``close()`` then go to the program's own coroutine, which has not run either."""
        driver = self._self_driver
        if driver is None:
            return None
        if inspect.getgeneratorstate(cast("types.GeneratorType[Any, Any, T]", driver)) != inspect.GEN_CREATED:
            return driver
        driver.close()
        return None

    def throw(self, *exc_info: Any) -> object:
        __tracebackhide__ = True  # (see the module's: IPython reads a frame's own)
        driver = self._running_driver()
        if driver is not None:
            try:
                return driver.throw(*exc_info)
            except BaseException as exc:  # (as in _traced_coroutine)
                leave_out_callers_frame(exc)
                raise
        try:
            return self.__wrapped__.throw(*exc_info)  # unstarted: raises what is thrown, as by itself
        except BaseException as exc:  # (as in _traced_coroutine)
            leave_out_callers_frame(exc)
            raise

    def close(self) -> None:
        (self._running_driver() or self.__wrapped__).close()


# A _PendingCoroutine's own attributes are set through their slots: its class's ``__setattr__`` sets the program's
# coroutine's, and a slot's setter costs a third less than ``object.__setattr__`` (which checks for that override).
_set_wrapped = _PendingCoroutine.__dict__["__wrapped__"].__set__
_set_call = _PendingCoroutine.__dict__["_self_call"].__set__
_set_driver = _PendingCoroutine.__dict__["_self_driver"].__set__


class _TracedCoroutine(_PendingCoroutine[T]):
    # The coroutine a sync function returned, timed by _traced_coroutine once it runs. Until it runs, ``throw()``
    # and ``close()`` go to the program's own coroutine, as they would unwrapped, and end the invocation; one
    # dropped unstarted ends it closed. Either way no "never awaited" warning of ours appears: the program's
    # coroutine warns exactly when it would without agent-otel. (No docstring: see _PendingCoroutine.)

    __slots__ = ()  # its ``_self_call`` is the invocation (see _finish_result)

    def __await__(self) -> Generator[Any, Any, T]:
        __tracebackhide__ = True  # (see the module's: IPython reads a frame's own)
        if self._self_driver is None:
            return self._driver()
        return super().__await__()

    def _driver(self) -> Generator[Any, Any, T]:
        """Also: a driver dropped before its first step (``__await__()`` taken, never stepped) ends the call closed."""
        __tracebackhide__ = True  # (see the module's: IPython reads a frame's own)
        driver = self._self_driver
        if driver is None:
            inv = cast(Invocation, self._self_call)
            unstepped: list[weakref.ref[Any]] = []
            driver = _traced_coroutine(self.__wrapped__, inv, unstepped)
            _set_driver(self, driver)
            unstepped.append(_end_when_dropped(driver, inv))
        return driver

    def throw(self, *exc_info: Any) -> object:
        __tracebackhide__ = True  # (see the module's: IPython reads a frame's own)
        driver = self._running_driver()
        if driver is not None:
            try:
                return driver.throw(*exc_info)
            except BaseException as exc:  # (as in _traced_coroutine)
                leave_out_callers_frame(exc)
                raise
        try:
            return self.__wrapped__.throw(*exc_info)
        except BaseException as exc:
            leave_out_callers_frame(exc)  # (as in _traced_coroutine)
            _end_raised(cast(Invocation, self._self_call), exc)
            raise

    def close(self) -> None:
        super().close()
        cast(Invocation, self._self_call).end(End.CLOSED)  # (nothing when the driver ended it)

    def __del__(self) -> None:
        if self._self_driver is None:
            cast(Invocation, self._self_call).end(End.CLOSED)


def _generator_wrapper(handler: Handler) -> WrapperFunction:
    return _making_wrapper(handler, _traced_generator_made)


def _traced_generator_made(gen: Any, call: _PendingCall) -> Any:
    if not isinstance(gen, types.GeneratorType):  # (another library's proxy of one passes: driven as one)
        return _not_a_generator(gen, call)
    return _traced_generator_of(gen, call)


def _begin_made(call: _PendingCall) -> Invocation | None:
    """:func:`_begin` of a call our wrapper made earlier, while another library's GenAI span is open, telling the span
    bridge which it is (see ``inside.MADE_BY``: the identity of the pending call)."""
    _inside.MADE_BY.call = id(call)
    try:
        return _begin(*call)
    finally:
        _inside.MADE_BY.call = None


def _not_a_generator(result: object, call: _PendingCall) -> object:
    """What a generator (or coroutine) function's call returned that is not of its kind: another library's wrapt wrapper
    around the function (which wrapt makes look like the function) returned something else, such as a list, a
    coroutine, or its proxy of the program's async generator (an OpenTelemetry instrumentation's). Taken as a plain
    function's result, from now: a stream is timed until it ends, read through the proxy as it would be unwrapped.
    Before, a generator of ours drove it as the program's generator: a list failed the call, and that proxy's
    generator was closed by the event loop as well as ours, at once, a cleanup that awaits cut short ("async
    generator ignored GeneratorExit"). A sync generator's proxy is still driven as a generator (no loop closes it)."""
    inv = _begin_made(call) if SPANS_OPEN else _begin(*call)
    if inv is None:
        return result
    try:
        kind = type(result)
        if hasattr(kind, "__next__") or hasattr(kind, "__anext__"):
            traced = _traced_stream(result, inv)
            hold_open(inv)
            return traced
    except Exception as exc:
        report_error(inv.stage + ".result", exc)
    return _finish_result(inv, result, call[0])


#: A generator or async generator of ours.
G = TypeVar("G", Generator[Any, Any, Any], AsyncGenerator[Any, Any])


def _named_as(traced: G, program: Any) -> G:
    """Our generator named as the program's (``__name__``, ``__qualname__``, and so its ``repr``), as logs,
    debuggers and frameworks that name a stream by its generator show it. Only the names: its code and
    frame stay ours (``gi_code``/``ag_code``, ``gi_frame``, and ``inspect.getgeneratorlocals()`` shows our
    driver's locals, not the program's), as a generator's code and frame cannot be replaced."""
    named: Any = traced  # typeshed's Generator protocols have no names; generator objects do
    named.__name__, named.__qualname__ = program.__name__, program.__qualname__
    return traced


def _traced_generator(gen: Generator[Y, Any, T], inv_or_call: Invocation | _PendingCall) -> Generator[Y, Any, T]:
    """Drive ``gen`` step by step inside the invocation's context (PEP 380 semantics by hand,
    because the context must be attached around each step, not across yields), but for one thing: a
    GeneratorExit (``close()``, or thrown) is thrown into the program's generator, which then decides as
    it would unwrapped (it may yield, return or raise), where ``yield from`` would close it instead."""
    __tracebackhide__ = True  # (see the module's: IPython reads a frame's own)
    inv = inv_or_call if isinstance(inv_or_call, Invocation) else _begin_made(inv_or_call) if SPANS_OPEN else (
        _begin(*inv_or_call))
    to_send: object = None
    to_throw: BaseException | None = None
    if inv is None:  # no call of ours (instrumentation suppressed, or begin() failed): the program's generator, stepped
        # as below (``yield from`` closed it on a GeneratorExit thrown in, where it decides), no frame of ours left
        while True:
            try:
                if to_throw is not None:
                    thrown, to_throw = to_throw, None
                    item = gen.throw(thrown)
                else:
                    item = gen.send(to_send)
            except StopIteration as stop:
                passed: T = stop.value
                return passed
            except BaseException as error:
                leave_out_callers_frame(error)
                raise
            try:
                to_send = yield item
            except BaseException as thrown_in:  # GeneratorExit too: the program's generator decides
                leave_out_callers_frame(thrown_in)
                to_throw, to_send = thrown_in, None
    spans_the_block = sys._getframe(1).f_code is _CONTEXT_MANAGER_ENTER
    held: _Held | None = None
    # What each step runs in: the call's, then what its own code left current in the step before, if taken in the same
    # context (see _mark_place): unwrapped, what a step leaves current is current in the next one taken there; one
    # taken in another (a pool thread's copy, another task's) starts from the call's, as a thread or task stood for the
    # context and the span a library's code left current in the step before, ended since, parented its next spans
    call_context = step_context = inv.context
    stepped_in: object = None
    # each step is inside the call (see inside), and a context manager's block too, as it runs in the call's context
    began_in = _get_current() if SPANS_OPEN else None
    noted: Token[Any] | None = None
    held_noted: Token[Any] | None = None
    step_inside = None  # a block its code left open across a yield: noted in its next step too
    if not isinstance(inv_or_call, Invocation):  # begun here (a returned generator's was held open when returned)
        hold_open(inv)
    while True:
        in_collection = collection.running()  # (see collection: nothing set or reset in a collection's finalizers)
        if held is not None:  # a context manager's exit step: run where the entry left the block, in its Context
            held = None if in_collection else _held_here(held)
        token = None if in_collection or held is not None else _attach(
            step_context if step_context is call_context else _carried(
                step_context, call_context, _same_place(inv, stepped_in)))
        noted = None
        if began_in is not None and token is not None and held_noted is None:  # (a block's exit: in its note still)
            noted = INSIDE.set(step_inside) if step_inside is not None else note_inside(inv, began_in)
        try:
            if to_throw is not None:
                exc, to_throw = to_throw, None
                item = gen.throw(exc)
                if type(exc) is GeneratorExit:  # asked to close, it yielded: the call ends closed, as asked
                    inv.end(End.CLOSED)
            else:
                item = gen.send(to_send)
        except StopIteration as stop:
            if noted is not None:
                leave(noted)
            if not in_collection:
                _let_go(held_noted, inv)
            _step_undone(token, held, inv)
            returned: T = stop.value
            inv.end(End.RETURNED, returned)
            return returned
        except BaseException as exc:
            leave_out_callers_frame(exc)  # (as in _traced_coroutine)
            if noted is not None:
                leave(noted)
            if not in_collection:
                _let_go(held_noted, inv)
            _step_undone(token, held, inv)
            inv.end(End.RAISED, error=exc)
            raise
        if spans_the_block:
            if held is None:  # (the entry step: the exit step's is held already)
                held = None if token is None else (token, _HELD_HERE.set(None))
            if noted is not None:
                held_noted = noted
        elif token is not None:
            # a span its code made current and left open across the yield (``with start_as_current_span():``
            # around it) is current again in its next step, as unwrapped: it was the call's again, and the
            # library's later spans lost their parent
            step_context = _get_current()
            if step_context is not call_context:
                stepped_in = _mark_place(inv, stepped_in)
            if noted is not None:
                step_inside = _left_open(INSIDE.get(), inv)
                leave(noted)
            _detach(token)
        if inv.custom_chunk:
            inv.chunk(item)
        elif inv.first_chunk_ns is None:  # what chunk() does for a kind without on_chunk()
            inv.first_chunk_ns = _now_ns()
        try:
            to_send = yield item
        except BaseException as exc:  # GeneratorExit too (close(), or thrown): the program's generator decides
            leave_out_callers_frame(exc)  # (thrown in here: the program's generator's own traceback, as unwrapped)
            if type(exc) is GeneratorExit and sys.is_finalizing():  # ours collected as the interpreter ends: it
                # collects the program's generator on its own, as unwrapped, where ours closing it ran another
                # library's proxy's close, whose imports then failed ("sys.meta_path is None", printed by Python)
                inv.end(End.CLOSED)
                return cast(T, None)
            to_throw = exc
            to_send = None


def _let_go(held: Token[Any] | None, inv: Invocation) -> None:
    """Leave the note a context manager's block ran in (see inside), after its exit step: unless a call of ours begun
    since and still running is noted above it (another block, entered after this one and left open)."""
    if held is None:
        return
    entry = INSIDE.get()
    while entry is not None and entry[1]() is not inv:
        if running(entry):
            return
        entry = entry[2]
    leave(held)


def _left_open(left: Entry | None, inv: Invocation) -> Entry | None:
    """What a generator's step left noted for its next step: a call of ours its code began and left open across the
    yield (an ``agent_call()`` block), while it runs; else nothing, and the next step notes the call afresh."""
    return left if left is not None and left[1]() is not inv and running(left) else None


def _carried(step_context: Context, call_context: Context, same_place: bool) -> Context:
    """What a generator's step left current (not the call's context), for its next step: taken in the same context
    (:func:`_mark_place`), and while the span current in it has not ended. One that ended in a step taken in
    another context (steps in pool threads, each in a copy of the consumer's context) stays current there: the
    library's exit could not undo its own change (OpenTelemetry's "Failed to detach context"), and its next spans
    were parented to an ended one. A span that records nothing (a remote parent, one sampled out) has not ended:
    the context it is in is carried, with its baggage."""
    if not same_place:
        return call_context
    ended = getattr(trace.get_current_span(step_context), "end_time", None) is not None  # (an SDK span's)
    return call_context if ended else step_context


#: The code that enters a ``@contextmanager``'s and an ``@asynccontextmanager``'s generator: a decorated
#: generator under one of them (``@contextmanager`` over ``@agent_otel.job(...)``, a FastAPI dependency with
#: ``yield``) is a call whose ``with`` block is its work, so its context stays current across the yield, as
#: ``with agent_otel.job():`` inside the generator would make it.
_CONTEXT_MANAGER_ENTER = contextlib._GeneratorContextManager.__enter__.__code__
_ASYNC_CONTEXT_MANAGER_ENTER = contextlib._AsyncGeneratorContextManager.__aenter__.__code__


def _step_undone(token: Token[Context] | None, held: _Held | None, inv: Invocation) -> None:
    """Undo what a generator's last step attached: its own context, or, for a context manager's exit step run where
    its entry left the block (its code may close a span it kept current around its yield), the entry's."""
    if token is not None:
        _detach(token)
    elif held is not None:
        _release_held(held, inv)


#: A context manager's entry step's token, and :data:`_HELD_HERE`'s set beside it.
_Held = tuple[Token[Context], Token[None]]
#: Set where a context manager's entry step left its block in the call's context: reset() tells whether its exit runs
#: in the same ``contextvars.Context``. An exit run in another (``__aexit__`` awaited in a task made inside the block,
#: ``__exit__`` in another thread) runs in the call's context attached there: the entry's token cannot be reset in it
#: (OpenTelemetry printed "Failed to detach context" and a traceback), and the entering Context stays as the block
#: left it.
_HELD_HERE: ContextVar[None] = ContextVar("agent_otel_held_here", default=None)
#: Entry tokens of context managers left while a context other than their call's was current: detached when a later
#: release in the same Context brings their call's context back (managers left out of order: an ``ExitStack`` closed
#: inside a block entered after it). Without agent-otel such managers change nothing that is current. The newest
#: :data:`_COVERED_KEPT`, so that a context a program left changed for good keeps no calls alive.
_COVERED: ContextVar[tuple[tuple[Context, _Held], ...]] = ContextVar("agent_otel_covered_blocks", default=())
_COVERED_KEPT = 64


def _reset_here(here: Token[None]) -> bool:
    """Whether this runs in the Context ``here`` was set in (see :data:`_HELD_HERE`), taking the marker back there."""
    try:
        _HELD_HERE.reset(here)
    except (ValueError, RuntimeError):  # another Context's (a copy inherits the value, not the token), or taken already
        return False
    return True


def _held_here(held: _Held) -> _Held | None:
    """``held`` again, with a fresh marker, where this runs in the Context its entry step ran in; else None."""
    token, here = held
    return (token, _HELD_HERE.set(None)) if _reset_here(here) else None


def _release_held(held: _Held, inv: Invocation) -> None:
    """After a context manager's exit step run where its entry left the block: the entry's context detached, if the
    exit went back to it; else kept in :data:`_COVERED` for the release that uncovers it."""
    token, here = held
    if not _reset_here(here):
        return
    if otel_context.get_current() is not inv.context:
        _COVERED.set((*_COVERED.get()[1 - _COVERED_KEPT:], (inv.context, (token, _HELD_HERE.set(None)))))
        return
    _detach(token)
    covered = _COVERED.get()
    while covered:
        current = otel_context.get_current()
        uncovered = next((entry for entry in covered if entry[0] is current), None)
        if uncovered is None:
            return
        covered = tuple(entry for entry in covered if entry is not uncovered)
        _COVERED.set(covered)
        token, here = uncovered[1]
        if _reset_here(here):  # (else inherited by a copy of the Context it was kept in)
            _detach(token)


def _release(held: Token[Context], inv: Invocation) -> None:
    """Detach the context a block ran in (a context manager's, a stream manager's), when the block left it current
    (its exit runs where its entry did); otherwise leave it, as the block's own code changed what is current."""
    if otel_context.get_current() is inv.context:
        _detach(held)


#: The flag of a generator-based coroutine's code (``types.coroutine``): its generators can be awaited.
_ITERABLE_COROUTINE = inspect.CO_ITERABLE_COROUTINE


def _traced_generator_of(gen: types.GeneratorType[Y, Any, T],
                         inv_or_call: Invocation | _PendingCall) -> Generator[Y, Any, T]:
    """Our generator for the program's ``gen``, of its kind (a generator-based coroutine's can be awaited) and
    named as it is."""
    driver = _traced_iterable_coroutine if gen.gi_code.co_flags & _ITERABLE_COROUTINE else _traced_generator
    return _named_as(driver(gen, inv_or_call), gen)


@types.coroutine
def _traced_iterable_coroutine(gen: Generator[Y, Any, T], inv_or_call: Invocation | _PendingCall) -> Generator[
        Y, Any, T]:
    """:func:`_traced_generator` for a generator-based coroutine (``types.coroutine``, a legacy
    ``@asyncio.coroutine``): ours must be one too, or ``await`` refuses it."""
    try:
        return (yield from _traced_generator(gen, inv_or_call))
    except BaseException as exc:  # (as in _traced_generator)
        leave_out_callers_frame(exc)
        raise


def _async_generator_wrapper(handler: Handler) -> WrapperFunction:
    return _making_wrapper(handler, _traced_async_generator_made)


def _traced_async_generator_made(agen: Any, call: _PendingCall) -> Any:
    if type(agen) is not types.AsyncGeneratorType:
        return _not_a_generator(agen, call)
    return _named_as(_traced_async_generator(agen, call), agen)


async def _traced_async_generator(agen: AsyncGenerator[Y, Any],
                                  inv_or_call: Invocation | _PendingCall) -> AsyncGenerator[Y, Any]:
    __tracebackhide__ = True  # (see the module's: IPython reads a frame's own)
    inv = inv_or_call if isinstance(inv_or_call, Invocation) else _begin_made(inv_or_call) if SPANS_OPEN else (
        _begin(*inv_or_call))
    to_send: object = None
    to_throw: BaseException | None = None
    started = False
    ended: list[bool] = []  # see _first_step
    if inv is None:  # begin() failed or instrumentation is suppressed: the program's generator, passed through here
        # (not by an ``async for`` over another generator, which dropped what asend() and athrow() pass in)
        try:
            while True:
                try:
                    if to_throw is not None:
                        thrown, to_throw = to_throw, None
                        if type(thrown) is GeneratorExit and _closed_already(agen):
                            return
                        item = await agen.athrow(thrown)
                    elif started:
                        item = await agen.asend(to_send)
                    else:
                        started = True
                        item = await _first_step(agen, ended)
                except StopAsyncIteration:
                    return
                except BaseException as error:  # (as below)
                    leave_out_callers_frame(error)
                    raise
                try:
                    to_send = yield item
                except BaseException as passed:  # GeneratorExit too: the program's generator decides
                    leave_out_callers_frame(passed)  # (as in _traced_generator)
                    to_throw = passed
        finally:
            ended.append(True)
    spans_the_block = sys._getframe(1).f_code is _ASYNC_CONTEXT_MANAGER_ENTER
    held: _Held | None = None
    call_context = step_context = inv.context  # as in _traced_generator
    stepped_in: object = None
    began_in = _get_current() if SPANS_OPEN else None  # (as in _traced_generator)
    noted: Token[Any] | None = None
    held_noted: Token[Any] | None = None
    step_inside = None
    if not isinstance(inv_or_call, Invocation):
        hold_open(inv)
    try:
        while True:
            in_collection = collection.running()  # as in _traced_generator
            if held is not None:  # as in _traced_generator
                held = None if in_collection else _held_here(held)
            token = None if in_collection or held is not None else _attach(
                step_context if step_context is call_context else _carried(
                    step_context, call_context, _same_place(inv, stepped_in)))
            noted = None
            if began_in is not None and token is not None and held_noted is None:  # (as in _traced_generator)
                noted = INSIDE.set(step_inside) if step_inside is not None else note_inside(inv, began_in)
            closing = False
            try:
                if to_throw is not None:
                    exc, to_throw = to_throw, None
                    closing = type(exc) is GeneratorExit
                    if closing and _closed_already(agen):
                        if noted is not None:
                            leave(noted)
                        if not in_collection:
                            _let_go(held_noted, inv)
                        _step_undone(token, held, inv)
                        inv.end(End.CLOSED)
                        return
                    item = await agen.athrow(exc)
                    if closing:  # asked to close, it yielded: the call ends closed, as asked
                        inv.end(End.CLOSED)
                elif started:
                    item = await agen.asend(to_send)
                else:
                    started = True
                    item = await _first_step(agen, ended)
            except StopAsyncIteration:
                if noted is not None:
                    leave(noted)
                if not in_collection:
                    _let_go(held_noted, inv)
                _step_undone(token, held, inv)
                inv.end(End.RETURNED, None)
                return
            except BaseException as exc:
                leave_out_callers_frame(exc)  # (as in _traced_coroutine)
                if noted is not None:
                    leave(noted)
                if not in_collection:
                    _let_go(held_noted, inv)
                _step_undone(token, held, inv)
                _end_stream_raised(inv, exc, closing)
                raise
            if spans_the_block:
                if held is None:  # (as in _traced_generator)
                    held = None if token is None else (token, _HELD_HERE.set(None))
                if noted is not None:
                    held_noted = noted
            elif token is not None:
                step_context = _get_current()  # as in _traced_generator
                if step_context is not call_context:
                    stepped_in = _mark_place(inv, stepped_in)
                if noted is not None:
                    step_inside = _left_open(INSIDE.get(), inv)
                    leave(noted)
                _detach(token)
            if inv.custom_chunk:
                inv.chunk(item)
            elif inv.first_chunk_ns is None:  # what chunk() does for a kind without on_chunk()
                inv.first_chunk_ns = _now_ns()
            try:
                to_send = yield item
            except BaseException as exc:  # GeneratorExit too (aclose(), or thrown): the program's generator decides
                leave_out_callers_frame(exc)  # (as in _traced_generator)
                to_throw = exc
                to_send = None
    finally:
        ended.append(True)


def _end_stream_raised(inv: Invocation, error: BaseException, closing: bool = False, started: bool = False) -> None:
    """End a stream's call (an async generator's, a returned stream object's) that a step raised out of: failed with
    it, unless the task reading it was cancelled after its first chunk, as a client that disconnects cancels a
    server's streamed response (Starlette's) or a timeout around the loop does: the reader stopped reading, the
    call ends closed early, not as a failure of the provider or tool (whose error rate and availability it fed).
    Before the first chunk the request had not answered, as a coroutine call cancelled while it runs: failed. So
    is a ``CancelledError`` of the stream's own (a future it awaited, cancelled by another) in a task nobody
    cancelled. ``closing``: trio closes a generator dropped half-read in a cancelled scope, and an await of its
    cleanup raises ``Cancelled`` there, which trio drops: closed, as the consumer closed it. ``started``: the response
    began where no chunk passed through us (see Invocation.stream_started)."""
    if _cancellation(error) and (closing or ((started or inv.first_chunk_ns is not None) and _reader_cancelled(error))):
        inv.end(End.CLOSED)
    else:
        inv.end(End.RAISED, error=error)


def _reader_cancelled(error: BaseException) -> bool:
    """Whether the task this runs in is being cancelled (asyncio's ``cancelling()``); trio raises ``Cancelled`` only
    in a task whose cancel scope was cancelled."""
    if not isinstance(error, asyncio.CancelledError):
        return True
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no running loop: not asyncio's cancellation of a task
        return False
    return task is not None and task.cancelling() > 0


def _cancellation(error: BaseException) -> bool:
    """Whether ``error`` cancels the task it is raised in: asyncio's, or trio's (anyio's either backend)."""
    if isinstance(error, asyncio.CancelledError):
        return True
    trio = sys.modules.get("trio")
    cancelled = getattr(trio, "Cancelled", None) if trio is not None else None
    return isinstance(cancelled, type) and isinstance(error, cancelled)


def _mark_place(inv: Invocation, marker: object) -> object:
    """Mark the context a generator's step ran in (a ``contextvars.Context``, which has no identity to compare) for the
    call's next step: a fresh marker of the call's, set in it and read at the next step (:func:`_same_place`). A copy
    made of it afterwards holds the marker too, and is the same place, as unwrapped it holds what the step left
    current. A thread or a task stood for it and was wrong: pool threads run each step in a fresh copy of the
    consumer's context (anyio's ``to_thread``), trio's tasks share one thread, several tasks may step one generator.
    The markers of the last calls are kept side by side (a generator stepped inside another's step). A context that
    holds the call's marker (``marker``) already keeps it: another copy of it, made between two steps, still holds what
    unwrapped Python would see there."""
    if marker is not None and _same_place(inv, marker):
        return marker
    marker = object()
    key = id(inv)
    _PLACE.set(((key, marker), *(mark for mark in _PLACE.get()[:_PLACES_KEPT - 1] if mark[0] != key)))
    return marker


def _same_place(inv: Invocation, marker: object) -> bool:
    key = id(inv)
    return any(mark[0] == key and mark[1] is marker for mark in _PLACE.get())


#: The markers of :func:`_mark_place`, newest first: (the call's id, its marker), for the last calls whose step changed
#: what is current; left in the context (small objects: no reference to a call or the program's data). Set only by a
#: generator whose code leaves another context current across a yield (README, host safety).
_PLACE: ContextVar[tuple[tuple[int, object], ...]] = ContextVar("agent_otel_generator_step_place", default=())
_PLACES_KEPT = 32


# --------------------------------------------------------------------------------------------------
# Proxies for returned streams and awaitables that are not generators or coroutines
# --------------------------------------------------------------------------------------------------


def _closed_already(agen: AsyncGenerator[Any, Any]) -> bool:
    """The program's async generator was closed before ours (the garbage collector closes a cycle's at once, without
    the loop's hooks: see _first_step), or ran to its end: asked to close, ours closes too. Thrown into, a closed
    one answers with None on Python 3.11, which ours yielded: "async generator ignored GeneratorExit", printed by
    asyncio where the program alone prints nothing."""
    return getattr(agen, "ag_frame", True) is None


def _first_step(agen: AsyncGenerator[Y, Any], ours_ended: list[bool]) -> Awaitable[Y]:
    """The first step of the program's async generator, taken without the loop's first-iteration hook: an event
    loop (asyncio's, anyio's, trio's) registers a generator at its first step, to close it at shutdown, and ours,
    which the program holds, is registered so and closes the program's as it closes. Were the program's
    registered too, the loop would close both at once at shutdown, and the second ``aclose()`` would fail
    ("already running", printed by the loop) while the program's cleanup awaits.

    Its finalizer (what runs when it is collected unfinished) is one that leaves it to ours while ours has not
    ended (``ours_ended`` empty): the two are collected together (ours holds it), and the loop's finalizer of ours
    schedules ours' ``aclose()``, which closes the program's in that task, its cleanup awaiting as it would
    unwrapped. With no finalizer, the collector closed the program's at once, without a loop: a cleanup that
    awaits was cut short ("async generator ignored GeneratorExit"). Should ours have ended before it (never, but
    by a failure of ours), the loop's finalizer closes it, as unwrapped."""
    hooks = sys.get_asyncgen_hooks()
    loop_finalizer = hooks.finalizer

    def finalize(program: AsyncGenerator[Any, Any]) -> None:
        if ours_ended and loop_finalizer is not None:
            loop_finalizer(program)

    sys.set_asyncgen_hooks(firstiter=None, finalizer=finalize)
    try:
        return agen.asend(None)  # the hooks are read here, when the step is made, not when it is awaited
    finally:
        sys.set_asyncgen_hooks(firstiter=hooks.firstiter, finalizer=loop_finalizer)


def _traced_stream(result: object, inv: Invocation) -> object:
    """A stream the kind asked to time (an iterator, or an async one, or a manager whose block hands one
    out), whether a sync or an async call returned it: a proxy with the stream's own protocol methods and
    no others (see :func:`_stream_proxy_class`)."""
    kind = type(result)
    proxied = _types_behind(result)
    proxy_class = _stream_proxy_class(tuple(hasattr(kind, name) or (not name.startswith("__") and any(
                                            hasattr(behind, name) for behind in proxied)) for name in _STREAM_METHODS),
                                      tuple(hasattr(kind, name) for name in _PROXY_PROTOCOLS),
                                      _async_close_name(kind, proxied),
                                      _iterable_only(proxied[-1] if proxied else kind) or (
                                          bool(proxied) and _iterates_itself(kind, "__iter__", "__next__")),
                                      bool(proxied) and _iterates_itself(kind, "__aiter__", "__anext__"))
    return proxy_class(result, inv)


#: What a stream read otherwise than by iterating it has: an iterable without them is read as it is iterated (see
#: :class:`_IteratingThrough`).
_READ_OTHERWISE = ("__next__", "__anext__", "__enter__", "__aenter__")


def _iterable_only(kind: type) -> bool:
    """Whether a stream of type ``kind`` is read only by iterating it (see :class:`_IteratingThrough`): the type of the
    stream itself, under another library's wrapt proxies of it (botocore's instrumentation wraps an ``EventStream`` so,
    and a wrapt proxy has ``__enter__`` whatever it stands for)."""
    return hasattr(kind, "__iter__") and not any(hasattr(kind, name) for name in _READ_OTHERWISE)


def _iterates_itself(kind: type, method: str, step: str) -> bool:
    """Whether another library's proxy class has an iteration of its own (``method``: ``__iter__``, ``__aiter__``) and
    no ``step`` (``__next__``, ``__anext__``): what it reads is recorded there (OpenInference's Anthropic streams), so
    the stream is read through it (see :class:`_IteratingThrough`). wrapt's own ``__iter__`` only hands the stream's
    on."""
    if hasattr(kind, step):
        return False
    for klass in kind.__mro__:
        own = vars(klass).get(method)
        if own is not None:
            return own is not getattr(wrapt.ObjectProxy, method, None) and own is not getattr(
                wrapt.BaseObjectProxy, method, None)
    return False


def _async_close_name(kind: type, proxied: tuple[type, ...]) -> str | None:
    """The qualified name of the stream's ``close`` when it is an ``async def`` (an async SDK stream's, an async raw
    response's), read off the first of its types that has one; None otherwise."""
    for holder in (kind, *proxied):
        close = getattr(holder, "close", None)
        if close is not None:
            return str(getattr(close, "__qualname__", "close")) if inspect.iscoroutinefunction(close) else None
    return None


def _types_behind(stream: object) -> tuple[type, ...]:
    """The types of the objects a wrapt proxy (another instrumentation's, as the OpenAI instrumentation wraps the SDK's
    stream) stands for, outermost first: it forwards their ``close`` without one of its class. Read off the proxies'
    own ``__wrapped__``, not through the stream's attribute lookup, which may run the program's ``__getattr__``."""
    found: list[type] = []
    while isinstance(stream, wrapt.BaseObjectProxy) and len(found) < 8:
        stream = stream.__wrapped__
        found.append(type(stream))
    return tuple(found)


def _handed_out(proxy: Any, entered: object, next_method: str) -> object:
    """What a traced stream's ``with`` block gets: the proxy itself for an SDK stream that returns itself,
    a traced stream of its own for the stream a manager hands out, anything else as it is (a response whose
    body the block reads); the last two remembered for the block's end (see :meth:`Invocation.on_stream_exit`)."""
    if entered is proxy.__wrapped__:
        return proxy
    proxy._self_stream = entered
    if hasattr(entered, next_method):
        handed_out = cast(Any, _traced_stream(entered, proxy._self_inv))
        handed_out._self_in_block = True
        return handed_out
    return entered


def _step_done(token: Token[Context], call_context: Context) -> None:
    """Back from a step taken in the call's context (an item read, a close, a block's exit) to the context the step
    was taken in, unless the span current there has ended and was started inside the call: another instrumentation's
    span of the same request, which it ends, detaching its own context, in the step that reads the last event
    (Anthropic's), going back to what was current when it started, the call's. Going back to its context left its ended
    span current for the rest of the program: every later span its child, and its next call's span never made. The
    call's context, left current, is left when its block is (:func:`_leave_stream_block`). A span of the program's
    that ended (its own iterator's doing, another task's) is the program's business: its context comes back, as
    without agent-otel."""
    where = token.old_value
    if type(where) is Context:  # (else Token.MISSING: nothing was current)
        span = trace.get_current_span(where)
        if getattr(span, "end_time", None) is not None and _started_inside(span, call_context):  # (an SDK span's)
            return
    _detach(token)


def _started_inside(span: Span, call_context: Context) -> bool:
    """Whether ``span`` was started inside the call whose context is ``call_context``: a child of its span, or a span of
    its trace started after it (a grandchild: the instrumentation's span inside a nested call of ours, the stream a
    router's call returns). A span of the program's that was current where the call started (its request's) started
    before it."""
    parent = getattr(span, "parent", None)  # (an SDK span's: the context of the span it started under)
    ours = trace.get_current_span(call_context)
    context = ours.get_span_context()
    if parent is None or not context.is_valid or parent.trace_id != context.trace_id:
        return False
    if parent.span_id == context.span_id:
        return True
    started, call_started = getattr(span, "start_time", None), getattr(ours, "start_time", None)
    return started is not None and call_started is not None and started >= call_started


def _entered(proxy: Any, token: Token[Context]) -> None:
    """After a manager's ``__enter__`` ran in the call's context: back to the program's context, unless the
    manager made a context of its own current on top of ours (e.g. a span it started), which detaching now
    would throw away; then ours is left when its block is (:func:`_leave_stream_block`)."""
    if otel_context.get_current() is proxy._self_inv.context:
        _detach(token)
    else:
        proxy._self_enter_token = token


def _leave_stream_block(proxy: Any, error: BaseException | None) -> None:
    """End the invocation as a ``with``/``async with`` block of a stream (or of its manager) is left:
    closed early, unless the stream a manager handed out shows it was read to the end by the SDK's own
    iterators (the kind reads what it kept: usage, model). A manager's block left by an exception before that:
    the call failed with it, as the SDK's own iterators (``text_stream``, ``get_final_message()``) raise a provider's
    error there, not through our proxy; an exception after the response was complete is the program's own. So is one
    that leaves the block of a stream that is its own block's object, once the program has read it through this proxy
    (closed early): its loop body raised it, which was recorded as the provider's error. Read only by the SDK's own
    helpers (``get_final_result()``), the stream's errors do not pass through here: one leaving the block is the
    call's."""
    inv: Invocation = proxy._self_inv
    token = proxy._self_enter_token
    if token is not None:  # the manager's __exit__ went back to the call's context: back to the program's
        proxy._self_enter_token = None
        _release(token, inv)
    if proxy._self_in_block:  # the stream a manager handed out, in a block of its own inside the manager's: the
        return  # manager's block ends the call, with the usage its stream accumulated (ended here, it had none)
    how = End.CLOSED
    stream = proxy._self_stream
    if stream is not None and not inv._ended:
        try:
            if inv.on_stream_exit(stream):
                how = End.RETURNED
        except Exception as exc:
            report_error(inv.stage + ".stream", exc)
    if error is not None and how is End.CLOSED and (stream is not None or inv.first_chunk_ns is None):
        _end_stream_raised(inv, error, started=stream is not None and _response_began(inv, stream))
    else:  # an SDK stream that is its own block's object, read through our __next__ (whose errors ended the call
        # already): an exception that leaves the block now is the program's loop body's, the stream read early
        inv.end(how)


def _response_began(inv: Invocation, stream: object) -> bool:
    """:meth:`Invocation.stream_started`. Never raises."""
    return _asked(inv.stream_started, stream, inv.stage + ".stream")


def _asked(hook: Callable[[object], bool], stream: object, stage: str) -> bool:
    """A kind's hook's answer about ``stream``; False when it fails (counted at ``stage``)."""
    try:
        return hook(stream)
    except Exception as exc:
        report_error(stage, exc)
        return False


class _CopiedAsItsStream(_ShowsWrappedAnnotations):
    """Copy, deep copy and pickle of a traced stream give those of its stream, untraced, as the program's object
    gives them (wrapt's proxy refused each: ``itertools.tee`` of a stream raised NotImplementedError); a stream
    type without ``__copy__`` has none here either (see :data:`_PROXY_PROTOCOLS`), so ``tee`` buffers it through
    this proxy, timed."""

    def __copy__(self: Any) -> object:
        return copy.copy(self.__wrapped__)

    def __deepcopy__(self: Any, memo: dict[int, Any]) -> object:
        return copy.deepcopy(self.__wrapped__, memo)

    def __reduce_ex__(self: Any, protocol: SupportsIndex) -> Any:
        return self.__wrapped__.__reduce_ex__(protocol)


class _TracedStream(_CopiedAsItsStream, wrapt.ObjectProxy[Any]):
    """A stream object (e.g. an SDK's response stream) timed until exhausted, closed or dropped; used as an
    iterator or an async one (or either: litellm's streams are both), as a context manager (``with stream:``,
    ``async with create() as stream:``) or both. A stream manager (``with client.messages.stream(...) as stream:``)
    is timed until its block is left, and the stream it hands out is traced as one. Its class adds the stream
    methods its stream has (see :func:`_stream_proxy_class`)."""

    _self_stream = cast(object, None)  # what a manager handed out (a stream, a response), if any; no annotation
    # (see Wrapper)
    _self_enter_token = cast(object, None)  # ours, while the manager's own context is current (see _entered)
    #: Set on the stream a manager handed out (see _handed_out): dropped, it leaves the call to the manager's
    #: block, which may still be open (the program kept only ``stream.text_stream``)
    _self_in_block = False
    _self_entered = False
    _self_iterated_from = cast(object, None)  # the iterable that handed this iteration out (see _IteratingThrough)

    def __init__(self, wrapped: Any, inv: Invocation) -> None:
        super().__init__(wrapped)
        self._self_inv = inv

    def __repr__(self) -> str:
        return repr(self.__wrapped__)  # the stream's own, as a program's log or snapshot shows it (wrapt's named us)

    def __enter__(self) -> object:
        # SDK streams return themselves: hand back this proxy, so the block iterates through it. A manager
        # makes its request here: in the call's context, as __next__ reads, so that the SDK's own span of
        # it (its instrumentation's) is inside this call, not a second call beside it
        self._self_entered = True
        inv = self._self_inv
        token = _attach(inv.context)
        try:
            entered = cast(AbstractContextManager[object], self.__wrapped__).__enter__()
        except BaseException as exc:  # e.g. a manager's request failed: no block, so no __exit__ to end it
            _detach(token)
            inv.end(End.RAISED, error=exc)
            raise
        _entered(self, token)
        return _handed_out(self, entered, "__next__")

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool | None:
        # reached only by ``with proxy:``, whose __enter__ the wrapped stream has: it is a context manager. It runs in
        # the call's context, as __next__ reads: another instrumentation inside this call (OpenAI's, through
        # util-genai) made its span current as the call started and detaches it as the stream closes, back to what
        # was current then, the call's; run in the program's, that left our ended span current after the block, and
        # every later call under it. (Unless the manager's __enter__ left a context of its own current: _entered.)
        token = _attach(self._self_inv.context) if self._self_enter_token is None else None
        manager = cast(AbstractContextManager[object], self.__wrapped__)
        try:
            return manager.__exit__(exc_type, exc, tb)
        finally:
            if token is not None:
                _step_done(token, self._self_inv.context)
            _leave_stream_block(self, exc)

    async def __aenter__(self) -> object:
        # as __enter__: the manager's request is made in the call's context
        self._self_entered = True
        inv = self._self_inv
        token = _attach(inv.context)
        try:
            entered = await cast(AbstractAsyncContextManager[object], self.__wrapped__).__aenter__()
        except BaseException as exc:  # as in __enter__
            _detach(token)
            _end_stream_raised(inv, exc)
            raise
        _entered(self, token)
        return _handed_out(self, entered, "__anext__")

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> bool | None:
        # reached only by ``async with proxy:``: the wrapped stream is an async context manager (as __exit__)
        token = _attach(self._self_inv.context) if self._self_enter_token is None else None
        manager = cast(AbstractAsyncContextManager[object], self.__wrapped__)
        try:
            return await manager.__aexit__(exc_type, exc, tb)
        finally:
            if token is not None:
                _step_done(token, self._self_inv.context)
            _leave_stream_block(self, exc)

    def __del__(self) -> None:
        _dropped(self)


class _IteratingThrough:
    """A traced stream that is iterable only (botocore's ``EventStream``, whose ``__iter__`` parses the events as they
    arrive): iterating it hands out a traced stream of the iterator it gives, which reads each item in the call's
    context and ends the call when exhausted or raising. That one holds this one, and its being dropped or closed ends
    nothing: the call ends closed when both are dropped, not when one pass is (``for event in stream: break``, or the
    pass closed, then reading on, which botocore's iterator resumes). Iterated once the call has ended: the stream's
    own iteration."""

    def __iter__(self: Any) -> object:
        return _one_pass(self, iter(self.__wrapped__), "__next__")


def _one_pass(proxy: Any, items: object, step: str) -> object:
    """The iterator a traced stream's iteration (``iter()``, ``aiter()``) handed out, traced as a stream of its own
    that the traced stream holds (``step``: the method it is read with); as it is once the call has ended."""
    inv = proxy._self_inv
    if inv.ended or not hasattr(type(items), step):
        return items
    traced: Any = _traced_stream(items, inv)
    traced._self_in_block, traced._self_iterated_from = True, proxy
    return traced


class _AsyncIteratingThrough:
    """A traced stream whose async iteration is another library's own, with no ``__anext__`` (see
    :func:`_iterates_itself`): ``async for`` gets a traced stream of the iterator its ``__aiter__`` gives, as
    :class:`_IteratingThrough` does for ``for``. Without it, ``async for`` over the traced stream raised TypeError."""

    def __aiter__(self: Any) -> object:
        return _one_pass(self, aiter(self.__wrapped__), "__anext__")


def _dropped(proxy: Any) -> None:
    """A traced stream let go: the call ends closed (returned, for a raw response read whole: see
    :meth:`Invocation.on_stream_close`), unless a manager's block still runs it (the stream it handed out; or an
    iterable, the iteration it handed out: see _IteratingThrough), or it is a manager never entered
    (``client.chat.completions.stream(...)`` dropped): that one made no request, and is no call; its span is left
    unended, so never exported."""
    if proxy._self_in_block:
        return
    kind = type(proxy.__wrapped__)
    if not proxy._self_entered and not (hasattr(kind, "__next__") or hasattr(kind, "__anext__")) and (
            hasattr(kind, "__enter__") or hasattr(kind, "__aenter__")) and not isinstance(
                proxy, (_IteratingThrough, _AsyncIteratingThrough)):
        return
    inv = proxy._self_inv
    inv.end(End.RETURNED if _read_through(inv, proxy.__wrapped__) else End.CLOSED)  # (a raw response read whole)


class _Iterating:
    """A traced stream's ``__next__``: each item read in the call's context; exhausted, the call returns."""

    def __iter__(self) -> Self:
        return self

    def __next__(self: Any) -> object:
        __tracebackhide__ = True  # (see the module's: IPython reads a frame's own)
        inv = self._self_inv
        noted = note_inside(inv, _get_current()) if SPANS_OPEN else None  # each item read inside the call (see inside)
        token = _attach(inv.context)
        try:
            item = next(self.__wrapped__)
        except StopIteration:
            _item_read(token, inv, noted)
            inv.end(End.RETURNED, None)
            raise
        except BaseException as exc:
            _item_read(token, inv, noted)
            inv.end(End.RAISED, error=exc)
            raise
        _item_read(token, inv, noted)
        inv.chunk(item)
        return item


def _item_read(token: Token[Context], inv: Invocation, noted: Token[Any] | None) -> None:
    if noted is not None:
        leave(noted)
    _step_done(token, inv.context)


class _AsyncIterating:
    """:class:`_Iterating` for an async stream."""

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self: Any) -> object:
        __tracebackhide__ = True  # (see the module's: IPython reads a frame's own)
        inv = self._self_inv
        noted = note_inside(inv, _get_current()) if SPANS_OPEN else None  # (see _Iterating)
        token = _attach(inv.context)
        try:
            item = await self.__wrapped__.__anext__()
        except StopAsyncIteration:
            _item_read(token, inv, noted)
            inv.end(End.RETURNED, None)
            raise
        except BaseException as exc:
            _item_read(token, inv, noted)
            _end_stream_raised(inv, exc)
            raise
        _item_read(token, inv, noted)
        inv.chunk(item)
        return item


class _Closing:
    """A stream's ``close()`` (an SDK's, sync or returning a coroutine, returned as is): the call ends
    closed when it is called."""

    def close(self: Any) -> object:
        inv = self._self_inv
        if self._self_iterated_from is not None:  # one pass over an iterable (see _IteratingThrough): the iterable
            return self.__wrapped__.close()  # may be read on, and its own close or drop ends the call
        read_through = _read_through(inv, self.__wrapped__)  # before it is closed
        token = _attach(inv.context)  # (see _TracedStream.__exit__)
        try:
            closing = self.__wrapped__.close()
        finally:
            _step_done(token, inv.context)
            inv.end(End.RETURNED if read_through else End.CLOSED)
        if type(closing) is types.CoroutineType:  # an async stream's: awaited in the call's context too
            return _awaited_in(inv.context, closing)
        return closing


def _read_through(inv: Invocation, stream: object) -> bool:
    """:meth:`Invocation.on_stream_close`, asked before the stream is closed. Never raises."""
    return _asked(inv.on_stream_close, stream, inv.stage + ".close")


def _awaited_in(context: Context, closing: types.CoroutineType[Any, Any, T]) -> types.CoroutineType[Any, Any, T]:
    """Await the program's coroutine with ``context`` current, in a coroutine that passes for it: a native one, as
    ``inspect.iscoroutine()``, ``asyncio.run()`` and, from Python 3.12, ``asyncio.create_task()`` require, with its
    name. Dropped never awaited, it is the one that says so, as the program's would have ("coroutine
    'AsyncStream.close' was never awaited"), and the program's, never started, is closed without a second warning."""
    started: list[bool] = []
    ours = cast("types.CoroutineType[Any, Any, T]", _await_in(context, closing, started))  # an async def's
    ours.__name__, ours.__qualname__ = closing.__name__, closing.__qualname__

    def dropped(reference: weakref.ref[Any]) -> None:
        _ENDED_WHEN_DROPPED.pop(id(reference), None)
        if not started:
            closing.close()  # never started: closes it without running it, and without its warning

    reference = weakref.ref(ours, dropped)
    _ENDED_WHEN_DROPPED[id(reference)] = reference
    return ours


async def _await_in(context: Context, closing: Awaitable[T], started: list[bool] | None = None) -> T:
    """Await ``closing`` with ``context`` current; ``started`` notes that this ran (see :func:`_awaited_in`)."""
    if started is not None:
        started.append(True)
    token = _attach(context)
    try:
        result = await closing
    except BaseException as exc:
        if type(exc) is not GeneratorExit or otel_context.get_current() is context:  # (see _traced_coroutine)
            _step_done(token, context)
        raise
    _step_done(token, context)
    return result


def _async_closing(qualname: str) -> type:
    """:class:`_Closing` for a stream whose ``close`` is an ``async def``: ours is one too, so that
    ``inspect.iscoroutinefunction(stream.close)`` answers as for the stream's (code that awaits only what it says is a
    coroutine function left the stream open, its coroutine warning "never awaited"), named as the stream's, so that
    one dropped unawaited warns as the stream's would, once (the stream's is made only when ours runs). The call ends
    as the stream's close returns, as that close does its work only when awaited."""

    async def close(self: Any) -> object:
        inv = self._self_inv
        how = End.RETURNED if _read_through(inv, self.__wrapped__) else End.CLOSED  # before it is closed
        try:
            return await _await_in(inv.context, self.__wrapped__.close())  # (see _TracedStream.__exit__)
        finally:
            inv.end(how)

    close.__qualname__, close.__name__ = qualname, qualname.rpartition(".")[2]
    return type("_AsyncClosing", (), {"__slots__": (), "close": close})


class _AsyncClosing:
    """An async generator's or stream's ``aclose()``: the call ends closed."""

    async def aclose(self: Any) -> object:
        token = _attach(self._self_inv.context)  # (see _TracedStream.__exit__)
        try:
            return await self.__wrapped__.aclose()
        finally:
            _step_done(token, self._self_inv.context)
            self._self_inv.end(End.CLOSED)


#: The stream methods a traced stream has only when the stream's type has them, and the class that adds each one.
_STREAM_METHODS = ("__next__", "close", "__anext__", "aclose")
_STREAM_PARTS: tuple[type, ...] = (_Iterating, _Closing, _AsyncIterating, _AsyncClosing)


#: The protocol methods wrapt's proxy (or ours) always has: a traced stream's class sets each one its stream's type
#: lacks to None, the data model's "not available", so that ``iter()``, ``len()``, ``with`` and the ABCs
#: (``Iterable``, ``AbstractAsyncContextManager``...) answer as for the stream: a sync SDK stream looked like an
#: async context manager, an async one like an iterable.
_PROXY_PROTOCOLS = ("__iter__", "__enter__", "__exit__", "__aenter__", "__aexit__", "__len__", "__contains__",
                    "__getitem__", "__reversed__", "__copy__", "__deepcopy__")



@functools.cache
def _stream_proxy_class(has: tuple[bool, ...], has_protocol: tuple[bool, ...], async_close: str | None = None,
                        iterated_through: bool = False, async_iterated_through: bool = False) -> type[_TracedStream]:
    """The traced stream class with exactly the protocol methods its stream has (``has``: one flag per
    name of :data:`_STREAM_METHODS`, ``has_protocol`` per name of :data:`_PROXY_PROTOCOLS`): a proxy with a
    ``close`` or ``__next__`` the stream lacks changes what the program's ``hasattr()`` checks decide, and what
    it then calls fails with AttributeError; one without a ``__next__`` the stream has (an async stream's proxy,
    for litellm's stream, which is both) could not be read with ``next()``, and a ``for`` loop read past it."""
    parts = tuple(part for part, present in zip(_STREAM_PARTS, has, strict=True) if present)
    if iterated_through:  # an iterable only, or a proxy iterating itself: read as it is iterated
        parts += (_IteratingThrough,)
    if async_iterated_through:
        parts += (_AsyncIteratingThrough,)
    if async_close is not None:  # an ``async def close``: ours is one too, named as the stream's (see _async_closing)
        parts = tuple(_async_closing(async_close) if part is _Closing else part for part in parts)
    absent = dict.fromkeys(name for name, present in zip(_PROXY_PROTOCOLS, has_protocol, strict=True) if not present)
    if not (parts or absent):
        return _TracedStream
    namespace: dict[str, object] = {"__slots__": (), **absent}
    if absent:
        namespace["__getattribute__"] = _hiding(frozenset(absent), _TracedStream.__getattribute__)
    return type(_TracedStream.__name__, (*parts, _TracedStream), namespace)


def _hiding(absent: frozenset[str], look_up: Callable[[Any, str], Any]) -> Callable[[Any, str], Any]:
    """A traced stream's attribute lookup, for which the protocol methods its stream lacks are missing:
    None in the class says "not available" to ``with``, ``iter()`` and the ABCs, but ``hasattr()`` found it
    (a program choosing ``async with`` by ``hasattr(stream, "__aenter__")`` then called None)."""

    def __getattribute__(self: Any, name: str) -> Any:
        if name in absent:
            raise AttributeError(f"{type(look_up(self, '__wrapped__')).__name__!r} object has no attribute {name!r}")
        return look_up(self, name)

    return __getattribute__


# --------------------------------------------------------------------------------------------------
# Invocations around a block instead of a call
# --------------------------------------------------------------------------------------------------


#: One open entry of an :class:`InvocationScope`: ``[invocation (None: nothing recorded), the OTel
#: context token to detach, the token that puts the scope's entries back as they were before it, what the
#: block reported it returned, the frame of the ``with``, the token of its note (see inside; None: none)]`` (a
#: list: the third is only known once the entry is in, the fourth may be replaced; a list is the cheapest to build).
_ScopeEntry: TypeAlias = list[Any]


#: The invocations of the scope blocks (``with agent_otel.job():``...) a context runs in (weakly), innermost last: what
#: :meth:`InvocationScope._current_entry` finds in a thread or pool task started in a block.
_SCOPE_CALLS_KEY = otel_context.create_key("agent_otel.scope_calls")


class InvocationScope:
    """Runs an invocation around a ``with`` / ``async with`` block: the same begin-once, end-once
    and never-raise guarantees as the wrappers. Subclasses say how to begin and what the block
    returned. Re-entrant: each nested ``with`` on the same object is its own invocation.

    Safe to reuse and to share across threads and asyncio tasks: the open entries live in a context
    variable, so each thread and task sees (and ends) only its own, whatever order they leave in. A block
    left in a context that never entered it, as a generator's block is when each step runs in a fresh copy of
    its caller's context (Starlette's ``iterate_in_threadpool``, ``anyio.to_thread``), ends the entry that the
    same frame made (the generator's, whatever else of this object is open meanwhile); failing that, the one
    entry of this object still open anywhere; with two or more, which one it is cannot be told, and none is.
    """

    stage = "scope"

    def __init__(self) -> None:
        self._entries: ContextVar[tuple[_ScopeEntry, ...]] = ContextVar("agent_otel.scope", default=())
        #: every entry of this object open in any context, by id (see the class's docstring)
        self._open: dict[int, _ScopeEntry] = {}

    def _begin(self) -> Invocation | None:
        """The block's invocation; None runs it untraced."""
        raise NotImplementedError

    def _new_result(self) -> object:
        """What a new entry's block counts as having returned until it reports otherwise."""
        return None

    def _returned(self, result: object) -> object:
        """What the block counts as having returned (read by the invocation's result adapters), given what
        its entry holds."""
        return result

    def _current_entry(self) -> _ScopeEntry | None:
        """The innermost entry of this object in the current thread or task, else the innermost open one whose
        block the current context runs in: a thread or pool task started in the block gets its OpenTelemetry
        context (agent-otel carries it across), not this object's context variable."""
        entries = self._entries.get()
        if entries:
            return entries[-1]
        running = otel_context.get_value(_SCOPE_CALLS_KEY)
        if running:
            opened = list(self._open.values())  # one step under the GIL (see _entry_left)
            for call in reversed(cast("tuple[weakref.ref[Invocation], ...]", running)):
                inv = call()
                for entry in opened:
                    if inv is not None and entry[0] is inv:
                        return entry
        return None

    def _reporting_entry(self) -> _ScopeEntry | None:
        """The entry a handle's ``set_outcome()`` reports to (see :meth:`_current_entry`); outside any block of
        this object, the miss is counted."""
        entry = self._current_entry()
        if entry is None and runtime().enabled:  # (disabled, a worker finds no block: nothing is recorded anyway)
            report_error(self.stage + ".outcome", LookupError("the outcome was set outside the block"))
        return entry

    @property
    def invocation(self) -> Invocation | None:
        """The invocation of the innermost entry of this object in the current thread or task (see
        :meth:`_current_entry`)."""
        entry = self._current_entry()
        return cast("Invocation | None", entry[0]) if entry is not None else None

    def __enter__(self) -> Self:
        return self._enter(sys._getframe(1))

    def _refuse_entry(self) -> None:
        """Raise to refuse a ``with`` block (an option it cannot take); before anything is entered."""

    def _enter(self, frame: types.FrameType) -> Self:
        """``frame``: the frame running the ``with`` statement (held by the entry until the block is left)."""
        self._refuse_entry()
        inv: Invocation | None = None
        token: Token[Context] | None = None
        noted: Token[Any] | None = None
        if runtime().enabled:
            try:
                began_in = _get_current() if SPANS_OPEN else None
                if not OWN_WORK.active:  # (see own_work, and _begin_recording)
                    with own_work():
                        inv = self._begin()
                if inv is not None:
                    ctx = inv.context  # (weakly: the context holding the invocation would be a cycle, and kept alive
                    # by a thread started in the block)
                    running = cast("tuple[weakref.ref[Invocation], ...]", ctx.get(_SCOPE_CALLS_KEY, ()))
                    inv.context = Context({**ctx, _SCOPE_CALLS_KEY: (*running, weakref.ref(inv))})
                    token = _attach(inv.context)
                    if began_in is not None:  # (see inside, and _sync_wrapper)
                        noted = note_inside(inv, began_in)
            except Exception as exc:
                report_error(self.stage + ".begin", exc)
                inv = None
        entry: _ScopeEntry = [inv, token, None, self._new_result(), frame, noted]
        entry[2] = self._entries.set((*self._entries.get(), entry))
        self._open[id(entry)] = entry
        if inv is not None:  # what the block reported, for a signal that ends it (end_in_flight); let go as it ends
            inv.in_block = (self, entry)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._exit(exc, sys._getframe(1))

    def _exit(self, exc: BaseException | None, frame: types.FrameType) -> None:
        entries = self._entries.get()
        innermost = entries[-1] if entries else None
        entry = innermost if innermost is not None and innermost[4] is frame else self._entry_left(frame, innermost)
        if entry is None:
            return
        inv, token, restore, result, _, noted = entry
        if entry is innermost:
            try:
                self._entries.reset(restore)  # back to the entries before it; forgotten when there were none
            except ValueError:  # entered in a parent context (a task inherited the entry): end it from here
                self._entries.set(entries[:-1])
                token = None  # that context's token cannot be detached here
        else:  # entered in another context (a generator's earlier step): its token stays there
            token = None
            if any(held is entry for held in entries):  # inherited from there, under entries of this one
                self._entries.set(tuple(held for held in entries if held is not entry))
        self._open.pop(id(entry), None)  # gone already when it was ended from another context
        if inv is None:  # disabled, or the begin failed
            return
        inv.in_block = None  # (the entry holds the invocation: no cycle left behind)
        if token is not None:
            if noted is not None:
                leave(noted)
            _detach(token)
        if exc is not None:  # what the block reported before it raised is recorded too (KPIs, tokens...)
            inv.end(End.RAISED, self._returned(result), error=exc)
        else:
            inv.end(End.RETURNED, self._returned(result))

    def _entry_left(self, frame: types.FrameType, innermost: _ScopeEntry | None) -> _ScopeEntry | None:
        """The entry a block left other than where it was entered ends: the innermost that ``frame`` made (a
        generator's block, whatever else of this object is open), else the innermost of this context (one that
        ``contextlib.ExitStack`` entered and leaves), else the one entry of this object open anywhere."""
        opened = list(self._open.values())  # one step under the GIL: other threads enter and leave meanwhile
        for entry in reversed(opened):
            if entry[4] is frame:
                return entry
        if innermost is not None:
            return innermost
        return opened[0] if len(opened) == 1 else None

    async def __aenter__(self) -> Self:
        return self._enter(sys._getframe(1))

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self._exit(exc, sys._getframe(1))


# --------------------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------------------


def _shape_target(func: object) -> object:
    """What tells ``func``'s shape: a static or class method object's function; the ``__call__`` of a callable object
    whose class defines one in Python (an ``async def __call__`` makes a call of the object a coroutine's)."""
    target = getattr(func, "__func__", func)  # classmethod / staticmethod objects
    call = _python_call_of(target)
    return target if call is None else call


def _python_call_of(target: object) -> types.FunctionType | None:
    """The ``__call__`` function of a callable object's class, when it is one defined in Python; None for a function,
    a method, a class, a builtin, or any object that a C type calls (``functools.partial``, another wrapt proxy)."""
    if isinstance(target, type) or inspect.isroutine(target):
        return None
    for owner in type(target).__mro__:  # read off the classes' own dicts: no code of the program runs
        call = vars(owner).get("__call__")
        if call is not None:
            return call if type(call) is types.FunctionType else None
    return None


def wrapper_for(handler: Handler, func: object) -> WrapperFunction:
    """The engine wrapper (wrapt signature) that suits ``func``'s shape."""
    target = _shape_target(func)
    _note_iteration_step(handler, target)
    if inspect.isasyncgenfunction(target):
        return _async_generator_wrapper(handler)
    if inspect.isgeneratorfunction(target):
        return _generator_wrapper(handler)
    if inspect.iscoroutinefunction(target):
        return _async_wrapper(handler)
    return _sync_wrapper(handler)


def is_plain_sync_function(func: object) -> TypeGuard[types.FunctionType]:
    """Whether ``func`` is a Python function that is no coroutine, generator or async generator function: one a
    plain function can wrap (:func:`plain_wrapper`)."""
    return type(func) is types.FunctionType and not func.__code__.co_flags & _SUSPENDING_FLAGS


def _decorated_where_defined(func: object) -> bool:
    """A plain sync function that its qualified name does not hold yet (see :func:`instrument`)."""
    if not is_plain_sync_function(func):
        return False
    return not (_held_by_name(func) or _held_by_class_body(func))


def _held_by_name(func: types.FunctionType) -> bool:
    """Whether ``func``'s module, and the classes its qualified name goes through, hold it under that
    name. Read off their ``__dict__``, so that no code of the program runs at decoration time (a module's
    ``__getattr__`` can import, a class attribute can be a descriptor); a static or class method object
    holds its function."""
    found: object = sys.modules.get(func.__module__)
    for part in func.__qualname__.split("."):
        if not isinstance(found, types.ModuleType | type):
            return False
        found = vars(found).get(part)
    return (found.__func__ if isinstance(found, staticmethod | classmethod) else found) is func


def _held_by_class_body(func: types.FunctionType) -> bool:
    """Whether the body of ``func``'s class, still running, holds it under its name already: an alias made
    there (``run_traced = tool("t")(run)``), which pickles by the name ``run``. The class is not bound to its
    name yet, so :func:`_held_by_name` cannot see it; its namespace is the locals of the frame running the
    body, a few frames up (a class body's locals are its namespace dict, read without a copy)."""
    owner, _, name = func.__qualname__.rpartition(".")
    class_name = owner.rpartition(".")[2]
    if not class_name or class_name == "<locals>":
        return False
    frame: types.FrameType | None = sys._getframe(2)
    for _ in range(_CLASS_BODY_SEARCH_DEPTH):
        if frame is None:
            return False
        code = frame.f_code
        if code.co_name == class_name and not code.co_flags & inspect.CO_OPTIMIZED:
            namespace = frame.f_locals
            if namespace.get("__qualname__") == owner:
                return namespace.get(name) is func
        frame = frame.f_back
    return False


#: How many frames above the decorator a class body is looked for: the decorator's own calls, and any
#: decorator of the program's around ours.
_CLASS_BODY_SEARCH_DEPTH = 12


#: Coroutine, generator and async generator functions (``inspect``'s flags for them).
_SUSPENDING_FLAGS = inspect.CO_COROUTINE | inspect.CO_GENERATOR | inspect.CO_ASYNC_GENERATOR


def is_wrapper(value: object) -> bool:
    """Whether ``value`` is a decorator's or the config's wrapper (plain function or proxy), or a method
    bound from one (``obj.method`` of a decorated method). A proxy of ours over a bound method is one: it says it is a
    method (its ``__class__`` is the method's), and was taken for the program's, so a config entry naming it wrapped
    it again."""
    if not isinstance(value, Wrapper | BoundWrapper) and isinstance(value, types.MethodType):
        value = value.__func__
    return isinstance(value, Wrapper | BoundWrapper) or (isinstance(value, types.FunctionType)
                                                          and value in _PLAIN_WRAPPERS)


def handler_of(value: object) -> Handler | None:
    """The handler of a decorator's wrapper (plain function or proxy, or the static or class method object
    holding one); None for anything else, a configured target's wrapper included. A proxy of ours over such an object
    says it is one (its ``__class__`` is that object's): its own handler, not the function under it."""
    if not isinstance(value, Wrapper) and isinstance(value, staticmethod | classmethod | types.MethodType):
        value = value.__func__
    if isinstance(value, Wrapper):
        handler = getattr(value, "_self_handler", None)
        return handler if isinstance(handler, Handler) else None
    found = _PLAIN_WRAPPERS.get(value) if isinstance(value, types.FunctionType) else None
    return found() if found is not None else None


def replacing_own(stage: str, func: F) -> F:
    """What a decorator of ``stage`` wraps: ``func``, or the function under it when ``func`` is a wrapper of
    agent-otel's decorator of the same stage (or a static or class method object holding one). A notebook cell or a
    Streamlit script run again decorates its own result again (``f = agent_otel.tool("t")(f)``,
    ``agent.run = agent_otel.agent("a")(agent.run)``): each run nested one more wrapper, and one call counted twice,
    then three times. The new decorator replaces the old one instead, as a cell defining the function again would.
    Another kind's wrapper (an agent used as a tool) is wrapped as any function."""
    kind: Any = type(func)  # (not isinstance(): a proxy of a bound method passes isinstance(, MethodType))
    held: Any = cast(Any, func).__func__ if kind in (staticmethod, classmethod, types.MethodType) else func
    if isinstance(held, BoundWrapper):  # ``obj.method`` of an async or generator method decorated in its class (or
        # of one above @classmethod): what it binds, bound as it is
        parent = getattr(held, "_self_parent", None)
        handler, inner = getattr(parent, "_self_handler", None), wrapped_of(held)
        if not isinstance(handler, Handler) or handler.stage != stage:
            return func
        return cast(F, replacing_own(stage, inner))
    if isinstance(held, Wrapper):
        handler, inner = getattr(held, "_self_handler", None), wrapped_of(held)
    elif type(held) is types.FunctionType:
        found = _PLAIN_WRAPPERS.get(held)
        handler = found() if found is not None else None
        inner = _MADE_MANAGERS.get(held) or getattr(held, "__wrapped__", None)  # a context manager: its factory
    else:
        return func
    if not isinstance(handler, Handler) or handler.stage != stage or inner is None:
        return func
    inner = replacing_own(stage, inner)  # (nested already, before this)
    if kind is types.MethodType:  # ``obj.method`` of a method decorated in its class: the method, bound
        return cast(F, types.MethodType(inner, cast(Any, func).__self__))
    return cast(F, kind(inner) if kind in (staticmethod, classmethod) else inner)


def _lookup(module: str, qualname: str) -> object:
    """What ``module.qualname`` names now (None when nothing does), as pickle looks it up."""
    found: object = sys.modules.get(module)
    try:
        for part in qualname.split("."):
            found = getattr(found, part, None)
    except Exception:  # a module __getattr__ or a descriptor that fails: pickle will say so
        return None
    return found


def _original(obj: object) -> object:
    try:
        return inspect.unwrap(cast(Callable[..., Any], obj))
    except ValueError:  # a __wrapped__ cycle
        return obj


def _by_reference(proxy: Any, protocol: SupportsIndex) -> str | tuple[Any, ...]:
    """How a wrapper pickles: as the plain callable it wraps does. A function goes by qualified name
    (a GLOBAL opcode, the plain function's very pickle, when the name resolves to this wrapper), so
    the process that loads it gets whatever that name holds there: this wrapper where the module is
    decorated or the process instrumented, the plain function elsewhere. A bound method is rebound
    by name on its (pickled) instance or class, as a plain bound method is."""
    target = wrapped_of(proxy)
    if inspect.ismethod(target):
        return cast(tuple[Any, ...], target.__reduce_ex__(protocol))
    module, qualname = getattr(target, "__module__", None), getattr(target, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str):
        return cast(tuple[Any, ...], target.__reduce_ex__(protocol))  # not a named callable: as itself
    if isinstance(target, staticmethod | classmethod):
        # in the dict of a class pickled by value (cloudpickle's, of a class of ``__main__``: joblib's loky, Ray,
        # Dask), where the name reads as a bound method or the function: the object goes as itself, for the pickler
        # to take as it takes the plain one (pickle refuses a static or class method object, as without agent-otel),
        # instrumented again where it loads; by name, a class of ``__main__`` is not found there
        return _made_again, (type(proxy), target, proxy._self_wrapper, getattr(proxy, "_self_handler", None))
    found = _lookup(module, qualname)
    if found is not proxy and found is not None and _original(found) is _original(target):
        # the name holds the plain function (``tool("t")(f)`` kept elsewhere) or another binding of it
        return pkgutil.resolve_name, (f"{module}:{qualname}",)
    return qualname  # pickle checks the name resolves to ``proxy`` and fails as for a plain function if not


def _made_again(kind: type[Wrapper], target: object, wrapper: WrapperFunction, handler: Handler | None) -> Wrapper:
    """A wrapper of ``kind`` around ``target`` with the instrumentation of another: a copy's (see
    :meth:`_HostIdentity._wrapping`), an unpickled static or class method object's (see :func:`_by_reference`)."""
    made: Any = kind(cast(Callable[..., Any], target), wrapper)
    if handler is not None:
        made._self_handler = handler
    return cast(Wrapper, made)


class _HostIdentity(_ShowsWrappedAnnotations):
    """Pickling and copying of a wrapper: as the plain callable's (wrapt's proxies refuse both). And
    ``functools.wraps`` over it: what it records as ``__wrapped__`` goes on the program's function it proxies, as
    on a plain one, where ``inspect`` follows it; wrapt's proxy took it for a new target and called that instead,
    skipping the program's own wrapper (a retry loop, a result transform)."""

    __slots__ = ()

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "__wrapped__":
            setattr(wrapped_of(self), name, value)
            return
        super().__setattr__(name, value)

    if _WRAPT_IN_C:
        @property
        def __wrapped__(self) -> Any:
            """What the callable holds as its own ``__wrapped__`` (the function under a ``functools.wraps``
            decorator, an ``lru_cache``'s), as the plain callable answers; else the callable. It answered with the
            callable itself: ``f.__wrapped__(...)``, the usual way past a program's decorator (a retry, a cache),
            went through that decorator again once ``f`` was a configured target. ``inspect.unwrap`` ends where it
            did. Another library's wrapt proxy (an instrumentation's patch) is answered as itself: the chain of
            patches stays one to walk and undo, a patch at a time. (wrapt's pure-Python proxies read
            ``__wrapped__`` for every call: they keep wrapt's.)"""
            target = _read_wrapped(self)
            if isinstance(target, wrapt.BaseObjectProxy):
                return target
            return getattr(target, "__wrapped__", target)

        @__wrapped__.setter
        def __wrapped__(self, value: Any) -> None:  # (what __setattr__ does: for object.__setattr__)
            wrapped_of(self).__wrapped__ = value

    def __reduce_ex__(self, protocol: SupportsIndex) -> str | tuple[Any, ...]:
        return _by_reference(self, protocol)

    def __reduce__(self) -> str | tuple[Any, ...]:
        return _by_reference(self, 2)

    def __repr__(self) -> str:
        """The callable's own (``<function dumps at 0x...>``, a bound method's): wrapt's named the proxy, which a
        program's output, logs and snapshot tests then showed."""
        return repr(wrapped_of(self))

    def __copy__(self) -> object:
        target = wrapped_of(self)
        if inspect.ismethod(target):  # a bound method copies as a new binding to the same object
            return getattr(target.__self__, target.__func__.__name__)
        copied = copy.copy(target) if _copies(target) else target
        return self if copied is target else self._wrapping(copied)  # an lru_cache copies as itself: so does this

    def __deepcopy__(self, memo: dict[int, object]) -> object:
        target = wrapped_of(self)
        if inspect.ismethod(target):  # bound to a deep copy of its object, as a plain bound method is
            return getattr(copy.deepcopy(target.__self__, memo), target.__func__.__name__)
        copied = copy.deepcopy(target, memo) if _copies(target) else target
        return self if copied is target else self._wrapping(copied)

    def _wrapping(self, copied: object) -> object:
        """The same instrumentation around ``copied``, a copy of the callable object this one wraps."""
        proxy = cast(Any, self)
        return _made_again(type(proxy), copied, proxy._self_wrapper, getattr(proxy, "_self_handler", None))


def _copies(target: object) -> bool:
    """Whether copying makes another ``target``: not for a function (or a class, or a static or class method
    object), which copies as itself; yes for a callable object or a ``functools.partial``, whose copies each
    keep state of their own."""
    return not isinstance(target, types.FunctionType | types.BuiltinFunctionType | type | staticmethod | classmethod)


class BoundWrapper(_HostIdentity, wrapt.BoundFunctionWrapper[..., Any]):
    """A :class:`Wrapper` read from an instance or class."""

    __slots__ = ()  # made on every method access: no second instance dict (wrapt's proxy has one)

    @property
    def __func__(self) -> Any:
        """The function a bound method calls, as its class holds it: ``obj.method.__func__ is Class.method``
        holds as in plain Python (the other way a framework checks for an override), and calling it is traced.
        From a wrapper that binds as wrapt does (a class or static method's), the function it binds."""
        parent = cast(Any, self)._self_parent
        if parent is not None and parent._self_reads_as_itself is FROM_CLASS:
            return parent
        return wrapped_of(self).__func__


#: How a wrapper in a class reads from it (:attr:`Wrapper._self_reads_as_itself`): as itself when read from
#: the class (a method), or, from the class and its instances, as the proxy of the function a static method
#: holds (:meth:`Wrapper.read_as_static_function`).
FROM_CLASS, AS_FUNCTION = "from its class", "as its function"
_bind = wrapt.FunctionWrapper.__get__


class Wrapper(_HostIdentity, wrapt.FunctionWrapper[..., Any]):
    """The object that replaces an instrumented callable: a wrapt proxy (same signature, attributes
    and descriptor behaviour) that also pickles and copies as the plain callable does.

    A method or static method reads as itself where the plain function does, so that ``Sub.method is
    Base.method`` holds for a subclass that does not override it (frameworks detect overrides that way);
    a method read from an instance binds as every wrapt wrapper does."""

    __slots__ = ()
    __bound_function_wrapper__ = BoundWrapper
    #: FROM_CLASS, AS_FUNCTION or None (binds as wrapt does). Not an annotation: any annotation in a proxy's
    #: class body gives the class an ``__annotations__`` that shadows the wrapped function's.
    _self_reads_as_itself = cast("str | None", None)

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        reads_as_itself = self._self_reads_as_itself
        if reads_as_itself is FROM_CLASS:
            if instance is None:
                return self
        elif reads_as_itself is AS_FUNCTION:
            return cast(Any, self)._self_function
        return _bind(self, instance, owner)

    def read_as_static_function(self) -> None:
        """Make this wrapper of a ``staticmethod`` object read, from its class and instances, as a proxy of
        the function it holds, as the static method reads as its function: ``inspect.isfunction``,
        ``iscoroutinefunction``, ``isgeneratorfunction`` and ``isasyncgenfunction`` then answer as for the
        plain one (frameworks decide how to call a tool by them; a proxy of the staticmethod object is
        none of these). One proxy, made here, so that ``Sub.method is Base.method`` holds."""
        function = Wrapper(cast("staticmethod[..., Any]", wrapped_of(self)).__func__, self._self_wrapper)
        self._self_function = function  # wrapt keeps _self_* on the proxy
        self._self_reads_as_itself = AS_FUNCTION


class _Decorated(Wrapper):
    """What a decorator returns. Python names it when a class body defines it (``__set_name__``): it
    is a method or static method then, and reads from its class as itself (see :class:`Wrapper`)."""

    __slots__ = ()  # and no annotations (see Wrapper)

    def __set_name__(self, owner: type, name: str) -> None:
        target = wrapped_of(self)
        if reads_as_itself(target, owner):
            cast(Any, self)._self_handler.method = binds_as_a_method(target, owner)  # set by instrument()
            self._self_reads_as_itself = FROM_CLASS
        elif isinstance(target, staticmethod):
            self.read_as_static_function()
        super().__set_name__(owner, name)  # type: ignore[misc]  # wrapt's (it forwards), not in its stubs


class _CallsDirectly:
    """A proxy of a plain function that wrapt's call takes for a builtin's. wrapt looks up ``__self__`` on the function
    a proxy wraps at every call (a bound method's object, were it one): for a function that fails, and making and
    clearing the AttributeError was most of what the proxy cost per call (0.8 µs against 0.27 µs, ``timeit``). A
    builtin's proxy it calls at once with no object, which is what that look-up finds for a function with no
    ``__self__`` of its own (one set on it later is not looked up). It binds as a function's proxy all the same
    (:meth:`__get__`), and tells wrapt it is one (``_self_binding``): another wrapt wrapper made around it (an
    OpenTelemetry instrumentation's) binds as around a function."""

    __slots__ = ()
    #: It reads from a class as itself, as a function does (see :meth:`__get__`): a method bound from it has it as its
    #: ``__func__`` (see :class:`BoundWrapper`), also when it was put on its class after the ``class`` statement
    _self_reads_as_itself = cast("str | None", FROM_CLASS)

    @property
    def _self_binding(self) -> str:
        return "function"

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        """Read from a class, itself, as a function reads (``Base.method is Base.method``, also for one put on its
        class after the ``class`` statement); from an instance, a method bound as wrapt binds a function's proxy (its
        descriptor reads how the proxy binds off the proxy itself, where it finds "builtin", and would not bind it)."""
        if instance is None:
            return self
        proxy: Any = self
        function, wrapper = proxy._self_binds  # one read (a proxy's attribute costs about 0.1 µs)
        return _bound_wrapper(function.__get__(instance, owner), instance, wrapper, None, "function", self, owner)


class _FunctionProxy(_CallsDirectly, Wrapper):  # type: ignore[override]  # wrapt's stubs: _self_binding is set
    __slots__ = ()


class _DecoratedFunction(_CallsDirectly, _Decorated):  # type: ignore[override]  # (as _FunctionProxy)
    __slots__ = ()


#: The base of wrapt's function proxies, whose initialiser takes how the proxy binds (see :class:`_CallsDirectly`),
#: and what a method read from one is; both take (wrapped, instance, wrapper, enabled, binding, parent, owner).
_FunctionWrapperBase: Any = wrapt.FunctionWrapper.__base__
_bound_wrapper: Any = BoundWrapper


class _CallableObject:
    """The proxy of a callable object whose class defines ``__call__`` in Python: ``proxy.__call__`` reads as the
    object's own bound ``__call__`` (what ``inspect`` says of it: a coroutine function's, a generator function's, its
    signature), traced as a call of the proxy is. Read off the proxy's class, it was wrapt's ``__call__``, a sync
    one: Starlette's ``BackgroundTasks`` and LangChain's ``RunnableLambda``, which look there for an async callable,
    called an ``async def __call__`` object as a sync function and never awaited its coroutine."""

    __slots__ = ()

    def __getattribute__(self, name: str) -> Any:
        if name != "__call__":
            return super().__getattribute__(name)
        program = wrapped_of(self)
        engine = super().__getattribute__("_self_wrapper")

        def traced(wrapped: Callable[..., Any], instance: object, args: Args, kwargs: Kwargs) -> Any:
            return engine(program, None, args, kwargs)  # as a call of the proxy: the object, no instance

        return Wrapper(program.__call__, traced)


class _CallableObjectProxy(_CallableObject, Wrapper):
    __slots__ = ()


class _DecoratedCallableObject(_CallableObject, _Decorated):
    __slots__ = ()


def proxy_of(handler: Handler, func: object, decorated: bool = False) -> Wrapper:
    """The proxy that replaces ``func`` (a :class:`Wrapper`, or a :class:`_Decorated` for a decorator) with
    ``handler``'s wrapper function for its shape; one that wrapt calls as a builtin's when ``func`` is a plain
    function, one whose ``__call__`` reads as the object's when ``func`` is a callable object (see
    :class:`_CallableObject`)."""
    wrapper = wrapper_for(handler, func)
    if _python_call_of(func) is not None:
        proxy_class = _DecoratedCallableObject if decorated else _CallableObjectProxy
        return proxy_class(cast(Callable[..., Any], func), wrapper)
    if not _WRAPT_IN_C or type(func) is not types.FunctionType or "__self__" in func.__dict__:
        return (_Decorated if decorated else Wrapper)(cast(Callable[..., Any], func), wrapper)
    kind = _DecoratedFunction if decorated else _FunctionProxy
    made = kind.__new__(kind, func, wrapper)
    _FunctionWrapperBase.__init__(made, func, None, wrapper, None, "builtin")
    made._self_binds = (func, wrapper)  # what it binds (see _CallsDirectly.__get__); wrapt keeps _self_* on the proxy
    return made


def binds_as_a_method(target: object, owner: type) -> bool:
    """Whether a callable that reads from class ``owner`` as itself (:func:`reads_as_itself`) binds the instance it is
    read from, as a function does (an ``lru_cache``): its calls through the class then have that object first
    (``Class.method(obj, ...)``). One whose ``__get__`` gives itself from an instance too passes none: its first
    argument is no object (it was read as one, and an ``args`` path found nothing)."""
    if type(target) is types.FunctionType:
        return True
    try:
        return bool(cast(Any, type(target)).__get__(target, _AN_INSTANCE, owner) is not target)
    except Exception:
        return True  # as a function would


#: An object a descriptor is read from, to see whether it binds (see :func:`binds_as_a_method`).
_AN_INSTANCE = object()


def reads_as_itself(target: object, owner: type) -> bool:
    """Whether a method in class ``owner`` reads from it as itself: a function, or a callable descriptor that reads
    as a function does (an ``lru_cache`` of a method). So does its wrapper then, ``Class.method is Class.method`` and
    ``Sub.method is Base.method`` holding (frameworks tell an override so). By exact type: another library's wrapt
    proxy of a function binds as that proxy does, its wrapper given the object of ``Class.method(obj, ...)`` as its
    instance."""
    if type(target) is types.FunctionType:
        return True
    get = getattr(type(target), "__get__", None)
    if get is None or isinstance(target, staticmethod | classmethod):
        return False
    try:
        return bool(get(target, None, owner) is target)
    except Exception:
        return False


def instrument(handler: Handler, func: F) -> F:
    """Wrap ``func`` (function, method, classmethod or staticmethod object) with ``handler``.

    A sync function decorated where it is defined (its name not bound to it yet: ``@decorator`` syntax, a
    method in its class body, a local function) becomes a plain function, as under ``functools.wraps``:
    its module or class then holds the wrapper under the function's name, and it pickles by that name as
    a plain function does. Anything else, a function wrapped later (``tool("t")(f)`` while ``f`` still names
    the plain function), a coroutine or generator function, a method or static method object, any other
    callable, becomes a wrapt proxy (:class:`Wrapper`), which pickles by reference to the callable it wraps.
    Above ``@contextmanager`` it decorates the generator under it (see :func:`_over_context_manager`)."""
    if makes_context_manager(func):
        made = _over_context_manager(handler, cast(types.FunctionType, func))
        if made is not None:
            return cast(F, made)
    if _decorated_where_defined(func):
        return cast(F, _plain_sync_function(handler, cast(types.FunctionType, func)))
    wrapper = proxy_of(handler, func, decorated=True)
    wrapper._self_handler = handler  # wrapt keeps _self_* on the proxy
    return cast(F, wrapper)


def _yielding() -> Iterator[None]:
    yield


#: The code of the function ``@contextmanager`` (and ``@asynccontextmanager``) makes of a generator function,
#: and that decorator.
_MANAGER_MAKERS: dict[types.CodeType, Any] = {
    contextlib.contextmanager(_yielding).__code__: contextlib.contextmanager,
    contextlib.asynccontextmanager(_yielding).__code__: contextlib.asynccontextmanager,  # type: ignore[arg-type]
}


def makes_context_manager(func: object) -> bool:
    """Whether ``func`` is what ``@contextmanager`` or ``@asynccontextmanager`` made of a generator function."""
    return type(func) is types.FunctionType and func.__code__ in _MANAGER_MAKERS


def _over_context_manager(handler: Handler, factory: types.FunctionType) -> types.FunctionType | None:
    """A decorator above ``@contextmanager`` decorates the generator function under it, and the result is made
    a context manager again: the call is the ``with`` block, as with the decorator below it (see
    :func:`_traced_generator`). Wrapping the factory timed only the making of the manager, and the block ran in
    no job or agent. None when the factory does not hold its generator function as ``contextlib`` makes it."""
    cells = factory.__closure__
    held: object = cells[0].cell_contents if cells is not None and len(cells) == 1 else None
    if not isinstance(held, types.FunctionType) or getattr(factory, "__wrapped__", None) is not held:
        return None
    generator = cast(types.FunctionType, held)  # (mypy widens it by the identity check)
    if _takes_self(generator):  # defined in a class body with self or cls first: a method (see _Decorated)
        handler.method = True
    make: Callable[[Callable[..., Any]], Callable[..., Any]] = _MANAGER_MAKERS[factory.__code__]
    made = make(instrument(handler, generator))
    _PLAIN_WRAPPERS[made] = weakref.ref(handler)  # a decorator's wrapper (see is_wrapper): a config leaves it be
    _MADE_MANAGERS[made] = factory
    return cast(types.FunctionType, made)
