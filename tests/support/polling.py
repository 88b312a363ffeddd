"""Synchronisation for tests: poll a condition until a deadline (never a bare sleep)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

POLL_INTERVAL_S = 0.05


def wait_until(predicate: Callable[[], Any], what: str, timeout_s: float = 30.0) -> None:
    """Return once ``predicate()`` is truthy; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(POLL_INTERVAL_S)
