"""agent-otel / Agents: per agent success, latency, cost, calibration, patterns and failing task types."""

from __future__ import annotations

from grafana_foundation_sdk.builders import bargauge, table, timeseries
from grafana_foundation_sdk.models.dashboard import Dashboard, DynamicConfigValue
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from agent_otel import semconv as sc
from mixin.config import load_thresholds
from mixin.dashboards.common import (
    DEPLOYMENT_COLUMNS,
    RATE_INTERVAL,
    RAW,
    VARIABLES,
    Steps,
    bargauge_panel,
    below_steps,
    dashboard,
    label_values,
    matrix_table_panel,
    per_deployment,
    quantiles,
    query,
    row,
    steps,
    table_panel,
    timeseries_panel,
    with_threshold_lines,
)
from mixin.names import (
    AGENT,
    AGENT_DUR,
    CONFIDENCE,
    COST,
    EVAL_NAME,
    EVAL_SCORE,
    OUTCOME,
    PATTERN,
    PATTERNS,
    TASK_TYPE,
    WORK_ITEMS,
    WORK_KIND,
)
from mixin.scope import ENVIRONMENT, SERVICE

FILE = "agents.json"
INFERENCE_CALLS, TOOL_CALLS = sc.AGENT_INFERENCE_CALLS.prometheus, sc.AGENT_TOOL_CALLS.prometheus


def _calls_per_invocation(raw_a: str) -> timeseries.Panel:
    """p95 of the model and tool calls one invocation makes (gen_ai.invoke_agent.inference_calls/.tool_calls)."""
    return timeseries_panel(
        "Calls per invocation",
        "p95 of the model calls and of the tool calls one invocation of each agent makes (its sub-agents' calls "
        "count for them). A rising curve is a loop in the making; exemplars link to the traces.", "short",
        [query(f"histogram_quantile(0.95, sum by (le, {AGENT}) (rate({histogram}_bucket{{{raw_a}}}"
               f"[{RATE_INTERVAL}])))", f"{{{{gen_ai_agent_name}}}} {what}", exemplar=True)
         for histogram, what in ((INFERENCE_CALLS, "model calls"), (TOOL_CALLS, "tool calls"))])


def _runaway_invocations(raw_a: str, threshold: int) -> timeseries.Panel:
    """Invocations above the runaway threshold, what AgentOtelAgentRunawayLoop fires on."""
    above = f'{raw_a},le=~"{threshold}|{threshold}.0"'
    return timeseries_panel(
        "Runaway invocations",
        f"Invocations per second that made more than {threshold} model calls or more than {threshold} tool calls "
        "(AgentOtelAgentRunawayLoop fires on any).", "ops",
        [query(f"sum by ({AGENT}) (rate({histogram}_count{{{raw_a}}}[{RATE_INTERVAL}]))\n- "
               f"sum by ({AGENT}) (rate({histogram}_bucket{{{above}}}[{RATE_INTERVAL}]))",
               f"{{{{gen_ai_agent_name}}}} {what}")
         for histogram, what in ((INFERENCE_CALLS, "model calls"), (TOOL_CALLS, "tool calls"))])


def _by_window(a: str) -> table.Panel:
    """One row per agent, one column per (measure, window), from the agent:* recording rules."""
    targets = []
    columns = {**DEPLOYMENT_COLUMNS, AGENT: "Agent"}
    units = {}
    for title, record, unit in (
        ("Success", "agent:gen_ai_invoke_agent_successes_per_invocations:ratio_rate{w}", "percentunit"),
        ("Avg latency", f"agent:{AGENT_DUR}:mean{{w}}", "s"),
        ("p95 latency", f'agent_quantile:{AGENT_DUR}:histogram_quantile_rate{{w}}{{{{quantile="0.95",{a}}}}}', "s"),
        ("Avg cost", "agent:agent_otel_client_cost_per_invocations:ratio_rate{w}", "currencyUSD"),
    ):
        for window in ("1h", "1d", "7d"):
            expr = record.format(w=window)
            if "{" not in expr:
                expr += f"{{{a}}}"
            # One label set per deployment and agent (no __name__ column): the merge joins the queries into rows.
            targets.append(query(f"max by ({per_deployment(AGENT)}) ({expr})", instant=True,
                                 fmt=PromQueryFormat.TABLE))
            name = f"{title} {window}"
            columns[f"Value #{chr(ord('A') + len(targets) - 1)}"] = name
            units[name] = unit
    return table_panel(
        "Agents by window",
        "Success ratio, average and p95 latency and average cost per invocation of each agent over the last hour, "
        "day and week (recording rules agent:*:*_rate1h|1d|7d), a row per service and environment it runs in.",
        "short", targets, columns=columns, units=units).span(24).height(7)


