"""Shared fixtures: our suite uses the public test fixture (agent_otel.testing, via the pytest plugin)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator

import pytest

from agent_otel.testing import TelemetryCapture, restore_defaults
from tests.support.e2e import SHARED_STACK_FIXTURES


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


def pytest_configure(config: pytest.Config) -> None:
    """The demo tests press Ctrl-C: they send SIGINT, as a terminal does. A shell without job control starts a
    background job (``make test &``) with SIGINT ignored, and every child inherits that, so the demos would
    never see it. Each test process (the controller and every xdist worker) takes Python's usual handler back,
    and the programs it starts begin with SIGINT delivered, as from a terminal."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.hookimpl(tryfirst=True)  # before xdist's worker reads the groups into the node ids (else none holds)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``make test`` runs two xdist workers with ``--dist loadgroup``. Each test file is a group (one worker runs
    a whole file, as ``--dist loadfile`` would), except the files that use the demo stacks several files share
    (:data:`SHARED_STACK_FIXTURES`): they form one group, so that one worker runs those stacks (a demo, Prometheus,
    Alertmanager, in each naming mode) instead of both running a copy at once on a 2-core machine, starving each
    other and every other test into scrape and query timeouts."""
    shared = {item.path for item in items if not SHARED_STACK_FIXTURES.isdisjoint(item.fixturenames)}
    for item in items:
        group = "shared-demo-stacks" if item.path in shared else str(item.path.relative_to(config.rootpath))
        item.add_marker(pytest.mark.xdist_group(group))
