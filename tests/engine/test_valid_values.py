"""Host values no exporter can carry are made valid when recorded, and counted (issue 12, items 7 and 8).

A lone surrogate (``json.loads`` lets one through) cannot be encoded as UTF-8: it is replaced by
U+FFFD. A count beyond what a counter can carry (int64 in OTLP) is dropped like any unreadable count.
"""

from __future__ import annotations

import json
from typing import Any

from opentelemetry import propagate

import agent_otel
from agent_otel import path, semconv
from tests.support.telemetry import error_count

BAD_TEXT = json.loads('{"kind": "fix \\ud83d"}')["kind"]
REPAIRED = "fix \ufffd"


def encodable(value: object) -> bool:
    values = value if isinstance(value, tuple | list) else (value,)
    return all(not isinstance(v, str) or v.encode("utf-8") is not None for v in values)


def all_span_values_encode(otel: Any) -> bool:
    try:
        return all(encodable(v) for span in otel.spans() for v in span.attributes.values())
    except UnicodeEncodeError:
        return False


def test_a_lone_surrogate_is_replaced_where_it_is_recorded_and_counted(otel: Any) -> None:
    @agent_otel.agent("literal", task_type=BAD_TEXT, attributes={"note": BAD_TEXT})
    def literal() -> dict[str, Any]:
        return {"success": True, "provider_used": BAD_TEXT, "patterns_used": [BAD_TEXT]}

    @agent_otel.agent(path("args.name"), task_type=path("args.kind"))
    def extracted(name: str, kind: str) -> None:
        return None

    literal()
    literal()
    extracted("agent \ud800", BAD_TEXT)
    points = otel.points(semconv.AGENT_DURATION.name)
    assert sorted((p.attributes[semconv.GEN_AI_AGENT_NAME], p.attributes[semconv.AGENT_TASK_TYPE], p.count)
                  for p in points) == [("agent \ufffd", REPAIRED, 1), ("literal", REPAIRED, 2)]
    assert [p.attributes[semconv.AGENT_PATTERN] for p in otel.points(semconv.AGENT_PATTERNS_USED.name)] == [REPAIRED]
    span = otel.spans("invoke_agent literal")[0]
    assert span.attributes["note"] == REPAIRED
    assert span.attributes[semconv.AGENT_PROVIDER_USED] == REPAIRED
    assert all_span_values_encode(otel)
    assert error_count(otel, "invalid_text." + semconv.AGENT_TASK_TYPE) >= 2
    assert error_count(otel, "invalid_text." + semconv.GEN_AI_AGENT_NAME) == 1


def test_a_lone_surrogate_among_a_jobs_attributes_is_replaced_and_counted(otel: Any) -> None:
    """As the other kinds' ``attributes=``: before, the OTLP encoder dropped the attribute with a traceback on
    the program's stderr."""
    with agent_otel.job("j-1", type="block", note=BAD_TEXT):
        pass

    @agent_otel.job(type="decorated", attributes={"note": BAD_TEXT})
    def run() -> str:
        return "done"

    assert run() == "done"
    assert [span.attributes["note"] for span in otel.spans()] == [REPAIRED, REPAIRED]
    assert all_span_values_encode(otel)
    assert error_count(otel, "invalid_text.note") == 2


def test_a_job_id_with_a_lone_surrogate_is_carried_repaired_not_raised(otel: Any) -> None:
    """A job's id goes into baggage: before, injecting it (any instrumented HTTP call of the program inside the
    job) raised UnicodeEncodeError into the program."""
    with agent_otel.job(BAD_TEXT, type="t"):
        headers: dict[str, str] = {}
        propagate.inject(headers)
    assert f"{semconv.BAGGAGE_JOB_ID}=fix+%EF%BF%BD" in headers["baggage"]
    assert otel.span("invoke_workflow t").attributes[semconv.JOB_ID] == REPAIRED
    assert error_count(otel, "invalid_text." + semconv.JOB_ID) == 1


