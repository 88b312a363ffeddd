"""Wrapping mechanics of config-driven instrumentation, each against a real module on disk."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import importlib
import inspect
import pickle
import sys
import textwrap
import types
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import wrapt

import agent_otel
from agent_otel import semconv
from agent_otel._engine.wrappers import wrapped_of
from agent_otel._zerocode import patching
from agent_otel._zerocode.config import Config, parse_config
from agent_otel._zerocode.instrumentor import AgentOtelInstrumentor
from agent_otel._zerocode.patching import entry_errors, instrument, uninstrument


class Package:
    """A throwaway package on sys.path; its modules are forgotten afterwards."""

    def __init__(self, root: Path) -> None:
        self.name = "zc_" + uuid.uuid4().hex[:8]
        self.folder = root / self.name
        self.folder.mkdir()
        (self.folder / "__init__.py").write_text("")

    def write(self, module: str, source: str) -> str:
        (self.folder / f"{module}.py").write_text(textwrap.dedent(source))
        return f"{self.name}.{module}"

    def load(self, module: str) -> Any:
        return importlib.import_module(f"{self.name}.{module}")


@pytest.fixture
def package(tmp_path: Path) -> Iterator[Package]:
    sys.path.insert(0, str(tmp_path))
    pkg = Package(tmp_path)
    yield pkg
    uninstrument()
    sys.path.remove(str(tmp_path))
    for name in [name for name in sys.modules if name == pkg.name or name.startswith(pkg.name + ".")]:
        del sys.modules[name]


def config(text: str) -> Config:
    import tomllib

    return parse_config(tomllib.loads(textwrap.dedent(text)), "test.toml")


def names(otel: Any) -> list[str]:
    return sorted(span.name for span in otel.spans())


def test_module_imported_later_is_wrapped_and_from_import_binds_the_wrapper(otel: Any, package: Package) -> None:
    mod = package.write("mod", "def fn(x):\n    return x * 2\n")
    package.write("user", f"from {mod} import fn\n\ndef call():\n    return fn(3)\n")
    assert mod not in sys.modules
    instrument(config(f'[[tool]]\ntarget = "{mod}:fn"\n'))
    assert mod not in sys.modules  # nothing imported eagerly
    user = package.load("user")
    assert user.fn is package.load("mod").fn
    assert user.fn.__wrapped__.__name__ == "fn"
    assert user.call() == 6
    assert names(otel) == ["execute_tool fn"]
    span = otel.span("execute_tool fn")
    assert span.attributes["code.function.name"] == f"{mod}.fn"


def test_module_imported_already_is_wrapped_in_place_aliases_bound_earlier_keep_the_original(
        otel: Any, package: Package) -> None:
    mod = package.write("mod", "def fn(x):\n    return x + 1\n\nclass Agent:\n    def run(self):\n"
                               "        return 'ran'\n")
    package.write("early", f"from {mod} import fn, Agent\n")
    module, early = package.load("mod"), package.load("early")
    original = module.fn
    instrument(config(f'[[tool]]\ntarget = "{mod}:fn"\n[[agent]]\ntarget = "{mod}:Agent.run"\n'))
    assert module.fn is not original and module.fn.__wrapped__ is original
    assert early.fn is original  # bound before instrumentation: stays the original, untraced
    assert early.fn(1) == 2 and names(otel) == []
    assert module.fn(1) == 2 and names(otel) == ["execute_tool fn"]
    assert early.Agent().run() == "ran"  # methods are looked up on the class at call time: traced
    assert names(otel) == ["execute_tool fn", "invoke_agent Agent"]


def test_nested_classes_classmethods_staticmethods(otel: Any, package: Package) -> None:
    mod = package.write("mod", """
        class Outer:
            class Inner:
                def method(self, n):
                    return n

                @classmethod
                def build(cls, n):
                    return (cls.__name__, n)

                @staticmethod
                def pure(n):
                    return -n
    """)
    inner = package.load("mod").Outer.Inner
    originals = {name: inner.__dict__[name] for name in ("method", "build", "pure")}
    instrument(config(f"""
        [[tool]]
        target = "{mod}:Outer.Inner.method"
        name = {{ path = "args.n" }}
        [[tool]]
        target = "{mod}:Outer.Inner.build"
        name = "build"
        [[tool]]
        target = "{mod}:Outer.Inner.pure"
    """))
    assert isinstance(wrapped_of(inner.__dict__["build"]), classmethod)
    assert inner().method("m") == "m"
    assert inner.build(2) == ("Inner", 2)
    assert inner().build(3) == ("Inner", 3)
    assert inner.pure(4) == -4
    assert names(otel) == ["execute_tool build", "execute_tool build", "execute_tool m", "execute_tool pure"]
    uninstrument()
    assert {name: inner.__dict__[name] for name in originals} == originals


def test_a_configured_static_method_reads_as_its_function_to_inspect(otel: Any, package: Package) -> None:
    """A configured static method reads, from its class and its instances, as a function of its own shape, as
    plain: frameworks call a tool by what ``inspect`` says (a coroutine function is awaited)."""
    mod = package.write("mod", """
        class Tools:
            @staticmethod
            async def fetch(url):
                return "fetched " + url

            @staticmethod
            def rows(n):
                yield from range(n)

            @staticmethod
            async def arows(n):
                yield n

        class More(Tools):
            pass
    """)
    tools = package.load("mod").Tools
    instrument(config(f'[[tool]]\ntarget = ["{mod}:Tools.fetch", "{mod}:Tools.rows", "{mod}:Tools.arows"]\n'))
    assert isinstance(wrapped_of(tools.__dict__["fetch"]), staticmethod)  # the class holds the wrapped object
    for owner in (tools, tools()):
        assert inspect.iscoroutinefunction(owner.fetch) and inspect.isfunction(owner.fetch)
        assert inspect.isgeneratorfunction(owner.rows) and inspect.isasyncgenfunction(owner.arows)
    assert package.load("mod").More.fetch is tools.fetch is tools().fetch  # one object, as plain
    assert asyncio.run(tools.fetch("x")) == "fetched x" and list(tools().rows(2)) == [0, 1]
    assert names(otel) == ["execute_tool fetch", "execute_tool rows"]


def test_a_configured_callable_object_reads_as_its_call_to_inspect(otel: Any, package: Package) -> None:
    """A module-level callable object named by the config (a notifier, a webhook sender): its ``__call__`` reads as
    the object's own, an ``async def`` one as a coroutine function (Starlette and LangChain look there), and a call of
    the object is timed until its coroutine returns. Before, ``notify.__call__`` was the proxy's sync one, and a
    framework called the object as a sync function, its coroutine never awaited."""
    mod = package.write("mod", """
        import asyncio

        class Notifier:
            def __init__(self):
                self.sent = []

            async def __call__(self, message):
                await asyncio.sleep(0)
                self.sent.append(message)
                return len(self.sent)

        notify = Notifier()
    """)
    instrument(config(f'[[tool]]\ntarget = "{mod}:notify"\nname = "notify"\n'))
    notify = package.load("mod").notify
    assert isinstance(notify, wrapt.ObjectProxy | wrapt.BaseObjectProxy)
    assert inspect.iscoroutinefunction(notify.__call__) and not inspect.iscoroutinefunction(notify)
    assert asyncio.run(notify("one")) == 1 and asyncio.run(notify.__call__("two")) == 2
    assert notify.sent == ["one", "two"]
    assert names(otel) == ["execute_tool notify", "execute_tool notify"]


def test_a_decorated_function_also_named_in_the_config_is_wrapped_once_by_its_decorator(
        otel: Any, package: Package) -> None:
    """The code's decorator wins over a config entry for the same function (the operator did not know the code
    was decorated): one span, the decorator's, per call; so for a decorated override in a subclass of a base
    configured with ``subclasses = true``, whether the subclass exists before or after instrumenting, and
    when it calls ``super().run()`` (the base's wrapper runs inside the decorator's call, as for an override
    the config wrapped)."""
    mod = package.write("mod", """
        import agent_otel

        @agent_otel.tool("search")
        def search(q):
            return "results for " + q

        @agent_otel.tool("fetch")
        async def fetch(q):
            return q

        class Base:
            def run(self, x):
                return {"success": True}

            @staticmethod
            @agent_otel.tool("helper")
            def helper(x):
                return x

        class Early(Base):
            @agent_otel.agent(name="early")
            def run(self, x):
                return super().run(x)  # inside the decorator's call: no span of the config's
    """)
    module = package.load("mod")
    instrument(config(f"""
        [[tool]]
        target = ["{mod}:search", "{mod}:fetch", "{mod}:Base.helper"]
        [[agent]]
        target = "{mod}:Base.run"
        subclasses = true
    """))

    class Late(module.Base):
        @agent_otel.agent(name="late")
        def run(self, x: int) -> dict[str, bool]:
            return cast(dict[str, bool], super().run(x))

    assert module.search("q") == "results for q" and asyncio.run(module.fetch("f")) == "f"
    assert module.Base.helper(1) == 1
    assert module.Early().run(1) == {"success": True} and Late().run(1) == {"success": True}
    assert names(otel) == ["execute_tool fetch", "execute_tool helper", "execute_tool search", "invoke_agent early",
                           "invoke_agent late"]
    assert module.Base().run(1) == {"success": True}  # the undecorated base is the config's
    assert "invoke_agent Base" in names(otel)


@pytest.mark.parametrize(("decorator", "outer"), [
    ('agent_otel.job(type="batch")', "invoke_workflow batch"),
    ('agent_otel.tool("lookup")', "execute_tool lookup"),
    ('agent_otel.conversation("c-1")', None),
])
def test_an_override_decorated_as_another_kind_calling_super_keeps_the_configured_call(
        otel: Any, package: Package, decorator: str, outer: str | None) -> None:
    """A decorated override is the entry's call only when its decorator is of the entry's kind: a ``@job``,
    ``@tool`` or ``@conversation`` override calling ``super().run()`` of a configured agent is another call,
    and the agent inside it is counted (it was lost: the override's calls marked the agent's family)."""
    mod = package.write("mod", f"""
        import agent_otel

        class Base:
            def run(self, x):
                return {{"success": True}}

        class Sub(Base):
            @{decorator}
            def run(self, x):
                return super().run(x)
    """)
    module = package.load("mod")
    instrument(config(f'[[agent]]\ntarget = "{mod}:Base.run"\nsubclasses = true\n'))
    assert module.Sub().run(1) == {"success": True}
    assert names(otel) == sorted(["invoke_agent Base", *([outer] if outer else [])])


def test_a_call_through_another_target_of_the_same_entry_on_the_same_object_is_that_call(
        otel: Any, package: Package) -> None:
    """One entry over a sync/async pair where one runs through the other (``invoke`` through ``self.stream``,
    as LangGraph's): one run, one span, by the outermost call. A call on another object (a subgraph) is its
    own call, as is a call of another entry; a function, having no object, counts every call (recursion)."""
    mod = package.write("mod", """
        class Graph:
            def __init__(self, name, sub=None):
                self.name, self.sub = name, sub

            def invoke(self, n):
                return list(self.stream(n))[-1]

            def stream(self, n):
                if self.sub is not None:
                    yield self.sub.invoke(n)
                yield n + 1

            async def ainvoke(self, n):
                return [chunk async for chunk in self.astream(n)][-1]

            async def astream(self, n):
                yield n + 2

            def describe(self):
                return self.invoke(0)

        def count_down(n):
            return n if n == 0 else count_down(n - 1)
    """)
    module = package.load("mod")
    instrument(config(f"""
        [[agent]]
        target = ["{mod}:Graph.invoke", "{mod}:Graph.stream", "{mod}:Graph.ainvoke", "{mod}:Graph.astream"]
        name = {{ path = "self.name" }}
        [[tool]]
        target = "{mod}:Graph.describe"
        [[tool]]
        target = "{mod}:count_down"
    """))
    graph = module.Graph("outer", module.Graph("inner"))
    assert graph.invoke(1) == 2 and list(graph.stream(1)) == [2, 2]
    assert asyncio.run(graph.ainvoke(1)) == 3
    assert names(otel) == ["invoke_agent inner", "invoke_agent inner", "invoke_agent outer", "invoke_agent outer",
                           "invoke_agent outer"]
    otel.reset()
    assert module.Graph.invoke(module.Graph("alone"), 1) == 2  # through the class, the object first
    assert graph.describe() == 1  # another entry in between: still this entry's call on the object
    assert names(otel) == ["execute_tool describe", "invoke_agent alone", "invoke_agent inner", "invoke_agent outer"]
    otel.reset()
    assert module.count_down(2) == 0
    assert names(otel) == ["execute_tool count_down"] * 3


def test_a_task_or_thread_a_call_starts_on_the_same_object_is_a_call_of_its_own(otel: Any, package: Package) -> None:
    """It inherits the call's context, so it was taken for a call inside it and not recorded: an agent that
    schedules its follow-up turn as a task, or hands it to a thread, lost that turn."""
    mod = package.write("mod", """
        import asyncio, threading

        class Agent:
            def __init__(self):
                self.pending, self.threads = [], []

            async def run(self, task):
                if task == "first":
                    self.pending.append(asyncio.get_running_loop().create_task(self.run("follow-up")))
                await asyncio.sleep(0)
                return task

            def step(self, task):
                if task == "first":
                    thread = threading.Thread(target=self.step, args=("follow-up",))
                    self.threads.append(thread)
                    thread.start()
                    thread.join()
                return task
    """)
    module = package.load("mod")
    instrument(config(f"""
        [[agent]]
        target = ["{mod}:Agent.run", "{mod}:Agent.step"]
        name = {{ path = "args.task" }}
    """))
    agent = module.Agent()

    async def main() -> list[str]:
        return [await agent.run("first"), *await asyncio.gather(*agent.pending)]

    assert asyncio.run(main()) == ["first", "follow-up"]
    assert agent.step("first") == "first"
    assert sorted(names(otel)) == ["invoke_agent first", "invoke_agent first", "invoke_agent follow-up",
                                   "invoke_agent follow-up"]


def test_a_sync_call_running_its_async_twin_in_a_loop_of_its_own_is_one_call(otel: Any, package: Package) -> None:
    """The sync half of a sync/async pair that runs the async one in an event loop of its own, in its thread
    (pydantic-ai's ``run_sync``: ``run_until_complete(self.run(...))``; ``asyncio.run``; ``trio.run``), waits for it
    there: the run is inside the call, one call. Its task was taken for a follow-up the call started (two
    invocations a run)."""
    mod = package.write("mod", """
        import asyncio, trio

        class Agent:
            keep = None

            async def run(self, task):
                if task == "keep":
                    self.keep()
                if task == "first":  # a follow-up turn, a task of its own: a call of its own, as under run()
                    await asyncio.get_running_loop().create_task(self.run("follow-up"))
                await asyncio.sleep(0)
                return task

            async def delegate(self, task, other):  # another agent's sync call, in a thread with this task's context
                return await asyncio.to_thread(other.run_sync, task)

            def delegate_sync(self, task, other):
                return asyncio.run(self.delegate(task, other))

            async def consult(self, task, outer):
                await outer.run("back-to-outer")  # the outer agent's async call, inside its sync call
                return await asyncio.get_running_loop().create_task(self.run("child"))  # a follow-up task

            def consult_sync(self, task, outer):
                return asyncio.run(self.consult(task, outer))

            def supervise(self, task, sub):
                sub.consult_sync(task, self)
                return task

            async def fan(self, task, *more):
                return await asyncio.gather(*(self.run(each) for each in (task, *more)))

            def fan_sync(self, task, *more):
                return asyncio.run(self.fan(task, *more))

            async def trio_run(self, task):
                await trio.sleep(0)
                return task

            def run_sync(self, task):
                loop = asyncio.new_event_loop()
                try:
                    return loop.run_until_complete(self.run(task))
                finally:
                    loop.close()

            def run_with_asyncio_run(self, task):
                return asyncio.run(self.run(task))

            def run_with_trio(self, task):
                return trio.run(self.trio_run, task)
    """)
    module = package.load("mod")
    instrument(config(f"""
        [[agent]]
        target = ["{mod}:Agent.run", "{mod}:Agent.trio_run", "{mod}:Agent.run_sync", "{mod}:Agent.run_with_asyncio_run",
                  "{mod}:Agent.run_with_trio", "{mod}:Agent.fan", "{mod}:Agent.fan_sync", "{mod}:Agent.delegate",
                  "{mod}:Agent.delegate_sync", "{mod}:Agent.consult", "{mod}:Agent.consult_sync",
                  "{mod}:Agent.supervise"]
        name = {{ path = "args.task" }}
    """))
    agent = module.Agent()
    assert (agent.run_sync("a"), agent.run_with_asyncio_run("b"), agent.run_with_trio("c")) == ("a", "b", "c")
    assert sorted(names(otel)) == ["invoke_agent a", "invoke_agent b", "invoke_agent c"]
    otel.reset()
    # the tasks the call's run starts are calls of their own, as under the async call: a follow-up turn, a fan-out
    assert agent.run_sync("first") == "first"
    assert sorted(names(otel)) == ["invoke_agent first", "invoke_agent follow-up"]
    otel.reset()
    assert agent.fan_sync("x", "y") == ["x", "y"]
    assert sorted(names(otel)) == ["invoke_agent x", "invoke_agent x", "invoke_agent y"]  # the fan-out's, one a task
    otel.reset()
    assert asyncio.run(agent.fan("x", "y")) == ["x", "y"]
    assert sorted(names(otel)) == ["invoke_agent x", "invoke_agent x", "invoke_agent y"]  # as under the async call
    otel.reset()
    # the other agent's sync call, run from the first's task (a context copied from it): its own loop's task is its own
    assert agent.delegate_sync("lead", module.Agent()) == "lead"
    assert sorted(names(otel)) == ["invoke_agent lead", "invoke_agent lead"]
    otel.reset()
    # an agent's sync call inside another's, in the same thread: the inner one's run calls back into the outer agent
    # (inside its call) and starts a follow-up task, a call of its own
    outer = module.Agent()
    assert outer.supervise("top", module.Agent()) == "top"
    assert sorted(names(otel)) == ["invoke_agent child", "invoke_agent top", "invoke_agent top"]
    otel.reset()
    # a context the program kept from one sync call's run (a callback's), run again later for another agent's
    kept: list[tuple[contextvars.Context, object]] = []  # (the task too: a new one may not take its id)
    module.Agent.keep = lambda self: kept.append((contextvars.copy_context(), asyncio.current_task()))
    assert agent.run_sync("keep") == "keep"
    assert kept[0][0].run(module.Agent().run_sync, "later") == "later"
    assert sorted(names(otel)) == ["invoke_agent keep", "invoke_agent later"]


def test_a_trio_task_a_call_starts_on_the_same_object_is_a_call_of_its_own(otel: Any, package: Package) -> None:
    """trio's tasks share one thread, which was all that told calls apart outside asyncio: a turn started in a
    nursery by a configured call on the same object was taken for a call inside it, and not recorded (1 span of 3,
    where the same program on asyncio gives 3)."""
    import trio

    mod = package.write("mod", """
        import trio

        class Agent:
            async def turn(self, n):
                if n:
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self.turn, n - 1)
                await trio.sleep(0)
                return n
    """)
    module = package.load("mod")
    instrument(config(f'[[agent]]\ntarget = "{mod}:Agent.turn"\nname = {{ path = "args.n" }}\n'))
    assert trio.run(module.Agent().turn, 2) == 2
    assert sorted(names(otel)) == ["invoke_agent 0", "invoke_agent 1", "invoke_agent 2"]
    assert sum(point.count for point in otel.points(semconv.AGENT_DURATION.name)) == 3
    otel.reset()

    async def guest() -> Any:  # trio's guest mode: its tasks run in an asyncio loop's callbacks
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        trio.lowlevel.start_guest_run(module.Agent().turn, 2, run_sync_soon_threadsafe=loop.call_soon_threadsafe,
                                      done_callback=done.set_result)
        return (await done).unwrap()

    assert asyncio.run(guest()) == 2
    assert sorted(names(otel)) == ["invoke_agent 0", "invoke_agent 1", "invoke_agent 2"]


def test_trio_named_outside_a_task_is_no_task_and_raises_nothing() -> None:
    """trio names itself to sniffio around its scheduler's steps, some of which run outside any task (in guest mode,
    its tick): ``trio.lowlevel.current_task()`` raises there, and the configured call raised it."""
    import sniffio
    import trio  # noqa: F401  imported, as by a program on trio

    from agent_otel._zerocode.patching import _current_task

    named, sniffio.thread_local.name = sniffio.thread_local.name, "trio"
    try:
        assert _current_task() is None
    finally:
        sniffio.thread_local.name = named


def test_a_sync_override_returning_the_bases_coroutine_is_one_call_in_a_trio_task(
        otel: Any, package: Package) -> None:
    """The coroutine a sync override returns, started as a trio task: the base's call runs in that task."""
    import trio

    agent = thin_override_of_a_configured_base(package)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(agent.solve, 1)
        assert await agent.solve(2) == 2

    trio.run(main)
    assert names(otel) == ["invoke_agent Thin"] * 2


