"""The naming modes: the current names (GenAI conventions v0.1.0 and agent-otel's own ``agent_otel.*``) by default,
and the previous ones too with ``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental/dup``, for a transition."""

from __future__ import annotations

from typing import Any

import pytest

import agent_otel
from agent_otel import semconv
from agent_otel._environment import OTEL_SEMCONV_STABILITY_OPT_IN
from agent_otel.testing import TelemetryCapture

PREVIOUS_NAMES = {spec.name for spec in semconv.PREVIOUS_LAYOUT}


def _call_with_retry_and_fallback() -> None:
    @agent_otel.provider("openai", model="gpt-4o")
    def chat() -> dict[str, Any]:
        agent_otel.record_retry(reason="rate_limit")
        agent_otel.record_fallback("anthropic", reason="timeout")
        return {"model": "gpt-4o", "usage": {"prompt_tokens": 120, "completion_tokens": 30}}

    with agent_otel.agent_call("planner"):
        chat()


def _provider_span(otel: TelemetryCapture) -> Any:
    [span] = [s for s in otel.spans() if s.name == "chat gpt-4o"]
    return span


def test_by_default_only_the_current_names_are_emitted(otel: TelemetryCapture) -> None:
    _call_with_retry_and_fallback()
    names = set(otel.metrics())
    assert {semconv.CLIENT_INFERENCE_DURATION.name, semconv.CLIENT_USAGE_INPUT_TOKENS.name,
            semconv.CLIENT_OPERATION_OUTPUT_TOKENS.name, semconv.CLIENT_RETRIES.name,
            semconv.CLIENT_FALLBACKS.name, semconv.CLIENT_COST.name} <= names
    assert not names & PREVIOUS_NAMES
    attributes = _provider_span(otel).attributes
    assert attributes[semconv.AGENT_OTEL_RETRY_COUNT] == 1
    assert attributes[semconv.AGENT_OTEL_FALLBACK_TO] == "anthropic"
    assert not set(attributes) & set(semconv.PREVIOUS_ATTRIBUTES.values())
    ours = (semconv.AGENT_OTEL_RETRY_COUNT, semconv.AGENT_OTEL_RETRY_REASON, semconv.AGENT_OTEL_FALLBACK_TO,
            semconv.CLIENT_RETRIES.name, semconv.CLIENT_FALLBACKS.name, semconv.CLIENT_COST.name)
    assert not any(key.startswith("gen_ai.") for key in ours)


def test_the_dup_opt_in_also_emits_the_previous_names(otel: TelemetryCapture,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(OTEL_SEMCONV_STABILITY_OPT_IN, f"http, {semconv.STABILITY_OPT_IN_DUP}")
    otel.reset()
    _call_with_retry_and_fallback()
    streamed_only = {semconv.PREVIOUS_CLIENT_TIME_TO_FIRST_CHUNK.name}
    assert PREVIOUS_NAMES - streamed_only <= set(otel.metrics())
    # the same call under both names
    [current] = otel.points(semconv.CLIENT_INFERENCE_DURATION.name)
    [previous] = otel.points(semconv.PREVIOUS_CLIENT_OPERATION_DURATION.name)
    assert previous.count == current.count == 1 and dict(previous.attributes) == dict(current.attributes)
    tokens = {p.attributes[semconv.PREVIOUS_TOKEN_TYPE]: p.sum
              for p in otel.points(semconv.PREVIOUS_CLIENT_TOKEN_USAGE.name)}
    assert tokens == {"input": 120, "output": 30}
    [fallback] = otel.points(semconv.PREVIOUS_CLIENT_FALLBACKS.name)
    assert fallback.attributes["gen_ai.fallback.to"] == "anthropic" and fallback.value == 1
    [retry] = otel.points(semconv.PREVIOUS_CLIENT_RETRIES.name)
    assert retry.attributes["gen_ai.retry.reason"] == "rate_limit"
    assert otel.points(semconv.PREVIOUS_CLIENT_COST.name)[0].value == otel.points(semconv.CLIENT_COST.name)[0].value
    attributes = _provider_span(otel).attributes
    assert attributes["gen_ai.client.retry_count"] == attributes[semconv.AGENT_OTEL_RETRY_COUNT] == 1
    assert attributes["gen_ai.fallback.reason"] == attributes[semconv.AGENT_OTEL_FALLBACK_REASON] == "timeout"


def test_other_opt_in_values_keep_the_current_names_only(otel: TelemetryCapture,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(OTEL_SEMCONV_STABILITY_OPT_IN, "gen_ai_latest_experimental")
    otel.reset()
    _call_with_retry_and_fallback()
    assert semconv.CLIENT_INFERENCE_DURATION.name in otel.metrics()
    assert not set(otel.metrics()) & PREVIOUS_NAMES
