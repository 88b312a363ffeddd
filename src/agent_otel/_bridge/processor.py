"""The span bridge: GenAI spans that other libraries start become agent-otel telemetry.

:class:`GenAiSpanBridge` is a span processor on the tracer provider ``configure()`` installs. For a
span of another instrumentation that :func:`~agent_otel._bridge.sources.classify` recognises, it
records when the span ends what our own wrapper of the same kind would have recorded: provider calls
(duration, errors, time to first chunk, tokens, cost from the price table), agent and workflow
invocations (duration and outcome), tool calls, the job's roll-ups, and the scores of the
``gen_ai.evaluation.result`` events on GenAI spans (ours too, but those ``record_evaluation()`` counted).
Job and conversation ids are stamped on the span by the id processor, as on every span.

**Counted once.** A call covered twice, by two nested spans of the same kind and operation (two inference
operations of one model are one: :func:`~agent_otel._bridge.sources.same_operation`; an
agent-otel wrapper around a call another instrumentation also traces, or two instrumentations of one
call such as a framework's model span around the SDK's), is counted once: a span of ours always wins
over another library's, and otherwise the outer span wins. The loser still exports its span.

**A framework's agent owns its calls.** The model and tool calls under another library's agent span (through
spans of no call that carry GenAI names, such as OpenInference's steps) are that agent's, as the calls under
our agent are ours: their cost carries its name, its invocation records their counts.

**The same content rule.** With content capture off (the default), prompts, responses and tool
payloads (:data:`agent_otel.semconv.CONTENT_ATTRIBUTES`) are removed from another instrumentation's GenAI
spans as they end, as our own spans never record them.

**Standard metrics from one source.** Some instrumentations also record the standard GenAI metrics
themselves (``gen_ai.client.operation.duration``, ``gen_ai.client.token.usage``): the bridge records
every call again under agent-otel's instrumentation scope, with the contract's buckets and the
cardinality cap, and the shipped rules and dashboards read only that scope (``otel_scope_name``), so a
``sum()`` never counts a call twice.
"""

from __future__ import annotations

import asyncio
import functools
import queue
import sys
import threading
import weakref
from collections.abc import Mapping
from contextvars import ContextVar
from types import CodeType, FrameType
from typing import Any, TypeAlias, cast

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Span, SpanProcessor
from opentelemetry.trace import NonRecordingSpan, StatusCode

from agent_otel import semconv
from agent_otel._bridge import sources
from agent_otel._bridge.sources import Kind
from agent_otel._calls.agent import record_agent_call
from agent_otel._calls.call_counts import (
    CALLS_KEY,
    AgentRun,
    CallCounts,
    context_with_counts,
    current_counts,
    note_run,
    outside_run,
    record_call_counts,
    run_of,
    scope_of,
)
from agent_otel._calls.evaluation import record_result
from agent_otel._calls.pricing import TokenUsage
from agent_otel._calls.provider import (
    PROVIDER_KEY,
    ProviderInvocation,
    note_twin_beside,
    priced_cost,
    record_request,
    record_usage,
    running_provider,
)
from agent_otel._calls.tool import TOOL_KEY, OpenToolCall, record_tool_call
from agent_otel._context import running
from agent_otel._context.job import AGENT_KEY, AGENT_VERSION_KEY, JOB_KEY, current_job
from agent_otel._context.running import STARTED_BARE, forget, note_started_in, running_context
from agent_otel._engine import collection
from agent_otel._engine.control_flow import names_control_flow
from agent_otel._engine.inside import MADE_BY
from agent_otel._engine.instruments import runtime
from agent_otel._engine.policy import OTHER, attribute_dict, policy
from agent_otel._engine.self_telemetry import report_error
from agent_otel._engine.wrapped_spans import span_in
from agent_otel._engine.wrappers import MAKING_CALL_CODE

#: ``agent.task.type`` of an invocation the bridge records from a workflow span.
WORKFLOW_TASK_TYPE = "workflow"
_OTHER_ERROR = "_OTHER"
#: Kinds whose call of ours covers one span of another library only: its first direct child of the kind (see
#: :func:`_first_twin`), else the first of its name further down (:func:`_in_our_call`)
_NAMED = frozenset({Kind.AGENT, Kind.TOOL})


#: A provider span as :meth:`GenAiSpanBridge._sibling_twin` matches it: its parent span, where it runs (thread and
#: task), its instrumentation scope, its provider, its request model and its start time.
_Sibling: TypeAlias = tuple[Any, tuple[int, int], str | None, str | None, str | None, int]
#: How soon after another library's span of one call its twin beside it starts: the Python code between the two
#: wrappers' starts, no request (1 to 2 ms measured; a stream still open when the next call starts has had at least
#: its response's headers).
_TWIN_WITHIN_NS = 50_000_000


class _Seen:
    """What the bridge noted when another library's GenAI span started: its kind, the job and agent it
    ran under, and whether another span of the same call counts it instead."""

    __slots__ = ("agent", "below", "calls", "claims", "context", "counts_unknown", "covered", "enclosing",
                 "inner_reported", "job", "kind", "made_in", "named_run_failed", "named_runs", "operation", "own",
                 "ref", "report_key", "report_of", "run_of_workflow", "sibling", "span_address", "span_id",
                 "started_by", "twin", "twin_of", "unpriced_in_job", "usage_to", "usage_unknown")

    def __init__(self, kind: Kind, operation: str, context: Context) -> None:
        self.kind = kind
        self.operation = operation
        #: a provider call's: (its parent span, where, scope, provider, request model and start time) while no
        #: sibling of another library is its twin yet (see _sibling_twin), else None. Never the span itself: the
        #: span is this object's key in a weak mapping, which a strong reference here would keep for ever
        self.sibling: _Sibling | None = None
        #: the frame whose code started it (see _starting_frame), while it may be a twin of ours beside it
        self.started_by: tuple[int, CodeType] | None = None
        #: the call of ours being made around its start, if any (see wrappers.MAKING_CALL_CODE and inside.MADE_BY)
        self.made_in: int | None = None
        #: the context it started in: its call is recorded there (its job, phase, agent), not where it ends (a
        #: stream read to its end in another request's, a callback's span ended under another job)
        self.context = context
        self.job = current_job(context)
        self.agent = otel_context.get_value(AGENT_KEY, context)
        self.calls: Any = None  # the enclosing agent invocation's call counts (call_counts.CallCounts)
        self.covered = False
        #: a model call's span that only reports the usage of a call its library's other span counted (see
        #: sources.usage_report): that call's entry; its tokens and cost are recorded, no second call
        self.report_of: _Seen | None = None
        #: a call of a library that may report its usage later (sources.usage_reported_later): where the bridge keeps
        #: it while it may (see GenAiSpanBridge._reportable)
        self.report_key: tuple[int, int, str | None] | None = None
        #: a model call's span ended with no usage (a stream handed out), and was counted so in its job, unpriced
        self.usage_unknown = self.unpriced_in_job = False
        #: an agent's: how many agent calls of ours naming another agent started directly inside it (see start_genai)
        self.claims = 0
        #: a workflow's: its library's agent runs of its name directly inside (see _workflow_of_agent): the one such
        #: run is the workflow's, recorded as the agent's; the workflow counts on its own only when it failed and
        #: that run did not fail, or had not ended (see _stood_for_its_agent)
        self.named_runs = 0
        self.named_run_failed = False
        #: an agent run's: the workflow of its name it runs directly inside
        self.run_of_workflow: _Seen | None = None
        self.usage_to: ProviderInvocation | None = None  # our provider call it is part of: gets its tokens
        self.enclosing: _Seen | None = None  # the span of that call open around it (see _OPEN_INSIDE): the same request
        self.inner_reported = False  # a span inside it reported the request's tokens
        self.own: AgentRun | None = None  # an agent's own invocation, when no call of ours covers it
        #: an agent marked after calls inside it were counted (see GenAiSpanBridge.start_late): how many is not known
        self.counts_unknown = False
        self.below: AgentRun | None = None  # the other library's agent invocation the spans inside it are part of
        self.twin_of: _Seen | None = None  # the outer span of the same call, which counts it (see _with_twin)
        self.twin: tuple[Mapping[str, Any], int | None] | None = None  # the last such span inside it: its attributes
        # and start time
        #: the span's weak reference (see GenAiSpanBridge._collected), address, and id: which tells it from a later
        #: span at the same address
        self.ref: weakref.ref[Any] | None = None
        self.span_address = self.span_id = 0


