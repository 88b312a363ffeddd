"""Evaluation results sent through the OpenTelemetry Logs API (the real SDK's LoggerProvider, logger and
in-memory exporter): ``gen_ai.evaluation.result`` log records become ``agent.evaluation.score`` as the same
event on a span does."""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry._logs import LogRecord
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

import agent_otel
from agent_otel import semconv
from tests.support.environment import CLEAN_ENV
from tests.support.otlp_receiver import OtlpHttpReceiver, attributes_of, data_points_of
from tests.support.paths import ROOT
from tests.support.telemetry import error_count, points

SCORE = semconv.AGENT_EVALUATION_SCORE.name
EVALUATOR = "deepeval.evaluator"  # any library's logger


@pytest.fixture
def logs() -> Iterator[tuple[LoggerProvider, InMemoryLogRecordExporter]]:
    """A host's SDK LoggerProvider with agent-otel's processor added, and an exporter of what it emits."""
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(agent_otel.EvaluationLogProcessor())
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def sha(value: str, salt: str = "pepper") -> str:
    return hashlib.sha256((salt + value).encode()).hexdigest()


def result(name: str, score: Any, **more: Any) -> dict[str, Any]:
    return {semconv.GEN_AI_EVALUATION_NAME: name, semconv.GEN_AI_EVALUATION_SCORE_VALUE: score, **more}


def scores(otel: Any) -> dict[tuple[str, str], tuple[int, float]]:
    return {(p.attributes[semconv.GEN_AI_EVALUATION_NAME], p.attributes[semconv.GEN_AI_AGENT_NAME]): (p.count, p.sum)
            for p in points(otel, SCORE)}


def test_evaluation_log_records_become_scores_by_evaluation_and_agent(
        otel: Any, logs: tuple[LoggerProvider, InMemoryLogRecordExporter]) -> None:
    provider, exporter = logs
    logger = provider.get_logger(EVALUATOR)

    @agent_otel.agent("writer")
    def write() -> Any:
        return trace.get_current_span()

    evaluated = write()
    # the evaluator emits after the call, in the evaluated span's context (the span names the agent)
    logger.emit(LogRecord(event_name=semconv.EVENT_EVALUATION_RESULT, context=trace.set_span_in_context(evaluated),
                          attributes=result("relevance", 0.75, **{semconv.GEN_AI_EVALUATION_SCORE_LABEL: "pass"})))

    @agent_otel.agent("critic")
    def critique() -> None:  # inside the agent's call, in the current context
        logger.emit(LogRecord(event_name=semconv.EVENT_EVALUATION_RESULT, attributes=result("faithfulness", 1)))
        logger.emit(LogRecord(attributes={"event.name": semconv.EVENT_EVALUATION_RESULT,  # the older Events API
                                          **result("faithfulness", 0.5)}))

    critique()
    logger.emit(LogRecord(event_name=semconv.EVENT_EVALUATION_RESULT,
                          attributes=result("relevance", 0.25, **{semconv.GEN_AI_AGENT_NAME: "planner"})))
    logger.emit(LogRecord(event_name=semconv.EVENT_EVALUATION_RESULT, attributes=result("relevance", "high")))
    logger.emit(LogRecord(event_name="gen_ai.client.inference.operation.details", attributes=result("x", 1.0)))
    logger.emit(LogRecord(body="an ordinary log line", attributes=result("y", 1.0)))
    assert scores(otel) == {("relevance", "writer"): (1, 0.75), ("faithfulness", "critic"): (2, 1.5),
                            ("relevance", "planner"): (1, 0.25)}
    [labelled] = points(otel, SCORE, {semconv.GEN_AI_AGENT_NAME: "writer"})
    assert labelled.attributes[semconv.GEN_AI_EVALUATION_SCORE_LABEL] == "pass"
    assert len(exporter.get_finished_logs()) == 7  # every record still goes on, untouched
    assert error_count(otel, "bridge.log") == 0


