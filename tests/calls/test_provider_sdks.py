"""Streams of the real ``openai`` and ``anthropic`` SDKs, served over SSE on loopback: from a sync or an
``async def`` provider, used as an iterator, as a context manager or both, each stream is timed until
it is exhausted or closed, and its usage is read."""

from __future__ import annotations

import asyncio
import collections.abc
import concurrent.futures
import contextlib
import contextvars
import gc
import inspect
import operator
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import boto3
import botocore.eventstream
import httpx2
import ollama
import openai
import pydantic
import pytest
from google import genai
from google.genai import models as google_models
from google.genai import types as genai_types
from opentelemetry import trace
from opentelemetry.instrumentation.botocore import BotocoreInstrumentor
from opentelemetry.instrumentation.ollama import OllamaInstrumentor

import agent_otel
from agent_otel import semconv
from agent_otel._bridge import processor as bridge_processor
from tests.support import genai_apps
from tests.support.sse_llm import (
    ANTHROPIC_INPUT_TOKENS,
    ANTHROPIC_MODEL,
    ANTHROPIC_OUTPUT_TOKENS,
    BEDROCK_INPUT_TOKENS,
    BEDROCK_OUTPUT_TOKENS,
    GEMINI_INPUT_TOKENS,
    GEMINI_OUTPUT_TOKENS,
    OLLAMA_INPUT_TOKENS,
    OLLAMA_MODEL,
    OLLAMA_OUTPUT_TOKENS,
    OPENAI_MODEL,
    OPENAI_USAGE,
    OVERLOADED_MODEL,
    RESPONSES_USAGE,
    STALLING_MODEL,
    StreamingLLM,
)
from tests.support.telemetry import point, points

MESSAGES = [{"role": "user", "content": "hi"}]
USES = ["iterate", "with", "with_as", "iterate_then_close"]
EXPECTED = {"openai": (OPENAI_MODEL, OPENAI_USAGE["prompt_tokens"], OPENAI_USAGE["completion_tokens"], 3),
            "anthropic": (ANTHROPIC_MODEL, ANTHROPIC_INPUT_TOKENS, ANTHROPIC_OUTPUT_TOKENS, 6)}


@pytest.fixture(scope="module")
def llm() -> Iterator[StreamingLLM]:
    with StreamingLLM() as server:
        yield server


def sync_create(sdk: str, url: str) -> Any:
    if sdk == "openai":
        client = openai.OpenAI(base_url=url + "/v1", api_key="test", max_retries=0)

        @agent_otel.provider("openai", model="gpt-4o-mini")
        def create() -> Any:
            return client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True,
                                                  stream_options={"include_usage": True})
    else:
        sync_client = anthropic.Anthropic(base_url=url, api_key="test", max_retries=0)

        @agent_otel.provider("anthropic", model="gpt-4o-mini")
        def create() -> Any:
            return sync_client.messages.create(model="claude-3-5-haiku", max_tokens=16, messages=MESSAGES, stream=True)
    return create


def async_create(sdk: str, url: str) -> Any:
    if sdk == "openai":
        client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="test", max_retries=0)

        @agent_otel.provider("openai", model="gpt-4o-mini")
        async def create() -> Any:
            return await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True,
                                                        stream_options={"include_usage": True})
    else:
        async_client = anthropic.AsyncAnthropic(base_url=url, api_key="test", max_retries=0)

        @agent_otel.provider("anthropic", model="gpt-4o-mini")
        async def create() -> Any:
            return await async_client.messages.create(model="claude-3-5-haiku", max_tokens=16, messages=MESSAGES,
                                                 stream=True)
    return create


def async_sdk_method(sdk: str, url: str) -> Any:
    """The async client's own ``create`` decorated, as a config file's target on it: a plain ``def`` (the SDK's
    ``required_args`` wrapper) that returns the coroutine which gives the stream."""
    if sdk == "openai":
        client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="test", max_retries=0)
        assert not inspect.iscoroutinefunction(client.chat.completions.create)  # the shape under test
        create = agent_otel.provider("openai", model="gpt-4o-mini")(client.chat.completions.create)
        return lambda: create(model="gpt-4o-mini", messages=MESSAGES, stream=True,
                              stream_options={"include_usage": True})
    async_client = anthropic.AsyncAnthropic(base_url=url, api_key="test", max_retries=0)
    assert not inspect.iscoroutinefunction(async_client.messages.create)
    create = agent_otel.provider("anthropic", model="gpt-4o-mini")(async_client.messages.create)
    return lambda: create(model="claude-3-5-haiku", max_tokens=16, messages=MESSAGES, stream=True)


def consume_sync(create: Any, use: str) -> list[Any]:
    if use == "iterate":
        return list(create())
    if use == "with":
        stream = create()
        with stream:
            return list(stream)
    if use == "with_as":
        with create() as stream:
            return list(stream)
    stream = create()
    items = list(stream)
    stream.close()
    return items


async def consume_async(create: Any, use: str) -> list[Any]:
    if use == "iterate":
        return [item async for item in await create()]
    if use == "with":
        stream = await create()
        async with stream:
            return [item async for item in stream]
    if use == "with_as":
        async with await create() as stream:
            return [item async for item in stream]
    stream = await create()
    items = [item async for item in stream]
    await stream.close()
    return items


def assert_stream_recorded(otel: Any, sdk: str, items: list[Any]) -> None:
    response_model, tokens_in, tokens_out, count = EXPECTED[sdk]
    assert len(items) == count
    span = otel.span("chat gpt-4o-mini")
    assert span.attributes[semconv.GEN_AI_RESPONSE_MODEL] == response_model
    assert span.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == tokens_in
    assert span.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == tokens_out
    assert semconv.STREAM_CLOSED_EARLY not in span.attributes  # read to the end: not closed early
    assert point(otel, semconv.CLIENT_TIME_TO_FIRST_CHUNK.name).count == 1
    assert point(otel, semconv.CLIENT_INFERENCE_DURATION.name).count == 1
    tokens = {kind.value: p.sum for kind, _, histogram in semconv.PREVIOUS_TOKEN_SPLIT
              for p in otel.points(histogram.name)}
    assert tokens == {"input": tokens_in, "output": tokens_out}


@pytest.mark.parametrize("use", USES)
@pytest.mark.parametrize("sdk", ["openai", "anthropic"])
def test_stream_from_a_sync_call(otel: Any, llm: StreamingLLM, sdk: str, use: str) -> None:
    create = sync_create(sdk, llm.url)
    items = consume_sync(create, use)
    assert_stream_recorded(otel, sdk, items)


@pytest.mark.parametrize("sdk", ["openai", "anthropic"])
def test_an_agent_that_returns_a_stream_counts_its_model_call(otel: Any, llm: StreamingLLM, sdk: str) -> None:
    """The agent hands the stream to its caller, who reads it after the agent has ended: the request was counted when
    it ended, after the agent had recorded its counts (0 inference calls, while the call's cost carried the agent)."""
    create = sync_create(sdk, llm.url)
    answer = agent_otel.agent("streamer")(lambda: create())
    items = consume_sync(answer, "iterate")
    assert_stream_recorded(otel, sdk, items)
    [calls] = otel.points(semconv.AGENT_INFERENCE_CALLS.name)
    assert (calls.attributes[semconv.GEN_AI_AGENT_NAME], calls.sum) == ("streamer", 1)


@pytest.mark.parametrize("use", USES)
@pytest.mark.parametrize("sdk", ["openai", "anthropic"])
def test_stream_from_an_async_call(otel: Any, llm: StreamingLLM, sdk: str, use: str) -> None:
    create = async_create(sdk, llm.url)
    items = asyncio.run(consume_async(create, use))
    assert_stream_recorded(otel, sdk, items)


@pytest.mark.parametrize("use", USES)
@pytest.mark.parametrize("sdk", ["openai", "anthropic"])
def test_stream_from_the_async_sdks_own_method(otel: Any, llm: StreamingLLM, sdk: str, use: str) -> None:
    """The call is timed until its stream is read, not until the coroutine that gave it was awaited (its driver, let
    go then, ended the call closed early, without its usage)."""
    create = async_sdk_method(sdk, llm.url)
    items = asyncio.run(consume_async(create, use))
    assert_stream_recorded(otel, sdk, items)


def test_a_responses_api_stream_records_the_usage_its_completed_event_carries(otel: Any, llm: StreamingLLM) -> None:
    """``client.responses.create(stream=True)``: the usage is ``response.usage`` of ``response.completed``."""
    client = openai.OpenAI(base_url=llm.url + "/v1", api_key="test", max_retries=0)

    @agent_otel.provider("openai", model="gpt-4o-mini")
    def create() -> Any:
        return client.responses.create(model="gpt-4o-mini", input="hi", stream=True)

    assert [event.type for event in create()] == [
        "response.created", "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_item.done", "response.completed"]
    span = otel.span("chat gpt-4o-mini")
    assert span.attributes[semconv.GEN_AI_RESPONSE_MODEL] == OPENAI_MODEL
    assert span.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == RESPONSES_USAGE["input_tokens"]
    assert span.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == RESPONSES_USAGE["output_tokens"]


@pytest.mark.parametrize("sdk", ["openai", "anthropic"])
def test_stream_left_early_is_closed_early_and_times_until_then(otel: Any, llm: StreamingLLM, sdk: str) -> None:
    create = sync_create(sdk, llm.url)
    with create() as stream:
        assert otel.spans() == []  # the call is not over until the stream is
        next(iter(stream))
    span = otel.span("chat gpt-4o-mini")
    assert span.attributes[semconv.STREAM_CLOSED_EARLY] is True
    assert point(otel, semconv.CLIENT_TIME_TO_FIRST_CHUNK.name).count == 1


# -- the SDKs' streaming helpers: ``with client.messages.stream(...) as stream`` -------------------

HELPER_USES = ["events", "text_stream", "final"]


def helper(sdk: str, url: str, *, run_async: bool = False, http_client: Any = None) -> Any:
    """A provider whose call returns the SDK's stream manager (the request is made as its block starts)."""
    if sdk == "openai":
        client = (openai.AsyncOpenAI if run_async else openai.OpenAI)(base_url=url + "/v1", api_key="test",
                                                                     max_retries=0, http_client=http_client)

        @agent_otel.provider("openai", model="gpt-4o-mini")
        def stream() -> Any:
            return client.chat.completions.stream(model="gpt-4o-mini", messages=MESSAGES,
                                                  stream_options={"include_usage": True})
    else:
        anthropic_client = (anthropic.AsyncAnthropic if run_async else anthropic.Anthropic)(
            base_url=url, api_key="test", max_retries=0, http_client=http_client)

        @agent_otel.provider("anthropic", model="gpt-4o-mini")
        def stream() -> Any:
            return anthropic_client.messages.stream(model="claude-3-5-haiku", max_tokens=16, messages=MESSAGES)
    return stream


