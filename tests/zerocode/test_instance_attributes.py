"""`instance_attribute = true`: callables an instance holds in a field, wrapped when the instance is
created. On the real langchain-core ``StructuredTool`` (a pydantic model whose ``func``/``coroutine``
fields hold the user's function) and on dataclass tools (tests/zerocode/held_tools)."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import gc
import os
import pickle
import subprocess
import sys
import textwrap
import tomllib
import traceback
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.tools import StructuredTool
from pydantic import BaseModel, ConfigDict, model_validator

import agent_otel
from agent_otel import ConfigurationError
from agent_otel._zerocode.config import parse_config
from agent_otel._zerocode.patching import instrument, uninstrument
from agent_otel._zerocode.targets import TargetError, resolve_target
from tests.support.otlp_receiver import OtlpHttpReceiver
from tests.support.paths import ROOT
from tests.support.polling import wait_until
from tests.zerocode.held_tools import tools
from tests.zerocode.held_tools.tools import (
    AuditedTool,
    Computed,
    FrozenTool,
    MadeByNew,
    NoConstructor,
    SlotTool,
    SpecTuple,
    Tool,
    add,
    make_scaler,
)

HELD = "tests.zerocode.held_tools.tools"
LANGCHAIN = """
[[tool]]
target = "langchain_core.tools.structured:StructuredTool.func"
instance_attribute = true
name = { path = "self.name" }
type = { path = "args.query" }

[[tool]]
target = "langchain_core.tools.structured:StructuredTool.coroutine"
instance_attribute = true
name = { path = "self.name" }
"""


@pytest.fixture(autouse=True)
def uninstrumented() -> Iterator[None]:
    yield
    uninstrument()


def configure(text: str) -> None:
    instrument(parse_config(tomllib.loads(textwrap.dedent(text)), "test.toml"))


def held(target: str, **keys: str) -> str:
    extra = "".join(f"{key} = {value}\n" for key, value in keys.items())
    return f'[[tool]]\ntarget = "{HELD}:{target}"\ninstance_attribute = true\nname = {{ path = "self.name" }}\n{extra}'


def tool_spans(otel: Any) -> list[str]:
    return [span.name for span in otel.spans() if span.name.startswith("execute_tool")]


def instance_errors(otel: Any) -> float:
    return sum(point.value for point in otel.points("agent_otel.instrumentation.errors",
                                                    {"agent_otel.stage": "autoinstrument.instance"}))


class Answer:
    """A result whose identity the caller can check."""


# --------------------------------------------------------------------------------------------------
# langchain-core StructuredTool, through its public invoke()/ainvoke()
# --------------------------------------------------------------------------------------------------


def test_structured_tool_sync_one_span_per_call_named_from_self_result_unchanged(otel: Any) -> None:
    answer = Answer()

    def search(query: str) -> Answer:
        """Search the web."""
        return answer

    plain = StructuredTool.from_function(func=search, name="web_search")  # before: not wrapped
    configure(LANGCHAIN)
    web = StructuredTool.from_function(func=search, name="web_search")
    assert web.func is not search and plain.func is search
    assert web.func == search and web.model_fields_set == plain.model_fields_set  # pydantic saw no assignment
    assert web.invoke({"query": "otel"}) is answer
    assert web.invoke({"query": "prometheus"}) is answer
    assert tool_spans(otel) == ["execute_tool web_search"] * 2
    span = otel.spans("execute_tool web_search")[0]
    assert span.attributes["gen_ai.tool.name"] == "web_search"
    assert span.attributes["gen_ai.tool.type"] == "otel"  # args.query: the callable's own parameter
    assert span.attributes["code.function.name"].endswith("search")
    assert web.func.__wrapped__ is search
    assert web.coroutine is None


def test_structured_tool_async_coroutine_field(otel: Any) -> None:
    configure(LANGCHAIN)
    answer = Answer()

    async def lookup(query: str) -> Answer:
        """Look it up."""
        await asyncio.sleep(0)
        return answer

    def lookup_sync(query: str) -> Answer:
        """Look it up."""
        return answer

    docs = StructuredTool.from_function(func=lookup_sync, coroutine=lookup, name="docs_lookup")
    assert asyncio.run(docs.ainvoke({"query": "spans"})) is answer
    assert tool_spans(otel) == ["execute_tool docs_lookup"]
    assert docs.invoke({"query": "spans"}) is answer
    assert tool_spans(otel) == ["execute_tool docs_lookup"] * 2


def test_structured_tool_exceptions_pass_through_unchanged(otel: Any) -> None:
    configure(LANGCHAIN)
    failure = ValueError("index offline")

    def search(query: str) -> str:
        """Search."""
        raise failure

    async def asearch(query: str) -> str:
        """Search."""
        raise failure

    web = StructuredTool.from_function(func=search, coroutine=asearch, name="web_search")
    with pytest.raises(ValueError) as raised:
        web.invoke({"query": "x"})
    assert raised.value is failure
    with pytest.raises(ValueError) as raised_async:
        asyncio.run(web.ainvoke({"query": "x"}))
    assert raised_async.value is failure
    spans = otel.spans("execute_tool web_search")
    assert len(spans) == 2
    assert all(span.attributes["error.type"] == "ValueError" for span in spans)


def test_a_failing_init_of_a_hooked_class_raises_with_the_traceback_it_has_without_agent_otel(otel: Any) -> None:
    """The class's ``__init__`` is hooked to wrap what a new instance holds: a constructor that raised (pydantic's
    validation) had the hook's frame (``patching.py``, ``after_init``) in its traceback."""

    def frames() -> list[tuple[str, str]]:
        try:
            StructuredTool(name=1, description="d", func=add)  # type: ignore[arg-type]  # refused: not a str
        except Exception as error:
            return [(frame.filename, frame.name) for frame in traceback.extract_tb(error.__traceback__)]
        raise AssertionError("the constructor took a name that is no string")

    plain = frames()
    configure(LANGCHAIN)
    assert frames() == plain


