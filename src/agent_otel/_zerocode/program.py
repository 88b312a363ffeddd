"""The program ``agent-otel run`` starts in its own process (``python app.py``, ``python -m pkg.mod``,
``python -c code``), run as ``__main__`` with the targets it defines itself wrapped.

The program's ``__main__`` is never imported, so no post-import hook fires for it. Its targets
(``"__main__:main"``, or the script's or module's own name: ``"app:main"`` for ``app.py``,
``"pkg.mod:main"`` for ``-m pkg.mod``) are wrapped as its code defines them instead: the code is
compiled as Python compiles it (same file name and line numbers, ``__future__`` flags, syntax errors)
and, when such targets exist, run one group of top-level statements at a time, each group ending
with a statement that binds a target's first name (a ``def``, a ``class``, an assignment or an
import). After that statement has run, the target is wrapped, so the statements after it
(``if __name__ == "__main__": main()``) call the wrapper. Nothing is added to the program's source
or namespace: its ``globals()``, ``__file__``, ``__name__``, ``sys.argv`` and tracebacks are those of
plain ``python``. Each target is wrapped at the first statement after which its whole name exists (``Agent.run``
assigned after ``class Agent`` at that assignment, ``Agent.run = _run``), and again at each statement that binds it
to another callable (a second ``def work``).
"""

from __future__ import annotations
import __future__

import ast
import builtins
import functools
import importlib.abc
import importlib.machinery
import importlib.util
import inspect
import linecache
import marshal
import os
import runpy
import sys
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from types import CodeType, FunctionType, ModuleType, TracebackType
from typing import Any

import wrapt

from agent_otel._engine import wrappers
from agent_otel._engine.self_telemetry import report_error
from agent_otel._zerocode import patching
from agent_otel._zerocode.config import TargetSpec
from agent_otel._zerocode.patching import apply_targets, targets_in
from agent_otel._zerocode.targets import attributes_set, bound_names

MAIN = "__main__"
_MP_MAIN = "__mp_main__"

#: The compiler flags of every ``from __future__ import``: a group is compiled with those of the whole file.
_FUTURE_FLAGS = 0
for _feature in __future__.all_feature_names:
    _FUTURE_FLAGS |= getattr(__future__, _feature).compiler_flag


@dataclass
class Program:
    """The program's ``__main__`` module and its code, ready to run."""

    module: ModuleType
    code: CodeType | None  # None: run by ``fallback`` instead (e.g. a directory or zip file)
    source: str | bytes | None = None  # None: no source, the code runs whole
    filename: str = ""
    names: tuple[str, ...] = (MAIN,)  # the module names whose targets apply to it
    fallback: Callable[[], object] | None = None
    applied: set[str] = field(default_factory=set)

    @property
    def namespace(self) -> dict[str, object]:
        return self.module.__dict__


class ModuleNotRunnable(Exception):
    """``python -m`` would refuse the module: the message is python's own."""


def _main_module(**attributes: object) -> ModuleType:
    module = ModuleType(MAIN)
    module.__dict__.update(__annotations__={}, __builtins__=builtins, **attributes)
    return module


def _module_name(path: str) -> str | None:
    stem = os.path.splitext(os.path.basename(path))[0]
    return stem if stem.isidentifier() else None


def script(path: str) -> Program:
    """``python path``: a source file compiled here, a compiled one (``.pyc``) loaded here; a directory or a
    zip file (a ``.pyz`` application) has its ``__main__`` run by runpy, as python runs it (the launcher puts
    the program's ``filename`` first on ``sys.path``)."""
    absolute = joined_with_cwd(path)
    source = None
    if os.path.isfile(absolute) and not zipfile.is_zipfile(absolute):
        with open(absolute, "rb") as handle:
            source = handle.read()
    if source is None:
        return Program(_main_module(), None, filename=absolute, fallback=_run_main_of_path_entry)
    names = tuple(name for name in (MAIN, _module_name(absolute)) if name)
    if source.startswith(importlib.util.MAGIC_NUMBER):  # compiled code: after its 16-byte header, as python reads it
        loader: importlib.abc.Loader = importlib.machinery.SourcelessFileLoader(MAIN, absolute)
        module = _main_module(__file__=absolute, __cached__=None, __loader__=loader)
        return Program(module, marshal.loads(source[16:]), None, absolute, names)
    if b"\0" in source:  # python's reading of the file refuses it at that line; compile() would name neither
        null = source.index(b"\0")
        line = source.count(b"\n", 0, null) + 1
        text = source[source.rfind(b"\n", 0, null) + 1:null].decode(errors="replace")
        raise SyntaxError("source code cannot contain null bytes", (absolute, line, 0, text, line, 0))
    loader = importlib.machinery.SourceFileLoader(MAIN, absolute)
    module = _main_module(__file__=absolute, __cached__=None, __loader__=loader)
    return Program(module, compile(source, absolute, "exec", dont_inherit=True), source, absolute, names)


