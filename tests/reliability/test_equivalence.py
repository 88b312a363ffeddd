"""Property: an instrumented callable behaves exactly like the plain one.

Hypothesis generates callables of every shape (sync function, coroutine function, generator and
async generator function, each also as a method), with return values, exceptions of many types
(``BaseException`` subclasses, ``StopIteration``, ``CancelledError`` included) and scripted
reactions to ``send``/``throw``/``close``; and a sequence of operations to drive them. Each callable
runs plain and wrapped (by the engine ``instrument()`` and by every public decorator); the two
transcripts must be identical: values returned and yielded (same objects), exceptions (same type,
the very same object when the callable raised or was thrown one, the same cause and context),
``StopIteration`` values, and what the body saw (its arguments, sent values, thrown exceptions,
closes and ``finally`` blocks).

``GeneratorExit`` is thrown too: the engine passes it, thrown or from ``close()``, to the program's
generator, which decides as it would unwrapped (``yield from`` would close it instead, which a handler
that yields or returns can tell). A generator that yields instead of exiting on ``close()`` (a bug
Python reports with ``RuntimeError``) is left to the last test: ``close()`` raises the same
``RuntimeError``, and the span ends, closed, as the consumer asked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import trace

import agent_otel
from agent_otel._engine.instruments import runtime
from agent_otel._engine.wrappers import Handler, Invocation, instrument
from tests.support.reliability import RELIABILITY


class CustomError(Exception):
    pass


class CustomBaseError(BaseException):
    pass


class KeyedError(LookupError):
    def __init__(self, key: Any, detail: str) -> None:
        super().__init__(key, detail)


EXCEPTION_TYPES: tuple[Callable[[str], BaseException], ...] = (
    ValueError, KeyError, TypeError, RuntimeError, CustomError, CustomBaseError, KeyboardInterrupt, SystemExit,
    StopIteration, asyncio.CancelledError, lambda text: KeyedError(text, "detail"),
)
#: What a generator may be thrown.
THROWABLE = (*EXCEPTION_TYPES, GeneratorExit)


class PlainHandler(Handler):
    """The engine with the least a kind can do: one span per call."""

    stage = "test"

    def begin(self, wrapped: Any, instance: Any, args: tuple, kwargs: dict, parent: Any) -> Invocation:
        span = runtime().tracer.start_span("call", context=parent)
        return Invocation(span, trace.set_span_in_context(span, parent), self.stage)


WRAPPERS: dict[str, Callable[[Any], Any]] = {
    "engine": lambda func: instrument(PlainHandler(), func),
    "agent": agent_otel.agent("prop-agent"),
    "tool": agent_otel.tool("prop-tool"),
    "provider": agent_otel.provider("prop-provider", model="m"),
    "evolution": agent_otel.evolution("prop-agent", sample_resources=False),
    "job": agent_otel.job(type="prop"),
}

values = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(max_size=4),
    st.tuples(st.integers(), st.text(max_size=2)),
    st.dictionaries(st.sampled_from(["success", "usage", "confidence", "model", "x"]),
                    st.one_of(st.integers(), st.text(max_size=3), st.none()), max_size=3),
    st.builds(object),
)
exceptions = st.builds(lambda make, text: make(text), st.sampled_from(EXCEPTION_TYPES), st.text(max_size=5))
throwables = st.builds(lambda make, text: make(text), st.sampled_from(THROWABLE), st.text(max_size=5))


@dataclass
class Spec:
    """A generated callable: what it yields, returns or raises, and how it reacts to the protocol."""

    shape: str  # sync | async | generator | async_generator
    method: bool
    items: list[Any]
    returns: Any
    raises: BaseException | None
    awaits: int
    catches: tuple[type[BaseException], ...]
    on_catch: str  # continue | return | raise
    catch_raises: BaseException
    on_exit: str  # propagate | raise | return | yield (only in the last test)
    exit_raises: BaseException
    log: list[Any] = field(default_factory=list)

    def known(self) -> list[Any]:
        """Objects whose identity must survive the wrapper."""
        return [*self.items, self.returns, self.raises, self.catch_raises, self.exit_raises]


@st.composite
def specs(draw: st.DrawFn, shapes: tuple[str, ...] = ("sync", "async", "generator", "async_generator")) -> Spec:
    catches = draw(st.lists(st.sampled_from(EXCEPTION_TYPES), max_size=3))
    return Spec(
        shape=draw(st.sampled_from(shapes)),
        method=draw(st.booleans()),
        items=draw(st.lists(values, max_size=4)),
        returns=draw(values),
        raises=draw(st.one_of(st.none(), exceptions)),
        awaits=draw(st.integers(0, 2)),
        catches=tuple({type(make("x")) for make in catches}),
        on_catch=draw(st.sampled_from(["continue", "return", "raise"])),
        catch_raises=draw(exceptions),
        on_exit=draw(st.sampled_from(["propagate", "raise", "return"])),
        exit_raises=draw(exceptions),
    )


def build(spec: Spec, wrap: Callable[[Any], Any] | None) -> Callable[..., Any]:
    """A fresh callable of ``spec``'s shape (wrapped by ``wrap`` if given); its body logs to spec.log.
    For a method, returns the bound method of a fresh instance."""
    log = spec.log

    def seen(args: tuple, kwargs: dict) -> None:
        if spec.method:
            args = ("<self>" if isinstance(args[0], Holder) else args[0], *args[1:])
        log.append(("start", args, kwargs))

    def sync_body(*args: Any, **kwargs: Any) -> Any:
        seen(args, kwargs)
        if spec.raises is not None:
            raise spec.raises
        return spec.returns

    async def async_body(*args: Any, **kwargs: Any) -> Any:
        seen(args, kwargs)
        for _ in range(spec.awaits):
            await asyncio.sleep(0)
        if spec.raises is not None:
            raise spec.raises
        return spec.returns

    def generator_body(*args: Any, **kwargs: Any) -> Any:
        seen(args, kwargs)
        ignored_exit = False
        index = 0
        try:
            while index < len(spec.items):
                try:
                    sent = yield spec.items[index]
                    log.append(("sent", sent))
                    index += 1
                except GeneratorExit:
                    log.append("exit")
                    if spec.on_exit == "raise":
                        raise spec.exit_raises from None
                    if spec.on_exit == "return":
                        return spec.returns
                    if spec.on_exit == "yield" and not ignored_exit:
                        ignored_exit = True
                        yield "ignored exit"
                    raise
                except spec.catches as caught:
                    log.append(("caught", caught))
                    if spec.on_catch == "return":
                        return spec.returns
                    if spec.on_catch == "raise":
                        raise spec.catch_raises  # noqa: B904 - the context is part of what is compared
                    index += 1
            if spec.raises is not None:
                raise spec.raises
            return spec.returns
        finally:
            log.append("finally")

    async def async_generator_body(*args: Any, **kwargs: Any) -> Any:
        seen(args, kwargs)
        ignored_exit = False
        index = 0
        try:
            while index < len(spec.items):
                try:
                    for _ in range(spec.awaits):
                        await asyncio.sleep(0)
                    sent = yield spec.items[index]
                    log.append(("sent", sent))
                    index += 1
                except GeneratorExit:
                    log.append("exit")
                    if spec.on_exit == "raise":
                        raise spec.exit_raises from None
                    if spec.on_exit == "return":
                        return
                    if spec.on_exit == "yield" and not ignored_exit:
                        ignored_exit = True
                        yield "ignored exit"
                    raise
                except spec.catches as caught:
                    log.append(("caught", caught))
                    if spec.on_catch == "return":
                        return
                    if spec.on_catch == "raise":
                        raise spec.catch_raises  # noqa: B904
                    index += 1
            if spec.raises is not None:
                raise spec.raises
        finally:
            log.append("finally")

    body = {"sync": sync_body, "async": async_body, "generator": generator_body,
            "async_generator": async_generator_body}[spec.shape]
    func = wrap(body) if wrap is not None else body
    if not spec.method:
        return func

    class Holder:
        call = func

    return Holder().call


# --------------------------------------------------------------------------------------------------
# Transcripts


class Transcript:
    """What one run looked like, with the spec's objects named by position so that identity counts."""

    def __init__(self, spec: Spec) -> None:
        self.known = spec.known()
        self.entries: list[Any] = []

    def name(self, obj: Any) -> Any:
        for index, candidate in enumerate(self.known):
            if obj is candidate and candidate is not None:
                return ("known", index)
        if isinstance(obj, BaseException):
            return ("new", type(obj), obj.args if not isinstance(obj.args, tuple) or
                    all(not isinstance(a, BaseException) for a in obj.args) else len(obj.args))
        try:
            hash(obj)
            return ("value", type(obj), obj)
        except TypeError:
            return ("value", type(obj), repr(obj))

    def error(self, exc: BaseException) -> tuple[Any, ...]:
        return ("raised", type(exc), self.name(exc), self.name(exc.__cause__), self.name(exc.__context__))

    def add(self, *entry: Any) -> None:
        self.entries.append(entry)