def test_structured_tool_created_before_instrument_is_not_wrapped_and_uninstrument_restores_init(
        otel: Any) -> None:
    def search(query: str) -> str:
        """Search."""
        return query

    early = StructuredTool.from_function(func=search, name="early")
    configure(LANGCHAIN)
    assert "__init__" in StructuredTool.__dict__
    late = StructuredTool.from_function(func=search, name="late")
    early.invoke({"query": "a"})
    late.invoke({"query": "a"})
    assert tool_spans(otel) == ["execute_tool late"]
    uninstrument()
    assert "__init__" not in StructuredTool.__dict__  # the inherited one again
    late.invoke({"query": "a"})  # its wrapper is a pass-through now
    after = StructuredTool.from_function(func=search, name="after")
    assert after.func is search
    assert after.invoke({"query": "b"}) == "b"
    assert tool_spans(otel) == ["execute_tool late"]


# --------------------------------------------------------------------------------------------------
# dataclass tools
# --------------------------------------------------------------------------------------------------


def test_dataclass_field_wrapped_self_is_the_instance_args_are_the_callables(otel: Any) -> None:
    configure(held("Tool.invoke", type='{ path = "args.a" }'))
    adder = Tool("adder", add)
    assert adder.run(a=2, b=3) == 5
    assert adder.invoke(4, 5) == 9
    spans = otel.spans("execute_tool adder")
    assert [span.attributes["gen_ai.tool.type"] for span in spans] == ["2", "4"]
    assert spans[0].attributes["code.function.name"] == f"{HELD}.add"
    assert adder.fallback is None  # None is left alone
    assert adder == Tool("adder", add) and hash(adder.invoke) == hash(add)  # compares as the function
    assert adder.invoke.__annotations__ is add.__annotations__  # read through, not the wrapper class's own


