"""`agent-otel run`: the program's exit status, signals and stdio are its own; exec'd programs and
their Python children instrument themselves through the bootstrap on PYTHONPATH."""

from __future__ import annotations

import ast
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agent_otel._zerocode import launcher
from agent_otel._zerocode.launcher import bootstrap_dir
from agent_otel.version import __version__
from tests.support.forked_children import TERMINATE_FORKED_CHILDREN
from tests.support.otlp_receiver import OtlpHttpReceiver, attributes_of, data_points_of
from tests.support.polling import wait_until

AGENT_OTEL = str(Path(sys.executable).parent / "agent-otel")
TOOL_MODULE = "import sys\n\ndef work(n):\n    return n * 2\n\nif __name__ == '__main__':\n    print(work(21))\n"


def run(tmp_path: Path, *command: str, receiver: OtlpHttpReceiver | None = None,
        stdin: str = "", **environ: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENT_OTEL_"))}
    env.update(XDG_CACHE_HOME=str(tmp_path / "cache"), OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none",
               OTEL_TRACES_EXPORTER="none")
    if receiver is not None:
        env.update(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
                   OTEL_TRACES_EXPORTER="otlp")
    env.update(environ)
    return subprocess.run([AGENT_OTEL, "run", "--config", str(tmp_path / "agent-otel.toml"), "--", *command],
                          cwd=tmp_path, env=env, input=stdin, capture_output=True, text=True, timeout=60)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "toolmod.py").write_text(TOOL_MODULE)
    (tmp_path / "agent-otel.toml").write_text('[[tool]]\ntarget = "toolmod:work"\n')
    return tmp_path


def wait_for_spans(receiver: OtlpHttpReceiver, count: int) -> list[Any]:
    wait_until(lambda: len(receiver.spans()) >= count, f"{count} spans")
    return receiver.spans()


@pytest.mark.parametrize(("code", "returncode", "stderr"), [
    ("import sys; sys.exit(7)", 7, ""),
    ("import sys; sys.exit('bye')", 1, "bye\n"),
    ("pass", 0, ""),
    ("import sys; print(sys.argv[1:], input()); sys.stdout.flush()", 0, ""),
])
def test_exit_status_argv_and_stdio_are_the_programs(project: Path, code: str, returncode: int, stderr: str) -> None:
    result = run(project, sys.executable, "-c", code, "a b", "--flag", stdin="typed\n")
    assert result.returncode == returncode
    assert result.stderr == stderr
    if "argv" in code:
        assert result.stdout == "['a b', '--flag'] typed\n"


EXIT_HOOK_AFTER_AN_ERROR = """import atexit, sys, traceback
def later():
    print('handled:', sys.exc_info()[0], 'last:', getattr(sys, 'last_type', None), file=sys.stderr)
    print('last_exc:', getattr(sys, 'last_exc', sys.last_value) is sys.last_value, file=sys.stderr)
    traceback.print_exception(sys.last_type, sys.last_value, sys.last_traceback)
atexit.register(later)
def fail():
    raise ValueError('x')
fail()
"""


@pytest.mark.parametrize("how", ["script", "-c"])
def test_exit_hooks_after_an_uncaught_exception_see_what_python_shows_them(project: Path, how: str) -> None:
    """An exit hook runs when no exception is being handled, with ``sys.last_type``/``last_value``/``last_traceback``
    set to the program's exception (``traceback.print_last()``, ``pdb.pm()``). Before, under the launcher, a ``-c``
    program's hooks ran while the exception was being handled, with no ``sys.last_*``; a script's
    ``last_traceback`` started with the launcher's frames."""
    (project / "failing.py").write_text(EXIT_HOOK_AFTER_AN_ERROR)
    args = ["failing.py"] if how == "script" else ["-c", EXIT_HOOK_AFTER_AN_ERROR]
    plain = subprocess.run([sys.executable, *args], cwd=project, capture_output=True, text=True, timeout=60)
    result = run(project, sys.executable, *args)
    assert (result.returncode, result.stdout, result.stderr) == (plain.returncode, plain.stdout, plain.stderr)
    assert "handled: None last: <class 'ValueError'>\nlast_exc: True\n" in plain.stderr
    assert plain.stderr.count("in fail") == 2


ENDINGS = {
    # sys.exit() in a function: its locals are released when python has handled the SystemExit, before the exit hooks
    "locals of the exiting function": "import atexit, sys\nclass Resource:\n    def __del__(self):\n"
                                      "        print('released', file=sys.stderr)\n"
                                      "atexit.register(lambda: print('exit hook', file=sys.stderr))\n"
                                      "def main():\n    kept = Resource()\n    sys.exit(3)\nmain()\n",
    # an exit code whose text cannot be made: python writes an empty line for it. With threading imported, as it is
    # under agent-otel (the SDK's threads): 3.12's and 3.13's python leave str()'s error set, and what the threading
    # shutdown then shows of it depends on that
    "unprintable exit code": "import threading; print('a')\nclass Code:\n    def __str__(self):\n"
                             "        raise ValueError('s')\nraise SystemExit(Code())\n",
    # a stdout of the program's own: python flushes it once after a script, once at the end
    "the program's own stdout": "import sys\nprint('a')\nclass Out:\n    def write(self, text):\n"
                                "        sys.__stderr__.write('W:' + text)\n    def flush(self):\n"
                                "        sys.__stderr__.write('FLUSH\\n')\nsys.stdout = Out()\nprint('b')\n",
}


@pytest.mark.parametrize("how", ["script", "-c"])
@pytest.mark.parametrize("ending", list(ENDINGS))
def test_the_program_ends_as_python_ends_it(project: Path, how: str, ending: str) -> None:
    """The program's ``SystemExit`` is the interpreter's to end the process with, and python's flushes are the
    ones made. Before, the launcher printed an exit code's text itself (an unprintable one put its own traceback on
    stderr) and flushed a script's stdout once more than python (a custom stream's ``flush()`` ran three times)."""
    code = ENDINGS[ending]
    (project / "ending.py").write_text(code)
    args = ["ending.py"] if how == "script" else ["-c", code]
    plain = subprocess.run([sys.executable, *args], cwd=project, capture_output=True, text=True, timeout=60)
    result = run(project, sys.executable, *args)
    assert (result.returncode, result.stdout, result.stderr) == (plain.returncode, plain.stdout, plain.stderr)
    # (3.13's python reports str()'s error left set at its threading shutdown: a SystemError of its own)
    assert "Traceback" not in plain.stderr or (ending == "unprintable exit code" and sys.version_info >= (3, 13))


EXCEPTHOOKS = {
    "deleted": "del sys.excepthook",
    "None": "sys.excepthook = None",
    "raising": "def hook(*exc_info):\n    raise RuntimeError('hook failed')\nsys.excepthook = hook",
    "exiting": "def hook(*exc_info):\n    print('hook ran')\n    sys.exit(5)\nsys.excepthook = hook",
}


@pytest.mark.parametrize("how", ["script", "-c"])
@pytest.mark.parametrize("hook", list(EXCEPTHOOKS))
def test_an_uncaught_exception_with_a_deleted_or_failing_excepthook_prints_what_python_prints(
        project: Path, how: str, hook: str) -> None:
    """Python says ``sys.excepthook is missing`` and prints the traceback itself, or prints the hook's error then
    the original one ("Error in sys.excepthook"), or exits as the hook's ``sys.exit()`` says. Before, the launcher
    failed on the missing hook with a traceback of its own, and put its own frame in the hook's error (with a
    "During handling" chain for ``-c`` code)."""
    code = f"import sys\n{EXCEPTHOOKS[hook]}\ndef fail():\n    raise ValueError('boom')\nfail()\n"
    (project / "failing.py").write_text(code)
    args = ["failing.py"] if how == "script" else ["-c", code]
    plain = subprocess.run([sys.executable, *args], cwd=project, capture_output=True, text=True, timeout=60)
    result = run(project, sys.executable, *args)
    assert (result.returncode, result.stdout, result.stderr) == (plain.returncode, plain.stdout, plain.stderr)
    assert plain.returncode == (5 if hook == "exiting" else 1) and ("boom" in plain.stderr) is (hook != "exiting")


INTERPRETER_END_STEPS = {
    # an error in a built-in exit hook: python reports it with no Python frame
    "a built-in exit hook fails": "import atexit, os\natexit.register(os.remove, 'no-such-file')\nprint('done')\n",
    # Ctrl-C while python waits for a thread at exit: reported, and the process goes on to exit 0
    "Ctrl-C while waiting for a thread": """import os, signal, sys, threading, time
main = threading.main_thread().ident
def interrupt_the_wait():
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # until the main thread waits in threading._shutdown()
        frame = sys._current_frames().get(main)
        if frame is not None and frame.f_code.co_name == '_shutdown':
            break
        time.sleep(0.01)
    os.kill(os.getpid(), signal.SIGINT)
threading.Thread(target=interrupt_the_wait).start()
print('done')
""",
}


