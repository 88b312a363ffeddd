"""agent-otel / Evolution: self-improvement runs, their outcomes, duration, improvement, KPIs and resources."""

from __future__ import annotations

from grafana_foundation_sdk.models.dashboard import Dashboard
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from agent_otel.semconv import le_below
from mixin.config import load_thresholds
from mixin.dashboards.common import (
    DEPLOYMENT_COLUMNS,
    DEPLOYMENT_LEGEND,
    RATE_INTERVAL,
    RATIO_STEPS,
    RAW,
    RAW_OTHER,
    VARIABLES,
    bargauge_panel,
    dashboard,
    heatmap_panel,
    label_values,
    per_deployment,
    query,
    row,
    steps,
    table_panel,
    timeseries_panel,
)
from mixin.dashboards.versions import annotate_runs, panels
from mixin.names import (
    AGENT,
    EVO_ATTEMPTS,
    EVO_DUR,
    EVO_IMPROVEMENT,
    EVO_IMPROVEMENT_RUNS,
    EVO_MEMORY,
    EVO_STATUS,
    EVO_TYPE,
    KPI,
    KPI_CURRENT,
    PROCESS_CPU,
)

FILE = "evolution.json"


def build() -> Dashboard:
    limits = load_thresholds()
    s = f'{VARIABLES},{AGENT}=~"$agent",{EVO_TYPE}=~"$evolution_type"'
    raw_s = f'{RAW},{AGENT}=~"$agent",{EVO_TYPE}=~"$evolution_type"'
    raw_a = f'{RAW},{AGENT}=~"$agent"'
    failed = "agent_evolution_type:evolution_attempts_failed_per_attempts:ratio_increase"
    return annotate_runs(dashboard(
        "agent-otel-evolution", "agent-otel / Evolution",
        "Evolution (self-improvement) runs: outcomes, duration, improvement, KPIs, agent versions and resources.",
        [label_values("agent", "Agent", f"{EVO_ATTEMPTS}{{{RAW}}}", AGENT),
         label_values("evolution_type", "Evolution type", f"{EVO_ATTEMPTS}{{{raw_a}}}", EVO_TYPE)],
        [
            row("Outcomes"),
            timeseries_panel(
                "Runs per hour by status",
                "Evolution runs that ended in the hour up to each point (a rolling hour, in whole runs), by agent "
                "and status (succeeded, failed, rolled_back): the scale is runs per hour whatever the zoom.",
                "short",
                [query(f"round(sum by ({AGENT}, {EVO_STATUS}) "
                       f"(agent_evolution_type_status:evolution_attempts:increase1h{{{s}}}))",
                       "{{gen_ai_agent_name}} {{evolution_status}}")], stack=True,
            ).axis_label("runs per hour").decimals(0),
            timeseries_panel(
                "Failure ratio",
                "Share of runs with status failed over 1 hour and 1 day (rolled-back runs are not failures).",
                "percentunit",
                [query(f"{failed}1h{{{s}}}", "{{gen_ai_agent_name}} {{evolution_type}} 1h"),
                 query(f"{failed}1d{{{s}}}", "{{gen_ai_agent_name}} {{evolution_type}} 1d")],
            ).min(0).max(1).thresholds(steps(("green", None), ("red", limits["evolution_failure_ratio"]))),
            bargauge_panel(
                "Success ratio (7d)", "Share of runs with status succeeded over the last 7 days.", "percentunit",
                [query(f"agent_evolution_type:evolution_attempts_succeeded_per_attempts:ratio_increase7d{{{s}}}",
                       "{{gen_ai_agent_name}} {{evolution_type}}", instant=True)],
            ).min(0).max(1).thresholds(steps(*RATIO_STEPS)).span(8),
            heatmap_panel(
                "Duration", "Distribution of evolution run durations (from the evolution.duration histogram).", "s",
                f"sum by (le) (increase({EVO_DUR}_bucket{{{raw_s}}}[{RATE_INTERVAL}]))").span(16),
            row("Effect"),
            timeseries_panel(
                "Improvement", "KPI improvement (after minus before) of the latest run per agent and type.", "short",
                [query(f"max by ({per_deployment(AGENT, EVO_TYPE)}) ({EVO_IMPROVEMENT}{{{raw_s}}})",
                       DEPLOYMENT_LEGEND + " {{gen_ai_agent_name}} {{evolution_type}}")],
            ).thresholds(steps(("red", None), ("green", limits["evolution_min_improvement"]))),
            timeseries_panel(
                "Runs, and those that did not improve",
                f"Per agent and type over each interval, from the agent_otel.evolution.improvement histogram (which "
                "counts every run whose improvement was measured, however many ran between two scrapes; the "
                "Improvement panel shows the latest run's only): all runs, and those that improved the KPI by less "
                f"than {limits['evolution_min_improvement']} (or made it worse, failed or were rolled back). Where "
                "the two lines meet, no run improved it; AgentOtelEvolutionNoProgress fires after a day of that.",
                "short",
                [query(f"sum by ({per_deployment(AGENT, EVO_TYPE)}) (increase({EVO_IMPROVEMENT_RUNS}_count"
                       f"{{{raw_s}}}[{RATE_INTERVAL}]))", DEPLOYMENT_LEGEND + " {{gen_ai_agent_name}} "
                       "{{evolution_type}} all runs"),
                 query(f"sum by ({per_deployment(AGENT, EVO_TYPE)}) (increase({EVO_IMPROVEMENT_RUNS}_bucket"
                       f"{{{raw_s},le=\"{le_below(limits['evolution_min_improvement'])}\"}}[{RATE_INTERVAL}]))",
                       DEPLOYMENT_LEGEND + " {{gen_ai_agent_name}} {{evolution_type}} no improvement")],
            ).axis_label("runs"),
            table_panel(
                "Current KPIs", "Current value of each agent KPI, as measured by the latest evolution run.", "short",
                [query(f"max by ({per_deployment(AGENT, KPI)}) ({KPI_CURRENT}{{{raw_a}}})", instant=True,
                       fmt=PromQueryFormat.TABLE)],
                columns={**DEPLOYMENT_COLUMNS, AGENT: "Agent", KPI: "KPI", "Value": "Current"}),
            *panels(),
            row("Resources"),
            timeseries_panel(
                "Memory peak per run", "Peak resident memory of the process during the latest run.", "bytes",
                [query(f"max by ({per_deployment(AGENT, EVO_TYPE)}) ({EVO_MEMORY}{{{raw_s}}})",
                       DEPLOYMENT_LEGEND + " {{gen_ai_agent_name}} {{evolution_type}}")],
            ).thresholds(steps(("green", None), ("red", limits["evolution_memory_peak_bytes"]))),
            timeseries_panel(
                "Process CPU of the selected services",
                "CPU used by every process of the selected services, whether or not it runs an evolution at the "
                "time (100 % = one core busy; the agent and evolution type variables do not apply: process "
                "metrics carry neither). Per-run CPU time is on each evolve span (process.cpu.time); the contract "
                "has no per-run CPU metric.", "percentunit",
                [query(f"sum by (job, instance) (rate({PROCESS_CPU}{{{RAW_OTHER}}}[{RATE_INTERVAL}]))",
                       "{{job}} {{instance}}")]),
        ],
    ))
