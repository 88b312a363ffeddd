"""The report as an aligned text table, one JSON object, or one CSV.

- ``table``: a title (and a line saying so when the data covers less than the window), then one section
  per question with a header row; ratios in %, durations in seconds, money in US dollars, counts whole
  (ratios computed from them);
  ``-`` where there is no data.
- ``json``: ``{"report": {...}, "agents": [...], "patterns": [...], "providers": [...],
  "provider_models": [...], "calibration": [...], "evolution": [...], "kpis": [...], "jobs": [...],
  "tools": [...], "phases": [...], "plugins_by_phase": [...], "workflow_patterns": [...],
  "agent_versions": [...]}``; every number a
  JSON number (counts whole, ratios 0..1, seconds, USD), ``null`` where
  there is no data. ``report`` says since when the window holds data (``data_since``, ``covered_s``) and
  whether that is less than the window (``partial``).
- ``csv``: one header row with the union of every section's columns, led by ``section``; each row fills
  the columns of its section and leaves the others empty. The ``report`` section holds the run's
  parameters as ``key``/``value`` rows.
"""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

from agent_otel._ops.report.queries import Report
from agent_otel._ops.report.versions import COLUMNS as VERSION_COLUMNS
from agent_otel._ops.report.versions import TITLES as VERSION_TITLES
from agent_otel._ops.report.workflows import COLUMNS as WORKFLOW_COLUMNS
from agent_otel._ops.report.workflows import TITLES as WORKFLOW_TITLES
from agent_otel.semconv import CONFIDENCE_BAND_EDGES

#: (key, header, format) per section, in output order. Formats: text, count, ratio, usd, seconds, number.
COLUMNS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "agents": (("agent", "AGENT", "text"), ("invocations", "INVOCATIONS", "count"),
               ("success_ratio", "SUCCESS", "ratio"), ("avg_cost_usd", "AVG COST", "usd"),
               ("avg_latency_s", "AVG LATENCY", "seconds"), ("p95_latency_s", "P95 LATENCY", "seconds")),
    "patterns": (("agent", "AGENT", "text"), ("pattern", "PATTERN", "text"), ("uses", "USES", "count"),
                 ("share", "SHARE", "ratio")),
    "providers": (("provider", "PROVIDER", "text"), ("calls", "CALLS", "count"), ("errors", "ERRORS", "count"),
                  ("slow", "SLOW", "count"), ("availability", "AVAILABILITY", "ratio"),
                  ("p95_latency_s", "P95 LATENCY", "seconds"), ("retries", "RETRIES", "count"),
                  ("fallbacks", "FALLBACKS AWAY", "count"), ("fallback_ratio", "FALLBACK RATIO", "ratio"),
                  ("cost_usd", "COST", "usd")),
    "provider_models": (("provider", "PROVIDER", "text"), ("model", "MODEL", "text"), ("calls", "CALLS", "count"),
                        ("errors", "ERRORS", "count"), ("slow", "SLOW", "count"),
                        ("availability", "AVAILABILITY", "ratio"), ("p95_latency_s", "P95 LATENCY", "seconds"),
                        ("retries", "RETRIES", "count"), ("cost_usd", "COST", "usd")),
    "calibration": (("agent", "AGENT", "text"), ("band", "CONFIDENCE BAND", "text"),
                    ("invocations", "INVOCATIONS", "count"), ("success_ratio", "SUCCESS", "ratio")),
    "evolution": (("agent", "AGENT", "text"), ("evolution_type", "TYPE", "text"), ("attempts", "ATTEMPTS", "count"),
                  ("succeeded", "SUCCEEDED", "count"), ("failed", "FAILED", "count"),
                  ("rolled_back", "ROLLED BACK", "count"), ("success_ratio", "SUCCESS", "ratio"),
                  ("best_improvement", "BEST IMPROVEMENT", "number")),
    "kpis": (("agent", "AGENT", "text"), ("kpi", "KPI", "text"), ("value", "CURRENT", "number")),
    "jobs": (("job_type", "JOB TYPE", "text"), ("runs", "RUNS", "count"), ("failures", "FAILED", "count"),
             ("failure_ratio", "FAILURE RATIO", "ratio"), ("p95_duration_s", "P95 DURATION", "seconds"),
             ("cost_usd", "COST", "usd")),
    "tools": (("tool", "TOOL", "text"), ("calls", "CALLS", "count"), ("errors", "ERRORS", "count"),
              ("error_ratio", "ERROR RATIO", "ratio"), ("p95_latency_s", "P95 LATENCY", "seconds")),
    **WORKFLOW_COLUMNS,
    **VERSION_COLUMNS,
}

