"""``agent-otel demo``: run the simulated fleet instrumented by its zero-code config, serve /metrics,
optionally with a local Prometheus and Alertmanager, and show what is happening on one line."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from prometheus_client.parser import text_string_to_metric_families

from agent_otel._ops.assets import assets_root
from agent_otel._ops.collector import LocalCollector, find_collector
from agent_otel._ops.demo.workdir import temporary_workdir
from agent_otel._ops.stack import LocalStack, StackError, WebhookReceiver, bind_problem, free_port_preferring
from agent_otel._sdk.configure import shutdown
from agent_otel._zerocode.config import load_file
from agent_otel._zerocode.instrumentor import configure_sdk
from agent_otel._zerocode.patching import instrument
from agent_otel.errors import ConfigurationError

CONFIG_PATH = Path(__file__).with_name("agent-otel.toml")


#: Default ports; when one is busy (Debian's prometheus packages start their own services on 9090 and 9093),
#: the demo takes a free one and prints it. A port given explicitly must be free.
DEFAULT_METRICS_PORT = 9464
DEFAULT_PROMETHEUS_PORT = 9090
DEFAULT_ALERTMANAGER_PORT = 9093
_DEBIAN_PORTS = (DEFAULT_PROMETHEUS_PORT, DEFAULT_ALERTMANAGER_PORT)


@dataclass
class DemoOptions:
    """None for a port: its default if free, else a free one."""

    port: int | None = None
    rate: float = 2.0
    duration: float | None = None
    seed: int = 7
    evolve_every: float = 30.0
    stack: bool = False
    prometheus_port: int | None = None
    alertmanager_port: int | None = None
    workdir: Path | None = None
    #: With ``stack``: export OTLP through a local Collector (this binary; "" finds one) that Prometheus scrapes.
    collector: str | None = None


@dataclass
class Status:
    """What the status line shows, read back from the demo's own /metrics (what Prometheus sees)."""

    jobs: float = 0.0
    agent_calls: float = 0.0
    model_calls: float = 0.0
    tool_calls: float = 0.0
    errors: float = 0.0
    cost_usd: float = 0.0

    def line(self, elapsed_s: float) -> str:
        return (f"{elapsed_s:6.0f}s  jobs {self.jobs:.0f}  agent calls {self.agent_calls:.0f}  "
                f"model calls {self.model_calls:.0f}  tool calls {self.tool_calls:.0f}  "
                f"errors {self.errors:.0f}  cost ${self.cost_usd:.4f}")


_CALL_COUNTS = {
    "job_duration_seconds": "jobs",
    "gen_ai_invoke_agent_duration_seconds": "agent_calls",
    "gen_ai_client_inference_duration_seconds": "model_calls",
    "gen_ai_execute_tool_duration_seconds": "tool_calls",
}


def read_status(metrics_url: str) -> Status:
    with urllib.request.urlopen(metrics_url, timeout=5) as response:
        text = response.read().decode()
    status = Status()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if family.name in _CALL_COUNTS and sample.name.endswith("_count"):
                field = _CALL_COUNTS[family.name]
                setattr(status, field, getattr(status, field) + sample.value)
                if sample.labels.get("error_type"):
                    status.errors += sample.value
            elif family.name == "agent_otel_client_cost" and sample.name.endswith("_total"):
                status.cost_usd += sample.value
    return status


class StatusLine:
    """One line redrawn in place on a terminal; periodic plain lines otherwise (logs, pipes)."""

    def __init__(self, out: TextIO, plain_every_s: float = 10.0) -> None:
        self.out = out
        self.tty = out.isatty()
        self.plain_every_s = plain_every_s
        self._last_plain = 0.0
        self._current = ""
        self._lock = threading.Lock()

    def _write(self, text: str) -> None:
        try:
            self.out.write(text)
            self.out.flush()
        except OSError:  # the terminal went away (SIGHUP): the demo is stopping, nobody reads it
            pass

    def update(self, text: str) -> None:
        with self._lock:
            self._current = text
            if self.tty:
                self._write("\r\x1b[K" + text)
            elif time.monotonic() - self._last_plain >= self.plain_every_s:
                self._last_plain = time.monotonic()
                self._write(text + "\n")

    def message(self, text: str) -> None:
        """A line that stays (an alert notification), printed above the status line."""
        with self._lock:
            self._write("\r\x1b[K" + text + "\n" + self._current if self.tty else text + "\n")

    def finish(self) -> None:
        with self._lock:
            if self.tty and self._current:
                self._write("\n")


def describe_notification(payload: dict[str, Any]) -> list[str]:
    """Each alert of an Alertmanager webhook payload as the demo prints it: what and where, then the
    description (the shipped alerts' descriptions carry the value and the threshold) and the runbook link."""
    lines = []
    for alert in payload.get("alerts", []):
        labels = alert.get("labels", {})
        annotations = alert.get("annotations", {})
        where = ", ".join(f"{key}={value}" for key, value in sorted(labels.items())
                          if key not in ("alertname", "severity", "job", "instance"))
        lines.append(f"[alert {alert.get('status', '?')}] {labels.get('alertname')} ({labels.get('severity')})"
                     f"{' ' + where if where else ''}: {annotations.get('summary', '')}")
        if annotations.get("description"):
            lines.append(f"    {annotations['description']}")
        if annotations.get("runbook_url"):
            lines.append(f"    runbook: {annotations['runbook_url']}")
    return lines


