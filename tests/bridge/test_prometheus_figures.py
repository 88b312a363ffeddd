"""Per framework, through a real Prometheus: each framework's program runs in its own process with its real
instrumentation on and agent-otel's ``/metrics`` (``configure()``), a real Prometheus scrapes them all, and the
provider calls, tokens, cost, tool calls and agent invocations it stores under agent-otel's scope (as the shipped
rules read them) equal the fake model's figures, as tests/bridge/test_sources.py states them per source.

The processes run side by side (one Prometheus, one scrape job per framework) and each is stopped by PID.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent_otel import semconv
from agent_otel._calls.pricing import cost_of
from agent_otel._ops.stack import free_port
from tests.bridge.test_sources import SOURCES, Bridged
from tests.support import genai_apps as apps
from tests.support.demo import stop
from tests.support.environment import CLEAN_ENV
from tests.support.fake_llm import FakeLLM
from tests.support.paths import ROOT
from tests.support.polling import wait_until
from tests.support.prometheus import RunningPrometheus
from tests.support.sse_llm import StreamingLLM

FRAMEWORKS = ["openai", "pydantic-ai", "langchain", "openai-agents+openai", "smolagents"]
OURS = f'otel_scope_name="{semconv.SCOPE_NAME}"'
START_TIMEOUT_S = 240.0  # five framework processes importing their libraries at once, on a shared machine


@dataclass
class Worker:
    source: str
    process: subprocess.Popen[str]
    log: Path
    host_tokens: list[list[int]] | None = None


@dataclass
class Scraped:
    prometheus: RunningPrometheus
    workers: dict[str, Worker]


def read_result(worker: Worker, deadline: float) -> list[list[int]]:
    """The JSON line the worker prints once its job has ended (its tokens), read with a deadline."""
    stdout = worker.process.stdout
    assert stdout is not None
    while True:
        remaining = deadline - time.monotonic()
        code = worker.process.poll()
        assert code is None, f"{worker.source} exited with {code}:\n{worker.log.read_text()[-3000:]}"
        assert remaining > 0, f"{worker.source} did not finish its program:\n{worker.log.read_text()[-3000:]}"
        ready, _, _ = select.select([stdout], [], [], min(remaining, 1.0))
        if ready:
            line = stdout.readline()
            if line.startswith("{"):
                tokens: list[list[int]] = json.loads(line)["tokens"]
                return tokens


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scraped]:
    work = tmp_path_factory.mktemp("bridged-prometheus")
    ports = {source: free_port() for source in FRAMEWORKS}
    workers: dict[str, Worker] = {}
    prometheus = None
    with FakeLLM() as fake, StreamingLLM() as sse:
        try:
            prometheus = RunningPrometheus(work / "prometheus", {
                "global": {"scrape_interval": "1s"},
                "scrape_configs": [{"job_name": source, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
                                   for source, port in ports.items()]})
            for source, port in ports.items():
                log = work / f"{source}.log"
                env = {**CLEAN_ENV, "OTEL_METRICS_EXPORTER": "prometheus", "OTEL_TRACES_EXPORTER": "none",
                       "OTEL_EXPORTER_PROMETHEUS_PORT": str(port), "OTEL_SERVICE_NAME": f"bridged-{source}",
                       "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), CLEAN_ENV.get("PYTHONPATH")]))}
                with open(log, "w") as stderr:
                    process = subprocess.Popen(
                        [sys.executable, "-m", "tests.support.bridged_app", source, fake.url, sse.url], cwd=ROOT,
                        env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True)
                workers[source] = Worker(source, process, log)
            deadline = time.monotonic() + START_TIMEOUT_S
            for worker in workers.values():
                worker.host_tokens = read_result(worker, deadline)
            yield Scraped(prometheus, workers)
        finally:
            for worker in workers.values():
                if worker.process.stdin is not None:
                    worker.process.stdin.close()  # it shuts down and exits
            for worker in workers.values():
                try:
                    worker.process.wait(30)
                except subprocess.TimeoutExpired:
                    stop(worker.process)  # type: ignore[arg-type]
                if worker.process.stdout is not None:
                    worker.process.stdout.close()
            if prometheus is not None:
                prometheus.stop()


def total(prometheus: RunningPrometheus, expr: str, at: float | None = None) -> float:
    return prometheus.value(f"sum({expr})", at) or 0.0


@pytest.mark.parametrize("source", FRAMEWORKS)
def test_prometheus_holds_the_fake_models_figures_per_framework(scraped: Scraped, source: str) -> None:
    prometheus, expected = scraped.prometheus, SOURCES[source].bridged
    selector = f'job="{source}",{OURS}'
    job_count = f"{semconv.JOB_DURATION.prometheus}_count{{{selector}}}"
    # the moment the job was there: every figure below is read then, all from the scrapes before it (read
    # "now", a failed scrape between two reads would leave the worker's series stale for the second)
    moments: list[float] = []

    def job_in_prometheus() -> bool:
        moments.append(time.time())
        return total(prometheus, job_count, moments[-1]) == 1

    wait_until(job_in_prometheus, f"the job of {source} in Prometheus", timeout_s=60)
    at = moments[-1]

    calls = f"{semconv.CLIENT_INFERENCE_DURATION.prometheus}_count{{{selector}}}"
    assert total(prometheus, calls, at) == expected.calls
    tokens = tuple(total(prometheus, f"{counter.prometheus}{{{selector}}}", at)
                   for counter in (semconv.CLIENT_USAGE_INPUT_TOKENS, semconv.CLIENT_USAGE_OUTPUT_TOKENS))
    assert tokens == (expected.tokens or (0, 0))
    assert [tuple(t) for t in scraped.workers[source].host_tokens or []] == host_tokens(source)
    cost = total(prometheus, f"{semconv.CLIENT_COST.prometheus}{{{selector}}}", at)
    assert cost == pytest.approx(priced(expected))
    tools = f"{semconv.TOOL_DURATION.prometheus}_count{{{selector}}}"
    assert total(prometheus, tools, at) == expected.tools
    agents = prometheus.query(f"sum by (gen_ai_agent_name, agent_task_type) "
                              f"({semconv.AGENT_DURATION.prometheus}_count{{{selector}}})", at)
    assert {(row["metric"]["gen_ai_agent_name"], row["metric"]["agent_task_type"]): float(row["value"][1])
            for row in agents} == expected.agents


def host_tokens(source: str) -> list[tuple[int, int]]:
    """What the host program got from the fake model (the figures the bridge must reproduce)."""
    if source == "openai":
        from tests.support.fake_llm import AGENT_TURNS
        from tests.support.sse_llm import OPENAI_USAGE

        final = AGENT_TURNS[1]
        return [(final["prompt_tokens"], final["completion_tokens"])] * 2 + [
            (OPENAI_USAGE["prompt_tokens"], OPENAI_USAGE["completion_tokens"])]
    return [apps.fake_turn_tokens() if source != "pydantic-ai" else (
        sum(turn[0] for turn in apps.PYDANTIC_AI_TURNS), sum(turn[1] for turn in apps.PYDANTIC_AI_TURNS))]


def priced(expected: Bridged) -> float:
    """The cost of the source's calls from the price table, as tests/bridge/test_sources.py prices them."""
    if not (expected.model and expected.tokens):
        return 0.0
    return cost_of(expected.model, *expected.tokens, cache_read=expected.cache_read) or 0.0
