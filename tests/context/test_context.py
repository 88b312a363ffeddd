"""The job id and parent span arrive unchanged wherever a job's work goes."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import multiprocessing.pool
import subprocess
import sys
import textwrap
import threading
import urllib.request
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace

import agent_otel
from agent_otel import semconv
from agent_otel._engine.instruments import runtime
from tests.support.carrier_targets import (
    VIEWING_PROCESSES,
    RunNamedOtherwise,
    RunStatic,
    ViewManager,
    child_agent,
    child_phase,
    child_view,
    child_view_to_queue,
    wait_for_file,
)
from tests.support.environment import CLEAN_ENV


def current_ids() -> tuple[str, str]:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


def test_job_context_manager_sets_id_span_and_fresh_ids(otel: Any) -> None:
    with agent_otel.job("job-42", type="nightly-evolution", team="core") as j:
        assert agent_otel.current_job_id() == "job-42" == j.id
        runtime().tracer.start_span("inner").end()
    with agent_otel.job() as fresh:
        generated = fresh.id
    assert generated and len(generated) == 32 and generated != "job-42"
    assert agent_otel.current_job_id() is None
    span = otel.spans("invoke_workflow nightly-evolution")[0]
    assert span.attributes[semconv.JOB_ID] == "job-42"
    assert span.attributes[semconv.JOB_TYPE] == "nightly-evolution"
    assert span.attributes["team"] == "core"
    assert otel.span("inner").attributes[semconv.JOB_ID] == "job-42"
    assert otel.span("inner").parent.span_id == span.context.span_id


def test_nested_jobs_inner_wins_outer_returns(otel: Any) -> None:
    with agent_otel.job("outer"):
        with agent_otel.job("inner"):
            assert agent_otel.current_job_id() == "inner"
            runtime().tracer.start_span("in inner").end()
        assert agent_otel.current_job_id() == "outer"
        runtime().tracer.start_span("in outer").end()
    assert otel.span("in inner").attributes[semconv.JOB_ID] == "inner"
    assert otel.span("in outer").attributes[semconv.JOB_ID] == "outer"
    ids = sorted(s.attributes[semconv.JOB_ID] for s in otel.spans("invoke_workflow default"))
    assert ids == ["inner", "outer"]


def test_a_call_counts_toward_its_innermost_job_only_so_nested_jobs_add_up(otel: Any) -> None:
    @agent_otel.provider("openai", model="gpt-4o")
    def complete() -> dict[str, Any]:
        return {"usage": {"input_tokens": 1000, "output_tokens": 100}}

    with agent_otel.job("outer", type="outer"):
        complete()
        with agent_otel.job("inner", type="inner"):
            complete()
            complete()
    rolled = {span.attributes[semconv.JOB_ID]: span.attributes[semconv.JOB_ROLLUP_INPUT_TOKENS]
              for span in otel.spans() if span.name.startswith("invoke_workflow")}
    assert rolled == {"outer": 1000, "inner": 2000}
    costs = {point.attributes[semconv.JOB_TYPE]: point.sum for point in otel.points(semconv.JOB_COST.name)}
    assert costs["inner"] == pytest.approx(2 * costs["outer"])


def test_job_decorator_sync_async_and_extractor(otel: Any) -> None:
    @agent_otel.job(type="sync")
    def run_sync() -> str | None:
        return agent_otel.current_job_id()

    @agent_otel.job("fixed", type="async")
    async def run_async() -> str | None:
        await asyncio.sleep(0)
        return agent_otel.current_job_id()

    class Runner:
        def __init__(self, job_id: str) -> None:
            self.job_id = job_id

        @agent_otel.job(agent_otel.path("self.job_id"), type=agent_otel.path("args.kind"))
        def run(self, kind: str) -> str | None:
            return agent_otel.current_job_id()

    first, second = run_sync(), run_sync()
    assert first and second and first != second  # each call is its own job
    assert asyncio.run(run_async()) == "fixed"
    assert Runner("from-self").run("nightly") == "from-self"
    assert otel.span("invoke_workflow nightly").attributes[semconv.JOB_ID] == "from-self"

    async def with_async_cm() -> str | None:
        async with agent_otel.job("acm"):
            await asyncio.sleep(0)
            return agent_otel.current_job_id()

    assert asyncio.run(with_async_cm()) == "acm"


def test_job_outcome_and_duration_metric_never_carry_the_id(otel: Any) -> None:
    with pytest.raises(RuntimeError), agent_otel.job("bad", type="t"):
        raise RuntimeError("x")
    with agent_otel.job("ok", type="t"):
        pass
    with agent_otel.job("explicit", type="t") as j:
        j.set_outcome("failure")
    points = {p.attributes[semconv.JOB_OUTCOME]: p for p in otel.points(semconv.JOB_DURATION.name)}
    assert set(points) == {"error", "success", "failure"}
    for point in points.values():
        assert set(point.attributes) == {semconv.JOB_TYPE, semconv.JOB_OUTCOME}
        assert point.count == 1
        assert list(point.explicit_bounds) == list(semconv.LONG_DURATION_BUCKETS)
    assert otel.metrics()[semconv.JOB_DURATION.name].unit == "s"


def test_threads_and_thread_pools_per_submit(otel: Any) -> None:
    seen: dict[str, Any] = {}

    def record(key: str) -> None:
        seen[key] = (agent_otel.current_job_id(), current_ids())

    pool = ThreadPoolExecutor(2)  # created outside any job: the context travels per submit
    with agent_otel.job("job-a"):
        expected_a = current_ids()
        thread = threading.Thread(target=record, args=("thread",))
        thread.start()
        thread.join()
        pool.submit(record, "pool-a").result()
    with agent_otel.job("job-b"):
        expected_b = current_ids()
        pool.submit(record, "pool-b").result()
    pool.shutdown()
    assert seen["thread"] == ("job-a", expected_a)
    assert seen["pool-a"] == ("job-a", expected_a)
    assert seen["pool-b"] == ("job-b", expected_b)


def test_a_thread_pool_task_takes_keywords_named_as_the_carriers_own(otel: Any) -> None:
    """Prefect submits its tasks' functions with ``context=``: the carrier that runs a pool's task in its submit's
    context took it as its own parameter (``TypeError: got multiple values for argument 'context'``) once it stood in
    for the threading instrumentation's wrapper of every task (its parameters are positional only now)."""
    def task(context: int, inside: int, func: int) -> tuple[int, int, int, str | None]:
        return context, inside, func, agent_otel.current_job_id()

    with ThreadPoolExecutor(1) as pool:
        @agent_otel.agent("planner")
        def plan() -> tuple[int, int, int, str | None]:
            return pool.submit(task, context=1, inside=2, func=3).result()

        assert pool.submit(task, context=1, inside=2, func=3).result() == (1, 2, 3, None)
        with agent_otel.job("job-k"):
            assert plan() == (1, 2, 3, "job-k")


