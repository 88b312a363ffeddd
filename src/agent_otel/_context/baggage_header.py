"""A ``baggage`` header the program sets itself keeps its entries when the job's go out with it.

OpenTelemetry's baggage propagator *sets* the carrier's ``baggage`` header to the context's entries, and the
HTTP instrumentations (requests, httpx, urllib3, aiohttp...) inject into the request's own headers. A program
without agent-otel has no entries in its context, so nothing is written and its own header goes out; with
agent-otel a job or a conversation puts its ids there, and the program's header was replaced by them. So the
propagator's ``inject`` is wrapped, once, when this module is imported (with the job's context): while the
context holds only our entries, a ``baggage`` header already in the carrier keeps the program's members, and ours
are set in it. With any other entry in the context it does what it always did (it replaces the header, as it would
without us).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import wrapt
from opentelemetry import baggage
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagators import textmap

from agent_otel import semconv
from agent_otel._engine.self_telemetry import report_error

HEADER = "baggage"
#: The entries agent-otel puts in baggage: the job's id and type, the conversation's id.
_OURS = frozenset({semconv.BAGGAGE_JOB_ID, semconv.BAGGAGE_JOB_TYPE, semconv.BAGGAGE_CONVERSATION_ID})


#: What W3C baggage carries at most (the propagator's own limits): a longer header, or one with more members, is
#: dropped whole by the receiving side, the job's ids with it.
_MAX_HEADER_BYTES = 8192
_MAX_MEMBERS = 180


def merged_baggage(program: str, ours: str) -> str | None:
    """The program's ``baggage`` header with ours in it: its members, but those whose keys are ours (the job's id
    and type, the conversation's: the current ones replace any it has, as a header the program reuses still holds
    the ones written for an earlier job), then ours. None when that changes nothing, or when it would no longer
    fit in W3C baggage (then the program's header goes as it is, as without agent-otel)."""
    added = [member for member in ours.split(",") if member.strip()]
    replaced = {_key(member) for member in added}
    kept = [member for member in program.split(",") if _key(member) not in replaced]
    merged = ",".join((*kept, *added))
    if merged == program:
        return None
    # (an environment's value that is no UTF-8 holds its bytes as surrogates: they count, and go back, as bytes)
    if len(kept) + len(added) > _MAX_MEMBERS or len(merged.encode(errors="surrogateescape")) > _MAX_HEADER_BYTES:
        report_error("propagation.baggage", ValueError("the job's baggage does not fit in the program's header"))
        return None
    return merged


def _key(member: str) -> str:
    return member.split("=", 1)[0].strip()


def _programs_header(carrier: object) -> tuple[str, str] | None:
    """(its key, its value): the ``baggage`` header the program put in ``carrier``, or None. Case-insensitive
    carriers (requests', httpx's headers) find it by any spelling; a plain dict is searched."""
    if not isinstance(carrier, Mapping):
        return None
    key, value = HEADER, carrier.get(HEADER)
    if value is None and type(carrier) is dict:
        key, value = next(((name, text) for name, text in carrier.items()
                           if isinstance(name, str) and name.lower() == HEADER), (HEADER, None))
    return (key, value) if isinstance(value, str) and value.strip() else None


def _bound(carrier: Any, context: Context | None = None,
           setter: textmap.Setter[Any] = textmap.default_setter) -> tuple[Any, Context | None, textmap.Setter[Any]]:
    return carrier, context, setter


def _inject_keeping_the_programs(wrapped: Callable[..., None], instance: object, args: tuple[Any, ...],
                                 kwargs: dict[str, Any]) -> None:
    try:
        carrier, context, setter = _bound(*args, **kwargs)
        entries = baggage.get_all(context)
        program = _programs_header(carrier) if entries and entries.keys() <= _OURS else None
    except Exception as exc:  # e.g. a carrier whose get() raises: the propagator's own way
        report_error("propagation.baggage", exc)
        program = None
    if program is None:
        return wrapped(*args, **kwargs)
    ours: dict[str, str] = {}
    wrapped(ours, context)
    merged = merged_baggage(program[1], ours.get(HEADER, ""))
    if merged is None:
        return None
    if program[0] == HEADER:
        setter.set(carrier, HEADER, merged)
    else:  # a plain dict, the header spelled otherwise: one header, not two
        carrier[program[0]] = merged
    return None


def _keep_the_programs_header() -> None:
    current = W3CBaggagePropagator.__dict__["inject"]
    if not getattr(current, "_self_agent_otel_baggage", False):
        patched = wrapt.FunctionWrapper(current, _inject_keeping_the_programs)
        patched._self_agent_otel_baggage = True  # type: ignore[attr-defined]  # wrapt keeps _self_* on the proxy
        W3CBaggagePropagator.inject = patched  # type: ignore[method-assign]  # patching the class is the point


_keep_the_programs_header()
