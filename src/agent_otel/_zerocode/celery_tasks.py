"""Config targets that name a Celery task (``@app.task``, ``@shared_task``).

The name a task's module binds is a proxy of the task (or the task itself), not what runs it: a worker runs the task
the app made, from the app's registry, calling its ``run``. So such a target wraps ``run`` on the class Celery made for
the task, when Celery makes it (``Celery._task_from_fun``, watched from the time Celery is imported). Nothing here
touches a proxy's attributes: that would make Celery make the task there, binding a shared task to whichever app is
current then.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Callable
from typing import Any

import wrapt

from agent_otel._engine.self_telemetry import report_error

#: (module, qualified name) of the function a task was made from -> the tasks made from it so far (an app each).
_made: dict[tuple[str, str], list[weakref.ref[Any]]] = {}
#: Called with that key and the task, for each task Celery makes from then on (see :func:`on_made`).
_callbacks: list[Callable[[tuple[str, str], Any], None]] = []
_watching = False


def is_task(value: object) -> bool:
    """Whether ``value`` is a Celery task, or the proxy ``@app.task`` and ``@shared_task`` bind (told by its type alone:
    see the module)."""
    local = sys.modules.get("celery.local")
    if local is not None and type(value) in (local.PromiseProxy, local.Proxy):
        return True
    task_module = sys.modules.get("celery.app.task")
    return task_module is not None and issubclass(type(value), task_module.Task)


def made_from(module: str, qualname: str) -> list[Any]:
    """The tasks made so far from the function ``module:qualname`` (the app's own, one per app)."""
    return [task for ref in _made.get((module, qualname), ()) if (task := ref()) is not None]


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
    task = wrapped(*args, **kwargs)
    try:
        function = args[0] if args else kwargs.get("fun")
        key = (getattr(function, "__module__", None), getattr(function, "__qualname__", None))
        if isinstance(key[0], str) and isinstance(key[1], str):
            known = _made.setdefault((key[0], key[1]), [])
            if not any(ref() is task for ref in known):
                known.append(weakref.ref(task))
                for callback in list(_callbacks):
                    callback((key[0], key[1]), task)
    except Exception as exc:
        report_error("autoinstrument.celery", exc)
    return task
