"""Agents: invocations, success and error ratios, latency and cost per agent; the error-ratio baseline;
the alerts users of the agents would notice."""

from __future__ import annotations

from agent_otel import semconv as sc
from mixin.names import AGENT, AGENT_DUR, CONFIDENCE, COST, OUTCOME
from mixin.rules.rule import (
    Group,
    LowTraffic,
    Rule,
    Thresholds,
    alert,
    duration,
    low_traffic_alert,
    pct,
    quantile_rules,
    queried_percentage,
    ratio_below,
    record,
    stem,
    value_of,
    window_groups,
)
from mixin.scope import Scope, eq

WINDOWS = ("5m", "1h", "1d", "7d")
_COMMENT = "Per agent over {w}: invocations, success and error ratios, latency, cost per invocation."

#: The 5m error ratio whose 1-day baseline the anomaly alert compares it with.
ERROR_RATIO_5M = "agent:gen_ai_invoke_agent_errors_per_invocations:ratio_rate5m"


def _rules(w: str, s: Scope) -> list[Rule]:
    calls = f"agent:{AGENT_DUR}_count:rate{w}"
    count = f"{AGENT_DUR}_count"
    return [
        record(calls, f"sum by ({s.by(AGENT)}) (rate({s.series(count)}[{w}]))"),
        record(
            f"agent:gen_ai_invoke_agent_successes:rate{w}",
            f'sum by ({s.by(AGENT)}) (rate({s.series(count, eq(OUTCOME, "success"))}[{w}]))\nor\n0 * {calls}',
        ),
        record(
            f"agent:gen_ai_invoke_agent_errors:rate{w}",
            f'sum by ({s.by(AGENT)}) (rate({s.series(count, eq(OUTCOME, "error"))}[{w}]))\nor\n0 * {calls}',
        ),
        record(
            f"agent:gen_ai_invoke_agent_successes_per_invocations:ratio_rate{w}",
            f"agent:gen_ai_invoke_agent_successes:rate{w}\n/\n({calls} > 0)",
        ),
        record(
            f"agent:gen_ai_invoke_agent_errors_per_invocations:ratio_rate{w}",
            f"agent:gen_ai_invoke_agent_errors:rate{w}\n/\n({calls} > 0)",
        ),
        record(f"agent_le:{AGENT_DUR}_bucket:rate{w}",
               f"sum by ({s.by(AGENT, 'le')}) (rate({s.series(f'{AGENT_DUR}_bucket')}[{w}]))"),
        *quantile_rules("agent", AGENT_DUR, w),
        record(f"agent:{AGENT_DUR}_sum:rate{w}", f"sum by ({s.by(AGENT)}) (rate({s.series(f'{AGENT_DUR}_sum')}[{w}]))"),
        record(f"agent:{AGENT_DUR}:mean{w}", f"agent:{AGENT_DUR}_sum:rate{w}\n/\n({calls} > 0)"),
        record(f"agent:{stem(COST)}:rate{w}", f"sum by ({s.by(AGENT)}) (rate({s.series(COST)}[{w}]))"),
        record(
            f"agent:{stem(COST)}_per_invocations:ratio_rate{w}",
            f"agent:{stem(COST)}:rate{w}\n/\n({calls} > 0)",
        ),
    ]


def recording_groups(s: Scope) -> list[Group]:
    return window_groups("agents", WINDOWS, _COMMENT, lambda w: _rules(w, s))


def baseline_group() -> Group:
    return Group(
        "agent-otel-agents-baseline",
        "1-day mean and deviation of each agent's 5m error ratio: the baseline of the anomaly alert.\n"
        "Evaluated after agent-otel-agents-5m has recorded the ratio it averages.",
        [
            record(
                "agent:gen_ai_invoke_agent_errors_per_invocations:avg_over_time1d_ratio_rate5m",
                f"avg_over_time({ERROR_RATIO_5M}[1d])",
            ),
            record(
                "agent:gen_ai_invoke_agent_errors_per_invocations:stddev_over_time1d_ratio_rate5m",
                f"stddev_over_time({ERROR_RATIO_5M}[1d])",
            ),
        ],
    )


_SUCCESS_RATIO_1H = "agent:gen_ai_invoke_agent_successes_per_invocations:ratio_rate1h"
_INVOCATIONS_1H = f"agent:{AGENT_DUR}_count:rate1h"


