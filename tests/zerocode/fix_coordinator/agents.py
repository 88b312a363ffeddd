"""Agents whose results say success in their own ways."""

from __future__ import annotations

from dataclasses import dataclass

from .llm import ProviderChain


@dataclass
class RunResult:
    state: str  # "success", "max_steps_error", ...
    output: str = ""
    error: str = ""


class FixAgent:
    """Returns the list of fixes it made as `success`: an empty list means it failed."""

    def __init__(self, chain: ProviderChain) -> None:
        self.chain = chain

    def fix(self, issues: list[str]) -> dict[str, object]:
        fixes = [self.chain.generate(issue) for issue in issues if issue != "unfixable"]
        return {"success": fixes, "summary": f"{len(fixes)} fixes"}


class StepAgent:
    """Runs up to max_steps and reports how it ended as a state."""

    def __init__(self, max_steps: int) -> None:
        self.max_steps = max_steps

    def run(self, steps_needed: int) -> RunResult:
        if steps_needed > self.max_steps:
            return RunResult("max_steps_error", error=f"gave up after {self.max_steps} steps")
        return RunResult("success", output="done")
