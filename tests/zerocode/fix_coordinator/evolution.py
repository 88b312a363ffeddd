"""An evolution engine that keeps its KPIs on itself and decides inside the run."""

from __future__ import annotations


class Engine:
    def __init__(self, agent_name: str) -> None:
        self.agent_name = agent_name
        self.kpis = {"accuracy": 0.70, "latency_s": 2.0}
        self.strategy = "none"
        self.generation = 0
        self._checkpoint = dict(self.kpis)

    def restore_checkpoint(self) -> None:
        self.kpis = dict(self._checkpoint)

    def evolve(self, candidate_accuracy: float) -> dict[str, object]:
        self.generation += 1
        self._checkpoint = dict(self.kpis)
        self.strategy = "prompt_rewrite" if candidate_accuracy > 0.5 else "reset"
        if candidate_accuracy < 0:
            return {"ok": False, "error": "candidate evaluation failed"}
        before = self.kpis["accuracy"]
        self.kpis = {"accuracy": candidate_accuracy, "latency_s": 1.5}
        if candidate_accuracy < before:
            self.restore_checkpoint()  # regressed: back to the checkpoint
            return {"improvements": {}, "ok": True}
        return {"improvements": {"accuracy": round(candidate_accuracy - before, 6)}, "ok": True}
