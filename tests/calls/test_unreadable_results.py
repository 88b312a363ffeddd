"""A result whose fields cannot all be read (a ``__getattr__`` or property raising something other than
AttributeError) costs only those fields: the call's span and metrics are still recorded, and the miss is
counted."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import proto  # type: ignore[import-untyped]
import pydantic
import pytest
import wrapt
from openai.types.chat import ChatCompletion

import agent_otel
from agent_otel import semconv
from tests.support.telemetry import error_count, points


class LazyResponse:
    """A result that does the work it stands for in ``__getattr__`` when a name it lacks is asked for, as camel's
    streamed response runs its stream there (the program's error of that work reached agent-otel, not the
    program)."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def __getattr__(self, name: str) -> Any:
        self.asked.append(name)
        raise RuntimeError("the stream failed")


class PydanticOutcome(pydantic.BaseModel):
    """A pydantic result (whose class has a ``__getattr__``, for its private and extra fields): its fields, its
    extra fields and its properties are read."""

    model_config = pydantic.ConfigDict(extra="allow")
    success: bool

    @property
    def fixes_applied(self) -> int:
        return 2


class DetachedRecord:
    """A result whose property raises, as an ORM's detached instance does."""

    success = True

    @property
    def confidence(self) -> float:
        raise RuntimeError("instance is not bound to a session")


KINDS: dict[str, tuple[Callable[[Callable[..., Any]], Callable[..., Any]], str, str | None]] = {
    "agent": (agent_otel.agent("planner"), semconv.AGENT_DURATION.name, semconv.AGENT_OUTCOME),
    "job": (agent_otel.job(type="nightly"), semconv.JOB_DURATION.name, semconv.JOB_OUTCOME),
    "provider": (agent_otel.provider("openai", model="gpt-4o"), semconv.CLIENT_INFERENCE_DURATION.name, None),
    "tool": (agent_otel.tool("ruff"), semconv.TOOL_DURATION.name, None),
    "evolution": (agent_otel.evolution("planner", sample_resources=False), semconv.EVOLUTION_DURATION.name,
                  semconv.EVOLUTION_STATUS),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_results_getattr_is_not_run_and_the_call_is_recorded(otel: Any, kind: str) -> None:
    """Reading a result's fields ran the program's ``__getattr__`` for every name the result lacks (``success``,
    ``confidence``, ``usage``...): camel's streamed response ran its whole stream as the call returned, and an error
    of the stream's was caught as a field that could not be read. A name only ``__getattr__`` answers is not read."""
    decorate, duration, outcome = KINDS[kind]
    result = LazyResponse()

    @decorate
    def call() -> object:
        return result

    assert call() is result
    assert result.asked == []
    assert len(points(otel, duration)) == 1
    if outcome is not None:
        assert outcome in (otel.spans()[-1].attributes or {})
    assert error_count(otel, "result.field") == 0


def test_a_pydantic_results_fields_extra_fields_and_properties_are_read(otel: Any) -> None:
    @agent_otel.agent("planner")
    def call() -> PydanticOutcome:
        return PydanticOutcome(success=False, confidence=0.25)

    call()
    (point,) = points(otel, semconv.AGENT_DURATION.name)
    assert point.attributes[semconv.AGENT_OUTCOME] == "failure"
    (confidence,) = points(otel, semconv.AGENT_CONFIDENCE_HISTOGRAM.name)
    assert confidence.sum == 0.25
    (work,) = points(otel, semconv.AGENT_WORK_ITEMS.name)
    assert (work.attributes[semconv.AGENT_WORK_KIND], work.value) == ("fixes_applied", 2)


def test_a_property_that_raises_costs_only_its_own_field(otel: Any) -> None:
    @agent_otel.agent("planner")
    def call() -> DetachedRecord:
        return DetachedRecord()

    call()
    (point,) = points(otel, semconv.AGENT_DURATION.name)
    assert point.attributes[semconv.AGENT_OUTCOME] == "success"  # read from the field that can be read
    assert not points(otel, semconv.AGENT_CONFIDENCE_HISTOGRAM.name)
    assert error_count(otel, "result.field") == 1


class Hostile:
    """A program's value none of whose conversions work: its truth, comparisons, text, repr and number all
    raise (a numpy array's truth, a lazy proxy whose session is closed)."""

    __hash__ = None  # type: ignore[assignment]

    def _refuse(self, *args: object) -> Any:
        raise RuntimeError("cannot be read")

    __bool__ = __eq__ = __ne__ = __str__ = __repr__ = __format__ = __float__ = __int__ = __index__ = _refuse
    __len__ = __iter__ = _refuse


class HostileResult:
    success = confidence = fixes_applied = patterns_used = provider_used = Hostile()
    version_from = version_to = kpis_before = kpis_after = rolled_back = iterations = Hostile()
    usage = model = Hostile()


def test_values_whose_truth_text_or_number_raise_cost_only_their_own_option(otel: Any) -> None:
    """A name, version, type or result field whose ``str()``, truth or ``float()`` raised cost the call its
    span and metrics: ``value != ""`` in the name's fallback, ``float(value)`` catching only TypeError and
    ValueError, ``usage or ...`` in the usage reader. Each such value is now counted, and the call recorded."""
    hostile = agent_otel.path("args.value")
    decorated = {
        "agent": agent_otel.agent(hostile, task_type=hostile, version=hostile),
        "tool": agent_otel.tool(hostile, type=hostile),
        "provider": agent_otel.provider(hostile, model=hostile),
        "evolution": agent_otel.evolution(hostile, strategy=hostile, sample_resources=False),
        "job": agent_otel.job(hostile, type=hostile),
    }
    result = HostileResult()
    for decorate in decorated.values():
        @decorate
        def call(value: object) -> HostileResult:
            return result

        assert call(Hostile()) is result
    with agent_otel.job(Hostile(), type=Hostile()) as job:
        assert job.id  # a fresh id, as for a job given none
    assert sorted(span.name for span in otel.spans()) == [
        "chat unknown", "evolve call", "execute_tool call", "invoke_agent call", "invoke_workflow default",
        "invoke_workflow default"]
    for duration in (semconv.AGENT_DURATION, semconv.TOOL_DURATION, semconv.CLIENT_INFERENCE_DURATION,
                     semconv.EVOLUTION_DURATION):
        assert len(points(otel, duration.name)) == 1, duration.name
    assert sum(p.count for p in points(otel, semconv.JOB_DURATION.name)) == 2
    for stage in ("text.agent.name", "text.tool.type", "text.gen_ai.request.model", "text.job.id", "agent.confidence",
                  "evolution.iterations"):
        assert error_count(otel, stage) >= 1, stage


def test_static_attributes_no_exporter_takes_are_refused_when_decorating() -> None:
    """``attributes={"k": object()}`` was taken, and the SDK dropped it at every call with a warning on the
    program's stderr; the config file refuses the same value."""
    for make in (lambda: agent_otel.tool("t", attributes={"k": object()}), lambda: agent_otel.job(k=object()),
                 lambda: agent_otel.agent_call("a", attributes={"k": [1, "mixed"]})):
        with pytest.raises(agent_otel.ConfigurationError, match=r"attributes\.k: expected a string, number or boolean"):
            make()
    assert agent_otel.tool("t", attributes={"tags": ["a", "b"], "sizes": (1, 2), "none": [], "n": 1.5})


class UsageMetadata(proto.Message):
    """The shape of Vertex AI's and google-generativeai's usage (proto-plus messages read their fields through their
    ``__getattr__``)."""

    prompt_token_count = proto.Field(proto.INT32, number=1)
    candidates_token_count = proto.Field(proto.INT32, number=2)


class GenerateContentResponse(proto.Message):
    usage_metadata = proto.Field(UsageMetadata, number=1)


def test_a_proto_plus_responses_usage_is_read_through_its_field_reader(otel: Any) -> None:
    """A proto-plus message's ``__getattr__`` reads its fields and nothing else: its usage counts are read there."""

    @agent_otel.provider("gcp.vertex_ai", model="gemini-2.0-flash")
    def generate() -> GenerateContentResponse:
        return GenerateContentResponse(usage_metadata=UsageMetadata(prompt_token_count=40, candidates_token_count=6))

    generate()
    span = otel.span("chat gemini-2.0-flash")
    assert (span.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS], span.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS]) \
        == (40, 6)


