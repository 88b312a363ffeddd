"""Callables an instance holds (``instance_attribute = true``): found and replaced in the instance's
own storage, and wrapped so that extractors see that instance as ``self``.

Some tools are closures kept in a field of an object: langchain-core's ``StructuredTool.func``, a
dataclass whose ``invoke`` field is a function. :mod:`agent_otel._zerocode.patching` hooks the class's
``__init__``; when it returns, the value is read from the instance's ``__dict__`` (or its slot) and
replaced there. No ``__setattr__`` runs, so pydantic validators (``validate_assignment``),
``model_fields_set``, frozen dataclasses and models and the program's own ``__setattr__`` see nothing;
the wrapper compares equal to and hashes as the callable, so the instance does too. An attribute that
a descriptor of the class manages (a property, ...) is left alone: :class:`NotHeld`.
"""

from __future__ import annotations

import copy
import inspect
import weakref
from collections.abc import Callable
from types import MemberDescriptorType
from typing import Any

from agent_otel._engine.wrappers import Wrapper, is_wrapper, wrapped_of

_ABSENT = object()


class NotHeld(Exception):
    """Why the attribute of an instance is not a value the instance holds, so it is not replaced."""


class HeldWrapper(Wrapper):
    """The wrapper an instance holds instead of its callable. It pickles as the callable does (by
    qualified name, see :class:`~agent_otel._engine.wrappers.Wrapper`), so an instance that pickled
    still does and its copy holds the plain callable. A copy of it is the callable itself: a deep copy
    of the instance holds the callable, not a wrapper whose ``self`` is the instance copied."""

    # Its ``_self_holder`` is a weak reference to the instance holding it (see :func:`reference`). No
    # annotation declares it: any annotation in a proxy's class body gives the class an ``__annotations__``
    # that shadows the wrapped callable's.
    __slots__ = ()

    def __copy__(self) -> object:
        return wrapped_of(self)

    def __deepcopy__(self, memo: dict[int, object]) -> object:
        return copy.deepcopy(wrapped_of(self), memo)


def is_ours(value: object) -> bool:
    """Whether ``value`` is already an agent-otel wrapper (decorated, configured, or held)."""
    return is_wrapper(value)


def _on_class(klass: type, attr: str) -> object:
    for base in klass.__mro__:
        if attr in base.__dict__:
            return base.__dict__[attr]
    return _ABSENT


def stored(instance: object, attr: str) -> tuple[object, Callable[[object], None]] | None:
    """The value ``attr`` holds in ``instance``'s own storage and how to replace it there; None when
    the instance holds nothing under that name. Runs none of the program's code."""
    klass = type(instance)
    static = _on_class(klass, attr)
    if isinstance(static, MemberDescriptorType):  # a slot
        try:
            value = static.__get__(instance, klass)
        except AttributeError:  # not set
            return None
        slot = static
        return value, lambda new: slot.__set__(instance, new)
    if static is not _ABSENT and (hasattr(type(static), "__set__") or hasattr(type(static), "__delete__")):
        raise NotHeld(f"{klass.__qualname__}.{attr} is managed by a {type(static).__name__} of the class, "
                      "not a value its instances hold")
    try:
        namespace = object.__getattribute__(instance, "__dict__")
    except AttributeError:
        return None
    if type(namespace) is not dict:
        raise NotHeld(f"{klass.__qualname__} instances keep their attributes in a {type(namespace).__name__}")
    if attr not in namespace:
        return None
    return namespace[attr], lambda new: namespace.__setitem__(attr, new)


def holder_signature(func: object) -> Callable[..., Any]:
    """What a handler reads ``func``'s parameters from: a stand-in named as ``func`` whose signature
    takes the holding instance first, as a method takes ``self``, so that ``self`` paths read the
    holder and ``args.x`` paths the callable's own parameters. It is never called."""

    def stand_in(*args: object, **kwargs: object) -> None:
        raise TypeError("a signature stand-in is not callable")

    name = getattr(func, "__name__", None)
    stand_in.__name__ = name if isinstance(name, str) else type(func).__name__
    qualname = getattr(func, "__qualname__", None)
    stand_in.__qualname__ = qualname if isinstance(qualname, str) else stand_in.__name__
    try:
        signature = inspect.signature(func)  # type: ignore[arg-type]  # checked callable by the caller
    except (TypeError, ValueError):
        return stand_in  # (*args, **kwargs): args read by keyword only
    holder = inspect.Parameter("agent_otel_holder", inspect.Parameter.POSITIONAL_ONLY)
    if holder.name not in signature.parameters:
        stand_in.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[holder, *signature.parameters.values()])
    return stand_in


def label(func: object) -> str | None:
    """``code.function.name`` of a held callable: its module and qualified name, when it has them."""
    module, qualname = getattr(func, "__module__", None), getattr(func, "__qualname__", None)
    return f"{module}.{qualname}" if isinstance(module, str) and isinstance(qualname, str) else None


def reference(holder: object) -> Callable[[], object]:
    """A reference from the wrapper to its holder that keeps no cycle alive when the holder can be
    weakly referenced (the holder is freed as it would be without agent-otel)."""
    try:
        return weakref.ref(holder)
    except TypeError:
        return lambda: holder
