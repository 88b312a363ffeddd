"""The zero-code configuration: ``agent-otel.toml``, ``[tool.agent-otel]`` in ``pyproject.toml``, or
the file named by ``AGENT_OTEL_CONFIG``.

The file is data. It is parsed with :mod:`tomllib`, checked against the hand-written schema below,
and nothing in it is ever executed or evaluated. Every mistake raises one
:class:`~agent_otel.ConfigurationError` naming the file, the key path (``agent[2].task_type``; array
indexes count from 0) and the problem.

Literals and extractors can never be confused: a plain TOML value (``"nightly"``, ``0.9``, ``true``)
is always a literal, and an extractor is always an inline table with the single key ``path``::

    task_type = { path = "args.issue.type.value" }   # read from the call
    task_type = "bugfix"                              # this exact string

Schema (every key optional)::

    service_name = "legacy-agents"          # OTEL_SERVICE_NAME wins when set
    resource = { "deployment.environment.name" = "prod" }   # resource attributes; OTEL_RESOURCE_ATTRIBUTES wins
    attributes = { team = "core" }          # static span attributes on every configured target
    prices = { "gpt-4o" = { input = 2.5, output = 10.0 } }   # USD per 1M tokens
    [policy]        cardinality_limit = 100, hashed_keys = ["user.id"], capture_content = false
    [instrumentation]   threads, processes, http_headers, system_metrics, evolution_resources (booleans);
                    instrumentations = true | false | ["openai", ...]: which installed OpenTelemetry
                    instrumentations (opentelemetry_instrumentor entry points) agent-otel run turns on
    [[job]], [[phase]], [[agent]], [[provider]], [[tool]], [[evolution]], [[fallback]]: the keys of each kind's
                    option table in :mod:`agent_otel._calls.options` (:data:`SCHEMA` and :data:`REQUIRED`
                    are derived from them)

A target is ``"package.module:Qualified.name"``: a function, or a method, classmethod or
staticmethod of a (possibly nested) class.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent_otel._calls import options as kind_options
from agent_otel._calls.extractors import Path as ExtractorPath
from agent_otel._calls.extractors import path as parse_path
from agent_otel._calls.extractors import starts_as_path
from agent_otel._calls.options import NOT_EXTRACTOR, Accepts, BadValue, Option, Source, extractor_problem, option_value
from agent_otel._calls.pricing import PRICE_KEYS, PRICE_RANGE, Price, valid_price
from agent_otel._engine.policy import ContentCapture
from agent_otel._environment import AGENT_OTEL_CONFIG, AGENT_OTEL_CONFIG_FOUND
from agent_otel.errors import ConfigurationError

ENV_VAR = AGENT_OTEL_CONFIG
FILE_NAME = "agent-otel.toml"
PYPROJECT = "pyproject.toml"
PYPROJECT_TABLE = ("tool", "agent-otel")

KINDS = tuple(kind_options.KINDS)

def is_target(text: str) -> bool:
    """``package.module:Class.method``: dotted Python identifiers (non-ASCII ones too, as Python has them) on both
    sides of one colon."""
    module, colon, qualname = text.partition(":")
    return bool(colon) and all(part.isidentifier() for part in (*module.split("."), *qualname.split(".")))


# --------------------------------------------------------------------------------------------------
# What a loaded file becomes
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetSpec:
    """One entry of a kind section: what to wrap and the options of the matching decorator."""

    kind: str
    key: str  # "agent[0]" (with the pyproject prefix when it came from pyproject.toml)
    target: str
    module: str
    qualname: str
    subclasses: bool
    options: Mapping[str, Any]  # decorator keywords: literals, or agent_otel._calls.extractors.Path objects
    attributes: Mapping[str, Any]
    instance_attribute: bool = False  # qualname is "Class.attribute": a callable each instance holds
    entry: str = ""  # the entry's own key ("agent[0]"), which each target of its array shares


@dataclass(frozen=True)
class Switches:
    """What the launcher and the instrumentor turn on besides the configured targets."""

    threads: bool = True  # job id and parent span into threads and thread pools
    processes: bool = True  # ... into ProcessPoolExecutor, multiprocessing and subprocess children
    http_headers: bool = True  # W3C traceparent/baggage on outgoing http.client/urllib requests
    system_metrics: bool = True  # process CPU and memory (opentelemetry-instrumentation-system-metrics)
    evolution_resources: bool = True  # psutil CPU/memory sampling around each evolution run
    #: Other libraries' instrumentations agent-otel run turns on: all installed (as opentelemetry-instrument),
    #: none, or these entry-point names (agent_otel._zerocode.instrumentations)
    instrumentations: bool | tuple[str, ...] = True


@dataclass(frozen=True)
class Config:
    source: str
    targets: tuple[TargetSpec, ...] = ()
    service_name: str | None = None
    #: Resource attributes of the providers ``agent-otel run`` sets up (the environment's win): every series and span
    #: carries them, ``deployment.environment.name`` as the ``deployment_environment_name`` label.
    resource: Mapping[str, Any] = field(default_factory=dict)
    attributes: Mapping[str, Any] = field(default_factory=dict)
    prices: Mapping[str, Price] = field(default_factory=dict)
    policy: Mapping[str, Any] = field(default_factory=dict)
    switches: Switches = field(default_factory=Switches)


# --------------------------------------------------------------------------------------------------
# Value checkers: each returns the converted value or raises BadValue(problem)
# --------------------------------------------------------------------------------------------------


_TOML_TYPES = {str: "a string", bool: "a boolean", int: "an integer", float: "a float", list: "an array",
               dict: "a table"}


def _describe(value: Any) -> str:
    for kind, name in _TOML_TYPES.items():
        if type(value) is kind:
            if kind is str:
                return f"{name} {value!r}"
            if kind in (bool, int, float):
                return f"{name} ({str(value).lower() if kind is bool else value})"
            return name
    return type(value).__name__


_EXTRACTOR_KEYS = ("path", "at", "delta", "equals", "in", "not_in")


def _extractor(value: dict[str, Any], option: Option | None) -> ExtractorPath:
    """``{ path = "...", at = "start"|"end", delta = true, equals|in|not_in = ... }``, checked against
    what ``option`` allows (see :func:`agent_otel._calls.options.extractor_problem`)."""
    unknown = sorted(set(value) - set(_EXTRACTOR_KEYS))
    if unknown or "path" not in value:
        problem = f"unknown key {unknown[0]!r} in an extractor" if unknown else "a table here must be an extractor"
        raise BadValue(f'{problem}; an extractor is written {{ path = "args.x.y" }}, with optional at, delta, '
                   "equals, in or not_in")
    text = value["path"]
    if not isinstance(text, str):
        raise BadValue(f"an extractor path must be a string, got {_describe(text)}")
    at = value.get("at")
    if at not in (None, "start", "end"):
        raise BadValue(f'at must be "start" or "end", got {_describe(at)}')
    delta = value.get("delta", False)
    if not isinstance(delta, bool):
        raise BadValue(f"delta must be a boolean, got {_describe(delta)}")
    for name in ("in", "not_in"):
        if name in value and not isinstance(value[name], list):
            raise BadValue(f"{name} takes an array of values, got {_describe(value[name])}")
        for item in value.get(name, ()):
            if isinstance(item, dict | list):
                raise BadValue(f"{name} takes strings, numbers or booleans, got {_describe(item)}")
    if "equals" in value and isinstance(value["equals"], dict | list):
        raise BadValue(f"equals takes a string, number or boolean, got {_describe(value['equals'])}")
    try:
        tests = {"equals": value["equals"]} if "equals" in value else {}
        parsed = parse_path(text, at=at, delta=delta, in_=value.get("in"), not_in=value.get("not_in"), **tests)
    except ConfigurationError as exc:
        raise BadValue(str(exc)) from None
    mismatch = extractor_problem(option, parsed) if option is not None else None
    if mismatch is not None:
        raise BadValue(f"extractor path {text!r} {mismatch}")
    return parsed


def _only(literal_types: tuple[type, ...], expected: str) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if isinstance(value, literal_types) and not (isinstance(value, bool) and bool not in literal_types):
            return value
        raise BadValue(f"expected {expected}, got {_describe(value)}")

    return check


_ONLY_BOOL = _only((bool,), "a boolean")
_ONLY_STR = _only((str,), "a string")


def _written_extractor(value: Any, option: Option | None) -> Any:
    """The extractor an inline table is (a table of KPI numbers is a literal unless it has a path)."""
    if not isinstance(value, dict) or (option is not None and option.accepts is Accepts.KPIS and "path" not in value):
        return NOT_EXTRACTOR
    return _extractor(value, option)


def _string_hint(value: Any, option: Option) -> str:
    """A string given to a key that takes an extractor but no string literal, and that begins as a path does, was
    likely meant as one (``"high"`` for a number is no path)."""
    types = option.accepts.types
    if option.extractor and isinstance(value, str) and types and str not in types and starts_as_path(value):
        return f' (an extractor is written {{ path = "{value}" }})'
    return ""


#: A config file: an extractor is an inline table ``{ path = "..." }``; values are named as TOML writes them.
_FILE = Source(extractor=_written_extractor, describe=_describe, or_extractor='{ path = "..." }',
               an_extractor='an extractor { path = "..." }', hint=_string_hint)


def _checker(option: Option) -> Callable[[Any], Any]:
    """The check of one config key, from its declaration: the decorators' own (see option_value)."""
    return lambda value: option_value(option, value, _FILE)


