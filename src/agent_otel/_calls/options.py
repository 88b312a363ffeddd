"""Every option of every kind, declared once.

A kind's options are a table of :class:`Option`. The decorators (their keywords are checked against
these tables by a test), the config schema (:mod:`agent_otel._zerocode.config`), the defaults of
configured targets (:mod:`agent_otel._zerocode.patching`) and the README's option tables
(``python -m agent_otel._calls.readme_tables README.md`` rewrites them) all come from here, so adding an
option means adding one line here, plus the code that records it.
"""

from __future__ import annotations

import math
import numbers
import sys
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal, cast

from opentelemetry.util.types import AttributeValue

from agent_otel import semconv
from agent_otel._calls.extractors import Extractor, Path, When, is_extractor
from agent_otel.errors import ConfigurationError

# What the decorators' keywords take: a literal of the option's kind, or an extractor.
Text = str | Extractor
Flag = bool | Extractor
Number = float | Extractor
Count = int | Collection[Any] | Extractor  # a collection counts its length (the options marked ``sized``)
Amount = int | Extractor  # a count no collection stands for: a token count
Names = str | Iterable[str] | Extractor
Kpis = Mapping[str, float] | Extractor
Version = str | int | Extractor
Attributes = Mapping[str, AttributeValue]  # static span attributes


class Accepts(Enum):
    """What literal an option takes (the value is how error messages and the README name it)."""

    STRING = "a string"
    BOOLEAN = "a boolean"
    NUMBER = "a number"
    STRING_OR_INT = "a string or an integer"
    COUNT = "a non-negative integer"
    NAMES = "an array of strings"
    TARGETS = "a string or an array of strings"
    KPIS = "a table of KPI numbers"
    ATTRIBUTES = "a table of static attributes"
    COUNTS = "a table of counts"
    EXTRACTORS = "a table of extractors"

    @property
    def types(self) -> tuple[type, ...]:
        """The Python types of a plain literal of this kind."""
        return _LITERAL_TYPES.get(self, ())


_LITERAL_TYPES: dict[Accepts, tuple[type, ...]] = {
    Accepts.STRING: (str,), Accepts.BOOLEAN: (bool,), Accepts.NUMBER: (int, float),
    Accepts.STRING_OR_INT: (str, int), Accepts.TARGETS: (str, list),
}


@dataclass(frozen=True)
class Option:
    """One option of one kind.

    ``extractor``: whether it may be an extractor instead of a literal. ``when``: whether a path rooted
    at ``args``/``self`` is read when the call starts or when it ends (None: not read per call); a
    path may say otherwise with ``at``. ``recorded``: the kind uses the value when the call ends (so it
    may come from the result, be read at either time, or be a ``delta``); by default, the options read
    when it ends. ``late_attribute``: for an option used when the call starts, the span attribute
    that ``at = "end"`` sets instead when the call ends (only options that name no span and label no
    metric have one). ``default``: its value when not given (documented; used by the decorators and by
    configured targets). ``required``: the decorator and the config need it; ``config_default``
    makes it optional in config, where the target supplies it: ``"owner"`` the name of the method's
    class (or of the function), ``"function"`` the name of the function or method. ``keyword``: the
    decorator's name for it when not ``name``; ``decorator=False``: a config-only key. ``hint``:
    how the error for a missing required option says to write it. ``bounds``: the range of a number
    (None above: no upper bound), as the kind reads it; a literal outside it is an error. ``sized``: a count
    that a collection gives as its length (the files a call modified); any other count takes numbers only (a
    path to a token count aimed at its usage dict recorded that dict's length as the tokens).
    """

    name: str
    accepts: Accepts
    extractor: bool = True
    when: When | None = "start"
    default: Any = None
    required: bool = False
    doc: str = ""
    config_default: Literal["", "owner", "function"] = ""
    keyword: str = ""
    decorator: bool = True
    hint: str = "a literal or an extractor"
    recorded: bool | None = None
    late_attribute: str = ""
    bounds: tuple[float, float | None] | None = None
    sized: bool = False

    @property
    def used_at_end(self) -> bool:
        """The kind reads it when the call ends."""
        return self.recorded if self.recorded is not None else self.when == "end"

    @property
    def parameter(self) -> str:
        """The decorator keyword."""
        return self.keyword or self.name

    @property
    def required_in_config(self) -> bool:
        return self.required and not self.config_default