def test_asyncio_tasks_and_to_thread(otel: Any) -> None:
    async def one(job_id: str) -> tuple:
        with agent_otel.job(job_id):
            expected = current_ids()
            in_task = await asyncio.create_task(asyncio.sleep(0, result=agent_otel.current_job_id()))
            in_thread = await asyncio.to_thread(lambda: (agent_otel.current_job_id(), current_ids()))
            return expected, in_task, in_thread

    async def main() -> list:
        return await asyncio.gather(*(one(f"job-{i}") for i in range(20)))

    for i, (expected, in_task, in_thread) in enumerate(asyncio.run(main())):
        assert in_task == f"job-{i}"
        assert in_thread == (f"job-{i}", expected)


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_process_pool_executor(otel: Any, method: str) -> None:
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context(method)) as pool:
        with agent_otel.job(f"pp-{method}"):
            trace_id, span_id = current_ids()
            view = pool.submit(child_view, method).result(timeout=120)
        outside = pool.submit(child_view).result(timeout=120)
    assert view == {"job": f"pp-{method}", "trace_id": trace_id, "parent_span_id": span_id}
    assert outside["job"] is None and outside["parent_span_id"] is None  # nothing leaks between submits


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_a_process_pools_task_runs_under_the_agent_that_submitted_it(otel: Any, method: str) -> None:
    """Its tool and model calls are that agent's, as in a thread (``gen_ai.agent.name``, cost by agent and
    version). Before, only the trace context and the baggage crossed: the agent was None in the child."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context(method)) as pool:
        @agent_otel.agent("planner", version="v7")
        def plan() -> Any:
            return pool.submit(child_agent).result(timeout=120)

        assert plan() == ("planner", "v7")
        assert pool.submit(child_agent).result(timeout=120) == (None, None)  # nothing leaks between submits


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_a_process_pools_task_runs_in_the_phase_that_submitted_it_unnumbered(otel: Any, method: str) -> None:
    """openevolve runs every model, evaluator and agent call of its ``evolve`` phase in a process pool: none had the
    phase label. The name crosses; the step numbers are the parent's count, so the child's calls have none."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context(method)) as pool:
        with agent_otel.phase("evolve"):
            inside = pool.submit(child_phase).result(timeout=120)
        assert inside == ("evolve", None)
        assert pool.submit(child_phase).result(timeout=120) == (None, None)  # nothing leaks between submits


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_multiprocessing_pool_tasks_carry_the_context_of_each_call(otel: Any, method: str) -> None:
    """Its workers start with the pool, before the job: each task carries its own call's context (apply goes
    through apply_async, starmap through the map machinery)."""
    with multiprocessing.get_context(method).Pool(1) as pool:
        with agent_otel.job(f"pool-{method}"):
            trace_id, span_id = current_ids()
            views = [pool.apply(child_view, (method,)), pool.apply_async(func=child_view).get(120),
                     *pool.map(child_view, [method]), *pool.imap_unordered(child_view, [method]),
                     *pool.starmap(child_view, [(method,)]), *pool.map_async(child_view, [method]).get(120)]
        outside = pool.apply(child_view)
    assert [(view["job"], view["trace_id"], view["parent_span_id"]) for view in views] == [
        (f"pool-{method}", trace_id, span_id)] * 6
    assert outside["job"] is None and outside["parent_span_id"] is None  # nothing leaks between tasks


