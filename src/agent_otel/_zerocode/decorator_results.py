"""What a decorator in the program's script makes of the function under it, read off the decorator itself.

``check --script`` reads the script without running it, so a function under ``@tool`` (Haystack's, CrewAI's: it
returns a ``Tool`` object, which cannot be called) looked like a function and was said to be ok, while ``run`` found no
callable under the name and wrapped nothing. The decorator is imported from where the script imports it (a library,
never the script) and its own word is taken: a class makes an instance of it; a function says what it returns in its
return annotation."""

from __future__ import annotations

import ast
import collections.abc
import importlib
import inspect
import types
import typing
from dataclasses import dataclass


@dataclass(frozen=True)
class MadeObject:
    """A decorator that makes the function an object that cannot be called. ``certain``: it makes nothing else
    (else it may, by its annotation, return a callable too)."""

    decorator: str  # "tool", as the script writes it
    source: str  # "haystack.tools"
    made: str  # "Tool"
    certain: bool


def object_made_by_decorator(function: ast.FunctionDef | ast.AsyncFunctionDef, tree: ast.Module) -> MadeObject | None:
    """The first of the function's decorators, imported by the script at its top level, that makes it an object that
    cannot be called, by what the decorator says of itself (None when none does, or none can be read)."""
    imported = _imported_names(tree)
    for decorator in function.decorator_list:
        called = isinstance(decorator, ast.Call)
        written = dotted(decorator)
        if written is None:
            continue
        head, _, rest = written.partition(".")
        if head not in imported or rest.count("."):
            continue
        module, _, name = imported[head].partition(":")
        found = _imported(module, name, rest)
        if found is None:
            continue
        made = _made_by(found, called)
        uncallable = [cls for cls in made if not _instances_callable(cls)]
        if uncallable:
            return MadeObject(written, module, uncallable[0].__name__, len(uncallable) == len(made))
    return None


#: Decorators that leave the object under them as it is, or hold it as ``run`` finds it (a static or class method).
_SAME_OBJECT = frozenset({"staticmethod", "classmethod", "abstractmethod", "override", "final"})
#: agent-otel's decorators of a call (the kinds'): what they return is a wrapper ``run`` recognises.
_OUR_DECORATORS = frozenset({"agent", "tool", "provider", "evolution", "phase", "job", "conversation"})


def agent_otel_decorator(function: ast.FunctionDef | ast.AsyncFunctionDef, tree: ast.Module) -> str | None:
    """agent-otel's decorator of a call (``agent_otel.tool``, or ``tool`` imported from ``agent_otel``), as the script
    writes it, called, when it is the function's outermost one (those of :data:`_SAME_OBJECT` aside): ``run`` leaves
    such a function to it, a config entry naming it doing nothing. None otherwise (under another decorator, the object
    the name holds is that one's, which ``run`` wraps)."""
    decorators = [d for d in function.decorator_list if (dotted(d) or "").rpartition(".")[2] not in _SAME_OBJECT]
    if not decorators or not isinstance(decorators[0], ast.Call):  # (``@agent_otel.job`` bare: the name holds a proxy)
        return None
    written = dotted(decorators[0])
    if written is None:
        return None
    head, _, rest = written.partition(".")
    if _rebound(tree, head):
        return None
    module, _, name = _imported_names(tree).get(head, "").partition(":")
    if module != "agent_otel":
        return None
    kind = rest if not name else name if not rest else ""
    return written if kind in _OUR_DECORATORS else None


def _rebound(tree: ast.Module, name: str) -> bool:
    """Whether the script's top level binds ``name`` otherwise than by an import (``tool = other_tool``)."""
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, ast.AnnAssign | ast.AugAssign) else []
        if any(isinstance(target, ast.Name) and target.id == name for target in targets):
            return True
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node.name == name:
            return True
    return False


def _imported_names(tree: ast.Module) -> dict[str, str]:
    """The names the script's top-level imports bind: ``from m import n as a`` gives ``{"a": "m:n"}``, ``import m``
    ``{"m": "m:"}`` (absolute imports only: a relative one names no module outside the script's folder)."""
    names: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.update({alias.asname or alias.name: f"{node.module}:{alias.name}" for alias in node.names})
        elif isinstance(node, ast.Import):
            for alias in node.names:  # ``import a.b`` binds ``a``; ``import a.b as c``, ``a.b``
                module = alias.name if alias.asname else alias.name.partition(".")[0]
                names[alias.asname or module] = f"{module}:"
    return names


def dotted(node: ast.expr) -> str | None:
    """``@a.b.c`` or ``@a.b.c(...)``'s name, ``"a.b.c"`` (None for another expression)."""
    if isinstance(node, ast.Call):
        node = node.func
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return ".".join([node.id, *reversed(parts)]) if isinstance(node, ast.Name) else None


def _imported(module: str, name: str, attribute: str) -> object:
    """``module.name`` (or ``module.attribute`` for ``import module``), imported; None when it cannot be (check says
    nothing of a decorator it cannot read: ``run`` may still wrap what it makes)."""
    try:
        found: object = importlib.import_module(module)
        for part in filter(None, (name, attribute)):
            found = getattr(found, part)
    except Exception:  # (a library's import may fail in any way: the note is then left out)
        return None
    return found


def _made_by(decorator: object, called: bool) -> list[type]:
    """The classes of what ``@decorator`` (``called``: ``@decorator(...)``) may make of a function."""
    if isinstance(decorator, type):
        return [] if called else [decorator]  # (a class called first: its instance is the decorator, unread)
    try:
        returned = inspect.signature(typing.cast(collections.abc.Callable[..., object], decorator)).return_annotation
    except (TypeError, ValueError):
        return []
    members = _union_members(returned)
    if called:  # what the decorator it returns makes: a ``Callable[[...], R]``'s R
        members = [made for member in members if typing.get_origin(member) is collections.abc.Callable
                   for made in _union_members(typing.get_args(member)[-1])]
    else:  # a ``Callable`` in the union is the decorator it returns when given no function
        members = [member for member in members if typing.get_origin(member) is not collections.abc.Callable]
    return [member for member in members if isinstance(member, type) and member not in _SAYS_NOTHING]


#: Annotations that say nothing of what is returned (``typing.Any`` is a class since Python 3.11).
_SAYS_NOTHING: frozenset[object] = frozenset({inspect.Signature.empty, typing.Any, object})


def _union_members(annotation: object) -> list[object]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return list(typing.get_args(annotation))
    return [annotation]


def _instances_callable(cls: type) -> bool:
    return any("__call__" in vars(base) for base in cls.__mro__ if base is not object)