def test_frozen_and_slotted_dataclasses(otel: Any) -> None:
    configure(held("FrozenTool.invoke") + held("SlotTool.invoke"))
    frozen = FrozenTool("frozen", add)
    slotted = SlotTool("slotted", make_scaler(3))
    assert frozen.run(a=1, b=1) == 2
    assert slotted.run(value=2) == 6
    assert tool_spans(otel) == ["execute_tool frozen", "execute_tool slotted"]
    assert hash(frozen) == hash(FrozenTool("frozen", add)) and frozen == FrozenTool("frozen", add)


def test_classes_without_an_init_of_their_own_construct_as_without_agent_otel(otel: Any) -> None:
    """The hook installs an ``__init__`` on such a class, which changes how ``object.__init__`` judges the
    constructor's arguments: it refused a class made by its ``__new__`` and a named tuple (``TypeError:
    object.__init__() takes exactly one argument``)."""
    with pytest.raises(TypeError) as plain:
        NoConstructor("unexpected")  # type: ignore[call-arg]
    configure(held("MadeByNew.invoke") + held("SpecTuple.invoke") + held("NoConstructor.invoke"))
    made = MadeByNew("made", add)
    spec = SpecTuple("spec", add)
    assert made.invoke(1, 2) == 3 and spec.invoke(2, 2) == 4
    assert spec == ("spec", add)
    assert tool_spans(otel) == ["execute_tool made"]  # a named tuple's field cannot be replaced: left alone
    with pytest.raises(TypeError) as instrumented:
        NoConstructor("unexpected")  # type: ignore[call-arg]
    assert str(instrumented.value) == str(plain.value) == "NoConstructor() takes no arguments"


def test_subclass_reassigning_after_super_init_wraps_the_final_callable_once(otel: Any) -> None:
    configure(held("Tool.invoke"))
    audited = AuditedTool("audited", add)
    assert audited.run(a=1, b=2) == 3
    assert audited.calls == [{"a": 1, "b": 2}]
    assert tool_spans(otel) == ["execute_tool audited"]
    assert audited.invoke.__wrapped__.__name__ == "audited"


def test_subclass_defined_after_instrument_is_covered(otel: Any) -> None:
    configure(held("Tool.invoke"))

    class LateTool(Tool):
        def __init__(self, name: str) -> None:
            super().__init__(name, add)
            self.invoke = make_scaler(10)

    assert LateTool("late").run(value=1) == 10
    assert tool_spans(otel) == ["execute_tool late"]


def test_never_wrapped_twice(otel: Any) -> None:
    configure(held("Tool.invoke"))
    decorated = agent_otel.tool("decorated")(add)
    tool = Tool("t", decorated)
    assert tool.invoke is decorated  # already ours: left alone
    again = Tool("u", add)
    wrapper = again.invoke
    again.__init__("u", wrapper)  # type: ignore[misc]  # __init__ again with its own wrapper
    assert again.invoke is wrapper
    tool.run(a=1, b=1)
    again.run(a=1, b=1)
    assert tool_spans(otel) == ["execute_tool decorated", "execute_tool u"]


def test_a_decorated_method_bound_to_its_object_is_not_wrapped_again(otel: Any) -> None:
    """``obj.method`` of a decorated method is a bound method of our wrapper: ours already, as the wrapper is."""
    configure(held("Tool.invoke"))

    class Adder:
        @agent_otel.tool("decorated-method")
        def add(self, a: int, b: int) -> int:
            return a + b

    bound = Adder().add
    tool = Tool("t", bound)
    assert tool.invoke is bound
    assert tool.run(a=1, b=2) == 3
    assert tool_spans(otel) == ["execute_tool decorated-method"]


