"""Config targets that name a job queue's task (Celery's ``@app.task`` and ``@shared_task``, a Dramatiq actor, a huey
task), with the real libraries: a worker runs what the queue's registry holds, never the name the module binds.
Celery's ``Task.apply()`` runs a task through the tracer a worker builds for it (``build_tracer``, which calls the
task's ``run``), in this process."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
import uuid
from pathlib import Path
from typing import Any

from agent_otel._zerocode.patching import entry_errors, instrument, uninstrument
from tests.support.check_output import targets_section
from tests.zerocode.test_check import check, table
from tests.zerocode.test_patching import Package, config, package  # noqa: F401 (the fixture)

TASKS = """
from celery import Celery, shared_task

app = Celery("probe", broker="memory://", backend="cache+memory://")


@app.task
def plan(goal):
    return {"success": goal != "impossible", "goal": goal}


@shared_task
def lookup(key):
    return key.upper()
"""


def _entries(module: str) -> str:
    return f"""
        [[agent]]
        target = "{module}:plan"
        [[tool]]
        target = "{module}:lookup"
    """


def test_a_task_is_recorded_once_however_it_runs_and_wrapping_it_leaves_celery_to_make_it(
        otel: Any, package: Package) -> None:  # noqa: F811
    """The name a module binds was wrapped: a worker, which runs the task from the app's registry, recorded nothing
    (and `check` said ok). Each run is recorded once now: through the registry as a worker runs it, ``delay()`` run
    eagerly, a direct call; the task is made when Celery makes it, not when it is wrapped (a shared task then binds
    to the app that is current)."""
    module = package.write("tasks", TASKS)
    instrument(config(_entries(module)))
    tasks = package.load("tasks")
    assert tasks.plan.__evaluated__() is False  # wrapping it made no task
    app = tasks.app
    app.conf.task_always_eager = True
    registry = app.tasks

    assert registry[f"{module}.plan"].apply(("ship",)).get() == {"success": True, "goal": "ship"}
    assert registry[f"{module}.lookup"].apply(("k",)).get() == "K"
    assert tasks.plan.delay("impossible").get() == {"success": False, "goal": "impossible"}
    assert tasks.plan("direct") == {"success": True, "goal": "direct"}
    assert tasks.lookup("j") == "J"

    spans = otel.spans()
    assert sorted(span.name for span in spans) == ["execute_tool lookup", "execute_tool lookup", "invoke_agent plan",
                                                  "invoke_agent plan", "invoke_agent plan"]
    outcomes = [span.attributes["agent.outcome"] for span in spans if span.name == "invoke_agent plan"]
    assert sorted(outcomes) == ["failure", "success", "success"]
    assert registry[f"{module}.plan"].run.__name__ == "plan"  # the function, as Celery's own introspection reads it


def test_a_task_made_before_it_was_wrapped_is_wrapped_in_place(otel: Any, package: Package) -> None:  # noqa: F811
    """``instrument()`` called after the program made its tasks (the app finalized, the proxy evaluated)."""
    module = package.write("made_first", TASKS)
    tasks = package.load("made_first")
    tasks.app.finalize()
    made = tasks.plan._get_current_object()
    instrument(config(_entries(module)))
    assert made.apply(("now",)).get() == {"success": True, "goal": "now"}
    assert [span.name for span in otel.spans()] == ["invoke_agent plan"]
    uninstrument()
    assert made.apply(("after",)).get() == {"success": True, "goal": "after"}
    assert [span.name for span in otel.spans()] == ["invoke_agent plan"]  # the original back: nothing more


def test_check_says_a_task_is_wrapped_where_a_worker_runs_it(tmp_path: Path) -> None:
    module = "tasks_" + uuid.uuid4().hex[:8]
    (tmp_path / f"{module}.py").write_text(TASKS)
    (tmp_path / "agent-otel.toml").write_text(textwrap.dedent(_entries(module)))
    result = check(tmp_path)
    assert result.returncode == 0, result.stderr
    status = "ok (its run(), wrapped when the app makes the task: what a worker runs)"
    assert targets_section(result.stdout) == [*table(
        (f"{module}:plan", "agent[0]", "Celery task", status),
        (f"{module}:lookup", "tool[0]", "Celery task", status),
    ), f"{tmp_path / 'agent-otel.toml'}: 2 targets, 2 resolved, 0 errors"]


def test_a_worker_under_agent_otel_run_records_the_task_it_runs(tmp_path: Path) -> None:
    """A real worker: ``agent-otel run`` of a program that starts Celery's worker in its own process (solo pool, an
    in-memory broker), sends it a task and prints what the worker recorded, from the console exporter."""
    module = "worker_tasks_" + uuid.uuid4().hex[:8]
    (tmp_path / f"{module}.py").write_text(TASKS)
    (tmp_path / "agent-otel.toml").write_text(textwrap.dedent(_entries(module)))
    (tmp_path / "main.py").write_text(textwrap.dedent(f"""
        import threading
        from {module} import app, plan

        worker = app.Worker(pool="solo", concurrency=1, loglevel="WARNING", without_heartbeat=True,
                            without_mingle=True, without_gossip=True, quiet=True, redirect_stdouts=False)
        threading.Thread(target=worker.start, daemon=True).start()
        print(plan.delay("from a worker").get(timeout=60, disable_sync_subtasks=False))  # (a worker in this process)
    """))
    environment = {"PATH": str(Path(sys.executable).parent), "OTEL_TRACES_EXPORTER": "console",
                   "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none", "HOME": str(tmp_path)}
    done = subprocess.run([str(Path(sys.executable).parent / "agent-otel"), "run", "--", sys.executable, "main.py"],
                          cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "{'success': True, 'goal': 'from a worker'}" in done.stdout.splitlines()
    assert done.stdout.count('"name": "invoke_agent plan"') == 1


MORE_TASKS = """
from celery import Celery, Task
from celery.local import Proxy

