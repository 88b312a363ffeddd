"""The signals that end a process, held while it flushes its telemetry on the way out.

An exit flush (at exit, on a signal that ends the process, before ``os._exit()``) lasts up to
``AGENT_OTEL_EXIT_FLUSH_TIMEOUT_MS``. A SIGTERM or SIGHUP that comes meanwhile (``Pool.terminate()``, a supervisor
stopping a program that is leaving) killed the process before it had exported. They are held until the flush is
done, then:

- delivered, at exit: the exit hooks registered before ``configure()`` still run after the flush
  (``multiprocessing``'s, which joins the program's children, ``logging``'s), so the process is still there, and its
  handler (or the default) takes the signal as it would have;
- dropped, when the process leaves right after: ``os._exit()`` comes next, or it dies of the signal that started
  the flush. Without agent-otel it would be gone already: it leaves with its own status (a ``Process`` whose target
  returned reads exitcode 0, not -15).

Held by a Python handler of ours, put back when the flush ends: only the main thread can set one, so the flush of
another thread holds nothing. A handler installed outside Python (``faulthandler.register(SIGTERM)``'s), which
``signal.getsignal`` reports as the default, is left as it is, and so is a signal the program ignores.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

#: The signals whose default ends the process that a program is sent to stop it (SIGINT raises
#: KeyboardInterrupt, which ends the flush: the exit goes on without it, as the user asked).
_HELD = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


@contextmanager
def held_over_exit_flush(leaving: bool) -> Iterator[None]:
    """Hold SIGTERM and SIGHUP over the block (an exit flush); then deliver them, or drop them when ``leaving``
    (see the module)."""
    held: list[int] = []
    pid = os.getpid()

    def hold(signum: int, frame: FrameType | None) -> None:
        if os.getpid() != pid:  # a child another thread forked meanwhile: the default, as it would have
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        if signum not in held:
            held.append(signum)

    replaced: dict[int, object] = {}
    for signum in _HELD:
        try:
            current = signal.getsignal(signum)
            if current in (signal.SIG_IGN, None) or (current is signal.SIG_DFL and caught_outside_python(signum)):
                continue
            signal.signal(signum, hold)
            replaced[signum] = current
        except ValueError:  # not the main thread: signal handlers cannot be set here
            break
    try:
        yield
    finally:
        for signum, previous in replaced.items():
            signal.signal(signum, previous)  # type: ignore[arg-type]  # what getsignal() gave
        if not leaving:
            for signum in held:
                os.kill(os.getpid(), signum)


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
