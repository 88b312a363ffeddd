"""Job roll-ups: calls, tokens and cost of everything under a job, across threads and asyncio tasks."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import random
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.trace import StatusCode

import agent_otel
from agent_otel import semconv
from agent_otel._calls.job import new_job_id
from agent_otel._calls.pricing import DEFAULT_PRICES
from agent_otel._engine.instruments import build_runtime
from tests.support.telemetry import assert_instrument, point

FANOUT = 8


@agent_otel.tool("grep")
def grep(n: int) -> int:
    return n


@agent_otel.provider("openai", model="gpt-4o-mini")
def complete(n: int) -> dict[str, Any]:
    return {"usage": {"prompt_tokens": 100 + n, "completion_tokens": 10}}


@agent_otel.agent("worker")
def work(n: int) -> dict[str, Any]:
    grep(n)
    complete(n)
    return {"success": True}


@agent_otel.provider("anthropic", model="claude-3-haiku")
async def acomplete(n: int) -> dict[str, Any]:
    await asyncio.sleep(0)
    return {"usage": {"input_tokens": 1000, "output_tokens": 100 + n}}


@agent_otel.agent("async-worker")
async def awork(n: int) -> dict[str, Any]:
    grep(n)
    await acomplete(n)
    return {"success": True}


def expected_cost() -> float:
    mini_in, mini_out = DEFAULT_PRICES["gpt-4o-mini"][:2]
    haiku_in, haiku_out = DEFAULT_PRICES["claude-3-haiku"][:2]
    tokens_in = sum(100 + n for n in range(FANOUT))
    threads = (tokens_in * mini_in + FANOUT * 10 * mini_out) / 1e6
    tasks = (FANOUT * 1000 * haiku_in + sum(100 + n for n in range(FANOUT)) * haiku_out) / 1e6
    return threads + tasks


def test_rollups_across_a_thread_pool_and_asyncio_gather(otel: Any) -> None:
    async def gather() -> None:
        await asyncio.gather(*(awork(n) for n in range(FANOUT)))

    with agent_otel.job("job-42", type="fanout") as job:
        with ThreadPoolExecutor(max_workers=4) as pool:
            assert list(pool.map(work, range(FANOUT))) == [{"success": True}] * FANOUT
        asyncio.run(gather())
        assert job.id == "job-42"

    span = otel.span("invoke_workflow fanout")
    attrs = span.attributes
    assert attrs[semconv.JOB_ID] == "job-42"
    assert attrs[semconv.JOB_OUTCOME] == "success"
    assert attrs[semconv.JOB_ROLLUP_AGENT_CALLS] == 2 * FANOUT
    assert attrs[semconv.JOB_ROLLUP_PROVIDER_CALLS] == 2 * FANOUT
    assert attrs[semconv.JOB_ROLLUP_TOOL_CALLS] == 2 * FANOUT
    tokens_in = sum(100 + n for n in range(FANOUT)) + FANOUT * 1000
    tokens_out = FANOUT * 10 + sum(100 + n for n in range(FANOUT))
    assert attrs[semconv.JOB_ROLLUP_INPUT_TOKENS] == tokens_in
    assert attrs[semconv.JOB_ROLLUP_OUTPUT_TOKENS] == tokens_out
    assert attrs[semconv.JOB_ROLLUP_COST] == pytest.approx(expected_cost())
    children = [s for s in otel.spans() if s.name != "invoke_workflow fanout"]
    assert len(children) == 6 * FANOUT
    assert {s.attributes[semconv.JOB_ID] for s in children} == {"job-42"}
    assert {s.context.trace_id for s in children} == {span.context.trace_id}

    [duration] = assert_instrument(otel, semconv.JOB_DURATION)
    assert dict(duration.attributes) == {semconv.JOB_TYPE: "fanout", semconv.JOB_OUTCOME: "success"}
    assert duration.count == 1
    total_cost = sum(p.value for p in otel.points(semconv.CLIENT_COST.name))
    assert total_cost == pytest.approx(expected_cost())
    assert point(otel, semconv.CLIENT_COST.name, {semconv.GEN_AI_AGENT_NAME: "async-worker"}).value > 0


def test_a_model_call_still_open_when_its_job_ends_is_one_of_the_jobs_calls_of_unknown_cost(otel: Any) -> None:
    """A stream left half-read in the program's variable is closed after the job's block (when the function
    returns): the job counted no model call and a cost of 0.0, a free job that made none."""
    @agent_otel.provider("openai", model="gpt-4o")
    def stream() -> Iterator[dict[str, Any]]:
        yield {"choices": [{"delta": {"content": "a"}}]}
        yield {"usage": {"prompt_tokens": 10, "completion_tokens": 2}}

    with agent_otel.job(type="held"):
        chunks = stream()
        next(chunks)
    chunks.close()
    attributes = otel.span(semconv.job_span_name("held")).attributes
    assert attributes[semconv.JOB_ROLLUP_PROVIDER_CALLS] == 1 and semconv.JOB_ROLLUP_COST not in attributes
    assert [span.attributes[semconv.JOB_ID] for span in otel.spans() if span.name.startswith("chat")] == [
        attributes[semconv.JOB_ID]]


def test_two_jobs_do_not_mix(otel: Any) -> None:
    def one_job(n: int) -> None:
        with agent_otel.job(f"job-{n}", type="single"):
            for _ in range(n):
                work(n)

    with ThreadPoolExecutor(max_workers=3) as pool:
        list(pool.map(one_job, (1, 2, 3)))
    rollups = {s.attributes[semconv.JOB_ID]: s.attributes[semconv.JOB_ROLLUP_AGENT_CALLS]
               for s in otel.spans("invoke_workflow single")}
    assert rollups == {"job-1": 1, "job-2": 2, "job-3": 3}
    assert point(otel, semconv.JOB_DURATION.name).count == 3


def test_job_outcome_error_and_failure(otel: Any) -> None:
    with pytest.raises(ValueError), agent_otel.job(type="bad"):
        work(1)
        raise ValueError
    outcomes = {p.attributes[semconv.JOB_OUTCOME]: p.count for p in otel.points(semconv.JOB_DURATION.name)}
    assert outcomes == {"error": 1}
    assert otel.span("invoke_workflow bad").attributes[semconv.JOB_ROLLUP_AGENT_CALLS] == 1


@pytest.mark.parametrize(("code", "outcome"), [(0, "success"), (None, "success"), (False, "success"),
                                               (1, "error"), (2, "error"), ("fatal: bad input", "error")])
def test_sys_exit_inside_a_job_and_an_agent_is_judged_by_its_code(otel: Any, code: Any, outcome: str) -> None:
    @agent_otel.agent("exiting")
    def run() -> None:
        raise SystemExit(code)

    raised = None
    with pytest.raises(SystemExit) as caught, agent_otel.job(type="cli"):
        try:
            run()
        except SystemExit as exc:
            raised = exc
            raise
    assert caught.value is raised and caught.value.code == code  # the same object, the same exit status
    job_span, agent_span = otel.span("invoke_workflow cli"), otel.span("invoke_agent exiting")
    assert job_span.attributes[semconv.JOB_OUTCOME] == outcome
    assert agent_span.attributes[semconv.AGENT_OUTCOME] == outcome
    assert point(otel, semconv.JOB_DURATION.name).attributes[semconv.JOB_OUTCOME] == outcome
    assert point(otel, semconv.AGENT_DURATION.name).attributes[semconv.AGENT_OUTCOME] == outcome
    for span in (job_span, agent_span):
        if outcome == "success":
            assert semconv.ERROR_TYPE not in span.attributes and span.status.status_code is StatusCode.UNSET
        else:
            assert span.attributes[semconv.ERROR_TYPE] == "SystemExit"
            assert span.status.status_code is StatusCode.ERROR


def test_keyboard_interrupt_is_an_error(otel: Any) -> None:
    @agent_otel.agent("interrupted")
    def run() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), agent_otel.job(type="cli"):
        run()
    for span, key in ((otel.span("invoke_workflow cli"), semconv.JOB_OUTCOME),
                      (otel.span("invoke_agent interrupted"), semconv.AGENT_OUTCOME)):
        assert span.attributes[key] == "error" and span.attributes[semconv.ERROR_TYPE] == "KeyboardInterrupt"


def test_generator_exit_is_a_closed_call_not_an_error(otel: Any) -> None:
    """A consumer that stops a generator (GeneratorExit) ends a job inside it, and an agent generator,
    as closed early with the outcome success: the code under them did not fail."""

    @agent_otel.agent("lister")
    def produce() -> Any:
        with agent_otel.job(type="batch"):
            yield 1
            yield 2

    items = produce()
    assert next(items) == 1
    items.close()
    for span, key in ((otel.span("invoke_workflow batch"), semconv.JOB_OUTCOME),
                      (otel.span("invoke_agent lister"), semconv.AGENT_OUTCOME)):
        assert span.attributes[key] == "success"
        assert span.attributes[semconv.STREAM_CLOSED_EARLY] is True
        assert semconv.ERROR_TYPE not in span.attributes and span.status.status_code is StatusCode.UNSET


def test_a_generated_job_id_is_a_random_version_4_uuid_in_hex() -> None:
    ids = [new_job_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for job_id in ids:
        parsed = uuid.UUID(hex=job_id)
        assert (parsed.hex, parsed.version, parsed.variant) == (job_id, 4, uuid.RFC_4122)


def test_job_ids_neither_follow_nor_move_the_hosts_random_stream() -> None:
    """Ids come from a generator of agent-otel's own: a host that seeds ``random`` (for a reproducible run)
    gets other ids each time, and its own draws are the same as without agent-otel."""
    random.seed(1234)
    plain_draws = [random.random() for _ in range(5)]
    random.seed(1234)
    first_ids = [new_job_id() for _ in range(3)]
    draws = [random.random() for _ in range(5)]
    random.seed(1234)
    second_ids = [new_job_id() for _ in range(3)]

    assert draws == plain_draws
    assert not set(first_ids) & set(second_ids)


def test_a_forked_child_draws_other_job_ids_than_its_parent() -> None:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent, then out without the parent's atexit hooks
        os.write(write_end, " ".join(new_job_id() for _ in range(3)).encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        child_ids = pipe.read().split()
    os.waitpid(pid, 0)
    parent_ids = [new_job_id() for _ in range(3)]

    assert len(child_ids) == 3
    assert not set(child_ids) & set(parent_ids)


def test_a_job_or_call_running_as_the_process_forks_is_recorded_by_the_parent_alone(otel: Any) -> None:
    """A program that forks inside a job (or an agent call) runs the rest of the block in both processes: the child
    recorded the job as it left the block too, and Prometheus counted two jobs for one. What started before the fork
    is the parent's to record, as its span is the parent's to export; what the child calls there is its own."""
    read_end, write_end = os.pipe()

    @agent_otel.agent("forking")
    def fork_inside() -> int:
        return os.fork()

    @agent_otel.tool("in_child")
    def in_child() -> None:
        return None

    with agent_otel.job("forked-job", type="forked"):
        pid = fork_inside()
        if pid == 0:
            in_child()
    if pid == 0:  # the child: what it recorded, to the parent, then out without the parent's atexit hooks
        try:
            recorded = [sum(point.count for point in otel.points(instrument.name))
                        for instrument in (semconv.JOB_DURATION, semconv.AGENT_DURATION, semconv.TOOL_DURATION)]
            os.write(write_end, " ".join(map(str, recorded)).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        in_the_child = pipe.read().split()
    os.waitpid(pid, 0)
    assert in_the_child == ["0", "0", "1"]  # the job and the agent call are the parent's; its tool call its own
    assert [sum(point.count for point in otel.points(instrument.name))
            for instrument in (semconv.JOB_DURATION, semconv.AGENT_DURATION)] == [1, 1]
    assert len(otel.spans(semconv.job_span_name("forked"))) == 1


def test_attributes_given_as_a_table_like_the_other_kinds_are_span_attributes_with_hashed_keys_hashed(
        otel: Any) -> None:
    """``job(attributes={...})``, as ``agent()`` and the others take them: before, one attribute named
    ``attributes`` held the mapping, its ``user.id`` exported raw."""
    import hashlib

    agent_otel.set_policy(salt="pepper")
    with agent_otel.job(type="block", attributes={"user.id": "alice", "tenant": "acme"}, region="eu"):
        pass

    @agent_otel.job(type="decorated", attributes={"user.id": "alice"})
    def run() -> None:
        return None

    run()
    hashed = hashlib.sha256(b"pepperalice").hexdigest()
    for name in ("block", "decorated"):
        attributes = dict(otel.span(semconv.job_span_name(name)).attributes or {})
        assert "attributes" not in attributes
        assert attributes["user.id"] == hashed
    assert {key: otel.span(semconv.job_span_name("block")).attributes[key] for key in ("tenant", "region")} == {
        "tenant": "acme", "region": "eu"}


@pytest.mark.parametrize("tracing", [True, False], ids=["tracing", "tracing off"])
def test_a_job_adds_its_id_and_type_to_the_hosts_baggage_without_changing_it(otel: Any, tracing: bool) -> None:
    """A job's id and type join the baggage the host set, in the job's context only: the host's own baggage
    (its entries and the context that holds them) is as it was, inside the job and after it."""
    if not tracing:  # a job's context is then made in one copy (no span to start in between)
        build_runtime(trace.NoOpTracerProvider(), otel.meter_provider)
    host = baggage.set_baggage("tenant", "acme", baggage.set_baggage(semconv.BAGGAGE_JOB_TYPE, "outer"))
    token = otel_context.attach(host)
    try:
        with agent_otel.job("j-1", type="nightly"):
            inside = dict(baggage.get_all())
            host_inside = dict(baggage.get_all(host))
        after = dict(baggage.get_all())
    finally:
        otel_context.detach(token)
    assert inside == {"tenant": "acme", semconv.BAGGAGE_JOB_ID: "j-1", semconv.BAGGAGE_JOB_TYPE: "nightly"}
    assert host_inside == after == {"tenant": "acme", semconv.BAGGAGE_JOB_TYPE: "outer"}


@contextlib.contextmanager
@agent_otel.job(type="sync-session")
def sync_session() -> Iterator[str]:
    yield "session"


@contextlib.asynccontextmanager
@agent_otel.job(type="async-session")
async def async_session() -> AsyncIterator[str]:
    yield "session"


@agent_otel.job(type="sync-session")  # above: the same call as below
@contextlib.contextmanager
def sync_session_above() -> Iterator[str]:
    yield "session"


@agent_otel.job(type="async-session")
@contextlib.asynccontextmanager
async def async_session_above() -> AsyncIterator[str]:
    yield "session"


@contextlib.contextmanager
@agent_otel.agent("reviewer")
def reviewing() -> Iterator[None]:
    yield


@pytest.mark.parametrize("above", [False, True], ids=["decorator below", "decorator above"])
@pytest.mark.parametrize("shape", ["contextmanager", "asynccontextmanager"])
def test_a_decorated_generator_under_a_context_manager_spans_its_with_block(otel: Any, shape: str,
                                                                            above: bool) -> None:
    """``@contextmanager`` over ``@agent_otel.job(...)`` (a FastAPI dependency with ``yield`` is one) timed the
    block but dropped its context across the yield: the block's calls had no job id, were no children of the
    job's span and were missing from its roll-up (``job.tool.calls`` 0), where ``with agent_otel.job():``
    inside the generator counts them. The decorator above ``@contextmanager`` timed only the making of the
    manager (a job of no calls, the block in none); it is the same call now."""
    seen: list[str | None] = []

    def block() -> None:
        seen.append(agent_otel.current_job_id())
        grep(1)

    if shape == "contextmanager":
        with (sync_session_above if above else sync_session)() as value:
            block()
    else:
        async def main() -> str:
            async with (async_session_above if above else async_session)() as entered:
                block()
            return entered

        value = asyncio.run(main())
    assert value == "session"
    # the block's context is let go at its end
    assert agent_otel.current_job_id() is None and not trace.get_current_span().get_span_context().is_valid
    (job_span,) = [span for span in otel.spans() if span.name.startswith("invoke_workflow")]
    tool_span = otel.span("execute_tool grep")
    assert seen == [job_span.attributes[semconv.JOB_ID]]
    assert tool_span.parent is not None and tool_span.parent.span_id == job_span.context.span_id
    assert job_span.attributes[semconv.JOB_ROLLUP_TOOL_CALLS] == 1


class Reviewer:
    def __init__(self, label: str) -> None:
        self.label = label

    @agent_otel.agent(agent_otel.path("self.label"))
    @contextlib.contextmanager
    def reviewing(self, depth: int = 1) -> Iterator[int]:
        """Review."""
        yield depth


def test_a_decorator_above_a_context_manager_keeps_the_managers_function_as_the_program_has_it(otel: Any) -> None:
    """Above ``@contextmanager``: still a function making a context manager, with its signature, docstring and
    name (pickled by it), usable as a decorator as contextlib's managers are; a method's object is read by
    extractors; the config's wrapping leaves it to the decorator."""
    import inspect
    import pickle

    from agent_otel._engine.wrappers import is_wrapper

    method = Reviewer.reviewing
    assert str(inspect.signature(method)) == "(self, depth: 'int' = 1) -> 'Iterator[int]'"
    assert method.__doc__ == "Review." and method.__qualname__ == "Reviewer.reviewing"
    assert pickle.loads(pickle.dumps(sync_session_above)) is sync_session_above and is_wrapper(sync_session_above)
    with Reviewer("strict").reviewing(2) as depth:
        grep(depth)

    @sync_session_above()
    def decorated() -> int:
        return grep(3)

    assert depth == 2 and decorated() == 3 and decorated() == 3
    parents = [span.parent.span_id for span in otel.spans("execute_tool grep")]
    jobs = otel.spans("invoke_workflow sync-session")
    assert parents == [span.context.span_id for span in [otel.span("invoke_agent strict"), *jobs]]
    assert [span.attributes[semconv.JOB_ROLLUP_TOOL_CALLS] for span in jobs] == [1, 1]


