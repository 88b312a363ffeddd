"""A third-party summarizer SDK that traces itself with the plain OpenTelemetry API, following the GenAI
semantic conventions, as the official GenAI instrumentations do. Like the fleet, it knows nothing about
agent-otel: the demo shows its calls reaching the dashboards through agent-otel's span bridge, beside the
config-wrapped fleet."""

from __future__ import annotations

import random

from opentelemetry import trace

MODEL = "summarizer-mini"
AGENT = "summarizer"
PROVIDER = "openai"

_tracer = trace.get_tracer("demo.summarizer.instrumentation", "1.0.0")


class Summarizer:
    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)

    def summarize(self, text: str) -> str:
        """One chat call, traced as its own instrumentation would: a CLIENT span with the usage."""
        attributes = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": PROVIDER,
                      "gen_ai.request.model": MODEL, "gen_ai.agent.name": AGENT}
        with _tracer.start_as_current_span(f"chat {MODEL}", kind=trace.SpanKind.CLIENT,
                                           attributes=attributes) as span:
            span.set_attribute("gen_ai.response.model", MODEL)
            span.set_attribute("gen_ai.usage.input_tokens", 40 + len(text) // 4)
            span.set_attribute("gen_ai.usage.output_tokens", self._random.randint(20, 60))
            score = round(self._random.uniform(0.4, 1.0), 2)  # its built-in evaluator grades each summary
            span.add_event("gen_ai.evaluation.result", {"gen_ai.evaluation.name": "faithfulness",
                                                        "gen_ai.evaluation.score.value": score,
                                                        "gen_ai.evaluation.score.label": "pass" if score >= 0.6
                                                        else "fail"})
            return text[:40]
