"""A decorated function shows its parameters to what reads them without following ``__wrapped__``
(``inspect.getfullargspec()``: Gradio's ``Interface`` labels its inputs from it, Celery checks ``delay()``'s
arguments against it), as the plain function does.

This module has no ``from __future__ import annotations``: its annotations are objects, as in most programs'."""

import functools
import inspect
from typing import Any

import pytest
from celery import Celery

import agent_otel
from agent_otel.testing import TelemetryCapture


def answer(question: str, temperature: float = 0.5, *, model: str = "m") -> str:
    return f"{question} at {temperature} with {model}"


decorated_answer = agent_otel.agent("answer")(answer)  # a function wrapped after its name holds it: a proxy


@agent_otel.agent("answer")
def answer_here(question: str, temperature: float = 0.5, *, model: str = "m") -> str:
    """Decorated where it is defined: a plain function, as a ``functools.wraps`` decorator makes one."""
    return f"{question} at {temperature} with {model}"


class Planner:
    @agent_otel.tool("plan")
    def plan(self, task: str, steps: int = 3) -> list[str]:
        return [task] * steps


class PlainPlanner:
    def plan(self, task: str, steps: int = 3) -> list[str]:
        return [task] * steps


def test_getfullargspec_shows_the_parameters_of_the_plain_function() -> None:
    """It showed ``(*args, **kwargs)``: Gradio's ``Interface(fn=...)`` lost its input labels (``None``) and named its
    API's parameters ``parameter_0``... (probe p49a, gradio 6.31)."""
    plain = inspect.getfullargspec(answer)
    assert inspect.getfullargspec(answer_here) == plain
    assert inspect.getfullargspec(decorated_answer) == plain
    assert inspect.getfullargspec(Planner.plan) == inspect.getfullargspec(PlainPlanner.plan)
    assert inspect.signature(Planner().plan) == inspect.signature(PlainPlanner().plan)
    assert inspect.signature(answer_here, eval_str=True) == inspect.signature(answer, eval_str=True)
    assert inspect.signature(answer_here, follow_wrapped=False) == inspect.signature(answer)


def test_celery_checks_delays_arguments_against_the_decorated_function(otel: TelemetryCapture) -> None:
    """Celery builds its argument check from ``getfullargspec()``: a call with a missing argument went through to the
    worker (here run eagerly) instead of raising ``TypeError`` at ``delay()``, as it does for the plain task."""
    app = Celery("signatures", broker="memory://", backend="cache+memory://")
    app.conf.task_always_eager = True
    plain_task = app.task(answer, name="plain")
    our_task = app.task(answer_here, name="ours")
    with pytest.raises(TypeError) as plain_refusal:
        plain_task.delay()
    with pytest.raises(TypeError) as our_refusal:
        our_task.delay()
    assert str(our_refusal.value) == str(plain_refusal.value).replace("answer(", "answer_here(")
    assert otel.spans() == []  # refused before it ran
    assert our_task.delay("q", 0.1).get() == plain_task.delay("q", 0.1).get() == "q at 0.1 with m"
    assert [span.name for span in otel.spans()] == ["invoke_agent answer"]


def test_a_string_annotation_is_still_evaluated_as_for_the_plain_function() -> None:
    """A stored signature would hold the string where ``inspect.signature(eval_str=True)`` (FastAPI's) evaluates it:
    such a function shows ``(*args, **kwargs)`` to ``getfullargspec()``, as under any ``functools.wraps`` decorator."""

    def lookup(key: "int") -> "str":
        return str(key)

    ours = agent_otel.tool("lookup")(lookup)  # (a local function: the plain-function wrapper)
    assert inspect.signature(ours, eval_str=True) == inspect.signature(lookup, eval_str=True)
    assert inspect.signature(ours, eval_str=True).parameters["key"].annotation is int
    assert inspect.getfullargspec(ours).varargs == "args"


def test_a_wrapper_decorated_again_shows_what_it_showed() -> None:
    """A function that is itself a ``functools.wraps`` wrapper shows ``getfullargspec()`` its own parameters and
    ``inspect.signature()`` those of the function it wraps: one stored signature cannot give both, so none is."""

    def logged(func: Any) -> Any:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return func(*args, **kwargs)
        return wrapper

    plain = logged(answer)
    ours = agent_otel.agent("answer")(logged(answer))
    assert inspect.signature(ours) == inspect.signature(plain) == inspect.signature(answer)
    assert inspect.getfullargspec(ours) == inspect.getfullargspec(plain)