#: How far a band's success ratio may fall outside the band's own confidence range: within the first it is
#: green (calibrated), within the second yellow, beyond it red.
CALIBRATION_GAP = (0.1, 0.2)


def _band_ranges() -> list[tuple[str, float, float]]:
    """(band, lowest, highest stated confidence) of each band of semconv.CONFIDENCE_BANDS."""
    low, high = sc.CONFIDENCE_BAND_EDGES
    return [("low", 0.0, low), ("medium", low, high), ("high", high, 1.0)]


def _gap_steps(lowest: float, highest: float) -> Steps:
    """Colours of a band's success ratio by its calibration gap: green inside the band's range (a calibrated
    agent that states 0.3 succeeds about 30 % of the time), yellow then red as it falls further outside."""
    near, far = CALIBRATION_GAP
    return (("red", None), ("yellow", round(lowest - far, 4)), ("green", round(lowest - near, 4)),
            ("yellow", round(highest + near, 4)), ("red", round(highest + far, 4)))


def _calibration(a: str) -> bargauge.Panel:
    low, high = sc.CONFIDENCE_BAND_EDGES
    panel = bargauge_panel(
        "Confidence calibration (1d)",
        f"Actual success ratio per stated-confidence band over the last day: low < {low} <= medium < {high} <= "
        f"high (a stated {high} is high). Coloured by the calibration gap, not by the ratio itself: green while "
        f"the band succeeds about as often as it claims (inside its own range, e.g. 0 to {low} for low), yellow "
        f"more than {CALIBRATION_GAP[0]:.0%} outside it, red more than {CALIBRATION_GAP[1]:.0%} outside. A "
        "well-calibrated agent's low band rarely succeeds, and is green.",
        "percentunit",
        [query(f"agent_band:{CONFIDENCE}_successes_per_invocations:ratio_increase1d{{{a}}}",
               "{{gen_ai_agent_name}} {{confidence_band}}", instant=True)],
    ).min(0).max(1).span(8)
    for band, lowest, highest in _band_ranges():
        panel = panel.override_by_regexp(f".* {band}$", [DynamicConfigValue(id_val="thresholds", value={
            "mode": "absolute",
            "steps": [{"color": color, "value": value} for color, value in _gap_steps(lowest, highest)]})])
    return panel


def _evaluation_vs_confidence(a: str) -> table.Panel:
    """One query, so that an agent with confidence but no evaluation (or the reverse) still has its row: a
    column per evaluation (named after it) and one for the stated confidence."""
    measure, deployment_agent = "measure", "deployment_agent"
    expr = (f'label_join(\n'
            f'label_join(max by ({per_deployment(AGENT, EVAL_NAME)}) (agent_evaluation:{EVAL_SCORE}:mean1h{{{a}}}), '
            f'"{measure}", "", "{EVAL_NAME}")\nor\n'
            f'label_replace(max by ({per_deployment(AGENT)}) (agent:{CONFIDENCE}:mean1h{{{a}}}), '
            f'"{measure}", "stated confidence", "", ""),\n'
            f'"{deployment_agent}", " / ", "{SERVICE}", "{ENVIRONMENT}", "{AGENT}")')
    return matrix_table_panel(
        "Evaluation score vs stated confidence (1h)",
        "Per agent (and service and environment) over the last hour: the mean score of each evaluation of its "
        "results (agent.evaluation.score, from gen_ai.evaluation.result events or agent_otel.record_evaluation) "
        "beside the mean confidence it "
        "stated (agent.confidence). An agent whose evaluations score well below the confidence it states is "
        "overconfident; the calibration by band is next to this table.",
        "short",
        query(expr, instant=True, fmt=PromQueryFormat.TABLE),
        rows=deployment_agent, columns=measure, row_title="Service / environment / agent",
    ).decimals(2).span(8)


