"""Extractor paths: the grammar, what each root sees, and errors at decoration time."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

import agent_otel
from agent_otel import ConfigurationError, path, semconv
from agent_otel._calls.extractors import Call, is_extractor, signature_of
from tests.support.telemetry import error_count


def handle(issue: Any, items: list[Any] | None = None, *, mode: str = "fast") -> None:
    """A target signature for the extractor tests."""


def call_of(*args: Any, **kwargs: Any) -> Call:
    return Call(signature_of(handle), None, args, kwargs)


ISSUE = SimpleNamespace(type=SimpleNamespace(value="lint"), meta={"owner": {"name": "ann"}, "tags": ["a", "b"]})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("args.issue.type.value", "lint"),
        ("args.issue.meta.owner.name", "ann"),
        ('args.issue.meta["owner"]["name"]', "ann"),
        ("args.issue.meta['tags'][1]", "b"),
        ("args.issue.meta.tags[-1]", "b"),
        ("args.items[0]", "first"),
        ("args.items[0].missing", None),
        ("args.items[9]", None),
        ("args.issue.nope.deeper", None),
        ("args.mode", "fast"),
    ],
)
def test_args_paths_by_position_and_by_keyword(text: str, expected: Any) -> None:
    extractor = path(text)
    assert extractor(call_of(ISSUE, ["first", "second"])) == expected
    assert extractor(call_of(issue=ISSUE, items=["first", "second"])) == expected


def test_self_result_and_error_roots() -> None:
    call = Call(None, SimpleNamespace(name="bot", cfg={"k": [5]}), (), {})
    call.result = {"usage": SimpleNamespace(prompt_tokens=3)}
    call.error = KeyError("gone")
    assert path("self.name")(call) == "bot"
    assert path('self.cfg["k"][0]')(call) == 5
    assert path("result.usage.prompt_tokens")(call) == 3
    assert path("result")(call) is call.result
    assert path("error")(call) is call.error
    assert path("error.args[0]")(call) == "gone"
    assert path("self")(Call(None, None, (), {})) is None
    assert path("result.x.y")(Call(None, None, (), {})) is None


def test_paths_compare_and_print_by_text() -> None:
    assert path("args.issue") == path("args.issue")
    assert path("args.issue") != path("args.items")
    assert len({path("result.x"), path("result.x")}) == 1
    assert repr(path("result.x")) == "path('result.x')"
    assert path("result").needs_result and path("error").needs_result and not path("args.a").needs_result


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "extractor path '': must start with one of args, self, result, error at character 0"),
        ("issue.type", "extractor path 'issue.type': must start with one of args, self, result, error at character 0"),
        ("results.x", "extractor path 'results.x': must start with one of args, self, result, error at character 0"),
        ("args", "extractor path 'args': 'args' must be followed by '.' and a parameter name at character 4"),
        ("args[0]", "extractor path 'args[0]': 'args' must be followed by '.' and a parameter name at character 4"),
        ("args.", "extractor path 'args.': expected a parameter name at character 5"),
        ("args.1x", "extractor path 'args.1x': expected a parameter name at character 5"),
        ("result.", "extractor path 'result.': expected a name after '.' at character 7"),
        ("result..x", "extractor path 'result..x': expected a name after '.' at character 7"),
        ("result[x]", "extractor path 'result[x]': expected an integer or a quoted key inside '[ ]' at character 7"),
        ("result[0", "extractor path 'result[0': expected ']' at character 8"),
        ("result['a", "extractor path \"result['a\": unterminated string at character 7"),
        ("result x", "extractor path 'result x': unexpected ' ' at character 6"),
        ("result.x()", "extractor path 'result.x()': unexpected '(' at character 8"),
        ("result.x + 1", "extractor path 'result.x + 1': unexpected ' ' at character 8"),
        ("self.__init__.__globals__", "extractor path 'self.__init__.__globals__': '__init__' starts with '__', "
         "which a path never reads (write [\"__init__\"] for a key of a mapping) at character 5"),
        ("result.__class__", "extractor path 'result.__class__': '__class__' starts with '__', which a path never "
         "reads (write [\"__class__\"] for a key of a mapping) at character 7"),
        ("args.issue.meta.__len__", "extractor path 'args.issue.meta.__len__': '__len__' starts with '__', "
         "which a path never reads (write [\"__len__\"] for a key of a mapping) at character 16"),
        ("args.__issue", "extractor path 'args.__issue': '__issue' starts with '__', which a path never reads "
         "at character 5"),
        # the interpreter's attributes that reach frames and globals without a dunder (a generator argument's frame)
        ('args.items.gi_frame.f_globals["os"].environ["KEY"]', "extractor path 'args.items.gi_frame.f_globals[\"os\"]"
         ".environ[\"KEY\"]': 'gi_frame' is the interpreter's (frames, code, module globals), which a path never reads "
         "(write [\"gi_frame\"] for a key of a mapping) at character 11"),
        ("result.tb_frame", "extractor path 'result.tb_frame': 'tb_frame' is the interpreter's (frames, code, module "
         "globals), which a path never reads (write [\"tb_frame\"] for a key of a mapping) at character 7"),
    ],
)
def test_bad_paths_name_the_path_and_the_position(text: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        path(text)
    assert str(caught.value) == message


def test_dunder_steps_are_refused_when_decorating_and_quoted_keys_still_read_mappings(otel: Any) -> None:
    # `self.__init__.__globals__["os"].environ["SECRET"]` would export a secret as a span attribute
    with pytest.raises(ConfigurationError, match="'__init__' starts with '__'"):
        agent_otel.agent("a", task_type=path('self.__init__.__globals__["os"].environ["SECRET"]'))
    assert path('result["__typename"]')(Call(None, None, (), {})) is None
    call = Call(None, None, (), {})
    call.result = {"__typename": "Issue", "_private": 1}
    assert path('result["__typename"]')(call) == "Issue" and path("result._private")(call) == 1


def test_reading_a_key_a_defaultdict_lacks_leaves_the_hosts_dict_as_it_was(otel: Any) -> None:
    """Before, ``opts["kind"]`` on a defaultdict added the key: the program's own argument and result changed."""
    import collections

    @agent_otel.agent("planner", task_type=path('args.opts["kind"]'), confidence=path('result["score"]'))
    def plan(opts: Any) -> Any:
        return collections.defaultdict(float, {"success": True, "copied": dict(opts)})

    opts: collections.defaultdict[str, list[int]] = collections.defaultdict(list)
    result = plan(opts)
    assert dict(opts) == {} and dict(result) == {"success": True, "copied": {}}
    attributes = otel.span("invoke_agent planner").attributes
    assert attributes[semconv.AGENT_TASK_TYPE] == "default" and semconv.AGENT_CONFIDENCE not in attributes
    opts["kind"].append(1)
    assert plan(opts)["copied"] == {"kind": [1]}


