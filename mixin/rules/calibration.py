"""Confidence calibration: per agent and confidence band, how often the agent actually succeeded; per agent,
the mean stated confidence and the mean evaluation score (agent.evaluation.score), side by side.

The bands are :data:`agent_otel.semconv.CONFIDENCE_BANDS`, the definition ``agent-otel report`` uses too.
"""

from __future__ import annotations

from agent_otel import semconv as sc
from mixin.names import AGENT, CONFIDENCE, EVAL_NAME, EVAL_SCORE, OUTCOME
from mixin.rules.rule import Group, Rule, record, window_groups
from mixin.scope import Scope, eq

WINDOWS = ("1h", "1d", "7d")


def check_contract() -> None:
    """The band bounds must be bucket bounds of the confidence histogram, or no rule can count a band; the
    workload of mixin/rules/workload.yaml and the hand-written alert tests are written for these bounds."""
    bounds = set(sc.CONFIDENCE_BUCKETS)
    if sc.CONFIDENCE_BAND_EDGES != (0.5, 0.8) or not set(sc.CONFIDENCE_BAND_BOUNDS) <= bounds:
        raise SystemExit(
            f"semconv.CONFIDENCE_BAND_EDGES {sc.CONFIDENCE_BAND_EDGES} / CONFIDENCE_BAND_BOUNDS "
            f"{sc.CONFIDENCE_BAND_BOUNDS} are not the bucket bounds just below 0.5 and 0.8 that the workload of "
            "mixin/rules/workload.yaml and the hand-written alert tests are written for"
        )


def _band_invocations(w: str, s: Scope, lower: str | None, upper: str) -> str:
    """Invocations per agent and outcome in one band: the upper cumulative bucket minus the lower one."""

    def cumulative(le: str) -> str:
        return f'sum by ({s.by(AGENT, OUTCOME)}) (increase({s.series(f"{CONFIDENCE}_bucket", eq("le", le))}[{w}]))'

    return cumulative(upper) if lower is None else f"{cumulative(upper)}\n-\n{cumulative(lower)}"


def _rules(w: str, s: Scope) -> list[Rule]:
    per_outcome = f"agent_outcome_band:{CONFIDENCE}_invocations:increase{w}"
    total = f"agent_band:{CONFIDENCE}_invocations:increase{w}"
    successes = f"agent_band:{CONFIDENCE}_successes:increase{w}"
    return [
        *(
            record(per_outcome, _band_invocations(w, s, lower, upper), {"confidence_band": band})
            for band, lower, upper in sc.CONFIDENCE_BANDS
        ),
        record(total, f"sum without ({OUTCOME}) ({per_outcome})"),
        record(successes, f'sum without ({OUTCOME}) ({per_outcome}{{{OUTCOME}="success"}})\nor\n0 * {total}'),
        record(
            f"agent_band:{CONFIDENCE}_successes_per_invocations:ratio_increase{w}",
            f"{successes}\n/\n({total} > 0)",
        ),
        *(_means(w, s) if w == "1h" else []),
    ]


def _means(w: str, s: Scope) -> list[Rule]:
    """What an agent claims (its mean stated confidence) next to what evaluators measured (the mean score
    of each evaluation of it): the score feeds the calibration view."""

    def mean(histogram: str, *labels: str) -> str:
        def rated(suffix: str) -> str:
            return f"sum by ({s.by(*labels)}) (rate({s.series(f'{histogram}_{suffix}')}[{w}]))"

        return f"{rated('sum')}\n/\n({rated('count')} > 0)"

    return [
        record(f"agent:{CONFIDENCE}:mean{w}", mean(CONFIDENCE, AGENT)),
        record(f"agent_evaluation:{EVAL_SCORE}:mean{w}", mean(EVAL_SCORE, AGENT, EVAL_NAME)),
    ]


def recording_groups(s: Scope) -> list[Group]:
    low, high = sc.CONFIDENCE_BAND_EDGES
    below_low, below_high = (repr(b) for b in sc.CONFIDENCE_BAND_BOUNDS)
    comment = (
        "Confidence calibration over {w}: invocations and actual success ratio per agent and band\n"
        f"(low < {low} <= medium < {high} <= high). Bands come from the cumulative buckets le={below_low},\n"
        f"le={below_high} and le=+Inf: the largest doubles below {low} and {high}, since a bucket includes its bound."
    )
    return window_groups("calibration", WINDOWS, comment, lambda w: _rules(w, s))
