"""Tool and plugin executions: span ``execute_tool {name}`` and ``gen_ai.execute_tool.duration``."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.trace import StatusCode

import agent_otel
from agent_otel import ConfigurationError, path, semconv
from tests.support.telemetry import SHAPES, assert_instrument, drive, point, shaped

DURATION = semconv.TOOL_DURATION.name


@pytest.mark.parametrize("shape", SHAPES)
def test_tool_under_an_agent_and_a_job(otel: Any, shape: str) -> None:
    run = shaped(shape, agent_otel.tool("ruff", type="function"), lambda target: f"checked {target}")
    with agent_otel.job(type="lint") as job, agent_otel.agent_call("linter"):
        job_id = job.id
        result = drive(shape, run, "src/")
    if shape != "async_generator":
        assert result == "checked src/"
    span = otel.span("execute_tool ruff")
    assert dict(span.attributes) == {
        semconv.GEN_AI_OPERATION_NAME: "execute_tool", semconv.GEN_AI_TOOL_NAME: "ruff",
        semconv.GEN_AI_TOOL_TYPE: "function", semconv.GEN_AI_AGENT_NAME: "linter", semconv.JOB_ID: job_id,
    }
    assert span.parent.span_id == otel.span("invoke_agent linter").context.span_id
    [duration] = assert_instrument(otel, semconv.TOOL_DURATION)
    assert dict(duration.attributes) == {semconv.GEN_AI_TOOL_NAME: "ruff", semconv.GEN_AI_AGENT_NAME: "linter"}
    assert duration.count == 1
    assert otel.span("invoke_workflow lint").attributes[semconv.JOB_ROLLUP_TOOL_CALLS] == 1


@pytest.mark.parametrize("shape", SHAPES)
def test_tool_error(otel: Any, shape: str) -> None:
    def body(target: str) -> Any:
        raise FileNotFoundError(target)

    run = shaped(shape, agent_otel.tool("ruff"), body)
    with pytest.raises(FileNotFoundError):
        drive(shape, run, "missing/")
    span = otel.span("execute_tool ruff")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[semconv.ERROR_TYPE] == "FileNotFoundError"
    duration = point(otel, DURATION)
    assert dict(duration.attributes) == {semconv.GEN_AI_TOOL_NAME: "ruff", semconv.ERROR_TYPE: "FileNotFoundError"}


def test_name_and_agent_from_extractors(otel: Any) -> None:
    class Plugin:
        def __init__(self, name: str) -> None:
            self.name = name

        @agent_otel.tool(path("self.name"), agent=path("args.owner"))
        def execute(self, owner: str, payload: dict[str, Any]) -> int:
            return len(payload)

    assert Plugin("formatter").execute("style-agent", {"a": 1}) == 1
    assert Plugin("formatter").execute(owner="style-agent", payload={}) == 0
    assert Plugin("sorter").execute("style-agent", {}) == 0
    by_tool = {p.attributes[semconv.GEN_AI_TOOL_NAME]: p.count for p in agent_otel_points(otel)}
    assert by_tool == {"formatter": 2, "sorter": 1}
    assert {s.attributes[semconv.GEN_AI_AGENT_NAME] for s in otel.spans()} == {"style-agent"}


def agent_otel_points(otel: Any) -> list[Any]:
    return otel.points(DURATION)


def test_manual_handle(otel: Any) -> None:
    with agent_otel.tool_call("shell", agent="ops"):
        pass
    with pytest.raises(TimeoutError), agent_otel.tool_call("shell"):
        raise TimeoutError
    assert point(otel, DURATION, {semconv.GEN_AI_AGENT_NAME: "ops"}).count == 1
    assert point(otel, DURATION, {semconv.ERROR_TYPE: "TimeoutError"}).count == 1
    assert len(otel.spans("execute_tool shell")) == 2


def test_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="name is required"):
        agent_otel.tool("")


class _Outcome:
    """A tool entry point's result object that says whether the tool failed, as Agno's ``FunctionExecutionResult``
    (``status="failure"``) does: the entry point caught the tool's exception."""

    def __init__(self, status: str) -> None:
        self.status = status


@pytest.mark.parametrize("shape", ["sync", "async"])
def test_success_says_which_returned_results_are_failures(otel: Any, shape: str) -> None:
    run = shaped(shape, agent_otel.tool("lookup", success=path("result.status", equals="success")),
                 lambda status: _Outcome(status))
    returned = [drive(shape, run, status) for status in ("success", "failure", "success")]
    assert [result.status for result in returned] == ["success", "failure", "success"]  # the same objects back
    failed = [span for span in otel.spans("execute_tool lookup") if span.status.status_code is StatusCode.ERROR]
    assert len(failed) == 1
    assert failed[0].attributes[semconv.ERROR_TYPE] == semconv.ERROR_TYPE_TOOL_ERROR
    assert point(otel, DURATION, {semconv.ERROR_TYPE: semconv.ERROR_TYPE_TOOL_ERROR}).count == 1
    assert sum(p.count for p in otel.points(DURATION)) == 3


def test_success_by_truthiness_and_an_extractor_that_raises_is_no_failure(otel: Any) -> None:
    @agent_otel.tool("check", success=path("result.ok"))
    def check(ok: object) -> dict[str, object]:
        return {"ok": ok}

    def unreadable(call: Any) -> bool:
        raise LookupError("no status")

    @agent_otel.tool("broken", success=unreadable)
    def broken() -> dict[str, object]:
        return {}

    for ok in (True, 1, None, 0, ""):
        check(ok)
    broken()
    counts = {tuple(sorted(p.attributes.items())): p.count for p in otel.points(DURATION)}
    assert counts == {
        ((semconv.GEN_AI_TOOL_NAME, "check"),): 2,
        ((semconv.ERROR_TYPE, semconv.ERROR_TYPE_TOOL_ERROR), (semconv.GEN_AI_TOOL_NAME, "check")): 3,  # None, 0, ""
        ((semconv.GEN_AI_TOOL_NAME, "broken"),): 1,  # unread (counted as ours): no failure of the program's
    }
    assert {p.attributes[semconv.INSTRUMENTATION_STAGE]: p.value
            for p in otel.points(semconv.INSTRUMENTATION_ERRORS.name)} == {"tool.extract.success": 1}


def test_a_manual_tool_call_reports_a_failed_result(otel: Any) -> None:
    call = agent_otel.tool_call("shell")
    with call:
        call.set_outcome(success=False)
    with call:
        call.set_outcome(output="done")  # no success reported: as a block that returned
    failed = [span for span in otel.spans("execute_tool shell") if span.status.status_code is StatusCode.ERROR]
    assert [span.attributes[semconv.ERROR_TYPE] for span in failed] == [semconv.ERROR_TYPE_TOOL_ERROR]
    counts = {p.attributes.get(semconv.ERROR_TYPE): p.count for p in otel.points(DURATION)}
    assert counts == {semconv.ERROR_TYPE_TOOL_ERROR: 1, None: 1}


def test_success_not_given_leaves_a_result_object_a_success(otel: Any) -> None:
    @agent_otel.tool("lookup")
    def lookup() -> _Outcome:
        return _Outcome("failure")

    lookup()
    assert dict(point(otel, DURATION).attributes) == {semconv.GEN_AI_TOOL_NAME: "lookup"}