def _result(name: str, accepts: Accepts, doc: str, bounds: tuple[float, float | None] | None = None,
            sized: bool = False) -> Option:
    """An option read when the call ends (typically off its result)."""
    return Option(name, accepts, when="end", doc=doc, bounds=bounds, sized=sized)


#: What a path may do beyond reading a value, by what the option takes.
_DELTA_ACCEPTS = (Accepts.COUNT, Accepts.NUMBER)
_COMPARISON_ACCEPTS = (Accepts.BOOLEAN,)


ReadAt = Literal["start", "end", "start and end"]


def read_at(option: Option, extractor: Path) -> ReadAt:
    """When ``extractor`` is read as the value of ``option``: a ``delta`` at both ends, a result or
    error path when the call ends, else its ``at``, else the option's default time."""
    if extractor.delta:
        return "start and end"
    if extractor.needs_result:
        return "end"
    return extractor.at or option.when or "end"


def extractor_problem(option: Option, extractor: Path) -> str | None:
    """Why ``extractor`` cannot be the value of ``option`` (None: it can), phrased to follow
    "extractor path 'x.y'". The decorators and the config check the same rules, so ``at``, ``delta``
    and comparisons mean the same in both."""
    if not option.used_at_end:
        if extractor.needs_result:
            return (f"reads the {extractor.root} but this key is read when the call starts; "
                    "use a path rooted at args or self")
        if extractor.at == "end" and not option.late_attribute:
            return ('has at = "end" but this key is used when the call starts (it names the span or labels '
                    "its metrics)")
        if extractor.delta:
            return "has delta = true but this key is read once, when the call starts"
    if extractor.delta and option.accepts not in _DELTA_ACCEPTS:
        return f"has delta = true but this key takes {option.accepts.value}, not a number"
    if extractor.comparison is not None and option.accepts not in _COMPARISON_ACCEPTS:
        return f"has {extractor.comparison} (a yes/no test) but this key takes {option.accepts.value}"
    return None


_TARGET = Option("target", Accepts.TARGETS, extractor=False, when=None, required=True, decorator=False,
                 doc='what to wrap, `"package.module:Qualified.name"`: a function, or a method, classmethod or '
                     'staticmethod; `"__main__:name"` (or the script\'s own module name) for the program '
                     "`agent-otel run` starts; an array wraps each target with the same options")
_SUBCLASSES = Option("subclasses", Accepts.BOOLEAN, extractor=False, when=None, default=False, decorator=False,
                     doc="also wrap the method's overrides in every subclass, also ones defined later "
                         "(overrides in their `class` statement)")
_ATTRIBUTES = Option("attributes", Accepts.ATTRIBUTES, extractor=False, doc="static span attributes")
_INSTANCE_ATTRIBUTE = Option(
    "instance_attribute", Accepts.BOOLEAN, extractor=False, when=None, default=False, decorator=False,
    doc='the target `"package.module:Class.attribute"` names a callable each instance holds (e.g. a field): it '
        "is wrapped on each instance of the class or a subclass when its `__init__` returns; `self` paths read "
        "that instance")
_RESULT_ATTRIBUTES = Option("result_attributes", Accepts.EXTRACTORS, extractor=False, when="end",
                            doc="span attributes read when the call ends: `{span.key = extractor}`")
_ERROR_MESSAGE = _result("error_message", Accepts.STRING,
                         "kept on the span as `error.message` when the outcome is not a success (its status stays "
                         "unset); read off the result's `error_message`/`error` by default")
_CONVERSATION = Option("conversation", Accepts.STRING_OR_INT,
                       doc="`gen_ai.conversation.id`: the call runs in this conversation, as in "
                           "`agent_otel.conversation()` (stamped on every span inside, carried like the job id)")
_WHEN = Option("when", Accepts.BOOLEAN, when="end", decorator=False,
               doc="record only when this is true (a path, e.g. `{ path = \"result.fallback_used\", equals = true }`)")

