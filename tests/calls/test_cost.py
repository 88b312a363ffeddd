"""Cost that counts cached and reasoning tokens, read from the real ``openai`` and ``anthropic`` SDKs' response
types (Chat Completions, Responses, Messages and a Messages stream); the standard cost attributes and
histogram; the counter of calls with no price; the per-job cost histogram."""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import dataclasses
import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from anthropic.types import Message, MessageDeltaUsage, RawMessageDeltaEvent, RawMessageStartEvent, Usage
from openai.types.chat import ChatCompletion
from openai.types.completion_usage import CompletionTokensDetails, CompletionUsage, PromptTokensDetails
from openai.types.responses import Response, ResponseUsage
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails

import agent_otel
from agent_otel import semconv
from agent_otel._calls.pricing import DEFAULT_PRICES, PRICES_AS_OF, Price, cost_of
from agent_otel.errors import ConfigurationError
from tests.support.paths import ROOT
from tests.support.telemetry import error_count, point, points

COST = semconv.CLIENT_OPERATION_COST.name
UNPRICED = semconv.CLIENT_UNPRICED_CALLS.name


def usd(tokens: float, price_per_million: float) -> float:
    return tokens * price_per_million / 1_000_000


def chat_completion(model: str, prompt: int, completion: int, cached: int, reasoning: int,
                    cache_write: int | None = None) -> ChatCompletion:
    return ChatCompletion(
        id="chatcmpl-1", object="chat.completion", created=1_750_000_000, model=model, choices=[],
        usage=CompletionUsage(
            prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion,
            prompt_tokens_details=PromptTokensDetails(cached_tokens=cached, cache_write_tokens=cache_write),
            completion_tokens_details=CompletionTokensDetails(reasoning_tokens=reasoning)))


def responses_response(model: str, prompt: int, output: int, cached: int, reasoning: int) -> Response:
    return Response(
        id="resp_1", object="response", created_at=1_750_000_000.0, model=model, output=[], tools=[],
        tool_choice="auto", parallel_tool_calls=True,
        usage=ResponseUsage(input_tokens=prompt, output_tokens=output, total_tokens=prompt + output,
                            input_tokens_details=InputTokensDetails(cached_tokens=cached, cache_write_tokens=0),
                            output_tokens_details=OutputTokensDetails(reasoning_tokens=reasoning)))


def anthropic_message(model: str, fresh_input: int, output: int, cache_read: int, cache_write: int) -> Message:
    return Message(
        id="msg_1", type="message", role="assistant", model=model, content=[], stop_reason="end_turn",
        stop_sequence=None,
        usage=Usage(input_tokens=fresh_input, output_tokens=output, cache_read_input_tokens=cache_read,
                    cache_creation_input_tokens=cache_write))


def cost_attributes(otel: Any, span_name: str) -> dict[str, Any]:
    attributes = dict(otel.span(span_name).attributes)
    return {key: value for key, value in attributes.items() if key.startswith("gen_ai.usage.")}


def test_an_openai_chat_completion_prices_cached_and_reasoning_tokens(otel: Any) -> None:
    """o3: 1000 prompt tokens of which 800 cached (at the cached price), 300 completion tokens of which 200
    reasoning (billed as output)."""

    @agent_otel.provider("openai", model="o3")
    def complete() -> ChatCompletion:
        return chat_completion("o3-2025-04-16", 1000, 300, cached=800, reasoning=200)

    complete()
    price = DEFAULT_PRICES["o3"]
    assert price.cache_read is not None
    expected = usd(200, price.input) + usd(800, price.cache_read) + usd(300, price.output)
    assert cost_attributes(otel, "chat o3") == {
        semconv.GEN_AI_USAGE_INPUT_TOKENS: 1000, semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 300,
        semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 800, semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 200,
        semconv.GEN_AI_USAGE_COST_AMOUNT: pytest.approx(expected), semconv.GEN_AI_USAGE_COST_CURRENCY: "USD",
        semconv.GEN_AI_USAGE_COST_SOURCE: "local"}
    assert expected < usd(1000, price.input) + usd(300, price.output)  # the cache made it cheaper
    histogram = point(otel, COST)
    assert (histogram.count, histogram.sum) == (1, pytest.approx(expected))
    assert dict(histogram.attributes) == {
        semconv.GEN_AI_OPERATION_NAME: "chat", semconv.GEN_AI_PROVIDER_NAME: "openai",
        semconv.GEN_AI_REQUEST_MODEL: "o3", semconv.GEN_AI_RESPONSE_MODEL: "o3-2025-04-16"}
    assert point(otel, semconv.CLIENT_COST.name).value == pytest.approx(expected)  # the counter agrees
    assert not otel.points(UNPRICED)


def test_a_bedrock_converse_response_counts_its_cache_in_the_input_and_its_stop_reason(otel: Any) -> None:
    """Amazon Bedrock's Converse API (boto3's ``converse()``): camel-case usage, its cache reads and writes beside
    ``inputTokens`` as Anthropic's are; none of it was read (no tokens, an unpriced call)."""
    agent_otel.set_prices({"anthropic.claude-sonnet-4": {"input": 3.0, "output": 15.0, "cache_read": 0.3,
                                                         "cache_write": 3.75}})

    @agent_otel.provider("aws.bedrock", model="anthropic.claude-sonnet-4")
    def converse() -> dict[str, Any]:
        return {"output": {"message": {"role": "assistant", "content": [{"text": "hi"}]}}, "stopReason": "end_turn",
                "usage": {"inputTokens": 100, "outputTokens": 20, "totalTokens": 420, "cacheReadInputTokens": 250,
                          "cacheWriteInputTokens": 50},
                "metrics": {"latencyMs": 300}, "ResponseMetadata": {"RequestId": "r", "HTTPStatusCode": 200}}

    converse()
    expected = usd(100, 3.0) + usd(250, 0.3) + usd(50, 3.75) + usd(20, 15.0)
    attributes = cost_attributes(otel, "chat anthropic.claude-sonnet-4")
    assert attributes == {
        semconv.GEN_AI_USAGE_INPUT_TOKENS: 400, semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 20,
        semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 250, semconv.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: 50,
        semconv.GEN_AI_USAGE_COST_AMOUNT: pytest.approx(expected), semconv.GEN_AI_USAGE_COST_CURRENCY: "USD",
        semconv.GEN_AI_USAGE_COST_SOURCE: "local"}
    span = otel.span("chat anthropic.claude-sonnet-4")
    assert span.attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] == ("end_turn",)
    assert not otel.points(UNPRICED)


