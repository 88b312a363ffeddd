"""Head sampling and the span bridge: another library's GenAI spans that the sampler drops still count.

The SDK hands only recorded spans to span processors. Before, a host sampling 10% of its traces (or continuing
unsampled upstream traces) had the bridge's model calls, tokens and cost follow the ratio.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, Sampler, TraceIdRatioBased

import agent_otel
from agent_otel import semconv
from agent_otel._bridge.sampling import dropping_parts
from agent_otel._engine.instruments import build_runtime
from agent_otel._sdk.settings import traces_sampler
from tests.support.environment import CLEAN_ENV
from tests.support.otlp_receiver import OtlpHttpReceiver, attributes_of, data_points_of
from tests.support.paths import ROOT
from tests.support.polling import wait_until

CHAT = {semconv.GEN_AI_OPERATION_NAME: "chat", semconv.GEN_AI_PROVIDER_NAME: "openai",
        semconv.GEN_AI_REQUEST_MODEL: "gpt-4o"}


@pytest.fixture()
def receiver() -> Iterator[OtlpHttpReceiver]:
    with OtlpHttpReceiver() as started:
        yield started


@pytest.mark.parametrize("sampler", ["traceidratio", "parentbased_always_off"])
def test_genai_spans_the_configured_sampler_drops_still_count_and_are_not_exported(receiver: OtlpHttpReceiver,
                                                                                   sampler: str) -> None:
    """configure() with ``OTEL_TRACES_SAMPLER`` sampling nothing: another library's chat spans reach the bridge
    (calls, tokens) and no exporter; a span of any other kind is dropped as the sampler says."""
    code = textwrap.dedent("""
        import agent_otel
        from opentelemetry import trace

        agent_otel.configure(metrics_exporter="otlp")
        tracer = trace.get_tracer("opentelemetry.instrumentation.somelib")
        chat = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o"}
        with agent_otel.job(type="sampled-out"):
            for _ in range(3):
                with tracer.start_as_current_span("chat gpt-4o", attributes=chat) as span:
                    span.set_attribute("gen_ai.usage.input_tokens", 100)
                    span.set_attribute("gen_ai.usage.output_tokens", 10)
            with tracer.start_as_current_span("GET /weather") as http:
                print(http.is_recording())
    """)
    child = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                           env={**CLEAN_ENV, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_TRACES_SAMPLER": sampler,
                                "OTEL_TRACES_SAMPLER_ARG": "0", "OTEL_METRIC_EXPORT_INTERVAL": "3600000"})
    assert (child.returncode, child.stdout, child.stderr) == (0, "False\n", "")
    wait_until(lambda: receiver.metrics_named(semconv.CLIENT_INFERENCE_DURATION.name), "the exit's metric export")
    calls = [p.count for m in receiver.metrics_named(semconv.CLIENT_INFERENCE_DURATION.name)
             for p in data_points_of(m)]
    tokens = [p.sum for m in receiver.metrics_named(semconv.CLIENT_OPERATION_INPUT_TOKENS.name)
              for p in data_points_of(m)]
    models = [attributes_of(p)[semconv.GEN_AI_REQUEST_MODEL]
              for m in receiver.metrics_named(semconv.CLIENT_INFERENCE_DURATION.name) for p in data_points_of(m)]
    assert calls == [3] and tokens == [300] and models == ["gpt-4o"]
    assert receiver.spans() == []  # the sampler's choice: nothing exported


def test_the_sampler_keeps_the_wrapped_samplers_decisions_for_every_other_span() -> None:
    """Wrapping a host's own provider's sampler: sampled spans stay sampled, dropped non-GenAI spans dropped, and a
    dropped GenAI span (here under an unsampled parent, as ParentBased has it) recorded but not exported."""
    spans = InMemorySpanExporter()
    provider = TracerProvider(sampler=agent_otel.GenAiMetricsSampler(ParentBased(TraceIdRatioBased(1.0))))
    provider.add_span_processor(SimpleSpanProcessor(spans))
    tracer = provider.get_tracer("host")
    with tracer.start_as_current_span("sampled root") as root, tracer.start_as_current_span(
            "chat gpt-4o", attributes=CHAT) as chat:
        assert chat.get_span_context().trace_flags.sampled
    assert root.get_span_context().trace_flags.sampled
    dropping = TracerProvider(sampler=agent_otel.GenAiMetricsSampler(ALWAYS_OFF))
    dropping.add_span_processor(SimpleSpanProcessor(spans))
    tracer = dropping.get_tracer("host")
    with tracer.start_as_current_span("GET /") as http, tracer.start_as_current_span(
            "chat gpt-4o", attributes=CHAT) as chat:
        assert chat.is_recording() and not chat.get_span_context().trace_flags.sampled
    assert not http.is_recording()
    fresh = TracerProvider(sampler=agent_otel.GenAiMetricsSampler(ALWAYS_OFF))  # no span of another library yet
    build_runtime(fresh, MeterProvider(metric_readers=[InMemoryMetricReader()]))
    try:  # agent-otel's own spans: its wrappers record their metrics without them
        assert agent_otel.tool("search")(lambda: trace.get_current_span().is_recording())() is False
    finally:
        build_runtime()
    assert [span.name for span in spans.get_finished_spans()] == ["chat gpt-4o", "sampled root"]
    assert "AlwaysOffSampler" in dropping.sampler.get_description()


def test_a_genai_span_recorded_only_counts_once_through_the_bridge() -> None:
    """What the bridge records of a span the sampler kept only for it equals what it records of a sampled one."""
    from agent_otel._bridge.processor import GenAiSpanBridge
    from agent_otel._sdk.span_processor import AgentOtelSpanProcessor

    reader = InMemoryMetricReader()
    provider = TracerProvider(sampler=agent_otel.GenAiMetricsSampler(ALWAYS_OFF))
    provider.add_span_processor(AgentOtelSpanProcessor(GenAiSpanBridge()))
    build_runtime(provider, MeterProvider(metric_readers=[reader]))
    try:
        with provider.get_tracer("opentelemetry.instrumentation.somelib").start_as_current_span(
                "chat gpt-4o", attributes=CHAT) as span:
            span.set_attribute(semconv.GEN_AI_USAGE_INPUT_TOKENS, 7)
        data = reader.get_metrics_data()
        assert data is not None
        counts = {metric.name: sum(getattr(p, "count", 0) or getattr(p, "value", 0) for p in metric.data.data_points)
                  for rm in data.resource_metrics for sm in rm.scope_metrics for metric in sm.metrics}
        assert counts[semconv.CLIENT_INFERENCE_DURATION.name] == 1
        assert counts[semconv.CLIENT_OPERATION_INPUT_TOKENS.name] == 1
    finally:
        build_runtime()


@pytest.mark.parametrize("sampler_of", [
    lambda: agent_otel.GenAiMetricsSampler(ParentBased(TraceIdRatioBased(1.0))),
    lambda: traces_sampler({}, dropping_parts()),  # configure()'s: their span and ours go through two of its parts
], ids=["wrapped whole", "configure's, parts wrapped"])
def test_a_call_of_ours_inside_another_librarys_unsampled_span_is_counted_once(
        sampler_of: Callable[[], Sampler]) -> None:
    """Once another library's GenAI span has been recorded for the bridge, a span of ours the sampler drops is
    recorded too: the bridge tells their span of our call by ours (before, both counted the call). In the sampler
    configure() builds, their span (under a remote parent) and ours (under theirs, a local one) are decided by two
    parts of it, which know of each other's recording."""
    from opentelemetry import context as otel_context
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    from agent_otel._bridge.processor import GenAiSpanBridge
    from agent_otel._sdk.span_processor import AgentOtelSpanProcessor

    @agent_otel.provider("openai", model="gpt-4o")
    def complete() -> dict[str, object]:
        return {"usage": {"input_tokens": 10, "output_tokens": 5}}

    reader = InMemoryMetricReader()
    provider = TracerProvider(sampler=sampler_of())
    provider.add_span_processor(AgentOtelSpanProcessor(GenAiSpanBridge()))
    build_runtime(provider, MeterProvider(metric_readers=[reader]))
    unsampled = NonRecordingSpan(SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=TraceFlags(0)))
    token = otel_context.attach(trace.set_span_in_context(unsampled))
    try:
        for _ in range(2):
            with provider.get_tracer("opentelemetry.instrumentation.somelib").start_as_current_span(
                    "chat gpt-4o", attributes=CHAT):
                complete()
        data = reader.get_metrics_data()
        assert data is not None
        calls = sum(p.count for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
                    if m.name == semconv.CLIENT_INFERENCE_DURATION.name for p in m.data.data_points)
        assert calls == 2
    finally:
        otel_context.detach(token)
        build_runtime()
