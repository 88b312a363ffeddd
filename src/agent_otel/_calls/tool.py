"""Tool and plugin executions: span ``execute_tool {name}`` and ``gen_ai.execute_tool.duration``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind

from agent_otel import semconv
from agent_otel._calls.extractors import Call, Extractor
from agent_otel._calls.handler import KindHandler, ManualCall, P, R, decorator
from agent_otel._calls.options import Attributes, Text, collect
from agent_otel._context.job import AGENT_KEY, current_job
from agent_otel._engine.instruments import runtime
from agent_otel._engine.policy import policy
from agent_otel._engine.wrappers import End, Invocation


class ToolInvocation(Invocation):
    __slots__ = ("agent_name", "call", "handler", "name")

    def __init__(self, span: Any, ctx: Any, name: str, agent_name: str | None, handler: ToolHandler,
                 call: Call) -> None:
        super().__init__(span, ctx, "tool")
        self.name = name
        self.agent_name = agent_name
        self.handler = handler
        self.call = call

    def record(self, how: End, value: Any, error: BaseException | None, duration_s: float) -> None:
        record_tool_call(self.context, self.name, self.agent_name, type(error).__name__ if error else None,
                         duration_s)
        handler = self.handler
        if handler.result_attributes and self.span.is_recording():
            call = self.call
            call.result, call.error = value, error
            handler.record_result_attributes(self.span, call)


def record_tool_call(ctx: Any, name: str, agent_name: str | None, error_type: str | None, duration_s: float) -> None:
    """One tool execution: its duration, and the job's tool calls."""
    attributes = {semconv.GEN_AI_TOOL_NAME: name}
    if agent_name is not None:
        attributes[semconv.GEN_AI_AGENT_NAME] = agent_name
    if error_type is not None:
        attributes[semconv.ERROR_TYPE] = error_type
    runtime()[semconv.TOOL_DURATION].record(duration_s, attributes, context=ctx)
    job = current_job(ctx)
    if job is not None:
        job.add(tool_calls=1)


class ToolHandler(KindHandler):
    stage = "tool"
    span_kind = SpanKind.INTERNAL

    def _describe(self, call: Call) -> tuple[str, str, dict[str, Any], dict[Any, dict[str, Any]]]:
        name = policy().bounded(semconv.GEN_AI_TOOL_NAME, self.required_name("name", call))
        attributes = {semconv.GEN_AI_OPERATION_NAME: semconv.OPERATION_EXECUTE_TOOL, semconv.GEN_AI_TOOL_NAME: name}
        tool_type = self.option("type", call)
        if tool_type:
            attributes[semconv.GEN_AI_TOOL_TYPE] = str(tool_type)
        return name, semconv.tool_span_name(name), attributes, {}

    def begin(self, wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Invocation:
        call = self.new_call(instance, args, kwargs)
        name, span_name, base, by_agent = self.static(("name", "type"), self._describe, call)
        agent_name = self.option("agent", call) or otel_context.get_value(AGENT_KEY)
        if agent_name is not None:
            agent_name = policy().bounded(semconv.GEN_AI_AGENT_NAME, agent_name)
        span, ctx = self.open(span_name, self.under_agent(by_agent, base, agent_name))
        return ToolInvocation(span, ctx, name, agent_name, self, call)


def tool(name: Text, *, agent: Text | None = None, type: Text | None = None,
         result_attributes: Mapping[str, Extractor] | None = None,
         attributes: Attributes | None = None) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a tool or plugin. ``agent`` defaults to the agent the call runs under;
    ``result_attributes`` are span attributes read when the call ends."""
    return decorator(ToolHandler, collect("tool", locals()), attributes)


def tool_call(name: str, *, agent: str | None = None, attributes: Attributes | None = None) -> ManualCall:
    return ManualCall(ToolHandler(None, collect("tool", {"name": name, "agent": agent}), attributes))