class _Ending:
    """How the demo ends on the signals that end a program: SIGINT (Ctrl-C), SIGTERM, and SIGHUP (its terminal
    or ssh session closed).

    The first asks the fleet to stop; everything the demo started is then stopped and its workdir removed. A
    second one while jobs finish stops without waiting for them (KeyboardInterrupt). Any signal during the
    clean-up never interrupts it (that would leave servers or the workdir behind): it kills the servers
    instead of waiting for them. A signal the demo was started with ignored (nohup, a background job of a
    script) stays ignored."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.cleaning_up = False
        self.hurry: list[Callable[[], None]] = []
        self._previous: dict[signal.Signals, Any] = {}

    def install(self) -> None:
        for sig in self.SIGNALS:
            if signal.getsignal(sig) is not signal.SIG_IGN:
                self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.cleaning_up:
            for hurry in self.hurry:
                hurry()
        elif self.stop.is_set():
            raise KeyboardInterrupt
        else:
            self.stop.set()


def _start(flag: str, start: Callable[[], object], stop: threading.Event) -> int | None:
    """Start a server the demo needs; None when it runs, else the exit status (its error printed)."""
    try:
        start()
    except StackError as exc:
        print(f"agent-otel demo: {flag}: {exc}", file=sys.stderr)
        return 130 if stop.is_set() else 1
    return None


def _say(out: TextIO, text: str) -> None:
    """Print a line; a terminal that went away (SIGHUP, EIO) must not stop the clean-up."""
    try:
        print(text, file=out, flush=True)
    except OSError:
        pass


def _port(chosen: int | None, default: int, what: str, busy: list[tuple[int, str]]) -> int:
    """The port the user chose, else ``default`` if it is free, else a free one (noted in ``busy``)."""
    if chosen is not None:
        return chosen
    port = free_port_preferring(default)
    if port != default:
        busy.append((default, what))
    return port


def _busy_message(busy: list[tuple[int, str]]) -> str:
    """The default ports taken, and why that may be: Debian's own services only for the ports they hold."""
    plural = len(busy) > 1
    why = (f" (perhaps by Debian's prometheus packages, whose own services take {DEFAULT_PROMETHEUS_PORT} and "
           f"{DEFAULT_ALERTMANAGER_PORT}, or another demo)" if any(port in _DEBIAN_PORTS for port, _ in busy) else "")
    return (f"  port{'s' if plural else ''} {', '.join(f'{port} ({what})' for port, what in busy)} "
            f"{'are' if plural else 'is'} in use{why}: the URLs above use free ports instead")


def _flagged_port_taken(options: DemoOptions) -> str | None:
    """The refusal of a stack port given with a flag that is in use, said before anything starts (as ``--port``'s
    is): the stack found it taken only after the demo had printed its URLs, and exited 1 where ``--port`` exits 2."""
    for flag, port in (("--prometheus-port", options.prometheus_port),
                       ("--alertmanager-port", options.alertmanager_port)):
        problem = bind_problem(port) if port is not None else None  # in use, or not ours to bind (below 1024)
        if problem is not None:
            return (f"agent-otel demo: {flag} {port}: 127.0.0.1:{port} {problem}; give a free port, or leave {flag} "
                    "out to take one")
    return None


def _collector(options: DemoOptions) -> LocalCollector | None:
    """The Collector of ``--collector`` (not started yet: its ports are chosen, so the SDK can export to it)."""
    if options.collector is None:
        return None
    return LocalCollector(Path(), find_collector(options.collector or None))


