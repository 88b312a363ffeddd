"""A function its decorator keeps where no wrapper of it reaches.

Some decorators return the function itself with an object of theirs on it that keeps the function (Burr's
``@action`` sets ``fn.action_function``, an action holding ``fn``), and their framework runs the function through
that object. A wrapper made of the function afterwards, by a decorator above it or by a config file naming it, is
passed over: ``functools.update_wrapper`` copies the attribute onto the wrapper, and the framework finds it there.
"""

from __future__ import annotations

import types


def kept_by(func: object) -> str | None:
    """The name of an attribute of ``func`` (a plain function) holding an object that keeps ``func`` itself, or None.
    Only the function's own attributes and their objects' own fields are read: no property or ``__getattr__`` of the
    program's runs."""
    if type(func) is not types.FunctionType:
        return None
    for name, value in vars(func).items():
        if name.startswith("__") or isinstance(value, type | types.FunctionType | types.ModuleType):
            continue
        try:
            fields = object.__getattribute__(value, "__dict__")
        except Exception:  # (no __dict__: slots, a built-in's value)
            continue
        if type(fields) is dict and any(field is func for field in fields.values()):
            return name
    return None
