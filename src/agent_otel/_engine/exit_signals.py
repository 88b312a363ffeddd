"""The signals that end a process, held while it flushes its telemetry on the way out.

An exit flush (at exit, on a signal that ends the process, before ``os._exit()``) lasts up to
``AGENT_OTEL_EXIT_FLUSH_TIMEOUT_MS``. A SIGTERM or SIGHUP that comes meanwhile (``Pool.terminate()``, a supervisor
stopping a program that is leaving) killed the process before it had exported. They are held until the flush is
done, then:

- delivered, where the program still runs code after the flush: at exit, the exit hooks registered before
  ``configure()`` (``multiprocessing``'s, which joins the program's children, ``logging``'s), so the process is still
  there, and its handler (or the default) takes the signal as it would have;
- dropped, when nothing of the program runs after the flush: ``os._exit()`` comes next, the process dies of the
  signal that started the flush, or (under ``agent-otel run``) the program's exit hooks have all run. Without
  agent-otel it would be gone already: it leaves with its own status (a ``Process`` whose target returned reads
  exitcode 0, not -15).

Held by a Python handler of ours, put back when the flush ends: only the main thread can set one, so the flush of
another thread holds nothing. A handler installed outside Python (``faulthandler.register(SIGTERM)``'s), which
``signal.getsignal`` reports as the default, is left as it is, and so is a signal the program ignores. Our handler
acts as the one it stands for wherever it is not holding: in a child another thread forks meanwhile (whose fork
handler also puts that one back), or left in place by a Ctrl-C that interrupted putting it back.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from agent_otel._engine.signal_view import install_handler, installed_handler

#: The signals whose default ends the process that a program is sent to stop it (SIGINT raises
#: KeyboardInterrupt, which ends the flush: the exit goes on without it, as the user asked).
ENDING_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))

#: While a flush holds them: signal -> the handler ours stands for, and the process holding them.
_holding: dict[int, Any] = {}
_holder = 0
#: The signals that came meanwhile, in order; and the handler ours last stood for, per signal.
_held: list[int] = []
_stood_for: dict[int, Any] = {}


@contextmanager
def held_over_exit_flush() -> Iterator[list[int]]:
    """Hold SIGTERM and SIGHUP over the block (an exit flush): it gets the list of those that came meanwhile, to
    :func:`deliver` after it or drop (see the module). Inside another hold, an empty list: the outer one has them."""
    global _holder, _held
    if _holding and _holder == os.getpid():
        yield []
        return
    _holding.clear()
    _held = []
    _holder = os.getpid()
    try:
        for signum in ENDING_SIGNALS:
            try:
                current = installed_handler(signum)
            except ValueError:
                break
            if current in (signal.SIG_IGN, None) or (current is signal.SIG_DFL and caught_outside_python(signum)):
                continue
            _holding[signum] = _stood_for[signum] = current  # first: a signal in between finds what it stands for
            try:
                install_handler(signum, _hold)
            except ValueError:  # not the main thread: signal handlers cannot be set here
                del _holding[signum]
                break
        yield _held
    finally:
        _put_back()


def deliver(signals: list[int]) -> None:
    """Send the held ``signals`` again, in the order they came: all pending first, on this (the main) thread, then let
    through one at a time, each handler run (by Python, at once) or default action taken before the next. One whose
    handler raises leaves the others pending, to run at Python's next check, as it runs the handlers of signals that
    come together. A signal the main thread blocks goes to the process, for a thread that takes it, as it came."""
    if not signals:
        return
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, set(signals))
    try:
        for signum in signals:
            if signum in mask:
                os.kill(os.getpid(), signum)
            else:
                signal.pthread_kill(threading.get_ident(), signum)
        for signum in signals:
            if signum not in mask:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signum})
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _put_back() -> None:
    while _holding:
        signum, previous = _holding.popitem()
        install_handler(signum, previous)


def _hold(signum: int, frame: FrameType | None) -> None:
    if signum in _holding and _holder == os.getpid():
        if signum not in _held:
            _held.append(signum)
        return
    _act_as(_stood_for.get(signum, signal.SIG_DFL), signum, frame)


def _act_as(handler: Callable[[int, FrameType | None], Any] | int | None, signum: int,
            frame: FrameType | None) -> None:
    """What ``handler`` does with the signal: where ours is left in place after its flush, it is that handler."""
    if callable(handler):
        handler(signum, frame)
    elif handler != signal.SIG_IGN:  # the default: the signal ends the process
        install_handler(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def _after_fork_in_child() -> None:
    """A child forked while a flush holds the signals: its handlers are the ones ours stood for."""
    if _holding:
        try:
            _put_back()
        except ValueError:  # forked off the main thread: signal handlers cannot be set there
            _holding.clear()
    _held.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def caught_outside_python(signum: int) -> bool:
    """Whether a handler that Python does not know of catches ``signum`` (``faulthandler.register()``'s, a C
    library's): ``signal.getsignal()`` says SIG_DFL for it, and installing ours replaced it (a worker's stack dump on
    SIGTERM was lost). Read off ``/proc/self/status``; False where there is none."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    except (OSError, ValueError, IndexError):
        pass
    return False
