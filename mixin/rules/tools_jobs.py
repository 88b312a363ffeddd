"""Tools and jobs: tool reliability, job throughput and job failure ratio (recorded; no alerts yet)."""

from __future__ import annotations

from mixin.names import ERROR_TYPE, JOB_DUR, JOB_OUTCOME, JOB_TYPE, TOOL, TOOL_DUR
from mixin.rules.rule import Group, Rule, record, window_groups
from mixin.scope import Scope, ne

WINDOWS = ("5m", "1h", "1d")
_COMMENT = "Tool reliability and job throughput/failure ratio over {w}."


def _rules(w: str, s: Scope) -> list[Rule]:
    tool_calls = f"tool:{TOOL_DUR}_count:rate{w}"
    tool_errors = f"tool:gen_ai_execute_tool_errors:rate{w}"
    jobs = f"job_type:{JOB_DUR}_count:rate{w}"
    failures = f"job_type:job_failures:rate{w}"
    return [
        record(tool_calls, f"sum by ({s.by(TOOL)}) (rate({s.series(f'{TOOL_DUR}_count')}[{w}]))"),
        record(
            tool_errors,
            f'sum by ({s.by(TOOL)}) (rate({s.series(f"{TOOL_DUR}_count", ne(ERROR_TYPE, ""))}[{w}]))'
            f"\nor\n0 * {tool_calls}",
        ),
        record(
            f"tool:gen_ai_execute_tool_errors_per_executions:ratio_rate{w}",
            f"{tool_errors}\n/\n({tool_calls} > 0)",
        ),
        record(jobs, f"sum by ({s.by(JOB_TYPE)}) (rate({s.series(f'{JOB_DUR}_count')}[{w}]))"),
        # Jobs that ended in failure (reported) or error (raised).
        record(
            failures,
            f'sum by ({s.by(JOB_TYPE)}) (rate({s.series(f"{JOB_DUR}_count", ne(JOB_OUTCOME, "success"))}[{w}]))'
            f"\nor\n0 * {jobs}",
        ),
        record(f"job_type:job_failures_per_jobs:ratio_rate{w}", f"{failures}\n/\n({jobs} > 0)"),
    ]


def recording_groups(s: Scope) -> list[Group]:
    return window_groups("tools-jobs", WINDOWS, _COMMENT, lambda w: _rules(w, s))
