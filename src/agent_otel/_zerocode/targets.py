"""Resolving ``"package.module:Qualified.name"`` targets to the object to wrap and its owner.
"""

from __future__ import annotations

import ast
import asyncio
import collections.abc
import concurrent.futures
import importlib
import inspect
import sys
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from types import FunctionType, ModuleType, UnionType
from typing import cast

from agent_otel._engine.kept import kept_by, kept_by_model, runs_kept
from agent_otel._engine.wrappers import is_plain_sync_function, makes_context_manager, wrapped_of
from agent_otel._zerocode.config import TargetSpec
from agent_otel._zerocode.decorator_results import agent_otel_decorator, dotted, object_made_by_decorator
from agent_otel._zerocode.queue_tasks import (
    HOLDERS,
    by_value_refusal,
    held_function,
    huey_refusal,
    is_celery_task,
    ray_actor_refusal,
)


class TargetError(Exception):
    """Why a target cannot be resolved (shown by ``agent-otel check``)."""


@dataclass
class Resolved:
    owner: type | ModuleType  # the module or class whose attribute is replaced
    attr: str
    raw: object  # the object found (function, classmethod, staticmethod, other callable)
    defined_on: type | ModuleType  # the class (or module) whose __dict__ holds it
    shape: str  # "async method", "classmethod", "function", ...


#: The shape of a target that names a Celery task, whose function is wrapped where it runs (see queue_tasks); those
#: that hold the function their runner calls have theirs (:func:`~agent_otel._zerocode.queue_tasks.held_function`).
CELERY_TASK = "Celery task"


def describe_shape(raw: object, in_class: bool) -> str:
    func = getattr(raw, "__func__", raw)
    if isinstance(raw, classmethod):
        base = "classmethod"
    elif isinstance(raw, staticmethod):
        base = "staticmethod"
    elif in_class and inspect.isfunction(func):
        base = "method"
    elif inspect.isfunction(func) or inspect.isbuiltin(func):
        base = "function"
    else:
        base = "callable " + type(raw).__name__
    if inspect.isasyncgenfunction(func):
        return "async generator " + base
    if inspect.isgeneratorfunction(func):
        return "generator " + base
    if inspect.iscoroutinefunction(func):
        return "async " + base
    return base


_MISSING = object()


def _lazy_attribute(module: ModuleType, name: str) -> object:
    """``module.name`` from a module-level ``__getattr__`` (PEP 562: frameworks such as langchain load
    their classes lazily this way), or _MISSING. It imports what the program's own first use would."""
    if "__getattr__" not in vars(module):
        return _MISSING
    try:
        return getattr(module, name)
    except Exception:
        return _MISSING


def _defining_module(module: ModuleType, name: str, found: object) -> ModuleType:
    """Where a lazily exported function really lives (its ``__module__``), so that it is wrapped there
    for every importer; ``module`` when that is not plainly the same object."""
    home = sys.modules.get(getattr(found, "__module__", None) or "")
    return home if home is not None and vars(home).get(name) is found else module


def _owner(module: ModuleType, parts: list[str]) -> type | ModuleType:
    """The class (or the module) that ``parts[:-1]`` names in ``module``."""
    owner: type | ModuleType = module
    for index, part in enumerate(parts[:-1]):
        try:
            owner = inspect.getattr_static(owner, part)
        except AttributeError:
            lazy = _lazy_attribute(owner, part) if isinstance(owner, ModuleType) else _MISSING
            if lazy is _MISSING:
                where = ".".join(parts[:index]) or module.__name__
                raise TargetError(f"{where} has no attribute {part!r}") from None
            owner = lazy  # type: ignore[assignment]  # checked to be a class below
        if not issubclass(type(owner), type):  # (not isinstance(): a proxy's __class__ may make what it stands for)
            named = ".".join(parts[: index + 1])
            holder = CELERY_TASK if is_celery_task(owner) else held_function(owner)
            if holder is not None:
                raise TargetError(f"{named} is a {holder}: name it as {named!r} (its function is wrapped where it "
                                  "runs)")
            actor = ray_actor_refusal(owner)
            if actor is not None:
                raise TargetError(f"{named} is {actor}")
            raise TargetError(f"{named} is {type(owner).__name__!r}, not a class")
    return cast(type, owner)


