"""The program sees the default where agent-otel's signal handler stands for it.

agent-otel handles SIGTERM and SIGHUP where the program leaves them to the default (``agent-otel run``'s flush, a
pool worker's). The program read ours from ``signal.getsignal()`` and from what ``signal.signal()`` returned: a
handler that chains to the one it replaced when that is callable, else exits (CrewAI's telemetry raises
``SystemExit(0)`` over the default) called ours, which leaves a signal the program has taken over to the program, and
SIGTERM no longer stopped it; and a program that installs its handler only over the default installed none. The
program's two functions now show ``SIG_DFL`` for ours; and under ``agent-otel run``, ``signal.signal(signum,
SIG_DFL)`` puts the launcher's back, the default with its flush (a program that saved the handler it replaced and puts
it back keeps the flush). agent-otel's own code reads and sets the handlers as they are: :func:`installed_handler`,
:func:`install_handler`. (The flush ``configure()`` puts in front of a program's own SIGTERM handler is shown as it
is, a callable that runs the program's.)
"""

from __future__ import annotations

import functools
import os
import signal
import types
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeAlias, cast

Handler: TypeAlias = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None

#: The interpreter's own, as the module had them before anything of ours replaced them.
installed_handler = signal.getsignal
install_handler = signal.signal

#: Signal number -> our handler that stands for its default action in this process; and the one that the program's
#: ``signal.signal(signum, SIG_DFL)`` puts back.
_defaults: dict[int, Callable[[int, FrameType | None], Any]] = {}
_put_back_for_default: dict[int, tuple[int, Callable[[int, FrameType | None], Any]]] = {}


def stand_in_for_default(signum: int, handler: Callable[[int, FrameType | None], Any], *, put_back: bool) -> None:
    """Install ``handler`` for ``signum`` in place of its default, shown to the program as the default; ``put_back``:
    where the program sets the default, ``handler`` is set (``agent-otel run``'s, in the program's process; not a pool
    worker's, whose watcher interrupts the main thread for as long as its handler is set, and whose pool puts the
    default back to die of a second signal as its exit goes on, nor in a process forked from the program)."""
    _defaults[signum] = handler
    if put_back:
        _put_back_for_default[signum] = (os.getpid(), handler)
    _show_the_programs_own()
    install_handler(signum, handler)


def _show_the_programs_own() -> None:
    """From now on, the program's ``signal.getsignal()`` and ``signal.signal()`` show it the handlers it would have
    without agent-otel (see the module). Idempotent."""
    if signal.getsignal is not _programs_getsignal:
        signal.getsignal = cast(Any, _programs_getsignal)
        signal.signal = cast(Any, _programs_signal)


def _seen_as(signum: int, handler: Handler) -> Handler:
    """What the program would have where ``handler`` is installed: the default for one of ours standing for it.
    Ours that flushes before the program's handler is shown as it is: a handler that chains to it, or a program that
    puts it back after setting another, keeps the flush (shown the program's own, it lost it)."""
    if handler is _defaults.get(signum):
        return signal.SIG_DFL
    if type(handler) is types.FunctionType and handler.__dict__.get("flushes_agent_otel", False):  # (a program's
        return signal.SIG_DFL  # object is not asked: its __getattr__ may raise anything)
    return handler


@functools.wraps(installed_handler)
def _programs_getsignal(signalnum: int) -> Handler:  # (keywords too, as signal.py's)
    return _seen_as(signalnum, installed_handler(signalnum))


@functools.wraps(install_handler)
def _programs_signal(signalnum: int, handler: Handler) -> Handler:
    pid, ours = _put_back_for_default.get(signalnum, (0, None))
    if ours is not None and pid == os.getpid() and not callable(handler) and handler == signal.SIG_DFL:
        handler = ours  # the default, with its flush
    return _seen_as(signalnum, install_handler(signalnum, handler))


_programs_getsignal.__module__ = _programs_signal.__module__ = "signal"  # pickled by name, as the module's are
