"""agent-otel's pytest plugin (entry point ``pytest11``): the ``agent_otel_telemetry`` fixture.

A module of its own beside the ``agent_otel`` package, as Hypothesis's plugin is: pytest imports every installed
plugin as it starts, and this one inside the package imported all of agent-otel (and the OpenTelemetry SDK, psutil,
wrapt) into every test session of a project that had agent-otel installed, whether a test asked for the fixture or
not. agent-otel is imported by the first test that does.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from agent_otel.testing import TelemetryCapture


@pytest.fixture
def agent_otel_telemetry() -> Iterator[TelemetryCapture]:
    """agent-otel recording into memory for this test (see :func:`agent_otel.testing.capture_telemetry`)."""
    from agent_otel.testing import capture_telemetry

    with capture_telemetry() as telemetry:
        yield telemetry
