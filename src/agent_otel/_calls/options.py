"""Every option of every kind, declared once.

A kind's options are a table of :class:`Option`. The decorators (their keywords are checked against
these tables by a test), the config schema (:mod:`agent_otel._zerocode.config`), the defaults of
configured targets (:mod:`agent_otel._zerocode.patching`) and the README's option tables
(``python -m agent_otel._calls.readme_tables README.md`` rewrites them) all come from here, so adding an
option means adding one line here, plus the code that records it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal

from opentelemetry.util.types import AttributeValue

from agent_otel import semconv
from agent_otel._calls.extractors import Extractor
from agent_otel.errors import ConfigurationError

When = Literal["start", "end"]

# What the decorators' keywords take: a literal of the option's kind, or an extractor.
Text = str | Extractor
Flag = bool | Extractor
Number = float | Extractor
Count = int | Collection[Any] | Extractor  # a collection counts its length
Names = str | Iterable[str] | Extractor
Kpis = Mapping[str, float] | Extractor
Attributes = Mapping[str, AttributeValue]  # static span attributes


class Accepts(Enum):
    """What literal an option takes (the value is how error messages and the README name it)."""

    STRING = "a string"
    BOOLEAN = "a boolean"
    NUMBER = "a number"
    STRING_OR_INT = "a string or an integer"
    COUNT = "a non-negative integer"
    NAMES = "an array of strings"
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
    Accepts.STRING_OR_INT: (str, int),
}


@dataclass(frozen=True)
class Option:
    """One option of one kind.

    ``extractor``: whether it may be an extractor instead of a literal. ``when``: whether it is read
    when the call starts (then a path may not read the result or error) or when it ends (None: not
    read per call). ``default``: its value when not given (documented; used by the decorators and by
    configured targets). ``required``: the decorator and the config need it; ``config_default``
    makes it optional in config, where the target supplies it: ``"owner"`` the name of the method's
    class (or of the function), ``"function"`` the name of the function or method. ``keyword``: the
    decorator's name for it when not ``name``; ``decorator=False``: a config-only key. ``hint``:
    how the error for a missing required option says to write it.
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

    @property
    def parameter(self) -> str:
        """The decorator keyword."""
        return self.keyword or self.name

    @property
    def required_in_config(self) -> bool:
        return self.required and not self.config_default


def _result(name: str, accepts: Accepts, doc: str) -> Option:
    """An option read when the call ends (typically off its result)."""
    return Option(name, accepts, when="end", doc=doc)


_TARGET = Option("target", Accepts.STRING, extractor=False, when=None, required=True, decorator=False,
                 doc='what to wrap, `"package.module:Qualified.name"`: a function, or a method, classmethod or '
                     "staticmethod")
_SUBCLASSES = Option("subclasses", Accepts.BOOLEAN, extractor=False, when=None, default=False, decorator=False,
                     doc="also wrap the method's overrides in every subclass, also ones defined later")
_ATTRIBUTES = Option("attributes", Accepts.ATTRIBUTES, extractor=False, doc="static span attributes")

#: Result fields an agent counts as work items when present (each is also an option).
WORK_FIELDS = ("fixes_applied", "files_modified", "remaining_issues", "tests_added", "issues_found")


def _table(*options: Option) -> dict[str, Option]:
    return {option.name: option for option in options}


AGENT = _table(
    _TARGET, _SUBCLASSES, _ATTRIBUTES,
    Option("name", Accepts.STRING, required=True, config_default="owner",
           doc="`gen_ai.agent.name`"),
    Option("task_type", Accepts.STRING, default="default", doc="`agent.task.type`"),
    _result("success", Accepts.BOOLEAN, "false makes the outcome `failure`; read off the result by default"),
    _result("confidence", Accepts.NUMBER, "in [0, 1]; read off the result by default"),
    _result("patterns", Accepts.NAMES, "patterns used; read off `patterns_used`/`patterns` by default"),
    _result("provider_used", Accepts.STRING, "read off `provider_used`/`provider` by default"),
    *(_result(kind, Accepts.COUNT, "work items of this kind (a list counts its length); read off the result "
              "by default") for kind in WORK_FIELDS),
    Option("work", Accepts.COUNTS, extractor=False, when="end",
           doc="more work-item kinds: `{kind = count or extractor}`"),
    Option("result_attributes", Accepts.EXTRACTORS, extractor=False, when="end",
           doc="span attributes read when the call ends: `{span.key = extractor}`"),
    Option("sample_resources", Accepts.BOOLEAN, extractor=False, default=False,
           doc="peak RSS and CPU time of the process during the call, on the span"),
)

