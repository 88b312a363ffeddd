"""What all kinds (agent, provider, tool, evolution) share on top of the engine.

Resolving keyword options (literal or extractor) against a call, reading fields off results with
sensible adapters, coercing odd values, and the explicit ``with ..._call(...) as call`` handle.
"""

from __future__ import annotations

import functools
import inspect
import math
import sys
from collections.abc import Callable, Mapping
from types import FrameType, FunctionType
from typing import Any, ParamSpec, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind

from agent_otel import semconv
from agent_otel._calls.extractors import Call, Path, field_of, is_extractor, signature_of
from agent_otel._calls.options import (
    KINDS,
    MAX_COUNT,
    Attributes,
    check_attributes,
    check_required,
    extractor_problem,
    read_at,
)
from agent_otel._context import stamping as _stamping
from agent_otel._context.job import BAGGAGE_KEY, JOB_KEY
from agent_otel._context.running import SPAN_KEY, STARTED_IN, running_context
from agent_otel._context.stamping import carried_under, ids_of
from agent_otel._engine import instruments as _instruments
from agent_otel._engine import policy as _policies
from agent_otel._engine.instruments import runtime
from agent_otel._engine.kept import runs_kept
from agent_otel._engine.policy import (
    SCRUBBED_KEY,
    policy,
    readable_text,
    set_hashed,
    valid_attributes,
    valid_int,
    valid_text,
)
from agent_otel._engine.self_telemetry import Unreadable, report_error, type_name
from agent_otel._engine.wrappers import Handler, Invocation, InvocationScope, instrument, replacing_own
from agent_otel.errors import ConfigurationError

P = ParamSpec("P")
R = TypeVar("R")
#: A call's view, or None where a handler makes none (see :attr:`KindHandler.reads_call`).
C = TypeVar("C", bound=Call | None)

_get_current = otel_context.get_current


_TRUE_WORDS = frozenset(("true", "yes", "success", "succeeded", "ok", "1"))
_FALSE_WORDS = frozenset(("false", "no", "failure", "failed", "error", "0"))


def coerce_bool(value: Any, stage: str) -> bool | None:
    """A yes/no value by Python truthiness (a list of fixes ``[]`` is a failure), except the words
    that say it (``"false"``, ``"failed"``, ``"error"``... are false). None stays unknown."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE_WORDS:
            return True
        if lowered in _FALSE_WORDS:
            return False
    try:
        return bool(value)
    except Exception:  # e.g. a numpy array, whose truth is ambiguous
        report_error(stage, Unreadable(f"cannot read {type_name(value)} as a boolean"))
        return None


#: What :meth:`KindHandler.option` gives, when asked to, for an extractor that raised (see :func:`given_flag`).
UNREAD: Any = object()


def given_flag(value: Any, stage: str) -> bool | None:
    """A yes/no option given explicitly (``success``), as :meth:`KindHandler.option` read it with ``failed=UNREAD``: by
    Python truthiness, so None (a path to a field that is None, an extractor that returns None: openevolve's rejected
    candidate) is false. Unknown only when the extractor raised (counted): agent-otel's failure is no outcome of the
    program's."""
    if value is UNREAD:
        return None
    if value is None:
        return False
    return coerce_bool(value, stage)


def difference(before: Any, after: Any, stage: str) -> float | None:
    """``after - before`` of a running total read around a call (``delta``); None, counted, when either
    is not a number or the total went down (a reset: the call's share is unknown). A total that did not
    exist before the call (a client that creates its usage object on its first request) started at 0."""
    high = coerce_number(after, stage)
    low = 0 if before is None and high is not None else coerce_number(before, stage)
    if low is None or high is None:
        return None
    if high < low:
        report_error(stage, ValueError("a running total read with delta went down during the call"))
        return None
    change = high - low
    return int(change) if isinstance(before, int | None) and isinstance(after, int) else change


