"""agent-otel's own diagnostics stay out of the host's output: one line, no host data, no traceback unless asked."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from typing import Any

import pytest

import agent_otel
from agent_otel import path
from agent_otel._engine import self_telemetry
from agent_otel._environment import AGENT_OTEL_DEBUG
from tests.support.environment import CLEAN_ENV
from tests.support.paths import ROOT
from tests.support.telemetry import error_count

SECRET = "/home/alice/private/notes.txt"


class Unreadable:
    @property
    def value(self) -> str:
        raise KeyError(SECRET)


@pytest.fixture
def fresh_log_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(self_telemetry, "_last_logged", {})
    monkeypatch.delenv(AGENT_OTEL_DEBUG, raising=False)


def host_call() -> Any:
    @agent_otel.agent("a", task_type=path("args.item.value"), confidence=path("result.ok"))
    def handle(item: Unreadable) -> dict[str, str]:
        return {"ok": "contents of " + SECRET}  # not a number: a coercion failure quoting host data

    return handle


def our_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The diagnostics (warnings) agent-otel logged."""
    return [r for r in caplog.records if r.name.startswith("agent_otel") and r.levelno >= logging.WARNING]


def test_the_library_logger_has_a_null_handler() -> None:
    assert any(isinstance(h, logging.NullHandler) for h in logging.getLogger("agent_otel").handlers)


@pytest.mark.usefixtures("fresh_log_limits")
def test_a_diagnostic_is_one_line_naming_stage_and_type_without_host_data(
        otel: Any, caplog: pytest.LogCaptureFixture) -> None:
    handle = host_call()
    with caplog.at_level(logging.DEBUG):  # the host's root logging, at its most verbose
        for _ in range(3):
            assert handle(Unreadable()) == {"ok": "contents of " + SECRET}
    records = our_records(caplog)
    messages = [r.getMessage() for r in records]
    assert len(records) == 2, messages  # one per cause, not one per call
    for record, message in zip(records, messages, strict=True):
        assert "\n" not in message
        assert SECRET not in message and "contents" not in message
        assert record.exc_info is None and record.exc_text is None and record.stack_info is None
    assert any("agent.extract.task_type" in m and "KeyError" in m for m in messages), messages
    assert any("agent.confidence" in m and "TypeError" in m for m in messages), messages
    # a value of the wrong type says what it is and what was wanted, in agent-otel's words (probe p52b: "failed
    # (TypeError)" alone did not say a KPI was read as a string)
    assert ("agent-otel: agent.confidence failed (TypeError: cannot read str as a number in [0, 1]); the value "
            "was left out, the host call was not affected") in messages, messages
    assert SECRET not in caplog.text
    assert error_count(otel, "agent.extract.task_type") == 3
    assert error_count(otel, "agent.confidence") == 3


@pytest.mark.usefixtures("fresh_log_limits")
@pytest.mark.parametrize(("confidence", "said"), [
    (1.5, "float value not in [0, 1]"), (float("nan"), "float value not finite"), ("1.5", "str value not in [0, 1]"),
    ("high", "cannot read str as a number in [0, 1]"), (10**400, "int value beyond a float"),
    (type("Acct_4111\nFORGED: agent-otel: all good", (), {})(), "cannot read an object of a class named otherwise "
                                                                  "as a number in [0, 1]")],
    ids=["above", "nan", "str above", "str", "int beyond a float", "class named otherwise"])
def test_a_value_of_the_wrong_kind_is_said_in_agent_otels_words(otel: Any, caplog: pytest.LogCaptureFixture,
                                                                 confidence: object, said: str) -> None:
    """A number outside its range was said to be unreadable as a number (one given as a string too: review rv69), and
    a class named from data (``type(name, ...)``) put its name, a line break in it, into the line (review rv68)."""
    agent = agent_otel.agent("a", confidence=path("result.c"))(lambda: {"c": confidence})
    with caplog.at_level(logging.DEBUG):
        agent()
    messages = [r.getMessage() for r in our_records(caplog)]
    assert messages == [f"agent-otel: agent.confidence failed (TypeError: {said}); the value was left out, the host "
                        "call was not affected"], messages


@pytest.mark.usefixtures("fresh_log_limits")
def test_the_cap_at_work_says_what_it_did_not_that_it_failed(otel: Any, caplog: pytest.LogCaptureFixture) -> None:
    """"cardinality.gen_ai.agent.version failed (OverflowError)" read as a fault in an engine's log (evolution
    probe): the cap reached, or a value too long for a label, is said as such, with no value of the program's."""
    agent_otel.set_policy(cardinality_limit=2)
    tool = agent_otel.tool(agent_otel.path("args.name"))(lambda name: None)
    with caplog.at_level(logging.DEBUG):
        for name in ("a", "b", "c-" + SECRET, SECRET * 40):
            tool(name)
    messages = [r.getMessage() for r in our_records(caplog)]
    assert messages == [
        "agent-otel: cardinality.gen_ai.tool.name (OverflowError): more than 2 distinct values for gen_ai.tool.name; "
        "further values become _OTHER",
        f"agent-otel: cardinality.gen_ai.tool.name (ValueError): a value of gen_ai.tool.name is {len(SECRET) * 40} "
        "characters, more than 256; recorded as _OTHER"], messages


@pytest.mark.usefixtures("fresh_log_limits")
def test_the_debug_switch_adds_the_traceback(otel: Any, caplog: pytest.LogCaptureFixture,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(AGENT_OTEL_DEBUG, "1")
    with caplog.at_level(logging.DEBUG):
        host_call()(Unreadable())
    extract = [r for r in our_records(caplog) if "agent.extract.task_type" in r.getMessage()]
    assert len(extract) == 1
    assert extract[0].exc_info is not None and extract[0].exc_info[0] is KeyError


def test_nothing_reaches_the_output_of_a_host_without_logging_configuration() -> None:
    script = textwrap.dedent(f"""
        import agent_otel
        from agent_otel import path

        class Unreadable:
            @property
            def value(self):
                raise KeyError({SECRET!r})

        @agent_otel.agent("a", task_type=path("args.item.value"), success=path("result.ok"))
        def handle(item):
            return {{"ok": "not a boolean"}}

        agent_otel.configure(traces_exporter="none", metrics_exporter="none")
        handle(Unreadable())
        agent_otel.shutdown()
        print("done")
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin"})
    assert (done.returncode, done.stdout, done.stderr) == (0, "done\n", "")


MALFORMED_FLAG_PROGRAM = """
import agent_otel
from agent_otel._engine.instruments import runtime

@agent_otel.tool("add")
def add(a, b):
    return a + b

with agent_otel.job("j"):
    print(add(1, 2))
print(runtime().enabled)
"""


@pytest.mark.parametrize("variable", ["AGENT_OTEL_ENABLED"])  # OTEL_SDK_DISABLED: any value reads (test_configure)
def test_a_malformed_on_off_variable_never_fails_the_calls_of_a_program_that_never_called_configure(
        variable: str) -> None:
    """A library's decorated function, in a program that never calls configure(): agent-otel sets itself up at
    the first call, which raised the variable's ConfigurationError out of every call and job. It is on, as when
    the variable is unset, and the problem counted; configure() still raises it."""
    done = subprocess.run([sys.executable, "-c", MALFORMED_FLAG_PROGRAM], env={**CLEAN_ENV, variable: "maybe"},
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert (done.returncode, done.stdout) == (0, "3\nTrue\n"), done.stderr
    assert "Traceback" not in done.stderr
