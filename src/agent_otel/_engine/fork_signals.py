"""Signals that agent-otel handles in place of the default are held over ``os.fork()``.

Python drops the signals that reach a forked child before its fork handlers run (it clears what is pending, so
that the parent's signals are not handled twice). Where the program leaves a signal to the default, the kernel
ends the child instead, at once. So with a Python handler of ours in place of that default (``agent-otel run``'s
SIGTERM and SIGHUP flush, a ``multiprocessing`` worker's SIGTERM), a child sent the signal as soon as it was forked
ran on (58 children in 60 under ``agent-otel run``) where without agent-otel it died. The signal is blocked from
just before the fork until the child's handlers have run (the child's telemetry set up again, the handler put
back where the child is left to the default), then delivered.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from typing import Any

from agent_otel._engine.self_telemetry import report_error
from agent_otel._engine.signal_view import installed_handler

#: Signal number → the handlers of ours, held over a fork while one of them is the one installed (a worker's under
#: ``agent-otel run`` replaces the launcher's, which its own children get back); and the steps a forked child takes
#: before the signals are let through.
_handlers: dict[int, set[Callable[..., Any]]] = {}
_in_child: list[Callable[[], None]] = []
#: Per thread that forks (its ident, the same in the child), the signals its hold blocked: the mask is the thread's
#: own, and two threads forking at once each let through only what they held (one saved value for the process
#: left SIGTERM blocked for good in one of them, and in every child it forked after).
_held_by_thread: dict[int, set[int]] = {}
_registered = False


def hold_over_fork(signum: int, handler: Callable[..., Any], in_child: Callable[[], None] | None = None) -> None:
    """Hold ``signum`` over each ``os.fork()`` while ``handler`` is its handler; ``in_child`` (never raising) runs
    in the child first."""
    global _registered
    _handlers.setdefault(signum, set()).add(handler)
    if in_child is not None and in_child not in _in_child:
        _in_child.append(in_child)
    if not _registered and hasattr(os, "register_at_fork"):
        _registered = True
        # handlers registered earlier (configure()'s, which sets the child's telemetry up again) run before ours
        os.register_at_fork(before=_hold, after_in_parent=_release, after_in_child=_release_in_child)


def _hold() -> None:
    try:
        held = {signum for signum, handlers in _handlers.items() if installed_handler(signum) in handlers}
        if held:
            already = signal.pthread_sigmask(signal.SIG_BLOCK, held)
            _held_by_thread[threading.get_ident()] = held - {int(signum) for signum in already}
    except (ValueError, OSError) as exc:
        report_error("fork.signals", exc)


def _release() -> None:
    """The signals this thread's hold blocked, unblocked: one held meanwhile is delivered now. A signal the thread
    had blocked already stays blocked."""
    _unblock(_held_by_thread.pop(threading.get_ident(), None))


def _release_in_child() -> None:
    try:
        for step in _in_child:
            step()
    finally:
        held = _held_by_thread.pop(threading.get_ident(), None)
        _held_by_thread.clear()  # the holds of the parent's other threads, which do not exist here
        _unblock(held)


def _unblock(held: set[int] | None) -> None:
    if held:
        try:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, held)
        except (ValueError, OSError) as exc:
            report_error("fork.signals", exc)