def read_sync(manager: Any, sdk: str, use: str) -> str:
    with manager as stream:
        if use == "events":
            return "".join(getattr(event, "delta", "") if sdk == "openai" else
                           getattr(getattr(event, "delta", None), "text", "") for event in stream
                           if event.type in ("content.delta", "content_block_delta"))
        if use == "text_stream":
            assert sdk == "anthropic"
            return "".join(stream.text_stream)
        final = stream.get_final_completion() if sdk == "openai" else stream.get_final_message()
        return final.choices[0].message.content if sdk == "openai" else final.content[0].text


async def read_async(manager: Any, sdk: str, use: str) -> str:
    async with manager as stream:
        if use == "events":
            return "".join([getattr(event, "delta", "") if sdk == "openai" else
                            getattr(getattr(event, "delta", None), "text", "") async for event in stream
                            if event.type in ("content.delta", "content_block_delta")])
        if use == "text_stream":
            assert sdk == "anthropic"
            return "".join([text async for text in stream.text_stream])
        final = await (stream.get_final_completion() if sdk == "openai" else stream.get_final_message())
        return final.choices[0].message.content if sdk == "openai" else final.content[0].text


def assert_helper_recorded(otel: Any, sdk: str, use: str, text: str) -> None:
    response_model, tokens_in, tokens_out, _ = EXPECTED[sdk]
    assert text == "Hello"  # the program read the whole response, however it read it
    span = otel.span("chat gpt-4o-mini")
    assert span.attributes[semconv.GEN_AI_RESPONSE_MODEL] == response_model
    assert span.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == tokens_in
    assert span.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == tokens_out
    assert semconv.STREAM_CLOSED_EARLY not in span.attributes  # read to the end, whichever way
    assert point(otel, semconv.CLIENT_INFERENCE_DURATION.name).count == 1
    # time to first chunk: only when the events come through the stream we hand out
    assert len(otel.points(semconv.CLIENT_TIME_TO_FIRST_CHUNK.name)) == (1 if use == "events" else 0)


def helper_cases() -> list[tuple[str, str]]:
    return [(sdk, use) for sdk in ("openai", "anthropic") for use in HELPER_USES
            if not (sdk == "openai" and use == "text_stream")]


@pytest.mark.parametrize(("sdk", "use"), helper_cases())
def test_a_streaming_helper_is_timed_until_its_block_is_left(otel: Any, llm: StreamingLLM, sdk: str,
                                                              use: str) -> None:
    manager = helper(sdk, llm.url)()
    assert otel.spans() == []  # no request yet: the SDK makes it as the block starts
    text = read_sync(manager, sdk, use)
    assert_helper_recorded(otel, sdk, use, text)


@pytest.mark.parametrize(("sdk", "use"), helper_cases())
def test_an_async_streaming_helper_is_timed_until_its_block_is_left(otel: Any, llm: StreamingLLM, sdk: str,
                                                                     use: str) -> None:
    text = asyncio.run(read_async(helper(sdk, llm.url, run_async=True)(), sdk, use))
    assert_helper_recorded(otel, sdk, use, text)


@pytest.mark.parametrize("run_async", [False, True])
def test_the_responses_streaming_helper_read_with_get_final_response_records_its_usage(
        otel: Any, llm: StreamingLLM, run_async: bool) -> None:
    """``client.responses.stream(...)`` shows no snapshot, and get_final_response() reads the events without
    passing through the stream we hand out: before, no tokens, no cost, and a stream read to the end was
    flagged closed early."""
    client_type = openai.AsyncOpenAI if run_async else openai.OpenAI
    client = client_type(base_url=llm.url + "/v1", api_key="test", max_retries=0)

    @agent_otel.provider("openai", model="gpt-4o-mini")
    def stream() -> Any:
        return client.responses.stream(model="gpt-4o-mini", input="hi")

    async def read_async() -> Any:
        async with stream() as events:
            return await events.get_final_response()

    if run_async:
        final = asyncio.run(read_async())
    else:
        with stream() as events:
            final = events.get_final_response()
    assert final.usage.input_tokens == RESPONSES_USAGE["input_tokens"]
    span = otel.span("chat gpt-4o-mini")
    assert span.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == RESPONSES_USAGE["input_tokens"]
    assert span.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == RESPONSES_USAGE["output_tokens"]
    assert semconv.STREAM_CLOSED_EARLY not in span.attributes


def test_a_streaming_helper_left_early_is_closed_early(otel: Any, llm: StreamingLLM) -> None:
    with helper("anthropic", llm.url)() as stream:
        next(iter(stream))  # message_start only
        # the stream handed out reads as the SDK's: no attribute of the proxy class shadows it
        assert stream.__annotations__ == anthropic.lib.streaming.MessageStream.__annotations__
    span = otel.span("chat gpt-4o-mini")
    assert span.attributes[semconv.STREAM_CLOSED_EARLY] is True
    assert span.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == ANTHROPIC_INPUT_TOKENS  # as far as it got


@pytest.mark.parametrize("read", ["events", "text_stream", "get_final_message"])
def test_a_streaming_helper_cancelled_after_its_response_began_is_closed_early_however_it_is_read(
        otel: Any, llm: StreamingLLM, read: str) -> None:
    """A task reading an Anthropic helper stream, cancelled (a timeout around it) once the first events arrived: read
    through its own iterators (``text_stream``, ``get_final_message()``), no chunk passed through agent-otel, and the
    call was recorded failed with ``CancelledError`` where the same read through its events was closed early."""
    client = anthropic.AsyncAnthropic(base_url=llm.url, api_key="test", max_retries=0)
    opened: list[Any] = []

    @agent_otel.provider("anthropic", model="claude-3-5-haiku")
    def stream() -> Any:
        return client.messages.stream(model=STALLING_MODEL, max_tokens=16, messages=MESSAGES)

    async def reader() -> None:
        async with stream() as events:
            opened.append(events)
            if read == "events":
                async for _ in events:
                    pass
            elif read == "text_stream":
                async for _ in events.text_stream:
                    pass
            else:
                await events.get_final_message()

    def began() -> bool:
        try:
            return bool(opened) and opened[0].current_message_snapshot is not None
        except AssertionError:  # the SDK's property before the first event
            return False

    async def main() -> None:
        task = asyncio.create_task(reader())
        deadline = time.monotonic() + 30
        while not began():
            assert time.monotonic() < deadline, "the first events did not arrive"
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    span = otel.span("chat claude-3-5-haiku")
    assert span.attributes[semconv.STREAM_CLOSED_EARLY] is True
    assert semconv.ERROR_TYPE not in span.attributes
    assert semconv.ERROR_TYPE not in point(otel, semconv.CLIENT_INFERENCE_DURATION.name).attributes


@pytest.fixture
def dead_url() -> str:
    """A loopback port nobody listens on: the SDK's request fails to connect."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


@pytest.mark.parametrize("run_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("sdk", ["openai", "anthropic"])
def test_a_streaming_helper_whose_request_fails_records_the_error(otel: Any, dead_url: str, sdk: str,
                                                                  run_async: bool) -> None:
    """The request fails as the block starts: the program gets the SDK's own exception, and the call is an
    error of that type at once (before, it waited for the manager to be collected and read "closed early")."""
    manager = helper(sdk, dead_url, run_async=run_async)()
    with pytest.raises((openai.APIConnectionError, anthropic.APIConnectionError)) as raised:
        if run_async:
            asyncio.run(read_async(manager, sdk, "final"))
        else:
            read_sync(manager, sdk, "final")
    span = otel.span("chat gpt-4o-mini")  # ended while the program still holds the manager
    assert span.attributes[semconv.ERROR_TYPE] == type(raised.value).__name__ == "APIConnectionError"
    assert semconv.STREAM_CLOSED_EARLY not in span.attributes
    assert span.events[-1].name == "exception"
    assert manager is not None


# -- the request a stream manager makes as its block starts is inside the provider call -------------


def hooked_helper(sdk: str, url: str, seen: list[int], *, run_async: bool) -> Any:
    """:func:`helper` whose HTTP client notes the id of the span current as each request is sent."""
    def note(request: Any) -> None:
        seen.append(trace.get_current_span().get_span_context().span_id)

    async def anote(request: Any) -> None:
        note(request)

    http = (httpx2.AsyncClient(event_hooks={"request": [anote]}) if run_async  # the HTTP package the SDKs take
            else httpx2.Client(event_hooks={"request": [note]}))
    return helper(sdk, url, run_async=run_async, http_client=http)


@pytest.mark.parametrize("run_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("sdk", ["openai", "anthropic"])
def test_a_streaming_helpers_request_is_made_inside_the_provider_call(otel: Any, llm: StreamingLLM, sdk: str,
                                                                      run_async: bool) -> None:
    """The manager makes its request as its block starts: in the call's context, so an SDK instrumentation's
    span of it is a child of the call (the span bridge counts it once), not a second call beside it."""
    seen: list[int] = []
    manager = hooked_helper(sdk, llm.url, seen, run_async=run_async)()
    text = asyncio.run(read_async(manager, sdk, "final")) if run_async else read_sync(manager, sdk, "final")
    assert text == "Hello"
    assert seen == [otel.span("chat gpt-4o-mini").context.span_id]


def test_a_streaming_helper_under_the_sdks_instrumentation_is_counted_once(otel: Any, llm: StreamingLLM) -> None:
    """With OpenAI's GenAI instrumentation on, ``chat.completions.stream(...)`` from a provider call is one call
    of agent-otel's: the instrumentation's span starts inside it (before, as the block started, outside)."""
    with genai_apps.instrumented("openai", otel.tracer_provider, otel.meter_provider):
        text = read_sync(helper("openai", llm.url)(), "openai", "final")
    assert text == "Hello"
    [ours] = [span for span in otel.spans() if span.instrumentation_scope.name == semconv.SCOPE_NAME]
    sdk_spans = [span for span in otel.spans() if span.instrumentation_scope.name != semconv.SCOPE_NAME]
    assert sdk_spans and all(span.parent is not None and span.parent.span_id == ours.context.span_id
                             for span in sdk_spans)
    assert point(otel, semconv.CLIENT_INFERENCE_DURATION.name).count == 1


@pytest.mark.parametrize("run_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize(("sdk", "use"), helper_cases())
def test_a_streaming_helper_under_the_sdks_instrumentation_leaves_the_programs_context_as_it_was(
        otel: Any, llm: StreamingLLM, sdk: str, use: str, run_async: bool) -> None:
    """Anthropic's GenAI instrumentation ends its span, and detaches its context, inside the step that reads the
    stream's last event: the step ran in the call's context, and going back from it restored the instrumentation's
    context, its span ended. That span stayed current for the rest of the program: every later span its child, and
    the next call's span of the instrumentation never made (two calls counted as one)."""
    program = trace.get_current_span()
    with genai_apps.instrumented(sdk, otel.tracer_provider, otel.meter_provider):
        for _ in range(2):  # (a client of its own each time: an async one is bound to its event loop)
            manager = helper(sdk, llm.url, run_async=run_async)()
            text = asyncio.run(read_async(manager, sdk, use)) if run_async else read_sync(manager, sdk, use)
            assert text == "Hello"
            assert trace.get_current_span() is program
    ours = [span for span in otel.spans() if span.instrumentation_scope.name == semconv.SCOPE_NAME]
    theirs = [span for span in otel.spans() if span.instrumentation_scope.name != semconv.SCOPE_NAME]
    assert len(ours) == len(theirs) == 2
    assert sorted(span.parent.span_id for span in theirs if span.parent) == sorted(
        span.context.span_id for span in ours if span.context)
    assert all(span.parent is None for span in ours)
    assert point(otel, semconv.CLIENT_INFERENCE_DURATION.name).count == 2


