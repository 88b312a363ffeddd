"""Provider (LLM) calls: GenAI semconv span and metrics, tokens, streams, cost, retries, fallbacks."""

from __future__ import annotations

import asyncio
import gc
import inspect
import json
import weakref
from types import SimpleNamespace
from typing import Any

import openai
import pytest
import wrapt
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

import agent_otel
from agent_otel import ConfigurationError, path, semconv
from agent_otel._calls.pricing import DEFAULT_PRICES
from tests.support.coroutines import SCENARIOS, warnings_of
from tests.support.telemetry import (
    SHAPES,
    assert_instrument,
    assert_no_ids_on_metrics,
    drive,
    error_count,
    point,
    points,
    shaped,
)

DURATION = semconv.CLIENT_INFERENCE_DURATION.name
TOKENS = {"input": semconv.CLIENT_OPERATION_INPUT_TOKENS.name, "output": semconv.CLIENT_OPERATION_OUTPUT_TOKENS.name}
TTFC = semconv.CLIENT_TIME_TO_FIRST_CHUNK.name
COST = semconv.CLIENT_COST.name
RETRIES = semconv.CLIENT_RETRIES.name
FALLBACKS = semconv.CLIENT_FALLBACKS.name


def openai_response(prompt_tokens: int = 1000, completion_tokens: int = 500, model: str = "gpt-4o-2024-08-06") -> Any:
    usage = SimpleNamespace(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                            total_tokens=prompt_tokens + completion_tokens)
    return SimpleNamespace(model=model, usage=usage, choices=[SimpleNamespace(text="hello")])


def gpt4o_cost(tokens_in: int, tokens_out: int) -> float:
    price_in, price_out = DEFAULT_PRICES["gpt-4o"][:2]
    return (tokens_in * price_in + tokens_out * price_out) / 1_000_000


def tokens_by_type(otel: Any) -> dict[str, tuple[int, float]]:
    return {direction: (p.count, p.sum) for direction, name in TOKENS.items() for p in otel.points(name)}


