"""The life of a configuration: configure() after shutdown(), forked children and pre-fork workers, and
the exit flush with a collector that is down.

Whatever sets OTel's process-global providers runs in a child interpreter, so tests stay independent.
Hang detection (:func:`completes`) and counted requests, never durations: the exit-time figures are in
``make bench``.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from agent_otel import ConfigurationError, semconv
from agent_otel._ops.stack import free_port
from agent_otel._sdk import configure as sdk_configure
from tests.support.environment import CLEAN_ENV
from tests.support.forked_children import TERMINATE_FORKED_CHILDREN, stderr_but_fork_warnings
from tests.support.otlp_receiver import OtlpHttpReceiver, attributes_of, data_points_of
from tests.support.paths import ROOT
from tests.support.polling import wait_until
from tests.support.reliability import completes

#: Hang detection only: far above a normal run, far below what a child waiting for its parent's threads
#: (or an exit flush retrying a collector) takes with the budgets the tests set.
DEADLINE_S = 60.0


def run_child(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env={**CLEAN_ENV, **env}, cwd=ROOT,
                              capture_output=True, text=True, timeout=300)

    child, _ = completes(run, "the child interpreter to exit", timeout_s=DEADLINE_S)
    assert child.returncode == 0, child.stderr
    return child


def last_json(child: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(child.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------------------
# configure() after shutdown()
# --------------------------------------------------------------------------------------------------


def test_the_handle_shows_what_a_program_reads_of_it_in_one_line() -> None:
    """A notebook shows the value of ``configure()`` on a cell's last line: its repr was the whole dataclass, some
    1.5 kB of providers, processors and arguments (the interactive-host probe)."""
    child = run_child("""
        import agent_otel

        handle = agent_otel.configure(prometheus_port=0)
        shown = f"Telemetry(set_up=True, prometheus_url={handle.prometheus_url!r}, metrics_unserved=None)"
        print(repr(handle) == shown, handle.prometheus_url.startswith("http://"))
    """)
    assert child.stdout.splitlines() == ["True True"]
    disabled = run_child("import agent_otel; print(repr(agent_otel.configure()))", AGENT_OTEL_ENABLED="false")
    assert disabled.stdout.splitlines() == ["Telemetry(set_up=False, prometheus_url=None, metrics_unserved=None)"]


def test_configure_after_shutdown_sets_up_again() -> None:
    child = run_child("""
        import json, urllib.request
        from opentelemetry import metrics, trace
        import agent_otel

        first = agent_otel.configure(prometheus_port=0)
        agent_otel.shutdown()
        second = agent_otel.configure(prometheus_port=0)
        with agent_otel.job("again"):
            pass
        body = urllib.request.urlopen(second.prometheus_url, timeout=30).read().decode()
        print(json.dumps({
            "url": second.prometheus_url,
            "fresh": second.tracer_provider is not first.tracer_provider
                     and second.meter_provider is not first.meter_provider,
            "global": trace.get_tracer_provider() is second.tracer_provider
                      and metrics.get_meter_provider() is second.meter_provider,
            "job_counted": 'job_type="default"' in body,
        }))
        agent_otel.shutdown()
    """)
    result = last_json(child)
    assert result["url"] is not None
    assert result == {**result, "fresh": True, "global": True, "job_counted": True}


def test_calls_after_shutdown_run_as_plain_with_nothing_on_stderr_and_still_record_into_a_hosts_providers() -> None:
    """After shutdown() the providers we built are shut down: a call, and a generator of ours closed late, must
    not ask them for a meter (the SDK's warning reached the host's stderr). A host's providers, only flushed,
    still get what later calls record."""
    child = run_child("""
        import json
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        import agent_otel

        @agent_otel.tool("lookup")
        def lookup(x):
            return x

        @agent_otel.tool("numbers")
        def numbers():
            yield 1
            yield 2

        agent_otel.configure(metrics_exporter="none")
        pending = numbers()
        first = (lookup(1), next(pending))
        agent_otel.shutdown()
        after = (lookup(2), next(pending))
        pending.close()

        reader = InMemoryMetricReader()
        agent_otel.configure(meter_provider=MeterProvider(metric_readers=[reader]))
        agent_otel.shutdown()
        lookup(3)
        points = [point for resource in reader.get_metrics_data().resource_metrics for scope in resource.scope_metrics
                  for metric in scope.metrics if metric.name == "gen_ai.execute_tool.duration"
                  for point in metric.data.data_points]

        spans = InMemorySpanExporter()  # both given, not installed globally (as agent_otel.testing does)
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
        agent_otel.configure(tracer_provider=tracer_provider, meter_provider=MeterProvider(), set_global=False)
        agent_otel.shutdown()
        lookup(4)
        print(json.dumps({"results": [first, after], "host_calls": sum(point.count for point in points),
                          "host_spans": [span.name for span in spans.get_finished_spans()]}))
    """)
    assert child.stderr == ""
    assert last_json(child) == {"results": [[1, 1], [2, 2]], "host_calls": 1, "host_spans": ["execute_tool lookup"]}


# --------------------------------------------------------------------------------------------------
# Forked children
# --------------------------------------------------------------------------------------------------


def test_a_forked_child_neither_inherits_nor_waits_for_the_parents_server() -> None:
    # A long exit budget: a child that waits for the parent's /metrics thread exceeds DEADLINE_S.
    child = run_child("""
        import json, os, sys, threading, urllib.request
        import agent_otel

        telemetry = agent_otel.configure(prometheus_port=0)
        url = telemetry.prometheus_url
        pid = os.fork()
        if pid == 0:
            names = sorted(t.name for t in threading.enumerate())
            mine = agent_otel._sdk.configure.current_telemetry()
            print(json.dumps({"threads": names, "server": mine.prometheus_server is not None,
                              "fresh": mine is not telemetry}), flush=True)
            sys.exit(0)  # a normal exit: atexit hooks run
        _, status = os.waitpid(pid, 0)
        body = urllib.request.urlopen(url, timeout=30).read().decode()  # the parent still serves
        print(json.dumps({"status": status, "parent_serves": "target_info" in body}))
    """, AGENT_OTEL_EXIT_FLUSH_TIMEOUT_MS="120000")
    in_child, in_parent = (json.loads(line) for line in child.stdout.strip().splitlines()[-2:])
    assert in_parent == {"status": 0, "parent_serves": True}
    assert "agent-otel-metrics" not in in_child["threads"]
    assert in_child["server"] is False and in_child["fresh"] is True


@pytest.fixture()
def receiver() -> Iterator[OtlpHttpReceiver]:
    with OtlpHttpReceiver() as started:
        yield started


def job_counts_per_process(receiver: OtlpHttpReceiver) -> dict[int, int]:
    """job.duration counts per ``process.pid`` of the exporting resource (cumulative: the last export)."""
    counts: dict[int, int] = {}
    for request in list(receiver.metrics):
        for resource_metrics in request.resource_metrics:
            pid = attributes_of(resource_metrics.resource).get("process.pid")
            for scope in resource_metrics.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == semconv.JOB_DURATION.name:
                        counts[pid] = sum(point.count for point in data_points_of(metric))
    return counts


def test_prefork_workers_export_their_own_metrics_not_a_copy_of_the_parents(receiver: OtlpHttpReceiver) -> None:
    child = run_child("""
        import json, os, sys
        import agent_otel

        agent_otel.configure(service_name="prefork")
        for _ in range(3):  # the parent's own work, before and after the fork
            with agent_otel.job("served"):
                pass
        workers = []
        for _ in range(2):
            pid = os.fork()
            if pid == 0:
                with agent_otel.job("served"):
                    pass
                sys.exit(0)
            workers.append(pid)
        statuses = [os.waitpid(pid, 0)[1] for pid in workers]
        print(json.dumps({"parent": os.getpid(), "workers": workers, "statuses": statuses}))
    """, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_EXPORTER_OTLP_PROTOCOL=receiver.protocol)
    pids = last_json(child)
    assert pids["statuses"] == [0, 0]
    expected = {None: 3, **{worker: 1 for worker in pids["workers"]}}  # the parent's resource has no process.pid
    wait_until(lambda: job_counts_per_process(receiver) == expected, "each process's own job count",
               timeout_s=DEADLINE_S)
    worker_spans = Counter(attributes_of(rs.resource).get("process.pid")
                           for request in list(receiver.traces) for rs in request.resource_spans
                           for scope in rs.scope_spans for _ in scope.spans)
    assert {worker: worker_spans[worker] for worker in pids["workers"]} == {worker: 1 for worker in pids["workers"]}


def spans_per_process(receiver: OtlpHttpReceiver) -> Counter[tuple[int | None, str]]:
    return Counter((attributes_of(rs.resource).get("process.pid"), span.name) for request in list(receiver.traces)
                   for rs in request.resource_spans for scope in rs.scope_spans for span in scope.spans)


def sums_per_process(receiver: OtlpHttpReceiver, name: str) -> dict[int | None, int]:
    """A cumulative counter's value per ``process.pid`` (the last export wins)."""
    values: dict[int | None, int] = {}
    for request in list(receiver.metrics):
        for resource_metrics in request.resource_metrics:
            pid = attributes_of(resource_metrics.resource).get("process.pid")
            for scope in resource_metrics.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        values[pid] = sum(point.as_int for point in data_points_of(metric))
    return values


