"""`make bench`: per-call cost of agent-otel's wrappers as ratios to an idiomatic raw-OTel wrapper.

Everything runs in one process, interleaved: each round runs every candidate once, in order, so
a noisy neighbour slows all of them alike. A ratio is computed per round (candidate / R of the
same round) and the table reports the median ratio and its range over the rounds, next to the
median ns per call and its spread ((max-min)/median). Results go to stdout and docs/performance.md.

    bench/run.py                       # the default run: a couple of minutes
    bench/run.py --rounds 21 --calls 5000 --expo-rounds 9    # a longer, steadier run
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import os
import platform
import pstats
import statistics
import time
import types
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil
import wrapt
from floors import floor_function, record_one_call  # bench/ is the script's directory
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import Sampler
from prometheus_client import CollectorRegistry, generate_latest

import agent_otel
from agent_otel import semconv
from agent_otel._bridge.processor import GenAiSpanBridge
from agent_otel._bridge.sampling import dropping_parts
from agent_otel._context.job import AGENT_KEY, JOB_KEY, JobState, context_with_job
from agent_otel._context.phase import PHASE_KEY
from agent_otel._engine import instruments as runtime_module
from agent_otel._sdk.configure import histogram_views
from agent_otel._sdk.prometheus import AgentOtelPrometheusReader
from agent_otel._sdk.settings import traces_sampler
from agent_otel._sdk.span_processor import AgentOtelSpanProcessor

ATTRS = {"gen_ai.agent.name": "planner", "agent.task.type": "plan", "deployment.environment": "bench"}
SHAPES = ("sync", "async", "generator")
MODES = ("full", "metrics-only (sampled out)", "metrics-only (tracing off)", "disabled")
KINDS = ("agent", "provider", "tool", "evolution", "job")
#: Issue 17: every wrapped call costs at most this much more than the SDK doing exactly what it records.
FLOOR_TARGET = 1.15
#: What a span that is neither ours nor GenAI may cost more for the span processors configure() adds (ns).
FOREIGN_SPAN_TARGET_NS = 1000.0
#: What running inside a job may add to one wrapped call (µs), and the row that measures it.
JOB_ADDED_TARGET_US = 1.5
JOB_ADDED = "job: added per wrapped call, inside vs outside a job"
LEAN_TOOL = "a lean public-API tool wrapper [sync], tracing off"


class DropExporter(SpanExporter):
    def export(self, spans: Any) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


# -- the host's functions, one per kind and shape ------------------------------------------------

def success(x: int) -> dict:
    return {"success": True}


def completion(x: int) -> dict:
    return {"model": "gpt-4o", "usage": {"prompt_tokens": 120, "completion_tokens": 40}}


async def async_success(x: int) -> dict:
    return {"success": True}


async def async_completion(x: int) -> dict:
    return {"model": "gpt-4o", "usage": {"prompt_tokens": 120, "completion_tokens": 40}}


def gen_items(x: int) -> Any:
    yield 1
    yield 2
    yield {"model": "gpt-4o", "usage": {"prompt_tokens": 120, "completion_tokens": 40}}


BODIES = {
    ("agent", "sync"): success, ("agent", "async"): async_success, ("agent", "generator"): gen_items,
    ("provider", "sync"): completion, ("provider", "async"): async_completion, ("provider", "generator"): gen_items,
    ("tool", "sync"): success, ("tool", "async"): async_success, ("tool", "generator"): gen_items,
    ("evolution", "sync"): success, ("evolution", "async"): async_success, ("evolution", "generator"): gen_items,
    ("job", "sync"): success, ("job", "async"): async_success, ("job", "generator"): gen_items,
}


def as_defined(func: Callable) -> Callable:
    """A copy of ``func`` that its qualified name does not hold: decorating it is what ``@decorator`` on the
    ``def`` does (a sync function becomes a plain function). ``func`` itself, which its name holds, gets the
    wrapt proxy that ``tool("t")(f)`` and configured targets get (the `wrapped later` rows)."""
    plain: Any = func
    defined = types.FunctionType(plain.__code__, plain.__globals__, plain.__name__, plain.__defaults__,
                                 plain.__closure__)
    defined.__qualname__ = plain.__qualname__
    return defined


def decorate(kind: str, func: Callable) -> Callable:
    if kind == "agent":
        return agent_otel.agent("planner", task_type="plan")(func)
    if kind == "provider":
        return agent_otel.provider("openai", model="gpt-4o")(func)
    if kind == "tool":
        return agent_otel.tool("ruff")(func)
    if kind == "job":
        return agent_otel.job(type="bench")(func)
    return agent_otel.evolution("planner", type="nightly", sample_resources=False)(func)


# -- providers: R's (plain SDK) and ours (as configure() sets them up) ---------------------------

def sdk_providers(sampled: bool = True, ours: bool = True) -> tuple[Any, MeterProvider]:
    named = {} if sampled else {"OTEL_TRACES_SAMPLER": "always_off"}
    tracer_provider = TracerProvider(sampler=our_sampler(named) if ours else traces_sampler(named))
    # Every span is handed to a no-op exporter synchronously, the same for ours and the floors. Not a batch
    # processor: its thread competes for the GIL at random moments, and once its queue is full (the rounds
    # make spans faster than it drains them) it logs a warning per dropped span, noise that hits rows unevenly.
    tracer_provider.add_span_processor(SimpleSpanProcessor(DropExporter()))
    if ours:
        add_our_span_processors(tracer_provider)
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()], views=histogram_views())
    return tracer_provider, meter_provider


def our_sampler(env: dict[str, str]) -> Sampler:
    """The sampler configure() builds from ``env``'s ``OTEL_TRACES_SAMPLER`` (the default: ``ParentBased(ALWAYS_ON)``),
    its parts that drop spans recording GenAI spans for the bridge."""
    return traces_sampler(env, dropping_parts())


def add_our_span_processors(tracer_provider: TracerProvider) -> None:
    """What configure() adds to every span of the process: the span processors, the GenAI span bridge included.
    (The sampler configure() builds, whose parts that drop spans record GenAI spans for the bridge, is the provider's
    own: see sdk_providers.)"""
    tracer_provider.add_span_processor(AgentOtelSpanProcessor(GenAiSpanBridge()))


def raw_otel(tracer_provider: TracerProvider, meter_provider: MeterProvider) -> dict[str, Callable]:
    """R: span with 3 attributes via start_as_current_span, a counter and a histogram inside it."""
    tracer = tracer_provider.get_tracer("raw")
    meter = meter_provider.get_meter("raw")
    counter = meter.create_counter("raw.calls")
    histogram = meter.create_histogram("raw.duration", unit="s")
    now = time.perf_counter

    def sync(x: int) -> Any:
        start = now()
        with tracer.start_as_current_span("raw", attributes=ATTRS):
            result = success(x)
            counter.add(1, ATTRS)
            histogram.record(now() - start, ATTRS)
        return result

    async def asynchronous(x: int) -> Any:
        start = now()
        with tracer.start_as_current_span("raw", attributes=ATTRS):
            result = await async_success(x)
            counter.add(1, ATTRS)
            histogram.record(now() - start, ATTRS)
        return result

    def generator(x: int) -> Any:
        start = now()
        with tracer.start_as_current_span("raw", attributes=ATTRS):
            yield from gen_items(x)
            counter.add(1, ATTRS)
            histogram.record(now() - start, ATTRS)

    return {"sync": sync, "async": asynchronous, "generator": generator}


def lean_tool_wrapper(meter_provider: MeterProvider, func: Callable) -> Callable:
    """The least a sync tool wrapper on the SDK's public API does with tracing off, written for this one case:
    the call's context made current (with a marker, as ours carries its tool call), the call timed, its
    duration recorded with the tool's name and the agent, the phase and ``error.type`` it has, the job's
    roll-ups counted. What our engine adds above it is the price of one engine for every kind, shape and
    option (see bench/notes.md), not the SDK's."""
    record = meter_provider.get_meter("lean").create_histogram(semconv.TOOL_DURATION.name, unit="s").record
    marker = otel_context.create_key("lean.tool")
    get_current, attach, detach = otel_context.get_current, otel_context.attach, otel_context.detach
    perf = time.perf_counter

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        parent = get_current()
        ctx = otel_context.Context({**parent, marker: "ruff"})
        token = attach(ctx)
        start = perf()
        error: BaseException | None = None
        try:
            return func(*args, **kwargs)
        except BaseException as exc:
            error = exc
            raise
        finally:
            duration = perf() - start
            detach(token)
            attributes = {semconv.GEN_AI_TOOL_NAME: "ruff"}
            agent = parent.get(AGENT_KEY)
            if agent is not None:
                attributes[semconv.GEN_AI_AGENT_NAME] = agent
            phase = parent.get(PHASE_KEY)
            if phase is not None:
                attributes[semconv.WORKFLOW_PHASE] = phase.name
            if error is not None:
                attributes[semconv.ERROR_TYPE] = type(error).__qualname__
            record(duration, attributes, context=ctx)
            job = parent.get(JOB_KEY)
            if isinstance(job, JobState):
                job.add_one("tool_calls")
                job.use_plugin("ruff")

    return wrapper


