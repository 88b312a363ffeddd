"""Driving tests/support/instrumented_app.py from a test: started as a process with an OTLP environment,
given one command at a time, its answer read with a deadline (never a sleep), stopped by PID."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.support.demo import stop
from tests.support.paths import ROOT


class AppProcess:
    """``python -m tests.support.instrumented_app`` sending OTLP/HTTP to ``otlp_http`` as ``service``."""

    def __init__(self, workdir: Path, otlp_http: str, service: str, **env: str) -> None:
        self.log_path = workdir / "app.log"
        environment = {**os.environ, "OTEL_TRACES_EXPORTER": "otlp", "OTEL_METRICS_EXPORTER": "otlp",
                       "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_http, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                       "OTEL_METRIC_EXPORT_INTERVAL": "1000", "OTEL_BSP_SCHEDULE_DELAY": "200",
                       "OTEL_SERVICE_NAME": service, "AGENT_OTEL_SPAN_BRIDGE": "false", **env}
        environment.pop("OTEL_RESOURCE_ATTRIBUTES", None)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "tests.support.instrumented_app"], cwd=ROOT,
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                            env=environment)
        assert self.read(timeout_s=60) == {"ready": True}

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def read(self, timeout_s: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout_s
        while True:
            code = self.process.poll()
            assert code is None, f"the instrumented app exited with {code}:\n{self.log()[-3000:]}"
            left = deadline - time.monotonic()
            assert left > 0, f"no answer from the instrumented app within {timeout_s:g} s:\n{self.log()[-3000:]}"
            ready, _, _ = select.select([self.process.stdout], [], [], min(left, 0.5))
            if ready:
                answer: dict[str, Any] = json.loads(self.process.stdout.readline())
                return answer

    def command(self, timeout_s: float = 60, **command: Any) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps(command) + "\n").encode())
        self.process.stdin.flush()
        return self.read(timeout_s)

    def stop(self) -> None:
        if self.process.stdin is not None and not self.process.stdin.closed:
            try:
                self.process.stdin.close()  # the app shuts agent-otel down and exits
            except BrokenPipeError:
                pass
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            stop(self.process)
        if self.process.stdout is not None:
            self.process.stdout.close()
