"""A slow or stuck ``/metrics`` scrape never blocks the instrumented calls.

configure() serves /metrics; 2,000 tool series make the exposition a few MB, more than the socket
buffers hold. Four scrapers then misbehave at once: one connects and sends nothing, one sends half
a request, one sends a request and never reads the answer (its server thread blocks writing), one
reads it a kilobyte at a time. While they hang, wrapped calls complete, a well-behaved scrape still
answers and shows those calls, and ``shutdown()`` returns promptly.
"""

from __future__ import annotations

import os
import re
import select
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

import agent_otel
from agent_otel import path, semconv
from tests.conftest import free_port
from tests.polling import wait_until

SERIES = 2_000
CALLS = 5_000
CALLS_DEADLINE_S = 60.0
SHUTDOWN_DEADLINE_S = 10.0
REQUEST = b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nAccept: text/plain\r\n\r\n"


@agent_otel.tool(path("args.name"))
def named_tool(name: str) -> str:
    return name


@agent_otel.agent("scraped-agent")
def agent_call(i: int) -> dict[str, Any]:
    return {"success": True, "fixes_applied": 1}


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read().decode()


def handler_threads() -> set[threading.Thread]:
    """Threads the /metrics server runs requests on (socketserver names them after their target)."""
    return {thread for thread in threading.enumerate() if "process_request_thread" in thread.name}


def agent_calls_on(body: str) -> float:
    name = semconv.AGENT_DURATION.prometheus
    found = re.search(rf'^{name}_count{{[^}}]*gen_ai_agent_name="scraped-agent"[^}}]*}} (\S+)', body, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


class SlowReader(threading.Thread):
    """Reads a scrape's answer a kilobyte at a time, paced, until told to stop."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(daemon=True)
        self.sock = sock
        self.received = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.02):
            try:
                chunk = self.sock.recv(1024)
            except OSError:
                return
            if not chunk:
                return
            self.received += len(chunk)


@pytest.fixture
def metrics_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name in list(os.environ):
        if name.startswith(("OTEL_", "AGENT_OTEL_")):
            monkeypatch.delenv(name)
    agent_otel.shutdown()
    agent_otel.set_policy(cardinality_limit=SERIES + 100)
    telemetry = agent_otel.configure(metrics_exporter="prometheus", traces_exporter="none",
                                     prometheus_port=free_port(), set_global=False, system_metrics=False,
                                     instrument_threads=False, instrument_processes=False)
    yield telemetry
    agent_otel.shutdown()


def test_stuck_and_slow_scrapes_never_block_the_calls(metrics_server: Any) -> None:
    url = metrics_server.prometheus_url
    host, port = metrics_server.prometheus_server.server_address[:2]
    for i in range(SERIES):
        named_tool(f"tool-{i:05d}")
    size = len(scrape(url))
    assert size > 2**20, f"the exposition is only {size} bytes"

    clients: list[socket.socket] = []

    def connect(small_buffer: bool = False) -> socket.socket:
        sock = socket.socket()
        if small_buffer:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((host, port))
        clients.append(sock)
        return sock

    earlier = handler_threads()  # e.g. the scrape above, maybe still closing

    def stuck_handlers() -> int:
        return len(handler_threads() - earlier)

    slow = None
    try:
        connect()  # sends nothing
        connect().sendall(REQUEST[:20])  # half a request line
        never_reads = connect(small_buffer=True)
        never_reads.sendall(REQUEST)
        slow = SlowReader(connect(small_buffer=True))
        slow.sock.sendall(REQUEST)
        slow.start()
        wait_until(lambda: stuck_handlers() >= 4, "four scrapes held by the server")
        wait_until(lambda: select.select([never_reads], [], [], 0)[0], "the unread scrape's answer to start")

        began = time.monotonic()
        for i in range(CALLS):
            assert agent_call(i) == {"success": True, "fixes_applied": 1}
            named_tool("tool-00000")
        calls_s = time.monotonic() - began
        assert calls_s < CALLS_DEADLINE_S

        # a well-behaved scrape is answered meanwhile, with every call just made
        assert agent_calls_on(scrape(url)) == CALLS
        # and the bad ones are still hanging: what was checked happened while they were stuck
        assert stuck_handlers() >= 4
        assert slow.is_alive() and slow.received < size
    finally:
        if slow is not None:
            slow.stop.set()
        began = time.monotonic()
        agent_otel.shutdown()
        shutdown_s = time.monotonic() - began
        for sock in clients:
            sock.close()
    assert shutdown_s < SHUTDOWN_DEADLINE_S
    print(f"\n/metrics {size / 2**20:.1f} MiB; {CALLS} x 2 calls in {calls_s:.2f} s with 4 stuck scrapes; "
          f"slow reader got {slow.received} bytes; shutdown {shutdown_s:.2f} s")