def passthrough(func: Callable) -> Callable:
    return wrapt.FunctionWrapper(func, lambda wrapped, instance, args, kwargs: wrapped(*args, **kwargs))


# -- timing loops --------------------------------------------------------------------------------

LOOP = asyncio.new_event_loop()


def time_sync(func: Callable, calls: int) -> float:
    start = time.perf_counter_ns()
    for i in range(calls):
        func(i)
    return (time.perf_counter_ns() - start) / calls


def time_async(func: Callable, calls: int) -> float:
    async def loop() -> float:
        start = time.perf_counter_ns()
        for i in range(calls):
            await func(i)
        return (time.perf_counter_ns() - start) / calls

    return LOOP.run_until_complete(loop())


def time_generator(func: Callable, calls: int) -> float:
    start = time.perf_counter_ns()
    for i in range(calls):
        for _ in func(i):
            pass
    return (time.perf_counter_ns() - start) / calls


TIMERS = {"sync": time_sync, "async": time_async, "generator": time_generator}


@dataclass
class Candidate:
    name: str
    measure: Callable[[], float]
    baseline: str = ""  # the candidate this one is divided by in each round
    target: float | None = None  # max ratio to the baseline
    times: list[float] | None = None
    profile: tuple | None = None  # (providers, sync function) to profile if the target is missed

    def __post_init__(self) -> None:
        self.times = []


def use(providers: tuple | None, enabled: bool = True) -> None:
    if providers is not None:
        runtime_module.build_runtime(*providers, enabled=enabled)


def run_once(func: Callable, shape: str) -> Callable[[], None]:
    """One call of ``func`` in its shape, to record what it records."""
    def once() -> None:
        TIMERS[shape](func, 1)
    return once


