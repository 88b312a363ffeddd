"""Message content of a provider call, when content capture is on: structured JSON messages, on the span
and/or in an event, as the GenAI conventions say.

``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` (or the policy) picks where
(:class:`~agent_otel._engine.policy.ContentCapture`): ``SPAN_ONLY`` sets ``gen_ai.input.messages`` and
``gen_ai.output.messages`` on the provider span, ``EVENT_ONLY`` puts both on a
``gen_ai.client.inference.operation.details`` event of the span instead, ``SPAN_AND_EVENT`` does both, and
``NO_CONTENT`` (the default) neither. The value is the conventions' JSON: a list of messages, each a role and
its parts (``text``, ``tool_call``, ``tool_call_response``), built from what the ``prompt=``/``response=``
extractors read: a string, an OpenAI-style message (``role``, ``content``, ``tool_calls``), or a list of them.
Hashed keys (``AGENT_OTEL_HASHED_KEYS``) hash these attributes too, on the span and in the event.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from opentelemetry.trace import Span
from opentelemetry.util.types import AttributeValue

from agent_otel import semconv
from agent_otel._calls.extractors import field_of
from agent_otel._engine.policy import add_hashed_event, policy

#: The event that carries a call's messages when content goes to events.
EVENT_OPERATION_DETAILS = "gen_ai.client.inference.operation.details"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _parts(message: Any) -> list[dict[str, Any]]:
    content = field_of(message, "content")
    parts: list[dict[str, Any]] = []
    if isinstance(content, str):
        parts.append({"type": "text", "content": content})
    elif isinstance(content, Sequence):
        for part in content:
            kind = field_of(part, "type") or "text"
            text = field_of(part, "text") if kind == "text" else None
            parts.append({"type": "text", "content": text} if isinstance(text, str)
                         else {"type": str(kind), "content": _text(part)})
    elif content is not None:
        parts.append({"type": "text", "content": _text(content)})
    call_id = field_of(message, "tool_call_id")
    if call_id is not None and field_of(message, "role") == "tool":  # a tool's result, sent back to the model
        return [{"type": "tool_call_response", "id": str(call_id),
                 "response": parts[0]["content"] if len(parts) == 1 else parts}]
    for call in field_of(message, "tool_calls") or ():
        function = field_of(call, "function")
        arguments = field_of(function, "arguments")
        try:
            arguments = json.loads(arguments) if isinstance(arguments, str) else arguments
        except ValueError:
            pass
        parts.append({"type": "tool_call", "id": field_of(call, "id"), "name": field_of(function, "name"),
                      "arguments": arguments})
    return parts


def _is_message(value: Any) -> bool:
    return field_of(value, "role") is not None or field_of(value, "content") is not None


def messages(value: Any, role: str) -> list[dict[str, Any]]:
    """``value`` as the conventions' messages; a message without a role gets ``role``."""
    if value is None:
        return []
    if isinstance(value, str):
        return [{"role": role, "parts": [{"type": "text", "content": value}]}]
    if _is_message(value):
        message = {"role": str(field_of(value, "role") or role), "parts": _parts(value)}
        finish = field_of(value, "finish_reason")
        if isinstance(finish, str):
            message["finish_reason"] = finish
        return [message]
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return [message for item in value for message in messages(item, role)]
    return [{"role": role, "parts": [{"type": "text", "content": _text(value)}]}]


def _json(value: Any, role: str) -> str | None:
    found = messages(value, role)
    return json.dumps(found, ensure_ascii=False, default=str) if found else None


def prompt_text(prompt: Any) -> str | None:
    """The call's prompt as the conventions' JSON messages, made as the call starts: a program keeping its history
    in the list it passed (an agent loop appending the reply) changes it during the call."""
    return _json(prompt, "user")


def input_attributes(prompt_text: str | None) -> dict[str, AttributeValue]:
    """The span attributes of the call's prompt (:func:`prompt_text`) when content goes on spans (else none)."""
    return {semconv.GEN_AI_INPUT_MESSAGES: prompt_text} if prompt_text is not None and policy().content.on_span \
        else {}


def output_content(span: Span, prompt_text: str | None, response: Any) -> dict[str, AttributeValue]:
    """As the call ends: the span attributes of the response when content goes on spans (returned), and the
    event with the prompt made as the call started (:func:`prompt_text`) and the response when it goes to events
    (added to ``span``)."""
    current = policy()
    found: dict[str, AttributeValue] = {}
    response_text = _json(response, "assistant")
    if current.content.on_span and response_text is not None:
        found[semconv.GEN_AI_OUTPUT_MESSAGES] = response_text
    if current.content.on_event:
        event: dict[str, AttributeValue] = {}
        if prompt_text is not None:
            event[semconv.GEN_AI_INPUT_MESSAGES] = prompt_text
        if response_text is not None:
            event[semconv.GEN_AI_OUTPUT_MESSAGES] = response_text
        if event:
            add_hashed_event(span, EVENT_OPERATION_DETAILS, event)
    return found
