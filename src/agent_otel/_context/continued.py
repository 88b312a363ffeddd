"""The remote callers this process continues: each a span of another process that a span here started under (a
server instrumentation's, in the context it extracted from a request's headers).

``attached(headers)`` runs its block under the current span when that span continues the headers' caller, directly or
through spans of this process between (a framework's request handler below the server span); it must not when the
caller's span is one of this process below the current one (a carrier handed between two steps of one request).
A span knows only its parent, so the callers continued here are noted as their continuations start.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from opentelemetry.trace import SpanContext

#: (trace id, span id) of each caller continued here, the most recently continued last; the least recent go past
#: ``_KEPT`` (a request still running when 16,384 others have started since runs its ``attached()`` beside the server
#: span, as it would with no span of this process continuing its caller). No lock: each step is one call of the C
#: ``OrderedDict``, atomic under the GIL, and a lock held by another thread as the process forked hung the child.
_continued: OrderedDict[tuple[int, int], None] = OrderedDict()
_KEPT = 16_384


def note_continued(span: Any) -> None:
    """A span that started under a span that is no span of this process (a ``NonRecordingSpan``): noted when that
    is a remote caller's. Never raises."""
    parent = getattr(span, "parent", None)
    if parent is not None and getattr(parent, "is_remote", False):
        key = (parent.trace_id, parent.span_id)
        try:
            _continued[key] = None
            _continued.move_to_end(key)
            while len(_continued) > _KEPT:  # (another thread's note in between: both past the bound, both evict)
                _continued.popitem(last=False)
        except KeyError:  # the key, or the last, evicted by another thread meanwhile
            pass


def continued_here(caller: SpanContext) -> bool:
    """Whether a span of this process started under ``caller``'s span, a remote one."""
    return (caller.trace_id, caller.span_id) in _continued
