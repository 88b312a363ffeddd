"""Paths that say when and how they read (at, delta, equals/in/not_in), as decorator keywords, and
their errors in decorators and config files alike."""

from __future__ import annotations

import tomllib
import types
from dataclasses import dataclass, field
from typing import Any

import pytest

import agent_otel
from agent_otel import ConfigurationError, path, semconv
from agent_otel._zerocode.config import parse_config
from tests.support.telemetry import error_count, point, points


@dataclass
class Totals:
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class Client:
    usage: Totals = field(default_factory=lambda: Totals(500, 50))

    @agent_otel.provider("openai", model="m", input_tokens=path("self.usage.prompt_tokens", delta=True),
                         output_tokens=path("self.usage.completion_tokens", delta=True))
    def complete(self, used_in: int, used_out: int) -> str:
        self.usage.prompt_tokens += used_in
        self.usage.completion_tokens += used_out
        return "text"


def test_delta_records_what_the_call_added_to_a_running_total(otel: Any) -> None:
    client = Client()
    client.complete(380, 12)
    client.complete(20, 3)
    inputs = point(otel, semconv.CLIENT_OPERATION_INPUT_TOKENS.name)
    outputs = point(otel, semconv.CLIENT_OPERATION_OUTPUT_TOKENS.name)
    assert (inputs.sum, inputs.count, outputs.sum) == (400, 2, 15)
    assert sorted(s.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] for s in otel.spans()) == [20, 380]


def test_a_running_total_the_first_call_creates_counts_from_zero(otel: Any) -> None:
    """A client that creates its usage object on its first request: before, that request recorded no tokens."""

    class Lazy:
        usage: Totals | None = None

        @agent_otel.provider("openai", model="m", input_tokens=path("self.usage.prompt_tokens", delta=True))
        def complete(self, used_in: int) -> str:
            if self.usage is None:
                self.usage = Totals()
            self.usage.prompt_tokens += used_in
            return "text"

    client = Lazy()
    client.complete(100)
    client.complete(50)
    assert [s.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] for s in otel.spans()] == [100, 50]
    assert error_count(otel, "provider.extract.input_tokens") == 0


def test_a_running_total_that_goes_down_is_no_number(otel: Any) -> None:
    client = Client()

    @agent_otel.provider("openai", input_tokens=path("args.client.usage.prompt_tokens", delta=True))
    def reset(client: Client) -> None:
        client.usage = Totals()

    reset(client)
    assert semconv.GEN_AI_USAGE_INPUT_TOKENS not in otel.spans()[0].attributes
    assert error_count(otel, "provider.extract.input_tokens") == 1


@dataclass
class Outcome:
    state: str


@pytest.mark.parametrize(("extractor", "outcomes"), [
    (path("result.state", equals="success"), ["success", "failure", "failure"]),
    (path("result.state", in_=["success", "partial"]), ["success", "success", "failure"]),
    (path("result.state", not_in=["max_steps_error"]), ["success", "success", "failure"]),
])
def test_a_comparison_maps_states_to_an_outcome(otel: Any, extractor: Any, outcomes: list[str]) -> None:
    @agent_otel.agent("runner", success=extractor)
    def run(state: str) -> Outcome:
        return Outcome(state)

    for state in ("success", "partial", "max_steps_error"):
        assert run(state) == Outcome(state)
    spans = sorted(otel.spans(), key=lambda s: s.start_time or 0)
    assert [s.attributes[semconv.AGENT_OUTCOME] for s in spans] == outcomes


@pytest.mark.parametrize(("value", "outcome"), [
    ([], "failure"), (["fix"], "success"), (0, "failure"), (3, "success"), ("", "failure"), ("done", "success"),
    ("failed", "failure"), ({}, "failure"), (None, "success"),
])
def test_success_is_read_by_truthiness(otel: Any, value: Any, outcome: str) -> None:
    @agent_otel.agent("fixer")
    def fix() -> dict[str, Any]:
        return {"success": value}

    fix()
    assert otel.spans()[0].attributes[semconv.AGENT_OUTCOME] == outcome