app = Celery("more", broker="memory://", backend="cache+memory://")
app.conf.task_always_eager = True
attempts = []


@app.task(autoretry_for=(ValueError,), max_retries=2, retry_backoff=False, default_retry_delay=0)
def flaky(goal):
    attempts.append(goal)
    if len(attempts) < 3:
        raise ValueError("not yet")
    return {"success": True}


def _impl(goal):
    return {"success": True}


renamed = app.task(_impl, name="more.renamed")


class Summarize(Task):
    name = "more.summarize"

    def run(self, text):
        return {"success": True, "text": text[:3]}


summarize = app.register_task(Summarize())


def _make_model():
    return lambda prompt: {"model": "m", "usage": {"prompt_tokens": 1, "completion_tokens": 1}}


complete = Proxy(_make_model)  # a lazily made callable of the program's: no task
"""


def test_tasks_that_retry_by_themselves_are_renamed_class_based_or_re_exported_are_recorded(
        otel: Any, package: Package) -> None:  # noqa: F811
    """A task that retries by itself (``autoretry_for``) ran the class's ``run`` it kept when made (nothing recorded);
    one bound under another name, or re-exported by a package, was never wrapped (keyed by its function's name); a
    class-based task was taken for a task Celery would make later; Celery's ``Proxy`` of a program's callable was taken
    for a task (nothing recorded)."""
    module = package.write("more", MORE_TASKS)
    package.write("__init__", f"from {module} import renamed as exported\n")
    instrument(config(f"""
        [[agent]]
        target = "{module}:flaky"
        [[agent]]
        target = "{package.name}:exported"
        [[agent]]
        target = "{module}:summarize"
        [[provider]]
        target = "{module}:complete"
        provider = "p"
    """))
    more = package.load("more")
    package.load("__init__")
    assert more.flaky.delay("x").get() == {"success": True}
    assert more.app.tasks["more.renamed"].apply(("y",)).get() == {"success": True}
    assert more.app.tasks["more.summarize"].apply(("long text",)).get() == {"success": True, "text": "lon"}
    assert more.complete("hi")["model"] == "m"
    names = sorted(span.name for span in otel.spans())
    # an agent is named after its class by default (Celery names a task's class after its function); a provider's span
    # after the model it was asked for, which this one names nowhere
    assert names == ["chat unknown", "invoke_agent Summarize", "invoke_agent _impl", "invoke_agent flaky",
                     "invoke_agent flaky", "invoke_agent flaky"], names
    assert entry_errors() == {}


def test_a_dotted_target_through_a_task_is_refused_without_making_it(otel: Any, package: Package) -> None:  # noqa: F811
    module = package.write("dotted", TASKS)
    instrument(config(f'[[agent]]\ntarget = "{module}:plan.run"\n'))
    tasks = package.load("dotted")
    assert tasks.plan.__evaluated__() is False
    assert entry_errors() == {f"{module}:plan.run": "plan is a Celery task: name it as 'plan' (its function is "
                                                    "wrapped where it runs)"}


def test_check_reads_a_tasks_options_against_its_function(tmp_path: Path) -> None:
    """`check` said ok to an args path naming no parameter (`run` then refused it), and refused a self path on a bound
    task, whose run takes the task (it works)."""
    module = "checked_" + uuid.uuid4().hex[:8]
    (tmp_path / f"{module}.py").write_text(TASKS + textwrap.dedent("""
        @app.task(bind=True)
        def bound(self, goal):
            return {"success": True}
    """))
    (tmp_path / "agent-otel.toml").write_text(textwrap.dedent(f"""
        [[agent]]
        target = "{module}:plan"
        task_type = {{ path = "args.missing" }}
        [[agent]]
        target = "{module}:bound"
        name = {{ path = "self.name" }}
    """))
    rows = targets_section(check(tmp_path).stdout)
    assert any(row.startswith(f"{module}:plan ") and "has no parameter 'missing'" in row for row in rows), rows
    assert any(row.startswith(f"{module}:bound ") and row.endswith(" ok (its run(), wrapped when the app makes the "
                                                                   "task: what a worker runs)") for row in rows), rows


DRAMATIQ_ACTORS = """
import dramatiq
from dramatiq.brokers.stub import StubBroker

broker = StubBroker()
dramatiq.set_broker(broker)


@dramatiq.actor(max_retries=0)
def add(x, y):
    return x + y
"""


def test_a_dramatiq_actor_is_recorded_where_its_worker_runs_it(otel: Any, package: Package) -> None:  # noqa: F811
    """The module's name of an actor was wrapped; the broker keeps the actor itself, whose function the worker runs:
    nothing it ran was recorded, and `check` said ok. The function the actor holds is wrapped now."""
    import dramatiq

    module = package.write("actors", DRAMATIQ_ACTORS)
    instrument(config(f'[[tool]]\ntarget = "{module}:add"\n'))
    actors = package.load("actors")
    worker = dramatiq.Worker(actors.broker, worker_threads=1)
    worker.start()
    try:
        actors.add.send(1, 2)
        actors.broker.join(actors.add.queue_name)
        worker.join()
    finally:
        worker.stop()
    assert actors.add(2, 3) == 5  # a direct call: the same function
    assert [span.name for span in otel.spans()] == ["execute_tool add", "execute_tool add"]
    uninstrument()
    assert actors.add.fn.__name__ == "add" and not hasattr(actors.add.fn, "__wrapped__")  # put back


PREFECT_TASKS = """
from prefect import flow, task

attempts = {"flaky": 0}


@task(retries=2, retry_delay_seconds=0)
def lookup(query):
    if query == "flaky":
        attempts["flaky"] += 1
        if attempts["flaky"] < 3:
            raise ValueError("transient")
    return query.upper()


@task(cache_key_fn=lambda context, parameters: "always the same")
def cached(query):
    return query.upper()


@flow
def pipeline():
    return (lookup("direct"), lookup.submit("submitted").result(), [f.result() for f in lookup.map(["a", "b"])],
            lookup("flaky"), cached("x"), cached("x"))
"""
#: Runs the flow instrumented by a config, against a temporary Prefect server and database (Prefect's own harness).
RUNS_PREFECT_FLOW = """
import collections, sys
import agent_otel
from agent_otel.testing import capture_telemetry
with capture_telemetry() as otel:
    agent_otel.instrument(agent_otel.load_config(sys.argv[1]))
    import pf_tasks
    from prefect.testing.utilities import prefect_test_harness
    with prefect_test_harness():
        print(pf_tasks.pipeline())
    print(sorted(collections.Counter((span.name, span.attributes.get("error.type") or "") for span in otel.spans()
                                     if span.name.startswith(("execute_tool", "invoke_workflow"))).items()))
"""


def test_prefect_tasks_and_flows_are_recorded_where_prefects_engine_runs_them(tmp_path: Path) -> None:
    """A Prefect task or flow holds its function as ``fn``, which Prefect's engine calls for a call, ``.submit()``,
    ``.map()`` and each retry. The module's name was wrapped: of 7 runs (2 failed attempts among them) 2 were recorded,
    both successes, and a cached result counted as a call; `check` said ok. The function it holds is wrapped now."""
    (tmp_path / "pf_tasks.py").write_text(PREFECT_TASKS)
    (tmp_path / "run.py").write_text(RUNS_PREFECT_FLOW)
    config_file = tmp_path / "agent-otel.toml"
    config_file.write_text('[[tool]]\ntarget = "pf_tasks:lookup"\n\n[[tool]]\ntarget = "pf_tasks:cached"\n\n'
                           '[[job]]\ntarget = "pf_tasks:pipeline"\n')
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OTEL_", "AGENT_OTEL_", "PREFECT_"))}
    env.update(PREFECT_HOME=str(tmp_path / "prefect"), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PYTHONPATH=str(tmp_path))
    done = subprocess.run([sys.executable, str(tmp_path / "run.py"), str(config_file)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines() == [
        "('DIRECT', 'SUBMITTED', ['A', 'B'], 'FLAKY', 'X', 'X')",
        "[(('execute_tool cached', ''), 1), (('execute_tool lookup', ''), 5), "
        "(('execute_tool lookup', 'ValueError'), 2), (('invoke_workflow default', ''), 1)]"]
    checked = check(tmp_path, env={"PREFECT_HOME": env["PREFECT_HOME"], "PYTHONPATH": str(tmp_path)})
    task = "ok (the function it holds as fn: what Prefect's engine (each call, .submit(), .map() and retry) runs)"
    flow = "ok (the function it holds as fn: what Prefect's engine (each call and retry) runs)"
    assert [row.split(None, 2)[2] for row in targets_section(checked.stdout) if row.startswith("pf_tasks:")] == [
        f"Prefect flow  {flow}", f"Prefect task  {task}", f"Prefect task  {task}"]


LANGGRAPH_TASKS = """
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.func import entrypoint, task
from langgraph.types import Command, RetryPolicy, interrupt

attempts = {"write": 0, "flaky": 0}


@task
def write(topic):
    attempts["write"] += 1
    return f"essay about {topic}"


@task(retry_policy=RetryPolicy(max_attempts=3, initial_interval=0.01, retry_on=ValueError))
def flaky(x):
    attempts["flaky"] += 1
    if attempts["flaky"] < 3:
        raise ValueError("transient")
    return x * 2


@entrypoint(checkpointer=InMemorySaver())
def workflow(topic):
    essay = write(topic).result()
    doubled = flaky(21).result()
    return {"essay": essay, "doubled": doubled, "approved": interrupt(essay)}
"""


def test_a_langgraph_task_is_recorded_where_langgraphs_runtime_runs_it(otel: Any, package: Package) -> None:  # noqa: F811
    """A LangGraph ``@task`` holds its function as ``func``, which LangGraph's runtime runs for each attempt; calling
    the task only schedules it, and a run resumed from a checkpoint replays its result without running it. The
    module's name was wrapped: a call was recorded for each scheduling, a replay too, and no failed attempt."""
    from langgraph.types import Command

    module = package.write("essays", LANGGRAPH_TASKS)
    instrument(config(f'[[tool]]\ntarget = ["{module}:write", "{module}:flaky"]\n'))
    essays = package.load("essays")
    thread = {"configurable": {"thread_id": "t1"}}
    assert "__interrupt__" in essays.workflow.invoke("cats", thread)
    assert essays.workflow.invoke(Command(resume="yes"), thread) == {
        "essay": "essay about cats", "doubled": 42, "approved": "yes"}
    assert essays.attempts == {"write": 1, "flaky": 3}  # the resume replayed both results
    assert sorted((span.name, span.attributes.get("error.type", "")) for span in otel.spans()) == [
        ("execute_tool flaky", ""), ("execute_tool flaky", "ValueError"), ("execute_tool flaky", "ValueError"),
        ("execute_tool write", "")]
    uninstrument()
    assert not hasattr(essays.write.func, "__wrapped__")  # put back


def test_a_huey_task_as_a_target_is_refused_saying_why(otel: Any, package: Package) -> None:  # noqa: F811
    """Its consumer runs the function from a closure; the name's wrapper timed only the enqueueing, as the agent's
    call (a task that failed three times read as one success)."""
    module = package.write("hueytasks", "from huey import MemoryHuey\nhuey = MemoryHuey()\n\n@huey.task()\n"
                                        "def add(x, y):\n    return x + y\n")
    instrument(config(f'[[tool]]\ntarget = "{module}:add"\n'))
    package.load("hueytasks")
    [error] = entry_errors().values()
    assert error.startswith("add is a huey task: its consumer runs the function it was made from"), error


def test_a_shared_task_bound_under_another_name_or_re_exported_is_recorded(
        otel: Any, package: Package) -> None:  # noqa: F811
    """A shared task was looked for by the target's module and name, where Celery makes it from its function's: one
    bound under another name, or re-exported by a package, was never wrapped, with no error."""
    module = package.write("shared", """
        from celery import Celery, shared_task

        app = Celery("shared", broker="memory://", backend="cache+memory://")


        def _impl(text):
            return text.upper()


        renamed = shared_task(_impl, name="shared.renamed")


        @shared_task
        def lookup(key):
            return key.lower()
    """)
    package.write("__init__", f"from {module} import lookup as exported\n")
    instrument(config(f"""
        [[tool]]
        target = "{module}:renamed"
        [[tool]]
        target = "{package.name}:exported"
    """))
    shared = package.load("shared")
    package.load("__init__")
    assert shared.app.tasks["shared.renamed"].apply(("a",)).get() == "A"
    assert shared.app.tasks[f"{module}.lookup"].apply(("B",)).get() == "b"
    assert sorted(span.name for span in otel.spans()) == ["execute_tool exported", "execute_tool renamed"]
    assert entry_errors() == {}


def test_check_says_why_when_a_task_cannot_be_read_and_refuses_an_inherited_run(tmp_path: Path) -> None:
    """Making the task (an app that does not finalize by itself) raised out of `check`, with a traceback and no table;
    a class-based task whose run() is its base's was ok to `check` and refused by `run`."""
    module = "unread_" + uuid.uuid4().hex[:8]
    (tmp_path / f"{module}.py").write_text(textwrap.dedent("""
        from celery import Celery, Task

        app = Celery("unread", broker="memory://", autofinalize=False)


        @app.task
        def plan(goal):
            return goal


        class Base(Task):
            def run(self, text):
                return text


        class Sub(Base):
            name = "unread.sub"


        sub = Celery("other", broker="memory://").register_task(Sub())
    """))
    (tmp_path / "agent-otel.toml").write_text(f'[[agent]]\ntarget = "{module}:plan"\n'
                                              f'[[tool]]\ntarget = "{module}:sub"\n')
    result = check(tmp_path)
    rows = targets_section(result.stdout)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert any(row.startswith(f"{module}:plan ") and "its options not read against it, as Celery cannot make it "
               "here: RuntimeError: Contract breach: app not finalized" in row for row in rows), rows
    assert any(row.startswith(f"{module}:sub ") and "Celery task Sub has no run() of its own" in row
               for row in rows), rows


def test_a_shared_task_made_before_instrument_is_wrapped_in_place(otel: Any, package: Package) -> None:  # noqa: F811
    """``instrument()`` called after the apps made their shared tasks (a worker's own call, once its app finalized):
    they were found only as Celery made them, and so never. The apps finalized already are looked in."""
    module = package.write("shared_first", """
        from celery import Celery, shared_task

        app = Celery("shared_first", broker="memory://", backend="cache+memory://")


        @shared_task
        def lookup(key):
            return key.lower()
    """)
    tasks = package.load("shared_first")
    tasks.app.finalize()
    instrument(config(f'[[tool]]\ntarget = "{module}:lookup"\n'))
    assert tasks.app.tasks[f"{module}.lookup"].apply(("K",)).get() == "k"
    assert [span.name for span in otel.spans()] == ["execute_tool lookup"]
    assert entry_errors() == {}


RAY_TASKS = """
import ray

import agent_otel


@ray.remote
def lookup(key):
    return key.upper()


@ray.remote
def nested(key):
    return ray.get(lookup.remote(key)) + "!"


@ray.remote
@agent_otel.tool("decorated")
def decorated(x):
    return x * 2


@ray.remote
def chunks(n):
    yield from range(n)


@ray.remote
class Counter:
    def add(self, x):
        return x + 1
"""
#: Runs the tasks on a local Ray instance, then ends it as a job does (``ray.shutdown()``: its workers end with no exit
#: hook) once the test has read the line it waits for; the driver's own telemetry is none of Ray's workers'.
RUNS_RAY = """
import sys
import ray
import ray_tasks
ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
print(ray.get([ray_tasks.lookup.remote("a"), ray_tasks.nested.remote("b"), ray_tasks.decorated.remote(21),
               ray_tasks.lookup.options(max_retries=0).remote("c")]), flush=True)
sys.stdin.readline()
ray.shutdown()
"""


def test_ray_remote_functions_are_recorded_in_the_workers_that_run_them(tmp_path: Path) -> None:
    """A config target naming a ``@ray.remote`` function wrapped the module's name, which Ray's workers never call:
    they run the function it holds, pickled by value (cloudpickle, which pickled a wrapt proxy of the function as the
    function under it); `check` said ok and nothing was recorded. And a Ray worker ends with no exit hook as the
    driver leaves: what it recorded since its last periodic export (every span of a short job) was lost, decorated
    functions' too. The held function is wrapped as a plain function now, and a worker exports as soon as no call of
    ours runs in it. A generator remote function and an actor class are refused, saying what to do."""
    from tests.support.otlp_receiver import OtlpHttpReceiver
    from tests.support.polling import wait_until

    (tmp_path / "ray_tasks.py").write_text(RAY_TASKS)
    (tmp_path / "run.py").write_text(RUNS_RAY)
    (tmp_path / "agent-otel.toml").write_text('[[tool]]\ntarget = "ray_tasks:lookup"\n')
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OTEL_", "AGENT_OTEL_", "RAY_"))}
    # (Ray's session directory holds its sockets, whose paths must stay under 108 bytes: not under pytest's tmp_path)
    with OtlpHttpReceiver() as receiver, tempfile.TemporaryDirectory(prefix="ray", dir="/tmp") as ray_dir:
        env.update(XDG_CACHE_HOME=str(tmp_path / "cache"), PYTHONPATH=str(tmp_path), RAY_TMPDIR=ray_dir,
                   OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
                   OTEL_TRACES_EXPORTER="otlp", OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none",
                   OTEL_BSP_SCHEDULE_DELAY="3600000", RAY_USAGE_STATS_ENABLED="0")
        driver = subprocess.Popen([str(Path(sys.executable).parent / "agent-otel"), "run", "--", sys.executable,
                                   "run.py"], cwd=tmp_path, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        try:
            assert driver.stdout is not None and driver.stdout.readline() == "['A', 'B!', 42, 'C']\n"
            # the workers export as their last call ends, the tasks not waiting for it: before the driver's
            # ray.shutdown() ends them (with no exit hook) and without their periodic export (an hour away)
            tools = lambda: sorted(span.name for span in receiver.spans() if span.name.startswith("execute_tool"))  # noqa: E731
            wait_until(lambda: len(tools()) >= 4, "the workers' 4 spans")  # (the driver's own: Ray's HTTP requests)
            assert tools() == [
                "execute_tool decorated", "execute_tool lookup", "execute_tool lookup", "execute_tool lookup"]
        finally:
            _, stderr = driver.communicate("go\n", timeout=300)
        assert driver.returncode == 0, stderr[-3000:]
    (tmp_path / "agent-otel.toml").write_text('[[tool]]\ntarget = "ray_tasks:lookup"\n\n[[tool]]\ntarget = '
                                              '"ray_tasks:chunks"\n\n[[agent]]\ntarget = "ray_tasks:Counter.add"\n')
    checked = check(tmp_path, env={"PYTHONPATH": str(tmp_path), "RAY_USAGE_STATS_ENABLED": "0"})
    rows = {row.split()[0]: row.split(None, 2)[2] for row in targets_section(checked.stdout)
            if row.startswith("ray_tasks:")}
    assert rows["ray_tasks:lookup"] == ("Ray remote function  ok (the function it holds as _function: what Ray's "
                                        "workers (each task and retry) runs)")
    assert rows["ray_tasks:chunks"].startswith("-") and "no plain sync function" in rows["ray_tasks:chunks"]
    assert "Counter is a Ray actor class" in rows["ray_tasks:Counter.add"]
