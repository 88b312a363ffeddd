"""The shapes every domain module builds (a rule, an alert, a group) and the PromQL helpers they share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: A rule as it is written to YAML: ``record``/``expr``/``labels`` or ``alert``/``expr``/``for``/....
Rule = dict[str, object]
#: ``thresholds.yaml`` as loaded.
Thresholds = dict[str, Any]

#: The quantiles recorded for every latency histogram.
QUANTILES = ("0.5", "0.95", "0.99")
#: Seconds per rule window (PromQL durations as keys).
WINDOW_SECONDS = {"5m": 300, "1h": 3600, "1d": 86400, "7d": 604800}


@dataclass
class Group:
    """A rule group; ``comment`` is written above it, ``interval`` overrides the global evaluation interval."""

    name: str
    comment: str
    rules: list[Rule]
    interval: str | None = None


def window_interval(window: str) -> str | None:
    """Long windows change slowly, so every minute would only burn CPU; 2m (not 5m) keeps the latest sample
    inside the 5m lookback of the alerts and panels that read it."""
    return "2m" if window in ("1d", "7d") else None


def window_groups(
    domain: str, windows: tuple[str, ...], comment: str, rules: Callable[[str], list[Rule]]
) -> list[Group]:
    """One group ``agent-otel-<domain>-<window>`` per window; ``{w}`` in ``comment`` is the window."""
    return [Group(f"agent-otel-{domain}-{w}", comment.format(w=w), rules(w), window_interval(w)) for w in windows]


def stem(counter: str) -> str:
    """Prometheus practice: `_total` is stripped from a counter's name once it has been rated."""
    return counter.removesuffix("_total")


def record(name: str, expr: str, labels: dict[str, str] | None = None) -> Rule:
    rule: Rule = {"record": name, "expr": expr}
    if labels:
        rule["labels"] = labels
    return rule


def ratio(numerator: str, denominator: str) -> str:
    """num / den, with an absent numerator read as 0 and an idle denominator giving no sample (not NaN)."""
    return f"(\n  {numerator}\n  or\n  0 * {denominator}\n)\n/\n({denominator} > 0)"


def quantile_rules(level: str, histogram: str, window: str) -> list[Rule]:
    """``level_quantile:histogram:histogram_quantile_rate<w>`` for each of :data:`QUANTILES`, read from the
    ``level_le:histogram_bucket:rate<w>`` rule the caller records."""
    return [
        record(
            f"{level}_quantile:{histogram}:histogram_quantile_rate{window}",
            f"histogram_quantile({q}, {level}_le:{histogram}_bucket:rate{window})",
            {"quantile": q},
        )
        for q in QUANTILES
    ]


def ratio_below(ratio_1h: str, threshold: float, by: str, rate_1h: str, min_per_hour: float) -> str:
    """``ratio_1h`` below ``threshold``, only where at least ``min_per_hour`` events (``rate_1h`` per second)
    happened: a ratio of a few events is noise (one failure of two calls is 50%)."""
    return f"{ratio_1h} < {threshold}\nand on ({by})\n{rate_1h} * 3600 >= {min_per_hour}"


def ratio_above(ratio_1h: str, threshold: float, by: str, rate_1h: str, min_per_hour: float) -> str:
    """``ratio_1h`` above ``threshold``, only where at least ``min_per_hour`` events happened (see
    :func:`ratio_below`)."""
    return f"{ratio_1h} > {threshold}\nand on ({by})\n{rate_1h} * 3600 >= {min_per_hour}"


@dataclass(frozen=True)
class LowTraffic:
    """What a low-traffic variant of a ratio alert judges: ``condition`` on the ratio over ``window``, with at
    least ``minimum`` events (``count``) in it, for what happened fewer than ``min_per_hour`` times an hour on
    average over that window, and in the last hour (``hourly``, the hourly alert's count, which judges the rest),
    per ``by``. A busy component idle at night is no low-traffic one: its outage was the hourly alert's, which the
    variant repeated for as long as the window held it. One busy hour does not make a low-traffic one busy: a
    component failing every call but in its daily batch went unalerted for as long as the window held the batch."""

    window: str
    condition: str
    by: str
    count: str
    minimum: float
    hourly: str
    min_per_hour: float


def low_traffic_alert(t: Thresholds, name: str, judged: LowTraffic, summary: str, description: str) -> Rule:
    """The variant of alert ``name`` for what happens too seldom for its hourly minimum volume, labelled with its
    window: a component called once an hour that fails every call is no noise, and alerted on nothing when every
    alert needed a minimum per hour. A warning, for an hour: a long window's ratio moves slowly."""
    hours = WINDOW_SECONDS[judged.window] // 3600
    expr = (f"{judged.condition}\nand on ({judged.by})\n{judged.count} >= {judged.minimum}\n"
            f"and on ({judged.by})\n{judged.count} < {judged.min_per_hour} * {hours}\n"
            f"unless on ({judged.by})\n{judged.hourly} >= {judged.min_per_hour}")
    return alert(t, name, expr, "1h", "warning", summary, description, window=judged.window)


def alert(t: Thresholds, name: str, expr: str, for_: str, severity: str, summary: str, description: str,
          window: str | None = None) -> Rule:
    """An alerting rule whose runbook is the section ``#<name in lower case>`` of the runbooks page. ``window``:
    the label of a variant that judges over a longer window than the alert's others (``1d``), which tells it
    apart from them (an alert's name and labels are its identity)."""
    return {
        "alert": name,
        "expr": expr,
        "for": for_,
        "labels": {"severity": severity, **({"window": window} if window else {})},
        "annotations": {
            "summary": summary,
            "description": description,
            "runbook_url": f"{t['runbook_base_url']}#{name.lower()}",
        },
    }


def pct(x: float) -> str:
    return f"{x * 100:g}%"


def gib(x: int) -> str:
    return f"{x / 2**30:g}GiB"


def duration(seconds: float) -> str:
    """A PromQL/Prometheus duration in the largest whole unit: 3600 -> 1h, 300 -> 5m."""
    whole = int(seconds)
    if whole % 3600 == 0:
        return f"{whole // 3600}h"
    if whole % 60 == 0:
        return f"{whole // 60}m"
    return f"{whole}s"


def value_of(label: str) -> str:
    """The alert template that prints a label's value: ``{{ $labels.<label> }}``."""
    return f"{{{{ $labels.{label} }}}}"


def queried_percentage(rule: str, labels: tuple[str, ...]) -> str:
    """The alert template printing ``rule``'s value for the alert's own ``labels`` (a query), as a percentage.
    Each label value goes into the query's PromQL string with its backslashes, quotes and newlines escaped: an
    agent named ``bob's agent`` broke the query, and the description read "error expanding template"."""
    matchers = ",".join(f"{name}='%s'" for name in labels)
    escaped = " ".join(f'($labels.{name} | reReplaceAll "([{_BACKSLASH}{_BACKSLASH}\'])" "{_BACKSLASH}$1" '
                       f'| reReplaceAll "{_BACKSLASH}n" "{_BACKSLASH}n")' for name in labels)
    return (f'{{{{ with printf "{rule}{{{matchers}}}" {escaped} | query }}}}'
            "{{ . | first | value | humanizePercentage }}{{ end }}")


#: A backslash in a Go template string literal (written twice there).
_BACKSLASH = "\\\\"
