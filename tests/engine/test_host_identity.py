"""A wrapped function is still the host's function: it pickles, copies and deep-copies as the plain
function does (by qualified name), so process pools and ``multiprocessing`` take it, with fork and
spawn, and it costs a recursive function no more stack than a ``functools.wraps`` decorator."""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import functools
import inspect
import logging
import multiprocessing
import os
import pickle
import pickletools
import re
import subprocess
import sys
import types
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pydantic
import pytest
import wrapt
from opentelemetry import trace

import agent_otel
from agent_otel import semconv
from agent_otel._engine.wrappers import wrapped_of
from agent_otel.testing import TelemetryCapture

AGENT_OTEL = str(Path(sys.executable).parent / "agent-otel")


@agent_otel.tool("double")
def double(n: int) -> tuple[int, bool, int]:
    """Module level, so a child process finds it by name: (result, is the name instrumented there,
    pid). With fork the child also inherits the configured SDK, so its span records there."""
    instrumented = hasattr(globals()["double"], "__wrapped__")
    return n * 2, instrumented and trace.get_current_span().is_recording(), os.getpid()


def plain_square(n: int) -> int:
    return n * n


#: A wrapper that is not what its qualified name resolves to (the issue's ``tool("t")(f)``).
square_alias = agent_otel.tool("square")(plain_square)


class Greeter:
    def __init__(self, greeting: str) -> None:
        self.greeting = greeting

    @agent_otel.agent(name="greeter")
    def greet(self, who: str) -> str:
        return f"{self.greeting}, {who}"

    @staticmethod
    @agent_otel.tool("static")
    def shout(who: str) -> str:
        return who.upper()

    @classmethod
    @agent_otel.tool("cls")
    def kind(cls) -> str:
        return cls.__name__


# -- pickle, copy, deepcopy ---------------------------------------------------------------------


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_a_decorated_function_pickles_by_reference_as_the_plain_one(protocol: int) -> None:
    data = pickle.dumps(double, protocol)
    assert pickle.loads(data) is double
    assert b"agent_otel" not in data and b"wrapt" not in data  # loadable where agent-otel is not installed
    assert _opcodes(data) == _opcodes(pickle.dumps(plain_square, protocol))  # a reference to a global
    assert {arg for _, arg, _ in pickletools.genops(data) if isinstance(arg, str)} <= {
        __name__, "double", f"{__name__} double"}


def _opcodes(data: bytes) -> list[str]:
    return [op.name for op, _, _ in pickletools.genops(data)]


def test_copy_and_deepcopy_return_the_function_itself_as_for_a_plain_function() -> None:
    assert copy.copy(double) is double
    assert copy.deepcopy(double) is double
    assert copy.deepcopy({"fn": double})["fn"] is double


def test_a_decorated_callable_object_or_partial_copies_into_another_one_still_traced(otel: TelemetryCapture) -> None:
    """A callable object keeps state, and its copies each keep their own: before, the wrapper's copy and deep copy
    were the wrapper itself, so the "copies" shared the original's state (a partial's keywords too)."""

    class Counter:
        def __init__(self) -> None:
            self.calls: list[int] = []

        def __call__(self, n: int) -> int:
            self.calls.append(n)
            return n

    counter = agent_otel.tool("counter")(Counter())
    shallow, deep = copy.copy(counter), copy.deepcopy(counter)
    assert shallow is not counter and deep is not counter
    deep(1)
    assert counter.calls == [] and deep.calls == [1]
    assert shallow.calls is counter.calls  # a shallow copy's attributes are the original's, as for the plain object
    settings = {"retries": [1]}
    partial = agent_otel.tool("bound")(functools.partial(lambda **kwargs: kwargs, settings=settings))
    copied = copy.deepcopy(partial)
    assert copied() == {"settings": settings} and copied.keywords["settings"] is not settings
    assert [span.name for span in otel.spans()] == ["execute_tool counter", "execute_tool bound"]


class Upper:
    """An async callable object, as a webhook sender or a notifier is."""

    async def __call__(self, text: str) -> str:
        await asyncio.sleep(0)
        return text.upper()


class Words:
    def __call__(self, text: str) -> Iterator[str]:
        yield from text.split()


def test_a_decorated_async_callable_object_reads_as_one_and_is_awaited_by_frameworks(otel: TelemetryCapture) -> None:
    """``obj.__call__`` of the proxy is the object's own, traced: before, it was wrapt's sync ``__call__``, so
    LangChain's ``RunnableLambda`` (as Starlette's ``BackgroundTasks``) took an ``async def __call__`` object for a
    sync function: ``ainvoke`` returned the coroutine unawaited ("never awaited") and the call read "closed early"."""
    from langchain_core.runnables import RunnableLambda

    upper, words = agent_otel.tool("upper")(Upper()), agent_otel.tool("words")(Words())
    plain_upper, plain_words = Upper(), Words()
    for ours, plain in ((upper, plain_upper), (words, plain_words)):
        for check in (inspect.iscoroutinefunction, inspect.isgeneratorfunction, asyncio.iscoroutinefunction,
                      inspect.ismethod, inspect.signature):
            assert check(ours.__call__) == check(plain.__call__), check
        assert repr(ours.__call__).split(" of ")[0] == repr(plain.__call__).split(" of ")[0]
    assert asyncio.run(RunnableLambda(upper).ainvoke("hi")) == "HI"
    with pytest.raises(TypeError, match="coroutine function synchronously"):  # as for the plain object
        RunnableLambda(upper).invoke("hi")
    assert asyncio.run(upper.__call__("a")) == "A"  # a call through __call__ is a call of the object
    assert list(words("a b")) == ["a", "b"] and list(words.__call__("c")) == ["c"]
    spans = otel.spans()
    assert [span.name for span in spans] == ["execute_tool upper", "execute_tool upper", "execute_tool words",
                                             "execute_tool words"]
    assert all(semconv.STREAM_CLOSED_EARLY not in span.attributes and span.status.is_ok for span in spans)


