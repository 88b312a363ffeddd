"""Workflow phases and patterns.

``phase(name)`` (a context manager and a decorator; ``[[phase]]`` in config) runs a block or each call
of a function as a phase of its job: span ``run_phase {name}`` under the job, ``agent_otel.workflow.phase.duration``
by job type, phase and outcome, and the phase in context, so that the tool and agent calls inside carry it
as a metric attribute and each tool call gets the next step number of the phase (on its span only).

A job or an agent that names the workflow pattern it follows (``pattern=``) records one execution of it,
with its outcome and duration, on ``agent_otel.workflow.pattern.duration`` (:func:`record_pattern`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import baggage
from opentelemetry.context import Context, get_current
from opentelemetry.trace import Span

from agent_otel import semconv
from agent_otel._calls.extractors import Call, Extractor, field_of, is_extractor
from agent_otel._calls.handler import (
    NO_NAMES,
    UNREAD,
    KindHandler,
    P,
    R,
    check_decoratable,
    coerce_bool,
    given_flag,
    outcome_value,
    text_value,
)
from agent_otel._calls.options import JOB, Attributes, Flag, Text, collect
from agent_otel._context.job import current_job
from agent_otel._context.phase import PhaseState, context_with_phase
from agent_otel._engine.instruments import runtime
from agent_otel._engine.policy import policy
from agent_otel._engine.self_telemetry import report_error
from agent_otel._engine.wrappers import End, Invocation, InvocationScope, instrument, replacing_own, track, untrack
from agent_otel.errors import ConfigurationError

_SUCCESS, _FAILURE, _ERROR = (semconv.Outcome.SUCCESS.value, semconv.Outcome.FAILURE.value,
                              semconv.Outcome.ERROR.value)


def record_pattern(ctx: Context | None, span: Span, pattern: object, outcome: str, duration_s: float) -> None:
    """One execution of the workflow pattern ``pattern`` (None or empty: the call names none)."""
    text = text_value(pattern, semconv.WORKFLOW_PATTERN)
    if text is None:
        return
    name = policy().bounded(semconv.WORKFLOW_PATTERN, text)
    runtime()[semconv.PATTERN_DURATION].record(
        duration_s, {semconv.WORKFLOW_PATTERN: name, semconv.WORKFLOW_PATTERN_OUTCOME: outcome}, context=ctx)
    if span.is_recording():
        span.set_attribute(semconv.WORKFLOW_PATTERN, name)


def _job_type(ctx: Context | None) -> str:
    """The type of the job the phase runs in: this process's job, else the one in baggage, else the default."""
    job = current_job(ctx)
    if job is not None:
        return job.type
    carried = baggage.get_baggage(semconv.BAGGAGE_JOB_TYPE, ctx)
    if carried is None or carried == "":
        return str(JOB["type"].default)
    return policy().bounded(semconv.JOB_TYPE, carried)


class PhaseInvocation(Invocation):
    __slots__ = ("call", "handler", "job_type", "name", "outcome")

    def __init__(self, span: Any, ctx: Any, handler: PhaseHandler, call: Call, name: str, job_type: str) -> None:
        super().__init__(span, ctx, "phase")
        track(self)  # ended by a SIGTERM that finds it running
        self.handler = handler
        self.call = call
        self.name = name
        self.job_type = job_type
        self.outcome: str | None = None  # set by phase.set_outcome()

    def record(self, how: End, value: Any, error: BaseException | None, duration_s: float) -> None:
        untrack(self)
        handler, call, span = self.handler, self.call, self.span
        call.result, call.error = value, error
        if error is not None:
            outcome = _ERROR
        elif self.outcome is not None:
            outcome = self.outcome
        else:
            success = given_flag(handler.option("success", call, UNREAD), "phase.success") \
                if "success" in handler.options else coerce_bool(field_of(value, "success"), "phase.success")
            outcome = _FAILURE if success is False else _SUCCESS
        runtime()[semconv.PHASE_DURATION].record(
            duration_s, {semconv.JOB_TYPE: self.job_type, semconv.WORKFLOW_PHASE: self.name,
                         semconv.WORKFLOW_PHASE_OUTCOME: outcome}, context=self.context)
        if span.is_recording():
            span.set_attribute(semconv.WORKFLOW_PHASE_OUTCOME, outcome)
            if outcome == _FAILURE:
                handler.record_failure_message(span, call, call.result)
            if handler.result_attributes:
                handler.record_result_attributes(span, call)


class PhaseHandler(KindHandler):
    stage = "phase"

    def _describe(self, call: Call) -> tuple[str, str, dict[str, Any]]:
        name = policy().bounded(semconv.WORKFLOW_PHASE, self.required_name("name", call))
        return name, semconv.phase_span_name(name), self.span_attributes({semconv.WORKFLOW_PHASE: name})

    def begin(self, wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
              parent: Context) -> Invocation:
        call = self.new_call(instance, args, kwargs)
        name, span_name, attributes = self.static(("name",), self._describe, call)
        job = current_job()
        if job is not None:
            job.add_phase(name)
        span, ctx = self.open(span_name, attributes, context_with_phase(PhaseState(name)))
        return PhaseInvocation(span, ctx, self, call, name, _job_type(ctx))


def _marker() -> None:
    """Stands in for the wrapped callable of a ``with phase(...)`` block."""


class phase(InvocationScope):
    """Run a block, or each call of a function, as a phase of its job (``agent_otel.workflow.phase``).

    As a decorator, ``name`` may be an extractor (e.g. ``path("args.phase")``), read when each call starts.
    The outcome is ``error`` when the block or call raises, ``failure`` when ``success`` (by default the
    result's ``success`` field; in a ``with`` block, :meth:`set_outcome`) is false, else ``success``.
    """

    stage = "phase"

    def __init__(self, name: Text, *, success: Flag | None = None,
                 result_attributes: Mapping[str, Extractor] | None = None,
                 attributes: Attributes | None = None) -> None:
        # A block's name is often the program's value at run time: one that names nothing (None, empty, a
        # collection) names the block after the kind, counted at each entry and never raised into it, as
        # agent_call()'s (manual_name); any other value is its text (an Enum member, a number), as a decorator's
        # literal; a decorator's name that names nothing is code, refused when it decorates.
        self._given_name = name
        self._named = is_extractor(name) or not (name is None or name == "" or isinstance(name, NO_NAMES))
        self.options = collect("phase", {**locals(), "name": name if self._named else "phase"})
        self.attributes = attributes
        self._handler = PhaseHandler(None, self.options, attributes)  # validates now
        super().__init__()

    def set_outcome(self, outcome: str | semconv.Outcome) -> None:
        """The outcome of the phase this object runs in the current thread or task (its ``with`` block)."""
        entry = self._reporting_entry()  # (outside any block: counted)
        inv = entry[0] if entry is not None else None
        if isinstance(inv, PhaseInvocation):
            value = outcome_value(outcome, "phase")  # counted, never raised into the block, as a job's
            if value is not None:
                inv.outcome = value

    def _refuse_entry(self) -> None:
        if any(is_extractor(value) for value in self.options.values()):
            raise ConfigurationError("phase(): extractors are only meaningful when phase() decorates a function")

    def _begin(self) -> Invocation:
        if not self._named:
            report_error("phase.name", LookupError("the name resolved to nothing"))
        return self._handler.begin(_marker, None, (), {}, get_current())

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        func = replacing_own("phase", func)
        check_decoratable("phase", func)
        options = self.options if self._named else collect("phase", {**self.options, "name": self._given_name})
        return instrument(PhaseHandler(func, options, self.attributes), func)

