"""What every dashboard shares: the Prometheus query, the panel kinds with our defaults, the variables and the
dashboard frame, all on grafana-foundation-sdk builders.

A panel helper returns the SDK builder, so a dashboard adjusts it with the SDK's own methods
(``.span(8)``, ``.min(0).max(1)``, ``.thresholds(steps(...))``) instead of a second option vocabulary.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol, Self, TypeVar

from grafana_foundation_sdk.builders import bargauge, heatmap, prometheus, stat, statushistory, table, timeseries
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.variants import Dataquery
from grafana_foundation_sdk.models import common as common_models
from grafana_foundation_sdk.models import dashboard as dashboard_models
from grafana_foundation_sdk.models import heatmap as heatmap_models
from grafana_foundation_sdk.models.prometheus import PromQueryFormat, QueryEditorMode

from mixin.config import load_thresholds
from mixin.scope import ENVIRONMENT, OURS, SERVICE, load_scope

#: Every panel, query and variable reads the dashboard's `datasource` variable, so any Prometheus works.
DATASOURCE = dashboard_models.DataSourceRef(type_val="prometheus", uid="${datasource}")
RATE_INTERVAL = "$__rate_interval"
TAG = "agent-otel"

#: thresholds.yaml's scope: its selector is in every query on raw series, next to agent-otel's instrumentation
#: scope (for its own metrics); the recording rules applied it already.
SCOPE = load_scope(load_thresholds())
#: The service and environment variables every dashboard has, applied in every query.
VARIABLES = f'{SERVICE}=~"$service",{ENVIRONMENT}=~"$environment"'
#: What a query on agent-otel's own raw series matches besides its own filters.
RAW = ",".join(part for part in (OURS, SCOPE.selector, VARIABLES) if part)
#: The same for series of another instrumentation (process metrics): the selector and the variables.
RAW_OTHER = ",".join(part for part in (SCOPE.selector, VARIABLES) if part)
#: Table columns naming a row's deployment; the other scope labels (job) are hidden.
DEPLOYMENT_COLUMNS = {SERVICE: "Service", ENVIRONMENT: "Environment"}
#: Legend naming a line's deployment, before what the line is of.
DEPLOYMENT_LEGEND = f"{{{{{SERVICE}}}}} {{{{{ENVIRONMENT}}}}}"


def per_deployment(*labels: str) -> str:
    """The body of ``max by (...)`` over ratios and gauges the rules or processes keep per deployment: the scope
    labels, then ``labels``. A panel over several services (the variables at All) then shows each one: taking
    the max over deployments would hide a failing one behind a healthy one of the same agent."""
    return SCOPE.by(*labels)


#: The heartbeat recording rule (one series per service): where the variables find their values.
_SERVICES = "scope:agent_otel_series:count"

#: Threshold steps as (color, lower bound); the first step's bound is None (from -inf).
Steps = tuple[tuple[str, float | None], ...]
GREEN: Steps = (("green", None),)
#: Red below 50 %, yellow below 80 %: for ratios that have no alert of their own (evolution success).
RATIO_STEPS: Steps = (("red", None), ("yellow", 0.5), ("green", 0.8))


def below_steps(critical: float, warning: float) -> Steps:
    """Red below an alert's critical threshold, yellow below its warning threshold (of thresholds.yaml)."""
    return (("red", None), ("yellow", critical), ("green", warning))


def steps(*colored: tuple[str, float | None]) -> dashboard_builders.ThresholdsConfig:
    """Absolute thresholds, for `.thresholds(...)` of any panel."""
    return (dashboard_builders.ThresholdsConfig().mode(dashboard_models.ThresholdsMode.ABSOLUTE)
            .steps([dashboard_models.Threshold(color=color, value=value) for color, value in colored]))


#: An aggregation that keeps some labels: ``sum by (gen_ai_agent_name) (...)``.
_KEEPING = re.compile(r"\b(?P<op>sum|max|min|avg|count) by \((?P<labels>[^)]*)\)")
_BUCKET = "le"
#: An aggregation of everything into one series (a total: ``sum(...)``).
_TOTAL = re.compile(r"\b(?:sum|max|min|avg|count)\s*\(")


