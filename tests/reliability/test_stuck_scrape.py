"""A slow or stuck ``/metrics`` scrape never blocks the instrumented calls.

configure() serves /metrics; 2,000 tool series make the exposition a few MB, more than the socket
buffers hold. Four scrapers then misbehave at once: one connects and sends nothing, one sends half
a request, one sends a request and never reads the answer (its server thread blocks writing), one
reads it a kilobyte at a time and then stops. While they hang, wrapped calls complete, a well-behaved
scrape still answers and shows those calls, and ``shutdown()`` returns. The server's socket timeout
finally disconnects a client that sends nothing.
"""

from __future__ import annotations

import os
import re
import select
import socket
import threading
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import agent_otel
from agent_otel import path, semconv
from agent_otel._ops.stack import free_port
from agent_otel._sdk import prometheus as exposition
from tests.support.polling import wait_until
from tests.support.reliability import completes

SERIES = 2_000
CALLS = 5_000
# hang detection only: "calls do not block" and "shutdown() returns within its timeout" (10 s default)
CALLS_HANG_S = 120.0
SHUTDOWN_HANG_S = 30.0
SLOW_READER_LIMIT = 64 * 2**10  # bytes the slow reader takes before it stops: far less than the exposition
STUCK_SOCKET_TIMEOUT_S = 3_600.0  # the stuck scrapes stay stuck however long the test takes
SHORT_SOCKET_TIMEOUT_S = 1.0
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
    """Reads a scrape's answer a kilobyte at a time, paced, until it has :data:`SLOW_READER_LIMIT`
    bytes (then reads no more: stuck by construction) or is told to stop."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(daemon=True)
        self.sock = sock
        self.received = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.02) and self.received < SLOW_READER_LIMIT:
            try:
                chunk = self.sock.recv(min(1024, SLOW_READER_LIMIT - self.received))
            except OSError:
                return
            if not chunk:
                return
            self.received += len(chunk)
        self.stop.wait()  # at the limit: hold the connection without reading (however fast it got there)


@pytest.fixture
def serve_metrics(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[float], Any]]:
    """configure() serving /metrics, its server's socket timeout set to the seconds given."""
    for name in list(os.environ):
        if name.startswith(("OTEL_", "AGENT_OTEL_")):
            monkeypatch.delenv(name)
    agent_otel.shutdown()

    def start(socket_timeout_s: float) -> Any:
        monkeypatch.setattr(exposition, "SCRAPE_SOCKET_TIMEOUT_S", socket_timeout_s)
        agent_otel.set_policy(cardinality_limit=SERIES + 100)
        return agent_otel.configure(metrics_exporter="prometheus", traces_exporter="none",
                                    prometheus_port=free_port(), set_global=False, system_metrics=False,
                                    instrument_threads=False, instrument_processes=False)

    yield start
    agent_otel.shutdown()


def test_stuck_and_slow_scrapes_never_block_the_calls(serve_metrics: Callable[[float], Any]) -> None:
    metrics_server = serve_metrics(STUCK_SOCKET_TIMEOUT_S)
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

        def calls() -> None:
            for i in range(CALLS):
                assert agent_call(i) == {"success": True, "fixes_applied": 1}
                named_tool("tool-00000")

        _, calls_s = completes(calls, f"{CALLS} x 2 calls with 4 stuck scrapes", timeout_s=CALLS_HANG_S)

        # a well-behaved scrape is answered meanwhile, with every call just made
        assert agent_calls_on(scrape(url)) == CALLS
        # and the bad ones are still hanging: what was checked happened while they were stuck
        assert stuck_handlers() >= 4
        assert slow.is_alive() and slow.received <= SLOW_READER_LIMIT < size
    finally:
        if slow is not None:
            slow.stop.set()
        try:
            _, shutdown_s = completes(agent_otel.shutdown, "shutdown() to return", timeout_s=SHUTDOWN_HANG_S)
        finally:
            for sock in clients:
                sock.close()
    print(f"\n/metrics {size / 2**20:.1f} MiB; {CALLS} x 2 calls in {calls_s:.2f} s with 4 stuck scrapes; "
          f"slow reader got {slow.received} bytes; shutdown {shutdown_s:.2f} s")


def closed_by_server(sock: socket.socket) -> bool:
    """The server closed ``sock`` (readable, and at end of stream): never blocks."""
    if not select.select([sock], [], [], 0)[0]:
        return False
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_a_client_that_sends_nothing_is_disconnected_after_the_socket_timeout(
        serve_metrics: Callable[[float], Any]) -> None:
    telemetry = serve_metrics(SHORT_SOCKET_TIMEOUT_S)
    host, port = telemetry.prometheus_server.server_address[:2]
    earlier = handler_threads()
    silent = socket.create_connection((host, port))
    half = socket.create_connection((host, port))
    try:
        half.sendall(REQUEST[:20])
        # held by the server at first (the connection is not refused or dropped at once) ...
        wait_until(lambda: len(handler_threads() - earlier) >= 2, "two connections held by the server")
        assert not closed_by_server(silent) and not closed_by_server(half)
        # ... then dropped once the socket timeout expires, its server thread freed
        wait_until(lambda: closed_by_server(silent), "the silent client to be disconnected", timeout_s=30)
        wait_until(lambda: closed_by_server(half), "the half-request client to be disconnected", timeout_s=30)
        wait_until(lambda: not (handler_threads() - earlier), "their server threads to end", timeout_s=30)
        # and the server still answers
        assert agent_calls_on(scrape(telemetry.prometheus_url)) == 0
    finally:
        silent.close()
        half.close()


def test_a_scraper_that_stops_reading_a_large_answer_is_dropped_without_a_traceback(
        serve_metrics: Callable[[float], Any], capfd: pytest.CaptureFixture[str]) -> None:
    """The server's write times out; wsgiref caught that itself and printed its traceback on the program's stderr
    (one per stalled scrape, 30 s in), as it prints any error while it answers."""
    telemetry = serve_metrics(SHORT_SOCKET_TIMEOUT_S)
    host, port = telemetry.prometheus_server.server_address[:2]
    for i in range(SERIES):
        named_tool(f"tool-{i:05d}")
    assert len(scrape(telemetry.prometheus_url)) > 2**20
    earlier = handler_threads()
    capfd.readouterr()
    never_reads = socket.socket()
    never_reads.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        never_reads.connect((host, port))
        never_reads.sendall(REQUEST)
        wait_until(lambda: len(handler_threads() - earlier) >= 1, "the unread scrape held by the server")
        wait_until(lambda: not (handler_threads() - earlier), "its server thread to give up on it", timeout_s=60)
    finally:
        never_reads.close()
    assert capfd.readouterr().err == ""
