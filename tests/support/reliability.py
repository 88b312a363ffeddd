"""Helpers of the reliability tests: an SDK span processor that counts spans instead of storing them,
hang detection, and one hypothesis profile so the property and fuzz tests stay fast and deterministic in
``make test``."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, settings
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider

from agent_otel import semconv
from tests.support.polling import wait_until

# The hypothesis profile of these tests (applied per test, so other tests keep the global one):
# modest example counts, no per-example deadline unless a test sets one (a 2-core CI box is noisy),
# derandomized so a failure reproduces. RELIABILITY_EXAMPLES=2000 runs more locally.
settings.register_profile(
    "reliability", max_examples=int(os.environ.get("RELIABILITY_EXAMPLES", "200")), deadline=None,
    derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
RELIABILITY = settings.get_profile("reliability")


def completes(fn: Callable[[], Any], what: str, timeout_s: float) -> tuple[Any, float]:
    """Run ``fn`` on a daemon thread and wait until it returns: hang detection (``timeout_s`` is
    generous), never a measured-duration check. Re-raises its exception; returns its result and the
    seconds it took (to print)."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        began = time.monotonic()
        try:
            outcome["result"] = fn()
        except BaseException as exc:
            outcome["error"] = exc
        outcome["seconds"] = time.monotonic() - began

    thread = threading.Thread(target=run, name=f"completes: {what}", daemon=True)
    thread.start()
    wait_until(lambda: not thread.is_alive(), what, timeout_s=timeout_s)
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("result"), outcome["seconds"]


class CountingSpanProcessor(SpanProcessor):
    """Counts starts and ends per span id (never keeps the spans), spans ended twice, spans ended
    without a job id, and spans per job id and per name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started = 0
        self.ended_ids: set[tuple[int, int]] = set()
        self.ended_twice = 0
        self.without_job: list[str] = []
        self.per_job: Counter[str] = Counter()
        self.per_name: Counter[str] = Counter()
        self.job_spans: dict[str, dict[str, Any]] = {}

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        with self._lock:
            self.started += 1

    def on_end(self, span: ReadableSpan) -> None:
        key = (span.context.trace_id, span.context.span_id)
        attributes = span.attributes or {}
        job_id = attributes.get(semconv.JOB_ID)
        with self._lock:
            if key in self.ended_ids:
                self.ended_twice += 1
            self.ended_ids.add(key)
            self.per_name[span.name] += 1
            if job_id is None:
                self.without_job.append(span.name)
            else:
                self.per_job[str(job_id)] += 1
            if attributes.get(semconv.GEN_AI_OPERATION_NAME) == semconv.OPERATION_INVOKE_WORKFLOW:
                self.job_spans[str(job_id)] = dict(attributes)

    @property
    def ended(self) -> int:
        return len(self.ended_ids)

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class EndedTwiceLog(logging.Handler):
    """The SDK ignores a second ``span.end()`` (and attributes set after the end) but logs a warning
    about an "ended span": count those."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "ended span" in record.getMessage():
            self.count += 1


@dataclass
class Counted:
    spans: CountingSpanProcessor
    reader: InMemoryMetricReader
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    ended_twice_log: EndedTwiceLog

    def metrics(self) -> dict[str, Any]:
        data = self.reader.get_metrics_data()
        result: dict[str, Any] = {}
        for rm in data.resource_metrics if data is not None else ():
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    result[metric.name] = metric
        return result


def points(metrics: dict[str, Any], name: str, **match: Any) -> list[Any]:
    """Data points of ``name`` whose attributes include ``match`` (pass dotted keys as ``**{"a.b": v}``)."""
    metric = metrics.get(name)
    if metric is None:
        return []
    return [p for p in metric.data.data_points if all(p.attributes.get(k) == v for k, v in match.items())]
