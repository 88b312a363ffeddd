"""agent-otel's own failures: counted, logged once a minute per cause, never raised into the host.

They are counted on ``agent_otel.instrumentation.errors`` by stage, and logged as one line that names
the stage and the exception type, at most once a minute per cause.
"""

from __future__ import annotations

import logging
import threading
import time

from opentelemetry.metrics import Counter

from agent_otel import semconv
from agent_otel._engine.instruments import runtime

logger = logging.getLogger("agent_otel")

_LOG_INTERVAL_S = 60.0
_last_logged: dict[tuple[str, str], float] = {}
_lock = threading.Lock()


def report_error(stage: str, exc: BaseException, count: int = 1, counter: Counter | None = None) -> None:
    """Count and (rate-limited) log a failure of agent-otel itself. Never raises.

    ``count`` is what the failure lost (e.g. the spans of a failed export; 0 only logs). ``counter``
    is the errors counter to add to when the caller holds one, as the export wrappers of
    :mod:`agent_otel._sdk.export_loss` do (their thread may outlive the configuration), else the current
    runtime's.
    """
    try:
        if counter is None and count:
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
