"""What all kinds (agent, provider, tool, evolution) share on top of the engine.

Resolving keyword options (literal or extractor) against a call, reading fields off results with
sensible adapters, coercing odd values, and the explicit ``with ..._call(...) as call`` handle.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, TypeVar, cast

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind

from agent_otel import semconv
from agent_otel._calls.extractors import Call, Path, is_extractor, signature_of
from agent_otel._calls.options import KINDS, Attributes, check_required
from agent_otel._context.job import current_job_id
from agent_otel._engine.instruments import runtime
from agent_otel._engine.policy import SCRUBBED_KEY, policy, valid_text
from agent_otel._engine.self_telemetry import report_error
from agent_otel._engine.wrappers import Handler, Invocation, InvocationScope, instrument
from agent_otel.errors import ConfigurationError

P = ParamSpec("P")
R = TypeVar("R")


def field_of(obj: Any, *names: str) -> Any:
    """The first of ``names`` present on ``obj`` (attribute, or key of a mapping), else None."""
    if obj is None:
        return None
    if type(obj) is dict or isinstance(obj, Mapping):  # the exact type first: an ABC check costs ~0.3 µs
        get = obj.get
        for name in names:
            value = get(name)
            if value is not None:
                return value
        return None
    for name in names:
        value = getattr(obj, name, None)
        if value is not None:
            return value
    return None


def coerce_bool(value: Any, stage: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "yes", "success", "succeeded", "ok", "1"):
            return True
        if lowered in ("false", "no", "failure", "failed", "error", "0"):
            return False
    report_error(stage, TypeError(f"cannot read {type(value).__name__} {value!r:.40} as a boolean"))
    return None


def coerce_number(value: Any, stage: str, low: float | None = None, high: float | None = None) -> float | None:
    if value is None:
        return None
    try:
        if isinstance(value, bool):
            raise TypeError
        number = float(value.strip() if isinstance(value, str) else value)
        if math.isnan(number) or math.isinf(number):
            raise ValueError
        if (low is not None and number < low) or (high is not None and number > high):
            raise ValueError
    except (TypeError, ValueError, AttributeError):
        report_error(stage, TypeError(f"cannot read {type(value).__name__} {value!r:.40} as a number"
                                      + (f" in [{low}, {high}]" if low is not None else "")))
        return None
    return number


#: The largest count one call may report: far beyond any real one (tokens, files, fixes), and small enough
#: that a counter's running sum stays within int64, which OTLP carries (a larger value would fail every
#: later metric export of the process). A count above it is dropped and counted, as an unreadable one.
MAX_COUNT = 2**32


def coerce_count(value: Any, stage: str) -> int | None:
    """A count: an int, or the length of a list/tuple/set/dict (e.g. ``files_modified=[...]``)."""
    if isinstance(value, list | tuple | set | frozenset | dict):
        return len(value)
    number = coerce_number(value, stage, 0, MAX_COUNT)
    return int(number) if number is not None else None


def coerce_names(value: Any, stage: str) -> list[str]:
    """A list of names: a string, or an iterable of strings."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple | set | frozenset):
        return [str(item) for item in value]
    report_error(stage, TypeError(f"cannot read {type(value).__name__} as a list of names"))
    return []


def span_value(value: Any, key: str = "span_attribute") -> Any:
    """A value OTel accepts as a span attribute, and every exporter can encode (see :func:`valid_text`)."""
    if isinstance(value, str):
        return valid_text(value, key)
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, list | tuple) and all(isinstance(v, str | bool | int | float) for v in value):
        return [valid_text(v, key) if isinstance(v, str) else v for v in value]
    return valid_text(str(value), key)


def check_parameters(func: Callable[..., Any], signature: inspect.Signature, options: Mapping[str, Any]) -> None:
    """An ``args.NAME`` path must name a parameter of the decorated function: a typo is an error at
    decoration time, not a value that is silently always missing."""
    params = signature.parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    values = list(options.values())
    for nested in ("work", "result_attributes"):
        if isinstance(options.get(nested), Mapping):
            values.extend(options[nested].values())
    for value in values:
        if isinstance(value, Path) and value.root == "args":
            name = value.steps[0][1]
            if name not in params:
                qualname = getattr(func, "__qualname__", repr(func))
                raise ConfigurationError(
                    f"extractor path {value.text!r}: {qualname}() has no parameter {name!r} at position 5 "
                    f"(parameters: {', '.join(params) or 'none'})")


