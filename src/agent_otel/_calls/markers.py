"""Marker targets: functions whose call says something about the call they run in.

A ``[[fallback]]`` target is a function the program calls when it falls back to another provider, a
``[[retry]]`` target runs once per retry of a provider call (a backoff helper, a retry callback), a
``[[rollback]]`` target rolls back the evolution run it is called in. They record no span of their own:
each records when it returns or raises, so every key may read its arguments, result or error, and a
``when`` condition says whether this call counts at all (e.g. a selection function that returned the
first provider fell back to nothing).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context

from agent_otel._calls.evolution import EVOLUTION_KEY
from agent_otel._calls.extractors import Call
from agent_otel._calls.handler import KindHandler, coerce_bool, text_value
from agent_otel._calls.options import KINDS
from agent_otel._calls.provider import current_provider_call, record_fallback, record_retry
from agent_otel._engine.self_telemetry import report_error
from agent_otel._engine.wrappers import End, Invocation


class _MarkerInvocation(Invocation):
    __slots__ = ("call", "handler")

    def __init__(self, handler: MarkerHandler, call: Call) -> None:
        super().__init__(trace.INVALID_SPAN, otel_context.get_current(), handler.stage)
        self.handler = handler
        self.call = call

    def record(self, how: End, value: Any, error: BaseException | None, duration_s: float) -> None:
        call = self.call
        call.result, call.error = value, error
        handler = self.handler
        if "when" in handler.options and not coerce_bool(handler.option("when", call), f"{handler.stage}.when"):
            return
        handler.mark(call)


class MarkerHandler(KindHandler):
    """What a marker kind records; subclasses say how (:meth:`mark`)."""

    def begin(self, wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
              parent: Context) -> Invocation:
        return _MarkerInvocation(self, self.new_call(instance, args, kwargs))

    def text(self, key: str, call: Call) -> str | None:
        """A string option, its table default when it resolves to nothing."""
        text = text_value(self.option(key, call), f"{self.stage}.{key}")
        return text if text is not None else KINDS[self.stage][key].default

    def mark(self, call: Call) -> None:
        raise NotImplementedError


class FallbackHandler(MarkerHandler):
    """Counts a fallback, unless the provider used is the one tried first (then none happened)."""

    stage = "fallback"

    def mark(self, call: Call) -> None:
        source, target = self.text("from", call), self.text("to", call)
        if source is None or target is None:
            report_error("fallback.extract", LookupError("from or to resolved to nothing"))
            return
        if source != target:
            record_fallback(target, self.text("reason", call) or "", from_provider=source)


class RetryHandler(MarkerHandler):
    """Counts one retry against the provider call it runs in (or the configured provider)."""

    stage = "retry"

    def mark(self, call: Call) -> None:
        provider, reason = self.text("provider", call), self.text("reason", call)
        current = current_provider_call()
        if current is not None and provider in (None, current.provider):
            current.add_retries(1, reason or "")
        else:
            record_retry(1, provider=provider, model=self.text("model", call), reason=reason)


class RollbackHandler(MarkerHandler):
    """Marks the evolution run it is called in as rolled back (to ``version``, when given)."""

    stage = "rollback"

    def mark(self, call: Call) -> None:
        run = otel_context.get_value(EVOLUTION_KEY)
        if run is None:
            report_error("rollback.outside_run", LookupError("a rollback target ran outside an evolution run"))
            return
        if getattr(run, "ended", False):  # a task the run started, still running after it returned: recorded already
            report_error("rollback.outside_run", LookupError("a rollback target ran after its evolution run ended"))
            return
        run.rolled_back = True  # type: ignore[attr-defined]
        version = text_value(self.option("version", call), "rollback.version")
        if version is not None:
            run.rollback_version = version  # type: ignore[attr-defined]


#: The handler of each marker kind.
MARKER_HANDLERS: dict[str, Callable[..., MarkerHandler]] = {
    "fallback": FallbackHandler, "retry": RetryHandler, "rollback": RollbackHandler}
