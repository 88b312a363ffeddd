"""The ``agent-otel`` command.

Subcommands register themselves in :data:`SUBCOMMANDS`: each entry is a function that adds its
parser to the subparsers and sets ``handler=`` (a function of the parsed arguments returning the
exit code). ``run`` and ``check`` live here; add ``demo``/``report`` the same way.
"""

from __future__ import annotations

import argparse
import atexit
import importlib.metadata
import os
import re
import runpy
import shutil
import signal
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LAUNCHER_ENV = "AGENT_OTEL_LAUNCHER"
_PYTHON_NAME = re.compile(r"^python(\d+(\.\d+)?)?$")


# --------------------------------------------------------------------------------------------------
# agent-otel check [FILE]
# --------------------------------------------------------------------------------------------------


def _add_check(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "check", help="validate a configuration file and resolve every target",
        description="Validate the configuration (FILE, $AGENT_OTEL_CONFIG, ./agent-otel.toml or [tool.agent-otel] "
                    "in ./pyproject.toml), import each target's module and print target, kind, callable and "
                    "whether it resolves. Exit status: 0 all resolved, 1 some target does not, 2 invalid file.")
    parser.add_argument("file", nargs="?", help="configuration file (default: found as `run` finds it)")
    parser.set_defaults(handler=_check)


