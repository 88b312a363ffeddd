"""`agent-otel check [FILE]`: the table, and an exit status for every kind of mistake (real processes)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.check_output import targets_section

AGENT_OTEL = str(Path(sys.executable).parent / "agent-otel")
APP = """
import asyncio

class Runner:
    class Inner:
        @classmethod
        def build(cls):
            return cls

        @staticmethod
        def helper():
            return 1

    async def run(self):
        return 1

    def stream(self):
        yield 1

class Sub(Runner):
    async def run(self):
        return 2

def plain():
    return 0

VALUE = 3
"""


def table(*rows: tuple[str, str, str, str]) -> list[str]:
    """Columns padded to their widest cell, two spaces apart; the status column is last."""
    rows = (("TARGET", "ENTRY", "CALLABLE", "STATUS"), *rows)
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)) + "  " + row[3]
            for row in rows]


def check(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_OTEL_")}
    environ.update(env or {})
    return subprocess.run([AGENT_OTEL, "check", *args], cwd=cwd, env=environ, capture_output=True, text=True,
                          timeout=60)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "app_under_check.py").write_text(APP)
    return tmp_path


def test_good_file_prints_target_entry_callable_status(project: Path) -> None:
    (project / "agent-otel.toml").write_text(textwrap.dedent("""
        [[job]]
        target = "app_under_check:Runner.run"
        subclasses = true
        [[agent]]
        target = "app_under_check:Runner.Inner.build"
        [[tool]]
        target = "app_under_check:Runner.Inner.helper"
        [[provider]]
        target = "app_under_check:Runner.stream"
        provider = "p"
        [[tool]]
        target = "app_under_check:plain"
        [[agent]]
        target = "app_under_check:Sub.stream"
    """))
    result = check(project)  # found in the current directory; its modules import from there; rows by kind
    assert result.returncode == 0, result.stderr
    assert targets_section(result.stdout) == [*table(
        ("app_under_check:Runner.run", "job[0]", "async method", "ok (+1 subclass override: Sub)"),
        ("app_under_check:Runner.Inner.build", "agent[0]", "classmethod", "ok"),
        # an entry of another kind names the base's method: a call on Sub records as the agent only, not nested
        ("app_under_check:Sub.stream", "agent[1]", "generator method", "ok (inherited from Runner) (its calls on Sub "
         "record as agent[1] only, not also as provider[0]: one entry records each call, the most specific)"),
        ("app_under_check:Runner.stream", "provider[0]", "generator method", "ok"),
        ("app_under_check:Runner.Inner.helper", "tool[0]", "staticmethod", "ok"),
        ("app_under_check:plain", "tool[1]", "function", "ok"),
    ), f"{project / 'agent-otel.toml'}: 6 targets, 6 resolved, 0 errors"]


def test_unresolvable_targets_are_listed_with_why_and_exit_1(project: Path) -> None:
    config = project / "targets.toml"
    config.write_text(textwrap.dedent("""
        [[tool]]
        target = "app_under_check:missing"
        [[tool]]
        target = "app_under_check:VALUE"
        [[tool]]
        target = "app_under_check:Nope.method"
        [[tool]]
        target = "app_under_check:plain.inner"
        [[tool]]
        target = "no_such_module_zc:fn"
        [[tool]]
        target = "app_under_check:Runner.gone"
        [[tool]]
        target = "app_under_check:plain"
        [[tool]]
        target = "datetime:datetime.now"
    """))
    result = check(project, str(config))
    assert result.returncode == 1
    assert targets_section(result.stdout) == [*table(
        ("app_under_check:missing", "tool[0]", "-", "error: module app_under_check has no attribute 'missing'"),
        ("app_under_check:VALUE", "tool[1]", "-", "error: VALUE is 'int', not callable"),
        ("app_under_check:Nope.method", "tool[2]", "-", "error: app_under_check has no attribute 'Nope'"),
        ("app_under_check:plain.inner", "tool[3]", "-", "error: plain is 'function', not a class"),
        ("no_such_module_zc:fn", "tool[4]", "-",
         "error: cannot import no_such_module_zc: ModuleNotFoundError: No module named 'no_such_module_zc'"),
        ("app_under_check:Runner.gone", "tool[5]", "-", "error: class Runner has no attribute 'gone'"),
        ("app_under_check:plain", "tool[6]", "function", "ok"),
        # a built-in type refuses setattr: check said ok, and run then wrapped nothing
        ("datetime:datetime.now", "tool[7]", "-", "error: class datetime is a built-in type, whose attributes "
         "cannot be replaced (setattr refuses); wrap the program's function that calls datetime.now"),
    ), f"{config}: 8 targets, 1 resolved, 7 errors"]


def test_an_args_path_naming_no_parameter_is_an_error_as_run_would_not_wrap_it(project: Path) -> None:
    """Before, check said ok while `agent-otel run` could not wrap the target (it logged why, on a logger that
    shows nothing by default): an args path naming no parameter of the target, or of an override that
    `subclasses = true` wraps."""
    (project / "agent-otel.toml").write_text(textwrap.dedent("""
        [[tool]]
        target = "app_under_check:plain"
        name = { path = "args.tool" }
        [[agent]]
        target = "app_under_check:Runner.run"
        subclasses = true
        result_attributes = { "x" = { path = "args.task" } }
    """))
    result = check(project)
    assert result.returncode == 1, result.stdout
    header, agent, tool = table(
        ("app_under_check:Runner.run", "agent[0]", "-", "error: cannot wrap app_under_check.Runner.run: "
         "result_attributes.x: extractor path 'args.task': Runner.run() has no parameter 'task' "
         "(parameters: self)"),
        ("app_under_check:plain", "tool[0]", "-", "error: cannot wrap app_under_check.plain: name: extractor path "
         "'args.tool': plain() has no parameter 'tool' (parameters: none)"))
    assert targets_section(result.stdout) == [
        header, agent, "    read at call end: result_attributes.x = args.task",
        tool, "    read at call start: name = args.tool",
        f"{project / 'agent-otel.toml'}: 2 targets, 0 resolved, 2 errors"]


def test_a_class_that_refuses_its_attributes_to_be_set_is_an_error_as_run_cannot_wrap_it(project: Path) -> None:
    """A metaclass whose ``__setattr__`` refuses (a frozen class): `run` logged that it could not wrap the method and
    recorded nothing, while check said ok. An Enum's metaclass has a ``__setattr__`` too, which lets a method be set."""
    (project / "frozen_app.py").write_text(textwrap.dedent("""
        import enum

        class Frozen(type):
            def __setattr__(cls, name, value):
                raise AttributeError(f"class {cls.__name__} is frozen")

        class Base(metaclass=Frozen):
            def run(self, x):
                return x

        class Colour(enum.Enum):
            RED = 1

            def describe(self):
                return self.name
    """))
    (project / "agent-otel.toml").write_text(
        '[[tool]]\ntarget = ["frozen_app:Base.run", "frozen_app:Colour.describe"]\n')
    result = check(project)
    assert result.returncode == 1, result.stdout
    assert targets_section(result.stdout) == [*table(
        ("frozen_app:Base.run", "tool[0].target[0]", "-", "error: cannot wrap frozen_app.Base.run: its class refuses "
         "the attribute to be set, as agent-otel run would set it (AttributeError: class Base is frozen)"),
        ("frozen_app:Colour.describe", "tool[0].target[1]", "method", "ok")),
        f"{project / 'agent-otel.toml'}: 2 targets, 1 resolved, 1 error"]


