"""multiprocessing workers started by fork or forkserver leave through ``os._exit()``, so no atexit flush runs
there: their spans and metrics are flushed when ``BaseProcess._bootstrap`` returns (and on the SIGTERM of
``Pool.terminate()``), in real processes exporting to a real OTLP receiver."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.environment import CLEAN_ENV
from tests.support.otlp_receiver import OtlpHttpReceiver, attributes_of, data_points_of
from tests.support.polling import wait_until

AGENT_OTEL = str(Path(sys.executable).parent / "agent-otel")

#: One tool call in the parent and seven in workers: four ProcessPoolExecutor tasks, two tasks of a Pool left
#: by its ``with`` block (terminate(): SIGTERM to its workers) and one Process.
FAN_OUT = """
import concurrent.futures, multiprocessing, os, sys
import agent_otel

if os.environ.get("CONFIGURE_AT_IMPORT"):  # every worker too: spawn and forkserver import the main module
    agent_otel.configure()

@agent_otel.tool("work")
def work(x):
    return x * x

if __name__ == "__main__":
    if "--configure" in sys.argv:
        agent_otel.configure()
    context = multiprocessing.get_context(sys.argv[1])
    with agent_otel.job("fan-out"):
        with concurrent.futures.ProcessPoolExecutor(2, mp_context=context) as executor:
            print(list(executor.map(work, range(4))))
        with context.Pool(2) as pool:
            print(pool.map(work, [5, 6]))
        process = context.Process(target=work, args=(7,))
        process.start()
        process.join()
        print(process.exitcode)
    work(8)
"""
OUTPUT = "[0, 1, 4, 9]\n[25, 36]\n0\n"


def _environment(receiver: OtlpHttpReceiver) -> dict[str, str]:
    return {**CLEAN_ENV, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_METRICS_EXPORTER": "otlp", "OTEL_LOGS_EXPORTER": "none", "AGENT_OTEL_EXIT_FLUSH_TIMEOUT_MS": "5000"}


def _tool_calls_by_process(receiver: OtlpHttpReceiver) -> dict[Any, int]:
    """The last count of ``gen_ai.execute_tool.duration`` each process exported (cumulative, per resource)."""
    counts: dict[Any, int] = {}
    for request in receiver.metrics:
        for resource_metrics in request.resource_metrics:
            process = attributes_of(resource_metrics.resource).get("service.instance.id")
            for scope in resource_metrics.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == "gen_ai.execute_tool.duration":
                        counts[process] = max(counts.get(process, 0),
                                              sum(point.count for point in data_points_of(metric)))
    return counts


def _check_every_call_arrived(receiver: OtlpHttpReceiver) -> None:
    tools = lambda: [s for s in receiver.spans() if s.name == "execute_tool work"]  # noqa: E731
    wait_until(lambda: len(tools()) >= 8, "8 tool spans, 7 of them from workers")
    wait_until(lambda: sum(_tool_calls_by_process(receiver).values()) >= 8, "8 tool calls in the metrics")
    assert len(tools()) == 8
    assert [attributes_of(span).get("job.id") for span in tools()].count("fan-out") == 7
    counts = _tool_calls_by_process(receiver)
    assert sum(counts.values()) == 8 and len(counts) >= 4  # the parent and at least one process per kind


def test_forked_workers_of_a_configured_process_export_what_they_recorded(tmp_path: Path) -> None:
    """Before, a worker started by fork exported nothing (1 tool span of 8 arrived: the parent's). (A forkserver
    is a fresh interpreter, configured only under the launcher: see below.)"""
    (tmp_path / "fan_out.py").write_text(FAN_OUT)
    with OtlpHttpReceiver() as receiver:
        result = subprocess.run([sys.executable, "fan_out.py", "fork", "--configure"], cwd=tmp_path,
                                env=_environment(receiver), capture_output=True, text=True, timeout=120)
        assert (result.returncode, result.stdout, result.stderr) == (0, OUTPUT, "")
        _check_every_call_arrived(receiver)


@pytest.mark.parametrize("method", ["fork", "forkserver"])
def test_workers_under_the_launcher_export_what_they_recorded(tmp_path: Path, method: str) -> None:
    """Before, with forkserver (and fork) the workers' spans and metrics never arrived."""
    (tmp_path / "fan_out.py").write_text(FAN_OUT)
    (tmp_path / "agent-otel.toml").write_text("[instrumentation]\ninstrumentations = false\n")
    with OtlpHttpReceiver() as receiver:
        result = subprocess.run([AGENT_OTEL, "run", "--", sys.executable, "fan_out.py", method], cwd=tmp_path,
                                env=_environment(receiver), capture_output=True, text=True, timeout=120)
        assert (result.returncode, result.stdout, result.stderr) == (0, OUTPUT, "")
        _check_every_call_arrived(receiver)


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_workers_that_configure_themselves_export_what_they_recorded(tmp_path: Path, method: str) -> None:
    """The program calls configure() as its main module is imported, so its spawned and forkserver workers set
    agent-otel up too. Before, a forkserver worker exported nothing (it imports agent-otel itself, as a spawned
    one does, which was taken to mean it exits through sys.exit(), but it leaves by os._exit()), and a spawned
    Pool's workers lost what they recorded to the SIGTERM of its ``with`` block (1 or 0 tool spans of 2)."""
    (tmp_path / "fan_out.py").write_text(FAN_OUT)
    with OtlpHttpReceiver() as receiver:
        result = subprocess.run([sys.executable, "fan_out.py", method], cwd=tmp_path,
                                env={**_environment(receiver), "CONFIGURE_AT_IMPORT": "1"}, capture_output=True,
                                text=True, timeout=120)
        assert (result.returncode, result.stdout, result.stderr) == (0, OUTPUT, "")
        _check_every_call_arrived(receiver)