def test_a_process_pools_done_callbacks_run_in_no_job_of_the_submit_that_started_its_manager_thread(
        otel: Any, tmp_path: Path) -> None:
    """A ``ProcessPoolExecutor`` starts the thread that runs every future's done callbacks at its first submit:
    the callbacks of later jobs' futures ran in that first job (its id, under its ended span, counted in its
    written roll-up). As under plain python, they run in no job, as a ``ThreadPoolExecutor``'s do."""
    gate = tmp_path / "gate"
    seen: list[str | None] = []
    done = threading.Event()
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
        with agent_otel.job("first"):
            pool.submit(child_view).result(timeout=120)  # starts the manager thread
        with agent_otel.job("later"):
            future = pool.submit(wait_for_file, str(gate))  # running until the callback is in place
            future.add_done_callback(lambda _: (seen.append(agent_otel.current_job_id()), done.set()))
            gate.touch()
            assert done.wait(120)
    assert seen == [None]


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_a_managers_server_serves_every_caller_in_no_job_of_the_one_it_was_started_in(otel: Any,
                                                                                      method: str) -> None:
    """Its server process serves every caller of its proxies, whose calls carry no context: it ran all of them
    in the job it was started in."""
    manager = ViewManager(ctx=multiprocessing.get_context(method))
    with agent_otel.job("starter"):
        manager.start()
    try:
        view = manager.JobView()  # type: ignore[attr-defined]  # registered at run time
        with agent_otel.job("caller"):
            in_a_job = view.job()
        outside = view.job()
    finally:
        manager.shutdown()
    assert (in_a_job, outside) == (None, None)