def test_a_class_or_a_descriptor_named_as_a_target_is_refused_with_what_to_name_instead(project: Path) -> None:
    """A class was told to name ``__call__`` whatever it defines (then refused when it had none); a ``partialmethod``,
    ``singledispatchmethod`` or ``cached_property`` was "not callable", with no word of what to do."""
    (project / "shapes.py").write_text(textwrap.dedent("""
        import functools

        class Planner:
            def __init__(self):
                pass

            def plan(self):
                pass

        class Calc:
            def _double(self, x):
                return 2 * x

            double = functools.partialmethod(_double, 2)

            @functools.cached_property
            def total(self):
                return 1
    """))
    (project / "agent-otel.toml").write_text('[[tool]]\ntarget = ["shapes:Planner", "itertools:chain", '
                                             '"shapes:Calc.double", "shapes:Calc.total"]\n')
    result = check(project)
    assert result.returncode == 1, result.stdout
    assert [line.split("  ")[-1].strip() for line in targets_section(result.stdout)[1:5]] == [
        "error: Planner is a class; name one of its methods (Planner.__init__, Planner.plan)",
        "error: chain is a class, which defines no method in Python; name a function that makes or uses it, or a "
        "method it inherits",
        "error: Calc.double is 'partialmethod', not callable; target the function it runs (Calc._double)",
        "error: Calc.total is 'cached_property', not callable; decorate the function it runs in code, under the "
        "decorator that made it"]