def _per_deployment_aggregations(expr: str) -> str:
    """``expr`` with the scope labels kept by every aggregation that keeps labels and not them, as the recording rules
    keep them: with the variables at All, two services or environments of one agent were added into one line (or,
    from the rules, drawn as two lines under one legend)."""
    def keep(match: re.Match[str]) -> str:
        labels = [label.strip() for label in match["labels"].split(",") if label.strip()]
        if SERVICE in labels or labels == [_BUCKET]:  # a heatmap's buckets: one distribution of everything selected
            return match[0]
        return f"{match['op']} by ({SCOPE.by(*(label for label in labels if label not in SCOPE.labels))})"

    return _KEEPING.sub(keep, expr)


def query(expr: str, legend: str = "__auto", *, exemplar: bool = False, instant: bool = False,
          fmt: PromQueryFormat = PromQueryFormat.TIME_SERIES,
          worst_of_deployments: bool = False) -> prometheus.Dataquery:
    """A PromQL target in code mode; the panel helper numbers its refId. Every line is one deployment's (service and
    environment: :func:`_per_deployment_aggregations`), and a legend given names it first, unless the query totals
    everything. ``worst_of_deployments``: its ``max by``/``min by`` takes the worst over the deployments selected, on
    purpose (a matrix cell shows one value: with the scope kept, Grafana showed the last row's, not the worst)."""
    if not worst_of_deployments:
        expr = _per_deployment_aggregations(expr)
    if legend not in ("__auto", f"{{{{{_BUCKET}}}}}") and SERVICE not in legend and not _TOTAL.search(expr):
        legend = f"{DEPLOYMENT_LEGEND} {legend}"
    target = (prometheus.Dataquery().datasource(DATASOURCE).editor_mode(QueryEditorMode.CODE).expr(expr)
              .exemplar(exemplar).format(fmt).legend_format(legend))
    return target.instant() if instant else target.range()


def quantiles(metric: str, by: str, selector: str, levels: Sequence[float] = (0.5, 0.95, 0.99)
              ) -> list[prometheus.Dataquery]:
    """One exemplar-enabled histogram_quantile target per level, grouped by the label `by`."""
    return [
        query(f"histogram_quantile({q}, sum by (le, {by}) (rate({metric}_bucket{{{selector}}}[{RATE_INTERVAL}])))",
              f"p{round(q * 100)} {{{{{by}}}}}", exemplar=True)
        for q in levels
    ]


class _PanelBuilder(Protocol):
    """The part of the API that every SDK panel builder has (they share no base class)."""

    def title(self, title: str) -> Self: ...
    def description(self, description: str) -> Self: ...
    def datasource(self, datasource: dashboard_models.DataSourceRef) -> Self: ...
    def targets(self, targets: list[Builder[Dataquery]]) -> Self: ...
    def unit(self, unit: str) -> Self: ...
    def thresholds(self, thresholds: Builder[dashboard_models.ThresholdsConfig]) -> Self: ...
    def color_scheme(self, color: Builder[dashboard_models.FieldColor]) -> Self: ...
    def span(self, w: int) -> Self: ...
    def height(self, h: int) -> Self: ...


_P = TypeVar("_P", bound=_PanelBuilder)


def _panel(panel: _P, title: str, description: str, unit: str, targets: Sequence[prometheus.Dataquery], *,
           color: dashboard_models.FieldColorModeId = dashboard_models.FieldColorModeId.THRESHOLDS) -> _P:
    """Title, description, unit, green thresholds, 12x8 and the targets lettered A, B, C..."""
    lettered: list[Builder[Dataquery]] = [t.ref_id(chr(ord("A") + i)) for i, t in enumerate(targets)]
    return (panel.title(title).description(description).datasource(DATASOURCE).unit(unit).thresholds(steps(*GREEN))
            .color_scheme(dashboard_builders.FieldColor().mode(color)).targets(lettered).span(12).height(8))


def _legend() -> common_builders.VizLegendOptions:
    return (common_builders.VizLegendOptions().display_mode(common_models.LegendDisplayMode.LIST)
            .placement(common_models.LegendPlacement.BOTTOM).show_legend(True))


def _last_value() -> common_builders.ReduceDataOptions:
    return common_builders.ReduceDataOptions().calcs(["lastNotNull"]).fields("").values(False)


