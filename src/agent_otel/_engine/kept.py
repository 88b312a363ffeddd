"""A function its decorator keeps where a wrapper of it may be passed over.

Some decorators return the function itself with an object of theirs on it that keeps the function (Burr's
``@action`` sets ``fn.action_function``, an action holding ``fn``). A wrapper made of the function afterwards, by a
decorator above it or by a config file naming it, carries that attribute over (``functools.update_wrapper`` copies
it), and a framework that runs the function through the object never calls the wrapper. Others keep it and still call
the function by its name (Django REST framework's ``@action`` keeps it in ``mapping``; its router looks the method up
on the view): only the frameworks known to run the kept function (:data:`RUNS_KEPT`) are told apart.
"""

from __future__ import annotations

import inspect
import sys
import types

#: (module, class, framework) of the objects known to keep the function they are set on, and to run it from there.
RUNS_KEPT = (("burr.core.action", "FunctionBasedAction", "Burr's @action"),)


def kept_by(func: object) -> str | None:
    """The name of an attribute of ``func`` (a plain function) holding an object that keeps ``func`` itself, or None.
    For ``agent-otel check``: it reads the objects' own ``__dict__`` (a class-level ``__dict__`` descriptor runs)."""
    for name, value in _attributes(func):
        if issubclass(type(value), type | types.FunctionType | types.ModuleType):
            continue
        try:
            fields = object.__getattribute__(value, "__dict__")
        except Exception:  # (no __dict__: slots, a built-in's value)
            continue
        if type(fields) is dict and any(field is func for field in fields.values()):
            return name
    return None


def runs_kept(func: object) -> tuple[str, str] | None:
    """(attribute, framework) when ``func`` (a plain function) holds, in an attribute, an object of a framework known
    to run the function it keeps (:data:`RUNS_KEPT`) that keeps ``func``; None otherwise. Only the objects' classes are
    looked at (``type()``), then a known class's own ``__dict__``: nothing of the program's runs."""
    for name, value in _attributes(func):
        for module_name, class_name, framework in RUNS_KEPT:
            if is_instance_of(value, module_name, class_name) and any(field is func for field in vars(value).values()):
                return name, framework
    return None


def is_instance_of(value: object, module_name: str, class_name: str) -> bool:
    """Whether ``value``'s class is, or derives from, a framework's class named by its module and name: ``False``
    while that module is not imported (a framework's object cannot exist then), which is not imported to check. Its
    ``type()`` is read, never its ``__class__`` (a lazy proxy's may make what it stands for)."""
    module = sys.modules.get(module_name)
    kind = getattr(module, class_name, None) if module is not None else None
    return isinstance(kind, type) and issubclass(type(value), kind)


def _attributes(func: object) -> list[tuple[str, object]]:
    """A plain function's own attributes but the dunder ones (``__wrapped__``: what a wrapper wraps)."""
    if type(func) is not types.FunctionType:
        return []
    return [(name, value) for name, value in vars(func).items() if not name.startswith("__")]


#: The methods a pydantic model class keeps in its validation schema, made with the class
#: (``__pydantic_decorators__``): the slot of each kind, and what pydantic runs it as.
_PYDANTIC_KEPT = (("validators", "validator"), ("field_validators", "field validator"),
                  ("root_validators", "root validator"), ("model_validators", "model validator"),
                  ("field_serializers", "field serializer"), ("model_serializers", "model serializer"))


def kept_by_model(owner: type, attr: str) -> str | None:
    """What pydantic runs ``owner.attr`` as (``"field validator"``...) when ``owner`` is a pydantic model whose schema
    keeps that method: validation calls the function the schema kept when the class was made, never the class attribute
    a config's wrapper replaces. None otherwise (and while pydantic is not imported). Read with ``getattr_static`` and
    off pydantic's own record: nothing of the program's runs."""
    base = getattr(sys.modules.get("pydantic.main"), "BaseModel", None)
    if not isinstance(base, type) or not issubclass(owner, base):
        return None
    try:
        decorators = inspect.getattr_static(owner, "__pydantic_decorators__")
    except AttributeError:
        return None
    for slot, kind in _PYDANTIC_KEPT:
        kept = getattr(decorators, slot, None)
        if isinstance(kept, dict) and attr in kept:
            return kind
    return None