#: ``Py_TPFLAGS_IMMUTABLETYPE``: a class whose attributes cannot be set (``datetime.datetime``, ``dict``), which
#: ``check`` said was fine to wrap and ``run`` then could not.
_IMMUTABLE_TYPE = 1 << 8


def is_built_in(klass: type) -> bool:
    """Whether ``klass`` is a built-in (immutable) type, whose attributes cannot be replaced (setattr refuses)."""
    return bool(klass.__flags__ & _IMMUTABLE_TYPE)


def _served_instead(owner: type, attr: str) -> str:
    """For a class that gives ``attr`` from its metaclass's ``__getattr__`` (litellm's ``Router.completion``), what
    to target instead: the function it gives, where that function is defined. Nothing can be replaced on the class
    itself. Empty when it gives nothing, or nothing a target can name."""
    try:
        given = getattr(owner, attr)  # the error path only: the class's own lookup, as the program's code runs it
        function = inspect.unwrap(getattr(given, "__func__", given)) if callable(given) else None
        module, qualname = getattr(function, "__module__", None), getattr(function, "__qualname__", "")
    except Exception:  # anything the program's objects raise (a __wrapped__ loop): no hint
        return ""
    if not isinstance(module, str) or not isinstance(qualname, str) or "<" in qualname or module == "builtins":
        return ""
    return (f" of its own (its metaclass's __getattr__ gives it, where nothing can be replaced): "
            f"target the function it gives, \"{module}:{qualname}\"")


def resolve_in(module: ModuleType, qualname: str) -> Resolved:
    """Find ``qualname`` in an imported module; raises TargetError saying why not."""
    parts = qualname.split(".")
    owner = _owner(module, parts)
    attr = parts[-1]
    defined_on: type | ModuleType
    if isinstance(owner, type) and is_built_in(owner):
        raise TargetError(f"class {owner.__qualname__} is a built-in type, whose attributes cannot be replaced "
                          f"(setattr refuses); wrap the program's function that calls {qualname}")
    if isinstance(owner, type):
        for klass in owner.__mro__:
            if attr in klass.__dict__:
                raw, defined_on = klass.__dict__[attr], klass
                break
        else:
            raise TargetError(f"class {owner.__qualname__} has no attribute {attr!r}{_served_instead(owner, attr)}")
    else:
        if attr not in vars(owner):
            lazy = _lazy_attribute(owner, attr)
            if lazy is _MISSING:
                raise TargetError(f"module {module.__name__} has no attribute {attr!r}")
            owner = _defining_module(owner, attr, lazy)
        raw, defined_on = vars(owner).get(attr, _MISSING), owner
        if raw is _MISSING:  # only the module's __getattr__ gives it: wrap it on the module
            raw = _lazy_attribute(owner, attr)
    if is_celery_task(raw):  # (before anything reads its attributes: see queue_tasks)
        return Resolved(owner, attr, raw, defined_on, CELERY_TASK)
    held = held_function(raw)
    if held is not None:
        by_value = by_value_refusal(held, getattr(raw, HOLDERS[held].attribute, None))
        if by_value is not None:
            raise TargetError(f"{qualname} is {by_value}")
        return Resolved(owner, attr, raw, defined_on, held)
    refusal = huey_refusal(raw) or ray_actor_refusal(raw)
    if refusal is not None:
        raise TargetError(f"{qualname} is {refusal}")
    try:  # our wrapper's; a program's object whose __getattr__ answers every name is none (check's traceback)
        inner = getattr(raw, "_self_agent_otel_entry", None) and wrapped_of(raw)
    except Exception:
        inner = None
    probe = inner or raw
    if isinstance(probe, property):
        raise TargetError(f"{qualname} is a property, which a config file cannot wrap: target the method it calls, "
                          "or decorate its getter in code (@property over @agent_otel.tool(...) or another kind)")
    if isinstance(probe, type):
        raise TargetError(class_refusal(qualname, [name for name, value in vars(probe).items()
                                                    if isinstance(value, FunctionType | classmethod | staticmethod)]))
    if not (callable(probe) or isinstance(probe, classmethod | staticmethod)):
        raise TargetError(f"{qualname} is {type(probe).__name__!r}, not callable{_what_it_calls(probe, qualname)}")
    return Resolved(owner, attr, raw, defined_on, describe_shape(probe, isinstance(owner, type)))


