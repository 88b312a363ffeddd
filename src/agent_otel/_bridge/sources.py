"""What a GenAI span from another library says about the call it covers.

Two vocabularies are read:

- the OpenTelemetry GenAI semantic conventions (``gen_ai.operation.name``: inference operations such as
  ``chat``, ``invoke_agent``, ``invoke_workflow``, ``execute_tool``), including the names older
  instrumentations still emit (``gen_ai.system``, ``gen_ai.usage.prompt_tokens``);
- OpenInference (``openinference.span.kind``: ``LLM``, ``EMBEDDING``, ``AGENT``, ``TOOL``). Its ``CHAIN``
  spans are not mapped: frameworks open one for every step of every chain, so they are neither workflows
  nor agents;
- OpenLLMetry's request type (``llm.request.type``: ``chat``, ``completion``, ``embedding``), on the spans of its
  instrumentations that name no operation (its Ollama one).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS

from agent_otel import semconv
from agent_otel._calls.call_counts import scope_of
from agent_otel._engine.policy import OTHER


class Kind(Enum):
    """What a bridged call counts as."""

    PROVIDER = "provider"
    AGENT = "agent"
    WORKFLOW = "workflow"
    TOOL = "tool"


OPENINFERENCE_KIND = "openinference.span.kind"
_OPENINFERENCE: dict[str, tuple[Kind, str]] = {
    "LLM": (Kind.PROVIDER, semconv.OPERATION_CHAT), "EMBEDDING": (Kind.PROVIDER, "embeddings"),
    "AGENT": (Kind.AGENT, semconv.OPERATION_INVOKE_AGENT), "TOOL": (Kind.TOOL, semconv.OPERATION_EXECUTE_TOOL),
}
#: OpenLLMetry's ``llm.request.type`` values that are model calls, as the operations they are; its ``rerank`` and
#: ``unknown`` are not mapped.
OPENLLMETRY_REQUEST_TYPE = "llm.request.type"
_OPENLLMETRY: dict[str, tuple[Kind, str]] = {
    "chat": (Kind.PROVIDER, semconv.OPERATION_CHAT), "completion": (Kind.PROVIDER, "text_completion"),
    "embedding": (Kind.PROVIDER, "embeddings"),
}
#: Operations that are no call the bridge records: an agent being built, our evolution runs, a retriever's lookup
#: (a vector store's, no model call: it was recorded as an inference call of provider "unknown"), AG2's conversation
#: (``initiate_chat``: agents' replies, each with its model calls inside; it names the model asked for and the usage of
#: them all, and was a model call of its own, its tokens counted twice).
_NOT_CALLS = frozenset({"create_agent", semconv.OPERATION_EVOLVE, "retrieval", "conversation"})
#: Tool names that name no tool call: Google ADK's span for its web UI beside the parallel calls it merges (each has
#: a span of its own).
_NOT_TOOL_CALLS = frozenset({"(merged tools)"})


#: The operations that are model calls whatever else the span says; another one is when it names the model asked for.
_MODEL_OPERATIONS = semconv.INFERENCE_OPERATIONS | {"embeddings"}

#: Operations an instrumentation spells otherwise than the conventions, read as theirs: Semantic Kernel's
#: ``text_completions`` (a completion inside it, of another instrumentation, was a second call).
_SPELT_OTHERWISE = {"text_completions": "text_completion"}

#: The attributes without which :func:`classify` finds no GenAI call in a span.
GENAI_MARKERS = semconv.GENAI_MARKERS


def may_be_genai(attributes: Mapping[str, Any]) -> bool:
    """False for a span :func:`classify` certainly finds no GenAI call in: the one check every span pays."""
    return not GENAI_MARKERS.isdisjoint(attributes)


def classify(attributes: Mapping[str, Any]) -> tuple[Kind, str] | None:
    """(kind, operation) of a span from its attributes, or None when it is no GenAI call. Cheap for
    the spans of every other library: one or two dict lookups."""
    operation = attributes.get(semconv.GEN_AI_OPERATION_NAME)
    if operation is None:
        kind = attributes.get(OPENINFERENCE_KIND)
        if kind is None:
            kind = attributes.get(OPENLLMETRY_REQUEST_TYPE)
            return _OPENLLMETRY.get(kind) if isinstance(kind, str) else None
        return _OPENINFERENCE.get(kind) if isinstance(kind, str) else None
    if not isinstance(operation, str) or operation in _NOT_CALLS:
        return None
    operation = _SPELT_OTHERWISE.get(operation, operation)
    if operation == semconv.OPERATION_INVOKE_AGENT:
        return Kind.AGENT, operation
    if operation == semconv.OPERATION_INVOKE_WORKFLOW:
        return Kind.WORKFLOW, operation
    if operation == semconv.OPERATION_EXECUTE_TOOL:
        return None if attributes.get(semconv.GEN_AI_TOOL_NAME) in _NOT_TOOL_CALLS else (Kind.TOOL, operation)
    if operation in _MODEL_OPERATIONS or request_model_of(attributes):
        return Kind.PROVIDER, operation
    # an operation of a framework's own that names no model (CrewAI's execute_task, execute_method): a step, no model
    # call (it was one of provider "unknown", in the job's model calls and its unpriced ones)
    return None


def same_operation(one: str, other: str, one_model: str | None, other_model: str | None) -> bool:
    """Whether two nested spans' operations can name one call: equal (the attempts of a router or a retry loop at
    other models are the call's), or two inferences (:data:`~agent_otel.semconv.INFERENCE_OPERATIONS`) of the same
    request model, or where one names none. A ``@provider`` (``chat`` by default) around google-genai's
    ``generate_content`` span was two calls, its tokens and cost counted twice; a completion request to another model
    inside a chat call is a call of its own."""
    return one == other or (one in _INFERENCE and other in _INFERENCE and (
        one_model in _UNNAMED or other_model in _UNNAMED or one_model == other_model))


_INFERENCE = semconv.INFERENCE_OPERATIONS
#: A request model that names none: absent, empty, or past the cardinality cap (agent-otel's own call's label).
_UNNAMED = frozenset({None, "", OTHER})


def _first(attributes: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        value = attributes.get(key)
        if value is not None:
            return value
    return None


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return None
    return int(value)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True)
class Usage:
    """Tokens a provider span reports (None: not reported)."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None


