"""Functions run in other processes by the carrier tests (importable by spawned children)."""

from __future__ import annotations

import multiprocessing
import os
from multiprocessing.managers import BaseManager
from typing import Any

from opentelemetry.sdk.trace import TracerProvider

import agent_otel
from tests.support.polling import wait_until


def child_view(tag: str = "") -> dict[str, Any]:
    """What a child sees: the job id, and the parent of a span it starts with its own SDK."""
    span = TracerProvider().get_tracer("child").start_span("child work " + tag)
    parent = span.parent
    span.end()
    return {
        "job": agent_otel.current_job_id(),
        "trace_id": format(span.get_span_context().trace_id, "032x"),
        "parent_span_id": format(parent.span_id, "016x") if parent else None,
    }


def child_view_to_queue(queue: Any, tag: str = "") -> None:
    queue.put(child_view(tag))


def child_conversation(tag: str = "") -> dict[str, Any]:
    """What a child sees of the conversation and the job it was started in."""
    return {"conversation": agent_otel.current_conversation_id(), "job": agent_otel.current_job_id(), "tag": tag}


def child_conversation_to_queue(queue: Any, tag: str = "") -> None:
    queue.put(child_conversation(tag))


def view_of_a_child_process(method: str, tag: str) -> dict[str, Any]:
    """Start a ``multiprocessing`` child (``spawn`` or ``fork``) in the current context; what it saw."""
    mp = multiprocessing.get_context(method)
    queue = mp.Queue()
    process = mp.Process(target=child_conversation_to_queue, args=(queue, tag))
    process.start()
    view: dict[str, Any] = queue.get(timeout=120)
    process.join(timeout=120)
    assert process.exitcode == 0
    return view


def child_agent() -> tuple[object, object]:
    """The agent (name, version) a child's calls run under: what their ``gen_ai.agent.name`` and cost by agent
    read."""
    from opentelemetry import context as otel_context

    from agent_otel._context.job import AGENT_KEY, AGENT_VERSION_KEY

    return otel_context.get_value(AGENT_KEY), otel_context.get_value(AGENT_VERSION_KEY)


def child_phase() -> tuple[object, object]:
    """The phase a child's calls run in and the step number its next tool call would take."""
    from agent_otel._context.phase import current_phase

    phase = current_phase()
    return (phase.name, phase.next_step()) if phase is not None else (None, None)


class _ViewingRun:
    """A ``Process`` subclass's own ``run()`` (no target): puts what its child sees on a queue."""

    def __init__(self, queue: Any) -> None:
        super().__init__()
        self.queue = queue

    def run(self) -> None:
        self.queue.put({**child_view(), "own attributes": sorted(vars(self))})


class ForkViewingProcess(_ViewingRun, multiprocessing.context.ForkProcess):
    pass


class SpawnViewingProcess(_ViewingRun, multiprocessing.context.SpawnProcess):
    pass


class ForkserverViewingProcess(_ViewingRun, multiprocessing.context.ForkServerProcess):
    pass


VIEWING_PROCESSES = {"fork": ForkViewingProcess, "spawn": SpawnViewingProcess, "forkserver": ForkserverViewingProcess}


def _exits_cleanly(process: object) -> None:
    """What a spawned process whose ``run`` is this function (no method of its name) runs: nothing to see."""


def _exits_cleanly_too() -> None:
    """As :func:`_exits_cleanly`, as a static method."""


class RunNamedOtherwise(multiprocessing.context.SpawnProcess):
    """Its ``run`` pickles under another name (``_exits_cleanly``), which the object lacks."""

    run = _exits_cleanly


class RunStatic(multiprocessing.context.SpawnProcess):
    run = staticmethod(_exits_cleanly_too)


def wait_for_file(path: str) -> None:
    """Return once ``path`` exists: the test holds a task running until then."""
    wait_until(lambda: os.path.exists(path), f"{path} to exist", timeout_s=60)


class JobView:
    """Served by a :class:`ViewManager`'s server process: the job its calls run in there."""

    def job(self) -> str | None:
        return agent_otel.current_job_id()


class ViewManager(BaseManager):
    pass


ViewManager.register("JobView", JobView)