def test_subclasses_below_a_class_whose_own_init_subclass_does_not_call_super_are_wrapped(
        otel: Any, package: Package) -> None:
    """A plugin registry's ``__init_subclass__`` that does not call ``super()`` hid the classes defined below it from
    the hook on the base: their overrides recorded nothing. So does one defined after ``instrument()``, for the
    classes below it; and ``uninstrument()`` puts each class's own hook back."""
    mod = package.write("mod", """
        class BaseAgent:
            def solve(self, x):
                return "base"

        class Plugin(BaseAgent):
            registry = []

            def __init_subclass__(cls, **kwargs):  # no super(): the base's hook is never reached
                Plugin.registry.append(cls.__name__)
    """)
    module = package.load("mod")
    plugins_hook = module.Plugin.__dict__["__init_subclass__"]
    instrument(config(f'[[agent]]\ntarget = "{mod}:BaseAgent.solve"\nsubclasses = true\n'))

    class ViaPlugin(module.Plugin):
        def solve(self, x: object) -> str:
            return "via-plugin"

    class Registry(module.BaseAgent):
        def __init_subclass__(cls, **kwargs: Any) -> None:  # defined after instrument(), no super() either
            cls.registered = True

    class BelowRegistry(Registry):
        def solve(self, x: object) -> str:
            return "below"

    assert [ViaPlugin().solve(1), BelowRegistry().solve(1)] == ["via-plugin", "below"]
    assert module.Plugin.registry == ["ViaPlugin"] and BelowRegistry.registered is True  # their hooks ran, as plain
    assert sorted(names(otel)) == ["invoke_agent BelowRegistry", "invoke_agent ViaPlugin"]
    uninstrument()
    assert module.Plugin.__dict__["__init_subclass__"] is plugins_hook


