"""The agent-otel calls a Python context runs inside, kept apart from the OpenTelemetry context.

LangChain's instrumentation makes the OpenTelemetry context its run began in current again for the run's steps,
replacing the whole of it: a LangGraph subgraph called as an agent of ours runs its nodes in the outer graph's
context, where our subgraph agent is not. Python's own context still runs inside that call, so a call of ours
started while another library's GenAI span is open (:data:`SPANS_OPEN`) notes itself here, in a context variable
of its own that such a library does not replace (see ``_context.running``).
"""

from __future__ import annotations

import threading
import weakref
from contextvars import ContextVar, Token
from typing import Any, Protocol, cast

from opentelemetry.context import Context


class RunningCall(Protocol):
    @property
    def context(self) -> Context: ...

    @property
    def ended(self) -> bool: ...


#: One noted call: the context it began in, the call (weakly: a thread or task that copied the note outlives it, and
#: the call holds its arguments and result), and the entry of the call it runs inside (None: none noted).
Entry = tuple[Context, "weakref.ref[RunningCall]", "Entry | None"]

#: Another library's GenAI span -> the context of the agent-otel calls running where it started (weak: nothing to
#: remove when a span is dropped unended); kept by the span bridge. ``SPANS_OPEN`` is its dict, read per call: empty,
#: there is nothing to note.
LIBRARY_SPANS: weakref.WeakKeyDictionary[Any, Context] = weakref.WeakKeyDictionary()
SPANS_OPEN: dict[Any, Context] = cast(Any, LIBRARY_SPANS).data

#: The innermost call noted in this Python context (copied into the threads and tasks it starts, as Python copies it).
INSIDE: ContextVar[Entry | None] = ContextVar("agent_otel_inside", default=None)


def note_inside(call: RunningCall, began_in: Context) -> Token[Entry | None]:
    """Note ``call``, begun in ``began_in``, as the innermost in this context until :func:`leave`; the calls it runs
    inside that ended are dropped (a context copied into a task outlives the call that started it)."""
    return INSIDE.set((began_in, weakref.ref(call), innermost_running(INSIDE.get())))


def leave(token: Token[Entry | None]) -> None:
    try:
        INSIDE.reset(token)
    except (ValueError, RuntimeError):  # left in another context than it was noted in (a coroutine closed by the
        pass  # collector), or a second time


def innermost_running(entry: Entry | None) -> Entry | None:
    while entry is not None and not running(entry):
        entry = entry[2]
    return entry


def running(entry: Entry) -> bool:
    call = entry[1]()
    return call is not None and not call.ended


class _MadeBy(threading.local):
    call: int | None = None


#: The call of ours beginning now in this thread, made earlier by our wrapper of a coroutine or generator function,
#: while another library's GenAI span was open (:data:`SPANS_OPEN`): the identity of its pending call, the tuple the
#: wrapper made before it called the function, which lives until the call begins. Another library's wrapper that our
#: wrapper called may have started its span of the same request there, not current, and returned its own stream
#: object, which our call then begins in when first read, that wrapper gone (google-genai's instrumentation of
#: ``generate_content_stream``). The span bridge noted the same identity on that span (see
#: ``wrappers.MAKING_CALL_CODE``), and pairs the two by it.
MADE_BY = _MadeBy()
