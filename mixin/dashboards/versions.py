"""The agent-version panels of the Evolution dashboard: success ratio and mean latency by agent version over
time, and the evolution runs as annotations on them."""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.models import dashboard as dashboard_models

from mixin.config import load_thresholds
from mixin.dashboards.common import (
    DATASOURCE,
    DEPLOYMENT_LEGEND,
    RAW,
    VARIABLES,
    per_deployment,
    query,
    row,
    steps,
    timeseries_panel,
)
from mixin.names import AGENT, EVO_ATTEMPTS, EVO_STATUS, EVO_TYPE, VERSION
from mixin.rules.versions import MEAN, SUCCESS_RATIO

_LEGEND = DEPLOYMENT_LEGEND + " {{gen_ai_agent_name}} {{gen_ai_agent_version}}"


def panels() -> list[Any]:
    """A row of two panels; the rules keep only series that carry a version."""
    limits = load_thresholds()
    s = f'{VARIABLES},{AGENT}=~"$agent"'
    return [
        row("Agent versions"),
        timeseries_panel(
            "Success ratio by agent version",
            "Share of each agent version's invocations that succeeded over the hour up to each point (the "
            "agent_version rules; agents given a `version`). A new line starts where an evolution run put a new "
            "version in place (the annotations mark the runs); AgentOtelVersionSuccessRegression compares it "
            "with the line it replaced.", "percentunit",
            [query(f"max by ({per_deployment(AGENT, VERSION)}) ({SUCCESS_RATIO}{{{s}}})", _LEGEND)],
        ).min(0).max(1).thresholds(steps(("red", None), ("green", 1 - limits["version_success_drop"]))).span(12),
        timeseries_panel(
            "Mean latency by agent version",
            "Mean duration of each agent version's invocations over the hour up to each point. "
            "AgentOtelVersionLatencyRegression fires when a new version takes "
            f"{limits['version_latency_ratio']} times the one it replaced.", "s",
            [query(f"max by ({per_deployment(AGENT, VERSION)}) ({MEAN}{{{s}}})", _LEGEND)],
        ).min(0).span(12),
    ]


class _PrometheusAnnotation(dashboard_models.AnnotationQuery):
    """A Prometheus annotation query with the fields Grafana reads that the SDK model lacks (title, tags, step)."""

    def __init__(self, title: str, tags: str, step: str, **fields: Any) -> None:
        super().__init__(**fields)
        self.title, self.tags, self.step = title, tags, step

    def to_json(self) -> dict[str, object]:
        return {**super().to_json(), "titleFormat": self.title, "tagKeys": self.tags, "step": self.step}


def annotate_runs(dashboard: dashboard_models.Dashboard) -> dashboard_models.Dashboard:
    """Add the evolution runs, by agent and status, as annotations (on every time series panel)."""
    runs = (f"sum by ({AGENT}, {EVO_TYPE}, {EVO_STATUS}) "
            f'(increase({EVO_ATTEMPTS}{{{RAW},{AGENT}=~"$agent",{EVO_TYPE}=~"$evolution_type"}}[2m])) > 0')
    annotation = _PrometheusAnnotation(
        "evolve {{gen_ai_agent_name}}: {{evolution_status}}", f"{AGENT},{EVO_TYPE},{EVO_STATUS}", "1m",
        name="Evolution runs", datasource=DATASOURCE, enable=True, hide=False, icon_color="purple", expr=runs)
    if dashboard.annotations is None or dashboard.annotations.list_val is None:
        dashboard.annotations = dashboard_models.AnnotationContainer(list_val=[annotation])
    else:
        dashboard.annotations.list_val.append(annotation)
    return dashboard