def class_refusal(qualname: str, methods: list[str]) -> str:
    """Why a class is no target, naming methods it defines (``__init__`` records building one): it suggested
    ``__call__`` whatever the class, which a class without one then refused."""
    if not methods:
        return (f"{qualname} is a class, which defines no method in Python; name a function that makes or uses it, "
                "or a method it inherits")
    shown = [f"{qualname}.{name}" for name in sorted(methods, key=lambda name: name != "__init__")[:3]]
    return f"{qualname} is a class; name one of its methods ({', '.join(shown)}{', ...' if len(methods) > 3 else ''})"


def _what_it_calls(descriptor: object, qualname: str) -> str:
    """A hint for a descriptor that is no callable (``functools.partialmethod``, ``singledispatchmethod``,
    ``cached_property``): the function it runs, to target instead when it has a name of its own, else to decorate."""
    try:  # (the program's object: a lazy proxy's __getattr__ may raise anything)
        runs = getattr(descriptor, "func", None) or getattr(descriptor, "fget", None)
        name = getattr(runs, "__qualname__", None)
    except Exception:
        return ""
    if not isinstance(name, str):
        return ""
    if name.rpartition(".")[2] != qualname.rpartition(".")[2]:
        return f"; target the function it runs ({name})"
    return "; decorate the function it runs in code, under the decorator that made it"


def resolve_instance_attribute(module: ModuleType, qualname: str) -> Resolved:
    """The class of a ``Class.attribute`` target whose attribute is a callable each instance holds
    (``instance_attribute = true``); raises TargetError when the class does not resolve, or when the
    class itself defines the attribute as a method or property (then it is no instance's value)."""
    parts = qualname.split(".")
    owner = _owner(module, parts)
    if not isinstance(owner, type):
        raise TargetError(f"{qualname} names no attribute of a class; instance_attribute = true needs "
                          "\"package.module:Class.attribute\"")
    attr = parts[-1]
    fields = {*getattr(owner, "__dataclass_fields__", ()), *getattr(owner, "__pydantic_fields__", ())}
    for klass in owner.__mro__:
        if attr in klass.__dict__ and attr not in fields:
            found = klass.__dict__[attr]
            if inspect.isfunction(found) or isinstance(found, classmethod | staticmethod | property):
                what = "property" if isinstance(found, property) else describe_shape(found, True)
                what = ("an " if what[0] in "aeiou" else "a ") + what
                raise TargetError(f"{qualname} is {what} of class {klass.__qualname__}, not an attribute of its "
                                  "instances; remove instance_attribute")
            break
    return Resolved(owner, attr, None, owner, f"instance attribute of {owner.__qualname__}")


def resolve_target(spec: TargetSpec, import_module: bool = True) -> Resolved:
    module = sys.modules.get(spec.module)
    if module is None:
        if not import_module:
            raise TargetError(f"module {spec.module} is not imported yet")
        try:
            module = importlib.import_module(spec.module)
        except (Exception, SystemExit) as exc:  # (a module that exits when imported without its settings, an
            # API key unset: `check` reports it, with its other targets, rather than exit with the module's code)
            why = f"SystemExit({exc.code!r})" if isinstance(exc, SystemExit) and not str(exc) else \
                f"{type(exc).__name__}: {exc}"
            raise TargetError(f"cannot import {spec.module}: {why}") from None
    if spec.instance_attribute:
        return resolve_instance_attribute(module, spec.qualname)
    return resolve_in(module, spec.qualname)


