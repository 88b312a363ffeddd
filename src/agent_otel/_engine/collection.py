"""Whether the garbage collector is running, from ``gc.callbacks``.

Code a collection runs (a finalizer; a generator closed because it was freed in a reference cycle) runs inside it.
There agent-otel sets no context variable: CPython 3.11 can fail a later ``contextvars.copy_context()`` of the
program with ``SystemError: error return without exception set``, or crash, when context variables are set and
reset by code a collection runs (a decorated generator closed in a cycle did so around the program's cleanup); and
a span ending there may have interrupted the SDK's recording on the same thread, holding a lock recording takes.

The callbacks are two of ``dict``'s own methods, not Python functions: the interpreter runs a signal's Python handler
at the next Python code it runs, and a collection that called Python code of ours ran the program's Ctrl-C handler
there, where the collector prints the ``KeyboardInterrupt`` it raised as ignored and drops it (the program went on,
a trio program for good). A collection runs no Python code of ours.
"""

from __future__ import annotations

import gc

#: The collector's phases, the last one it called back with last: ``pop`` then ``__setitem__`` moves a phase to the
#: end. Its "start" entry is the running (or last) collection's own info dict.
_phases: dict[str, dict[str, int]] = {}
gc.callbacks += [_phases.pop, _phases.__setitem__]


def running() -> bool:
    """Whether a collection is running: between its "start" and "stop" callbacks."""
    phases = tuple(_phases)  # (one C call: a collection on another thread cannot move the phases in its middle)
    return bool(phases) and phases[-1] == "start"


def current() -> object:
    """The running collection (its "start" info, an object of its own), None outside one."""
    return _phases.get("start") if running() else None
