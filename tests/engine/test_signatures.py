"""What reads a decorated function's parameters sees what it sees under a ``functools.wraps`` decorator:
``inspect.signature()`` follows ``__wrapped__`` to the function's, ``inspect.getfullargspec()`` shows the wrapper's
``(*args, **kwargs)``; and a ``functools.wraps`` decorator of the program's above ours shows its own, as without
agent-otel (Celery's argument check at ``.delay()`` is built from ``getfullargspec()``).

This module has no ``from __future__ import annotations``: its annotations are objects, as in most programs'."""

import functools
import inspect
from collections.abc import Callable
from typing import Any

from celery import Celery

import agent_otel
from agent_otel.testing import TelemetryCapture


def _logged(func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)
    return wrapper


def answer(question: str, temperature: float = 0.5, *, model: str = "m") -> str:
    return f"{question} at {temperature} with {model}"


@agent_otel.agent("answer")
def answer_here(question: str, temperature: float = 0.5, *, model: str = "m") -> str:
    """Decorated where it is defined: a plain function, as a ``functools.wraps`` decorator makes one."""
    return f"{question} at {temperature} with {model}"


def test_a_decorated_function_reads_as_under_a_functools_wraps_decorator() -> None:
    logged = _logged(answer)
    assert inspect.signature(answer_here) == inspect.signature(answer)
    assert inspect.signature(answer_here, eval_str=True) == inspect.signature(answer, eval_str=True)
    assert inspect.getfullargspec(answer_here) == inspect.getfullargspec(logged)
    assert inspect.signature(answer_here, follow_wrapped=False) == inspect.signature(logged, follow_wrapped=False)


def with_db(func: Callable[..., Any]) -> Callable[..., Any]:
    """A program's decorator that injects the first argument."""
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return func("DB", *args, **kwargs)
    return wrapper


def test_a_program_decorator_above_ours_shows_its_own_parameters(otel: TelemetryCapture) -> None:
    """A ``__signature__`` of the function's on our wrapper (so that ``getfullargspec()`` showed its parameters) was
    copied by the program's ``functools.wraps`` decorator above it: Celery then refused ``delay(5)`` through a
    decorator that injects the first argument, which it takes without agent-otel (review rv61)."""

    def job(db: str, x: int) -> tuple[str, int]:
        return (db, x)

    plain = with_db(job)
    ours = with_db(agent_otel.tool("job")(job))
    assert inspect.getfullargspec(ours) == inspect.getfullargspec(plain)
    assert inspect.signature(ours, follow_wrapped=False) == inspect.signature(plain, follow_wrapped=False)
    app = Celery("signatures", broker="memory://", backend="cache+memory://")
    app.conf.task_always_eager = True
    assert app.task(ours, name="ours").delay(5).get() == app.task(plain, name="plain").delay(5).get() == ("DB", 5)
    assert [span.name for span in otel.spans()] == ["execute_tool job"]