def timeseries_panel(title: str, description: str, unit: str, targets: Sequence[prometheus.Dataquery], *,
                     stack: bool = False) -> timeseries.Panel:
    """Thin lines, no points, gaps kept; `stack` stacks the series (for parts of a whole)."""
    stacking = common_models.StackingMode.NORMAL if stack else common_models.StackingMode.NONE
    return (_panel(timeseries.Panel(), title, description, unit, targets,
                   color=dashboard_models.FieldColorModeId.PALETTE_CLASSIC)
            .draw_style(common_models.GraphDrawStyle.LINE).line_width(1).fill_opacity(10)
            .show_points(common_models.VisibilityMode.NEVER).span_nulls(False)
            .stacking(common_builders.StackingConfig().mode(stacking).group("A"))
            .legend(_legend())
            .tooltip(common_builders.VizTooltipOptions().mode(common_models.TooltipDisplayMode.MULTI)
                     .sort(common_models.SortOrder.DESCENDING)))


def with_threshold_lines(panel: timeseries.Panel) -> timeseries.Panel:
    """The panel's thresholds drawn as dashed lines: the alert's thresholds in view of the series."""
    return panel.thresholds_style(common_builders.GraphThresholdsStyleConfig()
                                  .mode(common_models.GraphThresholdsStyleMode.DASHED))


def stat_panel(title: str, description: str, unit: str, targets: Sequence[prometheus.Dataquery]) -> stat.Panel:
    """The last value, colored by the thresholds, over a sparkline."""
    return (_panel(stat.Panel(), title, description, unit, targets).reduce_options(_last_value())
            .color_mode(common_models.BigValueColorMode.VALUE).graph_mode(common_models.BigValueGraphMode.AREA)
            .text_mode(common_models.BigValueTextMode.AUTO).orientation(common_models.VizOrientation.AUTO))


def bargauge_panel(title: str, description: str, unit: str, targets: Sequence[prometheus.Dataquery]
                   ) -> bargauge.Panel:
    """One horizontal bar per series, at its last value."""
    return (_panel(bargauge.Panel(), title, description, unit, targets).reduce_options(_last_value())
            .display_mode(common_models.BarGaugeDisplayMode.BASIC)
            .orientation(common_models.VizOrientation.HORIZONTAL).show_unfilled(True))


def table_panel(title: str, description: str, unit: str, targets: Sequence[prometheus.Dataquery], *,
                columns: dict[str, str], units: dict[str, str] | None = None) -> table.Panel:
    """Instant queries merged into one row per label set; `columns` renames "Value #A"... to titles and
    `units` gives a renamed column its unit."""
    panel = (_panel(table.Panel(), title, description, unit, targets)
             .show_header(True).cell_height(common_models.TableCellHeight.SM)
             .footer(common_builders.TableFooterOptions().show(False))
             .with_transformation(dashboard_models.DataTransformerConfig(id_val="merge", options={}))
             .with_transformation(dashboard_models.DataTransformerConfig(
                 id_val="organize", options={"excludeByName": {"Time": True, **{
                     label: True for label in SCOPE.labels if label not in columns}}, "renameByName": columns})))
    for name, column_unit in (units or {}).items():
        panel = panel.override_by_name(name, [dashboard_models.DynamicConfigValue(id_val="unit", value=column_unit)])
    return panel


def matrix_table_panel(title: str, description: str, unit: str, target: prometheus.Dataquery, *, rows: str,
                       columns: str, row_title: str) -> table.Panel:
    """One instant query laid out as a matrix: a row per value of the label `rows`, a column per value of the
    label `columns` (Grafana's grouping-to-matrix), for things side by side."""
    return (_panel(table.Panel(), title, description, unit, [target])
            .show_header(True).cell_height(common_models.TableCellHeight.SM)
            .footer(common_builders.TableFooterOptions().show(False))
            .with_transformation(dashboard_models.DataTransformerConfig(
                id_val="groupingToMatrix", options={"rowField": rows, "columnField": columns, "valueField": "Value"}))
            .with_transformation(dashboard_models.DataTransformerConfig(
                id_val="organize", options={"renameByName": {f"{rows}\\{columns}": row_title}})))