def _check(args: argparse.Namespace) -> int:
    from .autoinstrument import TargetError, _all_subclasses, resolve_target
    from .config import find_config, load_file
    from .errors import ConfigurationError

    try:
        file = Path(args.file) if args.file else find_config()
        if file is None:
            print("agent-otel: no configuration found: pass FILE, set AGENT_OTEL_CONFIG, or create agent-otel.toml "
                  "(or [tool.agent-otel] in pyproject.toml) in the current directory", file=sys.stderr)
            return 2
        config = load_file(file)
    except ConfigurationError as exc:
        print(f"agent-otel: {exc}", file=sys.stderr)
        return 2
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` would: the project's modules import from here
    rows = [("TARGET", "KIND", "CALLABLE", "STATUS")]
    errors = 0
    for spec in config.targets:
        try:
            found = resolve_target(spec)
        except TargetError as exc:
            errors += 1
            rows.append((spec.target, spec.kind, "-", f"error: {exc}"))
            continue
        status = "ok"
        if found.defined_on is not found.owner:
            status += f" (inherited from {found.defined_on.__qualname__})"
        if spec.subclasses and isinstance(found.owner, type):
            overrides = [sub.__qualname__ for sub in _all_subclasses(found.owner) if found.attr in sub.__dict__]
            status += f" (+{len(overrides)} subclass override{'s' if len(overrides) != 1 else ''}" + (
                f": {', '.join(sorted(overrides))})" if overrides else ")")
        rows.append((spec.target, spec.kind, found.shape, status))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)) + "  " + row[3])
    resolved = len(config.targets) - errors
    print(f"{config.source}: {len(config.targets)} target{'s' if len(config.targets) != 1 else ''}, "
          f"{resolved} resolved, {errors} error{'s' if errors != 1 else ''}")
    return 1 if errors else 0


# --------------------------------------------------------------------------------------------------
# agent-otel run [--config FILE] -- COMMAND ARGS
# --------------------------------------------------------------------------------------------------


def _add_run(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run", help="run a program instrumented by configuration, without changing its code",
        description="Configure OpenTelemetry from OTEL_* variables and the configuration, install the wrappers "
                    "before any of the program's code runs, run it with the same argv, stdio, exit status and "
                    "signals, and flush telemetry when it exits. `python script.py`, `python -m module`, "
                    "`python -c code` and console scripts of this interpreter run in this process; anything "
                    "else is exec'd with a bootstrap on PYTHONPATH, as are Python child processes.",
        usage="agent-otel run [--config FILE] -- COMMAND [ARGS...]")
    parser.add_argument("--config", metavar="FILE", help="configuration file (default: $AGENT_OTEL_CONFIG, "
                        "./agent-otel.toml, [tool.agent-otel] in ./pyproject.toml)")
    parser.add_argument("command_line", nargs=argparse.REMAINDER, metavar="COMMAND [ARGS...]")
    parser.set_defaults(handler=_run)


@dataclass
class Plan:
    """How to start the program: in this process (script, module, code, entry) or exec."""

    how: str
    target: Any
    argv: list[str]


def _same_interpreter(path: str) -> bool:
    try:
        return (os.path.dirname(os.path.abspath(path)) == os.path.dirname(os.path.abspath(sys.executable))
                and os.path.samefile(path, sys.executable))
    except OSError:
        return False


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
    try:
        with open(path, "rb") as handle:
            line = handle.readline(512)
    except OSError:
        return None
    if not line.startswith(b"#!"):
        return None
    parts = line[2:].decode(errors="replace").split()
    return parts[0] if parts else None


def plan_for(command: list[str]) -> Plan:
    """Decide how to start ``command`` (see the ``run`` help)."""
    program = command[0]
    found = shutil.which(program)
    if _PYTHON_NAME.match(os.path.basename(program)) and found and _same_interpreter(found):
        plan = _python_plan(command[1:])
        if plan is not None:
            return plan
        return Plan("exec", found, command)
    if found:
        interpreter = _shebang(found)
        if interpreter is not None and _same_interpreter(interpreter):
            return Plan("script", found, [found, *command[1:]])
        return Plan("exec", found, command)
    if os.sep not in program:
        entries = importlib.metadata.entry_points(group="console_scripts", name=program)
        for entry in entries:
            return Plan("entry", entry, [program, *command[1:]])
    return Plan("exec", program, command)


def bootstrap_dir() -> Path:
    """A directory holding the ``sitecustomize.py`` that instruments Python child processes.

    Written once per agent-otel version under the user's cache directory (never a shared temp dir)."""
    from . import __version__

    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    folder = base / "agent-otel" / f"bootstrap-{__version__}"
    target = folder / "sitecustomize.py"
    if not target.is_file() or target.read_text() != _SITECUSTOMIZE:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = folder / f".sitecustomize.{os.getpid()}.tmp"
        temporary.write_text(_SITECUSTOMIZE)
        os.replace(temporary, target)
    return folder


_SITECUSTOMIZE = '''\
"""Written by agent-otel (agent_otel.cli.bootstrap_dir): instruments Python processes started under
`agent-otel run`, then runs the sitecustomize this one shadows, if any."""


def _agent_otel_bootstrap():
    import importlib.machinery
    import importlib.util
    import os
    import sys

    try:
        from agent_otel.cli import bootstrap_child
    except ImportError:
        pass
    else:
        bootstrap_child()
    here = os.path.dirname(os.path.abspath(__file__))
    path = [entry for entry in sys.path if os.path.abspath(entry or ".") != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
    if spec is not None and spec.loader is not None:
        module = importlib.util.module_from_spec(spec)
        sys.modules["sitecustomize"] = module
        spec.loader.exec_module(module)


_agent_otel_bootstrap()
'''


def _child_environment(config_file: Path | None) -> None:
    """What Python processes started by the program need to instrument themselves."""
    os.environ[LAUNCHER_ENV] = "1"
    if config_file is not None:
        os.environ["AGENT_OTEL_CONFIG"] = str(config_file.resolve())
    folder = str(bootstrap_dir())
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != folder]
    os.environ["PYTHONPATH"] = os.pathsep.join([folder, *paths])


_flushed = False


def _flush() -> None:
    global _flushed
    if _flushed:
        return
    _flushed = True
    try:
        from .setup import shutdown

        shutdown()
    except Exception as exc:  # never change the program's exit
        print(f"agent-otel: flushing telemetry failed: {exc}", file=sys.stderr)


def _on_terminate(signum: int, frame: Any) -> None:
    """Flush, then die of the same signal, as the program would have without us."""
    _flush()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _start_telemetry(config: Any, *, child: bool) -> None:
    from .autoinstrument import configure_sdk, instrument
    from .errors import ConfigurationError

    try:
        configure_sdk(config)
    except ConfigurationError:
        if not child:
            raise
        # e.g. the parent already serves /metrics on the Prometheus port: keep traces, drop metrics here
        from .setup import configure

        configure(metrics_exporter="none", system_metrics=False)
    if config is not None:
        instrument(config)
    atexit.register(_flush)
    if threading_is_main() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_terminate)


def threading_is_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def bootstrap_child() -> None:
    """Called by the generated sitecustomize in every Python process under ``agent-otel run``."""
    if os.environ.get(LAUNCHER_ENV) != "1":
        return
    try:
        from .config import load_config

        _start_telemetry(load_config(), child=True)
    except Exception as exc:
        print(f"agent-otel: telemetry is off in this process ({exc})", file=sys.stderr)


def _exit_code(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _run_plan(plan: Plan) -> int:
    sys.argv = list(plan.argv)
    try:
        if plan.how == "script":
            if not os.path.exists(plan.target):
                print(f"{sys.executable}: can't open file {os.path.abspath(plan.target)!r}: "
                      "[Errno 2] No such file or directory", file=sys.stderr)
                return 2
            sys.path.insert(0, os.path.dirname(os.path.abspath(plan.target)))
            runpy.run_path(plan.target, run_name="__main__")
        elif plan.how == "module":
            sys.path.insert(0, os.getcwd())
            runpy.run_module(plan.target, run_name="__main__", alter_sys=True)
        elif plan.how == "code":
            sys.path.insert(0, "")
            import types

            main = types.ModuleType("__main__")
            sys.modules["__main__"] = main
            exec(compile(plan.target, "<string>", "exec"), main.__dict__)  # the program's own code, as python -c
        else:
            result = plan.target.load()()
            if result is not None:
                raise SystemExit(result)
    except SystemExit as exc:
        return _exit_code(exc)
    except KeyboardInterrupt:
        traceback.print_exc()
        _flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
        return 130
    except BaseException:
        sys.excepthook(*sys.exc_info())
        return 1
    return 0


def _run(args: argparse.Namespace) -> int:
    from .config import find_config, load_file
    from .errors import ConfigurationError

    command = list(args.command_line)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        print("agent-otel run: nothing to run; usage: agent-otel run [--config FILE] -- COMMAND [ARGS...]",
              file=sys.stderr)
        return 2
    try:
        config_file = Path(args.config) if args.config else find_config()
        config = load_file(config_file) if config_file is not None else None
    except ConfigurationError as exc:
        print(f"agent-otel: {exc}", file=sys.stderr)
        return 2
    if config is None:
        print("agent-otel: no configuration found; running with SDK setup only", file=sys.stderr)
    _child_environment(config_file)
    plan = plan_for(command)
    if plan.how == "exec":
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            os.execvp(plan.target, plan.argv)
        except OSError as exc:
            print(f"agent-otel run: cannot execute {command[0]!r}: {exc.strerror or exc}", file=sys.stderr)
            return 126 if isinstance(exc, PermissionError) else 127
    try:
        _start_telemetry(config, child=False)
    except ConfigurationError as exc:
        print(f"agent-otel: {exc}", file=sys.stderr)
        return 2
    return _run_plan(plan)


# --------------------------------------------------------------------------------------------------
# agent-otel demo [--stack] [--port P] [--rate R] [--duration S] [--seed N]
# --------------------------------------------------------------------------------------------------


def _positive(kind: type, what: str, allow_zero: bool = False) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a number, got {text!r}") from None
        if value < 0 or (value == 0 and not allow_zero):
            raise argparse.ArgumentTypeError(f"{what} must be {'>= 0' if allow_zero else '> 0'}, got {text!r}")
        return value
    return parse


def _port(text: str) -> int:
    value = _positive(int, "a port")(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"a port must be 1..65535, got {text!r}")
    return int(value)


def _add_demo(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo", help="run a simulated agent fleet, instrumented by configuration (optionally with Prometheus)",
        description="Run a simulated agent fleet (jobs, agents, a provider chain with retries and fallbacks, "
                    "tools, periodic evolution runs) instrumented only by agent_otel/demo/agent-otel.toml, and "
                    "serve its metrics on 127.0.0.1. Ctrl-C stops it and flushes telemetry.")
    parser.add_argument("--port", type=_port, default=9464, help="port of the /metrics endpoint (default 9464)")
    parser.add_argument("--rate", type=_positive(float, "--rate"), default=2.0, help="jobs per second (default 2)")
    parser.add_argument("--duration", type=_positive(float, "--duration", allow_zero=True), default=0,
                        help="seconds to run, 0 = until Ctrl-C (default 0)")
    parser.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    parser.add_argument("--evolve-every", type=_positive(float, "--evolve-every"), default=30.0, metavar="S",
                        help="seconds between evolution rounds (default 30)")
    parser.add_argument("--stack", action="store_true",
                        help="also start Prometheus (with the shipped rules) and Alertmanager (shipped config, "
                             "notifications printed here) on 127.0.0.1")
    parser.add_argument("--prometheus-port", type=_port, default=9090, help="with --stack (default 9090)")
    parser.add_argument("--alertmanager-port", type=_port, default=9093, help="with --stack (default 9093)")
    parser.add_argument("--workdir", type=Path, help="with --stack: keep Prometheus/Alertmanager data and logs "
                        "here (default: a temporary directory removed on exit)")
    parser.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    from .demo.runner import DemoOptions, run_demo

    return run_demo(DemoOptions(port=args.port, rate=args.rate, duration=args.duration or None, seed=args.seed,
                                evolve_every=args.evolve_every, stack=args.stack,
                                prometheus_port=args.prometheus_port, alertmanager_port=args.alertmanager_port,
                                workdir=args.workdir))


# --------------------------------------------------------------------------------------------------
# agent-otel report --prometheus URL [--window 1h|1d|7d] [--format table|json|csv] [--slow-ms N]
# --------------------------------------------------------------------------------------------------


def _add_report(subparsers: Any) -> None:
    from .report import add_report_arguments, run_report

    parser = subparsers.add_parser(
        "report", help="report agents, providers, calibration and evolution over a window, from Prometheus",
        description="Query Prometheus for what the agent-otel targets recorded over the window: per agent "
                    "invocations, success ratio, average cost, average and p95 latency and patterns; per provider "
                    "(and model) calls, availability, p95 latency, retries, fallbacks and cost; confidence "
                    "calibration per agent and band; evolution attempts, success ratio, best improvement and "
                    "current KPIs. Exit status: 0 printed, 1 no agent-otel data in the window, 2 Prometheus "
                    "cannot be queried.")
    add_report_arguments(parser)
    parser.set_defaults(handler=run_report)


# --------------------------------------------------------------------------------------------------
# Parser and entry point
# --------------------------------------------------------------------------------------------------

#: Functions adding one subcommand each (``subparsers`` -> None; set ``handler=`` on the parser).
SUBCOMMANDS: list[Callable[[Any], None]] = [_add_run, _add_check, _add_demo, _add_report]


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="agent-otel", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"agent-otel {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