#: How many calls that may get a usage report are kept per parent span and model, and for how many of those: the
#: oldest go first (a stream handed out and never read gets none)
_REPORTABLE_PER_PARENT = 64
_REPORTABLE_PARENTS = 1024


#: The spans being collected that the bridge was tracking, by (bridge, address): the garbage collector clears the weak
#: references to a cycle's objects before it runs their finalizers, so a span that a finalizer ends (a stream's,
#: abandoned half-read in a reference cycle) left the bridge's mapping before it ended, and its call was lost. Kept
#: while the collection runs (a span freed outside one, by its last reference, has no finalizer left to end it): read
#: after it, they are dropped (:func:`_still_dying`; no callback of ours runs in a collection, see collection).
DYING: dict[tuple[int, int], _Seen] = {}
#: The collection :data:`DYING`'s entries were freed in (see collection.current).
_dying_in: object = None
# While a garbage collection runs (collection.running()), a span that ends ends in a finalizer, which may have
# interrupted the same thread inside the SDK's recording, holding a lock that recording takes again (an exemplar
# reservoir's): its call is recorded on another thread (:func:`_record_later`).


def _still_dying() -> bool:
    """Whether a collection runs, for which :data:`DYING` holds its spans (one an earlier collection left there is told
    apart by its span id); outside one, what it holds is dropped. Never while one runs, on another thread too: it
    may be adding to it (an earlier one's are dropped as the first of its own is added)."""
    if collection.running():
        return True
    DYING.clear()
    return False


#: What ended during a garbage collection, recorded by :func:`_record_later`'s thread.
_LATER: queue.SimpleQueue[tuple[GenAiSpanBridge, Span, _Seen]] = queue.SimpleQueue()
_later_thread: threading.Thread | None = None


def _ours(span: Any) -> bool:
    scope = getattr(span, "instrumentation_scope", None)
    return scope is not None and scope.name == semconv.SCOPE_NAME


#: Kept on another library's span not noted as a GenAI call (yet) when a model or tool call was counted directly inside
#: it: the kinds. Marked as it ends as a call of one of those kinds, it is the same call (a framework's model span
#: around the SDK's), counted already; and it tells its own parent in turn (see GenAiSpanBridge.start_late).
COUNTED_BELOW = "_agent_otel_counted_below"
#: Kept on a span that started with no attribute (see running.STARTED_BARE) and was no GenAI call when a call first
#: started inside it (a span marked after it started is marked before the calls inside it start, or as it ends): the
#: agent invocation above it then, in a 1-tuple (None for none). The calls after the first inside it read it, and look
#: no further. (Each is an attribute of the span's own: reading a span's ``__dict__`` makes CPython build it.)
CHECKED_BARE = "_agent_otel_checked"
#: How many spans up from a call it looks through for the agent invocation it is part of.
_BARE_LEVELS = 8


