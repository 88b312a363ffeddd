"""``service.instance.id``: every configured process has its own, so processes of one service never share a
series identity behind a Collector (its Prometheus exporter makes ``instance`` of it); the host's own value wins,
with the pid appended in a forked child.

Whatever sets OTel's process-global providers runs in a child interpreter, so tests stay independent.
"""

from __future__ import annotations

import json
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
