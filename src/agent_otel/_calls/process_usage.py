"""Per-run sampling of this process's CPU time and resident memory (psutil).

Resident memory is read by one daemon thread for every sampled run that is active: it reads RSS every
``interval_s`` (the shortest any active run asks for, at most 50 ms) and gives each run the highest value seen while
it runs.
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
    call reported the parent's memory. The parent's sampling thread and runs are not the child's (a run in flight at
    the fork is its parent's to record): the child's next run starts a thread of its own, which its last run ends."""
    global _process, _active
    _process = psutil.Process()
    _active = _ActiveRuns()


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
    """The samplers of the runs active now, and the one thread that reads the memory for all of them.

    The thread never takes the lock: a garbage collection can run in any thread that allocates, and a sampled
    generator the program dropped in a cycle then ends its run there (``remove``). With the thread holding the lock
    while it allocated, such a run ending in the thread waited for the lock the thread held, and every later sampled
    run for it. The lock is re-entrant for the same reason in ``add`` and ``remove``, and the set is read as a
    snapshot, retried if a run ended meanwhile."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.samplers: set[ResourceSampler] = set()
        # the running thread and the event that ends it: each thread has its own, so that one ending as the last
        # run stops is never told to go on by a run that starts meanwhile (that run starts a thread of its own)
        self.thread: tuple[OwnThread, threading.Event] | None = None

    def add(self, sampler: ResourceSampler) -> None:
        """Takes ``sampler`` in (before any thread starts: a run ending meanwhile does not find the set empty); its
        first reading is the runs' already active too (as its last: see remove)."""
        with self.lock:
            for active in _snapshot(self.samplers):
                active.note_under_lock(sampler.peak_so_far)
            self.samplers.add(sampler)
            if self.thread is None:
                stopped = threading.Event()
                try:
                    self.thread = (start_thread(lambda: self._sample_until(stopped), _THREAD_NAME), stopped)
                except RuntimeError:  # the interpreter's exit: no thread, and the sampler is not kept
                    self.samplers.discard(sampler)
                    raise

    def remove(self, sampler: ResourceSampler, rss: int | None) -> None:
        """Takes ``sampler`` out, with its last reading ``rss``, which the runs still active get too (a nested run's
        peak is its enclosing run's as well: the inner run's final reading made it read higher than the outer one).
        The last one out ends the thread and waits for it (it is waiting on its event and takes no lock, so it ends
        at once), so that no thread of ours outlives the runs that asked for one."""
        with self.lock:
            self.samplers.discard(sampler)
            if rss is not None:
                sampler.note_under_lock(rss)
                for active in _snapshot(self.samplers):
                    active.note_under_lock(rss)
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
            # (at most the default: a run asking for readings more often may start while the thread waits)
            if stopped.wait(min([_INTERVAL_S, *(sampler.interval_s for sampler in _snapshot(self.samplers))])):
                return
            reading = _snapshot(self.samplers)  # the runs active before the reading: not one that starts after it
            rss = _rss()
            if rss is not None:
                for sampler in reading:
                    sampler.note(rss)


def _snapshot(samplers: set[ResourceSampler]) -> tuple[ResourceSampler, ...]:
    while True:
        try:
            return tuple(samplers)
        except RuntimeError:  # a run ended while it was read (a collection its copy started): read it again
            continue


_THREAD_NAME = "agent-otel-resource-sampler"
_INTERVAL_S = 0.05
_active = _ActiveRuns()


class ResourceSampler:
    """Samples until :meth:`stop`; ``stop()`` returns the usage and may be called more than once."""

    def __init__(self, interval_s: float = _INTERVAL_S) -> None:
        self.interval_s = interval_s
        self._start_wall = time.perf_counter()
        self._start_cpu = _cpu_time()
        # The highest reading, in two fields with one writer each: the runs' first and last readings, given under the
        # lock, and the sampling thread's, which takes none. One field written by both lost a higher reading when the
        # thread's compare-then-store of a lower one straddled the other's store.
        self._peak = _rss() or 0
        self._sampled_peak = 0
        self._usage: ResourceUsage | None = None
        self._running = True
        _active.add(self)

    def note(self, rss: int) -> None:
        """The sampling thread's reading of the process's memory while this run is active."""
        if rss > self._sampled_peak:
            self._sampled_peak = rss

    def note_under_lock(self, rss: int) -> None:
        """A run's first or last reading (its own, or another's that started or ended while this one is active),
        given while the active runs' lock is held."""
        if rss > self._peak:
            self._peak = rss

    @property
    def running(self) -> bool:
        return self._running

    @property
    def peak_so_far(self) -> int:
        """The highest resident memory read since the run started."""
        return max(self._peak, self._sampled_peak)

    def stop(self) -> ResourceUsage:
        if self._usage is None:
            self._running = False
            _active.remove(self, _rss())
            self._usage = ResourceUsage(self.peak_so_far, max(0.0, _cpu_time() - self._start_cpu),
                                        time.perf_counter() - self._start_wall)
        return self._usage
