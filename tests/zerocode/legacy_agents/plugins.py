"""A plugin registry: plugins register by name and run through the registry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class PluginRegistry:
    def __init__(self) -> None:
        self._plugins: dict[str, Callable[..., Any]] = {}

    def register(self, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def add(func: Callable[..., Any]) -> Callable[..., Any]:
            self._plugins[name] = func
            return func

        return add

    def run(self, name: str, *args: Any) -> Any:
        return self._plugins[name](*args)


REGISTRY = PluginRegistry()


@REGISTRY.register("lint")
def lint(path: str) -> str:
    return f"{path}: lint ok"


@REGISTRY.register("format")
def format_file(path: str) -> str:
    return f"{path}: formatted"
