"""Which generated file holds what: the groups of every domain, in file order, rendered as text."""

from __future__ import annotations

from pathlib import Path

from mixin.config import ASSETS, load_thresholds
from mixin.rules import (
    agents,
    calibration,
    cost,
    evolution,
    layout,
    providers,
    telemetry,
    tools_jobs,
    versions,
    workflows,
)
from mixin.rules.recording_tests import promtool_test_file
from mixin.rules.rule import Group, Thresholds
from mixin.rules.yamlout import rules_file
from mixin.scope import Scope, load_scope

PROMETHEUS = ASSETS / "prometheus"
RULES_FILE = PROMETHEUS / "agent-otel.rules.yaml"
ALERTS_FILE = PROMETHEUS / "agent-otel.alerts.yaml"
SHORT_TEST_FILE = PROMETHEUS / "tests" / "recording-short.test.yaml"
LONG_TEST_FILE = PROMETHEUS / "tests" / "recording-long.test.yaml"
LAYOUT_TEST_FILE = PROMETHEUS / "tests" / "previous-layout.test.yaml"


def recording_groups(t: Thresholds, s: Scope) -> list[Group]:
    """The baseline comes last: it averages a ratio that agent-otel-agents-5m records."""
    return [
        layout.previous_layout_group(s),
        *agents.recording_groups(s),
        *calibration.recording_groups(s),
        *providers.recording_groups(t, s),
        *evolution.recording_groups(s),
        *versions.recording_groups(s),
        *tools_jobs.recording_groups(s),
        *workflows.recording_groups(s),
        telemetry.heartbeat_group(s),
        agents.baseline_group(),
    ]


def alert_groups(t: Thresholds, s: Scope) -> list[Group]:
    return [agents.alert_group(t, s), providers.alert_group(t, s), evolution.alert_group(t, s),
            versions.alert_group(t, s),
            tools_jobs.alert_group(t, s), workflows.alert_group(t, s), cost.alert_group(t, s),
            telemetry.alert_group(t, s)]


def render() -> dict[Path, str]:
    """Every generated file and the text it must hold."""
    t = load_thresholds()
    s = load_scope(t)
    calibration.check_contract()
    providers.check_thresholds(t)
    cost.check_thresholds(t)
    return {
        RULES_FILE: rules_file(
            recording_groups(t, s),
            "# Recording rules, named level:metric:operations. Numerators and denominators are aggregated\n"
            "# separately and divided last; a ratio is absent (not NaN) while its denominator is 0.\n",
        ),
        ALERTS_FILE: rules_file(
            alert_groups(t, s),
            "# Alerting rules. Thresholds: thresholds.yaml. Runbooks: docs/runbooks.md.\n",
        ),
        SHORT_TEST_FILE: promtool_test_file(
            ("5m", "1h"),
            60,
            "# promtool test rules: every recording rule over 5m and 1h, on 1-minute samples.\n",
            RULES_FILE.name,
            s,
        ),
        LAYOUT_TEST_FILE: layout.layout_test_file(RULES_FILE.name),
        LONG_TEST_FILE: promtool_test_file(
            ("1d", "7d"),
            3600,
            "# promtool test rules: every recording rule over 1d and 7d, on hourly samples and evaluations\n"
            "# (minute resolution over a week would make the test slow without testing anything more).\n",
            RULES_FILE.name,
            s,
        ),
    }


def stale() -> list[Path]:
    """The generated files that are missing or differ from what :func:`render` gives now."""
    return [path for path, text in render().items() if not path.exists() or path.read_text() != text]


def write() -> None:
    for path, text in render().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
