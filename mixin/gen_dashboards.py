#!/usr/bin/env python3
"""Generate the Grafana dashboards (classic JSON model) in grafana/dashboards/ from the telemetry contract.

Every metric and label name comes from ``agent_otel.semconv`` (or from a recording rule of
alerts/agent-otel.rules.yaml, itself generated from it), so a renamed instrument changes the dashboards
with it. The JSON is committed; tests/ops fails when it differs from a fresh generation.

Usage: ``python -m mixin.gen_dashboards`` (writes) or ``python -m mixin.gen_dashboards --check``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from agent_otel import semconv as sc

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "src" / "agent_otel" / "assets"
OUT = ASSETS / "grafana" / "dashboards"
THRESHOLDS = yaml.safe_load((ASSETS / "thresholds.yaml").read_text())

DS = {"type": "prometheus", "uid": "${datasource}"}
TAG = "agent-otel"
#: Classic dashboard JSON schema of Grafana 11 (what 11.x writes on save); provisionable on 10-13.
SCHEMA_VERSION = 39


label = sc.prometheus_label


AGENT = label(sc.GEN_AI_AGENT_NAME)
OUTCOME = label(sc.AGENT_OUTCOME)
TASK = label(sc.AGENT_TASK_TYPE)
PATTERN = label(sc.AGENT_PATTERN)
WORK_KIND = label(sc.AGENT_WORK_KIND)
KPI = label(sc.AGENT_KPI_NAME)
PROVIDER = label(sc.GEN_AI_PROVIDER_NAME)
MODEL = label(sc.GEN_AI_REQUEST_MODEL)
TOKEN_TYPE = label(sc.GEN_AI_TOKEN_TYPE)
ERROR_TYPE = label(sc.ERROR_TYPE)
FALLBACK_TO = label(sc.GEN_AI_FALLBACK_TO)
FALLBACK_REASON = label(sc.GEN_AI_FALLBACK_REASON)
TOOL = label(sc.GEN_AI_TOOL_NAME)
EVO_TYPE = label(sc.EVOLUTION_TYPE)
EVO_STATUS = label(sc.EVOLUTION_STATUS)
JOB_TYPE = label(sc.JOB_TYPE)
JOB_OUTCOME = label(sc.JOB_OUTCOME)
STAGE = label(sc.INSTRUMENTATION_STAGE)

AGENT_DUR = sc.AGENT_DURATION.prometheus
CONFIDENCE = sc.AGENT_CONFIDENCE_HISTOGRAM.prometheus
CLIENT_DUR = sc.CLIENT_OPERATION_DURATION.prometheus
TTFC = sc.CLIENT_TIME_TO_FIRST_CHUNK.prometheus
TOKENS = sc.CLIENT_TOKEN_USAGE.prometheus
COST = sc.CLIENT_COST.prometheus
RETRIES = sc.CLIENT_RETRIES.prometheus
FALLBACKS = sc.CLIENT_FALLBACKS.prometheus
TOOL_DUR = sc.TOOL_DURATION.prometheus
EVO_ATTEMPTS = sc.EVOLUTION_ATTEMPTS.prometheus
EVO_DUR = sc.EVOLUTION_DURATION.prometheus
EVO_IMPROVEMENT = sc.EVOLUTION_PERFORMANCE_IMPROVEMENT.prometheus
EVO_MEMORY = sc.EVOLUTION_MEMORY_PEAK.prometheus
KPI_CURRENT = sc.AGENT_KPI_CURRENT.prometheus
WORK_ITEMS = sc.AGENT_WORK_ITEMS.prometheus
PATTERNS = sc.AGENT_PATTERNS_USED.prometheus
JOB_DUR = sc.JOB_DURATION.prometheus
SELF_ERRORS = sc.INSTRUMENTATION_ERRORS.prometheus

RI = "$__rate_interval"


# --------------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------------


def target(expr: str, legend: str = "__auto", *, exemplar: bool = False, instant: bool = False,
           fmt: str = "time_series") -> dict:
    return {
        "datasource": DS,
        "editorMode": "code",
        "expr": expr,
        "exemplar": exemplar,
        "format": fmt,
        "instant": instant,
        "legendFormat": legend,
        "range": not instant,
    }


def thresholds(*steps: tuple[str, float | None]) -> dict:
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for c, v in steps]}


GREEN = thresholds(("green", None))
#: Red below the critical, yellow below the warning threshold: for success and availability ratios.
RATIO_STEPS = thresholds(("red", None), ("yellow", 0.5), ("green", 0.8))


def panel(kind: str, title: str, description: str, unit: str, targets: list[dict], *, w: int = 12,
          h: int = 8, minmax: tuple[float, float] | None = None, steps: dict | None = None,
          options: dict | None = None, custom: dict | None = None, transformations: list | None = None,
          overrides: list | None = None) -> dict:
    defaults: dict = {"unit": unit, "thresholds": steps or GREEN, "color": {"mode": "palette-classic"}}
    if kind in ("stat", "bargauge", "status-history", "table"):
        defaults["color"] = {"mode": "thresholds"}
    if minmax:
        defaults["min"], defaults["max"] = minmax
    if custom:
        defaults["custom"] = custom
    p = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
        "options": options or {},
        "targets": [{**t, "refId": chr(ord("A") + i)} for i, t in enumerate(targets)],
        "gridPos": {"w": w, "h": h},
    }
    if transformations:
        p["transformations"] = transformations
    return p


def timeseries(title: str, description: str, unit: str, targets: list[dict], *, stack: bool = False,
               **kw) -> dict:
    custom = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never",
              "spanNulls": False, "stacking": {"mode": "normal" if stack else "none", "group": "A"}}
    options = {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
               "tooltip": {"mode": "multi", "sort": "desc"}}
    return panel("timeseries", title, description, unit, targets, custom=custom, options=options, **kw)


def stat(title: str, description: str, unit: str, targets: list[dict], **kw) -> dict:
    options = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
               "colorMode": "value", "graphMode": "area", "textMode": "auto", "orientation": "auto"}
    return panel("stat", title, description, unit, targets, options=options, **kw)


def bargauge(title: str, description: str, unit: str, targets: list[dict], **kw) -> dict:
    options = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
               "displayMode": "basic", "orientation": "horizontal", "showUnfilled": True}
    return panel("bargauge", title, description, unit, targets, options=options, **kw)


def table(title: str, description: str, unit: str, targets: list[dict], *, columns: dict[str, str],
          units: dict[str, str] | None = None, **kw) -> dict:
    """Instant queries merged into one row per label set; `columns` renames "Value #A"... to titles."""
    overrides = [
        {"matcher": {"id": "byName", "options": name}, "properties": [{"id": "unit", "value": u}]}
        for name, u in (units or {}).items()
    ]
    transformations = [
        {"id": "merge", "options": {}},
        {"id": "organize", "options": {"excludeByName": {"Time": True}, "renameByName": columns}},
    ]
    options = {"showHeader": True, "cellHeight": "sm", "footer": {"show": False}}
    return panel("table", title, description, unit, targets, options=options,
                 transformations=transformations, overrides=overrides, **kw)


def heatmap(title: str, description: str, unit: str, expr: str, **kw) -> dict:
    options = {"calculate": False, "yAxis": {"unit": unit, "axisPlacement": "left"},
               "cellGap": 1, "color": {"mode": "scheme", "scheme": "Oranges", "steps": 64},
               "exemplars": {"color": "rgba(255,0,255,0.7)"}, "tooltip": {"mode": "single", "yHistogram": True},
               "legend": {"show": True}, "rowsFrame": {"layout": "auto"}}
    return panel("heatmap", title, description, unit,
                 [target(expr, "{{le}}", exemplar=True, fmt="heatmap")], options=options, **kw)


def status_history(title: str, description: str, unit: str, targets: list[dict], **kw) -> dict:
    options = {"showValue": "never", "rowHeight": 0.9, "colWidth": 0.9,
               "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
               "tooltip": {"mode": "single", "sort": "none"}}
    return panel("status-history", title, description, unit, targets, options=options, **kw)


def row(title: str) -> dict:
    return {"type": "row", "title": title, "collapsed": False, "panels": [], "gridPos": {"w": 24, "h": 1}}


def datasource_variable() -> dict:
    return {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
            "current": {}, "hide": 0, "includeAll": False, "multi": False, "refresh": 1, "regex": "",
            "options": []}


def query_variable(name: str, title: str, metric: str, label_name: str) -> dict:
    query = f"label_values({metric}, {label_name})"
    return {
        "name": name, "label": title, "type": "query", "datasource": DS,
        "definition": query, "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        # 2 = on time range change, so agents that appear later show up without a reload.
        "refresh": 2, "includeAll": True, "multi": True, "allValue": ".*", "current": {}, "hide": 0,
        "sort": 1, "regex": "", "options": [],
    }


def dashboard(uid: str, title: str, description: str, variables: list[dict], panels: list[dict]) -> dict:
    y = x = 0
    row_height = 0
    laid_out = []
    for i, p in enumerate(panels, start=1):
        w, h = p["gridPos"]["w"], p["gridPos"]["h"]
        if p["type"] == "row" or x + w > 24:
            y, x, row_height = y + row_height, 0, 0
        p["gridPos"] = {"x": x, "y": y, "w": w, "h": h}
        p["id"] = i
        x += w
        row_height = max(row_height, h)
        laid_out.append(p)
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": [TAG],
        "editable": False,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "refresh": "1m",
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "annotations": {"list": [{
            "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True,
            "hide": True, "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard",
        }]},
        "links": [{"type": "dashboards", "tags": [TAG], "asDropdown": True, "title": "agent-otel dashboards",
                   "includeVars": False, "keepTime": True, "icon": "external link", "targetBlank": False,
                   "tooltip": "", "url": ""}],
        "templating": {"list": [datasource_variable(), *variables]},
        "panels": laid_out,
    }


def quantiles(metric: str, by: str, selector: str) -> list[dict]:
    return [
        target(
            f"histogram_quantile({q}, sum by (le, {by}) (rate({metric}_bucket{{{selector}}}[{RI}])))",
            f"p{round(q * 100)} {{{{{by}}}}}", exemplar=True,
        )
        for q in (0.5, 0.95, 0.99)
    ]


# --------------------------------------------------------------------------------------------------
# Dashboards
# --------------------------------------------------------------------------------------------------


def agents() -> dict:
    a = f'{AGENT}=~"$agent"'
    windows = ("1h", "1d", "7d")
    by_window = []
    columns = {}
    units = {}
    for title, record, unit in (
        ("Success", "agent:gen_ai_invoke_agent_successes_per_invocations:ratio_rate{w}", "percentunit"),
        ("Avg latency", f"agent:{AGENT_DUR}:mean{{w}}", "s"),
        ("p95 latency", f'agent_quantile:{AGENT_DUR}:histogram_quantile_rate{{w}}{{{{quantile="0.95",{a}}}}}', "s"),
        ("Avg cost", "agent:gen_ai_client_cost_per_invocations:ratio_rate{w}", "currencyUSD"),
    ):
        for w in windows:
            expr = record.format(w=w)
            if "{" not in expr:
                expr += f"{{{a}}}"
            # One label set per agent (no __name__ column), so that the merge joins the queries into rows.
            expr = f"max by ({AGENT}) ({expr})"
            by_window.append(target(expr, instant=True, fmt="table"))
            name = f"{title} {w}"
            columns[f"Value #{chr(ord('A') + len(by_window) - 1)}"] = name
            units[name] = unit
    return dashboard(
        "agent-otel-agents", "agent-otel / Agents",
        "Per agent: success, latency, cost, calibration, patterns and failing task types.",
        [query_variable("agent", "Agent", f"{AGENT_DUR}_count", AGENT)],
        [
            row("Per agent and window"),
            table("Agents by window",
                  "Success ratio, average and p95 latency and average cost per invocation of each agent over the "
                  "last hour, day and week (recording rules agent:*:*_rate1h|1d|7d).",
                  "short", by_window, columns={"gen_ai_agent_name": "Agent", **columns}, units=units, w=24, h=7),
            row("Success and volume"),
            timeseries("Success ratio",
                       "Share of invocations with agent_outcome=success, over 5 minutes and 1 hour. Failures the "
                       "agent reports and errors it raises both count against it.",
                       "percentunit",
                       [target(f"agent:gen_ai_invoke_agent_successes_per_invocations:ratio_rate5m{{{a}}}",
                               "{{gen_ai_agent_name}} 5m"),
                        target(f"agent:gen_ai_invoke_agent_successes_per_invocations:ratio_rate1h{{{a}}}",
                               "{{gen_ai_agent_name}} 1h")],
                       minmax=(0, 1), steps=RATIO_STEPS),
            timeseries("Invocations by outcome", "Agent invocations per second, by agent and outcome.", "ops",
                       [target(f"sum by ({AGENT}, {OUTCOME}) (rate({AGENT_DUR}_count{{{a}}}[{RI}]))",
                               "{{gen_ai_agent_name}} {{agent_outcome}}")], stack=True),
            row("Latency"),
            timeseries("Latency quantiles",
                       "p50, p95 and p99 duration of agent invocations. Exemplars link to the traces of slow runs.",
                       "s", quantiles(AGENT_DUR, AGENT, a)),
            timeseries("Average latency", "Mean duration of an invocation over 5 minutes (sum / count).", "s",
                       [target(f"agent:{AGENT_DUR}:mean5m{{{a}}}", "{{gen_ai_agent_name}}")]),
            row("Cost"),
            timeseries("Average cost per invocation",
                       "Estimated model spend per agent invocation over 1 hour, from the local price table.",
                       "currencyUSD",
                       [target(f"agent:gen_ai_client_cost_per_invocations:ratio_rate1h{{{a}}}",
                               "{{gen_ai_agent_name}}")]),
            timeseries("Spend per hour by agent",
                       "Estimated model spend of each agent's calls, as US dollars per hour.", "currencyUSD",
                       [target(f"sum by ({AGENT}) (rate({COST}{{{a}}}[{RI}])) * 3600", "{{gen_ai_agent_name}}")],
                       stack=True),
            row("Quality"),
            bargauge("Confidence calibration (1d)",
                     "Actual success ratio per stated-confidence band over the last day: low < 0.5 <= medium < 0.8 "
                     "<= high (histogram buckets le=0.5 and le=0.8, which include their bound). A calibrated "
                     "agent's high band succeeds most often.",
                     "percentunit",
                     [target(f"agent_band:{CONFIDENCE}_successes_per_invocations:ratio_increase1d{{{a}}}",
                             "{{gen_ai_agent_name}} {{confidence_band}}", instant=True)],
                     minmax=(0, 1), steps=RATIO_STEPS, w=8),
            timeseries("Patterns used", "Patterns applied per second, by agent and pattern.", "ops",
                       [target(f"sum by ({AGENT}, {PATTERN}) (rate({PATTERNS}{{{a}}}[{RI}]))",
                               "{{gen_ai_agent_name}} {{agent_pattern}}")], stack=True, w=8),
            timeseries("Failing task types",
                       "Unsuccessful invocations (failure or error) per second, for the 10 worst agent and task "
                       "type pairs.", "ops",
                       [target(f'topk(10, sum by ({AGENT}, {TASK}) (rate({AGENT_DUR}_count{{{a},{OUTCOME}!="success"}}'
                               f"[{RI}])))", "{{gen_ai_agent_name}} {{agent_task_type}}")], w=8),
            timeseries("Work items",
                       "Work items agents report per second (fixes applied, files modified, remaining issues...).",
                       "ops",
                       [target(f"sum by ({AGENT}, {WORK_KIND}) (rate({WORK_ITEMS}{{{a}}}[{RI}]))",
                               "{{gen_ai_agent_name}} {{agent_work_kind}}")], w=24),
        ],
    )


def providers() -> dict:
    p = f'{PROVIDER}=~"$provider"'
    pm = f'{p},{MODEL}=~"$model"'
    return dashboard(
        "agent-otel-providers", "agent-otel / Providers & cost",
        "Model providers: availability, latency, tokens, cost, retries, fallbacks and errors.",
        [query_variable("provider", "Provider", f"{CLIENT_DUR}_count", PROVIDER),
         query_variable("model", "Model", f'{CLIENT_DUR}_count{{{p}}}', MODEL)],
        [
            row("Availability"),
            stat("Availability (24h)",
                 "Share of calls without error over the last 24 hours, per provider (errors are calls with an "
                 "error_type).", "percentunit",
                 [target(f"provider:gen_ai_client_operation_availability:ratio_rate1d{{{p}}}",
                         "{{gen_ai_provider_name}}", instant=True)],
                 minmax=(0, 1), steps=thresholds(("red", None), ("yellow", 0.9), ("green", 0.98)), w=6),
            stat("Availability incl. slow calls (24h)",
                 f"As 'Availability', also counting calls slower than {THRESHOLDS['provider_slow_call_seconds']} s "
                 "as unavailable.", "percentunit",
                 [target(f"provider:gen_ai_client_operation_availability_with_slow:ratio_rate1d{{{p}}}",
                         "{{gen_ai_provider_name}}", instant=True)],
                 minmax=(0, 1), steps=thresholds(("red", None), ("yellow", 0.9), ("green", 0.98)), w=6),
            timeseries("Availability",
                       "Share of calls without error over 5 minutes and 1 hour.", "percentunit",
                       [target(f"provider:gen_ai_client_operation_availability:ratio_rate5m{{{p}}}",
                               "{{gen_ai_provider_name}} 5m"),
                        target(f"provider:gen_ai_client_operation_availability:ratio_rate1h{{{p}}}",
                               "{{gen_ai_provider_name}} 1h")],
                       minmax=(0, 1), steps=thresholds(("red", None), ("yellow", 0.9), ("green", 0.98))),
            timeseries("Errors by type", "Failed calls per second by provider and error type.", "ops",
                       [target(f'sum by ({PROVIDER}, {ERROR_TYPE}) (rate({CLIENT_DUR}_count{{{pm},{ERROR_TYPE}!=""}}'
                               f"[{RI}]))", "{{gen_ai_provider_name}} {{error_type}}")], stack=True),
            timeseries("Calls by model", "Model calls per second by provider and requested model.", "reqps",
                       [target(f"sum by ({PROVIDER}, {MODEL}) (rate({CLIENT_DUR}_count{{{pm}}}[{RI}]))",
                               "{{gen_ai_provider_name}} {{gen_ai_request_model}}")], stack=True),
            row("Latency"),
            timeseries("Latency quantiles",
                       "p50, p95 and p99 duration of model calls per provider. Exemplars link to the call's trace.",
                       "s", quantiles(CLIENT_DUR, PROVIDER, pm)),
            timeseries("Time to first chunk p95",
                       "p95 time from request to the first chunk of streamed responses, per model.", "s",
                       [target(f"histogram_quantile(0.95, sum by (le, {PROVIDER}, {MODEL}) "
                               f"(rate({TTFC}_bucket{{{pm}}}[{RI}])))",
                               "{{gen_ai_provider_name}} {{gen_ai_request_model}}", exemplar=True)]),
            row("Tokens and cost"),
            timeseries("Tokens per second", "Input and output tokens per second by provider.", "short",
                       [target(f"sum by ({PROVIDER}, {TOKEN_TYPE}) (rate({TOKENS}_sum{{{pm}}}[{RI}]))",
                               "{{gen_ai_provider_name}} {{gen_ai_token_type}}")], stack=True, w=8),
            timeseries("Spend per hour by model",
                       "Estimated spend as US dollars per hour, by provider and model (local price table).",
                       "currencyUSD",
                       [target(f"sum by ({PROVIDER}, {MODEL}) (rate({COST}{{{pm}}}[{RI}])) * 3600",
                               "{{gen_ai_provider_name}} {{gen_ai_request_model}}")], stack=True, w=8),
            stat("Spend in the last hour",
                 f"Estimated spend over the last hour, all selected providers "
                 f"(budget alert at {THRESHOLDS['spend_budget_usd_per_hour']} USD).", "currencyUSD",
                 [target(f"sum(provider:gen_ai_client_cost:increase1h{{{p}}})", "spend", instant=True)],
                 steps=thresholds(("green", None), ("red", THRESHOLDS["spend_budget_usd_per_hour"])), w=8),
            row("Retries and fallbacks"),
            timeseries("Retries per call", "Retries per model call over 5 minutes, per provider.", "short",
                       [target(f"provider:gen_ai_client_retries_per_operations:ratio_rate5m{{{p}}}",
                               "{{gen_ai_provider_name}}")]),
            timeseries("Fallbacks", "Fallbacks away from each provider per second, by target and reason.", "ops",
                       [target(f"sum by ({PROVIDER}, {FALLBACK_TO}, {FALLBACK_REASON}) "
                               f"(rate({FALLBACKS}{{{p}}}[{RI}]))",
                               "{{gen_ai_provider_name}} -> {{gen_ai_fallback_to}} ({{gen_ai_fallback_reason}})")],
                       stack=True),
        ],
    )


def evolution() -> dict:
    s = f'{AGENT}=~"$agent",{EVO_TYPE}=~"$evolution_type"'
    a = f'{AGENT}=~"$agent"'
    return dashboard(
        "agent-otel-evolution", "agent-otel / Evolution",
        "Evolution (self-improvement) runs: outcomes, duration, improvement, KPIs and resources.",
        [query_variable("agent", "Agent", EVO_ATTEMPTS, AGENT),
         query_variable("evolution_type", "Evolution type", f"{EVO_ATTEMPTS}{{{a}}}", EVO_TYPE)],
        [
            row("Outcomes"),
            timeseries("Attempts by status",
                       "Evolution runs ending in each interval, by agent and status (succeeded, failed, "
                       "rolled_back).", "short",
                       [target(f"sum by ({AGENT}, {EVO_STATUS}) (increase({EVO_ATTEMPTS}{{{s}}}[{RI}]))",
                               "{{gen_ai_agent_name}} {{evolution_status}}")], stack=True),
            timeseries("Failure ratio",
                       "Share of runs with status failed over 1 hour and 1 day (rolled-back runs are not failures).",
                       "percentunit",
                       [target(f"agent_evolution_type:evolution_attempts_failed_per_attempts:ratio_increase1h{{{s}}}",
                               "{{gen_ai_agent_name}} {{evolution_type}} 1h"),
                        target(f"agent_evolution_type:evolution_attempts_failed_per_attempts:ratio_increase1d{{{s}}}",
                               "{{gen_ai_agent_name}} {{evolution_type}} 1d")],
                       minmax=(0, 1),
                       steps=thresholds(("green", None), ("red", THRESHOLDS["evolution_failure_ratio"]))),
            bargauge("Success ratio (7d)", "Share of runs with status succeeded over the last 7 days.",
                     "percentunit",
                     [target(f"agent_evolution_type:evolution_attempts_succeeded_per_attempts:ratio_increase7d"
                             f"{{{s}}}", "{{gen_ai_agent_name}} {{evolution_type}}", instant=True)],
                     minmax=(0, 1), steps=RATIO_STEPS, w=8),
            heatmap("Duration", "Distribution of evolution run durations (from the evolution.duration histogram).",
                    "s", f"sum by (le) (increase({EVO_DUR}_bucket{{{s}}}[{RI}]))", w=16),
            row("Effect"),
            timeseries("Improvement", "KPI improvement (after minus before) of the latest run per agent and type.",
                       "short",
                       [target(f"max by ({AGENT}, {EVO_TYPE}) ({EVO_IMPROVEMENT}{{{s}}})",
                               "{{gen_ai_agent_name}} {{evolution_type}}")],
                       steps=thresholds(("red", None), ("green", THRESHOLDS["evolution_min_improvement"]))),
            table("Current KPIs", "Current value of each agent KPI, as measured by the latest evolution run.",
                  "short", [target(f"max by ({AGENT}, {KPI}) ({KPI_CURRENT}{{{a}}})", instant=True, fmt="table")],
                  columns={"gen_ai_agent_name": "Agent", "agent_kpi_name": "KPI", "Value": "Current"}),
            row("Resources"),
            timeseries("Memory peak per run", "Peak resident memory of the process during the latest run.", "bytes",
                       [target(f"max by ({AGENT}, {EVO_TYPE}) ({EVO_MEMORY}{{{s}}})",
                               "{{gen_ai_agent_name}} {{evolution_type}}")],
                       steps=thresholds(("green", None), ("red", THRESHOLDS["evolution_memory_peak_bytes"]))),
            timeseries("Process CPU during runs",
                       "CPU used by the processes that run evolutions (cores). Per-run CPU time is on each evolve "
                       "span (process.cpu.time); the contract has no per-run CPU metric.", "percentunit",
                       [target(f"sum by (job, instance) (rate({sc.PROCESS_CPU_TIME_PROMETHEUS}[{RI}]))",
                               "{{job}} {{instance}}")]),
        ],
    )


def jobs_tools() -> dict:
    j = f'{JOB_TYPE}=~"$job_type"'
    t = f'{TOOL}=~"$tool"'
    return dashboard(
        "agent-otel-jobs-tools", "agent-otel / Jobs & tools",
        "Jobs (workflow runs) and tools/plugins: throughput, duration, outcomes and reliability.",
        [query_variable("job_type", "Job type", f"{JOB_DUR}_count", JOB_TYPE),
         query_variable("tool", "Tool", f"{TOOL_DUR}_count", TOOL)],
        [
            row("Jobs"),
            timeseries("Job outcomes", "Jobs finishing per second, by type and outcome.", "ops",
                       [target(f"sum by ({JOB_TYPE}, {JOB_OUTCOME}) (rate({JOB_DUR}_count{{{j}}}[{RI}]))",
                               "{{job_type}} {{job_outcome}}")], stack=True, w=8),
            timeseries("Job failure ratio", "Share of jobs ending in failure or error, over 1 hour.", "percentunit",
                       [target(f"job_type:job_failures_per_jobs:ratio_rate1h{{{j}}}", "{{job_type}}")],
                       minmax=(0, 1), w=8),
            timeseries("Job duration", "p50 and p95 job duration per type; exemplars link to the job's trace.", "s",
                       quantiles(JOB_DUR, JOB_TYPE, j)[:2], w=8),
            row("Tools and plugins"),
            status_history("Tool reliability",
                           "Share of tool executions without error over 5 minutes, per tool: a reliability heatmap.",
                           "percentunit",
                           [target(f"1 - tool:gen_ai_execute_tool_errors_per_executions:ratio_rate5m{{{t}}}",
                                   "{{gen_ai_tool_name}}")],
                           minmax=(0, 1), steps=thresholds(("red", None), ("yellow", 0.9), ("green", 0.99)), w=24),
            bargauge("Most used tools (24h)", "Executions in the last 24 hours, top 10 tools.", "short",
                     [target(f"topk(10, tool:{TOOL_DUR}_count:rate1d{{{t}}} * 86400)", "{{gen_ai_tool_name}}",
                             instant=True)], w=8),
            timeseries("Tool latency p95", "p95 execution time per tool; exemplars link to traces.", "s",
                       [target(f"histogram_quantile(0.95, sum by (le, {TOOL}) (rate({TOOL_DUR}_bucket{{{t}}}[{RI}])))",
                               "{{gen_ai_tool_name}}", exemplar=True)], w=8),
            timeseries("Tool errors by type", "Failed tool executions per second, by tool and error type.", "ops",
                       [target(f'sum by ({TOOL}, {ERROR_TYPE}) (rate({TOOL_DUR}_count{{{t},{ERROR_TYPE}!=""}}[{RI}]))',
                               "{{gen_ai_tool_name}} {{error_type}}")], stack=True, w=8),
        ],
    )


def system() -> dict:
    sel = 'job=~"$job",instance=~"$instance"'
    return dashboard(
        "agent-otel-system", "agent-otel / System",
        "Processes running agent-otel: CPU, memory, threads, instrumentation errors and scrape health.",
        [query_variable("job", "Job", sc.PROCESS_MEMORY_USAGE_PROMETHEUS, "job"),
         {**query_variable("instance", "Instance", f'{sc.PROCESS_MEMORY_USAGE_PROMETHEUS}{{job=~"$job"}}',
                           "instance")}],
        [
            row("Process"),
            timeseries("Process CPU", "CPU time per second by mode (1.0 = one core fully busy).", "percentunit",
                       [target(f"sum by (job, instance, type) (rate({sc.PROCESS_CPU_TIME_PROMETHEUS}{{{sel}}}[{RI}]))",
                               "{{instance}} {{type}}")], stack=True),
            timeseries("Process memory", "Resident memory of each process, and its linear prediction 4 h ahead "
                       "(what the exhaustion alert compares against its limit).", "bytes",
                       [target(f"max by (job, instance) ({sc.PROCESS_MEMORY_USAGE_PROMETHEUS}{{{sel}}})",
                               "{{instance}} RSS"),
                        target(f"max by (job, instance) (predict_linear({sc.PROCESS_MEMORY_USAGE_PROMETHEUS}"
                               f"{{{sel}}}[1h], {THRESHOLDS['process_memory_prediction_seconds']}))",
                               "{{instance}} predicted in 4h")],
                       steps=thresholds(("green", None), ("red", THRESHOLDS["process_memory_limit_bytes"]))),
            timeseries("Threads", "Threads per process.", "short",
                       [target(f"max by (job, instance) ({sc.PROCESS_THREAD_COUNT_PROMETHEUS}{{{sel}}})",
                               "{{instance}}")], w=8),
            timeseries("Instrumentation errors by stage",
                       "Failures inside agent-otel per second, by stage. agent-otel never raises into the host; "
                       "each failure is a piece of lost telemetry.", "ops",
                       [target(f"sum by (instance, {STAGE}) (rate({SELF_ERRORS}{{{sel}}}[{RI}]))",
                               "{{instance}} {{agent_otel_stage}}")], stack=True, w=8),
            stat("Targets up", "Scrape targets carrying agent-otel telemetry that answered their last scrape.",
                 "short", [target(f"sum(up{{{THRESHOLDS['target_selector']}}})", "up", instant=True)], w=4,
                 steps=thresholds(("red", None), ("green", 1))),
            stat("Alerts firing", "agent-otel alerts currently firing, all severities.", "short",
                 [target('count(ALERTS{alertname=~"AgentOtel.+",alertstate="firing"}) or vector(0)', "firing",
                         instant=True)], w=4, steps=thresholds(("green", None), ("red", 1))),
        ],
    )


DASHBOARDS = {
    "agents.json": agents,
    "providers.json": providers,
    "evolution.json": evolution,
    "jobs-tools.json": jobs_tools,
    "system.json": system,
}


def render() -> dict[Path, str]:
    return {OUT / name: json.dumps(build(), indent=2, sort_keys=True) + "\n" for name, build in DASHBOARDS.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a committed dashboard is stale")
    args = parser.parse_args(argv)
    stale = []
    for path, text in render().items():
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    for path in stale:
        print(f"stale: {path.relative_to(ROOT)} (run python -m mixin.gen_dashboards)", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
