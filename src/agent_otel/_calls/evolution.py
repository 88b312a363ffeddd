"""Evolution (self-improvement) runs: status, duration, KPIs before/after, improvement, resources."""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.sdk.trace import SpanLimits
from opentelemetry.trace import INVALID_SPAN

from agent_otel import semconv
from agent_otel._calls.evaluation import RUN_AGENT_KEY, WINDOW_KEY, ScoreWindow, take_baseline
from agent_otel._calls.extractors import Call, Extractor, field_of
from agent_otel._calls.handler import (
    UNREAD,
    KindHandler,
    ManualCall,
    P,
    R,
    coerce_bool,
    coerce_count,
    coerce_number,
    decorator,
    given_flag,
    manual_name,
    text_value,
)
from agent_otel._calls.lineage import (
    FROM_FIELDS,
    NO_LINEAGE,
    ROLLBACK_FIELDS,
    TO_FIELDS,
    read_lineage,
    record_introduction,
    version_text,
)
from agent_otel._calls.options import EVOLUTION, Attributes, Count, Flag, Kpis, Names, Text, Version, collect
from agent_otel._calls.process_usage import ResourceSampler
from agent_otel._context.running import STARTED_IN, running_context
from agent_otel._engine import instruments as _instruments
from agent_otel._engine import policy as _policies
from agent_otel._engine.instruments import runtime
from agent_otel._engine.policy import policy, valid_text
from agent_otel._engine.self_telemetry import Unreadable, report_error, type_name
from agent_otel._engine.wrappers import CUT_OFF_AT_EXIT, End, Invocation, track, untrack

if TYPE_CHECKING:
    from decimal import Context as DecimalContext
    from decimal import Decimal

_BEFORE_FIELDS = ("kpis_before", "pre_kpis", "before")
_AFTER_FIELDS = ("kpis_after", "post_kpis", "after")
_ROLLBACK_FIELDS = ("rolled_back", "rollback")
_ITERATION_FIELDS = ("iterations", "convergence_iterations")
#: Options read off the result when not given, and the fields each one is read from (the first one present wins).
_RESULT_FIELDS = {"kpis_before": _BEFORE_FIELDS, "kpis_after": _AFTER_FIELDS, "rollback": _ROLLBACK_FIELDS,
                  "success": ("success",), "iterations": _ITERATION_FIELDS, "version_from": FROM_FIELDS,
                  "version_to": TO_FIELDS, "rollback_version": ROLLBACK_FIELDS}
#: Those read off every result, at once (``rollback_version`` only when the run was rolled back).
_ALWAYS_READ = tuple((key, fields) for key, fields in _RESULT_FIELDS.items() if key != "rollback_version")
_ALWAYS_READ_KEYS = tuple(key for key, _ in _ALWAYS_READ)
#: Options that are tables of KPI numbers.
_KPI_OPTIONS = frozenset(("kpis_before", "kpis_after", "improvements"))
#: Options that are agent versions.
_VERSION_OPTIONS = frozenset(("version_from", "version_to", "rollback_version"))
_DEFAULT_TYPE = EVOLUTION["type"].default  # also when an extractor finds nothing
_SAMPLE_RESOURCES = EVOLUTION["sample_resources"].default


def _fields(value: Any) -> tuple[str, ...] | None:
    """The field names of a record object that holds KPIs (a dataclass, a pydantic model, a named tuple): engines
    keep their metrics in such types as often as in dicts. None for anything else."""
    if isinstance(value, type):
        return None
    if dataclasses.is_dataclass(value):
        return tuple(field.name for field in dataclasses.fields(value))
    declared = getattr(type(value), "model_fields", None)  # pydantic 2 (on the class: the instance's is deprecated)
    if declared is None:
        declared = getattr(type(value), "__fields__", None)  # pydantic 1
    if declared is None and isinstance(value, tuple):
        declared = getattr(type(value), "_fields", None)  # a named tuple
    if isinstance(declared, Mapping | tuple):
        return tuple(str(name) for name in declared)
    return None


