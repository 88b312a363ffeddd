"""LLM provider calls: GenAI semconv span and metrics, tokens, cost, retries, fallbacks, streams."""

from __future__ import annotations

import collections
import dataclasses
import itertools
import json
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, SpanKind, Status, StatusCode

from agent_otel import semconv
from agent_otel._calls.call_counts import CALLS_KEY, INFERENCE, RUNS, CallCounts, run_of, run_under
from agent_otel._calls.content import input_attributes, output_content, prompt_text
from agent_otel._calls.extractors import Call, Extractor, attribute_of, field_of, pydantic_extra
from agent_otel._calls.handler import (
    UNREAD,
    KindHandler,
    ManualCall,
    P,
    R,
    coerce_count,
    coerce_number,
    decorator,
    error_type_label,
    given_flag,
    manual_name,
    text_value,
)
from agent_otel._calls.options import PROVIDER, Amount, Attributes, Count, Flag, Number, Text, collect
from agent_otel._calls.pricing import TokenUsage, cost_of_usage, price_of
from agent_otel._context.job import AGENT_KEY, AGENT_VERSION_KEY, JOB_KEY, JobState
from agent_otel._context.running import STARTED_IN, running_context
from agent_otel._engine import instruments as _instruments
from agent_otel._engine import policy as _policies
from agent_otel._engine.instruments import runtime
from agent_otel._engine.policy import policy, valid_attributes
from agent_otel._engine.self_telemetry import Misuse, report_error
from agent_otel._engine.wrappers import End, Invocation

PROVIDER_KEY = otel_context.create_key("agent_otel.provider")

_INPUT_FIELDS = ("prompt_tokens", "input_tokens", "prompt_token_count", "inputTokens", "prompt_eval_count")
_OUTPUT_FIELDS = ("completion_tokens", "output_tokens", "candidates_token_count", "outputTokens", "eval_count")
#: Where the token details are: OpenAI Chat Completions, then the Responses API, then LangChain's
#: ``usage_metadata`` (all counted inside the input/output tokens), then Gemini (cache inside the prompt count;
#: thoughts outside the candidates count).
_INPUT_DETAILS = ("prompt_tokens_details", "input_tokens_details", "input_token_details")
_OUTPUT_DETAILS = ("completion_tokens_details", "output_tokens_details", "output_token_details")
#: Anthropic reports cache reads and writes *beside* ``input_tokens``: the conventions count them in it. So does
#: Amazon Bedrock's Converse API (``inputTokens``), under its own names.
_ANTHROPIC_CACHE_READ, _ANTHROPIC_CACHE_WRITE = "cache_read_input_tokens", "cache_creation_input_tokens"
_BEDROCK_CACHE_READ, _BEDROCK_CACHE_WRITE = "cacheReadInputTokens", "cacheWriteInputTokens"
_NOT_STREAMS = (str, bytes, bytearray, dict, list, tuple)
#: Where an SDK's helper stream keeps the response it has accumulated (see ``on_stream_exit``).
_STREAM_SNAPSHOTS = ("current_message_snapshot", "current_completion_snapshot")


def _snapshot_of(stream: Any) -> object | None:
    """The response an SDK's helper stream accumulated so far (see ProviderInvocation.on_stream_exit); None before its
    first event."""
    for name in _STREAM_SNAPSHOTS:
        try:
            snapshot: object = getattr(stream, name, None)
        except Exception:  # a snapshot property that asserts one exists: no event arrived
            snapshot = None
        if snapshot is not None:
            return snapshot
    return None


def _is_event_stream(result: object) -> bool:
    """botocore's ``EventStream`` (Amazon Bedrock's ConverseStream returns one in its result's ``stream``): iterable,
    its ``__iter__`` parsing the events as the response arrives, with no ``__next__`` and no ``with``. ConverseStream's
    usage comes last (``metadata.usage``); InvokeModelWithResponseStream's is inside each chunk's bytes, not read."""
    kind = result.__class__  # (through an instrumentation's proxy, as for a stream manager)
    return kind.__name__ == "EventStream" and kind.__module__.startswith("botocore.") and hasattr(kind, "__iter__")


def _is_stream_manager(result: object) -> bool:
    """What the SDKs' streaming helpers return, ``client.messages.stream(...)`` (Anthropic) and
    ``client.chat.completions.stream(...)`` (OpenAI), named ``*StreamManager`` in both, and what their
    ``with_streaming_response`` returns (``*ResponseContextManager``): a context manager whose block gets the
    stream or the response. The request is made as the block is entered, so the call is timed until the block
    is left."""
    name = result.__class__.__name__  # __class__: through an instrumentation's proxy (its type is *Wrapper)
    return (name.endswith("StreamManager") or name.endswith("ResponseContextManager")) and (
        hasattr(result, "__enter__") or hasattr(result, "__aenter__"))
#: Every key of a usage report that :meth:`ProviderInvocation._read_details` reads: a dict with none of
#: them (a plain ``{"prompt_tokens": .., "completion_tokens": ..}``) has no details to look for.
_DETAIL_KEYS = frozenset({_ANTHROPIC_CACHE_READ, _ANTHROPIC_CACHE_WRITE, _BEDROCK_CACHE_READ, _BEDROCK_CACHE_WRITE,
                          *_INPUT_DETAILS, *_OUTPUT_DETAILS, "cached_content_token_count", "thoughts_token_count"})
_DEFAULT_OPERATION = PROVIDER["operation"].default  # also when an extractor finds nothing
_USAGE_FIELDS = tuple(field.name for field in dataclasses.fields(TokenUsage))


#: Items of a stream that carry no usage or model (exactly these types: their attributes are Python's own).
_SCALARS = frozenset({str, bytes, int, float, bool, type(None)})
#: A stream event's ``data`` that is no chunk of the response.
_NOT_A_CHUNK = (str, bytes, list, tuple, int, float)
#: What an object's `raw` is when it holds no model client's response (read for LlamaIndex's: see _read_usage).
_NOT_A_RESPONSE = (*_NOT_A_CHUNK, bytearray, memoryview, bool)