_LOW, _HIGH = CONFIDENCE_BAND_EDGES
TITLES = {
    "agents": "Agents",
    "patterns": "Patterns used",
    "providers": "Providers",
    "provider_models": "Providers by model",
    # semconv.CONFIDENCE_BAND_EDGES, counted exactly as the shipped calibration rules count them.
    "calibration": f"Confidence calibration (bands of stated confidence: low < {_LOW} <= medium < {_HIGH} <= high)",
    "evolution": "Evolution",
    "kpis": "Current KPIs",
    # Model cost carries no job type, so there is no cost per job type.
    "jobs": "Jobs by type (failed: ended in failure or error)",
    "tools": "Tools (errors: executions that raised)",
    **WORKFLOW_TITLES,
    **VERSION_TITLES,
}

#: Text columns are left-aligned, numbers right-aligned.
NUMERIC = {"count", "ratio", "usd", "seconds", "number"}


def fmt_count(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f} %"


def fmt_usd(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0:
        return "$0.00"
    if abs(value) >= 1:
        return f"${value:,.2f}"
    # below a dollar, three significant digits (at least two decimals, no trailing zero past them): $0.0108 and
    # $0.0099, where cents alone read $0.01 for both and put the larger below the smaller's $0.00990
    decimals = min(10, max(2, 2 - math.floor(math.log10(abs(value)))))
    text = f"{value:.{decimals}f}"
    whole, _, fraction = text.partition(".")
    return f"${whole}.{fraction[:2] + fraction[2:].rstrip('0')}"


def fmt_seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f} s" if value < 10 else f"{value:,.1f} s"


def fmt_span(seconds: float) -> str:
    """A duration in its two largest units: 45s, 17m, 3h 5m, 2d 4h."""
    if seconds < 60:
        return f"{round(seconds)}s"
    minutes = round(seconds / 60)
    days, hours, mins = minutes // 1440, minutes // 60 % 24, minutes % 60
    parts = [f"{days}d" if days else "", f"{hours}h" if hours else "", f"{mins}m" if mins and not days else ""]
    return " ".join(part for part in parts if part)


def fmt_number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def fmt_text(value: object) -> str:
    return "-" if value in (None, "") else str(value)


FORMATTERS = {"text": fmt_text, "count": fmt_count, "ratio": fmt_ratio, "usd": fmt_usd, "seconds": fmt_seconds,
              "number": fmt_number}


def aligned(columns: tuple[tuple[str, str, str], ...], rows: list[dict[str, Any]]) -> list[str]:
    cells = [[header for _, header, _ in columns]]
    cells += [[FORMATTERS[kind](row.get(key)) for key, _, kind in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = []
    for line in cells:
        parts = [cell.rjust(width) if kind in NUMERIC else cell.ljust(width)
                 for cell, width, (_, _, kind) in zip(line, widths, columns, strict=True)]
        lines.append("  ".join(parts).rstrip())
    return lines


def visible_columns(report: Report, name: str) -> tuple[tuple[str, str, str], ...]:
    """The columns of section ``name`` worth showing: the SLOW column only means something with --slow-ms."""
    if report.meta.get("slow_bound_s") is not None:
        return COLUMNS[name]
    return tuple(column for column in COLUMNS[name] if column[0] != "slow")


def heading(report: Report) -> list[str]:
    """What the report covers (and how --slow-ms counted), one line each."""
    meta = report.meta
    out = [f"agent-otel report: last {meta['window']} at {meta['prometheus']}, "
           f"series {meta['selector'] or '(all)'}, evaluated {meta['time_iso']}"]
    if meta.get("partial"):
        out.append(f"The data covers only the last {fmt_span(meta['covered_s'])} of the {meta['window']} window "
                   f"(since about {meta['data_since_iso']}): every number below is over that span.")
    if meta.get("slow_bound_s") is not None:
        out.append(f"Availability counts calls slower than {meta['slow_bound_s']:g} s as unavailable: the smallest "
                   f"duration bucket bound >= --slow-ms {meta['slow_ms']:g} (buckets are fixed).")
    return out


def table(report: Report) -> str:
    out = heading(report)
    for name in COLUMNS:
        rows = report.sections.get(name, [])
        out += ["", TITLES[name]]
        out += aligned(visible_columns(report, name), rows) if rows else ["(no data in this window)"]
    return "\n".join(out) + "\n"


def _clean(value: object) -> object:
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    return value


def as_json(report: Report) -> str:
    document: dict[str, Any] = {"report": dict(report.meta)}
    for name in COLUMNS:
        document[name] = [{key: _clean(value) for key, value in row.items()} for row in report.sections.get(name, [])]
    return json.dumps(document, indent=2) + "\n"


def as_csv(report: Report) -> str:
    header = ["section", "key", "value"]
    for name in COLUMNS:
        for row in report.sections.get(name, []):
            header += [key for key in row if key not in header]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    for key, value in report.meta.items():
        writer.writerow({"section": "report", "key": key, "value": "" if value is None else value})
    for name in COLUMNS:
        for row in report.sections.get(name, []):
            writer.writerow({"section": name, **{k: "" if v is None else _clean(v) for k, v in row.items()}})
    return buffer.getvalue()


RENDERERS = {"table": table, "json": as_json, "csv": as_csv}
