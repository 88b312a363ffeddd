"""A process that ends with no exit hook exports what it recorded as soon as no call of agent-otel's runs in it.

Ray ends its worker processes with no exit hook and no signal that Python sees (the raylet stops them as the driver
disconnects: ``ray.shutdown()``, the end of the driver's script): what a worker recorded since its exporters' last
periodic export was lost, every span and metric of a short job. In such a process, once ``configure()`` set it up
(under ``agent-otel run`` every Ray worker is), each time the last call of ours running in it ends (a task's or an
actor method's own, usually), a thread of ours exports what is queued, as a periodic export would (with its retries
and timeouts). The task does not wait for it (an actor's event loop neither): the export begins as the task's result
goes back to the driver, and a worker stopped before it is done loses what it had not sent. Calls that end while it
runs are exported by the next one, right after it: one at a time, whatever the Collector does.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable

from agent_otel._engine.self_telemetry import report_error
from agent_otel._engine.threads import start_thread
from agent_otel._engine.wrappers import call_when_idle

#: The script Ray starts each worker process with.
_RAY_WORKER_SCRIPT = os.path.join("ray", "_private", "workers", "default_worker.py")


def ends_without_exit_hooks() -> bool:
    """Whether this process is one that ends with no exit hook: a Ray worker."""
    script = sys.argv[0] if sys.argv and isinstance(sys.argv[0], str) else ""
    return script.endswith(os.sep + _RAY_WORKER_SCRIPT)


class _Flusher:
    """The engine's hook (called as the last running call ends, on the program's thread): wakes its thread, which
    flushes; the wake-ups that come while it flushes make one more flush, not one each."""

    def __init__(self, flush: Callable[[], object]) -> None:
        self.flush = flush
        self.wanted = threading.Event()
        self.stopped = False
        self.thread: threading.Thread | None = None
        self._starting = threading.Lock()

    def __call__(self) -> None:
        self.wanted.set()
        if self.thread is None:
            with self._starting:
                if self.thread is None and not self.stopped:
                    try:
                        self.thread = start_thread(self._run, "agent-otel-idle-flush")
                    except RuntimeError as exc:  # the interpreter is finalizing
                        report_error("export.idle_flush", exc)

    def _run(self) -> None:
        while True:
            self.wanted.wait()
            self.wanted.clear()
            if self.stopped:
                return
            try:
                self.flush()
            except Exception as exc:
                report_error("export.idle_flush", exc)

    def stop(self) -> None:
        self.stopped = True
        self.wanted.set()


_flusher: _Flusher | None = None


def flush_when_idle(flush: Callable[[], object]) -> None:
    """In such a process, ``flush`` in a thread of ours each time the last call of ours running in it ends."""
    global _flusher
    if ends_without_exit_hooks():
        stop_flushing_when_idle()
        _flusher = _Flusher(flush)
        call_when_idle(_flusher)


def stop_flushing_when_idle() -> None:
    global _flusher
    call_when_idle(None)
    flusher, _flusher = _flusher, None
    if flusher is not None:
        flusher.stop()
