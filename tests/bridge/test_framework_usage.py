"""The tokens and cost the span bridge reads off real frameworks' spans, with their real instrumentations on:
pydantic-ai over a ``FunctionModel`` whose usage the test chooses, and each framework's agent program of
tests/support/genai_apps.py over the loopback fake model."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

import agent_otel
from agent_otel import semconv
from tests.support import genai_apps as apps
from tests.support.fake_llm import AGENT_TURNS, RESPONSE_MODEL, FakeLLM
from tests.support.telemetry import points

MODEL = "priced-fake-model"
PRICE = {"input": 3.0, "output": 15.0, "cache_read": 0.3, "cache_write": 3.75, "reasoning": 20.0}


def pydantic_ai_run(**usage: Any) -> None:
    """One pydantic-ai agent run whose single model call reports ``usage`` (``RequestUsage`` fields)."""
    from pydantic_ai import Agent
    from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
    from pydantic_ai.models.function import AgentInfo, FunctionModel
    from pydantic_ai.usage import RequestUsage

    def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return ModelResponse(parts=[TextPart("sunny")], usage=RequestUsage(**usage))

    Agent(FunctionModel(answer, model_name=MODEL), name=apps.AGENT_NAME).run_sync(apps.QUESTION)


def test_pydantic_ais_cache_write_and_reasoning_tokens_are_counted_and_priced(otel: Any) -> None:
    """pydantic-ai names cache writes ``gen_ai.usage.cache_creation.input_tokens`` (the core semconv package's
    name) and reasoning tokens only ``gen_ai.usage.details.reasoning_tokens``. Before, both were missed: no
    cache-write or reasoning tokens, and each priced at the plain input or output price."""
    agent_otel.set_prices({MODEL: PRICE})
    with apps.instrumented("pydantic-ai", otel.tracer_provider, otel.meter_provider):
        pydantic_ai_run(input_tokens=2600, cache_read_tokens=2000, cache_write_tokens=500, output_tokens=700,
                        details={"reasoning_tokens": 400})
    [chat] = [span for span in otel.spans() if span.name == f"chat {MODEL}"]
    assert chat.attributes["gen_ai.usage.cache_creation.input_tokens"] == 500  # what pydantic-ai emits
    assert chat.attributes["gen_ai.usage.details.reasoning_tokens"] == 400
    totals = {instrument.name: sum(p.value for p in points(otel, instrument.name))
              for instrument in (semconv.CLIENT_USAGE_CACHE_WRITE_TOKENS,
                                 semconv.CLIENT_USAGE_REASONING_TOKENS)}
    assert totals == {semconv.CLIENT_USAGE_CACHE_WRITE_TOKENS.name: 500,
                      semconv.CLIENT_USAGE_REASONING_TOKENS.name: 400}
    expected = (100 * 3.0 + 2000 * 0.3 + 500 * 3.75 + 300 * 15.0 + 400 * 20.0) / 1e6
    assert sum(p.value for p in points(otel, semconv.CLIENT_COST.name)) == pytest.approx(expected)


def test_pydantic_ais_time_to_first_chunk_of_a_streamed_run_is_recorded(otel: Any) -> None:
    """pydantic-ai puts it on its chat span as ``gen_ai.client.operation.time_to_first_chunk`` (its metric's
    name); the bridge read only ``gen_ai.response.time_to_first_chunk``, so a streamed run recorded none."""
    import asyncio

    from pydantic_ai import Agent
    from pydantic_ai.messages import ModelMessage
    from pydantic_ai.models.function import AgentInfo, FunctionModel

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> Any:
        for word in ("sunny", " and warm"):
            yield word

    async def run() -> str:
        agent = Agent(FunctionModel(stream_function=stream, model_name=MODEL), name=apps.AGENT_NAME)
        async with agent.run_stream(apps.QUESTION) as result:
            return await result.get_output()

    with apps.instrumented("pydantic-ai", otel.tracer_provider, otel.meter_provider):
        assert asyncio.run(run()) == "sunny and warm"
    [chat] = [span for span in otel.spans() if span.name == f"chat {MODEL}"]
    seen = chat.attributes["gen_ai.client.operation.time_to_first_chunk"]  # what pydantic-ai emits
    [point] = points(otel, semconv.CLIENT_TIME_TO_FIRST_CHUNK.name)
    assert point.count == 1 and point.sum == pytest.approx(seen)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeLLM]:
    with FakeLLM() as server, apps.openai_agents_tracing_local():
        yield server


# framework -> (its program, the agent name its invocations are recorded under, the model priced)
FRAMEWORKS: dict[str, tuple[Callable[[str], Any], str, str]] = {
    "langchain": (apps.langchain_agent, apps.AGENT_NAME, apps.MODEL),
    "openai-agents+openai": (apps.openai_agents_agent, apps.AGENT_NAME, apps.MODEL),
    "smolagents": (apps.smolagents_agent, f"{apps.SMOLAGENTS_AGENT}.run", apps.MODEL),  # model calls under steps
    "pydantic-ai": (lambda url: apps.pydantic_ai_agent(), apps.AGENT_NAME, apps.PYDANTIC_AI_MODEL),
}


@pytest.mark.parametrize("framework", list(FRAMEWORKS))
def test_a_framework_agents_model_calls_are_its_own_as_in_an_agent_of_ours(
        otel: Any, fake: FakeLLM, framework: str) -> None:
    """The cost of the model calls under another library's ``invoke_agent`` span carries its agent's name, and
    its invocation records its inference and tool calls, as an agent of ours does; so the per-agent cost rules
    and the runaway-loop alert see framework agents. Before, the cost had no agent (its cost per invocation was
    empty) and the invocation no call counts."""
    program, agent, model = FRAMEWORKS[framework]
    agent_otel.set_prices({apps.PYDANTIC_AI_MODEL: {"input": 1.0, "output": 2.0}})
    with apps.instrumented(framework, otel.tracer_provider, otel.meter_provider):
        program(apps.agent_url(fake.url))
    cost = points(otel, semconv.CLIENT_COST.name)
    assert cost and {p.attributes.get(semconv.GEN_AI_AGENT_NAME) for p in cost} == {agent}
    assert model in {p.attributes[semconv.GEN_AI_REQUEST_MODEL] for p in cost}
    [calls] = points(otel, semconv.AGENT_INFERENCE_CALLS.name)
    assert (calls.attributes[semconv.GEN_AI_AGENT_NAME], calls.sum) == (agent, 2)
    [tools] = points(otel, semconv.AGENT_TOOL_CALLS.name)
    assert tools.sum == (2 if framework == "smolagents" else 1)  # smolagents ends with its final_answer tool


@pytest.mark.parametrize("framework", list(FRAMEWORKS))
def test_a_tool_decorated_with_ours_still_counts_for_the_framework_agent_that_called_it(
        otel: Any, fake: FakeLLM, framework: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``@agent_otel.tool`` on a framework agent's tool: our span covers the framework's tool span, and the call
    stays that agent's (its tool count, ``gen_ai.agent.name`` on the tool's duration). Before, decorating it took
    the call away from the agent: its tool count dropped by one and the tool's duration had no agent."""
    program, agent, _ = FRAMEWORKS[framework]
    monkeypatch.setattr(apps, "get_weather", agent_otel.tool(apps.TOOL_NAME)(apps.get_weather))
    with apps.instrumented(framework, otel.tracer_provider, otel.meter_provider):
        program(apps.agent_url(fake.url))
    [tools] = points(otel, semconv.AGENT_TOOL_CALLS.name)
    assert (tools.attributes[semconv.GEN_AI_AGENT_NAME], tools.sum) == (agent, 2 if framework == "smolagents" else 1)
    durations = points(otel, semconv.TOOL_DURATION.name, {semconv.GEN_AI_TOOL_NAME: apps.TOOL_NAME})
    assert [(p.attributes.get(semconv.GEN_AI_AGENT_NAME), p.count) for p in durations] == [(agent, 1)]
    [ours] = [span for span in otel.spans() if span.name == semconv.tool_span_name(apps.TOOL_NAME)
              and span.instrumentation_scope is not None and span.instrumentation_scope.name == semconv.SCOPE_NAME]
    assert ours.attributes is not None and ours.attributes[semconv.GEN_AI_AGENT_NAME] == agent


