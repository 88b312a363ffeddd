"""Random ids of agent-otel's own: job ids, and the trace and span ids of the tracer providers it builds.

They are drawn from a generator of agent-otel's, seeded from ``os.urandom`` and reseeded in a forked child: the host's
``random.seed()`` does not repeat them, and drawing them does not move the host's ``random`` stream. The SDK's
default id generator draws from the global ``random``: a program that seeds it for a reproducible run (openevolve
does, by default) got the same trace ids in every run, and other random numbers of its own than without agent-otel,
two draws per span. Ids, not secrets.
"""

from __future__ import annotations

import os
import random

from opentelemetry import trace
from opentelemetry.sdk.trace.id_generator import IdGenerator

_ids = random.Random()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_ids.seed)  # a forked child draws other ids than its parent
random_bits = _ids.getrandbits


class OwnIdGenerator(IdGenerator):
    """The SDK's random trace and span ids (all bits random, never the invalid zero), from agent-otel's generator."""

    def generate_span_id(self) -> int:
        span_id = random_bits(64)
        while span_id == trace.INVALID_SPAN_ID:
            span_id = random_bits(64)
        return span_id

    def generate_trace_id(self) -> int:
        trace_id = random_bits(128)
        while trace_id == trace.INVALID_TRACE_ID:
            trace_id = random_bits(128)
        return trace_id

    def is_trace_id_random(self) -> bool:
        return True
