"""agent-otel / System: the processes running agent-otel, their CPU, memory and threads, agent-otel's own
errors and scrape health."""

from __future__ import annotations

from grafana_foundation_sdk.models.dashboard import Dashboard

from mixin.config import load_thresholds
from mixin.dashboards.common import (
    RATE_INTERVAL,
    RAW,
    RAW_OTHER,
    VARIABLES,
    dashboard,
    label_values,
    query,
    row,
    stat_panel,
    steps,
    timeseries_panel,
)
from mixin.names import PROCESS_CPU, PROCESS_MEMORY, PROCESS_THREADS, SELF_ERRORS, STAGE

FILE = "system.json"


def build() -> Dashboard:
    limits = load_thresholds()
    sel = f'{RAW_OTHER},job=~"$job",instance=~"$instance"'
    ours = f'{RAW},job=~"$job",instance=~"$instance"'
    return dashboard(
        "agent-otel-system", "agent-otel / System",
        "Processes running agent-otel: CPU, memory, threads, instrumentation errors and scrape health.",
        [label_values("job", "Job", f"{PROCESS_MEMORY}{{{RAW_OTHER}}}", "job"),
         label_values("instance", "Instance", f'{PROCESS_MEMORY}{{{RAW_OTHER},job=~"$job"}}', "instance")],
        [
            row("Process"),
            timeseries_panel(
                "Process CPU", "CPU time per second by mode (1.0 = one core fully busy).", "percentunit",
                [query(f"sum by (job, instance, type) (rate({PROCESS_CPU}{{{sel}}}[{RATE_INTERVAL}]))",
                       "{{instance}} {{type}}")], stack=True),
            timeseries_panel(
                "Process memory",
                "Resident memory of each process, and its linear prediction 4 h ahead (what the exhaustion alert "
                "compares against its limit).", "bytes",
                [query(f"max by (job, instance) ({PROCESS_MEMORY}{{{sel}}})", "{{instance}} RSS"),
                 query(f"max by (job, instance) (predict_linear({PROCESS_MEMORY}{{{sel}}}[1h], "
                       f"{limits['process_memory_prediction_seconds']}))", "{{instance}} predicted in 4h")],
            ).thresholds(steps(("green", None), ("red", limits["process_memory_limit_bytes"]))),
            timeseries_panel(
                "Threads", "Threads per process.", "short",
                [query(f"max by (job, instance) ({PROCESS_THREADS}{{{sel}}})", "{{instance}}")]).span(8),
            timeseries_panel(
                "Instrumentation errors by stage",
                "Failures inside agent-otel per second, by stage. agent-otel never raises into the host; each "
                "failure is a piece of lost telemetry.", "ops",
                [query(f"sum by (instance, {STAGE}) (rate({SELF_ERRORS}{{{ours}}}[{RATE_INTERVAL}]))",
                       "{{instance}} {{agent_otel_stage}}")], stack=True).span(8),
            stat_panel(
                "Targets up",
                "Scrape targets carrying agent-otel telemetry (target_selector) that answered their last scrape: "
                "each process's /metrics, or the Collector. `up` has no service or environment label, so the "
                "variables do not apply here.", "short",
                [query(f"sum(up{{{limits['target_selector']}}})", "up", instant=True)],
            ).thresholds(steps(("red", None), ("green", 1))).span(4),
            stat_panel(
                "Alerts firing", "agent-otel alerts currently firing, all severities.", "short",
                [query(f'count(ALERTS{{alertname=~"AgentOtel.+",alertstate="firing",{VARIABLES}}}) or vector(0)',
                       "firing", instant=True)],
            ).thresholds(steps(("green", None), ("red", 1))).span(4),
        ],
    )
