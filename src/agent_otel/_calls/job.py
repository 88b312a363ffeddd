"""``job()``: the unit of work everything else is attributed to.

Usable as a context manager (sync and async) and as a decorator (any shape, via the engine).
Starts the ``invoke_workflow {type}`` span, puts the job in context and baggage, records
``job.duration`` by type and outcome, and stamps roll-ups (calls, tokens, cost of everything that
ran under the job, across threads and tasks) on the job span when it ends.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.trace import INVALID_SPAN, NoOpTracer
from opentelemetry.util.types import AttributeValue

from agent_otel import semconv
from agent_otel._calls.conversation import ConversationId, deferred_conversation_problem
from agent_otel._calls.extractors import Call, Extractor, Path, field_of, is_extractor, resolve, signature_of
from agent_otel._calls.handler import (
    P,
    R,
    check_decoratable,
    coerce_bool,
    early_results,
    extraction_failed,
    outcome_value,
    read_early_results,
    set_result_attributes,
)
from agent_otel._calls.options import JOB, Text, check_attributes, check_options
from agent_otel._calls.phase import record_pattern
from agent_otel._context import stamping as _stamping
from agent_otel._context.conversation import context_with_conversation
from agent_otel._context.job import BAGGAGE_KEY, JobState, context_with_job, fits_in_baggage
from agent_otel._context.running import SPAN_KEY
from agent_otel._context.stamping import carried_under, ids_of
from agent_otel._engine import instruments as _instruments
from agent_otel._engine import policy as _policies
from agent_otel._engine.ids import random_bits
from agent_otel._engine.instruments import runtime
from agent_otel._engine.policy import SCRUBBED_KEY, policy, readable_text, valid_attributes, valid_text
from agent_otel._engine.self_telemetry import report_error
from agent_otel._engine.wrappers import (
    End,
    Handler,
    Invocation,
    InvocationScope,
    instrument,
    replacing_own,
    track,
    untrack,
)
from agent_otel.errors import ConfigurationError

_DEFAULT_TYPE = JOB["type"].default
_NO_SPAN = {SPAN_KEY: INVALID_SPAN}  # a job's context with tracing off
_SUCCESS, _FAILURE, _ERROR = (semconv.Outcome.SUCCESS.value, semconv.Outcome.FAILURE.value,
                              semconv.Outcome.ERROR.value)  # an Enum member's value costs two calls


_UUID4_CLEAR = ~((0xF << 76) | (0x3 << 62)) & ((1 << 128) - 1)  # the version and variant bits
_UUID4_SET = (0x4 << 76) | (0x2 << 62)  # version 4, RFC 4122 variant


def new_job_id() -> str:
    """A random (version 4) UUID as 32 hex digits, as ``uuid.uuid4().hex`` gives, made from 128 random bits
    directly: ``uuid.UUID``'s checks cost about 2 µs on every job, ``os.urandom()`` (a system call) about 1. From
    agent-otel's own generator (see :mod:`agent_otel._engine.ids`)."""
    return ((random_bits(128) & _UUID4_CLEAR) | _UUID4_SET).to_bytes(16, "big").hex()


