"""Exceptions that frameworks raise as control flow, not as a failure of the call they leave.

A LangGraph node or tool that pauses for a human (``interrupt()``: ``GraphInterrupt``) or hands off to another agent
(``Command(graph=Command.PARENT)``: ``ParentCommand``) raises through every call around it, as a pydantic-ai tool that
defers its call (``ApprovalRequired``, ``CallDeferred``) does, mini-swe-agent's ``Submitted`` (its normal finish) and
``FormatError``, and a LlamaIndex workflow step's ``WaitingForEvent`` (``ctx.wait_for_event()``); the framework catches
it above, and the run goes on, resumed later or elsewhere. Recorded as errors, an agent that pauses on every run read
50% success and set off the error-ratio alerts. A Streamlit app's ``st.rerun()`` and ``st.stop()`` end the script's run
the same way, through the calls it is in (a chat app reruns after each answer: half its agent calls and jobs read as
errors). Not LangGraph's other ``GraphBubbleUp``: ``GraphDrained`` is a run cut short. A ``click`` (and ``typer``) exit
says its status as ``SystemExit`` does. The classes are known by their module and name (a class of theirs in the
exception's MRO), so no framework is imported to check.
"""

from __future__ import annotations

import weakref

from agent_otel._engine.self_telemetry import report_error

#: module -> the classes of it whose exceptions are control flow (with their subclasses)
_CONTROL_FLOW: dict[str, frozenset[str]] = {
    "langgraph.errors": frozenset({"GraphInterrupt", "NodeInterrupt", "ParentCommand"}),
    "pydantic_ai.exceptions": frozenset({"ApprovalRequired", "CallDeferred"}),
    # mini-swe-agent's run loop catches these: its normal finish (Submitted, out of the environment's execute), a model
    # reply it cannot parse (FormatError: it asks the model again). Not its LimitsExceeded: a run cut short
    "minisweagent.exceptions": frozenset({"Submitted", "FormatError"}),
    # a LlamaIndex workflow step (or agent tool) waiting for a human's event (ctx.wait_for_event): run again with it
    "workflows.runtime.types.results": frozenset({"WaitingForEvent"}),
    # st.rerun() and st.stop(): the script run ends there, to start again or to wait for the user (where Streamlit
    # defines them now, and where its earlier releases did)
    "streamlit.runtime.scriptrunner_utils.exceptions": frozenset({"ScriptControlException"}),
    "streamlit.runtime.scriptrunner.exceptions": frozenset({"ScriptControlException"}),
    "streamlit.runtime.scriptrunner.script_runner": frozenset({"ScriptControlException"}),
    "streamlit.scriptrunner.script_runner": frozenset({"ScriptControlException"}),
    "streamlit.script_runner": frozenset({"ScriptControlException"}),
}
_NAMES = frozenset().union(*_CONTROL_FLOW.values())
#: Exits whose ``exit_code`` 0 is a success, as ``sys.exit(0)`` is.
_EXITS = {"click.exceptions": frozenset({"Exit"})}

_PAUSE = "pause"  # a framework's control flow, caught by the framework above the call
_EXIT = "exit"  # an exit, control flow with status 0


def is_control_flow(error: BaseException) -> bool:
    """Whether ``error`` leaves a call as control flow, not as a failure: see the module. Never raises (an exception
    class of the program's whose MRO, module or ``exit_code`` cannot be read is a failure, counted)."""
    try:
        cls = type(error)
        try:
            kind = _kinds.get(cls, _UNKNOWN)
        except TypeError:  # a class that is not hashable or not weakly referable (its metaclass's doing)
            kind = _kind_of(cls)
        else:
            if kind is _UNKNOWN:
                kind = _kind_of(cls)
                _kinds[cls] = kind
        return kind == _PAUSE or (kind == _EXIT and getattr(error, "exit_code", None) == 0)
    except Exception as exc:
        report_error("control_flow", exc)
        return False


def names_control_flow(label: str) -> bool:
    """Whether ``error.type`` on another library's span names such an exception: its module-qualified name, or the
    class name alone (as LangChain's instrumentation writes it)."""
    module, dot, name = label.rpartition(".")
    return name in _CONTROL_FLOW.get(module, ()) if dot else label in _NAMES


def _kind_of(cls: type) -> str | None:
    for each in cls.__mro__:
        if each.__name__ in _CONTROL_FLOW.get(each.__module__, ()):
            return _PAUSE
        if each.__name__ in _EXITS.get(each.__module__, ()):
            return _EXIT
    return None


#: Each exception class met, and what it is (found once: an MRO walk per failed call otherwise); weakly, so that a
#: class made at run time goes when the program lets it go.
_kinds: weakref.WeakKeyDictionary[type, str | None] = weakref.WeakKeyDictionary()
_UNKNOWN = "unknown"
