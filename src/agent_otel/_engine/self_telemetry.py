"""agent-otel's own failures: counted, logged once a minute per cause, never raised into the host.

They are counted on ``agent_otel.instrumentation.errors`` by stage, and logged as one line that names the stage and
the exception type, at most once a minute per cause. The line never carries the exception's message or traceback:
both may quote the host's data (paths, results); but for the messages agent-otel writes itself (:class:`Misuse`,
:class:`Unreadable`, the cardinality cap's), which name a key, a type or a limit, never a value.
``AGENT_OTEL_DEBUG=true`` adds the traceback. The library logger has a ``NullHandler`` (the library convention), so
a host without logging configuration gets nothing on stderr from Python's last-resort handler.
"""

from __future__ import annotations

import logging
import threading
import time

from opentelemetry.metrics import Counter

from agent_otel import semconv
from agent_otel._engine.instruments import runtime
from agent_otel._environment import AGENT_OTEL_DEBUG, env_flag

logger = logging.getLogger("agent_otel")
logger.addHandler(logging.NullHandler())

_LOG_INTERVAL_S = 60.0
_last_logged: dict[tuple[str, str], float] = {}
_lock = threading.Lock()
#: What failures lost whose report failed too, counted by the next report that can, at this stage. A call that
#: ends at the recursion limit (a recursive tool whose caller catches RecursionError) has no stack left to record
#: it, nor to report that: its report only adds to this number, which needs no call.
UNREPORTED_STAGE = "unreported"
_unreported = 0


def forget_reports() -> None:
    """Log the next failure of each cause again, and drop what waits to be counted: a test's captures start
    afresh (a failure an earlier test logged was not logged again in the next one for a minute)."""
    global _unreported
    with _lock:
        _last_logged.clear()
        _unreported = 0


class Misuse(ValueError):
    """A call of agent-otel's API made where it cannot do its work (``record_retry()`` outside a provider call and
    without ``provider=``): counted and logged as any failure of ours, never raised into the host, but with its
    message, which agent-otel writes itself and which says what to change."""


class Unreadable(TypeError):
    """A value an option's extractor (or the program's call) gave that is not what the option takes (a KPI read as a
    string): counted and logged with its message, which agent-otel writes itself (the value's type, by
    :func:`type_name`, the range it must be in; never the value), so that the line says what to fix where "failed
    (TypeError)" said nothing."""


def type_name(value: object) -> str:
    """The name of ``value``'s type for a diagnostic: a class made at run time may be named from data
    (``namedtuple(typename)``, pydantic's ``create_model(name)``), with any text in it, a line break too."""
    name = type(value).__name__
    return name if name.isidentifier() and len(name) <= 64 else "an object of a class named otherwise"


def report_error(stage: str, exc: BaseException, count: int = 1, counter: Counter | None = None) -> None:
    """Count and (rate-limited) log a failure of agent-otel itself. Never raises.

    ``count`` is what the failure lost (e.g. the spans of a failed export; 0 only logs). ``counter``
    is the errors counter to add to when the caller holds one, as the export wrappers of
    :mod:`agent_otel._sdk.export_loss` do (their thread may outlive the configuration), else the current
    runtime's.
    """
    global _unreported
    counted = False
    try:
        stage = _bounded_stage(stage)
        if counter is None and (count or _unreported):
            rt = runtime()
            counter = rt.errors if rt.enabled else None
        if counter is not None and count:
            counter.add(count, {semconv.INSTRUMENTATION_STAGE: stage})
        counted = True  # (or nothing to count with): a failure of the rest only loses the log line
        if _unreported and counter is not None:
            _add_unreported(counter)
        if not _due((stage, type(exc).__name__)):
            return
        if stage.startswith(_SAID_AS_IS) or isinstance(exc, Misuse):  # no failure (the cap doing its job, a span the
            # bridge leaves), or a misuse of the API: its message,
            # which agent-otel writes itself (a key, a limit, a length; never a value)
            logger.warning("agent-otel: %s (%s): %s", stage, type(exc).__name__, exc,
                           exc_info=exc if _debug() else None)
        elif isinstance(exc, Unreadable):  # (named as the TypeError it is)
            logger.warning("agent-otel: %s failed (TypeError: %s); the value was left out, the host call was not "
                           "affected", stage, exc, exc_info=exc if _debug() else None)
        else:
            logger.warning("agent-otel: %s failed (%s); the host call was not affected", stage, type(exc).__name__,
                           exc_info=exc if _debug() else None)
    except Exception:  # no call here: it may be what has no stack left
        if not counted:
            _unreported += count


def count_unreported() -> None:
    """Count what failures whose report failed lost (see :data:`UNREPORTED_STAGE`), before an export. Never raises."""
    try:
        if _unreported:
            rt = runtime()
            if rt.enabled:
                _add_unreported(rt.errors)
    except Exception:
        pass


def _add_unreported(counter: Counter) -> None:
    """Count what failures whose report failed lost, and say so in one line (rate-limited as any cause): the failure
    itself could not, and a call near the stack's limit lost its telemetry with no word said."""
    global _unreported
    lost, _unreported = _unreported, 0
    counter.add(lost, {semconv.INSTRUMENTATION_STAGE: UNREPORTED_STAGE})
    if _due((UNREPORTED_STAGE, "")):
        logger.warning("agent-otel: %s: %d failures could not be reported when they happened (a call ending too near "
                       "the recursion limit to record it); counted now", UNREPORTED_STAGE, lost)


def _due(cause: tuple[str, str]) -> bool:
    """Whether a line about ``cause`` (a stage and an exception type) is due: none logged in the last minute. Noted."""
    now = time.monotonic()
    with _lock:
        last = _last_logged.get(cause)
        if last is not None and now - last < _LOG_INTERVAL_S:
            return False
        _last_logged[cause] = now
    return True


def _bounded_stage(stage: str) -> str:
    """A stage through the cardinality cap, as every label value taken from host data: some name the host's
    key (``invalid_text.<key>``, ``agent.extract.<kind>``), and 300 keys made 300 series (and as many causes
    kept here for the log's rate limit)."""
    from agent_otel._engine import policy as policies  # imported here: the policy reports through this module

    current = policies._policy  # none yet: this is the policy's own report as it is made (no host key in it)
    if current is None or stage.startswith(_OVERFLOW_STAGE):  # one per key of the metric contract: a set the code
        return stage  # bounds, and the report of which key overflowed (with a strict cap it read "_OTHER")
    return current.bounded(semconv.INSTRUMENTATION_STAGE, stage)


#: The stage a cardinality overflow (or a value too long for a label) is counted at, before its key (see the policy).
_OVERFLOW_STAGE = "cardinality."
#: The stages that count no failure, logged with their own message: the cap's, and another library's GenAI span the
#: bridge does not count (marked only as it ended).
_SAID_AS_IS = (_OVERFLOW_STAGE, "bridge.marked_at_end")


def _debug() -> bool:
    """``AGENT_OTEL_DEBUG``, read when logging (at most once a minute per cause); a bad value is off."""
    try:
        return env_flag(AGENT_OTEL_DEBUG, False)
    except Exception:
        return False
