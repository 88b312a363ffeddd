"""A local OpenTelemetry Collector for ``agent-otel demo --stack --collector``: our distribution
(bin/otelcol-agent-otel, ``make collector``) or upstream otelcol-contrib, running the shipped agent config
(assets/collector/otelcol.yaml) with every port it listens on moved to a free 127.0.0.1 port, nothing else
changed. It sits between the demo's OTLP export and Prometheus, as in a deployment."""

from __future__ import annotations

import os
import secrets
import shutil
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agent_otel._environment import AGENT_OTEL_HASH_SALT
from agent_otel._ops.assets import assets_root
from agent_otel._ops.stack import ManagedProcess, StackError, free_port

#: Looked up on PATH in this order, then in ./bin (where `make collector` puts ours).
COLLECTOR_BINARIES = ("otelcol-agent-otel", "otelcol-contrib")
AGENT_CONFIG = Path("collector") / "otelcol.yaml"
#: The agent config's environment: where its traces exporter sends spans (OTLP/gRPC host:port).
TRACES_BACKEND_ENV = "OTEL_TRACES_BACKEND_ENDPOINT"


def find_collector(explicit: str | None = None) -> str:
    """The Collector binary: ``explicit`` if given, else the first of :data:`COLLECTOR_BINARIES` on PATH or in
    ./bin."""
    if explicit:
        found = shutil.which(explicit)
        if found is None:
            raise StackError(f"{explicit}: not an executable file")
        return str(Path(found).resolve())
    for name in COLLECTOR_BINARIES:
        found = shutil.which(name) or shutil.which(str(Path("bin") / name))
        if found is not None:
            return str(Path(found).resolve())
    raise StackError("no OpenTelemetry Collector found (otelcol-agent-otel or otelcol-contrib on PATH or in ./bin): "
                     "build ours with `make collector`, or pass --collector PATH")


def _loopback() -> str:
    return f"127.0.0.1:{free_port()}"


def on_loopback(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with every endpoint it listens on (receivers, Prometheus exporter, extensions, the
    Collector's own metrics) on its own free 127.0.0.1 port. A port is free only until something binds it,
    and nothing does before the Collector starts: the kernel may hand the same one out twice, which two
    endpoints of one config must not get (the Collector then fails to start: address already in use)."""
    taken: set[int] = set()

    def port() -> int:
        while (found := free_port()) in taken:
            pass
        taken.add(found)
        return found

    for receiver in config["receivers"].values():
        for protocol in receiver["protocols"].values():
            protocol["endpoint"] = f"127.0.0.1:{port()}"
    for name, exporter in config["exporters"].items():
        if name.split("/")[0] == "prometheus":
            exporter["endpoint"] = f"127.0.0.1:{port()}"
    for extension in config.get("extensions", {}).values():
        extension["endpoint"] = f"127.0.0.1:{port()}"
    for reader in config["service"].get("telemetry", {}).get("metrics", {}).get("readers", []):
        exporter = reader["pull"]["exporter"]["prometheus"]
        exporter.update(host="127.0.0.1", port=port())
    return config


class CollectorEndpoints:
    """Where a Collector running ``config`` listens: the OTLP/HTTP receiver, the Prometheus exporter and
    the health check."""

    config: dict[str, Any]

    @property
    def otlp_http(self) -> str:
        return "http://" + str(self.config["receivers"]["otlp"]["protocols"]["http"]["endpoint"])

    @property
    def prometheus_target(self) -> str:
        """host:port of its Prometheus exporter (what Prometheus scrapes)."""
        return str(self.config["exporters"]["prometheus"]["endpoint"])

    @property
    def health_url(self) -> str:
        return "http://" + str(self.config["extensions"]["health_check"]["endpoint"]) + "/"


@dataclass
class LocalCollector(CollectorEndpoints):
    """The shipped agent config on loopback, written to ``workdir`` with the Collector's log. The OTLP/HTTP
    port is chosen at construction, so that the SDK can be pointed at it before the Collector starts."""

    workdir: Path
    binary: str
    config: dict[str, Any] = field(default_factory=lambda: on_loopback(
        yaml.safe_load((assets_root() / AGENT_CONFIG).read_text())))
    process: ManagedProcess | None = None

    def start(self, ready_timeout: float = 60.0, cancel: threading.Event | None = None) -> LocalCollector:
        """Start it and wait until its health check answers; ``cancel`` stops waiting (StackError). Spans go
        to $OTEL_TRACES_BACKEND_ENDPOINT (e.g. a local Jaeger's 127.0.0.1:4317), else they wait in the
        exporter's bounded queue and are dropped; the hash salt is $AGENT_OTEL_HASH_SALT, else a random one."""
        path = self.workdir / "otelcol.yaml"
        try:
            self.workdir.mkdir(parents=True, exist_ok=True)
            path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        except OSError as exc:
            raise StackError(f"cannot write the Collector's config in {self.workdir}: {exc.strerror or exc}") from None
        env = {TRACES_BACKEND_ENV: os.environ.get(TRACES_BACKEND_ENV) or _loopback(),
               "OTEL_TRACES_BACKEND_INSECURE": os.environ.get("OTEL_TRACES_BACKEND_INSECURE", "true"),
               AGENT_OTEL_HASH_SALT: os.environ.get(AGENT_OTEL_HASH_SALT) or secrets.token_hex(16)}
        self.process = ManagedProcess("collector", ["env", *(f"{key}={value}" for key, value in env.items()),
                                                    self.binary, f"--config={path}"], self.workdir / "otelcol.log")
        try:
            self.process.start()
            self._wait_ready(ready_timeout, cancel or threading.Event())
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float, cancel: threading.Event) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while True:
            code = self.process.exited()
            if code is not None:
                raise StackError(f"the Collector exited with status {code} during start-up; its log "
                                 f"({self.process.log_path}) ends with:\n{self.process.log_tail()}")
            try:
                with urllib.request.urlopen(self.health_url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise StackError(f"the Collector is not healthy after {timeout:.0f} s; log in {self.process.log_path}")
            if cancel.wait(0.1):
                raise StackError("start-up interrupted")

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
