"""One option table per kind: the decorators, the config schema, configured defaults and the README
tables all agree with it, and the decorators keep the decorated function's type."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import re
import subprocess
import sys
import textwrap
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import agent_otel
from agent_otel import ConfigurationError
from agent_otel._calls import options
from agent_otel._calls.extractors import Path as ExtractorPath
from agent_otel._calls.readme_tables import marked_kinds, render_readme
from agent_otel._zerocode import config
from agent_otel._zerocode.patching import build_handler
from agent_otel.testing import capture_telemetry
from tests.support.paths import ROOT

DECORATORS: dict[str, Callable[..., Any]] = {"agent": agent_otel.agent, "provider": agent_otel.provider,
                                             "tool": agent_otel.tool, "evolution": agent_otel.evolution,
                                             "job": agent_otel.job, "phase": agent_otel.phase}


def parameters(decorator: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    """The decorator's keywords by option parameter name (``**name`` for a var-keyword one);
    ``**unknown`` only turns a typo into a ConfigurationError and is no option."""
    found = {}
    for parameter in inspect.signature(decorator).parameters.values():
        if parameter.kind is parameter.VAR_KEYWORD:
            if parameter.name != "unknown":
                found[f"**{parameter.name}"] = parameter
        else:
            found[parameter.name] = parameter
    return found


@pytest.mark.parametrize("kind", DECORATORS)
def test_each_decorator_signature_is_its_table(kind: str) -> None:
    table = {option.parameter: option for option in options.KINDS[kind].values() if option.decorator}
    signature = parameters(DECORATORS[kind])
    assert list(signature) == [name for name in signature if name in table]  # no keyword the table lacks
    assert set(signature) == set(table)
    for name, parameter in signature.items():
        option = table[name]
        if parameter.kind is parameter.VAR_KEYWORD:
            continue
        if option.required:
            assert parameter.default is parameter.empty, name
            assert parameter.kind is parameter.POSITIONAL_OR_KEYWORD, name
        else:
            assert parameter.default == option.default, name


def test_every_kind_has_a_table_and_config_reads_them_all() -> None:
    assert config.KINDS == tuple(options.KINDS) == (
        "job", "phase", "agent", "provider", "tool", "evolution", "fallback", "retry", "rollback")
    for kind, table in options.KINDS.items():
        assert list(config.SCHEMA[kind]) == list(table)
        assert config.REQUIRED[kind] == tuple(name for name, option in table.items()
                                              if option.required and not option.config_default)
        for name, option in table.items():
            assert option.name == name
            assert option.doc, f"{kind}.{name} has no doc"


def parse_entry(kind: str, **keys: Any) -> config.TargetSpec | str:
    """One ``[[kind]]`` entry with its required keys filled in, parsed; or its error."""
    entry: dict[str, Any] = {"target": "pkg.mod:Class.method"}
    for name in config.REQUIRED[kind]:
        entry.setdefault(name, "x")
    entry.update(keys)
    try:
        [spec] = config.parse_config({kind: [entry]}, "t.toml").targets
    except ConfigurationError as exc:
        return str(exc)
    return spec


def entry_error(kind: str, **keys: Any) -> str | None:
    parsed = parse_entry(kind, **keys)
    return parsed if isinstance(parsed, str) else None


@pytest.mark.parametrize("kind", options.KINDS)
def test_config_takes_an_extractor_exactly_where_the_table_says(kind: str) -> None:
    for name, option in options.KINDS[kind].items():
        parsed = parse_entry(kind, **{name: {"path": "args.x"}})
        if option.extractor:
            assert not isinstance(parsed, str), f"{kind}.{name}: {parsed}"
            assert parsed.options[name] == agent_otel.path("args.x")
        elif not isinstance(parsed, str):  # a table option may read it as a table with a key "path"
            assert not isinstance(parsed.options.get(name), ExtractorPath), f"{kind}.{name}"
            assert option.accepts in (options.Accepts.ATTRIBUTES, options.Accepts.COUNTS, options.Accepts.EXTRACTORS)
        else:
            assert parsed.startswith(f"t.toml: {kind}[0].{name}"), parsed


@pytest.mark.parametrize("kind", options.KINDS)
def test_config_reads_result_paths_only_for_keys_read_when_the_call_ends(kind: str) -> None:
    for name, option in options.KINDS[kind].items():
        if not option.extractor:
            continue
        error = entry_error(kind, **{name: {"path": "result.x"}})
        if not option.used_at_end:
            assert error == (f"t.toml: {kind}[0].{name}: extractor path 'result.x' reads the result but this key "
                             "is read when the call starts; use a path rooted at args or self")
        else:
            assert error is None, f"{kind}.{name}: {error}"


@pytest.mark.parametrize("kind", ["agent", "provider", "tool", "evolution", "phase"])
def test_decorators_require_what_the_table_requires(kind: str) -> None:
    required = [option for option in options.KINDS[kind].values() if option.required and option.decorator]
    assert required
    with pytest.raises(ConfigurationError, match=f"{kind}\\(\\): {required[0].name} is required"):
        DECORATORS[kind]("")(lambda: None)  # (phase() refuses it here: as a with block, it names the phase "phase")


@pytest.mark.parametrize("kind", ["agent", "provider", "tool", "evolution"])
def test_a_decorator_written_without_parentheses_is_refused_where_it_is_written(kind: str) -> None:
    """``@agent_otel.tool`` took the function as its name, a callable extractor, and every call of the program's
    function then raised (the decorator was called with its arguments)."""
    [required] = [option.name for option in options.KINDS[kind].values() if option.required and option.decorator]
    expected = re.escape(f"agent_otel.{kind}() takes the {required} first")
    module = types.ModuleType("bare")
    with pytest.raises(ConfigurationError, match=expected + r".*function search being defined"):
        exec(compile(f"import agent_otel\n@agent_otel.{kind}\ndef search(q):\n    return q\n", "bare.py", "exec"),
             vars(module))
    with pytest.raises(ConfigurationError, match=expected + r".*function .*Tools.search being defined"):
        class Tools:
            @DECORATORS[kind]
            def search(self, q: str) -> str:
                return q
    with pytest.raises(ConfigurationError, match=expected + r".*<locals>.search being defined"):
        @DECORATORS[kind]
        def search(q: str) -> str:
            return q


@pytest.mark.parametrize("kind", ["agent", "provider", "tool", "evolution"])
def test_a_function_of_the_program_given_as_the_name_is_refused(kind: str) -> None:
    """``agent_otel.tool(add)``, where ``agent_otel.tool("add")(add)`` was meant, took ``add`` as a callable extractor
    of the name and returned a decorator: handed to Google ADK as a tool, it failed deep in ADK's schema building
    (probe p50b). A function that cannot take the one argument an extractor gets is refused, with the call to write."""
    [required] = [option.name for option in options.KINDS[kind].values() if option.required and option.decorator]

    def add(a: int, b: int) -> int:
        return a + b

    expected = (re.escape(f"agent_otel.{kind}() takes the {required} first") +
                r".*function .*add cannot be called with one argument.*" + re.escape(f'agent_otel.{kind}("...")(add)'))
    with pytest.raises(ConfigurationError, match=expected):
        DECORATORS[kind](add)


def test_an_extractor_under_a_decorator_that_supplies_an_argument_is_still_one(otel: Any) -> None:
    """``inspect.signature`` follows ``__wrapped__`` to the inner function, which takes two arguments: the wrapper,
    which takes the one an extractor gets, was refused (review rv64)."""
    def suffixed(func: Callable[[Any, str], str]) -> Callable[[Any], str]:
        @functools.wraps(func)
        def wrapper(call: Any) -> str:
            return func(call, "v2")
        return wrapper

    @suffixed
    def tool_name(call: Any, suffix: str) -> str:
        return f"search-{suffix}"

    @agent_otel.tool(tool_name)
    def search(q: str) -> str:
        return q

    assert search("q") == "q"
    assert [span.name for span in otel.spans()] == ["execute_tool search-v2"]


def name_of(call: Any) -> str:
    return "from-module"


def _make_extractor() -> Callable[[Any], str]:
    def made(call: Any) -> str:
        return "made"
    return made


def test_a_callable_name_is_still_an_extractor(otel: Any) -> None:
    def local_name(call: Any) -> str:
        return "local"

    for extractor in (name_of, local_name, _make_extractor(), lambda call: "lambda"):
        @agent_otel.tool(extractor)
        def search(q: str) -> str:
            return q

        assert search("q") == "q"
    assert [span.name for span in otel.spans()] == [
        "execute_tool from-module", "execute_tool local", "execute_tool made", "execute_tool lambda"]


class ReadOnly:
    """A descriptor of the program's with a setter that refuses: a data descriptor, no function."""

    def __get__(self, instance: object, owner: type | None = None) -> int:
        return 42

    def __set__(self, instance: object, value: object) -> None:
        raise AttributeError("read-only")


