"""A configured target that the OpenTelemetry SDK or agent-otel itself calls (``threading:Lock``, ``os:getpid``,
``time:monotonic``) records the program's calls, not theirs: recording a call, exporting and flushing at exit run
such a function unwrapped (``agent_otel._engine.own_work``)."""

from __future__ import annotations

import collections
import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from tests.support.environment import CLEAN_ENV

AGENT_OTEL = str(Path(sys.executable).parent / "agent-otel")

PROGRAM = """\
import os, threading, time
lock = threading.Lock()
with lock:
    print("locked")
print("pid", os.getpid() == os.getpid(), time.monotonic() > 0)
"""

CONFIG = """\
[[tool]]
target = ["threading:Lock", "os:getpid", "time:monotonic"]
"""


def _console_spans(output: str) -> list[dict[str, Any]]:
    """The spans the console exporter printed (one JSON object each) after the program's own lines."""
    decoder, spans, at = json.JSONDecoder(), [], output.find("{")
    while 0 <= at < len(output):
        span, at = decoder.raw_decode(output, at)
        spans.append(span)
        at = output.find("{", at)
    return spans


def test_targets_the_sdk_calls_record_only_the_programs_calls(tmp_path: Path) -> None:
    """A span's ``__init__`` makes a ``threading.Lock()``: the wrapper's own span called the wrapper again, for ever
    (the program hung at 100% of a core, SIGTERM unheeded; probe p49c), and ``os:getpid``, which the batch span
    processor asks at each span's end, recorded 1,639 calls for the program's one. ``check`` said ok to both."""
    (tmp_path / "app.py").write_text(PROGRAM)
    (tmp_path / "agent-otel.toml").write_text(CONFIG)
    env = {**CLEAN_ENV, "OTEL_TRACES_EXPORTER": "console", "OTEL_METRICS_EXPORTER": "none"}
    process = subprocess.run([AGENT_OTEL, "run", "--", sys.executable, "app.py"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=120)
    assert process.returncode == 0, process.stderr
    assert process.stdout.startswith("locked\npid True True\n")
    assert process.stderr == ""
    names = collections.Counter(span["name"] for span in _console_spans(process.stdout))
    # from Python 3.13 ``threading.Lock`` is a class (3.11's and 3.12's is a function): refused as a target, as any
    # class is, and left as it is
    locks = {} if isinstance(threading.Lock, type) else {"execute_tool Lock": 1}
    assert names == {**locks, "execute_tool getpid": 2, "execute_tool monotonic": 1}
