"""Whether the running thread is doing agent-otel's own work.

A wrapped function called from there (by agent-otel's recording of a call and the OpenTelemetry SDK code it runs, by
its exit flush, its fork handlers and the launcher's setup) is not the program's call, and runs as if it were not
wrapped. A configured target that the SDK calls itself (``threading:Lock``, which a span's ``__init__`` makes;
``os:getpid``, which the batch span processor asks at each span's end) recorded those calls, each of them starting a
span that called it again: the program hung, at 100% of a core, deaf to SIGTERM.

Set for a piece of work, never for a thread's life: under gevent's monkey-patching agent-otel's threads are greenlets of
the program's thread, and share this thread-local (made before the patching) with the program. What a signal handler of
the program runs while the flag is set (a few microseconds of each call) is not recorded either.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class _OwnWork(threading.local):
    active = False


#: Read on every wrapped call (an attribute of a thread-local: the cheapest per-thread state).
OWN_WORK = _OwnWork()


@contextmanager
def own_work() -> Iterator[None]:
    """Run the block as agent-otel's own work (nested blocks too; a block of it inside another leaves it on)."""
    was = OWN_WORK.active
    OWN_WORK.active = True
    try:
        yield
    finally:
        OWN_WORK.active = was

