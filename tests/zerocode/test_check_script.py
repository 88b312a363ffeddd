"""`agent-otel check` and targets in the program's own script: without --script they are left to
`agent-otel run` (not an error); with --script they resolve against the script's source, which is read,
never run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.check_output import targets_section

AGENT_OTEL = str(Path(sys.executable).parent / "agent-otel")
LATER = "resolved when the script run by `agent-otel run` defines it"
SCRIPT = '''
import json
from json import dumps
from os.path import join as joined

open(MARKER, "w").close()  # never runs: check reads the script, it does not run it


class Base:
    async def run(self, task):
        return task

    def stream(self):
        yield 1


class Agent(Base):
    class Inner:
        @staticmethod
        def helper():
            return 1

    @classmethod
    def build(cls):
        return cls()


def main():
    pass


handler = main
'''


def table(*rows: tuple[str, str, str, str]) -> list[str]:
    rows = (("TARGET", "ENTRY", "CALLABLE", "STATUS"), *rows)
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)) + "  " + row[3]
            for row in rows]


def check(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_OTEL_")}
    return subprocess.run([AGENT_OTEL, "check", *args], cwd=cwd, env=environ, capture_output=True, text=True,
                          timeout=60)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(SCRIPT.replace("MARKER", repr(str(tmp_path / "ran"))))
    return tmp_path


def write_config(project: Path, *targets: str) -> Path:
    file = project / "agent-otel.toml"
    file.write_text("[[agent]]\ntarget = [" + ", ".join(f'"{target}"' for target in targets) + "]\n")
    return file


def test_without_a_script_main_targets_are_left_to_the_launcher_and_are_no_error(project: Path) -> None:
    config = write_config(project, "__main__:main", "__main__:Agent.run", "json:dumps")
    result = check(project)
    assert (result.returncode, result.stderr) == (0, "")
    assert targets_section(result.stdout) == [*table(
        ("__main__:main", "agent[0].target[0]", "-", LATER),
        ("__main__:Agent.run", "agent[0].target[1]", "-", LATER),
        ("json:dumps", "agent[0].target[2]", "function", "ok"),
    ), f"{config}: 3 targets, 1 resolved, 2 resolved when the script runs, 0 errors"]  # not agent-otel's __main__


def test_with_a_script_they_resolve_against_its_source_without_running_it(project: Path) -> None:
    config = write_config(project, "__main__:main", "app:Agent.run", "__main__:Agent.stream",
                          "__main__:Agent.Inner.helper", "__main__:Agent.build", "__main__:dumps", "__main__:joined",
                          "__main__:handler")
    result = check(project, "--script", "app.py")
    assert (result.returncode, result.stderr) == (0, "")
    assert targets_section(result.stdout) == [*table(
        ("__main__:main", "agent[0].target[0]", "function", "ok (in app.py)"),
        ("app:Agent.run", "agent[0].target[1]", "async method", "ok (in app.py, inherited from Base)"),
        ("__main__:Agent.stream", "agent[0].target[2]", "generator method", "ok (in app.py, inherited from Base)"),
        ("__main__:Agent.Inner.helper", "agent[0].target[3]", "staticmethod", "ok (in app.py)"),
        ("__main__:Agent.build", "agent[0].target[4]", "classmethod", "ok (in app.py)"),
        ("__main__:dumps", "agent[0].target[5]", "function", "ok (imported by app.py from json)"),
        ("__main__:joined", "agent[0].target[6]", "function", "ok (imported by app.py from os.path)"),
        ("__main__:handler", "agent[0].target[7]", "-",
         "resolved when the script runs (app.py line 32 binds 'handler')"),
    ), f"{config}: 8 targets, 7 resolved, 1 resolved when the script runs, 0 errors"]
    assert not (project / "ran").exists()


def test_the_script_named_by_two_entries_is_an_error_and_by_one_entrys_list_is_not(project: Path) -> None:
    """``__main__:main`` and ``app:main`` reach one function under `agent-otel run`: two entries naming it are one too
    many, as `run` says (check said ok to both, and `run` refused one); two names in one entry's list are one target,
    wrapped once (where `run` reported the second)."""
    config = project / "agent-otel.toml"
    config.write_text('[[agent]]\ntarget = "__main__:main"\n[[tool]]\ntarget = "app:main"\n')
    result = check(project, "--script", "app.py")
    assert result.returncode == 1
    assert targets_section(result.stdout) == [*table(
        ("__main__:main", "agent[0]", "function", "ok (in app.py)"),
        ("app:main", "tool[0]", "-",
         "error: main is already wrapped for agent[0] (__main__:main); name a function once"),
    ), f"{config}: 2 targets, 1 resolved, 1 error"]
    write_config(project, "__main__:main", "app:main")
    result = check(project, "--script", "app.py")
    assert result.returncode == 0
    assert targets_section(result.stdout) == [*table(
        ("__main__:main", "agent[0].target[0]", "function", "ok (in app.py)"),
        ("app:main", "agent[0].target[1]", "function", "ok (in app.py)"),
    ), f"{config}: 2 targets, 2 resolved, 0 errors"]


def test_targets_the_script_does_not_define_are_errors_with_why(project: Path) -> None:
    config = write_config(project, "__main__:mian", "__main__:Agent.gone", "__main__:main.inner", "__main__:Agent",
                          "__main__:main")
    (project / "ext.py").write_text("from json import JSONDecoder\n\nclass Mine(JSONDecoder):\n    pass\n")
    (project / "ext.toml").write_text('[[tool]]\ntarget = "__main__:Mine.decode"\n')
    result = check(project, "--script", "app.py")
    assert result.returncode == 1
    assert targets_section(result.stdout) == [*table(
        ("__main__:mian", "agent[0].target[0]", "-", "error: app.py defines no top-level function or class 'mian'"),
        ("__main__:Agent.gone", "agent[0].target[1]", "-", "error: class Agent in app.py has no method 'gone'"),
        ("__main__:main.inner", "agent[0].target[2]", "-", "error: main is a function, not a class"),
        ("__main__:Agent", "agent[0].target[3]", "-",
         "error: Agent is a class; name one of its methods (Agent.build)"),
        ("__main__:main", "agent[0].target[4]", "function", "ok (in app.py)"),
    ), f"{config}: 5 targets, 1 resolved, 4 errors"]
    result = check(project, "ext.toml", "--script", "ext.py")
    assert result.returncode == 1
    assert result.stdout.splitlines()[1].endswith(
        "error: class Mine in ext.py has no method 'decode'; its bases JSONDecoder are not classes of the script "
        "(check resolves the script's own code without running it)")


@pytest.mark.parametrize(("script", "message"), [
    ("absent.py", "absent.py: cannot read (No such file or directory)"),
    ("broken.py", "broken.py: not a Python script (invalid syntax (broken.py, line 1))"),
])
def test_a_script_that_cannot_be_read_exits_2(project: Path, script: str, message: str) -> None:
    write_config(project, "__main__:main")
    (project / "broken.py").write_text("def f(:\n")
    result = check(project, "--script", script)
    assert (result.returncode, result.stdout, result.stderr) == (2, "", f"agent-otel: {message}\n")


def test_a_method_the_script_assigns_after_its_class_is_resolved_when_it_runs(tmp_path: Path) -> None:
    """``Agent.run = _run`` after ``class Agent``, which ``run`` wraps after that assignment: check called it an
    error ("class Agent in late.py has no method 'run'")."""
    (tmp_path / "late.py").write_text("class Agent:\n    pass\n\ndef _run(self):\n    return 1\n\nAgent.run = _run\n")
    config = write_config(tmp_path, "__main__:Agent.run")
    result = check(tmp_path, "--script", "late.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert targets_section(result.stdout) == [*table(
        ("__main__:Agent.run", "agent[0].target[0]", "-",
         "resolved when the script runs (late.py line 7 sets Agent.run)"),
    ), f"{config}: 1 target, 0 resolved, 1 resolved when the script runs, 0 errors"]


def test_a_script_target_gets_the_checks_run_makes_when_it_wraps_it(tmp_path: Path) -> None:
    """With --script, a property and an args path naming no parameter were ok (run refused both, and counted the
    errors at autoinstrument.target); by import they were errors. The script is read, never run."""
    (tmp_path / "app.py").write_text(
        "class Agent:\n"
        "    @property\n"
        "    def p(self):\n"
        "        return 1\n\n"
        "    def run(self, task):\n"
        "        return task\n\n"
        "    def plan(self, task, *, budget=3):\n"
        "        return task\n\n"
        "    @staticmethod\n"
        "    def helper(q):\n"
        "        return q\n\n"
        "def adds_timeout(f):\n"
        "    return f\n\n"
        "@adds_timeout\n"
        "def decorated(x):\n"
        "    return x\n\n"
        "@adds_timeout\n"
        "def decorated_too(x):\n"
        "    return x\n\n"
        "raise SystemExit('the script is never run by check')\n")
    (tmp_path / "agent-otel.toml").write_text(
        '[[agent]]\ntarget = "__main__:Agent.p"\n'
        '[[tool]]\ntarget = "__main__:Agent.run"\nname = { path = "args.zzz" }\n'
        '[[tool]]\ntarget = "__main__:Agent.plan"\nname = { path = "args.budget" }\n'
        '[[tool]]\ntarget = "__main__:Agent.helper"\nname = { path = "self.name" }\n'
        '[[tool]]\ntarget = "__main__:decorated"\nname = { path = "args.timeout" }\n'
        '[[agent]]\ntarget = "__main__:decorated_too"\nname = { path = "self.name" }\n')
    result = check(tmp_path, "--script", "app.py")
    rows = targets_section(result.stdout)
    assert result.returncode == 1, result.stdout + result.stderr
    by_entry = {row.split()[1]: row for row in rows if row.startswith("__main__:")}
    assert "error: Agent.p is a property, which a config file cannot wrap" in by_entry["agent[0]"], rows
    assert ("error: cannot wrap __main__.Agent.run: name: extractor path 'args.zzz': Agent.run() has no parameter "
            "'zzz' (parameters: self, task)") in by_entry["tool[0]"], rows
    assert by_entry["tool[1]"].endswith("ok (in app.py)"), rows  # (the keyword-only parameter is one)
    assert "extractor path 'self.name': __main__.Agent.helper is called with no object (a staticmethod)" in by_entry[
        "tool[2]"]
    # another decorator may give the function parameters its source does not declare (a timeout=): only run knows
    # them, and check says it did not check the path (it said ok, and run wrapped nothing: probe p52b); but no
    # decorator gives a module function a self
    assert by_entry["tool[3]"].endswith("ok (in app.py, args.timeout not checked: a decorator over it may change its "
                                        "parameters; run wraps nothing if one names none)"), rows
    assert "__main__.decorated_too is called with no object (a function)" in by_entry["agent[1]"], rows


def test_a_target_decorated_with_agent_otels_own_decorator_is_said_to_be_left_to_it(tmp_path: Path) -> None:
    """A function the script decorates with agent-otel's decorator: run leaves it to that decorator, the config
    entry's options unused; check said only ok (probe p52b)."""
    (tmp_path / "app.py").write_text(
        "import abc\nimport functools\nimport agent_otel\nfrom agent_otel import tool as traced, carry\n\n"
        "@agent_otel.tool('decorated')\ndef work(n):\n    return n\n\n"
        "@traced('also')\ndef other(n):\n    return n\n\n"
        "class C:\n    @agent_otel.tool('over_class')\n    @classmethod\n    def k(cls, n):\n        return n\n\n"
        "    @agent_otel.agent('base')\n    def run(self, n):\n        return n\n\n"
        "def plain(n):\n    return n\n\n"
        "@functools.lru_cache\n@agent_otel.tool('under_a_cache')\ndef cached(n):\n    return n\n\n"
        "@carry\ndef carried(n):\n    return n\n\n"
        "@agent_otel.job\ndef bare(n):\n    return n\n\n"
        "class D:\n    @abc.abstractmethod\n    @agent_otel.tool('under_abstract')\n    def m(self, n):\n"
        "        return n\n")
    (tmp_path / "agent-otel.toml").write_text("".join(
        f'[[{kind}]]\ntarget = "__main__:{name}"\n{extra}' for kind, name, extra in (
            ("tool", "work", ""), ("tool", "other", ""), ("tool", "C.k", ""), ("tool", "plain", ""),
            ("tool", "cached", ""), ("tool", "carried", ""), ("agent", "C.run", "subclasses = true\n"),
            ("tool", "bare", ""), ("tool", "D.m", ""))))
    result = check(tmp_path, "--script", "app.py")
    by_entry = {row.split()[1]: row for row in targets_section(result.stdout) if row.startswith("__main__:")}
    assert result.returncode == 0, result.stdout + result.stderr
    for entry, written in (("tool[0]", "agent_otel.tool"), ("tool[1]", "traced"), ("tool[2]", "agent_otel.tool"),
                           ("tool[7]", "agent_otel.tool")):
        assert by_entry[entry].endswith(f"in app.py, decorated with @{written} in its source: run leaves it to "
                                        "that decorator, and this entry does nothing)"), by_entry
    # run wraps these: a plain function; one under another decorator, whose object the name holds (review rv68);
    # carry(), no wrapper of a call; a method a subclass may override (subclasses = true); a decorator used bare, which
    # leaves a proxy of its own under the name (review rv69)
    for entry in ("tool[3]", "tool[4]", "tool[5]", "agent[0]", "tool[6]"):
        assert "this entry does nothing" not in by_entry[entry], by_entry