def seven(self: object) -> int:
    return 7


@pytest.mark.parametrize(("made", "problem"), [
    (lambda: type("Tool", (), {}), "Tool: it is a class; decorate one of its methods (its __init__ records "
                                   "building one)"),
    (lambda: property(seven), "seven: it is a property, not a function; decorate the function it runs (put the "
                              "decorator under @property)"),
    (lambda: functools.cached_property(seven), "seven: it is a cached_property, not a function; decorate the "
                                               "function it runs (put the decorator under @functools.cached_property)"),
    # what a framework's decorator made (LangChain's @tool): the hint says where ours goes, not @property
    (lambda: ReadOnly(), "ReadOnly: it is ReadOnly, not a function; decorate the function it runs (put "
                         "agent-otel's decorator under the one that made it, next to the def)"),
    (lambda: 3, "int: it is int, not a function"),
])
def test_a_decorator_refuses_what_it_would_change_as_a_config_file_refuses_it(made: Callable[[], Any],
                                                                              problem: str) -> None:
    """A class came back as a proxy (its type, identity, pickling and subclassing changed); a property or another
    data descriptor lost its setter and read-only check, a cached_property its cache; none recorded a call."""
    for name, decorator in (("tool", agent_otel.tool("t")), ("agent", agent_otel.agent("a")),
                            ("job", agent_otel.job(type="t")), ("phase", agent_otel.phase("plan")),
                            ("conversation", agent_otel.conversation("c-1"))):
        with pytest.raises(ConfigurationError, match=re.escape(f"agent_otel.{name}() cannot decorate {problem}")):
            decorator(made())
    assert agent_otel.tool("t")(classmethod(len))  # a class or static method object is a function's holder


