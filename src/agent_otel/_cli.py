"""agent-otel: run a program instrumented by configuration, check a configuration, run the demo fleet, report
from Prometheus and find the shipped operator assets.

Subcommands register themselves in :data:`SUBCOMMANDS`: each entry is a function that adds its
parser to the subparsers and sets ``handler=`` (a function of the parsed arguments returning the
exit code).

"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeAlias, TypeVar

from agent_otel._ops.assets import ASSETS_DESCRIPTION, ASSETS_HELP, add_assets_arguments, run_assets
from agent_otel._ops.report import add_report_arguments, run_report
from agent_otel._zerocode.check import run_check
from agent_otel._zerocode.launcher import run_launcher
from agent_otel.version import __version__

#: What ``add_subparsers()`` returns (argparse's own class; typeshed names it, argparse does not export it).
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
Number = TypeVar("Number", int, float)


def _add_check(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "check", help="validate a configuration file and resolve every target",
        description="Validate the configuration (FILE, $AGENT_OTEL_CONFIG, ./agent-otel.toml or [tool.agent-otel] "
                    "in ./pyproject.toml), import each target's module and print target, entry, callable and "
                    "whether it resolves. Targets in the program's own script (\"__main__:name\", or the script's "
                    "module name) are resolved by reading the script given with --script, never running it; "
                    "without it they are left to `agent-otel run`. Exit status: 0 all resolved, 1 some target "
                    "does not, 2 invalid file.")
    parser.add_argument("file", nargs="?", help="configuration file (default: found as `run` finds it)")
    parser.add_argument("--config", metavar="FILE", help="the same, named as `run` takes it")
    parser.add_argument("--script", metavar="SCRIPT", help="the script `agent-otel run -- python SCRIPT` runs: "
                        "resolve \"__main__:...\" targets (and ones named after the script) in its source")
    parser.set_defaults(handler=run_check)


def _add_run(subparsers: Subparsers) -> None:
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
    parser.set_defaults(handler=run_launcher)


def _positive(kind: Callable[[str], Number], what: str, allow_zero: bool = False) -> Callable[[str], Number]:
    def parse(text: str) -> Number:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{what} must be a finite number, got {text!r}")
        if value < 0 or (value == 0 and not allow_zero):
            raise argparse.ArgumentTypeError(f"{what} must be {'>= 0' if allow_zero else '> 0'}, got {text!r}")
        return value
    return parse


def _port(text: str) -> int:
    value = _positive(int, "a port")(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"a port must be 1..65535, got {text!r}")
    return int(value)


def _add_demo(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="run a simulated agent fleet, instrumented by configuration (optionally with Prometheus)",
        description="Run a simulated agent fleet (jobs, agents, a provider chain with retries and fallbacks, "
                    "tools, periodic evolution runs) instrumented only by agent_otel/_ops/demo/agent-otel.toml, and "
                    "serve its metrics on 127.0.0.1. Ctrl-C, SIGTERM or SIGHUP stops it and everything it started, and "
                    "flushes telemetry.")
    parser.add_argument("--port", type=_port, help="port of the /metrics endpoint (default 9464, or a free port "
                        "when 9464 is busy)")
    parser.add_argument("--rate", type=_positive(float, "--rate"), default=2.0, help="jobs per second (default 2)")
    parser.add_argument("--duration", type=_positive(float, "--duration", allow_zero=True), default=0,
                        help="seconds to run, 0 = until Ctrl-C (default 0)")
    parser.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    parser.add_argument("--evolve-every", type=_positive(float, "--evolve-every"), default=30.0, metavar="S",
                        help="seconds between evolution rounds (default 30)")
    parser.add_argument("--stack", action="store_true",
                        help="also start Prometheus (with the shipped rules) and Alertmanager (shipped config, "
                             "notifications printed here) on 127.0.0.1")
    parser.add_argument("--prometheus-port", type=_port,
                        help="with --stack (default 9090, or a free port when 9090 is busy)")
    parser.add_argument("--alertmanager-port", type=_port,
                        help="with --stack (default 9093, or a free port when 9093 is busy)")
    parser.add_argument("--workdir", type=Path, help="with --stack: keep Prometheus/Alertmanager data and logs "
                        "here (default: a temporary directory removed on exit)")
    parser.add_argument("--collector", nargs="?", const="", metavar="BINARY",
                        help="with --stack: export OTLP to a local OpenTelemetry Collector running the shipped "
                             "otelcol.yaml, which Prometheus scrapes (BINARY, default otelcol-agent-otel or "
                             "otelcol-contrib on PATH or in ./bin; build ours with `make collector`)")
    parser.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    # Imported only for `demo`: it loads prometheus_client and the stack runner, which `run` never needs.
    from agent_otel._ops.demo.runner import DemoOptions, run_demo

    if args.collector is not None and not args.stack:
        print("agent-otel demo: --collector needs --stack (the Collector feeds the stack's Prometheus)",
              file=sys.stderr)
        return 2
    stack_only = [flag for flag, value in (("--prometheus-port", args.prometheus_port),
                                           ("--alertmanager-port", args.alertmanager_port),
                                           ("--workdir", args.workdir)) if value is not None]
    if stack_only and not args.stack:  # accepted and ignored, they said nothing was wrong
        print(f"agent-otel demo: {', '.join(stack_only)} need{'s' if len(stack_only) == 1 else ''} --stack (the "
              "stack's Prometheus and Alertmanager)", file=sys.stderr)
        return 2
    return run_demo(DemoOptions(port=args.port, rate=args.rate, duration=args.duration or None, seed=args.seed,
                                evolve_every=args.evolve_every, stack=args.stack,
                                prometheus_port=args.prometheus_port, alertmanager_port=args.alertmanager_port,
                                workdir=args.workdir, collector=args.collector))


# --------------------------------------------------------------------------------------------------
# agent-otel report --prometheus URL [--window 1h|1d|7d] [--format table|json|csv|html] [--output FILE]
# [--slow-ms N]
# --------------------------------------------------------------------------------------------------


def _add_report(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "report", help="report agents, providers, calibration and evolution over a window, from Prometheus",
        description="Query Prometheus for what the agent-otel targets recorded over the window: per agent "
                    "invocations, success ratio, average cost, average and p95 latency and patterns; per provider "
                    "(and model) calls, availability, p95 latency, retries, fallbacks and cost; confidence "
                    "calibration per agent and band; evolution attempts, success ratio, best improvement and "
                    "current KPIs; jobs and tools; agent versions; workflow phases, plugins by phase and patterns. "
                    "Exit status: 0 printed, 1 no agent-otel data in the window, 2 Prometheus cannot be queried.")
    add_report_arguments(parser)
    parser.set_defaults(handler=run_report)


# --------------------------------------------------------------------------------------------------
# agent-otel assets [--copy DIR [--force]]
# --------------------------------------------------------------------------------------------------


def _add_assets(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("assets", help=ASSETS_HELP, description=ASSETS_DESCRIPTION)
    add_assets_arguments(parser)
    parser.set_defaults(handler=run_assets)


# --------------------------------------------------------------------------------------------------
# Parser and entry point
# --------------------------------------------------------------------------------------------------

#: Functions adding one subcommand each (``subparsers`` -> None; set ``handler=`` on the parser).
SUBCOMMANDS: list[Callable[[Subparsers], None]] = [_add_run, _add_check, _add_demo, _add_report, _add_assets]


def build_parser() -> argparse.ArgumentParser:
    # no docstring under python -OO (agent-otel run -- python -OO app.py starts the launcher again under it)
    parser = argparse.ArgumentParser(prog="agent-otel",
                                     description=" ".join((__doc__ or "").split("\n\n")[0].split()) or None)
    parser.add_argument("--version", action="version", version=f"agent-otel {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(subparsers)
    return parser


def _escape_what_the_output_cannot_encode() -> None:
    """A report or table names the program's functions and values, which may be any text (``def sücher``): an
    output that cannot encode them (``PYTHONIOENCODING=ascii``, ``LANG=C`` without UTF-8 mode) shows them
    escaped, as Python shows them in a traceback, rather than failing with one."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)  # a TextIOWrapper's; a replaced stream is left be
        if reconfigure is not None and stream.errors in _FAILING_ON_TEXT:
            reconfigure(errors="backslashreplace")


#: The error handlers under which a character the output cannot encode fails the write: ``surrogateescape`` is the
#: POSIX locale's (``LC_ALL=C`` without UTF-8 mode), which passes lone surrogates only.
_FAILING_ON_TEXT = frozenset({"strict", "surrogateescape", "surrogatepass"})


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "run":  # the program's own output and errors are its own
        return int(args.handler(args))
    _escape_what_the_output_cannot_encode()
    try:
        return int(args.handler(args))
    except BrokenPipeError:  # `agent-otel check | head`: the reader is gone, as for any command-line tool
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the exit flush writes nowhere
        return 1


if __name__ == "__main__":
    sys.exit(main())
