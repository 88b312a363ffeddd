"""What the GenAI instrumentations people already run emit, observed for real: each framework's small agent
program (tests/support/genai_apps.py) runs against a fake model under ``capture_telemetry()`` with the real
instrumentation from PyPI turned on, and these tests pin the spans it emits (names, kinds, scopes, parents
and key attributes) and the standard GenAI metrics it records by itself, per instrumentation scope.

They are the inputs of the span bridge: a change in a pinned instrumentation that changes its spans or
metrics fails here first. Spans and metrics of agent-otel's own scope are left out: they are the bridge's
output, asserted by its own tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from opentelemetry.trace import SpanKind

import agent_otel
from agent_otel import semconv
from agent_otel._calls.pricing import cost_of
from agent_otel.testing import capture_telemetry
from tests.support import genai_apps as apps
from tests.support.fake_llm import AGENT_TURNS, RESPONSE_MODEL, FakeLLM
from tests.support.sse_llm import OPENAI_MODEL, OPENAI_USAGE, StreamingLLM

OURS = "agent_otel"
OPENAI_SCOPE = "opentelemetry.instrumentation.genai.openai"
LANGCHAIN_SCOPE = "opentelemetry.instrumentation.genai.langchain"
AGENTS_SCOPE = "opentelemetry.instrumentation.genai.openai_agents"
PYDANTIC_AI_SCOPE = "pydantic-ai"
SMOLAGENTS_SCOPE = "openinference.instrumentation.smolagents"  # OpenInference's
ABSENT = object()  # an attribute the span must not have
CLIENT_METRICS = {"gen_ai.client.operation.duration", "gen_ai.client.token.usage"}
STREAM_METRICS = {"gen_ai.client.operation.time_to_first_chunk", "gen_ai.client.operation.time_per_output_chunk"}


@dataclass(frozen=True)
class Span:
    """One span the source emits: its name, kind, scope, parent span's name and key attributes."""

    name: str
    kind: SpanKind
    scope: str
    parent: str | None
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Source:
    """A framework program and what its instrumentation is expected to emit."""

    instrumentation: str
    program: Callable[[Servers], Any]
    spans: list[Span]
    metrics: dict[str, set[str]]  # scope -> standard metric names it records itself
    tokens: dict[str, tuple[int, int]]  # scope -> (input, output) on its gen_ai.client.token.usage
    bridged: Bridged  # what the span bridge records for it under agent-otel's scope


@dataclass(frozen=True)
class Bridged:
    """What the span bridge turns a source's spans into: provider calls by model, tokens, tool calls and
    agent invocations (workflows too, with task type ``workflow``)."""

    calls: int
    tokens: tuple[int, int] | None
    model: str = ""  # the request model the price comes from ("" when unpriced)
    tools: int = 0
    agents: dict[tuple[str, str], int] = field(default_factory=dict)  # (name, task type) -> invocations
    cache_read: int = 0  # cached input tokens the spans report (priced at the model's cache-read price)


@dataclass(frozen=True)
class Servers:
    fake: FakeLLM
    sse: StreamingLLM

    @property
    def agent_url(self) -> str:
        return apps.agent_url(self.fake.url)


def chat(scope: str, parent: str | None, usage: dict[str, Any], **attributes: Any) -> Span:
    """A chat span over ``FakeLLM``'s agent route answering with ``usage``."""
    return Span(f"chat {apps.MODEL}", SpanKind.CLIENT, scope, parent, {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": apps.MODEL,
        "gen_ai.response.model": RESPONSE_MODEL, "gen_ai.usage.input_tokens": usage["prompt_tokens"],
        "gen_ai.usage.output_tokens": usage["completion_tokens"], "gen_ai.system": ABSENT, **attributes})


FIRST, FINAL = AGENT_TURNS
SMOLAGENTS_RUN = f"{apps.SMOLAGENTS_AGENT}.run"


def openinference_llm(parent: str, usage: dict[str, Any]) -> Span:
    """OpenInference's span of one smolagents model call over ``FakeLLM``'s agent route."""
    return Span("OpenAIModel.generate", SpanKind.INTERNAL, SMOLAGENTS_SCOPE, parent, {
        "openinference.span.kind": "LLM", "llm.provider": "openai", "llm.system": "openai",
        "llm.model_name": apps.MODEL, "llm.token_count.prompt": usage["prompt_tokens"],
        "llm.token_count.completion": usage["completion_tokens"], "gen_ai.operation.name": ABSENT})


