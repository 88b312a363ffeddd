"""Targets in the program's own script: `agent-otel run -- python app.py` wraps what app.py defines
(`__main__:name` or `app:name`), `python -m shop.cli` wraps `shop.cli:name`, and the program sees
exactly what plain python shows it: output, exit status, tracebacks and their line numbers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.otlp_receiver import OtlpHttpReceiver, attributes_of
from tests.support.polling import wait_until

AGENT_OTEL = str(Path(sys.executable).parent / "agent-otel")
SCRIPT_APP = Path(__file__).with_name("script_app")


def environment(receiver: OtlpHttpReceiver | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENT_OTEL_", "PYTHON"))}
    env.update(OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none", OTEL_TRACES_EXPORTER="none")
    if receiver is not None:
        env.update(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
                   OTEL_TRACES_EXPORTER="otlp")
    return env


def plain(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=cwd, env=environment(None), capture_output=True, text=True,
                          timeout=60)


def launched(cwd: Path, config: str, *args: str, receiver: OtlpHttpReceiver | None = None
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AGENT_OTEL, "run", "--config", config, "--", sys.executable, *args], cwd=cwd,
                          env=environment(receiver), capture_output=True, text=True, timeout=60)


def outcome(result: subprocess.CompletedProcess[str]) -> tuple[int, str, str]:
    return result.returncode, result.stdout, result.stderr


def spans_named(receiver: OtlpHttpReceiver, count: int) -> list[tuple[str, dict[str, Any]]]:
    wait_until(lambda: len(receiver.spans()) >= count, f"{count} spans")
    return sorted(((span.name, attributes_of(span)) for span in receiver.spans()), key=lambda item: item[0])


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """A copy of tests/zerocode/script_app, so that no __pycache__ is written into the repository."""
    folder = tmp_path / "script_app"
    shutil.copytree(SCRIPT_APP, folder)
    return folder


def test_functions_and_methods_of_the_script_are_traced_and_the_program_sees_plain_python(app: Path) -> None:
    with OtlpHttpReceiver() as receiver:
        result = launched(app, "agent-otel.toml", "app.py", "plan", "fix", receiver=receiver)
        assert outcome(result) == outcome(plain(app, "app.py", "plan", "fix"))
        assert result.stdout.splitlines() == [
            "__main__ A program whose agent, tool and entry point live in the script itself (run as `python app.py`)."
            " ['app.py', 'plan', 'fix'] ['Agent', 'lookup', 'main', 'sys']",
            "[{'task': 'plan', 'success': True}, {'task': 'fix', 'success': True}]"]
        spans = spans_named(receiver, 5)
    assert [name for name, _ in spans] == ["execute_tool lookup"] * 2 + ["invoke_agent Agent"] * 2 + [
        "invoke_agent main"]
    assert {attrs["code.function.name"] for _, attrs in spans} == {"__main__.Agent.run", "__main__.main",
                                                                   "app.lookup"}
    assert {attrs["agent.task.type"] for name, attrs in spans if name.startswith("invoke_agent")} == {"script"}
    main_span = next(span for span in receiver.spans() if span.name == "invoke_agent main")
    children = [span for span in receiver.spans() if span.parent_span_id == main_span.span_id]
    assert len(children) == 2  # Agent.run under main: the calls made after the definitions are wrapped


def test_exit_status_and_a_traceback_with_the_scripts_line_numbers_are_those_of_plain_python(app: Path) -> None:
    with OtlpHttpReceiver() as receiver:
        result = launched(app, "agent-otel.toml", "app.py", "exit", receiver=receiver)
        assert outcome(result) == outcome(plain(app, "app.py", "exit"))
        assert result.returncode == 3
        failed = launched(app, "agent-otel.toml", "app.py", "ok", "fail", receiver=receiver)
        assert outcome(failed) == outcome(plain(app, "app.py", "ok", "fail"))  # no launcher or wrapper frame
        spans = spans_named(receiver, 8)
    assert failed.returncode == 1
    script = str(app / "app.py")
    assert failed.stderr.splitlines()[1:3] == [f'  File "{script}", line 28, in <module>',
                                               "    sys.exit(main(sys.argv[1:]))"]
    assert failed.stderr.endswith("LookupError: no answer for 'fail'\n")
    assert ("execute_tool lookup", "LookupError") in {(name, attrs.get("error.type")) for name, attrs in spans}


POOLED_FAILURE = """\
from concurrent.futures import ThreadPoolExecutor, wait