def test_property_managed_attribute_is_left_alone_and_counted(otel: Any) -> None:
    with pytest.raises(TargetError, match="is a property of class Computed"):
        resolve_target(parse_config({"tool": [{"target": f"{HELD}:Computed.invoke", "instance_attribute": True}]}
                                    ).targets[0])

    class Base:
        def __init__(self) -> None:
            self.name = "base"
            self.invoke = add

    class Managed(Base):  # a subclass manages the attribute with a property: no value the instance holds
        stored: list[Callable[..., Any]] = []
        invoke = property(lambda self: add, lambda self, value: self.stored.append(value))

    tools.Base = Base  # type: ignore[attr-defined]
    try:
        configure(held("Base.invoke"))
        managed = Managed()
    finally:
        del tools.Base  # type: ignore[attr-defined]
    assert managed.invoke(1, 2) == 3 and Managed.stored == [add]
    assert tool_spans(otel) == []
    assert instance_errors(otel) == 1
    assert Computed("c").invoke is add


def test_a_parameter_the_callable_lacks_is_counted_and_the_instance_left_alone(otel: Any) -> None:
    configure(held("Tool.invoke", type='{ path = "args.query" }'))
    tool = Tool("adder", add)
    assert tool.invoke is add
    assert instance_errors(otel) == 1


def test_a_wrapper_another_instance_holds_is_rewrapped_for_the_new_one(otel: Any) -> None:
    configure(held("Tool.invoke"))
    first = Tool("first", add)
    second = dataclasses.replace(first, name="second")  # passes first.invoke (its wrapper) to __init__
    third = Tool("third", first.invoke)
    assert second.invoke.__wrapped__ is third.invoke.__wrapped__ is add
    for tool in (first, second, third):
        tool.run(a=1, b=2)
    assert tool_spans(otel) == ["execute_tool first", "execute_tool second", "execute_tool third"]


def test_a_call_on_a_temporary_instance_is_recorded_without_it(otel: Any) -> None:
    """``Tool("t", f).invoke(...)``: CPython drops the temporary once its attribute is read, before the call; the
    call went through untraced. It is recorded, without the instance (its name falls back to the callable's)."""
    configure(held("Tool.invoke"))
    result = Tool("temporary", add).invoke(1, 2)  # not in an assert, whose rewriting keeps the temporary alive
    assert result == 3
    assert tool_spans(otel) == ["execute_tool add"]


def test_the_wrapper_keeps_no_reference_cycle_to_its_instance(otel: Any) -> None:
    configure(held("Tool.invoke"))
    tool = Tool("adder", make_scaler(2))
    freed = weakref.ref(tool)
    gc.disable()
    try:
        del tool
        assert freed() is None  # freed by reference counting, as without agent-otel
    finally:
        gc.enable()


def test_pickle_and_copy(otel: Any) -> None:
    configure(held("Tool.invoke"))
    tool = Tool("adder", add)
    restored = pickle.loads(pickle.dumps(tool))
    assert restored == tool and restored.invoke is add  # pickled by name: the plain function
    deep = copy.deepcopy(tool)
    assert deep.invoke is add
    shallow = copy.copy(tool)
    shallow.name = "renamed"
    assert shallow.run(a=1, b=1) == 2
    assert tool_spans(otel) == ["execute_tool adder"]  # a shallow copy shares the wrapper, and its `self`
    closure = Tool("scaler", make_scaler(2))
    with pytest.raises((pickle.PicklingError, AttributeError)):
        pickle.dumps(closure)  # a closure does not pickle, wrapped or not
    with pytest.raises((pickle.PicklingError, AttributeError)):
        pickle.dumps(make_scaler(2))


def test_pydantic_validate_assignment_and_frozen_models_see_no_assignment(otel: Any) -> None:
    validations: list[str] = []

    class Checked(BaseModel):
        model_config = ConfigDict(validate_assignment=True)
        name: str
        invoke: Callable[..., Any]

        @model_validator(mode="after")
        def count(self) -> Checked:
            validations.append(self.name)
            return self

    class Frozen(BaseModel):
        model_config = ConfigDict(frozen=True)
        name: str
        invoke: Callable[..., Any]

    tools.Checked, tools.Frozen = Checked, Frozen  # type: ignore[attr-defined]
    try:
        configure(held("Checked.invoke") + held("Frozen.invoke"))
        checked = Checked(name="checked", invoke=add)
        frozen = Frozen(name="frozen", invoke=add)
    finally:
        del tools.Checked, tools.Frozen  # type: ignore[attr-defined]
    assert validations == ["checked"]  # the validator ran for __init__ only
    assert checked.invoke(1, 2) == frozen.invoke(1, 2) == 3
    assert frozen == Frozen(name="frozen", invoke=add) and hash(frozen) == hash(Frozen(name="frozen", invoke=add))
    assert tool_spans(otel) == ["execute_tool checked", "execute_tool frozen"]