#: Result fields an agent counts as work items when present (each is also an option).
WORK_FIELDS = ("fixes_applied", "files_modified", "remaining_issues", "tests_added", "issues_found", "files_created")
#: The workflow pattern a job or an agent follows (issue 19); ``recorded``: it labels a metric recorded when
#: the call ends, so it may be read off the result too.
_PATTERN = Option("pattern", Accepts.STRING, recorded=True,
                  doc="`agent_otel.workflow.pattern`: the workflow pattern this call follows; records "
                      "`agent_otel.workflow.pattern.duration` by pattern and outcome (`patterns` are the ones an "
                      "agent's result says it applied)")


def _table(*options: Option) -> dict[str, Option]:
    return {option.name: option for option in options}


AGENT = _table(
    _TARGET, _SUBCLASSES, _INSTANCE_ATTRIBUTE, _ATTRIBUTES,
    Option("name", Accepts.STRING, required=True, config_default="owner",
           doc="`gen_ai.agent.name`"),
    Option("task_type", Accepts.STRING, default="default", doc="`agent.task.type`"),
    Option("version", Accepts.STRING_OR_INT,
           doc="`gen_ai.agent.version` (e.g. `path(\"self.version\")`): on the span, and a label of the agent's "
               "duration and outcome metric under the cardinality cap, where versions unused for an hour age out"),
    Option("prompt_name", Accepts.STRING, doc="`gen_ai.prompt.name`, on the span only"),
    Option("prompt_version", Accepts.STRING_OR_INT, doc="`agent_otel.prompt.version`, on the span only"),
    _CONVERSATION, _PATTERN,
    _result("success", Accepts.BOOLEAN, "false (by Python truthiness: `None`, `[]`, `0`, `\"\"` too, when given) makes "
            "the outcome `failure`; read off the result by default (where a missing or None field says nothing)"),
    _result("confidence", Accepts.NUMBER, "in [0, 1]; read off the result by default", bounds=(0.0, 1.0)),
    _result("patterns", Accepts.NAMES, "patterns used; read off `patterns_used`/`patterns` by default"),
    _result("provider_used", Accepts.STRING, "read off `provider_used`/`provider` by default"),
    *(_result(kind, Accepts.COUNT, "work items of this kind (a list counts its length); read off the result "
              "by default", sized=True) for kind in WORK_FIELDS),
    Option("work", Accepts.COUNTS, extractor=False, when="end",
           doc="more work-item kinds: `{kind = count or extractor}`"),
    _RESULT_ATTRIBUTES, _ERROR_MESSAGE,
    Option("sample_resources", Accepts.BOOLEAN, extractor=False, default=False,
           doc="peak RSS and CPU time of the process during the call, on the span"),
)

PROVIDER = _table(
    _TARGET, _SUBCLASSES, _INSTANCE_ATTRIBUTE, _ATTRIBUTES,
    Option("provider", Accepts.STRING, required=True, hint="e.g. provider='openai'",
           doc="`gen_ai.provider.name`"),
    Option("model", Accepts.STRING, doc="`gen_ai.request.model` (`unknown` when not given)"),
    Option("operation", Accepts.STRING, default=semconv.OPERATION_CHAT, doc="`gen_ai.operation.name`"),
    _result("response_model", Accepts.STRING, "read off the result's `model` by default"),
    *(_result(f"{side}_tokens", Accepts.COUNT, "read off the result's usage by default; a list or table is no "
              "token count (it is dropped, counted)")
      for side in ("input", "output")),
    _result("cost", Accepts.NUMBER, "USD; from the price table by default, and when its extractor finds none",
            bounds=(0.0, None)),
    _result("retries", Accepts.COUNT, "retries this call made (a list of attempts counts its length)", sized=True),
    _result("success", Accepts.BOOLEAN, "false (e.g. a provider selection or health check that returns False or "
            "None) records the call as `error.type=unavailable`"),
    Option("stream", Accepts.BOOLEAN, extractor=False, when="end",
           doc="time the returned object as a stream (default: when it is an iterator, an SDK's `*StreamManager` or "
               "`*ResponseContextManager`, or botocore's `EventStream`, `converse_stream(...)[\"stream\"]`, which is "
               "timed as it is iterated; `true`: also any other context manager); `false` leaves it as it is, a "
               "generator too (a generator function's own run is always its call). A value returned whole (a dict, a "
               "string, a list, a number, None...) is never a stream: a function that returns boto3's whole "
               "`converse_stream(...)` dict returns before its stream is read, with no usage"),
    Option("prompt", Accepts.STRING, doc="`gen_ai.input.messages`, only when content capture is on"),
    _result("response", Accepts.STRING, "`gen_ai.output.messages`, only when content capture is on"),
    _RESULT_ATTRIBUTES,
)

