"""The span processors ``configure()`` adds to a tracer provider, run as one.

Every span of the process goes through them, an HTTP client's or a database's as much as a GenAI
call's: job and conversation ids are stamped (:func:`~agent_otel._context.stamping.stamp_ids`),
configured keys hashed (:func:`~agent_otel._engine.policy.hash_present`), message content removed from
other libraries' GenAI and OpenInference spans unless it goes on spans
(:func:`~agent_otel._engine.policy.drop_content`, whether or not the bridge is on) and those spans
bridged (:class:`~agent_otel._bridge.processor.GenAiSpanBridge`). Run as one processor, the
SDK dispatches three calls per span instead of nine, and a span with no hashed key and no GenAI
attribute stops after one look at its attributes.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.context import Context, get_current
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import NonRecordingSpan

from agent_otel import semconv
from agent_otel._bridge.processor import CHECKED_BARE, COUNTED_BELOW, DYING, GenAiSpanBridge
from agent_otel._bridge.sources import GENAI_MARKERS, classify, marked_late_while_current, may_be_genai
from agent_otel._calls.call_counts import note_run
from agent_otel._context import stamping as _stamping
from agent_otel._context.continued import note_continued
from agent_otel._context.job import BAGGAGE_KEY, JOB_KEY, JobState
from agent_otel._context.running import SPAN_KEY, STARTED_BARE
from agent_otel._context.stamping import CARRIED, carry, stamp_carried, stamp_ids
from agent_otel._engine import policy as policies
from agent_otel._engine.policy import (
    SCRUBBED_KEY,
    Policy,
    attribute_dict,
    drop_content,
    hash_events_and_links,
    hash_present,
)
from agent_otel._engine.self_telemetry import report_error

_get_current = get_current
_JOB_ID = semconv.JOB_ID
_BAGGAGE_CONVERSATION_ID = semconv.BAGGAGE_CONVERSATION_ID


_CONTENT_MARKERS = semconv.CONTENT_MARKERS
_STARTED_BARE = STARTED_BARE
_CARRIED = CARRIED
_SCOPE = semconv.SCOPE_NAME


#: Whether another library's span started with no attribute in this process (see on_start): until one has, a span of
#: ours does not look at its parent for one.
_bare_seen = False


def _unsettled(parent: Any, values: dict[str, object]) -> bool:
    """Whether the bridge has to look at a span of ours (``values``: its attributes) starting under ``parent``, when it
    is another library's span with no attribute: that span was not looked at yet, or it is part of another library's
    agent invocation, or it was not told of a call of this one's kind (see GenAiSpanBridge._marked_since). The calls
    after the first under a span of the program's own with no attribute pass straight on, by their operation."""
    if getattr(parent, _STARTED_BARE, None) is None:
        return False
    settled = getattr(parent, _SETTLED, None)
    operation = values.get(_OPERATION)
    if settled is not None and operation in settled:
        return False
    checked = getattr(parent, CHECKED_BARE, None)
    if checked is None or checked[0] is not None:  # not looked at yet, or part of an agent invocation
        return True
    found = classify(values)
    if found is None or found[0] not in (getattr(parent, COUNTED_BELOW, None) or ()):
        return True
    if settled is None:
        setattr(parent, _SETTLED, {operation})
    else:
        settled.add(operation)
    return False


#: Kept on a span of another library's with no attribute: the operations of the spans of ours that started under it
#: and that the bridge has nothing more to do for (see :func:`_unsettled`).
_SETTLED = "_agent_otel_settled"
_OPERATION = semconv.GEN_AI_OPERATION_NAME