class GenAiSpanBridge(SpanProcessor):
    """Records agent-otel metrics for the GenAI spans of other instrumentations (see the module). Our own
    spans are not tracked: their wrappers record them, so on every agent-otel call the bridge only
    classifies the span and looks for a tracked parent."""

    def __init__(self) -> None:
        # keyed by the SDK span objects (the parent's comes back from the context as the API's Span type)
        self._seen: weakref.WeakKeyDictionary[Any, _Seen] = weakref.WeakKeyDictionary()
        #: the weak mapping's own dict, for the check every span pays: its truth is a C check, the
        #: mapping's ``len()`` a Python call
        self.open_spans: dict[Any, _Seen] = cast(Any, self._seen).data
        #: each tracked span's weak reference with a callback (see DYING), to the span's entry
        self._refs: dict[weakref.ref[Any], _Seen] = {}
        #: held while a span marked after it started is noted (start_late): the first calls inside it may start on
        #: several threads at once, and it is noted once (an entry noted twice lost the calls counted in the first)
        self._noting = threading.RLock()
        #: the calls that may get a usage report (sources.usage_reported_later), by their parent span's trace and span
        #: ids and their request model, oldest first: what a report finds its call by (logfire carries only the ids)
        self._reportable: dict[tuple[int, int, str | None], list[_Seen]] = {}
        self._reporting = threading.Lock()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            attributes = attribute_dict(span)
        except Exception as exc:
            report_error("bridge.start", exc)
            return
        if sources.may_be_genai(attributes):  # most spans of a process are not: an HTTP client's, a database's
            self.start_genai(span, parent_context, attributes)

    def start_genai(self, span: Span, parent_context: Context | None, attributes: Mapping[str, Any],
                    late: Context | None = None) -> None:
        """:meth:`on_start` for a span that :func:`~agent_otel._bridge.sources.may_be_genai` passes, given
        its attribute dict (the combined span processor has it already). ``late``: marked after it started, the context
        of the agent-otel calls running where it started (see :meth:`start_late`)."""
        try:
            ours = _ours(span)
            parent_span = span_in(parent_context)  # (logfire's wrapper of it, under its tracers)
            bare_parent = _started_bare(parent_span)
            if ours and not (self.open_spans or bare_parent):  # no other library's GenAI span to cover
                return
            found = sources.classify(attributes)
            if found is None:
                if self.open_spans and not ours:
                    self._pass_run(span, parent_span)
                return
            kind, operation = found
            parent = self._seen.get(parent_span) if self.open_spans else None
            run_above: AgentRun | None = None
            if parent is None and bare_parent:  # another library's span around it, marked since it started or not yet
                parent, run_above = self._marked_since(parent_span, kind)
            same = parent is not None and parent.kind is kind and ((parent.operation == operation and (
                kind is not Kind.AGENT or ours or _their_one_agent(parent_span, attributes))) or (
                    kind is Kind.PROVIDER and sources.same_operation(
                        parent.operation, operation, sources.request_model_of(attribute_dict(parent_span)),
                        sources.request_model_of(attributes))))
            if ours:  # one call, two spans: ours wins over another library's outer span (not a job: one that a
                # framework's graph step opens is inside the graph's run, not that run)
                if same and parent is not None and kind is not Kind.WORKFLOW:
                    if kind is Kind.AGENT and not _one_agent(parent_span, attributes):  # ours names it otherwise: the
                        parent.claims += 1  # first such call of ours directly inside is that run, a second makes it a
                        parent.covered = parent.claims == 1  # team's, with runs of its own inside (its run counts)
                    else:
                        parent.covered = True
                elif kind is Kind.PROVIDER and parent is None and self.open_spans:
                    # and over one beside it, not made current (OpenLLMetry's Anthropic wrapper, outside ours when it
                    # instrumented the SDK after agent-otel's config had): started just before ours, for the same
                    # call, whose result our wrapper reads
                    ours_beside = (parent_span, _where(), semconv.SCOPE_NAME, sources.provider_of(attributes),
                                   sources.request_model_of(attributes), span.start_time or 0)
                    twin = self._sibling_twin(ours_beside, operation, _running_frames(), MADE_BY.call)
                    if twin is not None:
                        twin.covered = True
                        note_twin_beside(span, functools.partial(_beside_our_call, twin))
                if kind is Kind.TOOL or kind is Kind.PROVIDER:  # a call of ours among another library's agent's
                    # spans is that agent's (run_under), and so are the calls under it
                    run = parent.below if parent is not None else run_of(parent_span) or run_above
                    if run is not None:
                        note_run(span, run)
                return
            if kind is Kind.PROVIDER and sources.usage_report(attributes):
                self._note_report(span, operation, parent_span, attributes)
                return
            workflow = parent if kind is Kind.AGENT and parent is not None and parent.kind is Kind.WORKFLOW and (
                not parent.covered and _workflow_of_agent(parent_span, span, attributes)) else None
            if workflow is not None:
                workflow.named_runs += 1  # the library's workflow of its agent's run, of one name (ADK's Runner)
            started_in = running_context(late if late is not None else starting_context(parent_context))
            seen = _Seen(kind, operation, started_in)
            seen.calls = current_counts(started_in)
            run = (parent.below if parent is not None else run_of(parent_span)) if self.open_spans else None
            if run is None:
                run = run_above
            if run is not None:  # inside another library's agent invocation: its call, as in an agent of ours
                seen.agent, seen.calls, seen.below = run.name, run.calls, run
            elif parent is not None:  # a step the library ran where no call of ours shows (LangGraph runs a subgraph's
                # steps on its parent graph's executor): the agent, calls and job of the span around it
                if seen.calls is None:
                    seen.agent, seen.calls = parent.agent, parent.calls
                if seen.job is None:
                    seen.job = parent.job
            if same:
                seen.covered = True  # the outer span wins
                if kind is Kind.PROVIDER:  # with what this one has and it lacks
                    seen.twin_of = parent
            elif parent is None and _ours(parent_span) and getattr(parent_span, "end_time", None) is None and (
                    _directly_ours(attribute_dict(parent_span), found, attributes, started_in)):  # (an ended one is
                # no call this span is part of: see running_provider)
                seen.covered = True  # ours wins: a framework's run or tool call directly inside ours is ours
            elif _in_our_call(kind, operation, attributes, span.name, started_in):
                seen.covered = True  # ours, the parent or further up: spans between (a retry's, a step's) don't count
                if kind in _RUNS:  # our agent call's run: the steps inside it are our call's, not the library's
                    # agent's around ours (the tool that called it), however the library parents or runs them
                    seen.agent, seen.calls, seen.below = otel_context.get_value(AGENT_KEY, started_in), \
                        current_counts(started_in), None
            elif kind is Kind.PROVIDER:
                sibling = (parent_span, _where(), getattr(span.instrumentation_scope, "name", None),
                           sources.provider_of(attributes), sources.request_model_of(attributes), span.start_time or 0)
                twin = self._sibling_twin(sibling, operation) if self.open_spans else None
                if twin is not None:  # the outer span wins, as for a twin inside it
                    seen.covered, seen.twin_of, same = True, twin, True
                else:
                    seen.sibling, seen.started_by, seen.made_in = sibling, _starting_frame(), _making_call()
            counted_below = False
            if late is not None:
                below = _counted_below(span)
                if kind in _CALLS and kind in below:  # a call inside it counted this one (the SDK's span in a model's)
                    seen.covered = counted_below = True
                seen.counts_unknown = bool(below)  # calls inside it were counted before it was known (else none ran:
                # one would have noted it)
            elif kind in _CALLS and parent is None and isinstance(parent_span, Span) and not _ours(parent_span):
                _tell(parent_span, kind)  # a span around it marked as it ends may be this call (see COUNTED_BELOW)
            if seen.covered and not same and not counted_below and kind is Kind.PROVIDER:
                _inside_our_provider_call(seen, _our_provider_call(started_in, operation,
                                                                   sources.request_model_of(attributes)))
            elif kind is Kind.AGENT and not seen.covered:
                seen.own = seen.below = AgentRun(
                    policy().bounded(semconv.GEN_AI_AGENT_NAME, sources.agent_name_of(attributes) or span.name))
            elif kind is Kind.PROVIDER and sources.usage_reported_later(span):
                self._reportable_call(parent_span, attributes, seen)
            seen.run_of_workflow = workflow
            self._track(span, seen)
            if seen.below is not None:
                note_run(span, seen.below)
        except Exception as exc:
            report_error("bridge.start", exc)

    def _track(self, span: Span, seen: _Seen) -> None:
        self._seen[span] = seen
        seen.ref, seen.span_address = weakref.ref(span, self._collected), id(span)
        seen.span_id = span.get_span_context().span_id
        self._refs[seen.ref] = seen
        note_started_in(span, seen.context)

    def _reportable_call(self, parent_span: Any, attributes: Mapping[str, Any], seen: _Seen) -> None:
        """Keep a call whose usage its library may report later, in a span of its own (see _note_report)."""
        parent = parent_span.get_span_context()
        key = seen.report_key = (parent.trace_id, parent.span_id, sources.request_model_of(attributes))
        with self._reporting:
            waiting = self._reportable.setdefault(key, [])
            waiting.append(seen)
            if len(waiting) > _REPORTABLE_PER_PARENT:  # streams handed out and never read: no report comes
                del waiting[0]
            if len(self._reportable) > _REPORTABLE_PARENTS:
                del self._reportable[next(iter(self._reportable))]

    def _no_report(self, seen: _Seen) -> None:
        """``seen``'s call ended, and gets no report: its usage is known, or another span covered it (a report then
        finds nothing to record, as none was kept)."""
        key, seen.report_key = seen.report_key, None
        if key is not None:
            with self._reporting:
                self._unlist(key, seen)

    def _unlist(self, key: tuple[int, int, str | None], seen: _Seen) -> None:
        """``seen`` no longer waits for a report (``_reporting`` held)."""
        waiting = self._reportable.get(key)
        if waiting is not None and seen in waiting:
            waiting.remove(seen)
            if not waiting:
                del self._reportable[key]

    def _note_report(self, span: Span, operation: str, parent_span: Any, attributes: Mapping[str, Any]) -> None:
        """A usage report (see sources.usage_report): it counts the tokens and cost of the call it reports on, in that
        call's job and agent: the oldest call of its library under the same parent, for the same model, whose span
        ended with no usage (else the oldest still running). None such (a call never seen, or one another span
        covered, ours or its twin, which counted its usage): nothing to record."""
        parent = parent_span.get_span_context()
        key = (parent.trace_id, parent.span_id, sources.request_model_of(attributes))
        with self._reporting:
            waiting = self._reportable.get(key)
            call = next((each for each in waiting if each.usage_unknown), waiting[0]) if waiting else None
            if call is not None:
                self._unlist(key, call)
        if call is None:  # noted all the same, as covered: no GenAI span left unnoted as it ends (see marked_at_end)
            seen = _Seen(Kind.PROVIDER, operation, otel_context.get_current())
            seen.covered = True
        else:
            call.report_key = None
            seen = _Seen(Kind.PROVIDER, operation, call.context)
            seen.agent, seen.calls, seen.job, seen.report_of = call.agent, call.calls, call.job, call
        self._track(span, seen)

    def start_late(self, span: Span, attributes: Mapping[str, Any], at_end: bool = False) -> None:
        """Note another library's GenAI span marked after it started, as :meth:`start_genai` would have at its
        start: in the context it started in when it started with no attribute (see :data:`STARTED_BARE`), else in
        the current one. Noted as a call starts inside it (strands marks its spans right after it starts them), it is
        what it would have been. Noted as it ends (``at_end``: a strands span with no call inside), it is then
        recorded, and tells its parent in turn (see :data:`COUNTED_BELOW`)."""
        with self._noting:
            if span in self._seen:  # noted already, on another thread
                return
            kept = getattr(span, STARTED_BARE, None)
            if kept is not None:
                setattr(span, STARTED_BARE, None)
            started_in, current = kept if kept is not None else (otel_context.get_current(),) * 2
            self.start_genai(span, started_in, attributes, late=starting_context(started_in, current))
            seen = self._seen.get(span)
        if at_end and kept is not None and seen is not None and seen.kind in _CALLS:
            parent = span_in(started_in)
            if isinstance(parent, Span) and self._seen.get(parent) is None and not _ours(parent):
                _tell(parent, seen.kind)

    def _marked_since(self, span: Any, kind_below: Kind) -> tuple[_Seen | None, AgentRun | None]:
        """For a call of ``kind_below`` starting under ``span``, another library's span that started with no
        attribute: noted if it is a GenAI call by now (:meth:`start_late`: the call's parent, then), and the agent
        invocation the call is part of, looked for up through the spans of no call of that agent's library (strands'
        event-loop cycle between its agent and its tool) or in GenAI names, as for spans marked as they start, each
        noted in turn if it is a call by now. ``span``, no call yet, is told of it (see :data:`COUNTED_BELOW`)."""
        start, found, run = span, None, None
        checked: list[Any] = []
        passed: list[tuple[str | None, bool]] = []  # the spans of no call looked through: scope, carries GenAI names
        for level in range(_BARE_LEVELS):
            seen = self._seen.get(span) if level else None  # (the caller looked for the first)
            if seen is None:
                if level:
                    run = run_of(span)
                    if run is not None:
                        break
                started_in = getattr(span, STARTED_BARE, None)
                looked = getattr(span, CHECKED_BARE, None)
                if started_in is None:
                    with self._noting:  # (noted on another thread as this one looked?)
                        seen = self._seen.get(span)
                    if seen is None:
                        break
                elif looked is not None:
                    run = looked[0]
                    break
                else:
                    attributes = attribute_dict(span)
                    if sources.classify(attributes) is not None and sources.marked_late_while_current(span):
                        self.start_late(span, attributes)
                        seen = self._seen.get(span)
                    if seen is None:
                        checked.append(span)
                        passed.append((scope_of(span), sources.may_be_genai(attributes)))
                        span = span_in(started_in[0])  # (its parent)
                        continue
            found, run = (seen if level == 0 else None), seen.below
            break
        if run is not None and outside_run(passed, span):  # (strands' cycle is its agent's step, which it marks as
            run = None  # it ends; a span of the program's own is none)
        for looked_at in checked:
            setattr(looked_at, CHECKED_BARE, (run,))
        if found is None and kind_below in _CALLS:
            _tell(start, kind_below)
        return found, run

    def _sibling_twin(self, sibling: _Sibling, operation: str, running: set[tuple[int, CodeType]] | None = None,
                      made_by: int | None = None) -> _Seen | None:
        """The provider span of another library that this one, a provider span starting beside it, is the same call
        as: started last, at most :data:`_TWIN_WITHIN_NS` before, under the same parent, in the same thread and task,
        for the same operation and provider (named) and model (if both name it: OpenLLMetry's names it only once
        the call returns), by another library, and not yet paired. Two
        instrumentations of one call, one of which does not make its span current (OpenLLMetry's Anthropic one,
        around the Anthropic SDK's own span), make siblings, not a span inside the other: counted twice. A library's
        own spans are never each other's twins, nor a stream's still open when the program makes its next call
        (it started longer ago: its response has begun). ``running``: for a span of ours, the frames running it;
        the other library's span is its twin only if the code that started it still runs, around our wrapper (a stream
        that library's wrapper returned just before, or a call of ours that returns a cached answer, is no twin).
        ``made_by``: for a span of ours beginning a call our wrapper made earlier (see ``inside.MADE_BY``), the other
        library's span started inside that very wrapper is its twin, however long ago, and wherever the program reads
        the stream (another span current, another thread or task)."""
        parent, where, scope, provider, model, started = sibling
        if not provider:
            return None
        found: tuple[int, _Seen] | None = None
        for seen in list(self.open_spans.values()):  # (a copy made in C: other threads change the mapping)
            other = seen.sibling
            if (other is None or other[2] == scope or seen.operation != operation or other[3] != provider
                    or (model and other[4] and model != other[4])):
                continue
            if made_by is not None and seen.made_in == made_by:  # (where and whenever the program reads it)
                found = (other[5], seen)
                break
            if (other[0] is not parent or other[1] != where or not 0 <= started - other[5] <= _TWIN_WITHIN_NS
                    or (running is not None and seen.started_by not in running)):
                continue
            if found is None or other[5] > found[0]:
                found = (other[5], seen)
        if found is None:
            return None
        found[1].sibling = None  # paired: one twin each
        return found[1]

    def _collected(self, ref: weakref.ref[Any]) -> None:
        """A tracked span is being freed before it ended: in a garbage collection, its entry waits in :data:`DYING`
        for a finalizer that ends it during the collection."""
        global _dying_in
        seen = self._refs.pop(ref, None)
        if seen is None:
            return
        try:
            running = collection.current()
            if running is not None:
                if _dying_in is not running:  # the first of this collection's: those of an earlier one go
                    DYING.clear()
                    _dying_in = running
                DYING[id(self), seen.span_address] = seen
        except Exception:  # a span freed as the interpreter tears the modules down, whose names are None
            pass  # there: nothing is left to end it, and a weak reference's callback that raises is printed on stderr

    def _dying(self, span: Span) -> _Seen | None:
        """``span``'s entry in :data:`DYING`: the same address, and the same span id (not a later span there)."""
        seen = DYING.get((id(self), id(span))) if _still_dying() else None
        return seen if seen is not None and seen.span_id == span.get_span_context().span_id else None

    def tracks(self, span: Span) -> bool:
        """Whether the bridge noted ``span`` as another library's GenAI span when it started."""
        return span in self._seen or (bool(DYING) and self._dying(span) is not None)

    def _take(self, span: Span) -> _Seen | None:
        """The entry of a tracked span that ends, from the mapping or, in a collection, from :data:`DYING`."""
        seen = self._seen.pop(span, None) if self.open_spans else None
        if seen is None and DYING:
            seen = self._dying(span)
            if seen is not None:
                del DYING[id(self), id(span)]
            return seen
        if seen is not None and seen.ref is not None:
            self._refs.pop(seen.ref, None)
        return seen

    def _pass_run(self, span: Span, parent_span: Any) -> None:
        """A span of no call inside another library's agent invocation passes the invocation on to the
        spans inside it (smolagents' model calls are under a step's span)."""
        parent = self._seen.get(parent_span)
        run = parent.below if parent is not None else run_of(parent_span)
        if run is not None:
            note_run(span, run)

    def _on_ending(self, span: Span) -> None:
        """Record as the span ends (end time and status set), keyed by the span object itself: the
        SDK's ``on_end`` gets a copy (the SDK's ``_on_ending`` hook, as the hashing processor uses)."""
        seen = self._take(span)
        if seen is not None:
            forget(span)
        if seen is None:
            if span._events and _ours(span) and runtime().enabled:  # an evaluator's event on our span
                try:
                    _record_evaluations(span, sources.agent_name_of(attribute_dict(span)))
                except Exception as exc:
                    report_error("bridge.record", exc)
            return
        if not runtime().enabled:
            return
        if collection.running():  # ended in a finalizer: recorded on another thread (see collection.running())
            _record_later(self, span, seen)
            return
        self._record_ended(span, seen)

    def _record_ended(self, span: Span, seen: _Seen) -> None:
        try:
            if span.events:
                _record_evaluations(span, sources.agent_name_of(attribute_dict(span)) or seen.agent, seen.context)
            if seen.run_of_workflow is not None:  # (before the covered check: a call of ours inside may count it)
                _ran_for(seen.run_of_workflow, span)
            if not seen.covered and not _stood_for_its_agent(span, seen):
                _record(span, seen)
            if seen.report_key is not None and (seen.covered or not seen.usage_unknown
                                                or span.status.status_code is StatusCode.ERROR):
                self._no_report(seen)  # (a request that failed handed out no stream)
            if seen.covered and seen.usage_to is not None:
                _hand_usage(span, seen, seen.usage_to)
            elif seen.covered and seen.twin_of is not None:
                seen.twin_of.twin = (_with_twin(span, seen, attribute_dict(span)), span.start_time)
        except Exception as exc:
            report_error("bridge.record", exc)


