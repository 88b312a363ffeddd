"""The shipped alerts, checked end to end on either export path (direct scrape, or through the Collector):
the demo's misbehaving parts fire them, Alertmanager routes them to the webhook with their labels and
annotations, inhibits the warnings a critical already covers, and the healthy parts stay silent. The demo's
choices are fixed by its seed and its agents' and providers' profiles; see agent_otel/_ops/demo/fleet.py for
why each one fires."""

from __future__ import annotations

from typing import Any, Protocol

import yaml

from agent_otel._ops.stack import LocalStack, WebhookReceiver
from tests.support.paths import ASSETS
from tests.support.polling import wait_until


class AlertingStack(Protocol):
    """A running path: its Prometheus and Alertmanager (stack), the webhook they post to, and the demo."""

    stack: LocalStack
    webhook: WebhookReceiver

    def api(self, path: str, **params: Any) -> Any: ...

    def alertmanager_alerts(self) -> list[dict[str, Any]]: ...

    def demo_alive(self) -> None: ...


THRESHOLDS = yaml.safe_load((ASSETS / "thresholds.yaml").read_text())
RUNBOOKS = THRESHOLDS["runbook_base_url"]

#: (alertname, severity, the labels that identify what it is about)
FIRING = [
    ("AgentOtelAgentSuccessRatioLow", "critical", {"gen_ai_agent_name": "reviewer"}),
    ("AgentOtelAgentConfidenceInflated", "warning", {"gen_ai_agent_name": "reviewer", "confidence_band": "high"}),
    ("AgentOtelProviderAvailabilityLow", "critical", {"gen_ai_provider_name": "anthropic"}),
    ("AgentOtelProviderFallbackRateHigh", "warning", {"gen_ai_provider_name": "anthropic"}),
    ("AgentOtelEvolutionFailureRateHigh", "warning", {"gen_ai_agent_name": "reviewer"}),
    # A job fails whenever the reviewer rejects it: about half the jobs of every type.
    *[("AgentOtelJobFailureRatioHigh", "warning", {"job_type": kind}) for kind in ("bugfix", "feature", "refactor")],
    ("AgentOtelToolErrorRatioHigh", "warning", {"gen_ai_tool_name": "run_tests"}),
    # The coder loops on its tests (40 runs) on its 20th call and every 500th after it.
    ("AgentOtelAgentRunawayLoop", "warning", {"gen_ai_agent_name": "coder"}),
]
#: Inhibited by the critical of the same alert for the same agent/provider: active in Alertmanager,
#: suppressed while the critical fires.
INHIBITED = [
    ("AgentOtelAgentSuccessRatioLow", "warning", {"gen_ai_agent_name": "reviewer"}),
    ("AgentOtelProviderAvailabilityLow", "warning", {"gen_ai_provider_name": "anthropic"}),
]
#: The silent counterparts: the same alerts about the healthy agents and providers, and alerts nothing
#: in the demo should trigger.
SILENT = [
    *[("AgentOtelAgentSuccessRatioLow", None, {"gen_ai_agent_name": name}) for name in ("planner", "coder", "tester")],
    *[("AgentOtelAgentConfidenceInflated", None, {"gen_ai_agent_name": name})
      for name in ("planner", "coder", "tester")],
    *[("AgentOtelProviderAvailabilityLow", None, {"gen_ai_provider_name": name}) for name in ("openai", "local")],
    *[("AgentOtelProviderFallbackRateHigh", None, {"gen_ai_provider_name": name}) for name in ("openai", "local")],
    *[("AgentOtelEvolutionFailureRateHigh", None, {"gen_ai_agent_name": name})
      for name in ("planner", "coder", "tester")],
    # The tools that fail less often than the threshold (the demo seeds each tool's failures).
    *[("AgentOtelToolErrorRatioHigh", None, {"gen_ai_tool_name": name})
      for name in ("search_docs", "apply_patch", "lint")],
    # Healthy agents whose latest evolution run did not improve them (most runs) raise nothing.
    ("AgentOtelEvolutionNoProgress", None, {}),
    # The orchestrator's plugins fail at a steady rate (demo/workflow.py): no jump in any phase.
    ("AgentOtelPluginFailureRatioJump", None, {}),
    ("AgentOtelAgentLatencyHigh", None, {}),
    ("AgentOtelProviderLatencyHigh", None, {}),
    ("AgentOtelTokenSpendOverBudget", None, {}),
    ("AgentOtelEvolutionMemoryPeakHigh", None, {}),
    *[("AgentOtelAgentRunawayLoop", None, {"gen_ai_agent_name": name}) for name in ("planner", "reviewer", "tester")],
    ("AgentOtelJobCostPerJobJump", None, {}),  # every job type costs the same all along
    ("AgentOtelTargetDown", None, {}),
    ("AgentOtelTelemetryAbsent", None, {}),
    ("AgentOtelInstrumentationErrorsRising", None, {}),
]
RECEIVER = {"critical": "pager", "warning": "ticket", "info": "info"}


