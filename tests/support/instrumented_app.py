"""An instrumented program for the Collector topology tests, run as ``python -m tests.support.instrumented_app``.

It calls ``agent_otel.configure()`` (OTLP, from the ``OTEL_*`` environment the test gives it) and then obeys
one JSON command per stdin line, answering each with one JSON line on stdout, so that a test decides when
work happens (e.g. before, during and after a Collector outage) without sleeping:

- ``{"jobs": N, "error_every": K}``: runs N jobs; each is one trace of :data:`SPANS_PER_TRACE` spans (the job,
  an agent invocation, a tool call and a provider call inside it); the agent of every K-th job raises (K=0:
  none), which makes that trace an error trace. Answers the trace ids (hex) with whether each errored, and
  the wall time of each job call in seconds, as the host sees it.
- ``{"flush": true}``: flushes spans and metrics now; answers ``{"flushed": ...}``.

agent-otel's own warnings (e.g. ``export.traces failed``) go to stderr, where the test reads them.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from types import SimpleNamespace
from typing import Any

from opentelemetry import trace

import agent_otel

#: Spans in every job's trace: the job, the agent invocation, the tool call and the provider call.
SPANS_PER_TRACE = 4
AGENT = "gateway-planner"


class PlannedFailure(RuntimeError):
    """The error an error trace carries."""


@agent_otel.tool("search", type="function")
def search(query: str) -> str:
    return f"results for {query}"


@agent_otel.provider("openai", model="gpt-4o-mini", operation="chat")
def complete(prompt: str) -> SimpleNamespace:
    return SimpleNamespace(model="gpt-4o-mini", usage=SimpleNamespace(prompt_tokens=120, completion_tokens=30))


@agent_otel.agent(AGENT, task_type="plan")
def plan(n: int, fail: bool) -> dict[str, Any]:
    search(f"issue {n}")
    complete(f"plan issue {n}")
    if fail:
        raise PlannedFailure("planned failure")
    return {"success": True, "confidence": 0.9}


def run_job(n: int, fail: bool) -> str:
    with agent_otel.job(type="gateway-test"):
        trace_id = format(trace.get_current_span().get_span_context().trace_id, "032x")
        try:
            plan(n, fail)
        except PlannedFailure:
            pass
    return trace_id


def run(command: dict[str, Any], done: int) -> dict[str, Any]:
    if command.get("flush"):
        telemetry = agent_otel.configure()
        flushed = [provider.force_flush(10_000)  # type: ignore[union-attr]  # the SDK providers configure() built
                   for provider in (telemetry.tracer_provider, telemetry.meter_provider)]
        return {"flushed": flushed}
    every = int(command.get("error_every", 0))
    traces: list[tuple[str, bool]] = []
    durations: list[float] = []
    for n in range(done, done + int(command["jobs"])):
        fail = bool(every) and n % every == 0
        start = time.perf_counter()
        trace_id = run_job(n, fail)
        durations.append(time.perf_counter() - start)
        traces.append((trace_id, fail))
    return {"traces": traces, "durations_s": durations}


def main() -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    agent_otel.configure()
    print(json.dumps({"ready": True}), flush=True)
    done = 0
    for line in sys.stdin:
        command = json.loads(line)
        answer = run(command, done)
        done += len(answer.get("traces", ()))
        print(json.dumps(answer), flush=True)
    agent_otel.shutdown()


if __name__ == "__main__":
    main()