_ATTRIBUTES = _checker(kind_options.CONFIG_KEYS["attributes"])
SCHEMA: dict[str, dict[str, Callable[[Any], Any]]] = {
    kind: {name: _checker(option) for name, option in table.items()} for kind, table in kind_options.KINDS.items()}
REQUIRED: dict[str, tuple[str, ...]] = {
    kind: tuple(name for name, option in table.items() if option.required_in_config)
    for kind, table in kind_options.KINDS.items()}
TOP_LEVEL = ("service_name", "resource", "attributes", "prices", "policy", "instrumentation", *KINDS)
POLICY_KEYS = ("cardinality_limit", "hashed_keys", "capture_content")
_ENTRY_POINT_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
#: Instrumentations configure() turns on by a switch of its own (entry-point name: switch).
_SWITCHED = {"threading": "threads", "system_metrics": "system_metrics"}


# --------------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, source: str, prefix: str) -> None:
        self.source = source
        self.prefix = prefix

    def error(self, key: str, problem: str) -> ConfigurationError:
        return ConfigurationError(f"{self.source}: {self.prefix}{key}: {problem}")

    def unknown(self, key: str, name: str, allowed: tuple[str, ...] | list[str]) -> ConfigurationError:
        import difflib  # only for a mistake: not imported by every process

        close = difflib.get_close_matches(name, allowed, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; expected one of {', '.join(allowed)}"
        return self.error(key, "unknown key" + hint)

    def check(self, key: str, value: Any, checker: Callable[[Any], Any]) -> Any:
        try:
            return checker(value)
        except BadValue as bad:
            raise self.error(key + bad.subkey, bad.problem) from None

    def parse(self, data: Mapping[str, Any]) -> Config:
        for name in data:
            if name not in TOP_LEVEL:
                raise self.unknown(name, name, TOP_LEVEL)
        service_name = data.get("service_name")
        if service_name is not None:
            self.check("service_name", service_name, _ONLY_STR)
        resource = self.check("resource", data.get("resource", {}), _ATTRIBUTES)
        attributes = self.check("attributes", data.get("attributes", {}), _ATTRIBUTES)
        prices = self.prices(data.get("prices", {}))
        policy = self.policy(data.get("policy", {}))
        switches = self.switches(data.get("instrumentation", {}))
        targets: list[TargetSpec] = []
        seen: dict[str, str] = {}
        for kind in KINDS:
            entries = data.get(kind, [])
            if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
                raise self.error(kind, f"expected an array of tables ([[{kind}]]), got {_describe(entries)}")
            for index, entry in enumerate(entries):
                for key, spec in self.targets(kind, index, entry):
                    if spec.target in seen:
                        raise self.error(key, f"{spec.target!r} is already configured at {seen[spec.target]}")
                    seen[spec.target] = spec.key
                    targets.append(spec)
        return Config(source=self.source, targets=tuple(targets), service_name=service_name, resource=resource,
                      attributes=attributes,
                      prices=prices, policy=policy, switches=switches)

    def prices(self, value: Any) -> dict[str, Price]:
        if not isinstance(value, dict):
            raise self.error("prices", f"expected a table of models, got {_describe(value)}")
        prices = {}
        for model, entry in value.items():
            key = f"prices.{_quote_key(model)}"
            if not isinstance(entry, dict):
                raise self.error(key, f"expected {{ input = <USD per 1M tokens>, output = <USD per 1M tokens> }}, "
                                 f"got {_describe(entry)}")
            for name in entry:
                if name not in PRICE_KEYS and isinstance(entry[name], dict):  # [prices.gpt-5.1]: gpt-5 -> 1 -> {...}
                    raise self.error(f"{key}.{name}", f"a table, not a price: quote a model name with a dot in it, "
                                     f'[prices."{model}.{name}"] or "{model}.{name}" = {{ ... }}')
                if name not in PRICE_KEYS:
                    raise self.unknown(f"{key}.{name}", name, list(PRICE_KEYS))
            numbers: list[float | None] = []
            for name in PRICE_KEYS:  # input and output required; cache_read, cache_write, reasoning optional
                if name not in entry:
                    if name in ("input", "output"):
                        raise self.error(f"{key}.{name}", "required key is missing")
                    numbers.append(None)
                    continue
                number = entry[name]
                if not valid_price(number):
                    raise self.error(f"{key}.{name}",
                                     f"expected {PRICE_RANGE}, got {_describe(number)}")
                numbers.append(float(number))
            prices[model] = Price(*numbers)  # type: ignore[arg-type]  # input and output are never None
        return prices

    def policy(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error("policy", f"expected a table, got {_describe(value)}")
        result: dict[str, Any] = {}
        for name, item in value.items():
            key = f"policy.{name}"
            if name == "cardinality_limit":
                if isinstance(item, bool) or not isinstance(item, int) or item < 1:
                    raise self.error(key, f"expected a positive integer, got {_describe(item)}")
            elif name == "hashed_keys":
                if not isinstance(item, list) or not all(isinstance(k, str) and k for k in item):
                    raise self.error(key, f"expected an array of attribute keys, got {_describe(item)}")
            elif name == "capture_content":  # a boolean, or where content goes (ContentCapture)
                if not isinstance(item, bool) and not (isinstance(item, str)
                                                       and item.upper() in ContentCapture.__members__):
                    raise self.error(key, f"expected true, false or one of {', '.join(ContentCapture.__members__)}, "
                                          f"got {_describe(item)}")
            else:
                raise self.unknown(key, name, POLICY_KEYS)
            result[name] = item
        return result

    def switches(self, value: Any) -> Switches:
        if not isinstance(value, dict):
            raise self.error("instrumentation", f"expected a table, got {_describe(value)}")
        allowed = tuple(Switches.__dataclass_fields__)
        for name, item in value.items():
            if name not in allowed:
                raise self.unknown(f"instrumentation.{name}", name, allowed)
            if name == "instrumentations":
                value = {**value, name: self.instrumentations(f"instrumentation.{name}", item)}
            else:
                self.check(f"instrumentation.{name}", item, _ONLY_BOOL)
        return Switches(**value)

    def instrumentations(self, key: str, value: Any) -> bool | tuple[str, ...]:
        """``true`` (all installed), ``false`` (none) or an array of entry-point names."""
        if isinstance(value, bool):
            return value
        if not isinstance(value, list):
            raise self.error(key, f"expected true, false or an array of instrumentation names, got {_describe(value)}")
        for index, name in enumerate(value):
            if not isinstance(name, str) or not _ENTRY_POINT_NAME.match(name):
                raise self.error(f"{key}[{index}]", "expected the name of an opentelemetry_instrumentor entry point "
                                 f"(e.g. \"openai\"), got {_describe(name)}")
            if name in value[:index]:
                raise self.error(f"{key}[{index}]", f"{name!r} is listed twice")
            if name == "agent_otel":
                raise self.error(f"{key}[{index}]", "'agent_otel' is agent-otel itself, always on under the "
                                 "launcher; remove it")
            if name in _SWITCHED:
                raise self.error(f"{key}[{index}]", f"{name!r} is turned on and off by [instrumentation] "
                                 f"{_SWITCHED[name]}; remove it")
        return tuple(value)

    def targets(self, kind: str, index: int, entry: dict[str, Any]) -> list[tuple[str, TargetSpec]]:
        """One spec per target of the entry, each with the key path of its target (``agent[0].target``, or
        ``agent[0].target[1]`` for an element of an array); the spec's key names the element too."""
        base = f"{kind}[{index}]"
        schema = SCHEMA[kind]
        for name in entry:
            if name not in schema:
                raise self.unknown(f"{base}.{name}", name, tuple(schema))
        for name in REQUIRED[kind]:
            if name not in entry:
                raise self.error(f"{base}.{name}", "required key is missing")
        values = {name: self.check(f"{base}.{name}", value, schema[name]) for name, value in entry.items()}
        target = values.pop("target")
        subclasses = values.pop("subclasses", False)
        instance_attribute = values.pop("instance_attribute", False)
        if instance_attribute and subclasses:
            raise self.error(f"{base}.subclasses", "does not combine with instance_attribute = true, which "
                             "already wraps the attribute on instances of every subclass; remove subclasses")
        attributes = values.pop("attributes", {})
        if isinstance(target, str):
            named = [(f"{base}.target", base, target)]
        elif not target:
            raise self.error(f"{base}.target", "expected at least one target, got an empty array")
        else:
            named = [(f"{base}.target[{i}]", f"{base}.target[{i}]", item) for i, item in enumerate(target)]
        specs = []
        for key, spec_key, item in named:
            if not isinstance(item, str):
                raise self.error(key, f"expected a string, got {_describe(item)}")
            if not is_target(item):
                raise self.error(key, f"malformed target {item!r}; expected \"package.module:function\" "
                                 "or \"package.module:Class.method\"")
            module, qualname = item.split(":")
            if module == "builtins":  # len, isinstance...: agent-otel's own code calls them, under its locks too
                raise self.error(key, f"{item!r} is a built-in function, which agent-otel, the OpenTelemetry SDK "
                                 "and every library call: its wrapper would record their calls and run inside "
                                 "itself (agent-otel's own bookkeeping calls it); wrap the program's function that "
                                 "calls it")
            if instance_attribute and "." not in qualname:
                raise self.error(f"{base}.instance_attribute" if key.endswith(".target") else key,
                                 f"{item!r} names no attribute of a class; instance_attribute = true needs "
                                 "\"package.module:Class.attribute\"")
            if subclasses and "." not in qualname:
                raise self.error(f"{base}.subclasses" if key.endswith(".target") else key,
                                 f"{item!r} is not a method; subclasses = true needs \"package.module:Class.method\"")
            specs.append((key, TargetSpec(kind=kind, key=self.prefix + spec_key, target=item, module=module,
                                          qualname=qualname, subclasses=subclasses, options=dict(values),
                                          attributes=attributes, instance_attribute=instance_attribute,
                                          entry=self.prefix + base)))
        return specs


def _quote_key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else f'"{name}"'


def parse_config(data: Mapping[str, Any], source: str = "<config>", prefix: str = "") -> Config:
    """Validate an already-parsed TOML document (``prefix`` is prepended to key paths)."""
    return _Parser(source, prefix).parse(data)


def load_file(path: str | os.PathLike[str], source: str | None = None) -> Config:
    """Load ``agent-otel.toml`` (or any TOML file of this schema), or the ``[tool.agent-otel]`` table of a
    ``pyproject.toml``."""
    file = Path(path)
    label = source or str(path)
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise ConfigurationError(f"{label}: no such file") from None
    except OSError as exc:
        raise ConfigurationError(f"{label}: cannot read ({exc.strerror or exc})") from None
    try:
        data = tomllib.loads(raw.decode("utf-8-sig"))  # a byte order mark (Windows editors write one) is no statement
    except UnicodeDecodeError as exc:
        raise ConfigurationError(f"{label}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{label}: invalid TOML: {exc}") from None
    except RecursionError:  # tomllib recurses once per level of nesting
        raise ConfigurationError(f"{label}: invalid TOML: arrays or inline tables nested too deeply") from None
    if file.name == PYPROJECT:
        tool = data.get("tool", {})
        if not isinstance(tool, dict):
            raise ConfigurationError(f"{label}: tool: expected a table, got {_describe(tool)}")
        table = tool.get("agent-otel")
        if table is None:
            raise ConfigurationError(f"{label}: no [tool.agent-otel] table")
        if not isinstance(table, dict):
            raise ConfigurationError(f"{label}: tool.agent-otel: expected a table, got {_describe(table)}")
        return parse_config(table, label, "tool.agent-otel.")
    tool = data.get("tool")
    if isinstance(tool, dict) and "agent-otel" in tool:  # a pyproject.toml's table, in a file named otherwise: its
        # keys were read as a [[tool]] kind's entries ("tool: expected an array of tables")
        raise ConfigurationError(f"{label}: tool.agent-otel: a [tool.agent-otel] table is read only from a file named "
                                 f"{PYPROJECT}; in {file.name}, write its keys at the top level (as agent-otel.toml)")
    return parse_config(data, label)


#: A ``[tool.agent-otel]`` (or ``[[tool.agent-otel.x]]``) header in a pyproject.toml, also one TOML cannot parse.
_PYPROJECT_TABLE = re.compile(r"""^\s*\[\[?\s*tool\s*\.\s*(?:agent-otel|"agent-otel"|'agent-otel')\b""", re.M)


def outer_launchers_config() -> bool:
    """Whether ``AGENT_OTEL_CONFIG`` names the file an outer ``agent-otel run`` found for the processes it starts
    (``AGENT_OTEL_CONFIG_FOUND``), not one the user named: an ``agent-otel`` command among them, in another project,
    finds that project's own (see :func:`find_command_config`)."""
    named = os.environ.get(ENV_VAR, "").strip()
    return bool(named) and os.environ.get(AGENT_OTEL_CONFIG_FOUND) == named


def find_command_config() -> Path | None:
    """The configuration of ``agent-otel run`` or ``check`` started here: :func:`find_config`'s, except that the file
    an outer launcher found comes after this folder's own (another project's ``agent-otel run``, started by a program
    under the launcher, used the outer project's targets and recorded none of its own); a folder with none of its own
    (a subfolder of the outer's project) keeps the outer's."""
    if not outer_launchers_config():
        return find_config()
    own = find_config(environ={key: value for key, value in os.environ.items() if key != ENV_VAR})
    return own if own is not None else find_config()


def find_config(directory: str | os.PathLike[str] | None = None,
                environ: Mapping[str, str] | None = None) -> Path | None:
    """Where the configuration is: ``$AGENT_OTEL_CONFIG``, else ``agent-otel.toml``, else a
    ``pyproject.toml`` with a ``[tool.agent-otel]`` table, in ``directory`` (default: the current one)."""
    env = os.environ if environ is None else environ
    named = env.get(ENV_VAR, "").strip()
    if named:
        file = Path(named)
        if not file.is_file():
            what = ("a directory, not a file" if file.is_dir() else "not a regular file" if file.exists()
                    else "no such file")
            raise ConfigurationError(f"{ENV_VAR}={named!r}: {what}")
        return file
    if directory is not None:
        folder = Path(directory)
    else:
        try:
            folder = Path.cwd()
        except OSError:  # the working directory was removed (a deploy swapped it): it holds no configuration
            return None
    candidate = folder / FILE_NAME
    if candidate.is_file():
        return candidate
    pyproject = folder / PYPROJECT
    if pyproject.is_file():
        try:
            text = pyproject.read_text(encoding="utf-8")
        except ValueError:  # not UTF-8: load_file() says so, naming the file (the table may be in it: no
            # configuration found would run the program uninstrumented, in silence)
            return pyproject if _PYPROJECT_TABLE.search(pyproject.read_bytes().decode("latin-1")) else None
        except OSError:
            return None
        try:
            data = tomllib.loads(text)
        except (ValueError, RecursionError):
            # One that names the table but does not parse is the configuration, whose error load_file() says
            # (naming the file); "no configuration found" would send the user looking elsewhere.
            return pyproject if _PYPROJECT_TABLE.search(text) else None
        if isinstance(data.get("tool"), dict) and "agent-otel" in data["tool"]:
            return pyproject
    return None


def load_config(path: str | os.PathLike[str] | None = None, directory: str | os.PathLike[str] | None = None,
                environ: Mapping[str, str] | None = None) -> Config | None:
    """Load the given file, or the one :func:`find_config` finds; None when there is none."""
    file = Path(path) if path is not None else find_config(directory, environ)
    return load_file(file) if file is not None else None
