"""src/agent_otel/assets/alertmanager/alertmanager.yml: amtool check-config, a routing table checked with
amtool, and its conventions."""

from __future__ import annotations

import subprocess

import pytest
from mixin.config import load_thresholds

from agent_otel._ops.stack import alertmanager_config
from tests.support.ops import ALERTS_FILE, all_rules, binary, load_yaml
from tests.support.paths import ASSETS, ROOT

CONFIG = ASSETS / "alertmanager" / "alertmanager.yml"
PLACEHOLDER_URL = "http://alert-webhook.invalid/agent-otel"

# (labels of an alert, receivers it must reach), in the spirit of gitlab's routing-tests: one row per
# route plus the edge cases (no labels, unknown severity) that must land on the default receiver.
ROUTES = [
    ({"alertname": "AgentOtelProviderAvailabilityLow", "severity": "critical", "gen_ai_provider_name": "openai"},
     "pager"),
    ({"alertname": "AgentOtelAgentSuccessRatioLow", "severity": "critical", "gen_ai_agent_name": "planner"},
     "pager"),
    ({"alertname": "AgentOtelAgentSuccessRatioLow", "severity": "warning", "gen_ai_agent_name": "planner"},
     "ticket"),
    ({"alertname": "AgentOtelTargetDown", "severity": "warning", "job": "agent-otel-collector"}, "ticket"),
    ({"alertname": "AgentOtelTokenSpendOverBudget", "severity": "warning"}, "ticket"),
    ({"alertname": "AgentOtelEvolutionNoProgress", "severity": "info", "gen_ai_agent_name": "planner"}, "info"),
    ({"alertname": "AgentOtelJobFailureRatioHigh", "severity": "warning", "job_type": "nightly"}, "ticket"),
    ({"alertname": "AgentOtelToolErrorRatioHigh", "severity": "warning", "gen_ai_tool_name": "run_tests"}, "ticket"),
    ({"alertname": "SomethingElse", "severity": "page"}, "default"),
    ({"alertname": "NoSeverity"}, "default"),
    ({}, "default"),
]


def amtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([binary("amtool"), *args], capture_output=True, text=True, timeout=30)


def test_amtool_check_config():
    result = amtool("check-config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(("labels", "receiver"), ROUTES, ids=[f"{r}-{i}" for i, (_, r) in enumerate(ROUTES)])
def test_route(labels, receiver):
    args = [f"{k}={v}" for k, v in labels.items()]
    result = amtool("config", "routes", "test", f"--config.file={CONFIG}", f"--verify.receivers={receiver}", *args)
    assert result.returncode == 0, f"{labels} -> {result.stdout.strip()} (expected {receiver}) {result.stderr}"


def test_routes_test_detects_a_wrong_receiver():
    """The table above would pass vacuously if amtool did not verify; make sure it does."""
    result = amtool("config", "routes", "test", f"--config.file={CONFIG}", "--verify.receivers=pager",
                    "severity=warning")
    assert result.returncode != 0


def test_every_alert_severity_has_a_route():
    config = load_yaml(CONFIG)
    routed = {m for route in config["route"]["routes"] for m in route["matchers"]}
    for severity in {rule["labels"]["severity"] for rule in all_rules(ALERTS_FILE)}:
        assert f'severity="{severity}"' in routed


def test_grouping_and_inhibition():
    config = load_yaml(CONFIG)
    group_by = config["route"]["group_by"]
    assert group_by[0] == "alertname"
    assert {"gen_ai_agent_name", "gen_ai_provider_name", "job_type", "gen_ai_tool_name"} <= set(group_by)
    assert set(load_thresholds()["scope_labels"]) <= set(group_by)  # services and environments never merge
    assert "..." not in group_by
    [rule] = [r for r in config["inhibit_rules"] if r["source_matchers"] == ['severity="critical"']]
    assert rule["target_matchers"] == ['severity=~"warning|info"']
    assert set(rule["equal"]) >= {"alertname", "gen_ai_agent_name", "gen_ai_provider_name", "job_type",
                                  "gen_ai_tool_name", *load_thresholds()["scope_labels"]}
    # new-style matchers only: match/match_re/source_match are deprecated
    text = CONFIG.read_text()
    for deprecated in ("match:", "match_re:", "source_match:", "target_match:"):
        assert f"\n    {deprecated}" not in text and f"\n  - {deprecated}" not in text


def test_receivers_use_the_substitutable_webhook_and_commented_secrets():
    config = load_yaml(CONFIG)
    for receiver in config["receivers"]:
        urls = [hook["url"] for hook in receiver.get("webhook_configs", [])]
        assert urls == [PLACEHOLDER_URL], receiver["name"]
    text = CONFIG.read_text()
    # Commented examples for Slack and e-mail keep their secrets in files.
    assert "# slack_configs:" in text and "api_url_file:" in text
    assert "# email_configs:" in text and "auth_password_file:" in text
    assert "api_url:" not in text.replace("api_url_file:", "")


@pytest.mark.parametrize("url", ["https://hooks.example.com/agents/T0K3N?x=1", "",
                                 "https://hooks.example.com/a?token=abc&channel=oncall", "https://hooks.example.com/a|b\\c"])
def test_compose_entrypoint_puts_the_webhook_url_from_the_environment(tmp_path, url):
    """Run the shell command compose.yaml starts Alertmanager with (minus the exec) and check its output: the URL
    as given (sed reads & in a replacement as the matched text: unescaped, a wrong URL that amtool accepts)."""
    [command] = load_yaml(ROOT / "compose.yaml")["services"]["alertmanager"]["command"]
    script = command.split("&& exec")[0].replace("$$", "$")
    rendered = tmp_path / "alertmanager.yml"
    script = script.replace("/etc/agent-otel/alertmanager.yml", str(CONFIG)).replace("/tmp/alertmanager.yml",
                                                                                      str(rendered))
    result = subprocess.run(["sh", "-c", script], env={"AGENT_OTEL_WEBHOOK_URL": url, "PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, result.stderr
    config = load_yaml(rendered)
    expected = url or PLACEHOLDER_URL
    assert {h["url"] for r in config["receivers"] for h in r["webhook_configs"]} == {expected}
    check = amtool("check-config", str(rendered))
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_deployed_config_posts_every_receiver_to_the_webhook_and_keeps_the_comments_as_shipped(tmp_path):
    """What the demo and the stack deploy (``alertmanager_config``): every ``url:`` gets the webhook; the header's
    ``sed`` example still names the placeholder (it was rewritten too, and then no longer worked)."""
    shipped = CONFIG.read_text(encoding="utf-8")
    deployed = alertmanager_config(shipped, "http://127.0.0.1:42017/alerts")
    code = [line for line in deployed.splitlines() if not line.lstrip().startswith("#")]
    comments = [line for line in deployed.splitlines() if line.lstrip().startswith("#")]
    assert [line for line in code if "url:" in line] and all(
        line.split("url:")[1].strip() == "http://127.0.0.1:42017/alerts" for line in code if "url:" in line)
    assert comments == [line for line in shipped.splitlines() if line.lstrip().startswith("#")]
    assert any(PLACEHOLDER_URL in line for line in comments)
    (tmp_path / "am.yml").write_text(deployed, encoding="utf-8")
    assert amtool("check-config", str(tmp_path / "am.yml")).returncode == 0
