"""Agent versions: each version's success ratio and latency, and each version an evolution run put in place
against the version it replaced, over matching windows; the alerts on a version that does worse.

Matching windows: the current version over its newest hour, the previous version over the last hour it
served. That hour is kept by recording a version's hourly counts only while it is live (called in the last
5 minutes): once it is replaced, its last recorded sample is its last hour, which ``last_over_time`` keeps
for a week. Which version replaced which comes from ``agent_otel_agent_version_introduced_timestamp_seconds``, set by
evolution runs (kept for a week too, so a run in a process that has exited still counts).
"""

from __future__ import annotations

from mixin.names import AGENT, AGENT_DUR, OUTCOME, VERSION, VERSION_INTRODUCED, VERSION_PREVIOUS
from mixin.rules.rule import Group, Rule, Thresholds, alert, pct, ratio, record, value_of
from mixin.scope import Scope, eq, ne

COUNT = f"agent_version:{AGENT_DUR}_count:increase1h"
SUCCESSES = "agent_version:gen_ai_invoke_agent_successes:increase1h"
SUCCESS_RATIO = "agent_version:gen_ai_invoke_agent_successes_per_invocations:ratio_increase1h"
MEAN = f"agent_version:{AGENT_DUR}:mean1h"
LIVE = f"agent_version:{AGENT_DUR}_count:increase5m"
INTRODUCED = f"agent_version_previous:{VERSION_INTRODUCED}:max_over_time7d"
PREVIOUS_COUNT = f"agent_version_previous:{AGENT_DUR}_count:increase1h"
PREVIOUS_SUCCESSES = "agent_version_previous:gen_ai_invoke_agent_successes:increase1h"
PREVIOUS_SUCCESS_RATIO = "agent_version_previous:gen_ai_invoke_agent_successes_per_invocations:ratio_increase1h"
PREVIOUS_MEAN = f"agent_version_previous:{AGENT_DUR}:mean1h"
ZSCORE = "agent_version_previous:gen_ai_invoke_agent_successes_per_invocations_drop:zscore_increase1h"


def _per_version(s: Scope) -> list[Rule]:
    by = s.by(AGENT, VERSION)
    count, total = f"{AGENT_DUR}_count", f"{AGENT_DUR}_sum"
    live = f"and on ({by})\n{LIVE} > 0"
    return [
        record(COUNT, f"sum by ({by}) (increase({s.series(count, ne(VERSION, ''))}[1h]))"),
        record(SUCCESSES, f"sum by ({by}) (increase({s.series(count, ne(VERSION, ''), eq(OUTCOME, 'success'))}[1h]))"
                          f"\nor\n0 * {COUNT}"),
        record(SUCCESS_RATIO, ratio(SUCCESSES, COUNT)),
        record(f"agent_version:{AGENT_DUR}_sum:increase1h",
               f"sum by ({by}) (increase({s.series(total, ne(VERSION, ''))}[1h]))"),
        record(MEAN, f"agent_version:{AGENT_DUR}_sum:increase1h\n/\n({COUNT} > 0)"),
        record(LIVE, f"sum by ({by}) (increase({s.series(count, ne(VERSION, ''))}[5m]))"),
        record(f"agent_version_live:{AGENT_DUR}_count:increase1h", f"{COUNT}\n{live}"),
        record("agent_version_live:gen_ai_invoke_agent_successes:increase1h", f"{SUCCESSES}\n{live}"),
        record(f"agent_version_live:{AGENT_DUR}_sum:increase1h", f"agent_version:{AGENT_DUR}_sum:increase1h\n{live}"),
    ]


def _as_previous(live_rule: str, s: Scope) -> str:
    """The last live hour of each version (``live_rule``), on every version that replaced it."""
    relabelled = (f'label_replace(\n  label_replace(last_over_time({live_rule}[7d]), "{VERSION_PREVIOUS}", "$1", '
                  f'"{VERSION}", "(.*)"),\n  "{VERSION}", "", "", ""\n)')
    return f"0 * {INTRODUCED}\n+ on ({s.by(AGENT, VERSION_PREVIOUS)}) group_left ()\n{relabelled}"


