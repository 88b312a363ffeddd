"""Config targets that name a job queue's task: the object a queue's decorator made around a function.

A worker runs what the queue's registry holds, never the name the task's module binds: wrapping that name recorded
nothing a worker ran. So such a target wraps the function where the task object runs it from:

* a Celery task (``@app.task``, ``@shared_task``, a class-based task): ``run`` on the class Celery makes for it, when
  Celery makes it (``Celery._task_from_fun``, watched from the time Celery is imported, or the task's own proxy once
  Celery evaluates it). Nothing here reads a proxy's attributes: that would make Celery make the task there, binding
  a shared task to whichever app is current then;
* a Dramatiq actor (``@dramatiq.actor``): the function it holds as ``fn``, which its ``__call__`` and a worker call;
  a Prefect task or flow (``@task``, ``@flow``) alike, which Prefect's engine calls, and a LangGraph task's ``func``;
* a huey task (``@huey.task()``) runs the function from a closure no attribute holds: refused, saying what to do.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import FunctionType
from typing import Any, NamedTuple, cast

import wrapt

from agent_otel._engine.kept import is_instance_of
from agent_otel._engine.self_telemetry import report_error
from agent_otel._engine.wrappers import is_plain_sync_function

#: Called with the (module, qualified name) of a task's function and the task, for each task Celery makes from then
#: on (see :func:`on_made`).
_callbacks: list[Callable[[tuple[str, str], Any], None]] = []
_watching = False


def is_celery_task(value: object) -> bool:
    """Whether ``value`` is a Celery task, or the proxy ``@app.task`` or ``@shared_task`` binds (told without reading
    the proxy's attributes: see the module). Another proxy of Celery's (``celery.local.Proxy`` of anything) is none."""
    local = sys.modules.get("celery.local")
    if local is not None and type(value) is local.PromiseProxy:
        return True
    if local is not None and type(value) is local.Proxy:
        return is_shared_task(value)
    task_module = sys.modules.get("celery.app.task")
    return task_module is not None and issubclass(type(value), task_module.Task)


def is_shared_task(value: object) -> bool:
    """Whether ``value`` is the proxy ``@shared_task`` binds: it looks its task up in the current app's registry each
    time (a function Celery names ``task_by_cons``)."""
    return _shared_lookup(value) is not None


def _shared_lookup(value: object) -> FunctionType | None:
    try:
        local = object.__getattribute__(value, "_Proxy__local")
    except AttributeError:
        return None
    return local if type(local) is FunctionType and local.__name__ == "task_by_cons" else None


def shared_function_key(value: object) -> tuple[str, str] | None:
    """(module, qualified name) of the function a ``@shared_task`` proxy makes its tasks from, read from the lookup it
    holds without running it (the key :func:`made_from` takes), whatever name the program binds the proxy to."""
    lookup = _shared_lookup(value)
    cells = dict(zip(lookup.__code__.co_freevars, lookup.__closure__ or (), strict=False)) if lookup else {}
    return _key_of(cells["fun"].cell_contents if "fun" in cells else None)


def _key_of(function: object) -> tuple[str, str] | None:
    """(module, qualified name) of a function tasks are made from: how a target finds the tasks made from it."""
    module, qualname = getattr(function, "__module__", None), getattr(function, "__qualname__", None)
    return (module, qualname) if isinstance(module, str) and isinstance(qualname, str) else None


def promised_task(value: object) -> bool:
    """Whether ``value`` is ``@app.task``'s proxy of a task Celery has not made yet."""
    local = sys.modules.get("celery.local")
    return local is not None and type(value) is local.PromiseProxy and not cast(Any, value).__evaluated__()


def when_made(proxy: object, then: Callable[[Any], None]) -> None:
    """Run ``then(task)`` once Celery makes the task of ``@app.task``'s ``proxy`` (Celery's own hook for it)."""
    cast(Any, proxy).__then__(lambda: then(cast(Any, proxy)._get_current_object()))


def task_of(value: object) -> Any:
    """The task ``value`` names once it is made (a task itself, or the proxy of one Celery has made)."""
    task_module = sys.modules.get("celery.app.task")
    if task_module is not None and issubclass(type(value), task_module.Task):
        return value
    return cast(Any, value)._get_current_object()


class FunctionHolder(NamedTuple):
    """A class of objects whose runner calls the function they hold, never the object (see :func:`held_function`)."""

    module: str
    class_name: str
    attribute: str  # where it holds its function
    runner: str  # what calls it, as `check` says
    #: Its runner pickles the function by value for another process (cloudpickle), which pickles a wrapt proxy of a
    #: function as the function under it: a plain sync function is wrapped as a plain function, which goes with its
    #: wrapper; a coroutine or generator function is refused.
    pickled_by_value: bool = False


DRAMATIQ_ACTOR = "Dramatiq actor"
#: Each holder, by its shape (what `check` lists it as).
HOLDERS = {
    DRAMATIQ_ACTOR: FunctionHolder("dramatiq.actor", "Actor", "fn", "a worker"),
    "Prefect task": FunctionHolder("prefect.tasks", "Task", "fn",
                                   "Prefect's engine (each call, .submit(), .map() and retry)"),
    "Prefect flow": FunctionHolder("prefect.flows", "Flow", "fn", "Prefect's engine (each call and retry)"),
    "LangGraph task": FunctionHolder("langgraph.func", "_TaskFunction", "func",
                                     "LangGraph's runtime (each call and retry, not a replay)"),
    "Ray remote function": FunctionHolder("ray.remote_function", "RemoteFunction", "_function",
                                          "Ray's workers (each task and retry)", pickled_by_value=True),
}


def by_value_refusal(shape: str, function: object) -> str | None:
    """Why a holder whose runner pickles its function by value (:attr:`FunctionHolder.pickled_by_value`) cannot have
    ``function`` wrapped (None: it can): only a plain sync function's wrapper goes with it."""
    if not HOLDERS[shape].pickled_by_value or is_plain_sync_function(function):
        return None
    return (f"a {shape} whose function is no plain sync function: its runner pickles the function by value, without "
            "a wrapper of agent-otel's around a coroutine or generator function; decorate the function under the "
            "runner's decorator, next to the def")



def ray_actor_refusal(value: object) -> str | None:
    """Why a target cannot name a Ray actor class or its methods (None: ``value`` is no actor class)."""
    if not is_instance_of(value, "ray.actor", "ActorClass"):
        return None
    return ("a Ray actor class: Ray pickles the class for its workers when the actor is made, and they run its "
            "methods there; decorate its methods in the class body (agent-otel's decorator on the def, under "
            "@ray.remote)")


def held_function(value: object) -> str | None:
    """The shape of an object whose runner calls the function it holds (:data:`HOLDERS`), never the object: a Dramatiq
    actor's ``fn`` (a worker), a Prefect task's or flow's ``fn`` (Prefect's engine, for a call, ``.submit()``,
    ``.map()``, each retry), a LangGraph task's ``func`` (LangGraph's runtime, each retry; a result replayed from a
    checkpoint runs nothing); None for anything else. Its name recorded only direct calls (LangGraph's: each call
    scheduling it, a replay too), and a cached result or a retried failure as one success."""
    for shape, holder in HOLDERS.items():
        if is_instance_of(value, holder.module, holder.class_name):
            return shape
    return None


def huey_refusal(value: object) -> str | None:
    """Why a target naming a huey task cannot record its runs (None: not one)."""
    api = sys.modules.get("huey.api")
    if api is None or not issubclass(type(value), api.TaskWrapper):
        return None
    return ("a huey task: its consumer runs the function it was made from, which no attribute of it holds, so this "
            "name records only the enqueueing call; decorate the function under @huey.task() (agent-otel's decorator "
            "below huey's)")


def made_from(module: str, qualname: str) -> list[Any]:
    """The tasks made so far from the function ``module:qualname``, one per app: those the apps finalized already
    hold (Celery makes a shared task only in an app that is finalized, or finalizing; one not finalized is not made
    to finalize here: its tasks are made later, watched)."""
    state = sys.modules.get("celery._state")
    apps = getattr(state, "_get_active_apps", None) if state is not None else None
    if apps is None:
        return []
    return [task for app in list(apps()) if getattr(app, "finalized", False) for task in list(app.tasks.values())
            if _key_of(_function_of(type(task).__dict__.get("run"))) == (module, qualname)]


def _function_of(run: object) -> object:
    return getattr(run, "__func__", run)  # a static method's function


def on_made(callback: Callable[[tuple[str, str], Any], None]) -> None:
    """Call ``callback(key, task)`` for each task Celery makes from now on; ``key`` as :func:`made_from` takes it."""
    if callback not in _callbacks:
        _callbacks.append(callback)


def watch() -> None:
    """Watch the tasks Celery makes, from when ``celery.app.base`` is imported (at once if it is)."""
    global _watching
    if not _watching:
        _watching = True
        wrapt.register_post_import_hook(_watch_app_base, "celery.app.base")


def _watch_app_base(module: Any) -> None:
    try:
        if not getattr(module.Celery._task_from_fun, "_self_agent_otel_celery", False):
            wrapper = wrapt.FunctionWrapper(module.Celery._task_from_fun, _task_made)
            wrapper._self_agent_otel_celery = True  # type: ignore[attr-defined]  # wrapt keeps _self_* on the proxy
            module.Celery._task_from_fun = wrapper
    except Exception as exc:  # never into the program's import
        report_error("autoinstrument.celery", exc)


def _task_made(wrapped: Callable[..., Any], instance: object, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``Celery._task_from_fun``: the callbacks hear of each task it returns (one it made before too: wrapping it
    again does nothing)."""
    task = wrapped(*args, **kwargs)
    try:
        key = _key_of(args[0] if args else kwargs.get("fun"))
        if key is not None:
            for callback in list(_callbacks):
                callback(key, task)
    except Exception as exc:
        report_error("autoinstrument.celery", exc)
    return task
