"""The pytest plugin (entry point ``pytest11``): the ``agent_otel_telemetry`` fixture.

It lives apart from :mod:`agent_otel.testing` so that the context manager there imports without
pytest; only pytest loads this module.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agent_otel.testing import TelemetryCapture, capture_telemetry


@pytest.fixture
def agent_otel_telemetry() -> Iterator[TelemetryCapture]:
    """agent-otel recording into memory for this test (see :func:`agent_otel.testing.capture_telemetry`)."""
    with capture_telemetry() as telemetry:
        yield telemetry