def _record_kpis(value: Any) -> dict[str, Any] | None:
    """The fields of a record object that holds KPIs, by name, as they are now; None if it is none."""
    names = _fields(value)
    return None if names is None else {name: field_of(value, name) for name in names}


#: The name of a run's one KPI, read as a number, when its ``kpi`` option names none.
SINGLE_KPI = "score"
#: The result fields that name KPIs as such: a number there is the run's one KPI (not one in a generic ``before`` or
#: ``after`` field, as often a timestamp as a score).
_NAMED_KPI_FIELDS = {"kpis_before": _BEFORE_FIELDS[:2], "kpis_after": _AFTER_FIELDS[:2]}


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)  # (numpy's numbers too)


def _one_kpi(handler: EvolutionHandler, key: str, result: Any, read: object) -> str | None:
    """The name of the one KPI that a number read for ``key`` is (an engine that reports one score: GEPA's, DSPy's
    evaluation): given as an option, or in a result field that names KPIs; None for any other value."""
    if not _is_number(read):
        return None
    if key in handler.options or field_of(result, *_NAMED_KPI_FIELDS.get(key, ())) is not None:
        return handler.options.get("kpi") or SINGLE_KPI
    return None


def _kpi_items(value: Any, stage: str, single: str | None) -> Iterable[tuple[Any, Any]]:
    """KPI name and value pairs of a mapping or a record object, or of a number that is the one KPI ``single``."""
    if isinstance(value, Mapping):
        return value.items()
    if single is not None:
        return ((single, value),)
    record = _record_kpis(value)
    if record is None:
        report_error(stage, Unreadable(f"KPIs must be a mapping of name to number, got {type_name(value)}"))
        return ()
    return record.items()


def _kpis(value: Any, stage: str, single: str | None = None) -> dict[str, float]:
    if value is None:
        return {}
    kpis = {}
    for name, raw in _kpi_items(value, stage, single):
        number = coerce_number(raw, stage)
        if number is not None:
            kpis[valid_text(str(name), semconv.AGENT_KPI_NAME)] = number  # a span attribute's key
    return kpis