def openinference_tool(parent: str, name: str) -> Span:
    return Span("SimpleTool" if name == apps.TOOL_NAME else "FinalAnswerTool", SpanKind.INTERNAL, SMOLAGENTS_SCOPE,
                parent, {"openinference.span.kind": "TOOL", "tool.name": name})


AGENT_TOKENS = apps.fake_turn_tokens()
INVOKE_AGENT = f"invoke_agent {apps.AGENT_NAME}"
EXECUTE_TOOL = f"execute_tool {apps.TOOL_NAME}"
TOOL = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": apps.TOOL_NAME}
AGENT = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": apps.AGENT_NAME}
WORKFLOW = "invoke_workflow Agent workflow"  # openai-agents: RunConfig.workflow_name's default
WORKFLOW_RUN = ("Agent workflow", "workflow")  # what the bridge records it as: (gen_ai.agent.name, agent.task.type)


def openai_calls(servers: Servers) -> list[apps.HostResult]:
    return [apps.openai_chat_sync(servers.agent_url), apps.openai_chat_async(servers.agent_url),
            apps.openai_chat_stream(servers.sse.url + "/v1")]


SOURCES = {
    "openai": Source(
        "openai", openai_calls,
        [chat(OPENAI_SCOPE, None, FINAL, **{"gen_ai.response.finish_reasons": ("stop",),
                                              "gen_ai.response.id": "chatcmpl-1"})] * 2
        + [Span(f"chat {apps.MODEL}", SpanKind.CLIENT, OPENAI_SCOPE, None, {
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": apps.MODEL,
            "gen_ai.request.stream": True, "gen_ai.response.model": OPENAI_MODEL,
            "gen_ai.usage.input_tokens": OPENAI_USAGE["prompt_tokens"],
            "gen_ai.usage.output_tokens": OPENAI_USAGE["completion_tokens"]})],
        {OPENAI_SCOPE: CLIENT_METRICS | STREAM_METRICS},
        {OPENAI_SCOPE: (2 * FINAL["prompt_tokens"] + OPENAI_USAGE["prompt_tokens"],
                        2 * FINAL["completion_tokens"] + OPENAI_USAGE["completion_tokens"])},
        Bridged(3, (2 * FINAL["prompt_tokens"] + OPENAI_USAGE["prompt_tokens"],
                    2 * FINAL["completion_tokens"] + OPENAI_USAGE["completion_tokens"]), apps.MODEL)),
    "pydantic-ai": Source(
        "pydantic-ai", lambda servers: apps.pydantic_ai_agent(),
        [Span(f"chat {apps.PYDANTIC_AI_MODEL}", SpanKind.CLIENT, PYDANTIC_AI_SCOPE, INVOKE_AGENT, {
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "function", "gen_ai.system": "function",
            "gen_ai.request.model": apps.PYDANTIC_AI_MODEL, "gen_ai.agent.name": apps.AGENT_NAME,
            "gen_ai.usage.input_tokens": apps.PYDANTIC_AI_TURNS[0][0],
            "gen_ai.usage.output_tokens": apps.PYDANTIC_AI_TURNS[0][1],
            "gen_ai.usage.cache_read.input_tokens": apps.PYDANTIC_AI_TURNS[0][2]}),
         Span(EXECUTE_TOOL, SpanKind.INTERNAL, PYDANTIC_AI_SCOPE, INVOKE_AGENT, {
             **TOOL, "gen_ai.agent.name": apps.AGENT_NAME, "gen_ai.tool.call.id": "call_1"}),
         Span(f"chat {apps.PYDANTIC_AI_MODEL}", SpanKind.CLIENT, PYDANTIC_AI_SCOPE, INVOKE_AGENT, {
             "gen_ai.operation.name": "chat", "gen_ai.provider.name": "function",
             "gen_ai.usage.input_tokens": apps.PYDANTIC_AI_TURNS[1][0],
             "gen_ai.usage.output_tokens": apps.PYDANTIC_AI_TURNS[1][1]}),
         # The run's tokens are under gen_ai.aggregated_usage.*, not gen_ai.usage.*, and it names no provider.
         Span(INVOKE_AGENT, SpanKind.INTERNAL, PYDANTIC_AI_SCOPE, None, {
             **AGENT, "gen_ai.aggregated_usage.input_tokens": 50, "gen_ai.aggregated_usage.output_tokens": 13,
             "gen_ai.usage.input_tokens": ABSENT, "gen_ai.provider.name": ABSENT,
             "model_name": apps.PYDANTIC_AI_MODEL})],
        {PYDANTIC_AI_SCOPE: {"gen_ai.client.token.usage"}},
        {PYDANTIC_AI_SCOPE: (50, 13)},
        Bridged(2, (50, 13), "", tools=1, agents={(apps.AGENT_NAME, "default"): 1})),
    "langchain": Source(
        "langchain", lambda servers: apps.langchain_agent(servers.agent_url),
        [chat(LANGCHAIN_SCOPE, INVOKE_AGENT, FIRST, **{"gen_ai.response.finish_reasons": ("tool_calls",),
                                                        "gen_ai.usage.cache_read.input_tokens": 4}),
         Span(EXECUTE_TOOL, SpanKind.INTERNAL, LANGCHAIN_SCOPE, INVOKE_AGENT, {
             **TOOL, "gen_ai.agent.name": apps.AGENT_NAME, "gen_ai.tool.call.id": "call_1",
             "gen_ai.tool.type": "function"}),
         chat(LANGCHAIN_SCOPE, INVOKE_AGENT, FINAL, **{"gen_ai.response.finish_reasons": ("stop",),
                                                       "gen_ai.usage.reasoning.output_tokens": 2}),
         Span(INVOKE_AGENT, SpanKind.INTERNAL, LANGCHAIN_SCOPE, None, {
             **AGENT, "gen_ai.provider.name": ABSENT, "gen_ai.usage.input_tokens": ABSENT})],
        {LANGCHAIN_SCOPE: CLIENT_METRICS | {"gen_ai.invoke_agent.duration", "gen_ai.execute_tool.duration"}},
        {LANGCHAIN_SCOPE: AGENT_TOKENS},
        Bridged(2, AGENT_TOKENS, apps.MODEL, tools=1, agents={(apps.AGENT_NAME, "default"): 1}, cache_read=4)),
    # Alone, the openai-agents instrumentation emits no chat span and no tokens: its docs leave them to the
    # OpenAI instrumentation, the pairing below.
    "openai-agents": Source(
        "openai-agents", lambda servers: apps.openai_agents_agent(servers.agent_url),
        [Span(EXECUTE_TOOL, SpanKind.INTERNAL, AGENTS_SCOPE, INVOKE_AGENT, {
            **TOOL, "gen_ai.tool.type": "function", "gen_ai.agent.name": ABSENT}),
         Span(INVOKE_AGENT, SpanKind.INTERNAL, AGENTS_SCOPE, WORKFLOW, {**AGENT, "gen_ai.provider.name": ABSENT}),
         Span(WORKFLOW, SpanKind.INTERNAL, AGENTS_SCOPE, None, {
             "gen_ai.operation.name": "invoke_workflow", "gen_ai.workflow.name": "Agent workflow"})],
        {AGENTS_SCOPE: {"gen_ai.invoke_agent.duration", "gen_ai.execute_tool.duration",
                        "gen_ai.invoke_workflow.duration"}},
        {},
        # its workflow span is an agent invocation of task type workflow, directly in our job as outside any (a
        # job is no agent run)
        Bridged(0, None, tools=1, agents={(apps.AGENT_NAME, "default"): 1, WORKFLOW_RUN: 1})),
    "openai-agents+openai": Source(
        "openai-agents+openai", lambda servers: apps.openai_agents_agent(servers.agent_url),
        [chat(OPENAI_SCOPE, INVOKE_AGENT, FIRST, **{"gen_ai.response.finish_reasons": ("tool_calls",)}),
         Span(EXECUTE_TOOL, SpanKind.INTERNAL, AGENTS_SCOPE, INVOKE_AGENT, TOOL),
         chat(OPENAI_SCOPE, INVOKE_AGENT, FINAL, **{"gen_ai.response.finish_reasons": ("stop",)}),
         Span(INVOKE_AGENT, SpanKind.INTERNAL, AGENTS_SCOPE, WORKFLOW, AGENT),
         Span(WORKFLOW, SpanKind.INTERNAL, AGENTS_SCOPE, None, {"gen_ai.operation.name": "invoke_workflow"})],
        {OPENAI_SCOPE: CLIENT_METRICS,
         AGENTS_SCOPE: {"gen_ai.invoke_agent.duration", "gen_ai.execute_tool.duration",
                        "gen_ai.invoke_workflow.duration"}},
        {OPENAI_SCOPE: AGENT_TOKENS},
        Bridged(2, AGENT_TOKENS, apps.MODEL, tools=1, agents={(apps.AGENT_NAME, "default"): 1, WORKFLOW_RUN: 1},
                cache_read=4)),
    # OpenInference: spans with no GenAI names and no metrics. Its AGENT span names no agent (the bridge names the
    # invocation after the span) and its CHAIN spans (one per step) are not mapped; the run ends with a call of
    # smolagents' final_answer tool, which counts as a tool call.
    "smolagents": Source(
        "smolagents", lambda servers: apps.smolagents_agent(servers.agent_url),
        [openinference_llm("Step 1", FIRST), openinference_tool("Step 1", apps.TOOL_NAME),
         Span("Step 1", SpanKind.INTERNAL, SMOLAGENTS_SCOPE, SMOLAGENTS_RUN, {"openinference.span.kind": "CHAIN"}),
         openinference_llm("Step 2", FINAL), openinference_tool("Step 2", "final_answer"),
         Span("Step 2", SpanKind.INTERNAL, SMOLAGENTS_SCOPE, SMOLAGENTS_RUN, {"openinference.span.kind": "CHAIN"}),
         Span(SMOLAGENTS_RUN, SpanKind.INTERNAL, SMOLAGENTS_SCOPE, None, {
             "openinference.span.kind": "AGENT", "llm.token_count.prompt": AGENT_TOKENS[0],
             "llm.token_count.completion": AGENT_TOKENS[1]})],
        {}, {},
        Bridged(2, AGENT_TOKENS, apps.MODEL, tools=2, agents={(SMOLAGENTS_RUN, "default"): 1})),
}


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    with FakeLLM() as fake, StreamingLLM() as sse, apps.openai_agents_tracing_local():
        yield Servers(fake, sse)