def log_entries(spec: Spec, transcript: Transcript) -> list[Any]:
    named = []
    for entry in spec.log:
        if isinstance(entry, tuple) and entry[0] == "caught":
            named.append(("caught", transcript.name(entry[1])))
        elif isinstance(entry, tuple) and entry[0] == "sent":
            named.append(("sent", transcript.name(entry[1])))
        else:
            named.append(entry)
    return named


def call_args(spec: Spec) -> tuple[tuple, dict]:
    return (1, spec.returns), {"key": "v"}


def run_sync(spec: Spec, func: Any, transcript: Transcript) -> None:
    args, kwargs = call_args(spec)
    try:
        transcript.add("returned", transcript.name(func(*args, **kwargs)))
    except BaseException as exc:
        transcript.add(*transcript.error(exc))


def run_async(spec: Spec, func: Any, transcript: Transcript) -> None:
    args, kwargs = call_args(spec)

    async def main() -> None:
        try:
            transcript.add("returned", transcript.name(await func(*args, **kwargs)))
        except BaseException as exc:
            transcript.add(*transcript.error(exc))

    asyncio.run(main())


operations = st.lists(st.one_of(
    st.just(("next",)), st.tuples(st.just("send"), values), st.tuples(st.just("throw"), throwables),
    st.just(("close",))), max_size=8)