def joined_with_cwd(path: str) -> str:
    """A script's path made absolute as python makes it: joined to the working directory and not normalized
    (``python ./app.py`` has ``/work/./app.py`` in ``__file__`` and in its tracebacks); ``python .`` is the
    working directory itself."""
    if path == ".":
        return os.getcwd()
    return path if os.path.isabs(path) else os.path.join(os.getcwd(), path)


def _run_main_of_path_entry() -> None:
    """What python runs for a directory or a zip file: the ``__main__`` module first on ``sys.path``, in
    ``sys.modules["__main__"]``, with ``sys.argv`` as given (runpy's own function for it, the one python
    calls, so that the program's tracebacks show the frames they show under python; it has no public
    equivalent: ``run_path`` would set ``sys.argv[0]`` to the absolute path)."""
    runpy._run_module_as_main(MAIN, alter_argv=False)  # type: ignore[attr-defined]


def code(text: str) -> Program:
    """``python -c text``."""
    module = _main_module(__loader__=importlib.machinery.BuiltinImporter)
    if sys.version_info >= (3, 13):  # python -c keeps its text for tracebacks and warnings, as it does from 3.13
        linecache.cache["<string>"] = (len(text), None, [line + "\n" for line in text.splitlines()], "<string>")
    return Program(module, compile(text, "<string>", "exec", dont_inherit=True), text, "<string>")


def module(name: str) -> Program:
    """``python -m name`` (a package runs its ``__main__``); sets ``sys.argv[0]`` as python does. While the module
    is looked up (its package imported), ``sys.argv[0]`` is ``-m`` and ``__main__`` the bare module it will run
    in, as under python; then the launcher's again, until :func:`run`."""
    main = _main_module()
    launcher_main = sys.modules.get(MAIN)
    sys.argv[0] = "-m"
    sys.modules[MAIN] = main
    try:
        mod_name, spec, module_code = _module_details(name)
    except ModuleNotRunnable as exc:
        raise ModuleNotRunnable(f"{sys.executable}: {exc}") from None
    finally:
        if launcher_main is not None and sys.modules.get(MAIN) is main:
            sys.modules[MAIN] = launcher_main
    if isinstance(spec.loader, wrapt.BaseObjectProxy):
        # the module has targets, so wrapt's import hook found it and chained its loader: the program's
        # ``__loader__`` and ``__spec__.loader`` are the loader python gives it
        spec.loader = spec.loader.__wrapped__
    main.__dict__.update(__file__=spec.origin, __cached__=spec.cached, __loader__=spec.loader,
                         __package__=spec.parent, __spec__=spec)
    if spec.origin is not None:
        sys.argv[0] = spec.origin
    try:
        source = spec.loader.get_source(mod_name)
    except Exception:
        source = None
    return Program(main, module_code, source, module_code.co_filename, (MAIN, mod_name))


def _groups(program: Program, wanted: set[str]) -> list[tuple[CodeType, set[str]]]:
    """The code in groups of top-level statements, each with the wanted names its last statement binds."""
    assert program.source is not None and program.code is not None
    with warnings.catch_warnings():  # said once already, or not at all (a cached module), as python says them
        warnings.simplefilter("ignore")
        return _compiled_groups(program, ast.parse(program.source, program.filename), wanted)


def _compiled_groups(program: Program, tree: ast.Module, wanted: set[str]) -> list[tuple[CodeType, set[str]]]:
    assert program.code is not None
    flags = program.code.co_flags & _FUTURE_FLAGS
    groups: list[tuple[list[ast.stmt], set[str]]] = []
    current: list[ast.stmt] = []
    for statement in tree.body:
        current.append(statement)
        bound = (bound_names(statement) | {name for name, _ in attributes_set(statement)}) & wanted
        if bound:
            groups.append((current, bound))
            current = []
    if current:
        groups.append((current, set()))
    compiled = []
    for index, (statements, bound) in enumerate(groups):
        first = statements[0]
        if index and isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                and isinstance(first.value.value, str):
            statements = [ast.copy_location(ast.Pass(), first), *statements]  # a string there is no docstring
        group = ast.Module(body=statements, type_ignores=[])
        compiled.append((compile(group, program.filename, "exec", flags=flags, dont_inherit=True), bound))
    return compiled


