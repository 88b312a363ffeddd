"""Evaluation results: a score (or a label) an evaluator gave a GenAI call.

:func:`record_evaluation` records the ``agent.evaluation.score`` histogram and puts the standard
``gen_ai.evaluation.result`` event on the evaluated span. The span bridge records the same histogram for
the ``gen_ai.evaluation.result`` span events of other instrumentations.
"""

from __future__ import annotations

import math
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from agent_otel import semconv
from agent_otel._context.job import AGENT_KEY
from agent_otel._engine.instruments import runtime
from agent_otel._engine.policy import policy
from agent_otel._engine.self_telemetry import report_error


def record_score(ctx: Any, name: str, score: float | None, label: str | None, agent: object) -> None:
    """One evaluation on the histogram (a label alone is no score: nothing to record)."""
    if score is None or math.isnan(score) or math.isinf(score):
        return
    bound = policy().bounded
    attributes = {semconv.GEN_AI_EVALUATION_NAME: bound(semconv.GEN_AI_EVALUATION_NAME, name),
                  semconv.GEN_AI_AGENT_NAME: bound(semconv.GEN_AI_AGENT_NAME, agent) if agent else "unknown"}
    if label:
        attributes[semconv.GEN_AI_EVALUATION_SCORE_LABEL] = bound(semconv.GEN_AI_EVALUATION_SCORE_LABEL, label)
    runtime()[semconv.AGENT_EVALUATION_SCORE].record(score, attributes, context=ctx)


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
        number = float(score) if score is not None else None
        record_score(otel_context.get_current(), name, number, label, agent_name)
        if target.is_recording():
            event: dict[str, Any] = {semconv.GEN_AI_EVALUATION_NAME: name, semconv.EVALUATION_COUNTED: True}
            if number is not None:
                event[semconv.GEN_AI_EVALUATION_SCORE_VALUE] = number
            if label:
                event[semconv.GEN_AI_EVALUATION_SCORE_LABEL] = label
            if explanation:
                event[semconv.GEN_AI_EVALUATION_EXPLANATION] = explanation
            target.add_event(semconv.EVENT_EVALUATION_RESULT, event)
    except Exception as exc:
        report_error("evaluation", exc)
