"""The one exception agent-otel raises to its user.

Configuration mistakes are raised once, clearly, at configure or decoration time. Failures inside
instrumentation at call time are never raised into the host (see ``agent_otel._engine.self_telemetry``).
"""

from __future__ import annotations


class ConfigurationError(ValueError):
    """Bad configuration: a file, key, env var, extractor path or argument. The message names it."""
