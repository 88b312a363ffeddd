"""Configuration targets -> wrappers, without touching the program's code.

``instrument(config)`` registers a post-import hook (wrapt) for the module of every target: a
module imported later is wrapped the moment its code has run, so any ``from pkg.mod import fn``
executed afterwards binds the wrapped object; a module imported already is wrapped in place at once
(names other modules bound to the original before that keep the original: see the README).

``subclasses = true`` also wraps the overrides of a method in every subclass, those that exist and
those defined later (a ``__init_subclass__`` hook is installed on the base class), each attributed
to its own class (``code.function.name``; an unnamed agent is named after its class). A subclass
override that calls ``super().method()`` yields one span, not two.

``instance_attribute = true`` wraps a callable each instance holds (``StructuredTool.func``, a dataclass
field): the class's ``__init__`` (and that of each subclass defining one) is hooked, and when it returns the
instance's callable is replaced in its own storage (:mod:`agent_otel._zerocode.instances`).

``instrument()`` never wraps an object twice, nor one the code decorated (its decorator wins);
``uninstrument()`` puts every original object back and turns wrappers that escaped (aliases bound while
instrumented) into plain pass-throughs.
:class:`AgentOtelInstrumentor` does the same for ``opentelemetry-instrument``.

"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import sys
import threading
import weakref
from collections.abc import Callable, Collection, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from types import FunctionType, MethodType, ModuleType
from typing import Any, TypeAlias, TypeVar, cast

import wrapt
from opentelemetry import context as otel_context
from opentelemetry.context import Context

from agent_otel import semconv
from agent_otel._calls.agent import AgentHandler
from agent_otel._calls.evolution import EvolutionHandler
from agent_otel._calls.handler import KindHandler, paths_in
from agent_otel._calls.job import _JobHandler
from agent_otel._calls.markers import MARKER_HANDLERS
from agent_otel._calls.options import KINDS, Option
from agent_otel._calls.options import defaults as option_defaults
from agent_otel._calls.phase import PhaseHandler
from agent_otel._calls.pricing import set_prices
from agent_otel._calls.provider import ProviderHandler
from agent_otel._calls.tool import ToolHandler
from agent_otel._context.carriers import instrument_http_headers, uninstrument_http_headers
from agent_otel._engine.policy import set_config_policy
from agent_otel._engine.self_telemetry import report_error
from agent_otel._engine.tracebacks import leave_out_callers_frame
from agent_otel._engine.wrappers import (
    FROM_CLASS,
    Args,
    Handler,
    Invocation,
    Kwargs,
    Wrapper,
    WrapperFunction,
    binds_as_a_method,
    call_timing,
    handler_of,
    is_wrapper,
    plain_wrapper,
    proxy_of,
    reads_as_itself,
    wrapped_of,
    wrapper_for,
)
from agent_otel._environment import AGENT_OTEL_CONFIG
from agent_otel._zerocode import instances, queue_tasks
from agent_otel._zerocode.config import Config, TargetSpec, load_config, load_file
from agent_otel._zerocode.queue_tasks import HOLDERS
from agent_otel._zerocode.targets import (
    CELERY_TASK,
    Resolved,
    TargetError,
    describe_shape,
    is_built_in,
    resolve_in,
    resolve_instance_attribute,
)
from agent_otel.errors import ConfigurationError

logger = logging.getLogger("agent_otel")

_ABSENT = object()
_FAMILY_KEY = otel_context.create_key("agent_otel.autoinstrument.family")


#: The handler each configured kind builds.
_HANDLERS: dict[str, Callable[..., KindHandler]] = {
    "agent": AgentHandler, "provider": ProviderHandler, "tool": ToolHandler, "evolution": EvolutionHandler,
    "phase": PhaseHandler, **MARKER_HANDLERS}


def _default_name(option: Option, owner: object, attr: str) -> str:
    """What a configured target supplies for an option it leaves out (:attr:`Option.config_default`)."""
    if option.config_default == "owner" and isinstance(owner, type):
        return owner.__name__
    return attr


def _called_with_object(raw: object, owner: object) -> bool:
    """Whether ``raw``, what ``owner`` holds, is called with an object (``self``, or the class of a class method):
    a method bound already (``create = client.chat.completions.create``, on a module or a class: ``self`` is its
    object), a function a class defines, or another descriptor that binds; not a static method, a partial, a
    callable object, a built-in function or method, nor a function a module holds."""
    if isinstance(raw, MethodType):  # (a built-in method bound already, list.append of a list, is called with
        return True  # no object: the wrapper is given none for it)
    if not isinstance(owner, type) or isinstance(raw, staticmethod | type):
        return False
    if isinstance(raw, functools.partial):  # 3.13's __get__ only warns and hands it back unbound; it binds from 3.14
        return sys.version_info >= (3, 14)
    return isinstance(raw, classmethod) or hasattr(type(raw), "__get__")


def refuse_self_without_object(spec: TargetSpec, raw: object, owner: object, label: str) -> None:
    """A ``self`` path on a callable called with no object reads nothing at every call (each call then counted a
    failed extractor): an error where the target is wrapped, as an ``args`` path naming no parameter is."""
    if _called_with_object(raw, owner):
        return
    for key, value in paths_in(spec.options):
        if value.root == "self":
            raise ConfigurationError(f"{key}: extractor path {value.text!r}: {label} is called with no object (a "
                                     f"{describe_shape(raw, isinstance(owner, type))}), so self names nothing; read "
                                     "what the call is given from args")


def build_handler(spec: TargetSpec, config: Config, func: Callable[..., Any], owner: object, attr: str,
                  label: str) -> Handler:
    """The kind handler a decorator would build, from a config entry (static attributes included)."""
    if spec.kind not in _HANDLERS and spec.kind != "job":
        raise ConfigurationError(f"{spec.key}: no handler for kind {spec.kind!r}")
    attributes = {**config.attributes, **spec.attributes, semconv.CODE_FUNCTION_NAME: label}
    options = {**option_defaults(spec.kind), **spec.options}
    for option in KINDS[spec.kind].values():
        if option.config_default and option.name not in options:  # e.g. an agent named after its class
            options[option.name] = _default_name(option, owner, attr)
    if spec.kind == "evolution" and "sample_resources" not in spec.options:
        options["sample_resources"] = config.switches.evolution_resources
    if spec.kind == "job":
        return _JobHandler(options.get("id"), options["type"], attributes, func, options.get("result_attributes"),
                           options.get("conversation"), options.get("pattern"))
    return _HANDLERS[spec.kind](func, options, attributes)


class _ConfiguredHandler(Handler):
    """A configured target's handler, around its kind's. The call runs as if unwrapped once the target is
    uninstrumented (for a wrapper that escaped into an alias), and inside a call of the same config entry on
    the same object: it is that call, counted once, by the outermost. So a sync/async pair one entry names
    (LangGraph's ``Pregel.invoke``, which runs ``self.stream``) counts one run, and ``super().method()`` from
    an override ``subclasses = true`` wrapped opens no second span (the invocation's context marks the entry
    and object). A function, with no object, counts each call (recursion included). Checked here rather than
    in a wrapper function of its own: that frame would count against the program's recursion limit."""

    def __init__(self, inner: Handler, entry: _Entry, method: bool, scope: type | None = None) -> None:
        self.inner = inner
        self.entry = entry
        self.stage = inner.stage
        self.times_generators = inner.times_generators  # the entry's ``stream = false``
        # a method: ``Class.method(obj, ...)`` has obj as its instance, as ``obj.method(...)`` does
        self.method = inner.method = method
        self.family = id(entry.family)
        #: The class whose calls (on its instances, or on it and its subclasses for a class method) this entry
        #: records, when its target names a subclass that inherits the method: the wrapper is on the class
        #: that defines it, so that ``Sub.method is Base.method`` still holds. None: every call.
        self.scope = scope
        #: Every entry's handler this wrapper serves, the most specific scope first, once a second entry names
        #: the same method (``Base.run`` and ``Sub.run``, which inherits it); empty while it serves one.
        self.chain: tuple[_ConfiguredHandler, ...] = ()

    @property
    def active(self) -> bool:  # type: ignore[override]  # a class attribute of Handler's, a live value here
        return self.entry.active

    def begin(self, wrapped: Callable[..., Any], instance: object, args: Args, kwargs: Kwargs,
              parent: Context) -> Invocation | None:
        if not self.entry.active:
            return None
        obj = args[0] if instance is None and self.method and args else instance
        if self.chain:
            for handler in self.chain:
                if handler.scope is None or _in_scope(obj, handler.scope):
                    return handler.begin_on(obj, wrapped, instance, args, kwargs, parent)
            return None
        if self.scope is not None and not _in_scope(obj, self.scope):
            return None  # a call of the defining class's, or of another subclass's: as if unwrapped
        return self.begin_on(obj, wrapped, instance, args, kwargs, parent)

    def begin_on(self, obj: object, wrapped: Callable[..., Any], instance: object, args: Args,
                 kwargs: Kwargs, parent: Context) -> Invocation | None:
        """This entry's invocation for a call on ``obj`` (None: a function's), unless inside its call on it."""
        if obj is None:  # a function or static method: no object to tell the same call by
            return self.inner.begin(wrapped, instance, args, kwargs, parent)
        family, same, runner = self.family, id(obj), _runner()
        marks: tuple[_Mark, ...] = parent.get(_FAMILY_KEY) or ()  # type: ignore[assignment]
        for mark_family, mark_object, mark_runner, mark_call in marks:
            # run by the same task or thread; or by the task a sync call outside any task runs in a loop of its own,
            # in its thread (``run_sync`` running its ``run``); or by its coroutine's task
            if mark_family == family and mark_object == same and (
                    mark_runner == runner or _the_loops_first_task(mark_runner, mark_call, runner) or
                    _task_of(mark_call)):
                enclosing = mark_call()
                if enclosing is not None and not enclosing._ended:
                    return None
        inv = self.inner.begin(wrapped, instance, args, kwargs, parent)
        if inv is not None:
            _mark(inv, (family,), same, runner, marks)
        return inv


def _in_scope(obj: object, scope: type) -> bool:
    """Whether a call on ``obj`` is one on ``scope``: one of its instances, or (a class method's) it or a subclass."""
    return isinstance(obj, scope) or (isinstance(obj, type) and issubclass(obj, scope))


def _by_specificity(handler: _ConfiguredHandler) -> int:
    """Sort key of a wrapper's chain: the deepest subclass first, the entry for every call last."""
    return -len(handler.scope.__mro__) if handler.scope is not None else 0


def _mark(inv: Invocation, families: Iterable[int], same: int, runner: int, marks: tuple[_Mark, ...]) -> None:
    """Mark ``inv``'s context as a call of these families on the object ``same``, run by ``runner``."""
    call = weakref.ref(inv)
    inv.context = otel_context.set_value(
        _FAMILY_KEY, (*marks, *((family, same, runner, call) for family in families)), inv.context)


class _FamilyMember:
    """The ``begin`` of a decorated override in a subclass of a ``subclasses = true`` base, left to its decorator
    (the code's own choice) of the entry's kind: its calls mark the config entries' families, so that
    ``super().method()`` from it is that call (one span, the decorator's), as from an override the entry
    wrapped itself."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.begin = handler.begin  # the kind's own, bound
        self.families: list[int] = []

    def __call__(self, wrapped: Callable[..., Any], instance: object, args: Args, kwargs: Kwargs,
                 parent: Context) -> Invocation | None:
        inv = self.begin(wrapped, instance, args, kwargs, parent)
        obj = args[0] if instance is None and self.handler.method and args else instance
        if inv is not None and obj is not None:
            _mark(inv, self.families, id(obj), _runner(),
                  otel_context.get_value(_FAMILY_KEY, inv.context) or ())  # type: ignore[arg-type]
        return inv


def _join_family(state: _State, entry: _Entry, decorated: object) -> None:
    """Make a decorated override's calls calls of ``entry``'s family, when its decorator is of the entry's kind:
    one of another kind (``@job``, ``@tool``, ``@conversation`` over a configured agent) is another call, and
    the base's call inside it is the entry's own (its span kept)."""
    handler = handler_of(decorated)
    if handler is None or handler.stage != entry.spec.kind:
        return
    member = handler.__dict__.get("begin")
    if not isinstance(member, _FamilyMember):
        member = _FamilyMember(handler)
        handler.begin = member  # type: ignore[method-assign]  # this handler's calls only, undone by uninstrument()
        state.family_members.append(member)
    if id(entry.family) not in member.families:
        member.families.append(id(entry.family))


#: A configured call of an entry on an object, as its context marks it: the entry's family, the object's id,
#: what runs it (:func:`_runner`) and the call (weakly: the mark is in the call's own context). A call of the
#: same entry on the same object is inside it only when run by the same task or thread while it still runs, or by a
#: task of an event loop that a sync call runs in its thread: another task or thread the call starts inherits its
#: context, but is a call of its own, as without agent-otel.
_Mark = tuple[int, int, int, "weakref.ref[Invocation]"]


def _runner() -> int:
    """The task running this code (asyncio's, trio's), else its thread."""
    task = _current_task()
    return id(task) if task is not None else threading.get_ident()


def _current_task() -> object | None:
    """The asyncio or trio task running this code; None outside both. trio's tasks share their thread, so without
    theirs a call in a task that a configured call started was taken for that call, and not recorded. trio's guest
    mode runs its tasks in an asyncio loop's callbacks, where no asyncio task runs."""
    loop = asyncio.events._get_running_loop()  # None outside a running loop (asyncio's own public helper)
    if loop is not None and (task := asyncio.current_task(loop)) is not None:
        return task
    # trio names itself to sniffio (imported with it) while it runs a task step: one attribute read, where trio's own
    # checks raise and catch (0.6 to 2 µs a call, paid by every program that imports trio, as httpcore does)
    sniffio, trio = sys.modules.get("sniffio"), sys.modules.get("trio")
    if sniffio is None or trio is None or getattr(sniffio.thread_local, "name", None) != "trio":
        return None
    try:
        found: object = trio.lowlevel.current_task()
    except RuntimeError:  # trio's own code between task steps (a run_sync_soon callback): no task
        return None
    return found


def _the_loops_first_task(mark_runner: int, mark_call: weakref.ref[Invocation], runner: int) -> bool:
    """Whether ``runner``, a task, is the one that a sync call (``mark_call``) marked by this thread (``mark_runner``:
    it ran outside any task) runs in an event loop of its own (``asyncio.run``, ``run_until_complete``, ``trio.run``):
    that call waits for it, and the entry's call in it is that call. The first such task met is it; the tasks it
    starts (a follow-up turn, a fan-out with ``gather``) inherit the note of it and are calls of their own, as they
    are under the async call. The note is per sync call, and holds every sync call met in the task: another's
    (``asyncio.to_thread`` from that task, a context the program kept and runs again) has a first task of its own,
    and an agent's sync call inside another's keeps both."""
    if mark_runner != threading.get_ident():
        return False
    notes = _LOOPS_FIRST_TASK.get()
    noted = notes.get(id(mark_call)) if notes is not None else None
    if noted is None:  # (the note holds the mark: its id is no other object's while noted)
        # in this task's own context: what the tasks it starts inherit
        _LOOPS_FIRST_TASK.set({**(notes or {}), id(mark_call): (mark_call, runner)})
        return True
    return noted[1] == runner


#: Per sync call (by its mark's id), its mark and the task of its own event loop taken for it (see
#: _the_loops_first_task).
_LOOPS_FIRST_TASK: ContextVar[dict[int, tuple[weakref.ref[Invocation], int]] | None] = ContextVar(
    "agent_otel_loops_first_task", default=None)


def _task_of(call: weakref.ref[Invocation]) -> bool:
    """Whether the task running this code was made of the coroutine ``call`` returned (a sync method that returns
    ``super().method()``'s coroutine, run by ``asyncio.run``, ``create_task``, ``gather`` or trio's ``start_soon``): the
    call runs in that task, though it began where it was called."""
    task = _current_task()
    if task is None:
        return False
    get_coro = getattr(task, "get_coro", None)  # asyncio's; trio's task has the coroutine as an attribute
    coroutine = get_coro() if get_coro is not None else getattr(task, "coro", None)
    return coroutine is not None and call_timing(coroutine) is call()


@dataclass(eq=False)
class _Entry:
    spec: TargetSpec
    config: Config
    active: bool = True
    error: str | None = None
    #: Shared by the targets of one config entry (its array): a call through any of them on an object, inside
    #: a call of the entry on that object, is that call (see :class:`_ConfiguredHandler`)
    family: object = field(default_factory=object)
    #: Its place among the entries, in the order of the configuration's targets (``agent-otel check``'s): of two
    #: that name one function, the first records it, whichever module finished importing first
    order: int = 0


#: Where a target lives: the module or class whose attribute is replaced.
Owner: TypeAlias = type | ModuleType
#: The proxy that replaces a target: it pickles and copies as the target does.
Wrapped: TypeAlias = Wrapper


@dataclass(eq=False)
class _Patch:
    owner: Owner
    attr: str
    had_own: bool
    original: object
    wrapper: Wrapped | FunctionType  # (a plain function's, where its runner pickles it by value: _wrap_held_by_value)


@dataclass(eq=False)
class _SubclassHook:
    original: object
    hook: classmethod[Any, ..., None]
    watchers: list[tuple[_Entry, str]] = field(default_factory=list)


@dataclass(eq=False)
class _State:
    entries: dict[str, _Entry] = field(default_factory=dict)
    patches: list[_Patch] = field(default_factory=list)
    subclass_hooks: dict[type, _SubclassHook] = field(default_factory=dict)
    holders: tuple[tuple[_Entry, type, str], ...] = ()  # instance_attribute entries: (entry, class, attribute)
    family_members: list[_FamilyMember] = field(default_factory=list)
    http_patched: bool = False
    #: Entries naming a Celery shared task, by (module, qualified name) of its function (see queue_tasks).
    shared_tasks: dict[tuple[str, str], _Entry] = field(default_factory=dict)


_state: _State | None = None
_lock = threading.RLock()


def wrapped_objects() -> list[tuple[Owner, str, Wrapped | FunctionType]]:
    """(owner, attribute, wrapper) for every object currently replaced (for tests and `check`)."""
    with _lock:
        return [(p.owner, p.attr, p.wrapper) for p in (_state.patches if _state else [])]


def not_wrapped(target: str, why: Exception) -> None:
    """Say that configured ``target`` records no call, as a target that cannot be wrapped is (:func:`_not_wrapped`)."""
    with _lock:
        entry = _state.entries.get(target) if _state else None
    if entry is not None:
        _not_wrapped(entry, why)


def entry_errors() -> dict[str, str]:
    """Target -> why it could not be wrapped, for targets whose module was imported."""
    with _lock:
        return {t: e.error for t, e in (_state.entries.items() if _state else ()) if e.error}


def _kind_wrapper(entry: _Entry, raw: Any, signed: Any, owner: object, attr: str, label: str,
                  method: bool = False) -> WrapperFunction:
    """The wrapper function of ``entry``'s kind for ``raw``; extractors bind arguments to ``signed``'s signature."""
    handler = build_handler(entry.spec, entry.config, signed, owner, attr, label)
    return wrapper_for(_ConfiguredHandler(handler, entry, method), raw)


def _configured_handler(entry: _Entry, raw: Any, owner: Owner, attr: str,
                        scope: type | None = None, named: str | None = None) -> _ConfiguredHandler:
    """``entry``'s handler for ``raw``, the value of ``attr`` that ``owner`` defines or inherits (its options' default
    names ``named``, by default ``attr``)."""
    spec = entry.spec
    label = (f"{owner.__module__}.{owner.__qualname__}.{attr}" if isinstance(owner, type)
             else f"{spec.module}.{named or attr}")
    method = isinstance(owner, type) and (isinstance(raw, FunctionType) or (
        reads_as_itself(raw, owner) and binds_as_a_method(raw, owner)))
    refuse_self_without_object(spec, raw, owner, label)
    handler = build_handler(spec, entry.config, raw, owner, named or attr, label)
    return _ConfiguredHandler(handler, entry, method, scope)


def _make_wrapper(entry: _Entry, raw: Any, owner: Owner, attr: str, scope: type | None = None,
                  named: str | None = None) -> Wrapped:
    handler = _configured_handler(entry, raw, owner, attr, scope, named)
    wrapper = proxy_of(handler, raw)
    if isinstance(owner, type) and reads_as_itself(raw, owner):  # a function, an lru_cache (not another library's
        wrapper._self_reads_as_itself = FROM_CLASS  # wrapt proxy of one: that binds as its proxy does)
    elif isinstance(raw, staticmethod):
        wrapper.read_as_static_function()
    wrapper._self_agent_otel_entry = entry  # wrapt keeps _self_* on the proxy
    wrapper._self_agent_otel_handler = handler
    return wrapper


def _decorated(raw: object) -> bool:
    """Whether the code decorated ``raw`` with agent-otel's decorator: it is agent-otel's wrapper, or a static or class
    method object holding one. agent-otel's wrapper over a static or class method object shows that object's
    ``__func__``, the program's function, and was wrapped again (two spans a call, or the decorator's replaced)."""
    return is_wrapper(raw) or is_wrapper(getattr(raw, "__func__", raw))


def _wrap_attribute(state: _State, entry: _Entry, owner: Owner, attr: str, raw: Any, recorded: bool = True,
                    named: str | None = None) -> None:
    """Replace ``owner.attr`` with its wrapper, recorded for ``uninstrument()`` (``recorded=False`` for a class the
    program defines later: see :func:`_made_for_a_later_class`); ``named``: what the options a target leaves out
    default to, instead of ``attr`` (a Celery task's function, whose ``run`` it is)."""
    if getattr(raw, "_self_agent_otel_entry", None) is not None:
        if isinstance(owner, type) and attr not in owner.__dict__:
            raw = wrapped_of(raw)  # a static method inherited from a wrapped base: wrap the original for this class
        else:
            return  # never wrap twice
    elif _decorated(raw):
        if isinstance(owner, type):
            _join_family(state, entry, raw)
        return  # decorated in the code (an override included): the decorator, the code's own choice, wins
    had_own = attr in (owner.__dict__ if isinstance(owner, type) else vars(owner))
    wrapper = _make_wrapper(entry, raw, owner, attr, named=named)
    setattr(owner, attr, wrapper)
    if not recorded:
        _made_for_a_later_class(wrapper, had_own, raw)
        return
    state.patches.append(_Patch(owner, attr, had_own, raw, wrapper))
    home = _home_of_reexport(owner, raw)
    if home is not None:  # the module that defines it, whose own calls read it there: the same wrapper
        setattr(home, raw.__name__, wrapper)
        state.patches.append(_Patch(home, raw.__name__, True, raw, wrapper))


def _wrap_held_by_value(state: _State, entry: _Entry, holder: Any, attr: str, function: FunctionType,
                        named: str) -> None:
    """Replace the function a holder keeps for a runner that pickles it by value (see ``FunctionHolder``) with a plain
    function's wrapper, which goes with it: a wrapt proxy went as the function under it, and the runner's process
    recorded nothing. Once: a wrapper of ours there (a module imported twice) is left as it is."""
    if is_wrapper(function):
        return
    wrapper = plain_wrapper(_configured_handler(entry, function, holder, attr, named=named), function)
    setattr(holder, attr, wrapper)
    state.patches.append(_Patch(holder, attr, True, function, wrapper))


def _home_of_reexport(owner: Owner, raw: object) -> ModuleType | None:
    """The module that defines a function a package re-exports (``pkg/__init__.py``: ``from .core import search``;
    the target ``pkg:search``), when it still holds it under its name: the calls through ``pkg.core.search`` and
    the module's own calls of ``search`` were not traced, only those through the package's name."""
    if not isinstance(owner, ModuleType) or not isinstance(raw, FunctionType):
        return None
    home = sys.modules.get(raw.__module__ or "")
    return home if home is not None and home is not owner and vars(home).get(raw.__name__) is raw else None


def _overrides_as_a_method(raw: object) -> bool:
    """Whether a subclass's own value of a target's name is one ``subclasses = true`` wraps: a callable or a
    static or class method object. A subclass that turns the method off (``None``), or makes it a property,
    a ``cached_property`` or a class, keeps it as it is: a wrapper would change what it is."""
    return isinstance(raw, classmethod | staticmethod) or (callable(raw) and not isinstance(raw, type))


def _all_subclasses(base: type) -> list[type]:
    found: list[type] = []
    pending: list[type] = list(type.__subclasses__(base))
    while pending:
        klass = pending.pop()
        if klass not in found:
            found.append(klass)
            pending.extend(type.__subclasses__(klass))
    return found


def _watch_subclasses(state: _State, base: type, entry: _Entry, attr: str) -> None:
    """Wrap ``attr`` of the subclasses of ``base`` defined later: a hook on ``base``, and on every subclass that has a
    ``__init_subclass__`` of its own (one that does not call ``super()``, a plugin registry's, hides the classes
    below it from the hook on ``base``)."""
    for owner in (base, *(sub for sub in _all_subclasses(base) if "__init_subclass__" in sub.__dict__)):
        _subclass_hook(state, owner).watchers.append((entry, attr))


def _subclass_hook(state: _State, base: type) -> _SubclassHook:
    hook = state.subclass_hooks.get(base)
    if hook is None:
        original = base.__dict__.get("__init_subclass__", _ABSENT)
        watchers: list[tuple[_Entry, str]] = []

        def __init_subclass__(cls: type, /, **kwargs: object) -> None:
            if original is _ABSENT:
                # the next class after ``base`` in cls's MRO; mypy checks super() only for classes it knows
                super(base, cls).__init_subclass__(**kwargs)  # type: ignore[arg-type]
            else:
                original.__get__(None, cls)(**kwargs)
            with _lock:
                current = _state
                if current is not None and "__init_subclass__" in cls.__dict__ and watchers:
                    try:  # a class with a hook of its own: the classes below it are watched there too
                        _subclass_hook(current, cls).watchers.extend(watchers)
                    except Exception as exc:
                        report_error("autoinstrument.subclass", exc)
                for watcher, name in list(watchers):
                    if current is None or not watcher.active or name not in cls.__dict__:
                        continue
                    try:
                        if watcher.spec.instance_attribute:
                            _hook_init(current, cls, recorded=False)
                        elif _overrides_as_a_method(cls.__dict__[name]):
                            _wrap_attribute(current, watcher, cls, name, cls.__dict__[name], recorded=False)
                    except Exception as exc:
                        report_error("autoinstrument.subclass", exc)

        installed: classmethod[Any, ..., None] = classmethod(__init_subclass__)
        type.__setattr__(base, "__init_subclass__", installed)
        hook = state.subclass_hooks[base] = _SubclassHook(original, installed, watchers)
    return hook


# --------------------------------------------------------------------------------------------------
# Callables instances hold (instance_attribute = true): see agent_otel._zerocode.instances
# --------------------------------------------------------------------------------------------------


def _hold(entry: _Entry, attr: str, holder: object) -> None:
    """Replace the callable ``holder`` holds under ``attr`` with its wrapper. None, and callables wrapped
    already, are left alone; the wrapper another instance holds (``dataclasses.replace``, a field copied from
    another tool) is replaced by one for ``holder``, of the same plain callable."""
    found = instances.stored(holder, attr)
    if found is None:
        return
    value, replace = found
    if isinstance(value, instances.HeldWrapper) and cast(Any, value)._self_holder() is not holder:
        value = wrapped_of(value)
    if value is None or not callable(value) or instances.is_ours(value):
        return
    signed = instances.holder_signature(value)
    klass = type(holder)
    label = instances.label(value) or f"{klass.__module__}.{klass.__qualname__}.{attr}"
    inner = _kind_wrapper(entry, value, signed, klass, signed.__name__, label)
    holder_ref = instances.reference(holder)

    def held(wrapped: Callable[..., Any], instance: object, args: Args, kwargs: Kwargs) -> Any:
        if not entry.active:  # uninstrumented since
            return wrapped(*args, **kwargs)
        # None when the instance is gone: a temporary's (``Tool("t", f).fn(1)`` drops it once the attribute is
        # read), or an alias that outlived it. Still the entry's call: recorded without the instance, whose paths
        # then read nothing (counted) and whose name falls back to the callable's.
        return inner(wrapped, holder_ref(), args, kwargs)

    wrapper = instances.HeldWrapper(value, held)
    wrapper._self_agent_otel_entry = entry  # wrapt keeps _self_* on the proxy
    wrapper._self_holder = holder_ref  # wrapt keeps _self_* on the proxy
    replace(wrapper)


def _hold_all(instance: object) -> None:
    """After an ``__init__`` returned: wrap every configured callable the new instance holds. Never raises."""
    state = _state
    if state is None:
        return
    for entry, klass, attr in state.holders:
        if entry.active and isinstance(instance, klass):
            try:
                _hold(entry, attr, instance)
            except Exception as exc:  # e.g. an args.x path the callable has no parameter for
                report_error("autoinstrument.instance", exc)


def _hook_init(state: _State, klass: type, recorded: bool = True) -> None:
    """Make ``klass.__init__`` (its own, or one installed that runs the inherited one) call
    :func:`_hold_all` when it returns. Each class is hooked once; ``uninstrument()`` restores it (``recorded``: see
    :func:`_wrap_attribute`)."""
    raw = klass.__dict__.get("__init__", _ABSENT)
    had_own = raw is not _ABSENT
    if getattr(raw, "_self_agent_otel_init", False):
        return
    if not had_own:
        raw = next(base.__dict__["__init__"] for base in klass.__mro__ if "__init__" in base.__dict__)
        raw = wrapped_of(raw) if getattr(raw, "_self_agent_otel_init", False) else raw

    runs_object_init = raw is object.__init__

    def after_init(wrapped: Callable[..., Any], instance: object, args: Args, kwargs: Kwargs) -> Any:
        if runs_object_init and instance is not None:
            # object.__init__ judges the arguments by whether the class has an __init__ of its own, which it now
            # has: it would refuse those that a class made by its __new__ takes (a NamedTuple), and take those that
            # object.__new__ refuses when there is none. Decide as without ours.
            if (args or kwargs) and type(instance).__new__ is object.__new__:
                raise TypeError(f"{type(instance).__name__}() takes no arguments")
            result = wrapped()
        else:
            try:
                result = wrapped(*args, **kwargs)
            except BaseException as error:  # the class's own __init__ failed: its traceback, as without ours
                leave_out_callers_frame(error)
                raise
        _hold_all(args[0] if instance is None and args else instance)  # Class.__init__(obj, ...) or bound
        return result

    wrapper = Wrapper(raw, after_init)
    wrapper._self_reads_as_itself = FROM_CLASS
    wrapper._self_agent_otel_init = True
    type.__setattr__(klass, "__init__", wrapper)
    if recorded:
        state.patches.append(_Patch(klass, "__init__", had_own, raw, wrapper))
    else:
        _made_for_a_later_class(wrapper, had_own, raw)


def _patches_of_later_classes(state: _State) -> list[_Patch]:
    """The patches :func:`_made_for_a_later_class` keeps on its wrappers, of the live subclasses of ``state``'s
    watched bases."""
    found = []
    for base, hook in state.subclass_hooks.items():
        names = {name for _, name in hook.watchers}
        for sub in _all_subclasses(base):
            for name in names:
                made = sub.__dict__.get(name)
                restores = getattr(made, "_self_agent_otel_restores", None) if is_wrapper(made) else None
                if restores is not None:
                    had_own, original = restores
                    found.append(_Patch(sub, name, had_own, original, cast(Wrapper, made)))
    return found


def _made_for_a_later_class(wrapper: Wrapper, had_own: bool, original: object) -> None:
    """A wrapper made for a class the program defined after ``instrument()`` (``subclasses``, ``instance_attribute``)
    keeps what ``uninstrument()`` restores itself, found there through its base's subclasses: a patch recorded in
    the state held the class for the life of the process, and a program that makes classes at run time (a plugin
    per request) kept every one it dropped (75 MB for 10,000)."""
    wrapper._self_agent_otel_restores = (had_own, original)  # wrapt keeps _self_*


def _watch_instances(state: _State, entry: _Entry, klass: type, attr: str) -> None:
    """Hook ``__init__`` of ``klass``, of its subclasses with their own, and of those defined later."""
    state.holders = (*state.holders, (entry, klass, attr))
    _hook_init(state, klass)
    for sub in _all_subclasses(klass):
        if "__init__" in sub.__dict__:
            _hook_init(state, sub)
    _watch_subclasses(state, klass, entry, "__init__")


def _apply(state: _State, entry: _Entry, module: ModuleType) -> None:
    spec = entry.spec
    if spec.instance_attribute:
        holder = resolve_instance_attribute(module, spec.qualname)
        assert isinstance(holder.owner, type)  # resolve_instance_attribute says so
        _watch_instances(state, entry, holder.owner, holder.attr)
        return
    found = resolve_in(module, spec.qualname)
    owner, raw = found.owner, found.raw
    if found.shape == CELERY_TASK:
        _apply_to_celery_task(state, entry, raw)
        return
    function_holder = HOLDERS.get(found.shape)
    if function_holder is not None:  # what a worker or an engine calls: its function, where it holds it (its
        held_in = function_holder.attribute  # attribute replaced, and put back, as a module's is)
        named = spec.qualname.rpartition(".")[2]
        if function_holder.pickled_by_value:
            _wrap_held_by_value(state, entry, raw, held_in, getattr(raw, held_in), named)
        else:
            _wrap_attribute(state, entry, cast(Any, raw), held_in, getattr(raw, held_in), named=named)
        return
    serving = _configured_handler_of(raw)
    if serving is not None and not serving.entry.active and isinstance(owner, ModuleType):
        found = _past_a_stale_wrapper(state, found)
        owner, raw = found.owner, found.raw
        serving = _configured_handler_of(raw)
    original = wrapped_of(raw) if serving is not None else raw
    decorated = serving is None and _decorated(raw)  # the decorator wins: left as is
    # a method the named subclass inherits; not a static one, whose calls have no object to tell its calls by, nor
    # one of a built-in type (``list.append`` of a list subclass), whose attributes cannot be replaced
    defined_on = found.defined_on
    if (isinstance(owner, type) and isinstance(defined_on, type) and defined_on is not owner and not decorated
            and not isinstance(original, staticmethod) and not is_built_in(defined_on)):
        if serving is not None:
            _serve_too(serving, entry, found, owner)
        else:
            _wrap_inherited(state, entry, found, owner)
    elif serving is not None and serving.entry is not entry and found.defined_on is owner:
        _serve_too(serving, entry, found, None)
    else:
        _wrap_attribute(state, entry, owner, found.attr, raw)
    if spec.subclasses and isinstance(found.owner, type):
        for sub in _all_subclasses(found.owner):
            if found.attr in sub.__dict__ and _overrides_as_a_method(sub.__dict__[found.attr]):
                _wrap_attribute(state, entry, sub, found.attr, sub.__dict__[found.attr])
        _watch_subclasses(state, found.owner, entry, found.attr)


def _apply_to_celery_task(state: _State, entry: _Entry, named: object) -> None:
    """Wrap the task ``named`` names where a worker runs it: now if Celery made it already, else when it does (its
    proxy's own hook; a shared task's, by its function's module and name, as each app makes one)."""
    if queue_tasks.promised_task(named):
        queue_tasks.when_made(named, lambda task: _celery_task_made(state, entry, task))
    elif queue_tasks.is_shared_task(named):
        key = queue_tasks.shared_function_key(named)
        if key is None:
            raise TargetError("a Celery shared task whose function cannot be read: name its function instead")
        state.shared_tasks[key] = entry
        for task in queue_tasks.made_from(*key):
            _wrap_task(state, entry, task)
    else:
        _wrap_task(state, entry, queue_tasks.task_of(named))


def celery_task_run(task: Any) -> tuple[type, object]:
    """A Celery task's class and the ``run`` it defines, what a target naming the task wraps."""
    task_class = type(task)
    run = task_class.__dict__.get("run")
    if run is None:
        raise TargetError(f"Celery task {task_class.__qualname__} has no run() of its own; name the class that "
                          "defines it (\"module:Class.run\")")
    return task_class, run


def _wrap_task(state: _State, entry: _Entry, task: Any) -> None:
    """Wrap the ``run`` of a Celery task's class (called ``run`` on its class, the target's name in its options). A
    task that retries by itself (``autoretry_for``) runs the class's ``run`` it kept when it was made: it keeps the
    wrapper instead."""
    task_class, run = celery_task_run(task)
    _wrap_attribute(state, entry, task_class, "run", run, named=entry.spec.qualname.rpartition(".")[2])
    own = vars(task).get("run")
    if own is not None and "_orig_run" in vars(task):  # (Celery's add_autoretry_behaviour)
        del task.run
        try:
            task._orig_run = task.run  # the class's, bound as Celery bound it
        finally:
            task.run = own


def _celery_task_made(state: _State, entry: _Entry, task: Any) -> None:
    """Celery made a task an entry names: wrapped, unless that configuration is gone (never raised into the program's,
    or its worker's, making of the task)."""
    _applying(state, entry, lambda: _wrap_task(state, entry, task))


def _shared_task_made(key: tuple[str, str], task: Any) -> None:
    """Celery made a task (see queue_tasks.on_made): wrapped when an entry names it as a shared task."""
    with _lock:
        state = _state
        entry = state.shared_tasks.get(key) if state is not None else None
    if state is not None and entry is not None:
        _celery_task_made(state, entry, task)


def _configured_handler_of(value: object) -> _ConfiguredHandler | None:
    """The handler of a configured target's wrapper; None for anything else."""
    handler = getattr(value, "_self_agent_otel_handler", None) if is_wrapper(value) else None
    return handler if isinstance(handler, _ConfiguredHandler) else None


def _wrap_inherited(state: _State, entry: _Entry, found: Resolved, scope: type) -> None:
    """Wrap a method where it is defined, recording only the calls on ``scope``, the subclass the target
    names, which inherits it: wrapped on the subclass, ``Sub.method is Base.method`` would no longer hold,
    and frameworks tell an override by it (LangChain's ``BaseLLM.astream`` refuses to stream when
    ``FakeListLLM._stream`` is not ``BaseLLM._stream``)."""
    defined_on = found.defined_on
    wrapper = _make_wrapper(entry, found.raw, scope, found.attr, scope)
    setattr(defined_on, found.attr, wrapper)
    state.patches.append(_Patch(defined_on, found.attr, True, found.raw, wrapper))


def _past_a_stale_wrapper(state: _State, found: Resolved) -> Resolved:
    """``found`` is the wrapper of an earlier ``instrument()``, uninstrumented since, which a re-export bound
    (``from .mod import fn``, a pass-through now): the target is the function it wraps, or this run's wrapper of that
    function where the module defining it holds one already, which the re-export then holds too (before, the stale
    wrapper was taken for this run's, and the calls through the re-export were not recorded)."""
    plain = wrapped_of(found.raw)
    home = sys.modules.get(getattr(plain, "__module__", None) or "")
    held = vars(home).get(getattr(plain, "__name__", "")) if home is not None and home is not found.owner else None
    live = _configured_handler_of(held)
    if live is None or not live.entry.active or wrapped_of(held) is not plain:
        return replace(found, raw=plain)
    setattr(found.owner, found.attr, held)
    state.patches.append(_Patch(found.owner, found.attr, True, found.raw, cast(Wrapper, held)))
    return replace(found, raw=held)


def _serve_too(serving: _ConfiguredHandler, entry: _Entry, found: Resolved, scope: type | None) -> None:
    """Make the wrapper already in place also serve ``entry``, for the calls on ``scope`` (all others when
    None); raises TargetError when an entry already records those calls: a function is named once."""
    chain = serving.chain or (serving,)
    displaced = None
    for handler in chain:
        if handler.entry is entry:
            return  # never wrap twice
        if handler.scope is scope:
            if _same_table(handler.entry, entry):  # two names of one entry's target list reach it ("__main__:work"
                return  # and "app:work", a package's re-export and its home): its options, wrapped once, as meant
            if handler.entry.order < entry.order or handler.entry.spec.subclasses:  # (one that wrapped the subclasses
                # too keeps them: their wrappers and its hook are in place)
                raise TargetError(_named_twice(found.attr, handler.entry))
            displaced = handler  # a later entry's, wrapped first (its module finished importing first): this one
            # records the calls, as `agent-otel check` says, and that entry is the one named twice
    handler = _configured_handler(entry, wrapped_of(found.raw), found.owner, found.attr, scope)
    later = displaced.entry if displaced is not None else None
    if displaced is serving:  # the wrapper's own handler: it becomes this entry's, its options with it (stream,
        # the kind's stage), as the wrapper's engine reads them off it
        vars(serving).update(vars(handler))
        cast(Any, found.raw)._self_agent_otel_entry = entry
        handler = serving
    kept = tuple(held for held in chain if held is not displaced and held is not handler)
    serving.chain = tuple(sorted((*kept, handler), key=_by_specificity)) if kept else ()
    if later is not None:
        _not_wrapped(later, TargetError(_named_twice(found.attr, entry)))


def _same_table(first: _Entry, second: _Entry) -> bool:
    """Whether two entries are targets of one table's list (``target = ["__main__:work", "app:work"]``), whose
    options are one."""
    return first.config is second.config and bool(first.spec.entry) and first.spec.entry == second.spec.entry


def _named_twice(attr: str, first: _Entry) -> str:
    return f"{attr} is already wrapped for {first.spec.key} ({first.spec.target}); name a function once"


def _apply_entry(state: _State, entry: _Entry, module: ModuleType) -> None:
    _applying(state, entry, lambda: _apply(state, entry, module))


def _applying(state: _State, entry: _Entry, apply: Callable[[], None]) -> None:
    """Run ``apply`` for ``entry`` under the lock, while its configuration is the one in use; what it cannot wrap is
    said (see :func:`_not_wrapped`), never raised."""
    with _lock:
        if _state is not state or not entry.active:
            return
        try:
            apply()
            entry.error = None
        except Exception as exc:  # never break the program's import
            _not_wrapped(entry, exc)


def _not_wrapped(entry: _Entry, why: Exception) -> None:
    """Say why ``entry``'s target records no call: kept for ``agent-otel check``, logged and counted."""
    entry.error = str(why)
    logger.warning("agent-otel: %s (%s): cannot wrap %s: %s", entry.config.source, entry.spec.key, entry.spec.target,
                   why)
    report_error("autoinstrument.target", why)


class _Waiting:
    """A top-level package whose instrumentations load when its import completes: how many have yet to load,
    and the wrapping of our targets in its submodules that waits for them."""

    __slots__ = ("loaders", "targets")

    def __init__(self) -> None:
        self.loaders = 0
        self.targets: list[Callable[[], None]] = []


_waiting: dict[str, _Waiting] = {}
_waiting_lock = threading.Lock()


def _after_instrumentations(module: str, wrap: Callable[[], None]) -> bool:
    """Run ``wrap`` (the wrapping of a target of ours, a method of a class in ``module``) once the
    instrumentations of ``module``'s package have loaded, and say so; False when none is pending (wrap now).

    A package's submodules finish importing before the package does, and its instrumentations load when the
    package does: wrapped at once, our target of a method they instrument too would end up inside theirs, our
    span the inner one (and a LangChain ``with_raw_response`` call's usage, which only the instrumentation's
    span has, lost). A method is looked up on its class at each call, so waiting loses no call."""
    with _waiting_lock:
        # the instrumentations of its top-level package, or of the package of a namespace it is in (an import
        # hook is set on ``llama_index.core``, not on the namespace ``llama_index``: see instrumented_modules)
        waiting = of_package(_waiting, module)
        if waiting is None:
            return False
        waiting.targets.append(wrap)
        return True


V = TypeVar("V")


def of_package(by_package: Mapping[str, V], module: str) -> V | None:
    """What ``by_package`` holds for the package ``module`` is in, its own or the nearest above it: a top-level package,
    or one in a namespace package (``llama_index.core``, for ``llama_index.core.tools``)."""
    while (found := by_package.get(module)) is None and "." in module:
        module = module.rpartition(".")[0]
    return found


def instrumentation_expected(modules: Collection[str]) -> None:
    """An instrumentation of these packages (top-level ones, or the first ones in a namespace package) is to load
    when one of them is imported."""
    with _waiting_lock:
        for module in modules:
            _waiting.setdefault(module, _Waiting()).loaders += 1


def instrumentation_loaded(modules: Collection[str]) -> None:
    """One instrumentation of these packages has loaded (or failed to): wrap the targets waiting for the
    last of them."""
    ready: list[Callable[[], None]] = []
    with _waiting_lock:
        for module in modules:
            waiting = _waiting.get(module)
            if waiting is not None:
                waiting.loaders -= 1
                if waiting.loaders <= 0:
                    del _waiting[module]
                    ready += waiting.targets
    for wrap in ready:
        wrap()


#: Set by the launcher: ``__main__`` is the program it is about to run, not a module to hook now.
_main_by_launcher = False


def leave_main_to_launcher() -> None:
    """``__main__`` targets are applied by the launcher as the program's code defines them
    (:mod:`agent_otel._zerocode.program`): no post-import hook ever fires for ``__main__``, and the one
    in ``sys.modules`` while instrumenting is the launcher's own."""
    global _main_by_launcher
    _main_by_launcher = True


def _register(state: _State, entry: _Entry) -> None:
    if entry.spec.module == "__main__" and _main_by_launcher:
        return

    def on_import(module: ModuleType) -> None:
        if "." in entry.spec.qualname and module.__name__ != module.__name__.partition(".")[0] \
                and _after_instrumentations(module.__name__, lambda: _apply_entry(state, entry, module)):
            return  # a method in a package an instrumentation loads on: ours is to be the outer wrapper
        _apply_entry(state, entry, module)

    wrapt.register_post_import_hook(on_import, entry.spec.module)


def targets_in(modules: Collection[str]) -> list[TargetSpec]:
    """The configured targets of these module names (e.g. ``__main__`` and the script's own name)."""
    with _lock:
        return [entry.spec for entry in (_state.entries.values() if _state else ()) if entry.spec.module in modules]


def apply_targets(module: ModuleType, specs: Iterable[TargetSpec]) -> None:
    """Wrap these targets in ``module`` now, as a post-import hook would (the program's own ``__main__``)."""
    with _lock:
        state = _state
        entries = [state.entries.get(spec.target) for spec in specs] if state else []
    for entry in entries:
        if state is not None and entry is not None:
            _apply_entry(state, entry, module)


def apply_settings(config: Config) -> None:
    """Price table and policy (cardinality cap, hashed keys, content capture) from the config."""
    if config.prices:
        set_prices({model: price._asdict() for model, price in config.prices.items()})
    if config.policy:
        set_config_policy(**config.policy)


def instrument(config: Config | str | os.PathLike[str] | None = None) -> bool:
    """Wrap every target of ``config``: a loaded configuration, or the path of its file (default: the
    configuration file found, see :func:`agent_otel._zerocode.config.find_config`). Targets already
    instrumented are skipped, so calling it twice never wraps twice. Returns False when there is no
    configuration."""
    global _state
    if isinstance(config, str | os.PathLike):
        config = load_file(config)
    elif config is not None and not isinstance(config, Config):
        raise ConfigurationError(f"instrument(): expected a configuration file's path or a loaded Config, got "
                                 f"{type(config).__name__}")
    if config is None:
        config = load_config()
        if config is None:
            logger.info("agent-otel: no agent-otel.toml, [tool.agent-otel] or $%s found; nothing to instrument",
                        AGENT_OTEL_CONFIG)
            return False
    with _lock:
        if _state is None:
            _state = _State()
        state = _state
        apply_settings(config)
        new = []
        families: dict[str, object] = {}
        for spec in config.targets:
            if spec.target in state.entries:
                continue
            family = families.setdefault(spec.entry or spec.target, object())
            entry = state.entries[spec.target] = _Entry(spec, config, family=family, order=len(state.entries))
            new.append(entry)
        if config.switches.http_headers:
            instrument_http_headers()
            state.http_patched = True
    queue_tasks.on_made(_shared_task_made)
    queue_tasks.watch()  # before the program's shared tasks are made: a target may name one
    for entry in new:
        _register(state, entry)
    return True


def uninstrument() -> None:
    """Restore every original object; wrappers still referenced somewhere become pass-throughs."""
    global _state
    with _lock:
        state, _state = _state, None
        if state is None:
            return
        for entry in state.entries.values():
            entry.active = False
        for patch in reversed([*state.patches, *_patches_of_later_classes(state)]):
            namespace = patch.owner.__dict__ if isinstance(patch.owner, type) else vars(patch.owner)
            if namespace.get(patch.attr) is not patch.wrapper:
                continue  # replaced by the program since; leave its object alone
            if patch.had_own:
                setattr(patch.owner, patch.attr, patch.original)
            else:
                delattr(patch.owner, patch.attr)
        for base, hook in state.subclass_hooks.items():
            if base.__dict__.get("__init_subclass__") is hook.hook:
                if hook.original is _ABSENT:
                    type.__delattr__(base, "__init_subclass__")
                else:
                    type.__setattr__(base, "__init_subclass__", hook.original)
        for member in state.family_members:
            if member.handler.__dict__.get("begin") is member:
                del member.handler.begin
        if state.http_patched:
            uninstrument_http_headers()
