"""Agent invocations: span ``invoke_agent {name}``, duration, confidence, work items, patterns."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Never

from opentelemetry import context as otel_context
from opentelemetry.context import Context

from agent_otel import semconv
from agent_otel._calls.call_counts import CALLS_KEY, CallCounts, record_call_counts
from agent_otel._calls.conversation import ConversationId, check_conversation_id
from agent_otel._calls.extractors import Call, Extractor
from agent_otel._calls.handler import (
    UNREAD,
    KindHandler,
    ManualCall,
    P,
    R,
    coerce_bool,
    coerce_count,
    coerce_names,
    coerce_number,
    decorator,
    error_type_label,
    extraction_failed,
    given_flag,
    manual_name,
    span_value,
    text_value,
)
from agent_otel._calls.options import (
    AGENT,
    WORK_FIELDS,
    Attributes,
    Count,
    Flag,
    Names,
    Number,
    Text,
    Version,
    collect,
)
from agent_otel._calls.phase import record_pattern
from agent_otel._calls.process_usage import ResourceSampler
from agent_otel._calls.tool import TOOL_KEY
from agent_otel._context.conversation import context_with_conversation
from agent_otel._context.job import AGENT_KEY, AGENT_VERSION_KEY, JOB_KEY, JobState, current_job
from agent_otel._context.phase import PHASE_KEY, PhaseState
from agent_otel._context.running import STARTED_IN, running_context
from agent_otel._engine import instruments as _instruments
from agent_otel._engine import policy as _policies
from agent_otel._engine.instruments import Runtime, runtime
from agent_otel._engine.policy import policy
from agent_otel._engine.wrappers import End, Invocation, track, untrack
from agent_otel.errors import ConfigurationError

PATTERN_FIELDS = ("patterns_used", "patterns")


class AgentInvocation(Invocation):
    """An agent call. Made by :meth:`AgentHandler.begin` without an ``__init__`` of its own (a frame per call),
    which sets what it holds: its name and task type, its bounded version (None: it has none), the inference and
    tool calls made under it, the resource sampler (``sample_resources``), its handler and call's view."""

    __slots__ = ("call", "counts", "handler", "name", "sampler", "task_type", "version")
    call: Call | None
    counts: CallCounts | None
    handler: AgentHandler
    name: str
    sampler: ResourceSampler | None
    task_type: str
    version: str | None

    def record(self, how: End, value: Any, error: BaseException | None, duration_s: float) -> None:
        untrack(self)
        counts = self.counts
        if counts is not None:  # a library's run that starts in its context from now on is not this call's run but
            # one of its own (openai-agents' ``Runner.run_streamed`` returns a handle whose run starts later)
            counts.ended = True
        handler, call = self.handler, self.call  # call: None when no option reads it (KindHandler.reads_call)
        if call is not None:
            call.result, call.error = value, error
        span = self.span
        recording = span.is_recording()
        if self.sampler is not None:
            usage = self.sampler.stop()  # always stopped, recorded or not
            if recording:
                span.set_attributes(usage.span_attributes())
        success = confidence = None
        found = handler.read_result(value) if error is None else _NOTHING
        read = handler.result_value
        if error is None:
            # an option not given is what the result has (result_value's first case, without its call); None
            # and a bool are what coerce_bool would return, and None what coerce_number would
            explicit = handler.explicit
            if "success" in explicit:
                success = given_flag(handler.option("success", call, UNREAD), "agent.success")
            else:
                raw = found.get("success")
                success = raw if raw is None or raw is True or raw is False else coerce_bool(raw, "agent.success")
            raw = found.get("confidence") if "confidence" not in explicit else read("confidence", call, found)
            if raw is not None:
                confidence = coerce_number(raw, "agent.confidence", 0.0, 1.0)
        outcome = _ERROR if error is not None else _FAILURE if success is False else _SUCCESS
        rt = _instruments._runtime or runtime()  # runtime() without its call, once it is built
        error_type = error_type_label(error) if error is not None else None
        record_agent_call(self.context, self.name, self.task_type, outcome, error_type, duration_s, self.version, rt)
        if self.counts is not None:
            record_call_counts(self.context, self.counts, self.name, error_type, rt)
        if handler.follows_pattern:
            record_pattern(self.context, span, handler.option("pattern", call), outcome, duration_s)
        if confidence is not None:
            rt[semconv.AGENT_CONFIDENCE_HISTOGRAM].record(
                confidence, {semconv.GEN_AI_AGENT_NAME: self.name, semconv.AGENT_OUTCOME: outcome},
                context=self.context)
        if recording:
            span.set_attribute(semconv.AGENT_OUTCOME, outcome)
            if confidence is not None:
                span.set_attribute(semconv.AGENT_CONFIDENCE, confidence)
            if outcome is _FAILURE:
                handler.record_failure_message(span, call, value)
        if error is not None:
            return
        if not handler.explicit and found.keys() <= _OUTCOME_FIELDS:  # e.g. {"success": True}: nothing else
            if recording and call is not None and handler.result_attributes:
                handler.record_result_attributes(span, call)
            return
        bound = policy().bounded
        for kind in handler.work_kinds:
            raw = read(kind, call, found)
            if raw is None:  # nothing to count (coerce_count(None) is None)
                continue
            count = coerce_count(raw, f"agent.{kind}", sized=True)
            if count is None:
                continue
            if recording:
                span.set_attribute(semconv.AGENT_RESULT_PREFIX + kind, count)
            if count and kind == "files_created":
                job = current_job(self.context)
                if job is not None:
                    job.add(files_created=count)
            if count:
                rt[semconv.AGENT_WORK_ITEMS].add(count, {semconv.GEN_AI_AGENT_NAME: self.name,
                                                         semconv.AGENT_WORK_KIND: bound(semconv.AGENT_WORK_KIND, kind)},
                                                 context=self.context)
        raw_patterns = read("patterns", call, found)
        patterns = coerce_names(raw_patterns, "agent.patterns") if raw_patterns is not None else None
        if patterns:
            counter = rt[semconv.AGENT_PATTERNS_USED]
            for pattern in patterns:
                counter.add(1, {semconv.GEN_AI_AGENT_NAME: self.name,
                                semconv.AGENT_PATTERN: bound(semconv.AGENT_PATTERN, pattern)}, context=self.context)
            if recording:
                span.set_attribute(semconv.AGENT_RESULT_PATTERNS, span_value(patterns, semconv.AGENT_PATTERN))
        if recording:
            provider_used = read("provider_used", call, found)
            if provider_used is not None:
                span.set_attribute(semconv.AGENT_PROVIDER_USED,
                                   span_value(provider_used, semconv.AGENT_PROVIDER_USED))
            if call is not None:
                handler.record_result_attributes(span, call)


