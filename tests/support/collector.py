"""Running bin/otelcol-agent-otel in a test: a shipped Collector config with every listening port moved to a
free loopback port (nothing else changes), started as a :class:`ManagedProcess` and ready when its
health_check answers."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from agent_otel._ops.stack import ManagedProcess, free_port
from tests.support.ops import COLLECTOR, collector_binary
from tests.support.polling import wait_until


def loopback() -> str:
    return f"127.0.0.1:{free_port()}"


@dataclass
class RunningCollector:
    process: ManagedProcess
    config: dict[str, Any]

    @property
    def otlp_http(self) -> str:
        return "http://" + self.config["receivers"]["otlp"]["protocols"]["http"]["endpoint"]

    @property
    def prometheus_target(self) -> str:
        """host:port of the Prometheus exporter (what Prometheus scrapes)."""
        return str(self.config["exporters"]["prometheus"]["endpoint"])

    @property
    def health_url(self) -> str:
        return "http://" + self.config["extensions"]["health_check"]["endpoint"] + "/"

    def stop(self) -> None:
        self.process.stop()


def on_loopback(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with every endpoint it listens on (receivers, Prometheus exporter, extensions, the
    Collector's own metrics) on a free 127.0.0.1 port."""
    for receiver in config["receivers"].values():
        for protocol in receiver["protocols"].values():
            protocol["endpoint"] = loopback()
    for name, exporter in config["exporters"].items():
        if name.split("/")[0] == "prometheus":
            exporter["endpoint"] = loopback()
    for extension in config.get("extensions", {}).values():
        extension["endpoint"] = loopback()
    for reader in config["service"].get("telemetry", {}).get("metrics", {}).get("readers", []):
        exporter = reader["pull"]["exporter"]["prometheus"]
        exporter.update(host="127.0.0.1", port=free_port())
    return config


def start_collector(name: str, workdir: Path, env: dict[str, str],
                    edit: Callable[[dict[str, Any]], None] | None = None) -> RunningCollector:
    """The shipped config ``name`` (e.g. ``otelcol.yaml``) on loopback ports, run by our Collector with the
    environment ``env`` (its ``${env:...}`` references) until ready. ``edit`` may change the loaded config
    first (a test's timing, e.g. a shorter metric_expiration). The caller stops it."""
    config = on_loopback(yaml.safe_load((COLLECTOR / name).read_text()))
    if edit is not None:
        edit(config)
    path = workdir / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    process = ManagedProcess(f"collector {name}", [collector_binary(), f"--config={path}"],
                             workdir / f"{path.stem}.log")
    process.command = ["env", *(f"{key}={value}" for key, value in env.items()), *process.command]
    running = RunningCollector(process, config)
    process.start()

    def ready() -> bool:
        code = process.exited()
        assert code is None, f"the Collector exited with {code}:\n{process.log_tail(40)}"
        try:
            with urllib.request.urlopen(running.health_url, timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    try:
        wait_until(ready, f"the Collector ({name}) to report healthy", timeout_s=60)
    except BaseException:
        process.stop()
        raise
    return running