class AgentOtelSpanProcessor(SpanProcessor):
    """Ids, hashing and (unless ``bridge`` is None) the GenAI span bridge, in that order. Every span of the
    process pays the checks whether there is anything to do, so they are written out here, not called (a
    Python call costs as much as a check). A span starting in no job and no conversation takes three context
    lookups; then one set operation looks for a configured hashed key and a GenAI attribute at once (the set
    of both is kept per policy). A span ending takes one for a hashed key or a GenAI marker and one truth test
    for an open GenAI span of another library, whose content is then removed (unless it goes on spans), and the bridge
    is called only for such a span or an event."""

    #: Whether the tracer provider it is on was shut down (the provider shuts its span processors down): a span
    #: ending there is lost, and the SDK's own processors warn of each on the program's stderr.
    provider_shut_down = False

    def __init__(self, bridge: GenAiSpanBridge | None) -> None:
        self.bridge = bridge
        # (policy, the keys a span's start is looked at for, the keys its end is looked at for): one attribute,
        # so that threads racing over a new policy never leave the keys of one with the other
        self._keys: tuple[Policy | None, frozenset[str], frozenset[str]] = (None, frozenset(), frozenset())

    def _keys_of(self, policy: Policy) -> tuple[Policy | None, frozenset[str], frozenset[str]]:
        """The keys of a policy that is not the one kept (its callers check, inline)."""
        keys = self._keys = (policy, policy.hashed_keys | GENAI_MARKERS, policy.hashed_keys | _CONTENT_MARKERS)
        return keys

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        global _bare_seen
        try:
            values = span._attributes._dict  # type: ignore[union-attr]  # the live dict: see attribute_dict
        except AttributeError:
            values = attribute_dict(span)
        ctx = parent_context if parent_context is not None else _get_current()
        if type(ctx.get(SPAN_KEY)) is NonRecordingSpan:  # (a type check: most spans' parent is a span of this process)
            note_continued(span)  # a remote caller's, extracted: the caller it continues, if so (see continued: a
            # server instrumentation's span, given that context or started where it is current; a job of ours)
        if ctx.get(SCRUBBED_KEY):  # one of ours: it starts with its ids and its keys hashed
            bridge = self.bridge
            if (bridge is None or not (bridge.open_spans or (
                    _bare_seen and _unsettled(ctx.get(SPAN_KEY), values)))) and (
                    policies._policy or policies.policy()).hashed_keys.isdisjoint(values):
                return  # no other library's GenAI span open for the bridge to cover (nor one that may be marked
                # later around it), no hash to note
        else:
            bare = not values
            if parent_context is not None and JOB_KEY not in ctx:  # started with a context of its own (LangChain's,
                # kept from its run's start) while a job runs here: that job's ids, as the bridge counts it there
                current = _get_current()
                if JOB_KEY in current:
                    ctx = current
            state = ctx.get(JOB_KEY)
            if state is not None:
                entries = ctx.get(BAGGAGE_KEY)
                if type(state) is JobState and type(job_id := state.id) is str and (
                        type(entries) is not dict or entries.get(_BAGGAGE_CONVERSATION_ID) is None):
                    # a job of this process in no conversation, the usual case: what stamp_ids() stamps, without
                    # its two calls and its second look at the context
                    if _JOB_ID not in values:
                        span.set_attribute(_JOB_ID, job_id)
                else:
                    stamp_ids(span, ctx, values)
            elif entries := ctx.get(BAGGAGE_KEY):
                if _stamping.carrying:  # under a span carrying a caller's ids: those, beside the program's own baggage
                    stamp_carried(span, ctx, values)  # (which wins, but for what it holds since the process started)
                stamp_ids(span, ctx, values)
                if parent_context is not None:  # a caller's, extracted: the spans under it carry its ids on, when
                    carry(span, entries, _get_current().get(BAGGAGE_KEY))  # the current context lacks them
            elif _stamping.carrying and getattr(ctx.get(SPAN_KEY), _CARRIED, None) is not None:  # (the look
                stamp_carried(span, ctx, values)  # written out: a call costs as much, on every span, once carrying)
            if bare and self.bridge is not None:  # another library's span with no attribute yet: it may be a GenAI
                # call marked later (GenAiSpanBridge.start_late): where it started is kept on it (an attribute of its
                # own: reading a span's ``__dict__`` makes CPython build it, about 1 µs a span)
                try:
                    setattr(span, _STARTED_BARE, (ctx, ctx) if parent_context is None else (
                        parent_context, _get_current()))
                    _bare_seen = True
                except AttributeError:  # a span class of another SDK, with slots
                    pass
        policy = policies._policy or policies.policy()
        keys = self._keys
        if keys[0] is not policy:
            keys = self._keys_of(policy)
        if keys[1].isdisjoint(values):
            return
        if not policy.hashed_keys.isdisjoint(values):
            hash_present(span, values, parent_context, at_start=True)
        if may_be_genai(values):
            bridge = self.bridge
            if bridge is not None:
                bridge.start_genai(span, parent_context, values)

    def _on_ending(self, span: Span) -> None:
        try:
            values = span._attributes._dict  # type: ignore[union-attr]  # the live dict: see attribute_dict
        except AttributeError:
            values = attribute_dict(span)
        policy = policies._policy or policies.policy()
        keys = self._keys
        if keys[0] is not policy:
            keys = self._keys_of(policy)
        drops = False
        if not keys[2].isdisjoint(values):  # a hashed key or a GenAI marker: one look for both, then which
            if not policy.hashed_keys.isdisjoint(values):
                hash_present(span, values, None, at_start=False)
            # Another library's GenAI span, by its marker as it ends: one set when it started or later (a marker
            # set after the start kept its content), or the older vocabulary's. Ours record content only where
            # the policy says.
            drops = not _CONTENT_MARKERS.isdisjoint(values) and getattr(span.instrumentation_scope, "name",
                                                                        None) != _SCOPE
        has_events = bool(span._events)  # once: a BoundedList's truth is a Python call
        if has_events or span._links:
            hash_events_and_links(span)
        bridge = self.bridge
        if drops and bridge is not None and not bridge.tracks(span) and classify(values):
            # another library's GenAI call marked after it started, and not noted since (no call started inside it)
            if marked_late_while_current(span):
                bridge.start_late(span, values, at_end=True)
            else:  # marked as it ends (OpenInference's LangChain instrumentation sets every attribute then): not
                # counted, and said, so that a missing call is not a silent zero
                report_error("bridge.marked_at_end",
                             LookupError("a GenAI span marked only when it ended is not counted"))
        if _bare_seen and getattr(span, _STARTED_BARE, None) is not None:  # the context it started in goes as it
            setattr(span, _STARTED_BARE, None)  # ends (it holds its parents: a span the program keeps kept them all)
            checked = getattr(span, CHECKED_BARE, None)
            if checked is not None and checked[0] is not None:  # a step of another library's agent (strands' cycle):
                note_run(span, checked[0])  # a span of that agent's inside it that ends after it is noted there
        if bridge is not None and (bridge.open_spans or has_events or DYING):  # else the bridge has nothing to do
            bridge._on_ending(span)
        if drops:  # after the bridge read the call (OpenInference's requested model is among its parameters)
            drop_content(span)

    def on_end(self, span: ReadableSpan) -> None:
        """Nothing: the work is done while the span is ending, before any exporter sees it."""

    def shutdown(self) -> None:
        """Its provider is shutting down (a program's ``shutdown()`` of its own provider, or agent-otel's release)."""
        self.provider_shut_down = True