class ProviderInvocation(Invocation):
    """One provider call. A call nested in a call to the same provider (a raw request inside a
    function that retries it) is the same logical request: only the outermost counts as a call
    (duration, time to first chunk, the job's provider calls) and its tokens and cost are counted once,
    at the innermost calls that have them (``usage_below`` tells the outer ones). Another library's span
    of the same request inside the call (an SDK's instrumentation under a wrapper that returns only the
    text) hands it the tokens its result did not show (``usage_inside``). A call of another provider inside the
    call is a request of its own; when the call returns what that one answered (a router, a fallback), its
    tokens and cost are that call's, counted there (``answers_below``)."""

    __slots__ = ("answers_below", "cache_beside_input", "cache_read", "cache_write", "call", "enclosing",
                 "finish_reasons", "handler", "input_tokens", "model", "model_named_by", "models_inside",
                 "open_inside", "operation",
                 "outer", "output_tokens", "priced_model", "prompt_text", "provider", "read_below", "reads_response",
                 "reasoning", "response_id", "response_model", "retries", "unpriced_in_job", "usage_after",
                 "usage_below", "usage_inside", "usage_within")

    def __init__(self, span: Any, ctx: Any, handler: ProviderHandler, call: Call | None, provider: str, model: str,
                 operation: str, priced_model: str) -> None:
        Invocation.__init__(self, span, ctx, "provider")  # without super()'s object
        self.handler = handler
        self.call = call
        self.provider = provider
        self.model = model  # under the cardinality cap: a metric label
        self.priced_model = priced_model  # as given: what the price is of
        self.operation = operation
        self.retries = 0
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.cache_read: int | None = None
        self.cache_write: int | None = None
        self.cache_beside_input = False  # Anthropic's usage: cache tokens not counted in input_tokens
        self.reasoning: int | None = None
        self.response_model: str | None = None
        #: what the response model was read off (a response, a chunk; or the program's own data: see record)
        self.model_named_by: Any = None
        #: the response's id and why it stopped, by choice: read only for a span that records (see _read_response)
        self.reads_response = type(span) is not NonRecordingSpan
        self.response_id: str | None = None
        self.finish_reasons: dict[int, str] | None = None
        self.outer: ProviderInvocation | None = None
        self.usage_below = False
        #: a call of another provider inside this one reported usage (a router's or fallback's request)
        self.usage_within = False
        #: the call of another provider this one runs in (a router's, a fallback's first provider's)
        self.enclosing: ProviderInvocation | None = None
        #: what the calls of other providers inside this one answered (results, their usage), whose tokens
        #: those calls counted: this call returning one of them made no request of its own for it
        self.answers_below: list[object] = []
        #: the usage objects calls of other providers inside this one read last (their chunks, as a stream passes
        #: through this one to its reader): this call reads each right after them, and skips it; the last few only,
        #: so that a long stream costs neither a scan of all before each chunk nor the memory of them
        self.read_below: collections.deque[object] | None = None  # (made by the first, as few calls have any)
        #: the prompt's JSON messages as the call started, when content is captured (see content.prompt_text)
        self.prompt_text: str | None = None
        #: (tokens, model to price them at, model that answered) that other libraries' spans of this call reported, one
        #: entry per request (see add_usage_inside)
        self.usage_inside: list[tuple[TokenUsage, str | None, str | None]] = []
        #: the models that answered requests inside whose spans reported no usage (a stream that asked for none)
        self.models_inside: list[str] = []
        #: the span bridge's: those spans still open (it tells a request from a second trace of it)
        self.open_inside: list[Any] = []
        #: set when the call has recorded no usage of its own: its token attributes, for the usage such a span
        #: reports after the call ended (see add_usage_inside)
        self.usage_after: dict[str, Any] | None = None
        #: the logical request ended with no usage, counted among its job's unpriced calls (see add_usage_inside)
        self.unpriced_in_job = False

    def add_usage_inside(self, usage: TokenUsage, model: str | None, answered: str | None = None) -> None:
        """One request that another library's span inside this call reported: its tokens, the model to price them at
        (the one that answered, else the one asked for) and the one that answered (``answered``, when the span said).
        Counted when the call's own result reports none (an append: safe from any thread); recorded on
        its own when that span ends after the call did (a raw response whose streamed body the program reads
        after the call returned it), the call having recorded no usage."""
        attributes = self.usage_after
        if attributes is None:
            self.usage_inside.append((usage, model, answered))
            return
        ctx = self.context
        if answered and semconv.GEN_AI_RESPONSE_MODEL not in attributes:
            attributes = {**attributes, semconv.GEN_AI_RESPONSE_MODEL: policy().bounded(semconv.GEN_AI_RESPONSE_MODEL,
                                                                                        answered)}
        cost, unpriced = priced_cost(model, self.priced_model, usage)
        record_usage(ctx, attributes, usage, cost, otel_context.get_value(AGENT_KEY, ctx), unpriced=unpriced)
        taken_back, self.unpriced_in_job = (1 if self.unpriced_in_job else 0), False  # it ended without this usage
        taken_back += self._tell_around()
        job = otel_context.get_value(JOB_KEY, ctx)
        if isinstance(job, JobState):
            job.add(input_tokens=usage.input or 0, output_tokens=usage.output or 0, cost=cost or 0.0,
                    priced_calls=cost is not None, unpriced_calls=(1 if unpriced else 0) - taken_back)

    def _tell_around(self) -> int:
        """A request inside this call reported usage: the calls around it (the same provider's, ``outer``; another
        provider's it runs in, a router's or fallback's, ``enclosing``) do not count themselves among their job's
        unpriced calls, and one that ended so already takes it back. Returns how many took it back."""
        taken_back, node = 0, self
        while True:
            around = node.outer if node.outer is not None else node.enclosing
            if around is None:
                return taken_back
            if node.outer is not None:
                around.usage_below = True
            else:
                around.usage_within = True
            if around.unpriced_in_job:
                around.unpriced_in_job = False
                taken_back += 1
            node = around

    def _named_by_no_response(self) -> bool:
        """Whether the response model the result named was read off no response (nor chunk): an object with none of a
        response's other fields (an id, choices, a stop reason...), the program's own data (a structured output's
        ``model`` field: a car's)."""
        named_by = self.model_named_by
        if self.response_model is None or named_by is None:
            return False
        if type(named_by) is dict:
            return _RESPONSE_SHAPE.isdisjoint(named_by)
        return all(_own_path(named_by, name) is None for name in _RESPONSE_SHAPE)

    def _adopt_usage_inside(self, *, over_the_results: bool = False) -> tuple[float | None, bool]:
        """The tokens of the requests inside, summed (a retry's attempts, a router's requests), as the call's;
        returns their cost, each priced at the model that answered it, and whether one had no price. Their
        response model is the call's when they agree."""
        entries = list(self.usage_inside)
        total = TokenUsage()
        cost: float | None = None
        unpriced = False
        for usage, model, _ in entries:
            for field in _USAGE_FIELDS:
                setattr(total, field, _added(getattr(total, field), getattr(usage, field)))
            part, missing = priced_cost(model, self.priced_model, usage)
            if part is not None:
                cost = (cost or 0.0) + part
            unpriced = unpriced or missing
        self._take_usage(total)
        self._answered_inside([*(answered for _, _, answered in entries), *self.models_inside],
                              over_the_results=over_the_results)
        return cost, unpriced

    def _answered_inside(self, answered: list[str | None], *, over_the_results: bool = False) -> None:
        """The model that answered the requests inside (``answered``: what their spans reported) is the call's, when
        their spans name it and agree, and its result named none (AutoGen's ``create`` returns the tokens, not the
        model). ``over_the_results``: also when it named one off no response (see :meth:`_named_by_no_response`), and
        showed no usage, whose requests inside are the call's."""
        models = set(answered)
        if (over_the_results or not self.response_model) and len(models) == 1:
            self.response_model = models.pop() or self.response_model

    def _one_request_inside(self) -> bool:
        """Whether the usage the result showed is that of one of the requests other libraries' spans reported inside
        the call: the call returned the last response of several (a re-ask, a tool loop), and made them all, so its
        tokens are theirs, summed. Counting the result's alone counted one request of several."""
        shown = (self.input_tokens, self.output_tokens)
        return shown != (None, None) and any((usage.input, usage.output) == shown for usage, *_ in self.usage_inside)

    def wants_stream(self, result: Any) -> bool:
        """Whether the result is a stream to time: an iterator (or an async one) or an SDK's stream manager, and with
        the ``stream`` option true any other context manager too; with it false, nothing. A value (a dict, a string,
        a number...) never is: the call returned it whole, and a proxy of it was no dict to ``json.dumps()``, and
        ended the call only when dropped, without its usage (the engine asks for no value of PLAIN_TYPES)."""
        stream = self.handler.options.get("stream")
        if stream is not None and not stream:
            return False
        if attribute_of(result, "__next__") is not None or attribute_of(result, "__anext__") is not None or \
                _is_stream_manager(result):
            return not isinstance(result, _NOT_STREAMS)
        if _unread_json_response(result) or _is_event_stream(result):  # what the SDKs' ``create`` returns under
            return True  # ``with_streaming_response``; botocore's event stream (Bedrock's ConverseStream)
        kind = type(result)
        return bool(stream) and (hasattr(kind, "__enter__") or hasattr(kind, "__aenter__"))

    def on_stream_exit(self, stream: Any) -> bool:
        """The response an SDK's helper stream accumulated (Anthropic's ``current_message_snapshot``,
        OpenAI's ``current_completion_snapshot``, the completed response of OpenAI's Responses helper), read
        as a last chunk when its block is left; read to the end when it says why the model stopped. The response
        ``with_streaming_response`` hands out was read to the end when its body was (its usage is read from a JSON
        body; a streamed one was the program's to read)."""
        http_response = getattr(stream, "http_response", None)
        if http_response is not None:
            self._read_usage(stream)
            return _body_read(http_response)
        snapshot = _snapshot_of(stream)
        if snapshot is None:
            # OpenAI's Responses helper (``client.responses.stream``) shows no snapshot: its response is kept once
            # ``response.completed`` arrived, which get_final_response() reads without passing through our proxy
            completed = getattr(getattr(stream, "_state", None), "_completed_response", None)
            if completed is None:
                return False
            self._read_usage(completed)
            return True
        self._read_usage(snapshot)
        if field_of(snapshot, "stop_reason") is not None:
            return True
        choices = field_of(snapshot, "choices")
        return bool(choices) and all(field_of(choice, "finish_reason") is not None for choice in choices)

    def stream_started(self, stream: Any) -> bool:
        """Whether an SDK's helper stream shows a response begun: its snapshot is made from the first event."""
        return _snapshot_of(stream) is not None or getattr(
            getattr(stream, "_state", None), "_completed_response", None) is not None

    def on_stream_close(self, stream: Any) -> bool:
        """A raw response with its body unread when the call returned (see :func:`_unread_json_response`), closed as
        ``with_streaming_response``'s block is left: read through when its body was, the usage read from it."""
        return getattr(stream, "http_response", None) is not None and self.on_stream_exit(stream)

    def on_chunk(self, item: Any) -> None:
        # Streamed responses report usage (and the model) on some chunk, usually the last; the events of
        # OpenAI's streaming helper carry the raw chunk as ``chunk``.
        if type(item) is list or type(item) is tuple:
            item = _answer_among(item)
        if type(item) in _SCALARS:  # a piece of text or a number has none of those fields: nothing to read
            return
        if item.__class__.__name__ == _LANGCHAIN_CHUNK and getattr(item, "usage_metadata", None) is not None:
            self._add_usage(item)
            return
        chunk = field_of(item, "chunk")
        if chunk is None:  # Mistral's stream events carry theirs as ``data``
            chunk = _own_path(item, "data")
            if isinstance(chunk, _NOT_A_CHUNK):  # an SSE frame's text, a list of parts
                chunk = None
        self._read_usage(chunk if chunk is not None else item)

    def _add_usage(self, chunk: Any) -> None:
        """A LangChain message chunk's usage: its share of the call's, added to what the chunks before it reported
        (their usage adds up, ``chunk + chunk``: an Anthropic model's first chunk has the input, its last the output,
        with an input of 0); or, when no count of it is below the ones before, the running total of a stream that
        yields its accumulated message (``acc = acc + chunk``), which replaces them."""
        before = self.usage()  # (a chunk a call inside this one counted reads as none: what was before stays)
        self._take_usage(TokenUsage())
        self._read_usage(chunk)
        now = self.usage()
        counts = [(getattr(before, name), getattr(now, name)) for name in _USAGE_FIELDS]
        running_total = any(kept is not None for kept, _ in counts) and all(
            kept is None or count is None or count >= kept for kept, count in counts)
        self._take_usage(TokenUsage(*((count if count is not None else kept) if running_total else _added(kept, count)
                                      for kept, count in counts)))

    def read_by_a_call_inside(self, usage: object) -> None:
        """A call of another provider inside this one read ``usage`` (a chunk of the stream it hands to this one, its
        response): this call, reading it next, skips it (:meth:`_claimed_below`)."""
        read_below = self.read_below
        if read_below is None:
            read_below = self.read_below = collections.deque(maxlen=_READ_BELOW_KEPT)
        read_below.append(usage)

    def _claimed_below(self, usage: object) -> bool:
        """Whether ``usage`` is what a call of another provider inside this one read (a router returning its answer or
        its stream), so counted there."""
        read_below, answers = self.read_below, self.answers_below
        if usage is None or (read_below is None and not answers):  # (every call's usage asks: most have none below)
            return False
        return any(seen is usage for seen in itertools.chain(read_below or (), answers))

    def _read_usage(self, source: Any) -> None:
        if type(source) is list or type(source) is tuple:
            source = _answer_among(source)
            if source is None:
                return
        source, usage = _usage_shown(source)
        carried_looked = usage is None
        if carried_looked:  # LlamaIndex's ChatResponse and CompletionResponse (a stream's chunks too) carry the model
            # client's response, or its chunk, as `raw`: its usage, model, id and finish reasons, unless the object
            # shows its own (read after it, below)
            raw = _carried_response(source)
            if raw is not None:
                self._read_usage(raw)
        if usage is not None:
            enclosing = self.enclosing
            if enclosing is not None:  # read as it is read: a chunk reaches the router's stream right after this one's
                enclosing.read_by_a_call_inside(usage)  # (also one counted below here: the router skips it too)
            if self._claimed_below(usage):
                usage = None  # the answer of a call inside this one (its response, its stream's chunk): counted there
        if usage is not None:
            counted = field_of(usage, "tokens")  # Cohere's: `tokens` counted, beside the `billed_units` billed
            if counted is not None and field_of(usage, *_INPUT_FIELDS, *_OUTPUT_FIELDS) is None:
                usage = counted
            tokens_in = coerce_count(field_of(usage, *_INPUT_FIELDS), "provider.input_tokens")
            tokens_out = coerce_count(field_of(usage, *_OUTPUT_FIELDS), "provider.output_tokens")
            tokens_in, tokens_out = self._read_details(usage, tokens_in, tokens_out)
            if tokens_in is not None:
                self.input_tokens = tokens_in
            if tokens_out is not None:
                self.output_tokens = tokens_out
        self._read_model(source, carried_looked)

    def _read_model(self, source: Any, carried_looked: bool = False) -> None:
        """The response model, id and finish reasons ``source`` shows (the tokens aside: see _read_usage;
        ``carried_looked``: the response it carries was looked for there, and read if there was one)."""
        model = field_of(source, "model")
        if model is None:
            model = _first_of(field_of(source, "message"), field_of(source, "response"), name="model")
        if model is None:  # Gemini's response names it `model_version`
            model = _own_path(source, "model_version")
        if model is None:  # a LangChain message: in its `response_metadata`
            model = field_of(_own_path(source, "response_metadata"), "model_name", "model")
        if model is None and not carried_looked:  # Semantic Kernel's message, whose usage is its own (in its
            # `metadata`): the response it carries names the model, id and finish reasons (its own `ai_model_id` is the
            # model asked for); the object's own fields, read below, win
            carried = _carried_response(source)
            if carried is not None:
                self._read_model(carried)
        if isinstance(model, str):
            self.response_model, self.model_named_by = model, source
        if self.reads_response:
            self._read_response(source)

    def _read_response(self, source: Any) -> None:
        """The response's id and why it stopped (``gen_ai.response.id``, ``gen_ai.response.finish_reasons``): the id
        of the response, a chunk, Anthropic's ``message_start`` message, the Responses API's response (Gemini's
        ``response_id``); each choice's ``finish_reason`` (OpenAI's; Gemini's candidates'), Anthropic's ``stop_reason``
        (on its message, or its ``message_delta`` event's delta), a LangChain message's in its metadata, Bedrock
        Converse's ``stopReason`` (its stream's in a ``messageStop`` event). Fields the
        object holds itself only (see :func:`_own_path`): a chunk's absent field raised in a pydantic model's
        ``__getattr__``, µs per chunk. A dict with none of the fields read is passed over in one look."""
        if type(source) is dict and _RESPONSE_FIELDS.isdisjoint(source):
            return
        response_id = _first_own(source, ("response_metadata", "id"))  # a LangChain message's own is its run's
        if response_id is None:
            response_id = _first_own(source, ("id",), ("message", "id"), ("response", "id"), ("response_id",))
        if isinstance(response_id, str) and response_id:  # (an empty one, a late usage chunk's, keeps the id read)
            self.response_id = response_id
        choices = _own_path(source, "choices")
        if choices is None:
            choices = _own_path(source, "candidates")
        if isinstance(choices, list):
            for position, choice in enumerate(choices):
                index = _own_path(choice, "index")
                self._finished(index if isinstance(index, int) else position, _own_path(choice, "finish_reason"))
            return
        self._finished(0, _first_own(source, ("stop_reason",), ("delta", "stop_reason"), ("message", "stop_reason"),
                                     ("response_metadata", "finish_reason"), ("response_metadata", "stop_reason"),
                                     ("stopReason",), ("messageStop", "stopReason")))  # (Bedrock's Converse)

    def _finished(self, choice: int, reason: object) -> None:
        """One choice's finish reason: a string (an enum of strings, as Gemini's, by its value), the last one read."""
        if not isinstance(reason, str):
            try:  # an enum's value (the program's object: reading it may raise anything)
                reason = getattr(reason, "value", None)
            except Exception:
                return
        if isinstance(reason, str) and reason:
            if self.finish_reasons is None:
                self.finish_reasons = {}
            self.finish_reasons[choice] = reason

    def _read_details(self, usage: Any, tokens_in: int | None, tokens_out: int | None) -> tuple[int | None, int | None]:
        """Cache and reasoning tokens of one usage report; returns the input and output tokens as the
        conventions count them (cache reads and writes inside input, reasoning inside output)."""
        if type(usage) is dict and not self.cache_beside_input and _DETAIL_KEYS.isdisjoint(usage):
            return tokens_in, tokens_out
        anthropic_read = coerce_count(field_of(usage, _ANTHROPIC_CACHE_READ, _BEDROCK_CACHE_READ),
                                      "provider.cache_read")
        anthropic_write = coerce_count(field_of(usage, _ANTHROPIC_CACHE_WRITE, _BEDROCK_CACHE_WRITE),
                                       "provider.cache_write")
        if anthropic_read is not None or anthropic_write is not None:
            # Anthropic's own usage counts input beside the cache; an OpenAI-format one (a proxy's, LiteLLM's for
            # Claude) with these keys counts it inside ``prompt_tokens``, its reads in ``cached_tokens`` as usual
            self.cache_beside_input = self.cache_beside_input or field_of(usage, "prompt_tokens") is None
            if anthropic_read is not None:
                self.cache_read = anthropic_read
            if anthropic_write is not None:
                self.cache_write = anthropic_write
        if self.cache_beside_input:  # a stream's later event may repeat input_tokens without the cache counts
            if tokens_in is not None:
                tokens_in += (self.cache_read or 0) + (self.cache_write or 0)
            return tokens_in, tokens_out
        details = field_of(usage, *_INPUT_DETAILS)
        # (OpenAI's names, then LangChain's)
        written = coerce_count(field_of(details, "cache_write_tokens", "cache_creation"), "provider.cache_write")
        if written is not None:
            self.cache_write = written
        cached = coerce_count(field_of(details, "cached_tokens", "cache_read"), "provider.cache_read")
        if cached is None:
            cached = coerce_count(field_of(usage, "cached_content_token_count"), "provider.cache_read")
        if cached is not None:
            self.cache_read = cached
        reasoning = coerce_count(field_of(field_of(usage, *_OUTPUT_DETAILS), "reasoning_tokens", "reasoning"),
                                 "provider.reasoning")
        if reasoning is None:
            thoughts = coerce_count(field_of(usage, "thoughts_token_count"), "provider.reasoning")
            if thoughts is not None:  # Gemini bills thoughts as output but counts them apart
                reasoning = thoughts
                tokens_out = (tokens_out or 0) + thoughts
        if reasoning is not None:
            self.reasoning = reasoning
        return tokens_in, tokens_out

    def usage(self) -> TokenUsage:
        return TokenUsage(self.input_tokens, self.output_tokens, self.cache_read, self.cache_write, self.reasoning)

    def _take_usage(self, usage: TokenUsage) -> None:
        self.input_tokens, self.output_tokens = usage.input, usage.output
        self.cache_read, self.cache_write, self.reasoning = usage.cache_read, usage.cache_write, usage.reasoning

    def record(self, how: End, value: Any, error: BaseException | None, duration_s: float) -> None:
        handler, call = self.handler, self.call
        if call is not None:
            call.result, call.error = value, error
        one_of_several = False
        if value is not None:  # on an error too: what a manual block reported before it raised
            if self.answers_below and _answered_below(value, self.answers_below):
                self.usage_below = True  # a router's or fallback's answer: the nested call counted its tokens
                answer = _answer_among(value) if type(value) is list or type(value) is tuple else value
                self._read_model(_usage_shown(answer)[0])  # its model is the one that answered this call too
            else:
                self._read_usage(value)
                one_of_several = len(self.usage_inside) > 1 and self._one_request_inside()
        named = False  # a token option gave a count: the call's tokens are what the options and the result say
        for key in handler.token_options:
            explicit = coerce_count(handler.option(key, call), f"provider.{key}")
            if explicit is not None:
                setattr(self, key, explicit)
                named = True
        if one_of_several and not named:  # all of theirs (see _one_request_inside)
            self.input_tokens = self.output_tokens = self.cache_read = self.cache_write = self.reasoning = None
        inside_cost = None
        none_shown = self.input_tokens is None and self.output_tokens is None
        if self.usage_inside and none_shown:
            inside_cost = self._adopt_usage_inside(over_the_results=self._named_by_no_response())
        elif self.usage_inside:  # the requests inside whose tokens are those the result shows: its own request's
            shown = (self.input_tokens, self.output_tokens)
            self._answered_inside([answered for usage, _, answered in self.usage_inside
                                   if (usage.input, usage.output) == shown])
        elif self.models_inside and none_shown:  # no usage anywhere: the model the requests inside said answered them
            self._answered_inside(list(self.models_inside), over_the_results=self._named_by_no_response())
        if "response_model" in handler.options:
            response_model = handler.option("response_model", call)
            if response_model is not None and not isinstance(response_model, str):
                report_error("provider.response_model", TypeError("the response model is not a string"))
                response_model = None
            self.response_model = response_model or self.response_model
        retries = handler.option("retries", call) if "retries" in handler.options else None
        if retries:
            count = coerce_count(retries, "provider.retries", sized=True) or 0
            if count > self.retries:  # the call's total: what record_retry() (a marker) counted as they happened
                self.add_retries(count - self.retries)  # is among it, the same retries
        if error is None and "success" in handler.options:
            unavailable = given_flag(handler.option("success", call, UNREAD), "provider.success") is False
        else:
            unavailable = False
        attributes = {semconv.GEN_AI_OPERATION_NAME: self.operation, semconv.GEN_AI_PROVIDER_NAME: self.provider,
                      semconv.GEN_AI_REQUEST_MODEL: self.model}
        if self.response_model:
            guard = _policies._policy or policy()  # policy() without its call, once it is set
            attributes[semconv.GEN_AI_RESPONSE_MODEL] = guard.bounded(semconv.GEN_AI_RESPONSE_MODEL,
                                                                      self.response_model)
        token_attributes = dict(attributes)
        if error is not None:
            attributes[semconv.ERROR_TYPE] = error_type_label(error)
        elif unavailable:
            attributes[semconv.ERROR_TYPE] = semconv.ERROR_TYPE_UNAVAILABLE
        ctx = self.context
        values = ctx if ctx is not None else otel_context.get_current()
        outer = self.outer
        if outer is None:  # the logical request: counted once, at the outermost call
            record_request(ctx, attributes, duration_s, self.time_to_first_chunk_s, count_call=False)
        # the cost option's value; one that finds nothing (or nothing readable, counted) leaves the price table's
        explicit_cost = coerce_number(handler.option("cost", call), "provider.cost", 0.0, None) if (
            "cost" in handler.options and not self.usage_below) else None
        has_usage = self.input_tokens is not None or self.output_tokens is not None or explicit_cost is not None
        cost: float | None = None
        unpriced = False
        if self.usage_below:  # a nested call to the same provider counted the tokens and cost
            has_usage = False
            self.input_tokens = self.output_tokens = self.cache_read = self.cache_write = self.reasoning = None
        elif has_usage:
            usage = self.usage()
            if explicit_cost is not None:
                cost = explicit_cost
            elif inside_cost is not None:
                cost, unpriced = inside_cost
            else:
                cost, unpriced = priced_cost(self.response_model, self.priced_model, usage)
            record_usage(ctx, token_attributes, usage, cost, values.get(AGENT_KEY), unpriced=unpriced)
        if not has_usage and not self.usage_below and error is None:  # (an inner call too: the span inside hands its
            # usage to the innermost call of its operation, see the bridge)
            self.usage_after = token_attributes
        reached = has_usage or self.usage_below or self.usage_within  # this request, or one inside it, has usage
        taken_back = self._tell_around() if reached else 0  # (outer.usage_below: the tokens are counted here)
        if self.enclosing is not None and (has_usage or self.usage_below) and error is None and value is not None:
            # what this call answered, counted here or below: a router that returns it does not count it again
            self.enclosing.answers_below += (value, field_of(value, "usage", "usage_metadata"))
        job = values.get(JOB_KEY)  # current_job(), inlined
        if isinstance(job, JobState) and (outer is None or has_usage or taken_back):  # counted as it began
            # a logical request that ended with no usage, its own or a request's inside it (failed, cancelled, closed
            # early, answered without) has a cost the job cannot know: one of its unpriced calls, as is one still
            # running as the job ends
            no_usage = outer is None and not reached
            self.unpriced_in_job = no_usage
            job.add(input_tokens=self.input_tokens or 0,
                    output_tokens=self.output_tokens or 0, cost=cost or 0.0, priced_calls=cost is not None,
                    unpriced_calls=(1 if unpriced or no_usage else 0) - taken_back,
                    ended_calls=1 if outer is None else 0)
        span = self.span
        if span.is_recording():
            ended: dict[str, Any] = {semconv.AGENT_OTEL_RETRY_COUNT: self.retries}  # one set_attributes: one lock
            if self.response_model:
                ended[semconv.GEN_AI_RESPONSE_MODEL] = self.response_model
            if self.input_tokens is not None:
                ended[semconv.GEN_AI_USAGE_INPUT_TOKENS] = self.input_tokens
            if self.output_tokens is not None:
                ended[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] = self.output_tokens
            if self.cache_read is not None:
                ended[semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = self.cache_read
            if self.cache_write is not None:
                ended[semconv.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS] = self.cache_write
            if self.reasoning is not None:
                ended[semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = self.reasoning
            if self.response_id is not None:
                ended[semconv.GEN_AI_RESPONSE_ID] = self.response_id
            if self.finish_reasons:
                ended[semconv.GEN_AI_RESPONSE_FINISH_REASONS] = [  # one per generation, in the choices' order
                    reason for _, reason in sorted(self.finish_reasons.items())]
            if cost is not None:
                ended.update(cost_attributes(cost))
            first_chunk_s = self.time_to_first_chunk_s
            if first_chunk_s is not None:  # a streamed call, as the conventions mark one on its span
                ended[semconv.GEN_AI_REQUEST_STREAM] = True
                ended[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = first_chunk_s
            if policy().capture_content and ("prompt" in handler.options or "response" in handler.options):
                response = handler.option("response", call) if error is None else None
                ended.update(output_content(span, self.prompt_text, response))
            if unavailable:
                ended[semconv.ERROR_TYPE] = semconv.ERROR_TYPE_UNAVAILABLE
                span.set_status(Status(StatusCode.ERROR, semconv.ERROR_TYPE_UNAVAILABLE))
            span.set_attributes(span_attributes(ended))
            if call is not None and handler.result_attributes:
                handler.record_result_attributes(span, call)

    def add_retries(self, count: int = 1, reason: str = "") -> None:
        self.retries += count
        attributes = {semconv.GEN_AI_PROVIDER_NAME: self.provider, semconv.GEN_AI_REQUEST_MODEL: self.model}
        if reason:
            attributes[semconv.AGENT_OTEL_RETRY_REASON] = policy().bounded(semconv.AGENT_OTEL_RETRY_REASON, reason)
        add_client_count(semconv.CLIENT_RETRIES, count, attributes, self.context)


#: How many of the usage objects read below a call it keeps (see ProviderInvocation.read_below).
_READ_BELOW_KEPT = 16


def _answered_below(value: object, answers: list[object]) -> bool:
    """Whether ``value`` is, or carries the usage of, what a nested call of another provider answered."""
    usage = field_of(value, "usage", "usage_metadata")
    return any(answer is value or (usage is not None and answer is usage) for answer in answers)


def _usage_shown(source: Any) -> tuple[Any, Any]:
    """(what shows it, the usage) of an answer or chunk: ``source`` itself, the JSON body of a raw response, or the
    response a structured output was parsed from (see :func:`_parsed_from`); the usage None when it shows none of its
    own (a response it carries aside: see :func:`_carried_response`)."""
    parsed = _parsed_from(source)
    if parsed is not None:
        response, total = parsed
        response, usage = _own_usage_shown(response)
        return response, total if total is not None else usage
    return _own_usage_shown(source)


def _parsed_from(source: Any) -> tuple[Any, Any] | None:
    """(the response, the usage of all its attempts or None) of a structured output instructor returns: the program's
    own object (a ``Car`` with its ``model``, a reading with its ``usage``), whose fields are its data, holding the
    response it was parsed from as ``_raw_response`` (and the tokens of every attempt, its re-asks', as
    ``_total_usage``); None for any other object."""
    held = getattr(source, "__dict__", None) if type(source) is not dict else None  # (a dict: a response's JSON)
    response = held.get("_raw_response") if type(held) is dict else None  # (set as an attribute: in its __dict__,
    if response is None or response is source or isinstance(response, _NOT_A_RESPONSE):  # read with no pydantic call
        return None  # per chunk of every stream)
    return response, held.get("_total_usage")  # type: ignore[union-attr]


def _own_usage_shown(source: Any) -> tuple[Any, Any]:
    usage = field_of(source, "usage", "usage_metadata")
    if usage is None:
        body = _raw_response_body(source)
        if body is not None:  # ``with_raw_response``: the answer's JSON, read already
            source, usage = body, body.get("usage")
    if usage is None:
        # Anthropic's stream starts with a `message_start` event carrying `message.usage`; the events of OpenAI's
        # Responses API carry the response so far, `response.usage` on `response.completed`.
        usage = _first_of(field_of(source, "message"), field_of(source, "response"), name="usage")
    if usage is None:  # Groq's last chunk has it as `x_groq.usage`, Cohere's `message-end` event as `delta.usage`,
        # Bedrock's ConverseStream (and strands' stream, in its shape) a `metadata` event's `metadata.usage`, Agno's
        # model responses (its models' streams' chunks too) `response_usage`, Ollama's `prompt_eval_count` and
        # `eval_count` beside its answer's other fields
        usage = _own_path(source, "x_groq", "usage")
        if usage is None:
            usage = _own_path(source, "delta", "usage")
            if usage is None:
                usage = _own_path(source, "metadata", "usage")
                if usage is None:
                    usage = _own_path(source, "response_usage")
                    if usage is None and (_own_path(source, "eval_count") is not None
                                          or _own_path(source, "prompt_eval_count") is not None):
                        usage = source  # Ollama's: its counts on the answer itself (a stream's on its last chunk)
    return source, usage


#: The most items of a list or tuple answer or chunk looked at (see :func:`_answer_among`).
_ITEMS_LOOKED_AT = 16


def _answer_among(items: list[Any] | tuple[Any, ...]) -> Any:
    """What a list or tuple answer or chunk is read for: its first item that shows usage, when no other item shows
    another usage (Semantic Kernel's answer and each chunk of its stream are the response's choices, each with the
    response's usage, the same object; instructor's ``create_with_completion`` returns (the program's object, the
    completion)); its first item that is no text or number when none shows usage (LangGraph's message stream yields
    (chunk, metadata) pairs, the model and finish reason on a chunk without usage). None when items show different
    usage (a batch of responses: one of them is not the call's), or when there are more items than are looked at."""
    if len(items) > _ITEMS_LOOKED_AT:
        return None
    first: Any = None
    found: Any = None
    found_usage: Any = None
    for item in items:
        if type(item) in _SCALARS:
            continue
        if first is None:
            first = item
        shown, usage = _usage_shown(item)
        if shown is not item and any(shown is other for other in items):
            return item  # instructor's (object, completion): the object parsed from the completion (all attempts)
        if usage is None:
            continue
        if found_usage is None:
            found, found_usage = item, usage
        elif usage is not found_usage:
            return None
    return found if found is not None else first


def _carried_response(source: Any) -> Any:
    """The model client's response, or chunk, that ``source`` carries: LlamaIndex's as `raw`, Semantic Kernel's as
    `inner_content`; None when it carries none, or carries one that carries another (one level, never a cycle)."""
    for name in _CARRIED_AS:
        carried = _own_path(source, name)
        if carried is not None:
            if carried is source or isinstance(carried, _NOT_A_RESPONSE) or any(
                    _own_path(carried, inner) is not None for inner in _CARRIED_AS):
                return None
            return carried
    return None


#: The fields a framework's answer carries the model client's response in (see :func:`_carried_response`).
_CARRIED_AS = ("raw", "inner_content")


def _own_path(source: Any, *names: str) -> Any:
    """The value at ``names``, each a field the object holds itself (a dict's key, an attribute in its ``__dict__``,
    a pydantic model's extra field), else None. No property or ``__getattr__`` of the program's runs (google-genai's
    ``LiveServerMessage.data`` logs a warning), and a missing field raises nothing: a pydantic model's
    ``__getattr__`` raising for each one cost µs per chunk of every stream."""
    for name in names:
        if source is None:
            return None
        if type(source) is dict:
            source = source.get(name)
            continue
        try:  # a program's __getattr__ may raise anything for a name it lacks (a KeyError from its dict)
            held = getattr(source, "__dict__", None)
            value = held.get(name) if type(held) is dict else None
            if value is None:
                extra = pydantic_extra(source)
                value = extra.get(name) if type(extra) is dict else None
        except Exception:
            return None
        source = value
    return source


#: The top-level fields :meth:`ProviderInvocation._read_response` reads a response's id and finish reasons from.
_RESPONSE_FIELDS = frozenset({"id", "message", "response", "response_id", "choices", "candidates", "stop_reason",
                              "delta", "response_metadata", "stopReason", "messageStop"})

#: The fields only a response (or chunk) holds beside its model: what the program's own data with a ``model`` lacks.
_RESPONSE_SHAPE = _RESPONSE_FIELDS | {"usage", "object", "created"}

#: The class of LangChain's streamed message chunks, whose usage reports add up (see ProviderInvocation._add_usage).
_LANGCHAIN_CHUNK = "AIMessageChunk"


def _added(kept: int | None, more: int | None) -> int | None:
    return more if kept is None else kept if more is None else kept + more


def _first_own(source: Any, *paths: tuple[str, ...]) -> Any:
    """The value at the first of ``paths`` that ``source`` holds (see :func:`_own_path`), else None."""
    for path in paths:
        value = _own_path(source, *path)
        if value is not None:
            return value
    return None


def _first_of(*sources: Any, name: str) -> Any:
    """The first field ``name`` present on one of ``sources``: told by None, never by the truth of a program's
    value (which may raise, or be false and present: a zero)."""
    for source in sources:
        value = field_of(source, name)
        if value is not None:
            return value
    return None


def span_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    """Span attributes (text the program's results gave made valid, see :func:`valid_attributes`), plus their
    previous keys with the ``/dup`` opt-in (``semconv.PREVIOUS_ATTRIBUTES``)."""
    attributes = valid_attributes(attributes)
    if runtime().previous_names:
        renamed = semconv.PREVIOUS_ATTRIBUTES
        attributes.update({renamed[key]: value for key, value in list(attributes.items()) if key in renamed})
    return attributes


def _previous(attributes: dict[str, Any]) -> dict[str, Any]:
    """Metric attributes under their previous keys (``/dup`` opt-in)."""
    renamed = semconv.PREVIOUS_ATTRIBUTES
    return {renamed.get(key, key): value for key, value in attributes.items()}


def add_client_count(spec: semconv.Instrument[Any], count: float, attributes: dict[str, Any], ctx: Any = None) -> None:
    """Add to one of the client counters (retries, fallbacks), and to its previous name with the ``/dup`` opt-in."""
    rt = _instruments._runtime or runtime()  # its instruments read by name (rt[spec] is a Python call)
    rt.instruments[spec.name].add(count, attributes, context=ctx)
    if rt.previous:
        rt.previous[spec.name].add(count, _previous(attributes), context=ctx)


def cost_attributes(cost: float) -> dict[str, Any]:
    """The standard cost attributes of a span (semantic-conventions-genai #443): amount, currency, source."""
    return {semconv.GEN_AI_USAGE_COST_AMOUNT: cost, semconv.GEN_AI_USAGE_COST_CURRENCY: semconv.COST_CURRENCY_USD,
            semconv.GEN_AI_USAGE_COST_SOURCE: semconv.COST_SOURCE_LOCAL}


def _body_read(http_response: Any) -> bool:
    """Whether an HTTP response's body was read to its end, asked before the program's ``close()`` closes it. httpx
    says a body is consumed once its reading has started (a read the server cut short, or one byte of it read, is
    too). Its content is there once read whole; else the bytes it counted tell, against the length the server gave;
    with none given (a chunked body), a JSON body was not read whole, and a stream of events iterated to its end closed
    the response (so did one left part read, or cut short: not told apart there)."""
    try:
        if getattr(http_response, "is_stream_consumed", False) is not True:
            return False
        try:
            http_response.content  # noqa: B018  # raises until the body is read whole
            return True
        except Exception:
            pass
        headers = http_response.headers
        length = headers.get("content-length")
        if length is not None and str(length).isdigit():
            return int(http_response.num_bytes_downloaded) >= int(length)
        if _is_json(http_response):  # a JSON body is read whole into its content: without it,
            return False  # it was cut short (httpx closes a response its read failed on too) or read in part
        return getattr(http_response, "is_closed", False) is True
    except Exception:
        return False


def _unread_json_response(result: Any) -> bool:
    """Whether a call returned an SDK's raw response (the OpenAI and Anthropic SDKs' ``APIResponse``, holding its
    ``http_response``) whose JSON body is still to be read: the SDKs' ``create`` returns one inside
    ``with_streaming_response``'s block, which reads the body and closes it. Timed until closed, its usage read from
    the body: it ended as returned, without tokens or the body's time. A streamed body (server-sent events) is the
    program's, parsed into a stream the call does not see: left as it is."""
    try:  # the program's object: reading an attribute it lacks may raise anything
        http_response = attribute_of(result, "http_response")
        return http_response is not None and getattr(http_response, "is_stream_consumed", True) is False and (
            _is_json(http_response))
    except Exception:
        return False


def _is_json(http_response: Any) -> bool:
    """Whether an HTTP response says its body is JSON (``application/json``, ``...+json``)."""
    return "json" in str(http_response.headers.get("content-type", ""))


def _raw_response_body(result: Any) -> dict[str, Any] | None:
    """The JSON body of a raw response an SDK returned (the OpenAI and Anthropic SDKs' ``with_raw_response``: an
    object holding its ``http_response``), when the body was read already and is JSON; None otherwise. A streamed
    body is never read here: it is the program's to consume."""
    try:  # the program's object: reading an attribute it lacks may raise anything
        http_response = attribute_of(result, "http_response")
        if http_response is None or getattr(http_response, "is_stream_consumed", False) is not True:
            return None
        if not _is_json(http_response):
            return None
        body = json.loads(http_response.content)
    except Exception:
        return None
    return body if isinstance(body, dict) else None


def priced_cost(response_model: str | None, request_model: str | None, usage: TokenUsage) -> tuple[float | None, bool]:
    """(cost, unpriced) of a call that reported tokens: the response model's price (a dated model costs as its
    family), else the requested model's; ``unpriced`` when neither has a price."""
    for model in (response_model, request_model):
        if model and price_of(model) is not None:
            return cost_of_usage(model, usage), False
    return None, True


def record_request(ctx: Any, attributes: dict[str, Any], duration_s: float, ttfc_s: float | None,
                   count_call: bool = True) -> None:
    """One logical request to a provider: its duration and time to first chunk (``attributes`` carry
    ``error.type`` when it failed), and (unless ``count_call`` is false: our calls count when they start) one
    inference call of the agent invocation it runs under."""
    if count_call:
        counts = (ctx if ctx is not None else otel_context.get_current()).get(CALLS_KEY)  # the agent invocation's
        if isinstance(counts, CallCounts):
            counts.add(INFERENCE)
    rt = _instruments._runtime or runtime()  # its instruments read by name (rt[spec] is a Python call)
    rt.instruments[semconv.CLIENT_INFERENCE_DURATION.name].record(duration_s, attributes, context=ctx)
    if ttfc_s is not None:
        rt.instruments[semconv.CLIENT_TIME_TO_FIRST_CHUNK.name].record(ttfc_s, attributes, context=ctx)
    if rt.previous:
        rt.previous[semconv.CLIENT_INFERENCE_DURATION.name].record(duration_s, attributes, context=ctx)
        if ttfc_s is not None:
            rt.previous[semconv.CLIENT_TIME_TO_FIRST_CHUNK.name].record(ttfc_s, attributes, context=ctx)


def record_usage(ctx: Any, token_attributes: dict[str, Any], usage: TokenUsage, cost: float | None,
                 agent_name: object, *, unpriced: bool = False) -> None:
    """Tokens and cost of one request (``token_attributes``: operation, provider, models; no error): the usage
    counters (modality ``unknown``: no response agent-otel reads splits usage by modality) and the per-operation
    histograms of the GenAI conventions. A call whose model has no price (``unpriced``) is counted as such
    instead of costing a silent zero."""
    rt = _instruments._runtime or runtime()  # its instruments read by name (rt[spec] is a Python call)
    if unpriced:
        rt.instruments[semconv.CLIENT_UNPRICED_CALLS.name].add(1, {
            semconv.GEN_AI_PROVIDER_NAME: token_attributes[semconv.GEN_AI_PROVIDER_NAME],
            semconv.GEN_AI_REQUEST_MODEL: token_attributes[semconv.GEN_AI_REQUEST_MODEL]}, context=ctx)
    if cost is not None:
        rt.instruments[semconv.CLIENT_OPERATION_COST.name].record(cost, token_attributes, context=ctx)
    counted = {**token_attributes, semconv.GEN_AI_TOKEN_MODALITY: semconv.TOKEN_MODALITY_UNKNOWN}
    input_tokens, output_tokens = usage.input, usage.output
    if input_tokens is not None:
        rt.instruments[semconv.CLIENT_USAGE_INPUT_TOKENS.name].add(input_tokens, counted, context=ctx)
        rt.instruments[semconv.CLIENT_OPERATION_INPUT_TOKENS.name].record(input_tokens, token_attributes, context=ctx)
    if output_tokens is not None:
        rt.instruments[semconv.CLIENT_USAGE_OUTPUT_TOKENS.name].add(output_tokens, counted, context=ctx)
        rt.instruments[semconv.CLIENT_OPERATION_OUTPUT_TOKENS.name].record(output_tokens, token_attributes, context=ctx)
    if usage.cache_read or usage.cache_write or usage.reasoning:
        for spec, tokens in ((semconv.CLIENT_USAGE_CACHE_READ_TOKENS, usage.cache_read),
                             (semconv.CLIENT_USAGE_CACHE_WRITE_TOKENS, usage.cache_write),
                             (semconv.CLIENT_USAGE_REASONING_TOKENS, usage.reasoning)):
            if tokens:
                rt[spec].add(tokens, counted, context=ctx)
    if rt.previous_token_usage is not None:
        for token_type, tokens in ((semconv.TokenType.INPUT, input_tokens), (semconv.TokenType.OUTPUT, output_tokens)):
            if tokens is not None:
                by_type = {**token_attributes, semconv.PREVIOUS_TOKEN_TYPE: token_type.value}
                rt.previous_token_usage.record(tokens, by_type, context=ctx)
    if cost:
        cost_attributes: dict[str, Any] = {semconv.GEN_AI_PROVIDER_NAME: token_attributes[semconv.GEN_AI_PROVIDER_NAME],
                                           semconv.GEN_AI_REQUEST_MODEL: token_attributes[semconv.GEN_AI_REQUEST_MODEL]}
        if agent_name is not None:
            cost_attributes[semconv.GEN_AI_AGENT_NAME] = agent_name
            version = otel_context.get_value(AGENT_VERSION_KEY, ctx)
            if version is not None:
                cost_attributes[semconv.GEN_AI_AGENT_VERSION] = version
        add_client_count(semconv.CLIENT_COST, cost, cost_attributes, ctx)


#: Our provider span -> what hands another library's span of the same call beside it (noted by the span bridge as
#: ours starts) to our invocation, once that exists: that span's tokens, for a call whose result shows none. Weak: a
#: span is let go of with its entry. Its dict is read per call: empty, nothing to look up.
_twins_beside: weakref.WeakKeyDictionary[Any, Callable[[ProviderInvocation], None]] = weakref.WeakKeyDictionary()
_TWINS_BESIDE: dict[Any, Any] = _twins_beside.data  # type: ignore[attr-defined]


def note_twin_beside(span: Any, hand_over: Callable[[ProviderInvocation], None]) -> None:
    _twins_beside[span] = hand_over


class ProviderHandler(KindHandler):
    stage = "provider"
    span_kind = SpanKind.CLIENT

    def __init__(self, func: Callable[..., Any] | None, options: dict[str, Any],
                 attributes: Attributes | None = None) -> None:
        super().__init__(func, options, attributes)
        self.token_options = tuple(key for key in ("input_tokens", "output_tokens") if key in options)

    def _describe(self, call: Call | None) -> tuple[str, str, str, str, str, dict[str, Any], dict[Any, dict[str, Any]]]:
        """Also the model as given, uncapped: the price table prices it, whatever the cap made of the label."""
        bound = policy().bounded
        provider = bound(semconv.GEN_AI_PROVIDER_NAME, self.required_name("provider", call))
        given = text_value(self.option("model", call), semconv.GEN_AI_REQUEST_MODEL)
        priced = given or "unknown"
        model = bound(semconv.GEN_AI_REQUEST_MODEL, given) if given else "unknown"
        given_operation = text_value(self.option("operation", call), semconv.GEN_AI_OPERATION_NAME)
        operation = bound(semconv.GEN_AI_OPERATION_NAME, given_operation or _DEFAULT_OPERATION)
        attributes = {semconv.GEN_AI_OPERATION_NAME: operation, semconv.GEN_AI_PROVIDER_NAME: provider,
                      semconv.GEN_AI_REQUEST_MODEL: model}
        return provider, model, priced, operation, semconv.provider_span_name(operation, model), attributes, {}

    def begin(self, wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
              parent: Context) -> Invocation:
        call = self.new_call(instance, args, kwargs) if self.reads_call else None
        cached = self._static  # static()'s value without its call, when kept for the current policy
        described = cached[1] if cached is not None and cached[0] is _policies._policy else self.static(
            ("provider", "model", "operation"), self._describe, call)
        provider, model, priced, operation, span_name, base, by_agent = described
        run = None
        if STARTED_IN:  # under another library's span: the calls of ours running where it started (see running)
            parent = running_context(parent)
            run = run_under(parent)  # among another library's agent's spans: that agent's call
        agent_name = parent.get(AGENT_KEY) if run is None else run.name
        prompt: str | None = None
        if "prompt" in self.options and policy().capture_content:
            attributes = dict(base)
            if agent_name is not None:
                attributes[semconv.GEN_AI_AGENT_NAME] = agent_name
            prompt = prompt_text(self.option("prompt", call))
            attributes.update(input_attributes(prompt))
            attributes = self.span_attributes(attributes)
        else:
            attributes = by_agent.get(agent_name) or self.under_agent(by_agent, base, agent_name)  # (a hit: no call)
        span, ctx = self.open(span_name, attributes, parent)
        if run is None and RUNS:  # another library's agent whose span was marked after it started, found as this
            run = run_of(span)  # call's span started (see GenAiSpanBridge.start_late)
            if run is not None and span.is_recording():
                span.set_attribute(semconv.GEN_AI_AGENT_NAME, run.name)
        inv = ProviderInvocation(span, None, self, call, provider, model, operation, priced)
        inv.prompt_text = prompt
        outer = parent.get(PROVIDER_KEY)
        if outer is not None and not outer._ended:  # type: ignore[attr-defined]  # (an ended one: see running_provider)
            if outer.provider == provider:  # type: ignore[attr-defined]
                inv.outer = outer  # type: ignore[assignment]
            else:
                inv.enclosing = outer  # type: ignore[assignment]
        inv.context = Context({**ctx, PROVIDER_KEY: inv} if run is None else  # one copy (set_value() makes two)
                              {**ctx, PROVIDER_KEY: inv, AGENT_KEY: run.name, CALLS_KEY: run.calls,
                               AGENT_VERSION_KEY: None})  # that agent's: its cost, its counts, no version of ours
        if _TWINS_BESIDE:
            hand_over = _twins_beside.pop(span, None)
            if hand_over is not None:
                hand_over(inv)
        if inv.outer is None:  # the logical request is one inference call of the agent it starts under, counted now:
            # a stream the agent returns is read, and ends, after the agent has recorded its counts
            counts = run.calls if run is not None else parent.get(CALLS_KEY)
            if isinstance(counts, CallCounts):
                counts.add(INFERENCE)
            job = parent.get(JOB_KEY)  # and one of its job: a stream read past the job's end (closed when the
            if isinstance(job, JobState):  # program's variable goes, after the block) is one of its calls too
                job.add_one("provider_calls")
        return inv


def provider(provider: Text, *, model: Text | None = None, operation: Text = "chat",
             response_model: Text | None = None, input_tokens: Amount | None = None,
             output_tokens: Amount | None = None, cost: Number | None = None, retries: Count | None = None,
             success: Flag | None = None, stream: bool | None = None, prompt: Text | None = None,
             response: Text | None = None, result_attributes: Mapping[str, Extractor] | None = None,
             attributes: Attributes | None = None) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate one LLM call. Tokens and the response model are read from OpenAI/Anthropic-style
    results (``usage.prompt_tokens``/``input_tokens``...) unless given; cost comes from the local
    price table unless given. ``success`` reading false (a provider selection or health check that
    returns False) records the call as ``error.type=unavailable``. ``prompt``/``response`` extractors
    are recorded (as the GenAI conventions' JSON messages) only when content capture is on
    (OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=SPAN_ONLY, EVENT_ONLY or SPAN_AND_EVENT)."""
    return decorator(ProviderHandler, collect("provider", locals()), attributes)


def provider_call(provider: str, *, model: str | None = None, operation: str | None = None,
                  attributes: Attributes | None = None) -> ManualCall:
    """An explicit provider span; report with ``call.set_result(response)`` or
    ``call.set_outcome(usage={"input_tokens": .., "output_tokens": ..}, model=..)``."""
    options = collect("provider", {"provider": manual_name("provider", "provider", provider), "model": model,
                                    "operation": operation}, check=False)
    return ManualCall(ProviderHandler(None, options, attributes))


def current_provider_call() -> ProviderInvocation | None:
    return running_provider(otel_context.get_current())


def running_provider(ctx: Context) -> ProviderInvocation | None:
    """The provider call of ours running in ``ctx``. A context can outlive its call: an instrumentation that keeps
    its span current until a stream is read to its end (``opentelemetry-util-genai``'s) then puts back the context
    it started in, and when the call returned that stream inside its result (boto3's ``converse_stream``, a dict)
    that context is an ended call's, current for the rest of the thread. That call runs no later call nor span."""
    call = ctx.get(PROVIDER_KEY)
    return call if isinstance(call, ProviderInvocation) and not call._ended else None


def record_retry(count: int = 1, *, provider: str | None = None, model: str | None = None,
                 reason: str | None = None) -> None:
    """Count retries of the provider call in progress, or of the given provider/model, with an
    optional short reason (``agent_otel.retry.reason``, under the cardinality cap)."""
    try:
        if not runtime().enabled:
            return
        checked = coerce_count(count, "provider.retry")  # a negative or fractional count is dropped and counted
        if not checked:
            return
        count = checked
        inv = current_provider_call()
        if inv is not None and (provider is None or (provider == inv.provider and model in (None, inv.model))):
            inv.add_retries(count, reason or "")  # (a hook that names its provider, as it may run outside a call too,
            return  # inside a call of that provider and model: that call's retries, on its span as well)
        if provider is None:
            raise Misuse("record_retry() outside a provider call needs provider=; the retry was not counted")
        bound = policy().bounded
        attributes = {semconv.GEN_AI_PROVIDER_NAME: bound(semconv.GEN_AI_PROVIDER_NAME, provider),
                      semconv.GEN_AI_REQUEST_MODEL: bound(semconv.GEN_AI_REQUEST_MODEL, model) if model else "unknown"}
        if reason:
            attributes[semconv.AGENT_OTEL_RETRY_REASON] = bound(semconv.AGENT_OTEL_RETRY_REASON, reason)
        add_client_count(semconv.CLIENT_RETRIES, count, attributes)
    except Exception as exc:
        report_error("provider.retry", exc)


def record_fallback(to: str, reason: str, *, from_provider: str | None = None) -> None:
    """Count a fallback from the current (or given) provider to another, with a short reason."""
    try:
        if not runtime().enabled:
            return
        inv = current_provider_call()
        source = from_provider or (inv.provider if inv is not None else None)
        if source is None:
            raise Misuse("record_fallback() outside a provider call needs from_provider=; the fallback was not "
                         "counted")
        bound = policy().bounded
        attributes = {semconv.GEN_AI_PROVIDER_NAME: bound(semconv.GEN_AI_PROVIDER_NAME, source),
                      semconv.AGENT_OTEL_FALLBACK_TO: bound(semconv.AGENT_OTEL_FALLBACK_TO, to),
                      semconv.AGENT_OTEL_FALLBACK_REASON: bound(semconv.AGENT_OTEL_FALLBACK_REASON, reason)}
        add_client_count(semconv.CLIENT_FALLBACKS, 1, attributes)
        if inv is not None and inv.span.is_recording():
            inv.span.set_attributes(span_attributes({semconv.AGENT_OTEL_FALLBACK_TO: to,
                                                     semconv.AGENT_OTEL_FALLBACK_REASON: reason}))
    except Exception as exc:
        report_error("provider.fallback", exc)
