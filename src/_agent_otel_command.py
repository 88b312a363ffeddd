"""The ``agent-otel`` command's entry point, a module of its own beside the ``agent_otel`` package.

When the package cannot be imported (another package's install put a wrapt below 2 in, which pip warns of and
installs), ``agent-otel run`` exited 1 with a traceback and the program never ran. It runs untraced then, as it would
without agent-otel, after one line on stderr saying why; the other commands say the same and exit 1.
"""

from __future__ import annotations

import os
import sys


def main() -> int:
    try:
        from agent_otel._cli import main as run_command
    except Exception as exc:  # a broken install: agent-otel's work is impossible, the program's is not
        return _without_agent_otel(sys.argv[1:], exc)
    return run_command()


def _without_agent_otel(argv: list[str], exc: Exception) -> int:
    command = _program_of(argv)
    sys.stderr.write(f"agent-otel: cannot import agent_otel ({type(exc).__name__}: {exc}; `pip check` lists the "
                     f"requirements broken){'; the program runs untraced' if command else ''}\n")
    sys.stderr.flush()
    if not command:
        return 1
    beside = os.path.join(os.path.dirname(sys.executable), command[0])  # a console script of this interpreter's
    program = beside if os.sep not in command[0] and os.access(beside, os.X_OK) else command[0]
    try:
        os.execvp(program, command)
    except OSError as error:  # (said as the launcher says it)
        sys.stderr.write(f"agent-otel run: cannot execute {command[0]!r}: {error.strerror}\n")
        return 126 if isinstance(error, PermissionError) else 127


def _program_of(argv: list[str]) -> list[str]:
    """The command line ``agent-otel run [--config FILE] [--] COMMAND [ARGS...]`` runs (empty for another command, or
    for ``run`` asking for help). ``--config`` as argparse takes it: abbreviated too (``--conf``)."""
    if not argv or argv[0] != "run":
        return []
    rest = argv[1:]
    while rest and len(option := rest[0].partition("=")[0]) > 2 and "--config".startswith(option):
        rest = rest[1:] if "=" in rest[0] else rest[2:]
    if rest[:1] in (["-h"], ["--help"]):
        return []
    return rest[1:] if rest[:1] == ["--"] else rest