def test_evaluation_log_records_feed_an_evolution_kpi(otel: Any,
                                                     logs: tuple[LoggerProvider, InMemoryLogRecordExporter]) -> None:
    logger = logs[0].get_logger(EVALUATOR)

    @agent_otel.evolution("writer", evaluations=["relevance"])
    def evolve() -> None:
        for score in (0.6, 0.8):
            logger.emit(LogRecord(event_name=semconv.EVENT_EVALUATION_RESULT, attributes=result("relevance", score)))

    evolve()
    attributes = otel.span("evolve writer").attributes
    assert attributes["evolution.kpi.after.relevance"] == pytest.approx(0.7)


@pytest.mark.filterwarnings("ignore:`LoggingHandler` in `opentelemetry-sdk` is deprecated:DeprecationWarning")
def test_hashed_keys_are_hashed_in_every_log_record(otel: Any,
                                                     logs: tuple[LoggerProvider, InMemoryLogRecordExporter]) -> None:
    """Any record, not only an evaluation: a LoggingHandler's ``extra``, an evaluator's attributes, a mapping
    value (log records take them); once, however many hashing processors the record meets."""
    provider, exporter = logs
    provider.add_log_record_processor(agent_otel.EvaluationLogProcessor())  # a second one after the exporter
    agent_otel.set_policy(salt="pepper", hashed_keys={"user.id", "session.id"})
    handler = LoggingHandler(logger_provider=provider)
    app = logging.getLogger("tests.app")
    app.addHandler(handler)
    try:
        app.warning("refund asked", extra={"user.id": "alice@example.com", "order": 7})
    finally:
        app.removeHandler(handler)
    logger = provider.get_logger(EVALUATOR)
    logger.emit(LogRecord(event_name=semconv.EVENT_EVALUATION_RESULT,
                          attributes=result("relevance", 0.5, **{"user.id": "bob", "session.id": "s-1"})))
    logger.emit(LogRecord(body="b", attributes={"session.id": {"id": "s-2"}}))
    found = [dict(r.log_record.attributes or {}) for r in exporter.get_finished_logs()]
    assert [(f.get("user.id"), f.get("session.id")) for f in found] == [
        (sha("alice@example.com"), None), (sha("bob"), sha("s-1")), (None, sha(str({"id": "s-2"})))]
    assert found[0]["order"] == 7


SCRIPT = textwrap.dedent("""
    import json
    from opentelemetry import _logs
    from opentelemetry._logs import LogRecord
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
    import agent_otel
    from agent_otel.testing import capture_telemetry

    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    _logs.set_logger_provider(provider)  # as opentelemetry-instrument does when OTEL_LOGS_EXPORTER is set
    with capture_telemetry() as telemetry:  # configure() adds the processor to that provider
        with agent_otel.job(type="graded"):
            _logs.get_logger("evaluator").emit(LogRecord(
                event_name="gen_ai.evaluation.result",
                attributes={"gen_ai.evaluation.name": "relevance", "gen_ai.evaluation.score.value": 0.9,
                            "user.id": "alice"}))
        points = telemetry.points("agent.evaluation.score")
        [record] = exporter.get_finished_logs()
        print(json.dumps({"scores": [[dict(p.attributes), p.count, p.sum] for p in points],
                          "exported": 1, "user.id": record.log_record.attributes["user.id"]}))
""")


@pytest.mark.parametrize("bridge", ["true", "false"])
def test_configure_adds_the_processor_to_the_global_sdk_logger_provider(bridge: str) -> None:
    """In a child process: the global LoggerProvider is process state that must not leak into other tests. With
    the span bridge off, no score is recorded, and the hashed keys are hashed all the same."""
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env={**CLEAN_ENV, "AGENT_OTEL_SPAN_BRIDGE": bridge},
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    scored = [[{semconv.GEN_AI_EVALUATION_NAME: "relevance", semconv.GEN_AI_AGENT_NAME: "unknown"}, 1, 0.9]]
    # hashed before the exporting processor, added first, exported it (as the record was emitted)
    assert found == {"scores": scored if bridge == "true" else [], "exported": 1, "user.id": sha("alice", salt="")}


