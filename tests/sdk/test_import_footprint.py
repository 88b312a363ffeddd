"""What ``import agent_otel`` and ``configure()`` import: a process pays for every module it imports at
start-up, and again when a forked child tears them down at exit. The logs SDK and ``multiprocessing`` are
imported only when the program uses them, and the patches that need them still apply then."""

from __future__ import annotations

import importlib.machinery
import json
import subprocess
import sys
import textwrap
import types

import pytest

from agent_otel._context import carriers
from tests.support.environment import CLEAN_ENV
from tests.support.paths import ROOT

#: Imported only by programs that use them: not by agent-otel for its own sake.
LAZY = ("opentelemetry.sdk._logs", "multiprocessing", "concurrent.futures.process",
        "decimal", "difflib")  # (a Decimal value is read where the program has one; "did you mean" is for a mistake)

SCRIPT = textwrap.dedent("""
    import json, sys
    import agent_otel
    agent_otel.configure(prometheus_port=0)
    before = sorted(name for name in LAZY if name in sys.modules)

    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    def child_job():
        return agent_otel.current_job_id()

    def child_job_to_queue(queue):
        queue.put(agent_otel.current_job_id())

    if __name__ == "__main__":
        fork = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(1, mp_context=fork) as pool, agent_otel.job("late-pool"):
            in_pool = pool.submit(child_job).result(timeout=60)
        queue = fork.Queue()
        with agent_otel.job("late-process"):
            process = fork.Process(target=child_job_to_queue, args=(queue,))
            process.start()
        in_process = queue.get(timeout=60)
        process.join(60)
        print(json.dumps({"before": before, "pool": in_pool, "process": in_process,
                          "logs_processor": agent_otel.EvaluationLogProcessor.__name__}))
""")


def test_agent_otel_imports_neither_the_logs_sdk_nor_multiprocessing_and_still_carries_the_job_into_them(
        tmp_path: object) -> None:
    """Imported after ``configure()``, a process pool and a ``multiprocessing`` child still get the job
    (their patches apply when their modules are imported), and ``agent_otel.EvaluationLogProcessor`` is
    there when asked for."""
    done = subprocess.run([sys.executable, "-c", f"LAZY = {LAZY!r}\n{SCRIPT}"], cwd=ROOT, env=CLEAN_ENV,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {
        "before": [], "pool": "late-pool", "process": "late-process", "logs_processor": "EvaluationLogProcessor"}


RACE = textwrap.dedent("""
    import threading
    import agent_otel

    importer = threading.Thread(target=__import__, args=("concurrent.futures.process",))
    importer.start()  # the program imports it in a thread while configure() runs
    agent_otel.configure(metrics_exporter="none")
    importer.join()
    from concurrent.futures import ProcessPoolExecutor
    print(getattr(ProcessPoolExecutor.__dict__["submit"], "_self_agent_otel_carrier", False))
""")


def test_a_pool_module_another_thread_is_importing_during_configure_is_patched_once_imported() -> None:
    """wrapt runs the hook at once for a module already in sys.modules, even one still being executed by another
    thread: the patch waited for nothing and failed (7 runs in 8 left submit unpatched for good)."""
    for _ in range(3):
        done = subprocess.run([sys.executable, "-c", RACE], cwd=ROOT, env=CLEAN_ENV, capture_output=True, text=True,
                              timeout=120, check=False)
        assert (done.returncode, done.stdout.strip(), done.stderr) == (0, "True", "")


def test_the_exit_flush_interrupting_a_pool_modules_import_leaves_it_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """A SIGTERM (``Pool.terminate()``) reaching a spawned worker while it imports ``multiprocessing.pool`` runs
    the exit flush on that very thread: the module has no ``Pool`` yet, so there is nothing to unpatch. Before,
    the flush failed on it and printed so on the program's stderr."""
    half_built = types.ModuleType("multiprocessing.pool")
    half_built.__spec__ = importlib.machinery.ModuleSpec("multiprocessing.pool", None)
    half_built.__spec__._initializing = True  # type: ignore[attr-defined]  # what importlib sets while it runs
    monkeypatch.setitem(sys.modules, "multiprocessing.pool", half_built)
    was_on = carriers._process_carriers_on
    try:
        carriers.uninstrument_process_carriers()  # must not raise
        carriers.instrument_process_carriers()
        assert not hasattr(half_built, "Pool")
    finally:
        monkeypatch.undo()
        if not was_on:
            carriers.uninstrument_process_carriers()
