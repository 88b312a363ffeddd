"""The conversation a piece of work belongs to, in W3C baggage.

The id is one baggage entry (``gen_ai.conversation.id``) of the OTel context, so it goes wherever the
job id goes: copied with the context (threads, tasks) and serialized with it (process carriers,
subprocess environment, HTTP headers). :mod:`agent_otel._context.stamping` puts it on every span.
"""

from __future__ import annotations

from opentelemetry import baggage
from opentelemetry.context import Context

from agent_otel import semconv
from agent_otel._context.job import fits_in_baggage
from agent_otel._engine.policy import valid_text
from agent_otel._engine.self_telemetry import report_error


def current_conversation_id(ctx: Context | None = None) -> str | None:
    """The id of the conversation this code runs in (from this process or a caller's baggage)."""
    value = baggage.get_baggage(semconv.BAGGAGE_CONVERSATION_ID, ctx)
    return str(value) if value is not None else None


def context_with_conversation(conversation_id: object, ctx: Context | None = None) -> Context | None:
    """``ctx`` (default: the current context) in the conversation ``conversation_id``; ``ctx`` as is
    when the id is None or empty (an extractor that found nothing: the enclosing conversation goes on).
    The id is made valid text here, so that no carrier fails to encode it later."""
    if conversation_id is None or conversation_id == "":
        return ctx
    text = valid_text(conversation_id if isinstance(conversation_id, str) else str(conversation_id),
                      semconv.GEN_AI_CONVERSATION_ID).strip()  # as W3C baggage carries it to another process
    if not text:
        return ctx
    if not fits_in_baggage(text, semconv.BAGGAGE_CONVERSATION_ID):  # it stamps this process's spans; the
        # propagators drop it from headers and child environments, with a warning of theirs
        report_error(semconv.GEN_AI_CONVERSATION_ID,
                     ValueError("the conversation id is too long to travel in W3C baggage"))
    return baggage.set_baggage(semconv.BAGGAGE_CONVERSATION_ID, text, ctx)
