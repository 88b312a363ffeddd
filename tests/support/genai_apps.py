"""Small programs of the real GenAI frameworks, each against a fake model with no network, for the tests of
the instrumentations those frameworks already have (tests/bridge/).

Each agent program is one agent run with one tool call: the model asks for ``get_weather`` once, then answers
from its result. The model is either the fake OpenAI-compatible server on loopback (``FakeLLM``'s ``/agent/``
route, :data:`tests.support.fake_llm.AGENT_TURNS` gives its tokens) or, for pydantic-ai, its own
``FunctionModel`` answering with :data:`PYDANTIC_AI_TURNS`. Each returns what the host program got, so that a
test can compare a run with and without instrumentation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import openai

from tests.support.fake_llm import AGENT_TURNS, TOOL_ARGUMENTS

AGENT_NAME = "weather-agent"
TOOL_NAME = "get_weather"
QUESTION = "What is the weather in Paris?"
MODEL = "gpt-4o-mini"
PYDANTIC_AI_MODEL = "fake-weather-model"
# pydantic-ai's FunctionModel answers: (input, output, cache read) tokens of the tool call, then of the final text.
PYDANTIC_AI_TURNS = ((20, 5, 4), (30, 8, 0))


@dataclass(frozen=True)
class HostResult:
    """What the host program got: the answer and the tokens its framework counted."""

    text: str
    input_tokens: int
    output_tokens: int


def get_weather(city: str) -> str:
    """The one tool: the weather in ``city``."""
    return f"sunny in {city}"


def agent_url(server_url: str) -> str:
    """The OpenAI base URL of ``FakeLLM``'s agent route."""
    return server_url + "/agent/v1"


def fake_turn_tokens() -> tuple[int, int]:
    """Input and output tokens of the whole fake agent run (both turns)."""
    return (sum(turn["prompt_tokens"] for turn in AGENT_TURNS), sum(turn["completion_tokens"] for turn in AGENT_TURNS))


# --- the OpenAI SDK: one chat completion, sync, async or streamed -------------------------------------------

def openai_chat_sync(base_url: str) -> HostResult:
    client = openai.OpenAI(base_url=base_url, api_key="test", max_retries=0)
    response = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": QUESTION}])
    assert response.usage is not None
    return HostResult(response.choices[0].message.content or "", response.usage.prompt_tokens,
                      response.usage.completion_tokens)


def openai_chat_async(base_url: str) -> HostResult:
    async def run() -> HostResult:
        client = openai.AsyncOpenAI(base_url=base_url, api_key="test", max_retries=0)
        response = await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": QUESTION}])
        assert response.usage is not None
        return HostResult(response.choices[0].message.content or "", response.usage.prompt_tokens,
                          response.usage.completion_tokens)

    return asyncio.run(run())


def openai_chat_stream(base_url: str) -> HostResult:
    client = openai.OpenAI(base_url=base_url, api_key="test", max_retries=0)
    stream = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": QUESTION}],
                                            stream=True, stream_options={"include_usage": True})
    text, usage = "", None
    for chunk in stream:
        text += "".join(choice.delta.content or "" for choice in chunk.choices)
        usage = chunk.usage or usage
    assert usage is not None
    return HostResult(text, usage.prompt_tokens, usage.completion_tokens)


# --- pydantic-ai: an Agent with a tool over FunctionModel ----------------------------------------------------

def pydantic_ai_agent() -> HostResult:
    from pydantic_ai import Agent
    from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
    from pydantic_ai.models.function import AgentInfo, FunctionModel
    from pydantic_ai.usage import RequestUsage

    def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        returns = [part for message in messages for part in message.parts if isinstance(part, ToolReturnPart)]
        if returns:
            input_tokens, output_tokens, cached = PYDANTIC_AI_TURNS[1]
            parts: list[Any] = [TextPart(f"Forecast: {returns[-1].content}")]
        else:
            input_tokens, output_tokens, cached = PYDANTIC_AI_TURNS[0]
            parts = [ToolCallPart(info.function_tools[0].name, dict(TOOL_ARGUMENTS), tool_call_id="call_1")]
        usage = RequestUsage(input_tokens=input_tokens, output_tokens=output_tokens, cache_read_tokens=cached)
        return ModelResponse(parts=parts, usage=usage)

    agent = Agent(FunctionModel(answer, model_name=PYDANTIC_AI_MODEL), name=AGENT_NAME, tools=[get_weather])
    result = agent.run_sync(QUESTION)
    usage = result.usage
    return HostResult(result.output, usage.input_tokens, usage.output_tokens)


# --- langchain: create_agent (a langgraph graph) over ChatOpenAI on loopback ---------------------------------

def langchain_agent(base_url: str) -> HostResult:
    from langchain.agents import create_agent
    from langchain_core.messages import AIMessage
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    model = ChatOpenAI(model=MODEL, base_url=base_url, api_key="test", max_retries=0)  # type: ignore[arg-type]
    agent = create_agent(model, tools=[tool(get_weather)], name=AGENT_NAME)
    state = agent.invoke({"messages": [{"role": "user", "content": QUESTION}]})
    replies = [message for message in state["messages"] if isinstance(message, AIMessage)]
    usage = [reply.usage_metadata or {} for reply in replies]
    return HostResult(str(replies[-1].content), sum(u.get("input_tokens", 0) for u in usage),
                      sum(u.get("output_tokens", 0) for u in usage))


def two_step_graph(name: str) -> Any:
    """A compiled LangGraph graph named ``name`` of two nodes in a row, each adding one to its state's ``count``."""
    from typing import TypedDict

    from langgraph.graph import END, START, StateGraph

    class Counting(TypedDict):
        count: int

    graph = StateGraph(Counting)
    graph.add_node("first", lambda state: {"count": state["count"] + 1})
    graph.add_node("second", lambda state: {"count": state["count"] + 1})
    graph.add_edge(START, "first")
    graph.add_edge("first", "second")
    graph.add_edge("second", END)
    return graph.compile(name=name)


