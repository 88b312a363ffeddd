"""SIGTERM and SIGHUP while a process flushes its telemetry on the way out (``_engine/exit_signals.py``): held until
the flush is done, then delivered at exit (the exit hooks registered before ``configure()`` still run), or dropped
when the process leaves right after (``os._exit()``): in real processes, with a collector that takes the
connection and never answers, so that each flush lasts its whole budget."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.environment import CLEAN_ENV

#: What every program below starts with: a collector that never answers, in the program itself, whose first
#: connection says that the program is in its exit flush (nothing is exported before: no export interval ends).
NEVER_ANSWERS = """
import os, signal, socket, sys, threading
import agent_otel

listener = socket.create_server(("127.0.0.1", 0))
connected = threading.Event()
connections = []


def collector_that_never_answers():
    while True:
        connections.append(listener.accept()[0])
        connected.set()


threading.Thread(target=collector_that_never_answers, daemon=True).start()
os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{listener.getsockname()[1]}"
"""

#: A child that leaves while its exit flush runs, and a parent that sends it SIGTERM meanwhile, as ``join(timeout)``
#: then ``terminate()`` does. Without agent-otel the child is gone before the signal: its status is the one it gave.
TERMINATED_WHILE_FLUSHING = NEVER_ANSWERS + """
import multiprocessing
agent_otel.configure(system_metrics=False)


@agent_otel.tool("work")
def work(x):
    return x


if __name__ == "__main__":
    if sys.argv[1] == "Process":
        child = multiprocessing.get_context("fork").Process(target=work, args=(1,))
        child.start()
        pid = child.pid
    else:
        pid = os.fork()
        if pid == 0:
            work(1)
            os._exit(3)
    if not connected.wait(60):  # its exporter connected: the child is in its exit flush (the parent exports nothing)
        sys.exit("the child's exit flush never connected")
    os.kill(pid, signal.SIGTERM)
    if sys.argv[1] == "Process":
        child.join()
        print(child.exitcode)
    else:
        print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""

#: A program whose atexit hooks registered before ``configure()`` (multiprocessing's, which joins a child that runs
#: until the program is gone; faulthandler's SIGTERM handler, installed in C) still run after the exit flush, sent
#: SIGTERM during the flush by a thread of its own, as a supervisor would. A thread started meanwhile reports
#: whether a process it starts ignores SIGTERM.
STILL_THERE = NEVER_ANSWERS + """
import faulthandler, multiprocessing, subprocess, time
import multiprocessing.util  # its exit hook, registered now, joins the program's children after the flush
if sys.argv[1] == "faulthandler":
    faulthandler.register(signal.SIGTERM)  # a stack dump, and the program goes on
reader, writer = os.pipe()


def child():  # until the program is gone or lets it go (its end of the pipe closed), 30 s at most
    os.close(writer)
    import select
    select.select([reader], [], [], 30)


def during_the_flush():
    connected.wait(60)
    sleeper = subprocess.Popen(["sleep", "30"])
    with open(f"/proc/{sleeper.pid}/status") as status:
        ignored = next(int(line.split()[1], 16) for line in status if line.startswith("SigIgn:"))
    sleeper.kill()
    sleeper.wait()
    print("a process started meanwhile ignores SIGTERM:", bool(ignored >> (signal.SIGTERM - 1) & 1), flush=True)
    os.kill(os.getpid(), signal.SIGTERM)
    os.close(writer)  # the child ends: a program that goes on after the signal is joined with it


if __name__ == "__main__":
    multiprocessing.get_context("fork").Process(target=child).start()
    agent_otel.configure(system_metrics=False)
    agent_otel.tool("work")(lambda: None)()  # a span to export at exit
    threading.Thread(target=during_the_flush, daemon=True).start()
"""


def _run(tmp_path: Path, program: str, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "program.py").write_text(program)
    environment = {**CLEAN_ENV, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_TRACES_EXPORTER": "otlp",
                   "OTEL_METRICS_EXPORTER": "otlp", "OTEL_LOGS_EXPORTER": "none",
                   "OTEL_METRIC_EXPORT_INTERVAL": "600000", "AGENT_OTEL_EXIT_FLUSH_TIMEOUT_MS": "2000"}
    return subprocess.run([sys.executable, "program.py", *args], cwd=tmp_path, env=environment, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize(("leaving", "status"), [("Process", "0"), ("os._exit", "3")])
def test_a_child_sent_sigterm_during_its_flush_before_os_exit_leaves_with_its_own_status(
        tmp_path: Path, leaving: str, status: str) -> None:
    """Before, the flush held the signal and then died of it: ``Process.exitcode`` -15 for a target that returned,
    and a forked child leaving by ``os._exit(3)`` was killed in its flush (-15 too)."""
    result = _run(tmp_path, TERMINATED_WHILE_FLUSHING, leaving)
    assert (result.returncode, result.stdout, result.stderr) == (0, f"{status}\n", "")


def test_a_sigterm_during_the_flush_at_exit_still_ends_a_process_whose_exit_hooks_run_after_it(tmp_path: Path) -> None:
    """multiprocessing's exit hook joins the program's child after the flush: the process is still there, and the
    signal ends it once the flush is done, as it ends the program without agent-otel. A first version of the
    fix ignored it (the process then exited 0, after its child ended), and a process started while it was
    ignored kept ignoring it, across its exec."""
    result = _run(tmp_path, STILL_THERE, "default")
    assert (result.returncode, result.stdout, result.stderr) == (
        -15, "a process started meanwhile ignores SIGTERM: False\n", "")


def test_a_sigterm_handler_installed_in_c_is_kept_over_the_flush(tmp_path: Path) -> None:
    """``faulthandler.register(SIGTERM)``: the program dumps its stacks and goes on, as without agent-otel; before,
    the flush put back the default that ``signal.getsignal()`` reports for it, and the SIGTERM killed it."""
    result = _run(tmp_path, STILL_THERE, "faulthandler")
    assert (result.returncode, result.stdout) == (0, "a process started meanwhile ignores SIGTERM: False\n")
    assert "most recent call first" in result.stderr
