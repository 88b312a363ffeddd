"""The span processors ``configure()`` adds to a tracer provider, run as one.

Every span of the process goes through them, an HTTP client's or a database's as much as a GenAI
call's: job and conversation ids are stamped (:class:`~agent_otel._context.stamping.IdSpanProcessor`),
configured keys hashed (:func:`~agent_otel._engine.policy.hash_present`) and other libraries'
GenAI spans bridged (:class:`~agent_otel._bridge.processor.GenAiSpanBridge`). Run as one processor, the
SDK dispatches three calls per span instead of nine, and a span with no hashed key and no GenAI
attribute stops after one look at its attributes.
"""

from __future__ import annotations

from opentelemetry.context import Context, get_current
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from agent_otel._bridge.processor import GenAiSpanBridge
from agent_otel._context.stamping import stamp_ids
from agent_otel._engine.policy import attribute_dict, hash_events_and_links, hash_present, holds_hashed_key

_get_current = get_current


class AgentOtelSpanProcessor(SpanProcessor):
    """Ids, hashing and (unless ``bridge`` is None) the GenAI span bridge, in that order."""

    def __init__(self, bridge: GenAiSpanBridge | None) -> None:
        self.bridge = bridge

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        values = attribute_dict(span)  # the live dict: it holds the ids once stamped
        stamp_ids(span, parent_context if parent_context is not None else _get_current(), values)
        if holds_hashed_key(values):
            hash_present(span, values, parent_context, at_start=True)
        if self.bridge is not None:
            self.bridge.on_start(span, parent_context)

    def _on_ending(self, span: Span) -> None:
        values = attribute_dict(span)
        if holds_hashed_key(values):
            hash_present(span, values, None, at_start=False)
        if span._events or span._links:
            hash_events_and_links(span)
        if self.bridge is not None:
            self.bridge._on_ending(span)

    def on_end(self, span: ReadableSpan) -> None:
        """Nothing: the work is done while the span is ending, before any exporter sees it."""