def test_decorating_a_wrapper_of_the_same_kind_again_replaces_it(otel: Any) -> None:
    """A notebook cell or a Streamlit script run again decorates its own result again: each run nested one more
    wrapper, so one call counted twice, then three times (Streamlit's cached agent, 5 reruns of one call each: 15
    agent calls for 5). The new decorator replaces the old one of its kind; another kind's still wraps it (an agent
    used as a tool is both)."""
    from opentelemetry import trace

    def lookup(key: str) -> str:
        return key.upper()

    plain = lookup
    for _ in range(3):  # the cell `lookup = agent_otel.tool("lookup")(lookup)`, run three times
        lookup = agent_otel.tool("lookup")(lookup)
    assert lookup("k") == "K" and lookup.__wrapped__ is plain

    class Agent:
        def run(self, question: str) -> str:
            return f"answer {question}"

    cached = Agent()  # st.cache_resource's: the same object on every rerun
    for _ in range(3):
        cached.run = agent_otel.agent("support")(cached.run)  # type: ignore[method-assign]
    assert cached.run("q") == "answer q"

    def step() -> dict[str, bool]:
        return {"success": True}

    for _ in range(2):
        step = agent_otel.job(type="turn")(step)
    step()

    holder = staticmethod(agent_otel.tool("helper")(plain))
    again = agent_otel.tool("helper")(holder)
    assert isinstance(again, staticmethod) and again.__func__ is plain  # one wrapper, around the function itself

    @contextlib.contextmanager
    def session() -> Iterator[int]:
        yield 5

    for _ in range(3):  # above @contextmanager: its generator is decorated, the manager made again
        session = agent_otel.tool("session")(session)
    with session() as opened:
        assert opened == 5

    class Planner:
        @agent_otel.agent("planner")
        def plan(self) -> dict[str, bool]:
            return {"success": True}

        @agent_otel.agent("drafter")
        async def draft(self) -> dict[str, bool]:
            return {"success": True}

        @agent_otel.tool("steps")
        def steps(self) -> Iterator[int]:
            yield 1

        @agent_otel.tool("make")
        @classmethod
        def make(cls) -> str:
            return cls.__name__

    planner = Planner()
    planner.plan = agent_otel.agent("planner")(planner.plan)  # type: ignore[method-assign]  # (bound, of the class's)
    planner.draft = agent_otel.agent("drafter")(planner.draft)  # type: ignore[method-assign]
    planner.steps = agent_otel.tool("steps")(planner.steps)  # type: ignore[method-assign]
    make = agent_otel.tool("make")(Planner.make)
    planner.plan()
    assert asyncio.run(planner.draft()) == {"success": True}
    assert list(planner.steps()) == [1] and make() == "Planner"

    as_tool = agent_otel.tool("researcher")(agent_otel.agent("researcher")(plain))
    as_tool("x")
    names = [span.name for span in otel.spans()]
    assert names.count("execute_tool lookup") == 1 and names.count("invoke_agent support") == 1
    assert names.count("invoke_workflow turn") == 1 and names.count("execute_tool session") == 1
    assert [names.count(name) for name in ("invoke_agent planner", "invoke_agent drafter", "execute_tool steps",
                                           "execute_tool make")] == [1, 1, 1, 1]
    researcher = {span.name: span for span in otel.spans() if "researcher" in span.name}
    assert sorted(researcher) == ["execute_tool researcher", "invoke_agent researcher"]
    tool_span = researcher["execute_tool researcher"].context
    assert researcher["invoke_agent researcher"].parent is not None and (
        researcher["invoke_agent researcher"].parent.span_id == tool_span.span_id)
    assert trace.get_current_span() is trace.INVALID_SPAN


