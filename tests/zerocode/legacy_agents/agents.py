"""Sub-agents. The base class reviews with a streamed completion; subclasses override solve()."""

from __future__ import annotations

import asyncio

from legacy_agents.issues import FixResult, Issue
from legacy_agents.llm import ProviderChain
from legacy_agents.tools_impl import grep_repo  # a name imported by value


class BaseAgent:
    def __init__(self, llm: ProviderChain) -> None:
        self.llm = llm

    async def solve(self, issue: Issue) -> FixResult:
        review = "".join(self.llm.stream(f"review {issue.file}"))
        await asyncio.sleep(0)
        return FixResult(success=bool(review), confidence=0.8, fixes_applied=1, files_modified=[issue.file],
                         remaining_issues=0)


class SyntaxAgent(BaseAgent):
    async def solve(self, issue: Issue) -> FixResult:
        grep_repo(issue.file)
        await asyncio.to_thread(self.llm.complete, f"fix the syntax of {issue.file}")
        return FixResult(success=True, confidence=0.9, fixes_applied=2, files_modified=[issue.file, "setup.cfg"],
                         remaining_issues=0)


class TypeAgent(BaseAgent):
    def solve(self, issue: Issue):  # a sync method returning a coroutine
        return self._solve(issue)

    async def _solve(self, issue: Issue) -> FixResult:
        self.llm.complete(f"add types to {issue.file}")
        return FixResult(success=False, confidence=0.4, fixes_applied=0, files_modified=[], remaining_issues=3)