@pytest.mark.parametrize("how", ["-c", "-m"])
@pytest.mark.parametrize("program", list(INTERPRETER_END_STEPS))
def test_the_interpreters_end_steps_after_c_code_or_a_module_are_pythons_own(
        project: Path, how: str, program: str) -> None:
    """After ``-c`` code or a ``-m`` module, the interpreter waits for the threads and runs the exit hooks itself,
    as under python. Before, the launcher took those steps from a Python frame of its own (to keep stdout unflushed
    until after them, as python does for such programs), which showed in what python printed: a frame of the
    launcher in a built-in hook's error; the launcher's traceback and death by SIGINT for a Ctrl-C during the wait,
    where python reports it and exits 0."""
    code = INTERPRETER_END_STEPS[program]
    (project / "ending.py").write_text(code)
    args = ["-c", code] if how == "-c" else ["-m", "ending"]
    # 3.13's python reports a Ctrl-C during the wait with or without its header, by timing: a few tries
    for _ in range(5 if program.startswith("Ctrl-C") else 1):
        plain = subprocess.run([sys.executable, *args], cwd=project, capture_output=True, text=True, timeout=60)
        result = run(project, sys.executable, *args)
        if (result.returncode, result.stdout, result.stderr) == (plain.returncode, plain.stdout, plain.stderr):
            break
    assert (result.returncode, result.stdout, result.stderr) == (plain.returncode, plain.stdout, plain.stderr)
    # ("Exception ignored in: ..." up to 3.12, "Exception ignored in atexit callback ..." or "... on threading
    # shutdown:" on 3.13)
    assert plain.returncode == 0 and plain.stdout == "done\n" and plain.stderr.startswith("Exception ignored ")


def test_an_exit_message_with_stderr_set_to_none_reaches_the_process_stderr_as_under_python(project: Path) -> None:
    """python writes it to file descriptor 2 when sys.stderr is None. It once went to stdout (print(...,
    file=None)), then was lost."""
    code = "import sys; sys.stderr = None; sys.exit('bye')"
    plain = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    result = run(project, sys.executable, "-c", code)
    assert (result.returncode, result.stdout, result.stderr) == (plain.returncode, plain.stdout, plain.stderr)
    assert plain.stderr == "bye\n"


@pytest.mark.parametrize("command", [
    ["/bin/echo", "hi"],  # exec'd
    [sys.executable, "-u", "-c", "print('hi')"],  # the launcher exec'd again with the run option
    [sys.executable, "-c", "print('hi')"],  # run in process
    [sys.executable, "missing.py"],  # python's own "can't open file", which goes nowhere either
])
def test_a_program_started_with_stderr_closed_runs_and_prints_as_under_python(tmp_path: Path,
                                                                             command: list[str]) -> None:
    """``2>&-``: with no stderr, sys.stderr is None, and the launcher's notices went to the program's stdout
    (``print(file=None)``), and its flush before an exec raised, so the program never ran (status 1)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENT_OTEL_"))}
    env.update(XDG_CACHE_HOME=str(tmp_path / "cache"), OTEL_METRICS_EXPORTER="none", OTEL_TRACES_EXPORTER="none")

    def closed_stderr(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["/bin/sh", "-c", 'exec "$@" 2>&-', "sh", *args], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, text=True, timeout=60)

    plain = closed_stderr(*command)
    launched = closed_stderr(AGENT_OTEL, "run", "--", *command)  # no configuration: its notice is said
    assert (launched.returncode, launched.stdout) == (plain.returncode, plain.stdout)


def test_uncaught_exception_prints_the_traceback_and_exits_1(project: Path) -> None:
    result = run(project, sys.executable, "-c", "raise ValueError('boom')")
    assert result.returncode == 1
    assert result.stderr.startswith("Traceback (most recent call last):")
    assert result.stderr.endswith("ValueError: boom\n")


@pytest.mark.parametrize(("code", "signum"), [
    ("import os, signal; os.kill(os.getpid(), signal.SIGTERM)", 15),
    ("import os, signal; os.kill(os.getpid(), signal.SIGHUP)", 1),  # a closed terminal: everything was lost
    ("raise KeyboardInterrupt", 2),
])
def test_death_by_signal_is_kept_after_telemetry_is_flushed(project: Path, code: str, signum: int) -> None:
    with OtlpHttpReceiver() as receiver:
        result = run(project, sys.executable, "-c", "import toolmod; toolmod.work(1); " + code, receiver=receiver)
        assert result.returncode == -signum
        assert [span.name for span in wait_for_spans(receiver, 1)] == ["execute_tool work"]


@pytest.mark.parametrize("options", [[], ["-u"]])
def test_an_agent_otel_run_started_under_another_in_another_project_uses_its_own_configuration(
        project: Path, options: list[str]) -> None:
    """A program under `agent-otel run` (an AI-fix coordinator) runs another project's with `agent-otel run`: the inner
    launcher took the outer's configuration from ``AGENT_OTEL_CONFIG`` (its targets, not its own, and an error for each
    it could not find), and recorded none of its own project's calls; with ``python -u`` (the launcher runs itself
    again) the outer's bootstrap set it up too. `agent-otel check` there checks that project's file. A subfolder of
    the outer project, with no file of its own, keeps the outer's."""
    inner = project / "inner"
    inner.mkdir()
    (inner / "innermod.py").write_text("def work(n):\n    return n + 1\n")
    (inner / "agent-otel.toml").write_text('[[agent]]\ntarget = "innermod:work"\nname = "inner"\n')
    (project / "agent-otel.toml").write_text('[[tool]]\ntarget = ["toolmod:work", "innermod:work"]\n')
    (project / "sub").mkdir()
    code = ("import subprocess, sys\n"
            "def launch(folder, *command):\n"
            f"    r = subprocess.run([{AGENT_OTEL!r}, *command], cwd=folder, capture_output=True, text=True)\n"
            "    out = [line for line in r.stdout.splitlines() if 'resolved' in line] if command[0] == 'check' else "
            "r.stdout.strip()\n"
            "    print(r.returncode, out, repr(r.stderr))\n"
            f"launch('inner', 'run', '--', sys.executable, *{options!r}, '-c', "
            "'import innermod; print(innermod.work(1))')\n"
            "launch('inner', 'check')\n"
            f"launch('sub', 'run', '--', sys.executable, *{options!r}, '-c', "
            "'import sys; sys.path.insert(0, \\'..\\'); import toolmod; print(toolmod.work(2))')\n")
    with OtlpHttpReceiver() as receiver:
        result = run(project, sys.executable, "-c", code, receiver=receiver)
        assert (result.returncode, result.stderr) == (0, ""), result.stdout
        assert result.stdout.splitlines() == [
            "0 2 ''", f"0 ['{inner / 'agent-otel.toml'}: 1 target, 1 resolved, 0 errors'] ''", "0 4 ''"]
        assert sorted(span.name for span in wait_for_spans(receiver, 2)) == ["execute_tool work", "invoke_agent inner"]


@pytest.mark.parametrize(("argv", "itself"), [
    (["/venv/bin/agent-otel", "run", "--", "python", "app.py"], True),
    (["/venv/bin/agent-otel", "check"], True),
    (["/project/bin/agent-otel", "serve"], False),  # a program's own script of that name is the program
    (["-m", "run", "--", "python", "app.py"], True),
    (["app.py"], False),
])
def test_a_process_tells_it_is_agent_otels_own_command(monkeypatch: pytest.MonkeyPatch, argv: list[str],
                                                        itself: bool) -> None:
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.setattr(sys, "orig_argv", ["python", "-m", "agent_otel", *argv[1:]] if argv[0] == "-m" else
                        ["python", *argv])
    assert launcher._is_agent_otel_command() is itself


CHILD_OF_THE_PROGRAM = """import subprocess, sys
child = subprocess.run([sys.executable, "-c", "import toolmod; print(toolmod.work(2))"], capture_output=True, text=True)
print(child.returncode, child.stdout.strip(), repr(child.stderr))
"""


