"""agent-otel / Workflows (issue 19): workflow phases (durations, outcomes), plugins per phase (reliability
heatmap, most used, slow ones) and workflow patterns (success ratio and mean duration, to promote them)."""

from __future__ import annotations

from grafana_foundation_sdk.builders import table
from grafana_foundation_sdk.models.dashboard import Dashboard, DynamicConfigValue
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from mixin.config import load_thresholds
from mixin.dashboards.common import (
    DEPLOYMENT_COLUMNS,
    RATE_INTERVAL,
    RATIO_STEPS,
    RAW,
    VARIABLES,
    bargauge_panel,
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
)
from mixin.names import (
    JOB_TYPE,
    PATTERN_DUR,
    PHASE,
    PHASE_DUR,
    PHASE_OUTCOME,
    TOOL,
    TOOL_DUR,
    WORKFLOW_PATTERN,
)
from mixin.rules.workflows import PATTERN_SUCCESS_RATIO, PLUGIN_ERROR_RATIO

FILE = "workflows.json"
#: Legends.
PLUGIN_IN_PHASE = f"{{{{{TOOL}}}}} in {{{{{PHASE}}}}}"
BY_PATTERN = f"{{{{{WORKFLOW_PATTERN}}}}}"


def _patterns_by_window(p: str) -> table.Panel:
    """One row per pattern, one column per (measure, window), from the pattern:* recording rules."""
    targets = []
    columns = {**DEPLOYMENT_COLUMNS, WORKFLOW_PATTERN: "Pattern"}
    units = {}
    for title, record, unit in (
        ("Success", PATTERN_SUCCESS_RATIO, "percentunit"),
        ("Avg duration", f"pattern:{PATTERN_DUR}:mean{{w}}", "s"),
        ("Executions/h", f"pattern:{PATTERN_DUR}_count:rate{{w}}", "short"),
    ):
        for window in ("1h", "1d", "7d"):
            expr = f"max by ({per_deployment(WORKFLOW_PATTERN)}) ({record.format(w=window)}{{{p}}})"
            targets.append(query(expr + (" * 3600" if title == "Executions/h" else ""), instant=True,
                                 fmt=PromQueryFormat.TABLE))
            name = f"{title} {window}"
            columns[f"Value #{chr(ord('A') + len(targets) - 1)}"] = name
            units[name] = unit
    return table_panel(
        "Patterns by window",
        "Success ratio, mean duration and executions per hour of each workflow pattern over the last hour, day and "
        "week (recording rules pattern:*:*1h|1d|7d), a row per service and environment: a pattern that keeps a "
        "high success ratio over a week is one to promote (discovered, validated, learned).",
        "short", targets, columns=columns, units=units).span(24).height(7)


def _plugin_reliability(tp: str, limits: dict[str, float]) -> table.Panel:
    """A cell per (plugin, phase): the share of its executions without error over the last hour."""
    healthy = round(1 - limits["tool_error_ratio"], 4)
    panel = matrix_table_panel(
        "Plugin reliability by phase (1h)",
        "Share of each plugin's executions without error in each workflow phase over the last hour (the worst "
        "service's when several are selected): a heatmap of "
        f"plugin x phase. Red below {healthy:.0%}, yellow below 99 %. AgentOtelPluginFailureRatioJump fires when "
        "a cell falls far below the same cell over the last day.",
        "percentunit",
        query(f"1 - max by ({TOOL}, {PHASE}) ({PLUGIN_ERROR_RATIO.format(w='1h')}{{{tp}}})", instant=True,
              fmt=PromQueryFormat.TABLE, worst_of_deployments=True),
        rows=TOOL, columns=PHASE, row_title="Plugin",
    ).decimals(1).min(0).max(1).thresholds(steps(("red", None), ("yellow", healthy), ("green", 0.99))).span(12)
    return panel.override_by_regexp(".*", [DynamicConfigValue(id_val="custom.cellOptions",
                                                              value={"type": "color-background"})])


def build() -> Dashboard:
    limits = load_thresholds()
    job_phase = f'{JOB_TYPE}=~"$job_type",{PHASE}=~"$phase"'
    raw_ph = f"{RAW},{job_phase}"
    tp = f'{VARIABLES},{PHASE}=~"$phase"'
    p = f'{VARIABLES},{WORKFLOW_PATTERN}=~"$pattern"'
    raw_tools = f'{RAW},{PHASE}=~"$phase",{PHASE}!=""'
    return dashboard(
        "agent-otel-workflows", "agent-otel / Workflows",
        "Workflow phases, the plugins (tools) each phase runs, and workflow patterns: durations, reliability and "
        "success.",
        [label_values("job_type", "Job type", f"{PHASE_DUR}_count{{{RAW}}}", JOB_TYPE),
         label_values("phase", "Phase", f'{PHASE_DUR}_count{{{RAW},{JOB_TYPE}=~"$job_type"}}', PHASE),
         label_values("pattern", "Pattern", f"{PATTERN_DUR}_count{{{RAW}}}", WORKFLOW_PATTERN)],
        [
            row("Phases"),
            timeseries_panel(
                "Phase duration", "p50 and p95 duration of each workflow phase; exemplars link to the phase's trace.",
                "s", quantiles(PHASE_DUR, PHASE, raw_ph, levels=(0.5, 0.95))).span(12),
            timeseries_panel(
                "Phase outcomes", "Phases finishing per second, by phase and outcome.", "ops",
                [query(f"sum by ({PHASE}, {PHASE_OUTCOME}) (rate({PHASE_DUR}_count{{{raw_ph}}}[{RATE_INTERVAL}]))",
                       f"{{{{{PHASE}}}}} {{{{{PHASE_OUTCOME}}}}}")], stack=True).span(12),
            row("Plugins by phase"),
            _plugin_reliability(tp, limits),
            bargauge_panel(
                "Most used plugins (24h)", "Executions in the last 24 hours, top 10 plugins in a phase.", "short",
                [query(f"topk(10, tool_phase:{TOOL_DUR}_count:rate1d{{{tp}}} * 86400)",
                       PLUGIN_IN_PHASE, instant=True)]).span(12),
            timeseries_panel(
                "Slow plugins: p95 by phase", "p95 execution time of each plugin in each phase; exemplars link to the "
                "step's trace.", "s",
                [query(f"histogram_quantile(0.95, sum by (le, {TOOL}, {PHASE}) "
                       f"(rate({TOOL_DUR}_bucket{{{raw_tools}}}[{RATE_INTERVAL}])))",
                       PLUGIN_IN_PHASE, exemplar=True)]).span(24),
            row("Patterns"),
            timeseries_panel(
                "Pattern success ratio", "Share of each workflow pattern's executions that succeeded, over 1 hour.",
                "percentunit",
                [query(f"{PATTERN_SUCCESS_RATIO.format(w='1h')}{{{p}}}", BY_PATTERN)],
            ).min(0).max(1).thresholds(steps(*RATIO_STEPS)).span(12),
            timeseries_panel(
                "Pattern mean duration", "Mean duration of an execution of each workflow pattern, over 1 hour.", "s",
                [query(f"pattern:{PATTERN_DUR}:mean1h{{{p}}}", BY_PATTERN)]).span(12),
            _patterns_by_window(p),
        ],
    )