def test_two_instrumentations_of_one_model_call_count_it_with_what_the_inner_span_reports(
        otel: Any, fake: FakeLLM) -> None:
    """smolagents' model calls traced by OpenInference's instrumentation (an ``LLM`` span with the token counts
    alone) around the OpenAI SDK's (a ``chat`` span that also has the cache and reasoning tokens and the response
    model): the outer span counts each call once, with what the inner one reported. Before, the inner span's
    figures were dropped: no cache or reasoning tokens (the cache reads priced as fresh input), no response model."""
    agent_otel.set_prices({apps.MODEL: PRICE})
    with apps.instrumented("smolagents+openai", otel.tracer_provider, otel.meter_provider):
        apps.smolagents_agent(apps.agent_url(fake.url))
    calls = points(otel, semconv.CLIENT_INFERENCE_DURATION.name)
    assert sum(p.count for p in calls) == 2  # one per request: the inner spans are not counted again
    assert {p.attributes.get(semconv.GEN_AI_RESPONSE_MODEL) for p in calls} == {RESPONSE_MODEL}
    totals = {instrument.name: sum(p.value for p in points(otel, instrument.name))
              for instrument in (semconv.CLIENT_USAGE_INPUT_TOKENS, semconv.CLIENT_USAGE_OUTPUT_TOKENS,
                                 semconv.CLIENT_USAGE_CACHE_READ_TOKENS, semconv.CLIENT_USAGE_REASONING_TOKENS)}
    first, second = AGENT_TURNS
    assert totals == {
        semconv.CLIENT_USAGE_INPUT_TOKENS.name: first["prompt_tokens"] + second["prompt_tokens"],
        semconv.CLIENT_USAGE_OUTPUT_TOKENS.name: first["completion_tokens"] + second["completion_tokens"],
        semconv.CLIENT_USAGE_CACHE_READ_TOKENS.name: 4, semconv.CLIENT_USAGE_REASONING_TOKENS.name: 2}
    expected = ((20 - 4) * 3.0 + 4 * 0.3 + 5 * 15.0 + 30 * 3.0 + (8 - 2) * 15.0 + 2 * 20.0) / 1e6
    assert sum(p.value for p in points(otel, semconv.CLIENT_COST.name)) == pytest.approx(expected)


