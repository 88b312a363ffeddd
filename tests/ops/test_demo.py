"""`agent-otel demo` as a user runs it: a real process, its flags, its status line, Ctrl-C, --stack."""

from __future__ import annotations

import os
import pty
import select
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from agent_otel._ops.demo import runner
from agent_otel._ops.demo.runner import DEFAULT_METRICS_PORT, DEFAULT_PROMETHEUS_PORT, _busy_message, read_status
from agent_otel._ops.stack import free_port
from tests.support.demo import port_is_closed, stop
from tests.support.http import http_get_json
from tests.support.paths import ASSETS
from tests.support.polling import wait_until

DEMO = [sys.executable, "-m", "agent_otel", "demo"]


def start(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen([*DEMO, *args], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env=env)


def jobs_served(port: int) -> float:
    """Jobs on the demo's /metrics; 0 until it serves."""
    try:
        return read_status(f"http://127.0.0.1:{port}/metrics").jobs
    except OSError:
        return 0.0


def test_a_timed_run_serves_metrics_and_exits_cleanly_with_a_summary(tmp_path: Path) -> None:
    port = free_port()
    process = start(["--port", str(port), "--rate", "20", "--duration", "3", "--evolve-every", "0.5",
                     "--seed", "3"], tmp_path / "out")
    try:
        wait_until(lambda: process.poll() is not None or jobs_served(port) > 0,
                   "the demo to finish a job", timeout_s=60)
        assert process.wait(60) == 0
    finally:
        stop(process)
    output = (tmp_path / "out").read_text()
    assert f"metrics:      http://127.0.0.1:{port}/metrics" in output
    assert "seed 3, 20 jobs/s" in output
    summary = next(line for line in output.splitlines() if line.startswith("agent-otel demo: stopped after"))
    jobs = int(summary.split(": ")[2].split(" jobs")[0])
    assert jobs > 10, summary
    assert "\x1b[K" not in output  # not a terminal: plain lines, no redraws
    assert port_is_closed(port)


def test_ctrl_c_stops_it_cleanly(tmp_path: Path) -> None:
    port = free_port()
    process = start(["--port", str(port), "--rate", "10"], tmp_path / "out")
    try:
        wait_until(lambda: (process.poll() is None or pytest.fail((tmp_path / "out").read_text()))
                   and jobs_served(port) > 2,
                   "jobs on /metrics", timeout_s=60)
        process.send_signal(signal.SIGINT)
        assert process.wait(60) == 0
    finally:
        stop(process)
    output = (tmp_path / "out").read_text()
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    assert "agent-otel demo: stopped after" in output
    assert port_is_closed(port)


def status_redraws(output: bytes) -> list[str]:
    return [part for part in output.decode(errors="replace").split("\r\x1b[K") if "jobs" in part and "cost $" in part]


def test_on_a_terminal_one_status_line_is_redrawn(tmp_path: Path) -> None:
    port = free_port()
    leader, follower = pty.openpty()
    process = subprocess.Popen([*DEMO, "--port", str(port), "--rate", "20"],
                               stdin=subprocess.DEVNULL, stdout=follower, stderr=subprocess.DEVNULL)
    os.close(follower)
    output = bytearray()

    def read_some() -> bool:
        """Whatever the terminal has now; False once the demo closed it."""
        ready, _, _ = select.select([leader], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the other side is closed
                return False
            output.extend(chunk)
            return bool(chunk)
        return True

    try:
        wait_until(lambda: not read_some() or len(status_redraws(bytes(output))) >= 2,
                   "two redraws of the status line", timeout_s=60)
        process.send_signal(signal.SIGINT)
        wait_until(lambda: not read_some(), "the demo to close its terminal", timeout_s=60)
        assert process.wait(60) == 0
    finally:
        stop(process)
        os.close(leader)
    redraws = status_redraws(bytes(output))
    assert len(redraws) >= 2, output
    assert "errors" in redraws[-1]
    assert "agent-otel demo: stopped after" in output.decode(errors="replace")


@pytest.mark.parametrize(("args", "message"), [
    (["--rate", "0"], "--rate must be > 0"),
    (["--port", "70000"], "a port must be 1..65535"),
    (["--duration", "soon"], "--duration must be a number"),
])
def test_bad_flags_are_named(args: list[str], message: str) -> None:
    done = subprocess.run([*DEMO, *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert message in done.stderr


def test_a_taken_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        done = subprocess.run([*DEMO, "--port", str(port), "--duration", "1"], capture_output=True, text=True,
                              timeout=60)
    assert done.returncode == 2
    # Before, it said to set OTEL_EXPORTER_PROMETHEUS_PORT, which the demo's --port overrides.
    assert done.stderr == (f"agent-otel demo: --port {port}: 127.0.0.1:{port} is in use; give a free port, or leave "
                           "--port out to take one\n"), done.stderr


@pytest.mark.parametrize("flag", ["--prometheus-port", "--alertmanager-port"])
def test_a_taken_stack_port_given_with_a_flag_is_refused_before_anything_starts(flag: str) -> None:
    """As ``--port``: exit 2 naming the flag, before the demo prints its URLs. It printed the banner and the
    metrics URL, as if it had started, then exited 1 when the stack found the port taken."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        done = subprocess.run([*DEMO, "--stack", "--port", str(free_port()), flag, str(port), "--duration", "1"],
                              capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (2, ""), done.stdout + done.stderr
    assert done.stderr == (f"agent-otel demo: {flag} {port}: 127.0.0.1:{port} is in use; give a free port, or leave "
                           f"{flag} out to take one\n"), done.stderr


def test_a_stack_port_flag_that_cannot_be_bound_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    """A port below 1024 for a user without the privilege: the reason, not "in use" (the first version said in use).
    The tests run as root here, which may bind port 80: the OS's refusal is given by a stand-in for the bind probe,
    the message is the demo's own."""
    refused = {80: "cannot be used (Permission denied)"}
    monkeypatch.setattr(runner, "bind_problem", refused.get)
    assert runner._flagged_port_taken(runner.DemoOptions(stack=True, prometheus_port=80)) == (
        "agent-otel demo: --prometheus-port 80: 127.0.0.1:80 cannot be used (Permission denied); give a free port, or "
        "leave --prometheus-port out to take one")
    assert runner._flagged_port_taken(runner.DemoOptions(stack=True, alertmanager_port=9093)) is None


def test_a_busy_default_port_blames_debian_only_for_the_ports_debian_holds() -> None:
    """Debian's prometheus packages hold 9090 and 9093: the note said so for a busy 9464 too."""
    metrics_only = _busy_message([(DEFAULT_METRICS_PORT, "metrics")])
    assert metrics_only == f"  port {DEFAULT_METRICS_PORT} (metrics) is in use: the URLs above use free ports instead"
    both = _busy_message([(DEFAULT_METRICS_PORT, "metrics"), (DEFAULT_PROMETHEUS_PORT, "Prometheus")])
    assert both.startswith(f"  ports {DEFAULT_METRICS_PORT} (metrics), {DEFAULT_PROMETHEUS_PORT} (Prometheus) are in "
                           "use (perhaps by Debian's prometheus packages, whose own services take 9090 and 9093, "
                           "or another demo)"), both


def test_stack_without_prometheus_installed_says_how_to_install_it(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(Path(sys.executable).parent)}  # no /usr/bin: no prometheus
    done = subprocess.run([*DEMO, "--stack", "--port", str(free_port()), "--duration", "1"], capture_output=True,
                          text=True, timeout=60, env=env)
    assert done.returncode == 1
    assert "prometheus is not installed" in done.stderr and "apt-get install" in done.stderr, done.stderr


def test_stack_starts_prometheus_and_alertmanager_with_the_shipped_files_and_stops_them(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("metrics", "prometheus", "alertmanager")}
    process = start(["--stack", "--port", str(ports["metrics"]), "--prometheus-port", str(ports["prometheus"]),
                     "--alertmanager-port", str(ports["alertmanager"]), "--workdir", str(tmp_path / "stack")],
                    tmp_path / "out")
    prometheus = f"http://127.0.0.1:{ports['prometheus']}"
    alertmanager = f"http://127.0.0.1:{ports['alertmanager']}"
    try:
        wait_until(lambda: "Ctrl-C stops the demo" in (tmp_path / "out").read_text() or process.poll() is not None,
                   "the demo to report its stack", timeout_s=90)
        output = (tmp_path / "out").read_text()
        assert f"prometheus:   {prometheus}" in output and f"alertmanager: {alertmanager}" in output, output
        groups = http_get_json(f"{prometheus}/api/v1/rules")["data"]["groups"]
        shipped = ASSETS / "prometheus"
        assert {group["file"] for group in groups} == {
            str(shipped / name) for name in ("agent-otel.rules.yaml", "agent-otel.alerts.yaml")}
        assert sum(1 for group in groups for rule in group["rules"] if rule["type"] == "alerting") > 10
        config = http_get_json(f"{alertmanager}/api/v2/status")["config"]["original"]
        assert "alert-webhook.invalid" not in config and "http://127.0.0.1:" in config
        wait_until(lambda: http_get_json(f"{prometheus}/api/v1/query?query=up")["data"]["result"],
                   "Prometheus to scrape the demo", timeout_s=60)
        process.send_signal(signal.SIGINT)
        assert process.wait(60) == 0
    finally:
        stop(process)
    for port in ports.values():
        assert port_is_closed(port)
    with pytest.raises(OSError):
        urllib.request.urlopen(prometheus + "/-/ready", timeout=2)


def test_stack_with_an_unwritable_workdir_names_it(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    done = subprocess.run([*DEMO, "--stack", "--port", str(free_port()), "--prometheus-port", str(free_port()),
                           "--alertmanager-port", str(free_port()), "--workdir", str(blocker / "stack"),
                           "--duration", "1"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert f"cannot write the stack's files in {blocker / 'stack'}" in done.stderr, done.stderr
