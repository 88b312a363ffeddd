"""Per-run sampling of this process's CPU time and resident memory (psutil).

Resident memory is read by one daemon thread for every sampled run that is active: it reads RSS every
``interval_s`` (the shortest any active run asks for) and gives each run the highest value seen while it runs.
It starts with the first active run and ends with the last one, also on exception, so nothing runs when no
sampled run is active. One thread for all, not one a run: a thousand evaluations run at once by an asyncio
program started a thousand threads, each waking every 50 ms, which held the event loop for seconds and made
every run's duration several times its work. Process-wide CPU and memory metrics come from
opentelemetry-instrumentation-system-metrics.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

import psutil

from agent_otel import semconv
from agent_otel._engine.threads import OwnThread, start_thread

_process = psutil.Process()


def _own_process() -> None:
    """A forked child measures itself: the ``psutil.Process`` made at import kept its parent's pid, and a child's
    call reported the parent's memory. The parent's sampling thread is not the child's: the child's next run starts
    its own (a run in flight at the fork reads its memory when it ends)."""
    global _process
    _process = psutil.Process()
    _active.lock = threading.Lock()
    _active.thread = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_own_process)


def _rss() -> int | None:
    try:
        return int(_process.memory_info().rss)
    except psutil.Error:
        return None


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


class _ActiveRuns:
    """The samplers of the runs active now, and the one thread that reads the memory for all of them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.samplers: set[ResourceSampler] = set()
        # the running thread and the event that ends it: each thread has its own, so that one ending as the last
        # run stops is never told to go on by a run that starts meanwhile (that run starts a thread of its own)
        self.thread: tuple[OwnThread, threading.Event] | None = None

    def add(self, sampler: ResourceSampler) -> None:
        with self.lock:
            if self.thread is None:  # (raises at the interpreter's exit, before the sampler is kept)
                stopped = threading.Event()
                self.thread = (start_thread(lambda: self._sample_until(stopped), _THREAD_NAME), stopped)
            self.samplers.add(sampler)

    def remove(self, sampler: ResourceSampler) -> None:
        """Takes ``sampler`` out; the last one out ends the thread and waits for it (it is waiting on its event, so
        it ends at once), so that no thread of ours outlives the runs that asked for one."""
        with self.lock:
            self.samplers.discard(sampler)
            ending = self.thread if not self.samplers else None
            if ending is not None:
                self.thread = None
        if ending is not None:
            thread, stopped = ending
            stopped.set()
            if thread is not threading.current_thread():
                thread.join_own()

    def _sample_until(self, stopped: threading.Event) -> None:
        while True:
            with self.lock:
                interval = min((sampler.interval_s for sampler in self.samplers), default=_INTERVAL_S)
            if stopped.wait(interval):
                return
            rss = _rss()
            if rss is not None:
                with self.lock:
                    for sampler in self.samplers:
                        sampler.note(rss)


_THREAD_NAME = "agent-otel-resource-sampler"
_INTERVAL_S = 0.05
_active = _ActiveRuns()


class ResourceSampler:
    """Samples until :meth:`stop`; ``stop()`` returns the usage and may be called more than once."""

    def __init__(self, interval_s: float = _INTERVAL_S) -> None:
        self.interval_s = interval_s
        self._start_wall = time.perf_counter()
        self._start_cpu = _cpu_time()
        self._peak = _rss() or 0
        self._usage: ResourceUsage | None = None
        self._running = True
        _active.add(self)

    def note(self, rss: int) -> None:
        """A reading of the process's memory while this run is active (the shared thread's, under its lock)."""
        if rss > self._peak:
            self._peak = rss

    @property
    def running(self) -> bool:
        return self._running

    @property
    def peak_so_far(self) -> int:
        """The highest resident memory read since the run started."""
        return self._peak

    def stop(self) -> ResourceUsage:
        if self._usage is None:
            self._running = False
            _active.remove(self)
            rss = _rss()
            if rss is not None:
                self.note(rss)
            self._usage = ResourceUsage(self._peak, max(0.0, _cpu_time() - self._start_cpu),
                                        time.perf_counter() - self._start_wall)
        return self._usage