def test_a_thread_pools_tasks_run_in_the_context_of_their_call_and_count_toward_its_job(otel: Any) -> None:
    @agent_otel.tool("lookup")
    def lookup(_: int) -> str | None:
        return agent_otel.current_job_id()

    with multiprocessing.pool.ThreadPool(2) as pool, agent_otel.job("threads", type="pooled"):
        seen = [*pool.map(lookup, range(3)), pool.apply(lookup, (3,))]
    assert seen == ["threads"] * 4
    assert otel.span(semconv.job_span_name("pooled")).attributes[semconv.JOB_ROLLUP_TOOL_CALLS] == 4


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_multiprocessing_process(otel: Any, method: str) -> None:
    mp = multiprocessing.get_context(method)
    queue = mp.Queue()
    with agent_otel.job(f"mp-{method}"):
        trace_id, span_id = current_ids()
        process = mp.Process(target=child_view_to_queue, args=(queue, method))
        process.start()
    view = queue.get(timeout=120)
    process.join(timeout=120)
    assert process.exitcode == 0
    assert view == {"job": f"mp-{method}", "trace_id": trace_id, "parent_span_id": span_id}


@pytest.mark.parametrize("method", ["spawn", "fork", "forkserver"])
def test_a_process_whose_class_overrides_run_runs_in_the_context_it_was_started_in(otel: Any, method: str) -> None:
    """It has no target to carry the context: before, a spawned or forkserver one saw no job and no parent span
    (a forked one inherited them). The program's object is as it was once started, in the parent and in the child
    (where the carried ``run`` stayed among its attributes)."""
    queue = multiprocessing.get_context(method).Queue()
    with agent_otel.job(f"run-{method}"):
        trace_id, span_id = current_ids()
        process = VIEWING_PROCESSES[method](queue)
        process.start()
    assert "run" not in vars(process)
    view = queue.get(timeout=120)
    process.join(timeout=120)
    assert process.exitcode == 0
    assert "run" not in view.pop("own attributes")
    assert view == {"job": f"run-{method}", "trace_id": trace_id, "parent_span_id": span_id}


def test_a_process_whose_run_is_no_method_of_that_name_starts_as_plain(otel: Any) -> None:
    """``run = some_function`` in the class body, or a static method: carried, spawn pickled it under the function's
    name, which the object lacks (the child failed with AttributeError), or could not pickle it (``start()``
    raised). Plain python never pickles ``run``: it is left as it is."""
    with agent_otel.job("J"):
        processes = [RunNamedOtherwise(), RunStatic()]
        for process in processes:
            process.start()
    for process in processes:
        process.join(timeout=120)
    assert [process.exitcode for process in processes] == [0, 0]


def test_subprocess_environment_carrier(otel: Any) -> None:
    code = textwrap.dedent("""
        import json, os, agent_otel
        from opentelemetry import trace
        agent_otel.configure(metrics_exporter="none", system_metrics=False)
        ctx = trace.get_current_span().get_span_context()
        print(json.dumps({"job": agent_otel.current_job_id(), "trace_id": format(ctx.trace_id, "032x"),
                          "parent_span_id": format(ctx.span_id, "016x"), "has_env": "TRACEPARENT" in os.environ}))
        agent_otel.shutdown()
    """)
    with agent_otel.job("sub-1"):
        trace_id, span_id = current_ids()
        out = subprocess.run([sys.executable, "-c", code], env=CLEAN_ENV, capture_output=True, text=True,
                             timeout=120, check=True).stdout
        explicit_env = agent_otel.subprocess_env({"PATH": "/usr/bin"})
    assert json.loads(out) == {"job": "sub-1", "trace_id": trace_id, "parent_span_id": span_id, "has_env": True}
    assert explicit_env["PATH"] == "/usr/bin"
    assert explicit_env["TRACEPARENT"].split("-")[1:3] == [trace_id, span_id]
    assert "job.id=sub-1" in explicit_env["BAGGAGE"]
    plain = subprocess.run([sys.executable, "-c", "import os; print('TRACEPARENT' in os.environ)"],
                           env=CLEAN_ENV, capture_output=True, text=True, timeout=60).stdout
    assert plain.strip() == "False"  # outside a job or span nothing is added


