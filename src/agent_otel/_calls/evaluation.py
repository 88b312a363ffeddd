"""Evaluation results: a score (or a label) an evaluator gave a GenAI call.

:func:`record_evaluation` records the ``agent.evaluation.score`` histogram and puts the standard
``gen_ai.evaluation.result`` event on the evaluated span. The span bridge records the same histogram for
the ``gen_ai.evaluation.result`` span events of other instrumentations.

An evolution run that names evaluations (``evaluations=[...]``) turns their scores into KPIs: the mean
score recorded inside the run (its :class:`ScoreWindow`, in the run's context) is the KPI after, and the
mean score that agent got for it between its previous run and this one (:func:`take_baseline`) is the KPI
before.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from agent_otel import semconv
from agent_otel._context.job import AGENT_KEY
from agent_otel._engine.instruments import runtime
from agent_otel._engine.policy import OTHER, policy, valid_attributes
from agent_otel._engine.self_telemetry import Unreadable, report_error, type_name


class _Mean:
    __slots__ = ("count", "total")

    def __init__(self) -> None:
        self.total, self.count = 0.0, 0

    def add(self, score: float) -> None:
        self.total += score
        self.count += 1


class ScoreWindow:
    """The scores of some evaluations recorded inside one evolution run (any thread or span that carries
    its context), by evaluation name."""

    def __init__(self, names: Iterable[str], enclosing: ScoreWindow | None = None) -> None:
        self.names = frozenset(names)
        #: The window of the run this one is nested in, which takes the scores this one does not ask for.
        self.enclosing = enclosing
        self._means = {name: _Mean() for name in self.names}
        self._lock = threading.Lock()
        #: Set once the run was recorded: a score recorded since (a task the run started, an online evaluation
        #: finishing after it returned) goes to the next run out, or to the agent's baseline, not to a window no
        #: one reads again.
        self.closed = False

    def add(self, name: str, score: float) -> bool:
        """Count ``score`` if the run asked for ``name`` and is still open; whether it did."""
        mean = self._means.get(name)
        if mean is None:
            return False
        with self._lock:
            if self.closed:
                return False
            mean.add(score)
        return True

    def close(self) -> dict[str, float]:
        """Close the window (the run is being recorded) and give its mean score by evaluation name, of the names that
        got a score: in one step, so that a score either counts here or goes on (see :attr:`closed`)."""
        with self._lock:
            self.closed = True
            return {name: mean.total / mean.count for name, mean in self._means.items() if mean.count}


#: The :class:`ScoreWindow` of the evolution run in progress.
WINDOW_KEY = otel_context.create_key("agent_otel.evaluation_window")
#: The agent of the evolution run in progress: a score recorded inside it with no agent of its own is that agent's.
RUN_AGENT_KEY = otel_context.create_key("agent_otel.evolution_agent")
#: Scores recorded outside any run that asked for them, by (agent, evaluation): the next run's baseline.
_BASELINES: dict[tuple[str, str], _Mean] = {}
#: The agent is a capped label, the evaluation the name a run asks for (any text): past this many pairs, the least
#: recently scored is dropped (counted) for a new one; a full table took no new pair, and a run's "before" was lost.
_BASELINES_LIMIT = 4096
_baselines_lock = threading.Lock()


def take_baseline(agent: str, names: Iterable[str]) -> dict[str, float]:
    """Mean score of each evaluation in ``names`` for ``agent`` since the last time it was taken (or since
    the process started), and start a new baseline window."""
    found: dict[str, float] = {}
    if agent == OTHER:  # the agents past the cardinality cap share that name: none has a baseline (no "before")
        return found
    with _baselines_lock:
        for name in names:
            mean = _BASELINES.pop((agent, name), None)
            if mean is not None and mean.count:
                found[name] = mean.total / mean.count
    return found


def reset_baselines() -> None:
    """Forget every baseline (tests: one test's scores must not be the next one's baseline)."""
    with _baselines_lock:
        _BASELINES.clear()


def _collect(ctx: Any, name: str, agent: str, score: float) -> None:
    window = otel_context.get_value(WINDOW_KEY, ctx) or otel_context.get_value(WINDOW_KEY)
    while isinstance(window, ScoreWindow):  # the innermost run that asked for it, else the next one out
        if window.add(name, score):
            return
        window = window.enclosing
    if agent == OTHER:  # past the cap: one baseline would mix every such agent's scores (see take_baseline)
        return
    dropped = False
    with _baselines_lock:
        mean = _BASELINES.pop((agent, name), None)  # put back last: the table is in the order pairs were scored
        if mean is None:
            mean = _Mean()
            if len(_BASELINES) >= _BASELINES_LIMIT:
                del _BASELINES[next(iter(_BASELINES))]
                dropped = True
        _BASELINES[(agent, name)] = mean
        mean.add(score)
    if dropped:
        report_error("evaluation.baseline", LookupError("the least recently scored baseline was dropped for a new one"))


def record_score(ctx: Any, name: str, score: float | None, label: str | None, agent: object) -> None:
    """One evaluation on the histogram (a label alone is no score: nothing to record), and in the window
    of the evolution run it belongs to, or the agent's baseline."""
    if score is None:
        return
    if not math.isfinite(score):
        report_error("evaluation.score", ValueError("a score that is no finite number is left off"))
        return
    bound = policy().bounded
    evaluation = bound(semconv.GEN_AI_EVALUATION_NAME, name)
    if not agent:  # an evaluator's event on a span of no agent (another library's judge) inside an evolution run
        agent = otel_context.get_value(RUN_AGENT_KEY, ctx)
    agent_label = bound(semconv.GEN_AI_AGENT_NAME, agent) if agent else "unknown"
    attributes = {semconv.GEN_AI_EVALUATION_NAME: evaluation, semconv.GEN_AI_AGENT_NAME: agent_label}
    if label:
        attributes[semconv.GEN_AI_EVALUATION_SCORE_LABEL] = bound(semconv.GEN_AI_EVALUATION_SCORE_LABEL, label)
    if score >= 0:
        runtime()[semconv.AGENT_EVALUATION_SCORE].record(score, attributes, context=ctx)
    else:  # a histogram takes no negative value (the SDK drops it, with a warning on the program's stderr)
        report_error("evaluation.negative_score", ValueError("a negative score is left off the score histogram"))
    _collect(ctx, name, agent_label, score)  # a KPI's mean takes it: a reward model's -0.5 is a score