def test_prefork_workers_export_what_the_parents_tracers_meters_and_processors_record(
        receiver: OtlpHttpReceiver, tmp_path: Path) -> None:
    """A tracer, a counter and a span processor of the program's, made after configure() and before the fork
    (a module's tracer under ``agent-otel run``, an instrumentation's, a Celery or gunicorn --preload worker's):
    every worker, and a worker's own child, exports what it records through them with its own resource, from zero,
    and the program's processors see each of its spans once, ours too, one added in the worker (a post-fork hook)
    included, also in the worker's child; the counter taken again in the worker is the same one. A worker set up
    again (``shutdown()``, ``configure()``) keeps them. A span started before the fork is the parent's, and its
    copy that a worker ends is hashed there too. Nothing on stderr, logging at INFO. Before, all of it was lost in
    the workers."""
    seen = tmp_path / "seen"
    child = run_child("""
        import json, logging, os, sys, time
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.trace import SpanProcessor
        import agent_otel

        logging.basicConfig(level=logging.INFO)  # the SDK's notes too (Celery's workers log at INFO)

        class Seen(SpanProcessor):  # the program's own processors, on the global provider
            def __init__(self, name):
                self.name = name
            def on_end(self, span):
                clear = " CLEAR" if span.attributes.get("user.id") == "alice" else ""
                with open(os.environ["SEEN"], "a") as out:
                    out.write(f"{self.name} {os.getpid()} {span.name}{clear}\\n")

        agent_otel.configure(service_name="prefork")
        trace.get_tracer_provider().add_span_processor(Seen("parent's"))
        tracer = trace.get_tracer("program")
        requests = metrics.get_meter("program").create_counter("program.requests")

        def observed(options):  # how often each process runs it
            with open(os.environ["SEEN"] + ".callbacks", "a") as out:
                out.write(f"{os.getpid()}\\n")
            return []

        metrics.get_meter("program").create_observable_gauge("program.observed", [observed])

        def work(count):
            with tracer.start_as_current_span("served"):
                requests.add(count)
            with agent_otel.job("served"):
                pass

        work(5)
        before = tracer.start_span("before the fork")  # the parent's: a worker's copy ends unexported
        forked_at = time.time_ns()
        workers = []
        for index in range(3):
            pid = os.fork()
            if pid == 0:
                before.set_attribute("user.id", "alice")  # hashed, as the parent's copy is
                before.end()
                if index == 0:  # a post-fork hook's processor, the counter taken again, a span with a past start
                    trace.get_tracer_provider().add_span_processor(Seen("worker's"))
                    requests = metrics.get_meter("program").create_counter("program.requests")
                    tracer.start_span("started earlier", start_time=forked_at - 10**9).end()
                if index == 2:  # set up again in the worker
                    agent_otel.shutdown()
                    agent_otel.configure(service_name="prefork")
                work(1)
                if index == 0:  # a worker's own child
                    grandchild = os.fork()
                    if grandchild == 0:
                        work(2)
                        sys.exit(0)
                    print(json.dumps({"grandchild": grandchild, "status": os.waitpid(grandchild, 0)[1]}), flush=True)
                sys.exit(0)
            workers.append(pid)
        statuses = [os.waitpid(pid, 0)[1] for pid in workers]
        before.set_attribute("user.id", "alice")
        before.end()
        print(json.dumps({"workers": workers, "statuses": statuses}))
    """, SEEN=str(seen), OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_EXPORTER_OTLP_PROTOCOL=receiver.protocol,
                      AGENT_OTEL_HASHED_KEYS="user.id")
    assert stderr_but_fork_warnings(child) == ""
    inner, outer = (json.loads(line) for line in child.stdout.strip().splitlines()[-2:])
    assert outer["statuses"] == [0, 0, 0] and inner["status"] == 0
    workers, grandchild = outer["workers"], inner["grandchild"]
    expected_sums = {None: 5, **dict.fromkeys(workers, 1), grandchild: 2}  # the parent's resource has no process.pid
    wait_until(lambda: sums_per_process(receiver, "program.requests") == expected_sums,
               "each process's own count of the program's counter, one series each", timeout_s=DEADLINE_S)
    wait_until(lambda: spans_per_process(receiver)[(None, "before the fork")] == 1, "the parent's span")
    spans = spans_per_process(receiver)
    job_span = semconv.job_span_name("default")
    exported = {pid: Counter({name: count for (where, name), count in spans.items() if where == pid})
                for pid in (*workers, grandchild)}
    assert exported == {**{pid: Counter({"served": 1, job_span: 1}) for pid in (*workers[1:], grandchild)},
                        workers[0]: Counter({"served": 1, job_span: 1, "started earlier": 1})}
    callbacks = Counter(Path(f"{seen}.callbacks").read_text().split())
    # no more in the worker's child than in the worker: no reader of a parent's collects there again
    assert 0 < callbacks[str(grandchild)] <= callbacks[str(workers[0])], callbacks
    lines = seen.read_text().splitlines()
    assert not [line for line in lines if line.endswith(" CLEAR")]
    for name, pid in [("parent's", pid) for pid in (*workers, grandchild)] + [
            ("worker's", workers[0]), ("worker's", grandchild)]:
        expected = Counter(exported[pid])
        if name == "parent's" and pid != grandchild:  # its own copy of the parent's span, as without agent-otel
            expected["before the fork"] += 1
        assert Counter(line.split(" ", 2)[2] for line in lines if line.split(" ", 2)[:2] == [name, str(pid)]) == (
            expected), (name, pid, lines)


def test_a_worker_exports_the_system_metrics_the_program_turned_on_itself(receiver: OtlpHttpReceiver) -> None:
    """agent-otel leaves its own system metrics out of what a worker reads from the parent's meter provider (the
    worker sets up its own); those the program turned on itself (``system_metrics=False``) are the program's, and
    were left out too."""
    child = run_child("""
        import json, os, sys
        from opentelemetry.instrumentation.system_metrics import SystemMetricsInstrumentor
        import agent_otel

        agent_otel.configure(service_name="prefork", system_metrics=False)
        SystemMetricsInstrumentor(config={"system.memory.usage": ["used"]}).instrument()
        pid = os.fork()
        if pid == 0:
            sys.exit(0)
        print(json.dumps({"worker": pid, "status": os.waitpid(pid, 0)[1]}))
    """, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_EXPORTER_OTLP_PROTOCOL=receiver.protocol)
    worker = last_json(child)["worker"]

    def exporting() -> set[int | None]:
        return {attributes_of(rm.resource).get("process.pid") for request in list(receiver.metrics)
                for rm in request.resource_metrics for scope in rm.scope_metrics for metric in scope.metrics
                if metric.name == "system.memory.usage"}

    wait_until(lambda: exporting() == {None, worker}, "system.memory.usage from the parent and the worker",
               timeout_s=DEADLINE_S)


def test_a_capture_in_a_worker_holds_what_it_holds_in_the_parent() -> None:
    """``agent_otel.testing.capture_telemetry()`` takes agent-otel's telemetry, not the program's own spans, which go
    to the global provider: in a worker, the spans of the parent's tracers were forwarded into the capture."""
    child = run_child("""
        import json, os, sys
        from opentelemetry import trace
        import agent_otel
        from agent_otel.testing import capture_telemetry

        agent_otel.configure(service_name="prefork")
        tracer = trace.get_tracer("program")

        def captured():
            with capture_telemetry() as otel:
                with tracer.start_as_current_span("program"):
                    with agent_otel.job("served"):
                        pass
            return sorted(span.name for span in otel.spans())

        pid = os.fork()
        if pid == 0:
            print(json.dumps(captured()), flush=True)
            sys.exit(0)
        os.waitpid(pid, 0)
        print(json.dumps(captured()))
    """, OTEL_METRICS_EXPORTER="none")  # no /metrics on the default port, which other tests may hold
    in_worker, in_parent = (json.loads(line) for line in child.stdout.strip().splitlines()[-2:])
    assert in_worker == in_parent == [semconv.job_span_name("default")]


def test_the_fork_handler_runs_none_of_the_programs_observable_callbacks() -> None:
    """Retiring the parent's metric readers in a worker collected from them: the program's callbacks ran in the fork
    handler, where one that waited for a lock a thread of the parent held at the fork hung the worker in
    ``os.fork()`` for ever (without agent-otel they run only when the worker's own reader collects)."""
    child = run_child("""
        import json, os, sys
        from opentelemetry import metrics
        import agent_otel

        agent_otel.configure(service_name="prefork")
        runs = []
        metrics.get_meter("program").create_observable_gauge("program.observed", [lambda options: runs.append(1) or []])
        pid = os.fork()
        if pid == 0:
            print(json.dumps({"runs in the fork handler": len(runs)}), flush=True)
            os._exit(0)
        os.waitpid(pid, 0)
    """, OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9", OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
                      AGENT_OTEL_EXIT_FLUSH_TIMEOUT_MS="100")
    assert last_json(child) == {"runs in the fork handler": 0}


def test_a_worker_flushes_through_the_global_and_the_kept_providers_and_forks_again(
        receiver: OtlpHttpReceiver) -> None:
    """In a worker, ``force_flush()`` of the global meter provider exported none of the program's metrics (they are
    on the parent's provider), that of a tracer provider the program kept from before the fork returned False and
    exported nothing; a span of a parent's tracer still open when the worker forked again was exported by both."""
    child = run_child("""
        import json, os, signal, sys
        from opentelemetry import metrics, trace
        import agent_otel

        agent_otel.configure(service_name="prefork")
        kept, tracer = trace.get_tracer_provider(), trace.get_tracer("program")
        metrics.get_meter("program").create_counter("program.requests").add(7)
        pid = os.fork()
        if pid == 0:
            metrics.get_meter("program").create_counter("program.requests").add(3)
            tracer.start_span("flushed").end()
            open_here = tracer.start_span("open at the second fork")
            grandchild = os.fork()
            open_here.end()
            if grandchild == 0:
                os._exit(0)
            os.waitpid(grandchild, 0)
            flushed = [metrics.get_meter_provider().force_flush(), kept.force_flush()]
            print(json.dumps({"flushed": flushed}), flush=True)
            os.kill(os.getpid(), signal.SIGKILL)  # no exit flush: what the flushes sent is all there is
        os.waitpid(pid, 0)
        print(json.dumps({"worker": pid}))
    """, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_EXPORTER_OTLP_PROTOCOL=receiver.protocol)
    in_worker, in_parent = (json.loads(line) for line in child.stdout.strip().splitlines()[-2:])
    assert in_worker == {"flushed": [True, True]}
    worker = in_parent["worker"]
    wait_until(lambda: sums_per_process(receiver, "program.requests").get(worker) == 3, "the worker's flushed count",
               timeout_s=DEADLINE_S)
    wait_until(lambda: spans_per_process(receiver)[(worker, "open at the second fork")] == 1, "the worker's spans")
    spans = spans_per_process(receiver)
    assert spans[(worker, "flushed")] == 1
    assert sum(count for (_, name), count in spans.items() if name == "open at the second fork") == 1


