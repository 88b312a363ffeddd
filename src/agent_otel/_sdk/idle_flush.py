"""A process that ends with no exit hook exports what it recorded as soon as no call of agent-otel's runs in it.

Ray ends its worker processes with no exit hook and no signal that Python sees (the raylet stops them as the driver
disconnects: ``ray.shutdown()``, the end of the driver's script): what a worker recorded since its exporters' last
periodic export was lost, every span and metric of a short job. In such a process, once ``configure()`` set it up
(under ``agent-otel run`` every Ray worker is), what is queued is exported each time the last call of ours running in
it ends (a task's or an actor method's own, usually), before Ray hands the task's result back: within the exit flush
budget, each exporter trying once, as at exit.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable

from agent_otel._engine.self_telemetry import report_error
from agent_otel._engine.wrappers import call_when_idle

#: The script Ray starts each worker process with.
_RAY_WORKER_SCRIPT = os.path.join("ray", "_private", "workers", "default_worker.py")


def ends_without_exit_hooks() -> bool:
    """Whether this process is one that ends with no exit hook: a Ray worker."""
    script = sys.argv[0] if sys.argv and isinstance(sys.argv[0], str) else ""
    return script.endswith(os.sep + _RAY_WORKER_SCRIPT)


def flush_when_idle(flush: Callable[[], object]) -> None:
    """In such a process, ``flush`` each time the last call of ours running in it ends."""
    if ends_without_exit_hooks():
        call_when_idle(functools.partial(_flush, flush))


def stop_flushing_when_idle() -> None:
    call_when_idle(None)


def _flush(flush: Callable[[], object]) -> None:
    try:
        flush()
    except Exception as exc:
        report_error("export.idle_flush", exc)