def test_subclass_overrides_existing_and_later_defined_each_attributed_to_its_class(
        otel: Any, package: Package) -> None:
    mod = package.write("mod", """
        class Base:
            def __init_subclass__(cls, tag=None, **kwargs):
                super().__init_subclass__(**kwargs)
                cls.tag = tag

            async def solve(self, n):
                return n

        class Early(Base, tag="early"):
            async def solve(self, n):
                return n + 1

        class Silent(Base):
            pass
    """)
    module = package.load("mod")
    original_hook = module.Base.__dict__["__init_subclass__"]
    instrument(config(f'[[agent]]\ntarget = "{mod}:Base.solve"\nsubclasses = true\n'
                      'task_type = { path = "args.n" }\n'))

    class Late(module.Base, tag="late"):
        async def solve(self, n):
            return await super().solve(n) * 10  # one span for the call, not two

    class Later(Late):
        async def solve(self, n):
            return n

    async def main() -> list[int]:
        return [await cls().solve(1) for cls in (module.Base, module.Early, module.Silent, Late, Later)]

    assert asyncio.run(main()) == [1, 2, 1, 10, 1]
    assert Late.tag == "late" and module.Early.tag == "early"  # the base's own __init_subclass__ still runs
    spans = {span.name: span for span in otel.spans()}
    assert sorted(span.name for span in otel.spans()) == [
        "invoke_agent Base", "invoke_agent Base", "invoke_agent Early", "invoke_agent Late", "invoke_agent Later"]
    assert spans["invoke_agent Early"].attributes["code.function.name"] == f"{mod}.Early.solve"
    assert spans["invoke_agent Late"].attributes["code.function.name"] == f"{__name__}.{Late.__qualname__}.solve"
    assert spans["invoke_agent Late"].attributes[semconv.AGENT_TASK_TYPE] == "1"
    uninstrument()
    assert module.Base.__dict__["__init_subclass__"] is original_hook
    assert not hasattr(module.Early.__dict__["solve"], "__wrapped__")
    assert not hasattr(Late.__dict__["solve"], "__wrapped__")

    class AfterUninstrument(module.Base):
        async def solve(self, n):
            return n

    assert not hasattr(AfterUninstrument.__dict__["solve"], "__wrapped__")


