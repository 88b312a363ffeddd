"""A bare Prometheus for a test: the given config, optional flags (e.g. ``--web.enable-remote-write-receiver``),
its data in the test's directory, on a free loopback port, ready when /-/ready answers, stopped by PID."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from agent_otel._ops.stack import ManagedProcess, free_port
from tests.support.http import http_get_json
from tests.support.ops import binary
from tests.support.polling import wait_until


class RunningPrometheus:
    def __init__(self, workdir: Path, config: dict[str, Any], *flags: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        config_path = workdir / "prometheus.yml"
        config_path.write_text(json.dumps(config))  # JSON is YAML
        self.url = f"http://127.0.0.1:{free_port()}"
        self.process = ManagedProcess("prometheus", [
            binary("prometheus"), f"--config.file={config_path}", f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address={self.url.removeprefix('http://')}", *flags], workdir / "prometheus.log")
        self.process.start()
        try:
            wait_until(self.ready, "Prometheus to be ready", timeout_s=60)
        except BaseException:
            self.stop()
            raise

    @property
    def remote_write_url(self) -> str:
        return f"{self.url}/api/v1/write"

    def ready(self) -> bool:
        code = self.process.exited()
        assert code is None, f"Prometheus exited with {code}:\n{self.process.log_tail(30)}"
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def api(self, path: str, **params: Any) -> Any:
        answer = http_get_json(f"{self.url}{path}?" + urllib.parse.urlencode(params, doseq=True))
        assert answer["status"] == "success", answer
        return answer["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """``expr`` now, or at Unix time ``at``: checks that read several queries of one moment pass the
        moment a first one found its data at (a failed scrape leaves a target's series stale until the next)."""
        params = {"query": expr} if at is None else {"query": expr, "time": f"{at:.3f}"}
        result: list[dict[str, Any]] = self.api("/api/v1/query", **params)["result"]
        return result

    def value(self, expr: str, at: float | None = None) -> float | None:
        """The value of a query that yields one sample, None when it yields none."""
        result = self.query(expr, at)
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None

    def stop(self) -> None:
        self.process.stop()