class JobInvocation(Invocation):
    """A job. Made by :func:`start_job` without an ``__init__`` of its own (a frame per job), which sets what it
    holds: its state and type, the outcome its block set (None: read off the result), the configured
    ``result_attributes`` reader, and the workflow pattern it follows (known at its start, or read when it ends)."""

    __slots__ = ("job_type", "outcome", "pattern", "pattern_reader", "result_reader", "state")
    job_type: str
    outcome: str | None
    pattern: object
    pattern_reader: tuple[Call, Path] | None
    result_reader: tuple[Call, Mapping[str, Any]] | None

    def mark_left_by(self, flow: BaseException) -> None:
        """The job's views for extractors (its pattern's, its result attributes') have no result to read."""
        for reader in (self.pattern_reader, self.result_reader):
            if reader is not None:
                reader[0].left_by = flow
    state: JobState

    def record(self, how: End, value: Any, error: BaseException | None, duration_s: float) -> None:
        untrack(self)
        try:
            self._record(value, error, duration_s)
        finally:  # the error's traceback holds the frame that holds this invocation (see Call.release)
            for reader in (self.pattern_reader, self.result_reader):
                if reader is not None:
                    reader[0].release()

    def _record(self, value: Any, error: BaseException | None, duration_s: float) -> None:
        outcome = _ERROR if error is not None else self.outcome or _outcome_of(value)
        rt = _instruments._runtime or runtime()  # runtime() without its call, once it is built
        rt.instruments[semconv.JOB_DURATION.name].record(  # by name: rt[spec] is a Python call
            duration_s, {semconv.JOB_TYPE: self.job_type, semconv.JOB_OUTCOME: outcome}, context=self.context
        )
        state = self.state
        if state.priced_calls:  # what its priced model calls cost (none priced: not known, where a 0.0 would read
            # as a free job; its span counts the unpriced); the exemplar links to its trace
            rt.instruments[semconv.JOB_COST.name].record(state.cost, {semconv.JOB_TYPE: self.job_type},
                                                         context=self.context)
        pattern = self.pattern
        if self.pattern_reader is not None:
            call, extractor = self.pattern_reader
            call.result, call.error = value, error
            pattern = _read(extractor, call, "job.extract.pattern")
        if pattern is not None:
            record_pattern(self.context, self.span, pattern, outcome, duration_s)
        if self.span.is_recording():  # one set_attributes(): one lock
            self.span.set_attributes({semconv.JOB_OUTCOME: outcome, **self.state.rollup_attributes()})
            if self.result_reader is not None:
                call, extractors = self.result_reader
                call.result, call.error = value, error
                set_result_attributes(self.span, extractors, call, "job")


def _outcome_of(value: Any) -> str:
    """A job that returns something whose ``success`` is false (by Python truthiness, as for agents)
    failed; anything else succeeded."""
    success = value.get("success") if type(value) is dict else field_of(value, "success")  # (a dict: field_of's
    # first case, without its call)
    if success is not None and success is not True and coerce_bool(success, "job.success") is False:
        return _FAILURE
    return _SUCCESS


def _read(extractor: Any, call: Call, stage: str) -> Any:
    try:
        return resolve(extractor, call)
    except Exception as exc:
        extraction_failed(stage, exc, call)
        return None


def bounded_job_type(job_type: object) -> str:
    """A job's type as the span name, the span, the baggage and ``job.duration`` all carry it: through the
    cardinality cap once (the default when an extractor found nothing)."""
    text = job_type if isinstance(job_type, str) or job_type is None else readable_text(job_type, semconv.JOB_TYPE)
    return policy().bounded(semconv.JOB_TYPE, text) if text else _DEFAULT_TYPE


