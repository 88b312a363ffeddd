"""Shared fixtures: our suite uses the public test fixture (agent_otel.testing, via the pytest plugin)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agent_otel.testing import TelemetryCapture, restore_defaults


@pytest.fixture
def otel(agent_otel_telemetry: TelemetryCapture) -> TelemetryCapture:
    """Real SDK providers with in-memory exporters, given to configure() as a host would."""
    return agent_otel_telemetry


@pytest.fixture(autouse=True)
def fresh_guards() -> Iterator[None]:
    """Each test starts from the environment's policy and the shipped price table."""
    restore_defaults()
    yield
    restore_defaults()