def test_an_agent_context_manager_counts_its_blocks_calls_and_a_block_that_raises_is_its_error(otel: Any) -> None:
    with pytest.raises(KeyError) as raised, reviewing():
        grep(1)
        raise KeyError("review")
    assert isinstance(raised.value, KeyError) and agent_otel.current_job_id() is None
    agent = otel.span("invoke_agent reviewer")
    assert agent.status.status_code is StatusCode.ERROR
    assert otel.span("execute_tool grep").parent.span_id == agent.context.span_id
    assert point(otel, semconv.AGENT_TOOL_CALLS.name).sum == 1


@pytest.mark.parametrize("raises", [False, True], ids=["block returns", "block raises"])
@pytest.mark.parametrize("keeps", ["a span", "an agent_call block"])
@pytest.mark.parametrize("shape", ["contextmanager", "asynccontextmanager"])
def test_an_agent_context_manager_keeping_a_span_current_around_its_yield_gives_the_program_its_context_back(
        otel: Any, shape: str, keeps: str, raises: bool) -> None:
    """A context-manager agent whose body keeps a span (or an ``agent_call()`` block) current around its ``yield``:
    its exit step ran in the call's context attached afresh, so the body's ``with`` exit gave back that one, and the
    program's context stayed on the body's ended span after the ``with`` block: the program's next calls were
    counted for the block and hung under its ended span (before: ``{'kept': 1, 'outer': 0}`` and the outer
    agent's tool under ``inside``)."""
    tracer = otel.tracer_provider.get_tracer("app")

    def keeping() -> contextlib.AbstractContextManager[object]:
        return tracer.start_as_current_span("inside") if keeps == "a span" else agent_otel.agent_call("kept")

    @contextlib.contextmanager
    @agent_otel.agent("kept")
    def sync_block() -> Iterator[None]:
        with keeping():
            yield

    @contextlib.asynccontextmanager
    @agent_otel.agent("kept")
    async def async_block() -> AsyncIterator[None]:
        with keeping():
            yield

    @agent_otel.agent("outer")
    async def outer() -> tuple[bool, bool]:
        before = otel_context.get_current()
        with contextlib.suppress(KeyError):
            if shape == "contextmanager":
                with sync_block():
                    grep(1)
                    if raises:
                        raise KeyError("block")
            else:
                async with async_block():
                    grep(1)
                    if raises:
                        raise KeyError("block")
        restored = otel_context.get_current() is before
        grep(2)
        return restored, otel_context.get_current() is before

    assert asyncio.run(outer()) == (True, True)
    counts = {p.attributes[semconv.GEN_AI_AGENT_NAME]: p.sum for p in otel.points(semconv.AGENT_TOOL_CALLS.name)}
    assert counts == {"kept": 1, "outer": 1}
    first, second = otel.spans("execute_tool grep")
    assert second.parent.span_id == otel.span("invoke_agent outer").context.span_id
    kept = otel.span("inside") if keeps == "a span" else otel.spans("invoke_agent kept")[0]  # (it ended first)
    assert first.parent.span_id == kept.context.span_id


