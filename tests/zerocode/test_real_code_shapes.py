"""Issue 13's shapes of real agent code, configured without a code change: the numbers are right.

The application is ``tests/zerocode/fix_coordinator`` (a fix coordinator with a provider chain and an
evolution engine, written without agent-otel's conventions), instrumented by
``tests/zerocode/fix_coordinator.toml``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import agent_otel
from agent_otel import semconv
from agent_otel._zerocode.config import load_file
from agent_otel._zerocode.patching import instrument, uninstrument
from tests.support.paths import ROOT
from tests.support.telemetry import assert_instrument, error_count, point, points

CONFIG = ROOT / "tests" / "zerocode" / "fix_coordinator.toml"
OPERATION = semconv.CLIENT_INFERENCE_DURATION.name


@pytest.fixture
def app(otel: Any) -> Iterator[Any]:
    instrument(load_file(CONFIG))
    from tests.zerocode.fix_coordinator import agents, evolution, llm

    class App:
        pass

    found = App()
    found.llm, found.agents, found.evolution = llm, agents, evolution  # type: ignore[attr-defined]
    yield found
    uninstrument()


def chain_of(llm: Any, *, openai_failures: int = 0, openai_healthy: bool = True) -> Any:
    openai = llm.Client("openai", "gpt-4o-mini", healthy=openai_healthy, failures_left=openai_failures,
                        usage=llm.Usage(600, 40))  # totals from earlier calls of a long-lived client
    anthropic = llm.Client("anthropic", "claude-haiku")
    chain = llm.ProviderChain([llm.RetryingProvider(openai), llm.RetryingProvider(anthropic)])
    return chain


def test_running_totals_nested_providers_and_retries_count_one_request(app: Any, otel: Any) -> None:
    chain = chain_of(app.llm, openai_failures=1)
    with agent_otel.job(type="fix") as job:
        job_id = job.id
        result = app.agents.FixAgent(chain).fix(["a b c"])
    assert result == {"success": ["openai: fixed a b c"], "summary": "1 fixes"}

    # delta: the running totals moved by 10 (the failed attempt's prompt) + 30 and by 4; never 640/44
    inputs = points(otel, semconv.CLIENT_OPERATION_INPUT_TOKENS.name, {semconv.GEN_AI_PROVIDER_NAME: "openai"})
    outputs = points(otel, semconv.CLIENT_OPERATION_OUTPUT_TOKENS.name, {semconv.GEN_AI_PROVIDER_NAME: "openai"})
    assert sum(p.sum for p in inputs) == 40 and sum(p.count for p in inputs) == 2  # each attempt, once
    assert sum(p.sum for p in outputs) == 4
    # the outer function is the one logical request; the two raw requests inside it are not more calls
    chat = points(otel, OPERATION, {semconv.GEN_AI_PROVIDER_NAME: "openai", semconv.GEN_AI_OPERATION_NAME: "chat"})
    assert sum(p.count for p in chat) == 1
    # the retry, counted against the enclosing provider call, with its reason
    retry = point(otel, semconv.CLIENT_RETRIES.name)
    assert retry.value == 1
    assert dict(retry.attributes) == {semconv.GEN_AI_PROVIDER_NAME: "openai",
                                      semconv.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
                                      semconv.AGENT_OTEL_RETRY_REASON: "rate_limit"}
    assert_instrument(otel, semconv.CLIENT_RETRIES)
    # selection chose the first provider: no fallback happened
    assert semconv.CLIENT_FALLBACKS.name not in otel.metrics()
    # the job roll-up: one chat request plus one health check, tokens once
    job_span = otel.span(semconv.job_span_name("fix"))
    assert job_span.attributes[semconv.JOB_ID] == job_id
    assert job_span.attributes[semconv.JOB_ROLLUP_PROVIDER_CALLS] == 2
    assert job_span.attributes[semconv.JOB_ROLLUP_INPUT_TOKENS] == 40
    assert job_span.attributes[semconv.JOB_ROLLUP_OUTPUT_TOKENS] == 4
    # both spans stay: the raw requests are children of the outer one, which carries no tokens
    requests = [s for s in otel.spans() if s.name == "chat gpt-4o-mini"]
    assert len(requests) == 3
    outer = [s for s in requests if semconv.GEN_AI_USAGE_INPUT_TOKENS not in s.attributes]
    assert len(outer) == 1 and outer[0].attributes[semconv.AGENT_OTEL_RETRY_COUNT] == 1
    inner = [s for s in requests if s is not outer[0]]
    assert all(s.parent is not None and s.parent.span_id == outer[0].context.span_id for s in inner)
    assert sorted(s.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] for s in inner) == [10, 30]


def test_health_check_false_is_unavailable_and_a_fallback_counts_only_when_it_happened(app: Any,
                                                                                      otel: Any) -> None:
    chain = chain_of(app.llm, openai_healthy=False)
    assert chain.generate("x") == "anthropic: fixed x"
    health = {dict(p.attributes).get(semconv.GEN_AI_PROVIDER_NAME): dict(p.attributes)
              for p in points(otel, OPERATION, {semconv.GEN_AI_OPERATION_NAME: "health_check"})}
    assert health["openai"][semconv.ERROR_TYPE] == semconv.ERROR_TYPE_UNAVAILABLE
    assert semconv.ERROR_TYPE not in health["anthropic"]
    fallback = point(otel, semconv.CLIENT_FALLBACKS.name)
    assert fallback.value == 1
    assert dict(fallback.attributes) == {semconv.GEN_AI_PROVIDER_NAME: "openai",
                                         semconv.AGENT_OTEL_FALLBACK_TO: "anthropic",
                                         semconv.AGENT_OTEL_FALLBACK_REASON: "unhealthy"}
    chain.providers[0].client.healthy = True
    chain.generate("y")  # chose the first one again: still one fallback
    assert point(otel, semconv.CLIENT_FALLBACKS.name).value == 1


def test_outcomes_from_lists_and_states(app: Any, otel: Any) -> None:
    chain = chain_of(app.llm)
    fixer = app.agents.FixAgent(chain)
    assert fixer.fix(["unfixable"]) == {"success": [], "summary": "0 fixes"}
    fixer.fix(["ok"])
    stepper = app.agents.StepAgent(max_steps=3)
    assert stepper.run(5).state == "max_steps_error"
    stepper.run(2)

    def outcomes(name: str) -> dict[str, int]:
        found = points(otel, semconv.AGENT_DURATION.name, {semconv.GEN_AI_AGENT_NAME: name})
        return {p.attributes[semconv.AGENT_OUTCOME]: p.count for p in found}

    assert outcomes("fixer") == {"failure": 1, "success": 1}
    assert outcomes("stepper") == {"failure": 1, "success": 1}
    failed = [s for s in otel.spans("invoke_agent stepper") if s.attributes[semconv.AGENT_OUTCOME] == "failure"]
    assert failed[0].attributes[semconv.ERROR_MESSAGE] == "gave up after 3 steps"
    fixed = [s for s in otel.spans("invoke_agent fixer") if s.attributes[semconv.AGENT_OUTCOME] == "success"]
    assert fixed[0].attributes["fix.summary"] == "1 fixes"
    assert fixed[0].attributes[semconv.AGENT_RESULT_PREFIX + "fixes_applied"] == 1


def test_evolution_reads_kpis_before_at_the_start_strategy_at_the_end_and_rollbacks(app: Any, otel: Any) -> None:
    engine = app.evolution.Engine("fixer")
    engine.evolve(0.8)
    engine.evolve(0.6)  # regressed: the engine restores its checkpoint inside the run
    engine.evolve(-1.0)  # the candidate could not be evaluated
    runs = sorted(otel.spans("evolve fixer"), key=lambda s: s.start_time or 0)
    assert [s.attributes[semconv.EVOLUTION_STATUS] for s in runs] == ["succeeded", "rolled_back", "failed"]
    first = runs[0].attributes
    assert first[semconv.EVOLUTION_KPI_BEFORE_PREFIX + "accuracy"] == 0.7  # read before the run changed it
    assert first[semconv.EVOLUTION_KPI_AFTER_PREFIX + "accuracy"] == 0.8
    assert first[semconv.EVOLUTION_KPI_DELTA_PREFIX + "accuracy"] == pytest.approx(0.1)  # the engine's own
    assert semconv.EVOLUTION_KPI_DELTA_PREFIX + "latency_s" not in first
    assert first[semconv.EVOLUTION_STRATEGY] == "prompt_rewrite"  # chosen inside the run
    assert first["evolution.generation"] == 1
    assert runs[1].attributes[semconv.EVOLUTION_ROLLBACK] is True
    assert runs[2].attributes[semconv.ERROR_MESSAGE] == "candidate evaluation failed"
    statuses = {p.attributes[semconv.EVOLUTION_STATUS]: p.value
                for p in points(otel, semconv.EVOLUTION_ATTEMPTS.name)}
    assert statuses == {"succeeded": 1, "rolled_back": 1, "failed": 1}
    assert error_count(otel, "rollback.outside_run") == 0
    engine.restore_checkpoint()  # outside a run: counted, never raised
    assert error_count(otel, "rollback.outside_run") == 1