@pytest.mark.parametrize("subclasses", [True, False])
def test_a_subclass_that_does_not_override_keeps_the_base_method_object(
        otel: Any, package: Package, subclasses: bool) -> None:
    # frameworks detect overrides with `type(self).method is not Base.method`; that must hold as in plain Python
    mod = package.write("mod", """
        class Base:
            kind = "base"

            def solve(self, n):
                return n

            @staticmethod
            def helper(n):
                return -n

        class Early(Base):
            kind = "early"

        class Mid(Base):
            def solve(self, n):
                return n + 1

        class Deep(Mid):
            pass
    """)
    module = package.load("mod")
    instrument(config(f'[[agent]]\ntarget = "{mod}:Base.solve"\nsubclasses = {str(subclasses).lower()}\n'
                      'task_type = { path = "self.kind" }\n'
                      f'[[tool]]\ntarget = "{mod}:Base.helper"\nsubclasses = {str(subclasses).lower()}\n'))
    Base, Early, Mid, Deep = module.Base, module.Early, module.Mid, module.Deep

    class Late(Base):
        kind = "late"

    class LateDeep(Mid):
        pass

    assert Base.solve is Base.solve
    assert Early.solve is Base.solve and Late.solve is Base.solve
    assert Deep.solve is Mid.solve and LateDeep.solve is Mid.solve
    assert Mid.solve is not Base.solve  # an override stays an override
    assert [cls for cls in (Base, Early, Late, Mid, Deep, LateDeep) if cls.solve is not Base.solve] == [
        Mid, Deep, LateDeep]
    assert Late().solve.__func__ is Base.solve  # as plain: the function the class holds (another override check)
    # still instrumented, called on an instance or through the class with the instance first
    assert Late().solve(1) == 1 and Base.solve(Late(), 2) == 2 and Early.solve(Early(), 3) == 3
    assert [span.attributes[semconv.AGENT_TASK_TYPE] for span in otel.spans()] == ["late", "late", "early"]
    assert Early.helper is Base.helper and Late().helper is Base.helper  # a static method: one object, as plain
    assert Early.helper(1) == -1 and Late().helper(2) == -2
    assert [span.name for span in otel.spans()][-2:] == ["execute_tool helper", "execute_tool helper"]
    assert Late().solve.__func__(Late(), 4) == 4  # and calling it is traced
    assert otel.spans()[-1].attributes[semconv.AGENT_TASK_TYPE] == "late"
    uninstrument()
    assert Early.solve is Base.solve and Late.solve is Base.solve and Base.solve is Base.__dict__["solve"]


@pytest.mark.parametrize("subclasses", [True, False])
def test_a_cached_method_reads_from_its_class_as_itself(otel: Any, package: Package, subclasses: bool) -> None:
    """An ``lru_cache`` method reads from its class as itself, as a function does: its wrapper read as a new object
    each time (``Repo.lookup is Repo.lookup`` False), and ``Sub.lookup is Repo.lookup`` failed for a subclass that
    does not override it (the decorator's wrapper held; the config's did not)."""
    mod = package.write("mod", """
        import functools

        class Repo:
            @functools.lru_cache(maxsize=None)
            def lookup(self, key):
                return key.upper()

        class Sub(Repo):
            pass
    """)
    module = package.load("mod")
    instrument(config(f'[[tool]]\ntarget = "{mod}:Repo.lookup"\nsubclasses = {str(subclasses).lower()}\n'))
    Repo, Sub = module.Repo, module.Sub
    assert Repo.lookup is Repo.lookup and Sub.lookup is Repo.lookup
    assert pickle.loads(pickle.dumps(Repo.lookup)) is Repo.lookup
    repo = Repo()
    assert repo.lookup("a") == "A" and Repo.lookup(repo, "a") == "A"  # the second from the cache, traced all the same
    assert Repo.lookup.cache_info().hits == 1
    assert [span.name for span in otel.spans()] == ["execute_tool lookup", "execute_tool lookup"]
    uninstrument()
    assert type(Repo.__dict__["lookup"]) is functools._lru_cache_wrapper


def test_a_target_under_the_programs_own_decorator_answers_its_wrapped_as_the_plain_one_does(
        otel: Any, package: Package) -> None:
    """``f.__wrapped__(...)`` is the usual way past a program's decorator (a retry, a cache; tests use it): a configured
    target answered with ``f`` itself, so the call went through that decorator again, or was served from the cache."""
    mod = package.write("mod", """
        import functools

        def _lookup(key):
            return key.upper()

        @functools.wraps(_lookup)
        def lookup(key):
            return ("via-wrapper", _lookup(key))

        computed = []

        @functools.cache
        def expensive(n):
            computed.append(n)
            return 2 * n
    """)
    module = package.load("mod")
    plain_lookup, plain_cache = module.lookup, module.expensive
    instrument(config(f'[[tool]]\ntarget = ["{mod}:lookup", "{mod}:expensive"]\n'))
    assert module.lookup is not plain_lookup  # wrapped
    assert module.lookup.__wrapped__ is plain_lookup.__wrapped__ and module.lookup.__wrapped__("a") == "A"
    assert module.lookup("a") == ("via-wrapper", "A")
    assert module.expensive(1) == 2 and module.expensive.__wrapped__(1) == 2 and module.computed == [1, 1]
    assert plain_cache.cache_info().hits == 0
    assert inspect.unwrap(module.lookup) is plain_lookup.__wrapped__
    assert inspect.signature(module.lookup) == inspect.signature(plain_lookup)
    assert [span.name for span in otel.spans()] == ["execute_tool lookup", "execute_tool expensive"]


def test_a_callable_attribute_that_does_not_bind_has_no_object_first(otel: Any, package: Package) -> None:
    """A callable class attribute whose ``__get__`` gives itself, from an instance too (a registry's step object):
    taken for a method once it read as itself from its class, its first argument was read as the object, and an
    ``args`` path found nothing."""
    mod = package.write("mod", """
        class Step:
            def __get__(self, obj, owner=None):
                return self

            def __call__(self, label):
                return "ran " + label

        class Pipeline:
            step = Step()
    """)
    module = package.load("mod")
    instrument(config(f'[[tool]]\ntarget = "{mod}:Pipeline.step"\n'))
    assert module.Pipeline.step is module.Pipeline.step  # reads as itself, as the object does
    assert patching._configured_handler_of(module.Pipeline.__dict__["step"]).method is False  # no object first
    assert module.Pipeline.step("fetch") == "ran fetch" and module.Pipeline().step("parse") == "ran parse"
    assert [span.name for span in otel.spans()] == ["execute_tool step"] * 2
    assert entry_errors() == {}


_INHERITING = """
    import agent_otel

    class Base:
        def run(self, n):
            return n

        @agent_otel.tool("decorated")
        def checked(self):
            return True

        @classmethod
        def make(cls, n):
            return n * 10

    class Named(Base):
        pass

    class Deeper(Named):
        pass

    class Other(Base):
        pass
"""