def test_a_path_must_be_a_string() -> None:
    with pytest.raises(ConfigurationError, match="extractor path must be a string, got int"):
        path(3)  # type: ignore[arg-type]


def test_unknown_parameter_is_an_error_at_decoration_time() -> None:
    decorate = agent_otel.agent("a", task_type=path("args.isue.type"))
    with pytest.raises(ConfigurationError) as caught:
        decorate(handle)
    assert str(caught.value) == ("task_type: extractor path 'args.isue.type': handle() has no parameter 'isue' "
                                 "(parameters: issue, items, mode)")
    with pytest.raises(ConfigurationError, match="no parameter 'usr'"):
        agent_otel.agent("a", result_attributes={"x": path("args.usr")})(handle)
    with pytest.raises(ConfigurationError, match="no parameter 'prompt'"):
        agent_otel.provider("openai", prompt=path("args.prompt"))(handle)
    with pytest.raises(ConfigurationError, match="no parameter 'tool'"):
        agent_otel.tool(path("args.tool"))(handle)
    with pytest.raises(ConfigurationError, match="no parameter 'agent'"):
        agent_otel.evolution(path("args.agent"))(handle)

    @agent_otel.agent("a", task_type=path("args.anything"))
    def open_ended(**kwargs: Any) -> None:
        """**kwargs accepts any name, so any args.NAME is fine."""


def test_args_name_reads_a_keyword_argument_gathered_by_kwargs(otel: Any) -> None:
    """``def completion(self, *args, **kwargs)`` (litellm's router, many SDK entry points): ``args.model`` was taken
    at decoration (``**kwargs`` accepts any name) and then always read None, so the model label was "unknown"."""

    class Router:
        model = "the attribute"

        def completion(self, *args: Any, **kwargs: Any) -> str:
            return "ok"

    def gathered(model: str = "the default", **kwargs: Any) -> None:
        """A parameter of that name wins over a key of ``**kwargs``."""

    router = Router()
    assert [Call(signature_of(Router.completion), router, (), {"model": "gpt-4o", "n": 1}).args.get(name)
            for name in ("model", "kwargs", "self")] == ["gpt-4o", {"model": "gpt-4o", "n": 1}, router]
    assert Call(signature_of(gathered), None, (), {"temperature": 0}).args == {
        "model": "the default", "kwargs": {"temperature": 0}, "temperature": 0}
    traced = agent_otel.provider("openai", model=path("args.model"))(Router.completion)
    assert traced(router, model="gpt-4o", messages=[]) == "ok"
    [span] = otel.spans()
    assert span.attributes[semconv.GEN_AI_REQUEST_MODEL] == "gpt-4o"


