"""A local Prometheus + Alertmanager running the shipped rules and Alertmanager config.

``agent-otel demo --stack`` and the end-to-end tests use it, so that what a newcomer sees and what CI
checks are the same processes with the same files. Both servers listen on 127.0.0.1 only, keep their
data in a work directory, and are stopped by PID. The shipped files are never modified: the Prometheus
config is written for the local targets, and the Alertmanager config is the shipped one with its
placeholder webhook URL replaced (the same substitution compose.yaml does).
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from agent_otel._ops.assets import ASSETS_ENV, assets_root

#: The webhook URL written in assets/alertmanager/alertmanager.yml, replaced when the config is deployed.
WEBHOOK_PLACEHOLDER = "http://alert-webhook.invalid/agent-otel"
#: Paths inside the assets directory.
RULE_PATHS = ("prometheus/agent-otel.rules.yaml", "prometheus/agent-otel.alerts.yaml")
ALERTMANAGER_PATH = "alertmanager/alertmanager.yml"
#: Debian names the binary prometheus-alertmanager; upstream tarballs name it alertmanager.
ALERTMANAGER_BINARIES = ("prometheus-alertmanager", "alertmanager")
INSTALL_HINT = "apt-get install -y --no-install-recommends prometheus prometheus-alertmanager (or `make deps`)"


class StackError(RuntimeError):
    """The local stack cannot start: a binary or asset is missing, a port is taken, a server died."""


def assets_dir() -> Path:
    """The directory with the shipped rules (``prometheus/``) and Alertmanager config (``alertmanager/``)."""
    root = assets_root()
    if (root / "prometheus").is_dir() and all((root / name).is_file() for name in (*RULE_PATHS, ALERTMANAGER_PATH)):
        return root
    raise StackError(f"the shipped rules and alertmanager.yml were not found in {root}; "
                     f"set {ASSETS_ENV} to a directory laid out as agent_otel/assets/ (or unset it)")


def find_binary(*names: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise StackError(f"{' or '.join(names)} is not installed; install it with: {INSTALL_HINT}")


def free_port() -> int:
    """A port free on 127.0.0.1 for a server to listen on next. Taken below the kernel's range of ephemeral ports,
    where it can be read: a port found free in that range can be taken as the local port of any outgoing
    connection before the server binds it (a Collector of the tests failed so: "address already in use"); and never
    one this process handed out before (asked twice in a row, the kernel may give the same one back)."""
    low = _ephemeral_ports_start()
    if low is not None and low > _LOWEST_PICKED + 1000:
        for _ in range(100):
            port = _ports.randrange(_LOWEST_PICKED, low)
            if port not in _handed_out and _free_without_reuse(port):
                _handed_out.add(port)
                return port
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port


#: The lowest port :func:`free_port` picks (above the well-known and the common registered services' ports).
_LOWEST_PICKED = 20000
_handed_out: set[int] = set()
#: Its own generator: the program's seeded ``random`` sequence stays its own, and two processes seeded alike do not
#: pick the same ports.
_ports = random.Random()


def _ephemeral_ports_start() -> int | None:
    """The first port of the kernel's ephemeral range (Linux), or None where it cannot be read."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _free_without_reuse(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _bind_error(port: int) -> OSError | None:
    """Why a server could not listen on 127.0.0.1:``port``, or None if it could.

    The probe binds with SO_REUSEADDR, as Prometheus, Alertmanager (Go) and Python's HTTP servers do: a
    port whose last connections still wait in TIME_WAIT (for about 60 s after a stop) is free for them,
    only a listening socket is not."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            return exc
    return None


def bind_problem(port: int) -> str | None:
    """Why a server cannot listen on 127.0.0.1:``port`` ("is in use", "cannot be used (Permission denied)"), or None
    if it can."""
    error = _bind_error(port)
    if error is None:
        return None
    return "is in use" if error.errno == errno.EADDRINUSE else f"cannot be used ({error.strerror or error})"


def port_is_free(port: int) -> bool:
    """A server could listen on 127.0.0.1:``port`` now."""
    return _bind_error(port) is None


def check_port_free(port: int, what: str) -> None:
    error = _bind_error(port)
    if error is not None:
        raise StackError(f"{what} port 127.0.0.1:{port} is not free ({error.strerror}); pick another port")


def free_port_preferring(preferred: int) -> int:
    """``preferred`` when it is free on 127.0.0.1, else a free port (e.g. when Debian's own prometheus
    service holds the default 9090)."""
    return preferred if port_is_free(preferred) else free_port()


def alertmanager_config(shipped: str, webhook_url: str) -> str:
    """The shipped Alertmanager config with every receiver posting to ``webhook_url``. Comments are kept as
    shipped: the header's ``sed`` example names the placeholder, and rewritten it no longer works."""
    lines = shipped.splitlines(keepends=True)
    replaced = [line if line.lstrip().startswith("#") else line.replace(WEBHOOK_PLACEHOLDER, webhook_url)
                for line in lines]
    if replaced == lines:
        raise StackError(f"the Alertmanager config has no {WEBHOOK_PLACEHOLDER} placeholder to replace")
    return "".join(replaced)