def test_a_function_its_decorator_keeps_is_refused_above_it_and_recorded_under_it() -> None:
    """Burr's ``@action`` keeps the function in an action it sets on it (``action_function``), and Burr's application
    runs the function from there: agent-otel's decorator above it made a wrapper that carried the attribute over, which
    Burr found and ran past, and no run was recorded, with no error. It is refused, saying where the decorator goes;
    under ``@action`` each run is recorded."""
    from burr.core import ApplicationBuilder, State, action

    with pytest.raises(ConfigurationError, match=re.escape(
            "<locals>.count: its attribute 'action_function' keeps the function, and Burr's @action "
            "runs the function from there, never this wrapper; put agent-otel's decorator under it, next to the def")):
        @agent_otel.tool("count")
        @action(reads=[], writes=["count"])
        def count(state: State) -> State:
            return state.update(count=state["count"] + 1)

    @action(reads=["count"], writes=["count"])
    @agent_otel.tool("count")
    def counted(state: State) -> State:
        return state.update(count=state["count"] + 1)

    with capture_telemetry() as otel:
        app = ApplicationBuilder().with_actions(counted=counted).with_transitions(
            ("counted", "counted")).with_state(count=0).with_entrypoint("counted").build()
        for _ in range(3):
            app.step()
        assert app.state["count"] == 3
        assert [span.name for span in otel.spans()] == ["execute_tool count"] * 3


def test_a_function_another_decorator_keeps_and_calls_by_name_is_decorated_as_any() -> None:
    """A decorator may keep the function in an object it sets on it and still call the function by its name (Django
    REST framework's ``@action`` keeps it in ``mapping``; its router looks the method up on the view): only the
    frameworks known to run the kept function refuse agent-otel's decorator above theirs. A first version refused
    every such function, and a DRF view's class body failed."""

    class Mapper(dict):  # DRF's MethodMapper: a dict that keeps the action
        def __init__(self, action: Callable[..., Any]) -> None:
            super().__init__(get=action.__name__)
            self.action = action

    def route(func: Callable[..., Any]) -> Callable[..., Any]:
        func.mapping = Mapper(func)  # type: ignore[attr-defined]
        return func

    class View:
        @agent_otel.agent("chat")
        @route
        def chat(self, question: str) -> str:
            return question.upper()

    with capture_telemetry() as otel:
        view = View()
        assert getattr(view, View.chat.mapping["get"])("hi") == "HI"  # how the router calls it
        assert [span.name for span in otel.spans()] == ["invoke_agent chat"]


class Owner:
    def method(self) -> None: ...


