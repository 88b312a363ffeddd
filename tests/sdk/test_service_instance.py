"""``service.instance.id``: every configured process has its own, so processes of one service never share a
series identity behind a Collector (its Prometheus exporter makes ``instance`` of it); the host's own value wins
in the process it was chosen for, with the pid appended in every other one (a forked child, a multiprocessing
worker, a Python process started by ``subprocess``).

Whatever sets OTel's process-global providers runs in a child interpreter, so tests stay independent.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

from tests.support.environment import CLEAN_ENV
from tests.support.paths import ROOT

#: Prints the service.instance.id of the providers configure() built, then forks once and prints the
#: child's (after its fork handler set it up again), as JSON lines. Extra configure() arguments: CONFIGURE.
PROGRAM = """
    import json, os, sys
    import agent_otel
    from opentelemetry.sdk.resources import Resource
    from agent_otel._sdk.configure import current_telemetry

    def ids():
        telemetry = current_telemetry()
        return {"traces": telemetry.tracer_provider.resource.attributes.get("service.instance.id"),
                "metrics": telemetry.meter_provider._sdk_config.resource.attributes.get("service.instance.id"),
                "service": telemetry.tracer_provider.resource.attributes.get("service.name"),
                "pid": telemetry.tracer_provider.resource.attributes.get("process.pid"),
                "parent_pid": telemetry.tracer_provider.resource.attributes.get("process.parent_pid")}

    agent_otel.configure(service_name="svc", metrics_exporter="none", system_metrics=False, CONFIGURE)
    print(json.dumps(ids()), flush=True)
    pid = os.fork()
    if pid == 0:
        print(json.dumps(ids()), flush=True)
        os._exit(0)
    assert os.waitpid(pid, 0)[1] == 0
