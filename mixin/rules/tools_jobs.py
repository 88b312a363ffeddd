"""Tools and jobs: tool reliability, job throughput and job failure ratio; the alerts on jobs that fail and
tools that raise errors too often."""

from __future__ import annotations

from mixin.names import ERROR_TYPE, JOB_DUR, JOB_OUTCOME, JOB_TYPE, TOOL, TOOL_DUR
from mixin.rules.rule import (
    Group,
    LowTraffic,
    Rule,
    Thresholds,
    alert,
    low_traffic_alert,
    pct,
    ratio_above,
    record,
    value_of,
    window_groups,
)
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


def alert_group(t: Thresholds, s: Scope) -> Group:
    return Group(
        "agent-otel-tools-jobs-alerts",
        "Jobs (workflow runs) that end in failure and tools that raise errors, per job type and tool, with a\n"
        "minimum volume: a ratio of a few runs is noise.",
        [
            alert(
                t,
                "AgentOtelJobFailureRatioHigh",
                ratio_above("job_type:job_failures_per_jobs:ratio_rate1h", t["job_failure_ratio"], s.by(JOB_TYPE),
                            f"job_type:{JOB_DUR}_count:rate1h", t["job_min_runs_1h"]),
                "15m",
                "warning",
                "Jobs of one type fail too often.",
                f"{{{{ $value | humanizePercentage }}}} of {value_of(JOB_TYPE)} jobs ended in failure or error over "
                f"the last hour (threshold {pct(t['job_failure_ratio'])}, at least {t['job_min_runs_1h']} jobs "
                "an hour).",
            ),
            low_traffic_alert(
                t, "AgentOtelJobFailureRatioHigh",
                LowTraffic("1d", f"job_type:job_failures_per_jobs:ratio_rate1d > {t['job_failure_ratio']}",
                           s.by(JOB_TYPE), f"job_type:{JOB_DUR}_count:rate1d * 86400", t["job_min_runs_1d"],
                           f"job_type:{JOB_DUR}_count:rate1h * 3600", t["job_min_runs_1h"]),
                "Jobs of one type fail too often.",
                f"{{{{ $value | humanizePercentage }}}} of {value_of(JOB_TYPE)} jobs ended in failure or error over "
                f"the last day (threshold {pct(t['job_failure_ratio'])}; fewer than {t['job_min_runs_1h']} jobs an "
                f"hour on average, at least {t['job_min_runs_1d']} a day).",
            ),
            alert(
                t,
                "AgentOtelToolErrorRatioHigh",
                ratio_above("tool:gen_ai_execute_tool_errors_per_executions:ratio_rate1h", t["tool_error_ratio"],
                            s.by(TOOL), f"tool:{TOOL_DUR}_count:rate1h", t["tool_min_calls_1h"]),
                "15m",
                "warning",
                "A tool raises errors too often.",
                f"Tool {value_of(TOOL)} raised an error in {{{{ $value | humanizePercentage }}}} of its executions "
                f"over the last hour (threshold {pct(t['tool_error_ratio'])}, at least {t['tool_min_calls_1h']} "
                "executions an hour).",
            ),
            low_traffic_alert(
                t, "AgentOtelToolErrorRatioHigh",
                LowTraffic("1d",
                           f"tool:gen_ai_execute_tool_errors_per_executions:ratio_rate1d > {t['tool_error_ratio']}",
                           s.by(TOOL), f"tool:{TOOL_DUR}_count:rate1d * 86400", t["tool_min_calls_1d"],
                           f"tool:{TOOL_DUR}_count:rate1h * 3600", t["tool_min_calls_1h"]),
                "A tool raises errors too often.",
                f"Tool {value_of(TOOL)} raised an error in {{{{ $value | humanizePercentage }}}} of its executions "
                f"over the last day (threshold {pct(t['tool_error_ratio'])}; fewer than {t['tool_min_calls_1h']} "
                f"executions an hour on average, at least {t['tool_min_calls_1d']} a day).",
            ),
        ],
    )
