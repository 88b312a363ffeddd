"""Cost per job and runaway agent loops: the alerts on a job type whose cost per job jumps and on an agent
invocation that makes an unusual number of model or tool calls. Both read the raw histograms (a per-job cost
histogram and the per-invocation call counts of the GenAI conventions), so they add no recording rule."""

from __future__ import annotations

from agent_otel import semconv as sc
from mixin.rules.rule import Group, Rule, Thresholds, alert, value_of
from mixin.scope import Scope

JOB_COST = sc.JOB_COST.prometheus
INFERENCE_CALLS = sc.AGENT_INFERENCE_CALLS.prometheus
TOOL_CALLS = sc.AGENT_TOOL_CALLS.prometheus
JOB_TYPE = sc.prometheus_label(sc.JOB_TYPE)
AGENT = sc.prometheus_label(sc.GEN_AI_AGENT_NAME)
#: The window a runaway invocation is reported over: it fires once `for` has passed and clears after it.
RUNAWAY_WINDOW = "30m"


def check_thresholds(t: Thresholds) -> None:
    """A runaway invocation is counted above a bucket bound, so the threshold must be one."""
    if t["agent_runaway_calls_per_invocation"] not in sc.CALL_COUNT_BUCKETS:
        raise SystemExit("agent_runaway_calls_per_invocation must be one of semconv.CALL_COUNT_BUCKETS")


def _mean_cost(s: Scope, window: str) -> str:
    by = s.by(JOB_TYPE)
    return (f"sum by ({by}) (rate({s.series(f'{JOB_COST}_sum')}[{window}]))\n  /\n"
            f"  (sum by ({by}) (rate({s.series(f'{JOB_COST}_count')}[{window}])) > 0)")


def _over_threshold(s: Scope, histogram: str, threshold: int) -> str:
    """Invocations of each agent over the window whose count is above ``threshold`` (a bucket bound; the
    ``le`` matcher takes both spellings of a whole number, ``32`` and ``32.0``)."""
    by, w = s.by(AGENT), RUNAWAY_WINDOW
    above = s.series(f"{histogram}_bucket", f'le=~"{threshold}|{threshold}.0"')
    return (f"sum by ({by}) (increase({s.series(f'{histogram}_count')}[{w}]))\n  -\n"
            f"  sum by ({by}) (increase({above}[{w}]))")


def _job_cost_jump(t: Thresholds, s: Scope) -> Rule:
    factor, runs = t["job_cost_jump_factor"], t["job_min_runs_1h"]
    by = s.by(JOB_TYPE)
    return alert(
        t,
        "AgentOtelJobCostPerJobJump",
        f"(\n  {_mean_cost(s, '1h')}\n)\n> {factor} * (\n  {_mean_cost(s, '1d')}\n)\n"
        f"and on ({by})\nsum by ({by}) (increase({s.series(f'{JOB_COST}_count')}[1h])) >= {runs}",
        "15m",
        "warning",
        "Jobs of one type cost far more each than over the last day.",
        f"{value_of(JOB_TYPE)} jobs cost {{{{ $value | printf \"%.4f\" }}}} USD each over the last hour, more than "
        f"{factor} times their mean over the last day (at least {runs} jobs an hour).",
    )


def _runaway(t: Thresholds, s: Scope) -> Rule:
    threshold = t["agent_runaway_calls_per_invocation"]
    return alert(
        t,
        "AgentOtelAgentRunawayLoop",
        f"(\n  {_over_threshold(s, INFERENCE_CALLS, threshold)}\n)\n> 0\nor\n"
        f"(\n  {_over_threshold(s, TOOL_CALLS, threshold)}\n)\n> 0",
        "1m",
        "warning",
        "An agent invocation made an unusual number of model or tool calls.",
        f"Agent {value_of(AGENT)} made more than {threshold} model calls or more than {threshold} tool calls in "
        f"{{{{ $value | printf \"%.0f\" }}}} invocation(s) over the last {RUNAWAY_WINDOW} (threshold "
        f"{threshold} calls per invocation).",
    )


def alert_group(t: Thresholds, s: Scope) -> Group:
    return Group(
        "agent-otel-cost-alerts",
        "Cost per job (per job type, against its own last day) and runaway agent loops (one invocation making\n"
        "more model or tool calls than a threshold).",
        [_job_cost_jump(t, s), _runaway(t, s)],
    )