def coerce_number(value: Any, stage: str, low: float | None = None, high: float | None = None) -> float | None:
    if value is None:
        return None
    problem: str | None = None
    if isinstance(value, bool):
        problem = f"cannot read bool as a number{_within(low, high)}"
    else:
        try:  # the program's object: its __float__ may raise anything
            number = float(value.strip() if isinstance(value, str) else value)
        except OverflowError:  # (an int past a float's range)
            problem = f"{type_name(value)} value beyond a float"
        except Exception:
            problem = f"cannot read {type_name(value)} as a number{_within(low, high)}"
        else:
            if math.isnan(number) or math.isinf(number):
                problem = f"{type_name(value)} value not finite"
            elif (low is not None and number < low) or (high is not None and number > high):
                problem = f"{type_name(value)} value not{_within(low, high)}"
    if problem is not None:
        report_error(stage, Unreadable(problem))
        return None
    return number


def _within(low: float | None, high: float | None) -> str:
    """`` in [low, high]`` (`` >= low`` with no upper bound), or nothing with no bounds."""
    if low is None:
        return ""
    return f" in [{_shown(low)}, {_shown(high)}]" if high is not None else f" >= {_shown(low)}"


def _shown(bound: float | None) -> str:
    return str(int(bound)) if bound is not None and float(bound).is_integer() else f"{bound}"


def error_type_label(error: BaseException) -> str:
    """The ``error.type`` metric label of a call that raised ``error``: its class name, under the cardinality cap
    (a program can make exception classes at run time)."""
    return policy().bounded(semconv.ERROR_TYPE, type(error).__name__)


def coerce_count(value: Any, stage: str, sized: bool = False) -> int | None:
    """A count: an int, or with ``sized`` the length of a list/tuple/set/dict (``files_modified=[...]``; see
    :attr:`~agent_otel._calls.options.Option.sized`): a token count is no collection's length."""
    if value is None:
        return None
    if type(value) is int and 0 <= value <= MAX_COUNT:  # the common case, without the checks below
        return value
    if isinstance(value, list | tuple | set | frozenset | dict):
        if sized:
            return len(value)
        report_error(stage, Unreadable(f"cannot read {type_name(value)} as a count"))
        return None
    number = coerce_number(value, stage, 0, MAX_COUNT)
    if number is None:
        return None
    if not number.is_integer():  # 2.7 tokens: no count, rather than a truncated one
        report_error(stage, Unreadable(f"{type_name(value)} value not a whole number"))
        return None
    return int(number)


def coerce_names(value: Any, stage: str) -> list[str]:
    """A list of names: a string, or an iterable of strings."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple | set | frozenset):
        return [str(item) for item in value]
    report_error(stage, Unreadable(f"cannot read {type_name(value)} as a list of names"))
    return []


#: Values that are no name: their repr named spans ``chat ['gpt-4o']`` and became metric labels (as a literal
#: option, they are refused when the kind is set up).
NO_NAMES = (list, tuple, set, frozenset, dict)


def text_value(value: object, key: str) -> str | None:
    """A name option's value as text: None for None or empty; else its ``str()``, or None, counted at
    ``text.<key>``, when that raises or the value is a collection. Never the truth or a comparison of the
    program's value, which may raise too (an array)."""
    if isinstance(value, str):
        return value or None
    if value is None:
        return None
    if isinstance(value, NO_NAMES):
        report_error("text." + key, Unreadable(f"a {type_name(value)} is no name"))
        return None
    return readable_text(value, key) or None


def span_value(value: Any, key: str = "span_attribute") -> Any:
    """A value OTel accepts as a span attribute, and every exporter can encode (see :func:`valid_text`)."""
    if isinstance(value, str):
        return valid_text(value, key)
    if isinstance(value, bool | float):
        return value
    if isinstance(value, int):
        return valid_int(int(value), key)
    if isinstance(value, list | tuple) and all(isinstance(v, bool | float) for v in value):
        return list(value)
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return [valid_text(v, key) for v in value]
    if isinstance(value, list | tuple) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        numbers = [valid_int(int(v), key) for v in value]
        return numbers if all(type(v) is int for v in numbers) else [str(v) for v in numbers]  # a list is one type
    return valid_text(readable_text(value, key) or "", key)