def _success_ratio_alert(t: Thresholds, s: Scope, severity: str) -> Rule:
    threshold = t[f"agent_success_ratio_{severity}"]
    return alert(
        t,
        "AgentOtelAgentSuccessRatioLow",
        ratio_below(_SUCCESS_RATIO_1H, threshold, s.by(AGENT), _INVOCATIONS_1H, t["agent_min_invocations_1h"]),
        "15m",
        severity,
        "An agent succeeds less often than it should.",
        f"Agent {value_of(AGENT)} succeeded in {{{{ $value | humanizePercentage }}}} of its invocations over the "
        f"last hour (threshold {pct(threshold)}).",
    )


def _success_ratio_daily_alert(t: Thresholds, s: Scope) -> Rule:
    threshold, per_day = t["agent_success_ratio_warning"], t["agent_min_invocations_1d"]
    return low_traffic_alert(
        t, "AgentOtelAgentSuccessRatioLow",
        LowTraffic("1d", f"agent:gen_ai_invoke_agent_successes_per_invocations:ratio_rate1d < {threshold}",
                   s.by(AGENT), f"agent:{AGENT_DUR}_count:rate1d * 86400", per_day, f"{_INVOCATIONS_1H} * 3600",
                   t["agent_min_invocations_1h"]),
        "An agent succeeds less often than it should.",
        f"Agent {value_of(AGENT)} succeeded in {{{{ $value | humanizePercentage }}}} of its invocations over the "
        f"last day (threshold {pct(threshold)}; called fewer than {t['agent_min_invocations_1h']} times an hour on "
        f"average, at least {per_day} a day).",
    )


def alert_group(t: Thresholds, s: Scope) -> Group:
    a = value_of(AGENT)
    _, high_edge = sc.CONFIDENCE_BAND_EDGES
    return Group(
        "agent-otel-agent-alerts",
        "Symptoms users of the agents see: tasks not done, slow, or done with unjustified confidence.",
        [
            _success_ratio_alert(t, s, "warning"),
            _success_ratio_alert(t, s, "critical"),
            _success_ratio_daily_alert(t, s),
            alert(
                t,
                "AgentOtelAgentLatencyHigh",
                "max without (quantile) "
                f'(agent_quantile:{AGENT_DUR}:histogram_quantile_rate1h{{quantile="0.95"}})\n'
                f"> {t['agent_latency_p95_seconds']}",
                "15m",
                "warning",
                "An agent is slow.",
                f"p95 latency of agent {a} over the last hour is {{{{ $value | humanizeDuration }}}} "
                f"(threshold {duration(t['agent_latency_p95_seconds'])}).",
            ),
            alert(
                t,
                "AgentOtelAgentConfidenceInflated",
                f'agent_band:{CONFIDENCE}_successes_per_invocations:ratio_increase1d{{confidence_band="high"}}\n'
                f"< {t['confidence_high_band_min_success_ratio']}\n"
                f"and on ({s.by(AGENT, 'confidence_band')})\n"
                f"agent_band:{CONFIDENCE}_invocations:increase1d >= {t['confidence_min_invocations_1d']}",
                "1h",
                "warning",
                "An agent's high-confidence answers succeed far less often than claimed.",
                f"Agent {a} stated confidence >= {high_edge} but succeeded in only "
                "{{ $value | humanizePercentage }} of those invocations over the last day (threshold "
                f"{pct(t['confidence_high_band_min_success_ratio'])}).",
            ),
            alert(
                t,
                "AgentOtelAgentErrorRateAnomaly",
                "(\n"
                f"  {ERROR_RATIO_5M}\n"
                "  - agent:gen_ai_invoke_agent_errors_per_invocations:avg_over_time1d_ratio_rate5m\n"
                ")\n"
                "/ clamp_min(agent:gen_ai_invoke_agent_errors_per_invocations:stddev_over_time1d_ratio_rate5m, "
                f"{t['error_ratio_stddev_floor']})\n"
                f"> {t['error_ratio_zscore']}\n"
                f"and on ({s.by(AGENT)})\n"
                f"{ERROR_RATIO_5M} > {t['error_ratio_floor']}",
                "10m",
                "warning",
                "An agent raises errors far more often than over the last day.",
                # $value (the z-score) moves with every evaluation of the baseline; the ratio itself is
                # what the on-call person needs, so the description queries it.
                f"Agent {a} raised errors on {queried_percentage(ERROR_RATIO_5M, (*s.labels, AGENT))} of invocations "
                "over 5 minutes, more than "
                f"{t['error_ratio_zscore']} standard deviations above its 1-day mean.",
            ),
        ],
    )