def usage_of(attributes: Mapping[str, Any]) -> Usage:
    """The tokens of a provider span, under any of the names instrumentations use: the GenAI conventions'
    (v0.1.0's ``cache_write``, the core semconv package's ``cache_creation``, which pydantic-ai emits), older
    ones, pydantic-ai's ``gen_ai.usage.details.*`` (its only name for reasoning tokens) and OpenInference's.
    A cache write or reasoning token missed is priced at the plain input or output price: a wrong cost."""
    return Usage(
        input_tokens=_count(_first(attributes, semconv.GEN_AI_USAGE_INPUT_TOKENS, "gen_ai.usage.prompt_tokens",
                                   "llm.token_count.prompt")),
        output_tokens=_count(_first(attributes, semconv.GEN_AI_USAGE_OUTPUT_TOKENS, "gen_ai.usage.completion_tokens",
                                    "llm.token_count.completion")),
        cache_read_tokens=_count(_first(attributes, "gen_ai.usage.cache_read.input_tokens",
                                        "gen_ai.usage.cache_read_input_tokens",
                                        "llm.token_count.prompt_details.cache_read")),
        cache_write_tokens=_count(_first(attributes, "gen_ai.usage.cache_write.input_tokens",
                                         GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
                                         "gen_ai.usage.cache_creation_input_tokens",
                                         "gen_ai.usage.details.cache_write_tokens",
                                         "llm.token_count.prompt_details.cache_write")),
        reasoning_tokens=_count(_first(attributes, "gen_ai.usage.reasoning.output_tokens",
                                       "gen_ai.usage.details.reasoning_tokens",
                                       "gen_ai.usage.reasoning_tokens",  # OpenLLMetry's
                                       "llm.token_count.completion_details.reasoning")),
    )


def provider_of(attributes: Mapping[str, Any]) -> str | None:
    return _text(_first(attributes, semconv.GEN_AI_PROVIDER_NAME, "gen_ai.system", "llm.provider", "llm.system"))


#: OpenInference's model: the one that answered when the call returned one (its OpenAI instrumentation's), else
#: the one asked for; the one asked for is in its request parameters (JSON), when the instrumentation records them.
_OPENINFERENCE_MODEL, _OPENINFERENCE_PARAMETERS = "llm.model_name", "llm.invocation_parameters"


def request_model_of(attributes: Mapping[str, Any]) -> str | None:
    return _text(attributes.get(semconv.GEN_AI_REQUEST_MODEL)) or _requested(attributes) or _text(
        attributes.get(_OPENINFERENCE_MODEL))


def response_model_of(attributes: Mapping[str, Any]) -> str | None:
    """The response model; OpenInference's model name when its parameters name the model asked for (then it is
    the one that answered), so that one call is one series whichever instrumentation recorded it."""
    found = _text(attributes.get(semconv.GEN_AI_RESPONSE_MODEL))
    if found is None and semconv.GEN_AI_REQUEST_MODEL not in attributes and _requested(attributes):
        return _text(attributes.get(_OPENINFERENCE_MODEL))
    return found


def _requested(attributes: Mapping[str, Any]) -> str | None:
    """The ``model`` of OpenInference's request parameters."""
    parameters = attributes.get(_OPENINFERENCE_PARAMETERS)
    if not isinstance(parameters, str) or '"model"' not in parameters:
        return None
    try:
        found = json.loads(parameters)
    except ValueError:
        return None
    return _text(found.get("model")) if isinstance(found, dict) else None


def agent_name_of(attributes: Mapping[str, Any]) -> str | None:
    return _text(_first(attributes, semconv.GEN_AI_AGENT_NAME, "agent.name"))


