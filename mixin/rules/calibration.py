"""Confidence calibration: per agent and confidence band, how often the agent actually succeeded.

The bands are :data:`agent_otel.semconv.CONFIDENCE_BANDS`, the definition ``agent-otel report`` uses too.
"""

from __future__ import annotations

from agent_otel import semconv as sc
from mixin.names import AGENT, CONFIDENCE, OUTCOME
from mixin.rules.rule import Group, Rule, record, window_groups
from mixin.scope import Scope, eq

WINDOWS = ("1h", "1d", "7d")


def check_contract() -> None:
    """The band edges must be bucket bounds of the confidence histogram, or no rule can count a band."""
    bounds = {str(b) for b in sc.CONFIDENCE_BUCKETS}
    edges = [str(e) for e in sc.CONFIDENCE_BAND_EDGES]
    if edges != ["0.5", "0.8"] or not set(edges) <= bounds:
        raise SystemExit(
            f"semconv.CONFIDENCE_BAND_EDGES {edges} are not the 0.5/0.8 bucket bounds the workload of "
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
    ]


def recording_groups(s: Scope) -> list[Group]:
    low, high = sc.CONFIDENCE_BAND_EDGES
    comment = (
        "Confidence calibration over {w}: invocations and actual success ratio per agent and band\n"
        f"(low < {low} <= medium < {high} <= high). Bands come from the cumulative le={low}/{high}/+Inf buckets."
    )
    return window_groups("calibration", WINDOWS, comment, lambda w: _rules(w, s))