def record_result(ctx: Any, attributes: Mapping[str, Any], agent: object) -> None:
    """A ``gen_ai.evaluation.result`` event (of a span or a log record) from its attributes, unless
    ``record_evaluation()`` counted it already or it has no name and numeric score."""
    if attributes.get(semconv.EVALUATION_COUNTED):
        return
    name = attributes.get(semconv.GEN_AI_EVALUATION_NAME)
    score = attributes.get(semconv.GEN_AI_EVALUATION_SCORE_VALUE)
    if not isinstance(name, str) or score is None:
        return
    if isinstance(score, bool) or not isinstance(score, int | float):
        report_error("evaluation.score", Unreadable(f"a score must be a number, got {type_name(score)}"))
        return
    label = attributes.get(semconv.GEN_AI_EVALUATION_SCORE_LABEL)
    record_score(ctx, name, float(score), label if isinstance(label, str) else None, agent)


def _numpy_bool(value: object) -> bool:
    """Whether ``value`` is numpy's bool (what ``prediction == target`` gives over arrays), which ``float()`` reads as
    1 or 0."""
    kind = type(value)
    return kind.__module__ == "numpy" and kind.__name__ in ("bool", "bool_")


def _finite(score: object) -> float | None:
    """A score as a finite number (a number's text too, as every number option reads it); else None, counted:
    the label and the event are still recorded."""
    try:
        number = float(score.strip() if isinstance(score, str) else score)  # type: ignore[arg-type]
    except Exception:  # the program's object: its __float__ may raise anything
        report_error("evaluation.score", Unreadable(f"a score must be a number, got {type_name(score)}"))
        return None
    if not math.isfinite(number):
        report_error("evaluation.score", ValueError("a score that is no finite number is left off"))
        return None
    return number


def record_evaluation(name: str, score: float | None = None, label: str | None = None, *, agent: str | None = None,
                      explanation: str | None = None, span: trace.Span | None = None) -> None:
    """Record an evaluation of a GenAI call: ``score`` (a number, e.g. 0..1) and/or ``label`` (e.g.
    ``"pass"``), on the ``agent.evaluation.score`` histogram by evaluation ``name`` and agent (default:
    the agent the code runs under), and as a ``gen_ai.evaluation.result`` event on ``span`` (default:
    the current span, the evaluated call when you evaluate inside it). Never raises."""
    try:
        if not runtime().enabled:
            return
        target = span if span is not None else trace.get_current_span()
        if agent is None:
            agent_name = otel_context.get_value(AGENT_KEY)
            if agent_name is None and target.is_recording():
                agent_name = getattr(target, "attributes", {}).get(semconv.GEN_AI_AGENT_NAME)
        else:
            agent_name = agent
        given: object = score  # typed a number; a program may pass anything
        number: float | None = None
        if isinstance(given, bool) or _numpy_bool(given):  # as the event's reader refuses it: True is no score of 1
            report_error("evaluation.score", Unreadable("a score must be a number, got a bool"))
        elif score is not None:
            number = _finite(score)
        record_score(otel_context.get_current(), name, number, label, agent_name)
        if target.is_recording():
            event: dict[str, Any] = {semconv.GEN_AI_EVALUATION_NAME: name, semconv.EVALUATION_COUNTED: True}
            if number is not None:
                event[semconv.GEN_AI_EVALUATION_SCORE_VALUE] = number
            if label:
                event[semconv.GEN_AI_EVALUATION_SCORE_LABEL] = label
            if explanation:
                event[semconv.GEN_AI_EVALUATION_EXPLANATION] = explanation
            target.add_event(semconv.EVENT_EVALUATION_RESULT, valid_attributes(event))
    except Exception as exc:
        report_error("evaluation", exc)