TOOL = _table(
    _TARGET, _SUBCLASSES, _INSTANCE_ATTRIBUTE, _ATTRIBUTES,
    Option("name", Accepts.STRING, required=True, config_default="function", doc="`gen_ai.tool.name`"),
    Option("agent", Accepts.STRING, doc="`gen_ai.agent.name` (default: the agent the call runs under)"),
    Option("type", Accepts.STRING, doc="`gen_ai.tool.type`"),
    Option("step", Accepts.STRING_OR_INT,
           doc="`agent_otel.workflow.step`, on the span only (never a metric attribute); default in a phase: the "
               "call's number among the tool calls of the phase, from 1"),
    _result("files_created", Accepts.COUNT, "files the call created (a list counts its length), added up on "
            "the job span (`agent_otel.job.files.created`)", sized=True),
    _result("success", Accepts.BOOLEAN, "false (by Python truthiness, `None` too) makes a call that returned a "
            "failed one: `error.type` `tool_error`, as an MCP result with `is_error` (a path, e.g. "
            "`{ path = \"result.status\", equals = \"success\" }`), in place of `is_error`; not given: only an "
            "exception or `is_error` fails"),
    _RESULT_ATTRIBUTES,
)

PHASE = _table(
    _TARGET, _SUBCLASSES, _INSTANCE_ATTRIBUTE, _ATTRIBUTES,
    Option("name", Accepts.STRING, required=True, config_default="function",
           doc="`agent_otel.workflow.phase`: on the phase span, its duration, and the tool and agent calls inside it"),
    _result("success", Accepts.BOOLEAN, "false (by Python truthiness, `None` too when given) makes the outcome "
            "`failure`; read off the result's `success` by default"),
    _RESULT_ATTRIBUTES,
)

EVOLUTION = _table(
    _TARGET, _SUBCLASSES, _INSTANCE_ATTRIBUTE, _ATTRIBUTES,
    Option("agent", Accepts.STRING, required=True, doc="`gen_ai.agent.name`"),
    Option("type", Accepts.STRING, default="default", doc="`evolution.type`"),
    Option("strategy", Accepts.STRING, late_attribute=semconv.EVOLUTION_STRATEGY,
           doc="`evolution.strategy`; `at = \"end\"` reads one chosen during the run"),
    Option("kpis_before", Accepts.KPIS, recorded=True,
           doc="a path on `args`/`self` is read when the run starts; read off the result's "
               "`kpis_before`/`pre_kpis`/`before` by default"),
    _result("kpis_after", Accepts.KPIS, "read off `kpis_after`/`post_kpis`/`after` by default"),
    _result("improvements", Accepts.KPIS, "KPI deltas as the run reports them (`{kpi = delta}`); "
            "by default the deltas are `kpis_after - kpis_before`"),
    _result("rollback", Accepts.BOOLEAN, "read off `rolled_back`/`rollback` by default; a `[[rollback]]` target "
            "called during the run also sets it"),
    _result("success", Accepts.BOOLEAN, "false (by Python truthiness, `None` too when given) makes the status "
            "`failed`; read off the result by default"),
    _result("iterations", Accepts.COUNT, "read off `iterations`/`convergence_iterations` by default (a list counts "
            "its length)", sized=True),
    Option("version_from", Accepts.STRING_OR_INT, recorded=True,
           doc="`agent_otel.evolution.version.from`, the agent version the run started from: a path on "
               "`args`/`self` is read when the run starts; read off the result's "
               "`version_from`/`from_version`/`previous_version` by default"),
    _result("version_to", Accepts.STRING_OR_INT, "`agent_otel.evolution.version.to`, the version the run produced; "
            "read off the result's `version_to`/`to_version`/`new_version` by default"),
    _result("rollback_version", Accepts.STRING_OR_INT, "`agent_otel.evolution.rollback.version`, the version a "
            "rollback returned to (default: `version_from`); read off the result's "
            "`rollback_version`/`rolled_back_to` by default; a `[[rollback]]` target's `version` also sets it"),
    _RESULT_ATTRIBUTES, _ERROR_MESSAGE,
    Option("kpi", Accepts.STRING, extractor=False, when="end",
           doc="the KPI whose delta is the improvement (default: the mean delta), and the name of the one KPI "
               "that a number read for `kpis_before`, `kpis_after` or `improvements` is (default `score`: an "
               "engine that reports one score; not one off a result's generic `before`/`after` fields)"),
    Option("evaluations", Accepts.NAMES,
           doc="evaluations whose mean score is a KPI of the same name: after, the scores recorded inside "
               "the run; before, the agent's scores since its previous run (what the run reports wins)"),
    Option("sample_resources", Accepts.BOOLEAN, extractor=False, default=True,
           doc="peak RSS and CPU time of the process during the run (config: `[instrumentation]` "
               "`evolution_resources`)"),
)