def test_a_worker_forked_while_its_parent_collects_metrics_goes_on() -> None:
    """The parent's collection holds the measurement lock of its meter provider, which stays taken for good in a
    child forked meanwhile: adding the child's reader to that provider hung it in ``os.fork()``. It goes on without
    that reader now, and counts why."""
    child = run_child("""
        import json, os, threading
        from opentelemetry import metrics
        import agent_otel

        agent_otel.configure(service_name="prefork")
        collecting, released = threading.Event(), threading.Event()

        def observe(options):
            collecting.set()
            released.wait(60)
            return []

        metrics.get_meter("program").create_observable_gauge("program.observed", [observe])
        flushing = threading.Thread(target=metrics.get_meter_provider().force_flush)
        flushing.start()
        collecting.wait(60)
        pid = os.fork()
        if pid == 0:
            print(json.dumps({"forked": True}), flush=True)
            os._exit(0)
        released.set()
        flushing.join()
        print(json.dumps({"status": os.waitpid(pid, 0)[1]}))
    """, OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9", OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
                      AGENT_OTEL_EXIT_FLUSH_TIMEOUT_MS="100")
    in_worker, in_parent = (json.loads(line) for line in child.stdout.strip().splitlines()[-2:])
    assert in_worker == {"forked": True} and in_parent == {"status": 0}
    assert stderr_but_fork_warnings(child) == ""


def test_a_worker_shuts_down_through_the_global_or_the_kept_meter_provider(receiver: OtlpHttpReceiver) -> None:
    """``shutdown()`` of the global meter provider in a worker, or of the one the program kept from before the fork,
    exported none of the program's metrics (and the kept one's said "Can't shutdown multiple times" on stderr)."""
    child = run_child("""
        import json, os, signal
        from opentelemetry import metrics
        import agent_otel

        agent_otel.configure(service_name="prefork")
        kept = metrics.get_meter_provider()
        metrics.get_meter("program").create_counter("program.requests").add(7)
        workers = []
        for provider in ("global", "kept"):
            pid = os.fork()
            if pid == 0:
                metrics.get_meter("program").create_counter("program.requests").add(3)
                (metrics.get_meter_provider() if provider == "global" else kept).shutdown()
                os.kill(os.getpid(), signal.SIGKILL)  # no exit flush: what the shutdown sent is all there is
            os.waitpid(pid, 0)
            workers.append(pid)
        print(json.dumps({"workers": workers}))
    """, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_EXPORTER_OTLP_PROTOCOL=receiver.protocol)
    assert stderr_but_fork_warnings(child) == ""
    workers = last_json(child)["workers"]
    wait_until(lambda: all(sums_per_process(receiver, "program.requests").get(pid) == 3 for pid in workers),
               "each worker's count, sent by its shutdown", timeout_s=DEADLINE_S)


def test_a_worker_of_a_configuration_not_set_global_forwards_the_spans_of_the_parents_tracers(
        receiver: OtlpHttpReceiver) -> None:
    """``configure(set_global=False)``: its providers are not the global ones, but those of the program's tracers
    and meters taken from them; a worker exported the meters' measurements, not the spans."""
    child = run_child("""
        import json, os, sys
        import agent_otel

        telemetry = agent_otel.configure(service_name="prefork", set_global=False)
        tracer = telemetry.tracer_provider.get_tracer("program")
        pid = os.fork()
        if pid == 0:
            tracer.start_span("in the worker").end()
            sys.exit(0)
        os.waitpid(pid, 0)
        print(json.dumps({"worker": pid}))
    """, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_EXPORTER_OTLP_PROTOCOL=receiver.protocol)
    worker = last_json(child)["worker"]
    wait_until(lambda: spans_per_process(receiver)[(worker, "in the worker")] == 1, "the worker's span",
               timeout_s=DEADLINE_S)


# --------------------------------------------------------------------------------------------------
# The exit flush with a collector that is down
# --------------------------------------------------------------------------------------------------


class Unavailable:
    """An OTLP/HTTP endpoint that answers every export 503 (retryable) and counts the attempts."""

    def __init__(self) -> None:
        self.attempts: Counter[str] = Counter()
        attempts = self.attempts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                attempts[self.path] += 1
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


@pytest.fixture()
def unavailable() -> Iterator[Unavailable]:
    endpoint = Unavailable()
    endpoint.thread.start()
    yield endpoint
    endpoint.server.shutdown()
    endpoint.server.server_close()


def test_exit_flush_tries_a_failing_collector_once_and_counts_the_loss(unavailable: Unavailable) -> None:
    child = run_child("""
        import json
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        import agent_otel
        from agent_otel import semconv
        from agent_otel._sdk.configure import shutdown_at_exit

        reader = InMemoryMetricReader()
        agent_otel.configure(traces_exporter="otlp", meter_provider=MeterProvider(metric_readers=[reader]))
        for _ in range(3):
            with agent_otel.job("lost"):
                pass
        shutdown_at_exit()
        lost = {point.attributes[semconv.INSTRUMENTATION_STAGE]: point.value
                for rm in reader.get_metrics_data().resource_metrics for sm in rm.scope_metrics
                for metric in sm.metrics if metric.name == semconv.INSTRUMENTATION_ERRORS.name
                for point in metric.data.data_points}
        print(json.dumps(lost))
    """, OTEL_EXPORTER_OTLP_ENDPOINT=unavailable.endpoint, OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        AGENT_OTEL_EXIT_FLUSH_TIMEOUT_MS="120000")
    assert last_json(child) == {"export.traces": 3}
    assert unavailable.attempts == {"/v1/traces": 1}


HOST_PROVIDER_EXPORTS = """
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, PeriodicExportingMetricReader

    class Printing(MetricExporter):
        def export(self, metrics_data, timeout_millis=10_000, **kwargs):
            print("host export", flush=True)
            return MetricExportResult.SUCCESS

        def force_flush(self, timeout_millis=10_000):
            return True

        def shutdown(self, timeout_millis=30_000, **kwargs):
            pass

    metrics.set_meter_provider(MeterProvider(metric_readers=[
        PeriodicExportingMetricReader(Printing(), export_interval_millis=10**8)], shutdown_on_exit=SHUTDOWN_ON_EXIT))
"""


@pytest.mark.parametrize(("setup", "own_exit_hook"), [("configure", True), ("launcher", True), ("configure", False)])
def test_at_exit_the_hosts_provider_exports_once_in_its_own_exit_hook(setup: str, own_exit_hook: bool,
                                                                       tmp_path: Path) -> None:
    """A distro's providers (``opentelemetry-instrument agent-otel run``) were flushed by agent-otel's exit flush and
    then shut down by their own exit hook: two exports, and with the collector down their exporters' retries, which
    agent-otel cannot stop, ran twice (the exit twice as long as the distro's alone; probe p49e). The host's exit
    hook, which follows ours, exports what agent-otel recorded; one export at exit, as without agent-otel. A provider
    made with ``shutdown_on_exit=False`` has no exit hook: agent-otel's exit flush exports it, as before (review
    rv62: it exported nothing)."""
    host = textwrap.dedent(HOST_PROVIDER_EXPORTS).replace("SHUTDOWN_ON_EXIT", str(own_exit_hook))
    program = textwrap.dedent("""
        import agent_otel
        with agent_otel.job("work"):
            pass
        print("done", flush=True)
    """)
    if setup == "configure":
        child = run_child(host + "import agent_otel\nagent_otel.configure()\n" + program)
    else:  # a distro's sitecustomize makes the providers as the launcher starts (``opentelemetry-instrument agent-otel
        # run``), and the launcher sets up on them before the program runs
        (tmp_path / "distro").mkdir()
        (tmp_path / "distro" / "sitecustomize.py").write_text(host)
        (tmp_path / "app.py").write_text(program)
        child = subprocess.run([str(Path(sys.executable).parent / "agent-otel"), "run", "--", sys.executable, "app.py"],
                               cwd=tmp_path, env={**CLEAN_ENV, "PYTHONPATH": str(tmp_path / "distro")},
                               capture_output=True, text=True, timeout=300)
        assert child.returncode == 0, child.stderr
    assert child.stdout.splitlines() == ["done", "host export"], child.stderr


