"""``agent-otel demo``: run the simulated fleet instrumented by its zero-code config, serve /metrics,
optionally with a local Prometheus and Alertmanager, and show what is happening on one line."""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from opentelemetry.sdk.environment_variables import OTEL_SERVICE_NAME
from prometheus_client.parser import text_string_to_metric_families

from agent_otel._ops.assets import assets_root
from agent_otel._ops.stack import LocalStack, StackError, WebhookReceiver
from agent_otel._sdk.configure import configure, shutdown
from agent_otel._zerocode.config import load_file
from agent_otel._zerocode.patching import instrument
from agent_otel.errors import ConfigurationError

CONFIG_PATH = Path(__file__).with_name("agent-otel.toml")


@dataclass
class DemoOptions:
    port: int = 9464
    rate: float = 2.0
    duration: float | None = None
    seed: int = 7
    evolve_every: float = 30.0
    stack: bool = False
    prometheus_port: int = 9090
    alertmanager_port: int = 9093
    workdir: Path | None = None


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
    "gen_ai_client_operation_duration_seconds": "model_calls",
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
            elif family.name == "gen_ai_client_cost" and sample.name.endswith("_total"):
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

    def update(self, text: str) -> None:
        with self._lock:
            self._current = text
            if self.tty:
                self.out.write("\r\x1b[K" + text)
                self.out.flush()
            elif time.monotonic() - self._last_plain >= self.plain_every_s:
                self._last_plain = time.monotonic()
                print(text, file=self.out, flush=True)

    def message(self, text: str) -> None:
        """A line that stays (an alert notification), printed above the status line."""
        with self._lock:
            if self.tty:
                self.out.write("\r\x1b[K" + text + "\n" + self._current)
                self.out.flush()
            else:
                print(text, file=self.out, flush=True)

    def finish(self) -> None:
        with self._lock:
            if self.tty and self._current:
                self.out.write("\n")
                self.out.flush()


def describe_notification(payload: dict[str, Any]) -> list[str]:
    lines = []
    for alert in payload.get("alerts", []):
        labels = alert.get("labels", {})
        where = ", ".join(f"{key}={value}" for key, value in sorted(labels.items())
                          if key not in ("alertname", "severity", "job", "instance"))
        summary = alert.get("annotations", {}).get("summary", "")
        lines.append(f"[alert {alert.get('status', '?')}] {labels.get('alertname')} ({labels.get('severity')})"
                     f"{' ' + where if where else ''}: {summary}")
    return lines


def run_demo(options: DemoOptions, out: TextIO = sys.stdout) -> int:
    try:
        config = load_file(CONFIG_PATH)
        telemetry = configure(service_name=os.environ.get(OTEL_SERVICE_NAME) or config.service_name,
                              prometheus_port=options.port, system_metrics=config.switches.system_metrics,
                              instrument_threads=config.switches.threads,
                              instrument_processes=config.switches.processes)
        instrument(config)
    except ConfigurationError as exc:
        print(f"agent-otel demo: {exc}", file=sys.stderr)
        return 2
    # Imported after instrument(), as a program under `agent-otel run` is: the configured targets are
    # wrapped the moment the module is imported (a post-import hook), before the fleet binds any name.
    from agent_otel._ops.demo.fleet import Fleet

    status_line = StatusLine(out)
    metrics_url = telemetry.prometheus_url
    print(f"agent-otel demo: seed {options.seed}, {options.rate:g} jobs/s, evolution every {options.evolve_every:g} s"
          f"{'' if not options.duration else f', for {options.duration:g} s'}; instrumented by {CONFIG_PATH}",
          file=out, flush=True)
    if metrics_url:
        print(f"  metrics:      {metrics_url}", file=out, flush=True)

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():  # a second Ctrl-C: the user does not want to wait for the clean stop
            raise KeyboardInterrupt
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    stack: LocalStack | None = None
    receiver: WebhookReceiver | None = None
    temporary: tempfile.TemporaryDirectory[str] | None = None
    try:
        if options.stack:
            def show(payload: dict[str, Any]) -> None:
                for line in describe_notification(payload):
                    status_line.message(line)

            receiver = WebhookReceiver(show)
            receiver.__enter__()
            workdir = options.workdir
            if workdir is None:
                temporary = tempfile.TemporaryDirectory(prefix="agent-otel-demo-")
                workdir = Path(temporary.name)
            stack = LocalStack(workdir, scrape_targets=[f"127.0.0.1:{options.port}"], webhook_url=receiver.url,
                               prometheus_port=options.prometheus_port, alertmanager_port=options.alertmanager_port)
            try:
                stack.start(cancel=stop)
            except StackError as exc:
                print(f"agent-otel demo: --stack: {exc}", file=sys.stderr)
                return 130 if stop.is_set() else 1
            print(f"  prometheus:   {stack.prometheus_url}  (Alerts tab: the shipped rules; they fire after their "
                  "`for:` durations, 5 to 15 minutes in)", file=out)
            print(f"  alertmanager: {stack.alertmanager_url}  (alert notifications are printed here as they arrive)",
                  file=out)
            dashboards = assets_root() / "grafana" / "dashboards"
            print(f"  data and logs in {workdir}; Grafana: import {dashboards}/*.json with this Prometheus "
                  "as the data source", file=out, flush=True)
        print("  Ctrl-C stops the demo.", file=out, flush=True)

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
        final = read_status(metrics_url) if metrics_url else None
        if final is not None:
            print(f"agent-otel demo: stopped after {time.monotonic() - started:.0f} s: {final.jobs:.0f} jobs, "
                  f"{final.agent_calls:.0f} agent calls, {final.errors:.0f} errors, ${final.cost_usd:.4f}",
                  file=out, flush=True)
        return 0
    except KeyboardInterrupt:
        status_line.finish()
        print("agent-otel demo: interrupted again; stopping without waiting for running jobs", file=out, flush=True)
        return 130
    finally:
        stop.set()
        if stack is not None:
            stack.stop()
        if receiver is not None:
            receiver.__exit__(None, None, None)
        if temporary is not None:
            temporary.cleanup()
        shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