#: A forked worker whose main thread sleeps in a C call when SIGTERM arrives, taken by another thread of the
#: host's: the signal's Python handler is due but nothing wakes the main thread to run it (what a SIGTERM that
#: arrives just before a pool worker blocks on its task queue does, 1 run in 22 to 277 of FAN_OUT under load).
BLOCKED_WORKER = """
import multiprocessing, signal, sys, threading, time
import agent_otel

def sleeping_main_thread():
    main = threading.main_thread()
    ready = threading.Event()

    def host_thread():
        ready.wait()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # until the main thread sleeps on the semaphore (state S, at the acquire)
            with open(f"/proc/self/task/{multiprocessing.current_process().pid}/stat") as stat:
                state = stat.read().rsplit(")", 1)[1].split()[0]
            frame = sys._current_frames().get(main.ident)
            if state == "S" and frame is not None and frame.f_code.co_name == "sleeping_main_thread":
                break
            time.sleep(0.01)
        signal.pthread_kill(threading.get_ident(), signal.SIGTERM)  # this thread takes it, not the main one

    threading.Thread(target=host_thread, daemon=True).start()
    never = multiprocessing.Semaphore(0)
    ready.set()
    never.acquire()

if __name__ == "__main__":
    agent_otel.configure()
    worker = multiprocessing.get_context("fork").Process(target=sleeping_main_thread)
    worker.start()
    worker.join(60)
    print(worker.exitcode)
    if worker.exitcode is None:
        worker.kill()
"""


