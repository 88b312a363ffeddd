"""agent_otel.testing, as a user meets it: the pytest fixture, the context manager, the plugin entry point."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace

import agent_otel
from agent_otel import semconv
from agent_otel.testing import TelemetryCapture, capture_telemetry
from tests.support.environment import CLEAN_ENV

#: The environment of a user's own pytest or python run: no settings of this session leak into it.
USER_ENV = {k: v for k, v in CLEAN_ENV.items() if not k.startswith("PYTEST_")}


@agent_otel.agent("support-bot", task_type="faq")
def answer(question: str) -> dict[str, Any]:
    return {"success": True, "confidence": 0.9}


def test_a_decorated_function_shows_up_as_a_span_and_metrics(agent_otel_telemetry: TelemetryCapture) -> None:
    answer("what is 2 + 2?")

    span = agent_otel_telemetry.span("invoke_agent support-bot")
    assert span.attributes is not None
    assert span.attributes[semconv.GEN_AI_AGENT_NAME] == "support-bot"
    assert span.attributes[semconv.AGENT_TASK_TYPE] == "faq"
    [duration] = agent_otel_telemetry.points(semconv.AGENT_DURATION.name, {semconv.GEN_AI_AGENT_NAME: "support-bot"})
    assert duration.count == 1
    assert list(duration.explicit_bounds) == list(semconv.AGENT_DURATION.buckets)
    assert agent_otel_telemetry.metrics()[semconv.AGENT_DURATION.name].unit == "s"
    assert agent_otel_telemetry.points(semconv.AGENT_DURATION.name, {semconv.GEN_AI_AGENT_NAME: "other"}) == []
    assert agent_otel_telemetry.points("no.such.metric") == []


def test_span_fails_naming_the_spans_there_are(agent_otel_telemetry: TelemetryCapture) -> None:
    answer("one")
    answer("two")
    with pytest.raises(AssertionError, match=r"expected one span 'invoke_agent support-bot', got 2"):
        agent_otel_telemetry.span("invoke_agent support-bot")
    with pytest.raises(AssertionError, match=r"got 0; finished spans: \['invoke_agent support-bot', "):
        agent_otel_telemetry.span("invoke_agent nobody")


def test_reset_forgets_spans_and_metrics(agent_otel_telemetry: TelemetryCapture) -> None:
    answer("before")
    agent_otel_telemetry.reset()
    assert agent_otel_telemetry.spans() == []
    assert agent_otel_telemetry.points(semconv.AGENT_DURATION.name) == []

    answer("after")
    assert len(agent_otel_telemetry.spans("invoke_agent support-bot")) == 1
    [duration] = agent_otel_telemetry.points(semconv.AGENT_DURATION.name)
    assert duration.count == 1


def price_call(model: str) -> None:
    with agent_otel.provider_call("openai", model=model) as call:
        call.set_outcome(usage={"prompt_tokens": 1_000_000, "completion_tokens": 1_000_000})


def test_the_capture_has_no_id_on_another_librarys_points_as_every_exporter(
        agent_otel_telemetry: TelemetryCapture) -> None:
    """/metrics and the OTLP and console exporters drop an id attribute of another library's point and merge the
    points it split; the capture kept them, so a test passed on labels production never has."""
    counter = agent_otel_telemetry.meter_provider.get_meter("thirdparty").create_counter("reqs")
    counter.add(1, {"user.id": "alice", "route": "/x"})
    counter.add(2, {"user.id": "bob", "route": "/x"})
    points = agent_otel_telemetry.metrics(scope=None)["reqs"].data.data_points
    assert [(dict(point.attributes or {}), point.value) for point in points] == [({"route": "/x"}, 3)]


def test_the_capture_counts_another_librarys_genai_span_its_sampler_drops_as_production_does(
        agent_otel_telemetry: TelemetryCapture) -> None:
    """configure() builds its provider with a sampler that records the GenAI spans it drops for the span bridge (here
    one of a trace that came in unsampled); the capture's provider had the SDK's default sampler, so the test of a
    program whose model calls another instrumentation traces saw no model call that production counts (and every
    capture logged that its sampler hid them)."""
    unsampled = trace.set_span_in_context(trace.NonRecordingSpan(trace.SpanContext(
        trace_id=0x1234, span_id=0x5678, is_remote=True, trace_flags=trace.TraceFlags(trace.TraceFlags.DEFAULT))))
    tracer = agent_otel_telemetry.tracer_provider.get_tracer("some.genai.instrumentation")
    with tracer.start_as_current_span("chat gpt-4o", context=unsampled, attributes={
            semconv.GEN_AI_OPERATION_NAME: "chat", semconv.GEN_AI_PROVIDER_NAME: "openai",
            semconv.GEN_AI_REQUEST_MODEL: "gpt-4o"}) as span:
        span.set_attribute(semconv.GEN_AI_USAGE_INPUT_TOKENS, 12)
    assert not agent_otel_telemetry.spans()  # dropped, as no exporter would receive it
    [duration] = agent_otel_telemetry.points(semconv.CLIENT_INFERENCE_DURATION.name)
    assert duration.count == 1 and duration.attributes[semconv.GEN_AI_REQUEST_MODEL] == "gpt-4o"


def test_a_capture_sees_every_span_whatever_the_environment_samples(monkeypatch: pytest.MonkeyPatch) -> None:
    """A test runs where ``OTEL_TRACES_SAMPLER`` may sample a share of the traces (a CI job's environment): a capture
    records every span, as ``configure()`` does by default."""
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    with capture_telemetry() as telemetry:
        answer("what is 2 + 2?")
        assert [span.name for span in telemetry.spans()] == ["invoke_agent support-bot"]


def test_a_capture_says_nothing_of_its_own_providers(caplog: pytest.LogCaptureFixture) -> None:
    """Every capture logged that "the span bridge sees only the spans the host's sampler records": the provider is
    the capture's own, and the host gave no sampler."""
    caplog.set_level(logging.INFO, logger="agent_otel")
    with capture_telemetry():
        pass
    assert not [record.getMessage() for record in caplog.records if "sampler" in record.getMessage()]


def test_the_capture_starts_and_ends_with_the_default_policy_and_prices() -> None:
    with capture_telemetry() as telemetry:
        agent_otel.set_prices({"house-model": {"input": 1.0, "output": 2.0}})
        agent_otel.set_policy(cardinality_limit=1)
        price_call("house-model")
        answer("q")
        assert [p.value for p in telemetry.points(semconv.CLIENT_COST.name)] == [3.0]
        assert {p.attributes[semconv.AGENT_TASK_TYPE]
                for p in telemetry.points(semconv.AGENT_DURATION.name)} == {"faq"}

    with capture_telemetry() as telemetry:
        price_call("house-model")
        assert telemetry.points(semconv.CLIENT_COST.name) == []  # the shipped table has no such model

        @agent_otel.agent("support-bot", task_type="billing")
        def bill(question: str) -> None:
            return None

        answer("q")
        bill("q")
        assert {p.attributes[semconv.AGENT_TASK_TYPE]
                for p in telemetry.points(semconv.AGENT_DURATION.name)} == {"faq", "billing"}


def test_leaving_the_capture_stops_recording_into_it() -> None:
    with capture_telemetry() as telemetry:
        answer("inside")
    answer("outside")
    assert [span.name for span in telemetry.spans()] == ["invoke_agent support-bot"]


def run_user(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=tmp_path, env=USER_ENV, capture_output=True, text=True,
                          timeout=120)


def test_the_context_manager_needs_no_pytest(tmp_path: Path) -> None:
    (tmp_path / "check.py").write_text(textwrap.dedent("""
        import sys

        import agent_otel
        from agent_otel.testing import capture_telemetry

        @agent_otel.tool("search")
        def search(query):
            return []

        with capture_telemetry() as telemetry:
            search("otel")
            assert telemetry.span("execute_tool search").attributes["gen_ai.tool.name"] == "search"
            assert len(telemetry.points("gen_ai.execute_tool.duration")) == 1
        assert "pytest" not in sys.modules, "agent_otel.testing imported pytest"
        print("checked")
    """))
    run = run_user(tmp_path, "check.py")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "checked"


GLOBAL_TRACER_PROGRAM = textwrap.dedent("""
    import json
    from opentelemetry import trace

    import agent_otel
    from agent_otel.testing import capture_telemetry

    tracer = trace.get_tracer("somelib.telemetry")  # a library's own tracing (AutoGen's), its tracer taken at import
    CHAT = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o"}

    def library_call():
        with tracer.start_as_current_span("chat gpt-4o", attributes=CHAT) as span:
            span.set_attribute("gen_ai.usage.input_tokens", 10)
            span.set_attribute("gen_ai.usage.output_tokens", 2)
            return span.is_recording()

    @tracer.start_as_current_span("step")  # decorated once, at import: a span in the provider in use at each call
    def library_step():
        return trace.get_current_span().is_recording()

    seen = []
    for asked in (False, True, True, False):  # one capture per test of a session
        with capture_telemetry(global_tracer_provider=asked) as telemetry:
            library_call()
            library_step()
            seen.append(([span.name for span in telemetry.spans()],
                         [p.count for p in telemetry.points("gen_ai.client.inference.duration")]))
    outside = [library_call(), library_step()]
    agent_otel.configure(metrics_exporter="none")  # a later configure(): its provider in use
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    exporter = InMemorySpanExporter()
    trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(exporter))  # as on the provider it set
    configured = [library_call(), library_step(), [span.name for span in exporter.get_finished_spans()]]
    print(json.dumps({"captures": seen, "outside": outside, "configured": configured}))
""")


def test_a_capture_asked_for_the_global_tracer_provider_sees_a_librarys_own_spans(tmp_path: Path) -> None:
    """AutoGen probe: AutoGen takes its tracer from OpenTelemetry's global provider, which a capture did not set, so
    a test captured none of its spans (nor the bridge's metrics of them) where production records them. Once a
    capture asked for ``global_tracer_provider=True``, every capture of the process sees them, the tracer taken (and a
    function decorated with it) before any capture; outside one they are not recorded, and a later ``configure()``
    gets them, its provider's members reached through the global one (review: a decorated function kept the provider
    of its first capture, and a later configure() got none; Semantic Kernel probe: ``add_span_processor`` on the global
    provider raised AttributeError)."""
    (tmp_path / "check.py").write_text(GLOBAL_TRACER_PROGRAM)
    run = run_user(tmp_path, "check.py")
    assert (run.returncode, run.stderr) == (0, "")
    both = [["chat gpt-4o", "step"], [1]]
    assert json.loads(run.stdout) == {"captures": [[[], []], both, both, both], "outside": [False, False],
                                      "configured": [True, True, ["chat gpt-4o", "step"]]}


def test_a_global_tracer_provider_of_the_programs_own_is_kept_and_said(tmp_path: Path) -> None:
    (tmp_path / "check.py").write_text(textwrap.dedent("""
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider

        from agent_otel.errors import ConfigurationError
        from agent_otel.testing import capture_telemetry

        own = TracerProvider()
        trace.set_tracer_provider(own)
        try:
            with capture_telemetry(global_tracer_provider=True):
                pass
        except ConfigurationError as error:
            print(error)
        print(trace.get_tracer_provider() is own)
    """))
    run = run_user(tmp_path, "check.py")
    assert (run.returncode, run.stderr) == (0, "")
    assert run.stdout.splitlines() == [
        "capture_telemetry(global_tracer_provider=True): this process has a global tracer provider of its own "
        "(TracerProvider), which OpenTelemetry keeps: give it up (set none) in these tests, or capture without "
        "global_tracer_provider", "True"]


def test_installing_agent_otel_gives_a_user_s_pytest_the_fixture(tmp_path: Path) -> None:
    (tmp_path / "test_bot.py").write_text(textwrap.dedent("""
        import agent_otel

        @agent_otel.agent("bot")
        def bot(question):
            return {"success": True}

        def test_bot_is_traced(agent_otel_telemetry):
            bot("hi")
            assert agent_otel_telemetry.span("invoke_agent bot").attributes["gen_ai.agent.name"] == "bot"
            assert agent_otel_telemetry.points("gen_ai.invoke_agent.duration")[0].count == 1
    """))
    run = run_user(tmp_path, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_bot.py")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed" in run.stdout


def test_a_test_session_that_never_asks_for_the_fixture_imports_no_agent_otel(tmp_path: Path) -> None:
    """The plugin lived in the package: every test session of a project with agent-otel installed imported all of it
    (and the SDK, psutil, wrapt) as pytest started, and pytest rewrote its modules' assertions (0.15 to 0.5 s more per
    run and per xdist worker, without a bytecode cache)."""
    (tmp_path / "test_plain.py").write_text(textwrap.dedent("""
        import sys

        def test_nothing_of_agent_otels_was_imported():
            assert not [name for name in sys.modules if name.startswith("agent_otel")]
    """))
    run = run_user(tmp_path, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_plain.py")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed" in run.stdout


def test_agent_otel_imported_before_pytest_starts_gives_no_warning(tmp_path: Path) -> None:
    """Imported before pytest started (``agent-otel run -- pytest``, ``opentelemetry-instrument pytest``, which loads
    agent-otel's instrumentor entry point), agent-otel drew pytest's "Module already imported so cannot be rewritten"
    warning: with ``-W error`` (or ``filterwarnings = error``) the session failed before any test ran."""
    (tmp_path / "test_plain.py").write_text("def test_passes():\n    pass\n")
    # pytest marks the package of an installed plugin's distribution as it starts; of an editable install, as this
    # suite's is, it cannot tell the package: the conftest marks it as pytest does for an installed one
    (tmp_path / "conftest.py").write_text("import pytest\n\npytest.register_assert_rewrite('agent_otel')\n")
    run = run_user(tmp_path, "-c", "import sys, agent_otel, pytest; sys.exit(pytest.main(sys.argv[1:]))",
                   "-q", "-W", "error", "-p", "no:cacheprovider", "test_plain.py")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed" in run.stdout and "PytestAssertRewriteWarning" not in run.stdout + run.stderr


USER_SUITE = '''
import logging

import agent_otel
from agent_otel import semconv
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


@agent_otel.agent("support-bot")
def answer(question):
    return {"success": True}


@agent_otel.agent("streamer")
def stream():
    yield 1
    yield 2


@agent_otel.tool("chunks")
def chunks():
    yield 1
    yield 2


@agent_otel.provider("openai", model="gpt-4o", input_tokens=agent_otel.path("result.tokens"))
def complete(prompt):
    return {"tokens": "many"}


def test_1_leaves_calls_open_and_logs_a_failure(agent_otel_telemetry, caplog):
    test_1_leaves_calls_open_and_logs_a_failure.open = stream(), chunks()
    for generator in test_1_leaves_calls_open_and_logs_a_failure.open:
        next(generator)  # half-read when the test ends
    with caplog.at_level(logging.WARNING, "agent_otel"):
        complete("x")
    assert "provider.input_tokens failed" in caplog.text


def test_2_sees_only_its_own_calls_and_logs_its_failure(agent_otel_telemetry, caplog):
    with caplog.at_level(logging.WARNING, "agent_otel"):
        complete("x")
    del test_1_leaves_calls_open_and_logs_a_failure.open  # the half-read calls end: not in this capture
    assert agent_otel_telemetry.points(semconv.AGENT_DURATION.name) == []
    assert agent_otel_telemetry.points(semconv.TOOL_DURATION.name) == []  # a tool's too (it was)
    assert "provider.input_tokens failed" in caplog.text


def test_3_own_provider_after_a_capture():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    answer("?")
    assert [span.name for span in exporter.get_finished_spans()] == ["invoke_agent support-bot"]
'''


def test_a_users_tests_do_not_depend_on_the_captures_of_the_tests_before_them(tmp_path: Path) -> None:
    """Three leaks from one test into the next: a call still open when a test's capture ended (a generator a
    failed test left half-read) recorded into the next test's capture when it ended; the log line of a failure was
    not logged again for a minute, so a test asserting it passed alone and failed after another; and after a
    capture, calls recorded into its shut-down providers ("Processor is already shutdown" on stderr per call), not
    into a provider the next test set up itself. Calls left open were ended only if of a kind agent-otel tracks
    (jobs, agents...): a tool's or a model's generator recorded into the next capture, and said "already shutdown"."""
    (tmp_path / "test_user.py").write_text(USER_SUITE)
    result = run_user(tmp_path, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_user.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "already shutdown" not in result.stdout + result.stderr


@pytest.mark.parametrize("variable", ["OTEL_SDK_DISABLED=true", "AGENT_OTEL_ENABLED=false"])
def test_a_capture_with_agent_otel_switched_off_says_so(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    """It read empty, with no hint that the environment had switched agent-otel off (CI often sets
    OTEL_SDK_DISABLED); and a bad argument named configure(), which the user never called."""
    name, value = variable.split("=")
    monkeypatch.setenv(name, value)
    with pytest.raises(agent_otel.ConfigurationError, match="turns agent-otel off, so nothing would be captured"), \
            capture_telemetry():
        pass
    monkeypatch.delenv(name)
    with pytest.raises(agent_otel.ConfigurationError,
                       match=r"^capture_telemetry\(\): instrument_threads='no': expected True or False$"):
        capture_telemetry(instrument_threads="no").__enter__()  # type: ignore[arg-type]


CONFTEST_WITH_ITS_OWN_TRACER_PROVIDER = """
import agent_otel
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

EXPORTER = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
trace.set_tracer_provider(provider)
agent_otel.configure(metrics_exporter="none")  # on the suite's tracer provider, beside a meter provider of its own
"""

SUITE_ON_ITS_OWN_TRACER_PROVIDER = """
import agent_otel
from conftest import EXPORTER


@agent_otel.tool("search")
def search(query):
    return {"hits": 1}


def test_1_before_any_capture():
    EXPORTER.clear()
    search("a")
    assert [span.name for span in EXPORTER.get_finished_spans()] == ["execute_tool search"]


def test_2_captures(agent_otel_telemetry):
    search("b")
    assert agent_otel_telemetry.spans() != []


def test_3_after_a_capture():
    EXPORTER.clear()
    search("c")
    assert [span.name for span in EXPORTER.get_finished_spans()] == ["execute_tool search"]
"""


def test_after_a_capture_calls_reach_the_suites_own_tracer_provider_beside_agent_otels_meters(tmp_path: Path) -> None:
    """A conftest that sets its own global tracer provider and then calls configure() (which builds only the meter
    provider, global too): after the first capture, calls recorded nothing into the suite's tracer provider for the
    rest of the session, because one of the global providers was agent-otel's (shut down by the capture)."""
    (tmp_path / "conftest.py").write_text(CONFTEST_WITH_ITS_OWN_TRACER_PROVIDER)
    (tmp_path / "test_suite.py").write_text(SUITE_ON_ITS_OWN_TRACER_PROVIDER)
    result = run_user(tmp_path, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_suite.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout


def test_after_a_capture_in_a_configured_program_calls_record_nothing_and_say_nothing(tmp_path: Path) -> None:
    """A program that called configure() (its providers global), a capture, then a call: the call recorded into
    agent-otel's own providers, shut down by the capture, and the SDK said so on stderr."""
    (tmp_path / "app.py").write_text(textwrap.dedent("""
        import agent_otel
        from agent_otel.testing import capture_telemetry

        agent_otel.configure(metrics_exporter="none")

        @agent_otel.agent("support-bot")
        def answer(question):
            return {"success": True}

        with capture_telemetry():
            answer("inside")
        print(answer("after"))
    """))
    result = run_user(tmp_path, "app.py")
    assert (result.returncode, result.stdout, result.stderr) == (0, "{'success': True}\n", "")