@pytest.mark.parametrize("sdk", ["openai", "anthropic"])
def test_a_call_that_returned_its_stream_inside_its_result_is_not_taken_for_the_one_later_calls_run_in(
        otel: Any, llm: StreamingLLM, sdk: str) -> None:
    """boto3's ``converse_stream`` returns its stream in a dict, as a program's provider function may: the call ends
    as it returns, and the SDK's instrumentation, which keeps its span current until the stream is read to its end,
    then puts back the context it started in, the ended call's. Every later provider call in the thread took that
    call for one it ran inside and recorded nothing (the instrumentation's leak: with the SDK alone, the ended span
    stays current too): with Anthropic's, one call counted for three, and the failure not at all, and the span bridge
    took the SDK's own call made after them for a part of that ended call."""
    if sdk == "openai":
        client = openai.OpenAI(base_url=llm.url + "/v1", api_key="test", max_retries=0)
        request = lambda: client.chat.completions.create(  # noqa: E731
            model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True})
    else:
        sync_client = anthropic.Anthropic(base_url=llm.url, api_key="test", max_retries=0)
        request = lambda: sync_client.messages.create(  # noqa: E731
            model="claude-3-5-haiku", max_tokens=16, messages=MESSAGES, stream=True)

    @agent_otel.provider(sdk, model="gpt-4o-mini")
    def in_a_result() -> dict[str, Any]:
        return {"stream": request()}

    @agent_otel.provider(sdk, model="gpt-4o-mini")
    def failing() -> None:
        raise ConnectionError("refused")

    def program() -> None:
        for _ in range(3):
            assert len(list(in_a_result()["stream"])) == EXPECTED[sdk][3]
        with pytest.raises(ConnectionError):
            failing()
        assert len(list(request())) == EXPECTED[sdk][3]  # the SDK's call alone: the span bridge counts it

    with genai_apps.instrumented(sdk, otel.tracer_provider, otel.meter_provider):
        contextvars.copy_context().run(program)  # (the leaked context stays there, not in the tests after this one)
    ours = [span for span in otel.spans() if span.instrumentation_scope.name == semconv.SCOPE_NAME]
    assert len(ours) == 4
    outcomes: dict[object, int] = {}
    for recorded in otel.points(semconv.CLIENT_INFERENCE_DURATION.name):
        error_type = recorded.attributes.get(semconv.ERROR_TYPE)
        outcomes[error_type] = outcomes.get(error_type, 0) + recorded.count
    assert outcomes == {None: 4, "ConnectionError": 1}


@pytest.mark.parametrize(("ours", "reads"), [
    ("outside", "each as made"), ("outside", "both made, then read"), ("outside", "both made, read last first"),
    ("outside", "late"), ("outside", "made by one methodcaller, read last first"), ("outside", "in another thread"),
    ("outside", "under a span of the program's"), ("inside", "each as made")])
