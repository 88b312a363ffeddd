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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``make test`` runs two xdist workers with ``--dist loadgroup``: each test file is a group (one worker runs
    a file, as ``--dist loadfile`` would), except the end-to-end files, which form one group. Each of those
    starts real Prometheus, Alertmanager, Collector and demo processes; two at once on a 2-core machine starve
    each other into scrape and query timeouts, and one worker also shares the session's demo stack among them."""
    for item in items:
        path = item.path.relative_to(config.rootpath)
        group = "e2e" if path.parts[:2] == ("tests", "e2e") else str(path)
        item.add_marker(pytest.mark.xdist_group(group))
