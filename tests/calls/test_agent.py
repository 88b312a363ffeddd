"""Agent invocations: span, duration, confidence, work items, patterns — every shape, every outcome."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode

import agent_otel
from agent_otel import ConfigurationError, path, semconv
from tests.support.coroutines import cancelled_before_it_starts
from tests.support.telemetry import (
    SHAPES,
    assert_instrument,
    assert_no_ids_on_metrics,
    drive,
    error_count,
    point,
    points,
    shaped,
)

AGENT = "refactor-agent"
DURATION = semconv.AGENT_DURATION.name
CONFIDENCE = semconv.AGENT_CONFIDENCE_HISTOGRAM.name
WORK = semconv.AGENT_WORK_ITEMS.name
PATTERNS = semconv.AGENT_PATTERNS_USED.name

FULL_RESULT = {
    "success": True,
    "confidence": 0.9,
    "fixes_applied": 3,
    "files_modified": ["a.py", "b.py"],
    "remaining_issues": 0,
    "patterns_used": ["extract-method", "rename"],
    "provider_used": "openai",
}


class IssueType(enum.Enum):
    LINT = "lint"
    TYPE = "type"


@dataclass
class Issue:
    type: IssueType
    files: list[str] = field(default_factory=list)


@pytest.mark.parametrize("shape", SHAPES)
def test_successful_call_records_every_row(otel: Any, shape: str) -> None:
    handle = shaped(shape, agent_otel.agent(AGENT, task_type="refactor"), lambda task: dict(FULL_RESULT))
    with agent_otel.job(type="nightly") as job:
        job_id = job.id
        returned = drive(shape, handle, "t1")
    has_result = shape != "async_generator"
    if has_result:
        assert returned == FULL_RESULT

    span = otel.span(f"invoke_agent {AGENT}")
    assert span.kind is SpanKind.INTERNAL
    assert span.status.status_code is StatusCode.UNSET
    attrs = dict(span.attributes)
    assert attrs[semconv.JOB_ID] == job_id
    assert attrs[semconv.GEN_AI_OPERATION_NAME] == "invoke_agent"
    assert attrs[semconv.GEN_AI_AGENT_NAME] == AGENT
    assert attrs[semconv.AGENT_TASK_TYPE] == "refactor"
    assert attrs[semconv.AGENT_OUTCOME] == "success"
    assert semconv.ERROR_TYPE not in attrs
    job_span = otel.span("invoke_workflow nightly")
    assert attrs[semconv.JOB_ID] == job_span.attributes[semconv.JOB_ID]
    assert span.parent.span_id == job_span.context.span_id
    assert job_span.attributes[semconv.JOB_ROLLUP_AGENT_CALLS] == 1

    [duration] = assert_instrument(otel, semconv.AGENT_DURATION)
    assert dict(duration.attributes) == {semconv.GEN_AI_AGENT_NAME: AGENT, semconv.AGENT_TASK_TYPE: "refactor",
                                         semconv.AGENT_OUTCOME: "success"}
    assert duration.count == 1 and duration.sum > 0
    if not has_result:
        assert CONFIDENCE not in otel.metrics() and WORK not in otel.metrics() and PATTERNS not in otel.metrics()
        return
    assert attrs[semconv.AGENT_CONFIDENCE] == 0.9
    assert attrs["agent.result.fixes_applied"] == 3
    assert attrs["agent.result.files_modified"] == 2
    assert attrs["agent.result.remaining_issues"] == 0
    assert attrs["agent.result.patterns"] == ("extract-method", "rename")
    assert attrs[semconv.AGENT_PROVIDER_USED] == "openai"

    [confidence] = assert_instrument(otel, semconv.AGENT_CONFIDENCE_HISTOGRAM)
    assert dict(confidence.attributes) == {semconv.GEN_AI_AGENT_NAME: AGENT, semconv.AGENT_OUTCOME: "success"}
    assert confidence.count == 1 and confidence.sum == pytest.approx(0.9)
    assert confidence.bucket_counts[semconv.CONFIDENCE_BUCKETS.index(0.9)] == 1

    work = assert_instrument(otel, semconv.AGENT_WORK_ITEMS)
    assert {p.attributes[semconv.AGENT_WORK_KIND]: p.value for p in work} == {"fixes_applied": 3,
                                                                             "files_modified": 2}
    patterns = assert_instrument(otel, semconv.AGENT_PATTERNS_USED)
    assert {p.attributes[semconv.AGENT_PATTERN]: p.value for p in patterns} == {"extract-method": 1, "rename": 1}
    assert all(p.attributes[semconv.GEN_AI_AGENT_NAME] == AGENT for p in work + patterns)
    assert_no_ids_on_metrics(otel)


@pytest.mark.parametrize("shape", ["sync", "async", "generator"])
def test_unsuccessful_result_is_a_failure(otel: Any, shape: str) -> None:
    handle = shaped(shape, agent_otel.agent(AGENT), lambda task: {"success": False, "confidence": 0.3})
    drive(shape, handle, "t")
    span = otel.span(f"invoke_agent {AGENT}")
    assert span.attributes[semconv.AGENT_OUTCOME] == "failure"
    assert span.attributes[semconv.AGENT_TASK_TYPE] == "default"
    assert span.status.status_code is StatusCode.UNSET
    duration = point(otel, DURATION)
    assert duration.attributes[semconv.AGENT_OUTCOME] == "failure" and duration.count == 1
    confidence = point(otel, CONFIDENCE)
    assert confidence.attributes[semconv.AGENT_OUTCOME] == "failure"
    assert confidence.sum == pytest.approx(0.3)


class AgentCrashed(RuntimeError):
    pass


@pytest.mark.parametrize("shape", SHAPES)
def test_raised_exception_is_an_error_with_its_class_name(otel: Any, shape: str) -> None:
    raised = AgentCrashed("boom")

    def body(task: Any) -> Any:
        raise raised

    handle = shaped(shape, agent_otel.agent(AGENT, task_type="refactor"), body)
    with pytest.raises(AgentCrashed) as caught:
        drive(shape, handle, "t")
    assert caught.value is raised
    span = otel.span(f"invoke_agent {AGENT}")
    assert span.attributes[semconv.AGENT_OUTCOME] == "error"
    assert span.attributes[semconv.ERROR_TYPE] == "AgentCrashed"
    assert span.status.status_code is StatusCode.ERROR
    assert [e.name for e in span.events] == ["exception"]
    duration = point(otel, DURATION)
    assert dict(duration.attributes) == {semconv.GEN_AI_AGENT_NAME: AGENT, semconv.AGENT_TASK_TYPE: "refactor",
                                         semconv.AGENT_OUTCOME: "error", semconv.ERROR_TYPE: "AgentCrashed"}
    assert duration.count == 1
    assert CONFIDENCE not in otel.metrics() and WORK not in otel.metrics()


def test_task_type_extractor_reads_the_argument_by_position_and_by_keyword(otel: Any) -> None:
    @agent_otel.agent(AGENT, task_type=path("args.issue.type.value"))
    def handle(issue: Issue, dry_run: bool = False) -> dict[str, Any]:
        return {"success": True}

    handle(Issue(IssueType.LINT))
    handle(issue=Issue(IssueType.TYPE))
    handle(Issue(IssueType.TYPE), dry_run=True)
    by_type = {p.attributes[semconv.AGENT_TASK_TYPE]: p.count for p in otel.points(DURATION)}
    assert by_type == {"lint": 1, "type": 2}
    assert sorted(s.attributes[semconv.AGENT_TASK_TYPE] for s in otel.spans()) == ["lint", "type", "type"]


def test_string_literal_is_never_taken_for_a_path(otel: Any) -> None:
    @agent_otel.agent(AGENT, task_type="args.issue.type")
    def handle(issue: Any) -> None:
        return None

    handle("x")
    assert otel.span(f"invoke_agent {AGENT}").attributes[semconv.AGENT_TASK_TYPE] == "args.issue.type"


def test_name_from_self_and_result_fields_from_an_object(otel: Any) -> None:
    @dataclass
    class Outcome:
        success: bool
        confidence: float
        fixes_applied: int

    class Worker:
        name = "worker-7"

        @agent_otel.agent(path("self.name"), task_type=path("args.kind"))
        def run(self, kind: str) -> Outcome:
            return Outcome(True, 0.5, 2)

    assert Worker().run("lint") == Outcome(True, 0.5, 2)
    span = otel.span("invoke_agent worker-7")
    assert span.attributes[semconv.AGENT_TASK_TYPE] == "lint"
    assert span.attributes[semconv.AGENT_CONFIDENCE] == 0.5
    assert point(otel, WORK).value == 2


def test_explicit_options_and_extra_work_kinds(otel: Any) -> None:
    @agent_otel.agent(AGENT, success=path("result.ok"), confidence=lambda call: call.result["score"] / 10,
                      patterns=path("result.used"), provider_used=path("result.llm"),
                      fixes_applied=path("result.fixed"), work={"lint_errors": path("result.lint")},
                      result_attributes={"agent.result.branch": path("result.branch")})
    def handle() -> dict[str, Any]:
        return {"ok": "yes", "score": 7, "used": "guard-clause", "llm": "anthropic", "fixed": [1, 2, 3, 4],
                "lint": 5, "branch": "fix/123"}

    handle()
    attrs = otel.span(f"invoke_agent {AGENT}").attributes
    assert attrs[semconv.AGENT_OUTCOME] == "success"
    assert attrs[semconv.AGENT_CONFIDENCE] == pytest.approx(0.7)
    assert attrs[semconv.AGENT_PROVIDER_USED] == "anthropic"
    assert attrs["agent.result.branch"] == "fix/123"
    assert attrs["agent.result.lint_errors"] == 5
    assert {p.attributes[semconv.AGENT_WORK_KIND]: p.value for p in otel.points(WORK)} == {
        "fixes_applied": 4, "lint_errors": 5}
    assert {p.attributes[semconv.AGENT_PATTERN]: p.value for p in otel.points(PATTERNS)} == {"guard-clause": 1}


def test_counts_add_up_over_calls(otel: Any) -> None:
    @agent_otel.agent(AGENT)
    def handle(n: int) -> dict[str, Any]:
        return {"success": n % 2 == 0, "confidence": n / 10, "fixes_applied": n}

    for n in range(1, 6):
        handle(n)
    assert point(otel, DURATION, {semconv.AGENT_OUTCOME: "success"}).count == 2
    assert point(otel, DURATION, {semconv.AGENT_OUTCOME: "failure"}).count == 3
    assert point(otel, CONFIDENCE, {semconv.AGENT_OUTCOME: "success"}).sum == pytest.approx(0.2 + 0.4)
    assert point(otel, CONFIDENCE, {semconv.AGENT_OUTCOME: "failure"}).sum == pytest.approx(0.1 + 0.3 + 0.5)
    assert point(otel, WORK).value == 15


def test_manual_handle(otel: Any) -> None:
    with agent_otel.job(type="manual"), agent_otel.agent_call("planner", task_type="plan") as call:
        call.set_outcome(success=True, confidence=0.8, fixes_applied=1)
    span = otel.span("invoke_agent planner")
    assert span.attributes[semconv.AGENT_TASK_TYPE] == "plan"
    assert span.attributes[semconv.AGENT_CONFIDENCE] == 0.8
    assert span.attributes[semconv.JOB_ID] == otel.span("invoke_workflow manual").attributes[semconv.JOB_ID]
    assert point(otel, CONFIDENCE).sum == pytest.approx(0.8)
    assert point(otel, WORK).value == 1

    with pytest.raises(KeyError), agent_otel.agent_call("planner", task_type="plan") as call:
        call.set_outcome(success=True)
        raise KeyError("x")
    assert point(otel, DURATION, {semconv.AGENT_OUTCOME: "error"}).attributes[semconv.ERROR_TYPE] == "KeyError"

    with agent_otel.agent_call("planner", task_type="plan") as call:
        call.set_outcome(success=False)
    assert point(otel, DURATION, {semconv.AGENT_OUTCOME: "failure"}).count == 1


def test_manual_handle_async(otel: Any) -> None:
    import asyncio

    async def main() -> None:
        async with agent_otel.agent_call("async-planner") as call:
            call.set_outcome(success=True, confidence=0.6)

    asyncio.run(main())
    assert otel.span("invoke_agent async-planner").attributes[semconv.AGENT_CONFIDENCE] == 0.6


@pytest.mark.parametrize(
    ("result", "outcome", "confidence", "stages"),
    [
        ({"success": ["yes"], "confidence": 0.5}, "success", 0.5, {}),  # Python truthiness
        ({"success": [], "confidence": 0.5}, "failure", 0.5, {}),
        ({"success": "false", "confidence": "0.7"}, "failure", 0.7, {}),
        ({"success": 1, "confidence": " 0.25 "}, "success", 0.25, {}),
        ({"success": True, "confidence": "high"}, "success", None, {"agent.confidence": 1}),
        ({"success": True, "confidence": 1.5}, "success", None, {"agent.confidence": 1}),
        ({"success": True, "confidence": float("nan")}, "success", None, {"agent.confidence": 1}),
        ({"success": True, "fixes_applied": "many", "patterns_used": 42}, "success", None,
         {"agent.fixes_applied": 1, "agent.patterns": 1}),
        ("just a string", "success", None, {}),
        (None, "success", None, {}),
        (42, "success", None, {}),
    ],
)
def test_odd_values_never_crash(otel: Any, result: Any, outcome: str, confidence: float | None,
                                stages: dict[str, int]) -> None:
    @agent_otel.agent(AGENT)
    def handle() -> Any:
        return result

    assert handle() is result
    attrs = otel.span(f"invoke_agent {AGENT}").attributes
    assert attrs[semconv.AGENT_OUTCOME] == outcome
    assert attrs.get(semconv.AGENT_CONFIDENCE) == (pytest.approx(confidence) if confidence is not None else None)
    if confidence is None:
        assert CONFIDENCE not in otel.metrics()
    else:
        assert point(otel, CONFIDENCE).sum == pytest.approx(confidence)
    for stage, count in stages.items():
        assert error_count(otel, stage) == count
    total = sum(p.value for p in otel.points(semconv.INSTRUMENTATION_ERRORS.name))
    assert total == sum(stages.values())
    assert point(otel, DURATION).count == 1


def test_failing_extractor_is_counted_and_the_call_still_runs(otel: Any) -> None:
    def broken(call: Any) -> Any:
        raise ZeroDivisionError

    @agent_otel.agent(AGENT, task_type=broken, confidence=broken)
    def handle() -> str:
        return "done"

    assert handle() == "done"
    assert error_count(otel, "agent.extract.task_type") == 1
    assert error_count(otel, "agent.extract.confidence") == 1
    assert otel.span(f"invoke_agent {AGENT}").attributes[semconv.AGENT_TASK_TYPE] == "default"


def test_configuration_errors_at_decoration_time() -> None:
    with pytest.raises(ConfigurationError, match="unknown keyword 'fixes'"):
        agent_otel.agent(AGENT, fixes=3)
    for blank in ("", "  "):  # a blank name no call could read: before, "  " named the span and the series
        with pytest.raises(ConfigurationError, match="name is required"):
            agent_otel.agent(blank)
    with pytest.raises(ConfigurationError, match="attributes must be a mapping"):
        agent_otel.agent(AGENT, attributes=["user.id"])  # type: ignore[arg-type]
    # an empty key, which the SDK dropped with a warning on the program's stderr at every call
    with pytest.raises(ConfigurationError, match="attributes: expected names as keys, got ''"):
        agent_otel.agent(AGENT, attributes={"": 1})
    # a table option given something else names itself, as in a config file (it was a bare TypeError or
    # ValueError from dict())
    with pytest.raises(ConfigurationError, match=r"agent\(\): work: expected a table of counts, got Path"):
        agent_otel.agent(AGENT, work=agent_otel.path("result.counts"))  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"agent\(\): result_attributes: expected a table of extractors, got "
                                                 "list"):
        agent_otel.agent(AGENT, result_attributes=["result.kind"])  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"evolution\(\): kpis_before: expected a table of KPI numbers or an "
                                                 "extractor"):
        agent_otel.evolution(AGENT, kpis_before=0.5)  # type: ignore[arg-type]
    agent_otel.evolution(AGENT, kpis_before=agent_otel.path("args.before"))  # an extractor of the table is one


def test_disabled_runtime_records_nothing(otel: Any) -> None:
    from agent_otel._engine.instruments import build_runtime

    build_runtime(otel.tracer_provider, otel.meter_provider, enabled=False)

    @agent_otel.agent(AGENT)
    def handle() -> int:
        return 1

    assert handle() == 1
    assert otel.spans() == [] and DURATION not in otel.metrics()


def test_provider_and_tool_calls_inside_an_agent_carry_its_name(otel: Any) -> None:
    @agent_otel.tool("grep")
    def grep() -> str:
        return "hit"

    @agent_otel.provider("openai", model="gpt-4o")
    def complete() -> dict[str, Any]:
        return {"usage": {"prompt_tokens": 10, "completion_tokens": 1}}

    @agent_otel.agent(AGENT)
    def handle() -> None:
        grep()
        complete()

    handle()
    parent = otel.span(f"invoke_agent {AGENT}")
    for name in ("execute_tool grep", "chat gpt-4o"):
        child = otel.span(name)
        assert child.attributes[semconv.GEN_AI_AGENT_NAME] == AGENT
        assert child.parent.span_id == parent.context.span_id
    assert points(otel, semconv.TOOL_DURATION.name, {semconv.GEN_AI_AGENT_NAME: AGENT})
    assert points(otel, semconv.CLIENT_COST.name, {semconv.GEN_AI_AGENT_NAME: AGENT})


def test_agent_can_opt_into_resource_sampling(otel: Any) -> None:
    import threading

    @agent_otel.agent("sampled", sample_resources=True)
    def run() -> dict:
        return {"success": True}

    @agent_otel.agent("unsampled")
    def plain() -> dict:
        return {"success": True}

    assert run() == {"success": True} and plain() == {"success": True}
    sampled = otel.span("invoke_agent sampled").attributes
    assert sampled[semconv.RESOURCE_MEMORY_PEAK] > 0 and semconv.RESOURCE_CPU_TIME in sampled
    assert semconv.RESOURCE_MEMORY_PEAK not in otel.span("invoke_agent unsampled").attributes
    assert not any(t.name == "agent-otel-resource-sampler" for t in threading.enumerate())


def test_a_forked_childs_sampled_call_measures_the_child(otel: Any) -> None:
    """The sampler's ``psutil.Process`` was made at import: in a forked child (a pre-fork server's worker, a pool's)
    it still measured the parent, and a call that grew the child's memory reported the parent's peak."""
    import os

    import psutil

    kept: list[bytes] = []

    @agent_otel.agent("grows", sample_resources=True)
    def grow() -> int:
        kept.append(b"x" * 150_000_000)  # written: resident in the child alone, still when the call ends (the sampler
        return psutil.Process().memory_info().rss  # reads the memory then, and every 50 ms: a shorter peak may pass)

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its memory before the call, in it, and the call's measured peak, to the parent
        try:
            before = psutil.Process().memory_info().rss
            during = grow()
            peak = otel.span("invoke_agent grows").attributes[semconv.RESOURCE_MEMORY_PEAK]
            os.write(write_end, f"{before} {during} {peak}".encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        before, during, peak = map(int, pipe.read().split())
    os.waitpid(pid, 0)
    assert during > before + 100_000_000  # the child grew by what it wrote
    # ... and so did the peak measured (the parent's memory, which stayed as it was, did not)
    assert peak > before + 100_000_000


def test_sync_agent_returning_a_coroutine_cancelled_before_it_starts(otel: Any) -> None:
    """Its span ends as cancelled and its resource sampler thread stops."""
    import threading

    async def solve() -> dict:
        return {"success": True}

    @agent_otel.agent("deferred", sample_resources=True)
    def start() -> Any:
        return solve()

    cancelled_before_it_starts(start)
    span = otel.span("invoke_agent deferred")
    assert span.attributes[semconv.AGENT_OUTCOME] == "error"
    assert span.attributes[semconv.ERROR_TYPE] == "CancelledError"
    assert not any(t.name == "agent-otel-resource-sampler" for t in threading.enumerate())
