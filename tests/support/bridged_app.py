"""``python -m tests.support.bridged_app SOURCE FAKE_URL SSE_URL``: one framework's program
(:mod:`tests.support.genai_apps`) with its real instrumentation on, in a process that ``agent_otel.configure()``
set up with our ``/metrics`` endpoint (``OTEL_EXPORTER_PROMETHEUS_PORT``), run once inside one job. Prints one
JSON line (the tokens the host got) when the job has ended, then serves ``/metrics`` until its standard input
closes, so that a real Prometheus can scrape what the span bridge recorded."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from opentelemetry import metrics, trace

import agent_otel
from tests.support import genai_apps as apps


def programs(fake_url: str, sse_url: str) -> dict[str, Callable[[], Any]]:
    """Each source's program against the fake model servers, as tests/bridge/test_sources.py runs it."""
    agent_url = apps.agent_url(fake_url)
    return {
        "openai": lambda: [apps.openai_chat_sync(agent_url), apps.openai_chat_async(agent_url),
                           apps.openai_chat_stream(sse_url + "/v1")],
        "pydantic-ai": apps.pydantic_ai_agent,
        "langchain": lambda: apps.langchain_agent(agent_url),
        "openai-agents+openai": lambda: apps.openai_agents_agent(agent_url),
        "smolagents": lambda: apps.smolagents_agent(agent_url),
    }


def main(source: str, fake_url: str, sse_url: str) -> None:
    agent_otel.configure(system_metrics=False)
    program = programs(fake_url, sse_url)[source]
    with ExitStack() as stack:
        if source.startswith("openai-agents"):
            stack.enter_context(apps.openai_agents_tracing_local())
        stack.enter_context(apps.instrumented(source, trace.get_tracer_provider(), metrics.get_meter_provider()))
        with agent_otel.job(type="bridged"):
            result = program()
    results = result if isinstance(result, list) else [result]
    print(json.dumps({"tokens": [[r.input_tokens, r.output_tokens] for r in results]}), flush=True)
    sys.stdin.read()  # serve /metrics until the test closes our stdin
    agent_otel.shutdown()


if __name__ == "__main__":
    main(*sys.argv[1:4])
