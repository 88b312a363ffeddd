"""Content capture per the GenAI instrumentations' standard variable: OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT
= NO_CONTENT (the default) | SPAN_ONLY | EVENT_ONLY | SPAN_AND_EVENT, structured JSON messages when on, hashed
keys still hashed (on the span and in the event)."""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from typing import Any

import pytest

import agent_otel
from agent_otel import ConfigurationError, path, semconv
from agent_otel._calls.content import EVENT_OPERATION_DETAILS
from agent_otel._engine import policy
from agent_otel._zerocode.config import parse_config
from tests.bridge.test_processor import chat_span, foreign
from tests.support.genai_apps import instrumented

VARIABLE = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
INPUT, OUTPUT = semconv.GEN_AI_INPUT_MESSAGES, semconv.GEN_AI_OUTPUT_MESSAGES
PROMPT_JSON = [{"role": "user", "parts": [{"type": "text", "content": "PROMPT-TEXT"}]}]
RESPONSE_JSON = [{"role": "assistant", "parts": [{"type": "text", "content": "RESPONSE-TEXT"}]}]


@agent_otel.provider("openai", model="gpt-4o", prompt=path("args.prompt"), response=path("result"))
def complete(prompt: Any) -> Any:
    return "RESPONSE-TEXT"


def captured(otel: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The content attributes on the provider span, and its content events (JSON decoded)."""
    span = otel.span("chat gpt-4o")
    attributes = {key: json.loads(value) for key, value in (span.attributes or {}).items() if key in (INPUT, OUTPUT)}
    events = [{key: json.loads(value) for key, value in (event.attributes or {}).items()}
              for event in span.events if event.name == EVENT_OPERATION_DETAILS]
    return attributes, events


@pytest.mark.parametrize(("value", "on_span", "in_event"), [
    (None, False, False), ("NO_CONTENT", False, False), ("SPAN_ONLY", True, False), ("span_only", True, False),
    ("EVENT_ONLY", False, True), ("SPAN_AND_EVENT", True, True),
    ("true", True, False), ("false", False, False),  # earlier versions' values: true put content on spans
])
def test_the_variable_says_where_content_goes(otel: Any, monkeypatch: pytest.MonkeyPatch, value: str | None,
                                              on_span: bool, in_event: bool) -> None:
    if value is None:
        monkeypatch.delenv(VARIABLE, raising=False)
    else:
        monkeypatch.setenv(VARIABLE, value)
    policy.reset_policy()
    assert complete("PROMPT-TEXT") == "RESPONSE-TEXT"
    attributes, events = captured(otel)
    both = {INPUT: PROMPT_JSON, OUTPUT: RESPONSE_JSON}
    assert attributes == (both if on_span else {})
    assert events == ([both] if in_event else [])


@pytest.mark.parametrize("mode", ["EVENT_ONLY", "SPAN_AND_EVENT"])
def test_the_event_holds_the_prompt_as_the_call_started(otel: Any, mode: str) -> None:
    """An agent loop keeps its history in the list it passes and appends the reply inside the call: the event,
    made as the call ends, read the list then, so its input held the model's own answer (the span's, made at the
    start, did not)."""
    agent_otel.set_policy(capture_content=mode)

    @agent_otel.provider("openai", model="gpt-4o", prompt=path("args.messages"), response=path("result"))
    def turn(messages: list[dict[str, str]]) -> str:
        messages.append({"role": "assistant", "content": "RESPONSE-TEXT"})
        return "RESPONSE-TEXT"

    history = [{"role": "user", "content": "PROMPT-TEXT"}]
    assert turn(history) == "RESPONSE-TEXT" and len(history) == 2
    attributes, events = captured(otel)
    assert events == [{INPUT: PROMPT_JSON, OUTPUT: RESPONSE_JSON}]
    assert attributes == ({INPUT: PROMPT_JSON, OUTPUT: RESPONSE_JSON} if mode == "SPAN_AND_EVENT" else {})


def test_a_value_that_is_no_mode_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(VARIABLE, "sometimes")
    policy.reset_policy()
    with pytest.raises(ConfigurationError, match=f"environment variable {VARIABLE}='sometimes': expected one of "
                                                 "NO_CONTENT, SPAN_ONLY, EVENT_ONLY, SPAN_AND_EVENT"):
        policy.check_policy_environment()  # what configure() raises (a wrapped call uses the default instead)
    assert policy.policy().content is policy.ContentCapture.NO_CONTENT
    policy.reset_policy()


def test_chat_messages_become_structured_parts(otel: Any) -> None:
    agent_otel.set_policy(capture_content="SPAN_ONLY")

    @agent_otel.provider("openai", model="gpt-4o", prompt=path("args.messages"), response=path("result.message"))
    def chat(messages: list[dict[str, Any]]) -> dict[str, Any]:
        return {"message": {"role": "assistant", "content": None, "finish_reason": "tool_calls", "tool_calls": [
            {"id": "call_2", "type": "function", "function": {"name": "search", "arguments": '{"q": "otel"}'}}]}}

    chat(messages=[
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Weather?"}]},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {
            "name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ])
    attributes, _ = captured(otel)
    assert attributes[INPUT] == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "Weather?"}]},
        {"role": "assistant", "parts": [{"type": "tool_call", "id": "call_1", "name": "get_weather",
                                         "arguments": {"city": "Paris"}}]},
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_1", "response": "sunny"}]},
    ]
    assert attributes[OUTPUT] == [{"role": "assistant", "finish_reason": "tool_calls", "parts": [
        {"type": "tool_call", "id": "call_2", "name": "search", "arguments": {"q": "otel"}}]}]


def test_hashed_keys_hash_the_content_on_the_span_and_in_the_event(otel: Any) -> None:
    agent_otel.set_policy(capture_content="SPAN_AND_EVENT", hashed_keys={INPUT}, salt="s3")
    complete("PROMPT-TEXT")
    span = otel.span("chat gpt-4o")
    hashed = hashlib.sha256(("s3" + json.dumps(PROMPT_JSON)).encode()).hexdigest()
    assert span.attributes[INPUT] == hashed
    [event] = [event for event in span.events if event.name == EVENT_OPERATION_DETAILS]
    assert event.attributes[INPUT] == hashed
    assert json.loads(event.attributes[OUTPUT]) == RESPONSE_JSON  # not a hashed key


def test_a_failed_call_records_its_prompt_but_no_response(otel: Any) -> None:
    agent_otel.set_policy(capture_content="SPAN_AND_EVENT")

    @agent_otel.provider("openai", model="gpt-4o", prompt=path("args.prompt"), response=path("result"))
    def broken(prompt: str) -> str:
        raise TimeoutError("slow")

    with pytest.raises(TimeoutError):
        broken("PROMPT-TEXT")
    attributes, events = captured(otel)
    assert attributes == {INPUT: PROMPT_JSON}
    assert events == [{INPUT: PROMPT_JSON}]


@pytest.mark.parametrize(("mode", "kept"), [("EVENT_ONLY", False), ("SPAN_ONLY", True), ("NO_CONTENT", False)])
def test_another_instrumentations_span_content_stays_only_when_content_goes_on_spans(otel: Any, mode: str,
                                                                                      kept: bool) -> None:
    agent_otel.set_policy(capture_content=mode)
    chat_span(foreign(otel), **{INPUT: '[{"role": "user"}]'})
    assert (INPUT in otel.span("chat gpt-4o").attributes) is kept


def test_a_prompts_name_is_no_content(otel: Any) -> None:
    """``gen_ai.prompt.name`` (a template's name, which agent-otel's own spans carry too) was removed from other
    libraries' spans with the old indexed prompt attributes it shares a prefix with (``gen_ai.prompt.0.content``)."""
    agent_otel.set_policy(capture_content="NO_CONTENT")
    chat_span(foreign(otel), **{semconv.GEN_AI_PROMPT_NAME: "faq-template", "gen_ai.prompt.0.content": "hi"})
    attributes = otel.span("chat gpt-4o").attributes
    assert (attributes.get(semconv.GEN_AI_PROMPT_NAME), "gen_ai.prompt.0.content" in attributes) == (
        "faq-template", False)