def _raises(call: Any) -> bool:
    raise KeyError("not there")


@pytest.mark.parametrize("kind", ["agent", "evolution", "phase", "provider"])
def test_a_given_success_that_reads_none_is_false_and_one_whose_extractor_raised_says_nothing(
        otel: Any, kind: str) -> None:
    """By truthiness, as for a value: openevolve's rejected candidate (``child_program_dict=None``) is a failed
    run. An extractor that raised is agent-otel's failure, counted, and no outcome of the program's."""
    decorate = {"agent": lambda success: agent_otel.agent("a", success=success),
                "evolution": lambda success: agent_otel.evolution("a", success=success),
                "phase": lambda success: agent_otel.phase("p", success=success),
                "provider": lambda success: agent_otel.provider("openai", operation="health_check",
                                                                success=success)}[kind]
    candidates = [None, {"program": "x"}]
    runs = [decorate(path("result.child"))(lambda i: types.SimpleNamespace(child=candidates[i])),
            decorate(lambda call: call.result.child)(lambda i: types.SimpleNamespace(child=candidates[i])),
            decorate(_raises)(lambda i: types.SimpleNamespace(child=candidates[i]))]
    for run in runs:
        for i in (0, 1):
            assert run(i).child is candidates[i]
    spans = sorted(otel.spans(), key=lambda s: s.start_time or 0)
    if kind == "provider":
        told = ["failure" if s.attributes.get(semconv.ERROR_TYPE) == semconv.ERROR_TYPE_UNAVAILABLE else "success"
                for s in spans]
    else:
        key = {"agent": semconv.AGENT_OUTCOME, "evolution": semconv.EVOLUTION_STATUS,
               "phase": semconv.WORKFLOW_PHASE_OUTCOME}[kind]
        told = [{"failed": "failure", "succeeded": "success"}.get(s.attributes[key], s.attributes[key]) for s in spans]
    assert told == ["failure", "success", "failure", "success", "success", "success"]
    assert error_count(otel, f"{kind}.extract.success") == 2


class _Unreadable:
    @property
    def flag(self) -> bool:
        raise RuntimeError("not yet")


@pytest.mark.parametrize("kind", ["agent", "provider"])
def test_a_success_read_at_the_start_that_raised_says_nothing_either(otel: Any, kind: str) -> None:
    decorate = agent_otel.agent if kind == "agent" else agent_otel.provider
    name = "a" if kind == "agent" else "openai"

    @decorate(name, success=path("args.source.flag", at="start"))
    def run(source: Any) -> str:
        return "done"

    assert run(_Unreadable()) == "done"
    [span] = otel.spans()
    if kind == "agent":
        assert span.attributes[semconv.AGENT_OUTCOME] == "success"
    else:
        assert semconv.ERROR_TYPE not in span.attributes
    assert error_count(otel, f"{kind}.extract.success") == 1


class _Flaky:
    """A running total whose first read raises."""

    def __init__(self) -> None:
        self.reads = 0

    @property
    def total(self) -> int:
        self.reads += 1
        if self.reads == 1:
            raise RuntimeError("not yet")
        return 7


def test_a_delta_whose_start_read_raised_is_unknown_not_the_whole_total(otel: Any) -> None:
    """The start's failed read was taken as a total that did not exist yet (0): the call's share read as the whole
    running total, 7 input tokens where the result said 3; a read failed at both ends was counted twice."""
    @agent_otel.provider("openai", model="gpt-4o", input_tokens=path("args.source.total", delta=True))
    def call(source: Any) -> dict[str, Any]:
        return {"usage": {"prompt_tokens": 3, "completion_tokens": 1}}

    call(_Flaky())
    assert otel.spans()[0].attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 3
    assert error_count(otel, "provider.extract.input_tokens") == 1


