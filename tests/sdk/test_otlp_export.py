"""OTLP path: a child process that used every kind exports over OTLP/HTTP and gRPC to a receiver here.

configure() sets OTel's process-global providers, so the workload runs in a child interpreter
(``python -c "from tests.sdk.test_otlp_export import run_every_kind; ..."``) pointed at an in-test
receiver built on opentelemetry-proto. What arrives is checked against the contract (semconv):
spans carry job.id, every instrument arrives under its OTLP name with its unit and attribute keys and
no id attribute, and exemplars link each call's measurements to that call's span.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

import agent_otel
from agent_otel import semconv
from tests.support.environment import CLEAN_ENV
from tests.support.every_kind import use_every_kind
from tests.support.otlp_receiver import (
    OtlpGrpcReceiver,
    OtlpHttpReceiver,
    OtlpReceiver,
    attributes_of,
    data_points_of,
)
from tests.support.paths import ROOT
from tests.support.polling import wait_until

JOB_ID = "otlp-job"
SERVICE = "otlp-export-test"


def run_every_kind() -> None:
    """Entry point of the child: configure() from the OTEL_* environment, use every kind, shut down."""
    agent_otel.configure(system_metrics=False)
    use_every_kind(JOB_ID)
    agent_otel.shutdown()


EXPECTED_SPANS = {
    semconv.job_span_name("nightly"),
    semconv.phase_span_name("implement"),
    semconv.agent_span_name("refactor-agent"),
    semconv.agent_span_name("planner"),
    semconv.tool_span_name("ruff"),
    semconv.tool_span_name("shell"),
    semconv.provider_span_name(semconv.OPERATION_CHAT, "gpt-4o"),
    semconv.provider_span_name(semconv.OPERATION_CHAT, "claude-sonnet-4"),
    semconv.provider_span_name(semconv.OPERATION_CHAT, "gpt-4o-mini"),
    semconv.provider_span_name(semconv.OPERATION_CHAT, "house-llm"),
    semconv.evolution_span_name("refactor-agent"),
}

#: Attributes that may be absent from every point here (no call raised).
OPTIONAL_ATTRIBUTES = semconv.OPTIONAL_ATTRIBUTES


def span_of_point(metric: str, attributes: dict[str, Any]) -> str | None:
    """The span whose call recorded this point: exemplars must point at it (None: not a call's)."""
    if metric in (semconv.JOB_DURATION.name, semconv.JOB_COST.name):
        return semconv.job_span_name(attributes[semconv.JOB_TYPE])
    if metric == semconv.PHASE_DURATION.name:
        return semconv.phase_span_name(attributes[semconv.WORKFLOW_PHASE])
    if metric == semconv.PATTERN_DURATION.name:  # the job of use_every_kind follows the pattern
        return semconv.job_span_name("nightly")
    if metric in (semconv.INSTRUMENTATION_ERRORS.name, semconv.BUILD_INFO.name):  # set by configure()
        return None
    if metric == semconv.TOOL_DURATION.name:
        return semconv.tool_span_name(attributes[semconv.GEN_AI_TOOL_NAME])
    if metric == semconv.CLIENT_FALLBACKS.name:  # no model attribute: the one call that fell back
        return semconv.provider_span_name(semconv.OPERATION_CHAT, "gpt-4o")
    if metric.startswith(("gen_ai.client.", "agent_otel.client.")):
        return semconv.provider_span_name(attributes.get(semconv.GEN_AI_OPERATION_NAME, semconv.OPERATION_CHAT),
                                          attributes[semconv.GEN_AI_REQUEST_MODEL])
    if metric.startswith("evolution.") or metric in (semconv.AGENT_KPI_CURRENT.name,
                                                     semconv.AGENT_VERSION_INTRODUCED.name,
                                                     semconv.EVOLUTION_IMPROVEMENT_HISTOGRAM.name):
        return semconv.evolution_span_name(attributes[semconv.GEN_AI_AGENT_NAME])
    return semconv.agent_span_name(attributes[semconv.GEN_AI_AGENT_NAME])


# --------------------------------------------------------------------------------------------------
# The test
# --------------------------------------------------------------------------------------------------


def run_child(receiver: OtlpReceiver) -> subprocess.CompletedProcess:
    env = {**CLEAN_ENV, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
           "OTEL_EXPORTER_OTLP_PROTOCOL": receiver.protocol, "OTEL_SERVICE_NAME": SERVICE}
    code = "from tests.sdk.test_otlp_export import run_every_kind; run_every_kind()"
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def everything_arrived(receiver: OtlpReceiver) -> bool:
    names = {span.name for span in receiver.spans()}
    return names >= EXPECTED_SPANS and {spec.name for spec in semconv.INSTRUMENTS} <= receiver.metric_names()


@pytest.fixture(scope="module", params=[OtlpHttpReceiver, OtlpGrpcReceiver], ids=["http/protobuf", "grpc"])
def exported(request: pytest.FixtureRequest) -> Any:
    """A receiver after the child exported to it, once per protocol (the receiver stops at teardown)."""
    factory: Callable[[], OtlpReceiver] = request.param
    with factory() as receiver:
        child = run_child(receiver)
        assert child.returncode == 0, child.stderr
        wait_until(lambda: everything_arrived(receiver), f"every span and instrument over {receiver.protocol}",
                   timeout_s=30)
        yield receiver


def test_spans_carry_the_job_id(exported: OtlpReceiver) -> None:
    spans = exported.spans()
    assert {span.name for span in spans} == EXPECTED_SPANS
    assert len(spans) == len(EXPECTED_SPANS)
    assert all(attributes_of(span).get(semconv.JOB_ID) == JOB_ID for span in spans), \
        {span.name: attributes_of(span).get(semconv.JOB_ID) for span in spans}
    assert len({span.trace_id for span in spans}) == 1
    job_span = next(span for span in spans if span.name == semconv.job_span_name("nightly"))
    assert attributes_of(job_span)[semconv.JOB_TYPE] == "nightly"
    provider = next(span for span in spans if span.name == "chat gpt-4o")
    provider_attributes = attributes_of(provider)
    assert provider_attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 120
    assert provider_attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 30
    assert provider_attributes[semconv.GEN_AI_USAGE_COST_AMOUNT] > 0
    assert provider_attributes[semconv.AGENT_OTEL_FALLBACK_TO] == "anthropic"
    resources = [attributes_of(rs.resource) for request in exported.traces for rs in request.resource_spans]
    assert resources and all(resource["service.name"] == SERVICE for resource in resources)


def test_every_instrument_arrives_with_unit_and_attributes_and_no_id(exported: OtlpReceiver) -> None:
    for spec in semconv.INSTRUMENTS:
        metrics = exported.metrics_named(spec.name)
        assert metrics, spec.name
        assert {metric.unit for metric in metrics} == {spec.unit}, spec.name
        points = [point for metric in metrics for point in data_points_of(metric)]
        assert points, spec.name
        keys = {key for point in points for key in attributes_of(point)}
        assert keys <= set(spec.attributes), (spec.name, keys - set(spec.attributes))
        assert set(spec.attributes) - OPTIONAL_ATTRIBUTES <= keys, (spec.name, set(spec.attributes) - keys)
    for metric in exported.metric_list():
        for point in data_points_of(metric):
            attributes = attributes_of(point)
            assert not set(attributes) & semconv.ID_ATTRIBUTES, (metric.name, attributes)
            assert JOB_ID not in attributes.values() and "alice" not in attributes.values(), (metric.name,
                                                                                               attributes)
    resources = [attributes_of(rm.resource) for request in exported.metrics for rm in request.resource_metrics]
    assert resources and all(resource["service.name"] == SERVICE for resource in resources)


def exemplar_mismatches(receiver: OtlpReceiver, names: set[str]) -> tuple[list[Any], dict[str, int]]:
    """Points of the named instruments whose exemplars do not point at the span of their call."""
    spans = {span.name: span for span in receiver.spans()}
    checked: dict[str, int] = {}
    wrong = []
    for metric in receiver.metric_list():
        if metric.name not in names:
            continue
        for point in data_points_of(metric):
            attributes = attributes_of(point)
            expected = span_of_point(metric.name, attributes)
            if expected is None:
                continue
            span = spans[expected]
            if not point.exemplars:
                wrong.append((metric.name, attributes, "no exemplar"))
            for exemplar in point.exemplars:
                if (exemplar.trace_id, exemplar.span_id) != (span.trace_id, span.span_id):
                    got = [name for name, s in spans.items() if s.span_id == exemplar.span_id]
                    wrong.append((metric.name, attributes, f"exemplar of {got or exemplar.span_id.hex()}"))
            checked[metric.name] = checked.get(metric.name, 0) + 1
    return wrong, checked


def test_exemplars_point_at_the_span_of_the_call(exported: OtlpReceiver) -> None:
    names = set(semconv.INSTRUMENTS_BY_NAME)
    wrong, checked = exemplar_mismatches(exported, names)
    assert not wrong, "\n".join(map(str, wrong))
    assert checked[semconv.AGENT_DURATION.name] == 2  # refactor-agent and planner
    assert checked[semconv.CLIENT_OPERATION_INPUT_TOKENS.name] == 4  # 4 calls
    assert checked[semconv.CLIENT_OPERATION_OUTPUT_TOKENS.name] == 4
    assert checked[semconv.CLIENT_COST.name] == 3  # every call but house-llm's is in the price table
    assert checked[semconv.CLIENT_OPERATION_COST.name] == 3
    assert checked[semconv.CLIENT_UNPRICED_CALLS.name] == 1  # house-llm
    assert checked[semconv.JOB_COST.name] == 1
    assert checked[semconv.AGENT_INFERENCE_CALLS.name] == 2  # refactor-agent (2 calls) and planner (none)
    assert checked[semconv.CLIENT_RETRIES.name] == 2
    assert checked[semconv.CLIENT_FALLBACKS.name] == 1
    assert checked[semconv.EVOLUTION_ATTEMPTS.name] == 1
    assert checked[semconv.PHASE_DURATION.name] == 1 and checked[semconv.PATTERN_DURATION.name] == 1
    assert checked[semconv.EVOLUTION_PERFORMANCE_IMPROVEMENT.name] == 1
    assert checked[semconv.EVOLUTION_IMPROVEMENT_HISTOGRAM.name] == 1
    # recorded at the end of the agent call, after its context is detached: still the agent's span
    assert checked[semconv.AGENT_WORK_ITEMS.name] == 1 and checked[semconv.AGENT_PATTERNS_USED.name] == 1
    assert set(checked) == names - {semconv.INSTRUMENTATION_ERRORS.name, semconv.BUILD_INFO.name}



def test_traces_and_metrics_go_where_their_own_variables_say() -> None:
    """The per-signal variables of the OTLP exporter spec win over the generic ones, and a signal's endpoint is
    used as it is: traces to one receiver over HTTP (its full URL), metrics to another over gRPC. With only
    `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` set, no trace was exported before."""
    with OtlpHttpReceiver() as traces, OtlpGrpcReceiver() as metrics:
        env = {**CLEAN_ENV, "OTEL_SERVICE_NAME": SERVICE,
               "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{traces.endpoint}/v1/traces",
               "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": metrics.endpoint,
               "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
        code = "from tests.sdk.test_otlp_export import run_every_kind; run_every_kind()"
        child = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True,
                               timeout=120)
        assert child.returncode == 0, child.stderr
        wait_until(lambda: {span.name for span in traces.spans()} >= EXPECTED_SPANS, "the spans over HTTP")
        wait_until(lambda: semconv.AGENT_DURATION.name in metrics.metric_names(), "the metrics over gRPC")
        assert traces.metric_names() == set() and metrics.spans() == []
