"""``make bench`` divides each wrapped call by its SDK floor (``bench/floors.py``): the SDK alone recording what the
call recorded. A ratio is honest only if the floor records exactly that, split as ours splits it: the attributes
the span starts with at its start, those known only when the call has run (its outcome, usage, a job's roll-ups)
as it ends."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import Histogram, InMemoryMetricReader
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import agent_otel
from agent_otel._engine import instruments
from tests.support.paths import ROOT


def _floors() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_floors", ROOT / "bench" / "floors.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (its dataclass looks its module up)
    spec.loader.exec_module(module)
    return module


floors = _floors()


def _completion(x: int) -> dict[str, Any]:
    return {"model": "gpt-4o", "usage": {"prompt_tokens": 120, "completion_tokens": 40}}


def _success(x: int) -> dict[str, Any]:
    return {"success": True}


KINDS: dict[str, tuple[Callable[[Callable[..., Any]], Callable[..., Any]], Callable[[int], Any]]] = {
    "agent": (agent_otel.agent("planner", task_type="plan"), _success),
    "provider": (agent_otel.provider("openai", model="gpt-4o"), _completion),
    "tool": (agent_otel.tool("ruff"), _success),
    "evolution": (agent_otel.evolution("planner", type="nightly", sample_resources=False), _success),
    "job": (agent_otel.job(type="bench"), _success),
}


class _Started(SpanProcessor):
    """The attributes each span started with."""

    def __init__(self) -> None:
        self.attributes: list[dict[str, Any]] = []

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.attributes.append(dict(span.attributes or {}))


def _recording(run: Callable[[TracerProvider, MeterProvider], None]) -> tuple[dict[str, Any], dict[str, Any],
                                                                                 list[tuple[str, dict[str, Any]]]]:
    """(start attributes, end attributes, the histograms' names and attributes) of the one span ``run`` makes."""
    started, spans, reader = _Started(), InMemorySpanExporter(), InMemoryMetricReader()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(started)
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    run(tracer_provider, MeterProvider(metric_readers=[reader]))
    [span] = spans.get_finished_spans()
    data = reader.get_metrics_data()
    histograms = sorted((metric.name, dict(point.attributes or {}))
                        for resource in (data.resource_metrics if data else ()) for scope in resource.scope_metrics
                        for metric in scope.metrics if isinstance(metric.data, Histogram)
                        for point in metric.data.data_points)
    return started.attributes[0], dict(span.attributes or {}), histograms


@pytest.fixture
def own_runtime() -> Iterator[None]:
    """The floors build agent-otel's runtime on providers of their own: the next test builds its own again."""
    yield
    instruments.forget_runtime()


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_floor_records_what_ours_records_split_as_ours_splits_it(kind: str, own_runtime: None) -> None:
    decorate, body = KINDS[kind]
    wrapped = decorate(body)

    def ours(tracer_provider: TracerProvider, meter_provider: MeterProvider) -> None:
        instruments.build_runtime(tracer_provider, meter_provider)
        wrapped(1)

    def floor(tracer_provider: TracerProvider, meter_provider: MeterProvider) -> None:
        recorded = floors.record_one_call(lambda: wrapped(1), tracing=True)
        floors.floor_function(recorded, tracer_provider, meter_provider, "sync", body)(1)

    our_start, our_end, our_histograms = _recording(ours)
    floor_start, floor_end, floor_histograms = _recording(floor)
    if kind == "job":  # each job has an id of its own
        assert floor_start.pop("job.id") != our_start.pop("job.id")
        floor_end.pop("job.id"), our_end.pop("job.id")
    assert floor_start == our_start
    assert floor_end == our_end
    assert floor_histograms == our_histograms
    if kind != "tool":  # a tool call's span ends with what it started with
        assert set(our_end) > set(our_start)
