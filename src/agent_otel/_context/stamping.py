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
    ids = ids_of(ctx.get(JOB_KEY), ctx.get(BAGGAGE_KEY))
    if ids is None:
        return
    for key, value in ids.items():
        if key not in attributes:
            span.set_attribute(key, value)  # one key: set_attributes() costs more