def test_text_from_the_programs_results_and_reports_is_repaired_on_spans_and_events(otel: Any) -> None:
    """A response model, a fallback, an evolution run's strategy and KPI names (span attribute keys), and an
    evaluation's name, label and explanation (event attributes): before, each reached the span as is, and the
    OTLP encoder left it out with a traceback on the program's stderr."""
    with agent_otel.provider_call("openai", model="m") as call:
        call.set_outcome(usage={"input_tokens": 1, "output_tokens": 2}, model=BAD_TEXT)
        agent_otel.record_fallback(BAD_TEXT, BAD_TEXT)
    with agent_otel.evolution_run("planner", strategy=BAD_TEXT) as run:
        run.set_outcome(kpis_before={BAD_TEXT: 0.5}, kpis_after={BAD_TEXT: 0.75})
    with agent_otel.agent_call("a"):
        agent_otel.record_evaluation(BAD_TEXT, 0.5, BAD_TEXT, explanation=BAD_TEXT)
    texts = [text for span in otel.spans() for item in (span, *span.events)
             for key, value in item.attributes.items() for text in (key, value) if isinstance(text, str)]
    assert all(text.encode("utf-8") for text in texts)
    provider = otel.span("chat m").attributes
    assert (provider[semconv.GEN_AI_RESPONSE_MODEL], provider[semconv.AGENT_OTEL_FALLBACK_TO]) == (REPAIRED, REPAIRED)
    evolution = otel.span("evolve planner").attributes
    assert evolution[semconv.EVOLUTION_STRATEGY] == REPAIRED
    assert evolution[semconv.EVOLUTION_KPI_DELTA_PREFIX + REPAIRED] == 0.25
    (event,) = otel.span("invoke_agent a").events
    assert event.attributes[semconv.GEN_AI_EVALUATION_EXPLANATION] == REPAIRED


def test_valid_non_ascii_text_is_kept_as_is(otel: Any) -> None:
    @agent_otel.agent("agent-é", task_type=path("args.kind"))
    def handle(kind: str) -> None:
        return None

    handle("修正 \U0001F600")
    (point,) = otel.points(semconv.AGENT_DURATION.name)
    assert point.attributes[semconv.AGENT_TASK_TYPE] == "修正 \U0001F600"
    assert point.attributes[semconv.GEN_AI_AGENT_NAME] == "agent-é"
    assert not [p for p in otel.points(semconv.INSTRUMENTATION_ERRORS.name)
                if str(p.attributes[semconv.INSTRUMENTATION_STAGE]).startswith("invalid_text.")]


def test_a_hashed_key_with_a_lone_surrogate_is_hashed_not_raised(otel: Any) -> None:
    @agent_otel.tool("t", attributes={"user.id": BAD_TEXT})
    def run() -> str:
        return "done"

    assert run() == "done"
    assert len(otel.span("execute_tool t").attributes["user.id"]) == 64


def test_a_count_no_counter_can_carry_is_dropped_and_counted(otel: Any) -> None:
    @agent_otel.agent("a")
    def handle(fixes: Any) -> dict[str, Any]:
        return {"success": True, "fixes_applied": fixes, "files_modified": 2}

    handle(10**20)
    handle(1e20)
    handle(3)
    (point,) = otel.points(semconv.AGENT_WORK_ITEMS.name, {semconv.AGENT_WORK_KIND: "fixes_applied"})
    assert point.value == 3
    (files,) = otel.points(semconv.AGENT_WORK_ITEMS.name, {semconv.AGENT_WORK_KIND: "files_modified"})
    assert files.value == 6
    assert [s.attributes.get(semconv.AGENT_RESULT_PREFIX + "fixes_applied") for s in otel.spans()] == [None, None, 3]
    assert error_count(otel, "agent.fixes_applied") == 2


def test_token_counts_beyond_any_counter_are_dropped(otel: Any) -> None:
    @agent_otel.provider("openai", model="gpt-4o")
    def complete() -> dict[str, Any]:
        return {"usage": {"input_tokens": 2**70, "output_tokens": 5}}

    complete()
    assert [p.sum for p in otel.points(semconv.CLIENT_OPERATION_OUTPUT_TOKENS.name)] == [5]
    assert otel.points(semconv.CLIENT_OPERATION_INPUT_TOKENS.name) == []
    assert error_count(otel, "provider.input_tokens") == 1
