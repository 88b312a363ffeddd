"""The tokens and cost the span bridge reads off real frameworks' spans: a pydantic-ai agent over a
``FunctionModel`` whose usage the test chooses, with pydantic-ai's own instrumentation on."""

from __future__ import annotations

from typing import Any

import pytest

import agent_otel
from agent_otel import semconv
from tests.support import genai_apps as apps
from tests.support.telemetry import points

MODEL = "priced-fake-model"
PRICE = {"input": 3.0, "output": 15.0, "cache_read": 0.3, "cache_write": 3.75, "reasoning": 20.0}


def pydantic_ai_run(**usage: Any) -> None:
    """One pydantic-ai agent run whose single model call reports ``usage`` (``RequestUsage`` fields)."""
    from pydantic_ai import Agent
    from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
    from pydantic_ai.models.function import AgentInfo, FunctionModel
    from pydantic_ai.usage import RequestUsage

    def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return ModelResponse(parts=[TextPart("sunny")], usage=RequestUsage(**usage))

    Agent(FunctionModel(answer, model_name=MODEL), name=apps.AGENT_NAME).run_sync(apps.QUESTION)


def test_pydantic_ais_cache_write_and_reasoning_tokens_are_counted_and_priced(otel: Any) -> None:
    """pydantic-ai names cache writes ``gen_ai.usage.cache_creation.input_tokens`` (the core semconv package's
    name) and reasoning tokens only ``gen_ai.usage.details.reasoning_tokens``. Before, both were missed: no
    cache-write or reasoning tokens, and each priced at the plain input or output price."""
    agent_otel.set_prices({MODEL: PRICE})
    with apps.instrumented("pydantic-ai", otel.tracer_provider, otel.meter_provider):
        pydantic_ai_run(input_tokens=2600, cache_read_tokens=2000, cache_write_tokens=500, output_tokens=700,
                        details={"reasoning_tokens": 400})
    [chat] = [span for span in otel.spans() if span.name == f"chat {MODEL}"]
    assert chat.attributes["gen_ai.usage.cache_creation.input_tokens"] == 500  # what pydantic-ai emits
    assert chat.attributes["gen_ai.usage.details.reasoning_tokens"] == 400
    totals = {instrument.name: sum(p.value for p in points(otel, instrument.name))
              for instrument in (semconv.CLIENT_USAGE_CACHE_WRITE_TOKENS,
                                 semconv.CLIENT_USAGE_REASONING_TOKENS)}
    assert totals == {semconv.CLIENT_USAGE_CACHE_WRITE_TOKENS.name: 500,
                      semconv.CLIENT_USAGE_REASONING_TOKENS.name: 400}
    expected = (100 * 3.0 + 2000 * 0.3 + 500 * 3.75 + 300 * 15.0 + 400 * 20.0) / 1e6
    assert sum(p.value for p in points(otel, semconv.CLIENT_COST.name)) == pytest.approx(expected)