def start_job(job_id: object, kind: str, attributes: Mapping[str, Any],
              conversation: object = None, pattern: object = None, current: Context | None = None) -> JobInvocation:
    """Start a job of type ``kind`` (see :func:`bounded_job_type`), in ``conversation`` when given, under
    ``current`` (default: the current context)."""
    # a given id goes into baggage, which every propagator encodes as UTF-8: one it cannot encode would raise
    # in the program's own HTTP calls
    given = readable_text(job_id, semconv.JOB_ID) if job_id is not None else None
    if given is not None:  # W3C baggage drops spaces around a value: the id another process reads is stripped too
        given = given.strip()
        if not given:  # an id that names no job (an extractor that read ""): a fresh one, the miss counted
            report_error(semconv.JOB_ID, ValueError("the job id is empty"))
            given = None
    state = JobState(valid_text(given, semconv.JOB_ID) if given is not None else new_job_id(), kind)
    carried = given is None or fits_in_baggage(state.id)
    if not carried:  # on its spans, in this process; the propagators would drop it, warning on the host's stderr
        report_error(semconv.JOB_ID, ValueError("the job id is too long to travel in W3C baggage"))
    parent = context_with_conversation(conversation) if conversation is not None else None
    if parent is None and _stamping.carrying:  # under a server's request span that carries its caller's ids: the job
        current = current if current is not None else otel_context.get_current()  # runs in the caller's
        caller = carried_under(current)  # conversation, as under attached(headers)
        if caller is not None:
            parent = Context({**current, BAGGAGE_KEY: caller})
    if parent is None:
        parent = current
    rt = _instruments._runtime or runtime()  # runtime() without its call, once it is built
    tracer = rt.tracer
    if type(tracer) is NoOpTracer:  # tracing off: the span would be INVALID_SPAN anyway (its context in one copy)
        inv = JobInvocation(INVALID_SPAN, context_with_job(state, parent, _NO_SPAN, carried), "job")
    else:
        ctx = context_with_job(state, parent, carry_id=carried)
        # It starts with the ids the span processor would stamp (the conversation's too) and its keys hashed, and
        # tells the processors so, as every span of ours does (see KindHandler.open): they then let it go at once.
        span_attributes = (_policies._policy or policy()).scrub({
            **(ids_of(state, ctx.get(BAGGAGE_KEY)) or {}),
            semconv.JOB_ID: state.id,
            semconv.JOB_TYPE: state.type,
            semconv.GEN_AI_OPERATION_NAME: semconv.OPERATION_INVOKE_WORKFLOW,
            **attributes,
        })
        span = tracer.start_span(semconv.job_span_name(state.type), context=Context({**ctx, SCRUBBED_KEY: True}),
                                 attributes=span_attributes)
        inv = JobInvocation(span, Context({**ctx, SPAN_KEY: span}), "job")  # set_span_in_context() in one copy
    track(inv)  # ended by a SIGTERM that finds it running
    inv.state, inv.job_type, inv.pattern = state, state.type, pattern
    inv.outcome = inv.result_reader = inv.pattern_reader = None
    return inv


class _JobHandler(Handler):
    stage = "job"
    _caches = ("_bounded_type",)

    def __init__(self, job_id: str | int | Extractor | None, job_type: Text, attributes: Mapping[str, Any],
                 func: Callable[..., Any], result_attributes: Mapping[str, Any] | None = None,
                 conversation: ConversationId | None = None, pattern: Text | None = None) -> None:
        self.job_id = job_id
        self.conversation = conversation
        self.pattern = pattern
        self.job_type = job_type
        self.extracts_id, self.extracts_type = is_extractor(job_id), is_extractor(job_type)
        self.attributes = attributes
        self.signature = signature_of(func)
        self.result_attributes = dict(result_attributes or {})
        self.early_results = early_results(self.result_attributes)
        #: Whether a call's options are read off it (a Call is made for it only then).
        self.reads_call = (self.extracts_id or self.extracts_type or conversation is not None or pattern is not None
                           or bool(self.result_attributes))
        self._bounded_type: tuple[object, str] | None = None  # (policy, literal type through its cap)

    def job_type_of(self, call: Call | None) -> str:
        """The call's bounded type: a literal one goes through the cardinality cap once per policy."""
        if self.extracts_type and call is not None:  # (a type read off the call has one: reads_call)
            return bounded_job_type(resolve(self.job_type, call))
        current = _policies._policy or policy()  # policy() without its call, once it is set
        cached = self._bounded_type
        if cached is None or cached[0] is not current:
            cached = self._bounded_type = (current, bounded_job_type(self.job_type))
        return cached[1]

    def begin(self, wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
              parent: Context) -> Invocation:
        if not self.reads_call:  # all literal: nothing to read off the call
            return start_job(self.job_id, self.job_type_of(None), self.attributes, current=parent)
        method = self.method
        call = Call(self.signature, instance, args, kwargs, method if method is not None else self.decide_method(args))
        inv = start_job(resolve(self.job_id, call) if self.extracts_id else self.job_id,  # resolve(), when it
                        self.job_type_of(call), self.attributes,  # has to run
                        resolve(self.conversation, call) if self.conversation is not None else None, current=parent)
        if self.result_attributes:
            inv.result_reader = (call, self.result_attributes)
            if self.early_results:
                read_early_results(call, self.early_results, "job")
        pattern = self.pattern
        if isinstance(pattern, Path) and (pattern.needs_result or pattern.at == "end"):
            inv.pattern_reader = (call, pattern)
        elif pattern is not None:
            inv.pattern = _read(pattern, call, "job.extract.pattern")
        return inv


