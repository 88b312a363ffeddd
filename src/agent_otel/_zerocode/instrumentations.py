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
import os
import re
from collections.abc import Collection
from dataclasses import dataclass
from dataclasses import replace as _replace

from opentelemetry.instrumentation.dependencies import DependencyConflict, get_dist_dependency_conflicts
from opentelemetry.instrumentation.distro import DefaultDistro  # type: ignore[attr-defined]  # untyped upstream
from opentelemetry.instrumentation.environment_variables import OTEL_PYTHON_DISABLED_INSTRUMENTATIONS
from packaging.requirements import InvalidRequirement, Requirement

from agent_otel._engine.self_telemetry import logger, report_error
from agent_otel._zerocode.config import Switches

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


def activate(switches: Switches) -> list[str]:
    """Turn on the instrumentations :func:`survey` marks active; the names of those turned on. Never raises."""
    turned_on = []
    try:
        items = survey(switches)
    except Exception as exc:  # the installed metadata could not be read at all
        logger.warning("agent-otel: cannot list the installed instrumentations: %s", exc)
        report_error(STAGE, exc)
        return []
    for name in not_installed(switches, items):
        logger.warning("agent-otel: [instrumentation] instrumentations names %r, which is not installed", name)
    distro = DefaultDistro()
    for item in items:
        if item.error is not None:
            _failed(item, item.status, ValueError(item.error))
            continue
        if not item.active:
            logger.debug("agent-otel: instrumentation %s: %s", item.name, item.status)
            continue
        try:
            distro.load_instrumentor(item.entry_point, skip_dep_check=item.dependencies_checked)
        except Exception as exc:  # never break the program: it runs without this one
            _failed(item, f"{type(exc).__name__}: {exc}", exc)
        else:
            turned_on.append(item.name)
    return turned_on


def _distribution_key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def instrumented_requirements(item: Instrumentation) -> list[str]:
    """What the instrumentor says it instruments (``instrumentation_dependencies()``); loads its class."""
    instrumentor = item.entry_point.load()()
    return [str(dep) for dep in instrumentor.instrumentation_dependencies()]


def packages_of(requirements: Collection[str]) -> set[str]:
    """The top-level import packages of the distributions ``requirements`` name (``packages_distributions()``)."""
    wanted = set()
    for text in requirements:
        try:
            wanted.add(_distribution_key(Requirement(text).name))
        except InvalidRequirement:
            continue
    return {package for package, dists in importlib.metadata.packages_distributions().items()
            if any(_distribution_key(dist) in wanted for dist in dists)}