# --------------------------------------------------------------------------------------------------
# Targets in a script, found by reading it (``agent-otel check --script``): it is parsed, never run
# --------------------------------------------------------------------------------------------------


class BoundAtRunTime(Exception):
    """The script binds the name by an assignment: what it holds is known only when the script runs."""


@dataclass
class InScript:
    shape: str
    note: str = ""  # "inherited from Base"
    imported: str = ""  # "pkg.mod:name" when the script imports the name: resolve that instead
    #: the function's parameters, read from its source (for the checks `run` makes when it wraps it)
    signature: inspect.Signature | None = None
    #: agent-otel's decorator over it in its source, as the script writes it (see agent_otel_decorator)
    ours: str = ""


#: Decorators that leave a function's parameters as its source declares them.
_SAME_PARAMETERS = frozenset({"staticmethod", "classmethod", "abstractmethod"})
#: Decorators that make a method a property: a config file cannot wrap one.
_PROPERTIES = frozenset({"property", "cached_property"})


def _is_property(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """``@property``, ``@functools.cached_property``, ``@name.setter``...: a property's accessor, by its source."""
    for decorator in function.decorator_list:
        name = decorator.id if isinstance(decorator, ast.Name) else decorator.attr if isinstance(
            decorator, ast.Attribute) else None
        if name in _PROPERTIES or name in ("setter", "getter", "deleter"):
            return True
    return False


def registry_note(function: ast.FunctionDef | ast.AsyncFunctionDef, tree: ast.Module, wrappers: int = 0) -> str:
    """What ``check`` says of a function under a decorator that may keep it where the config's wrapper cannot reach:
    a registry it fills (``@app.get``, ``@agent.tool_plain``, ``@mcp.tool()``: an object's method) holds the function as
    it was defined, and the calls through it record nothing ("" when no such decorator is there). A module's function
    (``@functools.partial``, ``@tenacity.retry(...)``: the module ``tree`` imports it with ``import``) is a wrapper the
    name then holds, as a plain name's is. ``wrappers``: how many wrappers the name holds around the function (each with
    its ``__wrapped__``); as many as its decorators, each one made a wrapper, and none is a registry that kept the
    function as it was given (LlamaIndex's ``@dispatcher.span``, a tracing decorator)."""
    if wrappers and wrappers >= len(function.decorator_list):
        return ""
    modules = {alias.asname or alias.name.partition(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
               for alias in node.names} - _assigned(tree)
    names = [dotted(decorator) for decorator in function.decorator_list]
    others = [name for name in names if name is not None and "." in name  # (a plain name's: a wrapper, ``@retry``)
              and not (name.count(".") == 1 and name.partition(".")[0] in modules)]  # (``server.app.route``: one)
    if not others:
        return ""
    return (f"decorated with @{others[0]}: if it registers the function (a route, a tool), the calls through that "
            "registry are not recorded; decorate the def with agent-otel's decorator instead")


def _assigned(tree: ast.Module) -> set[str]:
    """The names the module's own statements bind by assignment (``mcp = FastMCP(...)`` after ``import mcp``)."""
    return {target.id for node in tree.body if isinstance(node, ast.Assign | ast.AnnAssign)
            for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
            if isinstance(target, ast.Name)}


def registry_note_of(function: object) -> str:
    """:func:`registry_note` for a function object, read off its module's source (\"\" when that cannot be read); or
    what its decorator keeps of it (:mod:`agent_otel._engine.kept`: Burr's ``@action``, Django REST framework's)."""
    wrappers = 0
    try:  # the program's objects: unwrapping may find a loop, and the source be gone or not parse
        func = inspect.unwrap(function) if callable(function) else None
        inner = function
        while inner is not func and wrappers < 100:  # (unwrap() stopped a loop: its own limit)
            inner, wrappers = getattr(inner, "__wrapped__", func), wrappers + 1
        kept = runs_kept(func)
        if kept is not None:
            return (f"its attribute {kept[0]!r} keeps the function, and {kept[1]} runs the function from there: calls "
                    "through it are not recorded; decorate the def with agent-otel's decorator under it")
        attribute = kept_by(func)
        if attribute is not None:
            return (f"its attribute {attribute!r} keeps the function: if its framework runs the function from there, "
                    "calls through it are not recorded; decorate the def with agent-otel's decorator under the "
                    "decorator that set it")
        code = getattr(func, "__code__", None)
        if code is None:
            return ""
        with open(code.co_filename, encoding="utf-8") as source:
            tree = ast.parse(source.read())
    except Exception:
        return ""
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == code.co_name and (
                min([node.lineno, *(d.lineno for d in node.decorator_list)]) == code.co_firstlineno):
            return registry_note(node, tree, wrappers)
    return ""


def manager_note_of(function: object) -> str:
    """A note for a function ``@contextmanager`` made: the config's wrapper times the making of the manager, not the
    ``with`` block (agent-otel's decorator, above or under ``@contextmanager``, times the block)."""
    if not makes_context_manager(function):
        return ""
    return ("it makes a context manager (@contextmanager): the calls recorded are the making of it, not the with "
            "block; decorate the generator with agent-otel's decorator (above or under @contextmanager) to time the "
            "block")


def model_note(owner: object, attr: str) -> str:
    """A note for a method a pydantic model's schema keeps (a validator, a serializer): validation does not call the
    class attribute the config's wrapper replaces."""
    kind = kept_by_model(owner, attr) if isinstance(owner, type) else None
    if kind is None or not isinstance(owner, type):
        return ""
    return (f"pydantic runs it as {owner.__qualname__}'s {kind}, from the function it kept when the class was made: "
            "the calls validation makes are not recorded; decorate the def with agent-otel's decorator, under "
            f"the @{kind.replace(' ', '_')} (and any @classmethod)")


def awaitable_note_of(function: object) -> str:
    """A note for a sync function its annotation says returns an awaitable that is no coroutine or future (LlamaIndex's
    ``FunctionAgent.run`` returns a ``WorkflowHandler``): the call ends as it returns, before the work it hands out has
    run (see the README's *Sync functions returning a coroutine, future, generator or stream*). The annotation is read,
    not evaluated: a name the function's module holds, or a class; each member of a union (Agent Framework's
    ``Agent.run`` returns ``Awaitable[...] | ResponseStream[...]``). ``Awaitable`` itself says nothing: a coroutine is
    one."""
    try:  # the program's objects: unwrapping may find a loop, and an annotation name anything
        func = inspect.unwrap(function) if callable(function) else None
        if not is_plain_sync_function(func):
            return ""
        annotation: object = func.__annotations__.get("return")
        members = ([_named_in(func.__globals__, part.split("[", 1)[0].strip()) for part in _union_members(annotation)]
                   if isinstance(annotation, str) else typing.get_args(annotation) if typing.get_origin(annotation) in (
                       typing.Union, UnionType) else (annotation,))
        returned = next((cls for cls in (typing.get_origin(member) or member for member in members)
                         if isinstance(cls, type) and hasattr(cls, "__await__") and cls is not collections.abc.Awaitable
                         and not issubclass(cls, asyncio.Future | concurrent.futures.Future
                                            | collections.abc.Coroutine)), None)
        if returned is None:
            return ""
    except Exception:
        return ""
    return (f"returns {returned.__name__}, an awaitable that is no coroutine or future: the call ends as it returns, "
            f"not when that is awaited; name the function that awaits it")


def _union_members(annotation: str) -> list[str]:
    """The members of a union written ``A[...] | B``, split at the bars outside brackets."""
    members, depth, start = [], 0, 0
    for at, char in enumerate(annotation):
        depth += char == "["
        depth -= char == "]"
        if char == "|" and not depth:
            members.append(annotation[start:at])
            start = at + 1
    return [*members, annotation[start:]]


def _named_in(namespace: Mapping[str, object], dotted: str) -> object:
    """What ``dotted`` (``name`` or ``module.Class``) names in a module's namespace, attribute by attribute; None."""
    head, *rest = dotted.split(".")
    found = namespace.get(head)
    for part in rest:
        found = getattr(found, part, None)
    return found


def signature_in_source(function: ast.FunctionDef | ast.AsyncFunctionDef) -> inspect.Signature:
    """The parameters of a function as its source declares them (defaults stand in: they are not evaluated)."""
    arguments, kinds = function.args, inspect.Parameter
    given = [*arguments.posonlyargs, *arguments.args]
    defaulted = len(given) - len(arguments.defaults)
    parameters = [kinds(a.arg, kinds.POSITIONAL_ONLY if i < len(arguments.posonlyargs) else kinds.POSITIONAL_OR_KEYWORD,
                        default=None if i >= defaulted else kinds.empty) for i, a in enumerate(given)]
    if arguments.vararg:
        parameters.append(kinds(arguments.vararg.arg, kinds.VAR_POSITIONAL))
    parameters += [kinds(a.arg, kinds.KEYWORD_ONLY, default=None if d is not None else kinds.empty)
                   for a, d in zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True)]
    if arguments.kwarg:
        parameters.append(kinds(arguments.kwarg.arg, kinds.VAR_KEYWORD))
    return inspect.Signature(parameters)


def bound_names(statement: ast.stmt) -> set[str]:
    """The module-level names a top-level statement may bind (an over-estimate: every name it stores)."""
    names: set[str] = set()
    pending: list[ast.AST] = [statement]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
            pending.extend(node.decorator_list)  # their bodies bind their own names, not the module's
            continue
        if isinstance(node, ast.Lambda):
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.alias):
            names.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.ExceptHandler | ast.MatchAs | ast.MatchStar) and node.name:
            names.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            names.add(node.rest)
        pending.extend(ast.iter_child_nodes(node))
    return names