@pytest.mark.parametrize("shape", ["sync", "async", "generator"])
def test_openai_style_call_records_every_row(otel: Any, shape: str) -> None:
    complete = shaped(shape, agent_otel.provider("openai", model="gpt-4o", operation="chat"),
                      lambda prompt: openai_response())
    with agent_otel.job(type="nightly") as job, agent_otel.agent_call("planner"):
        job_id = job.id
        response = drive(shape, complete, "hi")
    assert response.usage.prompt_tokens == 1000

    span = otel.span("chat gpt-4o")
    assert span.kind is SpanKind.CLIENT
    attrs = dict(span.attributes)
    assert attrs[semconv.JOB_ID] == job_id
    assert attrs[semconv.GEN_AI_OPERATION_NAME] == "chat"
    assert attrs[semconv.GEN_AI_PROVIDER_NAME] == "openai"
    assert attrs[semconv.GEN_AI_REQUEST_MODEL] == "gpt-4o"
    assert attrs[semconv.GEN_AI_RESPONSE_MODEL] == "gpt-4o-2024-08-06"
    assert attrs[semconv.GEN_AI_AGENT_NAME] == "planner"
    assert attrs[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 1000
    assert attrs[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 500
    assert attrs[semconv.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(gpt4o_cost(1000, 500))
    assert attrs[semconv.AGENT_OTEL_RETRY_COUNT] == 0
    assert "gen_ai.input.messages" not in attrs and "gen_ai.output.messages" not in attrs

    client_attrs = {semconv.GEN_AI_OPERATION_NAME: "chat", semconv.GEN_AI_PROVIDER_NAME: "openai",
                    semconv.GEN_AI_REQUEST_MODEL: "gpt-4o", semconv.GEN_AI_RESPONSE_MODEL: "gpt-4o-2024-08-06"}
    [duration] = assert_instrument(otel, semconv.CLIENT_INFERENCE_DURATION)
    assert dict(duration.attributes) == client_attrs and duration.count == 1
    for histogram in (semconv.CLIENT_OPERATION_INPUT_TOKENS, semconv.CLIENT_OPERATION_OUTPUT_TOKENS):
        [tokens] = assert_instrument(otel, histogram)
        assert dict(tokens.attributes) == client_attrs
    assert tokens_by_type(otel) == {"input": (1, 1000), "output": (1, 500)}
    unknown = {**client_attrs, semconv.GEN_AI_TOKEN_MODALITY: semconv.TOKEN_MODALITY_UNKNOWN}
    for counter, total in ((semconv.CLIENT_USAGE_INPUT_TOKENS, 1000), (semconv.CLIENT_USAGE_OUTPUT_TOKENS, 500)):
        [usage] = assert_instrument(otel, counter)
        assert dict(usage.attributes) == unknown and usage.value == total
    [cost] = assert_instrument(otel, semconv.CLIENT_COST)
    assert dict(cost.attributes) == {semconv.GEN_AI_PROVIDER_NAME: "openai", semconv.GEN_AI_REQUEST_MODEL: "gpt-4o",
                                     semconv.GEN_AI_AGENT_NAME: "planner"}
    assert cost.value == pytest.approx(gpt4o_cost(1000, 500))
    if shape == "generator":  # a generator function is a stream: its chunks time the first chunk
        [ttfc] = assert_instrument(otel, semconv.CLIENT_TIME_TO_FIRST_CHUNK)
        assert dict(ttfc.attributes) == client_attrs and ttfc.count == 1
        assert ttfc.sum <= duration.sum
    else:
        assert TTFC not in otel.metrics()
    job_attrs = otel.span("invoke_workflow nightly").attributes
    assert job_attrs[semconv.JOB_ROLLUP_PROVIDER_CALLS] == 1
    assert job_attrs[semconv.JOB_ROLLUP_INPUT_TOKENS] == 1000
    assert job_attrs[semconv.JOB_ROLLUP_OUTPUT_TOKENS] == 500
    assert job_attrs[semconv.JOB_ROLLUP_COST] == pytest.approx(gpt4o_cost(1000, 500))
    assert_no_ids_on_metrics(otel)


def test_anthropic_style_usage(otel: Any) -> None:
    @agent_otel.provider("anthropic", model="claude-sonnet-4-20250514")
    async def complete(prompt: str) -> dict[str, Any]:
        return {"model": "claude-sonnet-4-20250514", "usage": {"input_tokens": 200, "output_tokens": 100}}

    asyncio.run(complete("hi"))
    span = otel.span("chat claude-sonnet-4-20250514")
    assert span.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 200
    assert span.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 100
    assert tokens_by_type(otel) == {"input": (1, 200), "output": (1, 100)}
    expected = (200 * 3.00 + 100 * 15.00) / 1_000_000
    assert point(otel, COST).value == pytest.approx(expected)
    assert semconv.GEN_AI_AGENT_NAME not in point(otel, COST).attributes


def stream_chunks(model: str = "gpt-4o-mini") -> list[Any]:
    return [SimpleNamespace(model=model, usage=None, delta="Hel"),
            SimpleNamespace(model=model, usage=None, delta="lo"),
            SimpleNamespace(model=model, usage=SimpleNamespace(prompt_tokens=12, completion_tokens=2), delta="")]


def assert_streamed(otel: Any, model: str = "gpt-4o-mini") -> None:
    span = otel.span(f"chat {model}")
    assert span.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 12
    assert span.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 2
    [ttfc] = assert_instrument(otel, semconv.CLIENT_TIME_TO_FIRST_CHUNK)
    assert ttfc.count == 1
    assert ttfc.attributes[semconv.GEN_AI_REQUEST_MODEL] == model
    duration = point(otel, DURATION)
    assert duration.count == 1 and ttfc.sum <= duration.sum
    # the span says it was streamed, and when its first chunk came, as the GenAI conventions have it (docs/semconv.md
    # listed the time to first chunk on the span; only the metric had it)
    assert span.attributes[semconv.GEN_AI_REQUEST_STREAM] is True
    assert span.attributes[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] == pytest.approx(ttfc.sum)
    assert tokens_by_type(otel) == {"input": (1, 12), "output": (1, 2)}
    assert point(otel, COST).value == pytest.approx((12 * 0.15 + 2 * 0.60) / 1_000_000)


def test_a_call_that_streamed_nothing_says_neither(otel: Any) -> None:
    @agent_otel.provider("openai", model="gpt-4o-mini")
    def complete(prompt: str) -> Any:
        return {"usage": {"prompt_tokens": 12, "completion_tokens": 2}}

    complete("hi")
    attributes = otel.span("chat gpt-4o-mini").attributes
    assert semconv.GEN_AI_REQUEST_STREAM not in attributes
    assert semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK not in attributes


def test_generator_stream(otel: Any) -> None:
    @agent_otel.provider("openai", model="gpt-4o-mini")
    def stream(prompt: str) -> Any:
        yield from stream_chunks()

    assert [c.delta for c in stream("hi")] == ["Hel", "lo", ""]
    assert_streamed(otel)


def test_async_generator_stream(otel: Any) -> None:
    @agent_otel.provider("openai", model="gpt-4o-mini")
    async def stream(prompt: str) -> Any:
        for chunk in stream_chunks():
            yield chunk

    async def main() -> list[str]:
        return [c.delta async for c in stream("hi")]

    assert asyncio.run(main()) == ["Hel", "lo", ""]
    assert_streamed(otel)


class SdkStream:
    """Like an SDK's response stream: an iterator object returned by a plain function."""

    def __init__(self, chunks: list[Any]) -> None:
        self._chunks = iter(chunks)
        self.closed = False

    def __iter__(self) -> SdkStream:
        return self

    def __next__(self) -> Any:
        return next(self._chunks)

    def close(self) -> None:
        self.closed = True


class AsyncSdkStream:
    def __init__(self, chunks: list[Any]) -> None:
        self._chunks = iter(chunks)

    def __aiter__(self) -> AsyncSdkStream:
        return self

    async def __anext__(self) -> Any:
        try:
            return next(self._chunks)
        except StopIteration:
            raise StopAsyncIteration from None


def test_returned_stream_object_iterated_later(otel: Any) -> None:
    @agent_otel.provider("openai", model="gpt-4o-mini")
    def create(prompt: str) -> SdkStream:
        return SdkStream(stream_chunks())

    stream = create("hi")
    assert otel.spans() == []  # the call is not over until the stream is consumed
    assert isinstance(stream, SdkStream)
    assert repr(stream) == repr(stream.__wrapped__)  # the stream's own (wrapt's named its proxy)
    assert [c.delta for c in stream] == ["Hel", "lo", ""]
    assert_streamed(otel)


def test_returned_async_stream_object_from_a_coroutine(otel: Any) -> None:
    @agent_otel.provider("openai", model="gpt-4o-mini")
    def create(prompt: str) -> AsyncSdkStream:
        return AsyncSdkStream(stream_chunks())

    async def main() -> list[str]:
        stream = create("hi")
        return [c.delta async for c in stream]

    assert asyncio.run(main()) == ["Hel", "lo", ""]
    assert_streamed(otel)


def test_stream_closed_early_still_ends_once(otel: Any) -> None:
    @agent_otel.provider("openai", model="gpt-4o-mini")
    def create(prompt: str) -> SdkStream:
        return SdkStream(stream_chunks())

    stream = create("hi")
    next(stream)
    stream.close()
    assert stream.closed
    span = otel.span("chat gpt-4o-mini")
    assert span.attributes["agent_otel.stream.closed_early"] is True
    assert point(otel, DURATION).count == 1 and point(otel, TTFC).count == 1
    assert not set(TOKENS.values()) & set(otel.metrics())


def test_a_stream_behind_another_instrumentations_proxy_ends_when_closed(otel: Any) -> None:
    """An instrumentation's wrapper of the SDK's stream (a wrapt proxy, as the OpenAI instrumentation's) has no
    ``close`` of its class, and forwards it: the call ended only when the stream was dropped, not when closed."""
    class InstrumentationsStream(wrapt.ObjectProxy):  # type: ignore[type-arg]
        def __iter__(self) -> Any:
            return self

        def __next__(self) -> Any:
            return next(self.__wrapped__)

    @agent_otel.provider("openai", model="gpt-4o-mini")
    def create(prompt: str) -> Any:
        return InstrumentationsStream(SdkStream(stream_chunks()))

    stream = create("hi")
    next(stream)
    stream.close()
    assert otel.span("chat gpt-4o-mini").attributes["agent_otel.stream.closed_early"] is True  # ended by close()
    assert stream.closed


def test_stream_false_keeps_an_iterator_result_unwrapped(otel: Any) -> None:
    @agent_otel.provider("openai", model="gpt-4o-mini", stream=False)
    def create(prompt: str) -> SdkStream:
        return SdkStream(stream_chunks())

    result = create("hi")
    assert type(result) is SdkStream
    assert point(otel, DURATION).count == 1 and TTFC not in otel.metrics()


@pytest.mark.parametrize("shape", ["sync", "async"])
def test_stream_true_times_streams_and_leaves_a_value_returned_whole_as_it_is(otel: Any, shape: str) -> None:
    """``stream=True`` on a call that returned a value whole (a dict, a string, a list, a number, None, an object
    that is neither an iterator nor a context manager) made a sync call's result agent-otel's proxy of it: no dict
    to ``json.dumps()``, and the call recorded nothing until the proxy was dropped, without its usage. The value is
    the program's, and the call ends when it returns, its usage read; an iterator is still timed as a stream. An SDK's
    response, a pydantic model, is iterable (over its fields): taking any iterable for a stream (as a first version of
    reading botocore's ``EventStream`` did) made it a proxy again."""
    response = openai_response(12, 2, "gpt-4o-mini")
    completion = openai.types.chat.ChatCompletion.model_validate({
        "id": "c", "object": "chat.completion", "created": 0, "model": "gpt-4o-mini", "choices": [],
        "usage": {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14}})
    values: list[Any] = [{"model": "gpt-4o-mini", "usage": {"prompt_tokens": 12, "completion_tokens": 2}}, "text",
                         ["a"], 3, None, response, completion]
    returned: list[Any] = []

    @agent_otel.provider("openai", model="gpt-4o-mini", stream=True)
    def create(value: Any) -> Any:
        return value

    @agent_otel.provider("openai", model="gpt-4o-mini", stream=True)
    async def create_async(value: Any) -> Any:
        return value

    for value in values:
        result = create(value) if shape == "sync" else asyncio.run(create_async(value))
        assert result is value
        returned.append(result)
    assert json.dumps(returned[0]) == json.dumps(values[0])
    assert sum(recorded.count for recorded in otel.points(DURATION)) == len(values) and TTFC not in otel.metrics()
    assert [span.attributes.get(semconv.GEN_AI_USAGE_INPUT_TOKENS) for span in otel.spans("chat gpt-4o-mini")] == [
        12, None, None, None, None, 12, 12]
    otel.reset()

    @agent_otel.provider("openai", model="gpt-4o-mini", stream=True)
    def stream() -> SdkStream:
        return SdkStream(stream_chunks())

    assert len(list(stream())) == 3
    assert_streamed(otel)


class TheirStream:
    """Another instrumentation's stream (OpenAI's, through util-genai): its span was made current when the call
    started, and is detached, back to what was current then, when the stream ends or closes."""

    def __init__(self, chunks: Any, token: Any) -> None:
        self._chunks, self._token = chunks, token

    def __iter__(self) -> TheirStream:
        return self

    def __next__(self) -> Any:
        try:
            return next(self._chunks)
        except StopIteration:
            self.close()
            raise

    def close(self) -> None:
        if self._token is not None:
            otel_context.detach(self._token)
            self._token = None

    def __enter__(self) -> TheirStream:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


@pytest.mark.parametrize("how", ["close", "with_break"])
def test_a_stream_closed_early_under_another_instrumentation_leaves_the_programs_context(otel: Any,
                                                                                         how: str) -> None:
    """Another instrumentation inside a model call detaches its span's context as the stream closes, back to what was
    current when the call started: the call's. Closed in the program's context (``close()``, a ``with`` block left
    early), that left agent-otel's ended span current after it, the next calls under it and not counted."""

    @agent_otel.provider("openai", model="gpt-4o-mini")
    def create() -> TheirStream:
        their = trace.get_tracer("their").start_span("their chat")
        return TheirStream(iter(stream_chunks()), otel_context.attach(trace.set_span_in_context(their)))

    for _ in range(2):
        stream = create()
        if how == "close":
            next(stream)
            stream.close()
        else:
            with stream as entered:
                for _ in entered:
                    break
        assert trace.get_current_span() is trace.INVALID_SPAN
    spans = otel.spans("chat gpt-4o-mini")
    assert len(spans) == 2 and all(span.parent is None for span in spans)
    assert sum(recorded.count for recorded in otel.points(DURATION)) == 2


class TheirAsyncStream:
    """:class:`TheirStream`, async, whose ``close()`` is a coroutine (util-genai's ``AsyncStreamWrapper``)."""

    def __init__(self, chunks: Any, token: Any) -> None:
        self._chunks, self._token = chunks, token

    def __aiter__(self) -> TheirAsyncStream:
        return self

    async def __anext__(self) -> Any:
        try:
            return next(self._chunks)
        except StopIteration:
            await self.close()
            raise StopAsyncIteration from None

    async def close(self) -> None:
        if self._token is not None:
            otel_context.detach(self._token)
            self._token = None


def test_an_async_stream_closed_early_under_another_instrumentation_leaves_the_programs_context(otel: Any) -> None:
    """:func:`test_a_stream_closed_early_under_another_instrumentation_leaves_the_programs_context` for a stream whose
    ``close()`` is a coroutine: the detach ran when the program awaited it, in the program's context."""

    @agent_otel.provider("openai", model="gpt-4o-mini")
    async def create() -> TheirAsyncStream:
        their = trace.get_tracer("their").start_span("their chat")
        return TheirAsyncStream(iter(stream_chunks()), otel_context.attach(trace.set_span_in_context(their)))

    async def main() -> None:
        for _ in range(2):
            stream = await create()
            await stream.__anext__()
            await stream.close()
            assert trace.get_current_span() is trace.INVALID_SPAN
        closing = (await create()).close()
        assert asyncio.iscoroutine(closing)
        await asyncio.create_task(closing)  # a task made of it

    asyncio.run(main())
    spans = otel.spans("chat gpt-4o-mini")
    assert len(spans) == 3 and all(span.parent is None for span in spans)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_an_async_streams_close_is_a_coroutine_as_the_programs_is(otel: Any, scenario: str) -> None:
    """The ``close()`` of a traced async stream returned a generator-based coroutine: ``inspect.iscoroutine()`` was
    false (code that awaits what it checks so left the stream open, and its coroutine warned), and Python 3.12's
    ``asyncio.create_task()`` refuses one; and ``close`` was no coroutine function, as the stream's is. Let go
    unawaited, it warns as the program's does, once, under its name."""

    @agent_otel.provider("openai", model="gpt-4o-mini")
    async def create() -> TheirAsyncStream:
        return TheirAsyncStream(iter(stream_chunks()), None)

    async def traced_close() -> Any:
        return (await create()).close()

    closing = asyncio.run(traced_close())
    assert inspect.iscoroutine(closing) and closing.__qualname__ == "TheirAsyncStream.close"
    assert inspect.iscoroutinefunction(asyncio.run(create()).close)  # as the stream's (code awaits only such a one)
    assert asyncio.run(closing) is None  # asyncio.run() takes a coroutine only
    plain = warnings_of(SCENARIOS[scenario], TheirAsyncStream(iter(()), None).close)
    traced = warnings_of(SCENARIOS[scenario], asyncio.run(create()).close)
    assert traced == plain
    assert plain == (["RuntimeWarning: coroutine 'TheirAsyncStream.close' was never awaited"]
                     if scenario in ("dropped_unawaited", "awaited_by_hand_never_stepped") else [])


def test_stream_false_leaves_a_returned_generator_as_it_is(otel: Any) -> None:
    """``stream=False`` on a sync function that returns a generator was ignored: timed as a stream all the same, its
    chunks read. The generator is the program's, and the call ends when it returns. A generator function's own run
    is its call, ``stream`` or not (above or below ``@contextmanager``, that is the ``with`` block)."""
    import contextlib
    import inspect

    def chunks() -> Any:
        yield from stream_chunks()

    @agent_otel.provider("openai", model="gpt-4o-mini", stream=False)
    def create(prompt: str) -> Any:
        return chunks()

    generator = create("hi")
    assert inspect.isgenerator(generator) and generator.__qualname__.endswith("chunks")
    assert point(otel, DURATION).count == 1  # over already, nothing read
    assert len(list(generator)) == 3 and TTFC not in otel.metrics()

    @agent_otel.provider("openai", model="gpt-4o-mini", stream=False)
    @contextlib.contextmanager
    def session() -> Any:
        yield "session"
        yield from ()

    with session() as value:
        assert value == "session" and point(otel, DURATION).count == 1  # the block is the call: not over yet
    assert point(otel, DURATION).count == 2


def test_anthropic_raw_stream_events(otel: Any) -> None:
    events = [
        {"type": "message_start", "message": {"model": "claude-3-5-haiku-20241022",
                                               "usage": {"input_tokens": 40, "output_tokens": 1}}},
        {"type": "content_block_delta", "delta": {"text": "hi"}},
        {"type": "message_delta", "usage": {"output_tokens": 9}},
    ]

    @agent_otel.provider("anthropic", model="claude-3-5-haiku")
    def stream() -> Any:
        yield from events

    assert list(stream()) == events
    span = otel.span("chat claude-3-5-haiku")
    assert span.attributes[semconv.GEN_AI_RESPONSE_MODEL] == "claude-3-5-haiku-20241022"
    assert tokens_by_type(otel) == {"input": (1, 40), "output": (1, 9)}


@pytest.mark.parametrize(("provider", "last_event", "model"), [
    # the wire shapes of each SDK's last stream event (as dicts: the SDKs' objects have the same fields)
    ("mistral_ai", {"event": "message", "data": {"model": "mistral-large-2407", "choices": [],
                                                 "usage": {"prompt_tokens": 13, "completion_tokens": 5}}},
     "mistral-large-2407"),
    ("groq", {"model": "llama-3.1-70b", "choices": [],
              "x_groq": {"id": "req", "usage": {"prompt_tokens": 13, "completion_tokens": 5}}}, "llama-3.1-70b"),
    ("cohere", {"type": "message-end", "delta": {"finish_reason": "COMPLETE", "usage": {
        "billed_units": {"input_tokens": 9, "output_tokens": 4}, "tokens": {"input_tokens": 13, "output_tokens": 5}}}},
     None),
    ("gcp.gemini", {"model_version": "gemini-2.0-flash-001",
                    "usage_metadata": {"prompt_token_count": 13, "candidates_token_count": 5}}, "gemini-2.0-flash-001"),
    # Bedrock's ConverseStream, whose shape strands' model streams yield for every provider
    ("aws.bedrock", {"metadata": {"usage": {"inputTokens": 13, "outputTokens": 5, "totalTokens": 18},
                                  "metrics": {"latencyMs": 120}}}, None),
])
def test_stream_usage_of_other_sdks(otel: Any, provider: str, last_event: Any, model: str | None) -> None:
    """Mistral's, Groq's, Cohere's and Bedrock's streams recorded no tokens (their usage is on ``data``, ``x_groq``,
    the ``message-end`` event's ``delta``, Cohere's counted tokens under ``tokens``, and a ``metadata`` event's
    ``metadata``, in Bedrock's camel case), and Gemini calls no response model (``model_version``): a config entry
    could not name a chunk's field either."""

    @agent_otel.provider(provider, model="m")
    def stream() -> Any:
        yield {"delta": "hi"}
        yield last_event

    assert len(list(stream())) == 2
    assert tokens_by_type(otel) == {"input": (1, 13), "output": (1, 5)}
    assert otel.span("chat m").attributes.get(semconv.GEN_AI_RESPONSE_MODEL) == model


class RateLimited(Exception):
    pass


@pytest.mark.parametrize("shape", SHAPES)
def test_error_records_error_type_and_no_tokens(otel: Any, shape: str) -> None:
    def body(prompt: str) -> Any:
        raise RateLimited("429")

    complete = shaped(shape, agent_otel.provider("openai", model="gpt-4o"), body)
    with pytest.raises(RateLimited):
        drive(shape, complete, "hi")
    span = otel.span("chat gpt-4o")
    assert span.attributes[semconv.ERROR_TYPE] == "RateLimited"
    assert span.status.status_code is StatusCode.ERROR
    duration = point(otel, DURATION)
    assert duration.attributes[semconv.ERROR_TYPE] == "RateLimited" and duration.count == 1
    assert not set(TOKENS.values()) & set(otel.metrics()) and COST not in otel.metrics()


def test_retries_recorded_inside_the_call(otel: Any) -> None:
    @agent_otel.provider("openai", model="gpt-4o")
    def complete(prompt: str) -> Any:
        for _ in range(2):
            agent_otel.record_retry()
        return openai_response(10, 10)

    complete("a")
    complete("b")
    spans = otel.spans("chat gpt-4o")
    assert [s.attributes[semconv.AGENT_OTEL_RETRY_COUNT] for s in spans] == [2, 2]
    [retries] = assert_instrument(otel, semconv.CLIENT_RETRIES)
    assert dict(retries.attributes) == {semconv.GEN_AI_PROVIDER_NAME: "openai", semconv.GEN_AI_REQUEST_MODEL: "gpt-4o"}
    assert retries.value == 4


def test_retries_from_the_extractor_and_from_outside(otel: Any, caplog: pytest.LogCaptureFixture,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``record_retry()`` outside a provider call without ``provider=`` (an instructor ``parse:error`` hook, between
    two SDK calls) is counted, never raised, and says what to change: the log line named only ``ValueError``."""

    @agent_otel.provider("anthropic", model="claude-opus-4", retries=path("result.attempts"))
    def complete(prompt: str) -> dict[str, Any]:
        return {"attempts": ["429", "529", "ok"][:2]}

    complete("a")
    assert otel.span("chat claude-opus-4").attributes[semconv.AGENT_OTEL_RETRY_COUNT] == 2
    agent_otel.record_retry(3, provider="openai", model="gpt-4o")
    from agent_otel._engine import self_telemetry

    monkeypatch.setattr(self_telemetry, "_last_logged", {})  # (said once a minute per cause)
    with caplog.at_level("WARNING", logger="agent_otel"):
        agent_otel.record_retry()  # outside a call without provider=: counted, never raised
    by_provider = {p.attributes[semconv.GEN_AI_PROVIDER_NAME]: p.value for p in otel.points(RETRIES)}
    assert by_provider == {"anthropic": 2, "openai": 3}
    assert error_count(otel, "provider.retry") == 1
    assert [record.getMessage() for record in caplog.records] == [
        "agent-otel: provider.retry (Misuse): record_retry() outside a provider call needs provider=; the retry was "
        "not counted"]


def test_a_retry_naming_the_provider_of_the_call_it_runs_in_counts_on_that_call(otel: Any) -> None:
    """A hook that names its provider, as one that may also run outside a call must (instructor's ``parse:error``),
    inside a call of that provider and model: counted beside the call, its span's ``retry_count`` 0 (probe p51c). It is
    that call's retry; one naming another provider or model is not."""

    @agent_otel.provider("openai", model="gpt-4o-mini")
    def create(provider: str, model: str | None) -> dict[str, Any]:
        agent_otel.record_retry(provider=provider, model=model, reason="validation")
        return {"usage": {"prompt_tokens": 1, "completion_tokens": 1}}

    create("openai", "gpt-4o-mini")
    create("openai", None)
    create("anthropic", "claude-opus-4")
    create("openai", "gpt-4o")
    spans = otel.spans("chat gpt-4o-mini")
    assert [span.attributes[semconv.AGENT_OTEL_RETRY_COUNT] for span in spans] == [1, 1, 0, 0]
    by_model = {(p.attributes[semconv.GEN_AI_PROVIDER_NAME], p.attributes[semconv.GEN_AI_REQUEST_MODEL]): p.value
                for p in otel.points(RETRIES)}
    assert by_model == {("openai", "gpt-4o-mini"): 2, ("anthropic", "claude-opus-4"): 1, ("openai", "gpt-4o"): 1}


@pytest.mark.parametrize(("marked", "total"), [(1, 1), (1, 3), (2, 1)])
def test_a_calls_retry_total_and_the_retries_marked_during_it_do_not_add_up(otel: Any, marked: int, total: int) -> None:
    """A coordinator's retry loop marked with ``record_retry(reason=...)`` (or a ``[[retry]]`` marker) inside a
    provider whose ``retries`` option reads the same loop's total: one retry was counted twice, on the span's
    ``retry_count`` and on ``agent_otel.client.retries`` (once with its reason, once without)."""

    @agent_otel.provider("openai", model="gpt-4o", retries=path("result.retries"))
    def complete() -> dict[str, Any]:
        for _ in range(marked):
            agent_otel.record_retry(reason="rate_limit")
        return {"retries": total, "usage": {"prompt_tokens": 1, "completion_tokens": 1}}

    complete()
    expected = max(marked, total)
    assert otel.span("chat gpt-4o").attributes[semconv.AGENT_OTEL_RETRY_COUNT] == expected
    by_reason = {p.attributes.get(semconv.AGENT_OTEL_RETRY_REASON): p.value for p in otel.points(RETRIES)}
    assert by_reason == {"rate_limit": marked, **({None: total - marked} if total > marked else {})}


def test_a_retry_count_that_is_not_a_count_is_dropped_and_counted(otel: Any, capfd: pytest.CaptureFixture[str]) -> None:
    """A count as every count option reads one (a fraction is no count). Before, -1 went to the span and to
    the counter (whose SDK warning reached the host's stderr), and 0.5 was added as half a retry."""

    @agent_otel.provider("openai", model="gpt-4o")
    def complete() -> Any:
        agent_otel.record_retry(-1)
        agent_otel.record_retry(0.5)  # type: ignore[arg-type]  # what a program may pass
        agent_otel.record_retry(1)
        return openai_response(10, 10)

    complete()
    assert otel.span("chat gpt-4o").attributes[semconv.AGENT_OTEL_RETRY_COUNT] == 1
    assert [p.value for p in otel.points(RETRIES)] == [1]
    assert error_count(otel, "provider.retry") == 2  # the negative one and the fraction
    assert capfd.readouterr().err == ""


def test_fallbacks(otel: Any) -> None:
    @agent_otel.provider("openai", model="gpt-4o")
    def complete(prompt: str) -> Any:
        agent_otel.record_fallback(to="anthropic", reason="rate_limit")
        return openai_response(1, 1)

    complete("a")
    span = otel.span("chat gpt-4o")
    assert span.attributes[semconv.AGENT_OTEL_FALLBACK_TO] == "anthropic"
    assert span.attributes[semconv.AGENT_OTEL_FALLBACK_REASON] == "rate_limit"
    agent_otel.record_fallback(to="local", reason="timeout", from_provider="anthropic")
    agent_otel.record_fallback(to="local", reason="timeout", from_provider="anthropic")
    agent_otel.record_fallback(to="x", reason="y")  # no provider known: counted, never raised
    fallbacks = assert_instrument(otel, semconv.CLIENT_FALLBACKS)
    assert {tuple(sorted(p.attributes.items())): p.value for p in fallbacks} == {
        tuple(sorted({semconv.GEN_AI_PROVIDER_NAME: "openai", semconv.AGENT_OTEL_FALLBACK_TO: "anthropic",
                      semconv.AGENT_OTEL_FALLBACK_REASON: "rate_limit"}.items())): 1,
        tuple(sorted({semconv.GEN_AI_PROVIDER_NAME: "anthropic", semconv.AGENT_OTEL_FALLBACK_TO: "local",
                      semconv.AGENT_OTEL_FALLBACK_REASON: "timeout"}.items())): 2,
    }
    assert error_count(otel, "provider.fallback") == 1


def test_cost_from_a_price_dict(otel: Any) -> None:
    agent_otel.set_prices({"house-model": {"input": 1.0, "output": 2.0}, "gpt-4o": [10, 20]})

    @agent_otel.provider("local", model=path("args.model"))
    def complete(model: str) -> dict[str, Any]:
        return {"usage": {"input_tokens": 1_000_000, "output_tokens": 500_000}}

    with agent_otel.agent_call("coder"):
        complete("house-model-v2")  # longest known prefix
        complete("gpt-4o")
        complete("unpriced")
    costs = {p.attributes[semconv.GEN_AI_REQUEST_MODEL]: p.value for p in otel.points(COST)}
    assert costs == {"house-model-v2": pytest.approx(2.0), "gpt-4o": pytest.approx(20.0)}
    assert {p.attributes[semconv.GEN_AI_AGENT_NAME] for p in otel.points(COST)} == {"coder"}
    assert semconv.GEN_AI_USAGE_COST_AMOUNT not in otel.span("chat unpriced").attributes


def test_cost_from_a_toml_file_and_replace(otel: Any, tmp_path: Any) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text('"gpt-4o" = { input = 100.0, output = 0.0 }\n"my-llm" = { input = 1, output = 1 }\n')
    agent_otel.set_prices(prices)

    @agent_otel.provider("openai", model=path("args.model"))
    def complete(model: str) -> Any:
        return openai_response(10_000, 10_000, model=model)

    complete("gpt-4o")
    complete("gpt-4o-mini")  # still the shipped price: exact match beats the prefix
    costs = {p.attributes[semconv.GEN_AI_REQUEST_MODEL]: p.value for p in otel.points(COST)}
    assert costs == {"gpt-4o": pytest.approx(1.0), "gpt-4o-mini": pytest.approx((10_000 * 0.75) / 1_000_000)}
    agent_otel.set_prices({"only": {"input": 1, "output": 1}}, replace=True)
    complete("gpt-4o")
    assert point(otel, COST, {semconv.GEN_AI_REQUEST_MODEL: "gpt-4o"}).value == pytest.approx(1.0)  # unchanged


def test_bad_price_tables_name_the_problem(tmp_path: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"price of 'm': expected \{input"):
        agent_otel.set_prices({"m": {"input": 1}})
    with pytest.raises(ConfigurationError, match="unknown key 'outptu'"):
        agent_otel.set_prices({"m": {"input": 1, "outptu": 2}})
    with pytest.raises(ConfigurationError, match="a price is a number from 0 to 1,000,000"):
        agent_otel.set_prices({"m": [-1, 2]})
    for text in ("125", "12"):  # a string is no list of prices: "125" was read as 1, 2 and 5
        with pytest.raises(ConfigurationError, match=f"price of 'm': expected .*got str '{text}'"):
            agent_otel.set_prices({"m": text})
    bad = tmp_path / "bad.toml"
    bad.write_text("gpt-4o = {")
    with pytest.raises(ConfigurationError, match=r"bad\.toml: cannot read price table"):
        agent_otel.set_prices(bad)
    for deep in (tmp_path / "deep.toml", tmp_path / "deep.json"):  # a file nested thousands deep (Python 3.13's json
        # reads 5,000 levels: a deeper one for every version)
        deep.write_text("m = " + "[" * 5_000 + "]" * 5_000 if deep.suffix == ".toml" else "[" * 100_000 + "]" * 100_000)
        with pytest.raises(ConfigurationError, match=r"deep\.(toml|json): cannot read price table \(nested too"):
            agent_otel.set_prices(deep)


def test_explicit_token_and_cost_extractors(otel: Any) -> None:
    @agent_otel.provider("custom", model="m", operation="text_completion", input_tokens=path("result.n_in"),
                         output_tokens=lambda call: call.result["n_out"], cost=path("result.price"),
                         response_model=path("result.served_by"))
    def complete() -> dict[str, Any]:
        return {"n_in": "7", "n_out": 3, "price": "0.5", "served_by": "m-2"}

    complete()
    span = otel.span("text_completion m")
    assert span.attributes[semconv.GEN_AI_RESPONSE_MODEL] == "m-2"
    assert span.attributes[semconv.GEN_AI_USAGE_COST_AMOUNT] == 0.5
    assert tokens_by_type(otel) == {"input": (1, 7), "output": (1, 3)}
    assert point(otel, COST).value == 0.5
    assert point(otel, DURATION).attributes[semconv.GEN_AI_OPERATION_NAME] == "text_completion"


@pytest.mark.parametrize(
    ("result", "stages"),
    [
        ({}, {}),
        ({"usage": None}, {}),
        (SimpleNamespace(usage=SimpleNamespace()), {}),
        ({"usage": {"prompt_tokens": "lots", "completion_tokens": 3}}, {"provider.input_tokens": 1}),
        ({"usage": "oops"}, {}),
        ({"usage": {"input_tokens": -4}}, {"provider.input_tokens": 1}),
        ({"usage": {"input_tokens": 2.7, "output_tokens": 3.0}}, {"provider.input_tokens": 1}),
        ("text only", {}),
    ],
)
def test_odd_usage_never_crashes(otel: Any, result: Any, stages: dict[str, int]) -> None:
    @agent_otel.provider("openai", model="gpt-4o")
    def complete() -> Any:
        return result

    assert complete() is result
    assert point(otel, DURATION).count == 1
    for stage, count in stages.items():
        assert error_count(otel, stage) == count
    assert sum(p.value for p in otel.points(semconv.INSTRUMENTATION_ERRORS.name)) == sum(stages.values())


def test_a_count_that_is_not_a_whole_number_is_counted_as_a_problem_not_truncated(otel: Any) -> None:
    """2.7 input tokens were recorded as 2, silently; 3.0 is 3."""
    @agent_otel.provider("custom", model="m", input_tokens=path("result.n_in"), output_tokens=path("result.n_out"))
    def complete() -> dict[str, Any]:
        return {"n_in": 2.7, "n_out": 3.0}

    complete()
    assert tokens_by_type(otel) == {"output": (1, 3)}
    assert error_count(otel, "provider.input_tokens") == 1


def test_manual_handle(otel: Any) -> None:
    with agent_otel.job(type="manual"), agent_otel.provider_call("openai", model="gpt-4o") as call:
        agent_otel.record_retry()
        call.set_outcome(usage={"prompt_tokens": 100, "completion_tokens": 10}, model="gpt-4o-2024-11-20")
    span = otel.span("chat gpt-4o")
    assert span.attributes[semconv.GEN_AI_RESPONSE_MODEL] == "gpt-4o-2024-11-20"
    assert span.attributes[semconv.AGENT_OTEL_RETRY_COUNT] == 1
    assert span.attributes[semconv.JOB_ID] == otel.span("invoke_workflow manual").attributes[semconv.JOB_ID]
    assert tokens_by_type(otel) == {"input": (1, 100), "output": (1, 10)}
    assert point(otel, COST).value == pytest.approx(gpt4o_cost(100, 10))

    with agent_otel.provider_call("openai", model="gpt-4o") as call:
        call.set_result(openai_response(5, 5))
    second = {direction: points(otel, name, {semconv.GEN_AI_RESPONSE_MODEL: "gpt-4o-2024-08-06"})
              for direction, name in TOKENS.items()}
    assert {direction: (p.count, p.sum) for direction, found in second.items() for p in found} == {
        "input": (1, 5), "output": (1, 5)}
    assert point(otel, COST).value == pytest.approx(gpt4o_cost(105, 15))  # one series: request model


def test_a_manual_call_that_raises_keeps_the_usage_it_reported(otel: Any) -> None:
    """The tokens a block reported before it raised (the request was answered, then the program failed on the
    answer) were dropped with everything else it reported."""
    with pytest.raises(KeyError), agent_otel.provider_call("openai", model="gpt-4o") as call:
        call.set_outcome(usage={"prompt_tokens": 100, "completion_tokens": 10})
        raise KeyError("choices")
    assert otel.span("chat gpt-4o").attributes[semconv.ERROR_TYPE] == "KeyError"
    assert tokens_by_type(otel) == {"input": (1, 100), "output": (1, 10)}


def test_content_is_captured_only_when_enabled(otel: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from agent_otel._engine import policy

    @agent_otel.provider("openai", model="gpt-4o", prompt=path("args.prompt"), response=path("result.text"))
    def complete(prompt: str) -> dict[str, Any]:
        return {"text": "the answer"}

    complete("secret prompt")
    first = otel.span("chat gpt-4o")
    assert "secret prompt" not in str(dict(first.attributes)) and "the answer" not in str(dict(first.attributes))

    agent_otel.set_policy(capture_content=True)
    complete("visible prompt")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    policy.reset_policy()
    complete("env prompt")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "false")
    policy.reset_policy()
    complete("hidden again")
    captured = [(s.attributes.get("gen_ai.input.messages"), s.attributes.get("gen_ai.output.messages"))
                for s in otel.spans("chat gpt-4o")]

    def messages(role: str, text: str) -> str:  # the conventions' JSON (tests/calls/test_content_capture.py)
        return json.dumps([{"role": role, "parts": [{"type": "text", "content": text}]}])

    assert captured == [(None, None), (messages("user", "visible prompt"), messages("assistant", "the answer")),
                        (messages("user", "env prompt"), messages("assistant", "the answer")), (None, None)]


def test_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="provider is required"):
        agent_otel.provider("", model="x")


def test_operation_and_model_default(otel: Any) -> None:
    @agent_otel.provider("openai")
    def complete() -> None:
        return None

    complete()
    assert otel.span("chat unknown").attributes[semconv.GEN_AI_REQUEST_MODEL] == "unknown"
    assert points(otel, DURATION, {semconv.GEN_AI_OPERATION_NAME: "chat"})


class _Held:
    """An argument or result whose lifetime a test watches."""


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", ["provider", "evolution", "agent", "tool"])
def test_arguments_and_result_are_freed_as_the_call_ends_as_without_agent_otel(otel: Any, kind: str,
                                                                                  shape: str) -> None:
    """A provider call's (an evolution run's) context holds its invocation, so nested calls find it: a cycle
    that kept the call's arguments and result alive until a GC cycle (a large prompt, a document)."""
    decorate = {"provider": agent_otel.provider("openai", model="gpt-4o"),
                "evolution": agent_otel.evolution(agent="a", sample_resources=False),
                "agent": agent_otel.agent(name="a"), "tool": agent_otel.tool("t")}[kind]

    def freed(func: Any) -> tuple[bool, bool]:
        argument = _Held()
        argument_ref = weakref.ref(argument)
        returned = drive(shape, func, argument)
        result_ref = weakref.ref(returned) if isinstance(returned, _Held) else None
        del argument, returned
        return argument_ref() is None, result_ref is None or result_ref() is None

    collecting = gc.isenabled()
    gc.disable()  # only reference counting frees: what the program sees at once
    try:
        plain = freed(shaped(shape, lambda func: func, lambda task: _Held()))
        traced = freed(shaped(shape, decorate, lambda task: _Held()))
    finally:
        if collecting:
            gc.enable()
    assert plain[0]
    assert traced == plain
    assert len(otel.spans()) == 1


_READING_THE_CALL = {  # each kind with an option read as the call ends: it has a view of the call (Call)
    "agent": lambda: agent_otel.agent(name="a", success=agent_otel.path("result.ok")),
    "tool": lambda: agent_otel.tool("t", success=agent_otel.path("result.ok")),
    "job": lambda: agent_otel.job(type="j", pattern=agent_otel.path("result.pattern")),
    "phase": lambda: agent_otel.phase("p", success=agent_otel.path("result.ok")),
    "provider": lambda: agent_otel.provider("openai", model="gpt-4o", success=agent_otel.path("result.ok")),
    "evolution": lambda: agent_otel.evolution(agent="a", success=agent_otel.path("result.ok"), sample_resources=False),
}


@pytest.mark.parametrize("flow", [False, True], ids=["error", "control flow"])
@pytest.mark.parametrize("kind", sorted(_READING_THE_CALL))
def test_a_call_that_raised_lets_go_of_its_instance_once_the_error_is_handled(otel: Any, kind: str,
                                                                              flow: bool) -> None:
    """The error's traceback holds our wrapper's frame, which holds the invocation, whose view of the call held the
    error and the instance: a cycle that kept the instance alive after the program handled the error, until a GC
    cycle (mem0's local Qdrant client kept its folder locked: a new one on the same path was refused). The same for
    a framework's control flow (mini-swe-agent's ``Submitted``), which the view keeps as what left the call."""
    from minisweagent.exceptions import Submitted

    decorate = _READING_THE_CALL[kind]()
    raised: type[Exception] = Submitted if flow else ValueError

    class Memory:
        def add(self) -> None:
            raise raised()

    class Traced:
        @decorate
        def add(self) -> None:
            raise raised()

    def freed(cls: type) -> bool:
        memory = cls()
        held = weakref.ref(memory)
        try:
            memory.add()
        except raised:
            pass
        del memory
        return held() is None

    collecting = gc.isenabled()
    gc.disable()  # only reference counting frees: what the program sees at once
    try:
        plain, traced = freed(Memory), freed(Traced)
    finally:
        if collecting:
            gc.enable()
    assert plain
    assert traced
    assert [span.status.status_code for span in otel.spans()] == [StatusCode.UNSET if flow else StatusCode.ERROR]


def test_a_dict_result_gives_its_response_id_and_finish_reasons_per_choice(otel: Any) -> None:
    """A result as a dict (an HTTP client's parsed JSON): its id and each choice's finish reason, by index, on the span;
    a dict with none of those fields gives none (and is passed over in one look)."""
    @agent_otel.provider("openai", model="gpt-4o")
    def answered() -> dict[str, Any]:
        return {"id": "chatcmpl-9", "model": "gpt-4o", "usage": {"prompt_tokens": 3, "completion_tokens": 2},
                "choices": [{"index": 1, "finish_reason": "length"}, {"index": 0, "finish_reason": "stop"}]}

    @agent_otel.provider("openai", model="gpt-4o-mini")
    def bare() -> dict[str, Any]:
        return {"model": "gpt-4o-mini", "usage": {"prompt_tokens": 3, "completion_tokens": 2}}

    answered()
    bare()
    attributes = otel.span("chat gpt-4o").attributes
    assert (attributes[semconv.GEN_AI_RESPONSE_ID], attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == (
        "chatcmpl-9", ("stop", "length"))  # in the choices' order
    assert {semconv.GEN_AI_RESPONSE_ID, semconv.GEN_AI_RESPONSE_FINISH_REASONS}.isdisjoint(
        otel.span("chat gpt-4o-mini").attributes)


def test_a_finish_reason_the_program_cannot_read_costs_the_call_nothing_else(otel: Any) -> None:
    """A finish reason that is a program's object whose ``value`` raises: read as none. It raised out of the record
    (counted), and the call's tokens and duration went unrecorded. A LangChain message's id is its run's: the
    provider's is in its metadata, which is read first."""
    class Reason:
        @property
        def value(self) -> str:
            raise RuntimeError("not readable")

    @agent_otel.provider("openai", model="gpt-4o")
    def answered() -> SimpleNamespace:
        return SimpleNamespace(id="lc_run--1", response_metadata={"id": "chatcmpl-7", "finish_reason": Reason()},
                               usage={"prompt_tokens": 10, "completion_tokens": 5})

    answered()
    attributes = otel.span("chat gpt-4o").attributes
    assert (attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS], attributes[semconv.GEN_AI_RESPONSE_ID]) == (10, "chatcmpl-7")
    assert semconv.GEN_AI_RESPONSE_FINISH_REASONS not in attributes
