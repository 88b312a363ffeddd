"""Resolving ``"package.module:Qualified.name"`` targets to the object to wrap and its owner.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from dataclasses import dataclass
from types import ModuleType

from agent_otel._zerocode.config import TargetSpec


class TargetError(Exception):
    """Why a target cannot be resolved (shown by ``agent-otel check``)."""


@dataclass
class Resolved:
    owner: type | ModuleType  # the module or class whose attribute is replaced
    attr: str
    raw: object  # the object found (function, classmethod, staticmethod, other callable)
    defined_on: type | ModuleType  # the class (or module) whose __dict__ holds it
    shape: str  # "async method", "classmethod", "function", ...


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


def resolve_in(module: ModuleType, qualname: str) -> Resolved:
    """Find ``qualname`` in an imported module; raises TargetError saying why not."""
    parts = qualname.split(".")
    owner: type | ModuleType = module
    for index, part in enumerate(parts[:-1]):
        try:
            owner = inspect.getattr_static(owner, part)
        except AttributeError:
            where = ".".join(parts[:index]) or module.__name__
            raise TargetError(f"{where} has no attribute {part!r}") from None
        if not isinstance(owner, type):
            raise TargetError(f"{'.'.join(parts[: index + 1])} is {type(owner).__name__!r}, not a class")
    attr = parts[-1]
    defined_on: type | ModuleType
    if isinstance(owner, type):
        for klass in owner.__mro__:
            if attr in klass.__dict__:
                raw, defined_on = klass.__dict__[attr], klass
                break
        else:
            raise TargetError(f"class {owner.__qualname__} has no attribute {attr!r}")
    else:
        if attr not in vars(owner):
            raise TargetError(f"module {module.__name__} has no attribute {attr!r}")
        raw, defined_on = vars(owner)[attr], owner
    inner = getattr(raw, "_self_agent_otel_entry", None) and raw.__wrapped__
    probe = inner or raw
    if isinstance(probe, property):
        raise TargetError(f"{qualname} is a property; wrap its getter function instead")
    if isinstance(probe, type):
        raise TargetError(f"{qualname} is a class; name one of its methods (e.g. {qualname}.__call__)")
    if not (callable(probe) or isinstance(probe, classmethod | staticmethod)):
        raise TargetError(f"{qualname} is {type(probe).__name__!r}, not callable")
    return Resolved(owner, attr, raw, defined_on, describe_shape(probe, isinstance(owner, type)))


def resolve_target(spec: TargetSpec, import_module: bool = True) -> Resolved:
    module = sys.modules.get(spec.module)
    if module is None:
        if not import_module:
            raise TargetError(f"module {spec.module} is not imported yet")
        try:
            module = importlib.import_module(spec.module)
        except Exception as exc:
            raise TargetError(f"cannot import {spec.module}: {type(exc).__name__}: {exc}") from None
    return resolve_in(module, spec.qualname)