def _record_later(bridge: GenAiSpanBridge, span: Span, seen: _Seen) -> None:
    """Record what ended in a garbage collection on a thread of its own, started at the first: the finalizer's thread
    may hold a lock the recording takes. A daemon: what it has not recorded when the process ends is lost."""
    global _later_thread
    _LATER.put((bridge, span, seen))
    if _later_thread is None or not _later_thread.is_alive():
        try:
            _later_thread = threading.Thread(target=_drain_later, name="agent-otel-bridge-gc", daemon=True)
            _later_thread.start()
        except RuntimeError as exc:  # no new threads at interpreter shutdown
            report_error("bridge.record", exc)


def _drain_later() -> None:
    while True:
        bridge, span, seen = _LATER.get()
        bridge._record_ended(span, seen)


def _started_bare(span: object) -> bool:
    """Whether ``span`` is another library's that started with no attribute and is not noted as a GenAI call yet."""
    return getattr(span, STARTED_BARE, None) is not None


def _counted_below(span: object) -> set[Kind]:
    return getattr(span, COUNTED_BELOW, None) or set()


def _tell(span: Any, kind: Kind) -> None:
    """Tell another library's span not noted as a call that a call of ``kind`` was counted directly inside it (see
    :data:`COUNTED_BELOW`)."""
    told = getattr(span, COUNTED_BELOW, None)
    if told is None:
        try:
            setattr(span, COUNTED_BELOW, {kind})
        except AttributeError:  # a span class with slots
            pass
    elif kind not in told:
        told.add(kind)


