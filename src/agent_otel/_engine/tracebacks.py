"""agent-otel's patches of the standard library leave no frame in the program's tracebacks.

The carriers patch functions the program calls itself (``Pool.map``, ``ProcessPoolExecutor.submit``,
``Process.start``, ``subprocess.Popen``, ``http.client``'s ``request``...) so that the job travels with the work,
and run a pool's task or a process's target through a carrier. An exception raised through one of them passed a
frame of ours that plain python's traceback does not have: in the program's uncaught-exception report, a pool's
``RemoteTraceback``, ``traceback.extract_tb``. Each such wrapper takes its own frame out as the exception leaves it
and re-raises it bare (a bare ``raise`` adds no frame): the same exception object, with the program's traceback.
"""

from __future__ import annotations

import sys

_getframe = sys._getframe


def leave_out_callers_frame(error: BaseException) -> None:
    """Take the calling frame out of ``error``'s traceback, where it is the first entry (the exception is leaving
    that frame now); call it in an ``except`` block followed by a bare ``raise``."""
    tb = error.__traceback__
    if tb is not None and tb.tb_frame is _getframe(1):
        error.__traceback__ = tb.tb_next