@pytest.mark.parametrize("how", ["its block leaves a span of its own current", "left out of order",
                                 "nine left out of order"])
def test_context_manager_agents_give_the_program_the_context_plain_python_would(otel: Any, how: str) -> None:
    """Where the program's own code leaves the block unbalanced, or leaves two managers out of order (an ``ExitStack``
    closed inside a block entered after it), the context after them is what it would be without agent-otel. Before,
    the block's ended span, or the first manager's ended call, stayed current: the outer agent's next tool call hung
    under it and counted for no agent of the program's."""
    tracer = otel.tracer_provider.get_tracer("app")

    @contextlib.contextmanager
    @agent_otel.agent("first")
    def first() -> Iterator[None]:
        with tracer.start_as_current_span("inside first"):
            yield

    @contextlib.contextmanager
    @agent_otel.agent("second")
    def second() -> Iterator[None]:
        yield

    @agent_otel.agent("outer")
    def outer() -> bool:
        before = otel_context.get_current()
        if how == "left out of order":
            stack = contextlib.ExitStack()
            stack.enter_context(first())
            with second():
                stack.close()
        elif how == "nine left out of order":  # (more than a first version kept aside)
            stack = contextlib.ExitStack()
            for _ in range(9):
                stack.enter_context(second())
            with first():
                stack.close()
        else:
            with first():
                leaked = tracer.start_span("leaked")
                otel_context.attach(trace.set_span_in_context(leaked))  # never detached: the generator's exit undoes it
                leaked.end()
        restored = otel_context.get_current() is before
        grep(1)
        return restored

    assert contextvars.copy_context().run(outer) is True
    counts = {p.attributes[semconv.GEN_AI_AGENT_NAME]: p.sum for p in otel.points(semconv.AGENT_TOOL_CALLS.name)}
    assert counts.get("outer") == 1
    assert otel.span("execute_tool grep").parent.span_id == otel.span("invoke_agent outer").context.span_id