def test_a_wrapper_kept_under_another_name_pickles_as_the_function_it_wraps() -> None:
    assert pickle.loads(pickle.dumps(square_alias)) is plain_square
    assert copy.copy(square_alias) is square_alias
    assert copy.deepcopy(square_alias) is square_alias


def test_methods_pickle_and_copy_as_plain_bound_methods() -> None:
    greeter = Greeter("hello")
    restored = pickle.loads(pickle.dumps(greeter.greet))
    assert restored("you") == "hello, you"
    assert restored.__self__ is not greeter and restored.__self__.greeting == "hello"
    assert copy.copy(greeter.greet).__self__ is greeter
    assert copy.deepcopy(greeter.greet).__self__ is not greeter
    assert copy.deepcopy(greeter.greet)("me") == "hello, me"
    assert pickle.loads(pickle.dumps(Greeter.greet))(greeter, "all") == "hello, all"
    assert pickle.loads(pickle.dumps(Greeter.shout))("x") == "X"
    assert pickle.loads(pickle.dumps(Greeter.kind))() == "Greeter"


#: A class of ``__main__`` with a decorated class and static method, pickled by value (joblib's loky, Ray, Dask).
CLOUDPICKLED_CLASS = """
import sys
import cloudpickle
import agent_otel

class Service:
    @agent_otel.tool("lookup")
    @classmethod
    def lookup(cls, key):
        return key.upper()

    @agent_otel.tool("run")
    def run(self, x):
        return x + 1

    @agent_otel.tool("double")
    @staticmethod
    def double(x):
        return 2 * x

Service.double(1), Service.lookup("x"), Service().run(1)  # used before it is sent, as a pool's parent does
sys.stdout.buffer.write(cloudpickle.dumps((Service(), Service, Service.lookup)))
"""
#: What loads it: a process that records.
LOADS_CLOUDPICKLED = """
import pickle, sys
from agent_otel.testing import capture_telemetry
with capture_telemetry() as otel:
    service, cls, lookup = pickle.loads(sys.stdin.buffer.read())
    print(cls.lookup("a"), lookup("b"), service.run(1), type(service).lookup("c"), cls.double(3))
    print(sorted(span.name for span in otel.spans()))
"""


def test_a_main_class_with_decorated_class_and_static_methods_pickles_by_value_and_is_traced_where_it_loads() -> None:
    """cloudpickle pickles a class of ``__main__`` by value, its dict with it: the wrapper of a class method object
    pickled by name, which reads as a bound method, and pickle refused it ("not the same object"), the class, its
    instances and methods with it (joblib's ``Parallel`` could not send the task). It goes as itself, made again
    around the class method object where it loads."""
    dumped = subprocess.run([sys.executable, "-c", CLOUDPICKLED_CLASS], capture_output=True, timeout=60)
    assert dumped.returncode == 0, dumped.stderr.decode()
    loaded = subprocess.run([sys.executable, "-c", LOADS_CLOUDPICKLED], input=dumped.stdout, capture_output=True,
                            timeout=60)
    assert (loaded.returncode, loaded.stderr) == (0, b"")
    assert loaded.stdout.decode().splitlines() == [
        "A B 2 C 6", "['execute_tool double', 'execute_tool lookup', 'execute_tool lookup', 'execute_tool lookup', "
        "'execute_tool run']"]

    class Held:
        @agent_otel.tool("lookup")
        @classmethod
        def lookup(cls, key: str) -> str:
            return key

        @agent_otel.tool("double")
        @staticmethod
        def double(x: int) -> int:
            return 2 * x

    for name, kind in (("lookup", "classmethod"), ("double", "staticmethod")):  # pickle refuses them, as plain
        assert type(vars(Held)[name]).__name__ != kind  # (our proxy of it)
        with pytest.raises(TypeError, match=f"cannot pickle '{kind}' object"):
            pickle.dumps(vars(Held)[name])


class FlowSettings(pydantic.BaseModel):
    """A parameter's type, named by a string annotation (this module postpones them)."""

    retries: int = 1


@agent_otel.job(type="flow")
def flow_run(settings: FlowSettings) -> int:
    return settings.retries


def test_a_decorated_function_has_the_globals_of_the_program_s_function() -> None:
    """Prefect builds a flow's parameter model from its signature and resolves string annotations (``from __future__
    import annotations``) in the ``__globals__`` of the function it is given, as a ``functools.wraps`` decorator
    written beside the function keeps them: under a decorated sync function they were agent-otel's module, and the
    flow could not run (`PflowModel` is not fully defined; you should define `FlowSettings`)."""
    assert flow_run.__globals__ is globals()
    annotation = inspect.signature(flow_run).parameters["settings"].annotation
    assert annotation == "FlowSettings"
    model = pydantic.create_model("FlowParameters", settings=(annotation, ...))
    model.model_rebuild(_types_namespace=flow_run.__globals__)  # what Prefect does
    parameters = model.model_validate({"settings": {"retries": "3"}})
    assert flow_run(**dict(parameters)) == 3


