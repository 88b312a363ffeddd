"""SIGTERM and SIGHUP while a process flushes its telemetry on the way out (``_engine/exit_signals.py``): held until
the flush is done, then delivered at exit (the exit hooks registered before ``configure()`` still run), or dropped
when the process leaves right after (``os._exit()``): in real processes, with a collector that takes the
connection and never answers, so that each flush lasts its whole budget."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.support.environment import CLEAN_ENV

AGENT_OTEL = str(Path(sys.executable).parent / "agent-otel")

#: What every program below starts with: a collector that never answers, in the program itself, whose first
#: connection says that the program is in its exit flush (nothing is exported before: no export interval ends).
NEVER_ANSWERS = """
import os, signal, socket, sys, threading
import agent_otel

connected = threading.Event()
connections = []


def collector_that_never_answers(listener):
    while True:
        connections.append(listener.accept()[0])
        connected.set()


if __name__ == "__main__":  # not in a spawned child, which imports this as __mp_main__ (and inherits the endpoint)
    listener = socket.create_server(("127.0.0.1", 0))
    threading.Thread(target=collector_that_never_answers, args=(listener,), daemon=True).start()
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{listener.getsockname()[1]}"
"""

#: A child that leaves while its exit flush runs, and a parent that sends it SIGTERM meanwhile, as ``join(timeout)``
#: then ``terminate()`` does. Without agent-otel the child is gone before the signal: its status is the one it gave.
TERMINATED_WHILE_FLUSHING = NEVER_ANSWERS + """
import atexit, multiprocessing, time, warnings
atexit.register(time.sleep, 0.2)  # an exit hook registered before configure(): it runs after the exit flush
agent_otel.configure(system_metrics=False)


@agent_otel.tool("work")
def work(x):
    return x


if __name__ == "__main__":
    if sys.argv[1] != "os._exit":
        child = multiprocessing.get_context(sys.argv[1]).Process(target=work, args=(1,))
        child.start()
        pid = child.pid
    else:
        with warnings.catch_warnings():  # 3.12's warning of a fork in a multi-threaded process (the collector's)
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:
            work(1)
            os._exit(3)
    if not connected.wait(60):  # its exporter connected: the child is in its exit flush (the parent exports nothing)
        sys.exit("the child's exit flush never connected")
    os.kill(pid, signal.SIGTERM)
    if sys.argv[1] != "os._exit":
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
    if sys.argv[1] == "fork":
        report, reported = os.pipe()
        forked = os.fork()
        if forked == 0:  # its handlers are the program's, not the flush's: killed at once, so that it flushes nothing
            os.write(reported, b"SIG_DFL" if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL else b"other")
            os.kill(os.getpid(), signal.SIGKILL)
        os.waitpid(forked, 0)
        print("a process forked meanwhile has SIGTERM's handler:", os.read(report, 100).decode(), flush=True)
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


MEANWHILE = "a process started meanwhile ignores SIGTERM: False\n"


def _run(tmp_path: Path, program: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "program.py").write_text(program)
    environment = {**CLEAN_ENV, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_TRACES_EXPORTER": "otlp",
                   "OTEL_METRICS_EXPORTER": "otlp", "OTEL_LOGS_EXPORTER": "none",
                   "OTEL_METRIC_EXPORT_INTERVAL": "600000", "AGENT_OTEL_EXIT_FLUSH_TIMEOUT_MS": "2000", **env}
    return subprocess.run([sys.executable, "program.py", *args], cwd=tmp_path, env=environment, capture_output=True,
                          text=True, timeout=120)


