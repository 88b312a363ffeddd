"""A real framework whose run ends in a state: smolagents' ``RunResult.state`` is ``"success"`` or
``"max_steps_error"``, and only a value map in the config can tell them apart (issue 13, item 1).

The agents are real ``smolagents.CodeAgent`` objects, run unmodified; the model is a scripted
``smolagents.Model`` subclass (no network), and the config names the framework's own method.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from typing import Any

import pytest
from smolagents import CodeAgent, Model
from smolagents.models import ChatMessage, MessageRole
from smolagents.monitoring import TokenUsage

from agent_otel import semconv
from agent_otel._zerocode.config import parse_config
from agent_otel._zerocode.patching import instrument, uninstrument
from tests.support.telemetry import points

CONFIG = """
[[agent]]
target = "smolagents.agents:MultiStepAgent.run"
name = { path = "self.name" }
success = { path = "result.state", equals = "success" }
error_message = { path = "result.state" }
"""

FINAL = "Thought: done\n<code>\nfinal_answer('fixed')\n</code>"
STUCK = "Thought: still thinking\n<code>\nprint('again')\n</code>"


class ScriptedModel(Model):
    """Replies from a script, then keeps thinking forever."""

    def __init__(self, replies: list[str]) -> None:
        super().__init__(model_id="scripted-1")
        self.replies = replies

    def generate(self, messages: Any, stop_sequences: Any = None, response_format: Any = None,
                 tools_to_call_from: Any = None, **kwargs: Any) -> ChatMessage:
        text = self.replies.pop(0) if self.replies else STUCK
        return ChatMessage(role=MessageRole.ASSISTANT, content=text,
                           token_usage=TokenUsage(input_tokens=100, output_tokens=7))


@pytest.fixture
def instrumented(otel: Any) -> Iterator[None]:
    instrument(parse_config(tomllib.loads(CONFIG), "smolagents.toml"))
    yield
    uninstrument()


@pytest.mark.usefixtures("instrumented")
def test_a_run_that_ends_in_max_steps_error_is_a_failure(otel: Any) -> None:
    done = CodeAgent(tools=[], model=ScriptedModel([FINAL]), name="fixer", max_steps=3, verbosity_level=0)
    stuck = CodeAgent(tools=[], model=ScriptedModel([]), name="stuck", max_steps=2, verbosity_level=0)
    finished = done.run("fix it", return_full_result=True)
    gave_up = stuck.run("fix it", return_full_result=True)
    assert (finished.state, finished.output) == ("success", "fixed")
    assert gave_up.state == "max_steps_error"

    outcomes = {p.attributes[semconv.GEN_AI_AGENT_NAME]: p.attributes[semconv.AGENT_OUTCOME]
                for p in points(otel, semconv.AGENT_DURATION.name)}
    assert outcomes == {"fixer": "success", "stuck": "failure"}
    [failed] = otel.spans("invoke_agent stuck")
    assert failed.attributes[semconv.ERROR_MESSAGE] == "max_steps_error"
    assert semconv.ERROR_MESSAGE not in otel.span("invoke_agent fixer").attributes