def evaluate(candidate):
    raise ValueError(f"candidate {candidate} crashed")


with ThreadPoolExecutor(1) as pool:
    future = pool.submit(evaluate, "c1")
    wait([future])  # result() of a future that is done: the same lines of concurrent.futures either way
    future.result()
"""


def test_a_traceback_through_a_thread_pool_has_no_frame_of_the_thread_context_wrapper(tmp_path: Path) -> None:
    """The launcher carries the trace context into threads by wrapping what they run: its frames are a wrapper's."""
    (tmp_path / "pooled.py").write_text(POOLED_FAILURE)
    (tmp_path / "agent-otel.toml").write_text('[[tool]]\ntarget = "__main__:evaluate"\n')
    failed = launched(tmp_path, "agent-otel.toml", "pooled.py")
    assert outcome(failed) == outcome(plain(tmp_path, "pooled.py"))
    assert failed.stderr.endswith("ValueError: candidate c1 crashed\n")


THREAD_FAILURE = """\
import threading


def evaluate(candidate):
    raise ValueError(f"candidate {candidate} crashed")


class Evaluator(threading.Thread):
    def run(self):
        super().run()


for thread in (threading.Thread(target=evaluate, args=("c1",)), Evaluator(target=evaluate, args=("c2",))):
    thread.start()
    thread.join()
print("evaluated")
"""


def test_an_uncaught_exception_in_a_thread_prints_plain_pythons_traceback(app: Path) -> None:
    """threading.excepthook printed a frame of the threading instrumentation's Thread.run wrapper, which the
    launcher turns on to carry the context into threads (this checkout's agent-otel, for the launcher's import)."""
    (app / "threaded.py").write_text(THREAD_FAILURE)
    command = [sys.executable, "threaded.py"]
    launched_ = under_test(app, [AGENT_OTEL, "run", "--config", "agent-otel.toml", "--", *command])
    assert outcome(launched_) == outcome(under_test(app, command))
    assert launched_.stderr.count("Traceback") == 2


def test_a_syntax_error_and_code_run_with_c_read_as_under_plain_python(app: Path) -> None:
    (app / "broken.py").write_text("def f(:\n    pass\n")
    assert outcome(launched(app, "agent-otel.toml", "broken.py")) == outcome(plain(app, "broken.py"))
    # -c: the launcher's own `from __future__ import annotations` does not leak into the program
    code = "def main(x: int):\n    return x\nprint(main.__annotations__, sorted(globals()))\nmain(1) + ''\n"
    assert outcome(launched(app, "agent-otel.toml", "-c", code)) == outcome(plain(app, "-c", code))


def test_a_script_holding_a_null_byte_is_refused_as_python_refuses_it(app: Path) -> None:
    """Python names the file and the line (``source code cannot contain null bytes``). Before, the launcher's
    ``compile()`` of the file's bytes said ``source code string cannot contain null bytes``, with neither."""
    (app / "nul.py").write_bytes(b"x = 1\nprint(x)\0 + 2\n")
    expected = plain(app, "nul.py")
    assert outcome(launched(app, "agent-otel.toml", "nul.py")) == outcome(expected)
    assert expected.returncode == 1 and "line 2" in expected.stderr


def test_targets_of_a_module_run_with_m_apply_to_it_once(app: Path) -> None:
    with OtlpHttpReceiver() as receiver:
        result = launched(app, "shop.toml", "-m", "shop.cli", "2", "3", receiver=receiver)
        assert outcome(result) == outcome(plain(app, "-m", "shop.cli", "2", "3")) == (0, "5 True\n", "")
        spans = spans_named(receiver, 1)
        # the same module imported by name is another module object, wrapped on import as always
        imported = launched(app, "shop.toml", "-c", "import shop.cli; print(shop.cli.checkout([1]))",
                            receiver=receiver)
        assert outcome(imported) == (0, "1\n", "")
        both = spans_named(receiver, 2)
    assert [(name, attrs["code.function.name"]) for name, attrs in spans] == [
        ("execute_tool checkout", "shop.cli.checkout")]  # one span although two targets name it
    assert [attrs["code.function.name"] for _, attrs in both] == ["shop.cli.checkout"] * 2