def _lineage(s: Scope) -> list[Rule]:
    by, with_previous = s.by(AGENT, VERSION), s.by(AGENT, VERSION, VERSION_PREVIOUS)
    introduced = f"max_over_time({s.series(VERSION_INTRODUCED)}[7d])"
    pooled = (f"(\n  ({PREVIOUS_SUCCESSES} + on ({by}) {SUCCESSES})\n  / on ({by})\n"
              f"  ({PREVIOUS_COUNT} + on ({by}) {COUNT})\n)")
    return [
        record(INTRODUCED, f"max by ({with_previous}) ({introduced})\n== on ({by}) group_left ()\n"
                           f"max by ({by}) ({introduced})"),
        record(PREVIOUS_COUNT, _as_previous(f"agent_version_live:{AGENT_DUR}_count:increase1h", s)),
        record(PREVIOUS_SUCCESSES, _as_previous("agent_version_live:gen_ai_invoke_agent_successes:increase1h", s)),
        record(f"agent_version_previous:{AGENT_DUR}_sum:increase1h",
               _as_previous(f"agent_version_live:{AGENT_DUR}_sum:increase1h", s)),
        record(PREVIOUS_SUCCESS_RATIO, ratio(PREVIOUS_SUCCESSES, PREVIOUS_COUNT)),
        record(PREVIOUS_MEAN, f"agent_version_previous:{AGENT_DUR}_sum:increase1h\n/\n({PREVIOUS_COUNT} > 0)"),
        record(ZSCORE, f"({PREVIOUS_SUCCESS_RATIO} - on ({by}) group_left () {SUCCESS_RATIO})\n"
                       f"/ on ({by}) group_left ()\n(\nsqrt(\n{pooled}\n* on ({by})\n(1 - {pooled})\n* on ({by})\n"
                       f"(1 / {PREVIOUS_COUNT} + on ({by}) 1 / {COUNT})\n) > 0\n)"),
    ]


def recording_groups(s: Scope) -> list[Group]:
    return [
        Group("agent-otel-versions-1h",
              "Per agent version over 1h: invocations, successes, success ratio, mean latency; and the same counts\n"
              "recorded only while the version is live (called in the last 5m), so its last live hour is kept.",
              _per_version(s)),
        Group("agent-otel-versions-lineage",
              "Each version an evolution run put in place (the latest time it did, with the version it replaced)\n"
              "and the replaced version's last live hour on it: its counts, success ratio and mean latency, and\n"
              "the z-score of the drop in success ratio from it to the current version's newest hour.",
              _lineage(s)),
    ]


#: How recently a version must have been called for its regression to alert (see alert_group).
_STILL_CALLED = "15m"


def alert_group(t: Thresholds, s: Scope) -> Group:
    by = s.by(AGENT, VERSION)
    a, v, p = value_of(AGENT), value_of(VERSION), value_of(VERSION_PREVIOUS)
    # ... and only while the version is still called (in the last 15 minutes): rolled back, by an evolution run or
    # by hand, its hour of calls against the restored version's fresh hour fired again 20 minutes later. Not "the
    # version put in place last" (two replicas or two evolution types put in place others), nor "called in the
    # last 5 minutes" (a version called in bursts every 10 minutes never fired)
    enough = (f"and on ({by})\n{COUNT} >= {t['version_min_calls_1h']}\n"
              f"and on ({by})\n{PREVIOUS_COUNT} >= {t['version_min_calls_1h']}\n"
              f"and on ({by})\nmax_over_time({LIVE}[{_STILL_CALLED}]) > 0")
    samples = f"at least {t['version_min_calls_1h']} calls each"
    return Group(
        "agent-otel-versions-alerts",
        "Agent versions: a version an evolution run put in place does measurably worse than the one it replaced.",
        [
            alert(
                t,
                "AgentOtelVersionSuccessRegression",
                f"{PREVIOUS_SUCCESS_RATIO} - on ({by}) group_left () {SUCCESS_RATIO} >= {t['version_success_drop']}\n"
                f"and on ({by})\n{ZSCORE} >= {t['version_success_zscore']}\n{enough}",
                "15m",
                "warning",
                "A new agent version succeeds less often than the one it replaced.",
                f"Version {v} of agent {a}, put in place by an evolution run, succeeds "
                f"{{{{ $value | humanizePercentage }}}} less often (absolute) than version {p} did over its last "
                f"hour (threshold {pct(t['version_success_drop'])}, z-score >= {t['version_success_zscore']}, "
                f"{samples}).",
            ),
            alert(
                t,
                "AgentOtelVersionLatencyRegression",
                f"{MEAN} / on ({by}) group_left ({VERSION_PREVIOUS}) {PREVIOUS_MEAN} >= "
                f"{t['version_latency_ratio']}\n{enough}",
                "15m",
                "warning",
                "A new agent version is slower than the one it replaced.",
                f"Version {v} of agent {a}, put in place by an evolution run, takes {{{{ $value | printf \"%.2f\" }}}} "
                f"times the mean latency of version {p} over its last hour (threshold {t['version_latency_ratio']}x, "
                f"{samples}).",
            ),
        ],
    )