@pytest.mark.parametrize("shut_down_by_the_program", [False, True])
def test_on_the_hosts_providers_what_still_runs_at_exit_ends_before_they_export(shut_down_by_the_program: bool) -> None:
    """``configure()`` on a program's own tracer and meter providers registered no exit hook: a job and an agent call
    still running on a daemon thread at exit, and a tool's generator left suspended, never ended, and the providers'
    own exit hooks exported none of their spans. They end first now, as on agent-otel's own providers, and the host's
    exit hook exports them (closed before their end, as on agent-otel's). A program that shut its providers down
    itself sees nothing more at exit: ending those spans there made the SDK's processor warn of each on stderr."""
    child = run_child(f"""
        import threading, time
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

        class Printing(SpanExporter):
            def export(self, spans):
                for span in spans:
                    print("exported", span.name, span.status.status_code.name, flush=True)
                return SpanExportResult.SUCCESS

        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(Printing()))
        trace.set_tracer_provider(tracer_provider)
        meter_provider = MeterProvider()
        metrics.set_meter_provider(meter_provider)
        import agent_otel

        telemetry = agent_otel.configure()
        assert not (telemetry.owns_tracer_provider or telemetry.owns_meter_provider)

        @agent_otel.agent("worker")
        def work():
            time.sleep(300)

        @agent_otel.tool("reader")
        def lines():
            yield 1
            yield 2

        started = threading.Event()

        def background():
            with agent_otel.job(type="background"):
                started.set()
                work()

        threading.Thread(target=background, daemon=True).start()
        started.wait()
        suspended = lines()
        next(suspended)
        if {shut_down_by_the_program}:
            tracer_provider.shutdown()
            meter_provider.shutdown()
        print("done", flush=True)
    """)
    assert child.returncode == 0, child.stderr
    exported = child.stdout.splitlines()
    if shut_down_by_the_program:
        assert exported == ["done"]
        assert child.stderr == ""
    else:
        assert exported[0] == "done"
        assert sorted(exported[1:]) == ["exported execute_tool reader UNSET", "exported invoke_agent worker UNSET",
                                        "exported invoke_workflow background UNSET"], child.stderr


def test_the_exit_hook_runs_before_the_exit_hooks_of_providers_made_after_an_earlier_configuration() -> None:
    """agent-otel's exit hook was registered once, by the first set-up (a test suite's capture): the program's own
    providers, made and configured after it, registered their exit hooks later, which ran first, and a call still
    running at exit was never exported (review rv63). Each set-up registers it again."""
    child = run_child("""
        import threading, time
        import agent_otel
        from agent_otel.testing import capture_telemetry
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

        class Printing(SpanExporter):
            def export(self, spans):
                for span in spans:
                    print("exported", span.name, flush=True)
                return SpanExportResult.SUCCESS

        with capture_telemetry():
            pass
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(Printing()))
        agent_otel.configure(tracer_provider=tracer_provider, meter_provider=MeterProvider())
        started = threading.Event()

        @agent_otel.agent("worker")
        def work():
            started.set()
            time.sleep(300)

        threading.Thread(target=work, daemon=True).start()
        started.wait()
        print("done", flush=True)
    """)
    assert child.stdout.splitlines() == ["done", "exported invoke_agent worker"], child.stderr


def test_on_the_programs_providers_none_is_flushed_at_exit_but_by_its_own_exit_hook() -> None:
    """Owning neither provider, agent-otel leaves the program's to it at exit, as without agent-otel: one made with
    ``shutdown_on_exit=False`` was flushed by agent-otel's exit hook (review rv63: its exporters' retries, which
    agent-otel cannot stop, lengthened the exit and printed theirs against a Collector that was down)."""
    host = textwrap.dedent(HOST_PROVIDER_EXPORTS).replace("SHUTDOWN_ON_EXIT", "False")
    child = run_child(host + textwrap.dedent("""
        from opentelemetry.sdk.trace import TracerProvider
        import agent_otel

        telemetry = agent_otel.configure(tracer_provider=TracerProvider(shutdown_on_exit=False))
        assert not (telemetry.owns_tracer_provider or telemetry.owns_meter_provider)
        with agent_otel.job("work"):
            pass
        print("done", flush=True)
    """))
    assert child.stdout.splitlines() == ["done"], child.stderr


def test_a_forked_childs_exit_hooks_keep_the_parents_order() -> None:
    """A program's exit hook registered after ``configure()`` runs before agent-otel's exit flush, which exports what
    it records. In a forked child that leaves by ``sys.exit()`` (a pre-fork server's worker), the child's set-up
    registered the flush again, after it: what the program's hook recorded was never exported (review rv64)."""
    child = run_child("""
        import atexit, os, sys
        import agent_otel

        agent_otel.configure(traces_exporter="console", metrics_exporter="none")

        def at_exit():
            with agent_otel.job(type="at-exit"):
                pass

        atexit.register(at_exit)
        pid = os.fork()
        if pid == 0:
            sys.exit(0)
        os.waitpid(pid, 0)
        os._exit(0)  # (only the child's exit is looked at)
    """)
    assert '"name": "invoke_workflow at-exit"' in child.stdout, child.stderr


def test_a_child_forked_during_a_shutdown_on_another_thread_exits() -> None:
    """A thread in ``shutdown()`` (a slow flush) holds agent-otel's lock as the program forks: the child's exit hook,
    registered now on the program's providers too, waited for it for ever (review rv63). The child's lock is its own."""
    child = run_child("""
        import os, sys, threading, time
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
        import agent_otel

        flushing, reaped_child = threading.Event(), threading.Event()

        class Slow(SpanProcessor):  # (no lock of the SDK's held across the fork: only agent-otel's)
            def force_flush(self, timeout_millis=30_000):
                flushing.set()
                reaped_child.wait(60)  # holds the lock until the child is reaped (or killed)
                return True

        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(Slow())
        agent_otel.configure(tracer_provider=tracer_provider, meter_provider=MeterProvider())
        stopping = threading.Thread(target=agent_otel.shutdown)
        stopping.start()
        flushing.wait()
        pid = os.fork()
        if pid == 0:
            sys.exit(0)
        deadline, reaped = time.monotonic() + 30, 0
        while not reaped and time.monotonic() < deadline:
            reaped = os.waitpid(pid, os.WNOHANG)[0]
            time.sleep(0.05)
        stuck = not reaped
        if stuck:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        reaped_child.set()
        stopping.join()
        print("stuck" if stuck else "exited", flush=True)
    """)
    assert child.stdout.splitlines()[-1] == "exited", child.stderr


def test_a_forked_child_leaving_by_os_exit_tries_a_failing_collector_once(unavailable: Unavailable) -> None:
    """``os._exit()`` flushes first (a forked RQ work-horse leaves so after each job): the exporters backed off and
    retried until the whole exit budget was gone, on every job, where the exit flush tries once."""
    child = run_child("""
        import os
        import agent_otel

        agent_otel.configure(traces_exporter="otlp", metrics_exporter="none")
        pid = os.fork()
        if pid == 0:
            with agent_otel.job("work-horse"):
                pass
            os._exit(0)
        print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    """, OTEL_EXPORTER_OTLP_ENDPOINT=unavailable.endpoint, OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        AGENT_OTEL_EXIT_FLUSH_TIMEOUT_MS="120000")
    assert child.stdout.splitlines()[-1] == "0"
    assert unavailable.attempts["/v1/traces"] == 1  # the child's export, once (the parent exported no span)


def test_an_exec_searching_path_flushes_once_and_tries_a_failing_collector_once(unavailable: Unavailable) -> None:
    """``os.execvp`` tries each directory of ``PATH`` through ``os.execv``, and each of those flushed, with retries:
    a command in the fourth directory cost four flushes, each the whole budget against a Collector that is down (an
    IPython ``!cmd`` goes through pexpect's fork and ``execv``: 1.1 s instead of 0.1 s). Once now, each exporter trying
    once, as at exit."""
    child = run_child("""
        import os, shutil
        import agent_otel

        agent_otel.configure(traces_exporter="otlp", metrics_exporter="otlp", system_metrics=False)
        with agent_otel.job("handing-over"):
            pass
        found = os.path.dirname(shutil.which("true"))
        os.environ["PATH"] = os.pathsep.join(["/nonexistent/a", "/nonexistent/b", "/nonexistent/c", found])
        os.execvp("true", ["true"])
    """, OTEL_EXPORTER_OTLP_ENDPOINT=unavailable.endpoint, OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        AGENT_OTEL_EXIT_FLUSH_TIMEOUT_MS="3000", OTEL_METRIC_EXPORT_INTERVAL="3600000")
    assert child.returncode == 0
    assert unavailable.attempts == {"/v1/traces": 1, "/v1/metrics": 1}


def test_an_exec_that_fails_leaves_the_exporters_retrying(unavailable: Unavailable) -> None:
    """The flush before an exec tries each exporter once; the exec may fail (no such program) and the process go on:
    its exporters made single attempts from then on, ``shutdown()``'s included, which retries (review rv52)."""
    child = run_child("""
        import os
        import agent_otel

        agent_otel.configure(traces_exporter="otlp", metrics_exporter="none", system_metrics=False)
        with agent_otel.job("before"):
            pass
        try:
            os.execvp("no-such-program-anywhere", ["no-such-program-anywhere"])
        except FileNotFoundError:
            print("went on")
        with agent_otel.job("after"):
            pass
        agent_otel.shutdown(timeout_millis=2500)
    """, OTEL_EXPORTER_OTLP_ENDPOINT=unavailable.endpoint, OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        AGENT_OTEL_EXIT_FLUSH_TIMEOUT_MS="120000")
    assert child.stdout.splitlines() == ["went on"]
    assert unavailable.attempts["/v1/traces"] >= 3  # the exec's one, then shutdown()'s first attempt and a retry


