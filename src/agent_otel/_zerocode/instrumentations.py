"""Other libraries' OpenTelemetry instrumentations (``opentelemetry_instrumentor`` entry points): which ones
``agent-otel run`` turns on, why the others stay off, and which top-level packages each one covers.

As ``opentelemetry-instrument`` does (``opentelemetry.instrumentation.auto_instrumentation``): every installed
entry point is loaded unless ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` names it (or is ``*``) or the libraries
it instruments are missing or at another version (``get_dist_dependency_conflicts``); ``[instrumentation]
instrumentations`` selects among them. agent-otel's own entry point is the configuration itself, and the
threading and system-metrics instrumentations follow the ``threads`` and ``system_metrics`` switches
(``configure()`` turns them on), so none of those three is loaded here. A failure is logged and counted,
never raised: the program runs without that instrumentation.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import sys
from collections.abc import Callable, Collection
from dataclasses import dataclass
from dataclasses import replace as _replace
from types import FrameType
from typing import Any

import wrapt
from opentelemetry.instrumentation.dependencies import (
    DependencyConflict,
    get_dependency_conflicts,
    get_dist_dependency_conflicts,
)
from opentelemetry.instrumentation.distro import DefaultDistro  # type: ignore[attr-defined]  # untyped upstream
from opentelemetry.instrumentation.environment_variables import OTEL_PYTHON_DISABLED_INSTRUMENTATIONS
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from packaging.requirements import InvalidRequirement, Requirement

from agent_otel._engine.self_telemetry import logger, report_error
from agent_otel._zerocode.config import Switches
from agent_otel._zerocode.patching import instrumentation_expected, instrumentation_loaded

GROUP = "opentelemetry_instrumentor"
STAGE = "autoinstrument.instrumentation"
_EVERY = "*"  # OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=* turns every one off, as in opentelemetry-instrument

#: Entry points agent-otel turns on itself, by the module they load: None for agent-otel (the configuration
#: is the instrumentation), else the ``[instrumentation]`` switch that decides.
_MANAGED = {"agent_otel": None, "opentelemetry.instrumentation.threading": "threads",
            "opentelemetry.instrumentation.system_metrics": "system_metrics"}


@dataclass(frozen=True)
class Instrumentation:
    """One installed entry point and what ``agent-otel run`` does with it."""

    name: str
    entry_point: importlib.metadata.EntryPoint
    distribution: str  # "name version", or "-" when the entry point names none
    status: str  # "on", or why not ("disabled by ...", "dependency conflict: ...", "on/off by [instrumentation] ...")
    active: bool = False  # loaded by agent-otel run through this module
    dependencies_checked: bool = False  # the distribution's "instruments" extra was checked (skip instrument()'s)
    error: str | None = None  # its dependencies could not be read


def disabled_by_environment() -> frozenset[str]:
    """The entry-point names in ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` (comma-separated, spaces allowed)."""
    return frozenset(name.strip() for name in os.environ.get(OTEL_PYTHON_DISABLED_INSTRUMENTATIONS, "").split(","))


def _module(entry_point: importlib.metadata.EntryPoint) -> str:
    return entry_point.value.split(":")[0].strip()


def _managed_switch(entry_point: importlib.metadata.EntryPoint) -> tuple[bool, str | None]:
    """(managed by agent-otel, the switch that decides or None for agent-otel itself)."""
    module = _module(entry_point)
    for prefix, switch in _MANAGED.items():
        if module == prefix or module.startswith(prefix + "."):
            return True, switch
    return False, None


#: What ``opentelemetry-instrument``'s ``sitecustomize`` imports to load the instrumentations.
_AUTO_INSTRUMENTATION = "opentelemetry.instrumentation.auto_instrumentation"
#: configure()'s argument for each switch of :data:`_MANAGED`.
_CONFIGURE_ARGUMENT = {"threads": "instrument_threads", "system_metrics": "system_metrics"}


def left_to_the_distro() -> set[str]:
    """configure()'s arguments for the instrumentations it turns on that ``opentelemetry-instrument`` loads itself
    (installed, not disabled by the environment), when it runs (its auto-instrumentation, imported by its
    ``sitecustomize``): they are its to turn on. An ``instrument()`` of the program's own turns them on here."""
    disabled = disabled_by_environment()
    if _EVERY in disabled or _AUTO_INSTRUMENTATION not in sys.modules:
        return set()
    return {_CONFIGURE_ARGUMENT[switch] for entry_point in importlib.metadata.entry_points(group=GROUP)
            if entry_point.name not in disabled and (switch := _managed_switch(entry_point)[1]) is not None}


def _requirement(dep: object) -> str:
    """A requirement without its ``extra == "instruments"`` marker."""
    return f"{dep.name}{dep.specifier}" if isinstance(dep, Requirement) else str(dep)


def _conflict_text(conflict: DependencyConflict) -> str:
    if conflict.required:
        found = f"found {conflict.found}" if conflict.found else "not installed"
        return f"dependency conflict: needs {_requirement(conflict.required)}, {found}"
    wanted = ", ".join(_requirement(dep) for dep in conflict.required_any or ())
    found = f"found {', '.join(conflict.found_any)}" if conflict.found_any else "none installed"
    return f"dependency conflict: needs one of {wanted}, {found}"


def _survey_one(entry_point: importlib.metadata.EntryPoint, switches: Switches,
                disabled: frozenset[str]) -> Instrumentation | None:
    dist = getattr(entry_point, "dist", None)
    label = f"{dist.name} {dist.version}" if dist is not None else "-"
    item = Instrumentation(entry_point.name, entry_point, label, "on")
    managed, switch = _managed_switch(entry_point)
    if managed:
        if switch is None:
            return None  # agent-otel itself: the configuration, never loaded twice
        on = bool(getattr(switches, switch))
        return _replace(item, status=f"{'on' if on else 'off'} by [instrumentation] {switch} = {str(on).lower()}")
    if _EVERY in disabled or entry_point.name in disabled:
        return _replace(item, status=f"disabled by {OTEL_PYTHON_DISABLED_INSTRUMENTATIONS}")
    selection = switches.instrumentations
    if selection is False:
        return _replace(item, status="disabled by [instrumentation] instrumentations = false")
    if selection is not True and entry_point.name not in selection:
        return _replace(item, status="not in [instrumentation] instrumentations")
    if dist is None:
        return _replace(item, active=True)  # instrument() checks its dependencies itself
    try:
        conflict = get_dist_dependency_conflicts(dist)
    except Exception as exc:  # e.g. a malformed requirement in its metadata
        return _replace(item, status=f"error: cannot read its dependencies: {type(exc).__name__}: {exc}",
                        error=f"{type(exc).__name__}: {exc}")
    if conflict is not None:
        return _replace(item, status=_conflict_text(conflict))
    return _replace(item, active=True, dependencies_checked=True)


def survey(switches: Switches) -> list[Instrumentation]:
    """Every installed instrumentation but agent-otel's own, by name, with what ``agent-otel run`` does with it."""
    disabled = disabled_by_environment()
    found = [_survey_one(entry_point, switches, disabled)
             for entry_point in importlib.metadata.entry_points(group=GROUP)]
    return sorted((item for item in found if item is not None), key=lambda item: (item.name, item.distribution))


def not_installed(switches: Switches, items: Collection[Instrumentation]) -> list[str]:
    """Names ``[instrumentation] instrumentations`` selects that no installed entry point has."""
    if isinstance(switches.instrumentations, bool):
        return []
    installed = {item.name for item in items}
    return [name for name in switches.instrumentations if name not in installed]


def _failed(item: Instrumentation, problem: str, exc: BaseException) -> None:
    logger.warning("agent-otel: instrumentation %s (%s) is off: %s", item.name, item.distribution, problem)
    report_error(STAGE, exc)


def _load(item: Instrumentation, distro: DefaultDistro) -> bool:
    """Turn ``item`` on (True when it is on). One already on (``opentelemetry-instrument`` ran first, or the
    program turned it on) is left as it is: instrumenting it again printed the SDK's warning on the program's
    stderr. One whose own library is missing is skipped quietly, as ``opentelemetry-instrument`` skips it: a
    distribution whose extra names either of two libraries (httpx's: ``httpx`` or ``httpx2``) passes the check
    of its extra with one of them, and the other's entry point raised ``ModuleNotFoundError``, counted.

    One the program is turning on as its library is imported is left to it (True): an SDK that sets up its own
    pipeline (Traceloop's ``init()``, Phoenix's ``register()``) imports the instrumentation's module, or runs its
    ``instrument()``, which imports the library. Loaded then, the module was half run ("partially initialized
    module", counted, and said to be off when the program then turned it on), or the instrumentor not yet marked
    on, and it was instrumented twice, every call counted twice."""
    held = sys.modules.get(_module(item.entry_point))
    if held is not None and getattr(getattr(held, "__spec__", None), "_initializing", False):
        logger.debug("agent-otel: instrumentation %s left to the program, which is importing it", item.name)
        return True
    try:
        instrumentor = item.entry_point.load()()  # one instance per class: the one instrument() marks
    except Exception as exc:  # never break the program: it runs without this one
        _failed(item, f"{type(exc).__name__}: {exc}", exc)
        return False
    if getattr(instrumentor, "is_instrumented_by_opentelemetry", False) or _being_instrumented(instrumentor):
        logger.debug("agent-otel: instrumentation %s is on already", item.name)
        return True
    options = _options_for(_module(item.entry_point))
    if options is None:
        logger.debug("agent-otel: instrumentation %s left to the program: no logs pipeline", item.name)
        return False
    try:
        distro.load_instrumentor(item.entry_point, skip_dep_check=item.dependencies_checked, **options)
    except Exception as exc:
        conflict = _conflict_of(instrumentor) if isinstance(exc, ModuleNotFoundError) else None
        if conflict is not None:
            logger.debug("agent-otel: instrumentation %s skipped: %s", item.name, conflict)
        else:
            _failed(item, f"{type(exc).__name__}: {exc}", exc)
        return False
    return True


def _being_instrumented(instrumentor: object) -> bool:
    """Whether the program's ``instrument()`` of ``instrumentor`` runs now (it marks the instrumentor on as it
    returns), up this thread's stack or another's: a thread importing the library meanwhile waits for the import the
    other one runs, and its hook then runs here."""
    code = BaseInstrumentor.instrument.__code__
    for top in sys._current_frames().values():
        frame: FrameType | None = top
        while frame is not None:
            if frame.f_code is code and frame.f_locals.get("self") is instrumentor:
                return True
            frame = frame.f_back
    return False


#: The logging instrumentation's module, its ``instrument()`` option that keeps its handler off, and its variables: the
#: one that turns the handler on or off (on by default) and the one that asks for trace ids in the records.
_LOGGING = "opentelemetry.instrumentation.logging"
_LOGGING_HANDLER_OFF = {"enable_log_auto_instrumentation": False}
_LOGGING_HANDLER_SWITCH = "OTEL_PYTHON_LOG_AUTO_INSTRUMENTATION"
_LOGGING_CORRELATION = "OTEL_PYTHON_LOG_CORRELATION"


def _options_for(module: str) -> dict[str, Any] | None:
    """Options for an instrumentation's ``instrument()``; None leaves it off. The logging instrumentation puts a
    handler on the root logger that sends the program's records to the global ``LoggerProvider``: with no SDK one
    installed (agent-otel sets up no logs pipeline), they went nowhere, and, on the root logger, it also stopped
    ``logging.warning()``'s default output on stderr: the program's warnings vanished. Then it is left off, for the
    program to turn on with a pipeline of its own (turned on already, its ``instrument()`` did nothing), unless its
    variables ask: for trace ids in the records, it is turned on without the handler."""
    if module != _LOGGING or os.environ.get(_LOGGING_HANDLER_SWITCH) is not None or _logs_pipeline_installed():
        return {}
    if os.environ.get(_LOGGING_CORRELATION, "").strip().lower() == "true":
        return dict(_LOGGING_HANDLER_OFF)
    return None


def left_to_the_program(item: Instrumentation) -> str | None:
    """Why ``agent-otel run`` leaves an instrumentation it would turn on to the program (the logging one, with no logs
    pipeline: see :func:`_options_for`), as ``agent-otel check`` says it; None when it turns it on."""
    if _options_for(_module(item.entry_point)) is None:
        return (f"off: no SDK LoggerProvider is installed, so left to the program ({_LOGGING_CORRELATION}=true turns "
                "it on without its handler)")
    return None


def _logs_pipeline_installed() -> bool:
    """Whether an SDK ``LoggerProvider`` is installed globally (``opentelemetry-instrument`` installs one when
    ``OTEL_LOGS_EXPORTER`` names an exporter). Asked only when the logs SDK is imported already."""
    if "opentelemetry.sdk._logs" not in sys.modules:
        return False
    from opentelemetry._logs import get_logger_provider
    from opentelemetry.sdk._logs import LoggerProvider

    return isinstance(get_logger_provider(), LoggerProvider)


def _conflict_of(instrumentor: object) -> str | None:
    """Why the libraries an instrumentor instruments are not there (its ``instrumentation_dependencies()``)."""
    try:
        return requirements_conflict(_requirements_of(instrumentor))
    except Exception:
        return None


def _import_names(distribution: str) -> set[str]:
    """The top-level modules a distribution installs (its ``top_level.txt``, else its file list)."""
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return set()
    return _names_of(dist)


def _names_of(dist: importlib.metadata.Distribution) -> set[str]:
    """The modules a distribution installs that an import hook can be set on: its top-level ones, and under a
    namespace package (no ``__init__.py``, shared by several distributions: ``llama_index``, ``google``) the
    first packages or modules of its own (``llama_index.core``). A hook on a namespace package never fires
    (wrapt's finder sees no loader for it): the instrumentation of ``llama-index-core`` never loaded, and
    every target of ours under ``llama_index`` waited for it for ever, unwrapped."""
    listed = dist.read_text("top_level.txt")
    record: str | None = None
    if listed:
        names = {line.strip() for line in listed.splitlines() if line.strip()}
    else:
        names = set()
        # the first part of each RECORD path, read off the text: ``dist.files`` builds an object per file,
        # and a large SDK (4,000 files) took 30 ms of the start of every Python process under `agent-otel run`
        record = dist.read_text("RECORD") or ""
        for line in record.splitlines():
            top, slash, _ = line.removeprefix('"').partition("/")
            top = top.partition(",")[0] if not slash else top
            if not top or top.endswith((".dist-info", ".data", ".pth")) or top in ("..", "__pycache__"):
                continue
            if slash or top.endswith(".py"):
                names.add(top.removesuffix(".py"))
    namespaces = {name for name in names if _is_namespace_package(name)}
    if not namespaces:
        return names
    return (names - namespaces) | _modules_under(record if record is not None else dist.read_text("RECORD") or "",
                                                 namespaces)


def _is_namespace_package(name: str) -> bool:
    """Whether the top-level ``name`` imports as a namespace package (asked of the import system, importing
    nothing: a top-level name has no parent to import). Its spec has no origin (no file), and a search path;
    its loader is None until it is imported."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):  # a module in sys.modules without a spec, a broken finder
        return False
    return spec is not None and spec.origin is None and spec.submodule_search_locations is not None


def _modules_under(record: str, namespaces: Collection[str]) -> set[str]:
    """The outermost packages and modules a RECORD installs under ``namespaces``, dotted (``llama_index.core``);
    a namespace nested in one (``llama_index.llms``) is gone through to the packages in it."""
    paths = [line.rsplit(",", 2)[0].strip('"') for line in record.splitlines() if line.count(",") >= 2]
    packages = {path.removesuffix("/__init__.py") for path in paths if path.endswith("/__init__.py")}
    modules = set()
    for path in paths:
        parts = path.split("/")
        if parts[0] not in namespaces or "__pycache__" in parts or not path.endswith(".py"):
            continue
        for depth in range(2, len(parts) + 1):  # the shortest package holding it, or the module itself
            if "/".join(parts[:depth]) in packages or depth == len(parts):
                modules.add(".".join(parts[:depth]).removesuffix(".py"))
                break
    return modules


#: The extra an instrumentation's distribution names its libraries in. Not ``instruments-any`` (one of several will do:
#: the httpx instrumentation's ``httpx`` or ``httpx2``): its module imports each one there is, so loaded on the import
#: of one, it imported the other, whose own hook, in a thread importing it meanwhile, deadlocked on the module both
#: come from (Python raised ``_DeadlockError`` there, and that instrumentation was off). Those load at start.
_INSTRUMENTS_EXTRA = "instruments"


def instrumented_modules(item: Instrumentation) -> set[str]:
    """The top-level modules of the libraries an instrumentation instruments, from its distribution's
    ``instruments`` extra, without importing anything; empty when they cannot be told."""
    dist = getattr(item.entry_point, "dist", None)
    modules: set[str] = set()
    for text in getattr(dist, "requires", None) or ():
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue
        if requirement.marker is not None and requirement.marker.evaluate({"extra": _INSTRUMENTS_EXTRA}) \
                and not requirement.marker.evaluate({"extra": ""}):
            try:
                instrumented = importlib.metadata.distribution(requirement.name)
            except importlib.metadata.PackageNotFoundError:
                continue
            modules |= _names_of(instrumented) | _parts_of(instrumented, requirement.name)
    return modules


def _parts_of(dist: importlib.metadata.Distribution, name: str) -> set[str]:
    """The top-level modules of the distributions a framework is made of that it requires: those named after it
    (``langchain``: ``langchain-core``...), and those built on it that it requires in turn (``langgraph``, which
    requires ``langchain-core``). The LangChain instrumentation names ``langchain`` and patches ``langchain_core``
    and ``langgraph.pregel``, which a LangGraph program imports without ever importing ``langchain``; and a hook that
    fired for ``langchain_core`` imported by ``langgraph.pregel`` loaded it while that module was half run."""
    prefix = _distribution_key(name) + "-"
    named, others = set(), []
    for requirement in _requirements_in(dist):
        if _distribution_key(requirement.name).startswith(prefix):
            named.add(requirement.name)
        else:
            others.append(requirement.name)
    family = {_distribution_key(part) for part in named} | {_distribution_key(name)}
    for other in others:
        try:
            required = importlib.metadata.distribution(other)
        except importlib.metadata.PackageNotFoundError:
            continue
        if any(_distribution_key(requirement.name) in family for requirement in _requirements_in(required, family)):
            named.add(other)
    modules: set[str] = set()
    for part in named:
        modules |= _import_names(part)
    return modules


def _requirements_in(dist: importlib.metadata.Distribution, among: Collection[str] | None = None) -> list[Requirement]:
    """A distribution's unconditional requirements (and those of its default extra), read off its METADATA header's
    text: ``dist.requires`` parses the whole metadata as an email message (with the long description), a few
    milliseconds of the start of every process under `agent-otel run`. ``among``: only those of these distribution
    keys, the others not parsed at all."""
    metadata = dist.read_text("METADATA") or ""
    found = []
    for text in (line[len("Requires-Dist:"):].strip() for line in metadata.partition("\n\n")[0].splitlines()
                 if line.startswith("Requires-Dist:")):
        if among is not None and _distribution_key(_NAME.match(text)[0]) not in among:  # type: ignore[index]
            continue
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            found.append(requirement)
    return found


#: The distribution name a requirement starts with (PEP 508), possibly empty.
_NAME = re.compile(r"[A-Za-z0-9._-]*")


def activate(switches: Switches, say: Callable[[str], None] | None = None) -> list[str]:
    """Turn on the instrumentations :func:`survey` marks active; the names of those turned on. Never raises.

    Loading an instrumentation imports the library it instruments (an agent framework can take seconds), so
    one whose library the program has not imported yet is loaded when it does (a post-import hook), before
    the program's own code runs against it: a program, or a Python child, that never uses the framework
    pays nothing for it. A name in ``[instrumentation] instrumentations`` that no installed one has (a typo,
    or one installed elsewhere) is told to ``say`` on one line, as ``agent-otel check`` lists it as an error;
    the program runs without it."""
    turned_on = []
    try:
        items = survey(switches)
    except Exception as exc:  # the installed metadata could not be read at all
        logger.warning("agent-otel: cannot list the installed instrumentations: %s", exc)
        report_error(STAGE, exc)
        return []
    missing = not_installed(switches, items)
    if missing:
        # the names the list may hold (the threading and system-metrics ones follow their switches instead)
        listed = sorted({item.name for item in items if item.entry_point.module not in _MANAGED})
        import difflib  # only for a mistake: not imported by every process

        close = [difflib.get_close_matches(name, listed, n=1) for name in missing]
        hints = "".join(f" (did you mean {found[0]!r} for {name!r}?)"
                        for name, found in zip(missing, close, strict=True) if found)
        verb, them = ("is", "it") if len(missing) == 1 else ("are", "them")
        line = (f"instrumentation.instrumentations: {', '.join(map(repr, missing))} {verb} not installed{hints}, so "
                f"the program runs without {them}; the list may name {', '.join(listed) or 'none installed'} "
                "(threading and system_metrics follow their own switches)")
        logger.warning("agent-otel: %s", line)
        if say is not None:
            say(line)
    distro = DefaultDistro()
    for item in items:
        if item.error is not None:
            _failed(item, item.status, ValueError(item.error))
            continue
        if not item.active:
            logger.debug("agent-otel: instrumentation %s: %s", item.name, item.status)
            continue
        try:
            modules = instrumented_modules(item) or _modules_it_names(item)
        except Exception as exc:  # unreadable metadata, an instrumentor that cannot be loaded: load it now, as before
            report_error(STAGE, exc)
            modules = set()
        if modules and not modules & sys.modules.keys():
            _load_on_import(item, modules, distro)
            turned_on.append(item.name)
        elif _load(item, distro):
            turned_on.append(item.name)
    return turned_on


def _load_on_import(item: Instrumentation, modules: Collection[str], distro: DefaultDistro) -> None:
    """Load ``item`` once, when the program first imports one of ``modules``; the targets of ours in their
    submodules wait for it (:func:`~agent_otel._zerocode.patching.instrumentation_expected`)."""
    loaded: list[bool] = []

    def load(module: object) -> None:
        if not loaded and not _imported_inside(modules, module):
            loaded.append(True)
            _bind_in_parent(module)
            try:
                _load(item, distro)
            finally:
                instrumentation_loaded(modules)

    instrumentation_expected(modules)
    for module in sorted(modules):
        wrapt.register_post_import_hook(load, module)


def _imported_inside(modules: Collection[str], module: object) -> bool:
    """Whether ``module`` was imported by another of ``modules`` whose own import still runs (``langchain_core`` by
    ``langgraph.pregel``): loaded now, the instrumentation would find that one half run (no ``Pregel`` class yet) and
    skip it, silently. The hook of that one loads it, when its import completes."""
    own = getattr(module, "__name__", None)
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "<module>":
            importing = frame.f_globals.get("__name__")
            if importing != own and importing in modules:
                return True
        frame = frame.f_back
    return False


def _bind_in_parent(module: object) -> None:
    """A package in a namespace (``llama_index.core``) is hooked while its import runs, before the import system
    binds it in its parent: an instrumentation that reaches it as ``llama_index.core`` then raised AttributeError
    ("cannot access submodule 'core'"). It is bound now, to what the import system is about to bind."""
    parent, dot, name = str(getattr(module, "__name__", "")).rpartition(".")
    held = sys.modules.get(parent) if dot else None
    if held is not None:
        try:
            setattr(held, name, module)
        except Exception:  # a module object that refuses attributes: the import system will say so itself
            pass


def _distribution_key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def instrumented_requirements(item: Instrumentation) -> list[str]:
    """What the instrumentor says it instruments (``instrumentation_dependencies()``); loads its class. One without
    that method (atomic-agents' own, a copy of ``BaseInstrumentor`` that does not inherit it, which
    ``opentelemetry-instrument`` loads by its distribution's metadata) instruments its distribution's library."""
    instrumentor = item.entry_point.load()()
    if not callable(getattr(instrumentor, "instrumentation_dependencies", None)):
        dist = getattr(item.entry_point, "dist", None)
        return [dist.name] if dist is not None and dist.name else []
    return _requirements_of(instrumentor)


def _requirements_of(instrumentor: Any) -> list[str]:
    return [str(dep) for dep in instrumentor.instrumentation_dependencies()]


def _modules_it_names(item: Instrumentation) -> set[str]:
    """The top-level modules of the libraries an instrumentation whose distribution names none in an ``instruments``
    extra says it instruments (OpenInference's LiteLLM one: ``litellm >= 1.65.0``): its module is imported, which
    imports no library of the program's, unlike ``instrument()``."""
    try:
        requirements = instrumented_requirements(item)
    except Exception:  # (loading it now says why, counted once)
        return set()
    modules: set[str] = set()
    for text in requirements:
        try:
            name = Requirement(text).name
            instrumented = importlib.metadata.distribution(name)
        except (InvalidRequirement, importlib.metadata.PackageNotFoundError):
            continue
        modules |= _names_of(instrumented) | _parts_of(instrumented, name)
    return modules


def requirements_conflict(requirements: Collection[str]) -> str | None:
    """Why the libraries ``requirements`` name cannot be instrumented here (missing, another version), or None."""
    conflict = get_dependency_conflicts(list(requirements))
    return _conflict_text(conflict) if conflict is not None else None


def packages_of(requirements: Collection[str]) -> set[str]:
    """The import packages of the distributions ``requirements`` name: their top-level ones, or in a namespace
    package their own (``google.genai``, not ``google``: every target under ``google`` was said to overlap
    google-genai's instrumentation), as :func:`instrumented_modules` hooks them."""
    found: set[str] = set()
    for text in requirements:
        try:
            found |= _import_names(Requirement(text).name)
        except InvalidRequirement:
            continue
    return found
