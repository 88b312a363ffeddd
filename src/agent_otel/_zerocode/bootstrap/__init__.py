"""The directory ``agent-otel run`` puts on ``PYTHONPATH`` for the Python processes it starts."""