def run_demo(options: DemoOptions, out: TextIO = sys.stdout) -> int:
    taken = _flagged_port_taken(options)
    if taken is not None:
        print(taken, file=sys.stderr)
        return 2
    busy: list[tuple[int, str]] = []
    metrics_port = _port(options.port, DEFAULT_METRICS_PORT, "metrics", busy)
    try:
        collector = _collector(options)
    except StackError as exc:
        print(f"agent-otel demo: --collector: {exc}", file=sys.stderr)
        return 1
    # Through the Collector: traces and metrics over OTLP/HTTP to it; /metrics still serves the status line.
    export: dict[str, Any] = {} if collector is None else {
        "traces_exporter": "otlp", "metrics_exporter": ("otlp", "prometheus"), "otlp_endpoint": collector.otlp_http,
        "otlp_protocol": "http/protobuf"}
    try:
        config = load_file(CONFIG_PATH)
        telemetry = configure_sdk(config, prometheus_port=metrics_port, **export)
        instrument(config)
    except ConfigurationError as exc:
        print(f"agent-otel demo: {exc}", file=sys.stderr)
        return 2
    if telemetry.metrics_unserved is not None:  # the flag's port, or one taken since it was found free
        shutdown()
        print(f"agent-otel demo: --port {metrics_port}: 127.0.0.1:{metrics_port} is in use; give a free port, or leave "
              "--port out to take one" if options.port is not None else
              f"agent-otel demo: 127.0.0.1:{metrics_port} (metrics) was taken as the demo started; run it again",
              file=sys.stderr)
        return 2
    # Imported after instrument(), as a program under `agent-otel run` is: the configured targets are
    # wrapped the moment the module is imported (a post-import hook), before the fleet binds any name.
    from agent_otel._ops.demo.fleet import Fleet

    status_line = StatusLine(out)
    metrics_url = telemetry.prometheus_url
    _say(out, f"agent-otel demo: seed {options.seed}, {options.rate:g} jobs/s, evolution every "
              f"{options.evolve_every:g} s{'' if not options.duration else f', for {options.duration:g} s'}; "
              f"instrumented by {CONFIG_PATH}")
    if metrics_url:
        _say(out, f"  metrics:      {metrics_url}")

    ending = _Ending()
    stop = ending.stop
    # Undone in reverse order whatever ends the demo: the servers, then the workdir, the webhook receiver,
    # the signal handlers and last our own telemetry.
    cleanup = contextlib.ExitStack()
    if collector is not None:  # stopped after our telemetry's last flush to it
        cleanup.callback(collector.stop)
        ending.hurry.append(collector.kill)
    cleanup.callback(shutdown)
    ending.install()
    cleanup.callback(ending.restore)
    try:
        if options.stack:
            def show(payload: dict[str, Any]) -> None:
                for line in describe_notification(payload):
                    status_line.message(line)

            receiver = cleanup.enter_context(WebhookReceiver(show))
            workdir = options.workdir or cleanup.enter_context(temporary_workdir())
            scrape: dict[str, Any] = {"scrape_targets": [f"127.0.0.1:{metrics_port}"]}
            if collector is not None:
                collector.workdir = workdir / "collector"
                failed = _start("--collector", lambda: collector.start(cancel=stop), stop)
                if failed is not None:
                    return failed
                _say(out, f"  collector:    {collector.binary} (the shipped otelcol.yaml), OTLP at "
                          f"{collector.otlp_http}; Prometheus scrapes it at {collector.prometheus_target}")
                # As the shipped prometheus.yml's agent-otel-collector job: job and instance from the resource.
                scrape = {"scrape_targets": [collector.prometheus_target], "job_name": "agent-otel-collector",
                          "honor_labels": True}
            stack = LocalStack(workdir, **scrape, webhook_url=receiver.url,
                               prometheus_port=_port(options.prometheus_port, DEFAULT_PROMETHEUS_PORT,
                                                     "Prometheus", busy),
                               alertmanager_port=_port(options.alertmanager_port, DEFAULT_ALERTMANAGER_PORT,
                                                       "Alertmanager", busy))
            cleanup.callback(stack.stop)
            ending.hurry.append(stack.kill)
            failed = _start("--stack", lambda: stack.start(cancel=stop), stop)
            if failed is not None:
                return failed
            _say(out, f"  prometheus:   {stack.prometheus_url}  (Alerts tab: the shipped rules; they fire after "
                      "their `for:` durations, 1 to 15 minutes in)")
            _say(out, f"  alertmanager: {stack.alertmanager_url}  (alert notifications are printed here as they "
                      "arrive)")
            dashboards = assets_root() / "grafana" / "dashboards"
            _say(out, f"  data and logs in {workdir}; Grafana: import {dashboards}/*.json with this Prometheus "
                      "as the data source")
        if busy:
            _say(out, _busy_message(busy))
        _say(out, "  Ctrl-C stops the demo.")

        fleet = Fleet(seed=options.seed, rate=options.rate, evolve_every_s=options.evolve_every)
        worker = threading.Thread(target=fleet.run, args=(stop, options.duration), name="fleet", daemon=True)
        started = time.monotonic()
        worker.start()
        while worker.is_alive():
            worker.join(1.0)
            if metrics_url:
                try:
                    status_line.update(read_status(metrics_url).line(time.monotonic() - started))
                except OSError:
                    pass
        status_line.finish()
        try:
            final = read_status(metrics_url) if metrics_url else None
        except OSError:
            final = None
        if final is not None:
            _say(out, f"agent-otel demo: stopped after {time.monotonic() - started:.0f} s: {final.jobs:.0f} jobs, "
                      f"{final.agent_calls:.0f} agent calls, {final.errors:.0f} errors, ${final.cost_usd:.4f}")
        return 0
    except KeyboardInterrupt:
        status_line.finish()
        _say(out, "agent-otel demo: interrupted again; stopping without waiting for running jobs")
        return 130
    finally:
        ending.cleaning_up = True
        stop.set()
        cleanup.close()
