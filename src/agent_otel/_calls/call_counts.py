"""Inference and tool calls per agent invocation: ``gen_ai.invoke_agent.inference_calls`` and ``.tool_calls``.

An agent invocation puts a :class:`CallCounts` in the context it runs in. Every model request under it (one
logical request counts once, at its outermost wrapper) and every tool call adds to the counts of the nearest
enclosing invocation, so a sub-agent's calls count for the sub-agent only, as the GenAI conventions ask.
Calls another instrumentation traces count too: the span bridge passes on the counts of the context their
span started in. The counts are shared by reference, so calls made on other threads and tasks that carry
the context count as well. A runaway loop shows as an invocation in the top buckets.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import context as otel_context

from agent_otel import semconv
from agent_otel._engine.instruments import Runtime, runtime

CALLS_KEY = otel_context.create_key("agent_otel.agent.calls")


class CallCounts:
    """The calls one agent invocation made so far. One invocation makes one per call, so it is cheap:
    each call appends to a list (atomic, thread-safe without a lock) and the count is its length."""

    __slots__ = ("_inference", "_tool", "twin_seen")

    def __init__(self) -> None:
        self._inference: list[None] = []
        self._tool: list[None] = []
        #: Another library's span of this very invocation was seen (the span bridge counts the call once).
        self.twin_seen = False

    @property
    def inference(self) -> int:
        return len(self._inference)

    @property
    def tool(self) -> int:
        return len(self._tool)

    def add_inference(self) -> None:
        self._inference.append(None)

    def add_tool(self) -> None:
        self._tool.append(None)


def current_counts(ctx: Any = None) -> CallCounts | None:
    """The counts of the agent invocation this context runs in, if any."""
    counts = (ctx if ctx is not None else otel_context.get_current()).get(CALLS_KEY)
    return counts if isinstance(counts, CallCounts) else None


def context_with_counts(counts: CallCounts | None, ctx: Any) -> Any:
    return otel_context.set_value(CALLS_KEY, counts, ctx) if counts is not None else ctx


def record_call_counts(ctx: Any, counts: CallCounts, agent_name: str, error_type: str | None,
                       rt: Runtime | None = None) -> None:
    """One point on each histogram for the invocation that ends (zero calls included). ``rt``: the runtime,
    when the caller has it already."""
    attributes = {semconv.GEN_AI_AGENT_NAME: agent_name}
    if error_type is not None:
        attributes[semconv.ERROR_TYPE] = error_type
    if rt is None:
        rt = runtime()
    # the lengths the properties return, without their calls
    instruments = rt.instruments  # a dict read each (rt[spec] is a Python call)
    instruments[semconv.AGENT_INFERENCE_CALLS.name].record(len(counts._inference), attributes, context=ctx)
    instruments[semconv.AGENT_TOOL_CALLS.name].record(len(counts._tool), attributes, context=ctx)