class Outcome(wrapt.ObjectProxy):  # type: ignore[type-arg]
    """A program's proxy of its result that answers some fields itself."""

    @property
    def success(self) -> bool:
        return False

    @property
    def confidence(self) -> float:
        return 0.3


def test_a_proxys_own_fields_and_those_of_the_object_it_stands_for_are_read(otel: Any) -> None:
    @agent_otel.agent("planner")
    def plan() -> Outcome:
        return Outcome(PydanticOutcome(success=True, fixes_applied_extra=1))

    @agent_otel.provider("groq", model="llama-3.1-70b")
    def complete() -> Any:  # Groq's usage is a pydantic extra field of the OpenAI SDK's completion
        return wrapt.ObjectProxy(ChatCompletion.model_validate({
            "id": "c", "object": "chat.completion", "created": 0, "model": "llama-3.1-70b", "choices": [],
            "x_groq": {"id": "req", "usage": {"prompt_tokens": 21, "completion_tokens": 4}}}))

    plan()
    complete()
    (point,) = points(otel, semconv.AGENT_DURATION.name)
    assert point.attributes[semconv.AGENT_OUTCOME] == "failure"
    (work,) = points(otel, semconv.AGENT_WORK_ITEMS.name)  # a property of the model behind the proxy
    assert work.value == 2
    assert otel.span("chat llama-3.1-70b").attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 21


def test_a_field_the_program_adds_to_its_class_later_is_read(otel: Any) -> None:
    class Late:
        def __getattr__(self, name: str) -> Any:
            raise AttributeError(name)

    @agent_otel.agent("planner")
    def plan() -> Late:
        return Late()

    plan()
    Late.success = False  # type: ignore[attr-defined]
    plan()
    assert sorted(p.attributes[semconv.AGENT_OUTCOME] for p in points(otel, semconv.AGENT_DURATION.name)) == [
        "failure", "success"]
