"""The ids stamped on every span: the job's (``job.id``) and the conversation's (``gen_ai.conversation.id``).

One lookup gives both, for the span processor that stamps spans of any library and for agent-otel's
own spans, which start with them among their attributes. The ids are never put on a metric.
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Span
from opentelemetry.util.types import AttributeValue

from agent_otel import semconv
from agent_otel._context.job import BAGGAGE_KEY, JOB_KEY, JobState
from agent_otel._context.running import SPAN_KEY

_get_current = otel_context.get_current
_BAGGAGE_JOB_ID = semconv.BAGGAGE_JOB_ID
_BAGGAGE_CONVERSATION_ID = semconv.BAGGAGE_CONVERSATION_ID
_JOB_ID = semconv.JOB_ID
_CONVERSATION_ID = semconv.GEN_AI_CONVERSATION_ID


def stamped_ids(ctx: Context | None = None) -> dict[str, AttributeValue] | None:
    """The ids a span started in ``ctx`` (default: the current context) carries (attribute -> id), or
    None when it runs in no job and no conversation."""
    if ctx is None:
        ctx = _get_current()
    return ids_of(ctx.get(JOB_KEY), ctx.get(BAGGAGE_KEY))


def ids_of(state: object, entries: object) -> dict[str, AttributeValue] | None:
    """:func:`stamped_ids` of a context whose job state and baggage dict are ``state`` and ``entries``, for a
    caller that has read them already. A job of this process gives its id; a caller's job or any conversation
    are read off the baggage."""
    if not entries or type(entries) is not dict:
        return {_JOB_ID: state.id} if isinstance(state, JobState) else None
    job_id = state.id if isinstance(state, JobState) else entries.get(_BAGGAGE_JOB_ID)
    conversation_id = entries.get(_BAGGAGE_CONVERSATION_ID)
    if conversation_id is None:
        return None if job_id is None else {_JOB_ID: job_id if type(job_id) is str else str(job_id)}
    ids: dict[str, AttributeValue] = {_CONVERSATION_ID: str(conversation_id)}
    if job_id is not None:
        ids[_JOB_ID] = str(job_id)
    return ids


def stamp_ids(span: Span, ctx: Context, attributes: Mapping[str, object]) -> None:
    """Stamp the ids of a span started in ``ctx``, another library's (``attributes``: its attribute dict; a
    value the span started with, the host's own, is kept). The combined span processor calls it only for a
    span in a job or conversation that is not one of ours (which start with the ids): the check every span of
    the process pays is written out there."""
    _stamp(span, ids_of(ctx.get(JOB_KEY), ctx.get(BAGGAGE_KEY)), attributes)


def _stamp(span: Span, ids: dict[str, AttributeValue] | None, attributes: Mapping[str, object]) -> None:
    for key, value in (ids or {}).items():
        if key not in attributes:
            span.set_attribute(key, value)  # one key: set_attributes() costs more


#: Kept on a span that started in a context of its own whose baggage names a job or conversation that the current
#: context lacks: a server's request span started with the caller's context extracted from the request
#: (``start_as_current_span(name, context=extract(meta))``, as MCP's server does), which makes the span current but not
#: that baggage. The spans and the calls of ours under it carry those ids on (see :func:`carried_under`): agent-otel's
#: own baggage members only, never the rest of the caller's baggage.
CARRIED = "_agent_otel_carried"

#: Whether a span of this process carries ids so: until one does, nothing looks.
carrying = False

#: The baggage this process started in, its parent's (``BAGGAGE`` in its environment: a server started inside a job,
#: an MCP stdio server among them), set by ``configure()``: its job and conversation, while the program's baggage
#: still holds them as they were, are older than any request's, whose carried ids win over them.
startup_baggage: object = None

#: The baggage members that are agent-otel's (the job's and the conversation's): what a span carries on.
_OURS = (_BAGGAGE_JOB_ID, semconv.BAGGAGE_JOB_TYPE, _BAGGAGE_CONVERSATION_ID)


def carry(span: Span, entries: object, current: object) -> None:
    """Keep on ``span`` agent-otel's members of ``entries`` (the baggage of the context it started in) that the current
    context's baggage (``current``) lacks, if any."""
    if type(entries) is not dict:
        return
    ours = {key: entries[key] for key in _OURS if key in entries}
    if ours and not (type(current) is dict and all(current.get(key) == value for key, value in ours.items())):
        _keep(span, ours)


def _keep(span: Span, carried: dict[str, object]) -> None:
    global carrying
    try:
        setattr(span, CARRIED, carried)
    except AttributeError:  # a span class of another SDK, with slots
        return
    carrying = True


def carried_under(ctx: Context) -> dict[str, object] | None:
    """The baggage ``ctx`` would have with the ids its current span carries (see :data:`CARRIED`): its own members win,
    but for the process's start-up baggage (:data:`startup_baggage`); None when the span carries none, when ``ctx`` has
    them all, or when its baggage was cleared (an empty one is the program's). Call only once :data:`carrying` is
    set."""
    carried = getattr(ctx.get(SPAN_KEY), CARRIED, None)
    return None if carried is None else _beside(carried, ctx.get(BAGGAGE_KEY))


def _beside(carried: dict[str, object], own: object) -> dict[str, object] | None:
    if own is None:
        return dict(carried)
    if type(own) is not dict or not own:
        return None
    if type(startup_baggage) is dict:  # members still as the process started (its parent's job and conversation):
        # older than the request, whatever the program added since (a conversation, a member of its own); a stdio
        # server started in its parent's job kept that job for every request's call
        own = {key: value for key, value in own.items()
               if key not in carried or startup_baggage.get(key, _NOT_THERE) != value}  # (what the request replaces)
    if all(key in own for key in carried):
        return None
    return {**carried, **own}


_NOT_THERE = object()


def stamp_carried(span: Span, ctx: Context, attributes: Mapping[str, object]) -> None:
    """Another library's span starting under one that carries ids its own context lacks: those ids, and it carries
    them on to the spans under it."""
    carried = getattr(ctx.get(SPAN_KEY), CARRIED, None)
    if carried is None:
        return
    entries = _beside(carried, ctx.get(BAGGAGE_KEY))
    if entries is not None:
        _stamp(span, ids_of(ctx.get(JOB_KEY), entries), attributes)
        _keep(span, carried)
