"""Loaded on demand by the coordinator, long after the program started."""

from __future__ import annotations

from legacy_agents.agents import BaseAgent
from legacy_agents.issues import FixResult, Issue


class SecurityAgent(BaseAgent):
    async def solve(self, issue: Issue) -> FixResult:
        result = await super().solve(issue)
        result.fixes_applied += 1
        return result
