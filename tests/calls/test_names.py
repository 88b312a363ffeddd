"""A name an extractor cannot find (None, empty, or a failing path) is never the literal "None": it falls
back to the class or function name, as a configured target's default, and the miss is counted."""

from __future__ import annotations

from typing import Any

import agent_otel
from agent_otel import path, semconv
from tests.support.telemetry import error_count, point


class FixerAgent:
    name: str | None = None

    @agent_otel.agent(path("self.name"))
    def run(self, task: str) -> dict[str, bool]:
        return {"success": True}

    @agent_otel.evolution(path("self.name"))
    def evolve(self) -> dict[str, Any]:
        return {"kpis_before": {"score": 1.0}, "kpis_after": {"score": 2.0}}


@agent_otel.agent(path("args.config.name"))
def triage(config: dict[str, Any]) -> dict[str, bool]:
    return {"success": True}


class Toolbox:
    @agent_otel.tool(path("args.label"))
    def search(self, label: str | None) -> str:
        return "found"


class Client:
    vendor = ""

    @agent_otel.provider(path("self.vendor"), model="m")
    def complete(self, prompt: str) -> dict[str, Any]:
        return {"usage": {"input_tokens": 1, "output_tokens": 1}}


def span_names(otel: Any) -> list[str]:
    return sorted(s.name for s in otel.spans())


def all_attribute_values(otel: Any) -> str:
    spans = repr([dict(s.attributes) for s in otel.spans()])
    metrics = repr([dict(p.attributes) for m in otel.metrics().values() for p in m.data.data_points])
    return spans + metrics


def test_an_agent_method_named_none_is_named_after_its_class(otel: Any) -> None:
    assert FixerAgent().run("t") == {"success": True}
    assert span_names(otel) == ["invoke_agent FixerAgent"]
    assert point(otel, semconv.AGENT_DURATION.name, {semconv.GEN_AI_AGENT_NAME: "FixerAgent"}).count == 1
    assert error_count(otel, "agent.name") == 1
    assert "None" not in all_attribute_values(otel)


def test_an_agent_function_whose_path_fails_is_named_after_the_function(otel: Any) -> None:
    assert triage({}) == {"success": True}
    assert span_names(otel) == ["invoke_agent triage"]
    assert error_count(otel, "agent.name") == 1


def test_tool_provider_and_evolution_names_fall_back_through_the_same_mechanism(otel: Any) -> None:
    Toolbox().search(None)
    Client().complete("hi")
    FixerAgent().evolve()
    assert span_names(otel) == ["chat m", "evolve FixerAgent", "execute_tool search"]
    assert point(otel, semconv.TOOL_DURATION.name).attributes[semconv.GEN_AI_TOOL_NAME] == "search"
    provider = point(otel, semconv.CLIENT_INFERENCE_DURATION.name).attributes[semconv.GEN_AI_PROVIDER_NAME]
    assert provider == "Client"
    for stage in ("tool.name", "provider.provider", "evolution.agent"):
        assert error_count(otel, stage) == 1, stage
    assert "None" not in all_attribute_values(otel)


def test_a_found_name_is_used_and_nothing_is_counted(otel: Any) -> None:
    agent = FixerAgent()
    agent.name = "fixer"
    agent.run("t")
    assert span_names(otel) == ["invoke_agent fixer"]
    assert error_count(otel, "agent.name") == 0


def test_a_job_type_that_is_not_found_is_the_default(otel: Any) -> None:
    @agent_otel.job(type=path("args.spec.kind"))
    def run(spec: dict[str, Any]) -> None:
        return None

    run({})
    assert span_names(otel) == [semconv.job_span_name("default")]
    assert point(otel, semconv.JOB_DURATION.name).attributes[semconv.JOB_TYPE] == "default"


def test_values_the_program_hands_a_block_at_run_time_are_counted_never_raised(otel: Any) -> None:
    """A request handler's ids, names and statuses come from its data: before, each of these raised into it
    (ConfigurationError, ValueError, AttributeError), though the same values in an extractor are counted."""

    def handle(session: Any, agent: Any, tool: Any, provider: Any, status: str, headers: Any) -> str:
        with (agent_otel.attached(headers), agent_otel.conversation(session),
              agent_otel.job(type="request") as job):
            with agent_otel.agent_call(agent), agent_otel.tool_call(tool), agent_otel.provider_call(provider):
                pass
            job.set_outcome(status)
        return "200 OK"

    assert handle("s-1", "router", "search", "openai", "Failure", {}) == "200 OK"
    assert otel.span(semconv.job_span_name("request")).attributes[semconv.JOB_OUTCOME] == "failure"
    assert handle(None, "", None, None, "partial", None) == "200 OK"
    names = {span.name for span in otel.spans()}
    assert {"invoke_agent agent", "execute_tool tool"} <= names
    assert [error_count(otel, stage) for stage in ("conversation.id", "agent.name", "tool.name", "provider.provider",
                                                   "job.outcome", "propagation.extract")] == [1] * 6
    job_spans = [span for span in otel.spans() if span.name == semconv.job_span_name("request")]
    assert [span.attributes[semconv.JOB_OUTCOME] for span in job_spans] == ["failure", "success"]
    otel.reset()
    for name in (0, b"", False, [], 7):  # other types from data: an integer is its text, the rest falls back
        with agent_otel.agent_call(name):  # type: ignore[arg-type]
            pass
    assert [span.name for span in otel.spans()] == ["invoke_agent 0"] + ["invoke_agent agent"] * 3 + [
        "invoke_agent 7"]
    assert error_count(otel, "agent.name") == 3
    assert [span.attributes.get(semconv.GEN_AI_CONVERSATION_ID) for span in job_spans] == ["s-1", None]


def test_a_collection_read_where_a_name_goes_is_no_name(otel: Any) -> None:
    """A list read by an extractor became the label ``['v1', 'v2']`` and the span name ``invoke_agent ['x']``
    (a literal list is refused when the kind is set up)."""
    @agent_otel.agent(path("args.name"), version=path("args.version"), pattern=path("result.pattern"))
    def run(name: Any, version: Any) -> dict[str, Any]:
        return {"success": True, "pattern": ["plan", "act"]}

    assert run(["x"], ("v1", "v2")) == {"success": True, "pattern": ["plan", "act"]}
    assert span_names(otel) == ["invoke_agent run"]  # the function's name, as for a name that is not found
    duration = point(otel, semconv.AGENT_DURATION.name)
    assert semconv.GEN_AI_AGENT_VERSION not in duration.attributes
    assert otel.points(semconv.PATTERN_DURATION.name) == []
    assert error_count(otel, "agent.name") == 1
    assert error_count(otel, f"text.{semconv.GEN_AI_AGENT_VERSION}") == 1
    assert error_count(otel, f"text.{semconv.WORKFLOW_PATTERN}") == 1
    assert "['x']" not in str(all_attribute_values(otel))