def test_a_class_that_ignores_a_set_attribute_or_an_object_failing_to_say_is_one_error_row(project: Path) -> None:
    """A metaclass whose ``__setattr__`` ignores the assignment (no error: `run` cannot wrap the method either), on a
    method the target's class inherits, made check raise out with a traceback; so did a non-callable target whose
    ``__getattr__`` raises (Django's unconfigured ``LazySettings``) when check looked for the function it runs."""
    (project / "quiet_app.py").write_text(textwrap.dedent("""
        class Quiet(type):
            def __setattr__(cls, name, value):
                pass

        class Base(metaclass=Quiet):
            def run(self):
                return 1

        class Sub(Base):
            pass

        class Lazy:
            def __getattr__(self, name):
                raise RuntimeError("settings are not configured")

        settings = Lazy()

        class Wrapping(type):  # keeps what is set, wrapped: `run` wraps the method all the same
            def __setattr__(cls, name, value):
                import functools
                if callable(value):
                    value = functools.wraps(value)(lambda *args, **kwargs: value(*args, **kwargs))
                type.__setattr__(cls, name, value)

        class Kept(metaclass=Wrapping):
            def run(self):
                return 1
    """))
    (project / "agent-otel.toml").write_text(
        '[[tool]]\ntarget = ["quiet_app:Sub.run", "quiet_app:settings", "quiet_app:Kept.run"]\n')
    result = check(project)
    assert (result.returncode, result.stderr) == (1, "")
    assert [line.split("  ")[-1].strip() for line in targets_section(result.stdout)[1:4]] == [
        "error: cannot wrap quiet_app.Sub.run: its class does not keep the attribute set on it (its metaclass's "
        "__setattr__), so agent-otel run cannot put its wrapper there",
        "error: settings is 'Lazy', not callable", "ok"]


def test_a_function_named_twice_is_an_error_as_run_refuses_the_second(project: Path) -> None:
    """A package's re-export (or an alias) of a named function, and an override that ``subclasses = true`` wraps
    named again: `agent-otel run` wraps the first and refuses the second (logged, which shows nothing by default),
    and check said ok for both."""
    (project / "app_alias.py").write_text("from app_under_check import plain as alias\n")
    (project / "agent-otel.toml").write_text(textwrap.dedent("""
        [[tool]]
        target = "app_under_check:plain"
        name = "first"
        [[tool]]
        target = "app_alias:alias"
        name = "second"
        [[agent]]
        target = "app_under_check:Runner.run"
        subclasses = true
        [[agent]]
        target = "app_under_check:Sub.run"
    """))
    result = check(project)
    assert result.returncode == 1, result.stdout
    assert "error: alias is already wrapped for tool[0] (app_under_check:plain); name a function once" in result.stdout
    assert ("error: run is already wrapped for agent[0] (app_under_check:Runner.run); name a function once"
            in result.stdout)
    assert "4 targets, 2 resolved, 2 errors" in result.stdout