def test_kpis_before_on_self_is_read_when_the_run_starts_and_strategy_at_the_end(otel: Any) -> None:
    class Engine:
        def __init__(self) -> None:
            self.kpis = {"accuracy": 0.5}
            self.strategy = "unset"

        @agent_otel.evolution("planner", kpis_before=path("self.kpis"), kpis_after=path("self.kpis"),
                              strategy=path("self.strategy", at="end"))
        def evolve(self) -> None:
            self.strategy = "crossover"
            self.kpis = {"accuracy": 0.75}

    Engine().evolve()
    attributes = otel.spans()[0].attributes
    assert attributes[semconv.EVOLUTION_KPI_BEFORE_PREFIX + "accuracy"] == 0.5
    assert attributes[semconv.EVOLUTION_KPI_DELTA_PREFIX + "accuracy"] == 0.25
    assert attributes[semconv.EVOLUTION_STRATEGY] == "crossover"


def test_at_start_reads_a_value_before_the_call_changes_it(otel: Any) -> None:
    class Worker:
        pending = ["a", "b", "c"]

        @agent_otel.agent("worker", remaining_issues=path("self.pending", at="start"))
        def work(self) -> None:
            self.pending = []

    Worker().work()
    assert otel.spans()[0].attributes[semconv.AGENT_RESULT_PREFIX + "remaining_issues"] == 3


def test_at_start_counts_what_a_list_held_even_when_the_call_empties_that_same_list(otel: Any) -> None:
    """The README's example: ``queue.clear()`` changes the object read at the start, not the attribute. Before,
    the value kept was the list itself, counted when the call ended: 0."""
    @agent_otel.agent("runner", remaining_issues=path("args.queue", at="start"))
    def run(queue: list[str]) -> dict[str, str]:
        queue.clear()
        return {"state": "done"}

    queue = ["a", "b"]
    run(queue)
    assert queue == []  # the program's own list, emptied by the call as without agent-otel
    assert otel.spans()[0].attributes[semconv.AGENT_RESULT_PREFIX + "remaining_issues"] == 2


def test_result_attributes_read_at_the_start_or_as_a_delta_when_they_say_so(otel: Any) -> None:
    """A ``result_attributes`` entry with ``at="start"`` or ``delta`` reads as an option does: the value before the
    call (a list copied then), the change across it. They were read when the call ended, like any other entry."""
    class Runner:
        def __init__(self) -> None:
            self.step, self.queue = 1, ["a", "b"]

        @agent_otel.agent("runner", result_attributes={"step.before": path("self.step", at="start"),
                                                       "step.added": path("self.step", delta=True),
                                                       "queue.before": path("self.queue", at="start"),
                                                       "step.after": path("self.step")})
        def run(self) -> str:
            self.step = 99
            self.queue.clear()
            return "done"

    Runner().run()
    attributes = otel.spans()[0].attributes
    assert {key: attributes[key] for key in ("step.before", "step.added", "queue.before", "step.after")} == {
        "step.before": 1, "step.added": 98, "queue.before": ("a", "b"), "step.after": 99}


def batch(runner: Any) -> None:
    runner.step += 5


def test_a_configured_jobs_result_attributes_read_as_a_delta(otel: Any, tmp_path: Any) -> None:
    """The same for a job, whose ``result_attributes`` only a config file gives."""
    config = tmp_path / "agent-otel.toml"
    config.write_text(f'[[job]]\ntarget = "{__name__}:batch"\ntype = "batch"\n'
                      'result_attributes = { "runner.steps" = { path = "args.runner.step", delta = true } }\n')
    agent_otel.instrument(str(config))
    try:
        globals()["batch"](types.SimpleNamespace(step=2))  # the module's name holds the job's wrapper now
    finally:
        agent_otel.uninstrument()
    assert otel.spans()[0].attributes["runner.steps"] == 5


def test_a_provider_whose_success_is_false_is_unavailable(otel: Any) -> None:
    @agent_otel.provider("openai", operation="health_check", success=path("result"))
    def healthy(up: bool) -> bool:
        return up

    assert healthy(False) is False
    assert healthy(True) is True
    found = {p.attributes.get(semconv.ERROR_TYPE) for p in points(otel, semconv.CLIENT_INFERENCE_DURATION.name)}
    assert found == {semconv.ERROR_TYPE_UNAVAILABLE, None}
    down = [s for s in otel.spans() if s.attributes.get(semconv.ERROR_TYPE)]
    assert len(down) == 1 and not down[0].status.is_ok