def record_agent_call(ctx: Any, name: str, task_type: str, outcome: str, error_type: str | None,
                      duration_s: float, version: str | None = None, rt: Runtime | None = None) -> None:
    """One agent invocation: its duration by outcome (and version, bounded), and the job's agent calls.
    ``rt``: the runtime, when the caller has it already."""
    attributes = {semconv.GEN_AI_AGENT_NAME: name, semconv.AGENT_TASK_TYPE: task_type, semconv.AGENT_OUTCOME: outcome}
    if error_type is not None:
        attributes[semconv.ERROR_TYPE] = error_type
    if version is not None:
        attributes[semconv.GEN_AI_AGENT_VERSION] = version
    values = ctx if ctx is not None else otel_context.get_current()  # current_phase() and current_job(), inlined
    phase = values.get(PHASE_KEY)
    if isinstance(phase, PhaseState):
        attributes[semconv.WORKFLOW_PHASE] = phase.name
    (rt or runtime()).instruments[semconv.AGENT_DURATION.name].record(  # by name: rt[spec] is a Python call
        duration_s, attributes, context=ctx)
    job = values.get(JOB_KEY)
    if isinstance(job, JobState):
        job.add_one("agent_calls")


_NOTHING: dict[str, Any] = {}
_SUCCESS, _FAILURE, _ERROR = (semconv.Outcome.SUCCESS.value, semconv.Outcome.FAILURE.value,
                              semconv.Outcome.ERROR.value)  # an Enum member lookup per call costs
