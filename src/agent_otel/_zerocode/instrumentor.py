"""``opentelemetry-instrument`` entry point, and SDK set-up from a configuration file.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from typing import Any

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from agent_otel._sdk.configure import configure
from agent_otel._zerocode.config import Config, load_config
from agent_otel._zerocode.patching import instrument, logger, uninstrument
from agent_otel.errors import ConfigurationError


def configure_sdk(config: Config | None) -> Any:
    """``agent_otel.configure()`` with the config's service name and switches (OTEL_SERVICE_NAME wins)."""
    switches = config.switches if config is not None else None
    service_name = None
    if config is not None and config.service_name and not os.environ.get("OTEL_SERVICE_NAME"):
        service_name = config.service_name
    kwargs: dict[str, Any] = {"service_name": service_name}
    if switches is not None:
        kwargs.update(instrument_threads=switches.threads, instrument_processes=switches.processes,
                      system_metrics=switches.system_metrics)
    return configure(**kwargs)


class AgentOtelInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """``opentelemetry-instrument`` entry point: reads the same configuration as the launcher
    (``$AGENT_OTEL_CONFIG``, ``./agent-otel.toml`` or ``[tool.agent-otel]``) and wraps its targets.

    Pass ``config=`` (a :class:`~agent_otel.Config` or a path) to ``instrument()`` to choose
    the file explicitly."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return []

    def _instrument(self, **kwargs: Any) -> None:
        config = kwargs.get("config")
        try:
            if config is None:
                config = load_config()
            elif not isinstance(config, Config):
                config = load_config(config)
        except ConfigurationError as exc:
            logger.error("agent-otel: %s; nothing instrumented", exc)
            return
        if config is None:
            logger.warning("agent-otel: no agent-otel.toml, [tool.agent-otel] or $AGENT_OTEL_CONFIG found; "
                           "nothing to instrument")
            return
        try:
            configure_sdk(config)
        except ConfigurationError as exc:
            logger.error("agent-otel: %s; telemetry not configured", exc)
        instrument(config)

    def _uninstrument(self, **kwargs: Any) -> None:
        uninstrument()
