"""The carriers that take the job into pools, processes, subprocesses and HTTP requests leave no frame in the
program's tracebacks: an exception raised through one prints what plain python prints, in the parent and in the
child (a pool's ``RemoteTraceback``, a ``Process``'s report), also under ``agent-otel run``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agent_otel._ops.stack import free_port
from tests.support.environment import CLEAN_ENV

AGENT_OTEL = str(Path(sys.executable).parent / "agent-otel")

#: Each case raises through one carrier, inside a job when agent-otel is on (so that every carrier carries).
PROGRAM = """
import concurrent.futures, contextlib, multiprocessing, os, subprocess, sys, urllib.request

def target(x=1):
    raise ValueError("boom", x)

class Failing(multiprocessing.Process):
    def run(self):
        raise ValueError("boom in run")

def main(case):
    if case == "pool-map":
        with multiprocessing.get_context("fork").Pool(1) as pool:
            pool.map(target, [1])
    elif case == "thread-pool-map":
        from multiprocessing.pool import ThreadPool
        with ThreadPool(1) as pool:
            pool.map(target, [1])
    elif case == "process-pool-executor":
        context = multiprocessing.get_context("forkserver")
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as executor:
            executor.submit(target, 1).result()
    elif case in ("process-fork", "process-spawn"):
        process = multiprocessing.get_context(case.split("-")[1]).Process(target=target)
        process.start(); process.join()
        print("exit code", process.exitcode, flush=True)
    elif case == "process-run":
        process = Failing()
        process.start(); process.join()
        print("exit code", process.exitcode, flush=True)
    elif case == "popen":
        subprocess.Popen(["/nonexistent/program"])
    elif case == "exec":
        os.execv("/nonexistent/program", ["program"])
    elif case == "http":
        urllib.request.urlopen("http://127.0.0.1:PORT/", timeout=5)

if __name__ == "__main__":
    job = contextlib.nullcontext
    if os.environ.get("WITH_AGENT_OTEL"):
        import agent_otel
        agent_otel.configure(metrics_exporter="none")
        job = agent_otel.job
    with job():
        main(sys.argv[1])
"""

CASES = ["pool-map", "thread-pool-map", "process-pool-executor", "process-fork", "process-spawn", "process-run",
         "popen", "exec", "http"]


@pytest.mark.parametrize("case", CASES)
def test_an_exception_raised_through_a_carrier_prints_plain_pythons_traceback(tmp_path: Path, case: str) -> None:
    """Before, the traceback had the carrier's frames (``propagation.py`` in ``__call__``, ``carriers.py`` in
    ``_wrap_pool_task``, ``_wrap_popen_init``, ``_inject_headers``...), which plain python's has not."""
    script = tmp_path / "app.py"
    script.write_text(PROGRAM.replace("PORT", str(free_port())))
    (tmp_path / "agent-otel.toml").write_text("")  # (the launcher says when it finds no configuration)

    def run(*command: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*command, str(script), case], env={**CLEAN_ENV, "OTEL_TRACES_EXPORTER": "none", **env},
                              cwd=tmp_path, capture_output=True, text=True, timeout=120)

    plain = run(sys.executable)
    assert "Traceback (most recent call last)" in plain.stderr, plain.stderr
    ours = run(sys.executable, WITH_AGENT_OTEL="1")
    assert (ours.returncode, ours.stdout, ours.stderr) == (plain.returncode, plain.stdout, plain.stderr)
    launched = run(AGENT_OTEL, "run", "--", sys.executable, OTEL_METRICS_EXPORTER="none")
    assert (launched.returncode, launched.stdout, launched.stderr) == (plain.returncode, plain.stdout, plain.stderr)
