"""``agent-otel run``: run a program instrumented by configuration, with its own argv, stdio, exit status
and signals, and instrument the Python processes it starts.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import importlib.metadata
import os
import re
import shutil
import signal
import sys
import threading
import traceback
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, cast

from opentelemetry.instrumentation.environment_variables import (
    OTEL_PYTHON_AUTO_INSTRUMENTATION_EXPERIMENTAL_GEVENT_PATCH,
)
from opentelemetry.instrumentation.utils import suppress_instrumentation

from agent_otel._engine.exit_signals import ENDING_SIGNALS
from agent_otel._engine.fork_signals import hold_over_fork
from agent_otel._engine.instruments import enabled_from_env
from agent_otel._engine.own_work import own_work
from agent_otel._engine.self_telemetry import report_error
from agent_otel._engine.signal_view import install_handler, installed_handler, stand_in_for_default
from agent_otel._environment import (
    AGENT_OTEL_CONFIG,
    AGENT_OTEL_CONFIG_FOUND,
    AGENT_OTEL_LAUNCHER,
    AGENT_OTEL_PROGRAM_MAIN,
    AGENT_OTEL_PROGRAM_PID,
)
from agent_otel._sdk.configure import (
    claim_instance_id,
    end_in_flight_on,
    flush_at_exit,
)
from agent_otel._zerocode import program as programs
from agent_otel._zerocode.config import (
    Config,
    Switches,
    find_command_config,
    load_config,
    load_file,
    outer_launchers_config,
)
from agent_otel._zerocode.instrumentations import activate as activate_instrumentations
from agent_otel._zerocode.instrumentor import configure_sdk
from agent_otel._zerocode.patching import instrument, leave_main_to_launcher
from agent_otel.errors import ConfigurationError

_PYTHON_NAME = re.compile(r"^python(\d+(\.\d+)?)?$")
#: What the launcher says, and the source of the empty configuration it runs with, when it finds no file.
_NO_CONFIGURATION = "no configuration found"


@dataclass
class Plan:
    """How to start the program: in this process (script, module, code, entry) or exec."""

    how: str
    target: str  # the script, module, code or executable; the console script's name for "entry"
    argv: list[str]
    entry: importlib.metadata.EntryPoint | None = None  # the console script, for "entry"
    options: list[str] = field(default_factory=list)  # the interpreter's run options, for "again"
    interpreter: str = ""  # the interpreter as the command names it (``python3``), for python's own messages


def _same_interpreter(path: str) -> bool:
    """Whether ``path`` is this interpreter: the same file in the same directory (a venv's python is a link to
    the system's, which is another interpreter), the directory's own links resolved (a venv reached through a
    linked folder, e.g. a deploy's ``current`` link, is this one)."""
    try:
        return (os.path.realpath(os.path.dirname(os.path.abspath(path)))
                == os.path.realpath(os.path.dirname(os.path.abspath(sys.executable)))
                and os.path.samefile(path, sys.executable))
    except OSError:
        return False


#: Interpreter options that change how the interpreter runs, not which program: ``python -u app.py`` is run by
#: the launcher started again with them (the first letters take no value, ``-W``/``-X`` take one). So are ``-s``
#: (no user site-packages) and ``-P`` (no program folder on the path, which the launcher then gives the program
#: none of: see :func:`_first_on_path`). Options that keep agent-otel's hook from loading (-E, -S, -I) or change
#: what runs (-i, -x) leave the command exec'd as is.
_RUN_OPTIONS = frozenset("bBdOqRuvsP")
_RUN_OPTIONS_WITH_VALUE = frozenset("WX")


def _split_run_options(args: list[str]) -> tuple[list[str], list[str]] | None:
    """``args`` of ``python`` as (its run options, the rest: a script, ``-m mod`` or ``-c code``, then the
    program's argv); None when an option is not one of :data:`_RUN_OPTIONS` or no program follows them."""
    options: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        if not arg.startswith("-") or arg in ("-", "--"):
            break
        for position, letter in enumerate(arg[1:], start=1):
            if letter in _RUN_OPTIONS:
                continue
            if letter not in _RUN_OPTIONS_WITH_VALUE and letter not in "mc":
                return None
            attached = arg[position + 1:]  # -Werror, -mpkg: the value is the rest of the word
            if not attached and index + 1 == len(args):
                return None
            value, after = (attached, index + 1) if attached else (args[index + 1], index + 2)
            if position > 1:
                options.append(arg[:position])  # -um pkg, -uWerror: -u, then -m pkg or -W error
            if letter in "mc":
                return (options, [f"-{letter}", value, *args[after:]]) if options else None
            options += [f"-{letter}", value]
            index = after
            break
        else:
            options.append(arg)
            index += 1
    if not options or index == len(args) or args[index].startswith("-"):
        return None
    return options, args[index:]


#: The interpreter flags under which no Python process loads the hook that instruments it (its
#: ``sitecustomize.py``, on ``PYTHONPATH``), and why.
_WITHOUT_HOOKS = {"E": "ignores PYTHONPATH, which holds agent-otel's hook",
                  "I": "ignores PYTHONPATH, which holds agent-otel's hook",
                  "S": "imports no sitecustomize, agent-otel's hook"}


def _flag_without_hooks(args: list[str]) -> str | None:
    """The first of :data:`_WITHOUT_HOOKS` among ``python``'s own options in ``args`` (``-I``, ``-sE``), if any."""
    words = iter(args)
    for arg in words:
        if not arg.startswith("-") or arg in ("-", "--") or arg.startswith(("-m", "-c")):
            return None
        for position, letter in enumerate(arg[1:], start=1):
            if letter in _WITHOUT_HOOKS:
                return f"-{letter}"
            if letter in _RUN_OPTIONS_WITH_VALUE or letter in "mc":
                if position == len(arg) - 1:
                    next(words, None)  # -X dev: the next word is its value
                break  # -Xdev: the rest of the word is
    return None


def _python_plan(args: list[str]) -> Plan | None:
    """`python script.py ...`, `python -m mod ...`, `python -c code ...`; None for other flags."""
    if not args:
        return None  # the interactive interpreter: exec it
    first = args[0]
    if first == "-m" and len(args) > 1:
        return Plan("module", args[1], [args[1], *args[2:]])
    if first.startswith("-m") and len(first) > 2:
        return Plan("module", first[2:], [first[2:], *args[1:]])
    if first == "-c" and len(args) > 1:
        return Plan("code", args[1], ["-c", *args[2:]])
    if first == "-":
        return None
    if first.startswith("-"):
        return None
    return Plan("script", first, list(args))


def _shebang(path: str) -> str | None:
    """The interpreter a script's ``#!`` line names, when it names one alone: with options (``python -O``,
    ``-u``, ``-I``...) the script is exec'd, so that the kernel starts it with them."""
    try:
        with open(path, "rb") as handle:
            line = handle.readline(512)
    except OSError:
        return None
    if not line.startswith(b"#!"):
        return None
    parts = line[2:].decode(errors="replace").split()
    return parts[0] if len(parts) == 1 else None


def plan_for(command: list[str]) -> Plan:
    """Decide how to start ``command`` (see the ``run`` help)."""
    program = command[0]
    found = shutil.which(program)
    if _PYTHON_NAME.match(os.path.basename(program)) and found and _same_interpreter(found):
        if os.environ.get("PYTHONINSPECT"):  # as with -i: python's own interactive prompt follows the program, which
            return Plan("exec", found, command)  # the launcher's console script cannot give it (it exits instead)
        plan = _python_plan(command[1:])
        if plan is not None:
            plan.interpreter = program
            return plan
        split = _split_run_options(command[1:])
        if split is not None:  # python -u app.py: the launcher starts again with -u, then runs app.py itself
            return Plan("again", found, split[1], options=split[0])
        flag = _flag_without_hooks(command[1:])
        if flag is not None:
            _say(f"agent-otel: python {flag} {_WITHOUT_HOOKS[flag[1]]}: this program runs untraced")
        return Plan("exec", found, command)
    if found:
        interpreter = _shebang(found)
        if interpreter is not None and _same_interpreter(interpreter):
            return Plan("script", found, [found, *command[1:]])
        return Plan("exec", found, command)
    if os.sep not in program:
        entries = importlib.metadata.entry_points(group="console_scripts", name=program)
        for entry in entries:
            return Plan("entry", program, [program, *command[1:]], entry=entry)
    return Plan("exec", program, command)


def bootstrap_dir() -> Path:
    """The directory holding the ``sitecustomize.py`` that instruments Python child processes."""
    return Path(__file__).with_name("bootstrap")


def _child_environment(config_file: Path | None, users: bool) -> None:
    """What Python processes started by the program need to instrument themselves: the launcher's configuration
    (``users``: the one the user's own ``AGENT_OTEL_CONFIG`` names, theirs for every launcher below too), or none (not
    one an outer launcher named: see
    :func:`~agent_otel._zerocode.config.outer_launchers_config`)."""
    os.environ[AGENT_OTEL_LAUNCHER] = "1"
    if config_file is not None:
        os.environ[AGENT_OTEL_CONFIG] = str(config_file.resolve())
        if users:
            os.environ.pop(AGENT_OTEL_CONFIG_FOUND, None)
        else:
            os.environ[AGENT_OTEL_CONFIG_FOUND] = os.environ[AGENT_OTEL_CONFIG]
    elif outer_launchers_config():
        del os.environ[AGENT_OTEL_CONFIG], os.environ[AGENT_OTEL_CONFIG_FOUND]
    folder = str(bootstrap_dir())
    existing = os.environ.get("PYTHONPATH")  # an empty entry in it is the working directory: kept
    paths = [p for p in existing.split(os.pathsep) if p != folder] if existing else []
    os.environ["PYTHONPATH"] = os.pathsep.join([folder, *paths])


_flushed = False


def _flush(leaving: bool | None = None) -> None:
    """The exit flush, once: at the program's end, or on a signal it then dies of (``leaving``). Registered with
    atexit before the program runs, it runs after the program's own exit hooks: then nothing of the program runs
    after it, and a SIGTERM or SIGHUP that comes meanwhile is dropped (see ``exit_signals``), unless children of the
    program are left for ``multiprocessing``'s exit hook to join (imported before the program ran, it comes after)."""
    global _flushed
    if _flushed:
        return
    _flushed = True
    flush_at_exit(leaving if leaving is not None else not _children_left(),  # within the exit budget, no retries
                  at_interpreter_exit=leaving is None)  # (as an exit hook; a signal's flush is followed by none)


def _children_left() -> bool:
    multiprocessing = sys.modules.get("multiprocessing")
    try:
        return multiprocessing is not None and bool(multiprocessing.active_children())
    except Exception as exc:  # never into the program's exit
        report_error("launcher.flush", exc)
        return False


def _on_terminate(signum: int, frame: types.FrameType | None) -> None:
    """End the jobs, agents... still running (``error.type`` SIGTERM, as Ctrl-C's KeyboardInterrupt ends them),
    flush, then die of the same signal, as the program would have without us. Called by a handler the
    program installed since (chaining to the one it replaced, which without us is SIG_DFL, not callable, so
    never called): nothing, and the program goes on as its handler decides."""
    if installed_handler(signum) is not _on_terminate:
        return
    end_in_flight_on(signum)
    _flush(leaving=True)
    install_handler(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


#: A worker forked with it takes its own handler and the watcher that wakes a sleeping main thread for it (see
#: ``carriers._flush_on_terminate``): with this one alone, a pool worker that SIGTERM found going to sleep on
#: its task queue slept for ever, and ``Pool.terminate()`` with it.
_on_terminate.flushes_agent_otel = True  # type: ignore[attr-defined]


def _say(line: object) -> None:
    """A line of ours (or one Python itself prints, such as "can't open file") on stderr; nothing when the
    program's stderr is closed (``2>&-``), where Python's own lines go nowhere too: ``print()`` would write
    it to stdout."""
    if sys.stderr is not None:
        print(line, file=sys.stderr)


def _flush_standard_streams() -> None:
    """Before an exec: what was printed reaches its file. A closed stream (None) has nothing to flush."""
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()


#: The signals that end the program by default after which the launcher flushes first: ``kill``'s SIGTERM and
#: SIGHUP, which a closed terminal or ssh session sends (Ctrl-C's SIGINT raises KeyboardInterrupt: the exit flush).
_FLUSHED_ON = ENDING_SIGNALS

@own_work()  # (see own_work: the launcher's own calls are not the program's, a target's though they be)
def _start_telemetry(config: Config | None, *, child: bool) -> None:
    # A ConfigurationError (a malformed OTEL_* variable, OTEL_METRICS_EXPORTER=bogus included) leaves: the launcher
    # exits 2 before the program runs
    _patch_gevent()
    telemetry = configure_sdk(config)
    if telemetry.metrics_unserved is not None and not child:
        # another process (an earlier run's child) serves /metrics on the Prometheus port: the program runs, with its
        # traces and OTLP metrics, without /metrics. A Python child (a server's worker) says nothing: the port is
        # most likely its parent's (README)
        _say(f"agent-otel: {telemetry.metrics_unserved}; this run serves no /metrics")
    if enabled_from_env():
        # before the targets, which then wrap the libraries' instrumented functions: ours is the outer span
        def say(line: str) -> None:  # once, by the program's process: its Python children would repeat it
            if not child and config is not None:
                _say(f"agent-otel: {config.source}: {line}")

        activate_instrumentations(config.switches if config is not None else Switches(), say)
    if config is not None:
        leave_main_to_launcher()
        instrument(config)
        main = os.environ.get(AGENT_OTEL_PROGRAM_MAIN)
        if child and main:
            programs.wrap_in_workers(main)
    else:  # no targets, and the [instrumentation] switches at their defaults, as above: http_headers among them
        instrument(Config(source=_NO_CONFIGURATION))
    atexit.register(_flush)
    if threading_is_main():
        for signum in _FLUSHED_ON:
            if installed_handler(signum) is signal.SIG_DFL:
                stand_in_for_default(signum, _on_terminate, put_back=True)
                hold_over_fork(signum, _on_terminate)



def _patch_gevent() -> None:
    """``OTEL_PYTHON_AUTO_INSTRUMENTATION_EXPERIMENTAL_GEVENT_PATCH=patch_all``, as ``opentelemetry-instrument`` reads
    it: gevent's ``monkey.patch_all()`` before the exporters are made. The OTLP/HTTP ones import ``requests`` and
    ``urllib3``, which keep the ``ssl`` classes they found: patched by the program only after that, every HTTPS request
    it made under gevent failed with a RecursionError."""
    value = os.environ.get(OTEL_PYTHON_AUTO_INSTRUMENTATION_EXPERIMENTAL_GEVENT_PATCH, "").strip()
    if not value:  # empty counts as unset, as the OpenTelemetry configuration spec has it
        return
    if value != "patch_all":
        raise ConfigurationError(f"{OTEL_PYTHON_AUTO_INSTRUMENTATION_EXPERIMENTAL_GEVENT_PATCH}: expected 'patch_all', "
                                 f"got {value!r}")
    try:
        from gevent import monkey  # type: ignore[import-untyped]  # (no stubs)
    except ImportError:
        raise ConfigurationError(f"{OTEL_PYTHON_AUTO_INSTRUMENTATION_EXPERIMENTAL_GEVENT_PATCH}=patch_all: gevent is "
                                 "not installed in this Python") from None
    monkey.patch_all()


def threading_is_main() -> bool:
    return threading.current_thread() is threading.main_thread()


def bootstrap_child() -> None:
    """Called by the generated sitecustomize in every Python process under ``agent-otel run``; not in one that is
    itself ``agent-otel run``, which sets itself up with the configuration it finds."""
    if os.environ.get(AGENT_OTEL_LAUNCHER) != "1" or _is_agent_otel_command():
        return
    try:
        # the launcher's configuration, named in AGENT_OTEL_CONFIG; none when it found none (not a file in the child's
        # own working directory: another project's)
        _start_telemetry(load_config() if os.environ.get(AGENT_OTEL_CONFIG, "").strip() else None, child=True)
    except Exception as exc:
        _say(f"agent-otel: telemetry is off in this process ({exc})")


#: agent-otel's commands (see agent_otel._cli).
_COMMANDS = frozenset(("run", "check", "demo", "report", "assets"))


def _is_agent_otel_command() -> bool:
    """Whether this process is an ``agent-otel`` command (its console script, ``python -m agent_otel``, or the launcher
    run again with the program's interpreter options: see :func:`_again_with_run_options`), as its command line says
    when its ``sitecustomize`` runs: ``run`` sets itself up with the configuration it finds, and ``check`` and the
    other commands are not the program."""
    argv, original = sys.argv, list(getattr(sys, "orig_argv", ()))
    if argv[1:2] != [] and argv[1] not in _COMMANDS:  # (a program's own script named agent-otel is the program)
        return False
    if argv and os.path.basename(argv[0]) == "agent-otel":
        return True
    if argv[:1] == ["-m"]:  # the module python was told to run: ``-m agent_otel`` or ``-magent_otel``
        modules = [original[i + 1] if option == "-m" else option[2:] for i, option in enumerate(original[:-1])
                   if option.startswith("-m")]
        return bool(modules) and modules[0] in ("agent_otel", "agent_otel.__main__")
    return argv[:1] == ["-c"] and _started_again()


def _program(plan: Plan) -> programs.Program:
    """The program's ``__main__``, compiled (a SyntaxError is the program's, printed as python prints it). The
    launcher's own calls are made with instrumentation suppressed (see _run_plan); a ``-m`` module's packages are
    imported here, and their code is the program's."""
    if plan.how == "module":
        with suppress_instrumentation():
            _first_on_path(os.getcwd())
        return programs.module(plan.target)
    with suppress_instrumentation():
        if plan.how == "script":
            program = programs.script(plan.target)
            if program.code is not None:  # a script's folder (a symlink's target's) first on the path, as python
                _first_on_path(os.path.dirname(os.path.realpath(plan.target)))
            else:  # a directory or zip file is itself, even with PYTHONSAFEPATH: python finds its __main__ there
                _first_on_path(None)
                sys.path.insert(0, program.filename)
            return program
        _first_on_path("")
        return programs.code(plan.target)


def _first_on_path(entry: str | None) -> None:
    """Put the program's folder first on ``sys.path`` where python put the launcher's own (the console script's
    folder, or the working directory for ``python -m agent_otel``), so the program imports from where it would
    without the launcher. A launcher run with ``-P`` or ``-I`` has none, and its command (``python app.py``) still
    gives the program one; with ``PYTHONSAFEPATH`` python gives the program none, and neither does the launcher,
    nor when it was started again with the program's own ``-P`` (``python -P app.py``)."""
    if not sys.flags.safe_path and sys.path:
        del sys.path[0]
    if entry is not None and not os.environ.get("PYTHONSAFEPATH") and not (sys.flags.safe_path and _started_again()):
        sys.path.insert(0, entry)


def _started_again() -> bool:
    """Whether this launcher was started again with the program's run options (see :func:`_again_with_run_options`)."""
    return _AGAIN in getattr(sys, "orig_argv", ())


#: The programs whose output python does not flush before it prints why they ended: ``-c`` code, a ``-m`` module.
_NOT_FLUSHED_FIRST = ("code", "module")


def _end_as_python_would(plan: Plan, launched_from_file: bool) -> None:
    """The end of the program, in python's order. After a file (a script), python flushes stderr and stdout before
    it prints why the program ended (a traceback, ``sys.exit("...")``'s message), waits for the threads and runs
    the ``atexit`` handlers; after ``-c`` code or a ``-m`` module it does not, and their output is flushed at the
    very end. The launcher started from its console script is a file: that flush comes when the launcher returns,
    a script's as under python, and for ``-c`` code or a ``-m`` module it is made to find :class:`_UnflushedOnce`
    instead of their stdout. Started as ``python -m agent_otel`` or again as ``-c`` code, the launcher gets no flush
    from python: a script's is made here. Either way the interpreter's own end steps run as under python, with no
    frame of the launcher (before, taken here from Python: a Ctrl-C while waiting for the threads, or an error in a
    built-in exit hook, showed the launcher's frames; a script's custom ``flush()`` ran once more)."""
    if plan.how in _NOT_FLUSHED_FIRST:
        if launched_from_file and sys.stdout is not None:
            sys.stdout = cast(TextIO, _UnflushedOnce(sys.stdout))
    elif not launched_from_file:
        for stream in (sys.stderr, sys.stdout):  # python's order
            with contextlib.suppress(Exception):
                if stream is not None:
                    stream.flush()


class _UnflushedOnce:
    """The program's stdout, until the flush python makes after the file it ran (the launcher's console script):
    that flush puts the program's stdout back and flushes nothing. Nothing else uses it: the launcher returns to
    the interpreter as it is made."""

    def __init__(self, stream: object) -> None:
        self._stream = stream

    def flush(self) -> None:
        if sys.stdout is cast(object, self):
            sys.stdout = cast(TextIO, self._stream)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _launched_from_file() -> bool:
    """Whether the launcher runs as a file (its console script), after which python flushes stdout; not as
    ``python -m agent_otel`` nor as ``-c`` code (started again with run options)."""
    main = sys.modules.get("__main__")
    return main is not None and getattr(main, "__spec__", None) is None and getattr(main, "__file__", None) is not None


def _print_when_uncaught() -> None:
    """Called before an exception of the program is raised out of the launcher, so that the interpreter ends
    the process as it ends the plain program's: it prints the traceback through ``sys.excepthook`` (and sets
    ``sys.last_value``), runs the ``atexit`` handlers, waits for the threads, flushes stdout, then exits 1,
    or dies of SIGINT for a KeyboardInterrupt. Until then ``sys.excepthook`` is one that drops the frames of
    the launcher (and of the CLI, which the exception passes through on its way out), puts the program's
    hook back and calls it."""
    hook: object = getattr(sys, "excepthook", _MISSING)  # the program may have deleted it

    def put_back() -> None:
        if hook is not _MISSING:
            sys.excepthook = cast(Callable[..., object], hook)
        else:
            with contextlib.suppress(AttributeError):
                del sys.excepthook

    def print_as_the_program(kind: type[BaseException], value: BaseException, tb: types.TracebackType | None) -> None:
        put_back()
        start = tb
        node = tb
        launched = False
        while node is not None:  # the program's frames start after the launcher's (runpy's of a -m module's first)
            if node.tb_frame.f_code.co_filename in _LAUNCHER_FILES:
                launched, start = True, node.tb_next
            elif launched:
                break
            node = node.tb_next
        value.__traceback__ = start
        program_tb = programs.program_traceback(value, __file__)
        sys.last_type, sys.last_value, sys.last_traceback = kind, value, program_tb  # as python sets them, before
        # its hook: what traceback.print_last() and pdb.pm() read
        _call_as_python_calls(hook, kind, value.with_traceback(program_tb), program_tb)

    sys.excepthook = print_as_the_program


#: What stands for a ``sys.excepthook`` the program deleted.
_MISSING = object()


def _call_as_python_calls(hook: object, kind: type[BaseException], value: BaseException,
                          tb: types.TracebackType | None) -> None:
    """Call the program's ``sys.excepthook`` as python calls it for an uncaught exception: when the program deleted
    it, python says so and prints the traceback itself; when the hook fails (it raised, or it is no function), it
    prints the hook's error, then the original one. A ``SystemExit`` the hook raises ends the process, as under
    python. The frame of this call is left out of what is printed."""
    if hook is _MISSING:
        _say("sys.excepthook is missing")
        if sys.stderr is not None:
            traceback.print_exception(kind, value, tb)
        return
    try:
        cast(Callable[..., object], hook)(kind, value, tb)
    except SystemExit:
        raise
    except BaseException as error:
        if sys.stderr is None:
            return
        error.__traceback__ = error.__traceback__.tb_next if error.__traceback__ is not None else None
        if error.__context__ is value:  # python calls the hook with no exception being handled: no chain
            error.__context__ = None
        print("Error in sys.excepthook:", file=sys.stderr)
        traceback.print_exception(error)
        print("\nOriginal exception was:", file=sys.stderr)
        traceback.print_exception(kind, value, tb)


#: The files of the frames an uncaught exception of the program passes through on its way out.
_LAUNCHER_FILES = frozenset({__file__, programs.__file__})


def _run_plan(plan: Plan) -> int:
    sys.argv = list(plan.argv)
    # The launcher's own calls of functions a configuration wraps (``shutil.which``, ``os.path``'s) are not the
    # program's: made with instrumentation suppressed, as the SDK's exporters make theirs, they run unrecorded.
    with suppress_instrumentation():
        if plan.interpreter:  # python3 names the same interpreter as the launcher's python: the program's is python3
            named = shutil.which(plan.interpreter)
            if named is not None:
                sys.executable = os.path.abspath(named)
        launched_from_file = _launched_from_file()  # (before the program's __main__ replaces the launcher's)
        if plan.how == "script" and not os.path.exists(plan.target):
            _say(f"{plan.interpreter or sys.executable}: can't open file {programs.joined_with_cwd(plan.target)!r}: "
                 "[Errno 2] No such file or directory")
            return 2
    uncaught: BaseException | None = None
    try:
        if plan.how in ("script", "module", "code"):
            try:
                program = _program(plan)
            except programs.ModuleNotRunnable as exc:
                _say(exc)
                return 1
            except (SyntaxError, ValueError):
                kind, value = sys.exc_info()[:2]
                if plan.how == "module" or kind is None or value is None:
                    raise  # in a module or its package: python prints the traceback of the import
                sys.excepthook(kind, value.with_traceback(None), None)  # the script does not compile: no traceback
                return 1
            with suppress_instrumentation():
                main = programs.main_of(program)
                if main is not None:  # for the workers that run it again (spawn, forkserver)
                    os.environ[AGENT_OTEL_PROGRAM_MAIN] = main
            programs.run(program)
        elif plan.entry is not None:
            result = plan.entry.load()()
            if result is not None:
                raise SystemExit(result)
    except BaseException as exc:
        if not isinstance(exc, SystemExit):
            _print_when_uncaught()
        uncaught = exc
    # out of the except blocks: the exit hooks see no exception being handled (sys.exc_info()), as under python
    _end_as_python_would(plan, launched_from_file)
    if uncaught is not None:
        # the same exception object, its cause and context as the program left them; a SystemExit is the
        # interpreter's to end the process with (its code, or its message printed), as after the plain program
        try:
            raise uncaught
        finally:
            uncaught = None  # its traceback holds this frame: no cycle, so the program's frames (their locals) are
            # released when the interpreter has handled it, before the exit hooks, as under python
    return 0


#: The launcher started again (``python -u -c _AGAIN run ...``). Started with options under which it cannot import
#: itself (``-s`` with agent-otel in the user site-packages, ``pip install --user``), it execs the program as it was
#: given, untraced, and says so in one line. Not ``-m agent_otel``, nor ``-c`` as is: both put
#: the working directory first on ``sys.path`` while the launcher imports its dependencies, and a project's own
#: ``email/`` or ``yaml.py`` there was imported in their place (plain ``python -u scripts/app.py`` never has the
#: working directory on its path). Its entry is the interpreter's folder, as the console script's is; the
#: program's replaces it (:func:`_first_on_path`).
_AGAIN = ("import os, sys\n"
          "if not sys.flags.safe_path:\n    sys.path[0] = os.path.dirname(sys.executable)\n"
          "try:\n    from agent_otel._cli import main\n"
          "except ImportError:\n"
          "    argv = sys.orig_argv\n"
          "    options, command = argv[1:argv.index('-c')], argv[argv.index('--', argv.index('-c') + 2) + 1:]\n"
          "    print('agent-otel: python ' + ' '.join(options) + ' cannot import agent-otel (-s leaves out the user '\n"
          "          'site-packages it is installed in): this program runs untraced', file=sys.stderr)\n"
          "    sys.stderr.flush()\n"
          "    os.execv(command[0], [command[0], *options, *command[1:]])\n"
          "sys.exit(main())\n")


def _again_with_run_options(plan: Plan, config: str | None) -> int:
    """``python -u app.py``: options such as ``-u`` belong to the interpreter the program runs in, which is
    this process, so the launcher is exec'd again by that interpreter with them; it then runs the program in
    its own process, its ``__main__`` targets wrapped, as for ``python app.py``."""
    argv = [plan.target, *plan.options, "-c", _AGAIN, "run", *(["--config", config] if config else []),
            "--", plan.target, *plan.argv]
    _flush_standard_streams()
    try:
        os.execv(plan.target, argv)
    except OSError as exc:
        _say(f"agent-otel run: cannot execute {plan.target!r}: {exc.strerror or exc}")
    return 126


def run_launcher(args: argparse.Namespace) -> int:
    command = list(args.command_line)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        _say("agent-otel run: nothing to run; usage: agent-otel run [--config FILE] -- COMMAND [ARGS...]")
        return 2
    if args.config is not None and not args.config.strip():  # --config= (an unset variable): never the default
        _say("agent-otel run: --config names no file; give a path, or leave the option out to look for one")
        return 2
    plan = plan_for(command)
    if plan.how == "again":
        return _again_with_run_options(plan, args.config)
    users = not args.config and not outer_launchers_config() and bool(os.environ.get(AGENT_OTEL_CONFIG, "").strip())
    try:
        config_file = Path(args.config) if args.config else find_command_config()
        config = load_file(config_file) if config_file is not None else None
    except ConfigurationError as exc:
        _say(f"agent-otel: {exc}")
        return 2
    if config is None:
        _say(f"agent-otel: {_NO_CONFIGURATION}; running with SDK setup only")
    _child_environment(config_file, users)
    if plan.how == "exec":
        os.environ[AGENT_OTEL_PROGRAM_PID] = str(os.getpid())  # exec keeps the pid
        # the program keeps the host's service.instance.id; the Python processes it starts get theirs
        claim_instance_id()
        _flush_standard_streams()
        try:
            os.execvp(plan.target, plan.argv)
        except OSError as exc:
            _say(f"agent-otel run: cannot execute {command[0]!r}: {exc.strerror or exc}")
            return 126 if isinstance(exc, PermissionError) else 127
    try:
        _start_telemetry(config, child=False)
    except ConfigurationError as exc:
        _say(f"agent-otel: {exc}")
        return 2
    return _run_plan(plan)
