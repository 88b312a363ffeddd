"""Tool and plugin executions: span ``execute_tool {name}`` and ``gen_ai.execute_tool.duration``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode

from agent_otel import semconv
from agent_otel._calls.call_counts import (
    CALLS_KEY,
    RUNS,
    TOOL,
    AgentRun,
    CallCounts,
    context_with_counts,
    run_of,
    run_under,
)
from agent_otel._calls.extractors import Call, Extractor, attribute_of
from agent_otel._calls.handler import (
    UNREAD,
    KindHandler,
    ManualCall,
    P,
    R,
    coerce_count,
    decorator,
    error_type_label,
    given_flag,
    manual_name,
    span_value,
    text_value,
)
from agent_otel._calls.options import Attributes, Count, Flag, Text, collect
from agent_otel._context.job import AGENT_KEY, JOB_KEY, JobState, current_job
from agent_otel._context.phase import PHASE_KEY, PhaseState
from agent_otel._context.running import STARTED_IN, running_context
from agent_otel._engine import instruments as _instruments
from agent_otel._engine import policy as _policies
from agent_otel._engine.instruments import runtime
from agent_otel._engine.policy import policy
from agent_otel._engine.wrappers import PLAIN_TYPES, End, Invocation

#: The agent-otel tool call a call runs in (an :class:`OpenToolCall`; None under an agent call of ours inside
#: it): the first span of another library for the same tool further down is that same call.
TOOL_KEY = otel_context.create_key("agent_otel.tool")


class OpenToolCall:
    """A running tool call of ours, as the span bridge sees it: its name, and whether another library's span
    of it was seen already (a second one of that name is a call of its own)."""

    __slots__ = ("name", "twin_seen")

    def __init__(self, name: str) -> None:
        self.name = name
        self.twin_seen = False


class ToolInvocation(Invocation):
    """A tool call. Made by :meth:`ToolHandler.begin` without an ``__init__`` of its own (a frame per call), which
    sets what it holds: its name, the agent it runs under, the workflow phase it runs in, its handler and call's
    view, and another library's agent invocation it is part of (it counts there)."""

    __slots__ = ("agent_name", "call", "handler", "name", "phase", "run")
    agent_name: str | None
    call: Call | None
    handler: ToolHandler
    name: str
    phase: str | None
    run: AgentRun | None

    def record(self, how: End, value: Any, error: BaseException | None, duration_s: float) -> None:
        run = self.run
        handler = self.handler
        call = self.call  # None when the options are all literals (see KindHandler.reads_call)
        if call is not None:
            call.result, call.error = value, error
        if error is not None:
            error_type: str | None = error_type_label(error)
        elif handler.checks_success:  # the program says which results are failures
            failed = given_flag(handler.option("success", call, UNREAD), "tool.success") is False
            error_type = _failed(self.span) if failed else None
        elif type(value) in PLAIN_TYPES:  # (by exact type: a dict or a string reports no failure of this kind)
            error_type = None
        else:
            error_type = _error_result(value, self.span)
        record_tool_call(self.context if run is None else context_with_counts(run.calls, self.context), self.name,
                         self.agent_name, error_type, duration_s, self.phase)
        if handler.counts_files and error is None:
            files = coerce_count(handler.option("files_created", call), "tool.files_created", sized=True)
            job = current_job(self.context)
            if files and job is not None:
                job.add(files_created=files)
        if call is not None and handler.result_attributes and self.span.is_recording():
            handler.record_result_attributes(self.span, call)


def _error_result(value: Any, span: Any) -> str | None:
    """``tool_error`` when the call returned a result saying the tool failed, an MCP ``CallToolResult`` with
    ``is_error`` (the MCP library's own span says so too): the program got a failure back, with no exception. The
    span says it as well."""
    if type(value) is dict:  # (most results: no attribute to read)
        return None
    try:  # the program's object: reading an attribute it lacks may raise anything
        failed = attribute_of(value, "is_error") is True
    except Exception:
        return None
    return _failed(span) if failed else None


def _failed(span: Any) -> str:
    """A call that returned a failure: ``tool_error``, on its span too."""
    if span.is_recording():
        span.set_attribute(semconv.ERROR_TYPE, semconv.ERROR_TYPE_TOOL_ERROR)
        span.set_status(Status(StatusCode.ERROR, semconv.ERROR_TYPE_TOOL_ERROR))
    return semconv.ERROR_TYPE_TOOL_ERROR


class _Phase(Enum):
    FROM_CONTEXT = "read the phase from the context"


def record_tool_call(ctx: Any, name: str, agent_name: str | None, error_type: str | None, duration_s: float,
                     phase: str | _Phase | None = _Phase.FROM_CONTEXT) -> None:
    """One tool execution: its duration (in its phase, if any: ``phase``, by default the one of ``ctx``), and
    the job's tool calls and plugins."""
    attributes = {semconv.GEN_AI_TOOL_NAME: name}
    if agent_name is not None:
        attributes[semconv.GEN_AI_AGENT_NAME] = agent_name
    if error_type is not None:
        attributes[semconv.ERROR_TYPE] = error_type
    values = ctx if ctx is not None else otel_context.get_current()  # current_phase(), the counts and
    # current_job(), inlined
    if phase is _Phase.FROM_CONTEXT:
        state = values.get(PHASE_KEY)
        phase = state.name if isinstance(state, PhaseState) else None
    if phase is not None:
        attributes[semconv.WORKFLOW_PHASE] = phase
    rt = _instruments._runtime  # runtime() without its call, once it is built
    (rt if rt is not None else runtime()).instruments[semconv.TOOL_DURATION.name].record(  # by name: rt[spec]
        duration_s, attributes, context=ctx)  # is a Python call
    counts = values.get(CALLS_KEY)
    if isinstance(counts, CallCounts):
        counts.add(TOOL)
    job = values.get(JOB_KEY)
    if isinstance(job, JobState):
        job.add_one("tool_calls")
        job.use_plugin(name)


