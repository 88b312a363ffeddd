"""Helpers for the kind tests: drive every callable shape, find metric points, check contract rows."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from agent_otel import semconv

SHAPES = ("sync", "async", "generator", "async_generator")
CHUNKS = ("c1", "c2")


def shaped(shape: str, decorate: Callable[[Any], Any], body: Callable[[Any], Any]) -> Any:
    """A function of one parameter ``task`` of the given shape, running ``body(task)`` and decorated.
    Generators yield CHUNKS first; an async generator cannot return, so its body's value is lost."""
    if shape == "sync":
        def func(task: Any) -> Any:
            return body(task)
    elif shape == "async":
        async def func(task: Any) -> Any:
            await asyncio.sleep(0)
            return body(task)
    elif shape == "generator":
        def func(task: Any) -> Any:
            yield from CHUNKS
            return body(task)
    else:
        async def func(task: Any) -> Any:
            for chunk in CHUNKS:
                yield chunk
            body(task)
    return decorate(func)


def drive(shape: str, func: Any, *args: Any, **kwargs: Any) -> Any:
    """Call ``func`` as its shape requires, to the end; returns the return value (None for async gens)."""
    if shape == "sync":
        return func(*args, **kwargs)
    if shape == "async":
        return asyncio.run(func(*args, **kwargs))
    if shape == "generator":
        gen = func(*args, **kwargs)
        items = []
        while True:
            try:
                items.append(next(gen))
            except StopIteration as stop:
                assert tuple(items) == CHUNKS
                return stop.value

    async def consume() -> list[Any]:
        return [item async for item in func(*args, **kwargs)]

    assert tuple(asyncio.run(consume())) == CHUNKS
    return None


def points(otel: Any, name: str, where: dict[str, Any] | None = None) -> list[Any]:
    """Points of metric ``name`` whose attributes include all of ``where``."""
    return list(otel.points(name, where))


def point(otel: Any, name: str, where: dict[str, Any] | None = None) -> Any:
    found = points(otel, name, where)
    assert len(found) == 1, f"{name} {where}: {[dict(p.attributes) for p in otel.points(name)]}"
    return found[0]


def assert_instrument(otel: Any, spec: semconv.Instrument) -> list[Any]:
    """The metric exists with the contract's unit (and buckets, for histograms); returns its points."""
    metric = otel.metrics().get(spec.name)
    assert metric is not None, f"no metric {spec.name}; have {sorted(otel.metrics())}"
    assert metric.unit == spec.unit, (spec.name, metric.unit)
    assert metric.description == spec.description
    found = list(metric.data.data_points)
    assert found
    for p in found:
        assert set(p.attributes) <= set(spec.attributes), (spec.name, dict(p.attributes))
        if spec.kind is semconv.Kind.HISTOGRAM:
            assert list(p.explicit_bounds) == list(spec.buckets), spec.name
    return found


def assert_no_ids_on_metrics(otel: Any) -> None:
    for name, metric in otel.metrics().items():
        for p in metric.data.data_points:
            assert not set(p.attributes) & semconv.ID_ATTRIBUTES, (name, dict(p.attributes))


def error_count(otel: Any, stage: str) -> int:
    found = points(otel, semconv.INSTRUMENTATION_ERRORS.name, {semconv.INSTRUMENTATION_STAGE: stage})
    return sum(p.value for p in found)
