"""An AI-fix coordinator written the way real ones are, with none of agent-otel's conventions.

Its shapes are the ones the config language must be able to describe (issue 13): a client that keeps
usage only as running totals, a provider chain whose outer function retries the raw request through a
backoff helper and falls back through a selection function, a health check returning False, agents
whose success is a list of fixes or a run state, and an evolution engine that reads its KPIs off
itself, picks its strategy inside the run and may roll back through a checkpoint helper.
"""