def build() -> Dashboard:
    limits = load_thresholds()
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
            with_threshold_lines(timeseries_panel(
                "Success ratio",
                "Share of invocations with agent_outcome=success, over 5 minutes and 1 hour. Failures the agent "
                "reports and errors it raises both count against it. The dashed lines are the alert's thresholds "
                f"(AgentOtelAgentSuccessRatioLow: warning below {limits['agent_success_ratio_warning']:.0%}, critical "
                f"below {limits['agent_success_ratio_critical']:.0%}); the axis goes a little above 100 % so that "
                "an agent at 100 % stays visible.",
                "percentunit",
                [query(f"agent:gen_ai_invoke_agent_successes_per_invocations:ratio_rate5m{{{a}}}",
                       "{{gen_ai_agent_name}} 5m"),
                 query(f"agent:gen_ai_invoke_agent_successes_per_invocations:ratio_rate1h{{{a}}}",
                       "{{gen_ai_agent_name}} 1h")],
            ).min(0).max(1.05).thresholds(steps(*below_steps(limits["agent_success_ratio_critical"],
                                                              limits["agent_success_ratio_warning"])))),
            timeseries_panel(
                "Invocations by outcome", "Agent invocations per second, by agent and outcome.", "ops",
                [query(f"sum by ({AGENT}, {OUTCOME}) (rate({AGENT_DUR}_count{{{raw_a}}}[{RATE_INTERVAL}]))",
                       "{{gen_ai_agent_name}} {{agent_outcome}}")], stack=True),
            row("Latency"),
            timeseries_panel(
                "Latency quantiles: $agent",
                "p50, p95 and p99 duration of the invocations of one agent (one panel per agent selected in the "
                "Agent variable). Exemplars link to the traces of slow runs.",
                "s", quantiles(AGENT_DUR, AGENT, raw_a),
            ).repeat("agent").repeat_direction("h").max_per_row(4).span(24),
            timeseries_panel(
                "Average latency", "Mean duration of an invocation over 5 minutes (sum / count).", "s",
                [query(f"agent:{AGENT_DUR}:mean5m{{{a}}}", "{{gen_ai_agent_name}}")]).span(24),
            row("Cost"),
            timeseries_panel(
                "Average cost per invocation",
                "Estimated model spend per agent invocation over 1 hour, from the local price table.", "currencyUSD",
                [query(f"agent:agent_otel_client_cost_per_invocations:ratio_rate1h{{{a}}}", "{{gen_ai_agent_name}}")]),
            timeseries_panel(
                "Spend per hour by agent", "Estimated model spend of each agent's calls, as US dollars per hour.",
                "currencyUSD",
                [query(f"sum by ({AGENT}) (rate({COST}{{{raw_a}}}[{RATE_INTERVAL}])) * 3600", "{{gen_ai_agent_name}}")],
                stack=True),
            _calls_per_invocation(raw_a),
            _runaway_invocations(raw_a, load_thresholds()["agent_runaway_calls_per_invocation"]),
            row("Quality"),
            _calibration(a),
            _evaluation_vs_confidence(a),
            timeseries_panel(
                "Patterns used", "Patterns applied per second, by agent and pattern.", "ops",
                [query(f"sum by ({AGENT}, {PATTERN}) (rate({PATTERNS}{{{raw_a}}}[{RATE_INTERVAL}]))",
                       "{{gen_ai_agent_name}} {{agent_pattern}}")], stack=True).span(8),
            timeseries_panel(
                "Failing task types",
                "Unsuccessful invocations (failure or error) per second, for the 10 worst agent and task type "
                "pairs.", "ops",
                [query(f'topk(10, sum by ({AGENT}, {TASK_TYPE}) (rate({AGENT_DUR}_count{{{raw_a},{OUTCOME}!="success"}}'
                       f"[{RATE_INTERVAL}])))", "{{gen_ai_agent_name}} {{agent_task_type}}")]).span(12),
            timeseries_panel(
                "Work items",
                "Work items agents report per second (fixes applied, files modified, remaining issues...).", "ops",
                [query(f"sum by ({AGENT}, {WORK_KIND}) (rate({WORK_ITEMS}{{{raw_a}}}[{RATE_INTERVAL}]))",
                       "{{gen_ai_agent_name}} {{agent_work_kind}}")]).span(12),
        ],
    )