JOB = _table(
    _TARGET, _SUBCLASSES, _INSTANCE_ATTRIBUTE,
    Option("attributes", Accepts.ATTRIBUTES, extractor=False, keyword="**attributes",
           doc="static span attributes (`job()` takes them as keywords, or as the other kinds do, `attributes={...}`)"),
    Option("id", Accepts.STRING_OR_INT, keyword="job_id", doc="`job.id` (default: a fresh id)"),
    Option("type", Accepts.STRING, default="default", doc="`job.type`"),
    _CONVERSATION, _PATTERN,
    Option("result_attributes", Accepts.EXTRACTORS, extractor=False, when="end", decorator=False,
           doc="span attributes read when the job ends: `{span.key = extractor}`"),
)

_MARKER_ATTRIBUTES = Option("attributes", Accepts.ATTRIBUTES, extractor=False, decorator=False,
                            doc="accepted, not recorded")

#: A function the program calls when it falls back from one provider to another (config only;
#: in code, call ``record_fallback()``). Markers record when the call ends, so every key may read
#: the result; a fallback whose ``to`` is its ``from`` is no fallback and is not recorded.
FALLBACK = _table(
    _TARGET, _SUBCLASSES, _INSTANCE_ATTRIBUTE, _MARKER_ATTRIBUTES,
    Option("from", Accepts.STRING, required=True, decorator=False, when="end",
           doc="the provider tried first"),
    Option("to", Accepts.STRING, required=True, decorator=False, when="end",
           doc="the provider used instead (e.g. `{ path = \"result.name\" }` of a selection function)"),
    Option("reason", Accepts.STRING, default="error", decorator=False, when="end", doc="`agent_otel.fallback.reason`"),
    _WHEN,
)

#: A function that runs once per retry of a provider call (a backoff or sleep helper, a retry
#: callback); counted against the enclosing provider call (config only; in code, ``record_retry()``).
RETRY = _table(
    _TARGET, _SUBCLASSES, _INSTANCE_ATTRIBUTE, _MARKER_ATTRIBUTES,
    Option("provider", Accepts.STRING, decorator=False, when="end",
           doc="`gen_ai.provider.name` (default: the enclosing provider call's; needed outside one)"),
    Option("model", Accepts.STRING, decorator=False, when="end",
           doc="`gen_ai.request.model` (default: the enclosing provider call's)"),
    Option("reason", Accepts.STRING, default="error", decorator=False, when="end", doc="`agent_otel.retry.reason`"),
    _WHEN,
)

#: A function an evolution engine calls to roll a run back: the run it is called in is rolled back.
ROLLBACK = _table(
    _TARGET, _SUBCLASSES, _INSTANCE_ATTRIBUTE, _MARKER_ATTRIBUTES, _WHEN,
    Option("version", Accepts.STRING_OR_INT, decorator=False, when="end",
           doc="the agent version the rollback returned to (`agent_otel.evolution.rollback.version`), e.g. "
               "`{ path = \"args.version\" }`"),
)

#: The keys every config entry takes.
CONFIG_KEYS = _table(_TARGET, _SUBCLASSES, _INSTANCE_ATTRIBUTE, _ATTRIBUTES)

#: Every kind's table, in the order config sections are read.
KINDS: dict[str, dict[str, Option]] = {"job": JOB, "phase": PHASE, "agent": AGENT, "provider": PROVIDER,
                                       "tool": TOOL, "evolution": EVOLUTION, "fallback": FALLBACK, "retry": RETRY,
                                       "rollback": ROLLBACK}
