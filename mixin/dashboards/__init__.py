"""The Grafana dashboards, built with grafana-foundation-sdk from the telemetry contract (metric and label names
from ``mixin.names``, thresholds from ``thresholds.yaml``): one module per dashboard, the shared panel kinds in
``common``, the writer and freshness check in ``generate``.

Usage: ``python -m mixin.dashboards`` (writes) or ``python -m mixin.dashboards --check`` (exit 1 when stale).
"""
