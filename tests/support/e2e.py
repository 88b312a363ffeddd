"""The end-to-end stack's helpers: the test copies of the shipped rules and Alertmanager config (only
their timing changes), :class:`E2E`, the running stack the ``e2e`` fixture (tests/e2e/conftest.py)
hands to the tests, and the check of a contract instrument's series that both export paths pass."""

from __future__ import annotations

import re
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from agent_otel import semconv
from agent_otel._ops.stack import LocalStack, WebhookReceiver
from tests.support.http import http_get_json
from tests.support.otlp_receiver import OtlpHttpReceiver
from tests.support.paths import ASSETS
from tests.support.polling import wait_until

SEED = 7
#: Jobs per second of the demo workload: enough volume for every rule's minimum within seconds.
RATE = 8
#: The fixtures of the demo stacks several files share (tests/e2e/conftest.py).
SHARED_STACK_FIXTURES = frozenset({"e2e", "e2e_dup", "e2e_each_mode"})


#: Label names that would carry an id: never on a series.
ID_LABELS = frozenset({"job_id", "user_id", "trace_id", "span_id", "conversation_id", "gen_ai_conversation_id",
                       "session_id", "agent_issue_id", "service_instance_id", "agent_otel_workflow_step"})


def wait_for_series(api: Callable[..., Any], name: str,
                    alive: Callable[[], None] = lambda: None) -> list[dict[str, str]]:
    """The series of ``name`` in Prometheus (``api``: GET an /api/v1 path), once there are any; ``alive``
    fails the wait early when a process it depends on died."""
    found: list[dict[str, str]] = []

    def fetch() -> bool:
        alive()
        found[:] = api("/api/v1/series", **{"match[]": name})
        return bool(found)

    wait_until(fetch, f"series of {name}", timeout_s=60)
    return found


def check_contract_series(instrument: semconv.Instrument, series_of: Callable[[str], list[dict[str, str]]], *,
                          common_labels: Collection[str], job: str,
                          ignored: Callable[[str], bool] = lambda label: False) -> None:
    """Every series name of ``instrument`` is there with its contract labels, the ``common_labels`` of the
    path, labels ``ignored`` by the path, no id label, the buckets of the contract and ``job``."""
    allowed = set(instrument.prometheus_labels) | set(common_labels)
    found: list[dict[str, str]] = []
    for name in instrument.prometheus_series:
        found = series_of(name)
        extra = {"le"} if name.endswith("_bucket") else set()
        for series in found:
            labels = {label for label in series if label in allowed or not ignored(label)}
            assert labels <= allowed | extra, (name, labels - allowed - extra)
            assert not set(series) & ID_LABELS, series
            assert series["job"] == job
        if name.endswith("_bucket"):
            bounds = {float(s["le"]) for s in found} - {float("inf")}
            assert bounds == set(instrument.buckets), name
    # The labels the dashboards group by are on the series (optional ones such as error.type may be absent).
    optional = {*semconv.OPTIONAL_ATTRIBUTES,
                *(semconv.PREVIOUS_ATTRIBUTES.get(key, key) for key in semconv.OPTIONAL_ATTRIBUTES)}
    always = set(instrument.prometheus_labels) - {semconv.prometheus_label(key) for key in optional}
    present = set().union(*(set(s) for s in found))
    assert always <= present, (instrument.name, always - present)


def settled_time(prometheus_url: str) -> float:
    """A moment up to which every scrape of the demo is stored: one that started after it is in
    Prometheus already (a target's samples are appended in order). Reports evaluated then, and the
    independent queries made later at the same time, see exactly the same samples; at "now", a scrape
    stored between two of the report's queries makes its sections disagree."""
    at = time.time() - 1

    def stored_after() -> bool:
        query = urllib.parse.urlencode({"query": 'timestamp(up{job="agent-otel-demo"})'})
        result = http_get_json(f"{prometheus_url}/api/v1/query?{query}")["data"]["result"]
        return any(float(sample["value"][1]) > at for sample in result)

    wait_until(stored_after, "a scrape of the demo newer than the report time", timeout_s=30)
    return at


#: The group that reads the previous layout under the current names (mixin/rules/layout.py).
PREVIOUS_LAYOUT_GROUP = "agent-otel-previous-layout"


def recording_rules(previous_layout: bool = True) -> list[str]:
    """The names of every shipped recording rule (without the previous-layout group's if ``previous_layout`` is
    False: those copy only what a process sends in the previous layout alone)."""
    document = yaml.safe_load((ASSETS / "prometheus/agent-otel.rules.yaml").read_text())
    return [rule["record"] for group in document["groups"] for rule in group["rules"]
            if previous_layout or group["name"] != PREVIOUS_LAYOUT_GROUP]


#: How long the test copies of the scrape-health alerts (on ``up``: target down, telemetry absent) wait: longer
#: than a stack's start, when Prometheus has not yet scraped (it hands out targets on a 5 s tick), and than a
#: scrape that fails on a loaded machine. The shipped rules wait 5 and 15 minutes; the tests expect silence.
SCRAPE_HEALTH_FOR = "30s"


def fast_rules(source: Path, target: Path) -> Path:
    """A copy of a shipped rule file whose alerts fire after 5 s (the scrape-health ones after
    :data:`SCRAPE_HEALTH_FOR`) and whose groups evaluate every second (the long 1d/7d windows, which the shipped
    file evaluates every 2 minutes, every 5 s: over 7 days of range they cost the most, and the tests share two
    cores)."""
    document = yaml.safe_load(source.read_text())
    for group in document["groups"]:
        if "interval" in group:
            group["interval"] = "5s"
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = SCRAPE_HEALTH_FOR if re.search(r"\bup\{", rule["expr"]) else "5s"
    target.write_text(yaml.safe_dump(document, sort_keys=False))
    return target


def fast_alertmanager(source: Path) -> str:
    """The shipped Alertmanager config with 1 s waits (routes, receivers and inhibitions unchanged)."""
    document = yaml.safe_load(source.read_text())
    routes = [document["route"], *document["route"].get("routes", [])]
    for route in routes:
        for key in ("group_wait", "group_interval"):
            if key in route or route is document["route"]:
                route[key] = "1s"
    return yaml.safe_dump(document, sort_keys=False)


@dataclass
class E2E:
    stack: LocalStack
    webhook: WebhookReceiver
    spans: OtlpHttpReceiver
    demo: subprocess.Popen[bytes]
    metrics_url: str
    demo_log: Path

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"{self.stack.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        answer = http_get_json(url)
        assert answer["status"] == "success", answer
        return answer["data"]["result"]

    def api(self, path: str, **params: Any) -> Any:
        url = f"{self.stack.prometheus_url}{path}?" + urllib.parse.urlencode(params, doseq=True)
        answer = http_get_json(url)
        assert answer["status"] == "success", answer
        return answer["data"]

    def alertmanager_alerts(self) -> list[dict[str, Any]]:
        return http_get_json(f"{self.stack.alertmanager_url}/api/v2/alerts")

    def demo_alive(self) -> None:
        code = self.demo.poll()
        assert code is None, f"the demo exited with {code}:\n{self.demo_log.read_text()[-3000:]}"