def test_a_target_naming_a_subclass_that_inherits_the_method_keeps_it_the_bases_and_records_that_subclass(
        otel: Any, package: Package) -> None:
    """Wrapped on the subclass, ``Named.run is Base.run`` no longer held: LangChain's ``BaseLLM.astream`` then
    took ``FakeListLLM._stream`` (a target naming the inherited ``BaseLLM._stream``) for an override and
    raised NotImplementedError. The wrapper is on the class that defines it, and records only the calls on
    the named class, its instances and subclasses, as the wrapper on the subclass did."""
    mod = package.write("mod", _INHERITING)
    module = package.load("mod")
    original_run = module.Base.__dict__["run"]
    instrument(config(f'[[agent]]\ntarget = ["{mod}:Named.run", "{mod}:Named.checked"]\n'
                      f'[[tool]]\ntarget = "{mod}:Named.make"\n'))
    Base, Named, Deeper, Other = module.Base, module.Named, module.Deeper, module.Other
    assert Named.run is Base.run and Deeper.run is Base.run and Other.run is Base.run
    assert "run" not in Named.__dict__ and "make" not in Named.__dict__
    assert [Named().run(1), Deeper().run(2), Base.run(Named(), 3), Base().run(4), Other().run(5)] == [1, 2, 3, 4, 5]
    assert [span.name for span in otel.spans()] == ["invoke_agent Named"] * 3
    assert [Named.make(1), Deeper.make(2), Named().make(3), Base.make(4), Other.make(5)] == [10, 20, 30, 40, 50]
    assert [span.name for span in otel.spans()][3:] == ["execute_tool make"] * 3
    assert Named().checked() is True  # decorated in the code: its decorator's call, once
    assert [span.name for span in otel.spans()][6:] == ["execute_tool decorated"]
    assert entry_errors() == {}
    uninstrument()
    assert module.Base.__dict__["run"] is original_run and "run" not in module.Named.__dict__


def test_langchains_override_checks_hold_for_a_fake_llm_named_by_methods_it_inherits(otel: Any) -> None:
    """The real framework: ``BaseLLM.astream`` streams through ``_stream`` only when ``type(self)._stream is
    not BaseLLM._stream``; otherwise it answers with one chunk from ``ainvoke``."""
    from langchain_core.language_models.fake import FakeListLLM
    from langchain_core.language_models.llms import LLM, BaseLLM

    instrument(config('[[provider]]\nprovider = "fake"\ntarget = ['
                      '"langchain_core.language_models.fake:FakeListLLM._stream", '
                      '"langchain_core.language_models.fake:FakeListLLM._generate"]\n'))
    try:
        assert FakeListLLM._stream is BaseLLM._stream and FakeListLLM._generate is LLM._generate
        llm = FakeListLLM(responses=["hello", "again"])

        async def stream() -> list[str]:
            return [chunk async for chunk in llm.astream("hi")]

        assert asyncio.run(stream()) == ["hello"]  # NotImplementedError from BaseLLM._stream before
        assert otel.spans() == []  # through _agenerate, which the configuration does not name
        assert llm.invoke("hi") == "again"
        assert [span.attributes[semconv.GEN_AI_PROVIDER_NAME] for span in otel.spans()] == ["fake"]
        assert entry_errors() == {}
    finally:
        uninstrument()
    assert "_stream" in BaseLLM.__dict__ and not hasattr(BaseLLM.__dict__["_stream"], "__wrapped__")


@pytest.mark.parametrize("named_first", [True, False])
def test_entries_naming_a_method_and_a_subclass_that_inherits_it_each_record_their_own_calls(
        otel: Any, package: Package, named_first: bool) -> None:
    mod = package.write("mod", _INHERITING)
    module = package.load("mod")
    entries = [f'[[agent]]\ntarget = "{mod}:Named.run"\nname = "named"\n',
               f'[[agent]]\ntarget = "{mod}:Base.run"\nname = "base"\n']
    instrument(config("".join(entries if named_first else entries[::-1])))
    Base, Named, Deeper, Other = module.Base, module.Named, module.Deeper, module.Other
    assert Named.run is Base.run and Deeper.run is Base.run
    assert [Base().run(1), Named().run(2), Other().run(3), Deeper().run(4)] == [1, 2, 3, 4]
    assert [span.name for span in otel.spans()] == [
        "invoke_agent base", "invoke_agent named", "invoke_agent base", "invoke_agent named"]
    assert entry_errors() == {}


def _named_twice(package: Package, imported: str, source: str, entries: str) -> tuple[str, str]:
    """A module defining ``fn`` with ``source`` and a package module re-exporting it, imported before or after
    ``entries`` (their two targets: the re-export's, the defining module's) are instrumented; their names."""
    mod = package.write("mod", source)
    reexport = package.write("api", "from .mod import fn\n")
    if imported == "before":
        package.load("api")
    instrument(config(entries.format(reexport, mod)))
    package.load("api")
    return mod, reexport


@pytest.mark.parametrize("imported", ["before", "after"])
def test_a_function_named_twice_is_recorded_once_and_the_second_name_is_reported(
        otel: Any, package: Package, imported: str) -> None:
    """A package's re-export and the module defining it name one function: the second entry was ignored
    without a word, so ``agent-otel check`` showed it ok while its options never applied. Imported after, the
    module that defines it finishes importing first: its entry, the second, recorded the calls (and the first was
    the one reported), where ``agent-otel check`` says the first records them."""
    mod, reexport = _named_twice(package, imported, "def fn(x):\n    return x + 1\n",
                                 '[[tool]]\ntarget = "{}:fn"\nname = "first"\n'
                                 '[[tool]]\ntarget = "{}:fn"\nname = "second"\n')
    assert package.load("mod").fn(1) == 2 and package.load("api").fn(2) == 3
    assert [span.name for span in otel.spans()] == ["execute_tool first"] * 2
    assert entry_errors() == {f"{mod}:fn": f"fn is already wrapped for tool[0] ({reexport}:fn); name a function once"}


@pytest.mark.parametrize("imported", ["before", "after"])
def test_two_names_in_one_entrys_list_are_one_target_wrapped_once_without_an_error(
        otel: Any, package: Package, imported: str) -> None:
    """``target = ["api:fn", "mod:fn"]`` (or ``["__main__:work", "app:work"]``, for a script run or imported): one
    entry's options, meant for the function whichever name reaches it. The second name was reported as naming it twice
    (a warning, an error counted, in every process), while `agent-otel check` said ok."""
    _named_twice(package, imported, "def fn(x):\n    return x + 1\n", '[[tool]]\ntarget = ["{}:fn", "{}:fn"]\n')
    assert package.load("mod").fn(1) == 2 and package.load("api").fn(2) == 3
    assert [span.name for span in otel.spans()] == ["execute_tool fn"] * 2
    assert entry_errors() == {}


@pytest.mark.parametrize("imported", ["before", "after"])
def test_of_two_entries_naming_one_function_the_first_ones_options_apply(
        otel: Any, package: Package, imported: str) -> None:
    """The first entry's ``stream = false`` (the returned generator is the program's own, the call ends when it
    returns): the wrapper the second entry had made first kept that entry's options."""
    mod, _ = _named_twice(package, imported, "def items():\n    yield 1\n\n\ndef fn():\n    return items()\n",
                          '[[provider]]\ntarget = "{}:fn"\nprovider = "openai"\nmodel = "first"\nstream = false\n'
                          '[[provider]]\ntarget = "{}:fn"\nprovider = "openai"\nmodel = "second"\n')
    generator = package.load("api").fn()
    assert generator.gi_code.co_filename.endswith("mod.py")  # the program's own, not agent-otel's
    assert list(generator) == [1]
    assert [span.name for span in otel.spans()] == ["chat first"]
    assert list(entry_errors()) == [f"{mod}:fn"]


