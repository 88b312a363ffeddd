"""`agent-otel demo --stack --collector`: the demo exports OTLP to our Collector (bin/otelcol-agent-otel running
the shipped otelcol.yaml on loopback), which the stack's Prometheus scrapes as the shipped prometheus.yml does;
Ctrl-C stops the Collector with the rest. Real processes throughout, stopped by PID."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.parse
import uuid
from pathlib import Path

import psutil

from agent_otel._ops.stack import free_port
from tests.support.demo import descendants, gone, port_is_closed, stop
from tests.support.http import http_get_json
from tests.support.ops import collector_binary
from tests.support.polling import wait_until

DEMO = [sys.executable, "-m", "agent_otel", "demo"]
#: The demo's environment without the caller's OTEL_* settings (the flags decide where telemetry goes).
ENV = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}


def collectors(pid: int) -> list[psutil.Process]:
    return [child for child in descendants(pid) if child.name().startswith("otelcol")]


def test_the_stack_scrapes_the_demo_through_the_collector_and_stops_it(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("metrics", "prometheus", "alertmanager")}
    out = tmp_path / "out"
    with open(out, "wb") as log:
        process = subprocess.Popen(
            [*DEMO, "--stack", "--collector", collector_binary(), "--rate", "5", "--port", str(ports["metrics"]),
             "--prometheus-port", str(ports["prometheus"]), "--alertmanager-port", str(ports["alertmanager"]),
             "--workdir", str(tmp_path / "stack")],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=ENV)
    prometheus = f"http://127.0.0.1:{ports['prometheus']}"

    def query(expr: str) -> list[dict[str, dict[str, str]]]:
        result: list[dict[str, dict[str, str]]] = http_get_json(
            f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))["data"]["result"]
        return result

    try:
        wait_until(lambda: "Ctrl-C stops the demo" in out.read_text() or process.poll() is not None,
                   "the demo to report its stack", timeout_s=90)
        output = out.read_text()
        assert process.poll() is None, output
        assert f"collector:    {collector_binary()} (the shipped otelcol.yaml)" in output, output
        [collector] = collectors(process.pid)
        wait_until(lambda: query('up{job="agent-otel-collector"}==1'), "Prometheus to scrape the Collector",
                   timeout_s=60)
        # job and instance come from the demo's resource (service.name, service.instance.id): the Collector's.
        wait_until(lambda: query('gen_ai_invoke_agent_duration_seconds_count{job="agent-otel-demo"}'),
                   "the demo's agent calls in Prometheus through the Collector", timeout_s=90)
        [instance] = {series["metric"]["instance"]
                      for series in query('gen_ai_invoke_agent_duration_seconds_count{job="agent-otel-demo"}')}
        assert uuid.UUID(instance).version == 4
        process.send_signal(signal.SIGINT)
        assert process.wait(60) == 0
    finally:
        stop(process)
    assert gone(collector)
    for port in ports.values():
        assert port_is_closed(port)


def test_collector_needs_the_stack() -> None:
    done = subprocess.run([*DEMO, "--collector", "--duration", "1"], capture_output=True, text=True, timeout=60,
                          env=ENV)
    assert done.returncode == 2
    assert "--collector needs --stack" in done.stderr, done.stderr


def test_stack_options_need_the_stack(tmp_path: Path) -> None:
    """--workdir and the stack's ports were accepted without --stack, and did nothing."""
    done = subprocess.run([*DEMO, "--workdir", str(tmp_path / "kept"), "--prometheus-port", "19090", "--duration",
                           "1"], capture_output=True, text=True, timeout=60, env=ENV)
    assert done.returncode == 2 and not (tmp_path / "kept").exists()
    assert "--prometheus-port, --workdir need --stack" in done.stderr, done.stderr


def test_a_missing_collector_says_how_to_build_one(tmp_path: Path) -> None:
    env = {**ENV, "PATH": str(Path(sys.executable).parent)}  # no otelcol-* on PATH, no ./bin in tmp_path
    done = subprocess.run([*DEMO, "--stack", "--collector", "--port", str(free_port()), "--duration", "1"],
                          capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    assert done.returncode == 1
    assert "no OpenTelemetry Collector found" in done.stderr and "make collector" in done.stderr, done.stderr
    named = subprocess.run([*DEMO, "--stack", "--collector", str(tmp_path / "otelcol"), "--duration", "1"],
                           capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    assert named.returncode == 1
    assert f"{tmp_path / 'otelcol'}: not an executable file" in named.stderr, named.stderr
