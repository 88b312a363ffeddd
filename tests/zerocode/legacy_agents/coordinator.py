from __future__ import annotations

import asyncio
import importlib

from legacy_agents.agents import BaseAgent, SyntaxAgent, TypeAgent
from legacy_agents.issues import FixResult, Issue, IssueType
from legacy_agents.llm import ProviderChain


class Coordinator:
    def __init__(self, llm: ProviderChain) -> None:
        self.llm = llm

    def agent_for(self, issue: Issue) -> BaseAgent:
        if issue.type is IssueType.SYNTAX:
            return SyntaxAgent(self.llm)
        if issue.type is IssueType.TYPE:
            return TypeAgent(self.llm)
        security = importlib.import_module("legacy_agents.security")  # a plugin agent, loaded late
        return security.SecurityAgent(self.llm)

    async def handle_all(self, issues: list[Issue]) -> list[FixResult]:
        return list(await asyncio.gather(*(self.agent_for(issue).solve(issue) for issue in issues)))
