"""The wrapper engine: every callable shape, exactly-once ends, untouched host behaviour."""

from __future__ import annotations

import asyncio
import collections.abc
import concurrent.futures
import contextlib
import contextvars
import copy
import gc
import inspect
import io
import itertools
import logging
import os
import pickle
import re
import subprocess
import sys
import textwrap
import threading
import traceback
import types
import unittest.mock
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any

import pytest
import wrapt
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import StatusCode

import agent_otel
from agent_otel import semconv
from agent_otel._engine.instruments import runtime
from agent_otel._engine.wrappers import End, Handler, Invocation, instrument
from agent_otel.semconv import STREAM_CLOSED_EARLY
from tests.support.coroutines import SCENARIOS, warnings_of
from tests.support.environment import CLEAN_ENV
from tests.support.telemetry import point


class RecordingInvocation(Invocation):
    def __init__(self, handler: RecordingHandler, span: Any, ctx: Any) -> None:
        super().__init__(span, ctx, "test")
        self.handler = handler
        self.chunks: list[Any] = []

    def record(self, how: End, value: Any, error: BaseException | None, duration_s: float) -> None:
        self.handler.ends.append((how, value, error))
        if self.handler.fail_in_record:
            raise RuntimeError("broken handler")

    def on_chunk(self, item: Any) -> None:
        self.chunks.append(item)

    def wants_stream(self, result: Any) -> bool:
        return (self.handler.streams and hasattr(result, "__next__")) or hasattr(result, "__anext__")


class RecordingHandler(Handler):
    """A minimal kind: one span per call, and a log of how each call ended."""

    stage = "test"

    def __init__(self, fail_in_begin: bool = False, fail_in_record: bool = False, streams: bool = False) -> None:
        self.ends: list[tuple[End, Any, BaseException | None]] = []
        self.fail_in_begin = fail_in_begin
        self.fail_in_record = fail_in_record
        self.streams = streams
        self.invocations: list[RecordingInvocation] = []

    def begin(self, wrapped: Any, instance: Any, args: tuple, kwargs: dict, parent: Any) -> Invocation:
        if self.fail_in_begin:
            raise RuntimeError("broken begin")
        span = runtime().tracer.start_span("op " + wrapped.__name__, context=parent)
        inv = RecordingInvocation(self, span, trace.set_span_in_context(span, parent))
        self.invocations.append(inv)
        return inv


def current_span_name() -> str | None:
    span = trace.get_current_span()
    return getattr(span, "name", None)


# --------------------------------------------------------------------------------------------------
# metadata


def test_wrapped_callables_keep_metadata_and_shape_answers(otel: Any) -> None:
    def plain(a: int, b: str = "x") -> str:
        """Plain doc."""
        return b * a

    async def coro(a: int) -> int:
        """Coro doc."""
        return a

    def gen(n: int):
        yield n

    async def agen(n: int):
        yield n

    for func, check in ((plain, None), (coro, inspect.iscoroutinefunction), (gen, inspect.isgeneratorfunction),
                        (agen, inspect.isasyncgenfunction)):
        wrapped = instrument(RecordingHandler(), func)
        assert wrapped.__name__ == func.__name__
        assert wrapped.__doc__ == func.__doc__
        assert wrapped.__wrapped__ is func
        assert inspect.signature(wrapped) == inspect.signature(func)
        for predicate in (inspect.iscoroutinefunction, inspect.isgeneratorfunction, inspect.isasyncgenfunction):
            assert predicate(wrapped) == (predicate is check)
    assert asyncio.iscoroutinefunction(instrument(RecordingHandler(), coro))


# --------------------------------------------------------------------------------------------------
# sync, methods


def test_sync_function_returns_value_and_ends_once(otel: Any) -> None:
    handler = RecordingHandler()

    @lambda f: instrument(handler, f)
    def add(a: int, b: int) -> int:
        assert current_span_name() == "op add"  # the span is current inside the call
        return a + b

    assert add(2, b=3) == 5
    assert handler.ends == [(End.RETURNED, 5, None)]
    assert otel.span("op add").status.status_code is StatusCode.UNSET
    assert current_span_name() is None


def test_exception_is_the_same_object_with_its_traceback(otel: Any) -> None:
    handler = RecordingHandler()
    boom = ValueError("boom")

    def fail() -> None:
        raise boom

    wrapped = instrument(handler, fail)
    with pytest.raises(ValueError) as caught:
        wrapped()
    assert caught.value is boom
    frames = [frame.name for frame in traceback.extract_tb(caught.value.__traceback__)]
    assert frames[-1] == "fail"  # the raising frame is still the innermost one
    assert handler.ends == [(End.RAISED, None, boom)]
    span = otel.span("op fail")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[semconv.ERROR_TYPE] == "ValueError"
    assert [event.name for event in span.events] == ["exception"]


def test_methods_classmethods_staticmethods(otel: Any) -> None:
    handler = RecordingHandler()

    class Agent:
        factor = 10

        def __init__(self) -> None:
            self.base = 1

        @lambda f: instrument(handler, f)
        def method(self, x: int) -> int:
            return self.base + x

        @lambda f: instrument(handler, f)
        @classmethod
        def klass(cls, x: int) -> int:
            return cls.factor * x

        @lambda f: instrument(handler, f)
        @staticmethod
        def static(x: int) -> int:
            return -x

    agent = Agent()
    assert agent.method(2) == 3
    assert Agent.method(agent, 2) == 3
    assert agent.klass(2) == 20
    assert Agent.klass(3) == 30
    assert agent.static(4) == -4
    assert Agent.static(5) == -5
    assert [value for _, value, _ in handler.ends] == [3, 3, 20, 30, -4, -5]
    assert len(otel.spans()) == 6


class InstanceRecordingHandler(RecordingHandler):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[Any, tuple, dict]] = []

    def begin(self, wrapped: Any, instance: Any, args: tuple, kwargs: dict, parent: Any) -> Invocation:
        self.calls.append((instance, args, kwargs))
        return super().begin(wrapped, instance, args, kwargs, parent)


def module_function(a: int, *, b: int = 0) -> int:
    return a + b


def bound_by_hand(a: int) -> int:
    return a