# --- openai-agents: an Agent with a function tool over the Chat Completions model on loopback ----------------

@contextmanager
def openai_agents_tracing_local() -> Iterator[None]:
    """Remove openai-agents' default trace processor (which exports to OpenAI's hosted backend) for the
    block, so that only the instrumentation's processor receives its traces; restores it after."""
    from agents.tracing import get_trace_provider, set_trace_processors

    multi = getattr(get_trace_provider(), "_multi_processor", None)
    previous = list(getattr(multi, "_processors", ()))
    set_trace_processors([])
    try:
        yield
    finally:
        set_trace_processors(previous)


def openai_agents_agent(base_url: str) -> HostResult:
    from agents import Agent, OpenAIChatCompletionsModel, Runner, function_tool

    client = openai.AsyncOpenAI(base_url=base_url, api_key="test", max_retries=0)
    agent = Agent(name=AGENT_NAME, instructions="Answer with the weather tool.", tools=[function_tool(get_weather)],
                  model=OpenAIChatCompletionsModel(model=MODEL, openai_client=client))
    result = Runner.run_sync(agent, QUESTION)
    usage = result.context_wrapper.usage
    return HostResult(str(result.final_output), usage.input_tokens, usage.output_tokens)


# --- smolagents (OpenInference's instrumentation): a ToolCallingAgent over its OpenAI model on loopback -------

SMOLAGENTS_AGENT = "weather_agent"  # smolagents wants a Python identifier


def smolagents_agent(base_url: str) -> HostResult:
    from smolagents import OpenAIModel, ToolCallingAgent, tool

    def weather(city: str) -> str:
        """The weather in a city.

        Args:
            city: the city
        """
        return get_weather(city)

    weather.__name__ = TOOL_NAME
    model = OpenAIModel(model_id=MODEL, api_base=base_url, api_key="test", client_kwargs={"max_retries": 0})
    agent = ToolCallingAgent(tools=[tool(weather)], model=model, name=SMOLAGENTS_AGENT, max_steps=3,
                             verbosity_level=0)
    result = agent.run(QUESTION, return_full_result=True)
    assert result.token_usage is not None
    return HostResult(str(result.output), result.token_usage.input_tokens, result.token_usage.output_tokens)


#: A config running each compiled LangGraph graph as an agent named after the graph, sync and async, invoked or
#: streamed (``Pregel.invoke`` runs ``self.stream``: one call, counted by the outermost).
LANGGRAPH_GRAPHS_AS_AGENTS = """
[[agent]]
target = ["langgraph.pregel.main:Pregel.invoke", "langgraph.pregel.main:Pregel.ainvoke",
          "langgraph.pregel.main:Pregel.stream", "langgraph.pregel.main:Pregel.astream"]
name = { path = "self.name" }
"""


# --- turning each source's instrumentation on against a capture's providers ----------------------------------

@contextmanager
def instrumented(source: str, tracer_provider: Any, meter_provider: Any) -> Iterator[None]:
    """The real instrumentation of ``source`` ("openai", "pydantic-ai", "langchain", "openai-agents",
    "openai-agents+openai", the pairing openai-agents' instrumentation documents, or "smolagents",
    OpenInference's) on, recording into these providers, for the block; off after."""
    providers = {"tracer_provider": tracer_provider, "meter_provider": meter_provider}
    if source == "pydantic-ai":
        from pydantic_ai import Agent
        from pydantic_ai.models.instrumented import InstrumentationSettings

        Agent.instrument_all(InstrumentationSettings(**providers))
        try:
            yield
        finally:
            Agent.instrument_all(False)
        return
    instrumentors = [_instrumentor(name) for name in source.split("+")]
    for instrumentor in instrumentors:
        instrumentor.instrument(**providers)
    try:
        yield
    finally:
        for instrumentor in reversed(instrumentors):
            instrumentor.uninstrument()


def _instrumentor(name: str) -> Any:
    if name == "openai":
        from opentelemetry.instrumentation.genai.openai import OpenAIInstrumentor

        return OpenAIInstrumentor()
    if name == "anthropic":
        from opentelemetry.instrumentation.genai.anthropic import AnthropicInstrumentor

        return AnthropicInstrumentor()
    if name == "google-genai":
        from opentelemetry.instrumentation.google_genai import GoogleGenAiSdkInstrumentor

        return GoogleGenAiSdkInstrumentor()
    if name == "langchain":
        from opentelemetry.instrumentation.genai.langchain import LangChainInstrumentor

        return LangChainInstrumentor()
    if name == "smolagents":  # OpenInference's
        from openinference.instrumentation.smolagents import SmolagentsInstrumentor

        return SmolagentsInstrumentor()
    from opentelemetry.instrumentation.genai.openai_agents import OpenAIAgentsInstrumentor

    return OpenAIAgentsInstrumentor()


def metrics_by_scope(reader: Any) -> dict[str, dict[str, Any]]:
    """Instrumentation scope -> metric name -> metric, from one collection of ``reader``. Several scopes
    record metrics of the same name (gen_ai.client.token.usage, gen_ai.invoke_agent.duration, ...), which a
    name-keyed view would merge."""
    found: dict[str, dict[str, Any]] = {}
    data = reader.get_metrics_data()
    for resource_metrics in data.resource_metrics if data else []:
        for scope_metrics in resource_metrics.scope_metrics:
            found.setdefault(scope_metrics.scope.name, {}).update(
                {metric.name: metric for metric in scope_metrics.metrics})
    return found
