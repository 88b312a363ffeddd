"""Inference and tool calls per agent invocation: ``gen_ai.invoke_agent.inference_calls`` and ``.tool_calls``.

An agent invocation puts a :class:`CallCounts` in the context it runs in. Every model request under it (one
logical request counts once, at its outermost wrapper) and every tool call adds to the counts of the nearest
enclosing invocation, so a sub-agent's calls count for the sub-agent only, as the GenAI conventions ask.
Calls another instrumentation traces count too: the span bridge passes on the counts of the context their
span started in. The counts are shared by reference, so calls made on other threads and tasks that carry
the context count as well. A runaway loop shows as an invocation in the top buckets.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.context import Context

from agent_otel import semconv
from agent_otel._context.running import SPAN_KEY, STARTED_BARE
from agent_otel._engine.instruments import Runtime, runtime
from agent_otel._engine.policy import attribute_dict
from agent_otel._engine.wrapped_spans import sdk_span

CALLS_KEY = otel_context.create_key("agent_otel.agent.calls")
_get_ident = threading.get_ident
#: What :meth:`CallCounts.add` counts: a model request, a tool call.
INFERENCE, TOOL = 0, 1


class CallCounts:
    """The calls one agent invocation made so far. One invocation makes one per call, so it is cheap: each
    thread counts in a list of its own, which only it writes (thread-safe without a lock), and a count adds the
    threads' up. (A list entry per call, appended atomically, grew a long-lived invocation by 8 bytes a call.)"""

    __slots__ = ("_per_thread", "ended", "twin_seen", "workflow_seen")

    def __init__(self) -> None:
        #: thread id -> that thread's [inference calls, tool calls]
        self._per_thread: dict[int, list[int]] = {}
        #: Another library's span of this very invocation was seen (the span bridge counts the call once).
        self.twin_seen = False
        #: ... and another library's workflow span directly inside it, which is this invocation's run too.
        self.workflow_seen = False
        #: The invocation ended: a library's run that starts in its context now (the run of a handle it returned) is a
        #: run of its own. Written by the invocation alone (the two above are the span bridge's).
        self.ended = False

    def totals(self) -> tuple[int, int]:
        """The inference and tool calls so far, the threads' counts added up in one pass (most invocations run
        in one thread: no sum then)."""
        per_thread = list(self._per_thread.values())  # a copy: a thread may add one
        if not per_thread:
            return 0, 0
        if len(per_thread) == 1:
            only = per_thread[0]
            return only[INFERENCE], only[TOOL]
        return sum(counts[INFERENCE] for counts in per_thread), sum(counts[TOOL] for counts in per_thread)

    def add(self, kind: int) -> None:
        """One more call of ``kind`` (:data:`INFERENCE` or :data:`TOOL`) in this thread."""
        counts = self._per_thread.get(_get_ident())
        if counts is None:  # this thread's first (an id reused by a new thread shares an ended one's, unwritten)
            counts = self._per_thread.setdefault(_get_ident(), [0, 0])
        counts[kind] += 1


def current_counts(ctx: Any = None) -> CallCounts | None:
    """The counts of the agent invocation this context runs in, if any."""
    counts = (ctx if ctx is not None else otel_context.get_current()).get(CALLS_KEY)
    return counts if isinstance(counts, CallCounts) else None


def context_with_counts(counts: CallCounts | None, ctx: Any) -> Any:
    return otel_context.set_value(CALLS_KEY, counts, ctx) if counts is not None else ctx


def record_call_counts(ctx: Any, counts: CallCounts, agent_name: str, error_type: str | None,
                       rt: Runtime | None = None) -> None:
    """One point on each histogram for the invocation that ends (zero calls included). ``rt``: the runtime,
    when the caller has it already."""
    attributes = {semconv.GEN_AI_AGENT_NAME: agent_name}
    if error_type is not None:
        attributes[semconv.ERROR_TYPE] = error_type
    if rt is None:
        rt = runtime()
    instruments = rt.instruments  # a dict read each (rt[spec] is a Python call)
    inference, tool = counts.totals()
    instruments[semconv.AGENT_INFERENCE_CALLS.name].record(inference, attributes, context=ctx)
    instruments[semconv.AGENT_TOOL_CALLS.name].record(tool, attributes, context=ctx)


