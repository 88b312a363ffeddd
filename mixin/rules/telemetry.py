"""Self-monitoring: the pipeline itself (scrape targets, process memory, agent-otel's own failures).
Without it every other alert is blind."""

from __future__ import annotations

from mixin.names import BUILD_INFO, PROCESS_MEMORY, SELF_ERRORS, STAGE
from mixin.rules.rule import Group, Rule, Thresholds, alert, duration, gib, record, value_of
from mixin.scope import OURS, Scope

#: Per service (the scope labels): how many agent-otel series it exports now. The heartbeat of
#: AgentOtelServiceTelemetryStopped, the same on both paths: behind a Collector `up` is the Collector's,
#: so only the data itself says whether a service still reports.
SERIES = "scope:agent_otel_series:count"


def heartbeat_group(s: Scope) -> Group:
    """Evaluated every minute; its history over the lookback is what the alert compares with."""
    return Group(
        "agent-otel-services",
        "Per service and environment: the number of agent-otel series it exports (any metric of agent-otel's\n"
        "instrumentation scope). What AgentOtelServiceTelemetryStopped compares with its own recent past.",
        [record(SERIES, f"count by ({s.by()}) ({{{','.join(p for p in (OURS, s.selector) if p)}}})")],
    )


def _service_stopped(t: Thresholds, s: Scope) -> Rule:
    lookback = t["service_absent_lookback"]
    return alert(
        t,
        "AgentOtelServiceTelemetryStopped",
        f"group by ({s.by()}) (max_over_time({SERIES}[{lookback}]))\nunless\n{SERIES}",
        "5m",
        "warning",
        "An instrumented service stopped reporting agent-otel telemetry.",
        "Service {{ $labels.service_name }} (environment {{ $labels.deployment_environment_name }}, job "
        f"{{{{ $labels.job }}}}) exported agent-otel metrics within the last {lookback} and exports none now: "
        "its processes stopped, or cannot reach Prometheus or the Collector. The alert ends by itself "
        f"{lookback} after the last data, for a service taken away on purpose.",
    )


def alert_group(t: Thresholds, s: Scope) -> Group:
    sel = t["target_selector"]
    return Group(
        "agent-otel-telemetry-alerts",
        "The pipeline itself: without it every alert above is blind.",
        [
            alert(
                t,
                "AgentOtelProcessMemoryExhaustionPredicted",
                f"max by ({s.by('instance')}) (predict_linear({s.series(PROCESS_MEMORY, ours=False)}[1h], "
                f"{t['process_memory_prediction_seconds']}))\n> {t['process_memory_limit_bytes']}\n"
                # a process of agent-otel's (another instrumentation's processes export the same metric)
                f"and on ({s.by('instance')})\ngroup by ({s.by('instance')}) ({s.series(BUILD_INFO)})",
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
                "Prometheus cannot scrape an agent-otel target (an application's /metrics, or the Collector).",
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
            _service_stopped(t, s),
            alert(
                t,
                "AgentOtelInstrumentationErrorsRising",
                f"sum by ({s.by('instance', STAGE)}) (rate({s.series(SELF_ERRORS)}[5m])) "
                f"> {t['instrumentation_errors_per_second']}",
                "15m",
                "warning",
                "Instrumentation fails to record telemetry.",
                f"agent-otel in {{{{ $labels.instance }}}} fails at stage {value_of(STAGE)} "
                "{{ $value | printf \"%.2g\" }} times per second; that telemetry is lost.",
            ),
        ],
    )