_OUTCOME_FIELDS = frozenset({"success", "confidence"})
_DEFAULT_TASK_TYPE = AGENT["task_type"].default  # also when an extractor finds nothing
_VERSION_OPTIONS = ("version", "prompt_name", "prompt_version")

#: Options read off the result when not given explicitly, and the fields each one is read from.
_RESULT_READS = (("success", ("success",)), ("confidence", ("confidence",)), ("patterns", PATTERN_FIELDS),
                 ("provider_used", ("provider_used", "provider")), *((kind, (kind,)) for kind in WORK_FIELDS))


class AgentHandler(KindHandler):
    stage = "agent"
    RESULT_OPTIONS = ("success", "confidence", "patterns", "provider_used", *WORK_FIELDS)

    def __init__(self, func: Callable[..., Any] | None, options: dict[str, Any],
                 attributes: Attributes | None = None) -> None:
        super().__init__(func, options, attributes)
        self.work = dict(options.get("work") or {})
        self.reads_call = self.reads_call or bool(self.work)  # its entries are extractors
        self.work_kinds = tuple(dict.fromkeys((*WORK_FIELDS, *self.work)))
        self.sample_resources = bool(options.get("sample_resources"))
        self.follows_pattern = options.get("pattern") is not None
        self.versioned = any(key in options for key in _VERSION_OPTIONS)
        # Options given explicitly (a literal, an extractor, or a `work=` entry) are never read off the
        # result; the others are, from their fields: `_reads_by_field` finds them from a dict's keys.
        self.explicit = {key for key in (*self.RESULT_OPTIONS, *self.work)
                         if options.get(key) is not None or key in self.work}
        self.reads_result(tuple((key, fields) for key, fields in _RESULT_READS if key not in self.explicit))

    def run_extractor(self, extractor: Any, call: Call | None, key: str) -> Any:
        try:
            return extractor(call) if callable(extractor) else extractor
        except Exception as exc:
            extraction_failed(f"agent.extract.{key}", exc, call)
            return None

    def result_value(self, key: str, call: Call | None, found: dict[str, Any]) -> Any:
        """An explicit option (literal or extractor) if given, else what :meth:`read_result` found."""
        if key not in self.explicit:
            return found.get(key)
        if self.options.get(key) is not None:
            return self.option(key, call)
        return self.run_extractor(self.work[key], call, key)

    def _describe(self, call: Call | None) -> tuple[str, str, str, dict[str, Any]]:
        bound = policy().bounded
        name = bound(semconv.GEN_AI_AGENT_NAME, self.required_name("name", call))
        task_type = bound(semconv.AGENT_TASK_TYPE, text_value(self.option("task_type", call), semconv.AGENT_TASK_TYPE)
                          or _DEFAULT_TASK_TYPE)
        return name, task_type, semconv.agent_span_name(name), self.span_attributes({
            semconv.GEN_AI_OPERATION_NAME: semconv.OPERATION_INVOKE_AGENT,
            semconv.GEN_AI_AGENT_NAME: name,
            semconv.AGENT_TASK_TYPE: task_type,
        })

    def version_attributes(self, call: Call | None, attributes: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
        """The call's bounded ``gen_ai.agent.version`` (None: not given or found), and its start attributes
        with the version and the prompt's name and version (a copy: ``attributes`` may be shared)."""
        found = {key: text for key, text in ((key, text_value(self.option(option, call), key)) for key, option in (
            (semconv.GEN_AI_AGENT_VERSION, "version"), (semconv.GEN_AI_PROMPT_NAME, "prompt_name"),
            (semconv.PROMPT_VERSION, "prompt_version"))) if text is not None}
        if not found:
            return None, attributes
        version = found.get(semconv.GEN_AI_AGENT_VERSION)  # the span keeps it as given; the metric, bounded
        bounded = policy().bounded_recent(semconv.GEN_AI_AGENT_VERSION, version) if version is not None else None
        return bounded, {**attributes, **policy().scrub({key: span_value(value, key) for key, value in found.items()})}

    def begin(self, wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
              parent: Context) -> Invocation:
        call = self.new_call(instance, args, kwargs) if self.reads_call else None
        cached = self._static  # static()'s value without its call, when kept for the current policy
        described = cached[1] if cached is not None and cached[0] is _policies._policy else self.static(
            ("name", "task_type"), self._describe, call)
        name, task_type, span_name, attributes = described
        version = None
        if self.versioned:
            version, attributes = self.version_attributes(call, attributes)
        counts = CallCounts()
        if STARTED_IN:  # under another library's span: the calls of ours running where it started (see running)
            parent = running_context(parent)
        entries: dict[str, object] = {AGENT_KEY: name, CALLS_KEY: counts, TOOL_KEY: None}  # see tool.TOOL_KEY
        if version is not None or parent.get(AGENT_VERSION_KEY) is not None:  # an outer one's is not ours
            entries[AGENT_VERSION_KEY] = version
        if "conversation" in self.options:  # the call runs in this conversation (None: the enclosing one)
            parent = context_with_conversation(self.option("conversation", call), parent) or parent
        span, ctx = self.open(span_name, attributes, parent, entries)
        inv = AgentInvocation(span, ctx, "agent")
        track(inv)  # ended by a SIGTERM that finds it running
        inv.sampler = ResourceSampler() if self.sample_resources else None
        inv.handler, inv.call, inv.name, inv.task_type, inv.version, inv.counts = (
            self, call, name, task_type, version, counts)
        return inv


def agent(name: Text, *, task_type: Text = "default", version: Version | None = None,
          prompt_name: Text | None = None, prompt_version: Version | None = None,
          conversation: ConversationId | None = None, pattern: Text | None = None,
          success: Flag | None = None, confidence: Number | None = None,
          patterns: Names | None = None, provider_used: Text | None = None, fixes_applied: Count | None = None,
          files_modified: Count | None = None, remaining_issues: Count | None = None,
          tests_added: Count | None = None, issues_found: Count | None = None, files_created: Count | None = None,
          work: Mapping[str, Count] | None = None, result_attributes: Mapping[str, Extractor] | None = None,
          error_message: Text | None = None, sample_resources: bool = False, attributes: Attributes | None = None,
          **unknown: Never) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate an agent entry point. Every keyword is a literal or an extractor.

    By default the result is read for ``success``, ``confidence``, ``fixes_applied``,
    ``files_modified``, ``remaining_issues``, ``patterns_used`` and ``provider_used``.
    ``work={"kind": extractor}`` adds work-item kinds. ``success`` is read by Python truthiness (a
    ``path(..., equals=...)`` maps a state to it); ``error_message`` is kept when the outcome is a failure.
    ``sample_resources=True`` puts the
    process's peak RSS and CPU time during the call on the span, as evolution runs do.
    ``conversation`` runs each call in that conversation, as :class:`agent_otel.conversation` does.
    ``pattern`` names the workflow pattern each call follows (``agent_otel.workflow.pattern.duration`` by outcome).
    ``version`` (e.g. ``path("self.version")``) is the agent's ``gen_ai.agent.version``, on the span and
    its duration metric, so rules can compare versions; ``prompt_name``/``prompt_version`` go on the span.
    """
    if unknown:
        raise ConfigurationError(f"agent(): unknown keyword {next(iter(unknown))!r}")
    if conversation is not None:
        check_conversation_id(conversation, "agent()")
    return decorator(AgentHandler, collect("agent", locals()), attributes)


def agent_call(name: str, *, task_type: str | None = None, version: str | int | None = None,
               prompt_name: str | None = None, prompt_version: str | int | None = None,
               attributes: Attributes | None = None) -> ManualCall:
    """An explicit agent span around a block; report with ``call.set_outcome(success=..., ...)``."""
    options = collect("agent", {"name": manual_name("agent", "name", name), "task_type": task_type,
                                "version": version, "prompt_name": prompt_name, "prompt_version": prompt_version},
                      check=False)  # the program's values at run time: never raised into the block (collect)
    return ManualCall(AgentHandler(None, options, attributes))