@pytest.mark.parametrize(("mode", "kept"), [("NO_CONTENT", False), ("EVENT_ONLY", False), ("SPAN_ONLY", True)])
def test_content_leaves_the_genai_spans_no_call_is_made_of_too(otel: Any, mode: str, kept: bool) -> None:
    """An OpenInference CHAIN span (smolagents' step, whose output is the answer) and a GenAI span of an
    operation the bridge does not map, outside any agent: nothing tracks them as calls, their content went out."""
    agent_otel.set_policy(capture_content=mode)
    tracer = foreign(otel)
    with tracer.start_as_current_span("Step 1", attributes={"openinference.span.kind": "CHAIN"}) as step:
        step.set_attribute("output.value", "Forecast: sunny in Paris")
    with tracer.start_as_current_span("create_agent a", attributes={semconv.GEN_AI_OPERATION_NAME: "create_agent",
                                                                    "gen_ai.system_instructions": "be nice"}):
        pass
    assert [("output.value" in otel.span("Step 1").attributes),
            ("gen_ai.system_instructions" in otel.span("create_agent a").attributes)] == [kept, kept]


@pytest.mark.parametrize("bridge", ["true", "false"])
def test_a_real_frameworks_content_leaves_its_spans_with_the_span_bridge_on_or_off(
        monkeypatch: pytest.MonkeyPatch, bridge: str) -> None:
    """smolagents under OpenInference's instrumentation, against the fake model: its step spans (CHAIN) carry the
    answer, and with the bridge off (``AGENT_OTEL_SPAN_BRIDGE=false``) every span kept its prompt and answer."""
    from agent_otel.testing import capture_telemetry
    from tests.support.fake_llm import FakeLLM
    from tests.support.genai_apps import agent_url, smolagents_agent

    monkeypatch.setenv("AGENT_OTEL_SPAN_BRIDGE", bridge)
    with FakeLLM() as fake, capture_telemetry() as otel:
        with instrumented("smolagents", otel.tracer_provider, otel.meter_provider):
            smolagents_agent(agent_url(fake.url))
        spans = otel.spans()
        assert any(span.name == "Step 1" for span in spans)
        leaks = [(span.name, key) for span in spans for key, value in (span.attributes or {}).items()
                 if "Paris" in str(value)]
        assert leaks == []