def test_a_generator_method_under_the_sdks_instrumentation_is_counted_once_wrapped_either_side_of_it(
        otel: Any, llm: StreamingLLM, ours: str, reads: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A config target on google-genai's ``Models.generate_content_stream`` (a generator method) beside its
    instrumentation, which starts its span without making it current and returns a stream object of its own. Ours
    around it (the target applied after the instrumentation, as under ``agent-otel run``) gets that stream, no
    generator, and its call begins as it is first read, when the instrumentation's code that started its span has
    returned: the two spans of one request were no twins, and the request counted twice (its tokens and cost too).
    Paired by the frame of the wrapper that made them, two streams made before either was read were paired
    crosswise (a freed frame's address is the next one's), and a stream first read after the twins' time window still
    counted twice ("late": the window made 0, where a program reads its stream later). Paired by the identity of the
    call's keyword arguments, two calls made by one ``operator.methodcaller`` (which passes its one dict each time)
    were paired crosswise; and a stream read where it was not made (another thread, another span current) was no
    twin. Ours inside it (the instrumentation turned on after) is the generator the instrumentation's stream steps,
    in its span."""
    plain = google_models.Models.generate_content_stream

    def decorate() -> None:
        google_models.Models.generate_content_stream = agent_otel.provider(  # type: ignore[method-assign]
            "gemini", operation="generate_content", model=agent_otel.path("args.model"))(
            google_models.Models.generate_content_stream)

    def read(stream: Any) -> None:
        assert "".join(chunk.text or "" for chunk in stream) == "Hello"

    if reads == "late":
        monkeypatch.setattr(bridge_processor, "_TWIN_WITHIN_NS", 0)
    try:
        if ours == "inside":
            decorate()
        client = genai.Client(api_key="test", http_options=genai_types.HttpOptions(base_url=llm.url,
                                                                                 api_version="v1beta"))

        def stream() -> Any:
            return client.models.generate_content_stream(model="gemini-2.5-flash", contents="hi")

        with genai_apps.instrumented("google-genai", otel.tracer_provider, otel.meter_provider):
            if ours == "outside":
                decorate()
            if reads in ("each as made", "late"):
                for _ in range(2):
                    read(stream())
            elif reads == "in another thread":
                with concurrent.futures.ThreadPoolExecutor(1) as pool:
                    for _ in range(2):
                        pool.submit(read, stream()).result()
            elif reads == "under a span of the program's":
                for _ in range(2):
                    made = stream()
                    with otel.tracer_provider.get_tracer("program").start_as_current_span("consume"):
                        read(made)
            else:
                if reads.startswith("made by one methodcaller"):
                    make = operator.methodcaller("generate_content_stream", model="gemini-2.5-flash", contents="hi")
                    first, second = make(client.models), make(client.models)
                else:
                    first, second = stream(), stream()
                for made in (first, second) if reads == "both made, then read" else (second, first):
                    read(made)
    finally:
        google_models.Models.generate_content_stream = plain  # type: ignore[method-assign]
    ours_spans = [span for span in otel.spans() if span.instrumentation_scope.name == semconv.SCOPE_NAME]
    theirs = [span for span in otel.spans() if "google_genai" in span.instrumentation_scope.name]
    assert (len(ours_spans), len(theirs)) == (2, 2)
    assert point(otel, semconv.CLIENT_INFERENCE_DURATION.name).count == 2
    tokens = {kind.value: p.sum for kind, _, histogram in semconv.PREVIOUS_TOKEN_SPLIT
              for p in otel.points(histogram.name)}
    assert tokens == {"input": 2 * GEMINI_INPUT_TOKENS, "output": 2 * GEMINI_OUTPUT_TOKENS}


@pytest.mark.parametrize(("stream", "instrumented"), [(None, False), (True, False), (None, True)],
                         ids=["detected", "stream_option", "under_botocores_instrumentation"])
def test_bedrocks_event_stream_is_timed_as_it_is_iterated_and_its_usage_read(
        otel: Any, llm: StreamingLLM, stream: bool | None, instrumented: bool) -> None:
    """boto3's ``converse_stream(...)["stream"]`` is botocore's ``EventStream``: iterable (its ``__iter__`` parses the
    events), with no ``__next__`` and no ``with``, so it was taken for a value: the call ended as it returned, with no
    tokens (ConverseStream's ``metadata.usage`` comes last) and no time to first chunk, ``stream=True`` too. Read in two
    passes (a loop that breaks, then another; or the first pass's iterator closed), the first pass's end ended the call
    closed early, before its usage came. Under botocore's instrumentation, whose wrapt proxy of it has ``__enter__``,
    the first version of this took it for a stream manager: its iteration was left untimed and the call never ended
    (nothing recorded)."""
    client = boto3.client("bedrock-runtime", endpoint_url=llm.url, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
    instrumentor = BotocoreInstrumentor()
    if instrumented:
        instrumentor.instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)

    @agent_otel.provider("aws.bedrock", model="anthropic.claude-3-haiku-20240307-v1:0", stream=stream)
    def converse() -> Any:
        return client.converse_stream(modelId="anthropic.claude-3-haiku-20240307-v1:0",
                                      messages=[{"role": "user", "content": [{"text": "hi"}]}])["stream"]

    try:
        events = converse()
        assert isinstance(events, botocore.eventstream.EventStream)
        assert not any(span.instrumentation_scope.name == semconv.SCOPE_NAME for span in otel.spans())
        assert [next(iter(event)) for event in events] == ["messageStart", "contentBlockDelta", "contentBlockStop",
                                                           "messageStop", "metadata"]
        read = 0
        for _ in converse():  # the stream object itself is dropped as its iteration begins
            read += 1
        assert read == 5
        events = converse()
        for event in events:  # read in two passes: botocore's iterator resumes the same events
            assert "messageStart" in event
            break
        assert [next(iter(event)) for event in events] == ["contentBlockDelta", "contentBlockStop", "messageStop",
                                                           "metadata"]
        events = converse()
        first_pass = iter(events)
        assert "messageStart" in next(first_pass)
        first_pass.close()  # that pass's iterator, not the stream: read on
        assert [next(iter(event)) for event in events] == ["contentBlockDelta", "contentBlockStop", "messageStop",
                                                           "metadata"]
        converse()  # dropped unread: a call closed early
        del events
    finally:
        if instrumented:
            instrumentor.uninstrument()
    spans = [span for span in otel.spans("chat anthropic.claude-3-haiku-20240307-v1:0")
             if span.instrumentation_scope.name == semconv.SCOPE_NAME]
    assert [semconv.STREAM_CLOSED_EARLY in span.attributes for span in spans] == [False, False, False, False, True]
    for span in spans[:4]:
        assert (span.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS],
                span.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS]) == (BEDROCK_INPUT_TOKENS, BEDROCK_OUTPUT_TOKENS)
    assert point(otel, semconv.CLIENT_TIME_TO_FIRST_CHUNK.name).count == 4
    assert point(otel, semconv.CLIENT_INFERENCE_DURATION.name).count == 5
    assert point(otel, semconv.CLIENT_OPERATION_COST.name).count == 4  # (Bedrock's model id, priced)


_SUSPENDED_AT_EXIT = """
import os, sys
import agent_otel
agent_otel.configure(prometheus_port=None)
from opentelemetry.instrumentation.google_genai import GoogleGenAiSdkInstrumentor
GoogleGenAiSdkInstrumentor().instrument()
from google import genai
from google.genai import models, types
if not os.environ.get("PLAIN"):  # a config target on the method, applied after the instrumentation (agent-otel run's)
    models.Models.generate_content_stream = agent_otel.provider(
        "gemini", operation="generate_content", model=agent_otel.path("args.model"))(
        models.Models.generate_content_stream)
client = genai.Client(api_key="test", http_options=types.HttpOptions(base_url=sys.argv[1], api_version="v1beta"))
def stream():
    return client.models.generate_content_stream(model="gemini-2.5-flash", contents="hi")
a, b = stream(), stream()
read = []
for x, y in zip(a, b):  # b is left suspended, never exhausted
    read += [x.text, y.text]
print(read)
"""


def test_a_stream_left_suspended_at_exit_ends_as_without_agent_otel(llm: StreamingLLM, tmp_path: Path) -> None:
    """A module's stream left suspended (``zip()`` stops at the first one's end) is collected as the interpreter
    ends. Ours, around the google-genai instrumentation's proxy of the program's generator, closed that proxy then:
    the instrumentation's close ran, its imports failed, and Python printed "Exception ignored in: <generator ...>
    ImportError: sys.meta_path is None" on the program's stderr. Unwrapped, nothing closes the proxy: the program's
    generator is collected on its own."""
    (tmp_path / "app.py").write_text(_SUSPENDED_AT_EXIT)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENT_OTEL_"))}
    env.update(OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none")
    runs = [subprocess.run([sys.executable, "app.py", llm.url], cwd=tmp_path, env={**env, **extra},
                           capture_output=True, text=True, timeout=60) for extra in ({}, {"PLAIN": "1"})]
    ours, plain = ((run.returncode, run.stdout, run.stderr) for run in runs)
    assert ours == plain == (0, "['Hel', 'Hel', 'lo', 'lo']\n", "")


@pytest.mark.parametrize("nested", ["no", "yes", "read inside"],
                         ids=["one_call", "a_call_in_a_call", "read_in_the_outer_call"])
def test_a_raw_streamed_response_gets_the_tokens_the_sdks_instrumentation_reads_after_the_call(
        otel: Any, llm: StreamingLLM, nested: str) -> None:
    """``with_raw_response.create(stream=True)`` returns before its body is read: the call ends then, with no usage of
    its own, and the instrumentation's span inside it reports the tokens when the program has read the stream, after
    the call ended. Those tokens and their cost were dropped (the call had recorded already), and not counted by the
    span bridge either (the span is the call's)."""
    client = openai.OpenAI(base_url=llm.url + "/v1", api_key="test", max_retries=0)

    @agent_otel.provider("openai", model="gpt-4o-mini")
    def create() -> Any:
        return client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True})

    @agent_otel.provider("openai", model="gpt-4o-mini")
    def helper() -> Any:  # a helper of the program's around the call: the same request, counted once
        return create()

    @agent_otel.provider("openai", model="gpt-4o-mini")
    def reading_helper() -> Any:  # one that reads the body itself, after the call inside it ended without usage
        return list(create().parse())

    with genai_apps.instrumented("openai", otel.tracer_provider, otel.meter_provider), \
            agent_otel.job("raw-stream", type="batch") as job:
        chunks = reading_helper() if nested == "read inside" else list(
            (helper() if nested == "yes" else create()).parse())
        assert chunks[-1].usage.prompt_tokens == OPENAI_USAGE["prompt_tokens"]  # the program's stream, as it was
        job_state = job.invocation.state  # type: ignore[union-attr]
    assert (point(otel, semconv.CLIENT_USAGE_INPUT_TOKENS.name).value,
            point(otel, semconv.CLIENT_USAGE_OUTPUT_TOKENS.name).value) == (OPENAI_USAGE["prompt_tokens"],
                                                                             OPENAI_USAGE["completion_tokens"])
    cost = point(otel, semconv.CLIENT_COST.name)
    assert cost.value > 0  # priced at the model that answered
    assert point(otel, semconv.CLIENT_INFERENCE_DURATION.name).count == 1  # one call
    assert (job_state.input_tokens, job_state.output_tokens) == (OPENAI_USAGE["prompt_tokens"],
                                                                  OPENAI_USAGE["completion_tokens"])
    # its cost came after all: the job counts the call as priced, no longer among the calls without usage
    rollups = job_state.rollup_attributes()
    assert semconv.JOB_ROLLUP_UNPRICED_CALLS not in rollups and rollups[semconv.JOB_ROLLUP_COST] == pytest.approx(
        cost.value)


def test_a_responses_streaming_helper_under_the_sdks_instrumentation_is_counted_once(
        otel: Any, llm: StreamingLLM) -> None:
    """The instrumentation hands back ``client.responses.stream(...)``'s manager in a proxy of its own, whose
    type is ``ResponseStreamManagerWrapper``: before, ours did not see a stream manager in it, ended at once
    with no tokens, and the request counted twice (ours, 0 s, and the instrumentation's span beside it)."""
    client = openai.OpenAI(base_url=llm.url + "/v1", api_key="test", max_retries=0)

    @agent_otel.provider("openai", model="gpt-4o-mini")
    def stream() -> Any:
        return client.responses.stream(model="gpt-4o-mini", input="hi")

    with genai_apps.instrumented("openai", otel.tracer_provider, otel.meter_provider), stream() as events:
        final = events.get_final_response()
    assert final.usage.input_tokens == RESPONSES_USAGE["input_tokens"]
    [ours] = [span for span in otel.spans() if span.instrumentation_scope.name == semconv.SCOPE_NAME]
    assert ours.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == RESPONSES_USAGE["input_tokens"]
    sdk_spans = [span for span in otel.spans() if span.instrumentation_scope.name != semconv.SCOPE_NAME]
    assert sdk_spans and all(span.parent is not None and span.parent.span_id == ours.context.span_id
                             for span in sdk_spans)
    assert point(otel, semconv.CLIENT_INFERENCE_DURATION.name).count == 1


def overloaded_helper(url: str, *, run_async: bool) -> Any:
    """An Anthropic stream manager whose stream fails after it started (an ``error`` event)."""
    client = (anthropic.AsyncAnthropic if run_async else anthropic.Anthropic)(base_url=url, api_key="test",
                                                                              max_retries=0)

    @agent_otel.provider("anthropic", model="gpt-4o-mini")
    def stream() -> Any:
        return client.messages.stream(model=OVERLOADED_MODEL, max_tokens=16, messages=MESSAGES)
    return stream


@pytest.mark.parametrize("run_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("use", ["text_stream", "final"])
def test_a_providers_error_read_by_the_sdks_own_iterators_is_the_calls_error(otel: Any, llm: StreamingLLM,
                                                                              use: str, run_async: bool) -> None:
    """``text_stream`` and ``get_final_message()`` read the stream without passing through ours, so the SDK's
    exception leaves the block without our seeing it: before, the call read "closed early", a success, and
    error rates missed it. (An exception after the response was complete is the program's own: that case is
    the ``events`` read of the tests above, which end as the stream ends.)"""
    manager = overloaded_helper(llm.url, run_async=run_async)()
    with pytest.raises(anthropic.APIStatusError) as raised:
        if run_async:
            asyncio.run(read_async(manager, "anthropic", use))
        else:
            read_sync(manager, "anthropic", use)
    span = otel.span("chat gpt-4o-mini")
    assert span.attributes[semconv.ERROR_TYPE] == type(raised.value).__name__
    assert semconv.STREAM_CLOSED_EARLY not in span.attributes
    assert span.status.status_code is trace.StatusCode.ERROR
    assert point(otel, semconv.CLIENT_INFERENCE_DURATION.name).attributes[semconv.ERROR_TYPE] == \
        type(raised.value).__name__


@pytest.mark.parametrize("run_async", [False, True], ids=["sync", "async"])
def test_a_helper_whose_program_keeps_only_its_text_stream_is_timed_until_its_block_is_left(
        otel: Any, llm: StreamingLLM, run_async: bool) -> None:
    """``texts = stack.enter_context(manager).text_stream``: the stream the manager handed out is dropped at
    once, while its block is still open. Before, dropping it ended the call then: closed early, no tokens."""
    manager = helper("anthropic", llm.url, run_async=run_async)()

    def read() -> str:
        with contextlib.ExitStack() as stack:
            texts = stack.enter_context(manager).text_stream
            gc.collect()
            return "".join(texts)

    async def read_async_texts() -> str:
        async with contextlib.AsyncExitStack() as stack:
            texts = (await stack.enter_async_context(manager)).text_stream
            gc.collect()
            return "".join([text async for text in texts])

    text = asyncio.run(read_async_texts()) if run_async else read()
    assert_helper_recorded(otel, "anthropic", "text_stream", text)


# the async SDKs' own warning for the request coroutine a dropped manager holds, as without agent-otel
@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning")
@pytest.mark.parametrize("sdk", ["openai", "anthropic"])
@pytest.mark.parametrize("run_async", [False, True], ids=["sync", "async"])
def test_a_stream_manager_dropped_without_its_block_is_no_call(otel: Any, llm: StreamingLLM, sdk: str,
                                                               run_async: bool) -> None:
    """A manager makes its request as its block starts: one never entered made none, yet it was recorded as a
    successful model call (closed early) when dropped."""
    manager = helper(sdk, llm.url, run_async=run_async)()
    del manager
    gc.collect()
    assert otel.points(semconv.CLIENT_INFERENCE_DURATION.name) == []
    assert [span for span in otel.spans() if span.instrumentation_scope.name == semconv.SCOPE_NAME] == []


@pytest.mark.parametrize("run_async", [False, True], ids=["sync", "async"])
def test_a_returned_sdk_stream_or_manager_claims_no_protocol_the_sdks_object_lacks(
        otel: Any, llm: StreamingLLM, run_async: bool) -> None:
    """wrapt's proxy has every protocol method (``__iter__``, ``__enter__``, ``__aenter__``, ``__len__``...):
    a sync ``openai.Stream`` looked like an async context manager, an ``AsyncStream`` like an iterable, and a
    program choosing ``async with`` or ``for`` by those checks failed."""
    def protocols(value: Any) -> dict[str, bool]:
        return {abc.__name__: isinstance(value, abc) for abc in (
            collections.abc.Iterable, collections.abc.AsyncIterable, collections.abc.Sized,
            collections.abc.Container, collections.abc.Reversible, contextlib.AbstractContextManager,
            contextlib.AbstractAsyncContextManager)}

    create = async_create("openai", llm.url) if run_async else sync_create("openai", llm.url)
    manager = helper("openai", llm.url, run_async=run_async)()
    stream = asyncio.run(create()) if run_async else create()
    assert protocols(stream) == protocols(stream.__wrapped__)
    assert protocols(manager) == protocols(manager.__wrapped__)
    names = ("__iter__", "__enter__", "__exit__", "__aenter__", "__aexit__", "__len__", "__contains__")
    for traced in (stream, manager):  # hasattr() too: a None in the class is "not available", and an attribute
        assert {name: hasattr(traced, name) for name in names} == {
            name: hasattr(traced.__wrapped__, name) for name in names}
    with pytest.raises(TypeError):
        iter(stream) if run_async else len(stream)
    if run_async:
        assert asyncio.run(read_async(manager, "openai", "final")) == "Hello"
    else:
        stream.close()
        assert read_sync(manager, "openai", "final") == "Hello"


@pytest.mark.parametrize("sdk", ["openai", "anthropic"])
def test_a_streamed_call_records_the_response_id_and_why_it_stopped(otel: Any, llm: StreamingLLM, sdk: str) -> None:
    """``gen_ai.response.id`` and ``gen_ai.response.finish_reasons`` (recommended by the conventions, set by the GenAI
    instrumentations) were missing from our spans: read off the chunks (OpenAI's choices, Anthropic's
    ``message_start`` and ``message_delta`` events)."""
    for _ in sync_create(sdk, llm.url)():
        pass
    attributes = otel.span("chat gpt-4o-mini").attributes
    assert (attributes[semconv.GEN_AI_RESPONSE_ID], attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == {
        "openai": ("chatcmpl-1", ("stop",)), "anthropic": ("msg_1", ("end_turn",))}[sdk]


@pytest.mark.parametrize("raw", [False, True], ids=["parsed", "with_raw_response"])
def test_a_call_records_the_response_id_and_why_it_stopped(raw: bool) -> None:
    from agent_otel.testing import capture_telemetry
    from tests.support.fake_llm import FakeLLM

    with FakeLLM() as fake, capture_telemetry() as otel:
        client = openai.OpenAI(base_url=fake.url + "/agent/v1", api_key="test", max_retries=0)  # (ids, reasons)

        @agent_otel.provider("openai", model="gpt-4o")
        def create() -> Any:
            completions = client.chat.completions.with_raw_response if raw else client.chat.completions
            return completions.create(model="gpt-4o", messages=MESSAGES)

        result = create()
        response = result.parse() if raw else result
        attributes = otel.span("chat gpt-4o").attributes
        assert attributes[semconv.GEN_AI_RESPONSE_ID] == response.id
        assert attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] == (response.choices[0].finish_reason,) == ("stop",)


def test_a_raw_response_is_read_for_its_usage_and_model() -> None:
    """``with_raw_response`` (LangChain's ``ChatOpenAI`` calls the SDK so) returns the HTTP response, whose JSON
    body was read already: its tokens, response model and cost were missing, silently (not even counted as
    unpriced)."""
    from agent_otel.testing import capture_telemetry
    from tests.support.fake_llm import RESPONSE_MODEL, USAGE, FakeLLM

    with FakeLLM() as fake, capture_telemetry() as otel:
        client = openai.OpenAI(base_url=fake.url + "/stable/v1", api_key="test", max_retries=0)

        @agent_otel.provider("openai", model="gpt-4o")
        def create() -> Any:
            return client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)

        raw = create()
        assert raw.parse().usage.prompt_tokens == USAGE["prompt_tokens"]  # the program's object, as it was
        attributes = otel.span("chat gpt-4o").attributes
        assert (attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS], attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS]) == (
            USAGE["prompt_tokens"], USAGE["completion_tokens"])
        assert attributes[semconv.GEN_AI_RESPONSE_MODEL] == RESPONSE_MODEL


