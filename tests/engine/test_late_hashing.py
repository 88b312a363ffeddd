"""Hashed keys are hashed on every exported span, whenever they were set (issue 12, item 9).

The ``otel`` capture is a host TracerProvider whose exporting processor comes before the ones
configure() adds, so these tests also show that the order of the processors does not matter.
"""

from __future__ import annotations

import hashlib
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import agent_otel
from agent_otel import path
from agent_otel._engine.instruments import runtime


def sha(value: str, salt: str = "pepper") -> str:
    return hashlib.sha256((salt + value).encode()).hexdigest()


def test_set_after_start_on_agent_otels_span_and_on_any_other(otel: Any) -> None:
    agent_otel.set_policy(salt="pepper")

    @agent_otel.agent("a")
    def handle() -> None:
        trace.get_current_span().set_attribute("user.id", "alice")

    @agent_otel.tool("t", attributes={"user.id": "bob"})
    def run() -> None:
        trace.get_current_span().set_attributes({"user.id": "carol"})  # replaced after start

    handle()
    run()
    foreign = TracerProvider.get_tracer(otel.tracer_provider, "some.library")
    with foreign.start_as_current_span("foreign") as span:
        span.set_attribute("user.id", "dave")
    with foreign.start_as_current_span("foreign-at-start", attributes={"user.id": "erin"}):
        pass
    assert {s.name: s.attributes["user.id"] for s in otel.spans()} == {
        "invoke_agent a": sha("alice"), "execute_tool t": sha("carol"), "foreign": sha("dave"),
        "foreign-at-start": sha("erin")}


def test_hashed_once_whatever_the_path(otel: Any) -> None:
    agent_otel.set_policy(salt="pepper")

    @agent_otel.agent("a", attributes={"user.id": "alice"}, result_attributes={"user.id": path("result.user")})
    def handle() -> dict[str, str]:
        return {"user": "bob"}

    @agent_otel.agent("b", attributes={"user.id": "alice"})
    def unchanged() -> None:
        return None

    handle()
    unchanged()
    with runtime().tracer.start_as_current_span("ours-untouched", attributes={"user.id": "carol"}):
        pass
    assert {s.name: s.attributes["user.id"] for s in otel.spans()} == {
        "invoke_agent a": sha("bob"), "invoke_agent b": sha("alice"), "ours-untouched": sha("carol")}


def test_configured_twice_on_one_host_provider_hashes_once() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    agent_otel.shutdown()
    try:
        for _ in range(2):  # each configure() adds its processors to the host's provider
            agent_otel.configure(tracer_provider=provider, set_global=False, system_metrics=False,
                                 instrument_threads=False, instrument_processes=False, metrics_exporter="none")
            agent_otel.set_policy(salt="pepper")
            with provider.get_tracer("host").start_as_current_span("host", attributes={"user.id": "alice"}) as span:
                span.set_attribute("tenant", "t")
                span.add_event("login", {"user.id": "bob"})
            agent_otel.shutdown()
    finally:
        agent_otel.shutdown()
        provider.shutdown()
    assert [s.attributes["user.id"] for s in exporter.get_finished_spans()] == [sha("alice"), sha("alice")]
    assert [s.events[0].attributes["user.id"] for s in exporter.get_finished_spans()] == [sha("bob"), sha("bob")]


def test_hashed_in_the_attributes_of_events_and_links_too(otel: Any) -> None:
    agent_otel.set_policy(salt="pepper")
    foreign = TracerProvider.get_tracer(otel.tracer_provider, "some.library")
    with foreign.start_as_current_span("earlier") as earlier:
        pass
    link = trace.Link(earlier.get_span_context(), {"user.id": "frank", "kind": "follows"})
    with foreign.start_as_current_span("foreign", links=[link]) as span:
        span.add_event("login", {"user.id": "grace", "method": "sso"})
        span.add_link(earlier.get_span_context(), {"user.id": "heidi"})
        span.add_event("plain", {"method": "none"})

    @agent_otel.tool("t")
    def run() -> None:
        trace.get_current_span().add_event("audit", {"user.id": "ivan"})

    run()
    exported = otel.span("foreign")
    assert [(event.name, dict(event.attributes)) for event in exported.events] == [
        ("login", {"user.id": sha("grace"), "method": "sso"}), ("plain", {"method": "none"})]
    assert [dict(link.attributes) for link in exported.links] == [
        {"user.id": sha("frank"), "kind": "follows"}, {"user.id": sha("heidi")}]
    assert dict(otel.span("execute_tool t").events[0].attributes) == {"user.id": sha("ivan")}


def test_a_key_listed_after_spans_went_through_is_hashed_as_the_next_span_starts(otel: Any) -> None:
    """The processor keeps the keys it looks for at a span's start per policy: a new policy is seen at once,
    before any other processor or the program reads the span."""
    foreign = TracerProvider.get_tracer(otel.tracer_provider, "some.library")
    agent_otel.set_policy(hashed_keys=[], salt="pepper")
    before = foreign.start_span("before", attributes={"tenant.id": "acme"})
    agent_otel.set_policy(hashed_keys=["tenant.id"], salt="pepper")
    after = foreign.start_span("after", attributes={"tenant.id": "acme"})
    assert (before.attributes or {})["tenant.id"] == "acme" and (after.attributes or {})["tenant.id"] == sha("acme")
    before.end()
    after.end()
