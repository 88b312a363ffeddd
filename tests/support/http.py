"""agent-otel's JSON getter with the timeout of a loaded test machine: a polled check that waits longer than
the default 5 s for one answer (two stacks evaluating every rule each second, Chromium, a cold Collector build)
would fail the test instead of trying again."""

from __future__ import annotations

from typing import Any

from agent_otel._ops import stack

#: Grafana's own default for a query.
TIMEOUT_S = 30.0


def http_get_json(url: str, timeout: float = TIMEOUT_S) -> Any:
    return stack.http_get_json(url, timeout)
