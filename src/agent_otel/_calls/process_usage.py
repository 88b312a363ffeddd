"""Per-run sampling of this process's CPU time and resident memory (psutil).

A sampler exists only while a run that asked for it is active: a daemon thread reads RSS every
``interval_s`` and stops when the run ends, also on exception. Nothing runs when no sampled run is
active. Process-wide CPU and memory metrics come from opentelemetry-instrumentation-system-metrics.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

import psutil

from agent_otel import semconv
from agent_otel._engine.threads import start_thread

_process = psutil.Process()


def _own_process() -> None:
    """A forked child measures itself: the ``psutil.Process`` made at import kept its parent's pid, and a child's
    call reported the parent's memory."""
    global _process
    _process = psutil.Process()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_own_process)


@dataclass(frozen=True)
class ResourceUsage:
    peak_rss_bytes: int
    cpu_time_s: float
    wall_s: float

    @property
    def cpu_utilization(self) -> float:
        """Average CPU utilisation over the run, in cores (1.0 = one core busy throughout)."""
        return self.cpu_time_s / self.wall_s if self.wall_s > 0 else 0.0

    def span_attributes(self) -> dict[str, float | int]:
        return {semconv.RESOURCE_MEMORY_PEAK: self.peak_rss_bytes,
                semconv.RESOURCE_CPU_TIME: round(self.cpu_time_s, 6),
                semconv.RESOURCE_CPU_UTILIZATION: round(self.cpu_utilization, 6)}


def _cpu_time() -> float:
    """User plus system CPU time of every thread of the process, to the nanosecond: psutil's cpu_times()
    counts clock ticks (10 ms), which made a short run's CPU time 0 or 10 ms and its utilisation 0 or
    more cores than the host has."""
    return time.process_time()


class ResourceSampler:
    """Samples until :meth:`stop`; ``stop()`` returns the usage and may be called more than once."""

    def __init__(self, interval_s: float = 0.05) -> None:
        self._interval_s = interval_s
        self._stopped = threading.Event()
        self._start_wall = time.perf_counter()
        self._start_cpu = _cpu_time()
        self._peak = _process.memory_info().rss
        self._usage: ResourceUsage | None = None
        self._thread = start_thread(self._run, "agent-otel-resource-sampler")

    def _run(self) -> None:
        while not self._stopped.wait(self._interval_s):
            self._sample()

    def _sample(self) -> None:
        try:
            rss = _process.memory_info().rss
        except psutil.Error:
            return
        if rss > self._peak:
            self._peak = rss

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> ResourceUsage:
        if self._usage is None:
            self._stopped.set()
            self._thread.join_own()
            self._sample()
            self._usage = ResourceUsage(self._peak, max(0.0, _cpu_time() - self._start_cpu),
                                        time.perf_counter() - self._start_wall)
        return self._usage