def _binding(body: list[ast.stmt], name: str) -> ast.stmt | None:
    """The last statement of ``body`` that binds ``name``: a def, a class or a ``from ... import`` (None:
    none binds it); :class:`BoundAtRunTime` when it is any other statement."""
    last: ast.stmt | None = None
    for statement in body:
        if name in bound_names(statement):
            last = statement
    if last is None or isinstance(last, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.ImportFrom):
        return last
    raise BoundAtRunTime(f"line {last.lineno} binds {name!r}")


def _yields(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    pending: list[ast.AST] = list(function.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Yield | ast.YieldFrom):
            return True
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            pending.extend(ast.iter_child_nodes(node))
    return False


def _source_shape(function: ast.FunctionDef | ast.AsyncFunctionDef, in_class: bool) -> str:
    decorators = {d.id for d in function.decorator_list if isinstance(d, ast.Name)}
    base = next((d for d in ("classmethod", "staticmethod") if d in decorators and in_class),
                "method" if in_class else "function")
    if isinstance(function, ast.AsyncFunctionDef):
        return ("async generator " if _yields(function) else "async ") + base
    return ("generator " if _yields(function) else "") + base


def resolve_in_script(tree: ast.Module, qualname: str, label: str) -> InScript:
    """Find ``qualname`` among the script's top-level functions and classes and their methods (base
    classes defined in the script included); raises TargetError saying why not."""
    parts = qualname.split(".")
    node = _binding(tree.body, parts[0])
    if isinstance(node, ast.ImportFrom) and node.module and not node.level:
        name = next(a.name for a in node.names if (a.asname or a.name) == parts[0])
        return InScript("", imported=f"{node.module}:{'.'.join([name, *parts[1:]])}")
    if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        raise TargetError(f"{label} defines no top-level function or class {parts[0]!r}")
    path = [parts[0]]
    for part in parts[1:]:
        if not isinstance(node, ast.ClassDef):
            raise TargetError(f"{'.'.join(path)} is a function, not a class")
        owner = node
        node, note = _class_member(tree, owner, part, label)
        path.append(part)
        if node is None:
            assigned = _attribute_assignment(tree, owner.name, part)
            if assigned is not None:  # ``Agent.run = _run`` after the class: run wraps it then
                raise BoundAtRunTime(f"line {assigned.lineno} sets {owner.name}.{part}")
            raise TargetError(note)
    if isinstance(node, ast.ClassDef):
        raise TargetError(class_refusal(qualname, [item.name for item in node.body
                                                   if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)]))
    in_class = len(parts) > 1
    if in_class and _is_property(node):  # as resolve_in says of one it imports
        raise TargetError(f"{qualname} is a property, which a config file cannot wrap: target the method it calls, "
                          "or decorate its getter in code (@property over @agent_otel.tool(...) or another kind)")
    # a decorator other than these may give the function another signature (one that adds a timeout=): only
    # `run` knows it, so its parameters are not checked here
    plain = all(isinstance(d, ast.Name) and d.id in _SAME_PARAMETERS for d in node.decorator_list)
    made = object_made_by_decorator(node, tree)
    if made is not None and made.certain:  # as resolve_in says of the object it finds under an imported name
        raise TargetError(f"{qualname} is made a {made.made!r} by @{made.decorator} ({made.source}), not callable: "
                          f"run finds nothing to wrap; decorate the def with agent-otel's decorator under "
                          f"@{made.decorator}")
    made_note = "" if made is None else (
        f"@{made.decorator} ({made.source}) may make it a {made.made!r}, not callable: then run finds nothing to "
        f"wrap; decorate the def with agent-otel's decorator under @{made.decorator}")
    return InScript(_source_shape(node, in_class), ", ".join(filter(None, (note if in_class else "",
                                                                            registry_note(node, tree), made_note))),
                    signature=signature_in_source(node) if plain else None,
                    ours=agent_otel_decorator(node, tree) or "")


