"""Config targets that name a Celery task (``@app.task``, ``@shared_task``), with the real Celery: a worker runs the
task the app made, from its registry, never the name the module binds. ``Task.apply()`` runs a task through the tracer
a worker builds for it (``build_tracer``, which calls the task's ``run``), in this process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

from agent_otel._zerocode.patching import instrument, uninstrument
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
