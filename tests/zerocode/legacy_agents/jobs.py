from __future__ import annotations

import asyncio
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from legacy_agents.coordinator import Coordinator
from legacy_agents.evolution import EvolutionOrchestrator
from legacy_agents.issues import Issue, IssueType
from legacy_agents.llm import OpenAIStyleClient, ProviderChain
from legacy_agents.plugins import REGISTRY

ISSUES = [Issue("I-1", IssueType.SYNTAX, "app/main.py"), Issue("I-2", IssueType.TYPE, "app/models.py"),
          Issue("I-3", IssueType.SECURITY, "app/auth.py")]


@dataclass
class JobReport:
    job_id: str
    fixed: int
    total: int
    lint: list[str]
    formatted: str
    rolled_back: list[str]


class Job:
    def __init__(self, job_id: str, kind: str, llm_url: str, issues: list[Issue] | None = None) -> None:
        self.job_id = job_id
        self.kind = kind
        self.issues = list(issues or ISSUES)
        self.llm = ProviderChain([OpenAIStyleClient("flaky", llm_url + "/flaky", "flaky-model"),
                                  OpenAIStyleClient("stable", llm_url + "/stable", "stable-model")])

    def run(self) -> JobReport:
        results = asyncio.run(Coordinator(self.llm).handle_all(self.issues))
        files = [issue.file for issue in self.issues[:2]]
        with ThreadPoolExecutor(max_workers=2) as pool:
            lint = list(pool.map(lambda path: REGISTRY.run("lint", path), files))
        formatted = subprocess.run([sys.executable, "-m", "legacy_agents.worker", "format", files[0]],
                                   check=True, capture_output=True, text=True).stdout.strip()
        orchestrator = EvolutionOrchestrator()
        reports = [orchestrator.evolve("SyntaxAgent", "few_shot"), orchestrator.evolve("TypeAgent", "prompt_rewrite")]
        return JobReport(self.job_id, sum(r.success for r in results), len(results), lint, formatted,
                         [r.agent for r in reports if r.rolled_back])