def test_an_async_context_manager_agent_left_in_a_task_made_in_its_block_prints_nothing(
        otel: Any, caplog: pytest.LogCaptureFixture) -> None:
    """``__aexit__`` awaited in a task made inside the block runs in a copy of the block's ``contextvars.Context``,
    where the entry's token cannot be reset: OpenTelemetry logged "Failed to detach context" with a traceback on the
    program's stderr, where plain Python prints nothing. The call still ends with its block."""

    @contextlib.asynccontextmanager
    @agent_otel.agent("handed over")
    async def handed_over() -> AsyncIterator[None]:
        yield

    async def main() -> None:
        manager = handed_over()
        await manager.__aenter__()
        grep(1)
        await asyncio.create_task(manager.__aexit__(None, None, None))

    with caplog.at_level("DEBUG"):
        asyncio.run(main())
    assert [record.getMessage() for record in caplog.records if record.levelname == "ERROR"] == []
    agent = otel.span("invoke_agent handed over")
    assert agent.end_time is not None and agent.status.status_code is not StatusCode.ERROR
    assert otel.span("execute_tool grep").parent.span_id == agent.context.span_id


def test_a_plain_decorated_generators_consumer_runs_outside_its_call(otel: Any) -> None:
    @agent_otel.job(type="producer")
    def produce() -> Iterator[int]:
        yield 1

    consumer_sees = [agent_otel.current_job_id() for _ in produce()]
    assert consumer_sees == [None]  # a consumer's own code is not the generator's call
