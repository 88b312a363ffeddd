"""A small meta-orchestrator, written without agent-otel: a workflow follows a named pattern and runs in
phases; each phase runs numbered steps, each step runs a plugin; a designer agent drafts the plan.

Instrumented two ways by the tests: by config (``orchestrator.toml``, no code change) and by decorators
(``decorated.py``, the same classes with agent-otel's decorators applied).
"""

from __future__ import annotations

from dataclasses import dataclass, field


class PluginError(Exception):
    pass


@dataclass(frozen=True)
class Workflow:
    id: str
    kind: str
    pattern: str
    #: (phase, the plugins its steps run, in order)
    phases: tuple[tuple[str, tuple[str, ...]], ...]


@dataclass
class StepResult:
    plugin: str
    files_created: list[str] = field(default_factory=list)


@dataclass
class PhaseResult:
    success: bool
    steps: list[StepResult]


@dataclass
class WorkflowResult:
    success: bool
    phases: dict[str, PhaseResult]


class Plugin:
    """A plugin creates files; one named in ``failing`` raises."""

    def __init__(self, name: str, files: int = 0, failing: bool = False) -> None:
        self.name = name
        self.files = files
        self.failing = failing

    def execute(self, step: int, payload: str) -> StepResult:
        if self.failing:
            raise PluginError(f"{self.name} failed at step {step} of {payload}")
        return StepResult(self.name, [f"{payload}/{self.name}-{step}-{n}.py" for n in range(self.files)])


class Designer:
    """An agent that drafts the plan of a workflow, following the workflow's pattern."""

    name = "designer"

    def design(self, workflow: Workflow, pattern: str) -> dict[str, object]:
        return {"success": True, "files_created": [f"{workflow.id}/DESIGN.md"], "pattern": pattern}


class Orchestrator:
    plugin_type: type[Plugin] = Plugin
    designer_type: type[Designer] = Designer

    def __init__(self, plugins: dict[str, dict[str, object]]) -> None:
        self.plugins = {name: self.plugin_type(name, **options) for name, options in plugins.items()}  # type: ignore[arg-type]
        self.designer = self.designer_type()

    def run(self, workflow: Workflow) -> WorkflowResult:
        """Phases in order; a failed phase ends the workflow."""
        results: dict[str, PhaseResult] = {}
        for phase, plugins in workflow.phases:
            result = results[phase] = self.run_phase(workflow, phase, plugins)
            if not result.success:
                return WorkflowResult(False, results)
        return WorkflowResult(True, results)

    def run_phase(self, workflow: Workflow, phase: str, plugins: tuple[str, ...]) -> PhaseResult:
        """The design phase starts with the designer agent; then each step runs its plugin."""
        if phase == "design":
            self.designer.design(workflow, workflow.pattern)
        steps = []
        for number, name in enumerate(plugins, start=1):
            try:
                steps.append(self.plugins[name].execute(number, workflow.id))
            except PluginError:
                return PhaseResult(False, steps)
        return PhaseResult(True, steps)