#: Where :func:`read_early_results` keeps a ``result_attributes`` entry's value read at the start, in ``Call.early``
#: (beside the options', whose names have no dot).
_EARLY_RESULT = "result_attributes."


def early_results(extractors: Mapping[str, Any]) -> dict[str, Path]:
    """The ``result_attributes`` entries read when the call starts: ``at = "start"`` (the value before the call),
    or ``delta`` (read at both ends)."""
    return {key: value for key, value in extractors.items()
            if isinstance(value, Path) and (value.delta or value.at == "start") and not value.needs_result}


def read_early_results(call: Call, paths: Mapping[str, Path], stage: str) -> None:
    """Read ``paths`` (:func:`early_results`) as the call starts, into ``call.early``; a list the call then empties
    is copied, as for an option read at the start."""
    early = call.early if call.early is not None else {}
    call.early = early
    for key, extractor in paths.items():
        try:
            value = extractor.read(call) if extractor.delta else extractor(call)
            early[_EARLY_RESULT + key] = value.copy() if type(value) in _CONTAINERS else value
        except Exception as exc:
            report_error(f"{stage}.extract.{key}", exc)
            early[_EARLY_RESULT + key] = None


#: The options that judge a call's result (an evolution run's ``rollback`` too): a call a framework's pause left has
#: none to judge, and is no success or failure by them (see control_flow).
_VERDICTS = frozenset({"success", "rollback"})


def extraction_failed(stage: str, error: Exception, call: Call | None) -> None:
    """An extractor failed: counted at ``stage``, unless a framework's pause left the call (it has no result, and an
    extractor written for one fails: no failure of the program's or of ours, see control_flow; any failure on such a
    call is left uncounted, as which one read the result cannot be told for a function)."""
    if call is None or call.left_by is None:
        report_error(stage, error)


def _result_attribute(key: str, extractor: Any, call: Call, stage: str) -> Any:
    """A ``result_attributes`` entry's value: read now, or as it was when the call started (``at = "start"``), or
    its change since then (``delta``)."""
    if not callable(extractor):
        return extractor
    if isinstance(extractor, Path) and (extractor.delta or extractor.at == "start") and not extractor.needs_result:
        found = call.early.get(_EARLY_RESULT + key) if call.early is not None else None
        if extractor.delta:
            return difference(found, extractor.read(call), f"{stage}.extract.{key}")
        return found
    return extractor(call)


def set_result_attributes(span: Span, extractors: Mapping[str, Any], call: Call, stage: str) -> None:
    """Span attributes read by ``extractors`` when the call ends (or, with ``at = "start"`` or ``delta``, when it
    started too: see :func:`read_early_results`); hashed keys hashed, failures counted."""
    guard = policy()
    for key, extractor in extractors.items():
        try:
            extracted = _result_attribute(key, extractor, call, stage)
        except Exception as exc:
            extraction_failed(f"{stage}.extract.{key}", exc, call)
            continue
        if extracted is None:
            continue
        if key in guard.hashed_keys:
            set_hashed(span, key, extracted)
        else:
            span.set_attribute(key, span_value(extracted, key))


def paths_in(options: Mapping[str, Any]) -> list[tuple[str, Path]]:
    """(key, path) of every extractor path the options hold, those of the ``work`` and ``result_attributes``
    tables included (``work.fixes``)."""
    keyed = list(options.items())
    for nested in ("work", "result_attributes"):
        if isinstance(options.get(nested), Mapping):
            keyed.extend((f"{nested}.{key}", value) for key, value in options[nested].items())
    return [(key, value) for key, value in keyed if isinstance(value, Path)]


def check_parameters(func: Callable[..., Any], signature: inspect.Signature, options: Mapping[str, Any]) -> None:
    """An ``args.NAME`` path must name a parameter of the decorated function: a typo is an error at
    decoration time, not a value that is silently always missing."""
    params = signature.parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    for key, value in paths_in(options):
        if value.root == "args":
            name = value.steps[0][1]
            if name not in params:
                qualname = getattr(func, "__qualname__", repr(func))
                raise ConfigurationError(
                    f"{key}: extractor path {value.text!r}: {qualname}() has no parameter {name!r} "
                    f"(parameters: {', '.join(params) or 'none'})")


