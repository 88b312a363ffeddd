"""agent-otel: OpenTelemetry instrumentation and Prometheus export for AI-agent systems.

This module is the public API. Besides it, ``agent_otel.semconv`` (the names of every span
attribute and metric), ``agent_otel.errors`` and ``agent_otel.testing`` (a pytest fixture for
testing your own instrumentation) are public. Everything under a leading underscore is private.

PYTEST_DONT_REWRITE: pytest marks the packages of its plugins' distributions for assertion rewriting, and warned that
this one was imported before it started (``agent-otel run -- pytest``, ``opentelemetry-instrument pytest``), an
error under ``-W error``. agent-otel has no assertions of a test's to rewrite.
"""

import typing as _typing

from agent_otel._bridge.sampling import GenAiMetricsSampler
from agent_otel._calls.agent import agent, agent_call
from agent_otel._calls.conversation import conversation
from agent_otel._calls.evaluation import record_evaluation
from agent_otel._calls.evolution import evolution, evolution_run
from agent_otel._calls.extractors import Call, path
from agent_otel._calls.job import job
from agent_otel._calls.phase import phase
from agent_otel._calls.pricing import set_prices
from agent_otel._calls.provider import provider, provider_call, record_fallback, record_retry
from agent_otel._calls.tool import tool, tool_call
from agent_otel._context.conversation import current_conversation_id
from agent_otel._context.job import current_job_id
from agent_otel._context.propagation import attached, carry, extract, inject, subprocess_env
from agent_otel._engine.policy import set_policy
from agent_otel._sdk.configure import configure, shutdown
from agent_otel._zerocode.config import Config, load_config
from agent_otel._zerocode.instrumentor import AgentOtelInstrumentor
from agent_otel._zerocode.patching import instrument, uninstrument
from agent_otel.errors import ConfigurationError
from agent_otel.version import __version__

if _typing.TYPE_CHECKING:
    from agent_otel._bridge.logs import EvaluationLogProcessor

__all__ = [
    "AgentOtelInstrumentor",
    "Call",
    "Config",
    "ConfigurationError",
    "EvaluationLogProcessor",
    "GenAiMetricsSampler",
    "__version__",
    "agent",
    "agent_call",
    "attached",
    "carry",
    "configure",
    "conversation",
    "current_conversation_id",
    "current_job_id",
    "evolution",
    "evolution_run",
    "extract",
    "inject",
    "instrument",
    "job",
    "load_config",
    "path",
    "phase",
    "provider",
    "provider_call",
    "record_evaluation",
    "record_fallback",
    "record_retry",
    "set_policy",
    "set_prices",
    "shutdown",
    "subprocess_env",
    "tool",
    "tool_call",
    "uninstrument",
]


if not _typing.TYPE_CHECKING:  # type checkers see the import above, and no other name

    def __getattr__(name: str) -> object:
        """``EvaluationLogProcessor`` is imported on first use: it needs the logs SDK, which a program that
        sends no logs through OpenTelemetry never imports otherwise."""
        if name == "EvaluationLogProcessor":
            from agent_otel._bridge.logs import EvaluationLogProcessor

            return EvaluationLogProcessor
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__})
