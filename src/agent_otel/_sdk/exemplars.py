"""The exemplar views of agent-otel's meter providers, and the SDK warning only they would cause.

The default exemplar reservoir of a counter, an up-down counter and a gauge samples with the global ``random``
(``randrange``, for every measurement in a recorded span after the first of a collection): it moved the host's random
stream (a program seeded for a reproducible run drew other numbers). These views give each the reservoir that keeps
its latest exemplar instead, the one /metrics shows.

A view that matches an instrument makes the SDK compare it with every instrument matched before, by name alone: two
libraries' counters of one name, each on a meter of its own (Google ADK's token counters beside agent-otel's), were
said to "cause conflicting metrics identities", a warning on the host's stderr that the SDK's default view, which
these replace, never gives (the two streams stay apart by their scope). That warning is dropped when both views it
names are these; any other view's goes on as the SDK gives it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

from opentelemetry.sdk.metrics import (
    AlignedHistogramBucketExemplarReservoir,
    Counter,
    ExemplarReservoir,
    UpDownCounter,
    _Gauge,
)
from opentelemetry.sdk.metrics.view import View

_KEEP_LATEST = functools.partial(AlignedHistogramBucketExemplarReservoir, boundaries=())  # one bucket: the latest


def _latest_exemplar(aggregation: object) -> Callable[..., ExemplarReservoir]:
    return _KEEP_LATEST


#: One view per instrument type whose default reservoir samples with the global ``random``.
_VIEWS = tuple(View(instrument_type=kind, exemplar_reservoir_factory=_latest_exemplar)
               for kind in (Counter, UpDownCounter, _Gauge))

#: Where the SDK says it, and how (its logger, and the record's format string).
_SDK_LOGGER = "opentelemetry.sdk.metrics._internal.metric_reader_storage"
_CONFLICT = "Views %s and %s will cause conflicting metrics identities"


def _not_between_ours(record: logging.LogRecord) -> bool:
    """False (dropped) for the SDK's conflict warning between two of these views."""
    args = record.args
    return not (record.msg == _CONFLICT and isinstance(args, tuple) and len(args) == 2
                and all(any(arg is view for view in _VIEWS) for arg in args))


def exemplar_views() -> list[View]:
    """The views, for a meter provider of agent-otel's; the SDK's warning between two of them is dropped from now on."""
    logger = logging.getLogger(_SDK_LOGGER)
    if _not_between_ours not in logger.filters:
        logger.addFilter(_not_between_ours)
    return list(_VIEWS)
