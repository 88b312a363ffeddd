"""`agent-otel demo --stack` in real life: every way of ending it stops the Prometheus and Alertmanager it
started and removes its temporary workdir; a restart right after a stop finds its ports free (a port in
TIME_WAIT is not in use); busy default ports (Debian's own prometheus services) give way to free ones.

Each demo runs in its own session (as from a terminal or ssh) with TMPDIR in the test's directory, so that
its temporary workdir can be checked; ports are explicit and free unless the test is about the defaults.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import socket
import subprocess
import sys
import termios
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from agent_otel._ops.demo.runner import DEFAULT_ALERTMANAGER_PORT, DEFAULT_METRICS_PORT, DEFAULT_PROMETHEUS_PORT
from agent_otel._ops.demo.workdir import WORKDIR_PREFIX
from agent_otel._ops.stack import check_port_free, free_port, port_is_free
from tests.support.demo import descendants, gone, port_is_closed, stop
from tests.support.polling import wait_until

DEMO = [sys.executable, "-m", "agent_otel", "demo", "--stack", "--rate", "5"]
READY = "Ctrl-C stops the demo"
URL_LINE = re.compile(r"^\s+(metrics|prometheus|alertmanager):\s+(http://127\.0\.0\.1:(\d+))", re.MULTILINE)


@dataclass
class Demo:
    """One `agent-otel demo --stack` process and the servers it started."""

    process: subprocess.Popen[bytes]
    log: Path
    tmp: Path
    servers: tuple[psutil.Process, ...] = ()

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self) -> Demo:
        wait_until(lambda: READY in self.output() or self.process.poll() is not None,
                   "the demo to start its stack", timeout_s=90)
        assert READY in self.output(), self.output()
        self.servers = tuple(descendants(self.process.pid))
        names = {server.name() for server in self.servers}
        assert {"prometheus", "prometheus-alertmanager"} <= names or {"prometheus", "alertmanager"} <= names, names
        return self

    def urls(self) -> dict[str, str]:
        return {name: url for name, url, _ in URL_LINE.findall(self.output())}

    def workdirs(self) -> list[Path]:
        return sorted(self.tmp.glob(WORKDIR_PREFIX + "*"))

    def wait_all_gone(self) -> None:
        """Poll until the demo and every process it started have exited."""
        wait_until(lambda: self.process.poll() is not None and all(gone(server) for server in self.servers),
                   "the demo and its Prometheus and Alertmanager to exit", timeout_s=60)


def start_demo(tmp_path: Path, args: list[str], name: str = "demo") -> Demo:
    tmp = tmp_path / "tmp"
    tmp.mkdir(exist_ok=True)
    log = tmp_path / f"{name}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([*DEMO, *args], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                   env={**os.environ, "TMPDIR": str(tmp)}, start_new_session=True)
    return Demo(process, log, tmp)


def explicit_ports() -> list[str]:
    return ["--port", str(free_port()), "--prometheus-port", str(free_port()),
            "--alertmanager-port", str(free_port())]


ENDINGS = {
    "Ctrl-C (SIGINT)": signal.SIGINT,
    "SIGTERM": signal.SIGTERM,
    "SIGHUP (terminal or ssh session closed)": signal.SIGHUP,
    "end of --duration": None,
}


@pytest.mark.parametrize("ending", ENDINGS)
def test_every_ending_stops_the_servers_it_started_and_removes_its_workdir(tmp_path: Path, ending: str) -> None:
    sig = ENDINGS[ending]
    demo = start_demo(tmp_path, [*explicit_ports(), *(["--duration", "15"] if sig is None else [])])
    try:
        demo.wait_ready()
        [workdir] = demo.workdirs()
        assert str(workdir) in demo.output()
        if sig is not None:
            demo.process.send_signal(sig)
        demo.wait_all_gone()
    finally:
        stop(demo.process)
    assert demo.process.returncode == 0, demo.output()
    assert demo.workdirs() == [], demo.output()
    assert "Traceback" not in demo.output(), demo.output()
    for url in demo.urls().values():
        assert port_is_closed(int(url.rsplit(":", 1)[1]))


def test_a_closed_terminal_stops_everything(tmp_path: Path) -> None:
    """The demo on a terminal it controls, as from an ssh session: closing the terminal hangs it up (the
    kernel sends SIGHUP, and later writes fail)."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    leader, follower = pty.openpty()

    def take_the_terminal() -> None:  # the new session's controlling terminal, as a login shell's
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    process = subprocess.Popen([*DEMO, *explicit_ports()], stdin=follower, stdout=follower, stderr=follower,
                               env={**os.environ, "TMPDIR": str(tmp)}, start_new_session=True,
                               preexec_fn=take_the_terminal)
    os.close(follower)
    output = bytearray()

    def read_some() -> bool:
        ready, _, _ = select.select([leader], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the other side is closed
                return False
            output.extend(chunk)
            return bool(chunk)
        return True

    servers: list[psutil.Process] = []
    try:
        wait_until(lambda: not read_some() or READY.encode() in output, "the demo to start its stack", timeout_s=90)
        assert READY.encode() in output, output.decode(errors="replace")
        servers = descendants(process.pid)
        assert len(servers) >= 2 and list(tmp.glob(WORKDIR_PREFIX + "*")), output.decode(errors="replace")
        os.close(leader)  # the terminal goes away
        leader = -1
        wait_until(lambda: process.poll() is not None and all(gone(server) for server in servers),
                   "the demo and its Prometheus and Alertmanager to exit", timeout_s=60)
    finally:
        if leader >= 0:
            os.close(leader)
        stop(process)
    assert list(tmp.glob(WORKDIR_PREFIX + "*")) == []


def test_a_killed_demo_takes_its_servers_with_it_and_the_next_run_removes_its_workdir(tmp_path: Path) -> None:
    """SIGKILL leaves the demo no chance to clean up: its servers die with it (the kernel signals them when
    their parent dies), and the next demo removes the workdir it left behind."""
    killed = start_demo(tmp_path, explicit_ports(), "killed")
    try:
        killed.wait_ready()
        [left_behind] = killed.workdirs()
        killed.process.kill()
        killed.wait_all_gone()
    finally:
        stop(killed.process)
    assert left_behind.exists()
    following = start_demo(tmp_path, explicit_ports(), "following")
    try:
        following.wait_ready()
        assert left_behind not in following.workdirs() and len(following.workdirs()) == 1
        following.process.send_signal(signal.SIGINT)
        following.wait_all_gone()
    finally:
        stop(following.process)
    assert following.workdirs() == []


def in_time_wait(port: int) -> bool:
    return any(conn.status == psutil.CONN_TIME_WAIT and conn.laddr and conn.laddr.port == port
               for conn in psutil.net_connections("tcp4"))


def test_free_ports_are_distinct_and_outside_the_range_outgoing_connections_take_theirs_from() -> None:
    """A port found free among the ephemeral ones could be taken as the local port of an outgoing connection before
    the server asked to listen on it did (a Collector of the gateway tests: "bind: address already in use")."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50
    assert all(1024 <= port < low for port in ports)
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_a_port_in_time_wait_is_free_for_a_new_server() -> None:
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Prometheus and Alertmanager listen
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client:
            server_side, _ = listener.accept()
            server_side.close()  # the server closes first: its end of the connection waits in TIME_WAIT
            wait_until(lambda: client.recv(1) == b"", "the client to see the server's close")
    wait_until(lambda: in_time_wait(port), f"127.0.0.1:{port} in TIME_WAIT")
    with socket.socket() as plain, pytest.raises(OSError):
        plain.bind(("127.0.0.1", port))  # a bind without SO_REUSEADDR trips on it
    assert port_is_free(port)
    check_port_free(port, "Prometheus")


def test_a_restart_right_after_a_stop_gets_the_same_ports(tmp_path: Path) -> None:
    ports = explicit_ports()
    first = start_demo(tmp_path, ports, "first")
    try:
        urls = first.wait_ready().urls()
        for name in ("prometheus", "alertmanager"):  # the server closes these: TIME_WAIT on its port
            for _ in range(3):
                with urllib.request.urlopen(urls[name] + "/-/ready", timeout=5) as response:
                    assert response.status == 200
        first.process.send_signal(signal.SIGINT)
        first.wait_all_gone()
    finally:
        stop(first.process)
    assert first.process.returncode == 0, first.output()
    assert in_time_wait(int(urls["prometheus"].rsplit(":", 1)[1]))
    second = start_demo(tmp_path, ports, "second")
    try:
        second.wait_ready()
        assert second.urls() == urls
        second.process.send_signal(signal.SIGINT)
        second.wait_all_gone()
    finally:
        stop(second.process)
    assert second.process.returncode == 0, second.output()
    assert "not free" not in second.output()


def occupy(port: int) -> socket.socket | None:
    """A listening socket on 127.0.0.1:port, or None when something else already listens there."""
    sock = socket.socket()
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        return None
    sock.listen()
    return sock


def test_busy_default_ports_give_way_to_free_ones_which_are_printed(tmp_path: Path) -> None:
    defaults = {"metrics": DEFAULT_METRICS_PORT, "prometheus": DEFAULT_PROMETHEUS_PORT,
                "alertmanager": DEFAULT_ALERTMANAGER_PORT}
    held = [occupy(port) for port in defaults.values()]
    try:
        assert not any(port_is_free(port) for port in defaults.values())
        demo = start_demo(tmp_path, [])
        try:
            demo.wait_ready()
            urls = demo.urls()
            assert set(urls) == set(defaults), demo.output()
            for name, url in urls.items():
                assert int(url.rsplit(":", 1)[1]) != defaults[name], demo.output()
            for url in (urls["metrics"] + "/metrics", urls["prometheus"] + "/-/ready",
                        urls["alertmanager"] + "/-/ready"):
                with urllib.request.urlopen(url, timeout=5) as response:
                    assert response.status == 200, url
            [note] = [line for line in demo.output().splitlines() if "in use" in line]
            assert all(f"{port}" in note for port in defaults.values()), note
            demo.process.send_signal(signal.SIGINT)
            demo.wait_all_gone()
        finally:
            stop(demo.process)
        assert demo.process.returncode == 0, demo.output()
    finally:
        for sock in held:
            if sock is not None:
                sock.close()