def test_a_later_entry_that_wrapped_the_subclasses_first_keeps_them_and_each_call_is_recorded_once(
        otel: Any, package: Package) -> None:
    """The first entry taking the method over left the later one's subclass wrappers in place: a subclass's call
    recorded both entries, its ``super().run()`` a second span."""
    mod = package.write("mod", "class Base:\n    def run(self, x):\n        return x\n\n\n"
                               "class Early(Base):\n    def run(self, x):\n        return super().run(x) + 1\n")
    reexport = package.write("api", "from .mod import Base, Early\n")
    instrument(config(f'[[tool]]\ntarget = "{reexport}:Base.run"\nname = "first"\n'
                      f'[[tool]]\ntarget = "{mod}:Base.run"\nname = "second"\nsubclasses = true\n'))
    module = package.load("api")
    assert [module.Base().run(1), module.Early().run(1)] == [1, 2]
    assert [span.name for span in otel.spans()] == ["execute_tool second"] * 2
    assert list(entry_errors()) == [f"{reexport}:Base.run"]


def test_instrumented_again_a_function_that_re_exports_hold_is_recorded_through_each_of_them(
        otel: Any, package: Package) -> None:
    """After ``uninstrument()``, the re-exports still hold the first run's wrapper (a pass-through): instrumented
    again, it was taken for this run's, and the calls through the re-exports were not recorded."""
    mod = package.write("mod", "def fn(x):\n    return x + 1\n")
    names = [package.write("api", "from .mod import fn\n"), mod, package.write("other", "from .mod import fn\n")]
    entries = config("".join(f'[[tool]]\ntarget = "{name}:fn"\nname = "{label}"\n'
                             for name, label in zip(names, ("first", "second", "third"), strict=True)))
    instrument(entries)
    modules = [package.load(name) for name in ("api", "mod", "other")]
    uninstrument()
    instrument(entries)
    assert [module.fn(1) for module in modules] == [2, 2, 2]
    assert [span.name for span in otel.spans()] == ["execute_tool first"] * 3
    assert sorted(entry_errors()) == sorted([f"{mod}:fn", f"{names[2]}:fn"])


def test_a_subclass_that_makes_the_method_no_method_keeps_it_as_it_made_it(otel: Any, package: Package) -> None:
    """``subclasses = true`` wrapped whatever a subclass defined under the name: ``on_event = None`` became a
    wrapper (``is None`` false), a read-only property lost its data-descriptor-ness (an assignment passed), a
    ``cached_property`` gave a new bound wrapper on each read."""
    mod = package.write("mod", """
        import functools

        class Plugin:
            def on_event(self, event):
                return event

            def run(self):
                return "base"

        class Disabled(Plugin):
            on_event = None

        class WithProperty(Plugin):
            @property
            def run(self):
                return "property"

        class Overrides(Plugin):
            def run(self):
                return "override"
    """)
    module = package.load("mod")
    instrument(config(f'[[tool]]\ntarget = ["{mod}:Plugin.on_event", "{mod}:Plugin.run"]\nsubclasses = true\n'))

    class LaterDisabled(module.Plugin):
        on_event = None

    class LaterCached(module.Plugin):
        @functools.cached_property
        def run(self) -> str:
            return "cached"

    assert module.Disabled.on_event is None and LaterDisabled.on_event is None
    assert inspect.isdatadescriptor(module.WithProperty.__dict__["run"])
    with pytest.raises(AttributeError):
        module.WithProperty().run = "shadow"
    cached = LaterCached()
    assert cached.run == "cached" and cached.run is cached.run
    assert module.WithProperty().run == "property"
    assert module.Overrides().run() == "override" and module.Plugin().on_event(1) == 1  # still wrapped:
    assert [span.name for span in otel.spans()] == ["execute_tool run", "execute_tool on_event"]


def test_sync_function_returning_a_coroutine_is_timed_to_completion(otel: Any, package: Package) -> None:
    mod = package.write("mod", """
        import asyncio

        class Result:
            success = False
            confidence = 0.25

        async def _work(gate):
            await gate.wait()
            return Result()

        def start(gate):
            return _work(gate)
    """)
    instrument(config(f'[[agent]]\ntarget = "{mod}:start"\nname = "starter"\n'))
    start = package.load("mod").start

    async def main() -> None:
        gate = asyncio.Event()
        pending = start(gate)
        assert otel.spans() == []  # returned, but not complete: the span is still open
        task = asyncio.ensure_future(pending)
        await asyncio.sleep(0)
        assert otel.spans() == []
        gate.set()
        await task

    asyncio.run(main())
    span = otel.span("invoke_agent starter")
    assert span.attributes[semconv.AGENT_OUTCOME] == "failure"
    assert span.attributes[semconv.AGENT_CONFIDENCE] == 0.25


def test_uninstrument_restores_every_original_and_leaves_escaped_wrappers_inert(otel: Any, package: Package) -> None:
    mod = package.write("mod", "def fn():\n    return 1\n\nclass C:\n    def m(self):\n        return 2\n")
    module = package.load("mod")
    fn, method = module.fn, module.C.__dict__["m"]
    instrument(config(f'[[tool]]\ntarget = "{mod}:fn"\n[[tool]]\ntarget = "{mod}:C.m"\n'))
    escaped = module.fn  # bound while instrumented
    assert escaped() == 1 and len(otel.spans()) == 1
    uninstrument()
    assert module.fn is fn and module.C.__dict__["m"] is method
    assert patching.wrapped_objects() == []
    assert escaped() == 1 and module.C().m() == 2
    assert len(otel.spans()) == 1  # nothing new: the escaped wrapper only passes through
    instrument(config(f'[[tool]]\ntarget = "{mod}:fn"\n'))  # and instrumenting again works
    assert module.fn() == 1 and len(otel.spans()) == 2


def test_escaped_wrappers_of_coroutine_and_generator_targets_return_the_programs_own_objects(
        otel: Any, package: Package) -> None:
    """Their invocation begins when the object first runs: once uninstrumented, the wrapper hands back
    the program's own coroutine or generator, not one of ours that would only pass through."""
    mod = package.write("mod", """
        async def fetch():
            return 1

        def items():
            yield 1

        async def stream():
            yield 1
    """)
    module = package.load("mod")
    instrument(config("".join(f'[[tool]]\ntarget = "{mod}:{name}"\n' for name in ("fetch", "items", "stream"))))
    escaped = module.fetch, module.items, module.stream
    uninstrument()
    made = [function() for function in escaped]
    assert [type(obj) for obj in made] == [types.CoroutineType, types.GeneratorType, types.AsyncGeneratorType]
    assert [obj.__qualname__ for obj in made] == ["fetch", "items", "stream"]
    assert asyncio.run(made[0]) == 1 and list(made[1]) == [1]
    asyncio.run(made[2].aclose())
    assert otel.spans() == []


def test_instrumenting_twice_never_wraps_twice(otel: Any, package: Package) -> None:
    mod = package.write("mod", "class C:\n    def m(self):\n        return 2\n\ndef fn():\n    return 1\n")
    module = package.load("mod")
    text = f'[[tool]]\ntarget = "{mod}:fn"\n[[agent]]\ntarget = "{mod}:C.m"\nsubclasses = true\n'
    instrument(config(text))
    instrument(config(text))  # a second, equal configuration
    AgentOtelInstrumentor().instrument(config=config(text))
    assert not hasattr(module.fn.__wrapped__, "__wrapped__")
    assert not hasattr(module.C.__dict__["m"].__wrapped__, "__wrapped__")

    class Sub(module.C):
        def m(self):
            return 3

    assert not hasattr(Sub.__dict__["m"].__wrapped__, "__wrapped__")
    assert module.fn() == 1 and module.C().m() == 2 and Sub().m() == 3
    assert names(otel) == ["execute_tool fn", "invoke_agent C", "invoke_agent Sub"]
    AgentOtelInstrumentor().uninstrument()
    assert not hasattr(module.fn, "__wrapped__")