def test_retrying_resumes_only_for_an_exporter_not_shut_down_meanwhile() -> None:
    """The single-attempt flush sets the OTLP exporters' shutdown events and clears them again for a process that goes
    on; one the exporter's own ``shutdown()`` set meanwhile stays set (review rv53: an exporter shut down during such a
    flush lost its shutdown state, and its next export retried)."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    from agent_otel._sdk.export_loss import resume_retrying, stop_retrying

    going_on, shut = OTLPSpanExporter(endpoint="http://127.0.0.1:9/v1/traces"), OTLPSpanExporter(
        endpoint="http://127.0.0.1:9/v1/traces")
    stopped = [*stop_retrying(going_on), *stop_retrying(shut)]
    assert len(stopped) == 2 and all(event.is_set() for _, event in stopped)
    shut.shutdown()
    resume_retrying(stopped)
    assert [event.is_set() for _, event in stopped] == [False, True]


def test_agent_otel_run_child_exits_with_a_failing_collector(unavailable: Unavailable, tmp_path: Path) -> None:
    child = run_child(
        "from agent_otel._cli import main; import sys; sys.exit(main(['run', '--', sys.executable, '-c', 'pass']))",
        OTEL_EXPORTER_OTLP_ENDPOINT=unavailable.endpoint, OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        AGENT_OTEL_EXIT_FLUSH_TIMEOUT_MS="120000", XDG_CACHE_HOME=str(tmp_path),
        # no periodic export before the exit's (the launcher imports every installed instrumentation's framework,
        # which on a loaded machine can outlast the default 60 s interval): only the exit is under test
        OTEL_METRIC_EXPORT_INTERVAL="3600000")
    assert child.returncode == 0
    assert unavailable.attempts == {"/v1/metrics": 1}  # the final export, once: never retried at exit


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
@pytest.mark.parametrize("host_logging", [False, True], ids=["no logging", "logging.basicConfig"])
def test_the_exporters_failures_stay_off_the_stderr_of_a_host_without_logging(
        unavailable: Unavailable, protocol: str, host_logging: bool) -> None:
    """The OTLP exporters log a failed export on their own loggers (here: 503 over HTTP, a refused connection
    over gRPC); without a handler anywhere, Python's last-resort handler prints it on the host's stderr."""
    endpoint = unavailable.endpoint if protocol == "http/protobuf" else f"http://127.0.0.1:{free_port()}"
    child = run_child(f"""
        import logging
        import agent_otel

        if {host_logging}:
            logging.basicConfig()
        agent_otel.configure(traces_exporter="otlp", metrics_exporter="otlp")
        with agent_otel.job("lost"):
            pass
        print("done")
    """, OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_EXPORTER_OTLP_PROTOCOL=protocol)
    assert child.stdout == "done\n"
    if host_logging:  # the host's handlers still get them, as without agent-otel's NullHandler
        assert "opentelemetry.exporter.otlp" in child.stderr
    else:
        assert child.stderr == ""


def test_spans_dropped_for_a_full_queue_are_counted_not_printed_on_the_host_stderr() -> None:
    """A collector that does not answer holds the export in flight, so the ended spans fill the queue and
    the SDK's processor drops the rest, logging each drop on the host's thread."""
    release = threading.Event()

    class Stalling(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            release.wait(DEADLINE_S)
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Stalling)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        child = run_child("""
            import json
            from opentelemetry.sdk.metrics import MeterProvider
            from opentelemetry.sdk.metrics.export import InMemoryMetricReader
            import agent_otel
            from agent_otel import semconv

            import time
            from agent_otel._sdk.configure import current_telemetry

            reader = InMemoryMetricReader()
            agent_otel.configure(traces_exporter="otlp", meter_provider=MeterProvider(metric_readers=[reader]))
            telemetry = current_telemetry()
            tracer = telemetry.tracer_provider.get_tracer("host")
            tracer.start_span("first").end()
            deadline = time.monotonic() + 60
            while not telemetry.span_processors[0]._reporting.exporting:  # its export is in flight, stalled
                assert time.monotonic() < deadline
                time.sleep(0.01)
            for _ in range(50):
                tracer.start_span("burst").end()
            lost = {point.attributes[semconv.INSTRUMENTATION_STAGE]: point.value
                    for rm in reader.get_metrics_data().resource_metrics for sm in rm.scope_metrics
                    for metric in sm.metrics if metric.name == semconv.INSTRUMENTATION_ERRORS.name
                    for point in metric.data.data_points}
            print(json.dumps(lost))
        """, OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{server.server_address[1]}",
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf", OTEL_BSP_MAX_QUEUE_SIZE="2",
            OTEL_BSP_MAX_EXPORT_BATCH_SIZE="1", AGENT_OTEL_EXIT_FLUSH_TIMEOUT_MS="100")
    finally:
        release.set()
        server.shutdown()
        server.server_close()
    assert last_json(child).get("export.traces.queue_full", 0) > 0
    assert child.stderr == ""


def test_the_hosts_own_exporters_failures_still_reach_its_stderr() -> None:
    """The OTLP exporters' module loggers are shared: quieting ours must leave the host's own exporter as it
    is. Ours over gRPC ("... exporting traces to <endpoint>"), the host's over HTTP ("... exporting spans
    batch"), both to a port nothing listens on, in a host without logging."""
    child = run_child(f"""
        import agent_otel
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor

        agent_otel.configure(traces_exporter="otlp", metrics_exporter="none", set_global=False)
        with agent_otel.job("lost"):
            pass
        host = TracerProvider(shutdown_on_exit=False)
        host.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(
            endpoint="http://127.0.0.1:{free_port()}/v1/traces", timeout=1)))
        host.get_tracer("host").start_span("host-span").end()
        host.shutdown()
        print("done")
    """, OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{free_port()}", OTEL_EXPORTER_OTLP_PROTOCOL="grpc")
    assert child.stdout == "done\n"
    assert "spans batch" in child.stderr, child.stderr  # the host's, over HTTP
    assert "exporting traces to" not in child.stderr, child.stderr  # ours, over gRPC


def run_tool_calls(receiver: OtlpHttpReceiver, calls: int, then: str, **env: str) -> subprocess.CompletedProcess[str]:
    """A child that exports spans and metrics over OTLP to ``receiver``, makes ``calls`` tool calls, runs the statement
    ``then`` and prints ``done``; metrics are exported only by a flush."""
    return run_child(f"""
        import agent_otel

        agent_otel.configure(metrics_exporter="otlp", traces_exporter="otlp")

        @agent_otel.tool("work")
        def work() -> None:
            pass

        for _ in range({calls}):
            work()
        {then}
        print("done")
    """, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_METRIC_EXPORT_INTERVAL="3600000", **env)


def test_a_trace_endpoint_that_hangs_at_exit_leaves_the_metrics_their_share_of_the_flush(
        receiver: OtlpHttpReceiver) -> None:
    """The exit flush ran the spans' steps first, each given what was left: a trace backend that accepts and never
    answers (or a backlog of spans) took the whole budget, and the metrics, the run's totals, got a millisecond: every
    count lost, silently. The spans get half of it at most now; the metrics arrive."""
    receiver.hold_traces = threading.Event()
    try:
        child = run_tool_calls(receiver, 50, "", AGENT_OTEL_EXIT_FLUSH_TIMEOUT_MS="2000")
        assert (child.returncode, child.stdout) == (0, "done\n"), child.stderr
        counts = [p.count for m in receiver.metrics_named(semconv.TOOL_DURATION.name) for p in data_points_of(m)]
        assert counts == [50]
        assert receiver.spans() == []  # (the trace backend never answered)
    finally:
        receiver.hold_traces.set()


def test_a_shutdown_the_program_calls_gives_the_spans_its_whole_timeout(receiver: OtlpHttpReceiver) -> None:
    """Only the exit flush splits its budget: a ``shutdown(timeout_millis=4000)`` to a slow trace backend (three
    batches, 0.8 s each) delivers every span, as before the split (which gave them 2 s: a batch lost)."""
    receiver.traces_latency_s = 0.8
    child = run_tool_calls(receiver, 30, "agent_otel.shutdown(timeout_millis=4000)",
                           OTEL_BSP_SCHEDULE_DELAY="3600000", OTEL_BSP_MAX_EXPORT_BATCH_SIZE="10")
    assert (child.returncode, child.stdout) == (0, "done\n"), child.stderr
    assert len(receiver.spans()) == 30


@pytest.mark.parametrize("raw", ["soon", "-5", "1.5"])
def test_a_bad_exit_budget_is_a_clear_error(raw: str) -> None:
    with pytest.raises(ConfigurationError, match=f"AGENT_OTEL_EXIT_FLUSH_TIMEOUT_MS={raw!r}"):
        sdk_configure.exit_flush_timeout_millis({"AGENT_OTEL_EXIT_FLUSH_TIMEOUT_MS": raw})


def test_the_exit_budget_defaults_short() -> None:
    assert sdk_configure.exit_flush_timeout_millis({}) == 1000
    assert sdk_configure.exit_flush_timeout_millis({"AGENT_OTEL_EXIT_FLUSH_TIMEOUT_MS": "250"}) == 250


def test_integers_beyond_64_bits_stay_off_the_stderr_of_a_host_without_logging() -> None:
    """The OTLP encoder drops an integer attribute it cannot encode and logs a traceback, with the value, per span:
    1,212 lines of stderr for 100 calls. Ours are now recorded as their digits (counted); another library's are
    dropped by the encoder as before, without the traceback."""
    with OtlpHttpReceiver() as receiver:
        child = run_child("""
            import agent_otel
            from opentelemetry import trace

            agent_otel.configure(traces_exporter="otlp", metrics_exporter="none")

            @agent_otel.tool("lookup", attributes={"big": 2**70})
            def lookup():
                return {}

            for _ in range(3):
                lookup()
                with trace.get_tracer("host").start_as_current_span("query", attributes={"row.id": 2**64}):
                    pass
            print("done")
        """, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf")
        assert (child.stdout, child.stderr) == ("done\n", "")
        wait_until(lambda: len(receiver.spans()) >= 6, "6 spans")
        assert {attributes_of(span).get("big") for span in receiver.spans() if span.name == "execute_tool lookup"} == {
            str(2**70)}


def test_a_host_that_installed_no_op_providers_keeps_them_without_a_warning_on_its_stderr() -> None:
    """Before, configure() tried to install its providers over them: "Overriding of current TracerProvider is not
    allowed" (and MeterProvider) through Python's last-resort handler."""
    child = run_child("""
        from opentelemetry import metrics, trace
        import agent_otel

        trace.set_tracer_provider(trace.NoOpTracerProvider())
        metrics.set_meter_provider(metrics.NoOpMeterProvider())
        agent_otel.configure(traces_exporter="none", metrics_exporter="none")
        print(type(trace.get_tracer_provider()).__name__, type(metrics.get_meter_provider()).__name__)
    """)
    assert (child.stdout, child.stderr) == ("NoOpTracerProvider NoOpMeterProvider\n", "")


def test_an_exit_budget_beyond_what_a_thread_can_wait_leaves_the_exit_alone() -> None:
    """A budget beyond ``threading.TIMEOUT_MAX`` (the platform's time_t) raised out of the exit hook: a
    traceback on the host's stderr after its output. ``shutdown()`` with one raised into the program."""
    child = run_child("""
        import agent_otel

        agent_otel.configure(prometheus_port=0)
        print("done")
    """, AGENT_OTEL_EXIT_FLUSH_TIMEOUT_MS="9999999999999", OTEL_TRACES_EXPORTER="none")
    assert (child.stdout, child.stderr) == ("done\n", "")
    in_code = run_child("""
        import agent_otel

        agent_otel.configure(prometheus_port=0)
        agent_otel.shutdown(timeout_millis=10**13)
        print("shut down")
    """, OTEL_TRACES_EXPORTER="none")
    assert (in_code.stdout, in_code.stderr) == ("shut down\n", "")


@pytest.mark.parametrize("hook", ["setprofile", "settrace"])
def test_a_hosts_hook_for_every_thread_does_not_run_in_the_exit_flush(receiver: OtlpHttpReceiver, hook: str) -> None:
    """A program that profiles (or traces) every thread into a log it closes at exit: its hook ran in the exit
    flush's threads, started after the program's atexit handlers, and raised on the closed log before our code ran
    there: a traceback per thread on stderr, and nothing exported. Without agent-otel no thread starts then."""
    child = run_child(f"""
        import atexit, threading
        import agent_otel

        agent_otel.configure(metrics_exporter="otlp")
        log = open("/dev/null", "w")

        def hook(frame, event, arg):
            if event == "call":
                log.write(frame.f_code.co_name)
            return None

        threading.{hook}(hook)
        atexit.register(log.close)  # after configure(): runs before its exit flush

        @agent_otel.tool("work")
        def work() -> None:
            pass

        with agent_otel.job(type="batch"):
            worker = threading.Thread(target=work)
            worker.start()
            worker.join()
        print("done")
    """, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_METRIC_EXPORT_INTERVAL="3600000")
    assert (child.stdout, child.stderr) == ("done\n", "")
    assert sorted(span.name for span in receiver.spans()) == ["execute_tool work", "invoke_workflow batch"]
    assert [p.count for m in receiver.metrics_named(semconv.TOOL_DURATION.name) for p in data_points_of(m)] == [1]


def latest_by_worker(receiver: OtlpHttpReceiver, name: str, value: Callable[[Any], int]) -> dict[str, int]:
    """Per process (``service.instance.id``): the largest ``value`` of a point of the metric ``name`` it exported, its
    latest cumulative count."""
    found: dict[str, int] = {}
    for request in receiver.metrics:
        for resource_metrics in request.resource_metrics:
            worker = attributes_of(resource_metrics.resource)["service.instance.id"]
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    if metric.name == name:
                        found[worker] = max([found.get(worker, 0), *(value(p) for p in data_points_of(metric))])
    return found


UVICORN_APP = """
import agent_otel

agent_otel.configure()


@agent_otel.agent("solver")
def solve() -> dict:
    return {"success": True}


async def app(scope, receive, send):
    if scope["type"] == "http":
        solve()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})
"""


def test_a_program_that_puts_back_or_chains_to_its_sigterm_handler_after_configure_keeps_the_flush(
        receiver: OtlpHttpReceiver) -> None:
    """configure() on the main thread puts a flush in front of the program's SIGTERM handler (see the uvicorn tests
    below), and the program reads that handler back as it is: a program that saves it to put it back later, and a
    library that chains to it (CrewAI's telemetry), run the flush with it. (Shown the program's own handler, as a
    first version of hiding agent-otel's handlers did, they ran it without the flush: nothing exported.)"""
    program = textwrap.dedent("""
        import os, signal
        import agent_otel

        def graceful(signum, frame):  # a service's: put the default back and die of the signal
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

        signal.signal(signal.SIGTERM, graceful)
        agent_otel.configure(service_name="puts-back")
        saved = signal.signal(signal.SIGTERM, lambda signum, frame: None)
        signal.signal(signal.SIGTERM, saved)
        original = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, lambda signum, frame: original(signum, frame))  # a library's, chaining

        @agent_otel.tool("lookup")
        def lookup():
            return 1

        lookup()
        os.kill(os.getpid(), signal.SIGTERM)  # (handled before kill() returns; dying of it, the flush first)
        print("still running after SIGTERM")
    """)
    child = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=120,
                           env={**CLEAN_ENV, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                                "OTEL_EXPORTER_OTLP_PROTOCOL": receiver.protocol, "OTEL_METRICS_EXPORTER": "none"})
    assert (child.returncode, child.stderr) == (-signal.SIGTERM, "")
    wait_until(lambda: [span.name for span in receiver.spans()] == ["execute_tool lookup"], "the tool's span")


@pytest.mark.parametrize(("workers", "status"), [(2, 0), (0, -signal.SIGTERM)], ids=["workers", "single-process"])
def test_workers_that_take_sigterm_themselves_export_what_they_served(receiver: OtlpHttpReceiver, tmp_path: Path,
                                                                      workers: int, status: int) -> None:
    """``uvicorn --workers 2``: each worker installs its SIGTERM handler before it imports the app that calls
    configure(), and after a graceful shutdown puts the default back and raises SIGTERM again: no atexit hook ran,
    and every worker lost everything since its last export. What the requests recorded is exported now; the
    server exits as it does without agent-otel. A single uvicorn process (and a gunicorn ``UvicornWorker``, which
    sets SIGTERM's default after the fork) imports the app before its handler is in place: SIGTERM does the default
    when configure() runs, and it lost everything too (the ``UvicornWorker`` under ``agent-otel run`` as well: uvicorn
    puts back the default it found and raises into it). The raise flushes first; the process still dies of it."""
    (tmp_path / "app.py").write_text(UVICORN_APP)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app:app", "--port", str(port),
         *(["--workers", str(workers)] * bool(workers)),
         "--log-level", "warning"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**CLEAN_ENV, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
             "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_BSP_SCHEDULE_DELAY": "3600000",
             "OTEL_METRIC_EXPORT_INTERVAL": "3600000"})  # only a flush exports
    try:
        def serves() -> bool:
            try:
                return urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read() == b"ok"
            except OSError:
                return False

        wait_until(serves, "the server to answer")
        for _ in range(4):
            assert serves()
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert server.returncode == status, stderr
    assert "Traceback" not in stderr, stderr
    wait_until(lambda: len(receiver.spans()) >= 5, "the served requests' spans")
    assert [span.name for span in receiver.spans()] == ["invoke_agent solver"] * 5
    # cumulative counts, exported once or twice per worker (when the SIGTERM arrives, and before it ends the process):
    # each worker's latest
    calls = latest_by_worker(receiver, semconv.AGENT_DURATION.name, lambda point: int(point.count))
    assert sum(calls.values()) == 5


