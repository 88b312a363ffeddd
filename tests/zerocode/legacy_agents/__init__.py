"""A legacy agent application. It knows nothing of agent-otel or OpenTelemetry and is never edited
to suit them: tests/zerocode/agent-otel.toml instruments it from the outside."""
