"""``collection.running()``: whether the garbage collector is running, which code a finalizer runs reads (it sets no
context variable there, and records on another thread). Kept by two of ``dict``'s methods as ``gc.callbacks``: no
Python code of agent-otel's runs in a collection (see ``tests/sdk/test_signals.py``)."""

from __future__ import annotations

import gc
from typing import Any

from agent_otel._engine import collection


def test_running_is_true_from_a_collections_start_to_its_stop_only() -> None:
    seen: list[tuple[str, bool, bool]] = []

    def look(phase: str, info: dict[str, Any]) -> None:  # after agent-otel's callbacks: they ran for this phase
        seen.append((phase, collection.running(), collection.current() is not None))

    gc.callbacks.append(look)
    try:
        assert not collection.running() and collection.current() is None
        gc.collect()
        gc.collect()
    finally:
        gc.callbacks.remove(look)
    assert seen == [("start", True, True), ("stop", False, False)] * 2
    assert not collection.running()
    ours = [callback for callback in gc.callbacks if getattr(callback, "__self__", None) is collection._phases]
    assert [callback.__name__ for callback in ours] == ["pop", "__setitem__"]
    assert not any((getattr(callback, "__module__", None) or "").startswith("agent_otel") for callback in gc.callbacks)