REGISTRY_NOTE = ("decorated with @weather.tool_plain: if it registers the function (a route, a tool), the calls "
                 "through that registry are not recorded; decorate the def with agent-otel's decorator instead")


AWAITABLE_NOTE = ("returns Handler, an awaitable that is no coroutine or future: the call ends as it returns, not when "
                  "that is awaited; name the function that awaits it")
RUNS = '''FUTURE
import asyncio
import typing


class Handler(typing.Generic[typing.TypeVar("T")]):  # LlamaIndex's WorkflowHandler: awaitable, no future
    def __await__(self):
        return asyncio.sleep(0).__await__()


class Agent:
    def run(self) -> Handler[int]:
        return Handler()

    def scheduled(self) -> asyncio.Task[int]:
        return asyncio.ensure_future(asyncio.sleep(0, 1))

    async def arun(self) -> int:
        return await self.run()

    def plain(self) -> typing.Any:
        return None

    def either(self, stream: bool = False) -> typing.Awaitable[int] | Handler[int]:  # Agent Framework's Agent.run
        return Handler() if stream else self.arun()

    def awaited(self) -> typing.Awaitable[int]:  # a coroutine is one: nothing to say
        return self.arun()
'''


def test_a_sync_method_returning_an_awaitable_that_is_no_coroutine_or_future_gets_a_note(tmp_path: Path) -> None:
    """LlamaIndex's ``FunctionAgent.run`` returns a ``WorkflowHandler``: awaitable, neither coroutine nor future, so a
    call of ours on it ends as it returns (the agent span 3 ms long, its outcome success when the run failed), where
    check said only ok. The return annotation is read as written (a string under ``from __future__ import
    annotations`` is looked up in the module, never evaluated), each member of a union; ``Awaitable`` itself (a
    coroutine is one) gets none: Agent Framework's ``Agent.run`` was said to return one that is no coroutine."""
    (tmp_path / "evaluated.py").write_text(RUNS.replace("FUTURE", ""))
    (tmp_path / "postponed.py").write_text(RUNS.replace("FUTURE", "from __future__ import annotations"))
    targets = [f"{module}:Agent.{name}" for module in ("evaluated", "postponed")
               for name in ("run", "scheduled", "arun", "plain", "either", "awaited")]
    (tmp_path / "agent-otel.toml").write_text("[[agent]]\ntarget = [" + ", ".join(f'"{t}"' for t in targets) + "]\n")
    result = check(tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    statuses = {line.split()[0]: line.split("  ")[-1].strip() for line in targets_section(result.stdout)[1:-1]}
    assert statuses == {target: f"ok ({AWAITABLE_NOTE})" if target.endswith((".run", ".either")) else "ok"
                        for target in targets}


BURR_ACTIONS = '''
from burr.core import State, action


@action(reads=[], writes=["count"])
def count(state: State) -> State:
    return state.update(count=state.get("count", 0) + 1)
'''


#: A decorator that keeps the function and whose framework calls it by name (Django REST framework's ``@action``).
KEPT_AND_CALLED_BY_NAME = '''
class Mapper(dict):
    def __init__(self, action):
        super().__init__(get=action.__name__)
        self.action = action


def route(func):
    func.mapping = Mapper(func)
    return func


@route
def chat(question):
    return question
'''


def test_a_function_its_decorator_keeps_gets_a_note(tmp_path: Path) -> None:
    """Burr's ``@action`` returns the function with an action of its own on it (``action_function``) that keeps the
    function, and the application runs the function from there: a config target naming it wrapped the name (the
    wrapper carries the attribute, which Burr finds), and the runs recorded nothing, where check said only ok. A
    decorator not known to run the function it keeps gets a note saying it may."""
    (tmp_path / "actions.py").write_text(BURR_ACTIONS)
    (tmp_path / "agent-otel.toml").write_text('[[tool]]\ntarget = "actions:count"\n')
    result = check(tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    [row] = targets_section(result.stdout)[1:-1]
    assert row.endswith("ok (its attribute 'action_function' keeps the function, and Burr's @action runs the function "
                        "from there: calls through it are not recorded; decorate the def with agent-otel's decorator "
                        "under it)"), row
    (tmp_path / "routes.py").write_text(KEPT_AND_CALLED_BY_NAME)
    (tmp_path / "agent-otel.toml").write_text('[[agent]]\ntarget = "routes:chat"\n')
    [row] = targets_section(check(tmp_path).stdout)[1:-1]
    assert row.endswith("ok (its attribute 'mapping' keeps the function: if its framework runs the function from "
                        "there, calls through it are not recorded; decorate the def with agent-otel's decorator under "
                        "the decorator that set it)"), row


def test_a_function_a_decorator_may_have_registered_is_ok_with_a_note(tmp_path: Path) -> None:
    """pydantic-ai's ``@agent.tool_plain`` keeps the function it registers, which the agent calls: a config target on
    it (in a module or the script) wraps the name, and the agent's calls recorded nothing, where check said only ok.
    A decorator known to keep no such reference (``functools.lru_cache``) gets no note, nor does one that made the
    function a wrapper of it (LlamaIndex's ``@dispatcher.span``: a tracing decorator, on most of its methods)."""
    registry = '''
import functools
from pydantic_ai import Agent
from pydantic_ai.models.test import TestModel

weather = Agent(TestModel())


@weather.tool_plain
def lookup(city: str) -> str:
    return city


@functools.lru_cache
def cached(city: str) -> str:
    return city


class Dispatcher:
    def span(self, func):
        @functools.wraps(func)
        def traced(*args, **kwargs):
            return func(*args, **kwargs)
        return traced


dispatcher = Dispatcher()


@dispatcher.span
def traced(city: str) -> str:
    return city
'''
    (tmp_path / "tools.py").write_text(registry)
    (tmp_path / "app.py").write_text(registry)
    config = tmp_path / "agent-otel.toml"
    config.write_text('[[tool]]\ntarget = ["tools:lookup", "tools:cached", "__main__:lookup", "__main__:cached", '
                      '"tools:traced"]\n')
    result = check(tmp_path, "--script", "app.py")
    assert (result.returncode, result.stderr) == (0, "")
    assert targets_section(result.stdout) == [*table(
        ("tools:lookup", "tool[0].target[0]", "function", f"ok ({REGISTRY_NOTE})"),
        ("tools:cached", "tool[0].target[1]", "callable _lru_cache_wrapper", "ok"),
        ("__main__:lookup", "tool[0].target[2]", "function", f"ok (in app.py, {REGISTRY_NOTE})"),
        ("__main__:cached", "tool[0].target[3]", "function", "ok (in app.py)"),
        ("tools:traced", "tool[0].target[4]", "function", "ok"),
    ), f"{config}: 5 targets, 5 resolved, 0 errors"]


def test_a_function_its_decorator_makes_an_object_that_cannot_be_called_is_refused_as_run_would_find_it(
        tmp_path: Path) -> None:
    """LangChain's ``@tool`` (Haystack's, CrewAI's) makes the function a tool object that cannot be called: check said
    a script's function under it was ok, while run found no callable there and wrapped nothing, saying so only on the
    program's logging. What the decorator makes is read off the decorator (its class, or its return annotation), so
    the script is still never run; a decorator that makes a callable tool (smolagents') or may make either is left
    as run finds it, with a note for the second."""
    (tmp_path / "helpers.py").write_text('''
from collections.abc import Callable


class Box:
    pass


class Runner:
    def __call__(self) -> None:
        pass


def boxed(function: Callable[..., object]) -> Box | Runner:
    return Runner()
''')
    script = '''
import langchain_core.tools as lc
from langchain_core.tools import tool
from smolagents import tool as smol_tool
from helpers import boxed


@tool
def lookup(city: str) -> str:
    """Weather for a city."""
    return city


@tool("weather")
def named(city: str) -> str:
    """Weather for a city."""
    return city


@lc.tool
def dotted(city: str) -> str:
    """Weather for a city."""
    return city


@smol_tool
def smol(city: str) -> str:
    """Weather for a city.

    Args:
        city: the city
    """
    return city


@boxed
def maybe(city: str) -> str:
    return city
'''
    (tmp_path / "app.py").write_text(script)
    (tmp_path / "tools.py").write_text(script.partition("@lc.tool")[0])
    config = tmp_path / "agent-otel.toml"
    targets = ["__main__:lookup", "__main__:named", "__main__:dotted", "__main__:smol", "__main__:maybe",
               "tools:lookup"]
    config.write_text("[[tool]]\ntarget = [" + ", ".join(f'"{target}"' for target in targets) + "]\n")
    result = check(tmp_path, "--script", "app.py")
    assert (result.returncode, result.stderr) == (1, "")

    def made(name: str, decorator: str) -> str:
        return (f"error: {name} is made a 'BaseTool' by @{decorator} (langchain_core.tools), not callable: run finds "
                f"nothing to wrap; decorate the def with agent-otel's decorator under @{decorator}")

    assert targets_section(result.stdout) == [*table(
        ("__main__:lookup", "tool[0].target[0]", "-", made("lookup", "tool")),
        ("__main__:named", "tool[0].target[1]", "-", made("named", "tool")),
        ("__main__:dotted", "tool[0].target[2]", "-", made("dotted", "lc.tool")),
        ("__main__:smol", "tool[0].target[3]", "function", "ok (in app.py)"),
        ("__main__:maybe", "tool[0].target[4]", "function",
         "ok (in app.py, @boxed (helpers) may make it a 'Box', not callable: then run finds nothing to wrap; decorate "
         "the def with agent-otel's decorator under @boxed)"),
        ("tools:lookup", "tool[0].target[5]", "-", "error: lookup is 'StructuredTool', not callable; decorate the "
         "function it runs in code, under the decorator that made it"),
    ), f"{config}: 6 targets, 2 resolved, 4 errors"]