@pytest.mark.parametrize("run_async", [False, True], ids=["sync", "async"])
def test_a_routers_call_returning_a_nested_calls_streaming_helper_leaves_the_programs_context(
        otel: Any, llm: StreamingLLM, run_async: bool) -> None:
    """A router's provider call returns a nested provider call's ``messages.stream()``: the instrumentation's span is a
    grandchild of the router's call, and ended in the step the router's stream took; the router's step went back to
    its context, that ended span current for the rest of the program (one instrumentation span made of three)."""
    program = trace.get_current_span()
    with genai_apps.instrumented("anthropic", otel.tracer_provider, otel.meter_provider):
        for _ in range(3):
            inner = helper("anthropic", llm.url, run_async=run_async)
            route = agent_otel.provider("router", model="auto")(lambda inner=inner: inner())
            text = asyncio.run(read_async(route(), "anthropic", "events")) if run_async else read_sync(
                route(), "anthropic", "events")
            assert text == "Hello"
            assert trace.get_current_span() is program
    theirs = [span for span in otel.spans() if span.instrumentation_scope.name != semconv.SCOPE_NAME]
    assert len(theirs) == 3


def test_a_stream_whose_step_ends_the_programs_span_gives_the_program_its_context_back(otel: Any) -> None:
    """The program's own iterator ends the program's request span as it runs out (another task's code can too): that
    span is the program's, and its context comes back after the step, as without agent-otel. The step that left the
    call's context current for an ended span started inside the call (the instrumentation's) left it so for this one
    too: the program then ran inside the ended call, and its next call was taken for a nested one, not counted."""
    class Chunks:
        def __init__(self, span: Any) -> None:
            self.span, self.read = span, 0

        def __iter__(self) -> Chunks:
            return self

        def __next__(self) -> dict[str, int]:
            self.read += 1
            if self.read > 2:
                self.span.end()
                raise StopIteration
            return {"n": self.read}

    @agent_otel.provider("openai", model="gpt-4o")
    def stream(span: Any) -> Chunks:
        return Chunks(span)

    @agent_otel.provider("openai", model="gpt-4o")
    def complete() -> dict[str, Any]:
        return {"usage": {"prompt_tokens": 10, "completion_tokens": 5}}

    request = otel.tracer_provider.get_tracer("app").start_span("request")
    with trace.use_span(request):
        for _ in stream(request):
            pass
        assert trace.get_current_span() is request
        complete()
    assert point(otel, semconv.CLIENT_INFERENCE_DURATION.name).count == 2
    assert [span.parent.span_id for span in otel.spans("chat gpt-4o") if span.parent] == [request.context.span_id] * 2


@pytest.mark.parametrize("returns", ["the_last_response", "its_text", "the_last_response_its_input_named",
                                     "the_last_response_its_input_named_by_a_path_that_finds_none"])
def test_a_provider_call_making_several_requests_counts_each_requests_tokens_whatever_it_returns(returns: str) -> None:
    """A provider function that asks again (a re-ask after a bad answer, a tool loop), under the SDK's instrumentation,
    whose span of each request carries its tokens: returning the last response counted that one request's tokens (half
    the tokens and cost), returning its text counted both. The result showing the usage of one of the requests inside
    is the last of them: the call's tokens are all of theirs."""
    from agent_otel.testing import capture_telemetry
    from tests.support.fake_llm import USAGE, FakeLLM

    with FakeLLM() as fake, capture_telemetry() as otel, \
            genai_apps.instrumented("openai", otel.tracer_provider, otel.meter_provider):
        client = openai.OpenAI(base_url=fake.url + "/stable/v1", api_key="test", max_retries=0)

        named = returns == "the_last_response_its_input_named"  # an option names the tokens: they are the call's
        missed = returns.endswith("finds_none")  # one that finds nothing names none: the requests' tokens, summed
        field = "input_tokens" if missed else "prompt_tokens"  # (an OpenAI result has no usage.input_tokens)

        @agent_otel.provider("openai", model="gpt-4o",
                              input_tokens=agent_otel.path(f"result.usage.{field}") if named or missed else None)
        def ask_twice() -> Any:
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
            response = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
            return response if returns != "its_text" else response.choices[0].message.content

        with agent_otel.job(type="re-ask") as job:
            ask_twice()
            state = job.invocation.state  # type: ignore[union-attr]
        [ours] = [span for span in otel.spans() if span.instrumentation_scope.name == semconv.SCOPE_NAME
                  and span.name == "chat gpt-4o"]
        tokens = (USAGE["prompt_tokens"], USAGE["completion_tokens"]) if named else (
            2 * USAGE["prompt_tokens"], 2 * USAGE["completion_tokens"])
        assert (ours.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS],
                ours.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS]) == tokens
        assert (point(otel, semconv.CLIENT_USAGE_INPUT_TOKENS.name).value,
                point(otel, semconv.CLIENT_USAGE_OUTPUT_TOKENS.name).value) == tokens
        assert point(otel, semconv.CLIENT_INFERENCE_DURATION.name).count == 1  # one call of ours
        assert (state.input_tokens, state.output_tokens) == tokens


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_a_configured_create_inside_with_streaming_response_is_timed_until_the_block_closes_it(
        asynchronous: bool) -> None:
    """The README's ``[[provider]]`` on ``Completions.create`` (and ``AsyncCompletions.create``): inside
    ``with_streaming_response``'s block the SDK calls ``create``, which returns the response with its body unread;
    the call ended then, without tokens or the body's time. It is timed until the block closes the response, its
    usage read from the body the block read; a block that read none marks it closed early."""
    import tomllib

    from agent_otel._zerocode.config import parse_config
    from agent_otel._zerocode.patching import instrument, uninstrument
    from agent_otel.testing import capture_telemetry
    from tests.support.fake_llm import RESPONSE_MODEL, USAGE, FakeLLM

    config = parse_config(tomllib.loads(
        '[[provider]]\ntarget = ["openai.resources.chat.completions:Completions.create", '
        '"openai.resources.chat.completions:AsyncCompletions.create"]\nprovider = "openai"\nmodel = "gpt-4o"\n'),
        "agent-otel.toml")
    with FakeLLM() as fake, capture_telemetry() as otel:
        client_class = openai.AsyncOpenAI if asynchronous else openai.OpenAI
        completions = client_class(base_url=fake.url + "/stable/v1", api_key="test", max_retries=0).chat.completions

        async def read(parse: bool) -> tuple[Any, int]:
            if asynchronous:
                async with completions.with_streaming_response.create(model="gpt-4o", messages=MESSAGES) as response:
                    return (await response.parse() if parse else None), time.time_ns()
            with completions.with_streaming_response.create(model="gpt-4o", messages=MESSAGES) as response:
                return (response.parse() if parse else None), time.time_ns()

        async def both() -> tuple[Any, int]:  # in one loop: the async client's connections are bound to it
            parsed = await read(parse=True)
            await read(parse=False)
            return parsed

        instrument(config)
        try:
            parsed, read_at_ns = asyncio.run(both())
        finally:
            uninstrument()
        assert parsed.usage.prompt_tokens == USAGE["prompt_tokens"]  # the program's object, as it was
        read_through, left_unread = otel.spans("chat gpt-4o")
        assert (read_through.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS],
                read_through.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS]) == (
            USAGE["prompt_tokens"], USAGE["completion_tokens"])
        assert read_through.attributes[semconv.GEN_AI_RESPONSE_MODEL] == RESPONSE_MODEL
        assert not read_through.attributes.get(semconv.STREAM_CLOSED_EARLY)
        assert read_through.end_time >= read_at_ns  # until the block closed it, after its body was read
        assert left_unread.attributes.get(semconv.STREAM_CLOSED_EARLY) is True
        assert semconv.GEN_AI_USAGE_INPUT_TOKENS not in left_unread.attributes


