"""Self-monitoring: the pipeline itself (scrape targets, process memory, agent-otel's own failures).
Without it every other alert is blind."""

from __future__ import annotations

from mixin.names import PROCESS_MEMORY, SELF_ERRORS, STAGE
from mixin.rules.rule import Group, Thresholds, alert, duration, gib, value_of


def alert_group(t: Thresholds) -> Group:
    sel = t["target_selector"]
    return Group(
        "agent-otel-telemetry-alerts",
        "The pipeline itself: without it every alert above is blind.",
        [
            alert(
                t,
                "AgentOtelProcessMemoryExhaustionPredicted",
                f"max by (job, instance) (predict_linear({PROCESS_MEMORY}[1h], "
                f"{t['process_memory_prediction_seconds']}))\n> {t['process_memory_limit_bytes']}",
                "15m",
                "warning",
                "A process is predicted to run out of memory.",
                "At the growth rate of the last hour, process {{ $labels.instance }} of {{ $labels.job }} will "
                f"use more than {gib(t['process_memory_limit_bytes'])} within "
                f"{duration(t['process_memory_prediction_seconds'])} (predicted {{{{ $value | humanize1024 }}}}B).",
            ),
            alert(
                t,
                "AgentOtelTargetDown",
                f"up{{{sel}}} == 0",
                "5m",
                "warning",
                "Prometheus cannot scrape an agent-otel target.",
                "Target {{ $labels.instance }} of job {{ $labels.job }} has been down for 5 minutes; "
                "alerts on its telemetry cannot fire.",
            ),
            alert(
                t,
                "AgentOtelTelemetryAbsent",
                f"absent(up{{{sel}}})",
                "15m",
                "warning",
                "No agent-otel target is being scraped.",
                f"No target matching {{{sel}}} has been scraped for 15 minutes"
                "{{ with $externalURL }} by {{ . }}{{ end }}; check the scrape configuration and service discovery.",
            ),
            alert(
                t,
                "AgentOtelInstrumentationErrorsRising",
                f"sum by (job, instance, {STAGE}) (rate({SELF_ERRORS}[5m])) "
                f"> {t['instrumentation_errors_per_second']}",
                "15m",
                "warning",
                "Instrumentation fails to record telemetry.",
                f"agent-otel in {{{{ $labels.instance }}}} fails at stage {value_of(STAGE)} "
                "{{ $value | printf \"%.2g\" }} times per second; that telemetry is lost.",
            ),
        ],
    )