def test_targets_that_cannot_be_resolved_never_break_the_program(otel: Any, package: Package) -> None:
    mod = package.write("mod", "def fn():\n    return 1\n\nVALUE = 3\n")
    instrument(config(f'[[tool]]\ntarget = "{mod}:missing"\n[[tool]]\ntarget = "{mod}:VALUE"\n'
                      f'[[tool]]\ntarget = "{mod}:fn.inner"\n'))
    assert package.load("mod").fn() == 1
    assert entry_errors() == {f"{mod}:missing": f"module {mod} has no attribute 'missing'",
                              f"{mod}:VALUE": "VALUE is 'int', not callable",
                              f"{mod}:fn.inner": "fn is 'function', not a class"}


def test_a_method_a_metaclass_gives_names_the_function_to_target_instead(otel: Any, package: Package) -> None:
    """litellm's ``Router.completion`` comes from its metaclass's ``__getattr__``: "class Router has no attribute
    'completion'" though ``Router.completion`` works, and nothing said what to target."""
    mod = package.write("mod", """
        class Core:
            def completion(self, **kwargs):
                return "done"

        class Served(type):
            def __getattr__(cls, name):
                return getattr(Core, name)

        class Router(metaclass=Served):
            pass

        class Looped:
            @property
            def __wrapped__(self):
                return self

            def __call__(self):
                pass

        class Odd(metaclass=type("Giving", (type,), {"__getattr__": lambda cls, name: Looped()})):
            pass
    """)
    instrument(config(f'[[provider]]\ntarget = "{mod}:Router.completion"\nprovider = "openai"\n'
                      f'[[provider]]\ntarget = "{mod}:Odd.completion"\nprovider = "openai"\n'))
    assert package.load("mod").Router.completion(None) == "done"
    assert entry_errors() == {f"{mod}:Router.completion": (
        "class Router has no attribute 'completion' of its own (its metaclass's __getattr__ gives it, where nothing "
        f'can be replaced): target the function it gives, "{mod}:Core.completion"'),
        # what it gives unwraps for ever: no hint, and the plain error, not the loop's
        f"{mod}:Odd.completion": "class Odd has no attribute 'completion'"}


def test_targets_in_a_package_that_exports_lazily_resolve(package: Package, otel: Any) -> None:
    """A package whose ``__init__`` loads its names on first use (a PEP 562 ``__getattr__``, as langchain
    does) still resolves ``"pkg:Class.method"`` and ``"pkg:function"``; a function is wrapped where it is
    defined, so ``from pkg.impl import helper`` gets the wrapper too."""
    package.write("impl", """
        class Tool:
            def run(self, x):
                return x * 2

        def helper(x):
            return x + 1
    """)
    (package.folder / "__init__.py").write_text(textwrap.dedent("""
        import importlib

        def __getattr__(name):
            if name in ("Tool", "helper"):
                return getattr(importlib.import_module(__name__ + ".impl"), name)
            raise AttributeError(name)
    """))
    instrument(config(f"""
        [[tool]]
        target = "{package.name}:Tool.run"
        name = "lazy-tool"
        [[tool]]
        target = "{package.name}:helper"
    """))
    lazy = importlib.import_module(package.name)
    assert entry_errors() == {}
    assert lazy.Tool().run(3) == 6
    assert lazy.helper(1) == 2
    assert importlib.import_module(f"{package.name}.impl").helper(2) == 3
    assert names(otel) == ["execute_tool helper", "execute_tool helper", "execute_tool lazy-tool"]


def test_a_function_a_package_re_exports_is_wrapped_where_it_is_defined_too(package: Package, otel: Any) -> None:
    """``pkg/__init__.py`` does ``from .core import search``, the target is ``pkg:search``: before, only the calls
    through the package's name were traced, not ``pkg.core.search`` nor the defining module's own calls."""
    package.write("core", """
        def search(x):
            return x + 1

        def search_twice(x):
            return search(search(x))
    """)
    (package.folder / "__init__.py").write_text("from .core import search\n")
    instrument(config(f'[[tool]]\ntarget = "{package.name}:search"\n'))
    root = importlib.import_module(package.name)
    core = importlib.import_module(f"{package.name}.core")
    assert entry_errors() == {}
    assert (root.search(1), core.search(1), core.search_twice(1)) == (2, 2, 3)
    assert root.search is core.search  # one wrapper, as one function before
    assert names(otel) == ["execute_tool search"] * 4
    uninstrument()
    assert not hasattr(root.search, "__wrapped__") and root.search is core.search


def test_a_configured_function_adds_one_frame_per_call_as_a_decorator_does(otel: Any, package: Package) -> None:
    """The configured target's own checks (uninstrumented since, ``super()`` within the family) run in its
    handler, not in a wrapper function of their own: one Python frame per call, as under a functools.wraps
    decorator (the frame of a second wrapper, 3 per call, took the recursion depth from 331 to 248 on 3.11)."""
    mod = package.write("frames", """
        import sys

        def depth(n, seen):
            frame, count = sys._getframe(), 0
            while frame is not None:
                frame, count = frame.f_back, count + 1
            seen.append(count)
            if n:
                depth(n - 1, seen)

        class Agent:
            def depth(self, n, seen):
                depth(0, seen)
                if n:
                    self.depth(n - 1, seen)
        """)
    instrument(config(f'[[tool]]\ntarget = "{mod}:depth"\n\n[[agent]]\ntarget = "{mod}:Agent.depth"\n'
                      "subclasses = true\n"))
    module = package.load("frames")
    seen: list[int] = []
    module.depth(1, seen)
    assert seen[1] - seen[0] == 2  # the wrapper's frame and the function's
    seen.clear()
    module.Agent().depth(1, seen)
    assert seen[1] - seen[0] == 2
    assert names(otel).count("execute_tool depth") == 4


def test_instrument_takes_a_configuration_files_path_and_refuses_anything_else(
        otel: Any, package: Package, tmp_path: Path) -> None:
    """``instrument("agent-otel.toml")`` was a bare AttributeError ('str' object has no attribute 'prices')."""
    mod = package.write("mod", "def fn(x):\n    return x + 1\n")
    file = tmp_path / "agent-otel.toml"
    file.write_text(f'[[tool]]\ntarget = "{mod}:fn"\n')
    assert instrument(str(file)) is True
    assert package.load("mod").fn(1) == 2
    assert names(otel) == ["execute_tool fn"]
    with pytest.raises(agent_otel.ConfigurationError, match="instrument\\(\\): expected a configuration file's path"):
        instrument(5)  # type: ignore[arg-type]
    with pytest.raises(agent_otel.ConfigurationError, match="no such file"):
        instrument(tmp_path / "missing.toml")


def test_a_target_with_non_ascii_identifiers_is_one(otel: Any, package: Package) -> None:
    """Python identifiers may be non-ASCII (``def données()``, PEP 3131): such a target was "malformed"."""
    mod = package.write("modèle", "class Équipe:\n    def résoudre(self):\n        return 1\n\n"
                                  "def données():\n    return 2\n")
    instrument(config(f'[[agent]]\ntarget = "{mod}:Équipe.résoudre"\n[[tool]]\ntarget = "{mod}:données"\n'))
    module = package.load("modèle")
    assert module.Équipe().résoudre() == 1 and module.données() == 2
    assert names(otel) == ["execute_tool données", "invoke_agent Équipe"]


def test_a_target_naming_a_method_a_subclass_inherits_from_a_built_in_type_is_wrapped_on_the_subclass(
        otel: Any, package: Package) -> None:
    """``list.append`` cannot be replaced (setattr refuses on a built-in type): the subclass gets the wrapper."""
    mod = package.write("mod", "class Notes(list):\n    pass\n")
    instrument(config(f'[[tool]]\ntarget = "{mod}:Notes.append"\n'))
    notes = package.load("mod").Notes()
    notes.append(1)
    [].append(2)
    assert notes == [1] and entry_errors() == {}
    assert names(otel) == ["execute_tool append"]


