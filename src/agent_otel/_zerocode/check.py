"""``agent-otel check``: validate a configuration file and resolve every target.

Targets in the program's own script (``"__main__:name"``, or ``"app:name"`` for ``--script app.py``)
are resolved by reading the script given with ``--script`` (parsed, never run); without it they are
listed as resolved when ``agent-otel run`` runs the script, which is not an error.

Then it lists the installed OpenTelemetry instrumentations, which ``agent-otel run`` turns on and why the
others stay off, and notes each target in a library one of them instruments too.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, cast

from agent_otel._calls.extractors import Path as ExtractorPath
from agent_otel._calls.options import KINDS, MARKERS, Option, read_at
from agent_otel._environment import AGENT_OTEL_CONFIG
from agent_otel._zerocode import instrumentations, queue_tasks
from agent_otel._zerocode.config import Config, Switches, TargetSpec, find_command_config, load_file
from agent_otel._zerocode.patching import (
    _all_subclasses,
    build_handler,
    celery_task_run,
    of_package,
    refuse_self_without_object,
)
from agent_otel._zerocode.program import MAIN
from agent_otel._zerocode.queue_tasks import HOLDERS
from agent_otel._zerocode.targets import (
    CELERY_TASK,
    BoundAtRunTime,
    InScript,
    TargetError,
    awaitable_note_of,
    manager_note_of,
    model_note,
    registry_note_of,
    resolve_in_script,
    resolve_target,
)
from agent_otel.errors import ConfigurationError

#: The status of a script target when no script is given.
AT_RUN_TIME = "resolved when the script run by `agent-otel run` defines it"


def _read_script(path: str) -> ast.Module:
    try:
        source = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        return ast.parse(source, path)
    except (SyntaxError, ValueError) as exc:
        raise ConfigurationError(f"{path}: not a Python script ({exc})") from None


def _wraps(spec: TargetSpec, config: Config, raw: object, owner: type | ModuleType, attr: str) -> None:
    """Build the handler `agent-otel run` builds for ``raw``: what it cannot wrap (an ``args`` path naming no
    parameter of the callable) is the error it would only log at run time."""
    label = f"{owner.__module__}.{owner.__qualname__}.{attr}" if isinstance(owner, type) else f"{spec.module}.{attr}"
    try:
        refuse_self_without_object(spec, raw, owner, label)
        build_handler(spec, config, cast(Callable[..., Any], raw), owner, attr, label)
    except ConfigurationError as exc:
        raise TargetError(f"cannot wrap {label}: {exc}") from None
    if isinstance(owner, type) and type(owner).__setattr__ is not type.__setattr__:
        _settable(owner, attr, label)


def _settable(owner: type, attr: str, label: str) -> None:
    """A class whose metaclass has a ``__setattr__`` of its own may refuse the wrapper (a frozen class), or ignore it:
    `run` only logs the one, and wraps nothing for the other. So set a stand-in on it here, in this process, as `run`
    would set the wrapper, and put back what was there."""
    original = owner.__dict__.get(attr, _ABSENT)
    stand_in = _StandIn()
    try:
        setattr(owner, attr, stand_in)
    except Exception as exc:
        raise TargetError(f"cannot wrap {label}: its class refuses the attribute to be set, as agent-otel run "
                          f"would set it ({type(exc).__name__}: {exc})") from None
    kept = owner.__dict__.get(attr, _ABSENT) is not original  # (its own value, made of the stand-in: kept)
    try:  # (check's own process: what is left there is not the program's)
        if original is not _ABSENT:
            type.__setattr__(owner, attr, original)
        elif kept:
            type.__delattr__(owner, attr)
    except Exception:
        pass
    if not kept:
        raise TargetError(f"cannot wrap {label}: its class does not keep the attribute set on it (its metaclass's "
                          "__setattr__), so agent-otel run cannot put its wrapper there")


_ABSENT = object()


class _StandIn:
    """What check sets where `run` would set a wrapper (callable, as the wrapper is): the class keeps it, or not."""

    def __call__(self, *args: object, **kwargs: object) -> None:
        """Never called."""


#: The callables the targets checked so far name, by identity (a script's, by its qualified name) and the class whose
#: calls they record (None: all), to their entry: `agent-otel run` refuses a second entry for the same calls (an alias,
#: a package's re-export, the script's module under its own name and as ``__main__``), not a second name in the same
#: entry's target list.
_Named = dict[tuple[object, object], tuple[object, TargetSpec]]


def _name_once(spec: TargetSpec, raw: object, scope: type | None, attr: str, named: _Named,
               identity: object = None) -> None:
    key = (id(raw) if identity is None else identity, scope)
    first = named.setdefault(key, (raw, spec))[1]  # the object kept: its id stays its own
    if first is not spec and not (first.entry and first.entry == spec.entry):
        raise TargetError(f"{attr} is already wrapped for {first.key} ({first.target}); name a function once")



def _shadowing(named: _Named) -> dict[str, str]:
    """A note for each entry that names a method a subclass inherits when another entry of another kind names it on a
    base: a call on the subclass records as the more specific entry only (the wrapper begins one call), not as both
    nested, as a job around an agent would be. By entry key."""
    notes: dict[str, str] = {}
    for (identity, scope), (_, spec) in named.items():
        if not isinstance(scope, type):
            continue
        for (other_identity, other_scope), (_, other) in named.items():
            if other_identity == identity and other.kind != spec.kind and (
                    other_scope is None or (isinstance(other_scope, type) and other_scope is not scope
                                            and issubclass(scope, other_scope))):
                notes[spec.key] = (f"its calls on {scope.__qualname__} record as {spec.key} only, not also as "
                                   f"{other.key}: one entry records each call, the most specific")
    return notes


def _imported(spec: TargetSpec, config: Config, named: _Named | None = None) -> tuple[str, str]:
    """(callable, status) of a target found by importing its module."""
    found = resolve_target(spec)
    if named is not None and not spec.instance_attribute:
        inherited = isinstance(found.owner, type) and found.defined_on is not found.owner
        _name_once(spec, found.raw, found.owner if inherited else None, found.attr, named)  # type: ignore[arg-type]
    if found.shape == CELERY_TASK:  # `check` is no program: Celery makes the task here, as `run` would once it runs
        try:
            task = queue_tasks.task_of(found.raw)
        except Exception as exc:  # (an app that does not finalize by itself: the program finalizes it later)
            _wraps(spec, config, None, found.owner, found.attr)
            return found.shape, (f"ok (its run(), wrapped when the app makes the task: what a worker runs; its options "
                                 f"not read against it, as Celery cannot make it here: {type(exc).__name__}: {exc})")
        task_class, run = celery_task_run(task)
        _wraps(spec, config, run, task_class, "run")
        return found.shape, "ok (its run(), wrapped when the app makes the task: what a worker runs)"
    holder = HOLDERS.get(found.shape)
    if holder is not None:
        _wraps(spec, config, getattr(found.raw, holder.attribute), found.owner, found.attr)
        return found.shape, f"ok (the function it holds as {holder.attribute}: what {holder.runner} runs)"
    if not spec.instance_attribute:  # the callable an instance holds is known only when one is created
        _wraps(spec, config, found.raw, found.owner, found.attr)
    status = "ok"
    notes = (registry_note_of(found.raw), awaitable_note_of(found.raw), manager_note_of(found.raw),
             model_note(found.owner, found.attr))
    for note in notes if not spec.instance_attribute else ():
        if note:
            status += f" ({note})"
    if found.defined_on is not found.owner:
        status += f" (inherited from {found.defined_on.__qualname__})"
    if not spec.subclasses and isinstance(found.owner, type):
        status += _overridden_note(found.owner, found.attr)
    if spec.subclasses and isinstance(found.owner, type):
        overriding = [sub for sub in _all_subclasses(found.owner) if found.attr in sub.__dict__]
        for sub in overriding:
            _wraps(spec, config, sub.__dict__[found.attr], sub, found.attr)
            if named is not None:  # an override the entry wraps: naming it again is an entry too many
                _name_once(spec, sub.__dict__[found.attr], None, found.attr, named)
        overrides = [sub.__qualname__ for sub in overriding]
        status += f" (+{len(overrides)} subclass override{'s' if len(overrides) != 1 else ''}" + (
            f": {', '.join(sorted(overrides))})" if overrides else ")")
    return found.shape, status


def _overridden_note(owner: type, attr: str) -> str:
    """A note naming the subclasses (imported so far) that override the method: without ``subclasses = true`` their
    calls are not recorded (an abstract method's, all of them)."""
    overriding = sorted(sub.__qualname__ for sub in _all_subclasses(owner) if attr in sub.__dict__)
    if not overriding:
        return ""
    shown = ", ".join(overriding[:5]) + (f" and {len(overriding) - 5} more" if len(overriding) > 5 else "")
    return f" (overridden by {shown}: their calls are not recorded; subclasses = true wraps them too)"


def _in_script(spec: TargetSpec, config: Config, tree: ast.Module, label: str, named: _Named) -> tuple[str, str]:
    """(callable, status) of a target of the script, read from its source."""
    found = resolve_in_script(tree, spec.qualname, label)
    if found.imported:
        module, qualname = found.imported.split(":")
        shape, status = _imported(dataclasses.replace(spec, target=found.imported, module=module, qualname=qualname),
                                  config, named)
        return shape, f"{status} (imported by {label} from {module})"
    # what `run` checks when it wraps the function: its self paths, and its args paths when its source declares its
    # parameters (another decorator may change them)
    raw, owner = _from_source(spec, found)
    _name_once(spec, raw, None, spec.qualname.rpartition(".")[2], named, identity=("script", spec.qualname))
    note = found.note
    if found.signature is not None:
        _wraps(spec, config, raw, owner, spec.qualname.rpartition(".")[2])
    else:
        try:
            refuse_self_without_object(spec, raw, owner, f"{spec.module}.{spec.qualname}")
        except ConfigurationError as exc:
            raise TargetError(f"cannot wrap {spec.module}.{spec.qualname}: {exc}") from None
        if found.ours and not spec.subclasses:  # (a subclass's override, undecorated, is wrapped)
            note = ", ".join(filter(None, (note, f"decorated with @{found.ours} in its source: run leaves it to that "
                                                 "decorator, and this entry does nothing")))
        elif unchecked := [item.text for _, _, item in _extractor_paths(spec) if item.root == "args"]:
            # (run refuses one naming no parameter as it wraps the function: counted, logged, not said)
            note = ", ".join(filter(None, (note, f"{', '.join(unchecked)} not checked: a decorator over it may change "
                                                 "its parameters; run wraps nothing if one names none")))
    return found.shape, f"ok (in {label}{', ' + note if note else ''})"


def _from_source(spec: TargetSpec, found: InScript) -> tuple[object, type | ModuleType]:
    """A stand-in for the script's function, with the parameters its source declares, and for what defines it (its
    class, or the script), as `run` finds them: never the script's own code, which `check` does not run."""
    owner_name, _, name = spec.qualname.rpartition(".")

    def stand_in(*args: Any, **kwargs: Any) -> None:
        """Never called."""

    stand_in.__name__, stand_in.__qualname__ = name, spec.qualname
    if found.signature is not None:
        stand_in.__signature__ = found.signature  # type: ignore[attr-defined]
    if not owner_name:
        return stand_in, ModuleType(spec.module)
    owner = type(owner_name.rpartition(".")[2], (), {"__module__": spec.module, "__qualname__": owner_name})
    shape = found.shape.split()[-1]
    return (staticmethod(stand_in) if shape == "staticmethod" else classmethod(stand_in) if shape == "classmethod"
            else stand_in), owner


_TIMES = (("start", "read at call start"), ("end", "read at call end"),
          ("start and end", "read at start and end (delta)"))


def reading_plan(spec: TargetSpec) -> list[str]:
    """When each extractor of ``spec`` is read, one line per time (``delta`` paths at both ends)."""
    found: dict[str, list[str]] = {}
    for name, option, item in _extractor_paths(spec):
        read = read_at(option if name in spec.options else Option(name, option.accepts, when="end"), item)
        found.setdefault(read, []).append(f"{name} = {item.text}")
    return [f"{label}: {', '.join(found[when])}" for when, label in _TIMES if when in found]


def _extractor_paths(spec: TargetSpec) -> Iterator[tuple[str, Option, ExtractorPath]]:
    """(key, its option, path) of each extractor path of ``spec``, those in a table's items (``kpis.x``) too."""
    table = KINDS[spec.kind]
    for key, value in spec.options.items():
        option = table.get(key)
        if option is None:
            continue
        nested = value.items() if isinstance(value, Mapping) else ()
        for name, item in [(key, value), *((f"{key}.{inner}", item) for inner, item in nested)]:
            if isinstance(item, ExtractorPath):
                yield name, option, item


def run_check(args: argparse.Namespace) -> int:
    script: str | None = getattr(args, "script", None)
    given: str | None = args.file or getattr(args, "config", None)
    if args.file and getattr(args, "config", None) and args.file != args.config:
        print(f"agent-otel: check: two configuration files given, {args.file} and --config {args.config}: give one",
              file=sys.stderr)
        return 2
    try:
        file = Path(given) if given else find_command_config()
        if file is None:
            print(f"agent-otel: no configuration found: pass FILE, set {AGENT_OTEL_CONFIG}, or create agent-otel.toml "
                  "(or [tool.agent-otel] in pyproject.toml) in the current directory", file=sys.stderr)
            return 2
        config = load_file(file)
        tree = _read_script(script) if script else None
    except ConfigurationError as exc:
        print(f"agent-otel: {exc}", file=sys.stderr)
        return 2
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` would: the project's modules import from here
    script_modules = {MAIN, *([Path(script).stem] if script else [])}
    rows: list[tuple[str, ...]] = [("TARGET", "ENTRY", "CALLABLE", "STATUS")]
    errors = later = 0
    named: _Named = {}
    for spec in config.targets:
        try:
            if spec.module not in script_modules:
                shape, status = _imported(spec, config, named)
            elif tree is None or script is None:
                shape, status = "-", AT_RUN_TIME
                later += 1
            else:
                shape, status = _in_script(spec, config, tree, script, named)
        except BoundAtRunTime as exc:
            shape, status = "-", f"resolved when the script runs ({script} {exc})"
            later += 1
        except TargetError as exc:
            errors += 1
            shape, status = "-", f"error: {exc}"
        rows.append((spec.target, spec.key, shape, status))
    shadowed = _shadowing(named)
    rows = [(*row[:3], f"{row[3]} ({shadowed[row[1]]})" if row[1] in shadowed else row[3]) for row in rows]
    libraries = _instrumentation_rows(config.switches)
    overlaps = [[], *(_overlap(spec, libraries.packages) for spec in config.targets)]
    plans = [[], *(reading_plan(spec) for spec in config.targets)]
    _print_table(rows, [plan + overlap for plan, overlap in zip(plans, overlaps, strict=True)])
    resolved = len(config.targets) - errors - later
    print(f"{config.source}: {_count(len(config.targets), 'target')}, "
          f"{resolved} resolved, " + (f"{later} resolved when the script runs, " if later else "") +
          f"{_count(errors, 'error')}")
    print()
    _print_table(libraries.rows, [[] for _ in libraries.rows])
    print(f"instrumentations: {libraries.installed} installed, {libraries.on} on, "
          f"{_count(libraries.errors, 'error')}")
    return 1 if errors or libraries.errors else 0


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'s' if number != 1 else ''}"


def _print_table(rows: list[tuple[str, ...]], notes: list[list[str]]) -> None:
    """Columns padded to their widest cell, two spaces apart; the last column unpadded, notes indented under."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row, lines in zip(rows, notes, strict=True):
        print("  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)) + "  " + row[-1])
        for line in lines:
            print("    " + line)


@dataclasses.dataclass
class _Libraries:
    rows: list[tuple[str, ...]]
    packages: dict[str, list[str]]  # package (see packages_of): the active instrumentations that instrument it
    installed: int = 0
    on: int = 0
    errors: int = 0


def _instrumentation_rows(switches: Switches) -> _Libraries:
    """The installed instrumentations and what ``agent-otel run`` does with each (see instrumentations.py);
    those it turns on are loaded (not instrumented) to read what they instrument."""
    found = _Libraries(rows=[("INSTRUMENTATION", "DISTRIBUTION", "STATUS")], packages={})
    items = instrumentations.survey(switches)
    found.installed = len(items)
    for item in items:
        status = item.status
        if item.error is not None:
            found.errors += 1
        elif item.active and (left := instrumentations.left_to_the_program(item)) is not None:
            status = left
        elif item.active:
            try:
                requirements = instrumentations.instrumented_requirements(item)
            except Exception as exc:
                found.errors += 1
                status = f"error: cannot load {item.entry_point.value}: {type(exc).__name__}: {exc}"
            else:
                conflict = instrumentations.requirements_conflict(requirements)
                if conflict is not None:  # its own library is missing (httpx's second entry point, httpx2)
                    found.rows.append((item.name, item.distribution, conflict))
                    continue
                found.on += 1
                status = "on" + (f": instruments {', '.join(requirements)}" if requirements else "")
                for package in instrumentations.packages_of(requirements):
                    found.packages.setdefault(package, []).append(item.name)
        elif status.startswith("on "):
            found.on += 1
        found.rows.append((item.name, item.distribution, status))
    for name in instrumentations.not_installed(switches, items):
        found.errors += 1
        found.rows.append((name, "-", "error: named in [instrumentation] instrumentations, not installed"))
    return found


def _overlap(spec: TargetSpec, packages: Mapping[str, list[str]]) -> list[str]:
    """A note when the target is in a library an active instrumentation instruments too (its package, or one its
    module is in). The call is counted once only where the two name it alike: a ``[[provider]]`` on an embeddings
    call, ``chat`` by default, is a call beside the instrumentation's ``embeddings`` one (said for one named so, in any
    library: a framework's embedding class calls the SDK inside). None for a marker
    (``[[retry]]`` on an SDK's own retry sleep): it records no call of its own, so nothing is counted twice."""
    if spec.kind in MARKERS:
        return []
    names = of_package(packages, spec.module)
    notes = [f"overlaps {', '.join(names)}: counted once where its span names the call as this target does "
             "(kind and operation), see README"] if names else []
    if spec.kind == "provider" and "operation" not in spec.options and "embed" in spec.qualname.lower():
        # (a framework's embedding class too, whose SDK call inside an instrumentation traces as embeddings)
        notes.append('an embeddings call? without operation = "embeddings" it is a chat call, counted beside an '
                     "instrumentation's embeddings span inside it")
    return notes
