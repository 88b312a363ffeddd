"""Headless Chromium (Debian's ``chromium``) driven over the DevTools protocol: open a page offline, collect
what its console and log report, find elements' boxes and take a full-page screenshot.

Chromium runs with a throwaway profile, ``--remote-debugging-port=0`` (it writes the port it chose to
DevToolsActivePort in the profile) and every host name resolving nowhere; it is stopped by PID.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from websockets.sync.client import ClientConnection, connect

from tests.support.polling import wait_until

#: Console API calls at these levels, and log entries at these, count as errors.
CONSOLE_ERRORS = {"error", "assert"}
LOG_ERRORS = {"error"}


class Chromium:
    def __init__(self, width: int = 1280, height: int = 900) -> None:
        self.width, self.height = width, height
        self.events: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._profile = Path(tempfile.mkdtemp(prefix="agent-otel-chromium-"))
        self._process: subprocess.Popen[bytes] | None = None
        self._ws: ClientConnection | None = None
        self._connection = contextlib.ExitStack()

    def __enter__(self) -> Chromium:
        binary = shutil.which("chromium")
        assert binary, "chromium is not installed (make deps installs Debian's chromium)"
        self._process = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
             "--disable-extensions", "--disable-background-networking", "--disable-component-update",
             "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={self._profile}",
             "--remote-debugging-port=0", "--remote-allow-origins=*", f"--window-size={self.width},{self.height}",
             "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        active = self._profile / "DevToolsActivePort"
        wait_until(lambda: self._alive() and active.exists() and len(active.read_text().split()) >= 2,
                   "Chromium to open its DevTools port", timeout_s=60)
        port = int(active.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
            pages = [target for target in json.load(response) if target["type"] == "page"]
        self._ws = self._connection.enter_context(
            connect(pages[0]["webSocketDebuggerUrl"], max_size=None, open_timeout=30))
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")
        self.call("Emulation.setDeviceMetricsOverride",
                  width=self.width, height=self.height, deviceScaleFactor=1, mobile=False)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._connection.close()
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait()
        shutil.rmtree(self._profile, ignore_errors=True)

    def _alive(self) -> bool:
        assert self._process is not None and self._process.poll() is None, "Chromium exited"
        return True

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command and return its result; events that arrive meanwhile are kept in :attr:`events`."""
        assert self._ws is not None
        ident = next(self._ids)
        self._ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self._ws.recv(timeout=60))
            if message.get("id") == ident:
                assert "error" not in message, f"{method}: {message['error']}"
                result: dict[str, Any] = message["result"]
                return result
            self.events.append(message)

    def wait_for_event(self, method: str, timeout_s: float = 60) -> dict[str, Any]:
        assert self._ws is not None
        seen = [event for event in self.events if event.get("method") == method]
        while not seen:
            message = json.loads(self._ws.recv(timeout=timeout_s))
            self.events.append(message)
            if message.get("method") == method:
                seen.append(message)
        return seen[0]

    def open(self, url: str) -> None:
        """Load ``url`` and wait for its load event."""
        self.call("Page.navigate", url=url)
        self.wait_for_event("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        answer = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in answer, answer["exceptionDetails"]
        return answer["result"].get("value")

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and error log entries (failed loads, CSP violations) so far."""
        self.evaluate("0")  # a round trip, so that events the page sent before it are read
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params["type"] in CONSOLE_ERRORS:
                found.append(f"console.{params['type']}: " + " ".join(
                    str(arg.get("value", arg.get("description", ""))) for arg in params["args"]))
            elif method == "Runtime.exceptionThrown":
                found.append(f"exception: {params['exceptionDetails'].get('exception', {}).get('description')}")
            elif method == "Log.entryAdded" and params["entry"]["level"] in LOG_ERRORS:
                found.append(f"log: {params['entry']['text']} {params['entry'].get('url', '')}")
        return found

    def requested_urls(self) -> list[str]:
        return [event["params"]["request"]["url"] for event in self.events
                if event.get("method") == "Network.requestWillBeSent"]

    def screenshot(self, path: Path) -> Path:
        """The whole page (not only the viewport) as a PNG at ``path``."""
        width, height = self.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
        shot = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": 0, "width": width, "height": height, "scale": 1})
        path.write_bytes(base64.b64decode(shot["data"]))
        return path