def matches(alert: dict[str, Any], name: str, severity: str | None, labels: dict[str, str]) -> bool:
    got = alert["labels"]
    return (got.get("alertname") == name and (severity is None or got.get("severity") == severity)
            and all(got.get(key) == value for key, value in labels.items()))


def notified(e2e: AlertingStack) -> list[tuple[str, dict[str, Any]]]:
    """(receiver, alert) for every firing alert that reached the webhook."""
    return [(payload["receiver"], alert) for payload in list(e2e.webhook.notifications)
            for alert in payload["alerts"] if alert["status"] == "firing"]


def check_chosen_alerts_reach_the_webhook_with_labels_and_annotations(e2e: AlertingStack) -> None:
    def all_arrived() -> bool:
        e2e.demo_alive()
        sent = notified(e2e)
        return all(any(matches(alert, *want) for _, alert in sent) for want in FIRING)

    wait_until(all_arrived, "every chosen alert at the webhook", timeout_s=120)
    for name, severity, labels in FIRING:
        receiver, alert = next((r, a) for r, a in notified(e2e) if matches(a, name, severity, labels))
        assert receiver == RECEIVER[severity], (name, receiver)
        assert alert["labels"]["severity"] == severity
        annotations = alert["annotations"]
        assert annotations["runbook_url"] == f"{RUNBOOKS}#{name.lower()}"
        assert annotations["summary"] and annotations["description"], annotations
        for value in labels.values():  # the summary says what the alert is about
            assert value in annotations["summary"] + annotations["description"], (value, annotations)
        assert "{{" not in annotations["summary"] + annotations["description"]
        assert alert["generatorURL"].startswith(e2e.stack.prometheus_url)


def check_warnings_covered_by_a_critical_are_inhibited(e2e: AlertingStack) -> None:
    def all_suppressed() -> bool:
        active = e2e.alertmanager_alerts()
        return all(any(matches(alert, *want) and alert["status"]["state"] == "suppressed"
                       and alert["status"]["inhibitedBy"] for alert in active) for want in INHIBITED)

    wait_until(all_suppressed, "the covered warnings to be inhibited in Alertmanager", timeout_s=120)
    # A warning may have been sent before its critical started firing (the ratio falls through 80% before
    # 50%); from then on it is suppressed, which is what the state above says.


def check_silent_counterparts_stay_silent(e2e: AlertingStack) -> None:
    """Checked once the chosen alerts have arrived, so that rules have had every chance to fire. Prometheus also
    lists pending alerts, whose ``for:`` has not elapsed: a target-down alert goes pending on any one scrape a
    loaded machine fails, which is what its ``for:`` is for, so only firing ones count."""
    wait_until(lambda: all(any(matches(alert, *want) for _, alert in notified(e2e)) for want in FIRING),
               "the chosen alerts (the silent ones are judged after them)", timeout_s=120)
    firing_in_prometheus = [alert for alert in e2e.api("/api/v1/alerts")["alerts"] if alert["state"] == "firing"]
    for want in SILENT:
        assert not any(matches(alert, *want) for _, alert in notified(e2e)), want
        assert not any(matches(alert, *want) for alert in firing_in_prometheus), want