def build_candidates(calls: int, kinds: tuple[str, ...] = KINDS, shapes: tuple[str, ...] = SHAPES,
                     modes: tuple[str, ...] = MODES) -> list[Candidate]:
    """Every kind x shape x mode next to its exact SDK floor (bench/floors.py), plus R and the pass-throughs."""
    r_providers = sdk_providers(ours=False)
    full = sdk_providers()
    sampled_out = sdk_providers(sampled=False)
    tracing_off = (trace.NoOpTracerProvider(), full[1])
    settings = {MODES[0]: (full, True), MODES[1]: (sampled_out, True), MODES[2]: (tracing_off, True),
                MODES[3]: (full, False)}
    # the floors run on a plain SDK (none of our span processors: their cost is ours), a meter provider of their own
    floor_tracers = {MODES[0]: sdk_providers(ours=False)[0], MODES[1]: sdk_providers(sampled=False, ours=False)[0],
                     MODES[2]: None}
    floor_meters = MeterProvider(metric_readers=[InMemoryMetricReader()])
    raw = raw_otel(*r_providers)
    candidates: list[Candidate] = []

    def add(name: str, providers: tuple | None, func: Callable, shape: str, baseline: str = "",
            target: float | None = None, enabled: bool = True) -> None:
        timer = TIMERS[shape]

        def measure() -> float:
            use(providers, enabled)
            return timer(func, calls)

        profile = (providers, func) if shape == "sync" and enabled and providers is not None else None
        candidates.append(Candidate(name, measure, baseline, target, profile=profile))

    bare = {"sync": success, "async": async_success, "generator": gen_items}
    for shape in shapes:
        add(f"floor: bare call [{shape}]", None, bare[shape], shape, f"R [{shape}]")
        add(f"floor: wrapt pass-through [{shape}]", None, passthrough(bare[shape]), shape, f"R [{shape}]")
        add(f"R [{shape}]", r_providers, raw[shape], shape, f"R [{shape}]")
    for kind in kinds:
        for shape in shapes:
            body = BODIES[kind, shape]
            wrapped = decorate(kind, as_defined(body))
            recorded = record_one_call(run_once(wrapped, shape), tracing=True)
            for mode in modes:
                providers, enabled = settings[mode]
                if mode == "disabled":
                    add(f"{kind} [{shape}], {mode}", providers, wrapped, shape,
                        f"floor: wrapt pass-through [{shape}]", 3.0, enabled)
                    continue
                floor_name = f"SDK floor: {kind} [{shape}], {mode}"
                add(floor_name, None, floor_function(recorded, floor_tracers[mode], floor_meters, shape, body),
                    shape, f"R [{shape}]")
                add(f"{kind} [{shape}], {mode}", providers, wrapped, shape, floor_name, FLOOR_TARGET, enabled)
                if kind == "tool" and shape == "sync" and mode in (MODES[0], MODES[2]):
                    add(f"{kind} [{shape}], {mode}, wrapped later (proxy)", providers, decorate(kind, body), shape,
                        floor_name, FLOOR_TARGET, enabled)
                if kind == "tool" and shape == "sync" and mode == MODES[2]:  # what a lean wrapper reaches
                    add(LEAN_TOOL, providers, lean_tool_wrapper(floor_meters, body), shape, floor_name)
    # job(): what running under a job adds to each wrapped call (stamping job.id on its span, the roll-ups),
    # and job() enter/exit.
    if "job" in kinds:
        candidates.append(Candidate(JOB_ADDED,
                                    lambda: job_added_us(full, calls) * 1000, "R [sync]"))

        def job_enter_exit(x: int) -> None:
            with agent_otel.job("bench-job", type="bench"):
                pass

        add("job() enter/exit (own span + job.duration)", full, job_enter_exit, "sync", "R [sync]")
    return candidates