#: The kinds of a call, which a span of the same call inside another covers (an agent's run holds calls).
_CALLS = frozenset({Kind.PROVIDER, Kind.TOOL})


#: The context entries of agent-otel's calls and jobs: a context holding one runs inside such a call.
_CALL_KEYS = (JOB_KEY, AGENT_KEY, CALLS_KEY, PROVIDER_KEY, TOOL_KEY)
running.use_call_keys(_CALL_KEYS)


#: The modules whose frames start a span for the code that asks for one (see _starting_frame).
_SPAN_MACHINERY = ("opentelemetry.sdk", "opentelemetry.trace", "opentelemetry.context", "opentelemetry.util._decorator",
                   "contextlib", "agent_otel")
#: How many frames are looked through, up from a span's start or from our wrapper's.
_FRAMES_LOOKED_AT = 64


def _starting_frame() -> tuple[int, CodeType] | None:
    """The frame (its address and code: frames take no weak reference) of the code that started the span starting
    now: the first one above the SDK's, the context managers' and ours."""
    frame: FrameType | None = sys._getframe(1)
    for _ in range(_FRAMES_LOOKED_AT):
        if frame is None:
            return None
        if not str(frame.f_globals.get("__name__", "")).startswith(_SPAN_MACHINERY):
            return id(frame), frame.f_code
        frame = frame.f_back
    return None


