"""Exceptions that frameworks raise as control flow, not as a failure of the call they leave.

A LangGraph node or tool that pauses for a human (``interrupt()``: ``GraphInterrupt``) or hands off to another agent
(``Command(graph=Command.PARENT)``: ``ParentCommand``) raises through every call around it, as a pydantic-ai tool
that defers its call (``ApprovalRequired``, ``CallDeferred``) does; the run goes on, resumed later or elsewhere.
Recorded as errors, an agent that pauses on every run read 50% success and set off the error-ratio alerts. A
``click`` (and ``typer``) exit says its status as ``SystemExit`` does. The classes are known by their module and
name (a class of theirs in the exception's MRO), so no framework is imported to check.
"""

from __future__ import annotations

#: module -> the classes of it whose exceptions are control flow (with their subclasses)
_CONTROL_FLOW: dict[str, frozenset[str]] = {
    "langgraph.errors": frozenset({"GraphBubbleUp", "GraphInterrupt", "NodeInterrupt", "ParentCommand"}),
    "pydantic_ai.exceptions": frozenset({"ApprovalRequired", "CallDeferred"}),
}
#: Their class names, as another library's span names them in ``error.type`` (the span bridge's calls).
CONTROL_FLOW_NAMES = frozenset().union(*_CONTROL_FLOW.values())
#: Exits whose ``exit_code`` 0 is a success, as ``sys.exit(0)`` is.
_EXITS = {"click.exceptions": frozenset({"Exit"})}


def is_control_flow(error: BaseException) -> bool:
    """Whether ``error`` is raised as control flow (see the module), not as a failure: a call it leaves returned."""
    cls = type(error)
    kind = _kinds.get(cls, _UNKNOWN)
    if kind is _UNKNOWN:
        kind = _kind_of(cls)
        if len(_kinds) < _KEPT:  # (classes made at run time: not kept beyond that)
            _kinds[cls] = kind
    return kind == "control flow" or (kind == "exit" and getattr(error, "exit_code", None) == 0)


def _kind_of(cls: type) -> str | None:
    for each in cls.__mro__:
        if each.__name__ in _CONTROL_FLOW.get(each.__module__, ()):
            return "control flow"
        if each.__name__ in _EXITS.get(each.__module__, ()):
            return "exit"
    return None


#: Each exception class met, and what it is (a failure's, found once: an MRO walk per failed call otherwise).
_kinds: dict[type, str | None] = {}
_KEPT = 256
_UNKNOWN = "unknown"
