"""The monitoring mixin: recording rules, alerts, their unit tests and dashboards, generated from the
telemetry contract (``agent_otel.semconv``) and one config (``agent_otel/assets/thresholds.yaml``).

Development tooling, not shipped: the generated files are, under ``src/agent_otel/assets/``.
"""
