"""``agent-otel report --format html``: one self-contained page for people without a Grafana.

The report's tables (the same rows and formatting as the text report, :mod:`.render`) and a time-series
chart per key panel (:mod:`.charts`), drawn by matplotlib as inline SVG: no JavaScript, no font or
stylesheet to fetch, and a Content-Security-Policy that lets the page load nothing from anywhere, so
it reads the same offline. Imported only for ``--format html``: matplotlib is the optional ``html`` extra.
"""

from __future__ import annotations

import datetime
import html
import io

import matplotlib
from matplotlib import dates as mdates
from matplotlib import ticker
from matplotlib.figure import Figure

from agent_otel._ops.report.charts import CHARTS, Chart, Series, chart_series, resolution
from agent_otel._ops.report.queries import WINDOWS, Prometheus, Report
from agent_otel._ops.report.render import COLUMNS, FORMATTERS, NUMERIC, TITLES, heading, visible_columns

#: The page may load nothing: styles are inline, charts are inline SVG.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em auto; max-width: 1100px; padding: 0 1em; color: #222; }
h1 { font-size: 1.4em; margin-bottom: .2em; }
h2 { font-size: 1.15em; margin: 1.6em 0 .4em; }
p.meta { color: #555; margin: .2em 0; }
figure.chart { margin: 1em 0 1.5em; }
figure.chart figcaption { font-weight: 600; }
figure.chart figcaption span { font-weight: normal; color: #555; }
figure.chart svg { width: 100%; height: auto; display: block; }
p.empty { color: #777; font-style: italic; }
table { border-collapse: collapse; margin: .3em 0 1em; }
th, td { padding: .2em .7em; border-bottom: 1px solid #ddd; white-space: nowrap; }
th { text-align: left; background: #f4f4f4; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
"""

UNIT_LABELS = {"ratio": "", "seconds": "seconds", "usd_per_hour": "US$ per hour", "per_hour": "per hour"}


def _days(unix_seconds: float) -> float:
    """matplotlib's date number (days since the date.epoch :func:`_svg` sets) of a Unix time."""
    return unix_seconds / 86400


def _svg(chart: Chart, series: Series, start: float, end: float) -> str:
    """The chart as an inline ``<svg>`` element."""
    # Text drawn as paths needs no font to view; a salt per chart keeps the SVG ids unique across the page.
    with matplotlib.rc_context({"date.epoch": "1970-01-01T00:00:00", "svg.fonttype": "path",
                                "svg.hashsalt": f"agent-otel-{chart.key}"}):
        figure = Figure(figsize=(10, 3.2), layout="constrained")
        axes = figure.subplots()
        for key, points in sorted(series.items()):
            if points:
                axes.plot([_days(at) for at, _ in points], [value for _, value in points],
                          label=" ".join(part or "-" for part in key),
                          linewidth=1.4, marker="o" if len(points) < 3 else None, markersize=3)
        axes.set_xlim(_days(start), _days(end))
        # (matplotlib.dates has no type annotations)
        locator = mdates.AutoDateLocator(tz=datetime.UTC)  # type: ignore[no-untyped-call]
        axes.xaxis.set_major_locator(locator)
        axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=datetime.UTC))  # type: ignore[no-untyped-call]
        if chart.unit == "ratio":
            axes.yaxis.set_major_formatter(ticker.PercentFormatter(1.0))
        axes.set_ylabel(UNIT_LABELS[chart.unit])
        # Autoscaling keeps a 5 % margin, so a provider at 100 % is drawn below the top edge, not on it.
        axes.margins(x=0, y=0.05)
        axes.grid(True, color="#e5e5e5")
        axes.set_xlabel("UTC")
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize="small")
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None, "Type": None, "Format": None})
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def _chart_html(chart: Chart, series: Series, start: float, end: float) -> str:
    caption = (f"<figcaption>{html.escape(chart.title)} <span>{html.escape(chart.description)}</span>"
               f"</figcaption>")
    if not any(series.values()):
        return f'<figure class="chart" id="chart-{chart.key}">{caption}<p class="empty">no data in this window</p>' \
               f"</figure>"
    return f'<figure class="chart" id="chart-{chart.key}">{caption}\n{_svg(chart, series, start, end)}</figure>'


def _table_html(report: Report, name: str) -> str:
    rows = report.sections.get(name, [])
    if not rows:
        return '<p class="empty">no data in this window</p>'
    columns = visible_columns(report, name)
    head = "".join(f'<th{" class=num" if kind in NUMERIC else ""}>{html.escape(header)}</th>'
                   for _, header, kind in columns)
    body = "\n".join(
        "<tr>" + "".join(f'<td{" class=num" if kind in NUMERIC else ""}>{html.escape(FORMATTERS[kind](row.get(key)))}'
                         "</td>" for key, _, kind in columns) + "</tr>"
        for row in rows)
    return f'<table id="table-{name}"><thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody></table>'


def html_page(report: Report, prom: Prometheus) -> str:
    """The whole page; the charts' range queries go to ``prom`` over the report's window and selector."""
    window = report.meta["window"]
    series = chart_series(prom, window, report.meta["selector"])
    res = resolution(window)
    notes = [*heading(report), f"Charts: one point every {res.step_s} s, each over the {res.range_s} s before it."]
    start = prom.time - WINDOWS[window]
    first = min((points[0][0] for by_key in series.values() for points in by_key.values() if points), default=start)
    if first > start + res.step_s:
        # All charts share the time axis of the data (at least 10 points wide), instead of squeezing it against
        # the right edge; heading() already says how much of the window the data covers.
        start = max(start, min(first, prom.time - 10 * res.step_s))
    lines = [f'<p class="meta">{html.escape(line)}</p>' for line in notes]
    charts = "\n".join(_chart_html(chart, series[chart.key], start, prom.time) for chart in CHARTS)
    tables = "\n".join(f"<h2>{html.escape(TITLES[name])}</h2>\n{_table_html(report, name)}" for name in COLUMNS)
    title = f"agent-otel report: last {window}"
    return (f'<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            f"<h1>{html.escape(title)}</h1>\n" + "\n".join(lines) + "\n"
            f"<h2>Charts</h2>\n{charts}\n{tables}\n</body>\n</html>\n")

