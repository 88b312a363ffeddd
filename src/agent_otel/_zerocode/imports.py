"""Every import of a target's module, through wrapt's post-import hooks.

wrapt runs a hook once, when the module is first imported. A module imported again has new functions and classes
that the hook must wrap too: ``importlib.reload`` (an autoreloader, a plugin reloaded) and a module dropped from
``sys.modules`` and imported again (tests re-importing with another environment) left the targets unwrapped, their
calls unrecorded and nothing said. So each hook is registered again as it runs.

wrapt also learns of an import only from its finder on ``sys.meta_path``, when no finder in front of it loads the module
first. An import hook inserted in front since (pytest's assertion rewriter for a module registered with
``register_assert_rewrite``, typeguard's or jaxtyping's ``install_import_hook``) loaded the module without it. The
finder here stays in front of wrapt's and puts both back in front at the next import that reaches it. A module a
finder in front loaded meanwhile has its targets wrapped then, late (counted and said: names bound to them before
keep the originals).
"""

from __future__ import annotations

import atexit
import logging
import sys
import threading
import weakref
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import wrapt
from wrapt import importer as wrapt_importer  # type: ignore[attr-defined]  # (a submodule wrapt does not re-export)

from agent_otel._engine.self_telemetry import report_error

logger = logging.getLogger("agent_otel")

Hook = Callable[[ModuleType], None]


class _Watch:
    """The hooks of one module, and the module they last ran for."""

    __slots__ = ("hooks", "ran_for")

    def __init__(self) -> None:
        self.hooks: list[tuple[Hook, Callable[[], bool]]] = []
        self.ran_for: weakref.ref[ModuleType] | None = None


_lock = threading.RLock()
_watched: dict[str, _Watch] = {}
_exit_registered = False


def on_every_import(name: str, hook: Hook, watching: Callable[[], bool]) -> None:
    """Run ``hook`` with module ``name`` when it is imported (at once when it is already), and again at each import of
    it after that, while ``watching()`` says so."""
    global _exit_registered
    with _lock:
        if not _exit_registered:  # (before an exit flush registered earlier, counted in what it sends)
            _exit_registered = True
            atexit.register(_say_missed)
        watch = _watched.setdefault(name, _Watch())
        watch.hooks = [*(held for held in watch.hooks if held[1]()), (hook, watching)]  # (those of an earlier
        # instrument() stopped watching when it was undone)
    wrapt.register_post_import_hook(_runner(name, hook, watching), name)  # (wrapt's finder goes first on the first)
    _KEEPER.to_front()


def _runner(name: str, hook: Hook, watching: Callable[[], bool]) -> Hook:
    def run(module: ModuleType) -> None:
        if not watching():
            return
        with _lock:
            watch = _watched.get(name)
            if watch is not None:
                watch.ran_for = weakref.ref(module)
        _again(name, run)  # first: the hook may import the module's package again
        hook(module)

    return run


def _again(name: str, run: Hook) -> None:
    """Register ``run`` with wrapt again for the next import of ``name`` (wrapt's public call would run it at once, the
    module being imported; its table of hooks is read as wrapt's own ``register_post_import_hook`` writes it)."""
    hooks: dict[str, list[Hook]] | None = getattr(wrapt_importer, "_post_import_hooks", None)
    hooks_lock: Any = getattr(wrapt_importer, "_post_import_hooks_lock", None)
    if not isinstance(hooks, dict) or hooks_lock is None:
        report_error("autoinstrument.reimport", RuntimeError("wrapt's post-import hooks cannot be registered again"))
        return
    with hooks_lock:
        hooks.setdefault(name, []).append(run)


def _initializing(module: ModuleType) -> bool:
    """Whether the module's code is still running (its import under way: the flag importlib sets on its spec)."""
    return bool(getattr(getattr(module, "__spec__", None), "_initializing", False))


def _imported_past_wrapt() -> tuple[list[tuple[ModuleType, list[Hook]]], bool]:
    """The watched modules imported without wrapt's finder since their hooks last ran (marked as run), with their
    hooks still watching; and whether another one is still running its code."""
    found: list[tuple[ModuleType, list[Hook]]] = []
    pending = False
    with _lock:
        for name, watch in list(_watched.items()):
            hooks = [hook for hook, watching in watch.hooks if watching()]
            if not hooks:  # (an instrument() undone since)
                del _watched[name]
                continue
            module = sys.modules.get(name)
            if module is None or (watch.ran_for is not None and watch.ran_for() is module):
                continue
            if _initializing(module):
                pending = True
                continue
            watch.ran_for = weakref.ref(module)
            found.append((module, hooks))
    return found, pending


def _said(module: ModuleType, what: str) -> None:
    loader = type(getattr(getattr(module, "__spec__", None), "loader", None)).__name__
    logger.warning("agent-otel: %s was imported by an import hook in front of agent-otel's (%s): %s", module.__name__,
                   loader, what)
    report_error("autoinstrument.late", LookupError("a target's module was imported past agent-otel's import hook"))


def _catch_up() -> bool:
    """Run the hooks of the watched modules that an import hook in front of wrapt's loaded without it; True while one
    of them is still running its code (caught up at a later import)."""
    found, pending = _imported_past_wrapt()
    for module, hooks in found:
        _said(module, "its targets are wrapped now; names bound to them before keep the originals")
        for hook in hooks:
            hook(module)
    return pending


def _say_missed() -> None:
    """At exit: what was imported past wrapt's finder with no import after it to catch it up was never wrapped."""
    try:
        for module, _ in _imported_past_wrapt()[0]:
            _said(module, "its targets were not wrapped (no import reached agent-otel's after it)")
    except Exception as exc:  # at exit: never raised
        report_error("autoinstrument.import", exc)


class _FrontKeeper:
    """A finder that finds nothing: on ``sys.meta_path`` in front of wrapt's, it sees every import that reaches wrapt's
    and puts the two back in front when another finder went there (see the module)."""

    def __init__(self) -> None:
        #: A finder went in front: a watched module may have been imported without wrapt, or be being imported
        self.overtaken = False

    def to_front(self) -> None:
        """Put this finder, then wrapt's, first on ``sys.meta_path`` (in place, as import hooks are inserted)."""
        meta_path = sys.meta_path
        wanted = [self, *(finder for finder in meta_path if isinstance(finder, wrapt_importer.ImportHookFinder))]
        if len(meta_path) >= len(wanted) and all(
                held is finder for held, finder in zip(meta_path[:len(wanted)], wanted, strict=True)):
            return
        meta_path[:] = [*wanted, *(finder for finder in meta_path if not any(finder is own for own in wanted))]

    def in_front(self) -> bool:
        """Whether this finder, then wrapt's, are first on ``sys.meta_path``."""
        meta_path = sys.meta_path
        return len(meta_path) > 1 and meta_path[0] is self and isinstance(meta_path[1], wrapt_importer.ImportHookFinder)

    def find_spec(self, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None) -> None:
        try:
            if not self.in_front():
                self.to_front()
                self.overtaken = True
            if self.overtaken:
                self.overtaken = _catch_up()
        except Exception as exc:  # never break the program's import
            report_error("autoinstrument.import", exc)
        return None

    def invalidate_caches(self) -> None:
        """Nothing cached."""


_KEEPER = _FrontKeeper()
