"""A simulated agent fleet: jobs, agents, a provider chain with retries and fallbacks, tools, and
periodic evolution runs.

This module is the demo's "host program" and deliberately knows nothing about agent-otel: there is no
import of it here (the summarizer it calls traces itself with the plain OpenTelemetry API, as a
third-party SDK with its own GenAI instrumentation would). ``agent-otel.toml`` next to this file
instruments it, exactly as a user would instrument code they do not own. The numbers are chosen so that
an operator sees every dashboard panel fill and a few alerts fire for clear reasons:

- ``reviewer`` succeeds about a third of the time while claiming 0.9 confidence (success-ratio and
  confidence-calibration alerts) and its evolution runs mostly fail (evolution-failure alert);
- ``anthropic`` rate-limits most requests, so ``coder`` falls back to ``openai`` (availability and
  fallback-rate alerts);
- a job fails whenever the reviewer rejects its change, so about half the jobs of every type fail (job
  failure alert), and the ``run_tests`` tool fails 15 % of its runs (tool error alert; the other tools stay
  under its 10 % threshold);
- every agent starts at version ``v1``; a successful evolution run builds a candidate version, kept unless
  its KPIs got worse (then rolled back), at first 30 s after the current version was put in place and then at
  longer intervals (up to 10 minutes), so that versions come and go without filling the cardinality cap. A
  version does not change how an agent behaves: the version panels, rules and report show each version's
  numbers, and the regression alerts stay silent;
- the models serve part of every prompt from their prompt cache and spend a third of their output on
  reasoning, so cost counts cached input at its own price; ``summarizer-mini`` (the bridged summarizer's
  model) has no price, so its calls are counted as unpriced;
- ``coder`` loops on its tests (40 runs in one invocation) on its 20th call and every 500th after it: the
  runaway-loop alert fires for it;
- ``tester`` is a legacy agent that, on its first call and then every thousandth, reports its
  confidence as the text ``"n/a"``: agent-otel counts that on its own error counter (too rarely to
  alert) and leaves the call alone.

Every random draw comes from a generator seeded per agent, provider and evolution loop, so a run with
a given seed makes the same choices in each of them whatever the thread timing.
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from agent_otel._ops.demo.summarizer import Summarizer
from agent_otel._ops.demo.workflow import Orchestrator


class ProviderError(Exception):
    """A model call that failed after its retries."""

    def __init__(self, provider: str, kind: str) -> None:
        super().__init__(f"{provider}: {kind}")
        self.provider = provider
        self.kind = kind


class ToolError(Exception):
    pass


class JobFailed(Exception):
    pass


@dataclass
class Usage:
    """OpenAI-style usage: the cached prompt tokens and the reasoning tokens are parts of the two counts."""

    prompt_tokens: int
    completion_tokens: int
    prompt_tokens_details: dict[str, int] = field(default_factory=dict)
    completion_tokens_details: dict[str, int] = field(default_factory=dict)


def usage_of(prompt_tokens: int, completion_tokens: int) -> Usage:
    """Each agent's system prompt and tool list come first in every prompt, so the provider serves part of it
    from its prompt cache (in 128-token blocks) and writes the next block of it there; a third of the output is
    reasoning. Worked out from the drawn counts, so the demo's random choices stay what they were."""
    cached = prompt_tokens // 256 * 128
    return Usage(prompt_tokens, completion_tokens,
                 {"cached_tokens": cached, "cache_write_tokens": min(128, prompt_tokens - cached)},
                 {"reasoning_tokens": completion_tokens // 3})


@dataclass
class Completion:
    provider: str
    model: str
    text: str
    usage: Usage
    retries: int


@dataclass(frozen=True)
class ProviderProfile:
    name: str
    model: str
    response_model: str
    failure_rate: float  # per attempt
    latency_s: float
    max_retries: int = 1


@dataclass(frozen=True)
class AgentProfile:
    name: str
    success_rate: float
    stated_confidence: tuple[float, float]  # (when it succeeds, when it fails)
    providers: tuple[str, ...]  # the fallback chain, first choice first
    tools: tuple[str, ...]
    latency_s: float
    patterns: tuple[str, ...]
    evolution_success_rate: float


PROVIDERS = (
    ProviderProfile("openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", failure_rate=0.01, latency_s=0.03),
    ProviderProfile("anthropic", "claude-3-5-haiku", "claude-3-5-haiku-20241022", failure_rate=0.6, latency_s=0.04),
    ProviderProfile("local", "llama-3.1-8b", "llama-3.1-8b-instruct-q4", failure_rate=0.0, latency_s=0.06),
)

AGENTS = (
    AgentProfile("planner", 0.97, (0.85, 0.5), ("openai",), ("search_docs",), 0.02,
                 ("decompose", "plan_and_execute"), 0.95),
    AgentProfile("coder", 0.94, (0.8, 0.4), ("anthropic", "openai"), ("apply_patch", "run_tests"), 0.03,
                 ("react", "self_refine"), 0.95),
    AgentProfile("reviewer", 0.3, (0.9, 0.9), ("openai",), ("lint",), 0.02, ("checklist",), 0.2),
    AgentProfile("tester", 0.95, (0.75, 0.3), ("local",), ("run_tests",), 0.03, ("property_based",), 0.95),
)

TOOL_FAILURE_RATE = {"search_docs": 0.02, "apply_patch": 0.03, "run_tests": 0.15, "lint": 0.0}
JOB_TYPES = ("bugfix", "feature", "refactor")
#: How long the first version serves before an evolution run may replace it, and the most any version waits.
VERSION_FIRST_AGE_S, VERSION_MAX_AGE_S = 30.0, 600.0
#: The legacy tester reports its confidence as text on its first call and every N-th after it.
MALFORMED_CONFIDENCE_EVERY = 1000
#: The coder loops on its failing tests (runs them RUNAWAY_TOOL_RUNS times in one invocation) on its
#: RUNAWAY_FIRST-th call and every RUNAWAY_EVERY-th after it: a runaway loop for the per-invocation call counts.
RUNAWAY_FIRST, RUNAWAY_EVERY, RUNAWAY_TOOL_RUNS = 20, 500, 40


class ModelClient:
    """One provider's API client, retrying transient errors itself (as most SDKs do)."""

    def __init__(self, profile: ProviderProfile, seed: int) -> None:
        self.name = profile.name
        self.model = profile.model
        self.profile = profile
        self._rng = random.Random(f"{seed}:{profile.name}")
        self._lock = threading.Lock()

    def _draw(self) -> tuple[bool, float, int, int]:
        with self._lock:
            rng = self._rng
            return (rng.random() < self.profile.failure_rate, rng.uniform(0.5, 1.8), rng.randint(200, 900),
                    rng.randint(40, 300))

    def complete(self, prompt: str) -> Completion:
        for attempt in range(self.profile.max_retries + 1):
            failed, jitter, prompt_tokens, completion_tokens = self._draw()
            time.sleep(self.profile.latency_s * jitter)
            if not failed:
                return Completion(self.name, self.profile.response_model, f"answer to {prompt[:20]}",
                                  usage_of(prompt_tokens, completion_tokens), retries=attempt)
        raise ProviderError(self.name, "rate_limit")

    def stream(self, prompt: str) -> Iterator[dict[str, Any]]:
        """OpenAI-style chunks; the last one carries the usage."""
        _, jitter, prompt_tokens, completion_tokens = self._draw()
        for word in ("thinking", "about", prompt[:12]):
            time.sleep(self.profile.latency_s * jitter / 3)
            yield {"model": self.profile.response_model, "choices": [{"delta": {"content": word + " "}}]}
        yield {"model": self.profile.response_model, "choices": [],
               "usage": dataclasses.asdict(usage_of(prompt_tokens, completion_tokens))}


class ProviderChain:
    """Try each provider in turn; fall back to the next one when a provider fails."""

    def __init__(self, clients: list[ModelClient]) -> None:
        self.clients = clients

    def complete(self, prompt: str) -> Completion:
        for index, client in enumerate(self.clients):
            try:
                return client.complete(prompt)
            except ProviderError as exc:
                if index + 1 == len(self.clients):
                    raise
                self._fall_back(client, self.clients[index + 1], exc)
        raise AssertionError("unreachable")

    def _fall_back(self, failed: ModelClient, to: ModelClient, error: ProviderError) -> None:
        """Hook point: the program calls this when it moves on to the next provider."""


class ToolBox:
    def __init__(self, seed: int) -> None:
        # One generator per tool: each tool's run of failures is the same whichever agent's thread calls it.
        self._rngs = {name: random.Random(f"{seed}:tools:{name}") for name in TOOL_FAILURE_RATE}
        self._lock = threading.Lock()

    def run(self, name: str, payload: str) -> str:
        with self._lock:
            rng = self._rngs[name]
            failed = rng.random() < TOOL_FAILURE_RATE[name]
            pause = rng.uniform(0.005, 0.03)
        time.sleep(pause)
        if failed:
            raise ToolError(f"{name} failed on {payload[:20]}")
        return f"{name}: ok"


@dataclass
class Task:
    kind: str
    description: str


@dataclass
class Outcome:
    success: bool
    confidence: float | str
    patterns: list[str]
    provider: str
    fixes_applied: int = 0
    files_modified: int = 0
    tests_added: int = 0
    issues_found: int = 0
    remaining_issues: int = 0


class Agent:
    def __init__(self, profile: AgentProfile, clients: dict[str, ModelClient], tools: ToolBox, seed: int) -> None:
        self.name = profile.name
        self.profile = profile
        self.chain = ProviderChain([clients[name] for name in profile.providers])
        self.streaming_client = clients[profile.providers[0]]
        self.tools = tools
        self._rng = random.Random(f"{seed}:{profile.name}")
        self._lock = threading.Lock()
        self.calls = 0
        self.successes = 0
        self.version = "v1"  # evolution runs put new versions in place (Evolver)

    def _draws(self) -> tuple[bool, int, list[str], bool]:
        with self._lock:
            self.calls += 1
            rng = self._rng
            success = rng.random() < self.profile.success_rate
            self.successes += success
            return success, self.calls, rng.sample(self.profile.patterns, 1), rng.random() < 0.3

    def solve(self, task: Task) -> Outcome:
        success, call_number, patterns, streams = self._draws()
        time.sleep(self.profile.latency_s)
        completion = self.chain.complete(f"{self.name}: {task.description}")
        if streams:
            "".join(chunk["choices"][0]["delta"]["content"]
                    for chunk in self.streaming_client.stream(task.description) if chunk["choices"])
        if self.name == "coder" and call_number % RUNAWAY_EVERY == RUNAWAY_FIRST:
            self._loop_on_tests(task)
        for tool in self.profile.tools:
            for _attempt in range(2):  # a failed tool run is tried once more; the agent carries on either way
                try:
                    self.tools.run(tool, task.description)
                    break
                except ToolError:
                    continue
        confidence: float | str = self.profile.stated_confidence[0 if success else 1]
        if self.name == "tester" and call_number % MALFORMED_CONFIDENCE_EVERY == 1:
            confidence = "n/a"
        work = {"coder": {"fixes_applied": 2 if success else 0, "files_modified": 3},
                "tester": {"tests_added": 4 if success else 1},
                "reviewer": {"issues_found": 3, "remaining_issues": 0 if success else 2}}.get(self.name, {})
        return Outcome(success, confidence, patterns, completion.provider, **work)

    def _loop_on_tests(self, task: Task) -> None:
        """A runaway loop: run the tests again and again, whatever they say."""
        for _ in range(RUNAWAY_TOOL_RUNS):
            try:
                self.tools.run("run_tests", task.description)
            except ToolError:
                continue

    @property
    def success_rate(self) -> float:
        with self._lock:
            return self.successes / self.calls if self.calls else 0.0


class Job:
    """One unit of work: a few agents solve their part, in parallel."""

    def __init__(self, job_id: str, kind: str, agents: list[Agent], pool: ThreadPoolExecutor,
                 summarizer: Summarizer | None = None) -> None:
        self.job_id = job_id
        self.kind = kind
        self.agents = agents
        self.pool = pool
        self.summarizer = summarizer

    def run(self) -> list[Outcome]:
        task = Task(self.kind, f"{self.kind} for {self.job_id}")
        futures = [self.pool.submit(agent.solve, task) for agent in self.agents]
        outcomes = {}
        for agent, future in zip(self.agents, futures, strict=True):
            try:
                outcomes[agent.name] = future.result()
            except ProviderError:
                outcomes[agent.name] = Outcome(False, 0.0, [], "none")
        if "reviewer" in outcomes and not outcomes["reviewer"].success:
            raise JobFailed(f"{self.job_id}: the review rejected the change")
        if sum(outcome.success for outcome in outcomes.values()) * 2 < len(outcomes):
            raise JobFailed(f"{self.job_id}: most agents failed")
        if self.summarizer is not None:  # a third-party SDK that traces itself (see summarizer.py)
            self.summarizer.summarize(task.description)
        return list(outcomes.values())


@dataclass
class EvolutionReport:
    kpis_before: dict[str, float]
    kpis_after: dict[str, float]
    rolled_back: bool
    success: bool
    iterations: int
    version_from: str = ""
    version_to: str = ""  # the candidate the run built; the version it started from when it built none


class Evolver:
    """A self-improvement loop per agent: try a change, keep it if the KPIs improve."""

    def __init__(self, agents: dict[str, Agent], seed: int) -> None:
        self.agents = agents
        self._rngs = {name: random.Random(f"{seed}:evolve:{name}") for name in agents}
        self._candidates = dict.fromkeys(agents, 1)  # the number of the agent's latest candidate version
        self._in_place_since = dict.fromkeys(agents, time.monotonic())
        self._versions_in_place = dict.fromkeys(agents, 1)

    def _candidate(self, agent: Agent) -> str:
        """The next candidate version, when the current one has served long enough: 30 s for v1, then twice as
        long for each later one, up to 10 minutes; else the current version (the run builds none)."""
        served = time.monotonic() - self._in_place_since[agent.name]
        if served < min(VERSION_MAX_AGE_S, VERSION_FIRST_AGE_S * 2 ** (self._versions_in_place[agent.name] - 1)):
            return agent.version
        self._candidates[agent.name] += 1
        return f"v{self._candidates[agent.name]}"

    def evolve(self, agent_name: str, strategy: str) -> EvolutionReport:
        agent = self.agents[agent_name]
        rng = self._rngs[agent_name]
        before = {"success_rate": round(agent.success_rate, 4), "avg_latency_s": agent.profile.latency_s}
        version = agent.version
        iterations = rng.randint(2, 6)
        scratch = bytearray(rng.randint(2, 8) * 1024 * 1024)  # candidate prompts and eval sets in memory
        time.sleep(0.02 * iterations)
        del scratch
        if rng.random() >= agent.profile.evolution_success_rate:
            return EvolutionReport(before, before, rolled_back=False, success=False, iterations=iterations,
                                   version_from=version, version_to=version)
        delta = rng.uniform(-0.02, 0.05)
        after = {"success_rate": round(min(1.0, before["success_rate"] + delta), 4),
                 "avg_latency_s": round(before["avg_latency_s"] * rng.uniform(0.9, 1.05), 4)}
        candidate = self._candidate(agent)
        if delta >= 0 and candidate != version:
            agent.version = candidate
            self._in_place_since[agent_name] = time.monotonic()
            self._versions_in_place[agent_name] += 1
        return EvolutionReport(before, after, rolled_back=delta < 0, success=True, iterations=iterations,
                               version_from=version, version_to=candidate)


@dataclass
class Fleet:
    """The whole simulated system; :meth:`run` drives it until ``stop`` is set or time runs out."""

    seed: int = 7
    rate: float = 2.0  # jobs per second
    evolve_every_s: float = 30.0
    workers: int = 8
    agents: dict[str, Agent] = field(init=False)
    jobs_started: int = 0

    def __post_init__(self) -> None:
        clients = {profile.name: ModelClient(profile, self.seed) for profile in PROVIDERS}
        tools = ToolBox(self.seed)
        self.agents = {profile.name: Agent(profile, clients, tools, self.seed) for profile in AGENTS}
        self.evolver = Evolver(self.agents, self.seed)
        self.summarizer = Summarizer(self.seed)
        self.orchestrator = Orchestrator(self.seed, self.agents["planner"], Task)
        self._rng = random.Random(f"{self.seed}:jobs")

    def _next_job(self, pool: ThreadPoolExecutor) -> Job:
        self.jobs_started += 1
        names = list(self.agents)
        team = ["planner", *self._rng.sample(names[1:], self._rng.randint(1, len(names) - 1))]
        return Job(f"job-{self.seed}-{self.jobs_started:06d}", self._rng.choice(JOB_TYPES),
                   [self.agents[name] for name in team], pool, self.summarizer)

    def _evolution_loop(self, stop: threading.Event) -> None:
        strategies = ("prompt_optimization", "few_shot_selection")
        round_number = 0
        while not stop.wait(self.evolve_every_s):
            round_number += 1
            for name in self.agents:
                if stop.is_set():
                    return
                self.evolver.evolve(name, strategies[round_number % len(strategies)])

    def run(self, stop: threading.Event, duration_s: float | None = None) -> None:
        deadline = None if not duration_s else time.monotonic() + duration_s
        evolution = threading.Thread(target=self._evolution_loop, args=(stop,), name="evolution", daemon=True)
        evolution.start()
        # At most 2 jobs per worker queued or running: a rate above what the fleet can do slows the
        # arrivals instead of growing a queue that Ctrl-C would have to drain.
        in_flight = threading.BoundedSemaphore(self.workers * 2)

        def done(_: Future[Any]) -> None:
            in_flight.release()

        job_pool = ThreadPoolExecutor(self.workers, thread_name_prefix="jobs")
        agent_pool = ThreadPoolExecutor(self.workers * 2, thread_name_prefix="agents")
        try:
            next_start = time.monotonic()
            while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
                if not in_flight.acquire(timeout=0.1):
                    next_start = time.monotonic()
                    continue
                job_pool.submit(self._next_job(agent_pool).run).add_done_callback(done)
                # Every third job, a phased workflow of the meta-orchestrator too (workflow.py), when a slot is free.
                if self.jobs_started % 3 == 0 and in_flight.acquire(blocking=False):
                    job_pool.submit(self.orchestrator.run, self.orchestrator.next_workflow()).add_done_callback(done)
                next_start += 1.0 / self.rate
                stop.wait(max(0.0, next_start - time.monotonic()))
        finally:
            stop.set()
            job_pool.shutdown(wait=True, cancel_futures=True)
            agent_pool.shutdown(wait=True, cancel_futures=True)
            evolution.join()
