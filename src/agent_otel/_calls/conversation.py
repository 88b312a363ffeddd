"""``conversation()``: the conversation (chat session) a block or each call of a function belongs to.

No span of its own: the id goes into the OTel context and W3C baggage, is stamped on every span
started inside (``gen_ai.conversation.id``, by :mod:`agent_otel._context.stamping`) and is carried
wherever the job id is. Nested conversations: the innermost wins. Never a metric label.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.trace import INVALID_SPAN

from agent_otel._calls.extractors import Call, Extractor, Path, is_extractor, signature_of
from agent_otel._calls.handler import P, R, check_decoratable, check_parameters
from agent_otel._calls.options import AGENT, extractor_problem
from agent_otel._context.conversation import context_with_conversation
from agent_otel._engine.self_telemetry import report_error
from agent_otel._engine.wrappers import Args, Handler, Invocation, InvocationScope, Kwargs, instrument, replacing_own
from agent_otel.errors import ConfigurationError

_OPTION = AGENT["conversation"]  # the same option as the agent's and the job's `conversation` key

ConversationId = str | int | Extractor


def check_conversation_id(value: object, where: str) -> None:
    """Raise unless ``value`` can name a conversation: a non-empty string, an integer, or an extractor
    read when the call starts (``where`` says who was given it, e.g. ``"agent()"``)."""
    if isinstance(value, Path):
        problem = extractor_problem(_OPTION, value)
        if problem is not None:
            raise ConfigurationError(f"{where}: conversation: extractor path {value.text!r} {problem}")
        return
    if is_extractor(value):
        return
    if isinstance(value, bool) or not isinstance(value, _OPTION.accepts.types) or value == "":
        raise ConfigurationError(f"{where}: a conversation id must be a non-empty string, an integer or an "
                                 f"extractor (e.g. path(\"args.session_id\")), got {value!r}")


def deferred_conversation_problem(value: object, where: str) -> ConfigurationError | None:
    """What :func:`check_conversation_id` finds wrong with the id of an object that is a with-block as well as
    a decorator: returned, to raise when it decorates, and to count when a block runs in no conversation (there
    the id is the program's value at run time). A bad extractor is the code's own, never data: raised now."""
    try:
        check_conversation_id(value, where)
    except ConfigurationError as exc:
        if is_extractor(value):
            raise
        return exc
    return None


class _ConversationHandler(Handler):
    """Each call of the decorated function in the conversation its id (or extractor) names."""

    stage = "conversation"

    def __init__(self, conversation_id: ConversationId, func: Callable[..., Any]) -> None:
        self.conversation_id = conversation_id
        self.extractor = cast(Callable[[Call], Any], conversation_id) if is_extractor(conversation_id) else None
        self.signature = signature_of(func)
        if self.signature is not None:
            check_parameters(func, self.signature, {"conversation": conversation_id})

    def begin(self, wrapped: Callable[..., Any], instance: object, args: Args, kwargs: Kwargs,
              parent: Context) -> Invocation:
        value: object = self.conversation_id
        if self.extractor is not None:
            try:
                value = self.extractor(Call(self.signature, instance, args, kwargs,
                                                self.method if self.method is not None else self.decide_method(args)))
            except Exception as exc:
                report_error("conversation.extract", exc)
                value = None
        ctx = context_with_conversation(value)
        return Invocation(INVALID_SPAN, ctx if ctx is not None else otel_context.get_current(), self.stage)


class conversation(InvocationScope):
    """Run a block, or each call of a function, in a conversation (``gen_ai.conversation.id`` on
    every span inside, carried like the job id). As a decorator, ``conversation_id`` may be an
    extractor (e.g. ``path("args.session_id")``), read when each call starts."""

    stage = "conversation"

    def __init__(self, conversation_id: ConversationId) -> None:
        # a bad id raises when decorating; a with-block's id is the program's value at run time (e.g. None for an
        # anonymous session): its block runs in no conversation, and the miss is counted
        self._problem = deferred_conversation_problem(conversation_id, "conversation()")
        self.conversation_id = conversation_id
        super().__init__()

    def _refuse_entry(self) -> None:
        if is_extractor(self.conversation_id):
            raise ConfigurationError("conversation(): an extractor is only meaningful when conversation() decorates "
                                     "a function; a with-block takes the id itself")

    def _begin(self) -> Invocation:
        if self._problem is not None:
            report_error("conversation.id", self._problem)
            return Invocation(INVALID_SPAN, otel_context.get_current(), self.stage)
        ctx = context_with_conversation(self.conversation_id)
        return Invocation(INVALID_SPAN, ctx if ctx is not None else otel_context.get_current(), self.stage)

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        if self._problem is not None:
            raise self._problem
        func = replacing_own("conversation", func)
        check_decoratable("conversation", func)
        return instrument(_ConversationHandler(self.conversation_id, func), func)