def heatmap_panel(title: str, description: str, unit: str, expr: str) -> heatmap.Panel:
    """Pre-bucketed histogram (`sum by (le)`), with exemplars: the distribution of a duration over time."""
    target = query(expr, "{{le}}", exemplar=True, fmt=PromQueryFormat.HEATMAP)
    return (_panel(heatmap.Panel(), title, description, unit, [target],
                   color=dashboard_models.FieldColorModeId.PALETTE_CLASSIC)
            .calculate(False).cell_gap(1)
            .y_axis(heatmap.YAxisConfig().unit(unit).axis_placement(common_models.AxisPlacement.LEFT))
            .color(heatmap.HeatmapColorOptions().mode(heatmap_models.HeatmapColorMode.SCHEME).scheme("Oranges")
                   .steps(64))
            .exemplars_color("rgba(255,0,255,0.7)").mode(common_models.TooltipDisplayMode.SINGLE)
            .show_y_histogram().show_legend()
            .rows_frame(heatmap.RowsHeatmapOptions().layout(common_models.HeatmapCellLayout.AUTO)))


def status_history_panel(title: str, description: str, unit: str, targets: Sequence[prometheus.Dataquery]
                         ) -> statushistory.Panel:
    """One row of colored cells per series: a reliability strip over time."""
    return (_panel(statushistory.Panel(), title, description, unit, targets)
            .show_value(common_models.VisibilityMode.NEVER).row_height(0.9).col_width(0.9).legend(_legend())
            .tooltip(common_builders.VizTooltipOptions().mode(common_models.TooltipDisplayMode.SINGLE)
                     .sort(common_models.SortOrder.NONE)))


def row(title: str) -> dashboard_builders.Row:
    """An expanded row: the panels after it, up to the next row, sit under its title."""
    return dashboard_builders.Row(title).collapsed(False)


def label_values(name: str, title: str, metric: str, label: str) -> dashboard_builders.QueryVariable:
    """A multi-value filter offering the values of `label` on `metric`; All matches everything (`.*`)."""
    expr = f"label_values({metric}, {label})"
    return (dashboard_builders.QueryVariable(name).label(title).datasource(DATASOURCE)
            .query({"query": expr, "refId": "PrometheusVariableQueryEditor-VariableQuery"})
            # On time range change, so that agents that appear later show up without a reload.
            .refresh(dashboard_models.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .include_all(True).multi(True).all_value(".*").hide(dashboard_models.VariableHide.DONT_HIDE)
            .sort(dashboard_models.VariableSort.ALPHABETICAL_ASC).regex("").options([]))


def scope_variables() -> list[dashboard_builders.QueryVariable]:
    """Service and environment, first on every dashboard: each query filters on both."""
    return [label_values("service", "Service", _SERVICES, SERVICE),
            label_values("environment", "Environment", f'{_SERVICES}{{{SERVICE}=~"$service"}}', ENVIRONMENT)]


def _datasource_variable() -> dashboard_builders.DatasourceVariable:
    return (dashboard_builders.DatasourceVariable("datasource").label("Data source").type("prometheus")
            .hide(dashboard_models.VariableHide.DONT_HIDE).include_all(False).multi(False).regex(""))


def dashboard(uid: str, title: str, description: str, variables: Sequence[dashboard_builders.QueryVariable],
              panels: Sequence[Builder[dashboard_models.Panel] | dashboard_builders.Row]) -> dashboard_models.Dashboard:
    """Read-only, tagged, linked to its siblings, with a datasource variable first; the SDK lays the panels out
    left to right (each row of panels fills the 24 columns) and the panels are numbered in order."""
    builder = (dashboard_builders.Dashboard(title).uid(uid).description(description).tags([TAG]).readonly()
               .tooltip(dashboard_models.DashboardCursorSync.CROSSHAIR).version(1).time("now-6h", "now")
               .timezone("browser").refresh("1m")
               .fiscal_year_start_month(0).live_now(False)
               .annotation(dashboard_builders.AnnotationQuery().built_in(1).name("Annotations & Alerts")
                           .datasource(dashboard_models.DataSourceRef(type_val="grafana", uid="-- Grafana --"))
                           .enable(True).hide(True).icon_color("rgba(0, 211, 255, 1)").type("dashboard"))
               .link(dashboard_builders.DashboardLink("agent-otel dashboards")
                     .type(dashboard_models.DashboardLinkType.DASHBOARDS).tags([TAG]).as_dropdown(True)
                     .include_vars(False).keep_time(True).icon("external link").target_blank(False).tooltip("")
                     .url(""))
               .variables([_datasource_variable(), *scope_variables(), *variables]))
    for panel in panels:
        builder = builder.with_row(panel) if isinstance(panel, dashboard_builders.Row) else builder.with_panel(panel)
    model = builder.build()
    for number, built in enumerate(model.panels or [], start=1):
        built.id_val = number
    return model