def job_added_us(full: tuple, calls: int, block: int = 20) -> float:
    """What running inside a job adds to one wrapped agent call (µs): blocks of calls inside and
    outside a job alternate every millisecond or so, and the median of the per-pair differences
    is taken, so the machine's noise hits both sides alike and its spikes drop out. The pairs
    alternate which side runs first: the first block of a pair runs slower on this machine whatever
    its context (a pair of two outside blocks differs by microseconds), and one fixed order would
    count that as the job's."""
    use(full)
    agent = decorate("agent", success)
    job_ctx = context_with_job(JobState(id="bench-job", type="bench"))
    now = time.perf_counter_ns

    def timed(ctx: Any) -> float:
        token = otel_context.attach(ctx) if ctx is not None else None
        start = now()
        for i in range(block):
            agent(i)
        elapsed = now() - start
        if token is not None:
            otel_context.detach(token)
        return elapsed

    differences = []
    for pair in range(max(2, calls // block)):
        if pair % 2:
            inside, outside = timed(job_ctx), timed(None)
        else:
            outside, inside = timed(None), timed(job_ctx)
        differences.append((inside - outside) / block / 1000)
    return statistics.median(differences)


def stamping_cost_ns(calls: int) -> tuple[float, float]:
    """The start of configure()'s span processor (no bridge) per span, under a job and outside one (ns)."""
    tracer_provider = TracerProvider()
    span = tracer_provider.get_tracer("bench").start_span("s")
    processor = AgentOtelSpanProcessor(None)
    with_job = context_with_job(JobState(id="bench-job", type="bench"))
    without = otel_context.get_current()
    results = []
    for ctx in (with_job, without):
        start = time.perf_counter_ns()
        for _ in range(calls):
            processor.on_start(span, ctx)
        results.append((time.perf_counter_ns() - start) / calls)
    return results[0], results[1]


def foreign_span_cost_ns(calls: int, rounds: int, block: int = 50) -> dict[str, list[float]]:
    """What the span processors configure() adds cost a span that is neither ours nor GenAI (an HTTP
    client's, say), outside a job and inside one (where ``job.id`` is stamped on it): per round, ns per
    span started and ended with 3 attributes, on a provider with our processor minus one without (no
    exporter on either: the same for both, and its thread only adds noise). Blocks of ``block`` spans
    alternate between the two, either first in turn (see :func:`job_added_us`), and each round keeps the
    median of the per-pair differences, so a drift or spike of the machine hits both sides alike."""
    plain, ours = TracerProvider(sampler=traces_sampler({})), TracerProvider(sampler=our_sampler({}))
    add_our_span_processors(ours)
    attributes = {"http.request.method": "GET", "url.path": "/items", "server.address": "example.test"}
    in_job = context_with_job(JobState(id="bench-job", type="bench"))
    now = time.thread_time_ns
    results: dict[str, list[float]] = {"outside a job": [], "inside a job": []}
    for _ in range(rounds):
        for where, ctx in (("outside a job", None), ("inside a job", in_job)):
            differences = []
            for _ in range(max(1, calls // block)):
                times = {}
                for provider in (plain, ours) if len(differences) % 2 else (ours, plain):  # either first in turn
                    start_span = provider.get_tracer("http.client").start_span
                    start = now()
                    for _ in range(block):
                        start_span("GET", context=ctx, attributes=attributes).end()
                    times[provider] = (now() - start) / block
                differences.append(times[ours] - times[plain])
            results[where].append(statistics.median(differences))
    return results


# -- profiles: where the time of a candidate goes -------------------------------------------------

PROFILE_GROUPS = (("SDK trace", "opentelemetry/sdk/trace"), ("SDK metrics", "opentelemetry/sdk/metrics"),
                  ("attribute cleaning", "opentelemetry/attributes"), ("context", "opentelemetry/context"),
                  ("other OTel API", "opentelemetry/"), ("agent_otel", "agent_otel/"))


def _group(filename: str) -> str:
    for group, marker in PROFILE_GROUPS:
        if marker in filename:
            return group
    return "other (bench loop, wrapt, stdlib)"


def profile_split(providers: tuple, func: Callable, calls: int) -> dict[str, float]:
    """Share of a candidate's own time (cProfile tottime) by where the code lives. Built-ins
    (isinstance, dict.get, locks...) count for the code that called them."""
    use(providers)
    time_sync(func, 500)
    profiler = cProfile.Profile()
    profiler.enable()
    time_sync(func, calls)
    profiler.disable()
    shares: dict[str, float] = dict.fromkeys([group for group, _ in PROFILE_GROUPS], 0.0)
    for (filename, _, _), (_, _, tottime, _, callers) in pstats.Stats(profiler).stats.items():  # type: ignore[attr-defined]
        if filename == "~" and callers:
            for caller, (_, _, caller_tottime, _) in callers.items():
                group = _group(caller[0])
                shares[group] = shares.get(group, 0.0) + caller_tottime
        else:
            group = _group(filename)
            shares[group] = shares.get(group, 0.0) + tottime
    total = sum(shares.values()) or 1.0
    return {group: share / total for group, share in shares.items()}


SDK_RECORD_PARTS = (("Measurement attribute cleaning", "_clean_attribute_value", "attributes/__init__.py"),
                    ("attribute set hashing", "_hash_attributes", "_view_instrument_match.py"),
                    ("exemplar filter", "should_sample", "exemplar_filter.py"),
                    ("exemplar reservoir", "offer", "exemplar_reservoir.py"),
                    ("histogram aggregation (with the reservoir)", "aggregate", "aggregation.py"))


def sdk_record_profile(calls: int) -> list[tuple[str, float]]:
    """Where one SDK ``Histogram.record`` (3 attributes, inside a sampled span) spends its time:
    the cumulative share of its main parts, under cProfile."""
    tracer_provider, meter_provider = sdk_providers(ours=False)
    histogram = meter_provider.get_meter("profile").create_histogram("profile.h", unit="s")
    span = tracer_provider.get_tracer("profile").start_span("s")
    ctx = trace.set_span_in_context(span)
    record = histogram.record
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        record(0.1, ATTRS, context=ctx)
    profiler.disable()
    span.end()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    total = sum(ct for (filename, _, name), (_, _, _, ct, _) in stats.items()
                if name == "record" and filename.endswith("metrics/_internal/instrument.py"))
    parts = []
    for label, function, where in SDK_RECORD_PARTS:
        # max, not sum: a method that calls its base class's namesake would count twice
        cumulative = max((ct for (filename, _, name), (_, _, _, ct, _) in stats.items()
                          if name == function and filename.endswith(where)), default=0.0)
        parts.append((label, cumulative / total if total else 0.0))
    return parts


# -- /metrics exposition -------------------------------------------------------------------------

def measure_exposition(rounds: int) -> list[tuple[int, list[float], list[float], list[float]]]:
    """Per size: render times of the stock reader, ours (its direct renderer, what /metrics serves) and
    ours through prometheus_client's public `generate_latest`: what the direct renderer saves."""
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
            attributes = {"gen_ai.agent.name": f"a{i}", "agent.task.type": "t", "agent.outcome": "success"}
            counter.add(1, attributes)
            histogram.record(0.3, attributes)
        renderers = {"stock": lambda r=stock_registry: generate_latest(r), "ours": ours.render,
                     "ours via prometheus_client": lambda r=ours_registry: generate_latest(r)}
        times: dict[str, list[float]] = {name: [] for name in renderers}
        for render in renderers.values():  # warm-up: a real /metrics is scraped again and again
            render()
        for _ in range(rounds):
            for name, render in renderers.items():
                gc.collect()
                start = time.perf_counter()
                render()
                times[name].append(time.perf_counter() - start)
        rows.append((series, times["stock"], times["ours"], times["ours via prometheus_client"]))
        provider.shutdown()
    return rows


def measure_rss(calls: int) -> tuple[float, float]:
    full = sdk_providers()
    use(full)
    agent = decorate("agent", success)
    provider = decorate("provider", completion)
    for i in range(20_000):  # warm up: series, caches, the span processor's queue
        agent(i)
        provider(i)
    gc.collect()
    before = psutil.Process().memory_info().rss
    start = time.perf_counter()
    for i in range(calls // 2):
        agent(i)
        provider(i)
    elapsed = time.perf_counter() - start
    gc.collect()
    return (psutil.Process().memory_info().rss - before) / 1e6, elapsed


def measure_exit_with_dead_endpoint(rounds: int) -> tuple[list[float], list[float]]:
    """Seconds a trivial ``python -c pass`` takes, plain and under ``agent-otel run`` with the OTLP
    endpoint down (a port nobody listens on): the exit flush's cost when the Collector is unreachable."""
    import socket
    import subprocess
    import sys

    with socket.socket() as probe:  # a free port, closed again: connections to it are refused
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENT_OTEL_"))}
    env.update(OTEL_EXPORTER_OTLP_ENDPOINT=dead, OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf")
    agent_otel_bin = str(Path(sys.executable).with_name("agent-otel"))
    commands = {"plain": [sys.executable, "-c", "pass"],
                "ours": [agent_otel_bin, "run", "--", sys.executable, "-c", "pass"]}
    times: dict[str, list[float]] = {"plain": [], "ours": []}
    for _ in range(rounds):
        for name, command in commands.items():
            start = time.perf_counter()
            subprocess.run(command, env=env, capture_output=True, check=True, timeout=120)
            times[name].append(time.perf_counter() - start)
    return times["plain"], times["ours"]


#: A program that forks ``FORKS`` children which exit at once (``sys.exit(0)``: atexit hooks and the
#: interpreter's finalization run, as in a real worker) and prints the median milliseconds from fork to
#: reaped. SETUP is what the parent did first.
FORK_EXIT_PROGRAM = """
import os, statistics, sys, time
SETUP
times = []
for _ in range(FORKS):
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        sys.exit(0)
    os.waitpid(pid, 0)
    times.append((time.perf_counter() - start) * 1000)
print(statistics.median(times))
"""
_OPENAI_HOST = "import openai\nopenai.OpenAI(api_key='unused', base_url='http://127.0.0.1:9/v1')"
FORK_EXIT_SETUPS = {
    "bare": "",
    "the SDK alone": "\n".join((
        "from opentelemetry.exporter.prometheus import PrometheusMetricReader",
        "from opentelemetry.sdk.metrics import MeterProvider",
        "from opentelemetry.sdk.trace import TracerProvider",
        "from prometheus_client import start_http_server",
        "start_http_server(0, addr='127.0.0.1')",
        "TracerProvider(); MeterProvider(metric_readers=[PrometheusMetricReader()])")),
    "agent-otel": "import agent_otel\nagent_otel.configure(prometheus_port=0)",
    # an agent program on the OpenAI SDK: what a real host's children finalize without agent-otel, and with it
    "an OpenAI SDK host": _OPENAI_HOST,
    "that host with agent-otel": _OPENAI_HOST + "\nimport agent_otel\nagent_otel.configure(prometheus_port=0)",
}


def measure_fork_exit(rounds: int, forks: int = 10) -> dict[str, list[float]]:
    """Milliseconds for a forked child to exit (issue 12, item 13), per setup of its parent: bare Python,
    the SDK alone with the same exporters (providers, a Prometheus reader, a /metrics server), agent-otel's
    ``configure()``. Interleaved rounds, each a fresh process forking ``forks`` children."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENT_OTEL_"))}
    env.update(OTEL_TRACES_EXPORTER="none")
    times: dict[str, list[float]] = {name: [] for name in FORK_EXIT_SETUPS}
    for _ in range(rounds):
        for name, setup in FORK_EXIT_SETUPS.items():
            code = FORK_EXIT_PROGRAM.replace("SETUP", setup).replace("FORKS", str(forks))
            done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                  check=True, timeout=120)
            times[name].append(float(done.stdout.strip().splitlines()[-1]))
    return times


#: A program that sets agent-otel up with /metrics and prints the milliseconds its exit hook took
#: (atexit runs hooks last registered first: the mark, then ours, then the print).
EXIT_HOOK_PROGRAM = """
import atexit, os, time
marks = []
atexit.register(lambda: os.write(1, f"{(time.perf_counter() - marks[0]) * 1000}\\n".encode()))
import agent_otel
agent_otel.configure(prometheus_port=0)
atexit.register(lambda: marks.append(time.perf_counter()))
"""


def measure_exit_hook(rounds: int) -> list[float]:
    """Milliseconds agent-otel's exit hook takes in a process serving /metrics with nothing to send:
    it stops the server and flushes the providers."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENT_OTEL_"))}
    env.update(OTEL_TRACES_EXPORTER="none")
    return [float(subprocess.run([sys.executable, "-c", EXIT_HOOK_PROGRAM], env=env, capture_output=True, text=True,
                                 check=True, timeout=120).stdout.strip().splitlines()[-1]) for _ in range(rounds)]


# -- report --------------------------------------------------------------------------------------

def spread(values: list[float]) -> float:
    middle = statistics.median(values)
    return (max(values) - min(values)) / middle if middle else 0.0


def verdict(value: float, target: float | None, below: bool = True) -> str:
    if target is None:
        return ""
    return "met" if (value <= target if below else value < target) else "**MISSED**"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def quick(args: Any) -> None:
    """`make bench-quick`: the headline rows before a commit (under a minute); nothing is written."""
    rounds, calls = min(args.rounds, 3), min(args.calls, 1000)
    candidates = build_candidates(calls, shapes=("sync",), modes=(MODES[0], MODES[2]))
    by_name = {c.name: c for c in candidates}
    for candidate in candidates:
        candidate.measure()
    gc.disable()
    try:
        for _ in range(rounds):
            for candidate in candidates:
                candidate.times.append(candidate.measure())  # type: ignore[union-attr]
    finally:
        gc.enable()
    foreign = foreign_span_cost_ns(calls * 5, rounds)
    print(f"bench-quick: {rounds} rounds x {calls} calls (make bench for the full table)")
    for c in candidates:
        if c.target is None and c.name != LEAN_TOOL:  # the lean wrapper: what the tool's row could reach
            continue
        base = by_name[c.baseline]
        ratio = statistics.median([t / b for t, b in zip(c.times, base.times, strict=True)])  # type: ignore[arg-type]
        target = "" if c.target is None else f"<= {c.target:g}  {verdict(ratio, c.target)}"
        print(f"  {c.name:<45} {ratio:6.3f} x {c.baseline:<45} {target}")
    for where, added in foreign.items():
        median = statistics.median(added)
        print(f"  foreign span, {where:<31} {median:6.0f} ns added{'':<40} <= {FOREIGN_SPAN_TARGET_NS:g}"
              f"  {verdict(median, FOREIGN_SPAN_TARGET_NS)}")
    job_added = statistics.median(by_name[JOB_ADDED].times) / 1000  # type: ignore[arg-type]
    print(f"  {'job() added per wrapped call':<45} {job_added:6.2f} µs{'':<46} <= {JOB_ADDED_TARGET_US:g}"
          f"  {verdict(job_added, JOB_ADDED_TARGET_US)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds of every candidate")
    parser.add_argument("--calls", type=int, default=2000, help="calls per candidate per round")
    parser.add_argument("--expo-rounds", type=int, default=5, help="interleaved /metrics renders per size")
    parser.add_argument("--rss-calls", type=int, default=1_000_000, help="wrapped calls for the RSS growth")
    parser.add_argument("--profile-calls", type=int, default=5000, help="calls profiled per missed target")
    parser.add_argument("--exit-rounds", type=int, default=5, help="runs of `python -c pass` with a dead endpoint")
    parser.add_argument("--quick", action="store_true",
                        help="headline rows only (sync; full and tracing off), 3 rounds, printed, not written")
    parser.add_argument("--out", default="docs/performance.md")
    parser.add_argument("--notes", default="bench/notes.md",
                        help="hand-written analysis appended to the report (what bounds a missed target)")
    args = parser.parse_args()
    started = time.perf_counter()

    if args.quick:
        quick(args)
        return
    candidates = build_candidates(args.calls)
    by_name = {c.name: c for c in candidates}
    for candidate in candidates:  # warm-up: caches, series, first-call costs
        candidate.measure()
    gc.collect()
    gc.disable()
    try:
        for _ in range(args.rounds):
            for candidate in candidates:
                candidate.times.append(candidate.measure())  # type: ignore[union-attr]
    finally:
        gc.enable()
    use(sdk_providers())

    rows = []
    for c in candidates:
        base = by_name[c.baseline] if c.baseline else c
        ratios = [t / b for t, b in zip(c.times, base.times, strict=True)]  # type: ignore[arg-type]
        rows.append((c, statistics.median(c.times), spread(c.times), statistics.median(ratios), min(ratios),
                     max(ratios)))
    job_added = [t / 1000 for t in by_name[JOB_ADDED].times]  # type: ignore[union-attr]
    ratio_of = {row[0].name: row[3] for row in rows}
    bounds = []  # what bounds each missed per-call target: the SDK floor and where the time goes
    for c, *_ in rows:
        if c.target is not None and ratio_of[c.name] > c.target and c.profile is not None:
            floor = c.baseline
            bounds.append((c.name, ratio_of[c.name], floor, ratio_of.get(floor or ""),
                           profile_split(*c.profile, args.profile_calls)))
    use(sdk_providers())
    record_parts = sdk_record_profile(args.profile_calls) if bounds else []
    stamp_with, stamp_without = stamping_cost_ns(20_000)
    foreign = foreign_span_cost_ns(args.calls * 5, args.rounds)
    exposition = measure_exposition(args.expo_rounds)
    rss_mb, rss_seconds = measure_rss(args.rss_calls)
    exit_times = measure_exit_with_dead_endpoint(args.exit_rounds)
    fork_exit = measure_fork_exit(args.exit_rounds)
    exit_hook = measure_exit_hook(args.exit_rounds)
    text = report(args, rows, job_added, (stamp_with, stamp_without), exposition, (rss_mb, rss_seconds), bounds,
                  record_parts, time.perf_counter() - started, exit_times, foreign, fork_exit, exit_hook)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


def report(args: Any, rows: list, job_added: list[float], stamping: tuple[float, float], exposition: list,
           rss: tuple[float, float], bounds: list, record_parts: list, elapsed: float,
           exit_times: tuple[list[float], list[float]] = ([], []), foreign: dict[str, list[float]] | None = None,
           fork_exit: dict[str, list[float]] | None = None, exit_hook: list[float] | None = None) -> str:
    packages = ("opentelemetry-api", "opentelemetry-sdk", "opentelemetry-exporter-prometheus", "prometheus_client",
                "wrapt", "agent-otel")
    versions = ", ".join(f"{pkg} {metadata.version(pkg)}" for pkg in packages)
    load = ", ".join(f"{x:.2f}" for x in psutil.getloadavg())
    summary: list[tuple[str, str, str, str]] = []
    lines = [
        "# Performance",
        "",
        "Generated by `make bench` (`bench/run.py`); do not edit by hand (the analysis comes from",
        "`bench/notes.md`). Every figure is a ratio measured side by side in one process run: each round runs",
        "every candidate once, interleaved; a ratio is taken within a round, then the median over rounds.",
        "",
        f"- Machine: {cpu_name()}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()},",
        f"  Python {platform.python_version()} ({platform.python_implementation()}); load average at the end: {load}.",
        f"- Versions: {versions}.",
        f"- Run: {args.rounds} rounds x {args.calls} calls per candidate, gc off during the rounds;"
        f" {args.expo_rounds} renders per exposition size; {elapsed:.0f} s in all.",
        "- Each wrapped call is divided by its **SDK floor**, from the same round: the OpenTelemetry SDK alone, via",
        "  its public API and with no wrapper, recording exactly what one call of that kind, shape and mode recorded",
        "  (`bench/floors.py` derives it from one real call: the span's name, kind and attributes, every measurement",
        "  with its attributes); the floor makes the call's context current, as every kind must for nested calls,",
        "  and sets the span attributes ours sets as the call ends (its outcome, usage, a job's roll-ups) then.",
        "  Ours run on the providers `configure()` sets up, with the span processor it adds to every span",
        "  (`AgentOtelSpanProcessor`: ids, hashing, the GenAI span bridge); the floors on a plain SDK, so what that",
        "  processor costs counts as ours. The agent, tool, evolution and job bodies return `{\"success\": True}`;",
        "  the provider body returns an OpenAI-style result with usage; the generator bodies yield 3 items.",
        "- R, for scale: an idiomatic raw-OTel wrapper (`start_as_current_span` with 3 attributes, a counter and a",
        "  histogram recorded inside it). The disabled rows are divided by a wrapt pass-through.",
        "",
        "## Per call",
        "",
        "| candidate | median ns/call | spread | ratio | ratio range | to | target | |",
        "|---|---:|---:|---:|---:|---|---:|---|",
    ]
    for c, ns, ns_spread, ratio, low, high, in rows:
        state = verdict(ratio, c.target)
        shown = f"{ratio:.2f}" if c.target is None else f"{ratio:.3f}"  # a verdict next to a rounded 0.30 misleads
        lines.append(f"| {c.name} | {ns:,.0f} | {ns_spread:.0%} | {shown} | {low:.2f}-{high:.2f} |"
                     f" {c.baseline} | {'' if c.target is None else f'<= {c.target:g}'} | {state} |")
        if c.target is not None:
            summary.append((c.name, f"{ratio:.3f} x {c.baseline}", f"<= {c.target:g} x", state))
    for where, added_ns in (foreign or {}).items():
        median_ns = statistics.median(added_ns)
        summary.append((f"a span neither ours nor GenAI, {where}: added by our span processors",
                        f"{median_ns:,.0f} ns", f"<= {FOREIGN_SPAN_TARGET_NS:,.0f} ns",
                        verdict(median_ns, FOREIGN_SPAN_TARGET_NS)))
    added = statistics.median(job_added)
    summary.append(("job() added per wrapped call", f"{added:.2f} µs", f"<= {JOB_ADDED_TARGET_US:g} µs",
                    verdict(added, JOB_ADDED_TARGET_US)))
    expo_ratio = statistics.median([o / s for o, s in zip(exposition[-1][2], exposition[-1][1], strict=True)])
    summary.append(("/metrics at 10,000 attribute sets", f"{expo_ratio:.3f} x stock", "<= 0.2 x",
                    verdict(expo_ratio, 0.2)))
    summary.append((f"RSS growth over {args.rss_calls:,} calls", f"{rss[0]:.1f} MB", "< 10 MB",
                    verdict(rss[0], 10.0, below=False)))
    if exit_times[0]:
        plain_s, ours_s = statistics.median(exit_times[0]), statistics.median(exit_times[1])
        summary.append(("`agent-otel run -- python -c pass`, OTLP endpoint down",
                        f"{ours_s:.2f} s vs {plain_s:.2f} s plain (+{ours_s - plain_s:.2f} s)",
                        "+ <= 1 s (the exit budget)", verdict(ours_s - plain_s, 1.0)))
    if exit_hook:
        hook_ms = statistics.median(exit_hook)
        summary.append(("agent-otel's exit hook, process serving /metrics, nothing to send",
                        f"{hook_ms:.1f} ms (range {min(exit_hook):.1f} to {max(exit_hook):.1f})", "<= 50 ms",
                        verdict(hook_ms, 50.0)))
    if fork_exit:
        fork_ms = {name: statistics.median(values) for name, values in fork_exit.items()}
        summary.append(("forked child exit (`os.fork()`, `sys.exit(0)`) after `configure()` with /metrics",
                        f"{fork_ms['agent-otel']:.0f} ms vs {fork_ms['bare']:.0f} ms bare,"
                        f" {fork_ms['the SDK alone']:.0f} ms with the SDK alone",
                        "as fast as without agent-otel (<= 1.15 x bare)",
                        verdict(fork_ms["agent-otel"] / fork_ms["bare"], 1.15)))
        host, with_us = fork_ms["an OpenAI SDK host"], fork_ms["that host with agent-otel"]
        summary.append(("the same, in an agent program on the OpenAI SDK (`import openai`, a client)",
                        f"{with_us:.0f} ms vs {host:.0f} ms without agent-otel ({with_us / host:.2f} x)",
                        "as fast as without agent-otel (<= 1.15 x)", verdict(with_us / host, 1.15)))
    lines += [
        "",
        "## job()",
        "",
        f"- Added per wrapped call by running inside a job (blocks of 20 agent calls inside and outside a job,"
        " alternating, median of the pairwise differences; the row above):"
        f" median {added:.2f} µs, range {min(job_added):.2f} to {max(job_added):.2f} µs"
        f" (target <= {JOB_ADDED_TARGET_US:g} µs).",
        f"- Stamping `job.id` on another library's span (the span processor's on_start, the same span each time; our"
        " own spans start with it):"
        f" {stamping[0]:,.0f} ns per span"
        f" under a job, {stamping[1]:,.0f} ns per span outside one.",
        "- `job()` enter/exit itself starts the `invoke_workflow` span and records `job.duration`: see its",
        "  row above (it costs about one wrapped call).",
        "",
        "## /metrics exposition",
        "",
        "A counter and a histogram (4 buckets) per attribute set, 3 attributes each; the stock",
        "`opentelemetry.exporter.prometheus.PrometheusMetricReader` rendered by `prometheus_client.generate_latest`",
        "vs ours (`src/agent_otel/_sdk/prometheus.py`: `AgentOtelPrometheusReader.render`, what /metrics serves),",
        "and ours rendered by `prometheus_client.generate_latest` over its collector instead (what the direct",
        "renderer saves); interleaved, gc collected before each render. Ratios: median of per-round ratios, range.",
        "",
        "| attribute sets | stock ms (median) | ours ms (median) | ours / stock | range"
        " | ours via prometheus_client / stock | range |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for series, stock, ours, public in exposition:
        ratios = [o / s for o, s in zip(ours, stock, strict=True)]
        public_ratios = [p / s for p, s in zip(public, stock, strict=True)]
        lines.append(f"| {series:,} | {statistics.median(stock) * 1000:.1f} | {statistics.median(ours) * 1000:.1f} |"
                     f" {statistics.median(ratios):.2f} | {min(ratios):.2f}-{max(ratios):.2f} |"
                     f" {statistics.median(public_ratios):.2f} | {min(public_ratios):.2f}-{max(public_ratios):.2f} |")
    lines += [
        "",
        "## Memory",
        "",
        f"RSS growth over {args.rss_calls:,} wrapped calls in full mode (agent and provider alternating, after"
        f" 40,000 warm-up calls): {rss[0]:.1f} MB ({rss[1]:.0f} s).",
        "",
        "## Targets",
        "",
        "| what | measured | target | |",
        "|---|---:|---:|---|",
    ]
    lines += [f"| {what} | {measured} | {target} | {state} |" for what, measured, target, state in summary]
    if bounds:
        lines += [
            "",
            "## What bounds the missed per-call targets (measured in this run)",
            "",
            "For each missed row: the same-round ratio of the *SDK floor* (the OTel SDK alone doing what this",
            "kind must record, with no wrapper: see the `SDK floor` rows), and a profile of the wrapped call",
            f"({args.profile_calls:,} calls under cProfile; own time grouped by where the code lives, built-ins",
            "counted for their caller; cProfile inflates call-heavy code, so read shares, not absolute times).",
            "",
            "| candidate | x its SDK floor | its SDK floor x R | share of the call above the floor | "
            + " | ".join(group for group, _ in PROFILE_GROUPS) + " | other |",
            "|---|---:|---:|---:|" + "---:|" * (len(PROFILE_GROUPS) + 1),
        ]
        for name, ratio, _floor, floor_ratio, shares in bounds:
            floor_text = f"{floor_ratio:.2f}" if floor_ratio is not None else "(none)"
            lines.append(f"| {name} | {ratio:.3f} | {floor_text} | {1 - 1 / ratio:.0%} | "
                         + " | ".join(f"{share:.0%}" for share in shares.values()) + " |")
        lines += [
            "",
            "Inside one SDK `Histogram.record` with 3 attributes in a sampled span (cProfile, cumulative share of"
            " the call): " + "; ".join(f"{label} {share:.0%}" for label, share in record_parts) + ".",
        ]
    notes = Path(args.notes)
    if notes.exists():
        lines += ["", notes.read_text().rstrip()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
