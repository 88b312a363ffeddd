"""The running job in OTel context and W3C baggage.

A job's state lives in the OTel context (so everything that copies the context (asyncio tasks,
the threading instrumentation, our process and subprocess carriers) shares it) and its id also
in W3C baggage (so it survives process and service boundaries as text).
:mod:`agent_otel._context.stamping` stamps ``job.id`` on every span started under a job, whichever
library starts it. The id is never put on a metric.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote_plus

from opentelemetry import baggage
from opentelemetry import context as otel_context
from opentelemetry.context import Context

from agent_otel import semconv
from agent_otel._context import baggage_header  # noqa: F401  # a program's own baggage header keeps its entries
from agent_otel._engine.self_telemetry import report_error

JOB_KEY = otel_context.create_key("agent_otel.job")
#: Where the API keeps the baggage dict in a context: read directly, because ``baggage.get_all()``
#: copies it into a new proxy on every call (every span reads it), and a job sets two entries in one copy.
BAGGAGE_KEY = baggage._BAGGAGE_KEY
_BAGGAGE_JOB_ID, _BAGGAGE_JOB_TYPE = semconv.BAGGAGE_JOB_ID, semconv.BAGGAGE_JOB_TYPE
#: The counts :meth:`JobState.add_one` keeps, per thread (the fields change under the job's lock).
_COUNTED_PER_THREAD = ("agent_calls", "tool_calls", "provider_calls")
_get_ident = threading.get_ident
AGENT_KEY = otel_context.create_key("agent_otel.agent")
#: The (bounded) version of that agent, None when it has none: the cost of its model calls is counted by it.
AGENT_VERSION_KEY = otel_context.create_key("agent_otel.agent.version")


@dataclass(eq=False, init=False)
class JobState:
    """One running job. Shared by reference by everything that inherits the context, so roll-ups
    are correct when the job fans out to threads and tasks."""

    id: str
    type: str
    agent_calls: int = 0
    provider_calls: int = 0
    tool_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    #: Model calls (attempts with usage) that had a price, and those whose cost is not known (no price for their
    #: model, or no usage: a request that ended without it); the job's cost is given when at least one was priced
    priced_calls: int = 0
    unpriced_calls: int = 0
    #: The logical model requests that ended (``provider_calls`` counts them as they start): the others, still
    #: running as the job ends (a stream held past its block), are unpriced too
    ended_calls: int = 0
    files_created: int = 0
    #: Distinct tools (plugins) run under the job, and its phases in the order they first started.
    plugins: set[str] = field(default_factory=set, repr=False)
    phases: dict[str, None] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    #: thread id -> that thread's counts of the calls :meth:`add_one` counts
    _per_thread: dict[int, dict[str, int]] = field(default_factory=dict, repr=False)

    def __init__(self, id: str, type: str) -> None:
        """Written out: the generated ``__init__``, with its default factories, cost twice as much on every job."""
        self.id, self.type = id, type
        self.agent_calls = self.provider_calls = self.tool_calls = self.input_tokens = self.output_tokens = 0
        self.cost = 0.0
        self.priced_calls = self.unpriced_calls = self.ended_calls = 0
        self.files_created = 0
        self.plugins = set()
        self.phases = {}
        self._lock = threading.Lock()
        self._per_thread = {}

    def add(self, **deltas: float) -> None:
        values = self.__dict__  # the counters are plain fields: no getattr/setattr per delta
        with self._lock:
            for name, delta in deltas.items():
                values[name] += delta

    def add_one(self, name: str) -> None:
        """Count one agent, tool or model call (``name``: one of :data:`_COUNTED_PER_THREAD`), without a lock: each
        thread counts in its own dict, which only it writes, and the roll-up adds them up. A lock per call cost
        more than the rest of the roll-up; the counts stay exact under free-threaded Python too."""
        counts = self._per_thread.get(_get_ident())
        if counts is None:
            counts = self._thread_counts()
        counts[name] += 1

    def _thread_counts(self) -> dict[str, int]:
        with self._lock:  # the first call in this thread (a thread id may be reused: its dict is then shared
            # with a thread that has ended, which writes no more)
            return self._per_thread.setdefault(_get_ident(), dict.fromkeys(_COUNTED_PER_THREAD, 0))

    def _counts(self) -> tuple[int, int, int]:
        """The job's agent, provider and tool calls: its fields (what :meth:`add` counted) and the threads' own
        counts, in one pass (a generator per count cost a microsecond on every job); under the lock (a new thread's
        dict is added under it)."""
        agent_calls, provider_calls, tool_calls = self.agent_calls, self.provider_calls, self.tool_calls
        for counts in self._per_thread.values():
            agent_calls += counts["agent_calls"]
            provider_calls += counts["provider_calls"]
            tool_calls += counts["tool_calls"]
        return agent_calls, provider_calls, tool_calls

    def use_plugin(self, name: str) -> None:
        if name not in self.plugins:  # the lock only the first time (rollup_attributes iterates under it)
            with self._lock:
                self.plugins.add(name)

    def add_phase(self, name: str) -> None:
        with self._lock:
            self.phases.setdefault(name, None)

    def rollup_attributes(self) -> dict[str, int | float | list[str]]:
        with self._lock:
            workflow: dict[str, int | float | list[str]] = {}
            if self.plugins:
                workflow[semconv.JOB_ROLLUP_PLUGINS_USED] = sorted(self.plugins)
            if self.phases:
                workflow[semconv.JOB_ROLLUP_PHASES] = list(self.phases)
            if self.files_created:
                workflow[semconv.JOB_ROLLUP_FILES_CREATED] = self.files_created
            # model calls none of which had a price (unpriced, or no usage: cancelled, failed, a provider that
            # reports none): not known, where 0.0 would read as free; a job with no model call cost nothing
            agent_calls, provider_calls, tool_calls = self._counts()
            unpriced = self.unpriced_calls + max(0, provider_calls - self.ended_calls)
            if unpriced:
                workflow[semconv.JOB_ROLLUP_UNPRICED_CALLS] = unpriced
            if self.priced_calls or not (self.unpriced_calls or provider_calls):
                workflow[semconv.JOB_ROLLUP_COST] = round(self.cost, 10)
            return {
                **workflow,
                semconv.JOB_ROLLUP_AGENT_CALLS: agent_calls,
                semconv.JOB_ROLLUP_PROVIDER_CALLS: provider_calls,
                semconv.JOB_ROLLUP_TOOL_CALLS: tool_calls,
                semconv.JOB_ROLLUP_INPUT_TOKENS: self.input_tokens,
                semconv.JOB_ROLLUP_OUTPUT_TOKENS: self.output_tokens,
            }


def current_job(ctx: Context | None = None) -> JobState | None:
    """The job running in this context, if it was started in this process."""
    state = (ctx if ctx is not None else otel_context.get_current()).get(JOB_KEY)
    return state if isinstance(state, JobState) else None


def current_job_id(ctx: Context | None = None) -> str | None:
    """The id of the job this code runs under: from this process's job, else from W3C baggage."""
    state = (ctx if ctx is not None else otel_context.get_current()).get(JOB_KEY)
    if isinstance(state, JobState):
        return state.id
    return _baggage_job_id(ctx)


