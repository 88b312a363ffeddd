"""Evolution (self-improvement) runs: attempts by status and the succeeded/failed ratios; the alerts on
failing, memory-hungry or no longer improving runs."""

from __future__ import annotations

from agent_otel import semconv as sc
from mixin.config import THRESHOLDS_FILE, shown
from mixin.names import AGENT, EVO_ATTEMPTS, EVO_IMPROVEMENT_RUNS, EVO_MEMORY, EVO_STATUS, EVO_TYPE
from mixin.rules.rule import (
    Group,
    LowTraffic,
    Rule,
    Thresholds,
    alert,
    gib,
    low_traffic_alert,
    pct,
    ratio,
    record,
    stem,
    value_of,
    window_groups,
)
from mixin.scope import Scope

WINDOWS = ("1h", "1d", "7d")
_COMMENT = "Evolution runs over {w}: attempts by status and the succeeded/failed ratios."


def _rules(w: str, s: Scope) -> list[Rule]:
    by_status = f"agent_evolution_type_status:{stem(EVO_ATTEMPTS)}:increase{w}"
    total = f"agent_evolution_type:{stem(EVO_ATTEMPTS)}:increase{w}"
    return [
        record(by_status,
               f"sum by ({s.by(AGENT, EVO_TYPE, EVO_STATUS)}) (increase({s.series(EVO_ATTEMPTS)}[{w}]))"),
        record(total, f"sum without ({EVO_STATUS}) ({by_status})"),
        *(
            record(
                f"agent_evolution_type:{stem(EVO_ATTEMPTS)}_{status}_per_attempts:ratio_increase{w}",
                ratio(f'sum without ({EVO_STATUS}) ({by_status}{{{EVO_STATUS}="{status}"}})', total),
            )
            for status in ("succeeded", "failed")
        ),
    ]


def recording_groups(s: Scope) -> list[Group]:
    return window_groups("evolution", WINDOWS, _COMMENT, lambda w: _rules(w, s))


def _no_progress(t: Thresholds, s: Scope) -> str:
    """No run of the last day improved the KPI by the minimum, while runs happened and the agent was watched for the
    whole day. Counted on the improvement histogram (a run that made the KPI worse, failed or was rolled back records
    0): the runs that improved by at least the minimum are its count minus the cumulative bucket just below it. The
    gauge holds only the latest run's improvement, so an engine running several runs between two scrapes (openevolve:
    many a second) showed only the last, and a day of large gains could read as none."""
    by = s.by(AGENT, EVO_TYPE)
    minimum = t["evolution_min_improvement"]
    if minimum not in sc.IMPROVEMENT_EDGES:
        raise ValueError(f"{shown(THRESHOLDS_FILE)}: evolution_min_improvement: {minimum!r} is not one of the "
                         f"improvement histogram's edges {list(sc.IMPROVEMENT_EDGES)}")
    # the runs that improved by at least the minimum, per series (a counter itself: it resets when the process does),
    # then their increase: increase() of each of the two counters extrapolates each its own way (not below zero for a
    # bucket that starts at 0), and their difference read runs that did not happen
    below_minimum = s.series(EVO_IMPROVEMENT_RUNS + "_bucket", f'le="{sc.le_below(minimum)}"')
    improved = f"{s.series(EVO_IMPROVEMENT_RUNS + '_count')} - ignoring (le) {below_minimum}"
    return (f"sum by ({by}) (increase(({improved})[1d:5m])) < 0.5\n"
            f"and on ({by})\n"
            f"sum by ({by}) (increase({s.series(EVO_ATTEMPTS)}[1d])) >= {t['evolution_no_progress_min_runs_1d']}\n"
            f"and on ({by})\n"
            f"group by ({by}) (count_over_time({s.series(EVO_ATTEMPTS)}[1h] offset 1d))")


def alert_group(t: Thresholds, s: Scope) -> Group:
    a, kind = value_of(AGENT), value_of(EVO_TYPE)
    return Group(
        "agent-otel-evolution-alerts",
        "Evolution (self-improvement) runs: failing, eating memory, or no longer improving anything.",
        [
            alert(
                t,
                "AgentOtelEvolutionFailureRateHigh",
                f"agent_evolution_type:{stem(EVO_ATTEMPTS)}_failed_per_attempts:ratio_increase1h "
                f"> {t['evolution_failure_ratio']}\n"
                f"and on ({s.by(AGENT, EVO_TYPE)})\n"
                f"agent_evolution_type:{stem(EVO_ATTEMPTS)}:increase1h >= {t['evolution_min_attempts_1h']}",
                "10m",
                "warning",
                "Evolution runs fail too often.",
                f"{{{{ $value | humanizePercentage }}}} of {kind} evolution runs of agent "
                f"{a} failed over the last hour (threshold {pct(t['evolution_failure_ratio'])}).",
            ),
            low_traffic_alert(
                t, "AgentOtelEvolutionFailureRateHigh",
                LowTraffic("7d", f"agent_evolution_type:{stem(EVO_ATTEMPTS)}_failed_per_attempts:ratio_increase7d "
                           f"> {t['evolution_failure_ratio']}", s.by(AGENT, EVO_TYPE),
                           f"agent_evolution_type:{stem(EVO_ATTEMPTS)}:increase7d", t["evolution_min_attempts_7d"],
                           f"agent_evolution_type:{stem(EVO_ATTEMPTS)}:increase1h", t["evolution_min_attempts_1h"]),
                "Evolution runs fail too often.",
                f"{{{{ $value | humanizePercentage }}}} of {kind} evolution runs of agent {a} failed over the last "
                f"week (threshold {pct(t['evolution_failure_ratio'])}; fewer than {t['evolution_min_attempts_1h']} "
                f"runs an hour on average, at least {t['evolution_min_attempts_7d']} a week).",
            ),
            alert(
                t,
                "AgentOtelEvolutionMemoryPeakHigh",
                f"max by ({s.by(AGENT, EVO_TYPE)}) ({s.series(EVO_MEMORY)}) > {t['evolution_memory_peak_bytes']}",
                "5m",
                "warning",
                "An evolution run used too much memory.",
                f"The latest {kind} evolution run of agent {a} peaked at "
                f"{{{{ $value | humanize1024 }}}}B of resident memory "
                f"(threshold {gib(t['evolution_memory_peak_bytes'])}).",
            ),
            alert(
                t,
                "AgentOtelEvolutionNoProgress",
                _no_progress(t, s),
                "1h",
                "info",
                "Evolution has not improved an agent for a day.",
                f"None of the {kind} evolution runs of agent {a} over the last day improved its KPI by "
                f"{t['evolution_min_improvement']} or more.",
            ),
        ],
    )