# --------------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("entry", "problem"), [
    ({"instance_attribute": "yes"}, 'tool[0].instance_attribute: expected a boolean, got a string'),
    ({"target": "pkg:fn"}, "tool[0].instance_attribute: 'pkg:fn' names no attribute of a class; "
                           'instance_attribute = true needs "package.module:Class.attribute"'),
    ({"subclasses": True}, "tool[0].subclasses: does not combine with instance_attribute = true"),
])
def test_bad_values_are_configuration_errors(entry: dict[str, Any], problem: str) -> None:
    values = {"target": "pkg.mod:Tool.invoke", "instance_attribute": True, **entry}
    with pytest.raises(ConfigurationError) as raised:
        parse_config({"tool": [values]}, "t.toml")
    assert str(raised.value).startswith("t.toml: " + problem)


def test_check_shows_the_shape() -> None:
    spec = parse_config({"tool": [{"target": "langchain_core.tools.structured:StructuredTool.func",
                                   "instance_attribute": True}]}).targets[0]
    assert resolve_target(spec).shape == "instance attribute of StructuredTool"
    method = parse_config({"tool": [{"target": "langchain_core.tools.structured:StructuredTool.invoke",
                                     "instance_attribute": True}]}).targets[0]
    with pytest.raises(TargetError, match=r"StructuredTool\.invoke is a method of class BaseTool"):
        resolve_target(method)


LANGCHAIN_APP = """
import asyncio
from langchain_core.tools import StructuredTool

def search(query: str) -> str:
    \"\"\"Search.\"\"\"
    return query.upper()

async def asearch(query: str) -> str:
    \"\"\"Search.\"\"\"
    return query.upper()

web = StructuredTool.from_function(func=search, coroutine=asearch, name="web_search")
print(web.invoke({"query": "a"}), asyncio.run(web.ainvoke({"query": "b"})))
"""


def test_agent_otel_run_wraps_structured_tools_the_program_creates(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(LANGCHAIN_APP)
    (tmp_path / "agent-otel.toml").write_text(LANGCHAIN)
    with OtlpHttpReceiver() as receiver:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENT_OTEL_"))}
        env.update(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
                   OTEL_TRACES_EXPORTER="otlp", OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none",
                   OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="*")  # only our spans, not the langchain instrumentation's
        done = subprocess.run([str(Path(sys.executable).parent / "agent-otel"), "run", "--", sys.executable, "app.py"],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        assert (done.returncode, done.stdout) == (0, "A B\n"), done.stderr
        wait_until(lambda: len(receiver.spans()) >= 2, "2 spans")
        assert [span.name for span in receiver.spans()] == ["execute_tool web_search"] * 2


def test_agent_otel_check_shows_instance_attributes(tmp_path: Path) -> None:
    file = tmp_path / "agent-otel.toml"
    file.write_text(f'''
[[tool]]
target = "{HELD}:Tool.invoke"
instance_attribute = true

[[tool]]
target = "{HELD}:Computed.invoke"
instance_attribute = true
''')
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_OTEL_")}
    done = subprocess.run([str(Path(sys.executable).parent / "agent-otel"), "check", str(file)], cwd=ROOT,
                          env=environ, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    tool, computed = done.stdout.splitlines()[1:3]
    assert tool.startswith(f"{HELD}:Tool.invoke ") and "  instance attribute of Tool  ok" in tool
    assert computed.startswith(f"{HELD}:Computed.invoke ")
    assert computed.endswith("error: Computed.invoke is a property of class Computed, not an attribute of its "
                             "instances; remove instance_attribute")
