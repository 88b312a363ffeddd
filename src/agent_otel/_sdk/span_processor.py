"""The span processors ``configure()`` adds to a tracer provider, run as one.

Every span of the process goes through them, an HTTP client's or a database's as much as a GenAI
call's: job and conversation ids are stamped (:class:`~agent_otel._context.stamping.IdSpanProcessor`),
configured keys hashed (:class:`~agent_otel._engine.policy.HashingSpanProcessor`) and other libraries'
GenAI spans bridged (:class:`~agent_otel._bridge.processor.GenAiSpanBridge`). Run as one processor, the
SDK dispatches three calls per span instead of nine, and a span with no hashed key and no GenAI
attribute stops after one look at its attributes.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.context import Context, get_current
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from agent_otel import semconv
from agent_otel._bridge.processor import GenAiSpanBridge
from agent_otel._bridge.sources import OPENINFERENCE_KIND
from agent_otel._context.job import JOB_KEY
from agent_otel._context.stamping import BAGGAGE_KEY, stamp_ids
from agent_otel._engine.policy import SCRUBBED_KEY, hash_present, policy

_get_current = get_current
_OPERATION = semconv.GEN_AI_OPERATION_NAME
_OPENINFERENCE_KIND = OPENINFERENCE_KIND


class AgentOtelSpanProcessor(SpanProcessor):
    """Ids, hashing and (unless ``bridge`` is None) the GenAI span bridge, in that order."""

    def __init__(self, bridge: GenAiSpanBridge | None) -> None:
        self.bridge = bridge

    # Inlined checks (no helper calls) on purpose: every span of the process pays them, and a Python
    # call costs ~0.1 µs here. What they guard is in stamping, policy and the bridge.
    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        frozen: Any = span._attributes
        values = getattr(frozen, "_dict", frozen)  # attribute_dict()
        ctx = parent_context if parent_context is not None else _get_current()
        ours = ctx.get(SCRUBBED_KEY)  # one of agent-otel's own spans: started with its ids, hashed
        if not ours and (ctx.get(JOB_KEY) is not None or ctx.get(BAGGAGE_KEY)):
            stamp_ids(span, ctx, values)
        if not values:
            return
        if not policy().hashed_keys.isdisjoint(values):
            hash_present(span, parent_context, at_start=True)
        bridge = self.bridge
        if (bridge is not None and (not ours or bridge.open_spans)  # ours only matters under another's span
                and (_OPERATION in values or _OPENINFERENCE_KIND in values)):  # may_be_genai()
            bridge.on_start(span, parent_context)

    def _on_ending(self, span: Span) -> None:
        frozen: Any = span._attributes
        values = getattr(frozen, "_dict", frozen)
        if values and not policy().hashed_keys.isdisjoint(values):
            hash_present(span, None, at_start=False)
        bridge = self.bridge
        if bridge is not None and (bridge.open_spans or span._events):
            bridge._on_ending(span)

    def on_end(self, span: ReadableSpan) -> None:
        """Nothing: the work is done while the span is ending, before any exporter sees it."""