def test_a_decorated_function_reads_no_name_of_the_program_s_module(otel: TelemetryCapture) -> None:
    """Run with the program's globals, the wrapper reads none of them: a module's global named as a builtin or as
    one of agent-otel's names changes nothing."""
    namespace: dict[str, Any] = {"__name__": "host_module", "type": None, "BaseException": None, "runtime": None,
                                 "_attach": None, "PLAIN_TYPES": None, "report_error": None}
    exec(compile("import agent_otel\n@agent_otel.tool('shadowed')\ndef lookup(n):\n    return n + 1\n",
                 "host_module.py", "exec"), namespace)
    lookup = namespace["lookup"]
    assert lookup.__globals__ is namespace
    assert lookup(1) == 2
    assert [span.name for span in otel.spans()] == ["execute_tool shadowed"]
    with pytest.raises(TypeError):
        lookup("a")
    assert otel.spans()[-1].attributes[semconv.ERROR_TYPE] == "TypeError"


#: Functions of ``__main__`` of every kind, called in a job and a conversation, then pickled by value (dask's
#: ``submit``, Ray, loky, Prefect's process pool send them so once the parent used them).
CLOUDPICKLED_AFTER_CALLS = """
import sys
import cloudpickle
import agent_otel

@agent_otel.job(type="batch")
def batch(n):
    return n

@agent_otel.job()
def any_job(n):
    return n

@agent_otel.agent("planner", conversation=agent_otel.path("args.conversation_id"))
def plan(n, conversation_id="c-1"):
    return n

@agent_otel.agent("writer")
def write(n):
    return n

@agent_otel.tool("lookup")
def lookup(n):
    return n

@agent_otel.provider("openai", model="gpt-4o")
def ask(n):
    return {"model": "gpt-4o", "usage": {"prompt_tokens": 1, "completion_tokens": 1}}

@agent_otel.evolution("tuner")
def evolve(n):
    return {"success": True}

@agent_otel.conversation("c-2")
def chat(n):
    return n

functions = (batch, any_job, plan, write, lookup, ask, evolve, chat)
with agent_otel.conversation("c-3"), agent_otel.job(type="parent"):
    for function in functions:
        function(1)
for function in functions:
    function(2)
sys.stdout.buffer.write(cloudpickle.dumps(functions))
"""
#: What loads them: a process that records.
LOADS_CLOUDPICKLED_FUNCTIONS = """
import pickle, sys
from agent_otel.testing import capture_telemetry
with capture_telemetry() as otel:
    functions = pickle.loads(sys.stdin.buffer.read())
    for function in functions:
        function(3)
    from opentelemetry import context
    # the key an SDK exporter suppresses its own requests' instrumentation with (a name made per process)
    token = context.attach(context.set_value(context._SUPPRESS_INSTRUMENTATION_KEY, True))
    functions[4](4)
    context.detach(token)
    print(sorted(span.name for span in otel.spans()))
"""


def test_functions_of_every_kind_pickle_by_value_after_calls_in_a_job_and_a_conversation() -> None:
    """A call fills caches a handler keeps per policy (the job's bounded type, a kind's start attributes with the job's
    and conversation's ids), which hold the policy's lock and the job's: cloudpickle then refused the wrapper
    (``cannot pickle '_thread.lock' object``), and dask's ``submit`` of a ``job()``-decorated function failed after its
    first call. The caches go without it; the loading process fills its own. The key that suppresses instrumentation
    (made per process) is the loading process's: pickled with the wrapper, a suppressed call still recorded there."""
    dumped = subprocess.run([sys.executable, "-c", CLOUDPICKLED_AFTER_CALLS], capture_output=True, timeout=60)
    assert dumped.returncode == 0, dumped.stderr.decode()[-2000:]
    loaded = subprocess.run([sys.executable, "-c", LOADS_CLOUDPICKLED_FUNCTIONS], input=dumped.stdout,
                            capture_output=True, timeout=60)
    assert (loaded.returncode, loaded.stderr) == (0, b"")
    assert loaded.stdout.decode().splitlines() == [
        "['chat gpt-4o', 'evolve tuner', 'execute_tool lookup', 'invoke_agent planner', 'invoke_agent writer', "
        "'invoke_workflow batch', 'invoke_workflow default']"]


def test_what_cannot_be_pickled_plain_fails_the_same_way() -> None:
    def local(n: int) -> int:
        return n

    with pytest.raises(Exception) as plain_error:
        pickle.dumps(local)
    with pytest.raises(type(plain_error.value)):
        pickle.dumps(agent_otel.tool("local")(local))


class Holder:
    @staticmethod
    def static(n: int) -> int:
        return n + 1


class KeepsATracedAlias:
    def run(self, n: int) -> int:
        return n * 3

    run_traced = agent_otel.tool("alias")(run)  # the body holds run already: the class is not bound yet


def test_an_alias_made_in_a_class_body_pickles_as_the_method_it_wraps() -> None:
    """Without agent-otel ``run_traced`` is ``run``, which pickles by the name ``KeepsATracedAlias.run``."""
    assert pickle.loads(pickle.dumps(KeepsATracedAlias.run_traced)) is KeepsATracedAlias.run
    assert KeepsATracedAlias().run_traced(2) == 6