def test_a_main_target_leaves_the_launchers_own_main_alone_and_a_missing_one_breaks_nothing(app: Path) -> None:
    (app / "main.toml").write_text('[[tool]]\ntarget = ["__main__:main", "__main__:absent"]\n')
    code = "def main():\n    return 'ran'\nprint(main())\n"
    with OtlpHttpReceiver() as receiver:
        result = launched(app, "main.toml", "-c", code, receiver=receiver)
        assert outcome(result) == (0, "ran\n", "")
        spans = spans_named(receiver, 1)
    assert [(name, attrs["code.function.name"]) for name, attrs in spans] == [("execute_tool main", "__main__.main")]


def test_a_module_that_fails_to_import_prints_the_import_traceback_without_the_launchers_frames(app: Path) -> None:
    (app / "broken_pkg").mkdir()
    (app / "broken_pkg" / "__init__.py").write_text("raise ValueError('in the package')\n")
    (app / "broken_pkg" / "cli.py").write_text("")
    result = launched(app, "shop.toml", "-m", "broken_pkg.cli")
    expected = plain(app, "-m", "broken_pkg.cli")
    assert outcome(result) == outcome(expected)  # runpy's two frames first, as python prints them
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.splitlines()[1:2] == ['  File "<frozen runpy>", line 189, in _run_module_as_main']
    assert result.stderr.splitlines()[-3:] == [
        f'  File "{app / "broken_pkg" / "__init__.py"}", line 1, in <module>',
        "    raise ValueError('in the package')", "ValueError: in the package"]
    missing = launched(app, "shop.toml", "-m", "no_such_module_zc")
    assert (missing.returncode, missing.stdout) == (1, "")
    assert missing.stderr.endswith(": No module named no_such_module_zc\n")


FAILING_CLI = """\
def check(x):
    raise LookupError(x)


def main():
    return check("fail")


if __name__ == "__main__":
    main()
"""


@pytest.mark.parametrize("config", ["failing.toml", "shop.toml"], ids=["a target in the module", "none"])
def test_a_module_run_with_m_prints_the_traceback_python_prints_runpys_frames_first(app: Path, config: str) -> None:
    """``python -m`` runs the module in runpy's ``_run_module_as_main`` and ``_run_code``, whose frames start the
    traceback of an uncaught exception. Before, the launcher's had neither (run a group of statements at a time
    when the module has targets, or whole)."""
    (app / "failing").mkdir()
    (app / "failing" / "__init__.py").write_text("")
    (app / "failing" / "cli.py").write_text(FAILING_CLI)
    (app / "failing.toml").write_text('[[tool]]\ntarget = "failing.cli:check"\n')
    result = launched(app, config, "-m", "failing.cli")
    assert outcome(result) == outcome(plain(app, "-m", "failing.cli"))
    assert result.stderr.splitlines()[:3] == ["Traceback (most recent call last):",
                                              '  File "<frozen runpy>", line 198, in _run_module_as_main',
                                              '  File "<frozen runpy>", line 88, in _run_code']
    assert result.stderr.endswith("LookupError: fail\n") and "agent_otel" not in result.stderr


def test_a_module_run_with_m_whose_package_runs_code_with_runpy_runs_once(app: Path) -> None:
    """A package that reads its settings with ``runpy.run_path`` as it is imported (config loaders do), run with
    ``-m``: a first version of the runpy frames above ran nothing there (it took the replaced ``_run_code`` for its
    own), then ran the module twice, once in the launcher's ``__main__``."""
    (app / "configured").mkdir()
    (app / "configured" / "__init__.py").write_text(
        "import os, runpy\nSETTINGS = runpy.run_path(os.path.join(os.path.dirname(__file__), 'settings.py'))\n")
    (app / "configured" / "settings.py").write_text("DEBUG = True\n")
    (app / "configured" / "cli.py").write_text(
        "from configured import SETTINGS\n\n\ndef main():\n    with open('runs.log', 'a') as log:\n"
        "        print(__name__, file=log)\n    print('DEBUG =', SETTINGS.get('DEBUG'))\n\n\nmain()\n")
    expected = plain(app, "-m", "configured.cli")
    for config in ("shop.toml", "failing.toml"):  # no target; one in the package (found by the import hook)
        (app / "failing.toml").write_text('[[tool]]\ntarget = "configured.cli:main"\n')
        (app / "runs.log").unlink()
        assert outcome(launched(app, config, "-m", "configured.cli")) == outcome(expected) == (0, "DEBUG = True\n", "")
        assert (app / "runs.log").read_text() == "__main__\n"