def test_an_agno_model_stream_counts_the_usage_of_its_last_response(otel: Any) -> None:
    """Agno probe: ``[[provider]]`` on Agno's ``OpenAIChat.invoke_stream``, whose chunks are Agno's ``ModelResponse``
    (a dataclass) and the last one carries the usage as ``response_usage``: 4 streamed calls with no tokens, unpriced.
    Made here as Agno makes them (agno is no test dependency)."""

    @dataclasses.dataclass
    class MessageMetrics:  # agno.metrics.MessageMetrics's token fields
        input_tokens: int = 0
        output_tokens: int = 0
        total_tokens: int = 0

    @dataclasses.dataclass
    class ModelResponse:  # agno.models.response.ModelResponse's
        content: str | None = None
        response_usage: MessageMetrics | None = None

    @agent_otel.provider("openai", model="gpt-4o-mini")
    def invoke_stream() -> Any:
        yield ModelResponse(content="Hel")
        yield ModelResponse(content="lo")
        yield ModelResponse(response_usage=MessageMetrics(input_tokens=12, output_tokens=7, total_tokens=19))

    assert [chunk.content for chunk in invoke_stream()] == ["Hel", "lo", None]
    attributes = cost_attributes(otel, "chat gpt-4o-mini")
    assert (attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS], attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS]) == (12, 7)
    assert not otel.points(UNPRICED)