def test_a_function_wrapped_where_its_name_holds_it_is_the_proxy_that_pickles_by_reference() -> None:
    """``tool("t")(f)`` while a module or class still holds ``f`` under its name (here a static method's
    function, held by its staticmethod object) gives wrapt's proxy: it pickles as a reference to ``f``."""
    for plain in (plain_square, Holder.static):
        wrapped = agent_otel.tool("t")(plain)
        assert isinstance(wrapped, wrapt.FunctionWrapper)
        assert pickle.loads(pickle.dumps(wrapped)) is plain
    assert type(agent_otel.tool("t")(lambda: None)) is types.FunctionType  # its name holds no lambda


def test_a_proxy_reads_in_its_repr_as_the_callable_it_wraps() -> None:
    """wrapt's proxy named itself (``<Wrapper at 0x... for function at 0x...>``) where the program printed, logged
    or snapshot-tested ``repr(json.dumps)``-like values; a bound method and a static method read as theirs."""
    async def fetch() -> None:
        pass

    for plain in (plain_square, Holder.static, fetch, functools.partial(plain_square, 2)):
        assert repr(agent_otel.tool("t")(plain)) == repr(plain)
    greeter = Greeter("hello")
    assert repr(agent_otel.tool("t")(greeter.greet)) == repr(greeter.greet)
    assert repr(Greeter.shout).startswith("<function Greeter.shout at 0x")  # a static method proxy, read


def test_deciding_the_form_runs_no_code_of_the_program() -> None:
    """Whether a name holds the function is read off the module's and classes' dicts: a module's
    ``__getattr__`` (lazy imports) is not called at decoration time."""
    asked: list[str] = []

    def module_getattr(name: str) -> Any:
        asked.append(name)
        raise AttributeError(name)

    module = types.ModuleType("agent_otel_lazy_module")
    module.__getattr__ = module_getattr  # type: ignore[method-assign]
    sys.modules[module.__name__] = module
    try:
        def lazy(n: int) -> int:
            return n

        lazy.__module__, lazy.__qualname__ = module.__name__, "lazy"
        decorated = agent_otel.tool("lazy")(lazy)
        assert decorated(2) == 2
        assert asked == []
    finally:
        del sys.modules[module.__name__]


# -- process pools and multiprocessing ------------------------------------------------------------


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_process_pool_map_runs_the_decorated_function_instrumented_in_the_child(otel: TelemetryCapture,
                                                                                method: str) -> None:
    context = multiprocessing.get_context(method)
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=context) as pool:
        results = list(pool.map(double, [1, 2, 3]))
        aliased = list(pool.map(square_alias, [4]))
    assert [value for value, _, _ in results] == [2, 4, 6]
    assert all(pid != os.getpid() for _, _, pid in results)
    # a forked child inherits the configured SDK; a spawned one re-imports the decorated function
    # but configures nothing, so its span is not recorded (as with any unconfigured process)
    assert all(instrumented for _, instrumented, _ in results) == (method == "fork")
    assert aliased == [16]


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_multiprocessing_pool_map_takes_decorated_functions_and_methods(otel: TelemetryCapture, method: str) -> None:
    with multiprocessing.get_context(method).Pool(2) as pool:
        assert [value for value, _, _ in pool.map(double, [5, 6])] == [10, 12]
        assert pool.apply(Greeter("hi").greet, ("pool",)) == "hi, pool"


