"""A result whose fields cannot all be read (a ``__getattr__`` or property raising something other than
AttributeError) costs only those fields: the call's span and metrics are still recorded, and the miss is
counted."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import agent_otel
from agent_otel import semconv
from tests.support.telemetry import error_count, points


class LookupResult:
    """A result that reads its fields from a dict in ``__getattr__``: a name it lacks raises KeyError."""

    def __init__(self, **fields: Any) -> None:
        self._fields = fields

    def __getattr__(self, name: str) -> Any:
        return self._fields[name]


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
def test_a_result_whose_fields_raise_when_read_still_records_the_call(otel: Any, kind: str) -> None:
    decorate, duration, outcome = KINDS[kind]
    result = LookupResult()  # every field read raises KeyError

    @decorate
    def call() -> object:
        return result

    assert call() is result
    assert len(points(otel, duration)) == 1, "the call's duration was lost with the fields"
    if outcome is not None:
        assert outcome in (otel.spans()[-1].attributes or {})
    if kind != "tool":  # a tool reads no field of its result
        assert error_count(otel, "result.field") >= 1


def test_a_property_that_raises_costs_only_its_own_field(otel: Any) -> None:
    @agent_otel.agent("planner")
    def call() -> DetachedRecord:
        return DetachedRecord()

    call()
    (point,) = points(otel, semconv.AGENT_DURATION.name)
    assert point.attributes[semconv.AGENT_OUTCOME] == "success"  # read from the field that can be read
    assert not points(otel, semconv.AGENT_CONFIDENCE_HISTOGRAM.name)
    assert error_count(otel, "result.field") == 1