@pytest.mark.parametrize("setup", ["configure()", "agent-otel run", "agent-otel run, /metrics only"])
def test_a_forked_worker_whose_sleeping_main_thread_misses_its_sigterm_still_dies_of_it(tmp_path: Path,
                                                                                     setup: str) -> None:
    """Before, agent-otel's SIGTERM handler (which flushes the worker) was due and never ran: the worker slept
    for ever where without agent-otel it dies of the signal. Now a thread of ours, woken by the signal's wakeup
    fd, interrupts the main thread until the handler has run. Under ``agent-otel run`` the worker inherited the
    launcher's handler and had no such thread: the same hang (a CI run of FAN_OUT with forkserver hung so). A
    worker with nothing of its own to flush (``agent-otel run`` serving /metrics from the program's process alone,
    its default) kept the launcher's handler without the thread: ``with Pool(...)`` hung 1 time in 10 to 50."""
    (tmp_path / "blocked.py").write_text(BLOCKED_WORKER)
    (tmp_path / "agent-otel.toml").write_text("")  # the launcher's configuration: its defaults
    environment = {**CLEAN_ENV, "OTEL_TRACES_EXPORTER": "otlp", "OTEL_METRICS_EXPORTER": "none",
                   "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
    if setup == "agent-otel run, /metrics only":
        environment.update(OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="prometheus",
                           OTEL_EXPORTER_PROMETHEUS_PORT="0")
    launcher = [str(Path(sys.executable).with_name("agent-otel")), "run", "--"] if setup != "configure()" else []
    result = subprocess.run([*launcher, sys.executable, "blocked.py"], cwd=tmp_path, env=environment,
                            capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stdout, result.stderr) == (0, "-15\n", "")


#: What a forked worker's SIGTERM and SIGHUP do, by the module of their handler.
HANDLERS_IN_A_WORKER = """
import multiprocessing, signal
from agent_otel._engine.signal_view import installed_handler  # the program itself sees the default for ours

def handlers(_):
    return ["default" if installed_handler(signum) is signal.SIG_DFL else installed_handler(signum).__module__
            for signum in (signal.SIGTERM, signal.SIGHUP)]

if __name__ == "__main__":
    with multiprocessing.get_context("fork").Pool(1) as pool:
        print(*pool.map(handlers, [0])[0])
"""


def test_a_worker_with_nothing_to_flush_dies_of_sigterm_and_keeps_the_launchers_sighup(tmp_path: Path) -> None:
    """Under ``agent-otel run`` serving /metrics from the program's process alone, a worker exports nothing of its
    own: SIGTERM (``Pool.terminate()``) kills it as without agent-otel (see the test above). SIGHUP keeps the
    launcher's handler, which flushes a worker whose initializer set its own export up later: a closed terminal
    sends it to the whole process group."""
    (tmp_path / "handlers.py").write_text(HANDLERS_IN_A_WORKER)
    (tmp_path / "agent-otel.toml").write_text("")
    environment = {**CLEAN_ENV, "OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "prometheus",
                   "OTEL_EXPORTER_PROMETHEUS_PORT": "0"}
    result = subprocess.run([str(Path(sys.executable).with_name("agent-otel")), "run", "--", sys.executable,
                             "handlers.py"], cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stdout, result.stderr) == (
        0, "default agent_otel._zerocode.launcher\n", "")


#: Workers that set agent-otel up in their pool's initializer, the parent never does: the usual recipe for
#: OpenTelemetry in a process pool. Six tool calls, all in workers, two of them in a Pool left by its ``with``
#: block (terminate(): SIGTERM to its workers).
INITIALIZER = """
import concurrent.futures, multiprocessing, sys
import agent_otel

@agent_otel.tool("work")
def work(x):
    return x * x

def set_up():
    agent_otel.configure()

if __name__ == "__main__":
    context = multiprocessing.get_context(sys.argv[1])
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=context, initializer=set_up) as executor:
        print(list(executor.map(work, range(4))))
    with context.Pool(2, initializer=set_up) as pool:
        print(pool.map(work, [5, 6]))
"""


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_workers_set_up_by_their_pools_initializer_export_what_they_recorded(tmp_path: Path, method: str) -> None:
    """The worker's ``_bootstrap`` is running when its initializer calls configure(), so it was not the wrapped one
    that flushes before ``os._exit()``: before, fork and forkserver workers exported nothing, and a Pool's workers
    lost what they recorded to the SIGTERM of its ``with`` block."""
    (tmp_path / "initializer.py").write_text(INITIALIZER)
    with OtlpHttpReceiver() as receiver:
        result = subprocess.run([sys.executable, "initializer.py", method], cwd=tmp_path,
                                env=_environment(receiver), capture_output=True, text=True, timeout=120)
        assert (result.returncode, result.stdout, result.stderr) == (0, "[0, 1, 4, 9]\n[25, 36]\n", "")
        tools = lambda: [s for s in receiver.spans() if s.name == "execute_tool work"]  # noqa: E731
        wait_until(lambda: len(tools()) >= 6, "6 tool spans, all from workers")
        wait_until(lambda: sum(_tool_calls_by_process(receiver).values()) >= 6, "6 tool calls in the metrics")
        assert len(tools()) == 6 and sum(_tool_calls_by_process(receiver).values()) == 6


def _run_exporting(tmp_path: Path, program: str, receiver: OtlpHttpReceiver, prints: str) -> None:
    """Run ``program`` exporting to ``receiver``; it must exit 0 having printed ``prints``."""
    script = tmp_path / "program.py"
    script.write_text(program)
    done = subprocess.run([sys.executable, str(script)], env=_environment(receiver), capture_output=True, text=True,
                          timeout=120)
    assert (done.returncode, done.stdout) == (0, prints), done.stderr


#: Celery's prefork pool: billiard's Pool, each worker recycled after one task (``--max-tasks-per-child=1``).
BILLIARD_POOL = """
import billiard
import agent_otel

agent_otel.configure()


@agent_otel.tool("work")
def work(x):
    return x * x


if __name__ == "__main__":
    with agent_otel.job("celery-like"):
        pool = billiard.Pool(2, maxtasksperchild=1)
        print(pool.map(work, range(3)))
        pool.close()
        pool.join()
"""


def test_billiard_pool_workers_flush_before_they_leave(tmp_path: Path) -> None:
    """billiard's pool worker (Celery's prefork pool) leaves by ``os._exit()`` from inside its work loop: what each
    child recorded since its last periodic export was lost, all of it when children were recycled after each task."""
    with OtlpHttpReceiver() as receiver:
        _run_exporting(tmp_path, BILLIARD_POOL, receiver, prints="[0, 1, 4]\n")
        tools = lambda: [s for s in receiver.spans() if s.name == "execute_tool work"]  # noqa: E731
        wait_until(lambda: len(tools()) >= 3, "3 tool spans from billiard's workers")
        wait_until(lambda: sum(_tool_calls_by_process(receiver).values()) >= 3, "3 tool calls in the metrics")
        assert [attributes_of(span).get("job.id") for span in tools()] == ["celery-like"] * 3


#: billiard's pool ended by ``terminate()`` while a call runs in its worker: SIGTERM, which billiard's own handler (set
#: in each worker after the fork, in place of agent-otel's) turns into SystemExit; the worker then reports its death
#: and waits a second before ``os._exit()``, and dies there of the pool's next SIGTERM (so it does without agent-otel).
BILLIARD_TERMINATED = """
import time
import billiard
import agent_otel

agent_otel.configure()


@agent_otel.agent("fast")
def fast(x):
    return {"success": True}


@agent_otel.agent("slow")
def slow(started):
    started.set()
    time.sleep(60)


if __name__ == "__main__":
    manager = billiard.Manager()
    started = manager.Event()
    pool = billiard.Pool(1)
    print(pool.apply(fast, (1,)))
    pool.apply_async(slow, (started,))
    started.wait(60)
    pool.terminate()
    pool.join()
    manager.shutdown()
"""


def test_a_billiard_worker_ended_by_sigterm_flushes_before_it_reports_its_death(tmp_path: Path) -> None:
    """billiard's SIGTERM handler replaces agent-otel's in each worker (Celery's prefork pool: ``terminate()``, a cold
    shutdown, ``kill -TERM`` of a worker): everything the worker recorded was lost, the calls that had ended too. It
    now flushes as its exit begins: the call that ended, and the one the signal's SystemExit ended."""
    with OtlpHttpReceiver() as receiver:
        _run_exporting(tmp_path, BILLIARD_TERMINATED, receiver, prints="{'success': True}\n")
        agents = lambda: {attributes_of(s).get("gen_ai.agent.name"): s for s in receiver.spans()  # noqa: E731
                          if s.name.startswith("invoke_agent")}
        wait_until(lambda: set(agents()) == {"fast", "slow"}, "both agent spans from the terminated worker")
        outcomes = {name: (attributes_of(span).get("agent.outcome"), attributes_of(span).get("error.type"))
                    for name, span in agents().items()}
        assert outcomes == {"fast": ("success", None), "slow": ("error", "SystemExit")}


#: What ``pytest --forked`` (py's ``ForkedFunc``) does for each test: fork, run it, leave by ``os._exit()``.
FORKED_OS_EXIT = """
import os
import agent_otel

agent_otel.configure()


@agent_otel.tool("forked")
def work(x):
    return x


with agent_otel.job("forked-tests"):
    child = os.fork()
    if child == 0:
        work(1)
        os._exit(3)
    print(os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]))
"""


def test_a_forked_child_that_leaves_by_os_exit_flushes_first(tmp_path: Path) -> None:
    """``os._exit()`` runs no exit hook: each test ``pytest --forked`` ran exported nothing. What the child queued is
    flushed first, and it still leaves with the status it gave."""
    with OtlpHttpReceiver() as receiver:
        _run_exporting(tmp_path, FORKED_OS_EXIT, receiver, prints="3\n")
        wait_until(lambda: any(s.name == "execute_tool forked" for s in receiver.spans()), "the child's tool span")
        [span] = [s for s in receiver.spans() if s.name == "execute_tool forked"]
        assert attributes_of(span).get("job.id") == "forked-tests"