class ToolHandler(KindHandler):
    stage = "tool"
    span_kind = SpanKind.INTERNAL

    def __init__(self, func: Callable[..., Any] | None, options: dict[str, Any],
                 attributes: Attributes | None = None) -> None:
        super().__init__(func, options, attributes)
        self.counts_files = "files_created" in options
        self.checks_success = options.get("success") is not None
        self.has_step = "step" in options
        self.names_agent = options.get("agent") is not None

    def _step(self, span: Any, call: Call | None, phase: PhaseState | None) -> None:
        """A step of its phase: ``agent_otel.workflow.phase`` and ``agent_otel.workflow.step`` (the ``step``
        option, else the phase's next number) on the span, never on a metric."""
        step = self.option("step", call) if self.has_step else None
        if step is None and phase is not None:
            step = phase.next_step()
        if span.is_recording():
            if phase is not None:
                span.set_attribute(semconv.WORKFLOW_PHASE, phase.name)
            if step is not None:
                span.set_attribute(semconv.WORKFLOW_STEP, span_value(step, semconv.WORKFLOW_STEP))

    def _describe(self, call: Call | None) -> tuple[str, str, dict[str, Any], dict[Any, dict[str, Any]]]:
        name = policy().bounded(semconv.GEN_AI_TOOL_NAME, self.required_name("name", call))
        attributes = {semconv.GEN_AI_OPERATION_NAME: semconv.OPERATION_EXECUTE_TOOL, semconv.GEN_AI_TOOL_NAME: name}
        tool_type = text_value(self.option("type", call), "tool.type")
        if tool_type is not None:
            attributes[semconv.GEN_AI_TOOL_TYPE] = tool_type
        return name, semconv.tool_span_name(name), attributes, {}

    def begin(self, wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
              parent: Context) -> Invocation:
        call = self.new_call(instance, args, kwargs) if self.reads_call else None
        cached = self._static  # static()'s value without its call, when kept for the current policy
        described = cached[1] if cached is not None and cached[0] is _policies._policy else self.static(
            ("name", "type"), self._describe, call)
        name, span_name, base, by_agent = described
        run = None
        if STARTED_IN:  # under another library's span: the calls of ours running where it started (see running)
            parent = running_context(parent)
            run = run_under(parent)  # among another library's agent's spans: that agent's call
        agent_name = text_value(self.option("agent", call), semconv.GEN_AI_AGENT_NAME) if self.names_agent else None
        # a given agent's name through its cap; else the agent it runs under, whose name is bounded already
        agent_name = (policy().bounded(semconv.GEN_AI_AGENT_NAME, agent_name) if agent_name
                      else run.name if run is not None else parent.get(AGENT_KEY))  # type: ignore[assignment]
        attributes = by_agent.get(agent_name) or self.under_agent(by_agent, base, agent_name)  # (a hit: no call)
        span, ctx = self.open(span_name, attributes, parent, {TOOL_KEY: OpenToolCall(name)})
        if run is None and RUNS:  # another library's agent whose span was marked after it started, found as this
            run = run_of(span)  # call's span started (see GenAiSpanBridge.start_late)
            if run is not None and not self.names_agent:
                agent_name = run.name
                if span.is_recording():
                    span.set_attribute(semconv.GEN_AI_AGENT_NAME, agent_name)
        state = ctx.get(PHASE_KEY)  # current_phase(ctx), without its call
        phase = state if isinstance(state, PhaseState) else None
        if phase is not None or self.has_step:
            self._step(span, call, phase)
        inv = ToolInvocation(span, ctx, "tool")
        inv.name, inv.agent_name, inv.handler, inv.call, inv.run = name, agent_name, self, call, run
        inv.phase = phase.name if phase is not None else None
        return inv


def tool(name: Text, *, agent: Text | None = None, type: Text | None = None, step: str | int | Extractor | None = None,
         files_created: Count | None = None, success: Flag | None = None,
         result_attributes: Mapping[str, Extractor] | None = None,
         attributes: Attributes | None = None) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a tool or plugin. ``agent`` defaults to the agent the call runs under; ``step`` is its step
    number in its phase (default: the next one); ``files_created`` (read when the call ends) adds up on the
    job span; ``success`` false (e.g. ``path("result.status", equals="ok")``) makes a call that returned a failed
    one (``error.type`` ``tool_error``); ``result_attributes`` are span attributes read when the call ends."""
    return decorator(ToolHandler, collect("tool", locals()), attributes)


def tool_call(name: str, *, agent: str | None = None, attributes: Attributes | None = None) -> ManualCall:
    """An explicit tool span around a block; ``call.set_outcome(success=False)`` makes a block that did not raise a
    failed call (``error.type`` ``tool_error``)."""
    options = collect("tool", {"name": manual_name("tool", "name", name), "agent": agent, "success": _reported_success},
                      check=False)
    return ManualCall(ToolHandler(None, options, attributes))


def _reported_success(call: Call) -> object:
    """What a manual tool call's block reported as its ``success`` (``set_outcome``); true when it reported none."""
    result = call.result
    return result.get("success", True) if isinstance(result, dict) else True
