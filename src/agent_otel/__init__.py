"""agent-otel: OpenTelemetry instrumentation and Prometheus export for AI-agent systems."""

__version__ = "0.1.0"

from .context import (
    attached,
    carry,
    current_job_id,
    extract,
    inject,
    subprocess_env,
)
from .errors import ConfigurationError
from .extract import Call, path
from .jobs import job
from .setup import configure, shutdown

__all__ = [
    "Call",
    "ConfigurationError",
    "__version__",
    "attached",
    "carry",
    "configure",
    "current_job_id",
    "extract",
    "inject",
    "job",
    "path",
    "shutdown",
    "subprocess_env",
]