def test_the_top_level_of_a_module_run_with_m_is_called_by_runpy_as_under_python(app: Path) -> None:
    """A ``-m`` module with no targets runs in runpy's own ``exec``: what its top level sees calling it (a warning
    raised there with ``stacklevel=2``, ``sys._getframe(1)``) is runpy's ``_run_code``, as under python. Before, it
    was the launcher's own function that ran the module's code."""
    (app / "warned").mkdir()
    (app / "warned" / "__init__.py").write_text("")
    (app / "warned" / "cli.py").write_text(
        "import sys, warnings\ncaller = sys._getframe(1).f_code\nprint(caller.co_name, caller.co_filename)\n"
        "warnings.warn('deprecated entry point', DeprecationWarning, stacklevel=2)\n")
    (app / "elsewhere.toml").write_text('[[tool]]\ntarget = "shop.cli:checkout"\n')  # none in the module
    expected = plain(app, "-W", "always", "-m", "warned.cli")
    assert expected.stdout == "_run_code <frozen runpy>\n" and "<frozen runpy>:" in expected.stderr
    assert outcome(launched(app, "elsewhere.toml", "-W", "always", "-m", "warned.cli")) == outcome(expected)


def test_a_package_imported_for_m_sees_what_python_shows_it(app: Path) -> None:
    """While ``python -m`` looks the module up (imports its package), ``sys.argv[0]`` is ``-m`` and ``__main__`` the
    bare module the program will run in. Before, under the launcher, the package saw the module's name and the
    launcher's own ``__main__`` (its file, its globals)."""
    (app / "looked_up").mkdir()
    (app / "looked_up" / "__init__.py").write_text(
        "import sys\nmain = sys.modules['__main__']\n"
        "print(sys.argv[0], getattr(main, '__file__', None), sorted(vars(main))[:4])\n")
    (app / "looked_up" / "cli.py").write_text(
        "import sys\nimport looked_up\nprint(looked_up.main is sys.modules['__main__'], sys.argv)\n")
    expected = plain(app, "-m", "looked_up.cli", "x")
    assert outcome(launched(app, "shop.toml", "-m", "looked_up.cli", "x")) == outcome(expected)
    assert expected.stdout.splitlines()[0].startswith("-m None")


def assert_runs_as_plain_with_its_main_targets(app: Path, args: tuple[str, ...]) -> None:
    """``python *args`` under the launcher: plain python's outcome, and the spans of the script's own targets."""
    with OtlpHttpReceiver() as receiver:
        result = launched(app, "agent-otel.toml", *args, receiver=receiver)
        assert outcome(result) == outcome(plain(app, *args))
        spans = spans_named(receiver, 5)
    assert sorted(name for name, _ in spans) == ["execute_tool lookup"] * 2 + ["invoke_agent Agent"] * 2 + [
        "invoke_agent main"]


def test_interpreter_run_options_reach_the_program_and_its_own_targets_still_apply(app: Path) -> None:
    """`python -u app.py`, as containers start programs: the launcher starts again with the options and runs the
    script itself, so its `__main__` targets are wrapped (before, `-u` made it exec python: no span)."""
    args = ("-u", "-W", "error::DeprecationWarning", "app.py", "plan", "fix")
    assert_runs_as_plain_with_its_main_targets(app, args)
    probe = ("import sys; f = sys.flags; print(sys.stdout.write_through, f.optimize, f.dont_write_bytecode, "
             "f.dev_mode, sys.warnoptions, sys.argv)")
    for options in (("-uO", "-Werror"), ("-X", "dev", "-B")):
        assert outcome(launched(app, "agent-otel.toml", *options, "-c", probe, "x")) == outcome(
            plain(app, *options, "-c", probe, "x"))
    assert launched(app, "agent-otel.toml", "-uc", probe).stdout == "True 0 0 False [] ['-c']\n"


