"""agent-otel / Agents: per agent success, latency, cost, calibration, patterns and failing task types."""

from __future__ import annotations

from grafana_foundation_sdk.builders import table
from grafana_foundation_sdk.models.dashboard import Dashboard
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from mixin.dashboards.common import (
    RATE_INTERVAL,
    RATIO_STEPS,
    RAW,
    VARIABLES,
    bargauge_panel,
    dashboard,
    label_values,
    quantiles,
    query,
    row,
    steps,
    table_panel,
    timeseries_panel,
)
from mixin.names import AGENT, AGENT_DUR, CONFIDENCE, COST, OUTCOME, PATTERN, PATTERNS, TASK_TYPE, WORK_ITEMS, WORK_KIND

FILE = "agents.json"


def _by_window(a: str) -> table.Panel:
    """One row per agent, one column per (measure, window), from the agent:* recording rules."""
    targets = []
    columns = {AGENT: "Agent"}
    units = {}
    for title, record, unit in (
        ("Success", "agent:gen_ai_invoke_agent_successes_per_invocations:ratio_rate{w}", "percentunit"),
        ("Avg latency", f"agent:{AGENT_DUR}:mean{{w}}", "s"),
        ("p95 latency", f'agent_quantile:{AGENT_DUR}:histogram_quantile_rate{{w}}{{{{quantile="0.95",{a}}}}}', "s"),
        ("Avg cost", "agent:gen_ai_client_cost_per_invocations:ratio_rate{w}", "currencyUSD"),
    ):
        for window in ("1h", "1d", "7d"):
            expr = record.format(w=window)
            if "{" not in expr:
                expr += f"{{{a}}}"
            # One label set per agent (no __name__ column), so that the merge joins the queries into rows.
            targets.append(query(f"max by ({AGENT}) ({expr})", instant=True, fmt=PromQueryFormat.TABLE))
            name = f"{title} {window}"
            columns[f"Value #{chr(ord('A') + len(targets) - 1)}"] = name
            units[name] = unit
    return table_panel(
        "Agents by window",
        "Success ratio, average and p95 latency and average cost per invocation of each agent over the last hour, "
        "day and week (recording rules agent:*:*_rate1h|1d|7d).",
        "short", targets, columns=columns, units=units).span(24).height(7)


def build() -> Dashboard:
    a = f'{VARIABLES},{AGENT}=~"$agent"'
    raw_a = f'{RAW},{AGENT}=~"$agent"'
    return dashboard(
        "agent-otel-agents", "agent-otel / Agents",
        "Per agent: success, latency, cost, calibration, patterns and failing task types.",
        [label_values("agent", "Agent", f"{AGENT_DUR}_count{{{RAW}}}", AGENT)],
        [
            row("Per agent and window"),
            _by_window(a),
            row("Success and volume"),
            timeseries_panel(
                "Success ratio",
                "Share of invocations with agent_outcome=success, over 5 minutes and 1 hour. Failures the agent "
                "reports and errors it raises both count against it.",
                "percentunit",
                [query(f"agent:gen_ai_invoke_agent_successes_per_invocations:ratio_rate5m{{{a}}}",
                       "{{gen_ai_agent_name}} 5m"),
                 query(f"agent:gen_ai_invoke_agent_successes_per_invocations:ratio_rate1h{{{a}}}",
                       "{{gen_ai_agent_name}} 1h")],
            ).min(0).max(1).thresholds(steps(*RATIO_STEPS)),
            timeseries_panel(
                "Invocations by outcome", "Agent invocations per second, by agent and outcome.", "ops",
                [query(f"sum by ({AGENT}, {OUTCOME}) (rate({AGENT_DUR}_count{{{raw_a}}}[{RATE_INTERVAL}]))",
                       "{{gen_ai_agent_name}} {{agent_outcome}}")], stack=True),
            row("Latency"),
            timeseries_panel(
                "Latency quantiles",
                "p50, p95 and p99 duration of agent invocations. Exemplars link to the traces of slow runs.",
                "s", quantiles(AGENT_DUR, AGENT, raw_a)),
            timeseries_panel(
                "Average latency", "Mean duration of an invocation over 5 minutes (sum / count).", "s",
                [query(f"agent:{AGENT_DUR}:mean5m{{{a}}}", "{{gen_ai_agent_name}}")]),
            row("Cost"),
            timeseries_panel(
                "Average cost per invocation",
                "Estimated model spend per agent invocation over 1 hour, from the local price table.", "currencyUSD",
                [query(f"agent:gen_ai_client_cost_per_invocations:ratio_rate1h{{{a}}}", "{{gen_ai_agent_name}}")]),
            timeseries_panel(
                "Spend per hour by agent", "Estimated model spend of each agent's calls, as US dollars per hour.",
                "currencyUSD",
                [query(f"sum by ({AGENT}) (rate({COST}{{{raw_a}}}[{RATE_INTERVAL}])) * 3600", "{{gen_ai_agent_name}}")],
                stack=True),
            row("Quality"),
            bargauge_panel(
                "Confidence calibration (1d)",
                "Actual success ratio per stated-confidence band over the last day: low < 0.5 <= medium < 0.8 "
                "<= high (histogram buckets le=0.5 and le=0.8, which include their bound). A calibrated agent's "
                "high band succeeds most often.",
                "percentunit",
                [query(f"agent_band:{CONFIDENCE}_successes_per_invocations:ratio_increase1d{{{a}}}",
                       "{{gen_ai_agent_name}} {{confidence_band}}", instant=True)],
            ).min(0).max(1).thresholds(steps(*RATIO_STEPS)).span(8),
            timeseries_panel(
                "Patterns used", "Patterns applied per second, by agent and pattern.", "ops",
                [query(f"sum by ({AGENT}, {PATTERN}) (rate({PATTERNS}{{{raw_a}}}[{RATE_INTERVAL}]))",
                       "{{gen_ai_agent_name}} {{agent_pattern}}")], stack=True).span(8),
            timeseries_panel(
                "Failing task types",
                "Unsuccessful invocations (failure or error) per second, for the 10 worst agent and task type "
                "pairs.", "ops",
                [query(f'topk(10, sum by ({AGENT}, {TASK_TYPE}) (rate({AGENT_DUR}_count{{{raw_a},{OUTCOME}!="success"}}'
                       f"[{RATE_INTERVAL}])))", "{{gen_ai_agent_name}} {{agent_task_type}}")]).span(8),
            timeseries_panel(
                "Work items",
                "Work items agents report per second (fixes applied, files modified, remaining issues...).", "ops",
                [query(f"sum by ({AGENT}, {WORK_KIND}) (rate({WORK_ITEMS}{{{raw_a}}}[{RATE_INTERVAL}]))",
                       "{{gen_ai_agent_name}} {{agent_work_kind}}")]).span(24),
        ],
    )