def test_pydantic_ais_own_record_of_the_conversation_leaves_its_spans_with_content_off(otel: Any) -> None:
    """pydantic-ai records every message of a run on its agent span (``pydantic_ai.all_messages``): the prompt,
    the tool arguments and results, the answer. Before, that attribute stayed with content capture off."""
    from pydantic_ai import Agent
    from pydantic_ai.models.test import TestModel

    secret = "078-05-1120"
    support = Agent(TestModel(), name="support")

    @support.tool_plain
    def lookup_account(email: str) -> str:
        return f"account {secret}"

    with instrumented("pydantic-ai", otel.tracer_provider, otel.meter_provider):
        support.run_sync(f"My SSN is {secret}, why was I charged twice?")
    spans = otel.spans()
    assert any(span.name == "invoke_agent support" for span in spans)
    leaks = [(span.name, key) for span in spans for key, value in (span.attributes or {}).items()
             if secret in str(value)]
    assert leaks == []


def test_a_config_file_names_the_mode() -> None:
    config = parse_config(tomllib.loads('[policy]\ncapture_content = "EVENT_ONLY"\n'))
    assert config.policy == {"capture_content": "EVENT_ONLY"}
    with pytest.raises(ConfigurationError, match=re.escape(
            "policy.capture_content: expected true, false or one of NO_CONTENT, SPAN_ONLY, EVENT_ONLY, "
            "SPAN_AND_EVENT, got a string 'sometimes'")):
        parse_config(tomllib.loads('[policy]\ncapture_content = "sometimes"\n'))


def test_a_smolagents_agents_task_and_arguments_leave_its_spans_with_content_off() -> None:
    """OpenInference's smolagents instrumentation puts the task an agent was given (``smolagents.task``: read before
    the run sets it, so the previous run's) and the values passed with it (``smolagents.additional_args``) on the
    agent's span: a prompt with a card number went out on the agent's second run, with content capture off."""
    from smolagents import OpenAIModel, ToolCallingAgent

    from agent_otel.testing import capture_telemetry
    from tests.support.fake_llm import FakeLLM
    from tests.support.genai_apps import MODEL, agent_url

    with FakeLLM() as fake, capture_telemetry() as otel:
        with instrumented("smolagents", otel.tracer_provider, otel.meter_provider):
            model = OpenAIModel(model_id=MODEL, api_base=agent_url(fake.url), api_key="test",
                                client_kwargs={"max_retries": 0})
            agent = ToolCallingAgent(tools=[], model=model, name="support", max_steps=2, verbosity_level=0)
            for question in ("My card 4111-1111-1111-1111 was charged twice", "And again?"):
                agent.run(question, additional_args={"card": "4111-1111-1111-1111"})
        leaks = [(span.name, key) for span in otel.spans() for key, value in (span.attributes or {}).items()
                 if "4111" in str(value)]
        assert leaks == []
