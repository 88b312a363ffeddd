"""Whether the garbage collector is running, from ``gc.callbacks``.

Code a collection runs (a finalizer; a generator closed because it was freed in a reference cycle) runs inside it.
There agent-otel sets no context variable: CPython 3.11 can fail a later ``contextvars.copy_context()`` of the
program with ``SystemError: error return without exception set``, or crash, when context variables are set and
reset by code a collection runs (a decorated generator closed in a cycle did so around the program's cleanup); and
a span ending there may have interrupted the SDK's recording on the same thread, holding a lock recording takes.
"""

from __future__ import annotations

import gc

#: A collection is running: between its "start" and "stop" callbacks.
running = False


def _note(phase: str, info: dict[str, int]) -> None:
    global running
    running = phase == "start"


gc.callbacks.append(_note)
