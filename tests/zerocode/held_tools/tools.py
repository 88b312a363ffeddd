"""Tools whose function is a dataclass field, called through the tool object's public ``run``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple


@dataclass
class Tool:
    name: str
    invoke: Callable[..., Any]
    fallback: Callable[..., Any] | None = None

    def run(self, **kwargs: Any) -> Any:
        return self.invoke(**kwargs)


@dataclass(frozen=True)
class FrozenTool:
    name: str
    invoke: Callable[..., Any]

    def run(self, **kwargs: Any) -> Any:
        return self.invoke(**kwargs)


@dataclass(slots=True)
class SlotTool:
    name: str
    invoke: Callable[..., Any]

    def run(self, **kwargs: Any) -> Any:
        return self.invoke(**kwargs)


class AuditedTool(Tool):
    """Replaces the function after the base initialiser ran: the replacement is what gets called."""

    def __init__(self, name: str, invoke: Callable[..., Any]) -> None:
        super().__init__(name, invoke)
        self.calls: list[dict[str, Any]] = []
        self.invoke = self._audited(invoke)

    def _audited(self, invoke: Callable[..., Any]) -> Callable[..., Any]:
        def audited(**kwargs: Any) -> Any:
            self.calls.append(kwargs)
            return invoke(**kwargs)

        return audited


class Computed:
    """A tool whose ``invoke`` is a property of the class: no value an instance holds."""

    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def invoke(self) -> Callable[..., Any]:
        return add


class MadeByNew:
    """A tool built by its ``__new__`` alone (a flyweight, a cached factory): no ``__init__`` of its own."""

    name: str
    invoke: Callable[..., Any]

    def __new__(cls, name: str, invoke: Callable[..., Any]) -> MadeByNew:
        self = super().__new__(cls)
        self.name, self.invoke = name, invoke
        return self


class SpecTuple(NamedTuple):
    """A named tuple holding a tool: its fields are set by ``__new__``, and cannot be replaced."""

    name: str
    invoke: Callable[..., Any]


class NoConstructor:
    """A class with neither ``__init__`` nor ``__new__``: it takes no arguments."""

    name = "none"
    invoke = None


def add(a: int, b: int) -> int:
    return a + b


def make_scaler(factor: int) -> Callable[..., Any]:
    def scale(value: int) -> int:
        return value * factor

    return scale
