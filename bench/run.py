"""`make bench`: per-call cost of agent-otel's wrappers as ratios to an idiomatic raw-OTel wrapper.

Everything runs in one process, interleaved over several rounds (these machines are noisy); the
table reports the median ns per call, the spread (max-min)/median, and the ratio to R measured in
the same rounds. Results go to stdout and docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import platform
import statistics
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil
import wrapt
from opentelemetry import trace
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from prometheus_client import CollectorRegistry, generate_latest

import agent_otel
from agent_otel import runtime as runtime_module
from agent_otel.exposition import AgentOtelPrometheusReader
from agent_otel.setup import histogram_views

ATTRS = {"agent": "planner", "task": "plan", "env": "bench"}


class DropExporter(SpanExporter):
    def export(self, spans: Any) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def work(x: int) -> dict:
    return {"success": True, "x": x}


def provider_work(x: int) -> dict:
    return {"model": "gpt-4o", "usage": {"prompt_tokens": 120, "completion_tokens": 40}}


def build_providers(sampled: bool) -> tuple[TracerProvider, MeterProvider]:
    tracer_provider = TracerProvider(sampler=None if sampled else ALWAYS_OFF)
    tracer_provider.add_span_processor(BatchSpanProcessor(DropExporter()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()], views=histogram_views())
    return tracer_provider, meter_provider


def raw_otel_wrapper(tracer_provider: TracerProvider, meter_provider: MeterProvider) -> Callable:
    """R: span with 3 attributes via start_as_current_span, a counter and a histogram inside it."""
    tracer = tracer_provider.get_tracer("raw")
    meter = meter_provider.get_meter("raw")
    counter = meter.create_counter("raw.calls")
    histogram = meter.create_histogram("raw.duration", unit="s")

    def decorate(func: Callable) -> Callable:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            with tracer.start_as_current_span("raw", attributes=ATTRS):
                result = func(*args, **kwargs)
                counter.add(1, ATTRS)
                histogram.record(time.perf_counter() - start, ATTRS)
            return result

        return wrapper

    return decorate


def use(tracer_provider: TracerProvider, meter_provider: MeterProvider, enabled: bool = True) -> None:
    runtime_module.build_runtime(tracer_provider, meter_provider, enabled=enabled)


def per_call_ns(func: Callable, calls: int) -> float:
    start = time.perf_counter_ns()
    for i in range(calls):
        func(i)
    return (time.perf_counter_ns() - start) / calls


def run_async(func: Callable, calls: int) -> float:
    async def loop() -> float:
        start = time.perf_counter_ns()
        for i in range(calls):
            await func(i)
        return (time.perf_counter_ns() - start) / calls

    return asyncio.run(loop())


def per_call_gen(func: Callable, calls: int) -> float:
    start = time.perf_counter_ns()
    for i in range(calls):
        for _ in func(i):
            pass
    return (time.perf_counter_ns() - start) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rss-calls", type=int, default=1_000_000)
    parser.add_argument("--out", default="docs/performance.md")
    args = parser.parse_args()

    full = build_providers(sampled=True)
    sampled_out = build_providers(sampled=False)
    no_tracing = (trace.NoOpTracerProvider(), full[1])
    raw = raw_otel_wrapper(*full)

    agent = agent_otel.agent("planner", task_type="plan")(work)
    provider = agent_otel.provider("openai", model="gpt-4o")(provider_work)
    tool = agent_otel.tool("ruff")(work)
    evolution = agent_otel.evolution("planner", type="nightly", sample_resources=False)(work)

    async def async_work(x: int) -> dict:
        return {"success": True}

    def gen_work(x: int) -> Any:
        yield 1
        yield 2
        yield 3

    async_agent = agent_otel.agent("planner")(async_work)
    gen_agent = agent_otel.agent("planner")(gen_work)

    async def async_raw_target(x: int) -> dict:
        return {"success": True}

    passthrough = wrapt.FunctionWrapper(work, lambda wrapped, instance, a, kw: wrapped(*a, **kw))
    raw_call = raw(work)
    raw_gen_tracer = full[0].get_tracer("raw")

    def raw_gen(x: int) -> Any:
        with raw_gen_tracer.start_as_current_span("raw", attributes=ATTRS):
            yield from gen_work(x)

    def job_enter_exit(x: int) -> None:
        with agent_otel.job("bench-job"):
            pass

    def bare_with(x: int) -> None:
        pass

    candidates: dict[str, tuple[Callable[[], float], str]] = {}
    n = args.calls

    def add(name: str, setup: tuple | None, measure: Callable[[], float], note: str, enabled: bool = True) -> None:
        def run() -> float:
            if setup is not None:
                use(*setup, enabled=enabled)
            return measure()

        candidates[name] = (run, note)

    add("floor: bare call", None, lambda: per_call_ns(work, n), "")
    add("floor: wrapt pass-through", None, lambda: per_call_ns(passthrough, n), "")
    add("R: raw OTel span(3 attrs)+counter+histogram", full, lambda: per_call_ns(raw_call, n), "")
    add("agent, full", full, lambda: per_call_ns(agent, n), "target <= 0.6 x R")
    add("provider (tokens+cost), full", full, lambda: per_call_ns(provider, n), "target <= 0.9 x R")
    add("tool, full", full, lambda: per_call_ns(tool, n), "")
    add("evolution, full (no sampling)", full, lambda: per_call_ns(evolution, n), "")
    add("agent, async, full", full, lambda: run_async(async_agent, n), "")
    add("agent, generator (3 items), full", full, lambda: per_call_gen(gen_agent, n), "")
    add("R: raw OTel generator span", full, lambda: per_call_gen(raw_gen, n), "")
    add("agent, metrics-only (span sampled out)", sampled_out, lambda: per_call_ns(agent, n), "target <= 0.3 x R")
    add("agent, metrics-only (tracing off)", no_tracing, lambda: per_call_ns(agent, n), "target <= 0.3 x R")
    add("provider, metrics-only (tracing off)", no_tracing, lambda: per_call_ns(provider, n), "target <= 0.3 x R")
    add("agent, disabled", full, lambda: per_call_ns(agent, n), "target <= 3 x wrapt pass-through", enabled=False)
    add("job() enter/exit", full, lambda: per_call_ns(job_enter_exit, n), "")
    add("empty call (job() baseline)", None, lambda: per_call_ns(bare_with, n), "")

    results: dict[str, list[float]] = {name: [] for name in candidates}
    gc.disable()
    for _ in range(args.rounds):
        for name, (run, _) in candidates.items():
            results[name].append(run())
    gc.enable()
    median = {name: statistics.median(values) for name, values in results.items()}
    r = median["R: raw OTel span(3 attrs)+counter+histogram"]

    rows = []
    for name, values in results.items():
        spread = (max(values) - min(values)) / median[name] if median[name] else 0
        rows.append((name, median[name], spread, median[name] / r, candidates[name][1]))

    exposition_rows = measure_exposition()
    rss_growth = measure_rss(args.rss_calls)
    job_added_us = (median["job() enter/exit"] - median["empty call (job() baseline)"]) / 1000
    write_report(args.out, rows, exposition_rows, rss_growth, args, job_added_us,
                 median["agent, disabled"] / median["floor: wrapt pass-through"])


def measure_exposition() -> list[tuple[int, float, float]]:
    rows = []
    for series in (10, 1000, 10000):
        stock_registry, ours_registry = CollectorRegistry(), CollectorRegistry()
        stock = PrometheusMetricReader(registry=stock_registry)
        ours = AgentOtelPrometheusReader()
        ours_registry.register(ours.collector)
        provider = MeterProvider(metric_readers=[stock, ours], views=histogram_views())
        meter = provider.get_meter("agent_otel")
        counter = meter.create_counter("bench.calls")
        histogram = meter.create_histogram("bench.duration", unit="s",
                                           explicit_bucket_boundaries_advisory=[0.1, 0.5, 1, 5])
        for i in range(series):
            attributes = {"agent": f"a{i}", "task": "t", "env": "e"}
            counter.add(1, attributes)
            histogram.record(0.3, attributes)
        times: dict[str, list[float]] = {"stock": [], "ours": []}
        for _ in range(5):
            for name, registry in (("stock", stock_registry), ("ours", ours_registry)):
                start = time.perf_counter()
                generate_latest(registry)
                times[name].append(time.perf_counter() - start)
        rows.append((series, statistics.median(times["stock"]) * 1000, statistics.median(times["ours"]) * 1000))
        provider.shutdown()
    return rows


def measure_rss(calls: int) -> float:
    full = build_providers(sampled=True)
    use(*full)
    agent = agent_otel.agent("planner", task_type="plan")(work)
    for i in range(10_000):  # warm up: series, caches, span processor queue
        agent(i)
    gc.collect()
    before = psutil.Process().memory_info().rss
    for i in range(calls):
        agent(i)
    gc.collect()
    return (psutil.Process().memory_info().rss - before) / 1e6


def write_report(out: str, rows: list, exposition_rows: list, rss_mb: float, args: Any, job_added_us: float,
                 disabled_ratio: float) -> None:
    versions = ", ".join(f"{pkg} {metadata.version(pkg)}" for pkg in
                         ("opentelemetry-sdk", "opentelemetry-exporter-prometheus", "wrapt", "prometheus_client"))
    lines = [
        "# Performance",
        "",
        "Generated by `make bench` (`bench/run.py`). Ratios are measured side by side in one process,",
        f"interleaved over {args.rounds} rounds of {args.calls} calls; medians; gc off during the rounds.",
        "",
        f"Machine: {platform.machine()}, {psutil.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load average {', '.join(f'{x:.2f}' for x in psutil.getloadavg())}. Versions: {versions}.",
        "",
        "| candidate | median ns/call | spread | x R | target |",
        "|---|---:|---:|---:|---|",
    ]
    lines += [f"| {name} | {ns:,.0f} | {spread:.0%} | {ratio:.2f} | {note} |" for name, ns, spread, ratio, note in rows]
    lines += [
        "",
        f"- `job()` adds {job_added_us:.2f} µs per enter/exit (includes its own span and `job.duration` record;"
        " target for the job-id propagation itself: <= 1.5 µs).",
        f"- Disabled wrapper vs bare wrapt pass-through: {disabled_ratio:.2f} x (target <= 3 x).",
        f"- RSS growth over {args.rss_calls:,} agent calls after warm-up: {rss_mb:.1f} MB (target < 10 MB).",
        "",
        "## /metrics exposition time (`generate_latest`, counter + histogram per attribute set)",
        "",
        "| attribute sets | stock OTel reader ms | ours ms | ours / stock |",
        "|---:|---:|---:|---:|",
    ]
    lines += [f"| {n:,} | {stock:.1f} | {ours:.1f} | {ours / stock:.2f} |" for n, stock, ours in exposition_rows]
    text = "\n".join(lines) + "\n"
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(text)
    print(text)



if __name__ == "__main__":
    main()