def _apply(program: Program, specs: list[TargetSpec], bound: set[str] | None) -> None:
    """Wrap the targets not wrapped yet whose name the last statement bound (None: all the rest). A target that
    could not be wrapped then (``Agent.run`` before ``Agent.run = _run``) is tried again at the next statement
    that binds its name or sets an attribute of it."""
    due = []
    failed = patching.entry_errors() if bound is not None else {}
    for spec in specs:
        held = _held(program.namespace, spec) if bound is not None else None
        if bound is not None and (spec.qualname.split(".")[0] not in bound or held is _MISSING):
            continue
        if spec.target in program.applied and spec.target not in failed and not (
                bound is not None and _rebound(spec, held)):
            continue
        program.applied.add(spec.target)
        due.append(spec)
    if due:
        apply_targets(program.module, due)


def _held(namespace: dict[str, object], spec: TargetSpec) -> object:
    """What the target's name holds in the script by now (for a callable each instance holds, its class), or
    ``_MISSING``: ``Agent.run`` is not there yet between ``class Agent`` and ``Agent.run = _run``, where trying it
    logged and counted a target that cannot be wrapped, before it was wrapped at that assignment."""
    first, *rest = spec.qualname.split(".")
    found = namespace.get(first, _MISSING)
    for part in rest[:-1] if spec.instance_attribute else rest:
        if found is _MISSING:
            break
        try:
            found = inspect.getattr_static(found, part)
        except AttributeError:
            return _MISSING
    return found


def _rebound(spec: TargetSpec, held: object) -> bool:
    """Whether the script bound the target's name again, to a callable that holds no wrapper of ours (a second ``def
    work``): the calls after it went unrecorded, as only the first definition was wrapped. An imported module's last
    binding is the one wrapped, once its import completes; a script's each, as it runs. Not the script's own
    decorator around the wrapper (``work = retry(work)``, ``functools.partial(work, ...)``: wrapped again, each
    call recorded twice), nor a value that is no callable (``work = None``)."""
    if spec.instance_attribute or not (callable(held) or isinstance(held, staticmethod | classmethod)):
        return False
    seen: set[int] = set()
    found: object = held
    while found is not None and id(found) not in seen and len(seen) < _CHAIN_LIMIT:
        seen.add(id(found))
        if wrappers.is_wrapper(found):
            return False
        try:  # what a partial, a static or class method object or a decorator (``functools.wraps``) holds
            if isinstance(found, functools.partial):
                found = found.func
            elif isinstance(found, staticmethod | classmethod):
                found = found.__func__
            else:
                found = getattr(found, "__wrapped__", None)
        except Exception:  # the program's object failing to say: nothing more to follow
            return True
    return True


#: How far a chain of decorators is followed looking for a wrapper of ours.
_CHAIN_LIMIT = 64


_MISSING = object()


def run(program: Program) -> None:
    """Run the program as ``sys.modules["__main__"]``; its exceptions propagate (see :func:`program_traceback`).
    ``multiprocessing``, imported before it runs, made ``__mp_main__`` an alias of the ``__main__`` of then (the
    launcher's): it is the program's, as for a program that imports multiprocessing itself (a spawned worker's
    objects of a class of the script are unpickled through it)."""
    previous = sys.modules.get(MAIN)
    sys.modules[MAIN] = program.module
    if previous is not None and sys.modules.get(_MP_MAIN) is previous:
        sys.modules[_MP_MAIN] = program.module
    if program.code is None:
        assert program.fallback is not None
        _not_applied(targets_in(program.names), "a directory or zip file's __main__ runs as python runs it")
        program.fallback()
        return
    if program.module.__dict__.get("__spec__") is not None and _RUNPY_SHADOWABLE:
        _under_runpy(program)
    else:
        _execute(program)


def _execute(program: Program) -> None:
    assert program.code is not None
    specs = targets_in(program.names)
    wanted = {spec.qualname.split(".")[0] for spec in specs}
    if not specs or program.source is None:
        _not_applied(specs, "compiled code without its source runs whole")
        exec(program.code, program.namespace)  # the program's own code, as python runs it
        _apply(program, specs, None)
        return
    for group, bound in _groups(program, wanted):
        exec(group, program.namespace)  # the program's own code, one group of top-level statements
        if bound:
            _apply(program, specs, bound)
    _apply(program, specs, None)  # a target the code never defined: reported as for an imported module