_Member = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


def attributes_set(statement: ast.stmt) -> list[tuple[str, str]]:
    """The ``(name, attribute)`` pairs a top-level statement sets (``Agent.run = _run``: a method assigned after
    its class, which ``run`` wraps after that statement)."""
    targets = (statement.targets if isinstance(statement, ast.Assign) else
               [statement.target] if isinstance(statement, ast.AnnAssign | ast.AugAssign) else [])
    return [(target.value.id, target.attr) for target in targets
            if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)]


def _attribute_assignment(tree: ast.Module, owner: str, name: str) -> ast.stmt | None:
    """The script's first top-level statement that sets ``owner.name``."""
    return next((statement for statement in tree.body if (owner, name) in attributes_set(statement)), None)


def _class_member(tree: ast.Module, klass: ast.ClassDef, name: str, label: str) -> tuple[_Member | None, str]:
    """The def or class ``name`` in ``klass`` or, depth first, in its bases defined at the script's top level."""
    pending, seen, outside = [klass], set(), []
    while pending:
        current = pending.pop(0)
        if current.name in seen:
            continue
        seen.add(current.name)
        for statement in current.body:
            if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and statement.name == name:
                return statement, "" if current is klass else f"inherited from {current.name}"
        for base in current.bases:
            try:
                defined = _binding(tree.body, base.id) if isinstance(base, ast.Name) else None
            except BoundAtRunTime:
                defined = None
            if isinstance(defined, ast.ClassDef):
                pending.append(defined)
            else:
                outside.append(ast.unparse(base))
    if outside:
        return None, (f"class {klass.name} in {label} has no method {name!r}; its bases {', '.join(outside)} are "
                      "not classes of the script (check resolves the script's own code without running it)")
    return None, f"class {klass.name} in {label} has no method {name!r}"
