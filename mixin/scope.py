"""Scoping, as monitoring mixins do it: which series every rule, alert and panel reads (``selector`` of
thresholds.yaml) and the labels that keep deployments apart in every aggregation (``scope_labels``).

agent-otel's own metrics are also matched by their instrumentation scope (``otel_scope_name``), so that another
GenAI instrumentation emitting the same ``gen_ai_*`` names into the same Prometheus is never counted with them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent_otel import semconv as sc
from mixin.config import THRESHOLDS_FILE
from mixin.rules.rule import Thresholds

#: Matches the series of agent-otel's own instruments, on both paths (our /metrics and the Collector's exporter).
OURS = f'otel_scope_name="{sc.SCOPE_NAME}"'
#: The labels every series carries from its resource (semconv.SCOPING_RESOURCE_ATTRIBUTES), on both paths.
PROMOTED = tuple(sc.prometheus_label(key) for key in sc.SCOPING_RESOURCE_ATTRIBUTES)
SERVICE, ENVIRONMENT = PROMOTED
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


@dataclass(frozen=True)
class Scope:
    """``selector``: label matchers without braces ('' selects everything); ``labels``: the scope labels."""

    selector: str
    labels: tuple[str, ...]

    def series(self, metric: str, *matchers: str, ours: bool = True) -> str:
        """``metric{...}`` with the selector, agent-otel's scope (unless ``ours`` is False: process metrics come
        from another instrumentation) and ``matchers``."""
        parts = [part for part in ((OURS if ours else ""), self.selector, *matchers) if part]
        return f"{metric}{{{','.join(parts)}}}" if parts else metric

    def by(self, *labels: str) -> str:
        """The scope labels, then ``labels``: the body of every ``by (...)`` and ``on (...)``."""
        return ", ".join((*self.labels, *labels))


def load_scope(t: Thresholds) -> Scope:
    """The scope of thresholds.yaml, checked: a clear error names the file, the key and the problem."""
    where = THRESHOLDS_FILE.name
    selector = t.get("selector")
    if not isinstance(selector, str) or "{" in selector or "}" in selector:
        raise SystemExit(f"{where}: selector: expected label matchers without braces, e.g. "
                         f"'{ENVIRONMENT}=\"prod\"' (or '' for every series), got {selector!r}")
    labels = t.get("scope_labels")
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) and _LABEL.fullmatch(x)
                                                                  for x in labels):
        raise SystemExit(f"{where}: scope_labels: expected a list of label names, got {labels!r}")
    unknown = [x for x in labels if x not in (*PROMOTED, "job")]
    if unknown:
        raise SystemExit(f"{where}: scope_labels: {unknown} are not on every series; use job and the labels of "
                         f"semconv.SCOPING_RESOURCE_ATTRIBUTES ({', '.join(PROMOTED)})")
    if not set(PROMOTED) <= set(labels):
        raise SystemExit(f"{where}: scope_labels: must keep {', '.join(PROMOTED)}: the dashboards' service and "
                         "environment variables filter on them")
    return Scope(selector.strip(), tuple(labels))


def eq(label: str, value: str) -> str:
    """The matcher ``label="value"`` (for :meth:`Scope.series`)."""
    return f'{label}="{value}"'


def ne(label: str, value: str) -> str:
    """The matcher ``label!="value"``."""
    return f'{label}!="{value}"'
