"""The agent-otel calls running where another library made an older context current again.

LangChain's instrumentation keeps the context in which a run began and makes it current again for the run's
steps: inside a subgraph agent's run it is the outer graph's, which has none of the agent-otel calls started since
(the subgraph's own agent call). A call of ours made there took the outer agent for its own, and counted in its
roll-ups. The span bridge notes, for each GenAI span of another library, the calls running where it started
(:func:`note_started_in`); under that span, those are the calls running (:func:`running_context`). A subgraph gets no
span of its own: there the call of ours that the Python context runs inside, begun where that older context was
current, tells them (see the engine's ``inside``).
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Span

from agent_otel._engine import inside
from agent_otel._engine.wrapped_spans import sdk_span

#: The key the API keeps a context's span under, read off a context ``set_span_in_context()`` made (its only
#: key): a call's context is then built in one copy with its span and entries, as that function would make it
#: after one copy per entry.
SPAN_KEY = next(iter(trace.set_span_in_context(trace.INVALID_SPAN, Context())))

#: Another library's span -> the context of the agent-otel calls running where it started (see the engine's
#: ``inside``). ``STARTED_IN`` is its dict, read per call: empty, nothing to do.
_started_in = inside.LIBRARY_SPANS
STARTED_IN: dict[Any, Context] = inside.SPANS_OPEN

#: Kept on another library's span that starts with no attribute (see AgentOtelSpanProcessor.on_start), as an
#: attribute of the span object: the context it started in (its parent span's), and the current one then (for the
#: agent-otel calls running where it started: see the span bridge's ``starting_context``). Such a span may be a GenAI
#: call marked after it started (strands sets its attributes right after it starts a span), which the span bridge then
#: notes as it would have at its start (its ``start_late``); a call of ours inside it looks through it for the agent
#: invocation it is part of.
STARTED_BARE = "_agent_otel_started_in"

#: The context keys of agent-otel's running calls (its job, agent, call counts, provider and tool call): set by
#: the span bridge, which defines the calls it tells apart.
_call_keys: tuple[str, ...] = ()


def use_call_keys(keys: tuple[str, ...]) -> None:
    global _call_keys
    _call_keys = keys


def note_started_in(span: Span, ctx: Context) -> None:
    _started_in[span] = ctx


def forget(span: Span) -> None:
    _started_in.pop(span, None)


def running_context(ctx: Context) -> Context:
    """``ctx``, with the agent-otel calls running there: when its span is another library's that started where
    other calls of ours ran than ``ctx`` has (the library made an older context current again), those; and when
    ``ctx`` has the calls that ran where a call of ours this Python context runs inside began (the library made
    that context current again inside it: a LangGraph subgraph's), that call's."""
    span = sdk_span(ctx.get(SPAN_KEY))  # (logfire's wrapper of it, under its tracers)
    started = _started_in.get(span) if isinstance(span, Span) else None
    if started is None:  # no library's GenAI span: what the program made current is what runs
        return ctx
    if not _same_calls(ctx, started):
        ctx = _with_calls(ctx, started)
    entry = inside.innermost_running(inside.INSIDE.get())
    call = entry[1]() if entry is not None else None
    if call is None or _same_calls(ctx, innermost := call.context):
        return ctx
    while entry is not None:  # (one that ended since is still where the calls inside it began: a block left early)
        if _began_in(ctx, entry[0]):  # under that call's span, as without the library
            return _with_calls(ctx, innermost, innermost.get(SPAN_KEY))
        entry = entry[2]
    return ctx


def _began_in(ctx: Context, began_in: Context) -> bool:
    """Whether ``ctx`` is the context a call began in, current again: it has the same calls of ours, and when there
    were none, the same span (a new root made current on purpose has none of either, and is no such context)."""
    if not _same_calls(ctx, began_in):
        return False
    span = began_in.get(SPAN_KEY)
    return any(key in began_in for key in _call_keys) or (span is not None and ctx.get(SPAN_KEY) is span)


def _same_calls(ctx: Context, other: Context) -> bool:
    return all(ctx.get(key) is other.get(key) for key in _call_keys)


def _with_calls(ctx: Context, calls: Context, span: object = None) -> Context:
    values = {key: value for key, value in ctx.items() if key not in _call_keys}
    values.update((key, calls[key]) for key in _call_keys if key in calls)
    if span is not None:
        values[SPAN_KEY] = span
    return Context(values)
