"""A program fragment the fork-signal tests run in their scripts: fork children and signal each one at once."""

from __future__ import annotations

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