PROVIDER = _table(
    _TARGET, _SUBCLASSES, _ATTRIBUTES,
    Option("provider", Accepts.STRING, required=True, hint="e.g. provider='openai'",
           doc="`gen_ai.provider.name`"),
    Option("model", Accepts.STRING, doc="`gen_ai.request.model` (`unknown` when not given)"),
    Option("operation", Accepts.STRING, default=semconv.OPERATION_CHAT, doc="`gen_ai.operation.name`"),
    _result("response_model", Accepts.STRING, "read off the result's `model` by default"),
    *(_result(f"{side}_tokens", Accepts.COUNT, "read off the result's usage by default")
      for side in ("input", "output")),
    _result("cost", Accepts.NUMBER, "USD; from the price table by default"),
    _result("retries", Accepts.COUNT, "retries this call made"),
    Option("stream", Accepts.BOOLEAN, extractor=False, when="end",
           doc="time the returned object as a stream (default: when it is an iterator)"),
    Option("prompt", Accepts.STRING, doc="`gen_ai.input.messages`, only when content capture is on"),
    _result("response", Accepts.STRING, "`gen_ai.output.messages`, only when content capture is on"),
)

TOOL = _table(
    _TARGET, _SUBCLASSES, _ATTRIBUTES,
    Option("name", Accepts.STRING, required=True, config_default="function", doc="`gen_ai.tool.name`"),
    Option("agent", Accepts.STRING, doc="`gen_ai.agent.name` (default: the agent the call runs under)"),
    Option("type", Accepts.STRING, doc="`gen_ai.tool.type`"),
)

EVOLUTION = _table(
    _TARGET, _SUBCLASSES, _ATTRIBUTES,
    Option("agent", Accepts.STRING, required=True, doc="`gen_ai.agent.name`"),
    Option("type", Accepts.STRING, default="default", doc="`evolution.type`"),
    Option("strategy", Accepts.STRING, doc="`evolution.strategy`"),
    _result("kpis_before", Accepts.KPIS, "read off `kpis_before`/`pre_kpis`/`before` by default"),
    _result("kpis_after", Accepts.KPIS, "read off `kpis_after`/`post_kpis`/`after` by default"),
    _result("rollback", Accepts.BOOLEAN, "read off `rolled_back`/`rollback` by default"),
    _result("success", Accepts.BOOLEAN, "false makes the status `failed`; read off the result by default"),
    _result("iterations", Accepts.COUNT, "read off `iterations`/`convergence_iterations` by default"),
    Option("kpi", Accepts.STRING, extractor=False, when="end",
           doc="the KPI whose delta is the improvement (default: the mean delta)"),
    Option("sample_resources", Accepts.BOOLEAN, extractor=False, default=True,
           doc="peak RSS and CPU time of the process during the run (config: `[instrumentation]` "
               "`evolution_resources`)"),
)

JOB = _table(
    _TARGET, _SUBCLASSES,
    Option("attributes", Accepts.ATTRIBUTES, extractor=False, keyword="**attributes",
           doc="static span attributes (`job()` takes them as keywords)"),
    Option("id", Accepts.STRING_OR_INT, keyword="job_id", doc="`job.id` (default: a fresh id)"),
    Option("type", Accepts.STRING, default="default", doc="`job.type`"),
)

#: A function the program calls when it falls back from one provider to another (config only;
#: in code, call ``record_fallback()``).
FALLBACK = _table(
    _TARGET, _SUBCLASSES,
    Option("attributes", Accepts.ATTRIBUTES, extractor=False, decorator=False, doc="accepted, not recorded"),
    Option("from", Accepts.STRING, required=True, decorator=False, doc="the provider that failed"),
    Option("to", Accepts.STRING, required=True, decorator=False, doc="the provider used instead"),
    Option("reason", Accepts.STRING, default="error", decorator=False, doc="`gen_ai.fallback.reason`"),
)

#: The keys every config entry takes.
CONFIG_KEYS = _table(_TARGET, _SUBCLASSES, _ATTRIBUTES)

#: Every kind's table, in the order config sections are read.
KINDS: dict[str, dict[str, Option]] = {"job": JOB, "agent": AGENT, "provider": PROVIDER, "tool": TOOL,
                                       "evolution": EVOLUTION, "fallback": FALLBACK}


def collect(kind: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """A kind handler's options from a decorator's keywords (``values``, e.g. its ``locals()``):
    by option name, those not given (None) left out. ``attributes`` goes to the handler apart."""
    options = {}
    for option in KINDS[kind].values():
        if option.decorator and option.name != "attributes":
            value = values.get(option.parameter)
            if value is not None:
                options[option.name] = value
    return options


def check_required(kind: str, options: Mapping[str, Any]) -> None:
    """Raise naming the first required option of ``kind`` that ``options`` lacks (or has empty)."""
    for option in KINDS[kind].values():
        if option.required and option.decorator and not options.get(option.name):
            raise ConfigurationError(f"{kind}(): {option.name} is required ({option.hint})")


def defaults(kind: str) -> dict[str, Any]:
    """The options a configured target of ``kind`` gets when it leaves them out (those with a
    literal default; ``config_default`` ones are computed from the target)."""
    return {option.name: option.default for option in KINDS[kind].values()
            if option.default is not None and option.when is not None}
