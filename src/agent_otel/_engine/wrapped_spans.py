"""The SDK span behind the span a context holds.

Span processors are given the SDK's span object, and agent-otel knows another library's spans by it (the span
bridge's notes, the agent runs its calls count in). A library may make current a wrapper of it instead: logfire's
tracers put a ``_LogfireWrappedSpan`` in the context, whose ``span`` is the SDK span. Looked up as it is, a model call
of logfire's instrumentation under pydantic-ai's agent span was taken for a call of no agent, and one traced twice (its
client's instrumentation inside) was counted twice. Only lookups by the span itself need it: logfire's wrapper hands
every attribute read on to the SDK span (``end_time``, ``attributes``, what agent-otel keeps on a span).
"""

from __future__ import annotations

from typing import cast

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace import Span as SdkSpan

#: Each span class met: whether it may wrap an SDK span (a readable span that is not the SDK's own). Found once per
#: class: the SDK's spans, most of them, pay a dict lookup.
_may_wrap: dict[type, bool] = {}


def sdk_span(span: object) -> object:
    """``span``, or the SDK span it wraps (its ``span``)."""
    cls = type(span)
    may_wrap = _may_wrap.get(cls)
    if may_wrap is None:
        may_wrap = _may_wrap[cls] = issubclass(cls, ReadableSpan) and not issubclass(cls, SdkSpan)
    if may_wrap:
        inner = getattr(span, "span", None)
        if isinstance(inner, SdkSpan):
            return inner
    return span


def span_in(ctx: Context | None) -> trace.Span:
    """The span current in ``ctx`` (the current context when None), the SDK's where a wrapper of it is there."""
    span = trace.get_current_span(ctx)
    return cast(trace.Span, sdk_span(span))
