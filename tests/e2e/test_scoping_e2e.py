"""Scoping with two services and two environments in one Prometheus, on both paths.

Three instrumented processes (`agent-otel demo`) run as checkout/prod, checkout/staging and billing/prod
(OTEL_SERVICE_NAME and the deployment.environment.name resource attribute):

- scraped directly (one scrape job for all three, as a shared service discovery would do): every recording
  rule's output series keep the three apart, a stopped service raises AgentOtelServiceTelemetryStopped for
  itself only, and `agent-otel report` finds the data by default and narrows it with --selector;
- behind our Collector (bin/otelcol-agent-otel, the shipped otelcol.yaml, scraped with honor_labels as the
  shipped prometheus.yml does, so `up` is the Collector's only): the same three, the report's default finds the
  data, and a stopped service still raises the per-service alert.

The shipped rules run with 1 s `for:` and group intervals (tests/support/e2e.py); the Collector's
metric_expiration is 5 s instead of 5 m, so that a stopped service's series expire within the test.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agent_otel import semconv as sc
from agent_otel._cli import main
from agent_otel._ops.stack import ALERTMANAGER_PATH, RULE_PATHS, LocalStack, WebhookReceiver, free_port
from tests.support.collector import RunningCollector, start_collector
from tests.support.demo import stop
from tests.support.e2e import RATE, fast_alertmanager, fast_rules
from tests.support.http import http_get_json
from tests.support.ops import RULES_FILE, all_rules
from tests.support.paths import ASSETS
from tests.support.polling import wait_until

pytestmark = pytest.mark.e2e

SERVICE, ENVIRONMENT = (sc.prometheus_label(key) for key in sc.SCOPING_RESOURCE_ATTRIBUTES)
#: (service, environment) of each process: two services, two environments, one service in both.
DEPLOYMENTS = (("checkout", "prod"), ("checkout", "staging"), ("billing", "prod"))
#: The one stopped to see the per-service alert: the other environment of its service keeps running.
STOPPED = ("checkout", "staging")
HEARTBEAT = "scope:agent_otel_series:count"
ALERT = "AgentOtelServiceTelemetryStopped"


@dataclass
class Fleet:
    stack: LocalStack
    demos: dict[tuple[str, str], subprocess.Popen[bytes]]
    logs: dict[tuple[str, str], Path]
    collector: RunningCollector | None = None
    stopped: set[tuple[str, str]] = field(default_factory=set)

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"{self.stack.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        answer = http_get_json(url)
        assert answer["status"] == "success", answer
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def alive(self) -> None:
        for deployment, demo in self.demos.items():
            code = demo.poll()
            assert code is None or deployment in self.stopped, (
                f"demo {deployment} exited with {code}:\n{self.logs[deployment].read_text()[-3000:]}")
        if self.collector is not None:
            code = self.collector.process.exited()
            assert code is None, f"the Collector exited with {code}:\n{self.collector.process.log_tail(40)}"

    def pairs(self, expr: str) -> set[tuple[str, str]]:
        return {(s["metric"].get(SERVICE, ""), s["metric"].get(ENVIRONMENT, "")) for s in self.query(expr)}

    def report(self, *args: str) -> tuple[int, dict[str, Any], str]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["report", "--prometheus", self.stack.prometheus_url, "--format", "json", *args])
        return code, json.loads(out.getvalue()) if code == 0 else {}, err.getvalue()


def _start_demos(work: Path, env: dict[str, str]) -> tuple[dict[tuple[str, str], subprocess.Popen[bytes]],
                                                            dict[tuple[str, str], Path], list[int]]:
    demos, logs, ports = {}, {}, []
    for n, (service, environment) in enumerate(DEPLOYMENTS):
        port = free_port()
        ports.append(port)
        logs[(service, environment)] = log_path = work / f"demo-{service}-{environment}.log"
        process_env = {**env, "OTEL_SERVICE_NAME": service,
                       "OTEL_RESOURCE_ATTRIBUTES": f"deployment.environment.name={environment}"}
        with open(log_path, "wb") as log:
            demos[(service, environment)] = subprocess.Popen(
                [sys.executable, "-m", "agent_otel", "demo", "--port", str(port), "--rate", str(RATE),
                 "--seed", str(11 + n), "--evolve-every", "1", "--duration", "3600"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=process_env, cwd=work)
    return demos, logs, ports


@contextlib.contextmanager
def _fleet(work: Path, collector: RunningCollector | None) -> Iterator[Fleet]:
    rules = [fast_rules(ASSETS / name, work / Path(name).name) for name in RULE_PATHS]
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    env["OTEL_TRACES_EXPORTER"] = "none"
    if collector is None:
        env["OTEL_METRICS_EXPORTER"] = "prometheus"
    else:
        env.update(OTEL_METRICS_EXPORTER="otlp", OTEL_EXPORTER_OTLP_ENDPOINT=collector.otlp_http,
                   OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf", OTEL_METRIC_EXPORT_INTERVAL="1000")
    demos, logs, ports = _start_demos(work, env)
    targets = [f"127.0.0.1:{port}" for port in ports] if collector is None else [collector.prometheus_target]
    with WebhookReceiver() as webhook:
        stack = LocalStack(work / "stack", scrape_targets=targets, webhook_url=webhook.url, rule_files=rules,
                           alertmanager_yml=fast_alertmanager(ASSETS / ALERTMANAGER_PATH), scrape_interval="1s",
                           evaluation_interval="1s",
                           job_name="agent-otel-app" if collector is None else "agent-otel-collector",
                           honor_labels=collector is not None)
        fleet = Fleet(stack, demos, logs, collector)
        try:
            stack.start()
            wait_until(lambda: (fleet.alive(), fleet.pairs(HEARTBEAT) == set(DEPLOYMENTS))[1],
                       "every deployment's series in Prometheus", timeout_s=120)
            wait_until(lambda: fleet.pairs("agent:gen_ai_invoke_agent_duration_seconds_count:rate5m > 0")
                       == set(DEPLOYMENTS), "agent invocation rates of every deployment", timeout_s=60)
            yield fleet
        finally:
            stack.stop()
            for demo in demos.values():
                stop(demo)


@pytest.fixture(scope="module", params=["direct", "collector"])
def fleet(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """The three deployments scraped directly, then behind our Collector (every test runs on both)."""
    work = tmp_path_factory.mktemp(f"scoping-{request.param}")
    if request.param == "direct":
        with _fleet(work, None) as fleet:
            yield fleet
        return

    def expire_fast(config: dict[str, Any]) -> None:
        config["exporters"]["prometheus"]["metric_expiration"] = "5s"

    collector = start_collector("otelcol.yaml", work, {
        "OTEL_TRACES_BACKEND_ENDPOINT": f"127.0.0.1:{free_port()}", "OTEL_TRACES_BACKEND_INSECURE": "true",
        "AGENT_OTEL_HASH_SALT": "e2e-salt"}, expire_fast)
    try:
        with _fleet(work, collector) as fleet:
            yield fleet
    finally:
        collector.stop()


def test_job_and_up_on_each_path(fleet: Fleet) -> None:
    """Direct: one scrape job, `up` per process. Behind the Collector: `up` is the Collector's only, and every
    other series has job = service.name (honor_labels)."""
    if fleet.collector is None:
        up_jobs, jobs = {"agent-otel-app"}, {("agent-otel-app", service) for service, _ in DEPLOYMENTS}
    else:
        up_jobs, jobs = {"agent-otel-collector"}, {(service, service) for service, _ in DEPLOYMENTS}
    ups: list[dict[str, Any]] = []
    found: set[tuple[str, str]] = set()

    def on_each_path() -> bool:  # polled: a failed scrape leaves a target's series stale until the next one
        ups[:] = fleet.query("up")
        found.clear()
        found.update((s["metric"]["job"], s["metric"][SERVICE]) for s in fleet.query(HEARTBEAT))
        return found == jobs and {s["metric"]["job"] for s in ups} == up_jobs

    wait_until(on_each_path, f"the jobs {sorted(jobs)} and `up` of {up_jobs}", timeout_s=30)
    if fleet.collector is None:
        assert len(ups) == len(DEPLOYMENTS)


RECORDS = sorted({rule["record"] for rule in all_rules(RULES_FILE)})


def test_every_rule_keeps_services_and_environments_apart(fleet: Fleet) -> None:
    """Every recording rule's series carry one of the three deployments; once the rules have data, most of them
    hold a separate series for each of the three (all three run the same workload)."""
    apart: list[str] = []

    def most_rules_keep_all_three() -> bool:
        apart.clear()
        for record in RECORDS:
            series = fleet.query(record)
            for one in series:
                labels = one["metric"]
                assert (labels.get(SERVICE), labels.get(ENVIRONMENT)) in DEPLOYMENTS, f"{record}: {labels}"
            if {(s["metric"][SERVICE], s["metric"][ENVIRONMENT]) for s in series} == set(DEPLOYMENTS):
                apart.append(record)
        return len(apart) >= len(RECORDS) * 3 // 4

    wait_until(most_rules_keep_all_three, f"3/4 of the {len(RECORDS)} recording rules to hold every deployment",
               timeout_s=90)
    per_agent = fleet.query("agent:gen_ai_invoke_agent_duration_seconds_count:rate5m")
    agents = {s["metric"][sc.prometheus_label(sc.GEN_AI_AGENT_NAME)] for s in per_agent}
    assert len(per_agent) == len(agents) * len(DEPLOYMENTS), per_agent  # one series per agent and deployment


def test_report_default_finds_the_data_and_selector_scopes_it(fleet: Fleet) -> None:
    def report_of(expected_targets: int, *args: str) -> dict[str, Any]:
        """The report, once it counts the services (service and environment) matching: a failed scrape
        leaves a target's series stale until the next one."""
        document: dict[str, Any] = {}

        def counted() -> bool:
            code, found, err = fleet.report(*args)
            assert code == 0, err
            document.update(found)
            return bool(found["report"]["targets"] == expected_targets)

        wait_until(counted, f"a report {' '.join(args)} of {expected_targets} services", timeout_s=30)
        return document

    everything = report_of(len(DEPLOYMENTS))
    staging = report_of(1, "--selector", f'{ENVIRONMENT}="staging"')
    total = sum(row["invocations"] for row in everything["agents"])
    assert 0 < sum(row["invocations"] for row in staging["agents"]) < total


def test_a_stopped_service_raises_its_own_alert(fleet: Fleet) -> None:
    """Last: it stops a deployment of the fleet."""
    fleet.stopped.add(STOPPED)
    stop(fleet.demos[STOPPED])
    service, environment = STOPPED

    def firing() -> set[tuple[str, str]]:
        return fleet.pairs(f'ALERTS{{alertname="{ALERT}",alertstate="firing"}}')

    wait_until(lambda: (fleet.alive(), firing() == {STOPPED})[1], f"{ALERT} for {service}/{environment}",
               timeout_s=120)
    wait_until(lambda: fleet.pairs(HEARTBEAT) == set(DEPLOYMENTS) - {STOPPED},
               "every other deployment's heartbeat", timeout_s=30)  # polled: as in test_job_and_up_on_each_path
    # The other environment of the same service, and the other service, still report: no alert for them.
    assert firing() == {STOPPED}
