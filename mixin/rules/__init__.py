"""Prometheus recording rules, alerting rules and the recording rules' promtool unit tests.

Inputs: the telemetry contract (every metric and label name, through :mod:`mixin.names`) and
``src/agent_otel/assets/thresholds.yaml`` (every tunable, through :mod:`mixin.config`). Outputs, committed
under ``src/agent_otel/assets/prometheus/`` (tests/assets fails when they are stale):

- ``agent-otel.rules.yaml``            recording rules, ``level:metric:operations``
- ``agent-otel.alerts.yaml``           alerting rules
- ``tests/recording-*.test.yaml``      one ``promql_expr_test`` per recording rule and window

One module per domain builds that domain's recording rules and alerts: :mod:`~mixin.rules.agents`,
:mod:`~mixin.rules.calibration`, :mod:`~mixin.rules.providers`, :mod:`~mixin.rules.tools_jobs`,
:mod:`~mixin.rules.evolution` and :mod:`~mixin.rules.telemetry` (self-monitoring). :mod:`~mixin.rules.files`
puts them in files; :mod:`~mixin.rules.recording_tests` writes the unit tests from the workload in
``workload.yaml``. The alert unit tests (``tests/alerts*.test.yaml``) are written by hand.

Usage: ``python -m mixin.rules`` (writes) or ``python -m mixin.rules --check`` (exit 1 if stale).
"""
