"""The orchestrator of ``orchestrator.py`` instrumented with agent-otel's decorators (the same options as
``orchestrator.toml``)."""

from __future__ import annotations

import agent_otel
from agent_otel import path
from tests.workflows import orchestrator


class Plugin(orchestrator.Plugin):
    execute = agent_otel.tool(path("self.name"), type="plugin", step=path("args.step"),
                              files_created=path("result.files_created"))(orchestrator.Plugin.execute)


class Designer(orchestrator.Designer):
    design = agent_otel.agent(path("self.name"), pattern=path("args.pattern"))(orchestrator.Designer.design)


class Orchestrator(orchestrator.Orchestrator):
    plugin_type = Plugin
    designer_type = Designer
    run = agent_otel.job(path("args.workflow.id"), type=path("args.workflow.kind"),
                         pattern=path("args.workflow.pattern"))(orchestrator.Orchestrator.run)
    run_phase = agent_otel.phase(path("args.phase"))(orchestrator.Orchestrator.run_phase)