@pytest.mark.parametrize("options", [("-P",), ("-s",), ("-sP",)])
def test_safe_path_and_no_user_site_options_keep_the_scripts_own_targets(app: Path, options: tuple[str, ...]) -> None:
    """`python -P app.py` and `python -s app.py` were exec'd as they were: the script's `__main__` targets, which
    only the launcher running it applies, were left out with no word said. The launcher now starts again with
    them, as for `-u`; with `-P` the program gets no folder on its path, as under plain python."""
    args = (*options, "app.py", "plan", "fix")
    assert_runs_as_plain_with_its_main_targets(app, args)
    (app / "sub").mkdir()
    (app / "sub" / "paths.py").write_text(
        "import sys\nprint(sys.flags.safe_path, sys.flags.no_user_site, sys.path[:1])\n")
    for cwd, run_args in ((app, (*options, "sub/paths.py")), (app / "sub", (*options, "-m", "paths")),
                          (app / "sub", (*options, "-c", "import paths"))):
        assert outcome(launched(cwd, str(app / "agent-otel.toml"), *run_args)) == outcome(plain(cwd, *run_args))


def test_the_program_imports_from_the_path_plain_python_gives_it(app: Path) -> None:
    """`sys.path` as under plain python: the program's folder first (the script's, the working directory for
    `-m` and `-c`), in place of the launcher's (`agent-otel`'s own folder, or the working directory of
    `python -m agent_otel`); with PYTHONSAFEPATH, no folder at all."""
    (app / "paths.py").write_text("import sys\nprint(sys.path)\n")
    (app / "sub").mkdir()
    runs = [(app / "sub", ("../paths.py",)), (app / "sub", ("-u", "../paths.py")), (app, ("-m", "paths")),
            (app, ("-c", "import sys; print(sys.path)"))]
    for cwd, args in runs:
        result = launched(cwd, str(app / "agent-otel.toml"), *args)
        assert outcome(result) == outcome(plain(cwd, *args)), args
    safe = {**environment(None), "PYTHONSAFEPATH": "1"}
    launched_safe = subprocess.run([AGENT_OTEL, "run", "--config", "agent-otel.toml", "--", sys.executable, "paths.py"],
                                   cwd=app, env=safe,
                                   capture_output=True, text=True, timeout=60)
    plain_safe = subprocess.run([sys.executable, "paths.py"], cwd=app, env=safe, capture_output=True, text=True,
                                timeout=60)
    assert outcome(launched_safe) == outcome(plain_safe)
    assert str(app) not in plain_safe.stdout


def test_a_module_run_with_m_has_the_loader_python_gives_it_when_it_has_targets(app: Path) -> None:
    """`python -m pkg` with a `pkg.__main__` target: the import hook that waits for that module chains its
    loader, and the program read wrapt's proxy as its `__loader__` and `__spec__.loader`."""
    (app / "runnable").mkdir()
    (app / "runnable" / "__init__.py").write_text("")
    (app / "runnable" / "__main__.py").write_text(
        "def main():\n    return 'ran'\n"
        "print(type(__loader__).__name__, type(__spec__.loader).__name__, main())\n")
    (app / "runnable.toml").write_text('[[tool]]\ntarget = "runnable.__main__:main"\n')
    with OtlpHttpReceiver() as receiver:
        result = launched(app, "runnable.toml", "-m", "runnable", receiver=receiver)
        assert outcome(result) == outcome(plain(app, "-m", "runnable")) == (
            0, "SourceFileLoader SourceFileLoader ran\n", "")
        assert [name for name, _ in spans_named(receiver, 1)] == ["execute_tool main"]


def under_test(cwd: Path, command: list[str], **extra: str) -> subprocess.CompletedProcess[str]:
    """``command`` with this checkout's agent-otel first on PYTHONPATH (for plain python and the launcher alike)."""
    import agent_otel

    env = {**environment(None), "PYTHONPATH": str(Path(agent_otel.__file__).parents[1]), **extra}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("options", [("-OO",), ("-uWerror",), ("-OXdev",), ("-uX", "dev")])
