"""``opentelemetry-instrument`` entry point, and SDK set-up from a configuration file.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from typing import Any

# the module is marked `# type: ignore` upstream: mypy sees none of its names
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.sdk.environment_variables import OTEL_SERVICE_NAME
from opentelemetry.sdk.resources import OTELResourceDetector, Resource

from agent_otel._context.carriers import instrument_thread_subclasses
from agent_otel._environment import AGENT_OTEL_CONFIG
from agent_otel._sdk.configure import Telemetry, configure
from agent_otel._zerocode.config import Config, Switches, load_config
from agent_otel._zerocode.instrumentations import left_to_the_distro
from agent_otel._zerocode.patching import instrument, logger, uninstrument
from agent_otel.errors import ConfigurationError


def configure_sdk(config: Config | None, **arguments: Any) -> Telemetry:
    """``agent_otel.configure()`` with the config's service name, resource and switches (``OTEL_SERVICE_NAME`` and
    ``OTEL_RESOURCE_ATTRIBUTES`` win), and ``arguments`` (the demo's port and exporters)."""
    if config is None:
        return configure(service_name=None, **arguments)
    service_name = config.service_name if config.service_name and not os.environ.get(OTEL_SERVICE_NAME) else None
    switches = config.switches
    resource = None
    if config.resource:  # OTEL_RESOURCE_ATTRIBUTES wins, as OTEL_SERVICE_NAME does over service_name
        given = OTELResourceDetector().detect().attributes
        resource = Resource({key: value for key, value in config.resource.items() if key not in given})
    return configure(**{"service_name": service_name, "instrument_threads": switches.threads, "resource": resource,
                        "instrument_processes": switches.processes, "system_metrics": switches.system_metrics,
                        **arguments})


class AgentOtelInstrumentor(BaseInstrumentor):  # type: ignore[misc]  # BaseInstrumentor is untyped (see above)
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
        if config is None:  # no targets; still the ids, the hashing and the span bridge on the distro's providers
            logger.info("agent-otel: no agent-otel.toml, [tool.agent-otel] or $%s found; no targets to wrap",
                        AGENT_OTEL_CONFIG)
        switches = config.switches if config is not None else Switches()
        left = left_to_the_distro()
        try:
            # the threading and system-metrics instrumentations the distro loads itself, before or after this one:
            # turned on here first, the distro's own instrument() printed "Attempting to instrument while already
            # instrumented" on the program's stderr for each (Thread subclasses are still carried: see carriers)
            configure_sdk(config, **{switch: False for switch in left})
            if "instrument_threads" in left and switches.threads:
                instrument_thread_subclasses()
        except ConfigurationError as exc:
            logger.error("agent-otel: %s; telemetry not configured", exc)
        if config is not None:
            instrument(config)

    def _uninstrument(self, **kwargs: Any) -> None:
        uninstrument()
