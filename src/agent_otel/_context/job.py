"""The running job in OTel context and W3C baggage, and the span processor that stamps its id.

A job's state lives in the OTel context (so everything that copies the context (asyncio tasks,
the threading instrumentation, our process and subprocess carriers) shares it) and its id also
in W3C baggage (so it survives process and service boundaries as text). A span processor stamps
``job.id`` on every span started under a job, whichever library starts it. The id is never put on
a metric.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from opentelemetry import baggage
from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from agent_otel import semconv
from agent_otel._engine.policy import SCRUBBED_KEY

JOB_KEY = otel_context.create_key("agent_otel.job")
_get_value = otel_context.get_value
AGENT_KEY = otel_context.create_key("agent_otel.agent")


@dataclass(eq=False)
class JobState:
    """One running job. Shared by reference by everything that inherits the context, so roll-ups
    are correct when the job fans out to threads and tasks."""

    id: str
    type: str
    agent_calls: int = 0
    provider_calls: int = 0
    tool_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **deltas: float) -> None:
        values = self.__dict__  # the counters are plain fields: no getattr/setattr per delta
        with self._lock:
            for name, delta in deltas.items():
                values[name] += delta

    def rollup_attributes(self) -> dict[str, int | float]:
        with self._lock:
            return {
                semconv.JOB_ROLLUP_AGENT_CALLS: self.agent_calls,
                semconv.JOB_ROLLUP_PROVIDER_CALLS: self.provider_calls,
                semconv.JOB_ROLLUP_TOOL_CALLS: self.tool_calls,
                semconv.JOB_ROLLUP_INPUT_TOKENS: self.input_tokens,
                semconv.JOB_ROLLUP_OUTPUT_TOKENS: self.output_tokens,
                semconv.JOB_ROLLUP_COST: round(self.cost, 10),
            }


def current_job(ctx: Context | None = None) -> JobState | None:
    """The job running in this context, if it was started in this process."""
    state = otel_context.get_value(JOB_KEY, ctx)
    return state if isinstance(state, JobState) else None


def current_job_id(ctx: Context | None = None) -> str | None:
    """The id of the job this code runs under: from this process's job, else from W3C baggage."""
    state = otel_context.get_value(JOB_KEY, ctx)
    if isinstance(state, JobState):
        return state.id
    return _baggage_job_id(ctx)


def _baggage_job_id(ctx: Context | None) -> str | None:
    value = baggage.get_baggage(semconv.BAGGAGE_JOB_ID, ctx)
    return str(value) if value is not None else None


def context_with_job(state: JobState, ctx: Context | None = None) -> Context:
    ctx = otel_context.set_value(JOB_KEY, state, ctx)
    ctx = baggage.set_baggage(semconv.BAGGAGE_JOB_ID, state.id, ctx)
    return baggage.set_baggage(semconv.BAGGAGE_JOB_TYPE, state.type, ctx)


class JobIdSpanProcessor(SpanProcessor):
    """Stamps ``job.id`` on every span started under a job, from any library."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if parent_context is not None and _get_value(SCRUBBED_KEY, parent_context):
            return  # one of agent-otel's own spans: it started with the job id among its attributes
        state = _get_value(JOB_KEY, parent_context)  # current_job_id(), inlined: this runs for every span
        job_id = state.id if isinstance(state, JobState) else _baggage_job_id(parent_context)
        if job_id is not None:
            span.set_attribute(semconv.JOB_ID, job_id)

    def on_end(self, span: ReadableSpan) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