def test_callable_extractor_sees_the_call(otel: Any) -> None:
    """It sees the call's arguments while the call runs; a view kept past the call holds none of the program's
    objects any more (see Call.release)."""
    seen: list[tuple[Call, dict[str, Any]]] = []

    def task_type(call: Call) -> str:
        seen.append((call, dict(call.args)))
        return f"{call.args['issue'].type.value}-{call.args['mode']}"

    agent_otel.agent("a", task_type=task_type)(handle)(ISSUE, mode="slow")
    assert otel.span("invoke_agent a").attributes[semconv.AGENT_TASK_TYPE] == "lint-slow"
    [(kept, args)] = seen
    assert args == {"issue": ISSUE, "items": None, "mode": "slow"}
    assert kept.args == {}


def test_literals_and_extractors_are_never_confused() -> None:
    assert is_extractor(path("args.x"))
    assert is_extractor(lambda call: 1)
    for literal in ("args.x", 3, None, str, {"a": 1}):
        assert not is_extractor(literal)


def test_arguments_that_do_not_bind_fall_back_to_keywords() -> None:
    call = call_of(1, 2, 3, 4, mode="x")  # too many positionals: binding fails, the call itself will raise
    assert call.args == {"mode": "x"}
    assert path("args.mode")(call) == "x"
    assert path("args.issue")(call) is None


def test_self_paths_read_the_object_whatever_a_method_names_its_first_parameter(otel: Any) -> None:
    """A decorated method is a plain function, which no hook tells it is a method: ``self``/``cls`` first says
    so; any other name, the class of the first call's first argument (holding it as a static method: not)."""

    class Planner:
        role = "planner"

        @agent_otel.agent(path("self.role"))
        def plan(this, task: str) -> str:
            return task

        @classmethod
        @agent_otel.agent(path("self.role"))
        def make(klass, task: str) -> str:
            return task

        @staticmethod
        @agent_otel.agent(path("args.other.role"))
        def compare(other: Any) -> str:
            return "same"

    planner = Planner()
    assert (planner.plan("a"), Planner.plan(planner, "b"), Planner.make("c"), Planner.compare(planner)) == (
        "a", "b", "c", "same")
    assert [span.name for span in otel.spans()] == ["invoke_agent planner"] * 4


def test_a_method_named_otherwise_first_called_through_a_subclass_override_is_still_a_method(otel: Any) -> None:
    """The first call comes through a subclass's override calling ``super().run(...)``: its class holds the override
    first, and the method was decided a function for good, so ``self`` paths read nothing (the kind's name, and a
    counted miss on every call)."""

    class Base:
        name = "alpha"

        @agent_otel.tool(path("self.name"))
        def run(this, x: int) -> int:
            return x

    class Sub(Base):
        name = "beta"

        def run(this, x: int) -> int:
            return super().run(x)

    assert (Sub().run(1), Base().run(2)) == (1, 2)
    assert [span.name for span in otel.spans()] == ["execute_tool beta", "execute_tool alpha"]
    assert error_count(otel, "tool.name") == 0


def test_self_paths_read_the_object_a_property_hands_its_decorated_getter(otel: Any) -> None:
    """A property calls its getter as ``fget(obj)``: no instance for the wrapper, the object is the ``self``
    argument. ``self`` paths read it, as for ``obj.method()`` (before, they found nothing)."""
    import functools

    class Planner:
        role = "planner"

        @property
        @agent_otel.agent(path("self.role"))
        def plan(self) -> dict[str, Any]:
            return {"success": True}

        @functools.cached_property
        @agent_otel.tool(path("self.role"))
        def tools(self) -> list[str]:
            return ["ruff"]

    planner = Planner()
    assert planner.plan == {"success": True}
    assert planner.tools == ["ruff"]
    assert otel.span("invoke_agent planner").attributes[semconv.GEN_AI_AGENT_NAME] == "planner"
    assert otel.span("execute_tool planner").attributes[semconv.GEN_AI_TOOL_NAME] == "planner"
    assert path("self.role")(Call(signature_of(handle), None, (planner,), {})) is None  # no parameter named self


def test_a_path_reads_nothing_of_a_module_or_a_frame_it_reaches(otel: Any) -> None:
    """A program's object holding a module (``self.helpers = os``, a frame kept for debugging) would have led a path to
    ``os.environ`` with no dunder and no interpreter name: a secret as a span attribute and a metric label."""
    import os
    import sys

    class Holder:
        helpers = os
        frame = sys._getframe()

    os.environ["AGENT_OTEL_TEST_SECRET"] = "sk-secret"
    try:
        call = Call(None, Holder(), (), {}, method=False)
        assert path('self.helpers.environ["AGENT_OTEL_TEST_SECRET"]')(call) is None
        assert path("self.helpers.sep")(call) is None
        assert path("self.frame.f_lineno")(call) is None
    finally:
        del os.environ["AGENT_OTEL_TEST_SECRET"]


def test_the_readme_lists_every_interpreter_name_a_path_refuses() -> None:
    from agent_otel._calls.extractors import INTERNAL_NAMES
    from tests.support.paths import ROOT

    readme = (ROOT / "README.md").read_text()
    assert all(f"`{name}`" in readme for name in INTERNAL_NAMES)

