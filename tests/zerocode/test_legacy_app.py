"""The legacy agent application, instrumented by configuration only, in real processes.

Three ways to start it: ``agent-otel run -- python -m legacy_agents``, ``agent-otel run --
legacy-agents`` (a console script on PATH) and ``opentelemetry-instrument python -m legacy_agents``.
Each exports OTLP/HTTP to a receiver in this process; the fake LLM server runs here too and records
the spans it starts from the W3C headers it receives.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from agent_otel import semconv
from tests.support.fake_llm import FakeLLM
from tests.support.otlp_receiver import OtlpHttpReceiver
from tests.support.polling import wait_until

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
CONFIG = HERE / "agent-otel.toml"
DEADLINE_S = 30.0

EXPECTED_SPANS = Counter({
    "invoke_workflow nightly": 1,
    "invoke_agent coordinator": 1,
    "invoke_agent SyntaxAgent": 1,
    "invoke_agent TypeAgent": 1,
    "invoke_agent SecurityAgent": 1,
    "chat flaky-model": 2,
    "chat stable-model": 3,
    "execute_tool grep_repo": 1,
    "execute_tool lint": 2,
    "execute_tool format": 1,
    "evolve SyntaxAgent": 1,
    "evolve TypeAgent": 1,
})


def value_of(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def attributes_of(item: Any) -> dict[str, Any]:
    return {attribute.key: value_of(attribute.value) for attribute in item.attributes}


class Metrics:
    """Final cumulative values per metric and attribute set, summed over processes (each process's
    series has its own start time)."""

    def __init__(self, receiver: OtlpHttpReceiver) -> None:
        latest: dict[tuple[str, frozenset, int], tuple[int, str, Any]] = {}
        for metric in receiver.metric_list():
            kind = metric.WhichOneof("data")
            for point in getattr(metric, kind).data_points:
                key = (metric.name, frozenset(attributes_of(point).items()), point.start_time_unix_nano)
                if key not in latest or latest[key][0] <= point.time_unix_nano:
                    latest[key] = (point.time_unix_nano, kind, point)
        self.points: dict[str, dict[frozenset, list[tuple[str, Any]]]] = {}
        for (name, attributes, _start), (_time, kind, point) in latest.items():
            self.points.setdefault(name, {}).setdefault(attributes, []).append((kind, point))

    def all_attributes(self) -> list[dict[str, Any]]:
        return [dict(attributes) for series in self.points.values() for attributes in series]

    def _by(self, name: str, keys: tuple[str, ...], read: Any) -> dict[tuple, Any]:
        result: dict[tuple, Any] = {}
        for attributes, points in self.points.get(name, {}).items():
            labels = dict(attributes)
            key = tuple(labels.get(k) for k in keys)
            for kind, point in points:
                result[key] = result.get(key, 0) + read(kind, point)
        return result

    def counts(self, name: str, *keys: str) -> dict[tuple, int]:
        return self._by(name, keys, lambda kind, point: point.count)

    def sums(self, name: str, *keys: str) -> dict[tuple, float]:
        def read(kind: str, point: Any) -> float:
            if kind == "histogram":
                return point.sum
            return point.as_double if point.WhichOneof("value") == "as_double" else point.as_int

        return self._by(name, keys, read)


def wait_for(predicate: Any, what: str) -> None:
    wait_until(predicate, what, DEADLINE_S)


def console_script(tmp_path: Path) -> Path:
    """What pip writes for a console script `legacy-agents = legacy_agents.__main__:main`."""
    folder = tmp_path / "bin"
    folder.mkdir()
    script = folder / "legacy-agents"
    script.write_text(f"#!{sys.executable}\nimport sys\nfrom legacy_agents.__main__ import main\n"
                      "if __name__ == '__main__':\n    sys.exit(main())\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return folder


@pytest.fixture(params=["agent-otel run python -m", "agent-otel run console-script", "opentelemetry-instrument"])
def started(request: Any, tmp_path: Path) -> Any:
    mode = request.param
    with OtlpHttpReceiver() as receiver, FakeLLM() as llm:
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("OTEL_", "AGENT_OTEL_")) and key not in ("TRACEPARENT", "BAGGAGE")}
        env.update(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
                   OTEL_TRACES_EXPORTER="otlp", OTEL_METRICS_EXPORTER="otlp", OTEL_LOGS_EXPORTER="none",
                   OTEL_METRIC_EXPORT_INTERVAL="500", XDG_CACHE_HOME=str(tmp_path / "cache"),
                   PYTHONPATH=str(HERE))
        app_args = ["--llm-url", llm.url, "--exit-code", "3", "--echo-stdin"]
        if mode == "agent-otel run python -m":
            command = [str(BIN / "agent-otel"), "run", "--config", str(CONFIG), "--", sys.executable, "-m",
                       "legacy_agents", *app_args]
        elif mode == "agent-otel run console-script":
            env["PATH"] = f"{console_script(tmp_path)}{os.pathsep}{env['PATH']}"
            command = [str(BIN / "agent-otel"), "run", "--", "legacy-agents", *app_args]  # config found in cwd
        else:
            command = [str(BIN / "opentelemetry-instrument"), sys.executable, "-m", "legacy_agents", *app_args]
        process = subprocess.run(command, cwd=HERE, env=env, input="hello from stdin\n", capture_output=True,
                                 text=True, timeout=120)
        yield mode, process, receiver, llm, app_args


def test_legacy_app_instrumented_by_config_only(started: Any) -> None:
    mode, process, receiver, llm, app_args = started
    # The program ran unchanged: argv, stdin, stdout, stderr and exit status are its own.
    assert process.returncode == 3, process.stderr
    assert "stdin: hello from stdin" in process.stdout
    assert f"argv: {' '.join(app_args)}" in process.stdout
    assert ("job job-1: 2/3 fixed; lint: app/main.py: lint ok; app/models.py: lint ok; app/main.py: formatted; "
            "rolled back: TypeAgent") in process.stdout
    assert "errors go to stderr" in process.stderr
    assert "agent-otel" not in process.stderr, process.stderr

    wait_for(lambda: Counter(s.name for s in receiver.spans()) == EXPECTED_SPANS, "the span tree")
    wait_for(lambda: "job.duration" in receiver.metric_names(), "metrics")
    # the config's resource attributes: on every span and metric, not as span attributes (the distro's own
    # providers have the environment's only)
    resources = [attributes_of(rs.resource) for request in [*receiver.traces, *receiver.metrics]
                 for rs in getattr(request, "resource_spans", None) or request.resource_metrics]
    assert resources and {resource.get("deployment.environment.name") for resource in resources} == {
        None if mode == "opentelemetry-instrument" else "test"}
    spans = receiver.spans()
    by_name: dict[str, list[Any]] = {}
    for span in spans:
        by_name.setdefault(span.name, []).append(span)

    def one(name: str) -> Any:
        (span,) = by_name[name]
        return span

    # One trace, one job id on every span: threads, asyncio tasks, the subprocess included.
    assert {span.trace_id for span in spans} == {one("invoke_workflow nightly").trace_id}
    assert {attributes_of(span).get("job.id") for span in spans} == {"job-1"}
    job = one("invoke_workflow nightly")
    assert job.parent_span_id == b""
    job_attributes = attributes_of(job)
    assert job_attributes["job.type"] == "nightly" and job_attributes["job.outcome"] == "success"
    assert job_attributes[semconv.JOB_ROLLUP_AGENT_CALLS] == 4  # the job span rolls up what ran under it
    assert job_attributes[semconv.JOB_ROLLUP_PROVIDER_CALLS] == 5

    coordinator = one("invoke_agent coordinator")
    assert coordinator.parent_span_id == job.span_id
    agents = {name: one(f"invoke_agent {name}") for name in ("SyntaxAgent", "TypeAgent", "SecurityAgent")}
    for name, span in agents.items():
        assert span.parent_span_id == coordinator.span_id, name
    expected_agent_attributes = {
        "SyntaxAgent": ("syntax", "success", 0.9, "legacy_agents.agents.SyntaxAgent.solve", "I-1"),
        "TypeAgent": ("type", "failure", 0.4, "legacy_agents.agents.TypeAgent.solve", "I-2"),
        "SecurityAgent": ("security", "success", 0.8, "legacy_agents.security.SecurityAgent.solve", "I-3"),
    }
    for name, (task, outcome, confidence, code, issue) in expected_agent_attributes.items():
        attributes = attributes_of(agents[name])
        assert attributes["gen_ai.agent.name"] == name
        assert attributes["agent.task.type"] == task
        assert attributes["agent.outcome"] == outcome
        assert attributes["agent.confidence"] == pytest.approx(confidence)
        assert attributes["code.function.name"] == code  # each override attributed to its own class
        assert attributes["agent.issue.id"] == issue
        assert attributes["team"] == "fixes"  # static attribute from the config
    assert attributes_of(agents["SyntaxAgent"])["agent.result.files_modified"] == 2

    flaky = by_name["chat flaky-model"]
    assert {span.parent_span_id for span in flaky} == {agents["SyntaxAgent"].span_id, agents["TypeAgent"].span_id}
    for span in flaky:
        attributes = attributes_of(span)
        assert span.status.code == 2  # ERROR
        assert attributes["error.type"] == "ProviderError"
        assert attributes["agent_otel.client.retry_count"] == 2
    stable = by_name["chat stable-model"]
    assert {span.parent_span_id for span in stable} == {agent.span_id for agent in agents.values()}
    for span in stable:
        attributes = attributes_of(span)
        assert attributes["gen_ai.provider.name"] == "stable"
        assert attributes["gen_ai.response.model"] == "stable-model-001"
        assert span.kind == 3  # CLIENT
    assert one("execute_tool grep_repo").parent_span_id == agents["SyntaxAgent"].span_id
    assert attributes_of(one("execute_tool grep_repo"))["gen_ai.agent.name"] == "SyntaxAgent"
    for name in ("execute_tool lint", "execute_tool format", "evolve SyntaxAgent", "evolve TypeAgent"):
        assert {span.parent_span_id for span in by_name[name]} == {job.span_id}, name
    assert attributes_of(one("evolve TypeAgent"))["evolution.status"] == "rolled_back"

    # The HTTP server side: every request carried the trace and the job id (W3C traceparent/baggage).
    provider_ids = {int.from_bytes(span.span_id, "big") for span in flaky + stable}
    server = llm.spans()
    assert len(server) == 2 * 3 + 3  # two failing calls x three attempts, three successful calls
    for span in server:
        assert span.attributes["job.id"] == "job-1"
        assert span.parent.span_id in provider_ids
        assert span.context.trace_id == int.from_bytes(job.trace_id, "big")

    metrics = Metrics(receiver)
    assert all("job.id" not in attributes for attributes in metrics.all_attributes())
    assert metrics.counts("job.duration", "job.type", "job.outcome") == {("nightly", "success"): 1}
    assert metrics.counts("gen_ai.invoke_agent.duration", "gen_ai.agent.name", "agent.task.type",
                          "agent.outcome") == {("coordinator", "triage", "success"): 1,
                                               ("SyntaxAgent", "syntax", "success"): 1,
                                               ("TypeAgent", "type", "failure"): 1,
                                               ("SecurityAgent", "security", "success"): 1}
    assert metrics.counts("agent.confidence", "gen_ai.agent.name", "agent.outcome") == {
        ("SyntaxAgent", "success"): 1, ("TypeAgent", "failure"): 1, ("SecurityAgent", "success"): 1}
    assert metrics.sums("agent.work.items", "gen_ai.agent.name", "agent.work.kind") == {
        ("SyntaxAgent", "fixes_applied"): 2, ("SyntaxAgent", "files_modified"): 2,
        ("TypeAgent", "remaining_issues"): 3,
        ("SecurityAgent", "fixes_applied"): 2, ("SecurityAgent", "files_modified"): 1}
    assert metrics.counts("gen_ai.client.inference.duration", "gen_ai.provider.name", "gen_ai.request.model",
                          "gen_ai.response.model", "error.type") == {
        ("flaky", "flaky-model", None, "ProviderError"): 2, ("stable", "stable-model", "stable-model-001", None): 3}
    assert metrics.counts("gen_ai.client.inference.time_to_first_chunk", "gen_ai.provider.name") == {("stable",): 1}
    for direction in ("input", "output"):
        assert metrics.counts(f"gen_ai.client.inference.operation.{direction}_tokens", "gen_ai.provider.name") == {
            ("stable",): 3}
    assert metrics.sums("gen_ai.client.inference.usage.input_tokens", "gen_ai.provider.name",
                        "gen_ai.token.modality") == {("stable", "unknown"): 11 + 11 + 5}
    assert metrics.sums("gen_ai.client.inference.usage.output_tokens", "gen_ai.provider.name",
                        "gen_ai.token.modality") == {("stable", "unknown"): 7 + 7 + 3}
    cost = metrics.sums("agent_otel.client.cost", "gen_ai.provider.name", "gen_ai.agent.name")
    assert cost.keys() == {("stable", "SyntaxAgent"), ("stable", "TypeAgent"), ("stable", "SecurityAgent")}
    assert cost[("stable", "SyntaxAgent")] == pytest.approx((11 * 1.0 + 7 * 2.0) / 1e6)  # config price table
    assert cost[("stable", "SecurityAgent")] == pytest.approx((5 * 1.0 + 3 * 2.0) / 1e6)
    assert metrics.sums("agent_otel.client.retries", "gen_ai.provider.name", "gen_ai.request.model") == {
        ("flaky", "flaky-model"): 4}
    assert metrics.sums("agent_otel.client.fallbacks", "gen_ai.provider.name", "agent_otel.fallback.to",
                        "agent_otel.fallback.reason") == {("flaky", "stable", "server_error"): 2}
    assert metrics.counts("gen_ai.execute_tool.duration", "gen_ai.tool.name", "gen_ai.agent.name") == {
        ("grep_repo", "SyntaxAgent"): 1, ("lint", None): 2, ("format", None): 1}  # format: in the subprocess
    assert metrics.sums("evolution.attempts", "gen_ai.agent.name", "evolution.type", "evolution.status") == {
        ("SyntaxAgent", "prompt_optimization", "succeeded"): 1,
        ("TypeAgent", "prompt_optimization", "rolled_back"): 1}
    assert metrics.counts("evolution.duration", "gen_ai.agent.name") == {("SyntaxAgent",): 1, ("TypeAgent",): 1}
    improvement = metrics.sums("evolution.performance.improvement", "gen_ai.agent.name")
    assert improvement == {("SyntaxAgent",): pytest.approx(0.1), ("TypeAgent",): pytest.approx(-0.05)}
    assert metrics.sums("agent.kpi.current", "gen_ai.agent.name", "agent.kpi.name") == {
        ("SyntaxAgent", "accuracy"): pytest.approx(0.8), ("SyntaxAgent", "latency"): pytest.approx(1.5),
        ("TypeAgent", "accuracy"): pytest.approx(0.6), ("TypeAgent", "latency"): pytest.approx(3.0)}