def test_an_agent_of_ours_running_an_openai_agents_agent_of_its_name_is_one_invocation(
        otel: Any, fake: FakeLLM) -> None:
    """openai-agents opens ``invoke_workflow Agent workflow`` directly under our agent, then its ``invoke_agent`` of
    the same name inside it: both are our call's run. Taking the workflow for the twin made the agent span a second
    invocation (two durations, the model calls on the phantom one, 0 on ours)."""
    run = agent_otel.agent(apps.AGENT_NAME)(apps.openai_agents_agent)
    with apps.instrumented("openai-agents+openai", otel.tracer_provider, otel.meter_provider):
        run(apps.agent_url(fake.url))
    durations = points(otel, semconv.AGENT_DURATION.name)
    assert [(p.attributes[semconv.GEN_AI_AGENT_NAME], p.count) for p in durations] == [(apps.AGENT_NAME, 1)]
    [calls] = points(otel, semconv.AGENT_INFERENCE_CALLS.name)
    assert (calls.attributes[semconv.GEN_AI_AGENT_NAME], calls.count, calls.sum) == (apps.AGENT_NAME, 1, 2)


def test_a_run_going_on_after_our_agent_call_returned_it_is_counted_as_its_own(otel: Any, fake: FakeLLM) -> None:
    """openai-agents' ``Runner.run_streamed`` returns a handle at once; the run's spans start later, in the task it
    made, under our call's ended span. Taken for our call's run, they were dropped: the run recorded as our call's
    2 ms, with no model call. A library's run that starts once our call has ended is a run of its own."""
    import asyncio

    from agents import Agent, OpenAIChatCompletionsModel, Runner, function_tool

    client = openai.AsyncOpenAI(base_url=apps.agent_url(fake.url), api_key="test", max_retries=0)
    framework_agent = Agent(name=apps.AGENT_NAME, instructions="Answer with the weather tool.",
                            tools=[function_tool(apps.get_weather)],
                            model=OpenAIChatCompletionsModel(model=apps.MODEL, openai_client=client))

    @agent_otel.agent(apps.AGENT_NAME)
    def start_run() -> Any:
        return Runner.run_streamed(framework_agent, apps.QUESTION)

    async def main() -> None:
        result = start_run()
        async for _ in result.stream_events():
            pass

    with apps.instrumented("openai-agents+openai", otel.tracer_provider, otel.meter_provider):
        asyncio.run(main())
    chats = [span for span in otel.spans() if span.name == f"chat {apps.MODEL}"]
    durations = {p.attributes[semconv.GEN_AI_AGENT_NAME]: p.count for p in points(otel, semconv.AGENT_DURATION.name)}
    assert durations == {apps.AGENT_NAME: 2, "Agent workflow": 1}  # the run's, as without our call, and our call
    [calls] = points(otel, semconv.AGENT_INFERENCE_CALLS.name)
    assert chats and (calls.count, calls.sum) == (2, len(chats))  # the run's model calls: ours made none