def test_the_readmes_retry_target_counts_the_sdks_own_retries_on_the_configured_call() -> None:
    """An SDK's own retries (``max_retries``) happen inside its call, where no wrapper of the program's sees them: the
    README's ``[[retry]]`` on the SDK's sleep before each retry counts them on the call they run in, as retries of its
    provider and model. Without it the call's span read ``retry_count = 0`` for a request the SDK sent twice."""
    import tomllib

    from agent_otel._zerocode.config import parse_config
    from agent_otel._zerocode.patching import instrument, uninstrument
    from agent_otel.testing import capture_telemetry
    from tests.support.fake_llm import FakeLLM

    config = parse_config(tomllib.loads(
        '[[provider]]\ntarget = "openai.resources.chat.completions:Completions.create"\nprovider = "openai"\n'
        'model = { path = "args.model" }\n\n'
        '[[retry]]\ntarget = "openai._base_client:SyncAPIClient._sleep_for_retry"\n'),
        "agent-otel.toml")
    with FakeLLM() as fake, capture_telemetry() as otel:
        instrument(config)
        try:
            client = openai.OpenAI(base_url=f"{fake.url}/flaky/v1", api_key="test", max_retries=1)
            with pytest.raises(openai.InternalServerError):  # 500, a retry, 500 again
                client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        finally:
            uninstrument()
        span = otel.span("chat gpt-4o")
        assert span.attributes[semconv.AGENT_OTEL_RETRY_COUNT] == 1
        retries = point(otel, semconv.CLIENT_RETRIES.name)
        assert retries.value == 1
        assert (retries.attributes[semconv.GEN_AI_PROVIDER_NAME], retries.attributes[semconv.GEN_AI_REQUEST_MODEL]) == (
            "openai", "gpt-4o")
        assert span.attributes[semconv.ERROR_TYPE] == "InternalServerError"


@pytest.mark.parametrize("cut", ["truncated", "truncated-chunked"])
def test_a_configured_create_whose_raw_body_was_cut_short_or_let_go_unclosed_is_recorded_as_it_was_read(
        cut: str) -> None:
    """A body the server cut short, with its length or chunked, is no body read: httpx says a body is consumed as soon
    as its reading starts, and closes a response its read failed on, and the call read through. A response read
    whole and let go without ``close()`` (its manager entered by hand)
    returned: it was never recorded, its span never ended."""
    import tomllib

    from agent_otel._zerocode.config import parse_config
    from agent_otel._zerocode.patching import instrument, uninstrument
    from agent_otel.testing import capture_telemetry
    from tests.support.fake_llm import USAGE, FakeLLM

    config = parse_config(tomllib.loads(
        '[[provider]]\ntarget = "openai.resources.chat.completions:Completions.create"\nprovider = "openai"\n'
        'model = "gpt-4o"\n'), "agent-otel.toml")
    with FakeLLM() as fake, capture_telemetry() as otel:
        def completions(route: str) -> Any:
            return openai.OpenAI(base_url=f"{fake.url}/{route}/v1", api_key="test", max_retries=0).chat.completions

        instrument(config)
        try:
            manager = completions(cut).with_streaming_response.create(model="gpt-4o", messages=MESSAGES)
            with manager as response, pytest.raises(httpx2.RemoteProtocolError):
                response.parse()
            manager = completions("stable").with_streaming_response.create(model="gpt-4o", messages=MESSAGES)
            assert manager.__enter__().parse().usage.prompt_tokens == USAGE["prompt_tokens"]
            del manager
            gc.collect()
        finally:
            uninstrument()
        cut_short, let_go = otel.spans("chat gpt-4o")
        assert cut_short.attributes.get(semconv.STREAM_CLOSED_EARLY) is True
        assert let_go.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == USAGE["prompt_tokens"]
        assert not let_go.attributes.get(semconv.STREAM_CLOSED_EARLY)


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_a_streaming_response_is_one_call_timed_until_its_block_is_left(asynchronous: bool) -> None:
    """``with_streaming_response`` returns a context manager that makes the request as its block is entered: the
    call ended when the manager was returned (no time, no tokens), and a request that failed as the block was
    entered was recorded as a success."""
    from agent_otel.testing import capture_telemetry
    from tests.support.fake_llm import RESPONSE_MODEL, USAGE, FakeLLM

    with FakeLLM() as fake, capture_telemetry() as otel:
        def streaming(route: str) -> Any:
            client_class = openai.AsyncOpenAI if asynchronous else openai.OpenAI
            client = client_class(base_url=f"{fake.url}/{route}/v1", api_key="test", max_retries=0)
            return client.chat.completions.with_streaming_response

        @agent_otel.provider("openai", model="gpt-4o")
        def create(route: str) -> Any:
            return streaming(route).create(model="gpt-4o", messages=MESSAGES)

        async def read(route: str) -> tuple[Any, int, int]:
            def inside() -> tuple[int, int]:  # the block's current span, and a time after its response was read
                return trace.get_current_span().get_span_context().span_id, time.time_ns()

            if asynchronous:
                async with create(route) as response:
                    parsed = await response.parse()
                    return parsed, *inside()
            with create(route) as response:
                return response.parse(), *inside()

        parsed, span_id_in_block, read_at_ns = asyncio.run(read("stable"))
        assert parsed.usage.prompt_tokens == USAGE["prompt_tokens"]  # the program's object, as it was
        assert span_id_in_block != otel.span("chat gpt-4o").context.span_id  # the block is the program's context
        span = otel.span("chat gpt-4o")
        attributes = span.attributes
        assert (attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS], attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS]) == (
            USAGE["prompt_tokens"], USAGE["completion_tokens"])
        assert attributes[semconv.GEN_AI_RESPONSE_MODEL] == RESPONSE_MODEL
        assert semconv.ERROR_TYPE not in attributes and not attributes.get(semconv.STREAM_CLOSED_EARLY)
        assert span.end_time >= read_at_ns  # timed until the block was left, not until the manager was returned

        @agent_otel.provider("openai", model="gpt-4o")
        def create_stream() -> Any:
            return streaming("stable").create(model="gpt-4o", messages=MESSAGES, stream=True)

        async def read_lines(to_the_end: bool) -> list[str]:
            if asynchronous:
                async with create_stream() as response:
                    return [line async for line in response.iter_lines()] if to_the_end else []
            with create_stream() as response:
                return list(response.iter_lines()) if to_the_end else []

        assert any("[DONE]" in line for line in asyncio.run(read_lines(to_the_end=True)))
        assert asyncio.run(read_lines(to_the_end=False)) == []
        read_through, left_unread = [s.attributes for s in otel.spans("chat gpt-4o")][1:]
        assert not read_through.get(semconv.STREAM_CLOSED_EARLY) and semconv.ERROR_TYPE not in read_through
        assert left_unread.get(semconv.STREAM_CLOSED_EARLY) is True  # its body was never read

        with pytest.raises(openai.InternalServerError) as raised:
            asyncio.run(read("flaky"))
        failed = [s for s in otel.spans() if s.name == "chat gpt-4o"][-1]
        assert failed.attributes[semconv.ERROR_TYPE] == type(raised.value).__qualname__
        points = otel.points(semconv.CLIENT_INFERENCE_DURATION.name)
        outcomes = {point.attributes.get(semconv.ERROR_TYPE) for point in points}
        assert outcomes == {None, type(raised.value).__qualname__}


class LlamaIndexChatResponse(pydantic.BaseModel):
    """The fields of LlamaIndex's ``ChatResponse`` (``llama_index.core.base.llms.types``), a test double: LlamaIndex's
    OpenAI client (``llama-index-llms-openai``) needs ``openai<3``, and this suite pins openai 3.x. Its ``raw`` holds
    the model client's response, or in a stream each chunk; the probe that found this ran the real one."""

    message: dict[str, str]
    delta: str | None = None
    raw: Any = None
    additional_kwargs: dict[str, Any] = {}


@pytest.mark.parametrize("streamed", [True, False], ids=["astream_chat", "achat"])
def test_a_llamaindex_response_is_read_through_the_model_clients_response_it_carries(otel: Any, streamed: bool) -> None:
    """A ``[[provider]]`` on LlamaIndex's ``OpenAI.astream_chat`` (FunctionAgent's default) recorded no tokens: its
    chunks carry the OpenAI chunk as ``raw``, and no extractor reaches a stream's chunks. A job of 606 tokens rolled up
    0. ``achat``'s response needed ``result.raw.usage.*`` extractors for the same reason."""
    from tests.support.fake_llm import RESPONSE_MODEL, STREAM_USAGE, USAGE, FakeLLM

    async def main(url: str) -> list[LlamaIndexChatResponse]:
        client = openai.AsyncOpenAI(base_url=url + "/stable/v1", api_key="test", max_retries=0)

        @agent_otel.provider("openai", model="gpt-4o-mini")
        async def astream_chat() -> collections.abc.AsyncIterator[LlamaIndexChatResponse]:
            text = ""
            async for chunk in await client.chat.completions.create(
                    model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}):
                delta = (chunk.choices[0].delta.content or "") if chunk.choices else ""
                text += delta
                yield LlamaIndexChatResponse(message={"role": "assistant", "content": text}, delta=delta, raw=chunk)

        @agent_otel.provider("openai", model="gpt-4o-mini")
        async def achat() -> LlamaIndexChatResponse:
            response = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            return LlamaIndexChatResponse(message={"role": "assistant", "content": response.choices[0].message.content
                                                   or ""}, raw=response)

        if streamed:
            return [chunk async for chunk in astream_chat()]
        return [await achat()]

    with FakeLLM() as fake:
        responses = asyncio.run(main(fake.url))
    assert responses[-1].raw is not None
    usage = STREAM_USAGE if streamed else USAGE
    span = otel.span("chat gpt-4o-mini")
    assert (span.attributes.get(semconv.GEN_AI_USAGE_INPUT_TOKENS), span.attributes.get(
        semconv.GEN_AI_USAGE_OUTPUT_TOKENS)) == (usage["prompt_tokens"], usage["completion_tokens"])
    assert span.attributes[semconv.GEN_AI_RESPONSE_MODEL] == RESPONSE_MODEL


class SemanticKernelMessage(pydantic.BaseModel):
    """The fields of Semantic Kernel's ``ChatMessageContent`` and ``StreamingChatMessageContent`` that carry the answer,
    a test double: ``semantic-kernel`` would upgrade pydantic and mcp beside this suite's pins (``pip install
    --dry-run``). Its ``metadata`` holds the response's usage (Semantic Kernel's own ``CompletionUsage``, the same for
    every choice), its ``inner_content`` the model client's response or chunk, its ``ai_model_id`` the model asked for.
    The probe that found this ran the real one (1.45.0)."""

    model_config = pydantic.ConfigDict(arbitrary_types_allowed=True)
    content: str
    ai_model_id: str
    choice_index: int = 0
    metadata: dict[str, Any] = {}
    inner_content: Any = None


class SemanticKernelUsage(pydantic.BaseModel):
    prompt_tokens: int
    completion_tokens: int


