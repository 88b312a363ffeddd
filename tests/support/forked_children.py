"""For tests of forked children: a program fragment that forks children and signals each one at once, and the
stderr of a program that forks, without Python's warning of a fork in a multi-threaded process."""

from __future__ import annotations

import re
import subprocess
import sys

#: Defines ``terminate_forked_children(signum, forks)``: forks up to ``forks`` sleeping children, sends each
#: ``signum`` as soon as it is forked (before it has run a line of Python, mostly), and returns the exit statuses
#: seen, as text; "ran on" for a child still alive 10 s later (killed then, and no more are forked).
TERMINATE_FORKED_CHILDREN = """
import os, signal, time


def terminate_forked_children(signum, forks):
    statuses = set()
    for _ in range(forks):
        child = os.fork()
        if child == 0:
            time.sleep(60)
            os._exit(0)
        os.kill(child, signum)
        deadline = time.monotonic() + 10
        while (reaped := os.waitpid(child, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        if reaped[0] == 0:
            os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0)
            statuses.add("ran on")
            break
        statuses.add(str(os.waitstatus_to_exitcode(reaped[1])))
    return sorted(statuses)
"""


#: Python 3.12's warning of a fork in a multi-threaded process, for the program's line (which 3.13 quotes under it, and
#: 3.12 does not for a ``-c`` program): the OTLP exporters' threads make it one, as they do with the SDK alone (README)
_FORK_WARNING = re.compile(r"<string>:\d+: DeprecationWarning: This process \(pid=\d+\) is multi-threaded, use of "
                           r"fork\(\) may lead to deadlocks in the child\.\n(?:  .*os\.fork\(\)\n)?")


def stderr_but_fork_warnings(child: subprocess.CompletedProcess[str]) -> str:
    return _FORK_WARNING.sub("", child.stderr) if sys.version_info >= (3, 12) else child.stderr