def _making_call() -> int | None:
    """The innermost call of ours being made around the code here (see wrappers.MAKING_CALL_CODE): the identity of its
    pending call (see inside.MADE_BY)."""
    frame: FrameType | None = sys._getframe(1)
    for _ in range(_FRAMES_LOOKED_AT):
        if frame is None:
            return None
        if frame.f_code is MAKING_CALL_CODE:
            call = frame.f_locals.get("call")
            return id(call) if call is not None else None
        frame = frame.f_back
    return None


def _running_frames() -> set[tuple[int, CodeType]]:
    """The frames running the code here (addresses and code), as far up as :func:`_starting_frame` looks."""
    running: set[tuple[int, CodeType]] = set()
    frame: FrameType | None = sys._getframe(1)
    for _ in range(_FRAMES_LOOKED_AT):
        if frame is None:
            break
        running.add((id(frame), frame.f_code))
        frame = frame.f_back
    return running


def _where() -> tuple[int, int]:
    """The thread and asyncio task running: the code in which one call's spans nest."""
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no event loop running in this thread
        task = None
    return threading.get_ident(), id(task)


def starting_context(parent_context: Context | None, current: Context | None = None) -> Context:
    """Where another library's span starts, for agent-otel: the current context (``current``, else read now), when the
    code runs inside an agent-otel call or job; else the context the span was started with. LangChain's
    instrumentation starts its spans with the context it kept when the run around them began, which has none of the
    agent-otel calls running now (an agent or provider call a graph node or tool makes, a job it opens): their calls
    were counted twice, or in no job."""
    if current is None:
        current = otel_context.get_current()
    if parent_context is None or parent_context is current:
        return current
    for key in _CALL_KEYS:
        if key in current:
            return current
    return parent_context


def _our_provider_call(ctx: Context | None, operation: str, model: str | None) -> ProviderInvocation | None:
    """The agent-otel provider call of that operation the span starts in, at any depth: the call counts the
    request, its tokens and cost once (see the provider kind's nesting rule)."""
    call = running_provider(ctx if ctx is not None else otel_context.get_current())
    return call if call is not None and sources.same_operation(
        call.operation, operation, call.model, model) else None


def _in_our_call(kind: Kind, operation: str, attributes: Mapping[str, Any], span_name: str,
                 ctx: Context | None) -> bool:
    """Whether the span is part of an agent-otel call of its kind, its parent's span or further up: a provider
    call of its operation; the agent or tool call it is the first span of that name in (a framework's span of
    the run or tool call we wrap: a second one, or one of another name, is a call of its own, and a tool's
    identity stops at an agent of ours)."""
    if kind is Kind.PROVIDER:
        return _our_provider_call(ctx, operation, sources.request_model_of(attributes)) is not None
    if kind in _RUNS:
        counts = current_counts(ctx)
        if counts is None or counts.twin_seen or counts.ended:
            return False
        counts.twin_seen = _same_name(otel_context.get_value(AGENT_KEY, ctx),
                                      sources.agent_name_of(attributes) or span_name)
        return counts.twin_seen
    if kind is Kind.TOOL:
        tool = otel_context.get_value(TOOL_KEY, ctx)
        if not isinstance(tool, OpenToolCall) or tool.twin_seen:
            return False
        tool.twin_seen = _same_name(tool.name, sources.tool_name_of(attributes) or span_name)
        return tool.twin_seen
    return False


def _same_name(ours: object, theirs: str) -> bool:
    """Our call's name (as its labels carry it: past the cardinality cap, the overflow value, which any name
    may be) against the name on another library's span."""
    return ours in (theirs, OTHER)


#: A library's spans of an agent's run: its agent invocation, or the workflow it runs (a LangGraph graph named as an
#: agent, openai-agents' "Agent workflow"), which, directly inside an agent call of ours, is that call.
_RUNS = frozenset({Kind.AGENT, Kind.WORKFLOW})


def _directly_ours(our_attributes: Mapping[str, Any], theirs: tuple[Kind, str], their_attributes: Mapping[str, Any],
                   ctx: Context | None) -> bool:
    """Whether a library's span directly inside one of ours is that call: the first of the same kind and operation,
    or the first run of our agent call (their workflow inside our agent: its twin, as their agent span would be).
    A job is no agent run: a workflow directly inside one is a run of its own, as it is outside any job (a job
    around three ``Runner.run`` calls erased all three from the agent invocations)."""
    ours = sources.classify(our_attributes)
    if ours is not None and ours[0] is theirs[0] and (ours[1] == theirs[1] or (theirs[0] is Kind.PROVIDER and (
            sources.same_operation(ours[1], theirs[1], sources.request_model_of(our_attributes),
                                   sources.request_model_of(their_attributes))))):
        return theirs[0] is not Kind.WORKFLOW and _first_twin(theirs[0], ctx)
    return ours is not None and ours[0] is Kind.AGENT and theirs[0] is Kind.WORKFLOW and _first_workflow(ctx)


def _first_twin(kind: Kind, ctx: Context | None) -> bool:
    """Whether the span, directly inside our call of its kind, is the first such (then it is our call, whatever
    it names: a decorated function running a framework's agent of its own name is one run). A second one is
    a call of its own. Kinds without a name have no twin to look for."""
    if kind not in _NAMED:
        return True
    marker = current_counts(ctx) if kind is Kind.AGENT else otel_context.get_value(TOOL_KEY, ctx)
    if not isinstance(marker, CallCounts | OpenToolCall) or marker.twin_seen or (
            type(marker) is CallCounts and marker.ended):
        return False
    marker.twin_seen = True
    return True


def _first_workflow(ctx: Context | None) -> bool:
    """Whether the library's workflow span directly inside our agent call is the first (then it is our call's run).
    The library's agent span of our call's name inside it is that run too (openai-agents' ``Agent workflow`` around
    its ``invoke_agent``: taking the workflow as the twin made the agent span a second invocation)."""
    counts = current_counts(ctx)
    if counts is None or counts.workflow_seen or counts.ended:
        return False
    counts.workflow_seen = True
    return True


#: The covered spans of other libraries started in this thread or task (or in the one that started it: a task
#: starts with a copy of its creator's context), innermost last. A span inside another of them is a second
#: trace of the same request; one that started in a sibling task (two requests a call makes at once with
#: ``asyncio.gather``) is not, though on the same thread. Ended spans are dropped as the next one is noted.
_OPEN_INSIDE: ContextVar[tuple[_Seen, ...]] = ContextVar("agent_otel.bridge.open_inside", default=())


def _inside_our_provider_call(seen: _Seen, call: ProviderInvocation | None) -> None:
    """Note a covered span of another library inside our provider call: it hands the call its tokens when it
    ends, unless a span inside it reported them (two traces of one request)."""
    if call is None:
        return
    seen.usage_to = call
    around = tuple(other for other in _OPEN_INSIDE.get()  # those still open
                   if other.usage_to is not None and other in other.usage_to.open_inside)
    seen.enclosing = next((other for other in reversed(around) if other.usage_to is call), None)
    _OPEN_INSIDE.set((*around, seen))
    call.open_inside.append(seen)