@dataclass
class Observed:
    without: Any
    with_instrumentation: Any
    spans: list[Any]
    metrics: dict[str, dict[str, Any]]
    ours: dict[str, Any]  # agent-otel's own metrics: what the span bridge recorded
    job_id: str
    job_span: Any


def observe(source: Source, servers: Servers) -> Observed:
    """Run the program without, then with the real instrumentation on (inside an agent-otel job); what the
    host got each time, what the instrumentation emitted (agent-otel's own scope apart), and what the span
    bridge recorded."""
    without = source.program(servers)
    with capture_telemetry() as telemetry:
        with (apps.instrumented(source.instrumentation, telemetry.tracer_provider, telemetry.meter_provider),
              agent_otel.job(type="bridged") as job):
            job_id = str(job.id)
            result = source.program(servers)
        spans = [span for span in telemetry.spans() if span.instrumentation_scope.name != OURS]
        metrics = {scope: found for scope, found in apps.metrics_by_scope(telemetry.reader).items() if scope != OURS}
        return Observed(without, result, spans, metrics, telemetry.metrics(), job_id,
                        telemetry.span(semconv.job_span_name("bridged")))


def described(span: Any, by_id: dict[int, Any]) -> Span:
    parent = by_id.get(span.parent.span_id) if span.parent is not None else None
    return Span(span.name, span.kind, span.instrumentation_scope.name, parent.name if parent is not None else None)