@pytest.mark.parametrize("exporter", ["otlp", "otlp_proto_http"])
def test_under_opentelemetry_instrument_a_python_child_adds_to_the_distros_setup(project: Path, exporter: str) -> None:
    """``opentelemetry-instrument agent-otel run -- ...`` (or the OpenTelemetry Operator's ``PYTHONPATH``): a Python
    child set agent-otel up first, then ran the distro's ``sitecustomize``, whose setup the SDK refused, printing
    "Overriding of current TracerProvider is not allowed" on the child's stderr (three lines a child); for an exporter
    name only the distro knows, the child said its telemetry was off. As in the launcher's own process, the distro's
    runs first and agent-otel adds to it: the child's call arrives through the distro's exporter."""
    (project / "app.py").write_text(CHILD_OF_THE_PROGRAM)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENT_OTEL_"))}
    with OtlpHttpReceiver() as receiver:
        env.update(XDG_CACHE_HOME=str(project / "cache"), OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none",
                   OTEL_TRACES_EXPORTER=exporter, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
                   OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf")
        result = subprocess.run([str(Path(AGENT_OTEL).with_name("opentelemetry-instrument")), AGENT_OTEL, "run",
                                 "--", sys.executable, "app.py"],  # (its agent-otel.toml found in the folder)
                                cwd=project, env=env, capture_output=True, text=True, timeout=60)
        assert (result.returncode, result.stdout, result.stderr) == (0, "0 4 ''\n", ""), result.stderr
        assert [span.name for span in wait_for_spans(receiver, 1)] == ["execute_tool work"]


def test_a_thread_raising_sigterm_ends_the_process_while_the_main_thread_waits(project: Path) -> None:
    """``signal.raise_signal(SIGTERM)`` in a watchdog thread, the main thread waiting on an event: the default
    action ends the process at once. The launcher's handler runs on the main thread, which a signal raised in
    another thread does not wake: the process hung for ever (and the test's timeout fired). It dies of it, flushed."""
    code = ("import signal, threading, toolmod\n"
            "toolmod.work(1)\n"
            "def watchdog():\n"
            "    signal.raise_signal(signal.SIGTERM)\n"
            "threading.Thread(target=watchdog, daemon=True).start()\n"
            "threading.Event().wait()\n")
    with OtlpHttpReceiver() as receiver:
        result = run(project, sys.executable, "-c", code, receiver=receiver)
        assert result.returncode == -signal.SIGTERM
        assert [span.name for span in wait_for_spans(receiver, 1)] == ["execute_tool work"]


FORKS_AND_TERMINATES = TERMINATE_FORKED_CHILDREN + """
import sys

print(terminate_forked_children(getattr(signal, sys.argv[1]), 30))
"""


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP"])
def test_a_forked_child_sent_a_flushed_signal_at_once_dies_of_it(project: Path, signame: str) -> None:
    """The launcher flushes on SIGTERM and SIGHUP with a Python handler. Python drops the signals that reach a
    forked child before its fork handlers run, so a child sent one as soon as it was forked ran on (58 in 60), where
    without agent-otel the default ended it. The signal is held over the fork: every child dies of it."""
    (project / "forks.py").write_text(FORKS_AND_TERMINATES)
    result = run(project, sys.executable, "forks.py", signame)
    assert (result.returncode, result.stdout) == (0, f"['{-getattr(signal, signame)}']\n"), result.stderr


FORKS_FROM_TWO_THREADS = """
import os, signal, sys, threading
sys.setswitchinterval(1e-6)  # the threads' holds and releases interleave
children_blocked, threads_blocked = [], []

def fork_many(name):
    for _ in range(150):
        child = os.fork()
        if child == 0:
            os._exit(int(signal.SIGTERM in signal.pthread_sigmask(signal.SIG_BLOCK, [])))
        children_blocked.append(os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]))
    if signal.SIGTERM in signal.pthread_sigmask(signal.SIG_BLOCK, []):
        threads_blocked.append(name)

thread = threading.Thread(target=fork_many, args=("thread",))
thread.start()
fork_many("main")
thread.join()
print(sum(children_blocked), threads_blocked)
"""


def test_two_threads_forking_at_once_leave_no_signal_blocked(project: Path) -> None:
    """The mask before a fork was kept in one value for the process, while each thread has its own: two threads
    forking at once took each other's, and SIGTERM stayed blocked in one of them for good (the program could no
    longer be stopped with it), and in most children it forked after (503 of 600)."""
    (project / "threads.py").write_text(FORKS_FROM_TWO_THREADS)
    result = run(project, sys.executable, "threads.py")
    assert (result.returncode, result.stdout) == (0, "0 []\n"), result.stderr


EXIT_WORK = """
import atexit, sys, threading
atexit.register(lambda: print("atexit saw", repr(getattr(sys, "last_value", None))))
print("buffered", end=" ")
threading.Thread(target=lambda: print("thread done", end=" ")).start()
"""


@pytest.mark.parametrize(("raised", "returncode", "last_value"), [
    ("KeyboardInterrupt", -2, "KeyboardInterrupt()"), ("RuntimeError('fatal')", 1, "RuntimeError('fatal')")])
def test_an_uncaught_exception_ends_the_process_as_plain_python_ends_it(project: Path, raised: str,
                                                                         returncode: int, last_value: str) -> None:
    """The traceback through sys.excepthook (sys.last_value set), then the program's exit work: its atexit
    handlers, its threads, its buffered output; then exit 1, or death by SIGINT. Before, a KeyboardInterrupt
    killed the process before any of that, and sys.last_value stayed unset."""
    script = project / "ends.py"
    script.write_text(EXIT_WORK + f"raise {raised}\n")
    plain = subprocess.run([sys.executable, "ends.py"], cwd=project, capture_output=True, text=True, timeout=60,
                           env={k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"})
    launched = run(project, sys.executable, "ends.py")
    assert (launched.returncode, launched.stdout) == (plain.returncode, plain.stdout) == (
        returncode, f"buffered thread done atexit saw {last_value}\n")
    assert launched.stderr == plain.stderr


def test_a_spawn_pool_returns_objects_of_the_scripts_own_classes(project: Path) -> None:
    """The workers' results are unpickled through ``__mp_main__``, which multiprocessing, imported by the
    launcher before the script ran, had made the launcher's ``__main__``: the pool failed and hung."""
    (project / "pool.py").write_text(
        "import multiprocessing as mp\n\nclass Result:\n    def __init__(self, x):\n        self.x = x\n\n"
        "def work(x):\n    return Result(x * x)\n\nif __name__ == '__main__':\n    mp.set_start_method('spawn')\n"
        "    with mp.Pool(2) as pool:\n        print([r.x for r in pool.map(work, range(4))])\n")
    result = run(project, sys.executable, "pool.py")
    assert (result.returncode, result.stdout, result.stderr) == (0, "[0, 1, 4, 9]\n", "")


POOL_SCRIPT = """
import concurrent.futures, multiprocessing, sys

def work(n):
    return n * 2

def twice(n):
    return work(work(n))

if __name__ == '__main__':
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context(sys.argv[1])) as pool:
        print(list(pool.map(work, range(2))), pool.submit(twice, 1).result())
"""


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_main_targets_are_wrapped_in_the_pool_workers_that_run_the_script_again(project: Path, method: str) -> None:
    """A spawn or forkserver worker runs the script again as ``__mp_main__`` (through runpy, which no import
    hook sees), and the pool's functions are looked up there: its calls of ``__main__`` targets were not traced
    (a forked worker's were). The script's own calls inside the worker are traced too."""
    (project / "pool.py").write_text(POOL_SCRIPT)
    (project / "agent-otel.toml").write_text('[[tool]]\ntarget = ["__main__:work", "__main__:twice"]\n')
    with OtlpHttpReceiver() as receiver:
        result = run(project, sys.executable, "pool.py", method, receiver=receiver)
        assert (result.returncode, result.stdout, result.stderr) == (0, "[0, 2] 4\n", "")
        spans = wait_for_spans(receiver, 5)
    assert sorted(span.name for span in spans) == ["execute_tool twice"] + ["execute_tool work"] * 4


def test_zip_applications_compiled_scripts_and_symlinked_scripts_run_as_python_runs_them(project: Path) -> None:
    """A .pyz (zip) application and a .pyc file failed to run: they were compiled as source. A symlinked
    script's directory on the path was the link's, not its target's, as python has it."""
    import py_compile
    import zipapp

    app = project / "app"
    app.mkdir()
    (app / "__main__.py").write_text("import sys\nprint('app', sys.argv[1:])\n")
    zipapp.create_archive(app, project / "app.pyz")
    (project / "prog.py").write_text("import sys\nprint('compiled', sys.argv[1:])\n")
    py_compile.compile(str(project / "prog.py"), cfile=str(project / "prog.pyc"))
    real = project / "real"
    real.mkdir()
    (real / "helper.py").write_text("NAME = 'helper'\n")
    (real / "main.py").write_text("import helper\nprint(helper.NAME)\n")
    (project / "link.py").symlink_to(real / "main.py")
    for command, output in ((["app.pyz", "x"], "app ['x']\n"), (["prog.pyc", "y"], "compiled ['y']\n"),
                            (["link.py"], "helper\n")):
        plain = subprocess.run([sys.executable, *command], cwd=project, capture_output=True, text=True, timeout=60)
        assert (plain.returncode, plain.stdout) == (0, output), plain.stderr
        launched = run(project, sys.executable, *command)
        assert (launched.returncode, launched.stdout, launched.stderr) == (0, output, ""), command


def test_a_programs_path_argv_file_and_traceback_are_pythons_for_every_kind_of_script(project: Path) -> None:
    """A .pyc script lost its folder on ``sys.path`` (its imports of the modules beside it failed); a
    directory's, zip application's or .pyc's ``sys.argv[0]`` was made absolute, and an error in a directory
    showed runpy's ``run_path`` frames; a script's ``__file__`` was normalized (``./app.py``)."""
    import py_compile
    import zipapp

    show = ("import sys\nprint(sys.argv[0], sys.path[0], globals().get('__file__'))\n"
            "if sys.argv[1:] == ['fail']:\n    raise ValueError('boom')\n")
    app = project / "app"
    app.mkdir()
    (app / "__main__.py").write_text(show)
    zipapp.create_archive(app, project / "app.pyz")
    compiled = project / "compiled"
    compiled.mkdir()
    (compiled / "sibling.py").write_text("NAME = 'sibling'\n")
    (compiled / "prog.py").write_text("import sibling\n" + show + "print(sibling.NAME)\n")
    py_compile.compile(str(compiled / "prog.py"), cfile=str(compiled / "prog.pyc"))
    (compiled / "prog.py").unlink()
    (project / "show.py").write_text(show)
    for command in (["app"], ["app", "fail"], ["app.pyz"], ["compiled/prog.pyc"], ["./show.py"],
                    ["../" + project.name + "/show.py", "fail"]):
        plain = subprocess.run([sys.executable, *command], cwd=project, capture_output=True, text=True, timeout=60)
        assert plain.returncode == (1 if "fail" in command else 0), plain.stderr
        launched = run(project, sys.executable, *command)
        assert (launched.returncode, launched.stdout, launched.stderr) == (
            plain.returncode, plain.stdout, plain.stderr), command


def test_a_busy_metrics_port_leaves_the_program_running_without_metrics(project: Path) -> None:
    """Before, the launcher exited 2 and the program never ran (an earlier run's child still serving the port)."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENT_OTEL_"))}
        env.update(OTEL_METRICS_EXPORTER="prometheus", OTEL_EXPORTER_PROMETHEUS_PORT=str(port),
                   OTEL_TRACES_EXPORTER="none", OTEL_LOGS_EXPORTER="none")
        result = subprocess.run([AGENT_OTEL, "run", "--", sys.executable, "-c", "print('ran')"], cwd=project,
                                env=env, capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (0, "ran\n")
    assert result.stderr == (f"agent-otel: cannot serve /metrics on 127.0.0.1:{port} (Address already in use); the "
                             "port is probably in use: set OTEL_EXPORTER_PROMETHEUS_PORT to a free port; this run "
                             "serves no /metrics\n")


@pytest.mark.parametrize(("variable", "value", "problem"), [
    ("OTEL_METRICS_EXPORTER", "bogus", "unknown exporter 'bogus'; expected one of prometheus, otlp, console, none"),
    ("OTEL_METRICS_EXPORTER", "otlp,bar", "unknown exporter 'bar'; expected one of prometheus, otlp, console, none"),
    ("OTEL_TRACES_EXPORTER", "otlp,bar", "unknown exporter 'bar'; expected one of otlp, console, none"),
])
def test_an_unknown_exporter_stops_the_launcher_before_the_program_runs(project: Path, variable: str, value: str,
                                                                        problem: str) -> None:
    """Before, an unknown OTEL_METRICS_EXPORTER was taken for a busy port: "metrics are off in this run", the
    program ran, exit status 0 (configure() in code raised for the same value)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENT_OTEL_"))}
    env.update(OTEL_METRICS_EXPORTER="none", OTEL_TRACES_EXPORTER="none", OTEL_LOGS_EXPORTER="none")
    env[variable] = value
    result = subprocess.run([AGENT_OTEL, "run", "--", sys.executable, "-c", "print('ran')"], cwd=project,
                            env=env, capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines()[-1] == f"agent-otel: {variable}: {problem}"


def test_a_malformed_span_limit_stops_the_launcher_with_one_line(project: Path) -> None:
    """The SDK reads the span limits as the tracer provider is built, and raised a bare ValueError: a traceback and exit
    status 1, where every other malformed OTEL_* variable is one line and exit status 2."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENT_OTEL_"))}
    env.update(OTEL_METRICS_EXPORTER="none", OTEL_TRACES_EXPORTER="none", OTEL_SPAN_EVENT_COUNT_LIMIT="abc")
    result = subprocess.run([AGENT_OTEL, "run", "--", sys.executable, "-c", "print('ran')"], cwd=project,
                            env=env, capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines()[-1] == ("agent-otel: OTEL_SPAN_EVENT_COUNT_LIMIT='abc': expected a non-negative "
                                              "integer (empty: no limit)"), result.stderr


CHAINS_SIGTERM = """
import signal, sys, time
stop = False
previous = signal.getsignal(signal.SIGTERM)

def graceful(signum, frame):
    global stop
    stop = True
    if callable(previous):  # chain to the handler it replaced: without agent-otel SIG_DFL, not callable
        previous(signum, frame)

signal.signal(signal.SIGTERM, graceful)
print("ready", flush=True)
deadline = time.monotonic() + 60
while not stop and time.monotonic() < deadline:
    time.sleep(0.01)
print("saved state", flush=True)
"""


def test_a_sigterm_handler_chaining_to_the_one_it_replaced_still_decides(project: Path) -> None:
    """The launcher's SIGTERM handler (flush, then die of SIGTERM) is what such a handler finds: called by it,
    it killed the program the handler meant to stop cleanly."""
    (project / "chains.py").write_text(CHAINS_SIGTERM)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENT_OTEL_"))}
    env.update(OTEL_METRICS_EXPORTER="none", OTEL_TRACES_EXPORTER="none", OTEL_LOGS_EXPORTER="none")
    process = subprocess.Popen([AGENT_OTEL, "run", "--", sys.executable, "chains.py"], cwd=project, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert process.stdout is not None and process.stdout.readline() == "ready\n"
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=60)
    assert (process.returncode, out) == (0, "saved state\n")


def test_script_and_module_run_in_process_with_hooks_installed_first(project: Path) -> None:
    with OtlpHttpReceiver() as receiver:
        # run as __main__, toolmod.py is still "toolmod" to its targets (tests/zerocode/test_script_targets.py)
        assert run(project, sys.executable, "toolmod.py", receiver=receiver).stdout == "42\n"
        assert run(project, sys.executable, "-m", "toolmod", receiver=receiver).stdout == "42\n"
        script = project / "main.py"
        script.write_text("import toolmod\nprint(toolmod.work(2))\n")
        assert run(project, sys.executable, "main.py", receiver=receiver).stdout == "4\n"
        assert [span.name for span in wait_for_spans(receiver, 3)] == ["execute_tool work"] * 3


@pytest.mark.parametrize("how", [["app.py"], ["-m", "app"], ["-c", "import app"]])
def test_the_launchers_own_calls_of_configured_functions_are_not_recorded(project: Path, how: list[str]) -> None:
    """Targets on functions the launcher uses itself (``shutil.which`` for the interpreter, ``os.path`` for the
    script's path): its calls before the program ran were recorded as the program's."""
    (project / "agent-otel.toml").write_text("".join(f'[[tool]]\ntarget = "{target}"\n' for target in (
        "shutil:which", "os.path:join", "os.path:realpath", "os.path:abspath", "os.path:exists", "os.path:dirname",
        "os.path:normpath", "os:getcwd")))
    (project / "app.py").write_text("import os.path\nos.path.join('a', 'b')\n")
    with OtlpHttpReceiver() as receiver:
        done = run(project, str(Path(sys.executable).with_name("python3")), *how, receiver=receiver)
        assert (done.returncode, done.stderr) == (0, "")
        spans = wait_for_spans(receiver, 1)
        assert [span.name for span in spans] == ["execute_tool join"]  # the program's one call


def test_the_venvs_python_reached_through_a_linked_folder_runs_in_process(project: Path) -> None:
    """A deploy's ``current`` link to the venv: before, its python was taken for another interpreter and
    exec'd, so the script's own targets were never applied."""
    linked = project / "current"
    linked.symlink_to(Path(sys.executable).parent.parent, target_is_directory=True)
    with OtlpHttpReceiver() as receiver:
        result = run(project, str(linked / "bin" / Path(sys.executable).name), "toolmod.py", receiver=receiver)
        assert (result.returncode, result.stdout) == (0, "42\n")
        assert [span.name for span in wait_for_spans(receiver, 1)] == ["execute_tool work"]


def test_a_program_run_with_pythoninspect_set_gets_pythons_prompt_after_it(project: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """``PYTHONINSPECT`` asks python for its interactive prompt once the program ends (here it reads the end of
    stdin and exits 0): the program is exec'd, as with ``-i``. Before, the launcher's console script raised its
    ``SystemExit`` into that mode, which printed it as a traceback and exited 1."""
    (project / "hello.py").write_text("print('script ran')\n")
    monkeypatch.setenv("PYTHONINSPECT", "1")
    plain = subprocess.run([sys.executable, "hello.py"], cwd=project, input="", capture_output=True, text=True,
                           timeout=60)
    result = run(project, sys.executable, "hello.py")
    assert (result.returncode, result.stdout, result.stderr) == (plain.returncode, plain.stdout, plain.stderr)
    assert (plain.returncode, plain.stdout) == (0, "script ran\n")


def test_other_programs_are_execd_and_python_children_bootstrap_themselves(project: Path) -> None:
    with OtlpHttpReceiver() as receiver:
        result = run(project, "sh", "-c", f"{sys.executable} -c 'import toolmod; print(toolmod.work(4))'; exit 5",
                     receiver=receiver)
        assert (result.returncode, result.stdout, result.stderr) == (5, "8\n", "")
        assert [span.name for span in wait_for_spans(receiver, 1)] == ["execute_tool work"]
        result = run(project, sys.executable, "-u", "-c", "import toolmod; toolmod.work(1)", receiver=receiver)
        assert result.returncode == 0
        assert [span.name for span in wait_for_spans(receiver, 2)] == ["execute_tool work"] * 2


def test_python_children_take_the_launchers_configuration_not_one_in_their_own_working_directory(
        tmp_path: Path) -> None:
    """The launcher found no configuration: a Python child it starts in another folder has none either. Before,
    the child looked in its own working directory, and another project's file there (here a malformed one) put
    a line of agent-otel's on the child's stderr, or instrumented it with that project's targets."""
    other = tmp_path / "other"
    other.mkdir()
    (other / "agent-otel.toml").write_text("[[tool]]\ntarget = 5\n")
    child = ("import subprocess, sys\n"
             "done = subprocess.run([sys.executable, '-c', 'print(1)'], cwd='other', capture_output=True, text=True)\n"
             "print(done.returncode, repr(done.stdout), repr(done.stderr))\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENT_OTEL_"))}
    env.update(OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none", OTEL_TRACES_EXPORTER="none")
    result = subprocess.run([AGENT_OTEL, "run", "--", sys.executable, "-c", child], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.stdout == "0 '1\\n' ''\n"
    assert result.stderr == "agent-otel: no configuration found; running with SDK setup only\n"


def test_a_program_run_by_another_interpreter_says_it_runs_untraced_and_its_children_stay_silent(
        project: Path) -> None:
    """Debian's own python3 has no agent-otel: the program runs as under it, with one line saying so; before,
    nothing said why no telemetry came. A Python that the traced program starts is not the program: silent."""
    other = "/usr/bin/python3"
    assert subprocess.run([other, "-c", "import agent_otel"], capture_output=True).returncode == 1
    result = run(project, other, "-c", "import sys; print('hi'); sys.exit(3)")
    assert (result.returncode, result.stdout) == (3, "hi\n")
    assert result.stderr == (f"agent-otel: {other} cannot import agent_otel; this program runs untraced"
                             " (run it with the Python agent-otel is installed in)\n")
    child = f"import subprocess; subprocess.run([{other!r}, '-c', 'print(1)'], check=True)"
    result = run(project, sys.executable, "-c", child)
    assert (result.returncode, result.stdout, result.stderr) == (0, "1\n", "")


def test_a_broken_install_runs_the_program_untraced_and_says_why(tmp_path: Path) -> None:
    """Langfuse 3 installed after agent-otel puts wrapt 1.17 in (pip warns of the conflict and installs it): agent-otel
    cannot be imported, and ``agent-otel run`` exited 1 with a traceback, the program never run (probe p51b). It runs
    the program as without agent-otel, after one line saying why; another command says the same and exits 1."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "wrapt.py").write_text('__version__ = "1.17.3"\n')  # no BaseObjectProxy, as wrapt below 2
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENT_OTEL_"))}
    env.update(PYTHONPATH=str(site))
    program = "import sys; print('ran', sys.argv[1:]); sys.exit(3)"
    for options in ([], ["--config", "agent-otel.toml"], ["--config=agent-otel.toml"], ["--conf", "agent-otel.toml"]):
        result = subprocess.run([AGENT_OTEL, "run", *options, "--", sys.executable, "-c", program, "a"], cwd=tmp_path,
                                env=env, capture_output=True, text=True, timeout=60)
        assert (result.returncode, result.stdout) == (3, "ran ['a']\n"), result.stderr
        assert result.stderr.startswith("agent-otel: cannot import agent_otel (AttributeError: ")
        assert result.stderr.endswith("; the program runs untraced\n") and result.stderr.count("\n") == 1
    for command in (["check"], ["run", "-h"]):
        result = subprocess.run([AGENT_OTEL, *command], cwd=tmp_path, env=env, capture_output=True, text=True,
                                timeout=60)
        assert (result.returncode, result.stdout, result.stderr.count("\n")) == (1, "", 1), result.stderr
    result = subprocess.run([AGENT_OTEL, "run", "--", "no-such-program-zc"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 127
    assert result.stderr.endswith("agent-otel run: cannot execute 'no-such-program-zc': No such file or directory\n")


def test_missing_program_and_missing_script(project: Path) -> None:
    result = run(project, "no-such-program-zc")
    assert result.returncode == 127
    assert result.stderr.endswith("agent-otel run: cannot execute 'no-such-program-zc': No such file or directory\n")
    result = run(project, sys.executable, "absent.py")
    assert result.returncode == 2
    assert "can't open file" in result.stderr


def test_a_missing_script_is_named_as_python_names_it(project: Path) -> None:
    """As typed: the interpreter's name (it was sys.executable's full path) and the script's path joined to the
    working directory, not normalized."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENT_OTEL_"))}
    env.update(PATH=os.pathsep.join((str(Path(sys.executable).parent), env.get("PATH", ""))),
               XDG_CACHE_HOME=str(project / "cache"), OTEL_METRICS_EXPORTER="none", OTEL_TRACES_EXPORTER="none")
    command = [Path(sys.executable).name, "./absent.py"]
    plain = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=60)
    launched = subprocess.run([AGENT_OTEL, "run", "--config", str(project / "agent-otel.toml"), "--", *command],
                              cwd=project, env=env, capture_output=True, text=True, timeout=60)
    assert plain.stderr.startswith(f"{command[0]}: can't open file '{project}/./absent.py'")
    assert (launched.returncode, launched.stdout, launched.stderr) == (plain.returncode, plain.stdout, plain.stderr)