class AgentRun:
    """An invocation of another library's agent (an ``invoke_agent`` span no call of ours covers). The model
    and tool calls under its span are its own, as those under our agent are ours, whichever recorded them (the
    span bridge, or a wrapper of ours directly under its spans): their cost carries its ``gen_ai.agent.name``
    (bounded), and they add to its per-invocation counts."""

    __slots__ = ("calls", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls = CallCounts()


#: A span -> the other library's agent invocation the calls under it are part of: that agent's own span, the spans
#: of its calls and steps, and a call of ours made among them (weak: nothing to remove when a span is dropped).
#: Set by the span bridge. ``RUNS`` is its dict, read per call: empty, nothing to look up.
_runs: weakref.WeakKeyDictionary[Any, AgentRun] = weakref.WeakKeyDictionary()
RUNS: dict[Any, AgentRun] = _runs.data  # type: ignore[attr-defined]


def note_run(span: Any, run: AgentRun) -> None:
    _runs[span] = run


def run_of(span: Any) -> AgentRun | None:
    return _runs.get(span) if RUNS else None


#: How many spans with no attribute a call of ours looks up through for the agent invocation they are part of.
_BARE_LEVELS = 8


def run_under(ctx: Context) -> AgentRun | None:
    """The other library's agent invocation a call of ours starting in ``ctx`` is part of, if any (its span
    directly among that agent's spans): the call counts for that agent, as an agent of ours owns the calls
    under it. A span of another library's that started with no attribute (strands marks its tool's span right
    after it starts it, see :data:`~agent_otel._context.running.STARTED_BARE`) and is no part of one yet passes on
    the one it started in, if it is of that agent's library or carries GenAI names (not the program's own)."""
    if not RUNS:
        return None
    span = sdk_span(ctx.get(SPAN_KEY))  # (logfire's wrapper of it, under its tracers)
    passed: list[tuple[str | None, bool]] = []
    for _ in range(_BARE_LEVELS):
        if span is None:  # no span there (a task the program started before any): no weak reference to look up
            return None
        run = _runs.get(span)
        if run is not None:
            return None if outside_run(passed, span) else run
        started_in = getattr(span, STARTED_BARE, None)
        if started_in is None:
            return None
        passed.append((scope_of(span), not semconv.GENAI_MARKERS.isdisjoint(attribute_dict(span))))
        span = sdk_span(started_in[0].get(SPAN_KEY))  # (its parent's)
    return None


def scope_of(span: object) -> str | None:
    return getattr(getattr(span, "instrumentation_scope", None), "name", None)


def outside_run(passed: list[tuple[str | None, bool]], found_at: object) -> bool:
    """Whether a call is no part of the agent invocation found at span ``found_at`` above it, for the spans of no
    call between (``passed``: each one's scope, and whether it carries GenAI names): one of the program's own, or of
    another instrumentation, is no step of that agent's (a step of its library's, or one in GenAI names, is). Its
    library's steps may have scopes of their own: Semantic Kernel's auto function-calling loop between its agent's span
    and the model calls is ``semantic_kernel.connectors...``, the agent's ``semantic_kernel.utils...``."""
    library = library_of(scope_of(found_at))
    return any(not named and library_of(where) != library for where, named in passed)


#: Libraries that name their tracers after their modules, so that one library's spans come with several scope names:
#: a span of no call under its agent's span is a step of that agent's whatever module traced it (Semantic Kernel's
#: auto function-calling loop, ``semantic_kernel.connectors...``, under its agent's ``semantic_kernel.utils...``).
#: Others are told by their whole scope name: the first dotted part alone groups unrelated ones (``azure.ai.agents``
#: and ``azure.storage.blob``).
_MODULE_NAMED = ("semantic_kernel.",)


def library_of(scope: str | None) -> str | None:
    """The library a scope name is of: the prefix of :data:`_MODULE_NAMED` it starts with, else the name itself."""
    if scope is not None:
        for prefix in _MODULE_NAMED:
            if scope.startswith(prefix):
                return prefix
    return scope