#: Values read at the start that are copied then (exactly these types: a subclass's copy() is the host's code).
_CONTAINERS = frozenset({list, dict, set, bytearray})


def _reading_times(stage: str, options: Mapping[str, Any]) -> tuple[dict[str, Path], dict[str, str]]:
    """Which path options are read when the call starts though used when it ends (``at = "start"``,
    a ``delta``, or an args/self path of an option read at the start by default), and which are read
    when it ends though used when it starts (``at = "end"``: key -> the span attribute it sets).
    A path an option cannot take is a ConfigurationError, as in a config file."""
    table = KINDS[stage]
    early: dict[str, Path] = {}
    late: dict[str, str] = {}
    for key, value in options.items():
        option = table.get(key)
        if not isinstance(value, Path) or option is None:
            continue
        problem = extractor_problem(option, value)
        if problem is not None:
            raise ConfigurationError(f"{stage}(): {key}: extractor path {value.text!r} {problem}")
        when = read_at(option, value)
        if option.used_at_end:
            if when != "end":
                early[key] = value
        elif when == "end":
            late[key] = option.late_attribute
    return early, late


#: What :meth:`KindHandler.read_result` found nothing in.
_NOTHING: dict[str, Any] = {}


class KindHandler(Handler):
    """A handler whose options are literals or extractors, validated at decoration time
    (``stage`` is the kind's name in :data:`agent_otel._calls.options.KINDS`)."""

    span_kind = SpanKind.INTERNAL
    _caches = ("_static", "_ids")
    #: The options :meth:`read_result` reads off a result (see :meth:`reads_result`), and the same by field.
    _reads: tuple[tuple[str, tuple[str, ...]], ...] = ()
    _reads_by_field: dict[str, tuple[str, tuple[str, ...]]] = _NOTHING

    def __init__(self, func: Callable[..., Any] | None, options: dict[str, Any],
                 attributes: Attributes | None = None) -> None:
        if attributes is not None and not isinstance(attributes, Mapping):
            raise ConfigurationError(f"attributes must be a mapping, got {type(attributes).__name__}")
        unnamed = [key for key in attributes or () if not isinstance(key, str) or not key]
        if unnamed:  # the SDK drops such a key with a warning on the program's stderr, at every call
            raise ConfigurationError(f"attributes: expected names as keys, got {unnamed[0]!r}")
        if attributes:
            check_attributes(self.stage, attributes)
        self.options = options
        self.times_generators = options.get("stream") is not False  # a provider's stream=False
        self.attributes = valid_attributes(attributes or {})
        self.signature = signature_of(func) if func is not None else None
        self.extracts = {key for key, value in options.items() if is_extractor(value)}
        self.result_attributes: dict[str, Any] = dict(options.get("result_attributes") or {})
        self.early_results = early_results(self.result_attributes)
        self.early, self.late = _reading_times(self.stage, options)
        #: Whether a call gets its view for extractors (:meth:`new_call`): only extractors read it (and a
        #: required name given as nothing, whose fallback reads the instance: see :meth:`required_name`), so a
        #: handler whose options are all literals makes none (the view and its call cost about 1.5 µs a call).
        self.reads_call = bool(self.extracts or self.result_attributes) or any(
            option.config_default and not options.get(option.name) for option in KINDS[self.stage].values())
        self._static: tuple[object, Any] | None = None
        #: (job state, baggage, start attributes, policy, those attributes with the ids): see _with_ids
        self._ids: tuple[object, object, dict[str, Any], object, dict[str, Any]] | None = None
        self._function_name = str(getattr(func, "__name__", None) or self.stage)
        if func is not None and self.signature is not None:
            check_parameters(func, self.signature, options)
        check_required(self.stage, options)

    def reads_result(self, reads: tuple[tuple[str, tuple[str, ...]], ...]) -> None:
        """Have :meth:`read_result` read these options (key, the result fields it is read from) off results."""
        self._reads = reads
        self._reads_by_field = {field: (key, fields) for key, fields in reads for field in fields}

    def read_result(self, result: Any) -> dict[str, Any]:
        """The options of :meth:`reads_result` that ``result`` has (the first of an option's fields present,
        as :func:`field_of` reads them), read at once."""
        if result is None:
            return _NOTHING
        found = {}
        if type(result) is dict:  # the common case: only look at the fields the dict has
            by_field = self._reads_by_field
            for field in result:
                read = by_field.get(field)
                if read is not None and read[0] not in found:
                    fields = read[1]  # one field: what field_of() reads, without its call
                    value = result[field] if len(fields) == 1 else field_of(result, *fields)
                    if value is not None:
                        found[read[0]] = value
            return found
        for key, fields in self._reads:
            value = field_of(result, *fields)
            if value is not None:
                found[key] = value
        return found

    def new_call(self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Call:
        """The call's view for extractors, with the values read when it starts (``at``, ``delta``)."""
        method = self.method
        call = Call(self.signature, instance, args, kwargs, method if method is not None else self.decide_method(args))
        if self.early:
            early = call.early = {}
            for key, extractor in self.early.items():
                try:
                    value = extractor.read(call) if extractor.delta else extractor(call)
                    early[key] = self.as_read_at_start(key, value)
                except Exception as exc:
                    report_error(f"{self.stage}.extract.{key}", exc)
                    early[key] = UNREAD  # (option() gives what its caller asks for a failed read: None, or UNREAD)
        if self.early_results:
            read_early_results(call, self.early_results, self.stage)
        return call

    def as_read_at_start(self, key: str, value: Any) -> Any:
        """``value`` as it is when the call starts: a list the call then empties must count what it held."""
        return value.copy() if type(value) in _CONTAINERS else value

    def option(self, key: str, call: Call | None, failed: Any = None) -> Any:
        """Resolve one option; a failing extractor is counted and yields ``failed``. An option read when the
        call started gives that value; a ``delta`` the change since then. ``call`` is None only for a
        handler without extractors (see :attr:`reads_call`)."""
        value: Any = self.options.get(key)
        if key not in self.extracts:
            return value
        if call is None:  # not reached: a handler with an extractor makes each call's view
            return None
        try:
            if key in self.early:
                found = call.early.get(key) if call.early is not None else None
                if found is UNREAD:  # read when the call started, and that failed (counted then)
                    return failed
                if value.delta:
                    return difference(found, value.read(call), f"{self.stage}.extract.{key}")
            elif call.left_by is not None and key in _VERDICTS:  # a pause: no result, so no verdict on one
                return failed
            else:
                found = value(call)
            return found
        except Exception as exc:
            extraction_failed(f"{self.stage}.extract.{key}", exc, call)
            return failed

    def late_span_attributes(self, call: Call) -> dict[str, Any]:
        """The options read when the call ends though normally read when it starts (``at = "end"``),
        as span attributes."""
        attributes = {}
        for key, attribute in self.late.items():
            value = self.option(key, call)
            if value is not None:
                attributes[attribute] = span_value(value, attribute)
        return attributes

    def record_result_attributes(self, span: Span, call: Call) -> None:
        """``result_attributes``: span attributes read when the call ends (hashed keys hashed)."""
        set_result_attributes(span, self.result_attributes, call, self.stage)

    def record_failure_message(self, span: Span, call: Call | None, result: Any) -> None:
        """Keep why a call that did not succeed failed, as ``error.message``: the ``error_message``
        option, else the ``error_message``/``error`` field of its ``result`` (an exception raised is on the
        span already, as its exception event)."""
        if "error_message" in self.options:
            message = self.option("error_message", call)
        else:
            message = field_of(result, "error_message", "error")
        # (any value's text, a collection's too: an error's details)
        text = readable_text(message, semconv.ERROR_MESSAGE) or None if message is not None and not isinstance(
            message, bool) else None
        if text is not None:
            span.set_attribute(semconv.ERROR_MESSAGE, span_value(text, semconv.ERROR_MESSAGE))

    def required_name(self, key: str, call: Call | None) -> str:
        """A required name option (agent, tool, provider name). When it resolves to nothing (None or
        empty, e.g. a path that found nothing or failed), the name a configured target would get instead
        (:attr:`~agent_otel._calls.options.Option.config_default`): the class of a method's instance, or
        the function's name; the miss is counted, and "None" never becomes a name."""
        text = text_value(self.option(key, call), f"{self.stage}.{key}")
        if text is not None:
            return text
        report_error(f"{self.stage}.{key}", LookupError("the name resolved to nothing"))
        instance = call.instance if call is not None else None
        if instance is None or KINDS[self.stage][key].config_default == "function":
            return self._function_name
        return instance.__name__ if isinstance(instance, type) else type(instance).__name__

    def span_attributes(self, attributes: dict[str, Any]) -> dict[str, Any]:
        """The span's start attributes: the kind's, the user's ``attributes=``, hashed keys hashed."""
        if self.attributes:
            attributes.update(self.attributes)
        return policy().scrub(attributes)

    def start(self, name: str, attributes: dict[str, Any], ctx: Context | None = None) -> tuple[Span, Context]:
        """Start this kind's span under ``ctx`` (default: current); returns the span and its context."""
        return self.open(name, self.span_attributes(attributes), ctx)

    def open(self, name: str, attributes: dict[str, Any], ctx: Context | None = None,
             entries: dict[str, object] | None = None) -> tuple[Span, Context]:
        """Start the span with attributes already through :meth:`span_attributes` (never mutated,
        so a handler may pass the same dict on every call), under ``ctx`` (default: current). The call
        runs in the returned context: ``ctx`` with the span and ``entries`` (context key -> value, e.g.
        the agent's name), made in one copy instead of one per value."""
        parent = ctx if ctx is not None else _get_current()
        if ctx is None and STARTED_IN:  # under another library's span: the calls of ours running where it started
            parent = running_context(parent)
        if _stamping.carrying and parent.get(JOB_KEY) is None:
            caller = carried_under(parent)  # under a server's request span that carries its caller's job: the call
            if caller is not None:  # runs with it (and the conversation), in the baggage beside the program's own
                entries = {**(entries or {}), BAGGAGE_KEY: caller}
        rt = _instruments._runtime  # runtime() without its call, once it is built
        tracer = (rt if rt is not None else runtime()).tracer
        if type(tracer) is trace.NoOpTracer:  # tracing off: the span would be INVALID_SPAN anyway
            return trace.INVALID_SPAN, Context({**parent, **entries, SPAN_KEY: trace.INVALID_SPAN} if entries
                                               else {**parent, SPAN_KEY: trace.INVALID_SPAN})
        base = {**parent, **entries} if entries else parent
        state, carried = base.get(JOB_KEY), base.get(BAGGAGE_KEY)
        if state is not None or carried:  # in a job or a conversation: start with the ids
            attributes = self._with_ids(attributes, state, carried)
        # Tell the span processors these attributes are already hashed and stamped; the flag is only
        # in the context the span starts with, not in the one its children run under.
        span = tracer.start_span(name, context=Context({**base, SCRUBBED_KEY: True}), kind=self.span_kind,
                                 attributes=attributes)
        return span, Context({**base, SPAN_KEY: span})

    def _with_ids(self, attributes: dict[str, Any], state: object, carried: object) -> dict[str, Any]:
        """``attributes`` with the ids the span processor would stamp (hashed keys hashed), without a second
        write. Calls in the same job (or conversation) and with the same attributes share one dict: the last
        one is kept, by the identity of what it was made from and of the policy."""
        current = _policies._policy or policy()
        kept = self._ids
        if kept is not None and kept[0] is state and kept[1] is carried and kept[2] is attributes and (
                kept[3] is current):
            merged: dict[str, Any] = kept[4]
            return merged
        ids = ids_of(state, carried)
        if ids is None:
            return attributes
        if not current.hashed_keys.isdisjoint(ids):
            current.scrub(ids)
        merged = {**ids, **attributes}
        self._ids = (state, carried, attributes, current, merged)
        return merged

    def under_agent(self, cache: dict[Any, dict[str, Any]], base: dict[str, Any], agent: Any) -> dict[str, Any]:
        """Start attributes for a call made under ``agent`` (None: under none): ``base`` with
        ``gen_ai.agent.name``, through :meth:`span_attributes`; cached in ``cache`` by agent."""
        attributes = cache.get(agent)
        if attributes is None:
            attributes = self.span_attributes({**base, semconv.GEN_AI_AGENT_NAME: agent} if agent is not None
                                              else dict(base))
            if len(cache) < 256:  # agent names are bounded values; this is a backstop
                cache[agent] = attributes
        return attributes

    def static(self, keys: tuple[str, ...], compute: Callable[[C], R], call: C) -> R:
        """``compute(call)`` once per policy when the options in ``keys`` are all literals (their bounded
        values, span name and attributes then never change), else on every call."""
        if self.extracts and not self.extracts.isdisjoint(keys):
            return compute(call)
        current = _policies._policy or policy()  # policy() without its call, once it is set
        cached = self._static
        if cached is not None and cached[0] is current:
            found: R = cached[1]  # a typed name, not cast(): a call on every wrapped call
            return found
        value = compute(call)
        self._static = (current, value)
        return value


def manual_name(stage: str, key: str, value: Any) -> Any:
    """A manual call's name (``agent_call(name)``...) is often the program's value at run time: a string, or an
    integer as its text; anything else (None, empty, another type) is the kind's own name, as
    :meth:`KindHandler.required_name` falls back for a call with no function, and the miss is counted; never
    raised into the block's code."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    report_error(f"{stage}.{key}", LookupError("the name resolved to nothing"))
    return stage


class ManualCall(InvocationScope):
    """``with agent_otel.agent_call(...) as call:`` for code that is not a single function call.

    ``call.set_outcome(...)`` stores result fields; they are read exactly as a returned result. They belong
    to the block being run in this thread or task (each entry of the object starts with none), so a call
    object is safe to reuse and to share, as every scope is.
    """

    def __init__(self, handler: KindHandler) -> None:
        super().__init__()
        self._handler = handler
        self.stage = handler.stage

    @property
    def result(self) -> Any:
        """What the current block reported (``{}`` outside any)."""
        entry = self._current_entry()
        return entry[3] if entry is not None else {}

    def set_outcome(self, **fields: Any) -> None:
        entry = self._reporting_entry()
        if entry is not None:
            if isinstance(entry[3], dict):
                entry[3].update(fields)
            else:  # after set_result() of something else: these fields are the result now
                entry[3] = dict(fields)

    def set_result(self, result: Any) -> None:
        entry = self._reporting_entry()
        if entry is not None:
            entry[3] = result

    def _new_result(self) -> Any:
        return {}

    def _begin(self) -> Invocation | None:
        return self._handler.begin(_manual_marker, None, (), {}, _get_current())


def _manual_marker() -> None:
    """Stands in for the wrapped callable of a manual call."""


def decorator(handler_type: type[KindHandler], options: dict[str, Any], attributes: Attributes | None
              ) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """The decorator a public function returns: validates options now, wraps the function later."""
    _refuse_use_without_parentheses(handler_type.stage, options, sys._getframe(2))
    handler_type(None, options, attributes)  # fail at decoration time, not at the first call

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        func = replacing_own(handler_type.stage, func)
        check_decoratable(handler_type.stage, func)
        return instrument(handler_type(func, options, attributes), func)

    return decorate


def _refuse_use_without_parentheses(stage: str, options: Mapping[str, Any], caller: FrameType) -> None:
    """``@agent_otel.tool`` with no parentheses passes the function being defined as the kind's name, which
    takes a callable extractor: every call of the program's function would then fail. Told apart from an
    extractor by being defined in the calling scope and not yet bound there (a ``def`` under ``@``). So does
    ``agent_otel.tool(func)``, the program's function given to be decorated: told apart by taking other arguments
    than the one an extractor takes (the call's view); the framework it was handed to failed far from the cause."""
    for option in KINDS[stage].values():
        if not (option.required and option.decorator):
            continue
        value = options.get(option.name)
        if not isinstance(value, FunctionType) or value.__name__ == "<lambda>":
            return
        scope = caller.f_code.co_qualname
        defined_here = value.__qualname__.rpartition(".")[0] == (
            "" if scope == "<module>" else scope if not caller.f_code.co_flags & inspect.CO_OPTIMIZED
            else f"{scope}.<locals>")
        if defined_here and value.__code__.co_filename == caller.f_code.co_filename and (
                caller.f_locals.get(value.__name__) is not value):
            raise ConfigurationError(
                f"agent_otel.{stage}() takes the {option.name} first: write @agent_otel.{stage}(\"...\") with "
                f"parentheses (it was given the function {value.__qualname__} being defined)")
        if not _takes_one_call(value):  # a function of the program's given to be decorated, as tool(func)
            raise ConfigurationError(
                f"agent_otel.{stage}() takes the {option.name} first, a text or an extractor of one call: the function "
                f"{value.__qualname__} cannot be called with one argument; decorate it with "
                f"agent_otel.{stage}(\"...\")({value.__name__})")
        return


def _takes_one_call(func: FunctionType) -> bool:
    """Whether ``func`` can be called with one positional argument, as an extractor is (with the call's view)."""
    try:
        inspect.signature(func, follow_wrapped=False).bind(None)  # (a decorator's wrapper is what is called)
    except TypeError:
        return False
    except ValueError:  # no signature to read: taken as an extractor, as before
        pass
    return True


def outcome_value(outcome: str | semconv.Outcome, stage: str) -> str | None:
    """The outcome a program sets (``set_outcome``), often its own status value: an ``Outcome`` or its value in
    any case (``"FAILURE"``); anything else is counted (stage ``{stage}.outcome``) and None, never raised."""
    try:
        return semconv.Outcome(outcome.lower() if isinstance(outcome, str) else outcome).value
    except (ValueError, TypeError) as exc:
        report_error(f"{stage}.outcome", exc)
        return None


def check_decoratable(stage: str, func: object) -> None:
    """Refuse, as a config file's target is refused, what a decorator's wrapper would change and record nothing
    for: a class (its type, identity, pickling and subclassing), a property or another descriptor that is no
    function (its setter and read-only check, a ``cached_property``'s cache), a value that is not callable, a
    function a framework keeps and runs past the wrapper (:func:`~agent_otel._engine.kept.runs_kept`)."""
    if isinstance(func, type):
        problem = "it is a class; decorate one of its methods (its __init__ records building one)"
    elif isinstance(func, classmethod | staticmethod):
        return
    elif not callable(func) or hasattr(type(func), "__set__") or hasattr(type(func), "__delete__"):
        if isinstance(func, property):
            kind, where = "a property", "put the decorator under @property"
        elif isinstance(func, functools.cached_property):
            kind, where = "a cached_property", "put the decorator under @functools.cached_property"
        else:  # e.g. a framework's tool object (LangChain's @tool, openai-agents' @function_tool)
            kind, where = type(func).__name__, "put agent-otel's decorator under the one that made it, next to the def"
        problem = f"it is {kind}, not a function; decorate the function it runs ({where})"
    else:
        kept = runs_kept(func)
        if kept is None:
            return
        attribute, framework = kept
        problem = (f"its attribute {attribute!r} keeps the function, and {framework} runs the function from there, "
                   "never this wrapper; put agent-otel's decorator under it, next to the def")
    runs = getattr(func, "fget", None) or getattr(func, "func", None)  # a property's, a cached_property's
    name = getattr(func, "__qualname__", None) or getattr(runs, "__qualname__", None) or type(func).__name__
    raise ConfigurationError(f"agent_otel.{stage}() cannot decorate {name}: {problem}")
