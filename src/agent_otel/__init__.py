"""agent-otel: OpenTelemetry instrumentation and Prometheus export for AI-agent systems."""

__version__ = "0.1.0"

from .agents import agent, agent_call
from .config import load_config
from .context import (
    attached,
    carry,
    current_job_id,
    extract,
    inject,
    subprocess_env,
)
from .errors import ConfigurationError
from .evolution import evolution, evolution_run
from .extract import Call, path
from .jobs import job
from .policy import set_policy
from .pricing import set_prices
from .providers import provider, provider_call, record_fallback, record_retry
from .setup import configure, shutdown
from .tools import tool, tool_call

__all__ = [
    "Call",
    "ConfigurationError",
    "__version__",
    "agent",
    "agent_call",
    "attached",
    "carry",
    "configure",
    "current_job_id",
    "evolution",
    "evolution_run",
    "extract",
    "inject",
    "job",
    "load_config",
    "path",
    "provider",
    "provider_call",
    "record_fallback",
    "record_retry",
    "set_policy",
    "set_prices",
    "shutdown",
    "subprocess_env",
    "tool",
    "tool_call",
]