def _baggage_job_id(ctx: Context | None) -> str | None:
    value = baggage.get_baggage(semconv.BAGGAGE_JOB_ID, ctx)
    return str(value) if value is not None else None


#: The longest list member W3C baggage carries (``job.id=`` and the id, percent-encoded): the propagators drop a
#: longer one when they write the header, with a warning on the program's stderr.
_BAGGAGE_MEMBER_MAX = 4096
#: Job types no longer than this fit whatever their characters (a character is at most 12 when percent-encoded).
_FITS_ANY_ENCODING = (_BAGGAGE_MEMBER_MAX - len(_BAGGAGE_JOB_TYPE) - 1) // 12  # the job type, checked per job


def fits_in_baggage(value: str, key: str = _BAGGAGE_JOB_ID) -> bool:
    """Whether ``value`` travels in W3C baggage as the entry ``key`` (see :data:`_BAGGAGE_MEMBER_MAX`)."""
    return len(value) <= (_BAGGAGE_MEMBER_MAX - len(key) - 1) // 12 or (
        len(key) + 1 + len(quote_plus(value)) <= _BAGGAGE_MEMBER_MAX)


def context_with_job(state: JobState, ctx: Context | None = None, entries: Mapping[str, object] | None = None,
                     carry_id: bool = True) -> Context:
    """``ctx`` (default: current) with the job, its id (unless ``carry_id`` is false) and type in baggage, and
    ``entries`` (context key -> value): what two ``set_baggage()`` and the ``set_value()`` calls make, in one copy
    of the context and one of the baggage."""
    if ctx is None:
        ctx = otel_context.get_current()
    entries_carried = ctx.get(BAGGAGE_KEY)
    carried = dict(entries_carried) if entries_carried else {}  # type: ignore[call-overload]  # the API's own dict
    if carry_id:
        carried[_BAGGAGE_JOB_ID] = state.id
    else:  # nor an enclosing job's, which would read as this one's across the boundary
        carried.pop(_BAGGAGE_JOB_ID, None)
    if len(state.type) <= _FITS_ANY_ENCODING or fits_in_baggage(state.type, _BAGGAGE_JOB_TYPE):
        carried[_BAGGAGE_JOB_TYPE] = state.type
    else:  # on the job's spans and metrics here; the propagators would drop it, warning on the host's stderr
        carried.pop(_BAGGAGE_JOB_TYPE, None)
        report_error(semconv.JOB_TYPE, ValueError("the job type is too long to travel in W3C baggage"))
    if entries:
        return Context({**ctx, BAGGAGE_KEY: carried, JOB_KEY: state, **entries})
    return Context({**ctx, BAGGAGE_KEY: carried, JOB_KEY: state})