def _not_applied(specs: list[TargetSpec], why: str) -> None:
    """Say that the program's ``__main__`` targets record nothing (they are wrapped as the program defines them only
    in source the launcher runs itself): logged and counted, as a target that cannot be wrapped is."""
    for spec in specs:
        patching.not_wrapped(spec.target, RuntimeError(f"{why}, without agent-otel's wrapping of its targets"))


def _looks_up(function: object, *names: str) -> bool:
    code = getattr(function, "__code__", None)
    return code is not None and set(names) <= set(code.co_names)


#: runpy runs a ``-m`` module as :func:`_under_runpy` expects: its main function looks its details up and calls
#: ``_run_code``, which runs the code with ``exec`` (a global lookup that a global of runpy's own shadows). On a
#: Python whose runpy does otherwise, the module runs without runpy's frames.
_RUNPY_SHADOWABLE = _looks_up(getattr(runpy, "_run_module_as_main", None), "_get_module_details", "_run_code") \
    and _looks_up(getattr(runpy, "_run_code", None), "exec")


def _as_python_runs_module(name: str, lookup: Callable[[str], tuple[str, Any, CodeType]], then: str,
                           replacement: Callable[..., Any] | None) -> None:
    """Call runpy's main function for module ``name`` as ``python -m`` calls it, so that the frames of that call
    are runpy's own, with two of its globals replaced, each for one use: its lookup of the module's details is
    ``lookup``, run with runpy as it is (the package it imports may use runpy itself); once that has returned,
    ``then`` (``_run_code``, or ``exec``, a global that shadows the builtin) is ``replacement`` (None: left as it
    is), and only runpy's own code runs until it is used. Each is put back at its use (``exec`` removed), and in
    any case at the end."""
    namespace = vars(runpy)
    originals = {key: namespace.get(key) for key in ("_get_module_details", then)}

    def put_back(key: str) -> None:
        if originals[key] is None:
            namespace.pop(key, None)
        else:
            namespace[key] = originals[key]

    def details(mod_name: str, error: type[Exception]) -> tuple[str, Any, CodeType]:
        put_back("_get_module_details")
        found = lookup(mod_name)
        if replacement is not None:
            use = replacement

            def replaced(*args: Any, **kwargs: Any) -> Any:
                put_back(then)
                return use(*args, **kwargs)

            namespace[then] = replaced
        return found

    namespace["_get_module_details"] = details
    try:
        runpy._run_module_as_main(name)  # type: ignore[attr-defined]  # as python calls it (sys.argv[0] set)
    finally:
        put_back("_get_module_details")
        put_back(then)


def _module_details(name: str) -> tuple[str, Any, CodeType]:
    """runpy's lookup of a ``-m`` module (its own, so that every refusal reads as python's: it has no public
    equivalent), made inside runpy's main function, so that the traceback of a package that fails to import starts
    with its frame, as under ``python -m``; its ``_run_code`` runs nothing then."""
    lookup = runpy._get_module_details  # type: ignore[attr-defined]
    if not _RUNPY_SHADOWABLE:
        return lookup(name, ModuleNotRunnable)  # type: ignore[no-any-return]
    found: list[tuple[str, Any, CodeType]] = []

    def details(mod_name: str) -> tuple[str, Any, CodeType]:
        found.append(lookup(mod_name, ModuleNotRunnable))  # raised out of runpy, which catches its own only
        return found[-1]

    _as_python_runs_module(name, details, "_run_code", lambda *args, **kwargs: None)
    return found[-1]


def _under_runpy(program: Program) -> None:
    """Run a ``-m`` module inside runpy's own two frames (``_run_module_as_main``, ``_run_code``), as ``python -m``
    does, so that an uncaught exception's traceback shows them as under python: runpy's main function is given
    the module's details found already. A module with no targets runs in runpy's own ``exec``: the frame that
    called its code is runpy's, as under python (a warning its top level raises with ``stacklevel=2`` is
    python's ``<frozen runpy>``, ``sys._getframe(1)`` there is runpy's); one with targets, in :func:`_execute`,
    which wraps them between its statements."""
    spec = program.module.__spec__
    assert spec is not None
    if not targets_in(program.names):
        _as_python_runs_module(spec.name, lambda name: (name, spec, program.code), "exec", None)  # type: ignore[arg-type,return-value]
        return
    ran: list[bool] = []

    def execute(code: CodeType, run_globals: dict[str, object]) -> None:
        ran.append(True)
        _execute(program)

    _as_python_runs_module(spec.name, lambda name: (name, spec, program.code), "exec", execute)  # type: ignore[arg-type,return-value]
    if not ran:  # runpy ran the code itself, without the targets: counted, never raised into the program's exit
        report_error("autoinstrument.target", RuntimeError("runpy ran the module without agent-otel's targets"))


