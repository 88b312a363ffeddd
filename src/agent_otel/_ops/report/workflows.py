"""The report's workflow sections (issue 19): phases by job type, plugin reliability per phase, and the
success ratio and mean duration of each workflow pattern, over the report's window."""

from __future__ import annotations

from typing import Any

from agent_otel import semconv as sc
from agent_otel._ops.report.queries import Window, _ratio, _whole, count_expr, p95_expr

label = sc.prometheus_label
JOB_TYPE = label(sc.JOB_TYPE)
PHASE = label(sc.WORKFLOW_PHASE)
PHASE_OUTCOME = label(sc.WORKFLOW_PHASE_OUTCOME)
PATTERN = label(sc.WORKFLOW_PATTERN)
PATTERN_OUTCOME = label(sc.WORKFLOW_PATTERN_OUTCOME)
TOOL = label(sc.GEN_AI_TOOL_NAME)
ERROR_TYPE = label(sc.ERROR_TYPE)
PHASE_DUR = sc.PHASE_DURATION.prometheus
PATTERN_DUR = sc.PATTERN_DURATION.prometheus
TOOL_DUR = sc.TOOL_DURATION.prometheus
_SUCCESS = sc.Outcome.SUCCESS.value

#: (key, header, format) per section, in output order (see render.COLUMNS).
COLUMNS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "phases": (("job_type", "JOB TYPE", "text"), ("phase", "PHASE", "text"), ("runs", "RUNS", "count"),
               ("failures", "FAILED", "count"), ("failure_ratio", "FAILURE RATIO", "ratio"),
               ("avg_duration_s", "AVG DURATION", "seconds"), ("p95_duration_s", "P95 DURATION", "seconds")),
    "plugins_by_phase": (("phase", "PHASE", "text"), ("plugin", "PLUGIN", "text"), ("calls", "CALLS", "count"),
                         ("errors", "ERRORS", "count"), ("error_ratio", "ERROR RATIO", "ratio"),
                         ("p95_latency_s", "P95 LATENCY", "seconds")),
    "workflow_patterns": (("pattern", "PATTERN", "text"), ("executions", "EXECUTIONS", "count"),
                          ("successes", "SUCCEEDED", "count"), ("success_ratio", "SUCCESS", "ratio"),
                          ("avg_duration_s", "AVG DURATION", "seconds")),
}
TITLES = {
    "phases": "Workflow phases by job type (failed: ended in failure or error)",
    "plugins_by_phase": "Plugins by workflow phase (errors: executions that raised)",
    "workflow_patterns": "Workflow patterns (executions of a job or agent that names the pattern)",
}


def queries(selector: str, window: Window) -> dict[str, tuple[str, tuple[str, ...]]]:
    """The instant queries of the sections, by name: (expression, the labels of its result)."""
    jp, tp, pattern = (JOB_TYPE, PHASE), (PHASE, TOOL), (PATTERN,)
    in_phase = f'{PHASE}!=""'

    def increase(series: str, by: tuple[str, ...], *extra: str) -> tuple[str, tuple[str, ...]]:
        return count_expr(series, by, selector, window, *extra), by

    return {
        "phase_runs": increase(f"{PHASE_DUR}_count", jp),
        "phase_failures": increase(f"{PHASE_DUR}_count", jp, f'{PHASE_OUTCOME}!="{_SUCCESS}"'),
        "phase_seconds": increase(f"{PHASE_DUR}_sum", jp),
        "phase_p95": (p95_expr(PHASE_DUR, jp, selector, window.name), jp),
        "plugin_calls": increase(f"{TOOL_DUR}_count", tp, in_phase),
        "plugin_errors": increase(f"{TOOL_DUR}_count", tp, in_phase, f'{ERROR_TYPE}!=""'),
        "plugin_p95": (p95_expr(TOOL_DUR, tp, f"{selector},{in_phase}" if selector else in_phase, window.name), tp),
        "pattern_runs": increase(f"{PATTERN_DUR}_count", pattern),
        "pattern_successes": increase(f"{PATTERN_DUR}_count", pattern, f'{PATTERN_OUTCOME}="{_SUCCESS}"'),
        "pattern_seconds": increase(f"{PATTERN_DUR}_sum", pattern),
    }


def sections(r: dict[str, dict[tuple[str, ...], float]]) -> dict[str, list[dict[str, Any]]]:
    """The sections' rows from the answers to :func:`queries`; counts whole, ratios of the whole counts."""
    phases = []
    for key, runs in sorted(r["phase_runs"].items()):
        whole_runs, failures = _whole(runs), _whole(r["phase_failures"].get(key, 0.0))
        phases.append({"job_type": key[0], "phase": key[1], "runs": whole_runs, "failures": failures,
                       "failure_ratio": _ratio(failures, whole_runs),
                       "avg_duration_s": _ratio(r["phase_seconds"].get(key), runs),
                       "p95_duration_s": r["phase_p95"].get(key)})
    plugins = []
    for key, calls in sorted(r["plugin_calls"].items()):
        whole_calls, errors = _whole(calls), _whole(r["plugin_errors"].get(key, 0.0))
        plugins.append({"phase": key[0], "plugin": key[1], "calls": whole_calls, "errors": errors,
                        "error_ratio": _ratio(errors, whole_calls), "p95_latency_s": r["plugin_p95"].get(key)})
    patterns = []
    for key, runs in sorted(r["pattern_runs"].items()):
        whole_runs, successes = _whole(runs), _whole(r["pattern_successes"].get(key, 0.0))
        patterns.append({"pattern": key[0], "executions": whole_runs, "successes": successes,
                         "success_ratio": _ratio(successes, whole_runs),
                         "avg_duration_s": _ratio(r["pattern_seconds"].get(key), runs)})
    return {"phases": phases, "plugins_by_phase": plugins, "workflow_patterns": patterns}