def test_a_framework_agents_name_on_its_cost_passes_the_cardinality_cap(otel: Any) -> None:
    agent_otel.set_policy(cardinality_limit=3)
    tracer = otel.tracer_provider.get_tracer("some.framework")
    for i in range(6):
        with tracer.start_as_current_span("invoke_agent", attributes={
                semconv.GEN_AI_OPERATION_NAME: "invoke_agent", semconv.GEN_AI_AGENT_NAME: f"agent-{i}"}), \
                tracer.start_as_current_span("step", attributes={"openinference.span.kind": "CHAIN"}), \
                tracer.start_as_current_span("chat gpt-4o", attributes={
                    semconv.GEN_AI_OPERATION_NAME: "chat", semconv.GEN_AI_PROVIDER_NAME: "openai",
                    semconv.GEN_AI_REQUEST_MODEL: "gpt-4o", semconv.GEN_AI_USAGE_INPUT_TOKENS: 10,
                    semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 1}):
            pass
    names = {p.attributes[semconv.GEN_AI_AGENT_NAME] for p in points(otel, semconv.CLIENT_COST.name)}
    assert len(names) == 4 and "_OTHER" in names


MCP_PROGRAM = """
import asyncio, json
from mcp import Client
from mcp.server.mcpserver import MCPServer
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
import agent_otel

spans, reader = InMemorySpanExporter(), InMemoryMetricReader()
tracer_provider = TracerProvider()
tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
trace.set_tracer_provider(tracer_provider)  # the MCP library traces through the global provider
agent_otel.configure(tracer_provider=tracer_provider, meter_provider=MeterProvider(metric_readers=[reader]))
server = MCPServer("inventory")


@server.tool()
def reorder(units: int) -> str:
    if units <= 0:
        raise ValueError("units must be positive")
    return f"ordered {units}"


@agent_otel.tool("reorder")
async def call_reorder(client, units):
    return await client.call_tool("reorder", {"units": units})


@agent_otel.tool("restock")
async def restock(client):  # handles the failed result: its own call succeeds
    result = await client.call_tool("reorder", {"units": 0})
    return "wait" if result.is_error else "ordered"


async def main():
    async with Client(server) as client:
        return [(await call_reorder(client, units)).is_error for units in (5, 0)] + [await restock(client)]


results = asyncio.run(main())
ours = [span for span in spans.get_finished_spans()
        if span.instrumentation_scope.name == "agent_otel" and span.name == "execute_tool reorder"]
counted = [(point.attributes.get("error.type"), point.count)
           for metric in reader.get_metrics_data().resource_metrics[0].scope_metrics for m in [metric]
           for instrument in m.metrics if instrument.name == "gen_ai.execute_tool.duration"
           for point in instrument.data.data_points if point.attributes["gen_ai.tool.name"] == "reorder"]
restocked = [point.attributes.get("error.type")
             for metric in reader.get_metrics_data().resource_metrics[0].scope_metrics
             for instrument in metric.metrics if instrument.name == "gen_ai.execute_tool.duration"
             for point in instrument.data.data_points if point.attributes["gen_ai.tool.name"] == "restock"]
theirs = sorted({span.name for span in spans.get_finished_spans()} - {"execute_tool reorder"})
print(json.dumps({"results": results, "theirs": theirs, "counted": dict(counted), "restocked": restocked,
                  "ours": [(span.attributes.get("error.type"), span.status.status_code.name) for span in ours]}))
"""