def _deltas(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Each KPI's change; one too large for a float (1e308 from -1e308) is left out and counted: the SDK refuses
    an infinite value with a warning on the program's stderr, and the improvement would be infinite too."""
    deltas: dict[str, float] = {}
    names = after.keys() & before.keys()
    if not names:  # (a run with no KPI to compare makes no decimal context: 2 µs a run)
        return deltas
    as_printed, context = _decimal()
    for name in names:
        delta = after[name] - before[name]
        if math.isfinite(delta):
            deltas[name] = float(context.subtract(as_printed(after[name]), as_printed(before[name])))
        else:
            report_error("evolution.kpi_delta", OverflowError("a KPI's change is beyond a float"))
    return deltas


def _decimal() -> tuple[Callable[[float], Decimal], DecimalContext]:
    """The decimal number a KPI prints as, and a context of agent-otel's own to compute in (the program's, which
    ``decimal`` uses by default, may round to 2 digits or trap inexact results: a run's telemetry was lost): its
    changes and their mean are computed on those numbers, as a person reads them. In binary floats 0.11 - 0.10 is
    0.009999999999999995, which the improvement histogram counted below 0.01 (its bounds sit just below each step)
    and the no-progress alert took for no step; it is 0.01. An exact float keeps its exact change (1e15 + 4 - 1e15
    is 4)."""
    import decimal  # (only where runs report KPIs: not at every process's start)

    return (lambda value: decimal.Decimal(repr(float(value)))), decimal.Context(prec=60, traps=[])


def _mean(values: Collection[float]) -> float:
    """The mean of finite ``values``, on their decimal numbers (see :func:`_decimal`): finite even where their float
    sum is not (two KPIs rising by 1e308)."""
    as_printed, context = _decimal()
    total = as_printed(0.0)
    for value in values:
        total = context.add(total, as_printed(value))
    return float(context.divide(total, len(values)))


#: The evolution run in progress, for ``[[rollback]]`` targets called during it.
EVOLUTION_KEY = otel_context.create_key("agent_otel.evolution")
#: A run's context until its span has started (see ``EvolutionHandler.begin``).
_NO_CONTEXT = Context()
_STATUS_VALUES = {status: status.value for status in semconv.EvolutionStatus}


class EvolutionInvocation(Invocation):
    """An evolution run. Made by :meth:`EvolutionHandler.begin` without an ``__init__`` of its own (a frame per
    run), which sets what it holds: the agent and type, its handler and call's view, the resource sampler (started
    once its span has), whether a rollback target was called during the run and the version it returned to, and
    its evaluations (the run's window of scores, and the baseline before it)."""

    __slots__ = ("agent_name", "call", "evolution_type", "handler", "rollback_version", "rolled_back", "sampler",
                 "scores")
    agent_name: str
    call: Call | None
    evolution_type: str
    handler: EvolutionHandler
    rollback_version: Any
    rolled_back: bool
    sampler: ResourceSampler | None
    scores: tuple[ScoreWindow, dict[str, float]] | None

    def record(self, how: End, value: Any, error: BaseException | None, duration_s: float) -> None:
        untrack(self)
        usage = self.sampler.stop() if self.sampler is not None else None
        handler, call = self.handler, self.call  # call: None when no option reads it (see KindHandler.reads_call)
        if call is not None:
            call.result, call.error = value, error
        found = handler.result_values(value, call)
        # (an option neither given nor found is None: skip its reading, a call each on every run)
        read = found.get("kpis_before")
        before = _kpis(read, "evolution.kpis_before", _one_kpi(handler, "kpis_before", value, read)) \
            if read is not None else {}
        read = found.get("kpis_after")
        after = _kpis(read, "evolution.kpis_after", _one_kpi(handler, "kpis_after", value, read)) \
            if read is not None else {}
        if self.scores is not None:  # evaluation KPIs; what the run reports wins
            window, baseline = self.scores
            before, after = {**baseline, **before}, {**window.close(), **after}
        read = found.get("rollback")
        rolled_back = self.rolled_back or (read is not None and bool(coerce_bool(read, "evolution.rollback")))
        read = found.get("success")
        success = given_flag(read, "evolution.success") if "success" in handler.options else \
            coerce_bool(read, "evolution.success") if read is not None else None
        read = found.get("iterations")
        iterations = coerce_count(read, "evolution.iterations", sized=True) if read is not None else None
        # a rolled-back run reports failure as often as not (its candidate was worse): rolled_back says more
        if error is not None:
            status = semconv.EvolutionStatus.FAILED
        elif rolled_back:
            status = semconv.EvolutionStatus.ROLLED_BACK
        elif success is False or (success is None and how is End.CLOSED and self.first_chunk_ns is None
                                  and self in CUT_OFF_AT_EXIT):
            # (a run the process's exit cut off before it gave anything, on a daemon thread, did not succeed; a
            # generator run or a block its engine stopped reading counts as it reports)
            status = semconv.EvolutionStatus.FAILED
        else:
            status = semconv.EvolutionStatus.SUCCEEDED
        if status is semconv.EvolutionStatus.ROLLED_BACK or (error is not None and rolled_back):
            # a rollback (target or reported), then maybe a raise
            lineage = read_lineage(found, True, handler.rollback_version(call, value), self.rollback_version)
        elif found.get("version_from") is None and found.get("version_to") is None:
            lineage = NO_LINEAGE  # the common case, without the call
        else:
            lineage = read_lineage(found, False)
        reported = handler.option("improvements", call) if "improvements" in handler.options else None
        deltas = _kpis(reported, "evolution.improvements", _one_kpi(handler, "improvements", value, reported)) \
            if reported is not None else _deltas(before, after)
        primary = handler.options.get("kpi")
        improvement = deltas.get(primary) if primary is not None else _mean(deltas.values()) if deltas else None
        if improvement is None and primary is not None and deltas and primary not in before and primary not in after:
            # a KPI the run never names, beside others it does (a misspelt kpi= turned the improvement metrics and the
            # no-progress alert off, in silence); not one with no "before" yet (an evaluation's first run)
            report_error("evolution.kpi", LookupError("the run's KPIs name none as its kpi option does"))

        rt = _instruments._runtime or runtime()  # runtime() without its call, once it is built
        ctx = self.context
        labels = {semconv.GEN_AI_AGENT_NAME: self.agent_name, semconv.EVOLUTION_TYPE: self.evolution_type}
        status_value = _STATUS_VALUES[status]  # status.value is two calls
        with_status = {**labels, semconv.EVOLUTION_STATUS: status_value}
        instruments = rt.instruments  # read by name: rt[spec] is a Python call
        instruments[semconv.EVOLUTION_ATTEMPTS.name].add(1, with_status, context=ctx)
        if lineage is not NO_LINEAGE:  # a run that reports no versions introduces none
            record_introduction(ctx, self.agent_name, lineage, status)
        instruments[semconv.EVOLUTION_DURATION.name].record(duration_s, with_status, context=ctx)
        if improvement is not None:  # a failed or rolled-back run's candidate was not adopted: it improved nothing
            # (the span keeps what was measured); AgentOtelEvolutionNoProgress took a crash after a better score, or a
            # rollback another guard made while the KPI rose, for progress
            adopted = improvement if status is semconv.EvolutionStatus.SUCCEEDED else min(improvement, 0.0)
            instruments[semconv.EVOLUTION_PERFORMANCE_IMPROVEMENT.name].set(adopted, labels, context=ctx)
            # a regression is no improvement, and a histogram takes no negative value (the SDK drops it, with a line
            # on the program's stderr): it counts in the first bucket, so that every run is counted
            instruments[semconv.EVOLUTION_IMPROVEMENT_HISTOGRAM.name].record(max(adopted, 0.0), labels, context=ctx)
        if usage is not None:
            rt[semconv.EVOLUTION_MEMORY_PEAK].set(usage.peak_rss_bytes, labels, context=ctx)
        current = before if status is not semconv.EvolutionStatus.SUCCEEDED else {**before, **after}
        kpi_gauge = instruments[semconv.AGENT_KPI_CURRENT.name]
        bound = (_policies._policy or policy()).bounded
        for name, number in current.items():
            kpi_gauge.set(number, {semconv.GEN_AI_AGENT_NAME: self.agent_name,
                                   semconv.AGENT_KPI_NAME: bound(semconv.AGENT_KPI_NAME, name)}, context=ctx)
        span = self.span
        if span.is_recording():
            ended: dict[str, Any] = {semconv.EVOLUTION_STATUS: status_value,  # one set_attributes: one lock
                                     semconv.EVOLUTION_ROLLBACK: rolled_back}
            if iterations is not None:
                ended[semconv.EVOLUTION_ITERATIONS] = iterations
            if lineage is not NO_LINEAGE:
                ended.update(lineage.span_attributes())
            if improvement is not None:
                ended[semconv.EVOLUTION_IMPROVEMENT] = improvement
            if usage is not None:
                ended.update(usage.span_attributes())
            if handler.late and call is not None:  # (read by an extractor: the call has its view)
                ended.update(handler.late_span_attributes(call))
            ended.update(_kpi_span_attributes(span, len(ended) + len(handler.result_attributes or ()), primary,
                                              before, after, deltas))
            span.set_attributes(ended)
            if status is semconv.EvolutionStatus.FAILED and error is None:
                handler.record_failure_message(span, call, value)
            if handler.result_attributes and call is not None:
                handler.record_result_attributes(span, call)


def _kpi_span_attributes(span: Any, taken: int, primary: str | None, before: dict[str, float],
                         after: dict[str, float], deltas: dict[str, float]) -> dict[str, float]:
    """Each KPI's before, after and delta, as many as the span has room for beside the ``taken`` attributes the
    run's end sets: past the SDK's attribute limit it would drop the oldest ones, the run's name, agent and status
    (and say so on the program's stderr, once per attribute). The primary KPI first, then in the order reported;
    the KPIs left out are counted."""
    if not (before or after or deltas):
        return {}
    limit = _span_attribute_limit()
    room = None if limit is None else limit - len(getattr(span, "attributes", None) or ()) - taken
    names = list(dict.fromkeys([*([primary] if primary is not None else []), *before, *after, *deltas]))
    attributes: dict[str, float] = {}
    for index, name in enumerate(names):
        triple = {prefix + name: kpis[name] for prefix, kpis in ((semconv.EVOLUTION_KPI_BEFORE_PREFIX, before),
                                                                 (semconv.EVOLUTION_KPI_AFTER_PREFIX, after),
                                                                 (semconv.EVOLUTION_KPI_DELTA_PREFIX, deltas))
                  if name in kpis}
        if room is not None and len(attributes) + len(triple) > room:
            report_error("evolution.kpi_attributes", OverflowError(
                f"{len(names) - index} of {len(names)} KPIs left off the span: its attribute limit is {limit}"))
            break
        attributes.update(triple)
    return attributes


@functools.cache
def _span_attribute_limit() -> int | None:
    """The SDK's limit on a span's attributes, from the environment (``OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT``...), read
    once, as the SDK reads it when its provider is made; None: no limit."""
    return SpanLimits().max_span_attributes


class EvolutionHandler(KindHandler):
    stage = "evolution"

    def __init__(self, func: Callable[..., Any] | None, options: dict[str, Any],
                 attributes: Attributes | None = None) -> None:
        super().__init__(func, options, attributes)
        self.reads_result(tuple((key, fields) for key, fields in _ALWAYS_READ if key not in options))
        #: the result options given (literals or extractors), which the result is not read for
        self._given_results = tuple(key for key in _ALWAYS_READ_KEYS if key in options)

    def as_read_at_start(self, key: str, value: Any) -> Any:
        """KPIs read when the run starts from a record object or a table it then updates in place: their values
        then (a mapping of any kind, as a dict); a version, as its text then (an object the engine bumps in place
        was read as the version it ended on)."""
        if key in _VERSION_OPTIONS:
            return version_text(value)
        if key in _KPI_OPTIONS:
            if not isinstance(value, Mapping):
                record = _record_kpis(value)
                if record is not None:
                    return record
            elif type(value) is not dict:
                return dict(value)
        return super().as_read_at_start(key, value)

    def result_values(self, result: Any, call: Call | None) -> dict[str, Any]:
        """The run's result options at once, by key: each one given (literal or extractor) resolved, the others
        as ``result`` has them (:meth:`read_result`); an option neither given nor found is absent."""
        found = self.read_result(result)
        if not self._given_results:
            return found
        return {**found, **{key: self.option(key, call, UNREAD if key == "success" else None)
                            for key in self._given_results}}

    def rollback_version(self, call: Call | None, result: Any) -> Any:
        """The version a rolled-back run returned to, as given (literal or extractor) or as its result says;
        read only for a run rolled back."""
        if "rollback_version" in self.options:
            return self.option("rollback_version", call)
        return field_of(result, *_RESULT_FIELDS["rollback_version"])

    def _describe(self, call: Call | None) -> tuple[str, str, str, dict[str, Any]]:
        bound = policy().bounded
        agent_name = bound(semconv.GEN_AI_AGENT_NAME, self.required_name("agent", call))
        given_type = text_value(self.option("type", call), semconv.EVOLUTION_TYPE)
        evolution_type = bound(semconv.EVOLUTION_TYPE, given_type or _DEFAULT_TYPE)
        attributes = {semconv.GEN_AI_OPERATION_NAME: semconv.OPERATION_EVOLVE, semconv.GEN_AI_AGENT_NAME: agent_name,
                      semconv.EVOLUTION_TYPE: evolution_type}
        strategy = text_value(self.option("strategy", call), semconv.EVOLUTION_STRATEGY) \
            if "strategy" not in self.late else None
        if strategy is not None:
            attributes[semconv.EVOLUTION_STRATEGY] = valid_text(strategy, semconv.EVOLUTION_STRATEGY)
        return agent_name, evolution_type, semconv.evolution_span_name(agent_name), self.span_attributes(attributes)

    def begin(self, wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
              parent: Context) -> Invocation:
        call = self.new_call(instance, args, kwargs) if self.reads_call else None
        cached = self._static  # static()'s value without its call, when kept for the current policy
        described = cached[1] if cached is not None and cached[0] is _policies._policy else self.static(
            ("agent", "type", "strategy"), self._describe, call)
        agent_name, evolution_type, span_name, attributes = described
        inv = EvolutionInvocation(INVALID_SPAN, _NO_CONTEXT, "evolution")
        inv.handler, inv.call, inv.agent_name, inv.evolution_type = self, call, agent_name, evolution_type
        inv.sampler = inv.scores = inv.rollback_version = None
        inv.rolled_back = False  # set by a rollback target called during the run
        # the run's context holds the run (for the rollback targets called in it): made in the span's one copy
        if STARTED_IN:  # under another library's span: the calls of ours running where it started (see running)
            parent = running_context(parent)
        inv.span, inv.context = self.open(span_name, attributes, parent,
                                          {EVOLUTION_KEY: inv, RUN_AGENT_KEY: agent_name})
        # only once the span started (a span processor may raise: the call then runs as if not wrapped): the sampler's
        # thread and the run among those a SIGTERM ends would stay for the process's life, recorded at its exit
        if self.options.get("sample_resources", _SAMPLE_RESOURCES):
            inv.sampler = ResourceSampler()
        track(inv)  # ended by a SIGTERM that finds it running
        names = _evaluation_names(self.option("evaluations", call)) if "evaluations" in self.options else None
        if names:
            enclosing = inv.context.get(WINDOW_KEY)  # an outer run's: what this one does not ask for goes there
            window = ScoreWindow(names, enclosing if isinstance(enclosing, ScoreWindow) else None)
            inv.scores = (window, take_baseline(agent_name, names))
            inv.context = otel_context.set_value(WINDOW_KEY, window, inv.context)
        return inv


def _evaluation_names(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    try:
        return [str(name) for name in value]
    except TypeError as exc:
        report_error("evolution.evaluations", exc)
        return []


def evolution(agent: Text, *, type: Text = "default", strategy: Text | None = None, kpis_before: Kpis | None = None,
              kpis_after: Kpis | None = None, improvements: Kpis | None = None, rollback: Flag | None = None,
              success: Flag | None = None, iterations: Count | None = None, kpi: str | None = None,
              version_from: Version | None = None, version_to: Version | None = None,
              rollback_version: Version | None = None,
              evaluations: Names | None = None, result_attributes: Mapping[str, Extractor] | None = None,
              error_message: Text | None = None,
              sample_resources: bool = True, attributes: Attributes | None = None
              ) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate an evolution run. KPIs, rollback and iterations are read from the result
    (``kpis_before``/``kpis_after``, ``rolled_back``, ``iterations``) unless given; a ``kpis_before``
    path on ``self``/``args`` is read when the run starts. ``improvements`` gives the KPI deltas as the
    run reports them. ``kpi`` names the KPI whose delta is the run's improvement (default: the mean
    delta). ``strategy=path(..., at="end")`` reads a strategy chosen during the run. ``version_from`` and
    ``version_to`` are the agent versions the run started from and produced (read off the result's
    ``version_from``/``version_to`` by default); a rollback returns to ``rollback_version`` (default: the
    version it started from). ``evaluations`` names evaluations whose mean score becomes a KPI of that
    name: inside the run (after) and the agent's since its previous run (before)."""
    return decorator(EvolutionHandler, collect("evolution", locals()), attributes)


def evolution_run(agent: str, *, type: str | None = None, strategy: str | None = None,
                  kpi: str | None = None, evaluations: Names | None = None,
                  version_from: str | int | None = None, attributes: Attributes | None = None) -> ManualCall:
    """An explicit evolution span; report with ``run.set_outcome(kpis_before=.., kpis_after=.., rolled_back=..)``
    (and ``version_to=..``, ``rolled_back_to=..``)."""
    options = collect("evolution", {"agent": manual_name("evolution", "agent", agent), "type": type,
                                    "strategy": strategy, "kpi": kpi, "evaluations": evaluations,
                                    "version_from": version_from}, check=False)
    return ManualCall(EvolutionHandler(None, options, attributes))
