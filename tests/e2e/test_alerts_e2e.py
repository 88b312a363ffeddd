"""The demo's misbehaving parts fire the shipped alerts, Alertmanager routes them to the webhook with their
labels and annotations, inhibits the warnings a critical already covers, and the healthy parts stay
silent (direct scrape; tests/e2e/test_collector_path.py checks the same through the Collector). The checks
and the expected alerts are in tests/support/alerts.py."""

from __future__ import annotations

import re

import pytest

from agent_otel._ops.demo.runner import describe_notification
from tests.support.alerts import (
    FIRING,
    check_chosen_alerts_reach_the_webhook_with_labels_and_annotations,
    check_silent_counterparts_stay_silent,
    check_warnings_covered_by_a_critical_are_inhibited,
)
from tests.support.e2e import E2E

pytestmark = pytest.mark.e2e

#: The alerts the demo fires compare a value with a threshold of thresholds.yaml.
THRESHOLD_ALERTS = {name for name, _, _ in FIRING}


def test_chosen_alerts_reach_the_webhook_with_labels_and_annotations(e2e: E2E) -> None:
    check_chosen_alerts_reach_the_webhook_with_labels_and_annotations(e2e)


def test_warnings_covered_by_a_critical_are_inhibited(e2e: E2E) -> None:
    check_warnings_covered_by_a_critical_are_inhibited(e2e)


def test_silent_counterparts_stay_silent(e2e: E2E) -> None:
    check_silent_counterparts_stay_silent(e2e)


def test_the_demo_prints_each_notification_with_its_value_threshold_and_runbook(e2e: E2E) -> None:
    """What `agent-otel demo --stack` prints for the real notifications Alertmanager sent: the description
    (value and threshold) and the runbook link, not only the summary."""
    check_chosen_alerts_reach_the_webhook_with_labels_and_annotations(e2e)
    for payload in list(e2e.webhook.notifications):
        lines = describe_notification(payload)
        for alert in payload["alerts"]:
            annotations = alert["annotations"]
            assert f"    {annotations['description']}" in lines, lines
            assert f"    runbook: {annotations['runbook_url']}" in lines, lines
            if alert["labels"]["alertname"] in THRESHOLD_ALERTS:
                assert re.search(r"\d", annotations["description"]) and "threshold" in annotations["description"]
