"""Stopping an `agent-otel demo` process started by a test, and checking that its ports are released."""

from __future__ import annotations

import socket
import subprocess


def stop(process: subprocess.Popen[bytes]) -> None:
    """Teardown: SIGTERM first, so that the demo stops the Prometheus and Alertmanager it started (they run
    in their own session and would outlive a SIGKILL), then SIGKILL if it does not exit."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def port_is_closed(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0
