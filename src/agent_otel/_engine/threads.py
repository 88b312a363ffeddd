"""agent-otel's background threads leave the host's signals to the host's threads.

The kernel hands a signal sent to the process (``kill``, ``Pool.terminate()``, Ctrl-C) to any one of its
threads that does not block it. Python runs the handler in the main thread, and only wakes that thread when
the signal lands there: taken by an exporter's thread, a SIGTERM or SIGINT leaves a main thread blocked on a
lock or a semaphore blocked for good. A ``multiprocessing`` pool worker waiting for its next task then never
dies, and the parent's ``Pool.terminate()`` waits for it for ever. Without agent-otel those threads do not
exist, so every such signal reaches a thread of the host's. Threads started inside :func:`host_signals_blocked`
(the SDK's export threads that ``configure()`` starts, our /metrics server and samplers) block them.
"""

from __future__ import annotations

import _thread
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from agent_otel._engine.own_work import OWN_WORK

#: The signals sent to a process as a whole that a program may handle; not the ones a fault raises in the thread
#: that caused it (SIGSEGV, SIGFPE...), nor SIGPIPE, which a write raises in its own thread.
HOST_SIGNALS = frozenset(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM",
                                        "SIGCHLD", "SIGWINCH", "SIGCONT", "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGIO",
                                        "SIGURG", "SIGXCPU", "SIGXFSZ", "SIGVTALRM", "SIGPROF", "SIGPWR")
    if hasattr(signal, name)
)


@contextmanager
def host_signals_blocked() -> Iterator[None]:
    """Threads started in this block (they inherit the starting thread's signal mask) block
    :data:`HOST_SIGNALS`. The calling thread gets its own mask back at the end: a signal sent meanwhile waits
    until then, and is delivered as before."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, HOST_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class OwnThread(threading.Thread):
    """A daemon thread of ours (the /metrics server, a resource sampler, a worker's SIGTERM watcher), listed by
    ``threading.enumerate()`` as any thread is. Joined by the program, it returns at once: without agent-otel the thread
    would not exist, and a program that joins every thread it finds (``for t in threading.enumerate(): t.join()``)
    waited for the /metrics server, which runs for the process's life, for ever. agent-otel joins it with
    :meth:`join_own`."""

    def join(self, timeout: float | None = None) -> None:
        return None

    def join_own(self, timeout: float | None = None) -> None:
        threading.Thread.join(self, timeout)


def start_thread(target: Callable[[], object], name: str) -> OwnThread:
    """Start a daemon thread of ours that blocks :data:`HOST_SIGNALS`. RuntimeError once the interpreter is
    finalizing (a shutdown() that the garbage collector runs then): on 3.11 such a thread never starts, and
    ``start()`` waited for it for ever (Python 3.12 raises the same)."""
    if sys.is_finalizing():
        raise RuntimeError("can't create new thread at interpreter shutdown")
    thread = OwnThread(target=target, name=name, daemon=True)
    with host_signals_blocked():
        thread.start()
    return thread


class ExitThread:
    """A thread of ours for the work of a process's end (the exit flush, ending the calls a signal interrupts),
    started without ``threading``'s hooks: a profile or trace function the program set for every thread
    (``threading.setprofile``) would run in it after the program's own atexit handlers, which may have closed
    what it writes to (its log): its error, raised into the thread before our code ran, printed a traceback per
    thread and lost the flush, uncounted. Without agent-otel no thread starts then. It blocks
    :data:`HOST_SIGNALS`, as :func:`start_thread`'s do, and is not listed by ``threading.enumerate()``."""

    def __init__(self, target: Callable[[], object], name: str) -> None:
        if sys.is_finalizing():
            raise RuntimeError("can't create new thread at interpreter shutdown")
        self.name = name
        self._done = threading.Event()

        def run() -> None:
            # (see own_work; set for the work, not for the thread's life: under gevent's monkey-patching this thread is
            # a greenlet, sharing the program's thread and its thread-locals)
            was, OWN_WORK.active = OWN_WORK.active, True
            try:
                target()
            finally:
                # threading.current_thread() called in it (logging does, per record) registered a dummy Thread,
                # which Python 3.11 never drops: the program's threading.enumerate() would list it for ever
                getattr(threading, "_active", {}).pop(_thread.get_ident(), None)
                OWN_WORK.active = was
                self._done.set()

        with host_signals_blocked():
            _thread.start_new_thread(run, ())

    def join(self, timeout: float | None = None) -> None:
        self._done.wait(timeout)

    def is_alive(self) -> bool:
        return not self._done.is_set()