def _beside_our_call(seen: _Seen, call: ProviderInvocation) -> None:
    """Note a covered span of another library beside our provider call (see _sibling_twin): as one inside it, it
    hands the call its tokens when it ends, which the call records if its own result showed none."""
    seen.usage_to = call
    call.open_inside.append(seen)


def _one_agent(outer: object, attributes: Mapping[str, Any]) -> bool:
    """Whether an agent span directly inside another (``outer``) names the same agent (a name past the cardinality cap,
    or none, names any)."""
    names = {sources.agent_name_of(attribute_dict(outer)), sources.agent_name_of(attributes)} - {None, OTHER}
    return len(names) < 2


def _workflow_of_agent(workflow: Any, agent: Any, attributes: Mapping[str, Any]) -> bool:
    """Whether a library's workflow span directly around its own agent span (the same instrumentation scope) names
    that agent (ADK's Runner opens ``invoke_workflow assistant`` around ``invoke_agent assistant``: one run, counted
    twice, once per task type). A workflow named otherwise (openai-agents' ``Agent workflow``), not named, or another
    library's, is a run of its own."""
    name = sources.agent_name_of(attributes)
    if name is None or _scope_of(workflow) != _scope_of(agent):
        return False
    outer = attribute_dict(workflow)
    return (sources.workflow_name_of(outer) or sources.agent_name_of(outer)) == name


def _scope_of(span: Any) -> str | None:
    return getattr(getattr(span, "instrumentation_scope", None), "name", None)


def _stood_for_its_agent(span: Span, seen: _Seen) -> bool:
    """Whether an ended workflow is not recorded, as its one agent run of its name counts it: unless the workflow
    failed and that run did not fail, or had not ended (a failure of its own, or one that run may never record: a run
    whose span is never ended, nested generators left early)."""
    if seen.kind is not Kind.WORKFLOW or seen.named_runs != 1:  # (a second run of its name makes it a team's)
        return False
    return seen.named_run_failed or _error_type(span, attribute_dict(span)) is None


def _ran_for(workflow: _Seen, span: Span) -> None:
    """The agent run a workflow stands for ended: whether it failed."""
    if _error_type(span, attribute_dict(span)) is not None:
        workflow.named_run_failed = True


def _their_one_agent(outer: object, attributes: Mapping[str, Any]) -> bool:
    """Whether another library's agent span directly inside another is the same invocation: unless the two name two
    agents and the inner one is OpenInference's, as a team's member agents inside the team's span are (Agno's Team: each
    member's run, model and tool calls were the team's). Only OpenInference's: the official LangChain instrumentation
    marks every node of a LangGraph graph as an agent, named after the node, when the run's metadata asks for an agent
    span (``agent_type``, ``otel_agent_span``: inherited by each node), so one agent's run became one per node."""
    return sources.OPENINFERENCE_KIND not in attributes or _one_agent(outer, attributes)


def _hand_usage(span: Span, seen: _Seen, call: ProviderInvocation) -> None:
    try:
        call.open_inside.remove(seen)
    except ValueError:
        pass
    attributes = _with_twin(span, seen, attribute_dict(span))
    usage = sources.usage_of(attributes)
    reported = usage.input_tokens is not None or usage.output_tokens is not None
    if reported and not seen.inner_reported:
        answered = sources.response_model_of(attributes)
        call.add_usage_inside(_token_usage(usage), answered or sources.request_model_of(attributes), answered)
    elif not reported:  # (a stream that asked for no usage): the model that answered, still the call's
        answered = sources.response_model_of(attributes)
        if answered:
            call.models_inside.append(answered)
    if (reported or seen.inner_reported) and seen.enclosing is not None:
        seen.enclosing.inner_reported = True
    first_chunk = sources.time_to_first_chunk_of(attributes)
    if first_chunk is not None and span.start_time is not None:
        call.first_chunk_at(span.start_time + int(first_chunk * 1e9))


def _with_twin(span: Span, seen: _Seen, attributes: Mapping[str, Any]) -> Mapping[str, Any]:
    """A provider span's attributes, with what the span of the same call inside it (another instrumentation's, which
    this one covers) reported where this one reports nothing, under the conventions' names: a framework's model span
    (OpenInference's) may carry the token counts alone, where the SDK's span inside it also has the cache and
    reasoning tokens, the response model and the time to first chunk (from that span's start: counted from this
    one's here). The outer span still counts the call once."""
    if seen.twin is None:
        return attributes
    inner, inner_start = seen.twin
    filled: dict[str, Any] = {}
    usage, twin_usage = sources.usage_of(attributes), sources.usage_of(inner)
    for key, mine, theirs in (
            (semconv.GEN_AI_PROVIDER_NAME, sources.provider_of(attributes), sources.provider_of(inner)),
            (semconv.GEN_AI_REQUEST_MODEL, sources.request_model_of(attributes), sources.request_model_of(inner)),
            (semconv.GEN_AI_RESPONSE_MODEL, sources.response_model_of(attributes), sources.response_model_of(inner)),
            (semconv.GEN_AI_USAGE_INPUT_TOKENS, usage.input_tokens, twin_usage.input_tokens),
            (semconv.GEN_AI_USAGE_OUTPUT_TOKENS, usage.output_tokens, twin_usage.output_tokens),
            (semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, usage.cache_read_tokens, twin_usage.cache_read_tokens),
            (semconv.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS, usage.cache_write_tokens, twin_usage.cache_write_tokens),
            (semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, usage.reasoning_tokens, twin_usage.reasoning_tokens)):
        if mine is None and theirs is not None:
            filled[key] = theirs
    if sources.time_to_first_chunk_of(attributes) is None:
        first_chunk = sources.time_to_first_chunk_of(inner)
        if first_chunk is not None and inner_start is not None and span.start_time is not None:
            filled[sources.TIME_TO_FIRST_CHUNK] = first_chunk + max(
                inner_start - span.start_time, 0) / 1e9
    return {**attributes, **filled} if filled else attributes


def _token_usage(usage: sources.Usage) -> TokenUsage:
    return TokenUsage(usage.input_tokens, usage.output_tokens, usage.cache_read_tokens, usage.cache_write_tokens,
                      usage.reasoning_tokens)


def _record_evaluations(span: Span, agent: object, started_in: Context | None = None) -> None:
    """``gen_ai.evaluation.result`` events on a GenAI span, but those ``record_evaluation()`` counted, in the context
    the span started in (the evolution run it belongs to), with the span for exemplars."""
    for event in span.events:
        if event.name == semconv.EVENT_EVALUATION_RESULT:
            record_result(trace.set_span_in_context(NonRecordingSpan(span.context), started_in),
                          event.attributes or {}, agent)


#: The status description util-genai's stream wrapper ends a stream with when the program dropped it unfinished
#: (its ``AbandonedStreamError``, ``error.type`` ``_OTHER``).
_ABANDONED_STREAM = "abandoned stream"


