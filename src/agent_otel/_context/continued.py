"""The remote callers this process continues: each a span of another process that a span here started under (a
server instrumentation's, in the context it extracted from a request's headers).

``attached(headers)`` runs its block under the current span when that span continues the headers' caller, directly or
through spans of this process between (a framework's request handler below the server span); it must not when the
caller's span is one of this process below the current one (a carrier handed between two steps of one request).
A span knows only its parent, so the callers continued here are noted as their continuations start, each with its
continuations (weakly): a caller counts as continued while one of them runs, for the spans started since it started
(one caller's requests overlap: it injected its context once and sent several, or retried one still running). A
carrier of this process's own span, extracted, is a remote parent too: another library's span started directly in it
(an HTTP client's, in an ``attached()`` block) continues it only while it runs, never for the spans above it.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from typing import Any

from opentelemetry.trace import SpanContext

#: (trace id, span id) of each caller continued here, the most recently continued last; the least recent go past
#: ``_KEPT`` (a request still running when 16,384 others have started since runs its ``attached()`` beside the server
#: span, as it would with no span of this process continuing its caller). No lock: each step is one call of the C
#: ``OrderedDict``, atomic under the GIL, and a lock held by another thread as the process forked hung the child.
_continued: OrderedDict[tuple[int, int], list[weakref.ref[Any]]] = OrderedDict()
_KEPT = 16_384


def note_continued(span: Any) -> None:
    """A span that started under a span that is no span of this process (a ``NonRecordingSpan``): noted, as the
    continuation of its caller, when that parent is a remote one. Never raises."""
    parent = getattr(span, "parent", None)
    if parent is not None and getattr(parent, "is_remote", False):
        key = (parent.trace_id, parent.span_id)
        try:
            held = _continued.get(key)  # (a new list each time, never one changed in place: another thread may read it)
            _continued[key] = [*(ref for ref in held or () if _running(ref())), weakref.ref(span)]
            _continued.move_to_end(key)
            while len(_continued) > _KEPT:  # (another thread's note in between: both past the bound, both evict)
                _continued.popitem(last=False)
        except (KeyError, TypeError):  # the key, or the last, evicted by another thread meanwhile; a span type
            pass  # without weak references (no SDK span's)


def continued_here(caller: SpanContext, started_ns: int) -> bool:
    """Whether a span of this process that started under ``caller``'s span, a remote one, by ``started_ns`` (a span's
    start time) is still running."""
    for ref in _continued.get((caller.trace_id, caller.span_id)) or ():
        continuation = ref()
        began = getattr(continuation, "start_time", None)
        if _running(continuation) and isinstance(began, int) and began <= started_ns:
            return True
    return False


def _running(span: Any) -> bool:
    return span is not None and getattr(span, "end_time", 0) is None