@pytest.mark.parametrize(("make", "message"), [
    (lambda: path("result.x", at="start"), "at='start' cannot read the result"),
    (lambda: path("result.x", delta=True), "the result has no value before it"),
    (lambda: path("args.x", at="noon"), "at must be 'start' or 'end'"),  # type: ignore[arg-type]
    (lambda: path("args.x", equals=1, in_=[1]), "give one of equals, in, not_in"),
    (lambda: path("args.x", in_="abc"), "in takes a list of values"),
    (lambda: path("args.x", delta=True, equals=3), "delta reads a number"),
    (lambda: agent_otel.agent("a", task_type=path("args.x", at="end")), 'has at = "end" but this key is used'),
    (lambda: agent_otel.agent("a", confidence=path("result.x", equals=1)), "has equals (a yes/no test)"),
    (lambda: agent_otel.provider("p", model=path("self.m", delta=True)), "has delta = true but this key is read once"),
    (lambda: agent_otel.provider("p", response_model=path("result.m", delta=True)), "no value before it"),
    (lambda: agent_otel.agent("a", success=path("self.x", delta=True)), "this key takes a boolean, not a number"),
])
def test_a_path_a_key_cannot_take_is_a_configuration_error(make: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make()


def entry_error(kind: str, text: str) -> str:
    document = tomllib.loads(f"[[{kind}]]\ntarget = \"a.b:C.d\"\n{text}\n")
    with pytest.raises(ConfigurationError) as raised:
        parse_config(document, "app.toml")
    return str(raised.value)


@pytest.mark.parametrize(("kind", "text", "message"), [
    ("agent", 'task_type = { path = "args.x", at = "end" }',
     "app.toml: agent[0].task_type: extractor path 'args.x' has at = \"end\" but this key is used when the call "
     "starts (it names the span or labels its metrics)"),
    ("agent", 'success = { path = "result.state", at = "start" }',
     "app.toml: agent[0].success: extractor path 'result.state': at='start' cannot read the result, which exists "
     "only when the call ends"),
    ("agent", 'success = { path = "result.state", is = "ok" }',
     "app.toml: agent[0].success: unknown key 'is' in an extractor"),
    ("agent", 'success = { path = "result.state", in = "ok" }',
     "app.toml: agent[0].success: in takes an array of values, got a string 'ok'"),
    ("agent", 'success = { path = "result.state", equals = ["ok"] }',
     "app.toml: agent[0].success: equals takes a string, number or boolean, got an array"),
    ("agent", 'confidence = { path = "result.c", equals = 1 }',
     "app.toml: agent[0].confidence: extractor path 'result.c' has equals (a yes/no test) but this key takes a "
     "number"),
    ("agent", 'success = { path = "result.state", at = 1 }',
     'app.toml: agent[0].success: at must be "start" or "end", got an integer (1)'),
    ("provider", 'provider = "p"\ninput_tokens = { path = "self.n", delta = "yes" }',
     "app.toml: provider[0].input_tokens: delta must be a boolean, got a string 'yes'"),
    ("provider", 'provider = "p"\nmodel = { path = "self.m", delta = true }',
     "app.toml: provider[0].model: extractor path 'self.m' has delta = true but this key is read once"),
    ("tool", 'when = { path = "result" }', "app.toml: tool[0].when: unknown key"),
    ("fallback", 'from = "a"\nto = "b"\nwhen = "yes"',
     "app.toml: fallback[0].when: expected a boolean or { path = \"...\" }, got a string 'yes'"),
    ("fallback", 'from = "a"\nto = "b"\nwhen = { path = "result.x", delta = true }',
     "app.toml: fallback[0].when: extractor path 'result.x': delta reads the value before and after the call"),
    ("retry", 'reason = { path = "args.e", in = ["a"] }',
     "app.toml: retry[0].reason: extractor path 'args.e' has in (a yes/no test) but this key takes a string"),
])
def test_bad_new_keys_name_the_file_the_key_and_the_problem(kind: str, text: str, message: str) -> None:
    assert entry_error(kind, text).startswith(message)
