"""Errors agent-otel raises to its user, and the guard for its own failures.

Configuration mistakes are raised (once, clearly, at configure/decoration time). Failures inside
instrumentation at call time are never raised into the host: they are counted on
``agent_otel.instrumentation.errors`` and logged at most once a minute per cause.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from . import semconv

logger = logging.getLogger("agent_otel")

_LOG_INTERVAL_S = 60.0
_last_logged: dict[tuple[str, str], float] = {}
_lock = threading.Lock()


class ConfigurationError(ValueError):
    """Bad configuration: a file, key, env var, extractor path or argument. The message names it."""


def report_error(stage: str, exc: BaseException, count: int = 1, counter: Any = None) -> None:
    """Count and (rate-limited) log a failure of agent-otel itself. Never raises.

    ``count`` is what the failure lost (e.g. the spans of a failed export; 0 only logs). ``counter``
    is the errors counter to add to when the caller holds one, as the export wrappers of
    :mod:`agent_otel.setup` do (their thread may outlive the configuration), else the current
    runtime's.
    """
    try:
        if counter is None and count:
            from .runtime import runtime

            rt = runtime()
            counter = rt.errors if rt.enabled else None
        if counter is not None and count:
            counter.add(count, {semconv.INSTRUMENTATION_STAGE: stage})
        cause = (stage, type(exc).__name__)
        now = time.monotonic()
        with _lock:
            last = _last_logged.get(cause)
            if last is not None and now - last < _LOG_INTERVAL_S:
                return
            _last_logged[cause] = now
        logger.warning("agent-otel: %s failed (%s: %s); the host call was not affected", stage,
                       type(exc).__name__, exc, exc_info=exc)
    except Exception:
        pass
