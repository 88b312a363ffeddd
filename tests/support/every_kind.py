"""One workload that records every instrument of the contract: a job with two agents (one reporting a
non-numeric confidence, counted on the instrumentation error counter), three model calls (tokens, cost,
a retry, a fallback, a stream), a call of a model with no price, two tools, a workflow phase and pattern and
an evolution run. The exposition and OTLP tests both drive it, so that they check the same telemetry on
their two export paths."""

from __future__ import annotations

import asyncio
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider

import agent_otel
from agent_otel import path, semconv
from agent_otel._engine.instruments import Runtime


@agent_otel.tool("ruff", type="function")
def run_ruff(target: str) -> str:
    return target


@agent_otel.provider("openai", model="gpt-4o", retries=path("result.retries"))
def complete(prompt: str) -> dict[str, Any]:
    agent_otel.record_fallback(to="anthropic", reason="rate_limit")
    return {"model": "gpt-4o-2024-08-06", "retries": 1,
            "usage": {"prompt_tokens": 120, "completion_tokens": 30,
                      "prompt_tokens_details": {"cached_tokens": 100},
                      "completion_tokens_details": {"reasoning_tokens": 12}}}


@agent_otel.provider("anthropic", model="claude-sonnet-4")
async def stream(prompt: str) -> Any:
    yield {"type": "message_start", "message": {"model": "claude-sonnet-4-20250514",
                                             "usage": {"input_tokens": 50, "output_tokens": 1,
                                                       "cache_creation_input_tokens": 40}}}
    yield {"type": "message_delta", "usage": {"output_tokens": 20}}


@agent_otel.agent("refactor-agent", task_type=path("args.kind"), version="v2", attributes={"user.id": "alice"})
def handle(kind: str) -> dict[str, Any]:
    run_ruff("src/")
    complete("fix it")

    async def consume() -> None:
        async for _ in stream("more"):
            pass

    asyncio.run(consume())
    agent_otel.record_evaluation("relevance", 0.8, "pass")
    # confidence "high" is not a number: counted in agent_otel.instrumentation.errors
    return {"success": True, "confidence": "high", "fixes_applied": 2, "patterns_used": ["rename"]}


@agent_otel.evolution(path("args.agent"), type="nightly", strategy="prompt_optimization", version_from="v1",
                      version_to="v2")
def evolve(agent: str) -> dict[str, Any]:
    return {"kpis_before": {"success_rate": 0.5}, "kpis_after": {"success_rate": 0.7}, "iterations": 3}


def use_every_kind(job_id: str | None = None) -> None:
    with agent_otel.job(job_id, type="nightly", pattern="plan-and-execute"):
        with agent_otel.phase("implement"):  # a workflow phase: its duration, and the agent's and tool's calls in it
            handle("lint")
        with agent_otel.agent_call("planner", task_type="plan") as call:
            call.set_outcome(success=False, confidence=0.4)
        with agent_otel.provider_call("openai", model="gpt-4o-mini") as call:
            agent_otel.record_retry()
            call.set_outcome(usage={"prompt_tokens": 10, "completion_tokens": 5})
        with agent_otel.tool_call("shell"):
            pass
        with agent_otel.provider_call("local", model="house-llm") as call:  # no price: counted as unpriced
            call.set_outcome(usage={"input_tokens": 10, "output_tokens": 5})
        evolve("refactor-agent")


def record_everything(meter_provider: MeterProvider, tracer_provider: TracerProvider) -> str:
    """Record every contract instrument inside a sampled span; returns that span's trace id."""
    rt = Runtime(enabled=True, tracer=tracer_provider.get_tracer("t"), meter=meter_provider.get_meter("agent_otel"))
    with rt.tracer.start_as_current_span("recording") as span:
        for spec in semconv.INSTRUMENTS:
            attributes = {key: "v" for key in spec.attributes if key != semconv.ERROR_TYPE}
            if spec.kind is semconv.Kind.COUNTER:
                rt[spec].add(2, attributes)
            elif spec.kind is semconv.Kind.GAUGE:
                rt[spec].set(0.25, attributes)
            else:
                rt[spec].record(0.3, attributes)
        return format(span.get_span_context().trace_id, "032x")