def run_generator(spec: Spec, func: Any, ops: list[tuple], transcript: Transcript) -> None:
    args, kwargs = call_args(spec)
    gen = func(*args, **kwargs)
    transcript.known.extend(op[1] for op in ops if op[0] in ("send", "throw"))
    for op in [*ops, ("close",)]:
        try:
            if op[0] == "next":
                transcript.add("yielded", transcript.name(next(gen)))
            elif op[0] == "send":
                transcript.add("yielded", transcript.name(gen.send(op[1])))
            elif op[0] == "throw":
                transcript.add("yielded", transcript.name(gen.throw(op[1])))
            else:
                transcript.add("closed", transcript.name(gen.close()))
        except StopIteration as stop:
            transcript.add("stopped", transcript.name(stop.value))
        except BaseException as exc:
            transcript.add(*transcript.error(exc))
            if op[0] == "close":
                break  # the generator ignored GeneratorExit: see the module docstring


def run_async_generator(spec: Spec, func: Any, ops: list[tuple], transcript: Transcript) -> None:
    args, kwargs = call_args(spec)
    transcript.known.extend(op[1] for op in ops if op[0] in ("send", "throw"))

    async def main() -> None:
        agen = func(*args, **kwargs)
        for op in [*ops, ("close",)]:
            try:
                if op[0] == "next":
                    transcript.add("yielded", transcript.name(await agen.__anext__()))
                elif op[0] == "send":
                    transcript.add("yielded", transcript.name(await agen.asend(op[1])))
                elif op[0] == "throw":
                    transcript.add("yielded", transcript.name(await agen.athrow(op[1])))
                else:
                    transcript.add("closed", transcript.name(await agen.aclose()))
            except StopAsyncIteration as stop:
                transcript.add("stopped", transcript.name(stop.value if stop.args else None))
            except BaseException as exc:
                transcript.add(*transcript.error(exc))
                if op[0] == "close":
                    break

    asyncio.run(main())


def transcript_of(spec: Spec, wrap: Callable[[Any], Any] | None, ops: list[tuple]) -> list[Any]:
    spec.log.clear()
    func = build(spec, wrap)
    transcript = Transcript(spec)
    if spec.shape == "sync":
        run_sync(spec, func, transcript)
    elif spec.shape == "async":
        run_async(spec, func, transcript)
    elif spec.shape == "generator":
        run_generator(spec, func, ops, transcript)
    else:
        run_async_generator(spec, func, ops, transcript)
    return [*transcript.entries, ("body", log_entries(spec, transcript))]


PROPERTY_SETTINGS = settings(RELIABILITY)


@PROPERTY_SETTINGS
@given(spec=specs(), ops=operations, wrapper=st.sampled_from(sorted(WRAPPERS)))
def test_instrumented_and_plain_callables_behave_identically(otel: Any, spec: Spec, ops: list[tuple],
                                                             wrapper: str) -> None:
    before = len(otel.spans())
    plain = transcript_of(spec, None, ops)
    wrapped = transcript_of(spec, WRAPPERS[wrapper], ops)
    assert wrapped == plain
    # and the wrapper was really there: one span for a call, at most one for a generator
    spans = len(otel.spans()) - before
    assert spans == 1 if spec.shape in ("sync", "async") else spans <= 1


@PROPERTY_SETTINGS
@given(spec=specs(shapes=("generator", "async_generator")), ops=operations)
def test_generators_driven_to_the_end_end_their_span_once(otel: Any, spec: Spec, ops: list[tuple]) -> None:
    """A started generator, whatever the protocol did to it, has ended its one span by the final close."""
    before = len(otel.spans())
    wrapped = transcript_of(spec, WRAPPERS["engine"], [("next",), *ops])
    assert wrapped == transcript_of(spec, None, [("next",), *ops])
    assert len(otel.spans()) - before == 1


@PROPERTY_SETTINGS
@given(spec=specs(shapes=("generator", "async_generator")), wrapper=st.sampled_from(sorted(WRAPPERS)))
def test_a_generator_ignoring_close_fails_the_same_way_and_ends_its_span(otel: Any, spec: Spec,
                                                                         wrapper: str) -> None:
    spec.on_exit, spec.items = "yield", [*spec.items, "last"]
    before = len(otel.spans())
    plain = transcript_of(spec, None, [("next",)])
    wrapped = transcript_of(spec, WRAPPERS[wrapper], [("next",)])
    ignored = ("" if spec.shape == "generator" else "async ") + "generator ignored GeneratorExit"
    for transcript in (plain, wrapped):
        assert transcript[0][0] == "yielded"
        assert transcript[1][:3] == ("raised", RuntimeError, ("new", RuntimeError, (ignored,)))
    assert len(otel.spans()) - before == 1