class KindHandler(Handler):
    """A handler whose options are literals or extractors, validated at decoration time
    (``stage`` is the kind's name in :data:`agent_otel._calls.options.KINDS`)."""

    span_kind = SpanKind.INTERNAL

    def __init__(self, func: Callable[..., Any] | None, options: dict[str, Any],
                 attributes: Attributes | None = None) -> None:
        if attributes is not None and not isinstance(attributes, Mapping):
            raise ConfigurationError(f"attributes must be a mapping, got {type(attributes).__name__}")
        self.options = options
        self.attributes = {key: valid_text(value, key) if isinstance(value, str) else value
                           for key, value in (attributes or {}).items()}
        self.signature = signature_of(func) if func is not None else None
        self.extracts = {key for key, value in options.items() if is_extractor(value)}
        self._static: tuple[object, Any] | None = None
        self._function_name = str(getattr(func, "__name__", None) or self.stage)
        if func is not None and self.signature is not None:
            check_parameters(func, self.signature, options)
        check_required(self.stage, options)

    def option(self, key: str, call: Call) -> Any:
        """Resolve one option; a failing extractor is counted and yields None."""
        value: Any = self.options.get(key)
        if key not in self.extracts:
            return value
        try:
            return value(call)
        except Exception as exc:
            report_error(f"{self.stage}.extract.{key}", exc)
            return None

    def required_name(self, key: str, call: Call) -> str:
        """A required name option (agent, tool, provider name). When it resolves to nothing (None or
        empty, e.g. a path that found nothing or failed), the name a configured target would get instead
        (:attr:`~agent_otel._calls.options.Option.config_default`): the class of a method's instance, or
        the function's name; the miss is counted, and "None" never becomes a name."""
        value = self.option(key, call)
        if value is not None and value != "":
            return value if isinstance(value, str) else str(value)
        report_error(f"{self.stage}.{key}", LookupError("the name resolved to nothing"))
        instance = call.instance
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

    def open(self, name: str, attributes: dict[str, Any], ctx: Context | None = None) -> tuple[Span, Context]:
        """Start the span with attributes already through :meth:`span_attributes` (never mutated,
        so a handler may pass the same dict on every call)."""
        tracer = runtime().tracer
        if type(tracer) is trace.NoOpTracer:  # tracing off: the span would be INVALID_SPAN anyway
            return trace.INVALID_SPAN, trace.set_span_in_context(trace.INVALID_SPAN, ctx)
        job_id = current_job_id(ctx)
        if job_id is not None:  # what JobIdSpanProcessor would stamp, without a second attribute write
            attributes = {**attributes, semconv.JOB_ID: job_id}
        # Tell the span processors these attributes are already hashed and stamped; the flag is only
        # in the context the span starts with, not in the one its children run under.
        start_ctx = otel_context.set_value(SCRUBBED_KEY, True, ctx)
        span = tracer.start_span(name, context=start_ctx, kind=self.span_kind, attributes=attributes)
        return span, trace.set_span_in_context(span, ctx)

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

    def static(self, keys: tuple[str, ...], compute: Callable[[Call], R], call: Call) -> R:
        """``compute(call)`` once per policy when the options in ``keys`` are all literals (their bounded
        values, span name and attributes then never change), else on every call."""
        if self.extracts.intersection(keys):
            return compute(call)
        current = policy()
        cached = self._static
        if cached is not None and cached[0] is current:
            return cast(R, cached[1])
        value = compute(call)
        self._static = (current, value)
        return value


class ManualCall(InvocationScope):
    """``with agent_otel.agent_call(...) as call:`` for code that is not a single function call.

    ``call.set_outcome(...)`` stores result fields; they are read exactly as a returned result.
    """

    def __init__(self, handler: KindHandler) -> None:
        super().__init__()
        self._handler = handler
        self.stage = handler.stage
        self.result: dict[str, Any] = {}

    def set_outcome(self, **fields: Any) -> None:
        self.result.update(fields)

    def set_result(self, result: Any) -> None:
        self.result = result

    def _begin(self) -> Invocation:
        return self._handler.begin(_manual_marker, None, (), {})

    def _returned(self) -> Any:
        return self.result


def _manual_marker() -> None:
    """Stands in for the wrapped callable of a manual call."""


def decorator(handler_type: type[KindHandler], options: dict[str, Any], attributes: Attributes | None
              ) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """The decorator a public function returns: validates options now, wraps the function later."""
    handler_type(None, options, attributes)  # fail at decoration time, not at the first call

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        return instrument(handler_type(func, options, attributes), func)

    return decorate