def prometheus_config(targets: Iterable[str], rule_files: Iterable[Path], alertmanager: str, *,
                      scrape_interval: str, evaluation_interval: str, job_name: str,
                      honor_labels: bool = False) -> str:
    """A Prometheus config scraping ``targets`` (host:port) under one agent-otel* job (the alerts'
    target selector), evaluating ``rule_files`` and alerting to ``alertmanager`` (host:port).
    ``honor_labels``: keep the targets' own job/instance (a Collector's, from service.name/instance.id)."""
    config = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": evaluation_interval},
        "rule_files": [str(path) for path in rule_files],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
        "scrape_configs": [{"job_name": job_name, "honor_labels": honor_labels,
                            "static_configs": [{"targets": list(targets)}]}],
    }
    return json.dumps(config, indent=2)  # JSON is YAML; no YAML writer needed at run time


def http_get_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child receive SIGTERM when the thread that starts it exits, or None
    where there is no such thing (prctl PR_SET_PDEATHSIG is Linux only).

    It covers the one ending no handler can see: the starting process killed outright (SIGKILL, OOM
    killer), which would otherwise leave our servers running for ever. libc and prctl are looked up here,
    in the parent, so that the child between fork and exec only makes one foreign call."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    parent = os.getpid()
    sigterm = int(signal.SIGTERM)

    def preexec() -> None:
        if prctl(_PR_SET_PDEATHSIG, sigterm, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent:  # the parent died before prctl: nobody will stop this server
            raise ChildProcessError("the process starting this server has exited")

    return preexec


@dataclass
class ManagedProcess:
    """A server started by us, logging to a file, stopped by its PID.

    It runs in its own session, so that a Ctrl-C on the terminal reaches only us and we stop the servers in
    order; on Linux it also receives SIGTERM if the thread that started it exits (see _die_with_parent), so
    start it from a thread that lives as long as the server should (the main thread)."""

    name: str
    command: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True,
                                            preexec_fn=_die_with_parent())

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def exited(self) -> int | None:
        return self.process.poll() if self.process else None

    def kill(self) -> None:
        """SIGKILL now, without waiting; safe in a signal handler (no wait, no Popen lock): a stop in
        progress then returns at once."""
        if self.process is not None and self.process.returncode is None:
            try:
                os.kill(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.kill(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass  # killed; the kernel reaps it when it can, nothing left for us to do
        except ProcessLookupError:
            pass


@dataclass
class LocalStack:
    """Prometheus (with exemplar storage) and Alertmanager on 127.0.0.1, configured from files.

    ``rule_files`` default to the shipped ones; tests pass copies with shortened ``for:`` durations.
    Ports of 0 are picked free. Use as a context manager, or call :meth:`start` and :meth:`stop`."""

    workdir: Path
    scrape_targets: list[str]
    webhook_url: str
    rule_files: list[Path] | None = None
    alertmanager_yml: str | None = None
    prometheus_port: int = 0
    alertmanager_port: int = 0
    scrape_interval: str = "5s"
    evaluation_interval: str = "15s"
    job_name: str = "agent-otel-demo"
    honor_labels: bool = False
    processes: list[ManagedProcess] = field(default_factory=list)

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}"

    @property
    def alertmanager_url(self) -> str:
        return f"http://127.0.0.1:{self.alertmanager_port}"

    def start(self, ready_timeout: float = 60.0, cancel: threading.Event | None = None) -> LocalStack:
        """Start both servers and wait until they are ready; ``cancel`` (e.g. set by Ctrl-C) stops waiting
        and raises StackError."""
        prometheus = find_binary("prometheus")
        alertmanager = find_binary(*ALERTMANAGER_BINARIES)
        rule_files = self.rule_files if self.rule_files is not None else \
            [assets_dir() / name for name in RULE_PATHS]
        shipped_am = self.alertmanager_yml if self.alertmanager_yml is not None else \
            (assets_dir() / ALERTMANAGER_PATH).read_text()
        for port, what in ((self.prometheus_port, "Prometheus"), (self.alertmanager_port, "Alertmanager")):
            if port:
                check_port_free(port, what)
        self.prometheus_port = self.prometheus_port or free_port()
        self.alertmanager_port = self.alertmanager_port or free_port()
        am_file = self.workdir / "alertmanager.yml"
        prom_file = self.workdir / "prometheus.yml"
        try:
            self.workdir.mkdir(parents=True, exist_ok=True)
            am_file.write_text(alertmanager_config(shipped_am, self.webhook_url))
            prom_file.write_text(prometheus_config(
                self.scrape_targets, [Path(p).resolve() for p in rule_files], f"127.0.0.1:{self.alertmanager_port}",
                scrape_interval=self.scrape_interval, evaluation_interval=self.evaluation_interval,
                job_name=self.job_name, honor_labels=self.honor_labels))
        except OSError as exc:
            raise StackError(f"cannot write the stack's files in {self.workdir}: {exc.strerror or exc}") from None
        self.processes = [
            ManagedProcess("alertmanager", [
                alertmanager, f"--config.file={am_file}", f"--storage.path={self.workdir / 'am-data'}",
                f"--web.listen-address=127.0.0.1:{self.alertmanager_port}", "--cluster.listen-address=",
                f"--web.external-url={self.alertmanager_url}/",
            ], self.workdir / "alertmanager.log"),
            ManagedProcess("prometheus", [
                prometheus, f"--config.file={prom_file}", f"--storage.tsdb.path={self.workdir / 'prom-data'}",
                f"--web.listen-address=127.0.0.1:{self.prometheus_port}", "--enable-feature=exemplar-storage",
                # links in alert notifications (generatorURL) must point here, not at the host name
                f"--web.external-url={self.prometheus_url}/",
            ], self.workdir / "prometheus.log"),
        ]
        try:
            for process in self.processes:
                process.start()
            self._wait_ready(ready_timeout, cancel)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float, cancel: threading.Event | None) -> None:
        cancel = cancel or threading.Event()
        deadline = time.monotonic() + timeout
        pending = {p.name: p for p in self.processes}
        urls = {"alertmanager": self.alertmanager_url, "prometheus": self.prometheus_url}
        while pending:
            for name, process in list(pending.items()):
                code = process.exited()
                if code is not None:
                    raise StackError(f"{name} exited with status {code} during start-up; its log "
                                     f"({process.log_path}) ends with:\n{process.log_tail()}")
                try:
                    with urllib.request.urlopen(urls[name] + "/-/ready", timeout=2):
                        del pending[name]
                except (urllib.error.URLError, OSError):
                    pass
            if pending and time.monotonic() > deadline:
                raise StackError(f"{', '.join(pending)} not ready after {timeout:.0f} s; logs in {self.workdir}")
            if pending and cancel.wait(0.1):
                raise StackError("start-up interrupted")

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    def kill(self) -> None:
        """Kill both servers without waiting (a second Ctrl-C during :meth:`stop`)."""
        for process in self.processes:
            process.kill()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class WebhookReceiver:
    """An Alertmanager webhook endpoint on 127.0.0.1 that keeps every notification it receives."""

    def __init__(self, on_notification: Callable[[dict[str, Any]], None] | None = None, port: int = 0) -> None:
        self.notifications: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    payload = json.loads(body)
                except ValueError:
                    self.send_response(400)
                    self.end_headers()
                    return
                with receiver._lock:
                    receiver.notifications.append(payload)
                self.send_response(200)
                self.end_headers()
                if on_notification is not None:
                    on_notification(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="agent-otel-webhook", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/alerts"

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert of every notification so far (firing and resolved)."""
        with self._lock:
            return [alert for payload in self.notifications for alert in payload.get("alerts", [])]

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