@pytest.fixture(scope="module", params=list(SOURCES))
def observed(request: pytest.FixtureRequest, servers: Servers) -> tuple[Source, Observed]:
    source = SOURCES[request.param]
    return source, observe(source, servers)


def test_the_host_gets_the_same_result_with_the_instrumentation_on(observed: tuple[Source, Observed]) -> None:
    _, seen = observed
    assert seen.with_instrumentation == seen.without


def test_the_fake_model_figures_reach_the_host(observed: tuple[Source, Observed]) -> None:
    source, seen = observed
    results = seen.without if isinstance(seen.without, list) else [seen.without]
    if source.instrumentation == "openai":
        expected = [(FINAL["prompt_tokens"], FINAL["completion_tokens"])] * 2 + [
            (OPENAI_USAGE["prompt_tokens"], OPENAI_USAGE["completion_tokens"])]
    else:
        expected = [AGENT_TOKENS]
    assert [(result.input_tokens, result.output_tokens) for result in results] == expected


def test_the_instrumentation_emits_these_spans(observed: tuple[Source, Observed]) -> None:
    source, seen = observed
    by_id = {span.context.span_id: span for span in seen.spans}
    assert [described(span, by_id) for span in seen.spans] == [
        Span(span.name, span.kind, span.scope, span.parent) for span in source.spans]