def test_workers_that_each_configure_boot_though_only_one_serves_metrics(receiver: OtlpHttpReceiver,
                                                                       tmp_path: Path) -> None:
    """``uvicorn --workers 2`` whose app calls configure() (at import, as in a FastAPI lifespan), /metrics on its
    default port: the second worker finds the port taken by the first. configure() raised there, the worker failed
    to boot and uvicorn stopped the whole server, which runs without agent-otel. Now it serves no /metrics, says so
    and counts it, and records the requests it serves, exported over OTLP."""
    (tmp_path / "app.py").write_text(UVICORN_APP)
    port, metrics_port = free_port(), free_port()
    log = tmp_path / "uvicorn.log"
    with log.open("w") as log_file:
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app:app", "--port", str(port), "--workers", "2", "--log-level", "info"],
            cwd=tmp_path, stdout=log_file, stderr=subprocess.STDOUT, text=True,
            env={**CLEAN_ENV, "OTEL_METRICS_EXPORTER": "prometheus,otlp",
                 "OTEL_EXPORTER_PROMETHEUS_PORT": str(metrics_port), "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                 "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_BSP_SCHEDULE_DELAY": "3600000",
                 "OTEL_METRIC_EXPORT_INTERVAL": "3600000"})
        try:
            wait_until(lambda: log.read_text().count("Application startup complete") == 2 or server.poll() is not None,
                       "both workers to start, or the server to stop")
            assert server.poll() is None, log.read_text()
            for _ in range(6):
                assert urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read() == b"ok"
            served = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
            assert "agent_otel_build_info" in served  # one of the two serves it
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
    assert server.returncode == 0, log.read_text()
    assert "Traceback" not in log.read_text() and "failed" not in log.read_text().lower(), log.read_text()
    calls = latest_by_worker(receiver, semconv.AGENT_DURATION.name, lambda point: int(point.count))
    busy = latest_by_worker(receiver, semconv.INSTRUMENTATION_ERRORS.name, lambda point: int(point.as_int) if (
        attributes_of(point).get(semconv.INSTRUMENTATION_STAGE) == "metrics.port_busy") else 0)
    busy = {worker: count for worker, count in busy.items() if count}
    assert sum(calls.values()) == 6
    assert list(busy.values()) == [1], busy  # the worker that found the port taken counted it, once


