"""The end-to-end stack: `agent-otel demo` (a real process, instrumented by its zero-code config) scraped by
a real Prometheus running the shipped rules, alerting to a real Alertmanager running the shipped config,
whose webhook posts to a server inside this test session. Spans go over OTLP/HTTP to a receiver here.

Test copies only change timing: every `for:` becomes 5 s (30 s for the scrape-health alerts on `up`), rule
groups evaluate every 1 s (5 s for 1d/7d windows), Prometheus scrapes every 1 s, Alertmanager waits 1 s before
sending. The shipped files are read, never written. Every process is stopped by PID in teardown, also when a test
fails (fixture finalisers run regardless).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent_otel._environment import OTEL_SEMCONV_STABILITY_OPT_IN
from agent_otel._ops.stack import ALERTMANAGER_PATH, RULE_PATHS, LocalStack, WebhookReceiver, free_port
from agent_otel.semconv import STABILITY_OPT_IN_DUP
from tests.support.demo import stop
from tests.support.e2e import E2E, RATE, SEED, SHARED_STACK_FIXTURES, fast_alertmanager, fast_rules
from tests.support.otlp_receiver import OtlpHttpReceiver
from tests.support.paths import ASSETS
from tests.support.polling import wait_until


def _stack(work: Path, extra_env: dict[str, str]) -> Iterator[E2E]:
    rules = [fast_rules(ASSETS / name, work / Path(name).name) for name in RULE_PATHS]
    port = free_port()
    demo_log = work / "demo.log"
    with OtlpHttpReceiver() as spans, WebhookReceiver() as webhook:
        env = {**os.environ, "OTEL_TRACES_EXPORTER": "otlp", "OTEL_METRICS_EXPORTER": "prometheus",
               "OTEL_EXPORTER_OTLP_ENDPOINT": spans.endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
               "OTEL_BSP_SCHEDULE_DELAY": "500", "OTEL_SERVICE_NAME": "agent-otel-demo",
               "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=e2e", **extra_env}
        with open(demo_log, "wb") as log:
            demo = subprocess.Popen(
                [sys.executable, "-m", "agent_otel", "demo", "--port", str(port), "--rate", str(RATE),
                 "--seed", str(SEED), "--evolve-every", "1", "--duration", "3600"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=work)
        stack = LocalStack(work / "stack", scrape_targets=[f"127.0.0.1:{port}"], webhook_url=webhook.url,
                           rule_files=rules, alertmanager_yml=fast_alertmanager(ASSETS / ALERTMANAGER_PATH),
                           scrape_interval="1s", evaluation_interval="1s")
        try:
            stack.start()
            setup = E2E(stack, webhook, spans, demo, f"http://127.0.0.1:{port}/metrics", demo_log)
            # Prometheus hands out targets on a 5 s tick: wait for the first successful scrape, then for a
            # second one so that rates exist.
            wait_until(lambda: (setup.demo_alive(), setup.query('up{job="agent-otel-demo"} == 1'))[1],
                       "Prometheus to scrape the demo", timeout_s=60)
            wait_until(lambda: setup.query("count_over_time(gen_ai_invoke_agent_duration_seconds_count[1m]) > 2"),
                       "three scrapes with agent invocations", timeout_s=60)
            yield setup
        finally:
            stack.stop()
            stop(demo)


class _SharedStacks:
    """The stacks several files share (the demo in each naming mode), started by the first test that asks
    for one and stopped as soon as this worker moves on to a file that needs none (``pytest_runtest_teardown``),
    not at the end of the session: a stack left running (a demo, a Prometheus evaluating every rule each
    second) would take CPU from every later test of the worker, and from the other worker's stacks."""

    def __init__(self) -> None:
        self._running: dict[str, tuple[Iterator[E2E], E2E]] = {}

    def get(self, name: str, start: Callable[[], Iterator[E2E]]) -> E2E:
        if name not in self._running:
            stack = start()
            self._running[name] = (stack, next(stack))
        return self._running[name][1]

    def stop_all(self) -> None:
        while self._running:
            _, (stack, _) = self._running.popitem()
            stack.close()  # the generator's finally: Prometheus, Alertmanager and the demo stopped by PID


_shared = _SharedStacks()


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stop the shared stacks when this worker moves on to a file that needs none (the fixtures hold a stack
    for a whole file, so never within one)."""
    if nextitem is None or (nextitem.path != item.path
                            and SHARED_STACK_FIXTURES.isdisjoint(getattr(nextitem, "fixturenames", ()))):
        _shared.stop_all()


@pytest.fixture(scope="session", autouse=True)
def _stop_shared_stacks() -> Iterator[None]:
    yield
    _shared.stop_all()


@pytest.fixture(scope="module")
def e2e(tmp_path_factory: pytest.TempPathFactory) -> E2E:
    """The demo in the default naming mode: the current names only."""
    return _shared.get("e2e", lambda: _stack(tmp_path_factory.mktemp("e2e"), {}))


@pytest.fixture(scope="module")
def e2e_dup(tmp_path_factory: pytest.TempPathFactory) -> E2E:
    """The demo in the transition mode (``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental/dup``): the
    current names and the previous ones."""
    return _shared.get("e2e_dup", lambda: _stack(tmp_path_factory.mktemp("e2e-dup"),
                                                 {OTEL_SEMCONV_STABILITY_OPT_IN: STABILITY_OPT_IN_DUP}))


@pytest.fixture(params=["current names", "current and previous names"])
def e2e_each_mode(request: pytest.FixtureRequest) -> E2E:
    """The e2e stack in each naming mode, for the tests that must hold in both."""
    stack: E2E = request.getfixturevalue("e2e" if request.param == "current names" else "e2e_dup")
    return stack
