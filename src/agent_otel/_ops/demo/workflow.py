"""The demo's meta-orchestrator: workflows that follow a named pattern and run in phases, each phase a few
numbered steps that each run a plugin; the design phase also asks the fleet's planner agent.

Like the fleet, it knows nothing about agent-otel: ``agent-otel.toml`` instruments it (``[[job]]`` with a
``pattern``, ``[[phase]]``, and its plugins as ``[[tool]]`` entries). The numbers make the Workflows
dashboard tell a story: ``run_pytest`` fails 8 % of its runs (a failed step fails its phase and the
workflow), ``web_search`` 5 %, so the ``tdd`` pattern (no research) succeeds more often than
``research-first``. Each plugin fails at a steady rate, so no plugin's failure ratio jumps.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol


class PluginError(Exception):
    pass


#: Each pattern's phases, and the plugins their steps run, in order.
PATTERNS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "research-first": (("research", ("web_search", "read_docs")), ("design", ("draft_spec",)),
                       ("implement", ("write_code", "format_code")), ("test", ("run_pytest",))),
    "tdd": (("design", ("draft_spec",)), ("test", ("write_tests",)), ("implement", ("write_code", "format_code")),
            ("test", ("run_pytest",))),
}
PLUGIN_FAILURE_RATE = {"web_search": 0.05, "read_docs": 0.0, "draft_spec": 0.0, "write_code": 0.02,
                       "format_code": 0.0, "write_tests": 0.0, "run_pytest": 0.08}
#: Files each plugin creates when it succeeds.
PLUGIN_FILES = {"draft_spec": 1, "write_code": 3, "write_tests": 2}


@dataclass(frozen=True)
class Workflow:
    id: str
    pattern: str
    description: str


@dataclass
class StepResult:
    plugin: str
    files_created: list[str] = field(default_factory=list)


@dataclass
class PhaseResult:
    success: bool
    steps: list[StepResult]


class Solver(Protocol):
    """The fleet's agent the design phase asks (``fleet.Agent``)."""

    def solve(self, task: Any) -> Any: ...


class Plugin:
    def __init__(self, name: str, seed: int) -> None:
        self.name = name
        self._rng = random.Random(f"{seed}:plugins:{name}")
        self._lock = threading.Lock()

    def execute(self, step: int, workflow: Workflow) -> StepResult:
        with self._lock:
            failed = self._rng.random() < PLUGIN_FAILURE_RATE[self.name]
            pause = self._rng.uniform(0.002, 0.01)
        time.sleep(pause)
        if failed:
            raise PluginError(f"{self.name} failed at step {step} of {workflow.id}")
        return StepResult(self.name, [f"{workflow.id}/{self.name}-{n}" for n in range(PLUGIN_FILES.get(self.name, 0))])


class Orchestrator:
    def __init__(self, seed: int, planner: Solver, task_type: type) -> None:
        self.plugins = {name: Plugin(name, seed) for name in PLUGIN_FAILURE_RATE}
        self.planner = planner
        self.task_type = task_type  # fleet.Task, passed in to keep this module free of the fleet's
        self._rng = random.Random(f"{seed}:workflows")
        self._lock = threading.Lock()
        self.started = 0

    def next_workflow(self) -> Workflow:
        with self._lock:
            self.started += 1
            pattern = self._rng.choice(sorted(PATTERNS))
            return Workflow(f"wf-{self.started:06d}", pattern, f"workflow {self.started}")

    def run(self, workflow: Workflow) -> dict[str, object]:
        """Phases in order; a failed phase ends the workflow (``success`` false)."""
        for phase, plugins in PATTERNS[workflow.pattern]:
            if not self.run_phase(workflow, phase, plugins).success:
                return {"success": False, "failed_phase": phase}
        return {"success": True}

    def run_phase(self, workflow: Workflow, phase: str, plugins: tuple[str, ...]) -> PhaseResult:
        if phase == "design":
            try:
                self.planner.solve(self.task_type("design", workflow.description))
            except Exception:  # the planner's provider failed: the design goes on without it
                pass
        steps = []
        for number, name in enumerate(plugins, start=1):
            try:
                steps.append(self.plugins[name].execute(number, workflow))
            except PluginError:
                return PhaseResult(False, steps)
        return PhaseResult(True, steps)
