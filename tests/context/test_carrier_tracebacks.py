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
    elif case == "thread-pool-executor":  # (the threading instrumentation's wrapper of the task: its frame)
        with concurrent.futures.ThreadPoolExecutor(1) as executor:
            executor.submit(target, 1).result()
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

CASES = ["pool-map", "thread-pool-map", "thread-pool-executor", "process-pool-executor", "process-fork",
         "process-spawn", "process-run", "popen", "exec", "http"]


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


#: Calls of ``os.exec*`` that python refuses or that fail, each in a forked child (one that succeeds replaces it):
#: what each raised, as the program sees it.
EXEC_REFUSALS = """
import os, sys, traceback
if os.environ.get("WITH_AGENT_OTEL"):
    import agent_otel
    agent_otel.configure(metrics_exporter="none")
    agent_otel.job("refusals").__enter__()  # in a job: the carrier carries
def bytearray_path(execve, arguments=1):  # python takes it with a DeprecationWarning; the program made it an error
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        if arguments == 0:  # refused for the arguments' number first: TypeError, no warning
            os.execv(bytearray(b"/nonexistent")) if not execve else os.execve(bytearray(b"/nonexistent"), ["x"])
        if execve:
            os.execve(bytearray(b"/nonexistent"), ["x"], {})
        os.execv(bytearray(b"/nonexistent"), ["x"])
class Empty:  # an argument that reads as empty only once encoded
    def __fspath__(self):
        return ""
cases = [lambda: os.execv("/bin/true", []), lambda: os.execv("/bin/true", [""]), lambda: os.execv("/bin/true", "x"),
         lambda: os.execv(path="/nonexistent", argv=["x"]), lambda: os.execv("/nonexistent", ("x",)),
         lambda: os.execv(b"/nonexistent", [b"x"]), lambda: os.execl("/nonexistent", "x"),
         lambda: os.execvp("nonexistent-program", ["x"]), lambda: os.execv("/bin/tr\\0ue", ["x"]),
         lambda: os.execve("/nonexistent", ["x"], {}), lambda: os.execv("/etc/hostname", ["x"]),
         lambda: os.execv(b"/bin/tr\\0ue", ["x"]), lambda: os.execv("/nonexistent", [Empty()]),
         lambda: bytearray_path(False), lambda: bytearray_path(True), lambda: bytearray_path(False, 0),
         lambda: bytearray_path(True, 0),
         lambda: os.execv(0, ["true"]), lambda: os.execv("/bin/true", ["true"], {}),  # python refuses these three:
         lambda: os.execve("/bin/true", ["true"], None)]  # taken, they replaced the process
for case in cases:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            case()
        except BaseException as error:
            frames = [frame.name for frame in traceback.extract_tb(error.__traceback__)]
            os.write(write, repr((type(error).__name__, str(error), getattr(error, "filename", None), frames)).encode())
        os._exit(0)
    os.close(write)
    print(os.read(read, 10000).decode() or "(replaced)")
    os.waitpid(pid, 0)
    os.close(read)
"""


def test_os_exec_raises_for_each_refused_or_failed_call_what_plain_python_raises() -> None:
    """The carrier calls ``os.execve`` in place of the program's ``os.execv``: a missing program's error named the
    file (``execve`` does, ``execv`` does not), keyword arguments ``execv`` refuses were taken, an argv it refuses got
    ``execve``'s message, and a descriptor for a path, a third argument or an env that is no mapping replaced the
    process where python raises ``TypeError``."""

    def run(**env: str) -> str:
        return subprocess.run([sys.executable, "-c", EXEC_REFUSALS], env={**CLEAN_ENV, **env}, capture_output=True,
                              text=True, timeout=120, check=True).stdout

    plain = run()
    assert "takes no keyword arguments" in plain and "No such file or directory" in plain
    assert "(replaced)" not in plain.splitlines()[-3:]  # the three refused
    assert run(WITH_AGENT_OTEL="1", OTEL_TRACES_EXPORTER="none") == plain
