"""The running workflow phase in OTel context.

A phase's state lives in the OTel context, as the job's does, so the tool and agent calls inside it (in
threads and tasks too) find it: they carry its name as a metric attribute, and each tool call takes the
next step number of the phase (on its span only). It is not put in baggage: a phase is a part of one
process's job; another service's calls are not steps of it. A task the program hands to a process pool of its
own carries the phase's name with the job (:func:`~agent_otel._context.propagation.process_carrier`), not its step
numbers, which are the parent's count: the calls there are in the phase, unnumbered.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from opentelemetry import context as otel_context
from opentelemetry.context import Context

PHASE_KEY = otel_context.create_key("agent_otel.phase")


@dataclass(eq=False)
class PhaseState:
    """One running phase: its (bounded) name, and the counter that numbers its steps."""

    name: str
    _steps: itertools.count[int] | None = field(default_factory=lambda: itertools.count(1), repr=False)

    def next_step(self) -> int | None:
        """The next step number, from 1 (``next`` on an ``itertools.count`` is atomic under the GIL); None in another
        process, where the phase was carried without its count."""
        return next(self._steps) if self._steps is not None else None


def current_phase(ctx: Context | None = None) -> PhaseState | None:
    """The phase this code runs in, if any."""
    state = (ctx if ctx is not None else otel_context.get_current()).get(PHASE_KEY)
    return state if isinstance(state, PhaseState) else None


def context_with_phase(state: PhaseState, ctx: Context | None = None) -> Context:
    return otel_context.set_value(PHASE_KEY, state, ctx)