def test_http_headers_inject_and_extract(otel: Any) -> None:
    received: dict[str, Any] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with agent_otel.attached(dict(self.headers)):
                received["job"] = agent_otel.current_job_id()
                runtime().tracer.start_span("server side").end()
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with agent_otel.job("http-job"):
            client_span = runtime().tracer.start_span("client call")
            with trace.use_span(client_span, end_on_exit=True):
                headers = agent_otel.inject({})
                request = urllib.request.Request(f"http://127.0.0.1:{server.server_address[1]}/", headers=headers)
                urllib.request.urlopen(request, timeout=10).read()
    finally:
        server.shutdown()
        server.server_close()
    assert "traceparent" in headers and "job.id=http-job" in headers["baggage"]
    assert received["job"] == "http-job"
    server_span = otel.span("server side")
    assert server_span.attributes[semconv.JOB_ID] == "http-job"
    assert server_span.parent.span_id == otel.span("client call").context.span_id


def test_rollups_count_work_from_threads(otel: Any) -> None:
    with agent_otel.job("rollup") as j:
        from agent_otel._context.job import current_job

        state = current_job()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda _: current_job().add(agent_calls=1, input_tokens=10, cost=0.5), range(8)))
        assert state is not None and j.id == "rollup"
    span = otel.span("invoke_workflow default")
    assert span.attributes[semconv.JOB_ROLLUP_AGENT_CALLS] == 8
    assert span.attributes[semconv.JOB_ROLLUP_INPUT_TOKENS] == 80
    assert span.attributes[semconv.JOB_ROLLUP_COST] == 4.0


def test_a_subprocess_environment_that_is_no_mapping_is_a_clear_type_error() -> None:
    """``subprocess_env(5)`` raised "'int' object is not iterable", naming neither the function nor the argument."""
    with pytest.raises(TypeError, match=r"^subprocess_env\(\): env must map variable names to values, not int$"):
        agent_otel.subprocess_env(5)  # type: ignore[arg-type]


_STARTERS = {
    "os.execv": "os.execv(sys.executable, [sys.executable, '-c', SHOW])",
    "os.execl": "os.execl(sys.executable, sys.executable, '-c', SHOW)",
    "os.spawnv": "os.spawnv(os.P_WAIT, sys.executable, [sys.executable, '-c', SHOW])",
    "os.posix_spawn": "os.waitpid(os.posix_spawn(sys.executable, [sys.executable, '-c', SHOW], os.environ), 0)",
}