#: The kinds that record no span of their own: they mark something about the call they run in.
MARKERS = ("fallback", "retry", "rollback")


#: The options whose literal is a table (a mapping in Python).
_TABLES = frozenset({Accepts.KPIS, Accepts.ATTRIBUTES, Accepts.COUNTS, Accepts.EXTRACTORS})

#: What :attr:`Source.extractor` returns for a value not written as an extractor.
NOT_EXTRACTOR: Any = object()


class BadValue(Exception):
    """Why a value cannot be an option's: ``problem``, at ``subkey`` (``.name`` of a table's item)."""

    def __init__(self, problem: str, subkey: str = "") -> None:
        super().__init__(problem)
        self.problem = problem
        self.subkey = subkey


@dataclass(frozen=True)
class Source:
    """Where option values come from (the decorators' keywords, a config file): how it writes an extractor
    and how its errors name a value. What literal an option takes is the same for every source."""

    #: The extractor ``value`` is written as, checked against the option (None: a table's item), or NOT_EXTRACTOR.
    extractor: Callable[[Any, Option | None], Any]
    #: ``value`` in an error, after "got".
    describe: Callable[[Any], str]
    #: How an extractor is named in an error: after "or" (``or_extractor``), and alone (``an_extractor``).
    or_extractor: str
    an_extractor: str
    #: What is added to the error for a literal of the wrong type (e.g. how to write an extractor instead).
    hint: Callable[[Any, Option], str] = lambda value, option: ""
    #: Whether a literal each call reads is taken though it is not of the option's type: code may give any
    #: value the calls read (``version=1.5``, ``confidence="0.5"``, a name as an Enum, ``success=1``), and
    #: refusing one would stop a program that ran; a file's TOML values have their types.
    as_calls_read: bool = False


#: The largest count one call may report: far beyond any real one (tokens, files, fixes), and small enough
#: that a counter's running sum stays within int64, which OTLP carries (a larger value would fail every
#: later metric export of the process). A count above it is dropped and counted, as an unreadable one.
MAX_COUNT = 2**32

#: What a count takes besides a non-negative integer (a collection counts its length, see coerce_count).
_COUNTED = (list, tuple, set, frozenset, dict)
_NAME_LISTS = (list, tuple, set, frozenset)