def _launched(tmp_path: Path, program: str) -> subprocess.CompletedProcess[str]:
    """``program`` under ``agent-otel run``, exporting to a collector that never answers, here."""
    (tmp_path / "program.py").write_text(program)
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def never_answer() -> None:
        with contextlib.suppress(OSError):  # the listener closed
            while True:
                accepted.append(listener.accept()[0])

    threading.Thread(target=never_answer, daemon=True).start()
    environment = {**CLEAN_ENV, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{listener.getsockname()[1]}",
                   "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_TRACES_EXPORTER": "otlp",
                   "OTEL_METRICS_EXPORTER": "otlp", "OTEL_LOGS_EXPORTER": "none",
                   "AGENT_OTEL_EXIT_FLUSH_TIMEOUT_MS": "300", "XDG_CACHE_HOME": str(tmp_path / "cache")}
    (tmp_path / "agent-otel.toml").write_text("[instrumentation]\ninstrumentations = false\n")
    try:
        return subprocess.run([AGENT_OTEL, "run", "--", sys.executable, "program.py"], cwd=tmp_path,
                              env=environment, capture_output=True, text=True, timeout=120)
    finally:
        listener.close()
        for connection in accepted:
            connection.close()


@pytest.mark.parametrize(("leaving", "status"), [("fork", "0"), ("os._exit", "3"), ("spawn", "-15")])
def test_a_child_sent_sigterm_during_its_last_flush_ends_as_it_would_without_agent_otel(
        tmp_path: Path, leaving: str, status: str) -> None:
    """A forked ``Process`` whose target returned, and a forked child leaving by ``os._exit(3)``: nothing of the
    program runs after their flush, and without agent-otel they would be gone; before, the flush held the signal and
    then died of it (-15). A spawned one leaves through its interpreter's exit, whose hooks registered before
    ``configure()`` run after the flush: the signal ends it there, as it ends it in those hooks without agent-otel
    (a second version of the fix dropped it: the worker ran its hook, then exited 0)."""
    result = _run(tmp_path, TERMINATED_WHILE_FLUSHING, leaving)
    assert (result.returncode, result.stdout, result.stderr) == (0, f"{status}\n", "")


def test_a_sigterm_during_the_flush_at_exit_still_ends_a_process_whose_exit_hooks_run_after_it(tmp_path: Path) -> None:
    """multiprocessing's exit hook joins the program's child after the flush: the process is still there, and the
    signal ends it once the flush is done, as it ends the program without agent-otel. A first version of the
    fix ignored it (the process then exited 0, after its child ended), and a process started while it was
    ignored kept ignoring it, across its exec."""
    result = _run(tmp_path, STILL_THERE, "default")
    assert (result.returncode, result.stdout, result.stderr) == (-15, MEANWHILE, "")


def test_a_sigterm_handler_installed_in_c_is_kept_over_the_flush(tmp_path: Path) -> None:
    """``faulthandler.register(SIGTERM)``: the program dumps its stacks and goes on, as without agent-otel; before,
    the flush put back the default that ``signal.getsignal()`` reports for it, and the SIGTERM killed it."""
    result = _run(tmp_path, STILL_THERE, "faulthandler")
    assert (result.returncode, result.stdout) == (0, MEANWHILE)
    assert "most recent call first" in result.stderr


def test_a_process_forked_during_the_flush_has_the_programs_handlers(tmp_path: Path) -> None:
    """A thread of the program forks while the main thread flushes at exit: the child's SIGTERM handler is the
    program's (here the default), not the flush's, and a handler of the child's that calls the one it replaces
    calls that. (The child is killed at once; the SDK's own fork handler may print about the interpreter's
    shutdown, which a fork during the exit hooks meets.)"""
    result = _run(tmp_path, STILL_THERE, "fork")
    if sys.version_info[:2] == (3, 12):  # Python 3.12 refuses a fork once the exit hooks run, with its own error
        assert (result.returncode, result.stdout) == (0, "")
        assert result.stderr.endswith("RuntimeError: can't fork at interpreter shutdown\n")
    else:
        assert (result.returncode, result.stdout) == (
            -15, "a process forked meanwhile has SIGTERM's handler: SIG_DFL\n" + MEANWHILE)
    assert "agent_otel" not in result.stderr


