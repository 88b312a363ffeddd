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

from agent_otel._ops.collector import CollectorEndpoints, on_loopback
from agent_otel._ops.stack import ManagedProcess, free_port
from tests.support.ops import COLLECTOR, collector_binary
from tests.support.polling import wait_until


def loopback() -> str:
    return f"127.0.0.1:{free_port()}"


@dataclass
class RunningCollector(CollectorEndpoints):
    process: ManagedProcess
    config: dict[str, Any]

    def stop(self) -> None:
        self.process.stop()

    def wait_healthy(self) -> None:
        """Return once health_check answers; fail at once if the process exited (with its log)."""
        process = self.process

        def ready() -> bool:
            code = process.exited()
            assert code is None, f"the Collector exited with {code}:\n{process.log_tail(40)}"
            try:
                with urllib.request.urlopen(self.health_url, timeout=2) as response:
                    return bool(response.status == 200)
            except (urllib.error.URLError, OSError):
                return False

        try:
            wait_until(ready, f"the Collector ({process.name}) to report healthy", timeout_s=60)
        except BaseException:
            process.stop()
            raise

    def restart(self) -> None:
        """The same command again (same config, same ports) once the process has ended, e.g. after a test
        killed it; its log goes to a new file. Returns when healthy."""
        assert self.process.exited() is not None, "restart() is for a Collector that has stopped"
        log = self.process.log_path
        self.process = ManagedProcess(self.process.name, self.process.command,
                                      log.with_name(f"{log.stem}-restarted{log.suffix}"))
        self.process.start()
        self.wait_healthy()


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

    running.wait_healthy()
    return running
