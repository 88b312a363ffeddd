"""agent-otel / Jobs & tools: jobs (workflow runs) and tools/plugins, their throughput, duration, outcomes and
reliability."""

from __future__ import annotations

from grafana_foundation_sdk.models.dashboard import Dashboard

from agent_otel import semconv as sc
from mixin.config import load_thresholds
from mixin.dashboards.common import (
    RATE_INTERVAL,
    RAW,
    VARIABLES,
    bargauge_panel,
    dashboard,
    label_values,
    quantiles,
    query,
    row,
    status_history_panel,
    steps,
    timeseries_panel,
    with_threshold_lines,
)
from mixin.names import ERROR_TYPE, JOB_DUR, JOB_OUTCOME, JOB_TYPE, TOOL, TOOL_DUR

FILE = "jobs-tools.json"
JOB_COST = sc.JOB_COST.prometheus


def build() -> Dashboard:
    limits = load_thresholds()
    j = f'{VARIABLES},{JOB_TYPE}=~"$job_type"'
    t = f'{VARIABLES},{TOOL}=~"$tool"'
    raw_j = f'{RAW},{JOB_TYPE}=~"$job_type"'
    raw_t = f'{RAW},{TOOL}=~"$tool"'
    return dashboard(
        "agent-otel-jobs-tools", "agent-otel / Jobs & tools",
        "Jobs (workflow runs) and tools/plugins: throughput, duration, outcomes and reliability.",
        [label_values("job_type", "Job type", f"{JOB_DUR}_count{{{RAW}}}", JOB_TYPE),
         label_values("tool", "Tool", f"{TOOL_DUR}_count{{{RAW}}}", TOOL)],
        [
            row("Jobs"),
            timeseries_panel(
                "Job outcomes", "Jobs finishing per second, by type and outcome.", "ops",
                [query(f"sum by ({JOB_TYPE}, {JOB_OUTCOME}) (rate({JOB_DUR}_count{{{raw_j}}}[{RATE_INTERVAL}]))",
                       "{{job_type}} {{job_outcome}}")], stack=True).span(8),
            with_threshold_lines(timeseries_panel(
                "Job failure ratio",
                "Share of jobs ending in failure or error, over 1 hour. The dashed line is the threshold of "
                f"AgentOtelJobFailureRatioHigh ({limits['job_failure_ratio']:.0%}).", "percentunit",
                [query(f"job_type:job_failures_per_jobs:ratio_rate1h{{{j}}}", "{{job_type}}")],
            ).min(0).max(1).thresholds(steps(("green", None), ("red", limits["job_failure_ratio"]))).span(8)),
            timeseries_panel(
                "Job duration", "p50 and p95 job duration per type; exemplars link to the job's trace.", "s",
                quantiles(JOB_DUR, JOB_TYPE, raw_j, levels=(0.5, 0.95))).span(8),
            timeseries_panel(
                "Spend per job type",
                "Estimated model spend of the jobs of each type, as US dollars per hour (every priced model call "
                "under a job, counted when the job ends).", "currencyUSD",
                [query(f"sum by ({JOB_TYPE}) (rate({JOB_COST}_sum{{{raw_j}}}[{RATE_INTERVAL}])) * 3600",
                       "{{job_type}}")], stack=True).span(12),
            timeseries_panel(
                "Cost per job",
                "p50 and p95 cost of one job per type, in US dollars (AgentOtelJobCostPerJobJump compares the mean "
                f"of the last hour with the last day's, at {limits['job_cost_jump_factor']} times). Exemplars link "
                "to the trace of a costly job.", "currencyUSD",
                quantiles(JOB_COST, JOB_TYPE, raw_j, levels=(0.5, 0.95))).span(12),
            row("Tools and plugins"),
            status_history_panel(
                "Tool reliability",
                "Share of tool executions without error over 5 minutes, per tool: a reliability heatmap. Red below "
                f"{1 - limits['tool_error_ratio']:.0%} (AgentOtelToolErrorRatioHigh fires above "
                f"{limits['tool_error_ratio']:.0%} errors over an hour), yellow below 99 %.",
                "percentunit",
                [query(f"1 - tool:gen_ai_execute_tool_errors_per_executions:ratio_rate5m{{{t}}}",
                       "{{gen_ai_tool_name}}")],
            ).min(0).max(1).thresholds(steps(("red", None), ("yellow", round(1 - limits["tool_error_ratio"], 4)),
                                             ("green", 0.99))).span(24),
            bargauge_panel(
                "Most used tools (24h)", "Executions in the last 24 hours, top 10 tools.", "short",
                [query(f"topk(10, tool:{TOOL_DUR}_count:rate1d{{{t}}} * 86400)", "{{gen_ai_tool_name}}",
                       instant=True)]).span(8),
            timeseries_panel(
                "Tool latency p95", "p95 execution time per tool; exemplars link to traces.", "s",
                [query(f"histogram_quantile(0.95, sum by (le, {TOOL}) "
                       f"(rate({TOOL_DUR}_bucket{{{raw_t}}}[{RATE_INTERVAL}])))", "{{gen_ai_tool_name}}",
                       exemplar=True)]).span(8),
            timeseries_panel(
                "Tool errors by type", "Failed tool executions per second, by tool and error type.", "ops",
                [query(f'sum by ({TOOL}, {ERROR_TYPE}) (rate({TOOL_DUR}_count{{{raw_t},{ERROR_TYPE}!=""}}'
                       f"[{RATE_INTERVAL}]))", "{{gen_ai_tool_name}} {{error_type}}")], stack=True).span(8),
        ],
    )