@pytest.mark.parametrize("kind", ["agent", "provider", "tool", "evolution", "job", "phase"])
def test_configured_targets_get_the_table_defaults(kind: str) -> None:
    parsed = config.parse_config({kind: [{"target": "pkg.mod:Owner.method",
                                          **{name: "x" for name in config.REQUIRED[kind] if name != "target"}}],
                                  "instrumentation": {"evolution_resources": False}})
    [spec] = parsed.targets
    handler = build_handler(spec, parsed, Owner.method, Owner, "method", "pkg.mod.Owner.method")
    if kind == "job":
        assert (handler.job_id, handler.job_type) == (options.JOB["id"].default, options.JOB["type"].default)
        return
    expected = {**options.defaults(kind), **dict(spec.options)}
    for option in options.KINDS[kind].values():
        if option.config_default:
            expected[option.name] = "Owner" if option.config_default == "owner" else "method"
    if kind == "evolution":
        expected["sample_resources"] = False  # the [instrumentation] switch wins over the table default
    assert handler.options == expected


def test_the_readme_option_tables_are_generated_from_the_tables() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert sorted(marked_kinds(readme)) == sorted([*options.KINDS, "config"])
    assert render_readme(readme) == readme, "run: python -m agent_otel._calls.readme_tables README.md"


def test_a_drifted_readme_table_is_found() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    drifted = readme.replace("| `task_type` |", "| `task_kind` |", 1)
    assert drifted != readme
    assert render_readme(drifted) == readme


def _mypy(arguments: list[str]) -> tuple[str, int]:
    done = subprocess.run([sys.executable, "-m", "mypy", *arguments], capture_output=True, text=True, timeout=300)
    return done.stdout, done.returncode


def test_decorated_functions_keep_their_type(tmp_path: Path) -> None:
    """What a user's type checker sees: every decorator returns the function's own type."""
    user_code = tmp_path / "user_code.py"
    user_code.write_text(textwrap.dedent("""
        import agent_otel
        from agent_otel import path

        @agent_otel.agent("a", task_type=path("args.kind"))
        def handle(kind: str, retries: int = 0) -> dict[str, bool]:
            return {"success": True}

        @agent_otel.provider("openai", model="gpt-4o")
        async def complete(prompt: str) -> str:
            return prompt

        @agent_otel.tool("ruff")
        def lint(target: str) -> list[str]:
            return [target]

        @agent_otel.evolution("a")
        def evolve() -> None: ...

        @agent_otel.job(type="nightly")
        def nightly(n: int) -> int:
            return n

        with agent_otel.job(type="t") as current:
            reveal_type(current)
        reveal_type(handle)
        reveal_type(complete)
        reveal_type(lint)
        reveal_type(evolve)
        reveal_type(nightly)
        handle(3)
    """), encoding="utf-8")
    # in a subprocess: mypy raises this interpreter's recursion limit and never puts it back
    stdout, status = _mypy(["--strict", "--no-incremental", "--cache-dir", str(tmp_path / "cache"),
                            "--config-file", "", str(user_code)])
    revealed = [line.split("Revealed type is ")[1] for line in stdout.splitlines() if "Revealed type" in line]
    assert revealed == [
        '"agent_otel._calls.job.job"',
        '"def (kind: str, retries: int =) -> dict[str, bool]"',
        '"def (prompt: str) -> typing.Coroutine[Any, Any, str]"',
        '"def (target: str) -> list[str]"',
        '"def ()"',
        '"def (n: int) -> int"',
    ], stdout
    errors = [line for line in stdout.splitlines() if ": error:" in line]
    line = user_code.read_text(encoding="utf-8").splitlines().index("handle(3)") + 1
    assert errors == [f'{user_code}:{line}: error: Argument 1 to "handle" has incompatible type "int"; '
                      'expected "str"  [arg-type]'], stdout
    assert status == 1


#: A literal of the wrong kind, and one of the right kind, for each kind of option a decorator takes.
BAD_LITERALS: dict[options.Accepts, Any] = {
    options.Accepts.STRING: 3, options.Accepts.BOOLEAN: "yes", options.Accepts.NUMBER: "high",
    options.Accepts.STRING_OR_INT: 1.5, options.Accepts.COUNT: -1, options.Accepts.NAMES: 3,
    options.Accepts.KPIS: {"accuracy": "high"}, options.Accepts.COUNTS: {"lines": -1},
    options.Accepts.EXTRACTORS: {"kind": 3}}
