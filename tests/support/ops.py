"""Helpers shared by the ops-asset tests: paths, required binaries, and a small PromQL name extractor.

The extractor is not a PromQL parser (promtool parses; see test_dashboards.py). It only has to find
every metric name and label name an expression mentions, so that they can be checked against the
telemetry contract.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import yaml

from tests.support.paths import ASSETS, ROOT

ALERTS = ASSETS / "prometheus"
RULES_FILE = ALERTS / "agent-otel.rules.yaml"
ALERTS_FILE = ALERTS / "agent-otel.alerts.yaml"
RULE_TESTS = sorted((ALERTS / "tests").glob("*.test.yaml"))
RUNBOOKS = ROOT / "docs" / "runbooks.md"
DASHBOARDS = sorted((ASSETS / "grafana" / "dashboards").glob("*.json"))
COLLECTOR = ASSETS / "collector"

INSTALL_HINT = "apt-get install -y --no-install-recommends prometheus prometheus-alertmanager (or `make deps`)"


def binary(name: str) -> str:
    """Path of a required tool. Missing is a failure, never a skip: these checks are the point."""
    path = shutil.which(name)
    assert path, f"{name} is not on PATH; install it: {INSTALL_HINT}"
    return path


#: agent-otel's own Collector, built from collector-config/ by `make collector` (a prerequisite of `make test`).
COLLECTOR_BINARY = ROOT / "bin" / "otelcol-agent-otel"


def collector_binary() -> str:
    """Path of bin/otelcol-agent-otel. Missing is a failure, never a skip: `make test` builds it first."""
    assert COLLECTOR_BINARY.is_file(), (f"{COLLECTOR_BINARY.relative_to(ROOT)} is missing: build it with "
                                        "`make collector` (needs Go >= 1.26; `make test` does it first)")
    return str(COLLECTOR_BINARY)


def load_yaml(path: Path) -> object:
    return yaml.safe_load(path.read_text())


def rule_groups(path: Path) -> list[dict]:
    return load_yaml(path)["groups"]


def all_rules(path: Path) -> list[dict]:
    return [rule for group in rule_groups(path) for rule in group["rules"]]


# --------------------------------------------------------------------------------------------------
# PromQL names
# --------------------------------------------------------------------------------------------------

FUNCTIONS = {
    "abs", "absent", "absent_over_time", "avg_over_time", "ceil", "changes", "clamp", "clamp_max",
    "clamp_min", "count_over_time", "day_of_month", "day_of_week", "days_in_month", "delta", "deriv",
    "exp", "floor", "histogram_quantile", "holt_winters", "hour", "idelta", "increase", "irate",
    "label_join", "label_replace", "last_over_time", "ln", "log10", "log2", "max_over_time",
    "min_over_time", "minute", "month", "predict_linear", "present_over_time", "quantile_over_time",
    "rate", "resets", "round", "scalar", "sgn", "sort", "sort_desc", "sqrt", "stddev_over_time",
    "stdvar_over_time", "sum_over_time", "time", "timestamp", "vector", "year",
}
AGGREGATIONS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk",
    "quantile",
}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
            "offset", "atan2", "inf", "nan", "Inf", "NaN"}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_SELECTOR_BODY = re.compile(r"\{([^{}]*)\}")
_MATCHER = re.compile(r"\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*$")
_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING_LIST = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)")
_NUMBER = re.compile(r"(?<![a-zA-Z_:0-9.])(\d+(?:\.\d+)?(?:e[+-]?\d+)?)(?![a-zA-Z_:0-9])")

#: Grafana variables replaced by a syntactically neutral value before a query is parsed or scanned.
GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
}


def substitute_grafana(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    expr = re.sub(r"\$\{(\w+)(?::\w+)?\}", r"var_\1", expr)
    return re.sub(r"\$(\w+)", r"var_\1", expr)


def selectors(expr: str) -> list[tuple[str | None, list[str]]]:
    """(metric name or None, [label names matched]) for every `{...}` selector in the expression."""
    out = []
    for match in _SELECTOR_BODY.finditer(expr):
        body = match.group(1)
        labels = []
        for part in _STRING.split(body):
            m = _MATCHER.match(part.lstrip(" ,\n\t")) if part.strip(" ,\n\t") else None
            if m:
                labels.append(m.group(1))
        before = expr[: match.start()]
        name = re.search(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*$", before)
        metric = name.group(1) if name and name.group(1) not in KEYWORDS | GROUPING else None
        out.append((metric, labels))
    return out


def metric_names(expr: str) -> set[str]:
    """Every metric (or recorded series) name the expression selects."""
    text = _STRING.sub('""', expr)
    text = _SELECTOR_BODY.sub("{}", text)
    text = _RANGE.sub("", text)
    text = _GROUPING_LIST.sub("", text)
    text = re.sub(r"(?<![a-zA-Z0-9_:])\d[\w.+-]*", " ", text)  # numbers and durations (offset 1h, 1e3)
    names = set()
    for match in _IDENT.finditer(text):
        word = match.group(0)
        following = text[match.end():].lstrip()
        if word in KEYWORDS or word in AGGREGATIONS or word in FUNCTIONS:
            continue
        if following.startswith("("):
            continue
        names.add(word)
    return names


def grouping_labels(expr: str) -> set[str]:
    """Label names listed in by/without/on/ignoring/group_left/group_right clauses."""
    text = _STRING.sub('""', expr)
    labels = set()
    for match in _GROUPING_LIST.finditer(text):
        labels.update(x.strip() for x in match.group(2).split(",") if x.strip())
    return labels


def _call_arguments(expr: str, start: int) -> list[str]:
    """The top-level arguments of the call whose opening parenthesis ends at ``start``: strings and nested
    brackets (a selector's matchers, an inner call) do not split them."""
    args, depth, current, i = [], 0, "", start
    while i < len(expr):
        string = _STRING.match(expr, i)
        if string:
            current, i = current + string.group(0), string.end()
            continue
        char = expr[i]
        if char in "({[":
            depth += 1
        elif char in ")}]":
            if depth == 0:
                break
            depth -= 1
        elif char == "," and depth == 0:
            args.append(current.strip())
            current, i = "", i + 1
            continue
        current += char
        i += 1
    return [*args, current.strip()]


def _label_function_arguments(expr: str) -> list[tuple[str, list[str]]]:
    """(label_replace or label_join, its string arguments after the vector, unquoted) for each call."""
    calls = []
    for match in re.finditer(r"label_(?:replace|join)\s*\(", expr):
        strings = [arg.strip("\"'") for arg in _call_arguments(expr, match.end())[1:]]
        calls.append((match.group(0).split("(")[0].strip(), strings))
    return calls


def function_string_labels(expr: str) -> set[str]:
    """Label names given as strings to label_replace/label_join (destination and sources)."""
    labels = set()
    for function, args in _label_function_arguments(expr):
        labels.update((args[0], args[2]) if function == "label_replace" else (args[0], *args[2:]))
    return {label for label in labels if label}


def created_labels(expr: str) -> set[str]:
    """The destination labels of label_replace/label_join: labels the query itself creates."""
    return {args[0] for _, args in _label_function_arguments(expr) if args and args[0]}


def numbers(expr: str) -> set[float]:
    """Numeric literals outside strings, selectors and range durations."""
    text = _STRING.sub('""', expr)
    text = _SELECTOR_BODY.sub("{}", text)
    text = _RANGE.sub("", text)
    text = re.sub(r"[a-zA-Z_:][a-zA-Z0-9_:]*", " ", text)
    return {float(n) for n in _NUMBER.findall(text)}


def github_anchor(heading: str) -> str:
    """The anchor GitHub (and most Markdown renderers) give a heading."""
    slug = heading.strip().lower()
    slug = re.sub(r"[^\w\- ]", "", slug)
    return slug.replace(" ", "-")


def markdown_anchors(path: Path) -> set[str]:
    return {
        github_anchor(line.lstrip("#"))
        for line in path.read_text().splitlines()
        if re.match(r"#{1,6} ", line)
    }


#: The dashboard panel whose cells show the worst deployment's value: its ``max by`` drops the scope labels on purpose.
WORST_DEPLOYMENT_MATRIX = "Plugin reliability by phase (1h)"