"""


def ids_of(configure: str = "", **env: str) -> tuple[dict[str, str], dict[str, str]]:
    """The (parent, forked child) ids of one configured process."""
    code = textwrap.dedent(PROGRAM).replace(", CONFIGURE", f", {configure}" if configure else "")
    child = subprocess.run([sys.executable, "-c", code], env={**CLEAN_ENV, **env}, cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr
    parent, forked = (json.loads(line) for line in child.stdout.strip().splitlines())
    return parent, forked


def test_each_process_gets_a_fresh_uuid_on_traces_and_metrics() -> None:
    first, _ = ids_of()
    second, _ = ids_of()
    assert first["traces"] == first["metrics"]
    assert uuid.UUID(first["traces"]).version == 4  # the resource-detector convention: a random UUID
    assert first["traces"] != second["traces"]  # two processes of one service: two instances
    assert first["service"] == second["service"] == "svc"


def test_a_forked_child_gets_its_own_id() -> None:
    parent, forked = ids_of()
    assert forked["traces"] == forked["metrics"]
    assert uuid.UUID(forked["traces"]).version == 4
    assert forked["traces"] != parent["traces"]


def test_the_hosts_id_from_the_environment_wins_and_a_forked_child_gets_it_with_its_pid() -> None:
    """The host chose the id for the parent (e.g. the pod's, set by the OpenTelemetry Operator): a pre-fork
    server's workers that kept it would overwrite each other's cumulative series behind a Collector (two
    workers of 300 jobs each counted as 300, not 600). Each worker gets the host's id and its pid."""
    parent, forked = ids_of(OTEL_RESOURCE_ATTRIBUTES="service.instance.id=pod-7,deployment.environment=test")
    assert parent["traces"] == parent["metrics"] == "pod-7"
    assert forked["traces"] == forked["metrics"] == f"pod-7-{forked['pid']}"


def test_the_hosts_id_from_a_resource_passed_to_configure_wins_and_a_forked_child_gets_it_with_its_pid() -> None:
    parent, forked = ids_of('resource=Resource({"service.instance.id": "worker-a"})')
    assert parent["traces"] == parent["metrics"] == "worker-a"
    assert forked["traces"] == forked["metrics"] == f"worker-a-{forked['pid']}"


def test_a_resource_passed_to_configure_adds_attributes_and_keeps_ours() -> None:
    parent, _ = ids_of('resource=Resource({"deployment.environment": "test"})')
    assert uuid.UUID(parent["traces"]).version == 4 and parent["service"] == "svc"


def test_a_forked_child_detects_again_what_a_fork_changes() -> None:
    """A child reuses its parent's detected resource only with the SDK's default detectors: with the
    ``process`` detector, its ``process.parent_pid`` is its parent's pid, not its grandparent's."""
    parent, forked = ids_of(OTEL_EXPERIMENTAL_RESOURCE_DETECTORS="process")
    assert forked["parent_pid"] == parent["pid"] != parent["parent_pid"]
    assert forked["pid"] != parent["pid"]


#: A multiprocessing worker started by spawn that sets itself up (as `uvicorn --workers N` does, each worker
#: importing the app that calls configure()): prints the parent's id, then the worker's, as JSON lines.
SPAWNED = """
    import json, multiprocessing, os
    import agent_otel
    from agent_otel._sdk.configure import current_telemetry

    def instance():
        agent_otel.configure(service_name="svc", metrics_exporter="none", system_metrics=False)
        resource = current_telemetry().tracer_provider.resource.attributes
        return resource.get("service.instance.id"), os.getpid()

    def worker(queue):
        queue.put(instance())

    if __name__ == "__main__":
        print(json.dumps(instance()), flush=True)
        context = multiprocessing.get_context("spawn")
        queue = context.Queue()
        process = context.Process(target=worker, args=(queue,))
        process.start()
        print(json.dumps(queue.get(timeout=60)), flush=True)
        process.join(60)
"""


def test_a_spawned_worker_that_sets_itself_up_gets_the_hosts_id_with_its_pid(tmp_path: Path) -> None:
    """Workers of `uvicorn --workers` (spawned, each calling configure()) inherit the host's id from the
    environment like forked ones: each gets it with its pid, or they would overwrite each other's series."""
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(SPAWNED))
    child = subprocess.run([sys.executable, str(script)], env={
        **CLEAN_ENV, "OTEL_RESOURCE_ATTRIBUTES": "service.instance.id=pod-7", "PYTHONPATH": str(ROOT / "src")},
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr
    (parent_id, _), (worker_id, worker_pid) = (json.loads(line) for line in child.stdout.strip().splitlines())
    assert parent_id == "pod-7"
    assert worker_id == f"pod-7-{worker_pid}"


#: A pool of spawned workers under `agent-otel run`: the parent's id, then its workers' (id, pid), as JSON.
POOL = """
    import concurrent.futures, json, multiprocessing, os
    from opentelemetry import trace

    def instance(_=None):
        return trace.get_tracer_provider().resource.attributes.get("service.instance.id"), os.getpid()

    if __name__ == "__main__":
        print(json.dumps(instance()), flush=True)
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(2, mp_context=context) as pool:
            print(json.dumps(sorted(set(pool.map(instance, range(4))))), flush=True)
"""


def test_a_spawned_worker_set_up_by_agent_otel_run_gets_the_hosts_id_with_its_pid(tmp_path: Path) -> None:
    """`agent-otel run` sets a spawned worker up as it starts, before it imports multiprocessing (which then
    did not tell it from the program): the workers kept the host's id, the parent's."""
    (tmp_path / "pool.py").write_text(textwrap.dedent(POOL))
    (tmp_path / "agent-otel.toml").write_text("")
    child = subprocess.run(
        [str(Path(sys.executable).parent / "agent-otel"), "run", "--", sys.executable, "pool.py"],
        env={**CLEAN_ENV, "OTEL_RESOURCE_ATTRIBUTES": "service.instance.id=pod-7", "PYTHONPATH": str(ROOT / "src"),
             "OTEL_METRICS_EXPORTER": "none", "OTEL_TRACES_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"},
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr
    parent, workers = (json.loads(line) for line in child.stdout.strip().splitlines())
    assert parent[0] == "pod-7"
    assert workers and all(worker_id == f"pod-7-{pid}" for worker_id, pid in workers)


#: A program that starts Python processes with `subprocess` (each setting itself up: CONFIGURE, or
#: `agent-otel run`'s sitecustomize), then execs itself: every process prints its role, the role of the
#: process that started it, its pid and the service.instance.id of its providers, as JSON lines. The parent
#: starts a child (which starts a grandchild) and an "explicit" child given another id in its environment
#: (which starts a grandchild of its own), then execs again as "exec" (the same pid).
NESTED = """
    import json, os, subprocess, sys
    from opentelemetry import metrics, trace

    role, started_by = sys.argv[1], sys.argv[2]
    CONFIGURE
    print(json.dumps({"role": role, "started_by": started_by, "pid": os.getpid(),
                      "traces": trace.get_tracer_provider().resource.attributes.get("service.instance.id"),
                      "metrics": metrics.get_meter_provider()._sdk_config.resource.attributes.get(
                          "service.instance.id")}), flush=True)

    def start(child, **env):
        subprocess.run([sys.executable, __file__, child, role], check=True, env={**os.environ, **env})

    if role == "parent":
        start("child")
        start("explicit", OTEL_RESOURCE_ATTRIBUTES="service.instance.id=chosen-for-child")
        sys.stdout.flush()
        os.execv(sys.executable, [sys.executable, __file__, "exec", role])
    elif role in ("child", "explicit"):
        start("grandchild")
"""

#: The configure() call of a program that sets itself up (the resource, when given, holds the chosen id).
CONFIGURE_ITSELF = ('import agent_otel\n'
                    'from opentelemetry.sdk.resources import Resource\n'
                    'agent_otel.configure(service_name="svc", traces_exporter="none", metrics_exporter="none", '
                    'system_metrics=False{resource})')
IN_THE_ENVIRONMENT = {"OTEL_RESOURCE_ATTRIBUTES": "service.instance.id=pod-7"}
UNDER_THE_LAUNCHER = {**IN_THE_ENVIRONMENT, "OTEL_METRICS_EXPORTER": "none", "OTEL_TRACES_EXPORTER": "none",
                      "OTEL_LOGS_EXPORTER": "none"}


def nested_ids(tmp_path: Path, configure: str, env: dict[str, str], *,
               launcher: bool = False) -> dict[tuple[str, str], dict[str, object]]:
    """What each process of :data:`NESTED` printed, by (role, started_by)."""
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(NESTED).replace("CONFIGURE", configure))
    command = [sys.executable, str(script), "parent", "-"]
    if launcher:
        (tmp_path / "agent-otel.toml").write_text("")
        command = [str(Path(sys.executable).parent / "agent-otel"), "run", "--", *command]
    child = subprocess.run(command, env={**CLEAN_ENV, "PYTHONPATH": str(ROOT / "src"), **env}, cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr
    printed = [json.loads(line) for line in child.stdout.strip().splitlines()]
    for process in printed:
        assert process["traces"] == process["metrics"], process
    by_role = {(process["role"], process["started_by"]): process for process in printed}
    assert len(by_role) == len(printed) == 6, printed
    return by_role


def assert_one_id_per_process(ids: dict[tuple[str, str], dict[str, object]], explicit: str) -> None:
    """The parent, and the same process after exec, keep the chosen id as given; every process it starts gets
    it with its pid (a grandchild too); the "explicit" child has the id ``explicit`` chose for it (kept as
    given when it is not the parent's), and its own child gets that one with its pid."""
    def pid(role: str, started_by: str) -> object:
        return ids[role, started_by]["pid"]

    got = {key: process["traces"] for key, process in ids.items()}
    assert got == {
        ("parent", "-"): "pod-7",
        ("exec", "parent"): "pod-7",
        ("child", "parent"): f"pod-7-{pid('child', 'parent')}",
        ("grandchild", "child"): f"pod-7-{pid('grandchild', 'child')}",
        ("explicit", "parent"): explicit if explicit != "pod-7" else f"pod-7-{pid('explicit', 'parent')}",
        ("grandchild", "explicit"): f"{explicit}-{pid('grandchild', 'explicit')}",
    }
    assert pid("exec", "parent") == pid("parent", "-")


def test_a_subprocess_that_sets_itself_up_gets_the_hosts_id_from_the_environment_with_its_pid(
        tmp_path: Path) -> None:
    """A Python child started by `subprocess` (a grandchild too) inherits OTEL_RESOURCE_ATTRIBUTES: it exported
    the parent's id, and the two overwrote each other's cumulative series behind a Collector."""
    ids = nested_ids(tmp_path, CONFIGURE_ITSELF.format(resource=""), IN_THE_ENVIRONMENT)
    assert_one_id_per_process(ids, explicit="chosen-for-child")


def test_a_subprocess_that_sets_itself_up_gets_the_id_of_a_resource_passed_to_configure_with_its_pid(
        tmp_path: Path) -> None:
    """The same configure(resource=...) call in the child (the same code, e.g. the app's) chose the same id;
    the resource wins over the environment, so the "explicit" child has the parent's id too, and its pid."""
    ids = nested_ids(tmp_path, CONFIGURE_ITSELF.format(resource=', resource=Resource({"service.instance.id": '
                                                                '"pod-7"})'), {})
    assert_one_id_per_process(ids, explicit="pod-7")


def test_a_subprocess_set_up_by_agent_otel_run_gets_the_hosts_id_with_its_pid(tmp_path: Path) -> None:
    """`agent-otel run` sets up every Python process the program starts: each exported the program's id."""
    ids = nested_ids(tmp_path, "", UNDER_THE_LAUNCHER, launcher=True)
    assert_one_id_per_process(ids, explicit="chosen-for-child")


#: Under `agent-otel run -- sh -c ...` (exec'd: the program is the shell): two Python processes started by it
#: print their pid and id; the shell prints its pid.
SHOW = """
    import json, os
    from opentelemetry import trace
    print(json.dumps([os.getpid(), trace.get_tracer_provider().resource.attributes.get("service.instance.id")]),
          flush=True)
"""


def test_the_python_processes_a_program_exec_d_by_agent_otel_run_starts_get_the_hosts_id_with_their_pid(
        tmp_path: Path) -> None:
    """A program the launcher execs (not Python: it sets nothing up) keeps the id; the Python processes it
    starts are not that process, and two of them shared the id."""
    (tmp_path / "show.py").write_text(textwrap.dedent(SHOW))
    (tmp_path / "agent-otel.toml").write_text("")
    script = f'echo "[$$]"; {sys.executable} show.py & {sys.executable} show.py & wait'
    child = subprocess.run([str(Path(sys.executable).parent / "agent-otel"), "run", "--", "sh", "-c", script],
                           env={**CLEAN_ENV, "PYTHONPATH": str(ROOT / "src"), **UNDER_THE_LAUNCHER}, cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr
    # by array, not by line: print() writes a line's text and its newline apart, so two processes printing at
    # once into one pipe may put both arrays on one line
    (shell_pid,), *shown = (json.loads(array) for array in re.findall(r"\[[^\]]*\]", child.stdout))
    assert len(shown) == 2 and all(pid != shell_pid for pid, _ in shown)
    assert all(instance_id == f"pod-7-{pid}" for pid, instance_id in shown)


def test_an_id_no_environment_can_hold_is_kept_and_configure_does_not_raise() -> None:
    """configure(resource=...) took any string id; recording it for the children (os.environ) raised ValueError
    (a NUL) or UnicodeEncodeError (a lone surrogate) out of configure(), which had configured nothing."""
    for chosen in ("pod\\x007", "pod\\ud8007"):
        parent, forked = ids_of(f'resource=Resource({{"service.instance.id": "{chosen}"}})')
        expected = chosen.encode().decode("unicode_escape")
        assert parent["traces"] == parent["metrics"] == expected
        assert forked["traces"] == f"{expected}-{forked['pid']}"