@pytest.mark.parametrize("streamed", [True, False], ids=["streaming", "whole"])
def test_a_semantic_kernel_answer_a_list_of_choices_is_read_for_its_usage_and_model(otel: Any, streamed: bool) -> None:
    """Semantic Kernel's ``get_streaming_chat_message_contents`` yields, per chunk, a list of the chunk's choices (the
    usage, in the last, duplicated to each); ``get_chat_message_contents`` returns a list too. A ``[[provider]]`` or
    decorator on either recorded no tokens: the list was not looked into. The response model was not read either: the
    messages' own ``ai_model_id`` is the model asked for, the answering one is in the response they carry."""
    from tests.support.fake_llm import RESPONSE_MODEL, STREAM_USAGE, USAGE, FakeLLM

    def message(response: Any, choices: int, usage: Any, text: str) -> list[SemanticKernelMessage]:
        metadata = {"id": response.id, "usage": usage}  # one dict's values in every choice, as Semantic Kernel does
        return [SemanticKernelMessage(content=text, ai_model_id="gpt-4o-mini", choice_index=index, metadata=metadata,
                                      inner_content=response) for index in range(choices)]

    def sk_usage(response: Any) -> SemanticKernelUsage | None:
        return None if response.usage is None else SemanticKernelUsage(
            prompt_tokens=response.usage.prompt_tokens, completion_tokens=response.usage.completion_tokens)

    async def main(url: str) -> list[list[SemanticKernelMessage]]:
        client = openai.AsyncOpenAI(base_url=url + "/stable/v1", api_key="test", max_retries=0)

        @agent_otel.provider("openai", model="gpt-4o-mini")
        async def get_streaming_chat_message_contents() -> collections.abc.AsyncIterator[list[SemanticKernelMessage]]:
            async for chunk in await client.chat.completions.create(
                    model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}):
                if chunk.choices:
                    yield message(chunk, len(chunk.choices), None, chunk.choices[0].delta.content or "")
                else:  # the usage chunk: a message per choice asked for, each with the usage
                    yield message(chunk, 2, sk_usage(chunk), "")

        @agent_otel.provider("openai", model="gpt-4o-mini")
        async def get_chat_message_contents() -> list[SemanticKernelMessage]:
            response = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, n=2)
            return message(response, 2, sk_usage(response), response.choices[0].message.content or "")

        if streamed:
            return [chunk async for chunk in get_streaming_chat_message_contents()]
        return [await get_chat_message_contents()]

    with FakeLLM() as fake:
        answers = asyncio.run(main(fake.url))
    assert answers[-1][0].metadata["usage"] is not None
    usage = STREAM_USAGE if streamed else USAGE
    span = otel.span("chat gpt-4o-mini")
    assert (span.attributes.get(semconv.GEN_AI_USAGE_INPUT_TOKENS), span.attributes.get(
        semconv.GEN_AI_USAGE_OUTPUT_TOKENS)) == (usage["prompt_tokens"], usage["completion_tokens"])  # once, not twice
    assert span.attributes[semconv.GEN_AI_RESPONSE_MODEL] == RESPONSE_MODEL


def _completion(model: str, input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {"id": f"chatcmpl-{input_tokens}", "model": model, "choices": [{"index": 0, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": input_tokens, "completion_tokens": output_tokens}}


class Car(pydantic.BaseModel):
    """A program's structured output, whose fields read like a response's (``model``)."""

    make: str
    model: str


def test_a_list_or_tuple_answer_is_read_for_the_one_item_that_shows_usage(otel: Any) -> None:
    """instructor's ``create_with_completion`` returns (the program's object, the completion): its first item was read
    as the response, its ``model`` field the response model, and the completion's tokens were missed. A batch of
    responses (LangChain's ``.batch()``) was read for its first one's tokens and cost, a plausible undercount: items
    showing different usage are read for none (the call then counts as unpriced, as any call without usage)."""

    @agent_otel.provider("openai", model="gpt-4o")
    def create_with_completion() -> tuple[Car, dict[str, Any]]:
        return Car(make="Toyota", model="Corolla"), _completion("gpt-4o-2024-08-06", 120, 30)

    @agent_otel.provider("openai", model="gpt-4o-mini")
    def batch() -> list[dict[str, Any]]:
        return [_completion("gpt-4o-mini", 100, 10), _completion("gpt-4o-mini", 200, 20)]

    create_with_completion()
    batch()
    paired, batched = otel.span("chat gpt-4o").attributes, otel.span("chat gpt-4o-mini").attributes
    assert (paired[semconv.GEN_AI_RESPONSE_MODEL], paired[semconv.GEN_AI_USAGE_INPUT_TOKENS],
            paired[semconv.GEN_AI_USAGE_OUTPUT_TOKENS]) == ("gpt-4o-2024-08-06", 120, 30)
    assert not any(key.startswith(("gen_ai.usage", "gen_ai.response")) for key in batched), dict(batched)


class Meter(pydantic.BaseModel):
    prompt_tokens: int
    completion_tokens: int


class Reading(pydantic.BaseModel):
    """A program's structured output with a field that reads like a response's usage."""

    usage: Meter


def _parsed(output: pydantic.BaseModel, completion: dict[str, Any], total: tuple[int, int] | None) -> Any:
    """``output`` as instructor 1.17 returns it (its ``v2/core/retry.py``): the response it was parsed from as
    ``_raw_response``, the tokens of every attempt as ``_total_usage``. Built here: instructor pins ``openai<3.4``
    against the suite's 3.57."""
    output._raw_response = openai.types.chat.ChatCompletion.model_validate(  # type: ignore[attr-defined]
        {**completion, "object": "chat.completion", "created": 0,
         "usage": {**completion["usage"], "total_tokens": sum(completion["usage"].values())},
         "choices": [{**choice, "message": {"role": "assistant", "content": None}}
                     for choice in completion["choices"]]})
    if total is not None:
        output._total_usage = openai.types.CompletionUsage(  # type: ignore[attr-defined]
            prompt_tokens=total[0], completion_tokens=total[1], total_tokens=sum(total))
    return output


def test_a_structured_output_is_read_for_the_response_it_was_parsed_from(otel: Any) -> None:
    """instructor's ``create(response_model=...)`` returns the program's object: its ``model`` field (a car's) was
    recorded as the response model, a label of every series (one per car), and a ``usage`` field of the program's data
    as the call's tokens, the response's dropped (probe p51c). The response it was parsed from answers for it, and the
    tokens of all its attempts (a re-ask's too) are the call's."""

    @agent_otel.provider("openai", model="gpt-4o")
    def extract_car() -> Car:
        return _parsed(Car(make="Toyota", model="Corolla"), _completion("gpt-4o-2024-08-06", 20, 5), (30, 8))

    @agent_otel.provider("openai", model="gpt-4o-mini")
    def extract_reading() -> Reading:
        return _parsed(Reading(usage=Meter(prompt_tokens=7, completion_tokens=7)),
                       _completion("gpt-4o-mini-2024-07-18", 20, 5), None)

    @agent_otel.provider("openai", model="o1")
    def create_with_completion() -> tuple[Car, Any]:
        car = _parsed(Car(make="Toyota", model="Yaris"), _completion("o1-2024-12-17", 12, 4), (40, 9))
        return car, car._raw_response

    assert extract_car().model == "Corolla" and create_with_completion()[0].model == "Yaris"
    extract_reading()
    read = {name: (otel.span(f"chat {name}").attributes[semconv.GEN_AI_RESPONSE_MODEL],
                   otel.span(f"chat {name}").attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS],
                   otel.span(f"chat {name}").attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS])
            for name in ("gpt-4o", "gpt-4o-mini", "o1")}
    assert read == {"gpt-4o": ("gpt-4o-2024-08-06", 30, 8), "gpt-4o-mini": ("gpt-4o-mini-2024-07-18", 20, 5),
                    "o1": ("o1-2024-12-17", 40, 9)}
    assert {p.attributes[semconv.GEN_AI_RESPONSE_MODEL] for p in points(otel, semconv.CLIENT_INFERENCE_DURATION.name)
            } == {"gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18", "o1-2024-12-17"}


def test_a_router_returning_its_inner_calls_list_answer_takes_its_model(otel: Any) -> None:
    """A router's answer that is the list a call inside it answered (Semantic Kernel's choices): the router took no
    model from it, where it takes the inner call's model from an answer that is no list."""
    usage = SemanticKernelUsage(prompt_tokens=10, completion_tokens=5)

    @agent_otel.provider("openai", model="gpt-4o")
    def inner() -> list[SemanticKernelMessage]:
        response = _completion("gpt-4o-2024-08-06", 10, 5)
        return [SemanticKernelMessage(content="hi", ai_model_id="gpt-4o", metadata={"usage": usage},
                                      inner_content=response)]

    @agent_otel.provider("router", model="auto")
    def route() -> list[SemanticKernelMessage]:
        return inner()

    route()
    assert otel.span("chat auto").attributes[semconv.GEN_AI_RESPONSE_MODEL] == "gpt-4o-2024-08-06"
    assert otel.span("chat gpt-4o").attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 10


def test_responses_carrying_each_other_are_read_one_level_deep(otel: Any) -> None:
    """An answer carrying a response (``raw``) that carries the answer back (``inner_content``) recursed until the
    stack's limit: the error was counted, and the call's duration point was lost with its record."""

    class Carrier:
        def __init__(self) -> None:
            self.raw: object = None
            self.inner_content: object = None

    answer, carried = Carrier(), Carrier()
    answer.raw, carried.inner_content = carried, answer

    @agent_otel.provider("openai", model="cyclic")
    def ask() -> Carrier:
        return answer

    assert ask() is answer
    assert len(otel.points(semconv.CLIENT_INFERENCE_DURATION.name)) == 1
    assert otel.points(semconv.INSTRUMENTATION_ERRORS.name) == []


class ProgramsAnswer(pydantic.BaseModel):
    """A program's own response type that keeps its HTTP body's metadata as ``raw``: no model client's response."""

    id: str = "resp-1"
    model: str = "gpt-4o-2024-08-06"
    choices: list[dict[str, Any]] = [{"index": 0, "finish_reason": "stop"}]
    raw: Any = None


@pytest.mark.parametrize("raw", [{"status": 200}, bytearray(b"{}"),
                                 {"usage": {"prompt_tokens": 9, "completion_tokens": 4}}],
                         ids=["metadata", "bytes", "usage only"])
def test_a_result_holding_a_raw_of_another_kind_keeps_its_own_model_id_and_finish_reasons(otel: Any, raw: Any) -> None:
    """The review of the change above: a result that shows its own model, id and finish reasons and holds any ``raw``
    lost all three (``raw`` was read in its place), and one whose ``raw`` held only the usage was priced at the request
    model's price instead of the response model's."""

    @agent_otel.provider("openai", model="gpt-4o-mini")
    def call() -> ProgramsAnswer:
        return ProgramsAnswer(raw=raw)

    call()
    attributes = otel.span("chat gpt-4o-mini").attributes
    assert attributes[semconv.GEN_AI_RESPONSE_MODEL] == "gpt-4o-2024-08-06"
    assert attributes[semconv.GEN_AI_RESPONSE_ID] == "resp-1"
    assert attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    usage_only = isinstance(raw, dict) and "usage" in raw
    assert attributes.get(semconv.GEN_AI_USAGE_INPUT_TOKENS) == (9 if usage_only else None)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed without usage"])
def test_a_call_whose_result_names_no_model_takes_the_one_that_answered_the_request_inside(
        otel: Any, stream: bool) -> None:
    """A ``@provider`` that returns only the text takes the response model of the requests inside it (the SDK's
    instrumentation's spans), as the README says; a stream that asked for no usage (instructor's ``create_partial``)
    reported none, and the model was left out with it (instructor probe)."""
    from tests.support.fake_llm import RESPONSE_MODEL, FakeLLM

    with FakeLLM() as fake, genai_apps.instrumented("openai", otel.tracer_provider, otel.meter_provider):
        client = openai.OpenAI(base_url=fake.url + "/stable/v1", api_key="test", max_retries=0)

        @agent_otel.provider("openai", model="gpt-4o-mini")
        def ask() -> str:
            if not stream:
                return client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES).choices[0].message.content
            return "".join(chunk.choices[0].delta.content or "" for chunk in client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": False})
                if chunk.choices)

        assert ask()
    ours = [span for span in otel.spans() if span.instrumentation_scope.name == "agent_otel"]
    assert [span.attributes.get(semconv.GEN_AI_RESPONSE_MODEL) for span in ours] == [RESPONSE_MODEL]


@pytest.mark.parametrize(("requests", "result", "expected"), [
    ([("m-A", None), ("m-B", None)], "text", None),
    ([("m-A", None), ("m-A", None)], "text", "m-A"),
    ([("m-A", (10, 2)), ("m-B", None)], "text", None),
    ([("m-A", None), ("m-B", (10, 2))], "text", None),
    ([("m-A", None)], {"usage": {"prompt_tokens": 5, "completion_tokens": 1}}, None),
], ids=["two models, no usage", "one model, no usage", "usage, then none", "none, then usage", "result's own usage"])
def test_the_model_answering_requests_inside_is_the_calls_only_when_they_agree(
        otel: Any, requests: list[tuple[str, tuple[int, int] | None]], result: Any, expected: str | None) -> None:
    """The review of the change above: the model of a request whose span reported no usage was the call's beside
    another request answered by another model, and where the call's result showed usage of its own (no request's)."""
    tracer = otel.tracer_provider.get_tracer("opentelemetry.instrumentation.openai_v2")

    @agent_otel.provider("openai", model="gpt-4o-mini")
    def ask() -> Any:
        for answered, usage in requests:
            attributes: dict[str, Any] = {semconv.GEN_AI_OPERATION_NAME: "chat", semconv.GEN_AI_PROVIDER_NAME: "openai",
                                          semconv.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
                                          semconv.GEN_AI_RESPONSE_MODEL: answered}
            if usage is not None:
                attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS], attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] = usage
            with tracer.start_as_current_span("chat gpt-4o-mini", attributes=attributes):
                pass
        return result

    ask()
    [ours] = [span for span in otel.spans() if span.instrumentation_scope.name == "agent_otel"]
    assert ours.attributes.get(semconv.GEN_AI_RESPONSE_MODEL) == expected