@pytest.mark.parametrize(("text", "message"), [
    ('[[agent]]\ntarget = "a.b"\n', "agent[0].target: malformed target 'a.b'; expected \"package.module:function\" "
     "or \"package.module:Class.method\""),
    ('[[agent]]\ntarget = "a:b"\nconfidence = "result.confidence"\n', "agent[0].confidence: expected a number or "
     "{ path = \"...\" }, got a string 'result.confidence' (an extractor is written { path = \"result.confidence\" })"),
    ('[[tool]]\ntarget = "a:b"\nnmae = "x"\n', "tool[0].nmae: unknown key; did you mean 'name'?"),
    ('[[tool]]\ntarget = "a:b"\nname = { path = "args..x" }\n', "tool[0].name: extractor path 'args..x': "
     "expected a parameter name at character 5"),
    ("[[tool]\n", "invalid TOML: Expected ']]' at the end of an array declaration (at line 1, column 7)"),
    ("x = " + "[" * 5_000 + "]" * 5_000 + "\n", "invalid TOML: arrays or inline tables nested too deeply"),
    ("[[tool]]\ntarget = \"a:b\"\nname = " + "{ a = " * 5_000 + "1" + " }" * 5_000 + "\n",
     "invalid TOML: arrays or inline tables nested too deeply"),
])
def test_invalid_file_exits_2_with_one_message(project: Path, text: str, message: str) -> None:
    config = project / "bad.toml"
    config.write_text(text)
    result = check(project, str(config))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == f"agent-otel: {config}: {message}\n"


def test_missing_file_and_no_file(project: Path) -> None:
    result = check(project, "absent.toml")
    assert (result.returncode, result.stderr) == (2, "agent-otel: absent.toml: no such file\n")
    result = check(project)
    assert result.returncode == 2
    assert result.stderr == ("agent-otel: no configuration found: pass FILE, set AGENT_OTEL_CONFIG, or create "
                             "agent-otel.toml (or [tool.agent-otel] in pyproject.toml) in the current directory\n")
    result = check(project, env={"AGENT_OTEL_CONFIG": "gone.toml"})
    assert (result.returncode, result.stderr) == (2, "agent-otel: AGENT_OTEL_CONFIG='gone.toml': no such file\n")


def test_the_file_may_be_named_with_config_as_run_takes_it(project: Path) -> None:
    """``agent-otel run --config FILE`` and ``agent-otel check FILE``: ``check --config FILE`` was refused by argparse
    (exit 2, "unrecognized arguments"; probe p49g)."""
    (project / "checked.toml").write_text('[[tool]]\ntarget = "app_under_check:plain"\n')
    by_option, by_argument = check(project, "--config", "checked.toml"), check(project, "checked.toml")
    assert by_option.returncode == 0, by_option.stderr
    assert targets_section(by_option.stdout) == targets_section(by_argument.stdout)
    both = check(project, "checked.toml", "--config", "other.toml")
    assert (both.returncode, both.stderr) == (2, "agent-otel: check: two configuration files given, checked.toml and "
                                                 "--config other.toml: give one\n")


def test_pyproject_table_is_checked(project: Path) -> None:
    (project / "pyproject.toml").write_text('[tool.agent-otel]\n[[tool.agent-otel.tool]]\n'
                                            'target = "app_under_check:plain"\ntype = 3\n')
    result = check(project)
    assert result.returncode == 2
    assert result.stderr == (f"agent-otel: {project / 'pyproject.toml'}: tool.agent-otel.tool[0].type: expected a "
                             "string or { path = \"...\" }, got an integer (3)\n")


def test_each_extractor_is_listed_with_when_it_is_read(project: Path) -> None:
    (project / "agent-otel.toml").write_text(textwrap.dedent("""
        [[agent]]
        target = "app_under_check:Runner.run"
        task_type = { path = "self.kind" }
        success = { path = "result.state", equals = "success" }
        remaining_issues = { path = "self.queue", at = "start" }
        result_attributes = { "run.note" = { path = "result.note" } }
        [[provider]]
        target = "app_under_check:Runner.stream"
        provider = "p"
        input_tokens = { path = "self.usage.input", delta = true }
        [[tool]]
        target = "app_under_check:plain"
    """))
    result = check(project)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    run = lines.index(next(line for line in lines if line.startswith("app_under_check:Runner.run ")))
    assert lines[run + 1:run + 3] == [
        "    read at call start: task_type = self.kind, remaining_issues = self.queue",
        "    read at call end: success = result.state, result_attributes.run.note = result.note"]
    stream = lines.index(next(line for line in lines if line.startswith("app_under_check:Runner.stream ")))
    assert lines[stream + 1] == "    read at start and end (delta): input_tokens = self.usage.input"
    plain = lines.index(next(line for line in lines if line.startswith("app_under_check:plain ")))
    assert not lines[plain + 1].startswith("    ")  # only literals: nothing is read


