"""Evaluation results sent through the OpenTelemetry Logs API.

Evaluators that follow the GenAI conventions emit ``gen_ai.evaluation.result`` as an event: a log record
named ``gen_ai.evaluation.result`` (``event_name``; the older Events API put it in the ``event.name``
attribute) in the context of the evaluated span. :class:`EvaluationLogProcessor` records their scores on
``agent.evaluation.score`` exactly as the span bridge does for the same event on a span, and hashes the
configured hashed keys in every record (span bridge on or off). ``configure()``
adds it to the SDK ``LoggerProvider`` installed globally when it runs (``opentelemetry-instrument`` installs
one when ``OTEL_LOGS_EXPORTER`` names an exporter); a host that builds its ``LoggerProvider`` later adds it
itself (``agent_otel.EvaluationLogProcessor``).
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from opentelemetry import _logs, trace
from opentelemetry import context as otel_context
from opentelemetry.sdk._logs import (
    LoggerProvider,
    LogRecordProcessor,
    ReadWriteLogRecord,
    SynchronousMultiLogRecordProcessor,
)

from agent_otel import semconv
from agent_otel._calls.evaluation import record_result
from agent_otel._context.job import AGENT_KEY
from agent_otel._engine.instruments import runtime
from agent_otel._engine.policy import hash_log_record
from agent_otel._engine.self_telemetry import report_error
from agent_otel._environment import OTEL_PYTHON_LOGGER_PROVIDER
from agent_otel.errors import ConfigurationError

_EVENT_NAME_ATTRIBUTE = "event.name"
_added: weakref.WeakSet[LoggerProvider] = weakref.WeakSet()


def _agent_of(attributes: Any, ctx: Any) -> object:
    """The evaluated agent: named on the record, else the agent the record was emitted under, else the
    one the evaluated span names."""
    agent = attributes.get(semconv.GEN_AI_AGENT_NAME) or otel_context.get_value(AGENT_KEY, ctx)
    if agent:
        return agent
    span_attributes = getattr(trace.get_current_span(ctx), "attributes", None)
    return span_attributes.get(semconv.GEN_AI_AGENT_NAME) if isinstance(span_attributes, Mapping) else None


class EvaluationLogProcessor(LogRecordProcessor):
    """Hashed keys hashed in every log record's attributes (``user.id`` in a ``LoggingHandler``'s ``extra``), and
    scores of ``gen_ai.evaluation.result`` log records on ``agent.evaluation.score`` (see the module). A record
    with no hashed key and no evaluation passes untouched, for one set operation and one attribute lookup. Add
    it before the processor that exports (``configure()`` puts it first in the global provider's)."""

    #: False in the one ``configure()`` adds with the span bridge off: hashing only
    scores = True

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        try:
            record = log_record.log_record
            hash_log_record(record)
            if not self.scores:
                return
            attributes = record.attributes or {}
            name = record.event_name or attributes.get(_EVENT_NAME_ATTRIBUTE)
            if name != semconv.EVENT_EVALUATION_RESULT or not runtime().enabled:
                return
            ctx = record.context if record.context is not None else otel_context.get_current()
            record_result(ctx, attributes, _agent_of(attributes, ctx))
        except Exception as exc:
            report_error("bridge.log", exc)

    def shutdown(self) -> None:
        """Nothing to release: the scores go to agent-otel's own instruments."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def add_to_global_logger_provider(*, scores: bool = True) -> bool:
    """Add the processor (``scores``: :attr:`EvaluationLogProcessor.scores`) to the global SDK ``LoggerProvider``,
    if one is installed (once per provider; the host's own one, if it added one, is moved instead), first
    among its processors: the exporting processor, which ``opentelemetry-instrument`` adds before
    ``configure()`` runs, sees the record hashed (a ``SimpleLogRecordProcessor`` exports as the record is
    emitted); whether it is there."""
    named = os.environ.get(OTEL_PYTHON_LOGGER_PROVIDER)
    if named and not entry_points(group="opentelemetry_logger_provider", name=named):
        # the API would print a traceback and raise a bare StopIteration
        raise ConfigurationError(f"{OTEL_PYTHON_LOGGER_PROVIDER}={named!r}: no installed logger provider has that name")
    provider = _logs.get_logger_provider()
    if not isinstance(provider, LoggerProvider):
        return False
    if provider not in _added:
        _added.add(provider)
        _add_first(provider, scores)
    return True


def _processor(scores: bool) -> EvaluationLogProcessor:
    processor = EvaluationLogProcessor()
    processor.scores = scores
    return processor


def _add_first(provider: LoggerProvider, scores: bool) -> None:
    """Add an :class:`EvaluationLogProcessor` at the front of the provider's processors (the SDK's
    ``SynchronousMultiLogRecordProcessor``, pinned SDK version; another kind just gets it added), or move
    the one the host added there."""
    multi = getattr(provider, "_multi_log_record_processor", None)
    if not isinstance(multi, SynchronousMultiLogRecordProcessor):  # concurrent: no order to be first in
        provider.add_log_record_processor(_processor(scores))
        return
    with multi._lock:
        processors = multi._log_record_processors
        ours = next((p for p in processors if isinstance(p, EvaluationLogProcessor)), None)
        if ours is None:
            ours = _processor(scores)
        multi._log_record_processors = (ours, *(p for p in processors if p is not ours))