@pytest.mark.parametrize(("variable", "raw"), [("AGENT_OTEL_CARDINALITY_LIMIT", "abc"),
                                               ("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "bogus")])
def test_a_malformed_policy_variable_stops_the_launcher_before_the_program_runs(
        project: Path, variable: str, raw: str) -> None:
    """As every other malformed variable does (exit 2, one line naming it): before, the program ran with every
    wrapped call failing to start, so with no telemetry at all and nothing said."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENT_OTEL_"))}
    env.update(XDG_CACHE_HOME=str(project / "cache"), OTEL_METRICS_EXPORTER="none", OTEL_TRACES_EXPORTER="none",
               **{variable: raw})
    result = subprocess.run([AGENT_OTEL, "run", "--config", str(project / "agent-otel.toml"), "--", sys.executable,
                             "-c", "print('ran')"], cwd=project, env=env, capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (2, "")
    assert f"environment variable {variable}={raw!r}" in result.stderr


def test_a_shared_cache_folder_is_never_written_nor_run_from(project: Path) -> None:
    # a world-writable XDG_CACHE_HOME with a sitecustomize planted where launchers used to write theirs
    cache = project / "cache"
    marker = project / "planted-ran"
    planted = f"open({str(marker)!r}, 'w').close()\n"
    for folder in (cache, cache / "agent-otel" / f"bootstrap-{__version__}", cache / "agent-otel" / "bootstrap"):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "sitecustomize.py").write_text(planted)
    for folder in [cache, *(p for p in cache.rglob("*") if p.is_dir())]:
        folder.chmod(0o777)
    before = sorted((str(p), p.stat().st_mtime_ns) for p in cache.rglob("*"))
    first_entry = "import os; print(os.environ['PYTHONPATH'].split(os.pathsep)[0])"
    bootstrap = "import os, sitecustomize; print(os.path.dirname(sitecustomize.__file__))"
    assert bootstrap_dir().parent == Path(launcher.__file__).parent  # the package's own folder
    result = run(project, sys.executable, "-c", f"{first_entry}; import subprocess, sys; "
                 f"subprocess.run([sys.executable, '-c', {bootstrap!r}])")  # the program, and its Python child
    assert (result.returncode, result.stdout, result.stderr) == (0, f"{bootstrap_dir()}\n" * 2, "")
    result = run(project, "sh", "-c", f'{sys.executable} -c "{bootstrap}"')  # an exec'd program's child
    assert (result.returncode, result.stdout, result.stderr) == (0, f"{bootstrap_dir()}\n", "")
    assert not marker.exists()
    assert sorted((str(p), p.stat().st_mtime_ns) for p in cache.rglob("*")) == before  # nothing written there


def test_a_file_nested_thousands_deep_stops_the_launcher_with_status_2(project: Path) -> None:
    config = project / "agent-otel.toml"
    config.write_text("x = " + "{ a = " * 5_000 + "1" + " }" * 5_000 + "\n")
    result = run(project, sys.executable, "-c", "print('ran')")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"agent-otel: {config}: invalid TOML: arrays or inline tables nested too deeply\n"


JOB_IN_FLIGHT = """
import time

def step(i):
    time.sleep(0.02)
    return i

def main():
    print("ready", flush=True)
    for i in range(3000):
        step(i)

if __name__ == "__main__":
    main()
"""


def test_sigterm_ends_the_job_in_flight_as_an_error_before_the_flush(tmp_path: Path) -> None:
    """Before, the finished tool spans were exported but the job running when SIGTERM came never was: neither its
    span nor job.duration (Ctrl-C ends it through KeyboardInterrupt). Now it ends with outcome error and error.type
    SIGTERM, and the process still dies of SIGTERM."""
    (tmp_path / "app.py").write_text(JOB_IN_FLIGHT)
    (tmp_path / "agent-otel.toml").write_text('[[job]]\ntarget = "__main__:main"\ntype = "long"\n'
                                             '[[tool]]\ntarget = "__main__:step"\n')
    with OtlpHttpReceiver() as receiver:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENT_OTEL_"))}
        env.update(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
                   OTEL_TRACES_EXPORTER="otlp", OTEL_METRICS_EXPORTER="otlp", OTEL_LOGS_EXPORTER="none",
                   AGENT_OTEL_EXIT_FLUSH_TIMEOUT_MS="5000")
        process = subprocess.Popen([AGENT_OTEL, "run", "--", sys.executable, "app.py"], cwd=tmp_path, env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert process.stdout is not None and process.stdout.readline() == "ready\n"
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
        assert (process.returncode, err) == (-signal.SIGTERM, "")
        wait_until(lambda: any(s.name == "invoke_workflow long" for s in receiver.spans()), "the job span")
        job = next(attributes_of(s) for s in receiver.spans() if s.name == "invoke_workflow long")
        assert (job["job.outcome"], job["error.type"]) == ("error", "SIGTERM")
        wait_until(lambda: receiver.metrics_named("job.duration"), "job.duration")
        points = [attributes_of(p) for m in receiver.metrics_named("job.duration") for p in data_points_of(m)]
        assert {"job.type": "long", "job.outcome": "error"} in points


@pytest.mark.parametrize(("args", "split"), [
    (["-uWerror", "app.py"], (["-u", "-W", "error"], ["app.py"])),
    (["-OX", "dev", "app.py", "-x"], (["-O", "-X", "dev"], ["app.py", "-x"])),
    (["-um", "pkg", "a"], (["-u"], ["-m", "pkg", "a"])),
    (["-u", "-c", "pass"], (["-u"], ["-c", "pass"])),
    (["-sP", "app.py"], (["-sP"], ["app.py"])),
    (["-uE", "app.py"], None),
    (["-I", "app.py"], None),
    (["-u"], None),
])
def test_run_options_are_split_from_the_program_letter_by_letter(args: list[str], split: object) -> None:
    """A run option grouped before one taking a value (``-uWerror``) was dropped: ``-W error`` alone."""
    assert launcher._split_run_options(args) == split


def test_a_launcher_started_again_that_cannot_import_itself_execs_the_program_as_it_was_given(tmp_path: Path) -> None:
    """``python -s app.py`` starts the launcher again with ``-s``, which leaves out the user site-packages: with
    agent-otel installed there (``pip install --user``), it could not import itself (a traceback, exit 1, the program
    never ran). It execs the program as it was given, untraced, with one line saying why. (``-S`` stands in for that
    here: a venv has no user site-packages, and ``-S`` leaves out the venv's, where agent-otel is; the launcher never
    starts again with ``-S`` itself.)"""
    (tmp_path / "app.py").write_text("import sys\nprint('ran', sys.flags.no_site, sys.argv[1:])\nsys.exit(3)\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "AGENT_OTEL_"))}
    done = subprocess.run([sys.executable, "-S", "-c", launcher._AGAIN, "run", "--config", "none.toml", "--",
                           sys.executable, "app.py", "x"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (
        3, "ran 1 ['x']\n", "agent-otel: python -S cannot import agent-otel (-s leaves out the user site-packages it "
        "is installed in): this program runs untraced\n")


def _plain_and_launched(tmp_path: Path, command: list[str], env: dict[str, str] | None = None,
                        merged: bool = False, launcher: tuple[str, ...] = (AGENT_OTEL,),
                        ) -> tuple[tuple[int, str, str], tuple[int, str, str]]:
    """(status, stdout, stderr) of ``command`` without and under ``agent-otel run`` (stderr into stdout when
    ``merged``: their order; ``launcher``: how the launcher is started), with the project's configuration."""
    environment = {k: v for k, v in os.environ.items()
                   if not k.startswith(("OTEL_", "AGENT_OTEL_")) and k != "PYTHONUNBUFFERED"}  # buffered, as usual
    environment.update(XDG_CACHE_HOME=str(tmp_path / "cache"), OTEL_METRICS_EXPORTER="none",
                       OTEL_LOGS_EXPORTER="none", OTEL_TRACES_EXPORTER="none", **(env or {}))
    results = []
    for prefix in ([], [*launcher, "run", "--config", str(tmp_path / "agent-otel.toml"), "--"]):
        done = subprocess.run([*prefix, *command], cwd=tmp_path, env=environment, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT if merged else subprocess.PIPE, text=True, timeout=60)
        results.append((done.returncode, done.stdout, done.stderr or ""))
    return results[0], results[1]


@pytest.mark.parametrize("option", ["-O", "-u", "-I"])
def test_a_scripts_shebang_options_are_kept(project: Path, option: str) -> None:
    """Before, a script whose ``#!`` line names this interpreter with options was run in process as if the line
    had none: ``-O`` scripts failed on their asserts, ``-I`` ones saw the environment's path."""
    script = project / "tool.py"
    script.write_text(f"#!{sys.executable} {option}\nimport sys\nassert {option == '-O'} is False, 'asserts on'\n"
                      "print(sys.flags.optimize, sys.stdout.write_through, sys.flags.isolated)\n")
    script.chmod(0o755)
    plain, launched = _plain_and_launched(project, [str(script)])
    assert launched == plain
    assert plain[0] == 0, plain


def test_an_empty_pythonpath_entry_stays_the_working_directory_of_python_children(project: Path) -> None:
    """Before, the launcher dropped the empty entries of ``PYTHONPATH`` as it put its bootstrap first, so Python
    children no longer imported from their working directory (ModuleNotFoundError, status 1)."""
    (project / "helper.py").write_text("print('helper from the working directory')\n")
    (project / "sub").mkdir()
    (project / "sub" / "child.py").write_text("import helper\n")
    (project / "sub" / "parent.py").write_text(
        "import subprocess, sys\nprint(subprocess.run([sys.executable, 'sub/child.py']).returncode)\n")
    plain, launched = _plain_and_launched(project, [sys.executable, "sub/parent.py"], {"PYTHONPATH": ":/nowhere"})
    assert launched == plain
    assert plain[1] == "helper from the working directory\n0\n"


@pytest.mark.parametrize("how", [["ended.py"], ["-c", "import ended"]])
@pytest.mark.parametrize("end", ["sys.exit('bye')", "raise SystemExit(None)", "raise KeyError('k')"])
def test_why_a_program_ended_is_printed_where_python_prints_it(project: Path, how: list[str], end: str) -> None:
    """python flushes what a script printed before it prints why the program ended (a traceback, an exit message),
    and not what ``-c`` code (or a ``-m`` module) printed. Before, under the launcher, an exit message came before
    a script's output, and a traceback after the output of ``-c`` code."""
    (project / "ended.py").write_text(f"import sys\nprint('out')\n{end}\n")
    plain, launched = _plain_and_launched(project, [sys.executable, *how], merged=True)
    assert launched == plain
    assert "out\n" in plain[1]


@pytest.mark.parametrize("launcher", [(AGENT_OTEL,), (sys.executable, "-m", "agent_otel")],
                         ids=["console script", "python -m agent_otel"])
@pytest.mark.parametrize("how", [["ended.py"], ["-m", "ended"], ["-c", "import ended"]])
@pytest.mark.parametrize("end", ["pass", "sys.exit(3)", "raise KeyError('k')"])
def test_what_atexit_handlers_write_comes_where_python_writes_it(project: Path, how: list[str], end: str,
                                                                  launcher: tuple[str, ...]) -> None:
    """python flushes a script's output before it runs the ``atexit`` handlers, and ``-c`` code's and a ``-m``
    module's after them. Under the launcher the order followed how the launcher was started: its console script
    flushed ``-c``/``-m`` output first, ``python -m agent_otel`` a script's last."""
    (project / "ended.py").write_text("import atexit, sys\natexit.register(lambda: sys.stderr.write('atexit\\n'))\n"
                                      f"print('out')\n{end}\n")
    plain, launched = _plain_and_launched(project, [sys.executable, *how], merged=True, launcher=launcher)
    assert launched == plain
    assert "atexit\n" in plain[1] and "out\n" in plain[1]


def test_a_module_with_targets_says_its_compile_warnings_as_python_does(project: Path) -> None:
    """``python -m`` compiles nothing when the module's bytecode is cached; the launcher compiled each group of its
    statements again and said their warnings: under ``-W error`` the program never ran (SyntaxError)."""
    (project / "warned.py").write_text("def main(x):\n    return 'one' if x is 1 else 'other'\n\n"
                                       "if __name__ == '__main__':\n    print(main(1))\n")
    (project / "agent-otel.toml").write_text('[[tool]]\ntarget = "warned:main"\n')
    subprocess.run([sys.executable, "-W", "ignore", "-m", "compileall", "-q", str(project / "warned.py")], check=True)
    plain, launched = _plain_and_launched(project, [sys.executable, "-W", "error", "-m", "warned"])
    assert launched == plain
    assert plain[:2] == (0, "one\n")


@pytest.mark.parametrize("given", ["--config=", "--config= "])
def test_an_empty_config_option_is_refused_not_taken_as_none(project: Path, given: str) -> None:
    """``--config="$CONFIG"`` with the variable unset: before, the launcher looked for a configuration as if the
    option were not there (none found: the program ran with the SDK setup only), without a word about it."""
    result = subprocess.run([AGENT_OTEL, "run", given, "--", sys.executable, "-c", "print('ran')"], cwd=project,
                            capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == ("agent-otel run: --config names no file; give a path, or leave the option out to look "
                             "for one\n")


def test_python_dot_runs_the_working_directorys_main_with_pythons_paths(project: Path) -> None:
    """``python .`` has the working directory itself first on its path and in ``__file__``; under the launcher they
    were ``/work/.`` and ``/work/./__main__.py``."""
    (project / "__main__.py").write_text("import sys\nprint(sys.path[0], __file__)\n")
    plain, launched = _plain_and_launched(project, [sys.executable, "."])
    assert launched == plain
    assert plain[1] == f"{project} {project / '__main__.py'}\n"


HEADERS_PROGRAM = """
import http.server, threading, urllib.request
import agent_otel

seen = []

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        seen.append(self.headers.get("baggage"))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass

server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
with agent_otel.job("job-x", type="fetch"):
    urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/").close()
server.shutdown()
print(seen)
"""


@pytest.mark.parametrize("config", ["no file", "an empty file"])
def test_outgoing_http_calls_carry_the_job_with_the_default_switches_file_or_not(tmp_path: Path,
                                                                                 config: str) -> None:
    """``http_headers`` is on by default, as every ``[instrumentation]`` switch: without a configuration file the
    launcher left it off, and a job's calls to another service carried neither its trace nor its id."""
    (tmp_path / "app.py").write_text(HEADERS_PROGRAM)
    if config == "an empty file":
        (tmp_path / "agent-otel.toml").write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENT_OTEL_"))}
    env.update(XDG_CACHE_HOME=str(tmp_path / "cache"), OTEL_METRICS_EXPORTER="none", OTEL_TRACES_EXPORTER="none")
    result = subprocess.run([AGENT_OTEL, "run", "--", sys.executable, "app.py"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    [baggage] = ast.literal_eval(result.stdout)
    assert "job.id=job-x" in baggage.split(","), baggage


@pytest.mark.parametrize(("options", "said"), [
    (["-I"], "python -I ignores PYTHONPATH, which holds agent-otel's hook"),
    (["-X", "dev", "-sE"], "python -E ignores PYTHONPATH, which holds agent-otel's hook"),
    (["-Werror", "-S"], "python -S imports no sitecustomize, agent-otel's hook"),
])
def test_a_python_flag_that_keeps_the_hook_out_is_said_once(project: Path, options: list[str], said: str) -> None:
    """Such a program ran untraced without a word, where a python without agent-otel gets one line."""
    result = run(project, sys.executable, *options, "-c", "print('ran')")
    assert (result.returncode, result.stdout) == (0, "ran\n")
    assert f"agent-otel: {said}: this program runs untraced\n" in result.stderr


def test_the_program_sees_the_interpreter_as_its_command_named_it(project: Path) -> None:
    """``agent-otel run -- python3 app.py``: ``sys.executable`` was the launcher's ``.../python``, where plain
    ``python3 app.py`` has ``.../python3`` (the same interpreter, by another name)."""
    python3 = Path(sys.executable).with_name("python3")
    assert python3.exists()
    plain, launched = _plain_and_launched(project, [str(python3), "-c", "import sys; print(sys.executable)"])
    assert launched == plain
    assert plain[1] == f"{python3}\n"


def test_a_working_directory_that_was_removed_holds_no_configuration(tmp_path: Path) -> None:
    """Python runs a program by its absolute path in a working directory that was removed (a deploy swapped it, a temp
    folder was cleaned up); `agent-otel run` crashed looking for agent-otel.toml there (a FileNotFoundError from
    ``os.getcwd()``, exit 1, the program never ran), and so did ``instrument()``."""
    program = tmp_path / "hello.py"
    program.write_text("import agent_otel\nagent_otel.instrument()\nprint('program ran')\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENT_OTEL_"))}
    env.update(XDG_CACHE_HOME=str(tmp_path / "cache"), OTEL_METRICS_EXPORTER="none", OTEL_TRACES_EXPORTER="none",
               OTEL_LOGS_EXPORTER="none")
    gone = tmp_path / "gone"
    gone.mkdir()
    for launch in ([], [AGENT_OTEL, "run", "--"]):
        command = " ".join([*launch, sys.executable, str(program)])
        result = subprocess.run(["bash", "-c", f'cd "{gone}" && rmdir "{gone}" && exec {command}'], env=env,
                                capture_output=True, text=True, timeout=60)
        assert (result.returncode, result.stdout) == (0, "program ran\n"), result.stderr
        gone.mkdir()


def test_the_bootstrap_parses_under_every_interpreter_a_child_may_be() -> None:
    """``PYTHONPATH`` reaches every interpreter the program starts: the bootstrap's f-string and annotation were a
    ``SyntaxError`` under Python 2, which printed "'import sitecustomize' failed; use -v for traceback" on a legacy
    tool's stderr and skipped the tool's own ``sitecustomize``. Python 2 cannot run here, so its syntax is checked:
    no f-string, no annotation, nothing newer than Python 3.4's grammar."""
    import agent_otel

    source = (Path(agent_otel.__file__).parent / "_zerocode" / "bootstrap" / "sitecustomize.py").read_text()
    tree = ast.parse(source, feature_version=(3, 4))
    assert not [node for node in ast.walk(tree) if isinstance(node, ast.JoinedStr | ast.AnnAssign)]
    functions = [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)]
    assert functions and all(node.returns is None and all(arg.annotation is None for arg in node.args.args)
                             for node in functions)


GEVENT_PROGRAM = """from gevent import monkey; monkey.patch_all()
import subprocess, sys
import urllib3.util.ssl_
import toolmod
toolmod.work(1)
print(type(urllib3.util.ssl_.create_urllib3_context()).__module__, flush=True)  # sets its minimum TLS version
if sys.argv[1:] == ["parent"]:
    subprocess.run([sys.executable, __file__], check=True)
"""


def test_a_gevent_program_exporting_over_otlp_http_is_patched_first_when_asked(project: Path) -> None:
    """The OTLP/HTTP exporters import requests and urllib3 before the program runs, which keep the ssl classes they
    found: the program's own ``patch_all()`` came after, and every HTTPS request under gevent failed with a
    RecursionError. ``OTEL_PYTHON_AUTO_INSTRUMENTATION_EXPERIMENTAL_GEVENT_PATCH=patch_all``, as
    ``opentelemetry-instrument`` reads it, patches before the exporters are made, in the program and its children."""
    (project / "app.py").write_text(GEVENT_PROGRAM)
    with OtlpHttpReceiver() as receiver:
        result = run(project, sys.executable, "app.py", "parent", receiver=receiver,
                     OTEL_PYTHON_AUTO_INSTRUMENTATION_EXPERIMENTAL_GEVENT_PATCH="patch_all",
                     AGENT_OTEL_EXIT_FLUSH_TIMEOUT_MS="20000")  # (each process exports at its exit: on a loaded
        # machine the default 1 s budget lost a child's span once)
        assert (result.returncode, result.stdout, result.stderr) == (0, "gevent.ssl\ngevent.ssl\n", "")
        assert len(wait_for_spans(receiver, 2)) == 2  # the tool call of each, exported over OTLP/HTTP
    result = run(project, sys.executable, "-c", "print('ran')",
                 OTEL_PYTHON_AUTO_INSTRUMENTATION_EXPERIMENTAL_GEVENT_PATCH="")
    assert (result.returncode, result.stdout) == (0, "ran\n")  # empty: unset, as the configuration spec has it
    result = run(project, sys.executable, "app.py", OTEL_PYTHON_AUTO_INSTRUMENTATION_EXPERIMENTAL_GEVENT_PATCH="yes")
    assert (result.returncode, result.stdout) == (2, "")
    assert ("OTEL_PYTHON_AUTO_INSTRUMENTATION_EXPERIMENTAL_GEVENT_PATCH: expected 'patch_all', got 'yes'"
            in result.stderr)


GEVENT_SCRAPED_PROGRAM = """import sys, urllib.request
import toolmod
toolmod.work(1)
with urllib.request.urlopen(sys.argv[1], timeout=10) as response:  # a scrape, served by a greenlet of ours meanwhile
    assert response.status == 200
toolmod.work(2)
"""


def test_a_gevent_program_keeps_recording_after_a_scrape(project: Path) -> None:
    """Under gevent's monkey-patching agent-otel's threads are greenlets of the program's thread: the /metrics request
    thread marked its thread's work as agent-otel's own for good, and every call of the program after the first scrape
    went unrecorded (review rv61)."""
    from agent_otel._ops.stack import free_port

    (project / "app.py").write_text(GEVENT_SCRAPED_PROGRAM)
    port = free_port()
    with OtlpHttpReceiver() as receiver:
        result = run(project, sys.executable, "app.py", f"http://127.0.0.1:{port}/metrics", receiver=receiver,
                     OTEL_PYTHON_AUTO_INSTRUMENTATION_EXPERIMENTAL_GEVENT_PATCH="patch_all",
                     OTEL_METRICS_EXPORTER="prometheus", OTEL_EXPORTER_PROMETHEUS_PORT=str(port))
        assert (result.returncode, result.stderr) == (0, "")
        assert len(wait_for_spans(receiver, 2)) == 2  # both calls: before the scrape and after it


RELOADER_PROGRAM = """import sys
from werkzeug.serving import run_simple
import toolmod

def app(environ, start_response):
    toolmod.work(1)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]

run_simple("127.0.0.1", int(sys.argv[1]), app, use_reloader=True, reloader_type="stat")
"""


def test_a_reloaders_child_serves_metrics_on_the_port_its_parent_hands_over(project: Path) -> None:
    """werkzeug's reloader (Flask's debug mode; Django's ``runserver`` works alike) runs the program in a child while
    the first process watches its files: that process held the /metrics port, and the child, whose calls are the
    program's, served none (its port in use). The first process releases it as it starts the child."""
    import signal as signals
    import urllib.request

    from agent_otel._ops.stack import free_port

    (project / "app.py").write_text(RELOADER_PROGRAM)
    app_port, metrics_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENT_OTEL_"))}
    env.update(XDG_CACHE_HOME=str(project / "cache"), OTEL_TRACES_EXPORTER="none", OTEL_LOGS_EXPORTER="none",
               OTEL_METRICS_EXPORTER="prometheus", OTEL_EXPORTER_PROMETHEUS_PORT=str(metrics_port))
    server = subprocess.Popen([AGENT_OTEL, "run", "--", sys.executable, "app.py", str(app_port)], cwd=project, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def get(url: str) -> str | None:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return str(response.read().decode())
        except OSError:
            return None

    try:
        wait_until(lambda: get(f"http://127.0.0.1:{app_port}/") == "ok", "the reloader's child to serve the app")
        wait_until(lambda: 'gen_ai_tool_name="work"' in (get(f"http://127.0.0.1:{metrics_port}/metrics") or ""),
                   "the child's tool call on /metrics")
    finally:
        os.killpg(server.pid, signals.SIGTERM)
        server.wait(timeout=30)


#: CrewAI's telemetry's SIGTERM handler (crewai/telemetry/telemetry.py): it calls the handler it replaced when that is
#: callable, and raises SystemExit(0) over the default.
CHAINS_OR_EXITS = """
import os, signal
import toolmod
original = signal.getsignal(signal.SIGTERM)

def handler(signum, frame):
    if original not in (signal.SIG_DFL, signal.SIG_IGN, None) and callable(original):
        original(signum, frame)
    else:
        raise SystemExit(0)

replaced = signal.signal(signalnum=signal.SIGTERM, handler=handler)  # (keywords, as signal.py takes them)
print(original is signal.SIG_DFL, replaced is signal.SIG_DFL, signal.getsignal(signalnum=signal.SIGTERM) is handler,
      flush=True)
toolmod.work(1)
os.kill(os.getpid(), signal.SIGTERM)  # (handled before kill() returns: a signal a process sends itself)
print("still running after SIGTERM", flush=True)
"""
#: A program that puts back the default it found, then is sent SIGTERM.
PUTS_THE_DEFAULT_BACK = """
import os, signal
import toolmod
previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
print(signal.signal(signal.SIGTERM, previous) is not None, signal.getsignal(signal.SIGTERM) is signal.SIG_DFL,
      flush=True)
toolmod.work(1)
os.kill(os.getpid(), signal.SIGTERM)
print("still running after SIGTERM", flush=True)
"""


def test_the_program_sees_the_default_where_the_launchers_sigterm_handler_stands_for_it(project: Path) -> None:
    """The program read the launcher's handler from ``signal.getsignal()``: CrewAI's handler, which chains to a callable
    one and exits over the default, called it, which leaves a signal the program took over to the program, and SIGTERM
    no longer stopped it (``docker stop`` waited for SIGKILL). The program sees the default now, as without agent-otel;
    and putting the default back puts back the launcher's, which flushes before the process dies of the signal."""
    (project / "chains.py").write_text(CHAINS_OR_EXITS)
    (project / "default.py").write_text(PUTS_THE_DEFAULT_BACK)
    plain = subprocess.run([sys.executable, "chains.py"], cwd=project, capture_output=True, text=True, timeout=60)
    assert (plain.returncode, plain.stdout, plain.stderr) == (0, "True True True\n", "")
    with OtlpHttpReceiver() as receiver:
        result = run(project, sys.executable, "chains.py", receiver=receiver)
        assert (result.returncode, result.stdout) == (plain.returncode, plain.stdout)
        assert [span.name for span in wait_for_spans(receiver, 1)] == ["execute_tool work"]
    with OtlpHttpReceiver() as receiver:
        result = run(project, sys.executable, "default.py", receiver=receiver)
        assert (result.returncode, result.stdout) == (-signal.SIGTERM, "True True\n")
        assert [span.name for span in wait_for_spans(receiver, 1)] == ["execute_tool work"]


def test_multiprocessings_resource_tracker_is_not_instrumented(project: Path) -> None:
    """The tracker (``python -c "from multiprocessing.resource_tracker import main;main(fd)"``, started with the first
    spawn or forkserver worker) runs none of the program's code: set up as a program, it exported a series of its own
    and, the Collector not answering, outlived the program's exit by its exit flush (probe p49f, uvicorn --workers).
    Read off the tracker's memory map once its main runs (it ignores SIGTERM then): it has loaded no C extension of
    agent-otel's dependencies (wrapt's, psutil's), which the sitecustomize would have imported before."""
    (project / "app.py").write_text("""\
import sys
from multiprocessing import resource_tracker

sys.path.insert(0, sys.argv[1])
from tests.support.polling import wait_until

resource_tracker.ensure_running()
pid = resource_tracker._resource_tracker._pid


def read(name):
    with open(f"/proc/{pid}/{name}") as file:
        return file.read()


def ignores_sigterm():
    ignored = next(line for line in read("status").splitlines() if line.startswith("SigIgn:"))
    return bool(int(ignored.split()[1], 16) & 1 << 14)


wait_until(ignores_sigterm, "the tracker to run its main")
print(sorted(name for name, library in {"wrapt": "_wrappers", "psutil": "_psutil_linux"}.items()
             if library in read("maps")))
""")
    result = run(project, sys.executable, "app.py", str(Path(__file__).resolve().parents[2]))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[]\n"
