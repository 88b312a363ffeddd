"""The remote callers this process continues: each a span of another process that a span here started under (a
server instrumentation's, in the context it extracted from a request's headers).

``attached(headers)`` runs its block under the current span when that span continues the headers' caller, directly or
through spans of this process between (a framework's request handler below the server span); it must not when the
caller's span is one of this process below the current one (a carrier handed between two steps of one request).
A span knows only its parent, so the callers continued here are noted as their continuations start.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.trace import SpanContext

#: (trace id, span id) of each caller continued here, most recent last; the oldest go past ``_KEPT``.
_continued: dict[tuple[int, int], None] = {}
_KEPT = 4096


def note_continued(span: Any) -> None:
    """A span started in a context given to it: noted when its parent is a remote caller's span. Never raises."""
    parent = getattr(span, "parent", None)
    if parent is not None and parent.is_remote:
        _continued[(parent.trace_id, parent.span_id)] = None
        if len(_continued) > _KEPT:
            try:
                del _continued[next(iter(_continued))]
            except (KeyError, RuntimeError, StopIteration):  # another thread's note or removal in between
                pass


def continued_here(caller: SpanContext) -> bool:
    """Whether a span of this process started under ``caller``'s span, a remote one."""
    return (caller.trace_id, caller.span_id) in _continued
