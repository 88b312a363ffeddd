"""A process that used every kind, exposed by the real OTel Prometheus reader, passes promtool."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import agent_otel
from agent_otel import path, semconv
from agent_otel.setup import histogram_views

PROMTOOL = "/usr/bin/promtool"


@agent_otel.tool("ruff", type="function")
def run_ruff(target: str) -> str:
    return target


@agent_otel.provider("openai", model="gpt-4o", retries=path("result.retries"))
def complete(prompt: str) -> dict[str, Any]:
    agent_otel.record_fallback(to="anthropic", reason="rate_limit")
    return {"model": "gpt-4o-2024-08-06", "retries": 1,
            "usage": {"prompt_tokens": 120, "completion_tokens": 30}}


@agent_otel.provider("anthropic", model="claude-sonnet-4")
async def stream(prompt: str) -> Any:
    yield {"type": "message_start", "message": {"usage": {"input_tokens": 50, "output_tokens": 1}}}
    yield {"type": "message_delta", "usage": {"output_tokens": 20}}


@agent_otel.agent("refactor-agent", task_type=path("args.kind"), attributes={"user.id": "alice"})
def handle(kind: str) -> dict[str, Any]:
    run_ruff("src/")
    complete("fix it")

    async def consume() -> None:
        async for _ in stream("more"):
            pass

    asyncio.run(consume())
    return {"success": True, "confidence": "high", "fixes_applied": 2, "patterns_used": ["rename"]}


@agent_otel.evolution(path("args.agent"), type="nightly", strategy="prompt_optimization")
def evolve(agent: str) -> dict[str, Any]:
    return {"kpis_before": {"success_rate": 0.5}, "kpis_after": {"success_rate": 0.7}, "iterations": 3}


@pytest.fixture
def registry() -> Iterator[CollectorRegistry]:
    agent_otel.shutdown()
    registry = CollectorRegistry(auto_describe=True)
    meter_provider = MeterProvider(metric_readers=[PrometheusMetricReader(registry=registry)],
                                   views=histogram_views())
    agent_otel.configure(tracer_provider=TracerProvider(), meter_provider=meter_provider, set_global=False,
                         system_metrics=False)
    yield registry
    agent_otel.shutdown()
    meter_provider.shutdown()


def exposition_of_every_kind(registry: CollectorRegistry) -> str:
    with agent_otel.job(type="nightly"):
        handle("lint")
        with agent_otel.agent_call("planner", task_type="plan") as call:
            call.set_outcome(success=False, confidence=0.4)
        with agent_otel.provider_call("openai", model="gpt-4o-mini") as call:
            agent_otel.record_retry()
            call.set_outcome(usage={"prompt_tokens": 10, "completion_tokens": 5})
        with agent_otel.tool_call("shell"):
            pass
        evolve("refactor-agent")
    return generate_latest(registry).decode()


def test_every_kind_passes_promtool_and_has_no_id_label(registry: CollectorRegistry) -> None:
    text = exposition_of_every_kind(registry)
    assert os.access(PROMTOOL, os.X_OK), f"{PROMTOOL} is required for this test (install Debian's prometheus)"
    result = subprocess.run([PROMTOOL, "check", "metrics"], input=text, text=True, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr + text
    assert result.stdout.strip() == "" and result.stderr.strip() == "", result.stdout + result.stderr

    families = list(text_string_to_metric_families(text))
    samples = {s.name for f in families for s in f.samples}
    for spec in semconv.INSTRUMENTS:
        assert set(spec.prometheus_series) <= samples, spec.name
    id_labels = {key.replace(".", "_") for key in semconv.ID_ATTRIBUTES} | {"id", "job_id", "user_id", "trace_id"}
    labels = {label for f in families for s in f.samples for label in s.labels}
    assert not labels & id_labels, labels & id_labels
    assert "alice" not in text
    assert 'agent_otel_stage="agent.confidence"' in text
    assert 'gen_ai_agent_name="refactor-agent"' in text
