"""The end-to-end stack's helpers: the test copies of the shipped rules and Alertmanager config (only
their timing changes), and :class:`E2E`, the running stack the ``e2e`` fixture (tests/e2e/conftest.py)
hands to the tests."""

from __future__ import annotations

import subprocess
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from agent_otel._ops.stack import LocalStack, WebhookReceiver, http_get_json
from tests.support.otlp_receiver import OtlpHttpReceiver

SEED = 7
#: Jobs per second of the demo workload: enough volume for every rule's minimum within seconds.
RATE = 8


def fast_rules(source: Path, target: Path) -> Path:
    """A copy of a shipped rule file whose alerts fire after 1 s and whose groups evaluate every 1 s."""
    document = yaml.safe_load(source.read_text())
    for group in document["groups"]:
        if "interval" in group:
            group["interval"] = "1s"
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = "1s"
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