ENV_PROVIDER_SCRIPT = textwrap.dedent("""
    import json, sys
    import agent_otel
    from agent_otel.testing import capture_telemetry

    assert "opentelemetry.sdk._logs" not in sys.modules
    with capture_telemetry() as telemetry:  # configure() asks the Logs API, which builds the named provider
        from opentelemetry import _logs
        from opentelemetry._logs import LogRecord

        _logs.get_logger("evaluator").emit(LogRecord(
            event_name="gen_ai.evaluation.result",
            attributes={"gen_ai.evaluation.name": "relevance", "gen_ai.evaluation.score.value": 0.5}))
        print(json.dumps([[p.count, p.sum] for p in telemetry.points("agent.evaluation.score")]))
""")


def test_a_logger_provider_named_in_the_environment_gets_the_processor() -> None:
    """``OTEL_PYTHON_LOGGER_PROVIDER`` has the Logs API build the provider on first use: configure() adds the
    processor to it, although nothing imported the logs SDK before."""
    env = {**CLEAN_ENV, "OTEL_PYTHON_LOGGER_PROVIDER": "sdk_logger_provider"}
    done = subprocess.run([sys.executable, "-c", ENV_PROVIDER_SCRIPT], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [[1, 0.5]]


def test_a_logger_provider_the_environment_names_that_is_not_installed_is_a_configuration_error() -> None:
    """The Logs API printed a traceback and configure() raised a bare StopIteration."""
    env = {**CLEAN_ENV, "OTEL_PYTHON_LOGGER_PROVIDER": "nonexistent"}
    program = ("import agent_otel\ntry:\n    agent_otel.configure()\n"
               "except agent_otel.ConfigurationError as error:\n    print(error)\n")
    done = subprocess.run([sys.executable, "-c", program], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (
        0, "OTEL_PYTHON_LOGGER_PROVIDER='nonexistent': no installed logger provider has that name\n", "")


EVALUATOR_APP = textwrap.dedent("""
    from opentelemetry import _logs
    from opentelemetry._logs import LogRecord

    _logs.get_logger("evaluator").emit(LogRecord(event_name="gen_ai.evaluation.result", attributes={
        "gen_ai.evaluation.name": "relevance", "gen_ai.evaluation.score.value": 0.9, "gen_ai.agent.name": "writer"}))
""")


def test_under_opentelemetry_instrument_the_distros_logger_provider_gets_the_processor(tmp_path: Path) -> None:
    """opentelemetry-instrument (with opentelemetry-distro) installs a LoggerProvider before it loads the
    instrumentors; agent-otel's configures the SDK and adds the processor to it."""
    (tmp_path / "app.py").write_text(EVALUATOR_APP)
    (tmp_path / "agent-otel.toml").write_text('service_name = "graded"\n')
    with OtlpHttpReceiver() as receiver:
        env = {**CLEAN_ENV, "OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "otlp",
               "OTEL_LOGS_EXPORTER": "console", "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
               "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
               # the GenAI instrumentations have nothing to do here: not loaded, for speed
               "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "openai,langchain,openai_agents,smolagents"}
        done = subprocess.run([str(Path(sys.executable).parent / "opentelemetry-instrument"), sys.executable, "app.py"],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        points = [point for metric in receiver.metrics_named(SCORE) for point in data_points_of(metric)]
    assert [(attributes_of(point), point.count, point.sum) for point in points] == [
        ({semconv.GEN_AI_EVALUATION_NAME: "relevance", semconv.GEN_AI_AGENT_NAME: "writer"}, 1, 0.9)]