#: The program's SIGTERM handler (``MODE``) and an exit hook registered before ``configure()``, which runs after the
#: flush; a thread of the program sends the signals in ``SEND`` during the flush.
HANDLED = NEVER_ANSWERS + """
import atexit, time
atexit.register(lambda: print("the program's exit hook ran to its end", flush=True) if time.sleep(0.5) is None else 0)
agent_otel.configure(system_metrics=False)
agent_otel.tool("work")(lambda: None)()


def exits(signum, frame):
    sys.exit(3)


def says(signum, frame):
    print("SIGTERM's handler ran", flush=True)


if os.environ["MODE"] == "as Ctrl-C":
    signal.signal(signal.SIGTERM, signal.default_int_handler)
elif os.environ["MODE"] != "blocked on the main thread":
    signal.signal(signal.SIGTERM, says)
    if os.environ["MODE"] == "SIGHUP exits":
        signal.signal(signal.SIGHUP, exits)


def during_the_flush():
    connected.wait(60)
    for index, name in enumerate(os.environ["SEND"].split(",")):
        if index:  # signals that come apart, each taken (and held) before the next comes
            threading.Event().wait(0.2)
        os.kill(os.getpid(), getattr(signal, name))
    threading.Event().wait()  # a thread that takes the signals the main thread blocks


threading.Thread(target=during_the_flush, daemon=True).start()
if os.environ["MODE"] == "blocked on the main thread":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # the thread above still takes it
"""


HOOK_RAN = "the program's exit hook ran to its end\n"


@pytest.mark.parametrize(("mode", "send", "status", "stdout", "ends"), [
    ("as Ctrl-C", "SIGTERM", 0, HOOK_RAN, "KeyboardInterrupt: \n"),
    ("SIGHUP exits", "SIGHUP,SIGTERM", 0, "SIGTERM's handler ran\n" + HOOK_RAN, "SystemExit: 3\n"),
    ("SIGHUP by default", "SIGTERM,SIGHUP", -1, "SIGTERM's handler ran\n", ""),
    ("blocked on the main thread", "SIGTERM", -15, "", ""),
])
def test_the_programs_handlers_of_held_signals_run_as_python_runs_them(
        tmp_path: Path, mode: str, send: str, status: int, stdout: str, ends: str) -> None:
    """Delivered after the flush in the order they came, each handled before the next: what a handler raises
    (``KeyboardInterrupt`` too) is reported as raised in an exit hook, and the other signals are not lost (a
    handler's run at the next check; SIGHUP left to its default ends the process once SIGTERM's handler has run).
    Before, a KeyboardInterrupt from the program's handler was taken for a Ctrl-C in the flush and swallowed; the
    signals after one whose handler raised were lost; and then, delivered at once, SIGHUP's default killed the
    process before SIGTERM's handler, which came first, ran, and a SIGTERM the main thread blocks (another thread
    took it) stayed pending for good: the process lived on."""
    result = _run(tmp_path, HANDLED, MODE=mode, SEND=send)
    assert (result.returncode, result.stdout) == (status, stdout)
    if ends:
        assert result.stderr.startswith("Exception ignored in atexit callback") and result.stderr.endswith(ends)
    else:
        assert result.stderr == ""


#: A program under ``agent-otel run`` that ends: a thread of its own sends it SIGTERM during the final flush (it
#: sees the flush's handler in place of the launcher's).
ENDS_UNDER_THE_LAUNCHER = """
import signal, threading, os

launchers = signal.getsignal(signal.SIGTERM)


def during_the_flush():
    while signal.getsignal(signal.SIGTERM) is launchers:
        threading.Event().wait(0.01)
    os.kill(os.getpid(), signal.SIGTERM)


threading.Thread(target=during_the_flush, daemon=True).start()
print("done", flush=True)
"""


def test_under_the_launcher_a_sigterm_during_the_final_flush_leaves_the_programs_status(tmp_path: Path) -> None:
    """The launcher's flush runs after the program's own exit hooks: nothing of the program runs after it, and
    without agent-otel the program would be gone. Before, it died of the signal after the flush (-15)."""
    result = _launched(tmp_path, ENDS_UNDER_THE_LAUNCHER)
    assert (result.returncode, result.stdout, result.stderr) == (0, "done\n", "")