def test_run_options_grouped_or_stripping_docstrings_reach_the_program(app: Path, options: tuple[str, ...]) -> None:
    """`python -OO` made the launcher started again fail on its own missing docstring (a traceback, exit 1, the
    program never ran); `-uWerror` and `-OXdev` lost their `-u` and `-O`."""
    probe = ("import sys; f = sys.flags; print(sys.stdout.write_through, f.optimize, f.dev_mode, sys.warnoptions, "
             "__doc__)")
    command = [sys.executable, *options, "-c", probe]
    launched_ = under_test(app, [AGENT_OTEL, "run", "--config", "agent-otel.toml", "--", *command])
    assert outcome(launched_) == outcome(under_test(app, command))


def test_the_launcher_started_again_imports_nothing_from_the_working_directory(app: Path) -> None:
    """`python -u scripts/app.py` has the script's folder on its path, not the working directory: the launcher
    started again for `-u` (once as `python -u -m agent_otel`) imported a project's `email/` package there in
    place of the standard library's, and failed."""
    (app / "email").mkdir()
    (app / "email" / "__init__.py").write_text("print('the project email package')\n")
    (app / "scripts").mkdir()
    (app / "scripts" / "mail.py").write_text("import email.message\nprint(email.__file__ != None)\n")
    command = [sys.executable, "-u", "scripts/mail.py"]
    result = under_test(app, [AGENT_OTEL, "run", "--config", "agent-otel.toml", "--", *command])
    assert outcome(result) == outcome(under_test(app, command)) == (0, "True\n", "")


def test_a_launcher_run_with_safe_path_still_gives_the_program_its_folder(app: Path) -> None:
    """`python -P -m agent_otel run -- python app.py` (or `-I`, which reads no PYTHONPATH to test this checkout
    with): the launcher has no folder of its own on its path, but the program's command does give it one (it
    imported nothing from its folder: ModuleNotFoundError)."""
    (app / "sub").mkdir()
    (app / "sub" / "helper.py").write_text("X = 'helper'\n")
    (app / "sub" / "main.py").write_text("import sys, helper\nprint(helper.X, sys.path[0])\n")
    command = [sys.executable, "sub/main.py"]
    launched_ = under_test(app, [sys.executable, "-P", "-m", "agent_otel", "run", "--config", "agent-otel.toml", "--",
                                 *command])
    assert outcome(launched_) == outcome(under_test(app, command)) == (0, f"helper {app / 'sub'}\n", "")


def test_a_method_the_script_assigns_after_its_class_statement_is_wrapped_then(tmp_path: Path) -> None:
    """``Agent.run = _run`` after ``class Agent``: the target did not resolve at the class statement and was never
    tried again, so the program ran untraced, with no word said."""
    (tmp_path / "late.py").write_text(
        "class Agent:\n    def __init__(self, name):\n        self.name = name\n\n"
        "def _run(self, task):\n    return f'{self.name} did {task}'\n\n"
        "Agent.run = _run\n\nprint(Agent('a1').run('t'))\n")
    (tmp_path / "late.toml").write_text('[[agent]]\ntarget = "__main__:Agent.run"\nname = { path = "self.name" }\n')
    with OtlpHttpReceiver() as receiver:
        result = launched(tmp_path, "late.toml", "late.py", receiver=receiver)
        assert outcome(result) == outcome(plain(tmp_path, "late.py")) == (0, "a1 did t\n", "")
        assert [name for name, _ in spans_named(receiver, 1)] == ["invoke_agent a1"]