def test_a_reader_that_stops_reading_gets_no_traceback(project: Path) -> None:
    """`agent-otel check | head -1`: before, the closed pipe ended check with a BrokenPipeError traceback."""
    (project / "agent-otel.toml").write_text('[[tool]]\ntarget = "app_under_check:plain"\n')
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_OTEL_")}
    child = subprocess.Popen([AGENT_OTEL, "check"], cwd=project, env=environ, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stderr is not None
    child.stdout.close()  # the reader is gone before check writes a line
    assert child.wait(timeout=60) == 1
    assert child.stderr.read() == ""


@pytest.mark.parametrize("environment", [{"PYTHONIOENCODING": "ascii"},
                                         {"LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONIOENCODING": ""}],
                         ids=["ascii", "posix-locale"])
def test_names_an_ascii_output_cannot_encode_are_shown_escaped(project: Path, environment: dict[str, str]) -> None:
    """``def sücher`` is a valid name: with ``PYTHONIOENCODING=ascii`` the table raised UnicodeEncodeError with a
    traceback, and exited 1 as for a config with errors. So did the POSIX locale without UTF-8 mode (its stdout's
    ``surrogateescape`` fails on such a character as ``strict`` does) after that was fixed."""
    (project / "app_under_check.py").write_text(APP + "\ndef sücher():\n    return 1\n", encoding="utf-8")
    (project / "agent-otel.toml").write_text('[[tool]]\ntarget = "app_under_check:sücher"\nname = "grün"\n',
                                             encoding="utf-8")
    result = check(project, env=environment)
    assert (result.returncode, result.stderr) == (0, "")
    assert "app_under_check:s\\xfccher" in result.stdout and "1 resolved, 0 errors" in result.stdout


def test_a_builtin_target_is_refused_by_check_and_run_which_hung_on_it(project: Path) -> None:
    """``builtins:len``: check said ok, and `agent-otel run` hung for good (agent-otel's own bookkeeping calls
    len under a lock, through the wrapper, which took the lock again; only SIGKILL stopped it)."""
    (project / "agent-otel.toml").write_text('[[tool]]\ntarget = "builtins:len"\n')
    (project / "app.py").write_text("print(len([1, 2]))\n")
    expected = ("tool[0].target: 'builtins:len' is a built-in function, which agent-otel, the OpenTelemetry SDK and "
                "every library call")
    result = check(project)
    assert result.returncode == 2 and expected in result.stderr, result.stderr
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_OTEL_")}
    ran = subprocess.run([AGENT_OTEL, "run", "--", sys.executable, "app.py"], cwd=project, env=environ,
                         capture_output=True, text=True, timeout=60)
    assert ran.returncode == 2 and expected in ran.stderr and ran.stdout == "", ran.stderr


def test_a_module_that_exits_when_imported_is_a_target_error_not_checks_exit(project: Path) -> None:
    """A module that calls sys.exit() on import (its API key unset): check printed only the module's message and
    exited with the module's code, without its table."""
    (project / "needs_key.py").write_text('import sys\nsys.exit("API_KEY is not set")\ndef search(q):\n    return q\n')
    (project / "agent-otel.toml").write_text(textwrap.dedent("""
        [[tool]]
        target = "needs_key:search"
        [[tool]]
        target = "app_under_check:plain"
    """))
    result = check(project)
    assert result.returncode == 1, result.stdout + result.stderr
    header, first, second = table(
        ("needs_key:search", "tool[0]", "-", "error: cannot import needs_key: SystemExit: API_KEY is not set"),
        ("app_under_check:plain", "tool[1]", "function", "ok"))
    assert targets_section(result.stdout) == [header, first, second,
                                              f"{project / 'agent-otel.toml'}: 2 targets, 1 resolved, 1 error"]


def test_a_self_path_on_a_callable_called_with_no_object_is_an_error(project: Path) -> None:
    """``self.*`` on a function, a static method, a partial or a callable object a class holds read nothing at
    every call (the name fell back, counted at tool.name), and check said ok; on a method or a class method it reads
    the object or the class."""
    (project / "selfless.py").write_text(textwrap.dedent("""
        import functools

        class Named:
            name = "n"
            def __call__(self, q):
                return q

        def plain(q):
            return q

        class Client:
            name = "c"
            def create(self, q):
                return q

        create = Client().create  # a method bound already: self is its object

        class Queue(list):
            name = "q"

        push = Queue().append  # a built-in method bound already: the wrapper is given no object for it

        class Anything:
            # a callable object whose __getattr__ answers every name (check printed a traceback)
            name = "a"
            def __call__(self, q):
                return q
            def __getattr__(self, attribute):
                return lambda *args: None

        anything = Anything()

        class Holder:
            name = "h"
            part = functools.partial(plain)
            obj = Named()
            bound = Client().create

            @staticmethod
            def static(q):
                return q

            @classmethod
            def klass(cls, q):
                return q

            def method(self, q):
                return q
    """))
    targets = ("plain", "Holder.static", "Holder.part", "Holder.obj", "Holder.klass", "Holder.method", "create",
               "Holder.bound", "push", "anything")
    (project / "agent-otel.toml").write_text("".join(
        f'[[tool]]\ntarget = "selfless:{target}"\nname = {{ path = "self.name" }}\n' for target in targets))
    rows = {line.split()[0]: line for line in targets_section(check(project).stdout) if line.startswith("selfless:")}
    for target, shape in (("plain", "a function"), ("Holder.static", "a staticmethod"),
                          ("Holder.part", "a callable partial"), ("Holder.obj", "a callable Named"),
                          ("push", "a function")):
        assert (f"extractor path 'self.name': selfless.{target} is called with no object ({shape}), so self names "
                "nothing") in rows[f"selfless:{target}"], rows
    assert rows["selfless:Holder.klass"].endswith("classmethod  ok")
    assert rows["selfless:Holder.method"].endswith("method       ok")
    assert rows["selfless:create"].endswith(" ok") and rows["selfless:Holder.bound"].endswith(" ok"), rows
    assert "selfless.anything is called with no object" in rows["selfless:anything"], rows  # (no traceback)


def test_what_a_wrapper_would_not_see_is_noted(project: Path) -> None:
    """Three targets check said plain ok to, whose calls `run` records none or not as meant (probe p49c): a pydantic
    validator (validation calls the function the schema kept), a method subclasses override without ``subclasses =
    true`` (an abstract one's calls are all overrides'), a ``@contextmanager`` function (the making of the manager
    is timed, not the block)."""
    (project / "shapes.py").write_text(textwrap.dedent("""
        import abc
        import contextlib

        from pydantic import BaseModel, field_validator

        class Order(BaseModel):
            qty: int

            @field_validator("qty")
            @classmethod
            def check_qty(cls, value):
                return value

        class Base(abc.ABC):
            @abc.abstractmethod
            def run(self): ...

        class Impl(Base):
            def run(self):
                return 1

        @contextlib.contextmanager
        def step():
            yield
    """))
    (project / "agent-otel.toml").write_text(textwrap.dedent("""
        [[tool]]
        target = ["shapes:Order.check_qty", "shapes:step"]
        [[agent]]
        target = "shapes:Base.run"
    """))
    result = check(project)
    assert result.returncode == 0, result.stderr
    assert targets_section(result.stdout) == [*table(
        ("shapes:Base.run", "agent[0]", "method",
         "ok (overridden by Impl: their calls are not recorded; subclasses = true wraps them too)"),
        ("shapes:Order.check_qty", "tool[0].target[0]", "classmethod",
         "ok (pydantic runs it as Order's field validator, from the function it kept when the class was made: the "
         "calls validation makes are not recorded; decorate the def with agent-otel's decorator, under the "
         "@field_validator (and any @classmethod))"),
        ("shapes:step", "tool[0].target[1]", "function",
         "ok (it makes a context manager (@contextmanager): the calls recorded are the making of it, not the with "
         "block; decorate the generator with agent-otel's decorator (above or under @contextmanager) to time the "
         "block)"),
    ), f"{project / 'agent-otel.toml'}: 3 targets, 3 resolved, 0 errors"]