def test_a_tool_of_ours_over_an_mcp_call_fails_with_the_error_result_the_mcp_library_saw(tmp_path: Path) -> None:
    """An MCP tool that fails returns a result with ``isError`` (no exception): the MCP library's own span of the call
    records ``error.type=tool_error``, and ours, around it, returned that result. Ours won the call and counted it a
    success; now a result saying the tool failed fails the call (one that handled it, returning something else, not).
    (A child process: the MCP library traces through the global tracer provider, which a process sets once.)"""
    (tmp_path / "app.py").write_text(MCP_PROGRAM)
    child = subprocess.run([sys.executable, "app.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                           env={**os.environ, "OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"})
    assert child.returncode == 0, child.stderr
    found = json.loads(child.stdout.splitlines()[-1])
    assert found["results"] == [False, True, "wait"]  # the program's results, as they were
    assert "tools/call reorder" in found["theirs"]
    assert found["ours"] == [[None, "UNSET"], ["tool_error", "ERROR"]]
    assert found["counted"] == {"null": 1, "tool_error": 1}  # (JSON keys: None is "null")
    assert found["restocked"] == [None]  # a tool that handled the failed result it got is no failure


LOGFIRE_PROGRAM = """
import json, sys
import logfire
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
import agent_otel

spans, reader = InMemorySpanExporter(), InMemoryMetricReader()
logfire.configure(send_to_logfire=False, console=False, additional_span_processors=[SimpleSpanProcessor(spans)])
agent_otel.configure(tracer_provider=trace.get_tracer_provider().provider,  # logfire's SDK provider (README)
                     meter_provider=MeterProvider(metric_readers=[reader]), prometheus_port=0)
from openai import OpenAI
client = OpenAI(base_url=sys.argv[1] + "/stable/v1", api_key="test", max_retries=0)
logfire.instrument_openai(client)
def streamed():
    return client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                                          stream=True, stream_options={"include_usage": True})

@agent_otel.provider("openai", model="gpt-4o-mini")  # ours around logfire's: ours counts the call, its stream's usage
def asked():
    return streamed()

def read(stream):
    return "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)

with agent_otel.job(type="review"), agent_otel.agent_call("reviewer"), agent_otel.tool_call("search"):
    text = read(streamed())  # the log's context names the tool's span: the call is still the agent's and the job's
with agent_otel.job(type="review"):
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
with agent_otel.job(type="wrapped"):
    text += read(asked())
totals, agents = {}, {}
for resource in reader.get_metrics_data().resource_metrics:
    for scope in resource.scope_metrics:
        if scope.scope.name == "agent_otel":
            for metric in scope.metrics:
                totals[metric.name] = sum(getattr(p, "count", None) or getattr(p, "value", 0)
                                          for p in metric.data.data_points)
                if metric.name == "agent_otel.client.cost":
                    agents = {p.attributes.get("gen_ai.agent.name"): p.value for p in metric.data.data_points}
jobs = [span for span in spans.get_finished_spans() if span.name.startswith("invoke_workflow")]
print(json.dumps({"text": text, "calls": totals["gen_ai.client.inference.duration"],
                  "input": totals["gen_ai.client.inference.usage.input_tokens"],
                  "output": totals["gen_ai.client.inference.usage.output_tokens"],
                  "jobs": [{key: value for key, value in job.attributes.items()
                            if key.startswith(("job.provider.", "job.usage.")) and key != "job.usage.cost"}
                           for job in (jobs[0], jobs[2])],  # the streamed calls' jobs
                  "costs": [job.attributes.get("job.usage.cost") for job in jobs], "agents": list(agents)}))
"""


LOGFIRE_STREAMS_AT_ONCE = """
import asyncio, json, sys, urllib.request
import logfire
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
import agent_otel
from openai import AsyncOpenAI

spans = InMemorySpanExporter()
logfire.configure(send_to_logfire=False, console=False, additional_span_processors=[SimpleSpanProcessor(spans)])
agent_otel.configure(tracer_provider=trace.get_tracer_provider().provider, meter_provider=MeterProvider(),
                     prometheus_port=0)
held = AsyncOpenAI(base_url=sys.argv[1] + "/held/v1", api_key="test", max_retries=0)
quick = AsyncOpenAI(base_url=sys.argv[1] + "/stable/v1", api_key="test", max_retries=0)
logfire.instrument_openai(held)
logfire.instrument_openai(quick)

async def read(client):
    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                                                  stream=True, stream_options={"include_usage": True})
    return "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])

async def first_then_release():
    text = await read(quick)  # read to its end, logged, while the held request's span is still open
    urllib.request.urlopen(urllib.request.Request(sys.argv[1] + "/release", data=b"{}"), timeout=30).read()
    return text

async def main():
    with agent_otel.job(type="review"):
        return await asyncio.gather(read(held), first_then_release())

texts = asyncio.run(main())
[job] = [span for span in spans.get_finished_spans() if span.name == "invoke_workflow review"]
rollups = {key: value for key, value in job.attributes.items()
           if key.startswith(("job.provider.", "job.usage.")) and key != "job.usage.cost"}
print(json.dumps({"texts": texts, "job": rollups}))
"""


#: The end of a program that ran with an in-memory ``reader`` and set ``output``: agent-otel's points by metric and
#: agent name (a histogram's count and sum, a counter's value), and the output, as JSON.
AGENT_OTEL_POINTS = """
found = {}
for resource in reader.get_metrics_data().resource_metrics:
    for scope in resource.scope_metrics:
        if scope.scope.name == "agent_otel":
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    key = metric.name + "|" + str(point.attributes.get("gen_ai.agent.name"))
                    found[key] = [getattr(point, "count", None), getattr(point, "sum", getattr(point, "value", None))]
print(json.dumps({"output": output, "found": found}))
"""


LOGFIRE_PYDANTIC_AI = """
import json, sys
import logfire
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
import agent_otel
from pydantic_ai import Agent
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

reader = InMemoryMetricReader()
logfire.configure(send_to_logfire=False, console=False)
logfire.instrument_pydantic_ai()
agent_otel.configure(tracer_provider=trace.get_tracer_provider().provider,  # logfire's SDK provider (README)
                     meter_provider=MeterProvider(metric_readers=[reader]), prometheus_port=0)
provider = OpenAIProvider(base_url=sys.argv[1] + "/agent/v1", api_key="test")
logfire.instrument_openai(provider.client)  # the model's requests traced twice: pydantic-ai's span, the client's
agent = Agent(OpenAIChatModel("gpt-4o-mini", provider=provider), name="forecaster")

@agent.tool_plain
@agent_otel.tool("get_weather")  # ours and pydantic-ai's span of one tool call
def get_weather(city: str) -> str:
    return f"sunny in {city}"

with agent_otel.job(type="forecast"):
    output = agent.run_sync("Weather in Paris?").output
"""


def test_pydantic_ai_under_logfire_counts_each_model_and_tool_call_once_for_its_agent(tmp_path: Path) -> None:
    """logfire's tracers make a wrapper of each span current (``_LogfireWrappedSpan``), not the SDK span the bridge
    knows spans by: the client's span inside pydantic-ai's model-request span was counted as a second call, ours and
    pydantic-ai's span of one tool call as two, and no call was its agent's."""
    found = run_over_fake_model(tmp_path, LOGFIRE_PYDANTIC_AI + AGENT_OTEL_POINTS)
    assert found["output"] == "Forecast: sunny in Paris"
    counted = found["found"]
    assert counted["gen_ai.client.inference.duration|None"][0] == 2  # (no agent label on it: its cost has one)
    assert counted["gen_ai.client.inference.usage.input_tokens|None"][1] == 20 + 30
    costs = [key for key in counted if key.startswith("agent_otel.client.cost|")]
    assert costs == ["agent_otel.client.cost|forecaster"]
    assert counted["gen_ai.execute_tool.duration|forecaster"][0] == 1
    assert "gen_ai.execute_tool.duration|None" not in counted
    assert counted["gen_ai.invoke_agent.inference_calls|forecaster"] == [1, 2]  # one run, its two model calls
    assert counted["gen_ai.invoke_agent.tool_calls|forecaster"] == [1, 1]


AGENT_FRAMEWORK = """
import asyncio, json, sys
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
import agent_otel
from agent_framework import Agent, tool
from agent_framework.openai import OpenAIChatCompletionClient

reader = InMemoryMetricReader()
agent_otel.configure(meter_provider=MeterProvider(metric_readers=[reader]), prometheus_port=0)

@tool
def get_weather(city: str) -> str:
    \"\"\"The weather in a city.\"\"\"
    return f"sunny in {city}"

client = OpenAIChatCompletionClient(model="gpt-4o-mini", api_key="test", base_url=sys.argv[1] + "/agent/v1")
agent = Agent(client=client, name="forecaster", instructions="Answer.", tools=[get_weather])
with agent_otel.job(type="forecast"):
    output = asyncio.run(agent.run("Weather in Paris?")).text
"""


def test_agent_frameworks_runs_model_calls_and_tools_are_counted_for_their_agent(tmp_path: Path) -> None:
    """Microsoft Agent Framework starts its agent and model-call spans with no attribute and marks them right after, as
    Semantic Kernel (its predecessor) does: each was counted only at stage ``bridge.marked_at_end``, no agent run, no
    model call (without an instrumentation of the OpenAI client), and its tool calls were no agent's."""
    found = run_over_fake_model(tmp_path, AGENT_FRAMEWORK + AGENT_OTEL_POINTS)
    assert found["output"] == "Forecast: sunny in Paris"
    counted = found["found"]
    assert counted["gen_ai.invoke_agent.duration|forecaster"][0] == 1
    assert counted["gen_ai.client.inference.duration|None"][0] == 2
    assert counted["gen_ai.client.inference.usage.input_tokens|None"][1] == 20 + 30
    costs = [key for key in counted if key.startswith("agent_otel.client.cost|")]
    assert costs == ["agent_otel.client.cost|forecaster"]
    assert counted["gen_ai.execute_tool.duration|forecaster"][0] == 1
    assert counted["gen_ai.invoke_agent.inference_calls|forecaster"] == [1, 2]
    assert "agent_otel.instrumentation.errors|None" not in counted


def run_over_fake_model(tmp_path: Path, program: str) -> Any:
    """Run ``program`` in a process of its own (logfire sets the global providers) over the fake model; what it printed
    last, as JSON."""
    (tmp_path / "app.py").write_text(program)
    with FakeLLM() as llm:
        child = subprocess.run([sys.executable, "app.py", llm.url], cwd=tmp_path, capture_output=True, text=True,
                               timeout=120, env={**os.environ, "OTEL_TRACES_EXPORTER": "none",
                                                 "OTEL_METRICS_EXPORTER": "none"})
    assert child.returncode == 0, child.stderr
    found = json.loads(child.stdout.splitlines()[-1])
    return found


def test_logfires_log_pairs_with_a_call_that_ended_not_one_still_running(tmp_path: Path) -> None:
    """Two streamed calls at once under one parent: the first's request is still waiting for its answer when the
    second's stream is read to its end and logged. The log is the second call's usage: paired with the first (the
    oldest), it priced a call whose span had not ended, which then stayed unpriced in the job."""
    found = run_over_fake_model(tmp_path, LOGFIRE_STREAMS_AT_ONCE)
    assert found["texts"] == ["looks safe", "looks safe"]
    assert found["job"] == {"job.provider.calls": 2, "job.usage.input_tokens": 10, "job.usage.output_tokens": 6}


def test_logfires_log_of_a_streamed_call_is_its_usage_not_a_second_call(tmp_path: Path) -> None:
    """logfire's OpenAI integration ends the request's span as the stream is handed out (no usage), and logs how the
    stream ended as a span of its own (``logfire.span_type`` ``log``) with the call's attributes, its tokens and
    response model: each was counted as a call, a streamed call two. (A child process: logfire sets the global
    providers.)"""
    found = run_over_fake_model(tmp_path, LOGFIRE_PROGRAM)
    assert found["text"] == "looks safe" * 2
    assert (found["calls"], found["input"], found["output"]) == (3, 5 + 11 + 5, 3 + 7 + 3)
    streamed = {"job.provider.calls": 1, "job.usage.input_tokens": 5, "job.usage.output_tokens": 3}
    assert found["jobs"] == [streamed, streamed]  # no unpriced call: the log priced it, or ours read the stream
    assert all(cost > 0 for cost in found["costs"])
    assert set(found["agents"]) == {"reviewer", None}  # the streamed call's cost is the agent's


def test_a_graph_stream_the_program_stops_reading_is_no_failed_run(otel: Any) -> None:
    """A ``break`` out of a LangGraph stream: the LangChain instrumentation's stream wrapper ends the graph's span as an
    error, ``_OTHER`` "abandoned stream", when the program drops it, and every such run counted as a failed one."""
    app = apps.two_step_graph("two_steps")
    with apps.instrumented("langchain", otel.tracer_provider, otel.meter_provider):
        for _ in app.stream({"count": 0}):
            break
        gc.collect()
    assert any(span.status.description == "abandoned stream" for span in otel.spans())
    [run] = points(otel, semconv.AGENT_DURATION.name)
    assert run.attributes[semconv.GEN_AI_AGENT_NAME] == "two_steps"
    assert run.attributes[semconv.AGENT_OUTCOME] == semconv.Outcome.SUCCESS.value
    assert semconv.ERROR_TYPE not in run.attributes