def _is_int(value: Any) -> bool:
    """An integer of any numeric type (``numpy.int64`` too), not a bool: each call reads it as coerce_count does."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    """A number of any real numeric type (``Decimal``, ``Fraction``, numpy's), not a bool: each call reads it as
    coerce_number does, so a program that gave one keeps working."""
    if isinstance(value, bool):
        return False
    if isinstance(value, numbers.Real):
        return True
    decimal = sys.modules.get("decimal")  # not imported for this: a Decimal exists once the program imported decimal
    return decimal is not None and isinstance(value, decimal.Decimal)


def _as_float(value: Any) -> float | None:
    """A number as a float; None for no number, and for one no float holds (``10**400``, ``Decimal("sNaN")``),
    which would otherwise raise from float() unnamed instead of the option's error."""
    if not _is_number(value):
        return None
    try:
        return float(value)
    except (OverflowError, ValueError):
        return None


def _number_read(value: Any) -> float | None:
    """The number each call reads ``value`` as (coerce_number: a number or a numeric string, finite, not a
    bool), None for none."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError, OverflowError, AttributeError):
        return None
    return number if math.isfinite(number) else None


def _read_by_each_call(option: Option, value: Any) -> bool:
    """Whether each call reads literal ``value`` of non-table ``option`` (the handlers' coerce_* functions), and so
    records it: a string option reads ``str(value)``, a boolean one its truth, a number or count one a number in
    its range (a count also a collection's length), a names one a string or a collection."""
    accepts = option.accepts
    if accepts is Accepts.NUMBER:
        number = _number_read(value)
        return number is not None and _in_bounds(option, number)
    if accepts is Accepts.COUNT:
        if isinstance(value, _COUNTED):
            return option.sized
        number = _number_read(value)  # a whole one: coerce_count drops 1.5 at every call
        return number is not None and number.is_integer() and 0 <= number <= MAX_COUNT
    if accepts is Accepts.NAMES:
        return isinstance(value, (str, *_NAME_LISTS))
    if accepts is Accepts.BOOLEAN:
        try:
            bool(value)
        except Exception:  # e.g. a numpy array, whose truth is ambiguous
            return False
    if accepts in (Accepts.STRING, Accepts.STRING_OR_INT):  # a name's text: never a collection's repr, which
        return not isinstance(value, _COUNTED)  # named spans "chat ['gpt-4o']" and priced nothing
    return True


def _expected(option: Option) -> str:
    """What ``option`` takes, in an error."""
    if option.bounds is None:
        return option.accepts.value
    low, high = option.bounds
    return f"{option.accepts.value} in [{low:g}, {high:g}]" if high is not None else \
        f"{option.accepts.value} >= {low:g}"


def _in_bounds(option: Option, number: float) -> bool:
    """A finite number in ``option``'s bounds: the kind drops any other at every call (coerce_number)."""
    if not math.isfinite(number):
        return option.bounds is None  # nan and inf: refused only where a range says what is read
    low, high = option.bounds or (None, None)
    return (low is None or number >= low) and (high is None or number <= high)


def _literal(option: Option, value: Any) -> tuple[bool, Any]:
    """Whether ``value`` is a literal of non-table ``option``, and the value (a number a float)."""
    accepts = option.accepts
    if accepts is Accepts.NUMBER:
        number = _as_float(value)
        ok = number is not None and _in_bounds(option, number)
        return ok, number if ok else value
    if accepts is Accepts.COUNT:  # what each call reads (coerce_count): up to MAX_COUNT, a collection if sized
        return (_is_int(value) and 0 <= value <= MAX_COUNT) or (option.sized and isinstance(value, _COUNTED)), value
    if accepts is Accepts.NAMES:  # a string is one name (see coerce_names)
        if isinstance(value, str):
            return True, value
        ok = isinstance(value, _NAME_LISTS) and all(isinstance(item, str) for item in value)
        return ok, list(value) if ok else value
    types = accepts.types
    return isinstance(value, types) and not (isinstance(value, bool) and bool not in types), value


def option_value(option: Option, value: Any, source: Source) -> Any:
    """``value`` checked as the value of ``option``: the extractor ``source`` writes it as, where the option
    takes one, else a literal of what it accepts (a number as a float, a table's items checked). The one check
    of the decorators and the config file, so that a literal one refuses the other refuses too. Raises BadValue."""
    if option.extractor:
        extractor = source.extractor(value, option)
        if extractor is not NOT_EXTRACTOR:
            return extractor
    accepts = option.accepts
    if accepts in _TABLES:
        return _table_value(option, value, source)
    ok, literal = _literal(option, value)
    if ok:
        if option.required and _blank(literal):
            hint = f" ({option.hint})" if option.extractor else ""  # a target takes no extractor: no hint of one
            raise BadValue(f"expected a name, got an empty string{hint}")  # no call could read one
        return literal
    if source.as_calls_read and _read_by_each_call(option, value):
        return value
    also = f" or {source.or_extractor}" if option.extractor else ""
    expected = _expected(option) if _is_number(value) else accepts.value  # a range, for a number outside it
    raise BadValue(f"expected {expected}{also}, got {source.describe(value)}{source.hint(value, option)}")


def _table_value(option: Option, value: Any, source: Source) -> dict[Any, Any]:
    accepts = option.accepts
    if not isinstance(value, Mapping):
        also = f" or {source.or_extractor}" if option.extractor else ""
        raise BadValue(f"expected {accepts.value}{also}, got {source.describe(value)}")
    table = {}
    for name, item in value.items():
        if not isinstance(name, str) or not name:  # an attribute or KPI name: the SDK drops an empty one, warning
            raise BadValue(f"expected names as keys, got {source.describe(name)}")
        try:
            table[name] = _table_item(accepts, name, item, source)
        except BadValue as bad:
            raise BadValue(bad.problem, f".{name}{bad.subkey}") from None
    return table


def _table_item(accepts: Accepts, name: str, item: Any, source: Source) -> Any:
    if accepts is Accepts.COUNTS:
        return option_value(Option(name, Accepts.COUNT, when="end", sized=True), item, source)
    if accepts is Accepts.EXTRACTORS:
        extractor = source.extractor(item, None)
        if extractor is not NOT_EXTRACTOR:
            return extractor
        if source.as_calls_read:
            return item  # a constant: each call sets it as it is
        raise BadValue(f"expected {source.an_extractor}, got {source.describe(item)}")
    if accepts is Accepts.KPIS:
        if source.as_calls_read and (item is None or _number_read(item) is not None):
            return item  # each call reads it as a number (None: no such KPI)
        number = _as_float(item)
        if number is None:
            raise BadValue(f"expected a number, got {source.describe(item)}")
        return number
    if isinstance(item, Mapping):  # Accepts.ATTRIBUTES
        raise BadValue("static attributes are literals (a string, number or boolean); "
                       "extractors belong in result_attributes")
    if not isinstance(item, str | int | float | bool):
        raise BadValue(f"expected a string, number or boolean, got {source.describe(item)}")
    return item


def _python_value(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:  # e.g. an int past sys.get_int_max_str_digits(): the error still names the keyword
        text = object.__repr__(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


#: A decorator's keywords: an extractor is a path() or a callable.
DECORATOR = Source(extractor=lambda value, option: value if is_extractor(value) else NOT_EXTRACTOR,
                   describe=_python_value, or_extractor="an extractor", an_extractor="an extractor",
                   as_calls_read=True)


def check_options(kind: str, options: Mapping[str, Any]) -> None:
    """Raise naming the decorator, the keyword and the problem for the first of ``options`` (by option name, None:
    not given) that is no value of its option, as the config file does for the same key."""
    table = KINDS[kind]
    for name, value in options.items():
        option = table[name]
        if value is None or (type(value) in option.accepts.types and option.bounds is None):  # job("j", type="x")
            continue
        try:
            option_value(option, value, DECORATOR)
        except BadValue as bad:
            raise ConfigurationError(f"{kind}(): {option.parameter}{bad.subkey}: {bad.problem}") from None


def check_attributes(kind: str, attributes: Mapping[str, Any]) -> None:
    """Refuse, naming the keyword, a static attribute of a decorator or manual call that is none of what the
    config file takes (a string, number or boolean) nor a list of one of those types, as OpenTelemetry takes:
    the SDK would drop it at every call, warning on the program's stderr."""
    singles = {key: value for key, value in attributes.items() if not _attribute_list(value)}
    if singles:
        check_options(kind, {"attributes": singles})


def _attribute_list(value: object) -> bool:
    """A list or tuple of items of one type of str, bool, int and float (an empty one too)."""
    if type(value) not in (list, tuple):
        return False
    types = {type(item) for item in cast("list[Any]", value)}
    return len(types) <= 1 and types <= {str, bool, int, float}


def collect(kind: str, values: Mapping[str, Any], *, check: bool = True) -> dict[str, Any]:
    """A kind handler's options from a decorator's keywords (``values``, e.g. its ``locals()``):
    by option name, those not given (None) left out. ``attributes`` goes to the handler apart. A literal
    the config file refuses for the same key (``files_created=-1``, ``work=["tests"]``) is refused here,
    naming it (see :func:`option_value`). ``check=False``: a manual call's (``agent_call(...)``...), whose
    values are the program's at run time, read by each call as they always were: never raised into its code."""
    options = {}
    for option in KINDS[kind].values():
        if option.decorator and option.name != "attributes":
            value = values.get(option.parameter)
            if value is not None:
                options[option.name] = value
    if check:
        check_options(kind, options)
    return options


def _blank(value: object) -> bool:
    """A name no call could read (``""``, ``"  "``)."""
    return isinstance(value, str) and not value.strip()


def check_required(kind: str, options: Mapping[str, Any]) -> None:
    """Raise naming the first required option of ``kind`` that ``options`` lacks (or has empty)."""
    for option in KINDS[kind].values():
        if option.required and option.decorator and (not options.get(option.name) or _blank(options[option.name])):
            raise ConfigurationError(f"{kind}(): {option.name} is required ({option.hint})")


def defaults(kind: str) -> dict[str, Any]:
    """The options a configured target of ``kind`` gets when it leaves them out (those with a
    literal default; ``config_default`` ones are computed from the target)."""
    return {option.name: option.default for option in KINDS[kind].values()
            if option.default is not None and option.when is not None}