def main_of(program: Program) -> str | None:
    """What a ``multiprocessing`` worker is told to run again as ``__mp_main__`` for this program: the script's
    path, or the ``-m`` module's name (``python -c`` code has neither: no worker runs it again)."""
    spec = getattr(program.module, "__spec__", None)
    if spec is not None:
        return str(spec.name)
    if program.code is not None and program.filename != "<string>":
        return os.path.normpath(program.filename)
    return None


def wrap_in_workers(main: str) -> None:
    """Wrap the ``__main__`` targets in the ``multiprocessing`` workers of the program (``main``, see
    :func:`main_of`) started by spawn or forkserver too: they run it again as ``__mp_main__``, through runpy,
    which no import hook sees, and the functions a pool sends them are looked up there. (A forked worker has
    the program's own, wrapped.)"""

    def on_import(module: ModuleType) -> None:
        for name in ("_fixup_main_from_path", "_fixup_main_from_name"):
            if callable(getattr(module, name, None)):
                wrapt.wrap_function_wrapper(module, name, functools.partial(_run_again, main))

    wrapt.register_post_import_hook(on_import, "multiprocessing.spawn")


def _run_again(main: str, wrapped: Callable[..., None], instance: object, args: tuple[object, ...],
               kwargs: dict[str, object]) -> None:
    """``_fixup_main_from_path(path)`` or ``_fixup_main_from_name(name)`` in a worker: the script or module
    run as runpy runs it, then, when it is the program's, its targets wrapped."""
    before = sys.modules.get(_MP_MAIN)
    wrapped(*args, **kwargs)
    after = sys.modules.get(_MP_MAIN)
    if not args or args[0] != main or after is None or after is before:
        return
    try:
        names = (MAIN, _module_name(main) if os.path.isabs(main) else main)
        _apply_again(after, targets_in([name for name in names if name]))
    except Exception as exc:  # the worker runs on, untraced
        report_error("autoinstrument.target", exc)


def _apply_again(module: ModuleType, specs: list[TargetSpec]) -> None:
    """Wrap ``specs`` in a worker's ``__mp_main__``. Its namespace is a copy of the one runpy ran the script in,
    where its functions still read their globals: a function target is replaced there too, so that the
    script's own calls of it are traced, as in the program."""
    originals = {spec.qualname: module.__dict__.get(spec.qualname) for spec in specs if "." not in spec.qualname}
    apply_targets(module, specs)
    for name, original in originals.items():
        if isinstance(original, FunctionType):
            namespace = original.__globals__
            if namespace is not module.__dict__ and namespace.get(name) is original:
                namespace[name] = module.__dict__[name]


def _module_file(name: str) -> str | None:
    """The file of module ``name``, without importing it."""
    spec = importlib.util.find_spec(name)
    return spec.origin if spec is not None else None


#: The files of the wrappers' own frames, which a traceback printed for the program leaves out: ours, and the
#: threading instrumentation's, which the launcher turns on to carry the context into threads and pools.
_WRAPPER_FILES = frozenset(file for file in (patching.__file__, wrappers.__file__, __file__,
                                             _module_file("opentelemetry.instrumentation.threading"))
                           if file is not None)


def _program_frames(tb: TracebackType | None) -> TracebackType | None:
    kept = []
    while tb is not None:
        if tb.tb_frame.f_code.co_filename not in _WRAPPER_FILES:
            kept.append(tb)
        tb = tb.tb_next
    rebuilt = None
    for entry in reversed(kept):
        rebuilt = TracebackType(rebuilt, entry.tb_frame, entry.tb_lasti, entry.tb_lineno)
    return rebuilt


def program_traceback(error: BaseException, *launcher_files: str) -> TracebackType | None:
    """The traceback of an uncaught ``error`` as plain python prints it: from the first frame that is
    not the launcher's (``launcher_files`` and this module) on, without the wrappers' frames (also in
    the exceptions it chains)."""
    own = {__file__, *launcher_files}
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None and tb.tb_frame.f_code.co_filename in own:
        tb = tb.tb_next
    seen = {id(error)}
    chained = [error.__cause__, error.__context__]
    while chained:
        other = chained.pop()
        if other is None or id(other) in seen:
            continue
        seen.add(id(other))
        other.__traceback__ = _program_frames(other.__traceback__)
        chained.extend((other.__cause__, other.__context__))
    return _program_frames(tb)