def test_a_provider_call_reading_a_stream_inside_takes_its_time_to_first_chunk(otel: Any, llm: StreamingLLM) -> None:
    """CrewAI's ``OpenAICompletion.call`` reads the SDK's stream and returns its text: a ``[[provider]]`` on it took the
    tokens and the model from the instrumentation's span of the request inside, but not its time to first chunk,
    which the span bridge alone records: adding the target lost the metric. It is taken too, from the call's start."""
    client = openai.OpenAI(base_url=llm.url + "/v1", api_key="test", max_retries=0)

    @agent_otel.provider("openai")
    def call() -> str:
        stream = client.chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES, stream=True,
                                                stream_options={"include_usage": True})
        return "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)

    with genai_apps.instrumented("openai", otel.tracer_provider, otel.meter_provider):
        assert call() == "Hello"
    [ours] = [span for span in otel.spans() if span.instrumentation_scope.name == semconv.SCOPE_NAME]
    [theirs] = [span for span in otel.spans() if span.instrumentation_scope.name != semconv.SCOPE_NAME]
    first_chunk = point(otel, semconv.CLIENT_TIME_TO_FIRST_CHUNK.name)
    assert first_chunk.count == 1
    assert ours.attributes[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] == first_chunk.sum
    assert theirs.attributes[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] <= first_chunk.sum <= (
        ours.end_time - ours.start_time) / 1e9
    assert point(otel, semconv.CLIENT_INFERENCE_DURATION.name).count == 1


def _ollama_chat(url: str, client_kind: str, streamed: bool, wrap: Callable[[Any], Any] = lambda chat: chat) -> str:
    """One chat call of the real ``ollama`` client, ``wrap`` around the client's ``chat``, read to its end (a stream's
    chunks joined)."""
    if client_kind == "sync":
        answer = wrap(ollama.Client(host=url).chat)(model=OLLAMA_MODEL, messages=MESSAGES, stream=streamed)
        return "".join(chunk.message.content for chunk in answer) if streamed else answer.message.content

    async def chat() -> str:
        answer = await wrap(ollama.AsyncClient(host=url).chat)(model=OLLAMA_MODEL, messages=MESSAGES, stream=streamed)
        return "".join([chunk.message.content async for chunk in answer]) if streamed else answer.message.content

    return asyncio.run(chat())


def _tokens(otel: Any) -> dict[str, tuple[int, float]]:
    return {kind.value: (p.count, p.sum) for kind, _, histogram in semconv.PREVIOUS_TOKEN_SPLIT
            for p in otel.points(histogram.name)}


@pytest.mark.parametrize("streamed", [False, True], ids=["answer", "stream"])
@pytest.mark.parametrize("client_kind", ["sync", "async"])
def test_ollamas_counts_beside_its_answer_are_the_calls_tokens(otel: Any, llm: StreamingLLM, client_kind: str,
                                                               streamed: bool) -> None:
    """Ollama reports a call's tokens as its answer's own ``prompt_eval_count`` and ``eval_count`` (a stream's on its
    last chunk), not under a ``usage``: a ``@provider`` call on its client recorded none."""

    assert _ollama_chat(llm.url, client_kind, streamed, agent_otel.provider("ollama", model=OLLAMA_MODEL)) == "Hello"
    assert _tokens(otel) == {"input": (1, OLLAMA_INPUT_TOKENS), "output": (1, OLLAMA_OUTPUT_TOKENS)}
    [ours] = otel.spans()
    assert ours.attributes[semconv.GEN_AI_RESPONSE_MODEL] == OLLAMA_MODEL


@pytest.mark.parametrize("decorated", [False, True], ids=["bridged", "under-a-provider-of-ours"])
def test_openllmetrys_ollama_spans_are_counted_once_with_their_tokens(otel: Any, llm: StreamingLLM,
                                                                     decorated: bool) -> None:
    """OpenLLMetry's Ollama instrumentation names no ``gen_ai.operation.name``, only its request type
    (``llm.request.type``): the bridge saw no GenAI call in its spans, and an Ollama program counted nothing. Under a
    ``@provider`` of ours the two spans are one call."""

    ours = agent_otel.provider("ollama", model=OLLAMA_MODEL) if decorated else (lambda chat: chat)
    instrumentor = OllamaInstrumentor()
    instrumentor.instrument(tracer_provider=otel.tracer_provider)
    try:
        assert _ollama_chat(llm.url, "sync", False, ours) == "Hello"
    finally:
        instrumentor.uninstrument()
    [theirs] = [span for span in otel.spans() if span.instrumentation_scope.name != semconv.SCOPE_NAME]
    assert theirs.attributes["llm.request.type"] == "chat" and semconv.GEN_AI_OPERATION_NAME not in theirs.attributes
    assert point(otel, semconv.CLIENT_INFERENCE_DURATION.name).count == 1
    assert _tokens(otel) == {"input": (1, OLLAMA_INPUT_TOKENS), "output": (1, OLLAMA_OUTPUT_TOKENS)}


def test_a_stream_the_program_stops_reading_is_no_failed_call_under_the_openai_instrumentation(
        otel: Any, llm: StreamingLLM) -> None:
    """The OpenAI GenAI instrumentation (its util-genai stream wrapper) ends a stream the program stopped reading before
    its end as an error, ``_OTHER`` "abandoned stream": langroid and camel stop after the usage chunk, and every one of
    their streamed model calls was counted as failed. Not a failure, as a stream agent-otel times and the program
    closes early is not; its tokens are counted."""
    client = openai.OpenAI(base_url=llm.url + "/v1", api_key="test", max_retries=0)

    def read_until_usage() -> str:
        text = ""
        stream = client.chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES, stream=True,
                                                stream_options={"include_usage": True})
        for chunk in stream:
            if chunk.usage is not None:
                break  # (as langroid does: the [DONE] after it is never read)
            text += chunk.choices[0].delta.content or ""
        return text

    with genai_apps.instrumented("openai", otel.tracer_provider, otel.meter_provider):
        assert read_until_usage() == "Hello"
        gc.collect()  # (the stream is dropped as the function returns; a cycle would hold it until a collection)
    [theirs] = otel.spans()
    assert theirs.status.description == "abandoned stream"  # the instrumentation's own verdict, on its span
    duration = point(otel, semconv.CLIENT_INFERENCE_DURATION.name)
    assert duration.count == 1 and semconv.ERROR_TYPE not in duration.attributes
    assert {kind.value: p.sum for kind, _, histogram in semconv.PREVIOUS_TOKEN_SPLIT
            for p in otel.points(histogram.name)} == {"input": OPENAI_USAGE["prompt_tokens"],
                                                      "output": OPENAI_USAGE["completion_tokens"]}


@pytest.mark.parametrize("client_kind", ["sync", "async"])
def test_a_stream_another_instrumentation_reads_in_its_own_iteration_is_read_through_it(
        otel: Any, llm: StreamingLLM, client_kind: str) -> None:
    """OpenInference's Anthropic instrumentation hands out a proxy of the SDK's stream that records what it reads in
    its own ``__iter__`` (``__aiter__``), with no ``__next__`` of its own: agent-otel's traced stream let that
    iteration pass untimed, so a ``@provider`` call read to its end stayed open (counted at ``close()`` or when
    dropped, without its tokens), waiting for the instrumentation's span. The stream is read through its iteration."""
    from openinference.instrumentation.anthropic import AnthropicInstrumentor

    instrumentor = AnthropicInstrumentor()
    instrumentor.instrument(tracer_provider=otel.tracer_provider)
    try:
        if client_kind == "sync":
            client = anthropic.Anthropic(base_url=llm.url, api_key="test", max_retries=0)

            @agent_otel.provider("anthropic", model="claude-3-5-haiku")
            def create() -> Any:
                return client.messages.create(model="claude-3-5-haiku", max_tokens=16, messages=MESSAGES, stream=True)

            stream = create()
            events = [event.type for event in stream]
        else:
            async_client = anthropic.AsyncAnthropic(base_url=llm.url, api_key="test", max_retries=0)

            @agent_otel.provider("anthropic", model="claude-3-5-haiku")
            async def acreate() -> Any:
                return await async_client.messages.create(model="claude-3-5-haiku", max_tokens=16, messages=MESSAGES,
                                                          stream=True)

            async def read() -> tuple[Any, list[str]]:
                made = await acreate()
                return made, [event.type async for event in made]

            stream, events = asyncio.run(read())
        assert events[0] == "message_start" and events[-1] == "message_stop"
        duration = point(otel, semconv.CLIENT_INFERENCE_DURATION.name)  # ended as the stream was exhausted
        assert duration.count == 1
        assert _tokens(otel) == {"input": (1, ANTHROPIC_INPUT_TOKENS), "output": (1, ANTHROPIC_OUTPUT_TOKENS)}
        del stream
    finally:
        instrumentor.uninstrument()