def test_openai_cache_writes_cost_as_input_unless_priced_apart(otel: Any) -> None:
    agent_otel.set_prices({"gpt-4.1": {"input": 2.0, "output": 8.0, "cache_read": 0.5, "cache_write": 4.0}})

    @agent_otel.provider("openai", model="gpt-4.1")
    def complete() -> ChatCompletion:
        return chat_completion("gpt-4.1-2025-04-14", 1000, 10, cached=100, reasoning=0, cache_write=300)

    complete()
    expected = usd(600, 2.0) + usd(100, 0.5) + usd(300, 4.0) + usd(10, 8.0)
    attributes = cost_attributes(otel, "chat gpt-4.1")
    assert attributes[semconv.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS] == 300
    assert attributes[semconv.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(expected)


def test_an_openai_responses_api_response_prices_cached_and_reasoning_tokens(otel: Any) -> None:
    @agent_otel.provider("openai", model="gpt-4.1-mini", operation="chat")
    def respond() -> Response:
        return responses_response("gpt-4.1-mini-2025-04-14", 2000, 150, cached=1500, reasoning=50)

    respond()
    price = DEFAULT_PRICES["gpt-4.1-mini"]
    assert price.cache_read is not None
    expected = usd(500, price.input) + usd(1500, price.cache_read) + usd(150, price.output)
    attributes = cost_attributes(otel, "chat gpt-4.1-mini")
    assert attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 2000
    assert attributes[semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 1500
    assert attributes[semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] == 50
    assert attributes[semconv.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(expected)


def test_an_anthropic_message_counts_cache_reads_and_writes_in_its_input_and_prices_them(otel: Any) -> None:
    """Anthropic reports cache reads and writes beside ``input_tokens``; the conventions count them in it."""

    @agent_otel.provider("anthropic", model="claude-sonnet-4")
    def create() -> Message:
        return anthropic_message("claude-sonnet-4-20250514", 100, 50, cache_read=1000, cache_write=200)

    create()
    price = DEFAULT_PRICES["claude-sonnet-4"]
    assert price.cache_read is not None and price.cache_write is not None
    expected = usd(100, price.input) + usd(1000, price.cache_read) + usd(200, price.cache_write) + usd(50, price.output)
    assert cost_attributes(otel, "chat claude-sonnet-4") == {
        semconv.GEN_AI_USAGE_INPUT_TOKENS: 1300, semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 50,
        semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 1000, semconv.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: 200,
        semconv.GEN_AI_USAGE_COST_AMOUNT: pytest.approx(expected), semconv.GEN_AI_USAGE_COST_CURRENCY: "USD",
        semconv.GEN_AI_USAGE_COST_SOURCE: "local"}
    assert point(otel, COST).sum == pytest.approx(expected)


@pytest.mark.parametrize("written", [500, 0])
def test_an_openai_format_usage_with_anthropics_cache_keys_counts_its_input_once(otel: Any, written: int) -> None:
    """A proxy's OpenAI-format usage for Claude (LiteLLM's): ``prompt_tokens`` counts all input, cache reads in
    ``cached_tokens``, and a top-level ``cache_creation_input_tokens`` the writes. Before, that key (even 0) switched
    on Anthropic's counting: the writes were added to the input again and the cached reads priced as fresh input,
    3 to 4 times the cost."""

    @agent_otel.provider("anthropic", model="claude-sonnet-4")
    def create() -> dict[str, Any]:
        return {"model": "claude-sonnet-4-20250514", "usage": {
            "prompt_tokens": 2100 + written, "completion_tokens": 50, "prompt_tokens_details": {"cached_tokens": 2000},
            "cache_creation_input_tokens": written}}

    create()
    price = DEFAULT_PRICES["claude-sonnet-4"]
    assert price.cache_read is not None and price.cache_write is not None
    expected = usd(100, price.input) + usd(2000, price.cache_read) + usd(written, price.cache_write) + usd(
        50, price.output)
    attributes = cost_attributes(otel, "chat claude-sonnet-4")
    assert attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 2100 + written
    assert attributes[semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 2000
    assert attributes[semconv.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(expected)


def test_an_anthropic_stream_of_sdk_events_keeps_the_cache_of_its_first_event(otel: Any) -> None:
    """message_start carries the input and cache counts, message_delta the final output count."""
    start = RawMessageStartEvent(type="message_start", message=anthropic_message(
        "claude-3-5-haiku-20241022", 20, 1, cache_read=4000, cache_write=0))
    delta = RawMessageDeltaEvent(type="message_delta", delta={"stop_reason": "end_turn", "stop_sequence": None},
                                 usage=MessageDeltaUsage(output_tokens=90))

    @agent_otel.provider("anthropic", model="claude-3-5-haiku")
    def stream() -> Iterator[Any]:
        yield start
        yield delta

    assert list(stream()) == [start, delta]
    price = DEFAULT_PRICES["claude-3-5-haiku"]
    assert price.cache_read is not None
    attributes = cost_attributes(otel, "chat claude-3-5-haiku")
    assert attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 4020
    assert attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 90
    assert attributes[semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 4000
    assert attributes[semconv.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(
        usd(20, price.input) + usd(4000, price.cache_read) + usd(90, price.output))


def test_a_reasoning_price_of_its_own_applies_to_reasoning_tokens_only(otel: Any) -> None:
    agent_otel.set_prices({"thinker": {"input": 1.0, "output": 4.0, "reasoning": 10.0}})

    @agent_otel.provider("openai", model="thinker")
    def complete() -> ChatCompletion:
        return chat_completion("thinker", 100, 500, cached=0, reasoning=400)

    complete()
    expected = usd(100, 1.0) + usd(100, 4.0) + usd(400, 10.0)
    assert point(otel, COST).sum == pytest.approx(expected)


def test_a_call_of_a_model_with_no_price_is_counted_instead_of_costing_nothing(otel: Any) -> None:
    @agent_otel.provider("openai", model="house-llm")
    def complete() -> ChatCompletion:
        return chat_completion("house-llm-7b", 10, 5, cached=0, reasoning=0)

    complete()
    complete()
    unpriced = point(otel, UNPRICED)
    assert unpriced.value == 2
    assert dict(unpriced.attributes) == {semconv.GEN_AI_PROVIDER_NAME: "openai",
                                         semconv.GEN_AI_REQUEST_MODEL: "house-llm"}
    assert not otel.points(COST)
    assert all(semconv.GEN_AI_USAGE_COST_AMOUNT not in span.attributes for span in otel.spans("chat house-llm"))
    agent_otel.set_prices({"house-llm": {"input": 1, "output": 1}})
    complete()
    assert point(otel, UNPRICED).value == 2  # priced now
    assert point(otel, COST).sum == pytest.approx(usd(15, 1))


@pytest.mark.parametrize(("model", "priced_as"), [
    ("gpt-4o-2024-08-06", "gpt-4o"), ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),
    ("o3-mini-2025-01-31", "o3-mini"), ("claude-opus-4-20250514", "claude-opus-4"),
    ("claude-3-5-sonnet@20240620", "claude-3-5-sonnet"), ("claude-3-5-sonnet-20241022-v2:0", "claude-3-5-sonnet"),
    ("gemini-2.0-flash-001", "gemini-2.0-flash"), ("claude-sonnet-4-0", "claude-sonnet-4"),
    ("claude-opus-4-0", "claude-opus-4"),
    # Amazon Bedrock's ids: the vendor's, and a cross-region inference profile's geography, before the model's name
    ("anthropic.claude-3-haiku-20240307-v1:0", "claude-3-haiku"),
    ("us.anthropic.claude-sonnet-4-20250514-v1:0", "claude-sonnet-4"),
    ("us-gov.anthropic.claude-3-5-sonnet-20240620-v1:0", "claude-3-5-sonnet"),
    ("anthropic.claude-opus-4-5-20251101-v1:0", None), ("meta.llama3-1-70b-instruct-v1:0", None),
    # LiteLLM's routes (DSPy's and CrewAI's model names): the provider, and a router's, before the model's name
    ("openai/gpt-4o-mini", "gpt-4o-mini"), ("anthropic/claude-3-5-haiku-20241022", "claude-3-5-haiku"),
    ("openrouter/openai/gpt-4o", "gpt-4o"), ("gemini/gemini-2.0-flash-001", "gemini-2.0-flash"),
    ("bedrock/us.anthropic.claude-sonnet-4-20250514-v1:0", "claude-sonnet-4"), ("openai/o3-pro", None),
    ("ollama/llama3", None),
    # other models whose names start with a priced one's: their prices differ (o3-pro's is 10x o3's)
    ("o3-pro", None), ("gemini-2.5-flash-lite", None), ("claude-opus-4-5", None), ("gpt-4o-audio-preview", None),
])
def test_a_snapshot_costs_as_its_model_and_another_model_is_not_priced_as_one_it_starts_like(
        otel: Any, model: str, priced_as: str | None) -> None:
    @agent_otel.provider("openai", model=model)
    def complete() -> ChatCompletion:
        return chat_completion(model, 1000, 100, cached=0, reasoning=0)

    complete()
    if priced_as is None:
        assert not otel.points(COST)
        assert point(otel, UNPRICED).value == 1
    else:
        price = DEFAULT_PRICES[priced_as]
        assert point(otel, COST).sum == pytest.approx(usd(1000, price.input) + usd(100, price.output))


def test_the_unpriced_counter_stays_under_the_cardinality_cap(otel: Any) -> None:
    agent_otel.set_policy(cardinality_limit=2)

    @agent_otel.provider("local", model=agent_otel.path("args.model"))
    def complete(model: str) -> dict[str, Any]:
        return {"usage": {"input_tokens": 1, "output_tokens": 1}}

    for index in range(5):
        complete(f"fine-tune-{index}")
    models = {p.attributes[semconv.GEN_AI_REQUEST_MODEL]: p.value for p in otel.points(UNPRICED)}
    assert len(models) <= 3 and sum(models.values()) == 5  # two models, then one overflow value


def test_a_model_the_cap_turned_into_other_is_priced_as_given(otel: Any) -> None:
    """The cap names the metric label; the price is of the model the call used (before, the call was priced
    as "_OTHER": counted unpriced, with no cost, and its job cost nothing)."""
    agent_otel.set_policy(cardinality_limit=1)

    @agent_otel.provider("openai", model=agent_otel.path("args.model"))
    def complete(model: str) -> dict[str, Any]:
        return {"usage": {"prompt_tokens": 1000, "completion_tokens": 1000}}

    with agent_otel.job("priced"):
        complete("house-model")  # takes the one place in the cap
        complete("gpt-4o")  # labelled _OTHER
    gpt_4o = DEFAULT_PRICES["gpt-4o"]
    assert point(otel, COST, {semconv.GEN_AI_REQUEST_MODEL: "_OTHER"}).sum == pytest.approx(
        usd(1000, gpt_4o.input) + usd(1000, gpt_4o.output))
    assert {p.attributes[semconv.GEN_AI_REQUEST_MODEL] for p in otel.points(UNPRICED)} == {"house-model"}


def test_a_response_model_that_is_not_a_string_is_dropped_and_counted_the_call_kept(otel: Any) -> None:
    @agent_otel.provider("openai", model="gpt-4o", response_model=agent_otel.path("result.deployment"))
    def complete() -> dict[str, Any]:
        return {"usage": {"prompt_tokens": 1000, "completion_tokens": 10}, "deployment": 7}

    complete()
    span = otel.span("chat gpt-4o")
    assert span.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 1000
    assert semconv.GEN_AI_RESPONSE_MODEL not in span.attributes
    assert point(otel, COST).sum > 0
    assert error_count(otel, "provider.response_model") == 1


def test_an_explicit_cost_is_recorded_as_given_and_never_counted_as_unpriced(otel: Any) -> None:
    @agent_otel.provider("gateway", model="routed", cost=agent_otel.path("result.cost"))
    def complete() -> dict[str, Any]:
        return {"usage": {"input_tokens": 10, "output_tokens": 5}, "cost": 0.25}

    complete()
    assert cost_attributes(otel, "chat routed")[semconv.GEN_AI_USAGE_COST_AMOUNT] == 0.25
    assert point(otel, COST).sum == 0.25
    assert not otel.points(UNPRICED)


def test_a_job_records_what_its_calls_cost_on_the_job_cost_histogram(otel: Any) -> None:
    @agent_otel.provider("openai", model="gpt-4o")
    def complete(cached: int) -> ChatCompletion:
        return chat_completion("gpt-4o-2024-08-06", 1000, 100, cached=cached, reasoning=0)

    with agent_otel.job(type="triage"):
        complete(0)
        complete(600)
    with agent_otel.job(type="triage"):
        pass  # no model call: no cost point
    price = DEFAULT_PRICES["gpt-4o"]
    assert price.cache_read is not None
    expected = usd(1400, price.input) + usd(600, price.cache_read) + usd(200, price.output)
    job_cost = point(otel, semconv.JOB_COST.name)
    assert (job_cost.count, job_cost.sum) == (1, pytest.approx(expected))
    assert dict(job_cost.attributes) == {semconv.JOB_TYPE: "triage"}
    rollups = [span.attributes[semconv.JOB_ROLLUP_COST] for span in otel.spans(semconv.job_span_name("triage"))]
    assert sorted(rollups) == [0, pytest.approx(expected)]


def test_a_job_whose_calls_have_no_price_records_no_cost_and_says_how_many(otel: Any) -> None:
    """Before, a job whose model calls had no price recorded a cost of 0.0 on ``agent_otel.job.cost``, read as a
    free job by "Cost per job" and the cost-jump alert, and nothing said a job's cost left calls out."""

    @agent_otel.provider("house", model="house-llm")
    def unpriced() -> dict[str, Any]:
        return {"usage": {"prompt_tokens": 100_000, "completion_tokens": 20_000}}

    @agent_otel.provider("openai", model="gpt-4o")
    def priced() -> dict[str, Any]:
        return {"usage": {"prompt_tokens": 1000, "completion_tokens": 200}}

    with agent_otel.job(type="unknown"):
        unpriced()
    with agent_otel.job(type="mixed"):
        priced()
        unpriced()
    price = DEFAULT_PRICES["gpt-4o"]
    costs = {dict(p.attributes)[semconv.JOB_TYPE]: p.sum for p in points(otel, semconv.JOB_COST.name)}
    assert costs == {"mixed": pytest.approx(usd(1000, price.input) + usd(200, price.output))}
    unpriced_calls = {span.attributes[semconv.JOB_TYPE]: span.attributes.get(semconv.JOB_ROLLUP_UNPRICED_CALLS)
                      for span in otel.spans() if span.name.startswith("invoke_workflow")}
    assert unpriced_calls == {"unknown": 1, "mixed": 1}


def test_a_job_has_a_cost_point_when_a_call_was_priced_whatever_its_other_calls_did(otel: Any) -> None:
    """The point was decided by "more provider calls than unpriced ones": a job with one priced call and one
    unpriced request retried twice (two unpriced attempts, one call) lost its cost, and a job whose only call
    failed (no usage: neither priced nor unpriced) got a point of $0, a free job."""

    @agent_otel.provider("house", model="house-llm")
    def attempt() -> dict[str, Any]:
        return {"usage": {"prompt_tokens": 10, "completion_tokens": 1}}

    @agent_otel.provider("house", model="house-llm")
    def retried() -> dict[str, Any]:
        attempt()
        return attempt()

    @agent_otel.provider("openai", model="gpt-4o")
    def priced(fail: bool = False) -> dict[str, Any]:
        if fail:
            raise TimeoutError
        return {"usage": {"prompt_tokens": 1000, "completion_tokens": 100}}

    with agent_otel.job(type="retrying"):
        priced()
        retried()
    with pytest.raises(TimeoutError), agent_otel.job(type="failing"):
        priced(fail=True)
    price = DEFAULT_PRICES["gpt-4o"]
    costs = {dict(p.attributes)[semconv.JOB_TYPE]: p.sum for p in points(otel, semconv.JOB_COST.name)}
    assert costs == {"retrying": pytest.approx(usd(1000, price.input) + usd(100, price.output))}


def test_price_entries_take_cache_and_reasoning_prices_from_dicts_lists_and_files(tmp_path: Any) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text('"m-1" = { input = 1, output = 2, cache_read = 0.1, cache_write = 1.25 }\n')
    agent_otel.set_prices(prices)
    agent_otel.set_prices({"m-2": [1, 2, 0.5], "m-3": {"input": 1, "output": 2, "reasoning": 3}})
    assert cost_of("m-1", 1000, 0, cache_read=500, cache_write=100) == pytest.approx(
        usd(400, 1) + usd(500, 0.1) + usd(100, 1.25))
    assert cost_of("m-2", 100, 10, cache_read=100) == pytest.approx(usd(100, 0.5) + usd(10, 2))
    assert cost_of("m-3", 0, 10, reasoning=10) == pytest.approx(usd(10, 3))
    with pytest.raises(ConfigurationError, match=r"price of 'm': .*unknown key 'cached'"):
        agent_otel.set_prices({"m": {"input": 1, "output": 1, "cached": 1}})
    # NaN made every cost NaN, and 1e308 one infinite: both refused by the SDK with a warning on stderr
    for bad in (-1, float("nan"), float("inf"), "nan", 1e308, 1_000_001, "0.5"):  # (a string: as in a config file)
        with pytest.raises(ConfigurationError, match=r"price of 'm': .*a number from 0 to 1,000,000"):
            agent_otel.set_prices({"m": {"input": 1, "output": 1, "cache_read": bad}})
    headed = tmp_path / "headed.toml"  # agent-otel.toml's layout: the hint was to quote "prices.my-model"
    headed.write_text('[prices]\n"my-model" = { input = 1, output = 2 }\n')
    with pytest.raises(ConfigurationError, match=r"headed\.toml: holds a \[prices\] table, as agent-otel.toml does; "
                                                 r"set_prices\(\) reads the models at the top level"):
        agent_otel.set_prices(headed)
    with pytest.raises(ConfigurationError, match=r"price of 'm': .*not a boolean"):
        agent_otel.set_prices({"m": {"input": 1, "output": True}})
    with pytest.raises(ConfigurationError, match=r"price of 'm': .*expected 2 to 5 numbers"):
        agent_otel.set_prices({"m": [1, 2, 3, 4, 5, 6]})
    with pytest.raises(ConfigurationError, match=r"price of 'm': .*\(missing 'output'\)$"):  # was: ('output')
        agent_otel.set_prices({"m": {"input": 1}})


def test_a_price_file_says_to_quote_a_dotted_name_and_reads_json_by_any_case_of_suffix(tmp_path: Any) -> None:
    """``gpt-4.1 = {...}`` unquoted is TOML's gpt-4 -> 1 -> {...}: the error said "unknown key '1'". A ``.JSON``
    file was read as TOML ("Invalid statement")."""
    dotted = tmp_path / "prices.toml"
    dotted.write_text("gpt-4.1 = { input = 2, output = 8 }\n")
    with pytest.raises(ConfigurationError, match=r"price of 'gpt-4': .*\(unknown key '1', a table: quote a model "
                                                 r'name with a dot in it, "gpt-4\.1" = \{ \.\.\. \}\)$'):
        agent_otel.set_prices(dotted)
    upper = tmp_path / "prices.JSON"
    upper.write_text('{"m-json": {"input": 1, "output": 2}}')
    agent_otel.set_prices(upper)
    assert cost_of("m-json", 1000, 0) == pytest.approx(usd(1000, 1))


def test_the_shipped_table_is_dated_and_prices_cache_reads_below_input() -> None:
    assert PRICES_AS_OF.count("-") == 1 and PRICES_AS_OF[:2] == "20"
    for model, price in DEFAULT_PRICES.items():
        assert isinstance(price, Price)
        if price.cache_read is not None:
            assert price.cache_read < price.input, model


def test_the_readme_states_the_date_of_the_shipped_prices() -> None:
    year, month = PRICES_AS_OF.split("-")
    assert f"({calendar.month_name[int(month)]} {year})" in (ROOT / "README.md").read_text()


def test_gemini_usage_metadata_counts_thoughts_as_output_and_prices_cached_content(otel: Any) -> None:
    """Shaped like google-genai's ``GenerateContentResponse`` (that SDK is not a test dependency): the cached
    content is part of the prompt count, the thoughts are not part of the candidates count."""

    @agent_otel.provider("gcp.gemini", model="gemini-2.5-flash", operation="generate_content")
    def generate() -> dict[str, Any]:
        return {"model_version": "gemini-2.5-flash", "usage_metadata": {
            "prompt_token_count": 1000, "cached_content_token_count": 400, "candidates_token_count": 100,
            "thoughts_token_count": 300}}

    generate()
    price = DEFAULT_PRICES["gemini-2.5-flash"]
    assert price.cache_read is not None
    attributes = cost_attributes(otel, "generate_content gemini-2.5-flash")
    assert attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 400
    assert attributes[semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] == 300
    assert attributes[semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 400
    assert attributes[semconv.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(
        usd(600, price.input) + usd(400, price.cache_read) + usd(400, price.output))


def test_a_langchain_message_prices_its_cache_reads_and_names_its_model(otel: Any) -> None:
    """A LangChain chat model's answer (``AIMessage``, here from langchain-core's own fake chat model) reports
    usage in ``usage_metadata`` (cache reads in ``input_token_details``, reasoning in ``output_token_details``,
    both inside the totals) and its model in ``response_metadata``. Before, its input and output tokens were read
    but not the details nor the model: the cache reads were priced as fresh input."""
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage

    usage = {"input_tokens": 1000, "output_tokens": 300, "total_tokens": 1300,
             "input_token_details": {"cache_read": 400}, "output_token_details": {"reasoning": 200}}
    model = GenericFakeChatModel(messages=iter([AIMessage(
        "hi", usage_metadata=usage, response_metadata={"model_name": "gpt-4o-2024-08-06"})]))

    @agent_otel.provider("openai", model="gpt-4o")
    def ask() -> Any:
        return model.invoke("hello")

    ask()
    price = DEFAULT_PRICES["gpt-4o"]
    assert price.cache_read is not None
    span = otel.span("chat gpt-4o")
    assert span.attributes[semconv.GEN_AI_RESPONSE_MODEL] == "gpt-4o-2024-08-06"
    attributes = cost_attributes(otel, "chat gpt-4o")
    assert attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 1000
    assert attributes[semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 400
    assert attributes[semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] == 200
    assert attributes[semconv.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(
        usd(600, price.input) + usd(400, price.cache_read) + usd(300, price.output))


def test_a_langchain_streams_chunks_add_up_to_the_calls_usage(otel: Any) -> None:
    """LangChain's message chunks each carry their share of the usage, which add up (an Anthropic model's first chunk
    has the input and the cache, its last the output, with an input of 0). Before, each chunk's counts replaced the
    ones before: the call recorded an input of 0 beside 500 cache tokens, and its cost left the input out."""
    from langchain_core.messages import AIMessageChunk

    def usage(input_tokens: int, output_tokens: int, **details: int) -> dict[str, Any]:
        return {"input_tokens": input_tokens, "output_tokens": output_tokens,
                "total_tokens": input_tokens + output_tokens, "input_token_details": details}

    @agent_otel.provider("anthropic", model="claude-sonnet-4")
    def stream() -> Iterator[AIMessageChunk]:
        yield AIMessageChunk("", usage_metadata=usage(1000, 1, cache_read=400, cache_creation=100),
                             response_metadata={"model_name": "claude-sonnet-4-20250514"})
        yield AIMessageChunk("sunny")
        yield AIMessageChunk("", usage_metadata=usage(0, 299))

    chunks = list(stream())
    total = chunks[0] + chunks[1] + chunks[2]  # LangChain's own sum
    assert total.usage_metadata is not None and total.usage_metadata["input_tokens"] == 1000
    price = DEFAULT_PRICES["claude-sonnet-4"]
    assert price.cache_read is not None and price.cache_write is not None
    attributes = cost_attributes(otel, "chat claude-sonnet-4")
    assert attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 1000
    assert attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 300
    assert attributes[semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 400
    assert attributes[semconv.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS] == 100
    assert attributes[semconv.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(
        usd(500, price.input) + usd(400, price.cache_read) + usd(100, price.cache_write) + usd(300, price.output))


def test_a_langgraph_message_streams_pairs_are_read_for_their_chunks_usage(otel: Any) -> None:
    """LangGraph's ``stream(stream_mode="messages")`` yields (message chunk, metadata) pairs: a provider returning it
    read none of the chunks' usage (a pair has no field). Each pair's chunk is read as a LangChain chunk is: their
    usage adds up, and the model is read off the chunk that names it, which shows no usage (langchain-openai's finish
    chunk; a first version read only the pairs whose chunk showed usage)."""
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
    from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
    from langgraph.graph import END, START, MessagesState, StateGraph

    class ChunkedModel(BaseChatModel):
        """A chat model whose stream's first chunk has the input, its last the output (Anthropic's shape)."""

        @property
        def _llm_type(self) -> str:
            return "chunked"

        def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                      **kwargs: Any) -> ChatResult:
            return ChatResult(generations=[ChatGeneration(message=AIMessage("sunny"))])

        def _stream(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                    **kwargs: Any) -> Iterator[ChatGenerationChunk]:
            for chunk in (AIMessageChunk("", usage_metadata={"input_tokens": 1000, "output_tokens": 1,
                                                              "total_tokens": 1001}),
                          AIMessageChunk("sunny", response_metadata={"model_name": "claude-sonnet-4-20250514"}),
                          AIMessageChunk("", usage_metadata={"input_tokens": 0, "output_tokens": 299,
                                                              "total_tokens": 299})):
                generation = ChatGenerationChunk(message=chunk)
                if run_manager is not None:
                    run_manager.on_llm_new_token(str(chunk.content), chunk=generation)
                yield generation

    model = ChunkedModel()
    builder = StateGraph(MessagesState)
    builder.add_node("llm", lambda state: {"messages": [model.invoke(state["messages"])]})
    builder.add_edge(START, "llm")
    builder.add_edge("llm", END)
    graph = builder.compile()

    @agent_otel.provider("anthropic", model="claude-sonnet-4")
    def stream() -> Iterator[Any]:
        return graph.stream({"messages": [("user", "weather?")]}, stream_mode="messages")

    pairs = list(stream())
    assert [type(pair) for pair in pairs] == [tuple] * len(pairs) and len(pairs) >= 3
    attributes = cost_attributes(otel, "chat claude-sonnet-4")
    tokens = (attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS], attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS])
    assert tokens == (1000, 300)
    span = otel.span("chat claude-sonnet-4")  # the model, off the chunk that names it and shows no usage
    assert span.attributes[semconv.GEN_AI_RESPONSE_MODEL] == "claude-sonnet-4-20250514"


def test_a_langchain_stream_returned_through_a_router_counts_its_chunks_once(otel: Any) -> None:
    """LangChain chunks whose usage adds up, of a call inside a router that returns its stream: each chunk's usage is
    the inner call's, and the router, reading the same chunks after it, adds none of them (it counted them twice)."""
    from langchain_core.messages import AIMessageChunk

    @agent_otel.provider("anthropic", model="claude-sonnet-4")
    def stream() -> Iterator[AIMessageChunk]:
        yield AIMessageChunk("", usage_metadata={"input_tokens": 1000, "output_tokens": 1, "total_tokens": 1001})
        yield AIMessageChunk("sunny")
        yield AIMessageChunk("", usage_metadata={"input_tokens": 0, "output_tokens": 299, "total_tokens": 299})

    @agent_otel.provider("router", model="auto")
    def route() -> Iterator[AIMessageChunk]:
        return stream()

    with agent_otel.job(type="routed"):
        assert len(list(route())) == 3
    attributes = otel.span(semconv.job_span_name("routed")).attributes
    assert (attributes[semconv.JOB_ROLLUP_INPUT_TOKENS], attributes[semconv.JOB_ROLLUP_OUTPUT_TOKENS]) == (1000, 300)
    assert sum(p.value for p in points(otel, semconv.CLIENT_USAGE_INPUT_TOKENS.name)) == 1000


def test_a_langchain_stream_yielding_its_accumulated_message_counts_its_usage_once(otel: Any) -> None:
    """A stream that yields the message so far (``acc = acc + chunk``), whose usage is a running total: each one
    replaces the count before it. A first version of the sum above added them up, four times the input here."""
    from langchain_core.messages import AIMessageChunk

    def usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
        return {"input_tokens": input_tokens, "output_tokens": output_tokens,
                "total_tokens": input_tokens + output_tokens}

    parts = [AIMessageChunk("", usage_metadata=usage(1000, 1)), AIMessageChunk("sun"), AIMessageChunk("ny"),
             AIMessageChunk("", usage_metadata=usage(0, 299))]

    @agent_otel.provider("anthropic", model="claude-sonnet-4")
    def stream() -> Iterator[AIMessageChunk]:
        accumulated = parts[0]
        yield accumulated
        for part in parts[1:]:
            accumulated = accumulated + part
            yield accumulated

    *_, last = stream()
    assert last.usage_metadata is not None and last.usage_metadata["input_tokens"] == 1000
    attributes = cost_attributes(otel, "chat claude-sonnet-4")
    assert attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 1000
    assert attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 300


class RateLimited(Exception):
    pass


@pytest.mark.parametrize("shape", ["fallback", "router", "router returning its own dict"])
def test_a_call_returning_what_a_nested_call_of_another_provider_answered_counts_its_tokens_once(
        otel: Any, shape: str) -> None:
    """The README's fallback pattern (an ``openai`` call that falls back to a decorated ``anthropic`` one and
    returns its answer) and a router over a decorated call counted that answer's tokens and cost twice: once
    by the nested call, again by the outer one reading the same usage off its result. Each is still a call."""
    message = anthropic_message("claude-sonnet-4-20250514", fresh_input=600, output=200, cache_read=0, cache_write=0)

    @agent_otel.provider("anthropic", model="claude-sonnet-4")
    def claude() -> Message:
        return message

    @agent_otel.provider("openai" if shape == "fallback" else "router", model="gpt-4o")
    def answer() -> Any:
        if shape == "fallback":
            try:
                raise RateLimited("429")
            except RateLimited:
                agent_otel.record_fallback(to="anthropic", reason="rate_limit")
                return claude()
        reply = claude()
        return reply if shape == "router" else {"text": reply.content, "usage": reply.usage}

    with agent_otel.job(type="answering") as job:
        answer()
        job_id = job.id
    one = cost_of("claude-sonnet-4", 600, 200)
    assert sum(p.sum for p in points(otel, COST)) == pytest.approx(one)
    assert sum(p.sum for p in points(otel, semconv.CLIENT_OPERATION_INPUT_TOKENS.name)) == 600
    assert sum(p.count for p in points(otel, semconv.CLIENT_INFERENCE_DURATION.name)) == 2  # two calls
    (job_span,) = [span for span in otel.spans() if span.attributes.get(semconv.JOB_ID) == job_id
                   and span.name.startswith("invoke_workflow")]
    assert job_span.attributes[semconv.JOB_ROLLUP_INPUT_TOKENS] == 600
    assert job_span.attributes[semconv.JOB_ROLLUP_COST] == pytest.approx(one)
    if shape != "router returning its own dict":  # the answer names the model that gave it (the dict does not)
        # the outer call's response model is the one that answered it, as when it counts the tokens itself (it had
        # none: the answer's tokens counted below, its model was left unread with them)
        outer = otel.span("chat gpt-4o")
        assert outer.attributes[semconv.GEN_AI_RESPONSE_MODEL] == "claude-sonnet-4-20250514"
        durations = {p.attributes[semconv.GEN_AI_PROVIDER_NAME]: p.attributes.get(semconv.GEN_AI_RESPONSE_MODEL)
                     for p in points(otel, semconv.CLIENT_INFERENCE_DURATION.name)}
        assert durations[outer.attributes[semconv.GEN_AI_PROVIDER_NAME]] == "claude-sonnet-4-20250514"


def test_a_call_answering_with_its_own_request_still_counts_it_beside_a_nested_call_of_another_provider(
        otel: Any) -> None:
    @agent_otel.provider("anthropic", model="claude-sonnet-4")
    def summarise() -> Message:
        return anthropic_message("claude-sonnet-4-20250514", fresh_input=100, output=10, cache_read=0, cache_write=0)

    @agent_otel.provider("openai", model="gpt-4o")
    def answer() -> ChatCompletion:
        summarise()
        return chat_completion("gpt-4o", prompt=1000, completion=50, cached=0, reasoning=0)

    answer()
    assert sum(p.sum for p in points(otel, semconv.CLIENT_OPERATION_INPUT_TOKENS.name)) == 1100


def test_a_price_table_that_is_no_table_is_a_configuration_error() -> None:
    """``set_prices([1])`` was a bare AttributeError ('list' object has no attribute 'items')."""
    with pytest.raises(ConfigurationError, match=r"^prices: expected a table of model name -> .*, got list$"):
        agent_otel.set_prices([1])  # type: ignore[arg-type]


@pytest.mark.parametrize("cost", [None, "abc"], ids=["finds nothing", "unreadable"])
def test_a_cost_extractor_without_a_cost_leaves_the_price_tables(otel: Any, cost: Any) -> None:
    """``cost=path("result.cost")`` on a result without one (or with one that is no number, counted): the call's
    cost came from nowhere, neither priced nor counted unpriced, and its job said it cost 0.0."""
    @agent_otel.provider("openai", model=agent_otel.path("args.model"), cost=agent_otel.path("result.cost"))
    def complete(model: str) -> dict[str, Any]:
        return {"usage": {"prompt_tokens": 1000, "completion_tokens": 100}, "cost": cost}

    with agent_otel.job(type="priced"):
        complete("gpt-4o")
    with agent_otel.job(type="unpriced"):
        complete("house-llm")
    gpt_4o = DEFAULT_PRICES["gpt-4o"]
    assert point(otel, COST).sum == pytest.approx(usd(1000, gpt_4o.input) + usd(100, gpt_4o.output))
    assert point(otel, UNPRICED).value == 1 and dict(point(otel, UNPRICED).attributes)[
        semconv.GEN_AI_REQUEST_MODEL] == "house-llm"
    assert error_count(otel, "provider.cost") == (1 if cost == "abc" else 0) * 2
    # a job whose model calls had no price has no cost: 0.0 would read as a free job
    unpriced = otel.span(semconv.job_span_name("unpriced")).attributes
    assert semconv.JOB_ROLLUP_COST not in unpriced and unpriced[semconv.JOB_ROLLUP_UNPRICED_CALLS] == 1
    priced = otel.span(semconv.job_span_name("priced")).attributes
    assert priced[semconv.JOB_ROLLUP_COST] == pytest.approx(usd(1000, gpt_4o.input) + usd(100, gpt_4o.output))


def test_a_job_whose_model_calls_reported_no_usage_has_no_cost_and_one_without_model_calls_cost_nothing(
        otel: Any) -> None:
    """A model call cancelled or failed before its usage came, or answered with none: its cost is not known, and
    the job's ``job.usage.cost`` read 0.0, a free job. A job that made no model call did cost nothing."""
    @agent_otel.provider("openai", model="gpt-4o")
    async def complete(answer: bool) -> dict[str, Any]:
        if not answer:
            await asyncio.sleep(3600)  # cancelled below
        return {"choices": []}  # no usage

    async def cancelled() -> None:
        task = asyncio.ensure_future(complete(False))
        await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    with agent_otel.job(type="cancelled"):
        asyncio.run(cancelled())
    with agent_otel.job(type="no-usage"):
        asyncio.run(complete(True))
    with agent_otel.job(type="no-model-call"):
        pass
    for job_type in ("cancelled", "no-usage"):
        attributes = otel.span(semconv.job_span_name(job_type)).attributes
        assert attributes[semconv.JOB_ROLLUP_PROVIDER_CALLS] == 1 and semconv.JOB_ROLLUP_COST not in attributes
    assert otel.span(semconv.job_span_name("no-model-call")).attributes[semconv.JOB_ROLLUP_COST] == 0.0


def test_a_jobs_model_calls_without_usage_are_counted_unpriced_beside_its_priced_ones(otel: Any) -> None:
    """A job with one priced call and one whose usage never came (a stream closed early, one still open as the job
    ended, one answered without usage) gave ``job.usage.cost`` as the whole cost: nothing said it left calls out."""

    @agent_otel.provider("openai", model="gpt-4o")
    def priced() -> dict[str, Any]:
        return {"usage": {"prompt_tokens": 1000, "completion_tokens": 100}}

    @agent_otel.provider("openai", model="gpt-4o")
    def stream() -> Iterator[dict[str, Any]]:
        yield {"choices": [{"delta": {"content": "a"}}]}
        yield {"choices": [{"delta": {"content": "b"}}]}
        yield {"choices": [], "usage": {"prompt_tokens": 5000, "completion_tokens": 800}}

    @agent_otel.provider("openai", model="gpt-4o")
    def without_usage() -> dict[str, Any]:
        return {"choices": []}

    with agent_otel.job(type="closed-early"):
        priced()
        for _ in stream():
            break
    held = None
    with agent_otel.job(type="held-past-block"):
        priced()
        held = stream()
        next(held)
    held.close()
    with agent_otel.job(type="no-usage"):
        priced()
        without_usage()
    with agent_otel.job(type="read-whole"):
        priced()
        list(stream())
    price = DEFAULT_PRICES["gpt-4o"]
    one = usd(1000, price.input) + usd(100, price.output)
    rollups = {span.attributes[semconv.JOB_TYPE]: (span.attributes.get(semconv.JOB_ROLLUP_UNPRICED_CALLS),
                                                   span.attributes.get(semconv.JOB_ROLLUP_COST))
               for span in otel.spans() if span.name.startswith("invoke_workflow")}
    assert rollups == {"closed-early": (1, pytest.approx(one)), "held-past-block": (1, pytest.approx(one)),
                       "no-usage": (1, pytest.approx(one)),
                       "read-whole": (None, pytest.approx(one + usd(5000, price.input) + usd(800, price.output)))}


def test_a_router_that_answers_with_text_is_priced_by_the_request_it_made(otel: Any) -> None:
    """A router (a provider of its own) around an SDK call of another provider, returning only the text: its request
    was priced where it was made, so the job's cost is whole. Its end, with no usage of its own, counted it among
    the job's unpriced calls; so did a fallback's whose first provider failed before the second answered."""

    @agent_otel.provider("openai", model="gpt-4o")
    def complete(fail: bool = False) -> dict[str, Any]:
        if fail:
            raise TimeoutError
        return {"choices": [{"message": {"content": "hi"}}], "usage": {"prompt_tokens": 1000, "completion_tokens": 100}}

    @agent_otel.provider("router", model="auto")
    def route() -> str:
        try:
            complete(fail=True)
        except TimeoutError:
            pass
        return str(complete()["choices"][0]["message"]["content"])

    with agent_otel.job(type="routed"):
        assert route() == "hi"
    attributes = otel.span(semconv.job_span_name("routed")).attributes
    price = DEFAULT_PRICES["gpt-4o"]
    assert attributes[semconv.JOB_ROLLUP_PROVIDER_CALLS] == 3
    assert attributes[semconv.JOB_ROLLUP_COST] == pytest.approx(usd(1000, price.input) + usd(100, price.output))
    assert attributes[semconv.JOB_ROLLUP_UNPRICED_CALLS] == 1  # the failed attempt: what it cost is not known


@pytest.mark.parametrize("shape", ["response through a helper", "stream", "stream through a helper",
                                   "own stream, then another's", "stream through another provider's wrapper"])
def test_a_router_returning_what_a_call_inside_answered_does_not_count_its_tokens_again(otel: Any, shape: str) -> None:
    """A router (a provider of its own) that returns the answer of a call inside it: its response object through a
    same-provider helper, or its stream, read after the router returned. The router read the same usage again: the
    job's and the metrics' tokens and cost were twice the request's."""

    def chunks() -> Iterator[dict[str, Any]]:
        yield {"model": "gpt-4o", "choices": [{"delta": {"content": "hi"}}], "usage": None}
        yield {"model": "gpt-4o", "choices": [], "usage": {"prompt_tokens": 1000, "completion_tokens": 100}}

    answer = {"model": "gpt-4o", "usage": {"prompt_tokens": 1000, "completion_tokens": 100}}

    @agent_otel.provider("openai", model="gpt-4o")
    def create() -> Any:
        return answer if shape == "response through a helper" else chunks()

    @agent_otel.provider("openai", model="gpt-4o")
    def helper() -> Any:  # a retrying wrapper around the SDK call
        return create()

    @agent_otel.provider("anthropic", model="claude-sonnet-4")
    def wrapper() -> Any:  # a call of a third provider that hands on create()'s stream
        return create()

    @agent_otel.provider("router", model="gpt-4o")
    def route() -> Any:
        if shape == "stream through another provider's wrapper":
            return wrapper()
        if shape == "own stream, then another's":  # its own request's stream (priced as gpt-4o), then create()'s
            return itertools.chain(({"choices": [], "usage": {"prompt_tokens": 1000, "completion_tokens": 100}},),
                                   create())
        return create() if shape == "stream" else helper()

    with agent_otel.job(type="routed"):
        result = route()
        if shape != "response through a helper":
            assert [chunk["choices"] for chunk in result][-2:] == [[{"delta": {"content": "hi"}}], []]
    requests = 2 if shape == "own stream, then another's" else 1
    price = DEFAULT_PRICES["gpt-4o"]
    expected = (usd(1000, price.input) + usd(100, price.output)) * requests
    attributes = otel.span(semconv.job_span_name("routed")).attributes
    assert (attributes[semconv.JOB_ROLLUP_INPUT_TOKENS], attributes[semconv.JOB_ROLLUP_COST]) == (
        1000 * requests, pytest.approx(expected))
    assert sum(p.value for p in points(otel, semconv.CLIENT_USAGE_INPUT_TOKENS.name)) == 1000 * requests
    assert sum(p.value for p in points(otel, semconv.CLIENT_COST.name)) == pytest.approx(expected)


def test_a_routers_long_stream_keeps_only_the_last_usage_read_below_it(otel: Any) -> None:
    """Every usage object read by the call inside a router's stream went into a list the router scanned for each
    chunk and kept to its end: quadratic CPU (9 s for 32,000 chunks that each carry usage) and memory growing with
    the stream. The router keeps the last few, which is all it reads them against."""

    @agent_otel.provider("google", model="gemini-2.0-flash")
    def create() -> Iterator[dict[str, Any]]:  # a running total on every chunk, as Gemini's stream has it
        return iter([{"usage": {"prompt_tokens": 10, "completion_tokens": n}} for n in range(1, 2001)])

    @agent_otel.provider("router", model="auto")
    def route() -> Any:
        return create()

    stream = route()
    assert len(list(stream)) == 2000
    router = stream._self_inv  # the router's invocation, which its stream proxy holds
    assert len(router.read_below) <= 16 and len(router.answers_below) <= 2
    assert sum(p.value for p in points(otel, semconv.CLIENT_USAGE_OUTPUT_TOKENS.name)) == 2000


def test_a_token_option_is_a_number_never_the_length_of_a_list_or_table(otel: Any) -> None:
    """A path aimed one level too high (at the usage dict) recorded the dict's length as the tokens, over the
    1500 the result reports; it is dropped and counted now, and the usage read off the result stays. A literal
    list, or a count no call can read (above 2**32), is refused where the decorator is applied."""
    @agent_otel.provider("openai", model="gpt-4o", input_tokens=agent_otel.path("result.usage"))
    def complete() -> dict[str, Any]:
        return {"usage": {"prompt_tokens": 1500, "completion_tokens": 10}}

    complete()
    assert otel.span("chat gpt-4o").attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 1500
    assert error_count(otel, "provider.input_tokens") == 1
    for literal in (["a", "b", "c"], 2**40):
        with pytest.raises(ConfigurationError, match="output_tokens"):
            agent_otel.provider("openai", model="gpt-4o", output_tokens=literal)
    agent_otel.tool("t", files_created=["a.py"])  # a list of files is a count of files