def _error_type(span: Span, attributes: Any) -> str | None:
    """The call's ``error.type`` label: the class name of a module-qualified exception type
    (``openai.RateLimitError``, as the GenAI instrumentations and the SDK's exception events write it, or its
    ``repr``, ``<class 'openai.RateLimitError'>``, as some write it), and the exception a provider SDK raises for
    the error its own spans name (:data:`~agent_otel._bridge.sources.SDK_ERRORS`), as agent-otel's wrappers
    label it, so one failure is one label whichever recorded it; other values as they are."""
    value = attributes.get(semconv.ERROR_TYPE)
    if not (isinstance(value, str) and value):
        if span.status.status_code is not StatusCode.ERROR:
            return None
        # no error.type (pydantic-ai's failed tool call): the exception the span recorded, else _OTHER
        value = next((event.attributes.get(semconv.EXCEPTION_TYPE) for event in reversed(span.events)
                      if event.name == "exception" and event.attributes), None)
        if not (isinstance(value, str) and value):
            return _OTHER_ERROR
    if value == _OTHER_ERROR and span.status.description == _ABANDONED_STREAM:
        return None  # util-genai's stream wrapper ends a stream its reader stopped reading before its end (langroid and
        # camel stop after the usage chunk, a `break` out of a LangGraph stream) as an error: not a failure, as with
        # agent-otel's own wrappers (a stream closed early)
    raised = sources.SDK_ERRORS.get(getattr(span.instrumentation_scope, "name", None), {}).get(value)
    if raised is not None:
        return raised
    if value.startswith("<class '") and value.endswith("'>"):
        value = value[8:-2]
    if names_control_flow(value):  # a framework's control flow (a LangGraph pause or hand-off): not a failure, as
        return None  # with agent-otel's own wrappers
    module, dot, name = value.rpartition(".")
    if dot and name.isidentifier() and all(part.isidentifier() for part in module.split(".")):
        value = name
    # A stream its consumer closed early (LangChain's instrumentation ends its span with the GeneratorExit): not a
    # failure, as with agent-otel's own wrappers
    return None if value == "GeneratorExit" else value


def _record(span: Span, seen: _Seen) -> None:
    attributes = attribute_dict(span)
    if span.end_time is None or span.start_time is None:
        return
    duration_s = max(span.end_time - span.start_time, 0) / 1e9
    bound = policy().bounded
    error_type = _error_type(span, attributes)
    if error_type is not None:
        error_type = bound(semconv.ERROR_TYPE, error_type)
    ctx = trace.set_span_in_context(NonRecordingSpan(span.context), seen.context)  # exemplars point at the span
    ctx = context_with_counts(seen.calls, ctx)  # a model or tool call of the agent invocation it ran under
    if seen.below is not None and seen.own is None:  # another library's agent: not the version of one of ours
        ctx = otel_context.set_value(AGENT_VERSION_KEY, None, ctx)
    if seen.kind is Kind.PROVIDER:
        _record_provider(span, seen, _with_twin(span, seen, attributes), duration_s, error_type, ctx)
    elif seen.kind is Kind.TOOL:
        name = bound(semconv.GEN_AI_TOOL_NAME, sources.tool_name_of(attributes) or span.name)
        agent = sources.agent_name_of(attributes) or seen.agent
        record_tool_call(ctx, name, bound(semconv.GEN_AI_AGENT_NAME, agent) if agent else None, error_type,
                         duration_s)
    else:
        workflow = seen.kind is Kind.WORKFLOW
        found = (sources.workflow_name_of(attributes) if workflow else None) or sources.agent_name_of(attributes)
        name = bound(semconv.GEN_AI_AGENT_NAME, found or span.name)
        task_type = WORKFLOW_TASK_TYPE if workflow else "default"
        outcome = semconv.Outcome.ERROR.value if error_type is not None else semconv.Outcome.SUCCESS.value
        version = attributes.get(semconv.GEN_AI_AGENT_VERSION)  # the GenAI conventions' key, as ours
        record_agent_call(ctx, name, task_type, outcome, error_type, duration_s,
                          None if version is None or version == "" else
                          policy().bounded_recent(semconv.GEN_AI_AGENT_VERSION, version))
        if seen.own is not None and not seen.counts_unknown:  # its model and tool calls, as for an invocation of ours
            record_call_counts(ctx, seen.own.calls, seen.own.name, error_type)


def _record_provider(span: Span, seen: _Seen, attributes: Any, duration_s: float, error_type: str | None,
                     ctx: Context) -> None:
    bound = policy().bounded
    provider = bound(semconv.GEN_AI_PROVIDER_NAME, sources.provider_of(attributes) or "unknown")
    given = sources.request_model_of(attributes)
    model = bound(semconv.GEN_AI_REQUEST_MODEL, given) if given else "unknown"
    token_attributes = {semconv.GEN_AI_OPERATION_NAME: bound(semconv.GEN_AI_OPERATION_NAME, seen.operation),
                        semconv.GEN_AI_PROVIDER_NAME: provider, semconv.GEN_AI_REQUEST_MODEL: model}
    response_model = sources.response_model_of(attributes)
    if response_model:
        token_attributes[semconv.GEN_AI_RESPONSE_MODEL] = bound(semconv.GEN_AI_RESPONSE_MODEL, response_model)
    report_of = seen.report_of
    if report_of is None:
        call_attributes = dict(token_attributes)
        if error_type is not None:
            call_attributes[semconv.ERROR_TYPE] = error_type
        record_request(ctx, call_attributes, duration_s, sources.time_to_first_chunk_of(attributes))
    usage = sources.usage_of(attributes)
    cost, unpriced = None, False
    if usage.input_tokens is not None or usage.output_tokens is not None:
        # a dated or deployment-specific response model without a price: the requested one's
        tokens = _token_usage(usage)
        cost, unpriced = priced_cost(response_model, given or model, tokens)  # the price of the model as given
        record_usage(ctx, token_attributes, tokens, cost, seen.agent, unpriced=unpriced)
    no_usage = seen.usage_unknown = usage.input_tokens is None and usage.output_tokens is None
    if report_of is not None:
        if seen.job is not None and not no_usage:  # the call counted unpriced, with no usage: priced now, or unpriced
            priced = report_of.unpriced_in_job and cost is not None  # by its model
            report_of.unpriced_in_job = False
            seen.job.add(input_tokens=usage.input_tokens or 0, output_tokens=usage.output_tokens or 0,
                         cost=cost or 0.0, priced_calls=priced, unpriced_calls=-1 if priced else 0)
    elif seen.job is not None:  # (no usage: a cost the job cannot know)
        seen.unpriced_in_job = no_usage
        seen.job.add(provider_calls=1, input_tokens=usage.input_tokens or 0, output_tokens=usage.output_tokens or 0,
                     cost=cost or 0.0, priced_calls=cost is not None, unpriced_calls=1 if unpriced or no_usage else 0,
                     ended_calls=1)