CONFIGURED_MODULE = """\
import concurrent.futures, multiprocessing, os, sys
from opentelemetry import trace


def work(n):
    return n * 2, trace.get_current_span().get_span_context().is_valid, os.getpid()


if __name__ == "__main__":
    import workmod
    context = multiprocessing.get_context(sys.argv[1])
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=context) as pool:
        results = list(pool.map(workmod.work, [1, 2]))
    with context.Pool(1) as pool:
        results += pool.map(workmod.work, [3])
    print([value for value, _, _ in results], all(valid for _, valid, _ in results),
          all(pid != os.getpid() for _, _, pid in results))
"""


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_config_wrapped_function_goes_to_pools_under_agent_otel_run(tmp_path: Path, method: str) -> None:
    (tmp_path / "workmod.py").write_text(CONFIGURED_MODULE)
    (tmp_path / "agent-otel.toml").write_text('[[tool]]\ntarget = "workmod:work"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENT_OTEL_"))}
    env.update(XDG_CACHE_HOME=str(tmp_path / "cache"), OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none",
               OTEL_TRACES_EXPORTER="none")
    result = subprocess.run([AGENT_OTEL, "run", "--config", str(tmp_path / "agent-otel.toml"), "--",
                             sys.executable, "-m", "workmod", method], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.stderr == ""
    assert result.returncode == 0
    # every child ran the function inside its own span: the children are instrumented too
    assert result.stdout == "[2, 4, 6] True True\n"


# -- recursion depth -----------------------------------------------------------------------------


def _depth(decorate: Callable[[Callable[..., Any]], Callable[..., Any]]) -> int:
    """How deep a function recursing through ``decorate(function)`` gets before RecursionError."""
    reached = [0]

    def recurse(n: int) -> Any:
        reached[0] = n
        return recursive(n + 1)

    recursive = decorate(recurse)
    with pytest.raises(RecursionError):
        recursive(0)
    return reached[0]


def _wraps(func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    return wrapper


def _frames_per_call(decorate: Callable[[Callable[..., Any]], Callable[..., Any]]) -> int:
    """How many Python frames one call of ``decorate(function)`` puts on the stack."""
    depths: list[int] = []

    def recurse(n: int) -> None:
        frame, depth = sys._getframe(), 0
        while frame is not None:
            frame, depth = frame.f_back, depth + 1  # type: ignore[assignment]
        depths.append(depth)
        if n:
            recursive(n - 1)

    recursive = decorate(recurse)
    recursive(1)
    return depths[1] - depths[0]


def test_a_call_adds_the_python_frames_of_a_functools_wraps_decorator(otel: TelemetryCapture) -> None:
    assert _frames_per_call(lambda func: func) == 1
    assert _frames_per_call(_wraps) == 2
    assert _frames_per_call(agent_otel.tool("recurse")) == 2


def _bare_proxy(func: Callable[..., Any]) -> Callable[..., Any]:
    def pass_through(wrapped: Callable[..., Any], instance: object, args: Any, kwargs: Any) -> Any:
        return wrapped(*args, **kwargs)

    return wrapt.FunctionWrapper(func, pass_through)


def test_recursion_depth_is_that_of_a_functools_wraps_decorator(otel: TelemetryCapture) -> None:
    """A recursive function decorated where it is defined is a plain function, as under a functools.wraps
    decorator, and gets as deep. Before, every decorated function was wrapt's proxy, and on 3.11 the
    interpreter also counts the C call into it (no vectorcall): depth 331 against 498."""
    plain = _depth(lambda func: func)
    wraps = _depth(_wraps)
    ours = _depth(agent_otel.tool("recurse"))
    print(f"recursion depth: plain {plain}, functools.wraps {wraps}, agent-otel {ours}")
    assert plain > wraps == ours
    assert type(agent_otel.tool("recurse")(lambda: None)) is types.FunctionType


def test_calls_at_the_recursion_limit_are_recorded_or_counted_as_lost(otel: TelemetryCapture,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    """A recursive tool whose caller catches RecursionError (a depth-bounded search): the calls that end near
    the limit have no stack left to be recorded, nor to report that (its report overflowed too, and was
    dropped): a few calls were missing from the spans and the metrics, uncounted. Each loss is counted now, and
    said in one line when it is (it was counted with no word said)."""
    caplog.set_level(logging.WARNING, logger="agent_otel")
    returned = []

    @agent_otel.tool("step")
    def step(n: int) -> int:
        return descend(n + 1)

    def descend(n: int) -> int:
        try:
            result = step(n)
        except RecursionError:
            return n
        returned.append(n)
        return result

    descend(0)
    (recorded,) = otel.points(semconv.TOOL_DURATION.name)
    lost = sum(point.value for point in otel.points(semconv.INSTRUMENTATION_ERRORS.name))
    assert len(returned) > recorded.count  # the case under test: some calls did end with no stack to record them
    assert lost >= len(returned) - recorded.count
    assert len(otel.spans("execute_tool step")) + lost >= len(returned)
    said = [message for message in caplog.messages if message.startswith("agent-otel: unreported")]
    assert len(said) == 1 and re.fullmatch(r"agent-otel: unreported: \d+ failures could not be reported when they "
                                           r"happened \(a call ending too near the recursion limit to record it\); "
                                           r"counted now", said[0]), said


def recurse_by_name(n: int) -> int:
    """Recurses through whatever its module's ``recursing`` holds."""
    recursing[0] = n
    return recurse_by_name_wrapped(n + 1)


recursing = [0]


def test_recursion_depth_of_a_function_wrapped_after_its_name_holds_it(otel: TelemetryCapture) -> None:
    """``tool("t")(f)`` while ``f`` still names the plain function gives wrapt's proxy (it pickles by
    reference to ``f``): from Python 3.12 as deep as a functools.wraps decorator; on 3.11 the C call into
    the proxy counts too, as for any wrapt proxy (a documented limit, README)."""
    global recurse_by_name_wrapped
    wraps = _depth(_wraps)
    proxy = _depth(_bare_proxy)
    recurse_by_name_wrapped = agent_otel.tool("recurse")(recurse_by_name)
    assert isinstance(recurse_by_name_wrapped, wrapt.FunctionWrapper)

    def recurse_from_where_depth_starts() -> None:  # one frame below this test's, as _depth recurses: a frame
        with pytest.raises(RecursionError):  # more or less could give one call more or less (two frames per call)
            recurse_by_name_wrapped(0)

    recurse_from_where_depth_starts()
    assert recursing[0] == proxy
    assert recursing[0] == wraps or sys.version_info < (3, 12)


recurse_by_name_wrapped: Callable[[int], int] = recurse_by_name


# -- decorated methods read from their class -----------------------------------------------------


class Planner:
    label = "planner-a"

    @agent_otel.agent(name=agent_otel.path("self.label"))
    def run(self, task: str) -> str:
        return f"{self.label}: {task}"

    @agent_otel.tool("normalise")
    @staticmethod
    def normalise(task: str) -> str:
        return task.strip()


class InheritsRun(Planner):
    label = "planner-b"


class OverridesRun(Planner):
    def run(self, task: str) -> str:
        return super().run(task.upper())


def test_a_decorated_method_reads_from_its_class_as_itself_as_a_plain_function_does() -> None:
    """Frameworks detect an override with ``type(obj).method is Base.method``: it must hold for a
    subclass that does not override the decorated method, and fail for one that does."""
    assert Planner.run is Planner.run
    assert Planner.__dict__["run"] is Planner.run
    assert InheritsRun.run is Planner.run
    assert OverridesRun.run is not Planner.run
    assert InheritsRun.normalise is Planner.normalise  # a static method: one object, from instances too
    assert InheritsRun().normalise is Planner.normalise
    assert isinstance(Planner.__dict__["normalise"], staticmethod)  # the class holds the static method object
    # reads as its function (the static method object's own __wrapped__, as a plain one answers)
    assert Planner.normalise.__wrapped__ is wrapped_of(Planner.__dict__["normalise"]).__func__
    assert Planner.__dict__["normalise"].__wrapped__ is Planner.normalise.__wrapped__
    assert Planner().run is not Planner.run  # from an instance it binds, as a plain method does


class StaticTools:
    @agent_otel.tool("rows")
    @staticmethod
    def rows(n: int) -> Iterator[int]:
        yield from range(n)

    @agent_otel.tool("arows")
    @staticmethod
    async def arows(n: int) -> AsyncIterator[int]:
        yield n

    @agent_otel.tool("fetch")
    @staticmethod
    async def fetch(n: int) -> int:
        return n

    @agent_otel.tool("plain")
    @staticmethod
    def plain(n: int) -> int:
        return n


@pytest.mark.parametrize("read", [lambda: StaticTools, StaticTools], ids=["class", "instance"])
def test_a_static_method_decorated_above_staticmethod_reads_as_its_function(otel: TelemetryCapture,
                                                                            read: Callable[[], Any]) -> None:
    """``@tool`` above ``@staticmethod``: the class and its instances read the function, as plain, so that
    ``inspect`` tells a generator, an async generator and a coroutine function apart (frameworks decide
    how to call a tool by it; a proxy of the staticmethod object is none of them)."""
    owner = read()
    assert inspect.isgeneratorfunction(owner.rows) and inspect.isfunction(owner.rows)
    assert inspect.isasyncgenfunction(owner.arows) and inspect.isfunction(owner.arows)
    assert inspect.iscoroutinefunction(owner.fetch) and inspect.isfunction(owner.fetch)
    assert inspect.isfunction(owner.plain) and not inspect.iscoroutinefunction(owner.plain)
    assert inspect.signature(owner.fetch) == inspect.signature(wrapped_of(StaticTools.__dict__["fetch"]).__func__)
    assert list(owner.rows(2)) == [0, 1] and asyncio.run(owner.fetch(3)) == 3 and owner.plain(4) == 4

    async def read_all() -> list[int]:
        return [item async for item in owner.arows(5)]

    assert asyncio.run(read_all()) == [5]
    assert [span.name for span in otel.spans()] == [
        "execute_tool rows", "execute_tool fetch", "execute_tool plain", "execute_tool arows"]
    assert pickle.loads(pickle.dumps(owner.fetch)) is StaticTools.fetch


def test_a_decorated_function_shows_the_annotations_of_the_plain_one() -> None:
    """Frameworks build tool schemas from ``__annotations__``; a wrapper class's own must not shadow them."""
    assert plain_square.__annotations__ == {"n": "int", "return": "int"}
    assert square_alias.__annotations__ is plain_square.__annotations__
    assert Planner.run.__annotations__ == {"task": "str", "return": "str"}
    assert Planner.normalise.__annotations__ == {"task": "str", "return": "str"}


def test_no_proxy_class_of_ours_has_annotations_of_its_own() -> None:
    """Every proxy shows the object it wraps, except for what its class defines: a class-level annotation gives
    the class an ``__annotations__`` that shadows the wrapped object's (a function's, a stream's), or makes one
    appear where it has none (a coroutine). So does reading the class's ``__annotations__`` (python puts an empty
    one in the class then), which typing's runtime protocol checks do for each class of an object's MRO: on 3.13,
    ``isinstance(stream, contextlib.AbstractContextManager)`` in another test made every proxy show ``{}``."""
    import agent_otel._zerocode.patching  # every module that defines a proxy class
    from agent_otel._engine import wrappers

    def subclasses(cls: type) -> list[type]:
        return [cls, *(sub for direct in cls.__subclasses__() for sub in subclasses(direct))]

    roots = (wrapt.ObjectProxy, wrapt.FunctionWrapper, wrapt.BoundFunctionWrapper, wrappers._PendingCoroutine)
    ours = {cls for root in roots for cls in subclasses(root) if cls.__module__.startswith("agent_otel.")}
    assert len(ours) >= 7  # wrappers (decorated, bound, held by instances), the stream and coroutine proxies
    assert {cls.__qualname__: dict(cls.__annotations__) for cls in ours} == {cls.__qualname__: {} for cls in ours}

    async def fetch() -> int:
        return 1

    coroutine = agent_otel.tool("fetch")(fetch)()
    assert not hasattr(coroutine, "__annotations__")
    assert asyncio.run(coroutine) == 1
    assert square_alias.__annotations__ is plain_square.__annotations__
    assert Planner.run.__annotations__ == {"task": "str", "return": "str"}


def test_a_coroutine_a_decorated_call_returns_has_no_annotations_as_the_plain_one() -> None:
    """The coroutine proxies (an ``async def``'s, a sync function's returned coroutine) show the program's
    coroutine: it has no ``__annotations__``, so neither may a proxy class's own make one appear."""

    async def fetch() -> int:
        return 1

    def start() -> Any:
        return fetch()

    for call in (fetch, agent_otel.tool("fetch")(fetch), agent_otel.tool("start")(start)):
        coroutine = call()
        assert not hasattr(coroutine, "__annotations__")
        assert asyncio.run(coroutine) == 1


def test_a_method_called_through_its_class_records_as_when_called_on_its_instance(otel: TelemetryCapture) -> None:
    planner = InheritsRun()
    assert Planner.run(planner, "plan") == planner.run("plan") == "planner-b: plan"
    assert Planner.normalise(" x ") == InheritsRun().normalise(" y ").replace("y", "x")
    assert OverridesRun().run("go") == "planner-a: GO"
    agents = [span.name for span in otel.spans() if span.name.startswith("invoke_agent")]
    # ``self.label`` read from the object passed to Planner.run, as from the bound call
    assert agents == ["invoke_agent planner-b", "invoke_agent planner-b", "invoke_agent planner-a"]
    assert [span.name for span in otel.spans() if span.name.startswith("execute_tool")] == [
        "execute_tool normalise"] * 2


@pytest.mark.parametrize("delay", [0, 0.01], ids=["yields once", "awaits a timer"])
def test_a_decorated_coroutine_awaited_by_two_tasks_at_once_is_refused_to_the_second_as_plain(
        otel: Any, capsys: pytest.CaptureFixture[str], delay: float) -> None:
    """python refuses the second ``await`` of a coroutine another task is awaiting ("coroutine is being awaited
    already"), a check it makes of a coroutine only: through agent-otel's proxy the second task took the first
    one's steps over (the first got "cannot reuse already awaited coroutine"), and OpenTelemetry printed "Failed
    to detach context" with a traceback on the program's stderr."""
    import asyncio

    async def fetch(x: int) -> int:
        await asyncio.sleep(delay)
        return x

    async def twice(function: Any) -> list[str]:
        shared = function(3)

        async def await_it() -> int:
            return cast(int, await shared)

        results = await asyncio.gather(await_it(), await_it(), return_exceptions=True)
        return [f"{type(result).__name__}: {result}" for result in results]

    plain = asyncio.run(twice(fetch))
    traced = asyncio.run(twice(agent_otel.tool("fetch")(fetch)))
    assert traced == plain == ["int: 3", "RuntimeError: coroutine is being awaited already"]
    assert capsys.readouterr().err == ""
    assert [span.name for span in otel.spans()] == ["execute_tool fetch"]


def test_a_failure_whose_log_line_fails_is_counted_once(otel: TelemetryCapture,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The report counted the failure, then its log line failed (a handler that raises, the stack at its limit):
    the failure was counted a second time, at stage ``unreported``."""
    from agent_otel._engine import self_telemetry

    def failing(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a handler that fails")

    monkeypatch.setattr(self_telemetry.logger, "warning", failing)
    self_telemetry.report_error("tool.extract.once", ValueError("x"))
    counted = {p.attributes[semconv.INSTRUMENTATION_STAGE]: p.value
               for p in otel.points(semconv.INSTRUMENTATION_ERRORS.name)}
    assert counted == {"tool.extract.once": 1}


def test_an_exit_thread_leaves_no_thread_listed_behind() -> None:
    """A thread of ours at exit that logs: ``threading.current_thread()`` registered a dummy Thread for it, listed
    by the program's ``threading.enumerate()`` for ever."""
    import logging
    import threading

    from agent_otel._engine.threads import ExitThread

    before = set(threading.enumerate())
    thread = ExitThread(lambda: logging.getLogger("agent_otel.test").info("%s", threading.current_thread()), "t")
    thread.join(10)
    assert not thread.is_alive() and set(threading.enumerate()) == before


def with_retry(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A program's decorator: ``functools.wraps`` over agent-otel's decorator over its own async wrapper."""
    @functools.wraps(fn)
    @agent_otel.tool("with_retry")
    async def wrapper(*args: Any) -> Any:
        for _ in range(3):
            try:
                return await fn(*args)
            except ConnectionError:
                pass
        return "gave up"
    return wrapper


def test_functools_wraps_over_a_decorated_async_function_keeps_the_programs_wrapper(otel: TelemetryCapture) -> None:
    """``functools.wraps`` sets ``__wrapped__``, which wrapt's proxy took for its new target: every call went to the
    wrapped function, skipping the program's wrapper (its retries; here the second failure reached the caller)."""
    failures = [ConnectionError("flaky"), ConnectionError("flaky")]

    async def fetch() -> str:
        if failures:
            raise failures.pop()
        return "ok"

    retried = with_retry(fetch)
    assert asyncio.run(retried()) == "ok"
    assert inspect.signature(retried) == inspect.signature(fetch)  # inspect follows __wrapped__, as for plain
    assert retried.__name__ == "fetch"
    assert [span.name for span in otel.spans()] == ["execute_tool with_retry"]


def test_a_cache_answers_its_own_wrapped_as_the_plain_one_does(otel: TelemetryCapture) -> None:
    """``f.__wrapped__(...)`` is the usual way past a decorator (tests use it): the proxy of an ``lru_cache`` answered
    with the cache itself, so the call was served from the cache (see tests/zerocode for a configured target)."""
    computed: list[int] = []

    @functools.cache
    def expensive(n: int) -> int:
        computed.append(n)
        return 2 * n

    cached = agent_otel.tool("expensive")(expensive)
    assert wrapped_of(cached) is expensive  # what the proxy calls
    assert cached(1) == 2 and cached.__wrapped__ is expensive.__wrapped__
    assert cached.__wrapped__(1) == 2 and computed == [1, 1]  # past the cache, as plain
    assert cached.cache_info().hits == 0 and inspect.unwrap(cached) is expensive.__wrapped__
    assert [span.name for span in otel.spans()] == ["execute_tool expensive"]
    plain = agent_otel.tool("plain")(str.upper)  # a callable with no __wrapped__ of its own: the callable, as before
    assert plain.__wrapped__ is str.upper


def test_another_librarys_patch_under_ours_stays_one_to_walk() -> None:
    """An instrumentation's wrapt patch under our proxy answers as itself: its ``unwrap()`` (``setattr(owner, name,
    current.__wrapped__)``) and wrapt's walk of a chain of patches undo one patch at a time."""
    def call(key: str) -> str:
        return key

    theirs = wrapt.FunctionWrapper(call, lambda wrapped, instance, args, kwargs: wrapped(*args, **kwargs))
    ours = agent_otel.tool("call")(theirs)
    assert ours.__wrapped__ is theirs and theirs.__wrapped__ is call


class CachedMethods:
    @agent_otel.tool("doubled")
    @functools.cache  # noqa: B019
    def doubled(self, n: int) -> int:
        return 2 * n


def test_a_decorated_cached_method_reads_from_its_class_as_itself_and_copies_as_itself() -> None:
    """``@tool`` over ``@lru_cache`` in a class body: ``Class.method`` was a new proxy at each read, and copying it
    raised TypeError (a bound proxy's constructor takes other arguments)."""
    assert CachedMethods.doubled is CachedMethods.doubled
    assert copy.copy(CachedMethods.doubled) is CachedMethods.doubled
    assert copy.deepcopy({"m": CachedMethods.doubled})["m"] is CachedMethods.doubled
    assert CachedMethods().doubled(2) == 4 and CachedMethods.doubled.cache_info().misses == 1


def test_a_decorated_coroutine_awaited_again_after_it_returned_is_refused_as_plain(otel: TelemetryCapture) -> None:
    """Python refuses a second ``await`` of a coroutine that ran to its end. A first version of the generator that
    drives ours returned None to it instead (an exhausted generator stops at once)."""
    @agent_otel.tool("once")
    async def once() -> int:
        return 1

    async def await_twice() -> int:
        coroutine = once()
        first = await coroutine
        await coroutine
        return first

    with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
        asyncio.run(await_twice())
    done = once()
    asyncio.run(cast(Any, done))
    with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):  # stepped by hand, or a task
        done.send(None)
    assert sum(point.count for point in otel.points(semconv.TOOL_DURATION.name)) == 2


class ComparedFuture(concurrent.futures.Future[int]):
    """A future of the program's that defines equality, and so is unhashable."""

    def __eq__(self, other: object) -> bool:
        return self is other

    __hash__ = None  # type: ignore[assignment]


def test_an_unhashable_future_a_call_returns_is_timed_until_it_completes(otel: TelemetryCapture) -> None:
    """The call ends when the future does. A first version of the weak references that end a call whose result is
    dropped kept them in a set, which hashed the future: ``TypeError``, the call ended at once, an error counted."""
    future = ComparedFuture()

    @agent_otel.tool("submit")
    def submit() -> ComparedFuture:
        return future

    assert submit() is future
    assert otel.spans() == []  # still running
    future.set_result(1)
    [span] = otel.spans()
    assert span.name == "execute_tool submit" and otel.points(semconv.INSTRUMENTATION_ERRORS.name) == []


RESULTS_THEN_A_TEMPORARY_DIRECTORY = """
import asyncio, atexit, os, sys, tempfile
if sys.argv[1] == "traced":
    import agent_otel
    agent_otel.configure(metrics_exporter="none")
    traced = agent_otel.tool("t")
else:
    traced = lambda function: function
async def fetch():
    return 1
@traced
def returns_a_coroutine():
    return fetch()
@traced
def returns_a_generator():
    return (n for n in range(2))
asyncio.run(returns_a_coroutine())
list(returns_a_generator())
state = {}
atexit.register(lambda: print("the directory at the exit hook:", os.path.isdir(state["path"])))
state["path"] = tempfile.TemporaryDirectory().name  # dropped: removed at once
kept = tempfile.TemporaryDirectory()  # removed by its finalizer at exit, before the hook registered before it
state["path"] = kept.name
"""


def test_the_programs_finalizers_run_at_exit_in_their_order_after_results_agent_otel_times(tmp_path: Path) -> None:
    """A ``TemporaryDirectory`` kept to the end is removed by ``weakref.finalize``'s exit hook, which python registers
    with ``atexit`` when the first finalizer is made: after the program's own hook here, so it runs before it. Before,
    agent-otel made one for each coroutine or generator a sync call returned, the first of them before the program's
    hook, and the directory was still there when the hook ran."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENT_OTEL_"))}
    env.update(OTEL_TRACES_EXPORTER="none", OTEL_LOGS_EXPORTER="none")
    outputs = [subprocess.run([sys.executable, "-c", RESULTS_THEN_A_TEMPORARY_DIRECTORY, mode], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=60) for mode in ("plain", "traced")]
    assert [(done.returncode, done.stdout, done.stderr) for done in outputs] == [
        (0, "the directory at the exit hook: False\n", "")] * 2


def test_a_coroutine_closed_before_it_ran_records_no_call_when_awaited(otel: TelemetryCapture) -> None:
    """Awaiting it raises (as plain Python: the coroutine cannot be reused); the body never ran, and a failed call
    with its duration was recorded."""
    @agent_otel.tool("never_ran")
    async def never_ran() -> int:
        return 1

    async def await_closed() -> None:
        coroutine = never_ran()
        coroutine.close()
        await coroutine

    with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
        asyncio.run(await_closed())
    assert otel.spans() == [] and otel.points(semconv.TOOL_DURATION.name) == []
