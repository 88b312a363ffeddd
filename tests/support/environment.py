"""The environment a child process gets when it must not inherit this session's telemetry settings."""

from __future__ import annotations

import os

#: os.environ without OTEL_*/AGENT_OTEL_* settings and without a parent trace or job (TRACEPARENT, BAGGAGE).
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENT_OTEL_", "TRACEPARENT",
                                                                        "BAGGAGE"))}