GOOD_LITERALS: dict[options.Accepts, Any] = {
    options.Accepts.STRING: "x", options.Accepts.BOOLEAN: True, options.Accepts.NUMBER: 0.5,
    options.Accepts.STRING_OR_INT: 7, options.Accepts.COUNT: 2, options.Accepts.NAMES: ["x"],
    options.Accepts.KPIS: {"accuracy": 0.9}, options.Accepts.COUNTS: {"lines": 2}, options.Accepts.EXTRACTORS: {}}
#: The kinds whose wrong literal in a file each call still reads in code (a string option reads str(value), a
#: boolean one its truth, a static item of result_attributes is set as it is): code takes it, as it always did.
READ_BY_EACH_CALL = frozenset({options.Accepts.STRING, options.Accepts.BOOLEAN, options.Accepts.STRING_OR_INT,
                               options.Accepts.EXTRACTORS})
DECORATOR_OPTIONS = [(kind, option) for kind in DECORATORS for option in options.KINDS[kind].values()
                     if option.decorator and option.name != "attributes"]


#: An error's key path after the option's name (a table's item), and what it expected (without how its source
#: writes an extractor, ``or { path = "..." }`` in a file, ``or an extractor`` in code).
PROBLEM = r'(\S*): expected (.+?)(?: or .*| \{ path = "\.\.\." \})?, got .*'


def decorate(kind: str, **keywords: Any) -> Any:
    """The decorator of ``kind`` with its required options given (a job has none), unless ``keywords`` give them."""
    required = {option.parameter: "x" for option in options.KINDS[kind].values()
                if option.required and option.decorator}
    return DECORATORS[kind](**{**required, **keywords})


@pytest.mark.parametrize(("kind", "option"), DECORATOR_OPTIONS,
                         ids=[f"{kind}.{option.name}" for kind, option in DECORATOR_OPTIONS])
def test_a_decorator_refuses_the_literal_the_config_file_refuses(kind: str, option: options.Option) -> None:
    """Decorators checked only that a table option got a mapping: tool("t", files_created=-1), job(type=3) or
    agent("a", success="yes") were taken, and the same key in a config file was an error. Both run one check."""
    bad, good = BAD_LITERALS[option.accepts], GOOD_LITERALS[option.accepts]
    file_error = entry_error(kind, **{option.name: bad})
    in_file = re.fullmatch(rf"t\.toml: {kind}\[0\]\.{option.name}{PROBLEM}", file_error or "")
    assert in_file, file_error
    if option.accepts in READ_BY_EACH_CALL and option.name != "conversation":
        decorate(kind, **{option.parameter: bad})  # each call reads it: code takes it
        return
    with pytest.raises(ConfigurationError) as raised:
        # a job is a with-block too, whose conversation id is the program's run-time value (counted, as in
        # conversation()): it refuses one when it decorates
        decorate(kind, **{option.parameter: bad})(lambda: None)
    decorator_error = str(raised.value)
    if option.name != "conversation":  # its own check, which also refuses an empty id (check_conversation_id)
        # the same key (a table's item too) and the same problem, each writing an extractor and a value its way
        in_code = re.fullmatch(rf"{kind}\(\): {option.parameter}{PROBLEM}", decorator_error)
        assert in_code, decorator_error
        assert in_code.group(1, 2) == in_file.group(1, 2)
    decorate(kind, **{option.parameter: good})
    assert entry_error(kind, **{option.name: good}) is None


def test_the_reported_literals_name_the_decorator_the_keyword_and_the_problem() -> None:
    with pytest.raises(ConfigurationError, match=r"^tool\(\): files_created: expected a non-negative integer or an "
                                                 r"extractor, got int -1$"):
        agent_otel.tool("t", files_created=-1)
    with pytest.raises(ConfigurationError, match=r"^agent\(\): confidence: expected a number or an "
                                                 r"extractor, got str 'high'$"):
        agent_otel.agent("a", confidence="high")  # type: ignore[arg-type]
    agent_otel.tool("t", files_created=["a.py", "b.py"])  # a collection counts its length, as before
    agent_otel.agent("a", patterns="tdd", confidence=agent_otel.path("result.score"))