def test_raise_signal_pickles_as_the_programs_and_shutdown_puts_it_back() -> None:
    """``signal.raise_signal``, wrapped to flush before a raised SIGTERM ends the process, was a wrapt proxy: pickle
    refused it (a spawned ``Process(target=signal.raise_signal)`` failed), and ``shutdown()`` left it in place."""
    child = run_child("""
        import inspect, json, pickle, signal
        import agent_otel

        original = signal.raise_signal
        agent_otel.configure(metrics_exporter="none", traces_exporter="otlp")
        wrapped = signal.raise_signal
        facts = [wrapped is not original, pickle.loads(pickle.dumps(wrapped)) is wrapped,
                 str(inspect.signature(wrapped)), wrapped.__name__]
        agent_otel.shutdown()
        print(json.dumps([*facts, signal.raise_signal is original]))
    """, OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9", OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        AGENT_OTEL_EXIT_FLUSH_TIMEOUT_MS="100")
    assert last_json(child) == [True, True, "(signalnum, /)", "raise_signal", True]


def run_exporting_nowhere(script: Path) -> subprocess.CompletedProcess[str]:
    """Run ``script``, whose telemetry exports to an endpoint that refuses it, within a short exit flush budget:
    so that it has exporters (a worker flushes, and watches for SIGTERM, only then) and exits at once."""
    env = {**CLEAN_ENV, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
           "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "AGENT_OTEL_EXIT_FLUSH_TIMEOUT_MS": "100"}
    return subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120)


def test_a_workers_sigterm_handler_that_python_does_not_know_of_stays(tmp_path: Path) -> None:
    """``faulthandler.register(SIGTERM)`` in the parent, to dump a worker's stack when ``terminate()`` ends it:
    ``signal.getsignal()`` reports SIG_DFL for that C handler, and the worker's flush-on-SIGTERM handler replaced
    it, so the dump was lost."""
    script = tmp_path / "dump.py"
    script.write_text(textwrap.dedent("""
        import faulthandler, multiprocessing, signal, threading
        import agent_otel

        faulthandler.register(signal.SIGTERM, chain=True)
        agent_otel.configure(metrics_exporter="none", traces_exporter="otlp")


        def stuck_worker(started):
            started.set()
            threading.Event().wait()


        if __name__ == "__main__":
            context = multiprocessing.get_context("fork")
            started = context.Event()
            worker = context.Process(target=stuck_worker, args=(started,))
            worker.start()
            started.wait()
            worker.terminate()
            worker.join()
            print(worker.exitcode)
    """))
    child = run_exporting_nowhere(script)
    assert (child.returncode, child.stdout) == (0, f"{-signal.SIGTERM}\n"), child.stderr
    assert "in stuck_worker" in child.stderr  # faulthandler's dump of the worker's stack


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_worker_that_sets_its_own_wakeup_fd_finds_none_before_it(tmp_path: Path, method: str) -> None:
    """A worker's watcher takes the signal wakeup fd (to wake a main thread a SIGTERM finds asleep): a program's
    own event loop in the worker (trio's) found it set, and warned that another library's signal handling might
    collide with its own (with -W error, the worker died). It finds none, as without agent-otel, and takes over."""
    script = tmp_path / "wakeup.py"
    script.write_text(textwrap.dedent(f"""
        import multiprocessing, pickle, signal, socket
        import agent_otel

        agent_otel.configure(metrics_exporter="none", traces_exporter="otlp")


        def target(results):
            ours, _ = socket.socketpair()
            ours.setblocking(False)
            results.put([signal.set_wakeup_fd(ours.fileno()), signal.set_wakeup_fd(-1) == ours.fileno(),
                         pickle.loads(pickle.dumps(signal.set_wakeup_fd)) is signal.set_wakeup_fd])


        if __name__ == "__main__":
            context = multiprocessing.get_context("{method}")
            results = context.Queue()
            worker = context.Process(target=target, args=(results,))
            worker.start()
            print(results.get(timeout=60), worker.join() or worker.exitcode)
    """))
    child = run_exporting_nowhere(script)
    assert (child.returncode, child.stdout) == (0, "[-1, True, True] 0\n"), child.stderr


WATCHED_WORKER = """
import multiprocessing, signal, socket
import agent_otel
from agent_otel._context import carriers

agent_otel.configure(metrics_exporter="none", traces_exporter="otlp")


def worker(results):
    # what trio.run() does around its loop: its own wakeup fd, then the one it found
    ours, _ = socket.socketpair()
    ours.setblocking(False)
    signal.set_wakeup_fd(signal.set_wakeup_fd(ours.fileno()))
    results.put(carriers._set_wakeup_fd(-1) == carriers._our_wakeup_fd != -1)  # the interpreter's, as set now


if __name__ == "__main__":
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    worker_process = context.Process(target=worker, args=(results,))
    worker_process.start()
    print(results.get(timeout=60))
    worker_process.join()
"""


def test_a_workers_watcher_outlives_a_program_loop_that_sets_its_own_wakeup_fd(tmp_path: Path) -> None:
    """The watcher wakes a worker's main thread that a SIGTERM finds asleep. A program loop that set its own wakeup
    fd and then put back the one it found ("none", as the watcher's is hidden) left the watcher deaf, for the rest
    of the worker's life (a SIGTERM that found its main thread asleep then left it asleep for ever). The watcher's
    fd is the one set again."""
    script = tmp_path / "watched.py"
    script.write_text(WATCHED_WORKER)
    child = run_exporting_nowhere(script)
    assert (child.returncode, child.stdout) == (0, "True\n"), child.stderr


WORKER_WITH_CHILDREN = """
import multiprocessing, os, select, signal, subprocess, sys, time
import agent_otel
from agent_otel._context import carriers

agent_otel.configure(metrics_exporter="none", traces_exporter="otlp")


def worker(results):
    statuses = terminate_forked_children(signal.SIGTERM, FORKS)
    if carriers._SENDERS_KNOWN:  # a child that runs no Python fork handler (forked in C) writes its signals there
        wakeup = carriers._our_wakeup_fd
        subprocess.run([sys.executable, "-c", f"import os; os.write({wakeup}, bytes([{int(signal.SIGTERM)}]))"],
                       pass_fds=[wakeup], check=True)
        # then one of the worker's own that is no SIGTERM: the watcher reads it only if the child's did not wake it
        os.write(wakeup, bytes([int(signal.SIGUSR1)]))
        deadline = time.monotonic() + 30
        while select.select([carriers._watch_read_fd], [], [], 0)[0] and time.monotonic() < deadline:
            time.sleep(0.01)
        statuses.append("both read" if not select.select([carriers._watch_read_fd], [], [], 0)[0] else "left")
    results.put(statuses)


if __name__ == "__main__":
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    worker_process = context.Process(target=worker, args=(results,))
    worker_process.start()
    worker_process.join()
    print(worker_process.exitcode, results.get(timeout=5) if worker_process.exitcode == 0 else None)
"""


@pytest.mark.parametrize("senders", ["known", "unknown"])
def test_a_worker_that_terminates_its_own_children_lives_on_and_they_die(tmp_path: Path, senders: str) -> None:
    """A worker's watcher reads the signal wakeup fd. A child the worker forked inherited it, so the SIGTERM the worker
    sent its child woke the worker's watcher, which then killed the worker. And the child kept the watched worker's
    handler: Python drops the signals that reach a child before its fork handlers run, so a child terminated as soon
    as it was forked ran on (1 in 3), where without agent-otel it dies. The worker lives on, each child dies. Where a
    socket's reader is not told its writers' pids (not Linux), the watcher reads a pipe: a child's signal then
    still reaches it, and only a child that runs no fork handler could wake it (not tried there)."""
    script = tmp_path / "children.py"
    program = TERMINATE_FORKED_CHILDREN + WORKER_WITH_CHILDREN.replace("FORKS", "40")
    if senders == "unknown":
        program = program.replace("agent_otel.configure(", "carriers._SENDERS_KNOWN = False\nagent_otel.configure(")
    script.write_text(program)
    child = run_exporting_nowhere(script)
    read = ", 'both read'" if senders == "known" else ""  # the watcher read past a foreign SIGTERM (not tried else)
    assert (child.returncode, child.stdout) == (0, f"0 ['{-signal.SIGTERM}'{read}]\n"), child.stderr


def test_a_worker_that_replaces_socket_socket_keeps_its_watcher_quiet(tmp_path: Path) -> None:
    """pytest-socket's ``disable_socket()`` (or gevent's patching) replaces ``socket.socket`` in the worker: the watcher
    made its reader with it on the next signal, died with a traceback on the worker's stderr, and no longer woke the
    worker's main thread. It uses the interpreter's own socket type."""
    script = tmp_path / "guarded.py"
    script.write_text(textwrap.dedent("""
        import multiprocessing, os, signal, socket, threading
        import agent_otel

        agent_otel.configure(metrics_exporter="none", traces_exporter="otlp")


        class GuardedSocket(socket.socket):
            def __new__(cls, *args, **kwargs):
                raise RuntimeError("A test tried to use socket.socket.")


        def work(ready, poked):
            signal.signal(signal.SIGUSR1, lambda *_: poked.set())
            socket.socket = GuardedSocket
            ready.set()
            threading.Event().wait()


        if __name__ == "__main__":
            context = multiprocessing.get_context("fork")
            ready, poked = context.Event(), context.Event()
            worker = context.Process(target=work, args=(ready, poked))
            worker.start()
            ready.wait(60)
            os.kill(worker.pid, signal.SIGUSR1)
            poked.wait(60)
            worker.terminate()
            worker.join(60)
            print(worker.exitcode)
    """))
    child = run_exporting_nowhere(script)
    assert (child.returncode, child.stdout, child.stderr) == (0, f"{-signal.SIGTERM}\n", "")


def test_ctrl_c_during_a_slow_exit_flush_ends_the_exit_quietly() -> None:
    """A collector that takes the connection and never answers, and Ctrl-C while the exit flush waits for it: the
    interpreter printed "Exception ignored in atexit callback" and agent-otel's frames on the program's stderr."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(60)  # a program that never exports fails the test, not the suite's time
    held: list[socket.socket] = []
    program = subprocess.Popen(
        [sys.executable, "-c", "import agent_otel\nagent_otel.configure(metrics_exporter='none')\n"
         "with agent_otel.job('j'):\n    pass\nprint('done')\n"],
        env={**CLEAN_ENV, "OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
             "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{listener.getsockname()[1]}",
             "AGENT_OTEL_EXIT_FLUSH_TIMEOUT_MS": "30000"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        connection, _ = listener.accept()  # the exit flush's export: Ctrl-C while it waits for an answer
        held.append(connection)
        program.send_signal(signal.SIGINT)
        stdout, stderr = program.communicate(timeout=60)
    finally:
        if program.poll() is None:
            program.kill()
            program.wait()
        for connection in held:
            connection.close()
        listener.close()
    assert (program.returncode, stdout, stderr) == (0, "done\n", "")


def test_configure_off_the_main_thread_leaves_the_programs_sigterm_handler_and_counts_nothing() -> None:
    """A program with a SIGTERM handler of its own that calls configure() in a thread: signal handlers are set on
    the main thread only, and trying counted an error and logged a warning on the program's logging."""
    child = run_child("""
        import json, signal, threading
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        import agent_otel

        def handler(signum, frame):
            pass

        signal.signal(signal.SIGTERM, handler)
        reader = InMemoryMetricReader()
        worker = threading.Thread(target=lambda: agent_otel.configure(
            meter_provider=MeterProvider(metric_readers=[reader]), traces_exporter="otlp"))
        worker.start()
        worker.join()
        data = reader.get_metrics_data()
        errors = [point.value for rm in (data.resource_metrics if data else []) for sm in rm.scope_metrics
                  for metric in sm.metrics if metric.name == "agent_otel.instrumentation.errors"
                  for point in metric.data.data_points]
        print(json.dumps([signal.getsignal(signal.SIGTERM) is handler, errors]))
    """, OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9", OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        AGENT_OTEL_EXIT_FLUSH_TIMEOUT_MS="100")
    assert last_json(child) == [True, []]


def test_calls_still_open_at_exit_end_closed_and_are_exported(receiver: OtlpHttpReceiver) -> None:
    """An agent generator the program left half-read (inside a job and outside one), a tool's, a model SDK's stream
    object (returned by a sync call, or by an ``async def`` one: litellm's ``acompletion(stream=True)``), and an agent
    call still running on a daemon thread: the interpreter closes the generators during its
    teardown, after the exit flush, and never ends the daemon's call, so their spans were lost (and the stream's,
    ended then, had the SDK say "Processor is already shutdown" on stderr). They end closed at exit, and the flush
    exports them (a tool's generator and a stream object since this round: only the kinds tracked while running
    were)."""
    child = run_child("""
        import threading
        import agent_otel

        agent_otel.configure(service_name="open-at-exit")

        @agent_otel.agent("streamer")
        def steps():
            yield 1
            yield 2

        @agent_otel.agent("sleeper")
        def wait(started, never):
            started.set()
            never.wait()

        @agent_otel.tool("chunks")
        def chunks():
            yield 1
            yield 2

        class Stream:  # a model SDK's stream object (openai's Stream): an iterator, not a generator
            def __init__(self):
                self.sent = 0
            def __iter__(self):
                return self
            def __next__(self):
                self.sent += 1
                if self.sent > 3:
                    raise StopIteration
                return {"delta": self.sent}

        @agent_otel.provider("openai", model="streamed")
        def create():
            return Stream()

        class AsyncStream:  # what ``await client.chat.completions.create(stream=True)`` returns (openai's AsyncStream)
            def __init__(self):
                self.sent = 0
            def __aiter__(self):
                return self
            async def __anext__(self):
                self.sent += 1
                if self.sent > 3:
                    raise StopAsyncIteration
                return {"delta": self.sent}

        @agent_otel.provider("openai", model="streamed-async")
        async def acreate():
            return AsyncStream()

        async def read_one():
            stream = await acreate()
            await stream.__anext__()
            return stream

        import asyncio
        left, tool_left, stream_left, async_stream_left = steps(), chunks(), create(), asyncio.run(read_one())
        next(left)
        next(tool_left)
        next(stream_left)
        with agent_otel.job("j-open"):
            inside = steps()
            next(inside)
        started, never = threading.Event(), threading.Event()
        threading.Thread(target=wait, args=(started, never), daemon=True).start()
        started.wait(30)
    """, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_EXPORTER_OTLP_PROTOCOL=receiver.protocol,
        OTEL_METRICS_EXPORTER="none")
    wait_until(lambda: len(receiver.spans()) >= 7, "the job's span and the six open calls'", timeout_s=DEADLINE_S)
    names = Counter(span.name for span in receiver.spans())
    assert names == {"invoke_workflow default": 1, "invoke_agent streamer": 2, "invoke_agent sleeper": 1,
                     "execute_tool chunks": 1, "chat streamed": 1, "chat streamed-async": 1}
    closed = {span.name: {a.key: a.value.bool_value for a in span.attributes}.get(semconv.STREAM_CLOSED_EARLY)
              for span in receiver.spans() if not span.name.startswith("invoke_workflow")}
    assert closed == {"invoke_agent streamer": True, "invoke_agent sleeper": True, "execute_tool chunks": True,
                      "chat streamed": True, "chat streamed-async": True}
    assert "already shutdown" not in child.stderr


def test_an_evolution_run_the_exit_cut_off_is_failed_and_one_its_engine_stopped_reading_is_not(
        receiver: OtlpHttpReceiver) -> None:
    """A run on a daemon thread, still running when the program exited, ended closed and counted as ``succeeded``: the
    Evolution dashboard's success ratio counted runs that never finished. A generator run its engine stopped reading
    after a candidate still counts as it reports (succeeded)."""
    child = run_child("""
        import threading
        import agent_otel

        agent_otel.configure(service_name="cut-off")

        @agent_otel.evolution("background", sample_resources=False)
        def evolve(started, never):
            started.set()
            never.wait()

        @agent_otel.evolution("candidates", sample_resources=False)
        def candidates():
            yield "first"
            yield "second"

        kept = candidates()
        next(kept)  # its engine took the first candidate and stopped there
        started, never = threading.Event(), threading.Event()
        threading.Thread(target=evolve, args=(started, never), daemon=True).start()
        started.wait(30)
    """, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_EXPORTER_OTLP_PROTOCOL=receiver.protocol,
        OTEL_METRICS_EXPORTER="none")
    assert child.returncode == 0, child.stderr
    wait_until(lambda: len(receiver.spans()) >= 2, "the two runs' spans", timeout_s=DEADLINE_S)
    statuses = {span.name: {a.key: a.value.string_value for a in span.attributes}[semconv.EVOLUTION_STATUS]
                for span in receiver.spans()}
    assert statuses == {"evolve background": "failed", "evolve candidates": "succeeded"}


def test_decorated_generators_closed_in_reference_cycles_leave_the_programs_context_whole() -> None:
    """A decorated generator dropped half-read in a reference cycle is closed by the garbage collector, and ours set
    and reset the OpenTelemetry context around the program's close there: on CPython 3.11 the program's next
    ``contextvars.copy_context()`` failed (``SystemError: error return without exception set``), or it crashed. In a
    collection, the close runs without our context (see _engine/collection.py)."""
    child = run_child("""
        import contextvars, gc
        import agent_otel

        agent_otel.configure(metrics_exporter="none")

        @agent_otel.provider("anthropic", model="claude-sonnet-4")
        def stream(n):
            for i in range(n):
                yield {"usage": {"output_tokens": 1}}

        with agent_otel.job(type="cycles"):
            for i in range(3000):
                kept = [stream(5)]
                next(kept[0])
                kept.append(kept)  # a cycle: freed only by a collection
                del kept
                if i % 100 == 0:
                    gc.collect()
                    for each in gc.get_objects():  # (what a memory profiler does; it made the failure show)
                        type(each).__name__
                    len(contextvars.copy_context())
        print("ok")
    """)
    assert child.stdout == "ok\n"


def test_configure_again_on_a_hosts_providers_adds_no_second_span_processor() -> None:
    """The host's providers outlive ``shutdown()``, and so does the span processor configure() added to its tracer
    provider (no SDK call removes one): each ``configure()`` after a ``shutdown()`` added another, and every GenAI
    span of another library was bridged, and counted, once more per cycle."""
    child = run_child("""
        import json
        from opentelemetry import trace, metrics
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        import agent_otel

        reader = InMemoryMetricReader()
        trace.set_tracer_provider(TracerProvider())
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
        for _ in range(3):
            agent_otel.configure()
            agent_otel.shutdown()
        agent_otel.configure()
        with trace.get_tracer("some.library").start_as_current_span("chat m", attributes={
                "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "m"}):
            pass
        processors = [type(p).__name__ for p in trace.get_tracer_provider()._active_span_processor._span_processors]
        counts = [point.count for rm in reader.get_metrics_data().resource_metrics for sm in rm.scope_metrics
                  for metric in sm.metrics if metric.name == "gen_ai.client.inference.duration"
                  for point in metric.data.data_points]
        print(json.dumps([processors, counts]))
    """, OTEL_TRACES_EXPORTER="none")
    assert last_json(child) == [["AgentOtelSpanProcessor"], [1]]


#: A program that shuts the global providers down itself at its end, as OpenTelemetry's examples do.
SHUTS_DOWN_ITSELF = """
import agent_otel
agent_otel.configure(prometheus_port=0)
from opentelemetry import metrics, trace

@agent_otel.tool("t")
def t():
    return 1

with agent_otel.job("j"):
    t()
trace.get_tracer_provider().shutdown()
metrics.get_meter_provider().shutdown()
print("end")
"""


def test_a_program_that_shuts_our_providers_down_itself_gets_no_warning_at_exit() -> None:
    """The exit hook shut the meter provider down a second time: the SDK's "shutdown can only be called once" on the
    program's stderr, a line it does not print without agent-otel (nor under ``opentelemetry-instrument``)."""
    done = subprocess.run([sys.executable, "-c", SHUTS_DOWN_ITSELF], env=CLEAN_ENV, capture_output=True, text=True,
                          timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, "end\n", "")
