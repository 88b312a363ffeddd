"""Workflows (issue 19): plugin reliability per phase, pattern success ratio and mean duration; the alert on a
plugin whose failure ratio in a phase jumps above its own day.

Phase durations need no rule: the dashboards and the report read their quantiles off the histogram."""

from __future__ import annotations

from mixin.names import (
    ERROR_TYPE,
    PATTERN_DUR,
    PATTERN_OUTCOME,
    PHASE,
    TOOL,
    TOOL_DUR,
    WORKFLOW_PATTERN,
)
from mixin.rules.rule import (
    Group,
    Rule,
    Thresholds,
    alert,
    pct,
    queried_percentage,
    record,
    value_of,
    window_groups,
)
from mixin.scope import Scope, eq, ne

PHASE_WINDOWS = ("5m", "1h", "1d")
PATTERN_WINDOWS = ("1h", "1d", "7d")
_PHASE_COMMENT = "Per plugin (tool) and workflow phase over {w}: executions, errors and the error ratio."
_PATTERN_COMMENT = "Per workflow pattern over {w}: executions, success ratio and mean duration."

#: The recorded error ratio of a plugin in a phase, by window.
PLUGIN_ERROR_RATIO = "tool_phase:gen_ai_execute_tool_errors_per_executions:ratio_rate{w}"
PLUGIN_CALLS = f"tool_phase:{TOOL_DUR}_count:rate{{w}}"
#: The recorded success ratio of a workflow pattern, by window.
#: The pattern metric's name without its unit: the stem of the derived series (successes).
PATTERN_STEM = PATTERN_DUR.removesuffix("_duration_seconds")
PATTERN_SUCCESSES = f"pattern:{PATTERN_STEM}_successes:rate{{w}}"
PATTERN_SUCCESS_RATIO = f"pattern:{PATTERN_STEM}_successes_per_executions:ratio_rate{{w}}"


def _phase_rules(w: str, s: Scope) -> list[Rule]:
    calls = PLUGIN_CALLS.format(w=w)
    errors = f"tool_phase:gen_ai_execute_tool_errors:rate{w}"
    in_phase = ne(PHASE, "")  # calls outside any phase have no phase label
    return [
        record(calls, f"sum by ({s.by(TOOL, PHASE)}) (rate({s.series(f'{TOOL_DUR}_count', in_phase)}[{w}]))"),
        record(
            errors,
            f'sum by ({s.by(TOOL, PHASE)}) (rate({s.series(f"{TOOL_DUR}_count", in_phase, ne(ERROR_TYPE, ""))}[{w}]))'
            f"\nor\n0 * {calls}",
        ),
        record(PLUGIN_ERROR_RATIO.format(w=w), f"{errors}\n/\n({calls} > 0)"),
    ]


def _pattern_rules(w: str, s: Scope) -> list[Rule]:
    runs = f"pattern:{PATTERN_DUR}_count:rate{w}"
    successes = PATTERN_SUCCESSES.format(w=w)
    count = f"{PATTERN_DUR}_count"
    return [
        record(runs, f"sum by ({s.by(WORKFLOW_PATTERN)}) (rate({s.series(count)}[{w}]))"),
        record(
            successes,
            f'sum by ({s.by(WORKFLOW_PATTERN)}) (rate({s.series(count, eq(PATTERN_OUTCOME, "success"))}[{w}]))'
            f"\nor\n0 * {runs}",
        ),
        record(PATTERN_SUCCESS_RATIO.format(w=w), f"{successes}\n/\n({runs} > 0)"),
        record(f"pattern:{PATTERN_DUR}_sum:rate{w}",
               f"sum by ({s.by(WORKFLOW_PATTERN)}) (rate({s.series(f'{PATTERN_DUR}_sum')}[{w}]))"),
        record(f"pattern:{PATTERN_DUR}:mean{w}", f"pattern:{PATTERN_DUR}_sum:rate{w}\n/\n({runs} > 0)"),
    ]


def recording_groups(s: Scope) -> list[Group]:
    return [*window_groups("plugins-phases", PHASE_WINDOWS, _PHASE_COMMENT, lambda w: _phase_rules(w, s)),
            *window_groups("patterns", PATTERN_WINDOWS, _PATTERN_COMMENT, lambda w: _pattern_rules(w, s))]


def _queried(rule: str, s: Scope) -> str:
    """The alert template printing ``rule``'s value for the alert's own plugin and phase, as a percentage."""
    return queried_percentage(rule, (*s.labels, TOOL, PHASE))


def alert_group(t: Thresholds, s: Scope) -> Group:
    hour, day = PLUGIN_ERROR_RATIO.format(w="1h"), PLUGIN_ERROR_RATIO.format(w="1d")
    return Group(
        "agent-otel-workflows-alerts",
        "A plugin whose failure ratio in one workflow phase jumps above its own last day, with a minimum volume:\n"
        "a plugin that always fails this often is a known cost, one that starts failing is news.",
        [
            alert(
                t,
                "AgentOtelPluginFailureRatioJump",
                f"{hour}\n- {day}\n> {t['plugin_failure_ratio_jump']}\n"
                f"and on ({s.by(TOOL, PHASE)})\n"
                f"{PLUGIN_CALLS.format(w='1h')} * 3600 >= {t['plugin_phase_min_calls_1h']}",
                "15m",
                "warning",
                "A plugin fails far more often in a workflow phase than over the last day.",
                # $value (the jump) moves with every evaluation of the day's ratio; the hour's ratio is what the
                # on-call person compares with the plugin's normal, so the description queries it.
                f"Plugin {value_of(TOOL)} failed in {_queried(hour, s)} of its executions in phase {value_of(PHASE)} "
                f"over the last hour, more than {pct(t['plugin_failure_ratio_jump'])} above its ratio over the last "
                f"day (at least {t['plugin_phase_min_calls_1h']} executions an hour).",
            ),
        ],
    )