def workflow_name_of(attributes: Mapping[str, Any]) -> str | None:
    """A workflow's name: ``gen_ai.workflow.name`` (instrumentations older than v0.1.0 of the GenAI
    conventions, which name it in ``gen_ai.agent.name``)."""
    return _text(attributes.get("gen_ai.workflow.name"))


def tool_name_of(attributes: Mapping[str, Any]) -> str | None:
    return _text(_first(attributes, semconv.GEN_AI_TOOL_NAME, "tool.name"))


#: How logfire says a span is a log record (a span of no duration): one with a GenAI call's attributes is how a streamed
#: call ended, the stream read, beside the request's span, which ended as the stream was handed out, with no usage
_LOGFIRE_SPAN_TYPE = "logfire.span_type"


def usage_report(attributes: Mapping[str, Any]) -> bool:
    """Whether a model call's span only reports the usage of a call whose own span counted it (logfire's log of a
    streamed response)."""
    return attributes.get(_LOGFIRE_SPAN_TYPE) == "log"


def usage_reported_later(span: Any) -> bool:
    """Whether a model call's span is of a library that may report its usage later (see :func:`usage_report`)."""
    return (scope_of(span) or "").startswith("logfire")


#: The instrumentations (by scope name) that start their spans with no attribute and mark them later, with the span
#: current while it runs: the calls inside one are inside it, so a call counted directly inside one that is marked as it
#: ends is that call (see COUNTED_BELOW), and one with none inside was counted by no one. Right after the start:
#: strands; Semantic Kernel's model-call spans (``tracer.start_span(name)`` then ``set_attributes()``, made current by
#: ``use_span``), and Microsoft Agent Framework's, its successor (its agent and model-call spans the same way); Google
#: ADK 2's (tracer ``gcp.vertex.agent``); OpenInference's LiteLLM instrumentation (its ``completion`` span, current
#: through ``start_as_current_span`` or ``use_span``); AG2's own tracing (``autogen.opentelemetry``, tracer
#: ``opentelemetry.instrumentation.ag2``: agent, model-call and tool spans). As it ends: openlit's
#: (``start_as_current_span`` with no attribute, every ``gen_ai.*`` one set once the response is read; tracer
#: ``openlit.otel.tracing``). Their spans are counted however late they are noted (see GenAiSpanBridge.start_late).
#: Those of other instrumentations marked only as they end are not: OpenInference's LangChain instrumentation does not
#: make its spans current (the SDK's span of the same call is beside it, counted already), and OpenInference's
#: LlamaIndex one marks helper steps (``_prepare_chat_with_tools``) as model calls.
MARKED_LATE_WHILE_CURRENT = ("strands.", "semantic_kernel.", "agent_framework.", "gcp.vertex.agent.", "openlit.",
                             "openinference.instrumentation.litellm.", "opentelemetry.instrumentation.ag2.")


def marked_late_while_current(span: Any) -> bool:
    """Whether ``span`` is of an instrumentation in :data:`MARKED_LATE_WHILE_CURRENT`: a scope named as one (without its
    dot), or under one."""
    name = scope_of(span)
    return name is not None and (name + ".").startswith(MARKED_LATE_WHILE_CURRENT)


#: The exception a provider SDK raises for each ``error.type`` its own spans write (by their instrumentation
#: scope): the Anthropic SDK's names the error type of the API's response (``rate_limit_error``), or the client's
#: failure, where agent-otel's wrappers and the other instrumentations name the exception (``RateLimitError``).
#: The SDK raises a subclass for some error codes and statuses (``RampLimitExceededError``, a 503's
#: ``ServiceUnavailableError``), which the span's error type does not tell: those read as the class of the type.
SDK_ERRORS: dict[str | None, dict[str, str]] = {
    "com.anthropic.sdk.python": {
        "invalid_request_error": "BadRequestError", "authentication_error": "AuthenticationError",
        "billing_error": "PaymentRequiredError", "permission_error": "PermissionDeniedError",
        "not_found_error": "NotFoundError", "request_too_large": "ContentTooLargeError",
        "rate_limit_error": "RateLimitError", "api_error": "InternalServerError",
        "timeout_error": "GatewayTimeoutError", "overloaded_error": "OverloadedError",
        "connection_error": "APIConnectionError", "client_timeout_error": "APITimeoutError",
    },
}


#: Where a span says how long the first chunk of its streamed response took: the conventions' attribute (the
#: OpenAI instrumentation's), and pydantic-ai's, named after the metric it records.
TIME_TO_FIRST_CHUNK = semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK
_TIME_TO_FIRST_CHUNK_KEYS = (TIME_TO_FIRST_CHUNK, "gen_ai.client.operation.time_to_first_chunk")


def time_to_first_chunk_of(attributes: Mapping[str, Any]) -> float | None:
    value = _first(attributes, *_TIME_TO_FIRST_CHUNK_KEYS)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0 else None