def test_a_method_the_script_assigns_later_is_not_reported_at_its_class_statement(tmp_path: Path) -> None:
    """Tried at ``class Agent`` (its first name bound), ``Agent.run`` was logged as a target that cannot be wrapped, and
    counted, in every run, before ``Agent.run = _run`` wrapped it; one the script never sets is still reported."""
    (tmp_path / "late.py").write_text("class Agent:\n    pass\n\ndef _run(self, task):\n    return 'did ' + task\n\n"
                                      "Agent.run = _run\nprint(Agent().run('x'))\n")
    (tmp_path / "main.toml").write_text('[[agent]]\ntarget = ["__main__:Agent.run", "__main__:Agent.gone"]\n')
    result = subprocess.run([sys.executable, "-c", RUN_WHOLE_DRIVER, "late.py"], cwd=tmp_path, env=environment(None),
                            capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (0, "did x\n")
    assert result.stderr == ("agent-otel: main.toml (agent[0].target[1]): cannot wrap __main__:Agent.gone: class Agent "
                             "has no attribute 'gone'\n"
                             "agent-otel: autoinstrument.target failed (TargetError); the host call was not affected\n")


def test_a_target_the_script_defines_again_is_wrapped_again(tmp_path: Path) -> None:
    """A second ``def work`` (a notebook exported as a script, a fallback defined under a condition): only the first
    was wrapped, and every call after the second went unrecorded, in silence."""
    (tmp_path / "again.py").write_text("def work():\n    return 'v1'\n\nprint(work())\n\n"
                                       "def work():\n    return 'v2'\n\nprint(work(), work())\n")
    (tmp_path / "again.toml").write_text('[[tool]]\ntarget = "__main__:work"\n')
    with OtlpHttpReceiver() as receiver:
        result = launched(tmp_path, "again.toml", "again.py", receiver=receiver)
        assert outcome(result) == outcome(plain(tmp_path, "again.py")) == (0, "v1\nv2 v2\n", "")
        assert [name for name, _ in spans_named(receiver, 3)] == ["execute_tool work"] * 3


def test_a_target_the_script_decorates_itself_or_unbinds_is_not_wrapped_again(tmp_path: Path) -> None:
    """``work = retry(work)`` (the script's own ``functools.wraps`` decorator around the wrapper) was taken for a new
    definition and wrapped again, each call recording two spans; ``work = None`` after the calls was tried as a
    target and reported as one that cannot be wrapped."""
    (tmp_path / "own.py").write_text(
        "import functools\n\ndef retry(fn):\n    @functools.wraps(fn)\n    def again(*args):\n"
        "        return fn(*args)\n    return again\n\n"
        "def work(x):\n    return x\n\nwork = retry(work)\nprint(work(1))\n"
        "late = functools.partial(work, 2)\nwork = late\nprint(work())\nwork = None\n")
    (tmp_path / "main.toml").write_text('[[tool]]\ntarget = "__main__:work"\n')
    driver = SPANS_IN_MEMORY + RUN_WHOLE_DRIVER + "print([span.name for span in exporter.get_finished_spans()], " \
                                                   "sorted(patching.entry_errors()))\n"
    result = subprocess.run([sys.executable, "-c", driver, "own.py"], cwd=tmp_path, env=environment(None),
                            capture_output=True, text=True, timeout=60)
    # one span a call, and no error
    assert (result.returncode, result.stdout, result.stderr) == (
        0, "1\n2\n['execute_tool work', 'execute_tool work'] []\n", "")


def test_a_static_or_class_method_decorated_in_the_code_is_left_to_its_decorator(tmp_path: Path) -> None:
    """agent-otel's decorator over ``@classmethod`` or ``@staticmethod``: its wrapper shows the method object's
    ``__func__``, the program's function, so a config entry naming the method wrapped it again: two spans a call, or
    the decorator's span replaced by the entry's (review rv68). The decorator, the code's own choice, wins."""
    (tmp_path / "own.py").write_text(
        "import agent_otel\n\nclass C:\n"
        "    @agent_otel.tool('over_static')\n    @staticmethod\n    def s(x):\n        return x\n\n"
        "    @agent_otel.tool('over_class')\n    @classmethod\n    def k(cls, x):\n        return x\n\n"
        "print(C.s(1), C.k(2), C().k(3))\n")
    (tmp_path / "main.toml").write_text('[[tool]]\ntarget = ["__main__:C.s", "__main__:C.k"]\nname = "configured"\n')
    driver = SPANS_IN_MEMORY + RUN_WHOLE_DRIVER + "print([span.name for span in exporter.get_finished_spans()])\n"
    result = subprocess.run([sys.executable, "-c", driver, "own.py"], cwd=tmp_path, env=environment(None),
                            capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout, result.stderr) == (
        0, "1 2 3\n['execute_tool over_static', 'execute_tool over_class', 'execute_tool over_class']\n", "")


def test_an_override_or_a_bound_method_decorated_in_the_code_is_recorded_once(tmp_path: Path) -> None:
    """agent-otel's wrapper says it is what it wraps (its ``__class__``): over a bound method it was taken for the
    program's method, and a config entry naming it wrapped it again; over a class method in a subclass that calls
    ``super()``, it did not join the entry's family (``subclasses = true``), and the base's call inside counted as a
    second one (review rv69)."""
    (tmp_path / "own.py").write_text(
        "import agent_otel\n\nclass Base:\n    @classmethod\n    def k(cls, x):\n        return x\n\n"
        "class Sub(Base):\n    @agent_otel.tool('sub_over_class')\n    @classmethod\n    def k(cls, x):\n"
        "        return super().k(x)\n\n"
        "class H:\n    def h(self, x):\n        return x\n\n"
        "bound = agent_otel.tool('decorated_bound')(H().h)\n"
        "print(Sub.k(1), Base.k(2), bound(3))\n")
    (tmp_path / "main.toml").write_text('[[tool]]\ntarget = "__main__:Base.k"\nname = "configured"\n'
                                        'subclasses = true\n[[tool]]\ntarget = "__main__:bound"\nname = "again"\n')
    driver = SPANS_IN_MEMORY + RUN_WHOLE_DRIVER + "print([span.name for span in exporter.get_finished_spans()])\n"
    result = subprocess.run([sys.executable, "-c", driver, "own.py"], cwd=tmp_path, env=environment(None),
                            capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout, result.stderr) == (
        0, "1 2 3\n['execute_tool sub_over_class', 'execute_tool configured', 'execute_tool decorated_bound']\n", "")


SPANS_IN_MEMORY = """
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
"""


RUN_WHOLE_DRIVER = """
import logging, sys
logging.basicConfig(format="%(message)s")  # (agent-otel's logger has only a NullHandler: the program's to show)
from agent_otel._zerocode import patching, program as programs
from agent_otel._zerocode.config import load_file
patching.leave_main_to_launcher()
patching.instrument(load_file("main.toml"))
path = sys.argv[1]
sys.argv = [path]
sys.path.insert(0, path)  # what the launcher does for the program, as python does
programs.run(programs.script(path))
"""


@pytest.mark.parametrize("shape", ["zip application", "directory", "compiled file"])
def test_main_targets_of_a_program_run_whole_are_said_not_to_be_wrapped(tmp_path: Path, shape: str) -> None:
    """A zip application, a directory or a ``.pyc`` runs whole, as python runs it: the launcher wraps ``__main__``
    targets between the statements of source it runs itself, so theirs were never wrapped, and nothing said or
    counted. Now each is, as a target that cannot be wrapped (``autoinstrument.target``), and the program runs as
    under python."""
    source = tmp_path / "source"
    source.mkdir()
    (source / "__main__.py").write_text("def work(x):\n    return x + 1\n\nif __name__ == '__main__':\n"
                                        "    print(work(1))\n")
    if shape == "zip application":
        subprocess.run([sys.executable, "-m", "zipapp", str(source), "-o", str(tmp_path / "app.pyz")], check=True)
        program = "app.pyz"
    elif shape == "directory":
        program = "source"
    else:
        import py_compile

        py_compile.compile(str(source / "__main__.py"), cfile=str(tmp_path / "app.pyc"), doraise=True)
        program = "app.pyc"
    (tmp_path / "main.toml").write_text('[[tool]]\ntarget = "__main__:work"\n')
    assert (plain(tmp_path, program).returncode, plain(tmp_path, program).stdout) == (0, "2\n")
    result = subprocess.run([sys.executable, "-c", RUN_WHOLE_DRIVER, program], cwd=tmp_path, env=environment(None),
                            capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (0, "2\n")
    why = "compiled code without its source runs whole" if shape == "compiled file" else (
        "a directory or zip file's __main__ runs as python runs it")
    assert result.stderr == (f"agent-otel: main.toml (tool[0]): cannot wrap __main__:work: {why}, without "
                             "agent-otel's wrapping of its targets\n"
                             "agent-otel: autoinstrument.target failed (RuntimeError); the host call was not "
                             "affected\n")
