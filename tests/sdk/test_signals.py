"""agent-otel's threads leave the process's signals to the host's threads (see ``agent_otel._engine.threads``).

Before, a SIGTERM from ``Pool.terminate()`` that the kernel handed to an exporter thread of a pool worker left
the worker's main thread blocked on the task queue's semaphore for good, and the parent waited for the worker
for ever (its program in ``tests/context/test_worker_exit.py`` hung 1 run in 22 to 277 under CPU load). Which thread
takes a signal is the kernel's choice, so these tests read the signal mask of every thread instead
(``/proc/self/task/<tid>/status``), in real processes: the parent after ``configure()``, and a forked child
after its fork handler set agent-otel up again.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap

import pytest

from tests.support.environment import CLEAN_ENV

SCRIPT = textwrap.dedent("""
    import json, os, signal, sys, threading
    import agent_otel
    from agent_otel._calls.process_usage import ResourceSampler

    def masks():
        '''Each thread's name -> the signals it blocks (SigBlk in /proc: a bit per signal, signal n at bit n-1).'''
        blocked = {}
        for thread in threading.enumerate():
            try:
                # (a forked child's main thread keeps the parent's native_id on Python 3.11)
                tid = threading.get_native_id() if thread is threading.current_thread() else thread.native_id
                with open(f"/proc/self/task/{tid}/status") as status:
                    bits = int(next(line for line in status if line.startswith("SigBlk:")).split()[1], 16)
            except FileNotFoundError:  # ended since (in the child: the parent's exporters, shut down)
                continue
            blocked[thread.name] = [n for n in range(1, 65) if bits >> (n - 1) & 1]
        return blocked

    main_before = masks()["MainThread"]
    agent_otel.configure(prometheus_port=0)
    sampler = ResourceSampler()
    parent = masks()
    sampler.stop()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, json.dumps(masks()).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = json.loads(pipe.read())
    os.waitpid(pid, 0)
    print(json.dumps({"main_before": main_before, "parent": parent, "child": child}))
""")


def test_threads_of_ours_block_the_signals_sent_to_the_process_and_the_main_thread_keeps_its_mask() -> None:
    environment = {**CLEAN_ENV, "OTEL_TRACES_EXPORTER": "otlp", "OTEL_METRICS_EXPORTER": "otlp,prometheus",
                   "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=environment, capture_output=True, text=True,
                          timeout=120, check=True)
    found = json.loads(done.stdout)
    handled = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD, signal.SIGALRM}

    for where in ("parent", "child"):
        threads = found[where]
        assert threads["MainThread"] == found["main_before"], where
        ours = {name: blocked for name, blocked in threads.items() if name != "MainThread"}
        # the SDK's export threads that configure() starts, and ours (in the parent also /metrics and a sampler)
        assert {"OtelBatchSpanRecordProcessor", "OtelPeriodicExportingMetricReader"} <= set(ours), (where, ours)
        if where == "parent":
            assert {"agent-otel-metrics", "agent-otel-resource-sampler"} <= set(ours), ours
        for name, blocked in ours.items():
            assert handled <= set(blocked), (where, name, blocked)


GC_SIGNAL_SCRIPT = textwrap.dedent("""
    import gc, signal, sys
    import agent_otel
    if sys.argv[2] == "configured":
        agent_otel.configure(prometheus_port=0)

    class Interrupted(Exception):
        pass

    def handler(signum, frame):
        raise Interrupted

    signal.signal(signal.SIGALRM, signal.default_int_handler if sys.argv[1] == "ctrl-c" else handler)
    heap = []
    for _ in range(300_000):  # lists in cycles: a full collection looks at each of them
        node = [None]
        node[0] = node
        heap.append(node)

    def arm(phase, info):
        gc.callbacks.remove(arm)  # (the last callback: none is skipped)
        signal.setitimer(signal.ITIMER_REAL, 0.002)  # (no Python code of the test runs in the collection after this)

    gc.callbacks.append(arm)
    try:
        gc.collect()
        signal.setitimer(signal.ITIMER_REAL, 0)
        print("went on")
    except (KeyboardInterrupt, Interrupted) as exc:
        print(type(exc).__name__)
""")


@pytest.mark.parametrize("handler", ["ctrl-c", "the program's"])
@pytest.mark.parametrize("setup", ["imported", "configured"])
def test_a_signal_that_arrives_during_a_garbage_collection_reaches_the_programs_code(handler: str, setup: str) -> None:
    """Python runs a signal's handler at the next Python code it runs. agent-otel's ``gc.callbacks`` were Python
    functions, run at the end of every collection: a Ctrl-C that arrived during one raised its KeyboardInterrupt in
    them, where the collector prints it as ignored and drops it; the program went on (a trio program for good). The
    timer fires 2 ms into a collection of 300,000 objects (a collection that ends sooner makes it reach the program
    after it either way)."""
    done = subprocess.run([sys.executable, "-c", GC_SIGNAL_SCRIPT, handler, setup], env=CLEAN_ENV,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["KeyboardInterrupt" if handler == "ctrl-c" else "Interrupted"]
    assert "Exception ignored" not in done.stderr