@pytest.mark.parametrize(("kind", "name", "bad", "expected"), [
    ("agent", "confidence", 3, "a number in [0, 1]"), ("agent", "confidence", -0.1, "a number in [0, 1]"),
    ("agent", "confidence", float("nan"), "a number in [0, 1]"), ("provider", "cost", -1, "a number >= 0"),
])
def test_a_number_outside_what_the_kind_reads_is_refused_in_code_and_in_a_file(kind: str, name: str, bad: float,
                                                                               expected: str) -> None:
    """agent(confidence=3) or confidence = 3 in a file was taken, and dropped at every call (the span had no
    agent.confidence, an error was counted): the kind reads a confidence in [0, 1] and a cost >= 0 only."""
    with pytest.raises(ConfigurationError, match=rf"^{kind}\(\): {name}: expected {re.escape(expected)} or an "
                                                 "extractor, got "):
        decorate(kind, **{name: bad})
    assert (entry_error(kind, **{name: bad}) or "").startswith(
        f't.toml: {kind}[0].{name}: expected {expected} or {{ path = "..." }}, got ')
    for good in (0, 1, 0.5):
        decorate(kind, **{name: good})
        assert entry_error(kind, **{name: good}) is None


def test_a_literal_of_another_numeric_type_is_taken_and_recorded(otel: Any) -> None:
    """A decorator literal is checked, not retyped: a Decimal, a Fraction or a numpy number is a number, and a
    numpy integer a count, as each call has always read them (a program that gave one must still import)."""
    import decimal
    import fractions

    import numpy

    from agent_otel import semconv

    @agent_otel.agent("numbers", confidence=decimal.Decimal("0.25"), files_created=numpy.int64(2))
    def with_decimal() -> dict[str, bool]:
        return {"success": True}

    @agent_otel.agent("fractions", confidence=fractions.Fraction(1, 2))
    def with_fraction() -> dict[str, bool]:
        return {"success": True}

    @agent_otel.provider("openai", cost=numpy.float32(0.5))
    def with_numpy() -> dict[str, str]:
        return {"model": "m"}

    with_decimal(), with_fraction(), with_numpy()
    assert otel.span("invoke_agent numbers").attributes[semconv.AGENT_CONFIDENCE] == pytest.approx(0.25)
    assert otel.span("invoke_agent fractions").attributes[semconv.AGENT_CONFIDENCE] == pytest.approx(0.5)


def test_a_manual_calls_run_time_values_are_never_raised_into_its_block(otel: Any) -> None:
    """agent_call(), provider_call(), evolution_run() and tool_call() take the program's values at run time
    (a version read from a file, a model from an enum): each call reads them as it always has. The decorators'
    literal check raised ConfigurationError (naming agent(), not agent_call()) out of the host's own code."""
    import enum

    from agent_otel import semconv

    class Model(enum.Enum):
        GPT = "gpt-4o"

    with agent_otel.agent_call("planner", version=1.5, prompt_version=2.0, task_type=Model.GPT):
        pass
    with agent_otel.provider_call("openai", model=Model.GPT):
        pass
    with agent_otel.evolution_run("planner", version_from=1.5, evaluations={"accuracy": 1}.keys()):
        pass
    with agent_otel.tool_call("search", agent=Model.GPT):
        pass
    assert otel.span("invoke_agent planner").attributes[semconv.GEN_AI_AGENT_VERSION] == "1.5"
    assert {span.name for span in otel.spans()} >= {"invoke_agent planner", "execute_tool search"}


def test_a_number_no_float_holds_is_refused_naming_the_decorator_the_keyword_and_the_problem() -> None:
    """float() of the literal raised out of the check: agent("a", confidence=10**400) was an OverflowError ("int too
    large to convert to float"), Decimal("sNaN") a ValueError, an int of more digits than repr() writes another,
    none of them naming the decorator or the keyword (each call drops such a value: it is no number it reads)."""
    import decimal

    for bad in (10**400, decimal.Decimal("sNaN"), 10**5000):
        with pytest.raises(ConfigurationError, match=r"^agent\(\): confidence: expected a number in \[0, 1\] or an "
                                                     r"extractor, got (int|Decimal) "):
            agent_otel.agent("a", confidence=bad)
    with pytest.raises(ConfigurationError, match=r"^evolution\(\): kpis_before\.accuracy: expected a number, got int "):
        agent_otel.evolution("e", kpis_before={"accuracy": 10**400})