class job(InvocationScope):
    """Run a block or a function as a job.

    ``job_id`` defaults to a fresh id; as a decorator, ``job_id``, ``type`` and ``conversation`` may be
    extractors (e.g. ``path("self.job_id")``), and each call is its own job. ``conversation`` runs the
    job in that conversation, as :class:`agent_otel.conversation` does. ``pattern`` names the workflow
    pattern the job follows (``agent_otel.workflow.pattern.duration`` by outcome; as a decorator also an extractor,
    read when the job starts, or when it ends for a path on its result or with ``at="end"``). Span attributes
    are keywords, or a mapping ``attributes={...}`` as the other kinds take them (before, that one became an
    attribute named ``attributes`` holding the mapping, where no hashed key inside it was hashed).
    """

    stage = "job"

    def __init__(self, job_id: str | int | Extractor | None = None, type: Text = _DEFAULT_TYPE,
                 conversation: ConversationId | None = None, pattern: Text | None = None,
                 **attributes: AttributeValue) -> None:
        check_options("job", {"id": job_id, "type": type, "pattern": pattern})
        # as in conversation(): a bad id raises when decorating; a with-block runs in no conversation, counted
        self._conversation_problem = (deferred_conversation_problem(conversation, "job()")
                                      if conversation is not None else None)
        if self._conversation_problem is not None:
            conversation = None
        self.job_id = job_id
        self.conversation = conversation
        self.pattern = pattern
        self.type = type
        for misnamed, keyword in (("id", "job_id"), ("job_type", "type")):  # the config file's name, a guess
            if misnamed in attributes:  # they became span attributes, and the job got a random id
                raise ConfigurationError(f"job(): {misnamed}= is no option of job(): write {keyword}=... (a span "
                                         f"attribute of that name goes in attributes={{{misnamed!r}: ...}})")
        table = attributes.get("attributes")
        if isinstance(table, Mapping):
            attributes = {**table, **{key: value for key, value in attributes.items() if key != "attributes"}}
        check_attributes("job", attributes)
        self.attributes = valid_attributes(attributes)  # as the other kinds' attributes
        super().__init__()

    # -- context manager -------------------------------------------------------------------------
    @property
    def id(self) -> str | None:
        """The id of the job this object is currently running (inside its ``with`` block)."""
        inv = self.invocation
        return inv.state.id if isinstance(inv, JobInvocation) else None

    def set_outcome(self, outcome: str | semconv.Outcome) -> None:
        entry = self._reporting_entry()  # (outside any block: counted)
        inv = entry[0] if entry is not None else None
        if isinstance(inv, JobInvocation):
            value = outcome_value(outcome, "job")
            if value is not None:
                inv.outcome = value

    def _refuse_entry(self) -> None:
        if any(is_extractor(value) for value in (self.job_id, self.type, self.conversation, self.pattern)):
            raise ConfigurationError("job(): extractors are only meaningful when job() decorates a function")

    def _begin(self) -> Invocation:
        if self._conversation_problem is not None:
            report_error("conversation.id", self._conversation_problem)
        return start_job(self.job_id, bounded_job_type(self.type), self.attributes, self.conversation, self.pattern)

    # -- decorator -------------------------------------------------------------------------------
    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        if self._conversation_problem is not None:
            raise self._conversation_problem
        func = replacing_own("job", func)
        check_decoratable("job", func)
        return instrument(_JobHandler(self.job_id, self.type, self.attributes, func, conversation=self.conversation,
                                      pattern=self.pattern), func)