def test_classes_the_program_makes_after_instrumenting_are_not_kept_and_are_restored(
        otel: Any, package: Package) -> None:
    """``subclasses = true`` and ``instance_attribute = true`` wrap what a class defined later overrides: the patch
    recorded for ``uninstrument()`` held every such class for the life of the process (a plugin class made per
    request: 75 MB for 10,000, none collected). They are collected now, and a live one is still restored."""
    import gc
    import weakref

    mod = package.write("mod", """
        class Base:
            def solve(self):
                return 0

        class Holder:
            def __init__(self):
                self.fn = lambda: 1
    """)
    module = package.load("mod")
    instrument(config(f'[[agent]]\ntarget = "{mod}:Base.solve"\nsubclasses = true\n'
                      f'[[tool]]\ntarget = "{mod}:Holder.fn"\ninstance_attribute = true\n'))
    made = []
    for index in range(50):
        plugin = type(f"Plugin{index}", (module.Base,), {"solve": lambda self: 1})
        holder = type(f"Held{index}", (module.Holder,), {"__init__": lambda self: module.Holder.__init__(self)})
        assert plugin().solve() == 1 and holder().fn() == 1
        made += [weakref.ref(plugin), weakref.ref(holder)]
        del plugin, holder
    gc.collect()
    assert [ref for ref in made if ref() is not None] == []
    assert len(otel.spans("invoke_agent Plugin0")) == 1 and len(otel.spans("execute_tool <lambda>")) == 50
    solve = lambda self: 2  # noqa: E731
    kept = type("Kept", (module.Base,), {"solve": solve})
    assert kept.__dict__["solve"] is not solve  # wrapped
    uninstrument()
    assert kept.__dict__["solve"] is solve and kept().solve() == 2


def test_the_end_of_an_iteration_is_no_error(otel: Any, package: Package) -> None:
    """A configured ``__next__`` or ``__anext__`` raises StopIteration or StopAsyncIteration at the end of every loop:
    that call was recorded as an error (status ERROR, ``error.type=StopAsyncIteration``, an error point)."""
    mod = package.write("feed", """
        class Feed:
            def __init__(self, items):
                self.items = list(items)

            def __iter__(self):
                return self

            def __next__(self):
                if not self.items:
                    raise StopIteration
                return self.items.pop(0)

            def __aiter__(self):
                return self

            async def __anext__(self):
                if not self.items:
                    raise StopAsyncIteration
                return self.items.pop(0)
    """)
    instrument(config(f"""
        [[tool]]
        target = "{mod}:Feed.__next__"
        name = "next"
        [[tool]]
        target = "{mod}:Feed.__anext__"
        name = "anext"
    """))
    feed = package.load("feed").Feed

    async def read_async() -> list[str]:
        return [item async for item in feed(["b"])]

    assert (list(feed(["a"])), asyncio.run(read_async())) == (["a"], ["b"])
    spans = otel.spans()
    assert sorted(span.name for span in spans) == ["execute_tool anext"] * 2 + ["execute_tool next"] * 2
    assert [(span.status.status_code.name, span.attributes.get(semconv.ERROR_TYPE)) for span in spans] == [
        ("UNSET", None)] * 4
    points = otel.points(semconv.TOOL_DURATION.name)
    assert {semconv.ERROR_TYPE in point.attributes for point in points} == {False}
    assert sum(point.count for point in points) == 4


def thin_override_of_a_configured_base(package: Package) -> Any:
    """An instance of ``Thin``, whose sync ``solve`` returns ``super().solve(n)``'s coroutine: the ``async def`` of a
    base configured as an agent with ``subclasses = true``."""
    mod = package.write("mod", """
        class Base:
            async def solve(self, n):
                return n
    """)
    module = package.load("mod")
    instrument(config(f'[[agent]]\ntarget = "{mod}:Base.solve"\nsubclasses = true\n'))

    class Thin(module.Base):  # type: ignore[name-defined,misc]
        def solve(self, n: int) -> Any:
            return super().solve(n)

    return Thin()


def test_a_sync_override_returning_the_bases_coroutine_is_one_call_wherever_the_coroutine_runs(
        otel: Any, package: Package) -> None:
    """``def solve(self, n): return super().solve(n)`` over a configured ``async def``: awaited in the task that called
    it, one span; run by ``asyncio.run``, ``create_task`` or ``gather`` (a task made of the returned coroutine), the
    base's call began in that task, not in the override's, and was counted as a second agent call."""
    agent = thin_override_of_a_configured_base(package)

    async def main() -> list[int]:
        return [await agent.solve(1), *await asyncio.gather(agent.solve(2)), await asyncio.create_task(agent.solve(3))]

    assert asyncio.run(main()) == [1, 2, 3]
    assert asyncio.run(agent.solve(4)) == 4
    assert names(otel) == ["invoke_agent Thin"] * 4
    [point] = otel.points(semconv.AGENT_DURATION.name)
    assert (point.attributes[semconv.GEN_AI_AGENT_NAME], point.count) == ("Thin", 4)


def test_a_property_target_says_what_can_be_done_instead(package: Package) -> None:
    """It said "wrap its getter function instead", which a config file has no way to name."""
    from agent_otel._zerocode.targets import TargetError, resolve_in

    package.write("props", """
        class Props:
            @property
            def answer(self):
                return 42
    """)
    with pytest.raises(TargetError) as refused:
        resolve_in(package.load("props"), "Props.answer")
    assert str(refused.value) == ("Props.answer is a property, which a config file cannot wrap: target the method it "
                                  "calls, or decorate its getter in code (@property over @agent_otel.tool(...) or "
                                  "another kind)")


def test_a_method_another_librarys_wrapt_wrapper_holds_binds_as_that_wrapper_does(otel: Any, package: Package) -> None:
    """A method an OpenTelemetry instrumentation's wrapt wrapper holds, then configured (``agent-otel run`` wraps an
    instrumented library in that order): ``Class.method(obj, ...)`` (a subclass calling its base's) gave that wrapper
    no instance, where alone it is given ``obj`` (the httpx instrumentation failed on a transport subclass). Such a
    method binds as the wrapper it holds does; a plain one still reads from its class as itself."""
    mod = package.write("held", """
        class Base:
            def method(self, x):
                return x

            def plain(self, x):
                return x
        """)
    module = package.load("held")
    seen: list[tuple[str, tuple[Any, ...]]] = []

    def instrumentation(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        seen.append((type(instance).__name__, args))
        return wrapped(*args, **kwargs)

    wrapt.wrap_function_wrapper(module, "Base.method", instrumentation)
    instrument(config(f'[[tool]]\ntarget = "{mod}:Base.method"\n\n[[tool]]\ntarget = "{mod}:Base.plain"\n'))
    base = module.Base()
    assert base.method(1) == 1 and module.Base.method(base, 2) == 2
    assert seen == [("Base", (1,)), ("Base", (2,))]
    assert module.Base.plain is module.Base.plain and module.Base.plain(base, 3) == 3
    assert names(otel) == ["execute_tool method", "execute_tool method", "execute_tool plain"]



def test_a_tool_entry_point_returning_failure_objects_fails_by_its_success_path(otel: Any, package: Package) -> None:
    """The shape of Agno's ``FunctionCall.execute``: it catches the tool's exception and returns a result whose
    ``status`` says ``failure``. With ``success`` on the entry, those calls fail (``error.type`` ``tool_error``),
    and the program gets the same objects back."""
    mod = package.write("calls", """
        class Result:
            def __init__(self, status):
                self.status = status

        class FunctionCall:
            def __init__(self, name, fails):
                self.name, self.fails = name, fails

            def execute(self):
                try:
                    if self.fails:
                        raise RuntimeError("tool raised")
                    return Result("success")
                except RuntimeError:
                    return Result("failure")
    """)
    instrument(config(f"""
        [[tool]]
        target = "{mod}:FunctionCall.execute"
        name = {{ path = "self.name" }}
        success = {{ path = "result.status", equals = "success" }}
    """))
    calls = package.load("calls")
    statuses = [calls.FunctionCall("search", fails).execute().status for fails in (False, True, False)]
    assert statuses == ["success", "failure", "success"]
    counts = {tuple(sorted(p.attributes.items())): p.count for p in otel.points(semconv.TOOL_DURATION.name)}
    assert counts == {((semconv.GEN_AI_TOOL_NAME, "search"),): 2,
                      ((semconv.ERROR_TYPE, semconv.ERROR_TYPE_TOOL_ERROR), (semconv.GEN_AI_TOOL_NAME, "search")): 1}
