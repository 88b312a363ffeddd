"""The agent-otel calls running where another library made an older context current again.

LangChain's instrumentation keeps the context in which a run began and makes it current again for the run's
steps: inside a subgraph agent's run it is the outer graph's, which has none of the agent-otel calls started since
(the subgraph's own agent call). A call of ours made there took the outer agent for its own, and counted in its
roll-ups. The span bridge notes, for each GenAI span of another library, the calls running where it started
(:func:`note_started_in`); under that span, those are the calls running (:func:`running_context`).
"""

from __future__ import annotations

import weakref
from typing import Any, cast

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Span

#: The key the API keeps a context's span under, read off a context ``set_span_in_context()`` made (its only
#: key): a call's context is then built in one copy with its span and entries, as that function would make it
#: after one copy per entry.
SPAN_KEY = next(iter(trace.set_span_in_context(trace.INVALID_SPAN, Context())))

#: Another library's span -> the context of the agent-otel calls running where it started (weak: nothing to
#: remove when a span is dropped unended). ``STARTED_IN`` is its dict, read per call: empty, nothing to do.
_started_in: weakref.WeakKeyDictionary[Span, Context] = weakref.WeakKeyDictionary()
STARTED_IN: dict[Any, Context] = cast(Any, _started_in).data

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
    other calls of ours ran than ``ctx`` has (the library made an older context current again), those."""
    span = ctx.get(SPAN_KEY)
    started = _started_in.get(span) if isinstance(span, Span) else None
    if started is None or all(ctx.get(key) is started.get(key) for key in _call_keys):
        return ctx
    values = {key: value for key, value in ctx.items() if key not in _call_keys}
    values.update((key, started[key]) for key in _call_keys if key in started)
    return Context(values)
