"""Canned Prometheus answers for the report's agent-version queries (``agent_otel._ops.report.versions``):
coder ran v1, v2 and now v3 (evolution runs put v2 and v3 in place), planner only p1. Listed before any
answer whose needles the version queries also contain (the coverage's ``timestamp(``, the agent series)."""

from __future__ import annotations

from agent_otel._ops.report import versions as v

NOW = 1_700_000_000.0
CODER, PLANNER = {v.AGENT: "coder"}, {v.AGENT: "planner"}

Answers = list[tuple[tuple[str, ...], list[tuple[dict[str, str], float]]]]


def version_answers() -> Answers:
    def at(agent: dict[str, str], version: str) -> dict[str, str]:
        return {**agent, v.VERSION: version}

    return [
        ((f"timestamp(sum by ({v.AGENT}, {v.VERSION})",),
         [(at(CODER, "v2"), NOW - 3600), (at(CODER, "v3"), NOW - 60), (at(CODER, "v1"), NOW - 7200),
          (at(PLANNER, "p1"), NOW - 120)]),
        ((v.INTRODUCED,), [({**at(CODER, "v2"), v.PREVIOUS: "v1"}, NOW - 7000),
                           ({**at(CODER, "v3"), v.PREVIOUS: "v2"}, NOW - 3500)]),
        ((f"{v.AGENT_DUR}_count", 'agent_outcome="success"', v.VERSION),
         [(at(CODER, "v2"), 89.6), (at(CODER, "v3"), 30.2), (at(PLANNER, "p1"), 5)]),
        ((f"{v.AGENT_DUR}_count", v.VERSION),
         [(at(CODER, "v1"), 10), (at(CODER, "v2"), 100.4), (at(CODER, "v3"), 60), (at(PLANNER, "p1"), 5)]),
        ((f"{v.AGENT_DUR}_sum", v.VERSION), [(at(CODER, "v2"), 200.8), (at(CODER, "v3"), 240), (at(PLANNER, "p1"), 1)]),
        ((v.COST, v.VERSION), [(at(CODER, "v2"), 1.004), (at(CODER, "v3"), 1.2)]),
    ]
