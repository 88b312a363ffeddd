"""Stopping an `agent-otel demo` process started by a test, and checking that its ports are released and the
processes it started are gone."""

from __future__ import annotations

import socket
import subprocess

import psutil


def stop(process: subprocess.Popen[bytes]) -> None:
    """Teardown: SIGTERM first, so that the demo stops the Prometheus and Alertmanager it started and removes
    its workdir, then SIGKILL if it does not exit (its servers then get SIGTERM from the kernel)."""
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


def descendants(pid: int) -> list[psutil.Process]:
    """Every process ``pid`` started (and they started), as psutil handles that remember their start time."""
    return psutil.Process(pid).children(recursive=True)


def gone(process: psutil.Process) -> bool:
    """The process has exited: no longer running (a reused PID does not count) or a zombie nobody reaped yet
    (a container's PID 1 may never reap the orphans it inherits)."""
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