@pytest.mark.parametrize("starter", list(_STARTERS))
def test_a_program_exec_or_spawn_starts_continues_the_job_and_trace(starter: str) -> None:
    """Only ``subprocess.Popen`` carried ``TRACEPARENT``/``BAGGAGE``: a program ``os.exec*`` replaced this one with,
    or one ``os.spawnv``/``os.posix_spawn`` started, began a trace of its own in no job. And the spans this process
    ended before an exec were lost with its queue (no exit flush runs)."""
    code = textwrap.dedent(f"""
        import os, sys, agent_otel
        SHOW = "import os; print('child', os.environ.get('TRACEPARENT', '-'), os.environ.get('BAGGAGE', '-'))"
        agent_otel.configure(traces_exporter="console", metrics_exporter="none", system_metrics=False)

        @agent_otel.tool("before")
        def before():
            return 1

        with agent_otel.job("exec-job"):
            before()
            sys.stdout.flush()
            {_STARTERS[starter]}
    """)
    done = subprocess.run([sys.executable, "-c", code], env=CLEAN_ENV, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    child = [line for line in done.stdout.splitlines() if line.startswith("child ")]
    assert len(child) == 1, done.stdout
    _, traceparent, carried = child[0].split(" ", 2)
    assert traceparent != "-" and "job.id=exec-job" in carried.split(",")
    if starter.startswith("os.exec"):  # the tool's span, ended before the exec, was exported first
        assert '"name": "execute_tool before"' in done.stdout.split("child ")[0]


def test_a_subprocess_uvloop_starts_continues_the_job_and_trace_and_uninstrumenting_gives_its_methods_back() -> None:
    """uvloop starts the child of ``asyncio.create_subprocess_exec`` and ``_shell`` through libuv, not
    ``subprocess.Popen``: the child began a trace of its own in no job. Its loop's methods, its compiled base
    class's, are wrapped on the class uvloop makes its loops of, and taken off it again."""
    code = textwrap.dedent("""
        import asyncio, os, sys, uvloop, agent_otel
        SHOW = "import os; print(os.environ.get('TRACEPARENT', '-'), os.environ.get('BAGGAGE', '-'))"

        async def main():
            shown = []
            with agent_otel.job("uvloop-job"):
                for started in (asyncio.create_subprocess_exec(sys.executable, "-c", SHOW, stdout=-1, env=None),
                                asyncio.create_subprocess_shell(f'"{sys.executable}" -c "{SHOW}"', stdout=-1,
                                                                env={**os.environ, "OWN": "1"})):
                    child = await started
                    shown.append((await child.communicate())[0].decode().split())
            return shown

        agent_otel.configure(traces_exporter="none", metrics_exporter="none", system_metrics=False)
        for traceparent, carried in uvloop.run(main()):
            print(traceparent != "-", "job.id=uvloop-job" in carried.split(","))
        agent_otel.shutdown()
        print("subprocess_exec" in vars(uvloop.Loop), uvloop.Loop.subprocess_exec is uvloop.loop.Loop.subprocess_exec)
    """)
    done = subprocess.run([sys.executable, "-c", code], env=CLEAN_ENV, capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines() == ["True True", "True True", "False True"]


class _EnvironmentView:
    """What some programs pass as ``env=``: no Mapping, but with the ``items()`` subprocess reads."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def items(self) -> Any:
        return self.values.items()


#: What ``subprocess.run`` of ``print('ran')`` with such an ``env=`` gives without agent-otel: 3.13's Popen starts the
#: child with ``os.posix_spawn``, which takes a mapping only
_VIEWED_WITHOUT_AGENT_OTEL: tuple[object, ...] = (
    (0, "ran\n", "") if sys.version_info < (3, 13)
    else ("TypeError", "posix_spawn: environment must be a mapping object or None"))


def _outcome(run: Callable[[], subprocess.CompletedProcess[str]]) -> tuple[object, ...]:
    try:
        done = run()
    except TypeError as error:
        return ("TypeError", str(error))
    return (done.returncode, done.stdout, done.stderr)


_PRINT_CARRIER = ("import json, os; print(json.dumps({k.decode(): v.decode() for k, v in os.environb.items() "
                  "if k in (b'BAGGAGE', b'TRACEPARENT', b'TRACESTATE')}))")


def _child_carrier(env: Any) -> dict[str, str]:
    """The carrier variables a python child started with ``env`` sees, its ``TRACEPARENT`` as (trace id, parent id)."""
    out = subprocess.run([sys.executable, "-c", _PRINT_CARRIER], env=env, capture_output=True, text=True, timeout=60,
                         check=True).stdout
    seen = json.loads(out)
    if "TRACEPARENT" in seen:
        seen["TRACEPARENT"] = "-".join(seen["TRACEPARENT"].split("-")[1:3])
    return seen


def test_a_childs_environment_the_program_gives_keeps_its_members_and_gets_the_jobs(otel: Any) -> None:
    """``env=`` given by the program: its ``BAGGAGE`` members were replaced by the job's (the HTTP carrier keeps them),
    its ``TRACESTATE`` stayed beside a ``TRACEPARENT`` of another trace, an environment with names in bytes got each
    variable twice (the child read the program's), and one that is no mapping made ``Popen`` raise our TypeError."""
    base = {key: value for key, value in CLEAN_ENV.items() if key not in ("BAGGAGE", "TRACEPARENT", "TRACESTATE")}
    with agent_otel.job("J", type="batch"):
        trace_id, span_id = current_ids()
        given = _child_carrier({**base, "BAGGAGE": "tenant=acme,region=eu", "TRACESTATE": "vendor=abc"})
        in_bytes = _child_carrier({**{key.encode(): value.encode() for key, value in base.items()},
                                   b"BAGGAGE": b"tenant=acme"})
        viewed = _outcome(lambda: subprocess.run([sys.executable, "-c", "print('ran')"],
                                                 env=_EnvironmentView(dict(base)), capture_output=True, text=True,
                                                 timeout=60))
        not_utf8 = subprocess.run([sys.executable, "-c", "import os; print(os.environb[b'BAGGAGE'])"],
                                  env={**{key.encode(): value.encode() for key, value in base.items()},
                                       b"BAGGAGE": b"tenant=caf\xe9"}, capture_output=True, text=True, timeout=60)
    with otel.tracer_provider.get_tracer("host").start_as_current_span("own"):  # a trace to carry, no baggage
        span_only = _child_carrier({**base, "BAGGAGE": "tenant=acme", "TRACESTATE": "vendor=abc"})
    ours = f"{semconv.BAGGAGE_JOB_ID}=J,{semconv.BAGGAGE_JOB_TYPE}=batch"
    assert given == {"BAGGAGE": f"tenant=acme,region=eu,{ours}", "TRACEPARENT": f"{trace_id}-{span_id}"}
    assert in_bytes == {"BAGGAGE": f"tenant=acme,{ours}", "TRACEPARENT": f"{trace_id}-{span_id}"}
    assert viewed == _VIEWED_WITHOUT_AGENT_OTEL
    # its bytes as they were, the job's beside them (merging raised, and the child lost its job and trace)
    assert not_utf8.stdout == f"b'tenant=caf\\xe9,{ours}'\n"
    assert span_only["BAGGAGE"] == "tenant=acme"  # the program's, with no baggage of ours to merge (it was deleted)
    assert "TRACESTATE" not in span_only  # another trace's


def test_an_environment_baggage_that_is_no_utf8_leaves_the_program_running() -> None:
    """``configure()`` raised UnicodeEncodeError from the propagator reading it, and ``agent-otel run`` never started
    the program. The member that is no UTF-8 is left out (counted), and the caller's job and trace are read."""
    env = {**{key.encode(): value.encode() for key, value in CLEAN_ENV.items()},
           b"BAGGAGE": f"tenant=caf\udce9,{semconv.BAGGAGE_JOB_ID}=J7".encode(errors="surrogateescape"),
           b"TRACEPARENT": b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
           b"OTEL_TRACES_EXPORTER": b"none", b"OTEL_METRICS_EXPORTER": b"none"}
    code = ("import agent_otel; from opentelemetry import trace; agent_otel.configure(); "
            "print(agent_otel.current_job_id(), format(trace.get_current_span().get_span_context().trace_id, '032x'))")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout) == (0, "J7 0af7651916cd43dd8448eb211c80319c\n")