def test_the_spans_carry_these_attributes(observed: tuple[Source, Observed]) -> None:
    source, seen = observed
    for span, expected in zip(seen.spans, source.spans, strict=True):
        attributes = dict(span.attributes or {})
        got = {key: attributes.get(key, ABSENT) for key in expected.attributes}
        assert got == expected.attributes, span.name


def test_the_instrumentation_records_these_metrics_itself(observed: tuple[Source, Observed]) -> None:
    source, seen = observed
    assert {scope: set(metrics) for scope, metrics in seen.metrics.items()} == source.metrics


def test_its_token_histogram_holds_the_fake_model_tokens(observed: tuple[Source, Observed]) -> None:
    source, seen = observed
    for scope, (input_tokens, output_tokens) in source.tokens.items():
        points = seen.metrics[scope]["gen_ai.client.token.usage"].data.data_points
        totals = {kind: sum(point.sum for point in points if point.attributes["gen_ai.token.type"] == kind)
                  for kind in ("input", "output")}
        assert totals == {"input": input_tokens, "output": output_tokens}, scope


def points_of(seen: Observed, instrument: semconv.Instrument[Any]) -> list[Any]:
    metric = seen.ours.get(instrument.name)
    return list(metric.data.data_points) if metric is not None else []


def test_the_bridge_records_each_call_once_with_the_fake_model_figures(observed: tuple[Source, Observed]) -> None:
    source, seen = observed
    expected = source.bridged
    calls = points_of(seen, semconv.CLIENT_INFERENCE_DURATION)
    assert sum(point.count for point in calls) == expected.calls
    tokens = {kind: sum(point.sum for point in points_of(seen, histogram))
              for kind, histogram in (("input", semconv.CLIENT_OPERATION_INPUT_TOKENS),
                                      ("output", semconv.CLIENT_OPERATION_OUTPUT_TOKENS))}
    assert (tokens["input"], tokens["output"]) == (expected.tokens or (0, 0))
    cost = sum(point.value for point in points_of(seen, semconv.CLIENT_COST))
    priced = (cost_of(expected.model, *expected.tokens, cache_read=expected.cache_read)
              if expected.model and expected.tokens else None)
    assert cost == pytest.approx(priced or 0.0)
    assert sum(point.count for point in points_of(seen, semconv.TOOL_DURATION)) == expected.tools
    agents = {(point.attributes[semconv.GEN_AI_AGENT_NAME], point.attributes[semconv.AGENT_TASK_TYPE]): point.count
              for point in points_of(seen, semconv.AGENT_DURATION)}
    assert agents == expected.agents
    rollups = seen.job_span.attributes
    assert rollups[semconv.JOB_ROLLUP_PROVIDER_CALLS] == expected.calls
    assert rollups[semconv.JOB_ROLLUP_TOOL_CALLS] == expected.tools
    assert rollups[semconv.JOB_ROLLUP_INPUT_TOKENS] == (expected.tokens or (0, 0))[0]


def test_the_job_id_is_on_every_span_of_the_source(observed: tuple[Source, Observed]) -> None:
    _, seen = observed
    assert seen.spans
    assert {span.attributes.get(semconv.JOB_ID) for span in seen.spans} == {seen.job_id}