def test_a_literal_each_call_reads_is_taken_in_code_though_a_file_would_refuse_it(otel: Any) -> None:
    """Code gives richer values than TOML: each call reads a float version as its text, a numeric string as a
    number, 2.0 as a count, 1 as true and an Enum member as its text, and records them. The literal check that
    made decorators as strict as the file refused them, which would stop a program that ran from importing (and a
    `with job(type=...)` block from running)."""
    import enum

    from agent_otel import semconv

    class Role(enum.Enum):
        PLANNER = "planner"

    @agent_otel.agent("reader", version=1.5, confidence="0.5", files_created=2.0, success=1,
                      task_type=Role.PLANNER)
    def handle() -> dict[str, Any]:
        return {}

    handle()
    with agent_otel.job(type=Role.PLANNER):  # type: ignore[arg-type]
        pass
    attributes = otel.span("invoke_agent reader").attributes
    assert attributes[semconv.AGENT_CONFIDENCE] == pytest.approx(0.5)
    assert attributes[semconv.GEN_AI_AGENT_VERSION] == "1.5"
    assert attributes[semconv.AGENT_OUTCOME] == "success"
    assert entry_error("agent", version=1.5) is not None  # a file's float is no version: its TOML has types


def test_a_literal_no_call_reads_as_its_option_means_is_refused_in_code_too(tmp_path: Path) -> None:
    """Taken in code, then dropped at every call (a count of 1.5) or recorded as its repr (a model named
    ``['gpt-4o']``, priced nothing, a span ``execute_tool ['search']``); ``job(id=...)`` (the config file's name)
    became a span attribute and the job got a random id; ``set_prices(replace="no")`` dropped the shipped table."""
    for keywords in ({"input_tokens": 1.5}, {"model": ["gpt-4o"]}, {"model": {"name": "gpt-4o"}}):
        with pytest.raises(ConfigurationError, match=f"^provider\\(\\): {next(iter(keywords))}: expected"):
            agent_otel.provider("openai", **keywords)
    with pytest.raises(ConfigurationError, match=r"^tool\(\): name: expected a string"):
        agent_otel.tool(["search"])  # type: ignore[arg-type]
    for misnamed, keyword in (("id", "job_id"), ("job_type", "type")):
        with pytest.raises(ConfigurationError, match=f"job\\(\\): {misnamed}= is no option of job\\(\\): write "
                                                     f"{keyword}="):
            agent_otel.job(**{misnamed: "order-42"})
    with agent_otel.job(attributes={"id": "order-42"}):  # a span attribute of that name, said as one
        pass
    with pytest.raises(ConfigurationError, match="set_prices\\(\\): replace: expected True or False, got str 'no'"):
        agent_otel.set_prices({}, replace="no")  # type: ignore[arg-type]
    agent_otel.provider("openai", model="gpt-4o", input_tokens=2.0)  # a whole number each call reads


def test_non_ascii_names_are_names_in_paths_and_a_byte_order_mark_is_no_statement(otel: Any, tmp_path: Path) -> None:
    """``def f(größe)`` is valid Python (PEP 3131): its parameter could not be read (``unexpected 'ö'``). A config
    file saved with a byte order mark (as Windows editors save UTF-8) was invalid TOML at line 1, column 1."""
    from agent_otel import semconv

    @agent_otel.tool("measure", type=agent_otel.path("args.größe"))
    def measure(größe: str) -> int:
        return 1

    measure("XL")
    assert otel.span("execute_tool measure").attributes[semconv.GEN_AI_TOOL_TYPE] == "XL"
    config = tmp_path / "agent-otel.toml"
    config.write_bytes(b"\xef\xbb\xbf" + '[[tool]]\ntarget = "m:f"\nname = { path = "args.ключ" }\n'.encode())
    assert [(spec.target, spec.options["name"].text) for spec in agent_otel.load_config(config).targets] == [
        ("m:f", "args.ключ")]