def test_a_proxy_of_a_function_is_called_with_what_wrapt_would_pass(otel: Any) -> None:
    """wrapt calls a proxy of a plain function as a builtin's, without looking up ``__self__`` on the function at
    every call (it failed): with no instance and the call's own arguments, in every shape, however it is called,
    and its ``__call__`` is wrapt's as before (read from its class, pickled, patched). It binds as a function's,
    and another wrapt wrapper around it binds as around a function. A function that carries a ``__self__`` of its
    own still gets it, as from wrapt."""

    async def coro(a: int, *, b: int = 0) -> int:
        return a + b

    def gen(a: int, *, b: int = 0) -> Any:
        yield a + b

    async def agen(a: int, *, b: int = 0) -> Any:
        yield a + b

    async def drain(stream: Any) -> list[int]:
        return [item async for item in stream]

    run = {module_function: lambda result: result, coro: asyncio.run, gen: list,
           agen: lambda stream: asyncio.run(drain(stream))}
    for func, finish in run.items():
        handler = InstanceRecordingHandler()
        proxy = instrument(handler, func)
        assert isinstance(proxy, wrapt.FunctionWrapper) and callable(proxy)
        assert finish(proxy(1, b=2)) in (3, [3])
        assert finish(proxy.__call__(4)) in (4, [4])
        assert finish(type(proxy).__call__(proxy, 5)) in (5, [5])
        assert handler.calls == [(None, (1,), {"b": 2}), (None, (4,), {}), (None, (5,), {})]
        assert [how for how, _, _ in handler.ends] == [End.RETURNED] * 3
        assert proxy._self_binding == "function" and proxy._self_instance is None
        with unittest.mock.patch.object(proxy, "__call__"):  # set on the proxy, as on wrapt's
            pass
    assert pickle.loads(pickle.dumps(instrument(RecordingHandler(), module_function).__call__))(6) == 6

    class Agent:
        async def run(self, a: int) -> int:
            return a

    handler = InstanceRecordingHandler()
    Agent.run = instrument(handler, Agent.run)  # type: ignore[method-assign]  # put on the class later
    agent = Agent()
    assert asyncio.run(agent.run(7)) == 7 and asyncio.run(Agent.run(agent, 8)) == 8
    assert handler.calls == [(agent, (7,), {}), (None, (agent, 8), {})]  # read from the class: the function
    outer_calls: list[Any] = []

    def outer(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
        outer_calls.append(instance)
        return wrapped(*args, **kwargs)

    Agent.run = wrapt.FunctionWrapper(Agent.run, outer)  # type: ignore[method-assign]  # another library's
    assert asyncio.run(agent.run(9)) == 9
    assert outer_calls == [agent] and handler.calls[-1] == (agent, (9,), {})

    owner = object()
    bound_by_hand.__self__ = owner  # type: ignore[attr-defined]
    try:
        handler = InstanceRecordingHandler()
        assert instrument(handler, bound_by_hand)(5) == 5
    finally:
        del bound_by_hand.__self__  # type: ignore[attr-defined]
    assert handler.calls == [(owner, (5,), {})]


def test_a_decorated_function_put_on_a_class_later_reads_from_it_as_itself(otel: Any) -> None:
    """A decorated coroutine or generator function (or a sync one decorated after its name holds it) put on a class
    after its ``class`` statement (a handler registered with ``setattr``) read from the class as a new bound wrapper
    each time, where the plain function reads as itself: ``Sub.handle is Base.handle`` said the subclass overrode it.
    Called through the class or an instance, it records as before."""

    async def handle(self: Any, n: int) -> int:
        return n + self.base

    def pages(self: Any, n: int) -> Any:
        yield from range(n)

    class Base:
        base = 10

    class Sub(Base):
        pass

    for name, func in (("handle", handle), ("pages", pages)):
        handler = InstanceRecordingHandler()
        setattr(Base, name, instrument(handler, func))
        wrapped = getattr(Base, name)
        assert wrapped is getattr(Base, name) is getattr(Sub, name) is vars(Base)[name]
        assert not inspect.ismethod(wrapped) and inspect.ismethod(getattr(Sub(), name))
        assert getattr(Sub(), name).__func__ is wrapped  # as a plain method's, which frameworks compare
    sub = Sub()
    assert asyncio.run(Base.handle(sub, 1)) == 11 and asyncio.run(sub.handle(2)) == 12  # type: ignore[attr-defined]
    assert list(Base.pages(sub, 2)) == [0, 1] and list(sub.pages(1)) == [0]  # type: ignore[attr-defined]
    assert len(otel.spans("op handle")) == 2 and len(otel.spans("op pages")) == 2


def test_a_decorated_method_over_another_wrapt_decorator_binds_as_that_decorator_does(otel: Any) -> None:
    """``@agent_otel.tool(...)`` above a library's wrapt decorator in a class body: ``Class.method(obj, ...)`` gave that
    decorator's wrapper no instance, where without agent-otel it is given ``obj``."""
    seen: list[tuple[str, tuple[Any, ...]]] = []

    @wrapt.decorator
    def library(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        seen.append((type(instance).__name__, args))
        return wrapped(*args, **kwargs)

    class Base:
        @agent_otel.tool("run")
        @library
        async def run(self, x: int) -> int:
            return x

    base = Base()
    assert asyncio.run(base.run(1)) == 1 and asyncio.run(Base.run(base, 2)) == 2
    assert seen == [("Base", (1,)), ("Base", (2,))]
    assert len(otel.spans("execute_tool run")) == 2


def test_with_wrapts_pure_python_proxies_decorating_and_configuring_work_as_with_its_c_ones(tmp_path: Any) -> None:
    """``WRAPT_DISABLE_EXTENSIONS=1`` (or no C extension): wrapt's pure-Python proxy set how it binds as an attribute,
    which agent-otel's proxy of a function (called as a builtin's by the C one) refused: decorating an ``async def``
    raised into the program, and a configured function was left unwrapped."""
    program = tmp_path / "pure.py"
    program.write_text(textwrap.dedent("""
        import asyncio, json, sys
        import agent_otel
        from agent_otel.testing import capture_telemetry

        with capture_telemetry() as otel:
            @agent_otel.tool("fetch")
            async def fetch(n):
                return n

            class Agent:
                @agent_otel.agent("agent")
                async def run(self, n):
                    return n

            assert asyncio.run(fetch(1)) == 1 and asyncio.run(Agent().run(2)) == 2
            assert asyncio.run(Agent.run(Agent(), 3)) == 3
            agent_otel.instrument(sys.argv[1])
            assert json.dumps({"a": 1}) == '{"a": 1}'
            print(sorted(span.name for span in otel.spans()))
    """))
    (tmp_path / "pure.toml").write_text('[[tool]]\ntarget = "json:dumps"\n')
    result = subprocess.run([sys.executable, str(program), str(tmp_path / "pure.toml")], capture_output=True,
                            text=True, timeout=120, env={**os.environ, "WRAPT_DISABLE_EXTENSIONS": "1"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[-2] == str(["execute_tool dumps", "execute_tool fetch", "invoke_agent agent",
                                                 "invoke_agent agent"])


# --------------------------------------------------------------------------------------------------
# async and awaitables


def test_async_function_is_timed_until_it_completes(otel: Any) -> None:
    handler = RecordingHandler()

    @lambda f: instrument(handler, f)
    async def work(x: int) -> int:
        await asyncio.sleep(0)
        assert current_span_name() == "op work"
        return x * 2

    assert asyncio.run(work(21)) == 42
    assert handler.ends == [(End.RETURNED, 42, None)]


def test_async_exception_and_cancellation(otel: Any) -> None:
    handler = RecordingHandler()
    boom = KeyError("k")

    @lambda f: instrument(handler, f)
    async def fail() -> None:
        await asyncio.sleep(0)
        raise boom

    @lambda f: instrument(handler, f)
    async def forever() -> None:
        await asyncio.Event().wait()

    async def main() -> None:
        with pytest.raises(KeyError) as caught:
            await fail()
        assert caught.value is boom
        task = asyncio.ensure_future(forever())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert [(how, type(err).__name__) for how, _, err in handler.ends] == [
        (End.RAISED, "KeyError"), (End.RAISED, "CancelledError")]


def test_bad_arguments_to_an_async_function_raise_at_call_time(otel: Any) -> None:
    handler = RecordingHandler()

    async def needs_one(x: int) -> int:
        return x

    wrapped = instrument(handler, needs_one)
    with pytest.raises(TypeError):
        wrapped()  # type: ignore[call-arg]
    assert handler.ends == []


def test_sync_function_returning_a_coroutine_is_timed_until_awaited_completion(otel: Any) -> None:
    handler = RecordingHandler()
    seen: list[str | None] = []

    async def inner(x: int) -> int:
        await asyncio.sleep(0)
        seen.append(current_span_name())
        return x + 1

    @lambda f: instrument(handler, f)
    def starts(x: int) -> Any:
        return inner(x)

    coro = starts(1)
    assert handler.ends == []  # not finished when the call returned
    assert inspect.iscoroutine(coro)
    assert asyncio.run(coro) == 2
    assert handler.ends == [(End.RETURNED, 2, None)]
    assert seen == ["op starts"]


def test_sync_function_returning_futures(otel: Any) -> None:
    handler = RecordingHandler()
    pool = concurrent.futures.ThreadPoolExecutor(1)

    @lambda f: instrument(handler, f)
    def submit(x: int) -> concurrent.futures.Future:
        return pool.submit(lambda: x * 3)

    future = submit(3)
    assert future.result(timeout=10) == 9
    pool.shutdown(wait=True)
    assert handler.ends == [(End.RETURNED, 9, None)]

    async def main() -> int:
        loop = asyncio.get_running_loop()

        @lambda f: instrument(handler, f)
        def in_executor() -> asyncio.Future:
            return loop.run_in_executor(None, lambda: 7)

        fut = in_executor()
        assert isinstance(fut, asyncio.Future)
        return await fut

    assert asyncio.run(main()) == 7
    assert handler.ends[-1] == (End.RETURNED, 7, None)


def run_after_collecting(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """``asyncio.run(main())`` for a test that watches what its loop reports, once earlier tests' garbage is
    collected outside any loop: the OpenAI SDK's async client, collected while a loop runs, closes itself in a
    task on that loop, which fails ("Event loop is closed": its connections were another loop's) and is
    reported to the test's handler."""
    gc.collect()
    asyncio.run(main())


@pytest.mark.parametrize("make", ["task", "future"])
def test_a_returned_future_whose_exception_nobody_retrieves_is_still_reported_by_asyncio(otel: Any, make: str) -> None:
    """A sync function that fires a task (or returns a future) nobody awaits: asyncio reports its exception
    when it is collected ("Task exception was never retrieved"), with agent-otel as without; the call still
    ends raising it."""
    handler = RecordingHandler()
    error = ValueError("nobody retrieves me")

    async def fails() -> None:
        raise error

    @lambda f: instrument(handler, f)
    def fire() -> asyncio.Future[None]:
        if make == "task":
            return asyncio.ensure_future(fails())
        future = asyncio.get_running_loop().create_future()
        future.set_exception(error)
        return future

    reported: list[object] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: reported.append(context["exception"]))
        future = fire()
        while not future.done():
            await asyncio.sleep(0)
        await asyncio.sleep(0)  # the done callbacks run
        del future
        gc.collect()

    run_after_collecting(main)
    assert handler.ends == [(End.RAISED, None, error)]
    assert reported == [error]


def test_a_sync_function_returning_another_awaitable_returns_it_as_is_and_ends_then(otel: Any) -> None:
    """A query builder whose methods return the builder, awaited at the end of the chain or never. It came back
    as a proxy: ``q.where("a") is q`` was false, its type was ours, and a call whose result was never awaited
    ended only when it was collected, as closed early."""
    handler = RecordingHandler()

    class Query:
        def __init__(self) -> None:
            self.filters: list[str] = []

        def where(self, condition: str) -> Query:
            self.filters.append(condition)
            return self

        def __await__(self) -> Any:
            yield from asyncio.sleep(0).__await__()
            return self.filters

    Query.where = instrument(handler, Query.where)  # type: ignore[method-assign]
    query = Query()
    assert query.where("a") is query and type(query.where("b")) is Query
    assert handler.ends == [(End.RETURNED, query, None)] * 2

    async def main() -> list[str]:
        return await query.where("c")

    assert asyncio.run(main()) == ["a", "b", "c"]
    assert [how for how, _, _ in handler.ends] == [End.RETURNED] * 3


# --------------------------------------------------------------------------------------------------
# generators


def make_gen(handler: RecordingHandler, log: list) -> Any:
    @lambda f: instrument(handler, f)
    def counter(n: int):
        total = 0
        try:
            for i in range(n):
                log.append(current_span_name())
                received = yield i
                if received is not None:
                    total += received
        except ValueError:
            yield "recovered"
        finally:
            log.append("finally")
        return total

    return counter


def test_generator_fully_consumed(otel: Any) -> None:
    handler, log = RecordingHandler(), []
    gen = make_gen(handler, log)(3)
    assert inspect.isgenerator(gen)
    assert handler.ends == []
    assert list(gen) == [0, 1, 2]
    assert handler.ends == [(End.RETURNED, 0, None)]
    assert log == ["op counter"] * 3 + ["finally"]
    assert handler.invocations[0].chunks == [0, 1, 2]


def test_a_span_a_generator_makes_current_stays_its_current_span_across_its_yields(otel: Any) -> None:
    """A library's generator that opens a span around its items (``with start_as_current_span():`` across yields,
    as agent frameworks' streams do) had that span current in its first step only: each step ran in the call's
    context again, and the spans the library started in later steps (autogen's model and tool calls under its
    streamed ``invoke_agent``) were parented to agent-otel's span instead, their parent childless."""
    tracer = otel.tracer_provider.get_tracer("a.library")

    @agent_otel.agent("streamer")
    def stream() -> Any:
        with tracer.start_as_current_span("library stream"):
            yield "started"
            for i in range(2):
                with tracer.start_as_current_span(f"library child {i}"):
                    yield i

    @agent_otel.agent("async-streamer")
    async def astream() -> Any:
        with tracer.start_as_current_span("library astream"):
            yield "started"
            for i in range(2):
                with tracer.start_as_current_span(f"library achild {i}"):
                    yield i

    async def read_all() -> list[Any]:
        return [item async for item in astream()]

    assert list(stream()) == ["started", 0, 1]
    assert asyncio.run(read_all()) == ["started", 0, 1]
    by_id = {span.context.span_id: span.name for span in otel.spans()}
    parents = {span.name: by_id.get(span.parent.span_id) for span in otel.spans() if span.parent is not None}
    assert parents == {"library stream": "invoke_agent streamer", "library child 0": "library stream",
                       "library child 1": "library stream", "library astream": "invoke_agent async-streamer",
                       "library achild 0": "library astream", "library achild 1": "library astream"}
    assert trace.get_current_span() is trace.INVALID_SPAN  # nothing of the generators' left current here


def test_a_generator_stepped_inside_anothers_steps_keeps_its_own_current_span_too(otel: Any) -> None:
    """Each call marks the context its step ran in with a marker of its own: the outer generator's step, which takes
    the inner one's, does not hide the inner one's mark."""
    tracer = otel.tracer_provider.get_tracer("a.library")

    @agent_otel.tool("inner")
    def inner() -> Any:
        with tracer.start_as_current_span("inner stream"):
            for i in range(2):
                with tracer.start_as_current_span(f"inner item {i}"):
                    pass
                yield i

    @agent_otel.agent("outer")
    def outer() -> Any:
        with tracer.start_as_current_span("outer stream"):
            for item in inner():
                with tracer.start_as_current_span(f"outer item {item}"):
                    pass
                yield item

    assert list(outer()) == [0, 1]
    by_id = {span.context.span_id: span.name for span in otel.spans()}
    parents = {span.name: by_id.get(span.parent.span_id) for span in otel.spans() if span.parent is not None}
    assert [parents[f"inner item {i}"] for i in range(2)] == ["inner stream"] * 2
    assert [parents[f"outer item {i}"] for i in range(2)] == ["outer stream"] * 2
    assert parents["execute_tool inner"] == "outer stream"


def test_a_copy_of_the_context_made_between_steps_still_carries_the_open_span(otel: Any) -> None:
    """Step 1 here, a copy of this context, step 2 here, step 3 in the copy: unwrapped, the copy still has the
    library's open span. A step re-marked the context each time, and the copy's (earlier) marker no longer matched."""
    tracer = otel.tracer_provider.get_tracer("a.library")

    @agent_otel.tool("stream")
    def stream() -> Any:
        with tracer.start_as_current_span("library stream"):
            for i in range(3):
                with tracer.start_as_current_span(f"item {i}"):
                    pass
                yield i

    generator = stream()
    assert next(generator) == 0
    copy = contextvars.copy_context()
    assert next(generator) == 1
    assert copy.run(next, generator) == 2
    assert list(generator) == []
    by_id = {span.context.span_id: span.name for span in otel.spans()}
    parents = {span.name: by_id.get(span.parent.span_id) for span in otel.spans() if span.parent is not None}
    assert [parents[f"item {i}"] for i in range(3)] == ["library stream"] * 3


def test_a_dozen_generators_read_side_by_side_each_keep_their_own_current_span(otel: Any) -> None:
    """Read round-robin in one context (``zip()``), each stream's items stay under its own span: the markers of the
    last calls are kept side by side (eight were, and the ninth stream lost its span)."""
    tracer = otel.tracer_provider.get_tracer("a.library")

    @agent_otel.tool("stream")
    def stream(n: int) -> Any:
        with tracer.start_as_current_span(f"stream {n}"):
            for i in range(2):
                with tracer.start_as_current_span(f"item {n}.{i}"):
                    pass
                yield i

    assert list(zip(*(stream(n) for n in range(12)), strict=True)) == [(0,) * 12, (1,) * 12]
    by_id = {span.context.span_id: span.name for span in otel.spans()}
    misplaced = [span.name for span in otel.spans() if span.name.startswith("item ")
                 and by_id.get(span.parent.span_id) != "stream " + span.name.split()[1].split(".")[0]]
    assert misplaced == []


def test_a_span_a_generators_step_left_current_is_not_carried_where_it_ended_or_into_another_task(
        otel: Any) -> None:
    """The span a step left current is current in the next step only where unwrapped it could be: steps taken in
    copies of the consumer's context (pool threads) or in tasks of their own (``wait_for()`` per item) cannot undo
    the library's changes there ("Failed to detach context", as unwrapped), and a span that ended so stayed current:
    the library's next spans were parented to it."""
    tracer = otel.tracer_provider.get_tracer("a.library")

    @agent_otel.tool("stream")
    def stream() -> Any:
        with tracer.start_as_current_span("library stream"):
            yield 1
        yield 2
        with tracer.start_as_current_span("after it"):
            pass
        yield 3

    @agent_otel.agent("turns")
    async def turns() -> Any:
        with tracer.start_as_current_span("turn 1"):
            yield 1
        with tracer.start_as_current_span("turn 2"):
            yield 2

    generator = stream()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # each step in a copy of this context, on one thread
        items = [pool.submit(contextvars.copy_context().run, next, generator).result() for _ in range(3)]
    assert items == [1, 2, 3]
    assert list(generator) == []  # its end, here

    async def each_item_in_a_task() -> list[Any]:
        agen = turns()
        items = [await asyncio.wait_for(agen.__anext__(), 10) for _ in range(2)]
        assert [item async for item in agen] == []  # its end, in this task
        return items

    with contextlib.redirect_stderr(io.StringIO()):  # the library's own "Failed to detach context", as unwrapped
        assert asyncio.run(each_item_in_a_task()) == [1, 2]

    @agent_otel.tool("chunks")
    def chunks() -> Any:
        for i in range(3):
            with tracer.start_as_current_span(f"chunk {i}"):
                yield i

    generator = chunks()  # each step in a fresh copy of this context, on this very thread (as anyio's worker threads,
    with contextlib.redirect_stderr(io.StringIO()):  # reused, or trio's tasks on one thread, take them)
        assert [contextvars.copy_context().run(next, generator) for _ in range(3)] == [0, 1, 2]
        assert list(generator) == []
    by_id = {span.context.span_id: span.name for span in otel.spans()}
    parents = {span.name: by_id.get(span.parent.span_id) for span in otel.spans() if span.parent is not None}
    assert parents["after it"] == "execute_tool stream"
    assert parents["turn 2"] == "invoke_agent turns"
    assert [parents[f"chunk {i}"] for i in range(3)] == ["execute_tool chunks"] * 3  # not each under the one before


@pytest.mark.parametrize("shape", ["sync", "async"])
def test_a_remote_parent_and_baggage_a_generators_step_made_current_stay_for_its_next_step(
        otel: Any, shape: str) -> None:
    """A context the generator's code made current from an incoming request (a remote parent, baggage) has no span
    that records: it is no span that ended, and is carried to the next step as unwrapped (it was dropped for the
    call's: the baggage gone, the next step's spans in another trace)."""
    from opentelemetry import baggage, propagate

    headers = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "baggage": "tenant=acme"}
    seen: list[Any] = []

    @agent_otel.tool("handler")
    def handle() -> Any:
        token = otel_context.attach(propagate.extract(headers))
        yield "a"
        seen.append((baggage.get_baggage("tenant"), trace.get_current_span().get_span_context().trace_id))
        otel_context.detach(token)
        yield "b"

    @agent_otel.tool("async-handler")
    async def ahandle() -> Any:
        token = otel_context.attach(propagate.extract(headers))
        yield "a"
        seen.append((baggage.get_baggage("tenant"), trace.get_current_span().get_span_context().trace_id))
        otel_context.detach(token)
        yield "b"

    async def read_all() -> list[Any]:
        return [item async for item in ahandle()]

    assert (list(handle()) if shape == "sync" else asyncio.run(read_all())) == ["a", "b"]
    assert seen == [("acme", 0x0AF7651916CD43DD8448EB211C80319C)]


def test_a_task_that_took_a_step_of_a_generator_is_not_kept_alive_by_it(otel: Any) -> None:
    """Which task took a step is remembered weakly: a finished task, and its result, lived as long as the generator."""
    tracer = otel.tracer_provider.get_tracer("a.library")

    @agent_otel.agent("streamer")
    async def stream() -> Any:
        with tracer.start_as_current_span("library stream"):
            yield 1
            yield 2

    async def main() -> None:
        agen = stream()

        async def first() -> bytearray:
            assert await agen.__anext__() == 1
            return bytearray(1000)  # the task's result

        task = asyncio.create_task(first())
        await task
        finished = weakref.ref(task)
        del task
        for _ in range(3):  # the loop's own references to it go
            await asyncio.sleep(0)
        gc.collect()
        assert finished() is None
        await agen.aclose()

    asyncio.run(main())


def test_a_generator_under_suppressed_instrumentation_decides_on_a_generatorexit_thrown_in(otel: Any) -> None:
    """Passed through with ``yield from`` under ``suppress_instrumentation()``, a generator was closed by a
    GeneratorExit thrown in, where plain Python throws it in: one that catches it and yields got "generator ignored
    GeneratorExit" (the traced path throws it in already)."""
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    def handles_exit() -> Iterator[str]:
        try:
            yield "first"
        except GeneratorExit:
            yield "handled"

    def thrown(make: Callable[[], Iterator[str]]) -> object:
        running = make()
        next(running)
        try:
            return running.throw(GeneratorExit)
        except BaseException as exc:
            return type(exc)

    with suppress_instrumentation():
        assert thrown(agent_otel.tool("exits")(handles_exit)) == thrown(handles_exit) == "handled"
    assert otel.spans() == []


def test_an_async_generator_under_suppressed_instrumentation_passes_asend_and_athrow_through(otel: Any) -> None:
    """Its first step under ``suppress_instrumentation()`` (no invocation): the program's generator was read by an
    ``async for`` over it, which dropped what ``asend()`` passed and raised what ``athrow()`` threw past it."""
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    @agent_otel.tool("echo")
    async def echo() -> Any:
        got = None
        while True:
            try:
                got = yield f"got {got!r}"
            except ValueError as exc:
                got = f"caught {exc}"

    async def main() -> list[str]:
        with suppress_instrumentation():
            agen = echo()
            items = [await agen.asend(None)]
        items.append(await agen.asend("hello"))
        items.append(await agen.athrow(ValueError("boom")))
        await agen.aclose()
        return items

    assert asyncio.run(main()) == ["got None", "got 'hello'", "got 'caught boom'"]
    assert otel.spans() == []


def test_a_forked_child_prunes_the_calls_held_open_though_the_parent_was_pruning(tmp_path: Any) -> None:
    """A thread of the parent pruning the list of calls held open as it forked left the lock held in the child, which
    then never pruned it: one entry per generator call for the child's life."""
    program = tmp_path / "child.py"
    program.write_text(textwrap.dedent("""
        import os, sys
        import agent_otel
        from agent_otel._engine import wrappers

        @agent_otel.tool("read")
        def read():
            yield 1

        wrappers._pruning.acquire()  # as a thread of the parent pruning at the fork
        pid = os.fork()
        if pid == 0:
            for _ in range(5000):
                list(read())
            os._exit(0 if len(wrappers._open) <= 1025 else 1)
        _, status = os.waitpid(pid, 0)
        sys.exit(os.waitstatus_to_exitcode(status))
    """))
    result = subprocess.run([sys.executable, str(program)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_generator_send_and_return_value(otel: Any) -> None:
    handler, log = RecordingHandler(), []
    gen = make_gen(handler, log)(3)
    assert next(gen) == 0
    assert gen.send(5) == 1
    assert gen.send(6) == 2
    with pytest.raises(StopIteration) as stop:
        gen.send(7)
    assert stop.value.value == 18
    assert handler.ends == [(End.RETURNED, 18, None)]


def test_generator_throw_handled_and_unhandled(otel: Any) -> None:
    handler, log = RecordingHandler(), []
    gen = make_gen(handler, log)(5)
    next(gen)
    assert gen.throw(ValueError("handled")) == "recovered"
    assert handler.ends == []
    err = KeyError("unhandled")
    with pytest.raises(KeyError) as caught:
        gen.throw(err)
    assert caught.value is err
    assert handler.ends == [(End.RAISED, None, err)]


@pytest.mark.parametrize("on_exit", ["yield", "return"])
def test_a_generator_exit_thrown_reaches_the_programs_handler(otel: Any, on_exit: str) -> None:
    """``gen.throw(GeneratorExit())`` reaches the program's ``except GeneratorExit`` as unwrapped: it
    was taken as ``close()`` (``yield from``'s way), so a handler that yields raised "generator ignored
    GeneratorExit" and one that returns raised a bare GeneratorExit."""

    def program() -> Any:
        try:
            yield 1
        except GeneratorExit:
            if on_exit == "yield":
                yield "caught"
            return "done"

    def outcome(gen: Any) -> tuple[str, Any]:
        next(gen)
        try:
            return "yielded", gen.throw(GeneratorExit())
        except StopIteration as stop:
            return "returned", stop.value

    handler = RecordingHandler()
    assert outcome(instrument(handler, program)()) == outcome(program())
    assert [how for how, _, _ in handler.ends] == [End.CLOSED if on_exit == "yield" else End.RETURNED]


@pytest.mark.parametrize("on_exit", ["yield", "return"])
def test_a_generator_exit_thrown_reaches_the_programs_async_handler(otel: Any, on_exit: str) -> None:
    async def program() -> Any:
        try:
            yield 1
        except GeneratorExit:
            if on_exit == "yield":
                yield "caught"

    async def outcome(agen: Any) -> tuple[str, Any]:
        await agen.__anext__()
        try:
            return "yielded", await agen.athrow(GeneratorExit())
        except StopAsyncIteration:
            return "stopped", None

    handler = RecordingHandler()
    plain = asyncio.run(outcome(program()))
    assert asyncio.run(outcome(instrument(handler, program)())) == plain
    assert len(handler.ends) == 1


def test_generator_based_coroutines_can_still_be_awaited(otel: Any) -> None:
    """``types.coroutine`` (a legacy ``@asyncio.coroutine``) makes a generator awaitable; ours for it was a
    plain generator, and ``await`` refused it (TypeError: object generator can't be used in 'await'
    expression), whichever decorator was outside and for a sync function returning one."""

    def body() -> Any:
        yield  # one trip through the event loop, as asyncio.sleep(0) takes
        return 42

    def legacy_body() -> Any:
        yield
        return 7

    legacy = types.coroutine(legacy_body)
    handler = RecordingHandler()
    inside = types.coroutine(instrument(handler, body))
    outside = instrument(handler, types.coroutine(body))
    returning = instrument(handler, lambda: legacy())

    async def main() -> list[Any]:
        return [await inside(), await outside(), await returning()]

    assert asyncio.run(main()) == [42, 42, 7]
    assert [how for how, _, _ in handler.ends] == [End.RETURNED] * 3
    assert inspect.isawaitable(outside()) and inspect.isawaitable(returning())


def test_generator_close_break_and_drop_end_once(otel: Any) -> None:
    handler, log = RecordingHandler(), []
    counter = make_gen(handler, log)

    gen = counter(5)
    next(gen)
    gen.close()
    gen.close()
    assert handler.ends == [(End.CLOSED, None, None)]
    assert log[-1] == "finally"  # the inner generator was closed too

    for item in counter(5):
        if item == 1:
            break
    gc.collect()
    assert handler.ends[1] == (End.CLOSED, None, None)

    dropped = counter(5)
    next(dropped)
    del dropped
    gc.collect()
    assert [how for how, _, _ in handler.ends] == [End.CLOSED] * 3
    assert all(span.attributes.get(STREAM_CLOSED_EARLY) for span in otel.spans())
    assert len(otel.spans()) == 3

    never_started = counter(5)
    del never_started
    gc.collect()
    assert len(handler.ends) == 3  # no span was begun for a generator never iterated


def test_generator_error_inside(otel: Any) -> None:
    handler = RecordingHandler()
    boom = RuntimeError("mid-stream")

    @lambda f: instrument(handler, f)
    def broken():
        yield 1
        raise boom

    gen = broken()
    assert next(gen) == 1
    with pytest.raises(RuntimeError) as caught:
        next(gen)
    assert caught.value is boom
    assert handler.ends == [(End.RAISED, None, boom)]


def test_sync_function_returning_a_generator(otel: Any) -> None:
    handler = RecordingHandler()

    def produce():
        yield from "abc"

    wrapped = instrument(handler, lambda: produce())
    gen = wrapped()
    assert handler.ends == []
    assert "".join(gen) == "abc"
    assert handler.ends == [(End.RETURNED, None, None)]
    dropped = wrapped()
    del dropped
    gc.collect()
    assert handler.ends[-1] == (End.CLOSED, None, None)  # dropped before iterating, still ended


class Streams:
    def rows(self, n: int) -> Any:
        yield from range(n)

    async def arows(self, n: int) -> Any:
        yield n


def test_generator_objects_are_named_as_the_programs(otel: Any) -> None:
    """The generator a decorated generator function (or a sync function returning one) gives has the
    program's generator's ``__name__``, ``__qualname__`` and so ``repr``, as logs and debuggers show it.
    Its code and frame are the traced driver's (``inspect.getgeneratorlocals()`` cannot match)."""
    plain_gen, plain_agen = Streams().rows(1), Streams().arows(1)
    handler = RecordingHandler()
    rows, arows = instrument(handler, Streams.rows), instrument(handler, Streams.arows)
    returning = instrument(handler, lambda n: Streams().rows(n))
    returning_async = instrument(handler, lambda n: Streams().arows(n))
    for traced, plain in ((rows(None, 1), plain_gen), (returning(1), plain_gen), (arows(None, 1), plain_agen),
                          (returning_async(1), plain_agen)):
        assert (traced.__name__, traced.__qualname__) == ("rows" if inspect.isgenerator(plain) else "arows",
                                                          plain.__qualname__)
        assert (traced.__name__, traced.__qualname__) == (plain.__name__, plain.__qualname__)
        assert repr(traced).split(" at ")[0] == repr(plain).split(" at ")[0]
        if inspect.isgenerator(traced):
            assert list(traced) == [0]
        else:
            asyncio.run(traced.aclose())
    plain_gen.close()
    asyncio.run(plain_agen.aclose())


def test_a_returned_stream_has_the_methods_of_the_stream_and_no_others(otel: Any) -> None:
    """The traced stream had ``close``, ``aclose`` and ``__next__`` whatever the stream had: a program's
    ``if hasattr(stream, "close"): stream.close()`` then failed with AttributeError on an async iterator
    without one. Nor does it claim a protocol of wrapt's proxy that the stream lacks (``__enter__``,
    ``__aenter__``, ``__len__``...): ``iter()``, ``len()`` and the ABCs answer as for the stream."""

    class Items:
        def __iter__(self) -> Any:
            return self

        def __next__(self) -> int:
            raise StopIteration

    class AsyncItems:
        def __aiter__(self) -> Any:
            return self

        async def __anext__(self) -> int:
            raise StopAsyncIteration

    class ClosableAsyncItems(AsyncItems):
        closed = False

        async def aclose(self) -> None:
            self.closed = True

    def close_if_closable(stream: Any) -> None:
        if hasattr(stream, "close"):
            stream.close()

    handler = RecordingHandler(streams=True)
    for stream_class in (Items, AsyncItems, ClosableAsyncItems):
        plain, traced = stream_class(), instrument(handler, stream_class)()
        assert isinstance(traced, stream_class) and traced is not plain
        for name in ("close", "aclose", "__next__", "__anext__", "__aiter__"):
            assert hasattr(traced, name) == hasattr(plain, name), (stream_class.__name__, name)
        for name in ("__iter__", "__enter__", "__exit__", "__aenter__", "__aexit__", "__len__", "__contains__",
                     "__getitem__", "__reversed__"):
            assert callable(getattr(traced, name, None)) == hasattr(plain, name), (stream_class.__name__, name)
        for abc in (collections.abc.Iterable, collections.abc.Collection, contextlib.AbstractContextManager,
                    contextlib.AbstractAsyncContextManager):
            assert isinstance(traced, abc) == isinstance(plain, abc), (stream_class.__name__, abc)
        close_if_closable(traced)
    closable = instrument(handler, ClosableAsyncItems)()
    asyncio.run(closable.aclose())
    assert closable.closed and handler.ends[-1] == (End.CLOSED, None, None)


def test_a_returned_stream_tees_copies_and_pickles_as_the_program_stream_does(otel: Any) -> None:
    """``itertools.tee`` of a provider's stream (one copy to a log, one to the user) raised wrapt's "object proxy
    must define __copy__()", and copy and pickle failed the same way. A stream type without ``__copy__`` is buffered
    by ``tee`` through our proxy (still timed); copy and pickle give the stream's own (untraced)."""
    handler = RecordingHandler(streams=True)

    def stream() -> Any:
        return iter([1, 2, 3])

    left, right = itertools.tee(instrument(handler, stream)())
    assert (list(left), list(right)) == ([1, 2, 3], [1, 2, 3])
    assert handler.ends == [(End.RETURNED, None, None)] and handler.invocations[0].chunks == [1, 2, 3]
    traced = instrument(handler, stream)()
    next(traced)
    assert list(copy.copy(traced)) == list(copy.deepcopy(traced)) == list(pickle.loads(pickle.dumps(traced))) == [2, 3]
    assert not hasattr(traced, "__copy__") and not hasattr(iter([]), "__copy__")


def test_returned_stream_object_is_timed_until_exhausted(otel: Any) -> None:
    handler = RecordingHandler(streams=True)

    class Stream:
        def __init__(self) -> None:
            self.items = iter([1, 2])
            self.closed = False

        def __iter__(self) -> Any:
            return self

        def __next__(self) -> int:
            return next(self.items)

        def close(self) -> None:
            self.closed = True

    wrapped = instrument(handler, Stream)
    stream = wrapped()
    assert isinstance(stream, Stream)
    assert list(stream) == [1, 2]
    assert handler.ends == [(End.RETURNED, None, None)]
    assert handler.invocations[0].chunks == [1, 2]
    assert handler.invocations[0].time_to_first_chunk_s is not None

    second = wrapped()
    next(second)
    second.close()
    assert second.closed
    assert handler.ends[-1] == (End.CLOSED, None, None)


class SdkLikeStream:
    """The shape of ``openai.Stream`` / ``anthropic.Stream``: an iterator whose ``__iter__`` is a
    generator, a context manager returning itself, and ``close()``."""

    def __init__(self) -> None:
        self._items = iter([1, 2, 3])
        self.closed = False

    def __next__(self) -> int:
        return next(self._items)

    def __iter__(self) -> Any:
        yield from self._items

    def __enter__(self) -> SdkLikeStream:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self.closed = True


class AsyncSdkLikeStream:
    """The shape of ``openai.AsyncStream``: ``async with`` returns itself; ``close()`` is a coroutine."""

    def __init__(self) -> None:
        self._items = iter([1, 2, 3])
        self.closed = False

    async def __anext__(self) -> int:
        try:
            return next(self._items)
        except StopIteration:
            raise StopAsyncIteration from None

    def __aiter__(self) -> AsyncSdkLikeStream:
        return self

    async def __aenter__(self) -> AsyncSdkLikeStream:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        self.closed = True


def _consume_sync(stream: Any, use: str) -> list[int]:
    if use == "iterate":
        return list(stream)
    with stream as entered:
        if use == "with_then_break":
            return [next(iter(entered))]
        return list(entered)


async def _consume_async(stream: Any, use: str) -> list[int]:
    if use == "iterate":
        items = [item async for item in stream]
        await stream.close()
        return items
    async with stream as entered:
        if use == "with_then_break":
            return [await entered.__anext__()]
        return [item async for item in entered]


@pytest.mark.parametrize("use", ["iterate", "with", "with_then_break"])
@pytest.mark.parametrize("call", ["sync", "async def"])
@pytest.mark.parametrize("stream_type", [SdkLikeStream, AsyncSdkLikeStream])
def test_sdk_shaped_stream_from_any_call_used_any_way(otel: Any, stream_type: type, call: str, use: str) -> None:
    """Timed until exhausted (RETURNED: not closed early) or left (CLOSED), with every chunk seen."""
    handler = RecordingHandler(streams=True)

    def create_sync() -> Any:
        return stream_type()

    async def create_async() -> Any:
        return stream_type()

    wrapped = instrument(handler, create_sync if call == "sync" else create_async)

    async def main() -> tuple[Any, list[int]]:
        made = wrapped()
        stream = await made if call == "async def" else made
        assert handler.ends == []  # not over until the stream is
        if stream_type is SdkLikeStream:
            return stream, _consume_sync(stream, use)
        return stream, await _consume_async(stream, use)

    stream, items = asyncio.run(main())
    assert isinstance(stream, stream_type) and stream.closed is (use != "iterate" or stream_type is AsyncSdkLikeStream)
    expected_end = End.CLOSED if use == "with_then_break" else End.RETURNED
    assert items == ([1] if use == "with_then_break" else [1, 2, 3])
    assert handler.ends == [(expected_end, None, None)]
    assert handler.invocations[0].chunks == items


@pytest.mark.parametrize("stream_type", [SdkLikeStream, AsyncSdkLikeStream])
def test_the_programs_exception_in_a_streams_own_block_is_not_the_calls_error(otel: Any, stream_type: type) -> None:
    """``with stream as s: for chunk in s: raise ValueError``: the provider answered, the program's loop body raised;
    recorded as the provider call's error (a point on its error rate), and closed early without the ``with``."""
    handler = RecordingHandler(streams=True)
    failure = ValueError("the program's own")

    async def read() -> None:
        if stream_type is SdkLikeStream:
            with instrument(handler, stream_type)() as stream:
                for _ in stream:
                    raise failure
        else:
            async with instrument(handler, stream_type)() as stream:
                async for _ in stream:
                    raise failure

    with pytest.raises(ValueError) as raised:
        asyncio.run(read())
    assert raised.value is failure
    assert handler.ends == [(End.CLOSED, None, None)]


class BothWaysStream(SdkLikeStream):
    """The shape of litellm's ``CustomStreamWrapper``: one stream object for ``completion(stream=True)`` and
    ``acompletion(stream=True)``, both an iterator and an async one."""

    def __aiter__(self) -> BothWaysStream:
        return self

    async def __anext__(self) -> int:
        try:
            return next(self._items)
        except StopIteration:
            raise StopAsyncIteration from None


@pytest.mark.parametrize("use", ["next", "for", "async for"])
def test_a_stream_that_is_both_an_iterator_and_an_async_one_is_timed_read_either_way(otel: Any, use: str) -> None:
    """Its proxy was an async stream's: ``next(stream)`` raised TypeError (not an iterator), and a ``for`` loop went
    past the proxy to the stream, so the call recorded no chunk, no usage, and ended closed early."""
    handler = RecordingHandler(streams=True)
    stream = instrument(handler, BothWaysStream)()
    assert isinstance(stream, BothWaysStream)

    async def read_async() -> list[int]:
        return [item async for item in stream]

    if use == "next":
        items = [next(stream), *stream]
    elif use == "for":
        items = [item for item in stream]
    else:
        items = asyncio.run(read_async())
    assert items == [1, 2, 3]
    assert handler.ends == [(End.RETURNED, None, None)] and handler.invocations[0].chunks == [1, 2, 3]


# --------------------------------------------------------------------------------------------------
# async generators


def make_agen(handler: RecordingHandler, log: list) -> Any:
    @lambda f: instrument(handler, f)
    async def ticker(n: int):
        try:
            for i in range(n):
                await asyncio.sleep(0)
                log.append(current_span_name())
                received = yield i
                if received:
                    log.append(("got", received))
        except ValueError:
            yield "recovered"
        finally:
            log.append("finally")

    return ticker


def test_async_generator_consumed_sent_thrown_closed(otel: Any) -> None:
    handler, log = RecordingHandler(), []
    ticker = make_agen(handler, log)
    boom = KeyError("x")

    async def main() -> None:
        assert [i async for i in ticker(3)] == [0, 1, 2]
        assert handler.ends == [(End.RETURNED, None, None)]

        agen = ticker(5)
        assert await agen.asend(None) == 0
        assert await agen.asend("hi") == 1
        assert await agen.athrow(ValueError()) == "recovered"
        with pytest.raises(KeyError) as caught:
            await agen.athrow(boom)
        assert caught.value is boom

        agen = ticker(5)
        async for item in agen:
            if item == 1:
                break
        await agen.aclose()

    asyncio.run(main())
    assert [how for how, _, _ in handler.ends] == [End.RETURNED, End.RAISED, End.CLOSED]
    assert ("got", "hi") in log
    assert "op ticker" in log


def test_async_generator_dropped_unfinished_ends_once(otel: Any) -> None:
    handler, log = RecordingHandler(), []
    ticker = make_agen(handler, log)

    async def main() -> None:
        agen = ticker(5)
        await agen.__anext__()
        del agen
        gc.collect()
        await asyncio.sleep(0)  # let the loop run the finalizer's aclose()

    asyncio.run(main())
    assert [how for how, _, _ in handler.ends] == [End.CLOSED]
    assert log[-1] == "finally"


@pytest.mark.parametrize("fail_in_begin", [False, True])
def test_async_generator_left_unfinished_is_closed_once_at_loop_shutdown(otel: Any, fail_in_begin: bool) -> None:
    """A stream the consumer broke out of and kept, whose cleanup awaits (an SDK closing its response): the
    loop closes it as it shuts down, once, with no error, as without agent-otel (it closed the program's
    generator beside ours, and the second close failed, "already running")."""
    handler, log = RecordingHandler(fail_in_begin=fail_in_begin), []
    reported: list[object] = []

    @lambda f: instrument(handler, f)
    async def stream() -> Any:
        try:
            for i in range(5):
                yield i
        finally:
            await asyncio.sleep(0)
            log.append("cleanup")

    kept = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: reported.append(context))
        agen = stream()
        kept.append(agen)
        async for item in agen:
            if item == 1:
                break

    run_after_collecting(main)
    assert reported == []
    assert log == ["cleanup"]
    assert [how for how, _, _ in handler.ends] == ([] if fail_in_begin else [End.CLOSED])


@pytest.mark.parametrize("fail_in_begin", [False, True])
def test_async_generator_dropped_in_a_reference_cycle_closes_quietly(otel: Any, fail_in_begin: bool) -> None:
    """Dropped half-read in a cycle, both generators are freed by one collection: the program's, which has no loop
    hooks (see _first_step), is closed there at once; ours through the loop's finalizer, later. Thrown into, the
    closed one answered None (Python 3.11), which ours yielded: asyncio then reported "Task exception was never
    retrieved ... async generator ignored GeneratorExit", where the program alone reports nothing."""
    handler, log = RecordingHandler(fail_in_begin=fail_in_begin), []
    reported: list[object] = []
    ticker = make_agen(handler, log)

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: reported.append(context))
        agen = ticker(5)
        await agen.__anext__()
        holder: dict[str, Any] = {"agen": agen}
        holder["self"] = holder
        del agen, holder
        gc.collect()
        for _ in range(3):
            await asyncio.sleep(0)  # the loop's finalizer closes ours
        gc.collect()  # the failed close's task, reported when it is collected

    run_after_collecting(main)
    assert reported == []
    assert log[-1] == "finally"
    assert [how for how, _, _ in handler.ends] == ([] if fail_in_begin else [End.CLOSED])


@pytest.mark.parametrize("decorated", [False, True])
def test_an_async_generator_dropped_in_a_cycle_runs_a_cleanup_that_awaits_in_a_task(
        otel: Any, decorated: bool, capsys: pytest.CaptureFixture[str]) -> None:
    """A stream whose ``finally`` awaits (closing its HTTP response), held in a reference cycle and dropped
    half-read: unwrapped, the loop's finalizer closes it in a task and its cleanup completes. Wrapped, the program's
    generator had no finalizer (see _first_step) and the collector closed it at once, without a loop: the cleanup
    stopped at its first await, and Python printed "async generator ignored GeneratorExit"."""
    log: list[str] = []

    async def stream() -> Any:
        try:
            for i in range(10):
                await asyncio.sleep(0)
                yield i
        finally:
            log.append("cleanup start")
            await asyncio.sleep(0)
            log.append(f"cleanup done in a task: {asyncio.current_task() is not None}")

    program = agent_otel.provider("fake", model="m")(stream) if decorated else stream

    async def main() -> None:
        holder: dict[str, Any] = {"stream": program()}
        holder["self"] = holder
        assert await holder["stream"].__anext__() == 0
        del holder
        gc.collect()
        for _ in range(5):
            await asyncio.sleep(0)

    run_after_collecting(main)
    assert log == ["cleanup start", "cleanup done in a task: True"]
    assert "ignored GeneratorExit" not in capsys.readouterr().err
    if decorated:
        [span] = otel.spans()
        assert span.attributes[STREAM_CLOSED_EARLY] is True


IPYTHON_SESSION = textwrap.dedent("""
    import sys
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_line_magic("colors", "nocolor")
    shell.run_cell(
        "import agent_otel\\n"
        f"decorate = agent_otel.tool('lookup') if {sys.argv[1]!r} == 'decorated' else (lambda func: func)\\n"
        "@decorate\\n"
        "def lookup(key):\\n"
        "    return {'a': 1}[key]\\n"
        "@decorate\\n"
        "def items(keys):\\n"
        "    for key in keys:\\n"
        "        yield lookup(key)\\n")
    shell.run_cell("lookup('b')")
    shell.run_cell("list(items(['a', 'b']))")
""")


def test_ipythons_tracebacks_of_a_decorated_call_read_as_without_agent_otel() -> None:
    """IPython (a notebook, its shell) hides a frame whose own locals hold ``__tracebackhide__``, in its tracebacks
    and its debugger (``%debug``'s ``up`` went to agent-otel's frame first): its traceback of a call that raised showed
    agent-otel's wrapper (``wrappers.py``, ``in call``; ``_traced_generator`` for a generator)."""
    outputs = [subprocess.run([sys.executable, "-c", IPYTHON_SESSION, how], env=CLEAN_ENV, capture_output=True,
                              text=True, timeout=120, check=True).stdout for how in ("plain", "decorated")]
    assert "KeyError: 'b'" in outputs[1] and outputs[1].count("Traceback") == 2
    assert "wrappers.py" not in outputs[1] and "skipping hidden" not in outputs[1]  # (none left to hide: see below)
    assert outputs[1] == outputs[0]


class _InterruptedInRecord(RecordingHandler):
    """A signal's exception (Ctrl-C's KeyboardInterrupt) raised while the call is being recorded: a signal's Python
    handler runs at whatever bytecode the main thread is at, most often agent-otel's or the SDK's in a loop of quick
    calls."""

    interrupt: BaseException = KeyboardInterrupt()

    def begin(self, wrapped: Any, instance: Any, args: tuple, kwargs: dict, parent: Any) -> Invocation:
        inv = super().begin(wrapped, instance, args, kwargs, parent)

        def record(how: End, value: Any, error: BaseException | None, duration_s: float) -> None:
            raise self.interrupt

        inv.record = record  # type: ignore[method-assign]
        return inv


@pytest.mark.parametrize("call_fails", [False, True], ids=["returned", "raised"])
def test_a_ctrl_c_that_interrupts_the_recording_of_a_call_still_ends_its_span(otel: Any, call_fails: bool) -> None:
    """The KeyboardInterrupt reaches the program from the call, the same object, as it would at the program's next
    step; the span, left open for good before (never exported: 29 and 60 of 300 Ctrl-Cs on a loop of tool calls), ends
    with the call's own outcome, as its metrics were recorded."""
    handler = _InterruptedInRecord()
    interrupt = KeyboardInterrupt()
    failure = ValueError("the call's own")

    def call() -> int:
        if call_fails:
            raise failure
        return 1

    handler.interrupt = interrupt
    with pytest.raises(KeyboardInterrupt) as raised:
        instrument(handler, call)()
    assert raised.value is interrupt
    [span] = otel.spans()
    if call_fails:
        assert span.attributes[semconv.ERROR_TYPE] == "ValueError"
        assert span.status.status_code is StatusCode.ERROR
    else:
        assert semconv.ERROR_TYPE not in span.attributes and span.status.status_code is StatusCode.UNSET
    assert trace.get_current_span() is trace.INVALID_SPAN  # the program's context, as it was


@pytest.mark.parametrize("interrupted", ["set_attribute", "set_status", "record_exception"])
def test_a_ctrl_c_while_a_failed_calls_span_is_marked_leaves_the_span_failed(otel: Any, interrupted: str) -> None:
    """A Ctrl-C that lands in the SDK's calls marking a failed call's span (its error type, status, exception event)
    ended the span as it was then: a success to the span, an error to the call's metrics."""
    interrupt = KeyboardInterrupt()
    handler = RecordingHandler()

    def failing() -> None:
        span = handler.invocations[-1].span
        method = getattr(span, interrupted)

        def once(*args: Any, **kwargs: Any) -> Any:
            setattr(span, interrupted, method)  # (the Ctrl-C lands once)
            raise interrupt

        setattr(span, interrupted, once)
        raise ValueError("the call's own")

    with pytest.raises(KeyboardInterrupt) as raised:
        instrument(handler, failing)()
    assert raised.value is interrupt
    [span] = otel.spans()
    assert span.attributes[semconv.ERROR_TYPE] == "ValueError"
    assert span.status.status_code is StatusCode.ERROR


FAILING_TESTS = textwrap.dedent("""
    import agent_otel

    DECORATE = {decorate}

    def lookup(key):
        table = {{"a": 1}}
        return table[key]

    def fetch(key):
        return lookup(key)

    if DECORATE:
        lookup = agent_otel.tool("lookup")(lookup)  # wrapped after its name holds it: wrapt's proxy

        @agent_otel.tool("fetch")
        def fetch(key):  # decorated on its def: a plain function
            return lookup(key)

    def test_fetch():
        assert fetch("b") == 1
""")


def _raises(key: str) -> int:
    return {"a": 1}[key]


def _lookup_key(key: str) -> int:  # held by its name: decorated, it is wrapt's proxy, as a configured target is
    return _raises(key)


def _frames_of(run: Callable[[], object]) -> list[str]:
    try:
        run()
    except KeyError as error:
        return [frame.name for frame in traceback.extract_tb(error.__traceback__)]
    raise AssertionError("no KeyError")


@pytest.mark.parametrize("enabled", [True, False], ids=["enabled", "disabled"])
@pytest.mark.parametrize("shape", ["function", "wrapped later", "generator", "coroutine", "task", "async generator"])
def test_an_exception_out_of_a_decorated_call_has_the_traceback_it_would_have_without_agent_otel(
        otel: Any, monkeypatch: pytest.MonkeyPatch, shape: str, enabled: bool) -> None:
    """The traceback of an exception leaving a decorated call holds no frame of agent-otel's (before: ``call`` or
    ``wrapper``, ``_traced_generator``, ``send`` and ``_traced_coroutine``...), as a program that formats it reads
    it: DSPy's ReAct writes a failing tool's ``traceback.format_exception(limit=5)`` into the model's next prompt,
    where agent-otel's frame pushed the line that raised out."""

    def function(key: str) -> int:
        return _raises(key)

    def generator(key: str) -> collections.abc.Iterator[int]:
        yield _raises(key)

    async def coroutine(key: str) -> int:
        await asyncio.sleep(0)
        return _raises(key)

    async def async_generator(key: str) -> collections.abc.AsyncIterator[int]:
        await asyncio.sleep(0)
        yield _raises(key)

    async def in_a_task(call: Callable[[str], Coroutine[Any, Any, int]]) -> int:
        return await asyncio.create_task(call("b"))

    async def reading(call: Callable[[str], collections.abc.AsyncIterator[int]]) -> list[int]:
        return [item async for item in call("b")]

    def runs(decorate: Callable[[Any], Any]) -> Callable[[], object]:
        return {
            "function": lambda: decorate(function)("b"),
            "wrapped later": lambda: decorate(_lookup_key)("b"),
            "generator": lambda: list(decorate(generator)("b")),
            "coroutine": lambda: asyncio.run(decorate(coroutine)("b")),
            "task": lambda: asyncio.run(in_a_task(decorate(coroutine))),
            "async generator": lambda: asyncio.run(reading(decorate(async_generator))),
        }[shape]

    if not enabled:
        monkeypatch.setattr(runtime(), "enabled", False)
    plain, decorated = _frames_of(runs(lambda func: func)), _frames_of(runs(agent_otel.tool("lookup")))
    assert plain[-1] == "_raises" and decorated == plain
    assert len(otel.spans("execute_tool lookup")) == (1 if enabled else 0)


@pytest.mark.parametrize("case", ["thrown into a generator", "thrown into an async generator",
                                  "a generator's bad arguments", "a coroutine's bad arguments",
                                  "an async generator's bad arguments", "thrown into a coroutine before it started",
                                  "a generator under suppressed instrumentation"])
def test_an_exception_thrown_in_or_raised_by_arguments_has_the_traceback_it_would_have_without_agent_otel(
        otel: Any, case: str) -> None:
    """What the first review of the change above found: a ``throw()`` into a generator left the driver's frame at the
    innermost end of the traceback (the frame a printed traceback ends on), a coroutine's, generator's or async
    generator's bad arguments kept the wrapper's frame, and so did a throw into a coroutine before it started and a
    pass-through under ``suppress_instrumentation()``."""
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    def generator(key: str) -> collections.abc.Iterator[int]:
        yield 1
        yield _raises(key)

    async def async_generator(key: str) -> collections.abc.AsyncIterator[int]:
        yield 1

    async def coroutine(key: str) -> int:
        return _raises(key)

    def thrown_into_a_generator(decorate: Callable[[Any], Any]) -> None:
        running = decorate(generator)("a")
        next(running)
        running.throw(KeyError("thrown"))

    async def thrown_into_an_async_generator(decorate: Callable[[Any], Any]) -> None:
        running = decorate(async_generator)("a")
        await running.__anext__()
        await running.athrow(KeyError("thrown"))

    def thrown_into_a_coroutine(decorate: Callable[[Any], Any]) -> None:
        pending = decorate(coroutine)("a")
        try:
            pending.throw(KeyError("thrown"))
        finally:
            pending.close()

    def suppressed(decorate: Callable[[Any], Any]) -> None:
        with suppress_instrumentation():
            list(decorate(generator)("b"))

    runs: dict[str, Callable[[Callable[[Any], Any]], object]] = {
        "thrown into a generator": thrown_into_a_generator,
        "thrown into an async generator": lambda decorate: asyncio.run(thrown_into_an_async_generator(decorate)),
        "a generator's bad arguments": lambda decorate: decorate(generator)(),
        "a coroutine's bad arguments": lambda decorate: decorate(coroutine)(),
        "an async generator's bad arguments": lambda decorate: decorate(async_generator)(),
        "thrown into a coroutine before it started": thrown_into_a_coroutine,
        "a generator under suppressed instrumentation": suppressed,
    }

    def frames(decorate: Callable[[Any], Any]) -> list[str]:
        try:
            runs[case](decorate)
        except (KeyError, TypeError) as error:
            return [frame.name for frame in traceback.extract_tb(error.__traceback__)]
        raise AssertionError("nothing raised")

    plain = frames(lambda func: func)
    assert frames(agent_otel.tool("lookup")) == plain


class _OwnAwaitable:
    """An awaitable of a library's own (only ``__await__``): no coroutine, which ``create_task()`` refuses."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __await__(self) -> collections.abc.Generator[Any, None, int]:
        yield from asyncio.sleep(0).__await__()
        return self.value


@pytest.mark.parametrize("returns", ["a task", "a pure-Python task", "a list", "an awaitable of its own"])
def test_a_coroutine_function_wrapped_by_another_library_into_returning_no_coroutine_is_its_result(
        otel: Any, returns: str) -> None:
    """Another library's wrapt wrapper around an ``async def`` (which wrapt makes look like one) returned a task it
    scheduled, or a plain value: ours handed out a coroutine proxy claiming that object's class, which asyncio's
    ``gather()`` took for the future itself (no call recorded), and a list then compared unequal to itself. Taken now as
    a plain function's result, as for a generator function's (a task is timed until it is done). So is an awaitable of
    its own, which the proxy made a coroutine (``create_task()`` took it, a cancel before its first step raised
    AttributeError); a future asyncio takes (``asyncio.isfuture``) that is no ``asyncio.Future`` is one too."""

    async def work(x: int) -> int:
        return x

    def schedules(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if returns == "a list":
            return [1, 2]
        coroutine = wrapped(*args, **kwargs)
        if returns == "a task":
            return asyncio.ensure_future(coroutine)
        if returns == "a pure-Python task":
            return asyncio.tasks._PyTask(coroutine)  # type: ignore[attr-defined]
        coroutine.close()
        return _OwnAwaitable(*args)

    tool = agent_otel.tool("scheduled")(wrapt.FunctionWrapper(work, schedules))

    async def main() -> list[Any]:
        if returns == "a list":
            return [tool(1)]
        if returns == "an awaitable of its own":
            with pytest.raises(TypeError):
                refused = asyncio.create_task(tool(3))
                raise AssertionError(refused)
            return [await tool(1)]
        return list(await asyncio.gather(tool(1), tool(2)))

    results = asyncio.run(main())
    assert results == {"a list": [[1, 2]], "an awaitable of its own": [1]}.get(returns, [1, 2])
    assert not asyncio.iscoroutine(results[0])
    spans = otel.spans("execute_tool scheduled")
    assert len(spans) == (2 if returns == "an awaitable of its own" else len(results))


def test_pytest_reports_a_failing_tests_traceback_without_agent_otels_frames(tmp_path: Any) -> None:
    """pytest's report of a failing test that called a decorated function showed agent-otel's wrapper frames as
    sections of their own (``wrappers.py:470: in call``), and with ``-l`` their locals (the handler, the invocation,
    the runtime). The report is now the one without agent-otel."""
    reports = []
    for decorate in (False, True):
        (tmp_path / "test_app.py").write_text(FAILING_TESTS.format(decorate=decorate))
        done = subprocess.run([sys.executable, "-m", "pytest", "-l", "-p", "no:randomly", "-p", "no:cacheprovider",
                               "test_app.py"], cwd=tmp_path, env=CLEAN_ENV, capture_output=True, text=True, timeout=120,
                              check=False)
        assert done.returncode == 1, done.stdout
        report = done.stdout.split("= FAILURES =")[1].split("short test summary")[0]
        reports.append(re.sub(r"test_app\.py:\d+", "test_app.py", report))  # (fetch is defined twice)
    assert "KeyError: 'b'" in reports[1] and "table      = {'a': 1}" in reports[1]
    assert reports[1] == reports[0]


@pytest.mark.parametrize("library", ["asyncio", "trio"])
def test_a_stream_broken_out_of_whose_cleanup_awaits_ends_closed_early_under_trio_too(otel: Any, library: str) -> None:
    """trio closes an async generator the program broke out of (dropped half-read) inside a cancelled scope: an await in
    its ``finally`` (an HTTP response's ``aclose()``) raises ``trio.Cancelled``, which trio drops. The call was
    recorded as a provider error, ``error.type=Cancelled``, on its span and its metrics, where under asyncio it ended
    closed early, as the consumer closed it."""
    import trio

    sleep = trio.sleep if library == "trio" else asyncio.sleep
    cleaned: list[bool] = []

    @agent_otel.provider("openai", model="gpt-4o")
    async def stream() -> collections.abc.AsyncIterator[dict[str, int]]:
        try:
            for index in range(10):
                await sleep(0)
                yield {"delta": index}
        finally:
            await sleep(0)  # (closing the response)
            cleaned.append(True)

    async def main() -> None:
        async for _ in stream():
            break
        await sleep(0.01)

    if library == "trio":
        trio.run(main)
    else:
        asyncio.run(main())
    gc.collect()
    span = otel.span("chat gpt-4o")
    assert span.status.status_code is StatusCode.UNSET
    assert span.attributes[STREAM_CLOSED_EARLY] is True
    assert semconv.ERROR_TYPE not in span.attributes
    [point] = otel.points(semconv.CLIENT_INFERENCE_DURATION.name)
    assert semconv.ERROR_TYPE not in point.attributes
    assert cleaned == ([] if library == "trio" else [True])  # trio cancels the cleanup's await, as without agent-otel


class _ChunkStream:
    """An SDK's async stream object (``openai.AsyncStream``'s shape), returned by the call and read after it."""

    def __init__(self, pending: Callable[[int], Awaitable[None]]) -> None:
        self.pending, self.sent = pending, 0

    def __aiter__(self) -> _ChunkStream:
        return self

    async def __anext__(self) -> dict[str, int]:
        await self.pending(self.sent)
        self.sent += 1
        return {"delta": self.sent}

    async def __aenter__(self) -> _ChunkStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


@pytest.mark.parametrize("library", ["asyncio", "trio"])
@pytest.mark.parametrize("shape", ["async generator", "returned stream", "returned stream in its block"])
@pytest.mark.parametrize("chunks_before", [1, 0], ids=["mid-read", "before-the-first-chunk"])
def test_a_stream_whose_reader_is_cancelled_mid_read_ends_closed_early_not_failed(
        otel: Any, library: str, shape: str, chunks_before: int) -> None:
    """A client that disconnects from a server's streamed response (Starlette cancels the task reading the stream),
    or a timeout around the loop: the cancellation is raised in the stream's pending step. The call was recorded as
    the provider's error (``error.type=CancelledError``), which fed its error rate and the shipped availability
    alert, where the reader had only stopped reading. Cancelled before its first chunk, the request had not
    answered (a provider that hangs): an error, as a coroutine call's."""
    import trio

    sleep = trio.sleep if library == "trio" else asyncio.sleep
    never = trio.Event() if library == "trio" else asyncio.Event()

    async def pending(sent: int) -> None:
        await sleep(0)
        if sent >= chunks_before:
            await never.wait()  # the next chunk never comes: the reader is cancelled here

    @agent_otel.provider("openai", model="gpt-4o")
    async def generator() -> collections.abc.AsyncIterator[dict[str, int]]:
        sent = 0
        while True:
            await pending(sent)
            sent += 1
            yield {"delta": sent}

    @agent_otel.provider("openai", model="gpt-4o")
    async def returned() -> _ChunkStream:
        return _ChunkStream(pending)

    read: list[object] = []

    async def read_all() -> None:
        if shape == "async generator":
            async for item in generator():
                read.append(item)
        elif shape == "returned stream":
            async for item in await returned():
                read.append(item)
        else:
            async with await returned() as stream:
                async for item in stream:
                    read.append(item)

    async def main() -> None:
        if library == "trio":
            with trio.move_on_after(0.05):
                await read_all()
        else:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.05):
                    await read_all()

    if library == "trio":
        trio.run(main)
    else:
        asyncio.run(main())
    assert len(read) == chunks_before  # then cancelled while waiting for the next
    span = otel.span("chat gpt-4o")
    [point] = otel.points(semconv.CLIENT_INFERENCE_DURATION.name)
    if chunks_before:
        assert span.status.status_code is StatusCode.UNSET
        assert span.attributes[STREAM_CLOSED_EARLY] is True
        assert semconv.ERROR_TYPE not in span.attributes and semconv.ERROR_TYPE not in point.attributes
    else:
        error_type = "Cancelled" if library == "trio" else "CancelledError"
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes[semconv.ERROR_TYPE] == point.attributes[semconv.ERROR_TYPE] == error_type


def test_a_cancelled_error_of_the_streams_own_in_a_task_nobody_cancelled_is_its_failure(otel: Any) -> None:
    """A stream that awaited a future someone else cancelled (an SDK's connection) raises ``CancelledError`` while
    its reader's task is not being cancelled: the stream failed, it was not left."""

    @agent_otel.provider("openai", model="gpt-4o")
    async def stream() -> collections.abc.AsyncIterator[dict[str, int]]:
        yield {"delta": 1}
        future = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(future.cancel)
        await future
        yield {"delta": 2}

    async def main() -> int:
        with contextlib.suppress(asyncio.CancelledError):
            async for _ in stream():
                pass
        task = asyncio.current_task()
        assert task is not None
        return task.cancelling()

    assert asyncio.run(main()) == 0
    span = otel.span("chat gpt-4o")
    assert span.status.status_code is StatusCode.ERROR and span.attributes[semconv.ERROR_TYPE] == "CancelledError"


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the stubborn one's, as unwrapped
def test_generators_whose_cleanup_never_runs_leave_nothing_of_ours_behind(otel: Any) -> None:
    """An async generator started on a loop closed without ``shutdown_asyncgens()`` and dropped, or a generator that
    ignores ``close()``: their ``finally`` never runs. The calls open across their yields were kept in a strong
    registry (for the exit to end them), about 3 KiB each, for the process's life."""
    from agent_otel._engine import wrappers

    @agent_otel.tool("chunks")
    async def chunks() -> Any:
        yield 1
        yield 2

    @agent_otel.tool("stubborn")
    def stubborn() -> Any:
        while True:
            try:
                yield 1
            except GeneratorExit:
                pass

    async def first(agen: Any) -> Any:
        return await agen.__anext__()

    def calls_held() -> int:  # the invocations agent-otel still holds for end_in_flight
        return sum(reference() is not None for reference in wrappers._open) + len(wrappers._in_flight)

    gc.collect()
    before = calls_held()
    for _ in range(20):
        loop = asyncio.new_event_loop()
        agen = chunks()
        loop.run_until_complete(first(agen))
        loop.close()
        del agen
        generator = stubborn()
        next(generator)
        with contextlib.suppress(RuntimeError):  # "generator ignored GeneratorExit", as unwrapped
            generator.close()
        del generator
        gc.collect()
    assert calls_held() == before

    @agent_otel.tool("read")
    def read() -> Any:
        yield 1

    for _ in range(5000):  # calls that ended: their references are let go of as the registry grows
        assert list(read()) == [1]
    assert len(wrappers._open) <= 2 * 1024 + 1


# --------------------------------------------------------------------------------------------------
# failures of the instrumentation itself, and the disabled switch


def errors_by_stage(otel: Any) -> dict[str, float]:
    return {p.attributes[semconv.INSTRUMENTATION_STAGE]: p.value
            for p in otel.points(semconv.INSTRUMENTATION_ERRORS.name)}


def test_handler_failures_never_reach_the_host_and_are_counted(otel: Any) -> None:
    wrapped = instrument(RecordingHandler(fail_in_begin=True), lambda x: x + 1)
    assert wrapped(1) == 2
    wrapped = instrument(RecordingHandler(fail_in_record=True), lambda x: x + 1)
    assert wrapped(1) == 2
    assert wrapped(2) == 3
    assert errors_by_stage(otel) == {"test.begin": 1, "test.record": 2}
    assert len(otel.spans()) == 2  # the spans of the broken-record calls still ended


def test_disabled_wrapper_makes_no_otel_call(otel: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    handler = RecordingHandler()
    wrapped = instrument(handler, lambda x: x * 2)
    monkeypatch.setattr(runtime(), "enabled", False)

    def no_otel(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("an OTel call was made while disabled")

    from opentelemetry import context as otel_context

    # the runtime context itself: the wrappers hold attach() and get_current() as their own names (a plain function's
    # as closure variables), which patching a module's name would not reach
    for method in ("attach", "get_current", "detach"):
        monkeypatch.setattr(otel_context._RUNTIME_CONTEXT, method, no_otel)
    monkeypatch.setattr(runtime(), "tracer", None)
    assert wrapped(4) == 8
    assert handler.ends == []



@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_sync_function_returning_a_coroutine_it_never_runs(otel: Any, scenario: str) -> None:
    """The span ends once, no warning appears that plain Python would not give (plain gives exactly one,
    'never awaited', for a dropped coroutine: that one is kept, about the program's own coroutine)."""
    run = SCENARIOS[scenario]
    handler = RecordingHandler()

    async def fetch() -> int:
        return 1

    def starts() -> Any:
        return fetch()

    plain = warnings_of(run, starts)
    traced = warnings_of(run, instrument(handler, starts))
    assert traced == plain
    assert len(handler.ends) == 1
    how, _, error = handler.ends[0]
    expected = {"cancelled_before_it_starts": (End.RAISED, asyncio.CancelledError),
                "thrown_into_unstarted": (End.RAISED, LookupError)}.get(scenario, (End.CLOSED, type(None)))
    assert (how, type(error)) == expected
    span = otel.span("op starts")
    assert span.end_time is not None
    if expected[0] is End.RAISED:
        assert span.attributes[semconv.ERROR_TYPE] == expected[1].__name__


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_an_async_function_let_go_before_it_runs_is_the_programs_own_coroutine(otel: Any, scenario: str) -> None:
    """An ``async def`` call begins its invocation when the coroutine first runs. Let go before that, it
    leaves no span, and warns exactly as plain Python does: nothing for a task cancelled before it starts
    (the Task throws into it), ``close()`` or ``throw()``; "never awaited", naming the program's own
    coroutine, when dropped."""
    run = SCENARIOS[scenario]
    handler = RecordingHandler()

    async def fetch() -> int:
        return 1

    plain = warnings_of(run, fetch)
    traced = warnings_of(run, instrument(handler, fetch))
    assert traced == plain
    assert plain == (["RuntimeWarning: coroutine 'test_an_async_function_let_go_before_it_runs_is_the_programs_own_"
                      "coroutine.<locals>.fetch' was never awaited"]
                     if scenario in ("dropped_unawaited", "awaited_by_hand_never_stepped") else [])
    assert handler.ends == [] and otel.spans() == []


@pytest.mark.parametrize("shape", ["async_def", "sync_function_returning_one", "one_call_returning_another"])
def test_the_coroutine_a_call_returns_looks_like_the_programs_own(otel: Any, shape: str) -> None:
    """What the program gets back is seen as its coroutine: type checks, ``repr`` (logs and asyncio's task reprs
    show it), names (read and set), ``cr_*`` attributes and state, a weak reference, copy and pickle refused as
    for a coroutine; it awaits to the same result. Also when a decorated function returns the coroutine of
    another (a dispatcher), or decorators are stacked."""
    handler = RecordingHandler()

    async def fetch(n: int) -> int:
        await asyncio.sleep(0)
        return n

    inner = instrument(RecordingHandler(), fetch)

    def starts(n: int) -> Any:
        return inner(n) if shape == "one_call_returning_another" else fetch(n)

    traced = instrument(handler, fetch if shape == "async_def" else starts)

    async def main() -> int:
        plain, coroutine = fetch(1), traced(1)
        assert repr(coroutine).split(" at ")[0] == repr(plain).split(" at ")[0] == (
            f"<coroutine object {fetch.__qualname__}")
        assert (coroutine.__name__, coroutine.__qualname__) == (plain.__name__, plain.__qualname__)
        assert coroutine.__class__ is types.CoroutineType
        assert isinstance(coroutine, types.CoroutineType) and isinstance(coroutine, collections.abc.Coroutine)
        assert isinstance(coroutine, collections.abc.Awaitable) and inspect.isawaitable(coroutine)
        assert not isinstance(coroutine, collections.abc.Iterable)
        assert coroutine.cr_code is plain.cr_code
        assert inspect.getcoroutinestate(coroutine) == inspect.getcoroutinestate(plain) == inspect.CORO_CREATED
        assert weakref.ref(coroutine)() is coroutine
        assert coroutine.__doc__ is plain.__doc__ is None
        for refuse in (copy.copy, copy.deepcopy, pickle.dumps):
            with pytest.raises(TypeError) as refused_plain:
                refuse(plain)
            with pytest.raises(TypeError) as refused:
                refuse(coroutine)
            assert str(refused.value) == str(refused_plain.value) == "cannot pickle 'coroutine' object"
        coroutine.__qualname__ = plain.__qualname__ = "fetch[user=42]"  # a program naming its coroutine
        assert repr(coroutine).split(" at ")[0] == repr(plain).split(" at ")[0] == "<coroutine object fetch[user=42]"
        plain.close()
        return await coroutine

    assert asyncio.run(main()) == 1
    assert [(how, value) for how, value, _ in handler.ends] == [(End.RETURNED, 1)]


def test_an_async_function_awaited_or_run_as_a_task_is_timed_once(otel: Any) -> None:
    handler = RecordingHandler()

    async def fetch(n: int) -> int:
        await asyncio.sleep(0)
        return n

    traced = instrument(handler, fetch)

    async def main() -> list[int]:
        coroutine = traced(1)
        assert asyncio.iscoroutine(coroutine) and inspect.iscoroutine(coroutine)
        assert coroutine.__qualname__ == fetch.__qualname__  # the program's coroutine, seen through
        return [await coroutine, await asyncio.create_task(traced(2)), *await asyncio.gather(traced(3))]

    assert asyncio.run(main()) == [1, 2, 3]
    assert [(how, value) for how, value, _ in handler.ends] == [(End.RETURNED, 1), (End.RETURNED, 2),
                                                                (End.RETURNED, 3)]


def test_an_async_function_stepped_by_hand_is_timed_once_and_gets_what_is_sent(otel: Any) -> None:
    """A scheduler of the program's own drives the coroutine with ``send()``/``next()``, not ``await``."""
    handler = RecordingHandler()

    class Yield:
        def __await__(self) -> Any:
            return (yield "paused")

    async def echo(n: int) -> int:
        return n + await Yield()

    coroutine = instrument(handler, echo)(1)
    assert coroutine.send(None) == "paused"
    with pytest.raises(StopIteration) as stopped:
        coroutine.send(41)
    assert stopped.value.value == 42
    coroutine = instrument(handler, echo)(2)
    assert coroutine.send(None) == "paused"
    with pytest.raises(StopIteration):
        coroutine.send(0)
    assert [(how, value) for how, value, _ in handler.ends] == [(End.RETURNED, 42), (End.RETURNED, 2)]


@pytest.mark.parametrize("returns_it", [False, True], ids=["async def", "sync function returning one"])
def test_an_instrumented_coroutine_is_no_iterator_as_a_coroutine_is_none(otel: Any, returns_it: bool) -> None:
    """It had ``__next__`` (and wrapt's ``__iter__``): ``isinstance(coroutine, Iterator)`` was true, so code that
    tells iterators from awaitables took it for a sync stream, and ``next()`` stepped it."""

    async def answer() -> int:
        return 42

    def make() -> Any:
        return answer()

    plain, instrumented = answer(), instrument(RecordingHandler(), make if returns_it else answer)()
    for coroutine in (plain, instrumented):
        assert not isinstance(coroutine, collections.abc.Iterable | collections.abc.Iterator)
        assert isinstance(coroutine, collections.abc.Coroutine) and not hasattr(coroutine, "__next__")
        with pytest.raises(TypeError):
            next(coroutine)
        with pytest.raises(TypeError):
            iter(coroutine)
    assert asyncio.run(instrumented) == 42
    plain.close()


@pytest.mark.parametrize("run_async", [False, True])
def test_a_stream_manager_that_makes_its_own_context_current_keeps_it_in_its_block_and_restores_after(
        otel: Any, run_async: bool) -> None:
    """A returned manager whose enter attaches a context (a span it starts) and whose exit detaches it. Its
    enter runs in the call's context (so an SDK's span of the request is inside the call); before, leaving
    that context at once threw the manager's away, and the ended call stayed current after the block."""
    from opentelemetry import context as otel_context
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

    import agent_otel

    marked = NonRecordingSpan(SpanContext(0x1234, 0x5678, False, TraceFlags(1)))

    class Stream:
        def __init__(self) -> None:
            self.items = iter([1, 2])

        def __iter__(self) -> Any:
            return self

        def __next__(self) -> int:
            return next(self.items)

        def __enter__(self) -> Any:
            self.token = otel_context.attach(set_span_in_context(marked))
            return self

        def __exit__(self, *exc: object) -> None:
            otel_context.detach(self.token)

    class AsyncStream:
        def __init__(self) -> None:
            self.items = iter([1, 2])

        def __aiter__(self) -> Any:
            return self

        async def __anext__(self) -> int:
            try:
                return next(self.items)
            except StopIteration:
                raise StopAsyncIteration from None

        async def __aenter__(self) -> Any:
            self.token = otel_context.attach(set_span_in_context(marked))
            return self

        async def __aexit__(self, *exc: object) -> None:
            otel_context.detach(self.token)

    def span_id() -> int:
        return trace.get_current_span().get_span_context().span_id

    @agent_otel.provider("openai", model="m")
    def open_stream() -> Any:
        return AsyncStream() if run_async else Stream()

    async def read_async() -> list[int]:
        seen = []
        async with open_stream() as stream:
            seen.append(span_id())
            seen.extend([item async for item in stream])
        return [*seen, span_id()]

    if run_async:
        seen = asyncio.run(read_async())
    else:
        with open_stream() as stream:
            seen = [span_id(), *stream]
        seen.append(span_id())
    assert seen == [0x5678, 1, 2, 0]
    if not run_async:
        with open_stream() as stream:  # a second call is its own, not one nested in the first (ended) call
            list(stream)
    else:
        asyncio.run(read_async())
    assert [span.parent for span in otel.spans()] == [None, None]


def test_a_decorated_method_of_a_class_made_at_run_time_is_collected_with_it() -> None:
    """A method naming its object otherwise (or a static method in a class body) has a handler that refers
    back to its wrapper: the wrapper registry, mapping each wrapper to its handler, kept both alive for ever."""
    from agent_otel._engine import wrappers

    def make() -> type:
        class Tools:
            def run(this, x: int) -> int:  # named otherwise: its class decides
                return x

        Tools.run = instrument(Handler(), Tools.run)  # type: ignore[method-assign]
        return Tools

    made = weakref.ref(make())
    gc.collect()
    assert made() is None
    assert not any(getattr(wrapper, "__qualname__", "").startswith(
        "test_a_decorated_method_of_a_class_made_at_run_time_is_collected_with_it.")
        for wrapper in list(wrappers._PLAIN_WRAPPERS.keys()))


def test_a_task_destroyed_while_pending_ends_its_call_without_a_detach_traceback(
        otel: Any, caplog: pytest.LogCaptureFixture) -> None:
    """A fire-and-forget task still waiting when its loop goes away is closed by the garbage collector, in
    another context than the one its call attached in: before, OpenTelemetry logged "Failed to detach context"
    with a traceback, which reached the program's stderr through Python's last-resort handler."""
    handler = RecordingHandler()

    async def background() -> None:
        await asyncio.Event().wait()

    traced = instrument(handler, background)

    async def main() -> None:
        asyncio.get_running_loop().create_task(traced())
        await asyncio.sleep(0)

    loop = asyncio.new_event_loop()
    loop.run_until_complete(main())
    loop.close()
    with caplog.at_level(logging.DEBUG, logger="opentelemetry.context"):
        del loop
        gc.collect()
    assert [record.getMessage() for record in caplog.records if record.name.startswith("opentelemetry")] == []
    assert handler.ends == [(End.CLOSED, None, None)]


def test_a_returned_task_destroyed_while_pending_ends_its_call_closed(otel: Any) -> None:
    """A sync function that returns a task, whose loop is closed with the task still waiting: before, its call
    never ended (no span exported, a job left among the in-flight ones for the life of the process)."""
    handler = RecordingHandler()

    async def work() -> None:
        await asyncio.Event().wait()

    def start() -> asyncio.Task[None]:
        return asyncio.get_running_loop().create_task(work())

    traced = instrument(handler, start)

    async def main() -> None:
        traced()
        await asyncio.sleep(0)

    loop = asyncio.new_event_loop()
    loop.run_until_complete(main())
    loop.close()
    del loop
    gc.collect()
    assert handler.ends == [(End.CLOSED, None, None)]

    async def completed() -> int:
        task = traced_done()
        return await task

    def finish() -> asyncio.Future[int]:
        future = asyncio.get_running_loop().create_future()
        future.set_result(7)
        return future

    traced_done = instrument(handler, finish)
    assert asyncio.run(completed()) == 7
    gc.collect()
    assert handler.ends[1:] == [(End.RETURNED, 7, None)]  # ended once, as it completed


def test_a_fresh_async_generator_is_not_taken_for_a_started_one_where_its_frame_moved_first(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Python 3.13's fresh async generator has a frame past its first instructions (``f_lasti`` 2; 0 before): read so,
    a function returning one handed out the program's generator untimed, its steps outside the call's context (a job
    decorating it saw no job id, rolled up nothing, lasted 0 s). From 3.12 the generator's own state is read
    (``inspect.getasyncgenstate``). CI runs 3.11, so the 3.13 frame is simulated here, the state read as 3.12 reads
    it; a run on 3.12.1 and 3.13.0 (job ids in every step, 0.15 s, 3 tool calls rolled up) checked the real one."""
    from agent_otel._engine import wrappers

    class MovedFrame:
        f_lasti = 2

    class Fresh:  # what 3.13 shows of an async generator not started
        ag_running = False
        ag_frame = MovedFrame()

    states: list[object] = []
    monkeypatch.setattr(wrappers, "_ASYNC_GENERATOR_STATE", lambda gen: states.append(gen) or "AGEN_CREATED")
    fresh = Fresh()
    assert wrappers._started(fresh) is False  # type: ignore[arg-type]
    assert states == [fresh]


@agent_otel.tool("lookup")
def _lookup(x: int) -> int:
    return x


async def _with_cell() -> Any:  # a local captured by a lambda: MAKE_CELL before RETURN_GENERATOR
    n = 1
    key = lambda: n  # noqa: E731
    _lookup(key())
    yield "a"


def _with_free(n: int) -> Any:
    async def steps() -> Any:  # a variable of the function around it: COPY_FREE_VARS before RETURN_GENERATOR
        _lookup(n)
        yield "a"
    return steps


def _with_cell_past_255_slots() -> Any:
    """An async generator function whose cell is in a slot past 255 (300 locals before it): its MAKE_CELL takes an
    EXTENDED_ARG (review: read as started)."""
    source = ("async def steps():\n" + "".join(f"    v{i} = {i}\n" for i in range(300))
              + "    n = 1\n    key = lambda: n\n    lookup(key())\n    yield 'a'\n")
    namespace: dict[str, Any] = {"lookup": _lookup}
    exec(compile(source, "<generated>", "exec"), namespace)
    return namespace["steps"]


@pytest.mark.parametrize("make", [_with_cell, _with_free(1), _with_cell_past_255_slots()],
                         ids=["cell variable", "free variable", "cell past 255 slots"])
def test_a_fresh_async_generator_with_a_closure_is_not_taken_for_a_started_one(otel: Any, make: Any) -> None:
    """Agno probe (Python 3.11): an async generator function whose code starts with ``MAKE_CELL`` or
    ``COPY_FREE_VARS`` (agno's ``Agent._arun_stream``) has a fresh generator's frame past offset 0: read as started,
    the call ended at once (0.1 ms), its tool calls outside it and its agent's counts 0. The generator is timed as
    any other, its steps in the call's context."""
    @agent_otel.agent("streamer")
    def run() -> Any:
        return make()

    async def consume() -> list[str]:
        return [item async for item in run()]

    assert asyncio.run(consume()) == ["a"]
    tool = otel.span("execute_tool lookup")
    agent = otel.span("invoke_agent streamer")
    assert tool.parent is not None and tool.parent.span_id == agent.context.span_id
    assert point(otel, semconv.AGENT_TOOL_CALLS.name).sum == 1


def test_a_generator_returned_already_started_is_the_programs_own_with_its_state(otel: Any) -> None:
    """A decorator above a "priming" one (``next(gen)`` before returning it, the classic coroutine recipe): before,
    the generator was handed out wrapped in a new one, not started, so the program's first ``send(value)`` raised
    TypeError ("can't send non-None value to a just-started generator"); the same for an async generator."""
    import functools

    def primed(func: Any) -> Any:
        @functools.wraps(func)
        def start(*args: Any) -> Any:
            generator = func(*args)
            next(generator)
            return generator
        return start

    @agent_otel.tool("sink")
    @primed
    def sink(results: list[int]) -> Any:
        while True:
            results.append((yield) * 2)

    results: list[int] = []
    generator = sink(results)
    assert inspect.getgeneratorstate(generator) == inspect.GEN_SUSPENDED
    generator.send(1)
    generator.send(2)
    assert results == [2, 4]

    async def numbers() -> Any:
        received = yield 1
        yield received

    @agent_otel.tool("handed_on")
    def handed_on(agen: Any) -> Any:
        return agen

    async def main() -> list[Any]:
        agen = numbers()
        first = await agen.__anext__()
        same = handed_on(agen)
        assert same is agen
        return [first, await same.asend("sent")]

    assert asyncio.run(main()) == [1, "sent"]
    assert {span.name for span in otel.spans()} == {"execute_tool sink", "execute_tool handed_on"}


def test_stop_iteration_is_the_end_of_a_loop_only_out_of_an_iteration_step(otel: Any) -> None:
    """Out of ``__next__``/``__anext__`` it ends every loop (returned); out of any other call (``next()`` of an empty
    generator expression that escaped) it is the call's error, as it is the program's."""
    handler = RecordingHandler()

    def first_match(items: list[int]) -> int:
        return next(item for item in items if item > 1)

    def __next__() -> int:
        raise StopIteration

    async def __anext__() -> int:
        raise StopAsyncIteration

    async def step() -> int:
        raise StopAsyncIteration

    def returns_its_step() -> Any:  # a plain ``def __anext__`` returning a coroutine: the coroutine is not named so
        return step()

    returns_its_step.__name__ = "__anext__"
    for function in (first_match, __next__):
        with pytest.raises(StopIteration):
            instrument(handler, function)(*([[0]] if function is first_match else []))
    for function in (__anext__, returns_its_step):
        with pytest.raises(StopAsyncIteration):
            asyncio.run(instrument(handler, function)())
    assert [(how, type(error).__name__) for how, _, error in handler.ends] == [
        (End.RAISED, "StopIteration")] + [(End.RETURNED, "NoneType")] * 3


# -- suppressed instrumentation -------------------------------------------------------------------


def _each_shape() -> dict[str, Callable[[], Any]]:
    """A tool of every shape, each called once and read to its end by the function it is under."""

    def plain() -> int:
        return 1

    async def coroutine() -> int:
        return 1

    def generator() -> collections.abc.Iterator[int]:
        yield 1

    async def async_generator() -> collections.abc.AsyncIterator[int]:
        yield 1

    def returns_a_coroutine() -> Coroutine[Any, Any, int]:
        return coroutine()

    tool = agent_otel.tool("t")
    shapes = {"plain": tool(plain), "proxy": tool(lambda: 1), "coroutine": tool(coroutine),
              "generator": tool(generator), "async generator": tool(async_generator),
              "returns a coroutine": tool(returns_a_coroutine)}

    async def read_async_generator() -> list[int]:
        return [item async for item in shapes["async generator"]()]

    return {"plain": shapes["plain"], "proxy": shapes["proxy"],
            "coroutine": lambda: asyncio.run(shapes["coroutine"]()),
            "generator": lambda: list(shapes["generator"]()),
            "async generator": lambda: asyncio.run(read_async_generator()),
            "returns a coroutine": lambda: asyncio.run(shapes["returns a coroutine"]())}


@pytest.mark.parametrize("shape", list(_each_shape()))
def test_a_call_under_suppressed_instrumentation_runs_as_if_unwrapped(otel: Any, shape: str) -> None:
    """``suppress_instrumentation()``, as the SDK's exporters use it around each export: no span, no metric, as for
    the OpenTelemetry instrumentations; the same call outside it is recorded."""
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    call = _each_shape()[shape]
    with suppress_instrumentation():
        call()
    assert otel.spans() == [] and semconv.TOOL_DURATION.name not in otel.metrics()
    call()
    assert len(otel.spans("execute_tool t")) == 1


def test_a_wrapped_function_the_exporter_calls_is_not_traced_by_its_own_exports(otel: Any) -> None:
    """A config target on what the exporter sends with (``requests.Session.send`` under the OTLP/HTTP exporter): each
    export made a span of the tool, which the next export sent, for ever."""
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    @agent_otel.tool("send")
    def send(payload: object) -> None:
        pass

    class SendingExporter(SpanExporter):
        def __init__(self) -> None:
            self.exported: list[str] = []

        def export(self, spans: Any) -> SpanExportResult:
            self.exported += [span.name for span in spans]
            if len(self.exported) < 5:  # a bound, so that the loop this test catches ends
                send(spans)
            return SpanExportResult.SUCCESS

    exporter = SendingExporter()
    processor = BatchSpanProcessor(exporter)
    otel.tracer_provider.add_span_processor(processor)
    try:
        send("the program's own")
        for _ in range(3):
            processor.force_flush()
    finally:
        processor.shutdown()
    assert exporter.exported == ["execute_tool send"]


def test_a_generator_function_another_wrapt_decorator_turned_into_something_else_returns_what_it_returns(
        otel: Any) -> None:
    """wrapt makes a decorated generator function look like the function, so agent-otel took its call for a generator's
    and drove what it returned as one: a list failed the call (``AttributeError: 'list' object has no attribute
    'gi_code'``), and a coroutine came back as an async generator of ours, which ``await`` refused. What the call
    returns is the program's, timed as a plain function's result: the coroutine until it is awaited to its end."""

    def numbers() -> Any:
        yield 1

    async def async_numbers() -> Any:
        yield 1

    @wrapt.decorator
    def as_list(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> list[int]:
        return list(wrapped(*args, **kwargs))

    @wrapt.decorator
    def as_coroutine(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        async def collect() -> list[int]:
            await asyncio.sleep(0.02)
            return [number async for number in wrapped(*args, **kwargs)]

        return collect()

    assert agent_otel.tool("listed")(as_list(numbers))() == [1]
    assert asyncio.run(agent_otel.tool("collected")(as_coroutine(async_numbers))()) == [1]
    collected = otel.span("execute_tool collected")
    assert otel.span("execute_tool listed").status.status_code is not StatusCode.ERROR
    assert collected.end_time - collected.start_time >= 20_000_000  # until awaited to its end, not when returned


DEEP_ASYNC_RECURSION = """
import asyncio, os, sys
sys.setrecursionlimit(220)  # (each level's error recorded with its traceback: kept short)
if sys.argv[1] == "traced":
    import agent_otel
    agent_otel.configure(metrics_exporter="none")
    tool = agent_otel.tool("descend")
else:
    tool = lambda function: function

@tool
async def descend(n):
    return 0 if n == 0 else 1 + await descend(n - 1)

def at_depth(extra, depth):  # the limit reached at every point of the call, by varying the caller's depth
    if extra:
        return at_depth(extra - 1, depth)
    try:
        asyncio.run(descend(depth))
    except RecursionError:
        return "RecursionError"

print(sorted({at_depth(extra, 400) for extra in range(12)}))
"""


def test_a_decorated_coroutine_function_recursing_past_the_limit_raises_as_plain_and_warns_nothing(
        tmp_path: Any) -> None:
    """Past the recursion limit, a frame of ours raised the RecursionError after the program's coroutine was made and
    before it ran (plain Python raises it in the coroutine's first frame): left unstarted, it printed "coroutine
    'descend' was never awaited" on stderr, where plain Python prints nothing."""
    (tmp_path / "deep.py").write_text(DEEP_ASYNC_RECURSION)
    runs = {mode: subprocess.run([sys.executable, "deep.py", mode], cwd=tmp_path, capture_output=True, text=True,
                                 timeout=120, env={**os.environ, "OTEL_TRACES_EXPORTER": "none"})
            for mode in ("plain", "traced")}
    said = {mode: _LOOP_FINALIZER_AT_THE_LIMIT.sub("", run.stderr) for mode, run in runs.items()}
    assert (runs["plain"].returncode, runs["plain"].stdout, said["plain"]) == (0, "['RecursionError']\n", "")
    assert (runs["traced"].returncode, runs["traced"].stdout, said["traced"]) == (
        runs["plain"].returncode, runs["plain"].stdout, said["plain"])


#: Python 3.13's event loop finalizer, when a collection runs it at the recursion limit: printed now and then by the
#: program without agent-otel too (plain 3.13.0 under the full suite's load), so neither run's stderr counts it.
_LOOP_FINALIZER_AT_THE_LIMIT = re.compile(
    r"Exception ignored in: <function BaseEventLoop\.__del__ at 0x[0-9a-f]+>\nTraceback \(most recent call last\):\n"
    r"  File .*, line \d+, in __del__\nRecursionError: maximum recursion depth exceeded\n")


def test_a_process_that_ends_with_no_exit_hook_flushes_as_its_last_running_call_ends(
        otel: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ray worker ends with no exit hook: configure() there exports what is queued each time no call of ours runs
    any more (the calls inside another do not flush; a call with no span, sampled out or tracing off, counts too), in
    a thread of its own: the task does not wait for the export (it waited for each, 1 s against a Collector that does
    not answer, and an async actor's loop with it: review rv52). Elsewhere nothing is called."""
    from agent_otel._engine import wrappers
    from agent_otel._sdk import idle_flush

    seen: list[str] = []

    @agent_otel.tool("inner")
    def inner() -> None:
        seen.append("inner")

    @agent_otel.agent("outer")
    def outer() -> dict[str, bool]:
        inner()
        inner()
        return {"success": True}

    wrappers.call_when_idle(lambda: seen.append("idle"))
    try:
        outer()
        inner()
        with agent_otel.job("in-a-job"):
            inner()
    finally:
        wrappers.call_when_idle(None)
    assert seen == ["inner", "inner", "idle", "inner", "idle", "inner", "idle"]

    flushed_on: list[str] = []
    flushed = threading.Event()

    def flush() -> None:
        flushed_on.append(threading.current_thread().name)
        flushed.set()

    idle_flush.flush_when_idle(flush)  # (pytest is no Ray worker)
    outer()
    assert wrappers._when_idle is None and not flushed_on
    monkeypatch.setattr(sys, "argv", [os.path.join("/venv", "ray", "_private", "workers", "default_worker.py")])
    idle_flush.flush_when_idle(flush)
    try:
        outer()
        assert flushed.wait(30), "no flush"
    finally:
        idle_flush.stop_flushing_when_idle()
    assert flushed_on[0] == "agent-otel-idle-flush"
