"""The job id across HTTP and process boundaries: what a receiving side continues, what the sending side writes."""

from __future__ import annotations

import contextlib
import contextvars
import email.message
import logging
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace

import agent_otel
from agent_otel import semconv
from agent_otel._context.carriers import instrument_http_headers, uninstrument_http_headers
from agent_otel._context.job import BAGGAGE_KEY
from tests.support.environment import CLEAN_ENV
from tests.support.forked_children import stderr_but_fork_warnings
from tests.support.loopback import LoopbackServer, QuietHandler
from tests.support.paths import ROOT
from tests.support.telemetry import error_count


def test_headers_without_trace_context_leave_the_block_in_its_job_and_span(otel: Any) -> None:
    """A request with no caller to continue (curl's): the block ran in an empty context, outside the job and span
    it was in, its calls in a trace of their own and in no roll-up."""
    with agent_otel.job("server", type="request") as job, trace.get_tracer("host").start_as_current_span("GET /"):
        span = trace.get_current_span()
        for headers in ({"user-agent": "curl/8"}, {}):
            with agent_otel.attached(headers):
                assert (agent_otel.current_job_id(), trace.get_current_span()) == (job.id, span)
        with agent_otel.attached({"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                                  "baggage": f"{semconv.BAGGAGE_JOB_ID}=caller"}):
            assert agent_otel.current_job_id() == "caller"  # a caller to continue: its job and trace
            assert trace.get_current_span().get_span_context().trace_id == 0x0af7651916cd43dd8448eb211c80319c


def test_an_attached_block_ended_in_another_context_prints_nothing_and_leaves_the_consumers_context(
        otel: Any, caplog: pytest.LogCaptureFixture) -> None:
    """A streamed body's generator whose steps each run in a fresh copy of the consumer's context (Starlette's
    ``iterate_in_threadpool``) with ``attached()`` around its yields: its exit detached a token of another context,
    and OpenTelemetry logged "Failed to detach context" with a traceback, on the server's stderr, once per response.
    In one context, the block still ends back in the context it began in."""
    headers = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
               "baggage": f"{semconv.BAGGAGE_JOB_ID}=caller"}

    def body() -> Iterator[str | None]:
        with agent_otel.attached(headers):
            yield agent_otel.current_job_id()
            yield "second"

    caplog.set_level(logging.DEBUG)
    steps = body()
    read = []
    while True:
        try:
            read.append(contextvars.copy_context().run(next, steps))
        except StopIteration:
            break
    assert read == ["caller", "second"]
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING] == []
    assert agent_otel.current_job_id() is None
    with agent_otel.job("outer") as job:
        with agent_otel.attached(headers):
            assert agent_otel.current_job_id() == "caller"
        assert agent_otel.current_job_id() == job.id


def test_a_request_span_started_in_its_callers_extracted_context_passes_the_callers_job_on(otel: Any) -> None:
    """MCP probe: MCP's server starts each request's span with ``start_as_current_span(name,
    context=extract(meta))``, which makes the span current but not the caller's baggage: the span had the caller's
    ``job.id``, and nothing under it did (agent-otel's tool span, 0 of 5; the tool's own HTTP calls). The spans and the
    calls of ours under such a span carry the caller's job on; nothing changes outside it."""
    from opentelemetry import propagate

    with agent_otel.job("job-42", type="caller"):
        carrier: dict[str, str] = {}
        agent_otel.inject(carrier)
    server = otel.tracer_provider.get_tracer("mcp-python-sdk")
    library = otel.tracer_provider.get_tracer("opentelemetry.instrumentation.httpx")

    @agent_otel.tool("greet")
    def greet() -> str | None:
        with library.start_as_current_span("GET /profile"):
            pass
        return agent_otel.current_job_id()

    with server.start_as_current_span("tools/call greet", context=propagate.extract(carrier)):
        in_tool = greet()
        with library.start_as_current_span("GET /audit"):
            pass
    with library.start_as_current_span("GET /after"):
        pass
    assert in_tool == "job-42"
    ids = {span.name: (span.attributes or {}).get(semconv.JOB_ID) for span in otel.spans()}
    assert ids == {"invoke_workflow caller": ids["invoke_workflow caller"], "tools/call greet": "job-42",
                   "execute_tool greet": "job-42", "GET /profile": "job-42", "GET /audit": "job-42",
                   "GET /after": None}


def test_attached_under_a_server_instrumentations_span_runs_the_job_under_that_span(otel: Any) -> None:
    """A WSGI app under OpenTelemetry's WSGI middleware (Flask's and Django's instrumentations are built on it), which
    starts the server span from the request's headers: ``attached(headers)`` there made the caller's context current
    in place of the server span's, and the job and its calls ran beside the server span, as other children of the
    caller's span. They run under it, with the caller's job."""
    import wsgiref.util

    from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware

    with agent_otel.job("caller-job", type="caller"):
        carrier: dict[str, str] = {}
        agent_otel.inject(carrier)
        caller = trace.get_current_span().get_span_context()
    seen: list[str | None] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        headers = {"traceparent": environ["HTTP_TRACEPARENT"], "baggage": environ["HTTP_BAGGAGE"]}
        with agent_otel.attached(headers):
            seen.append(agent_otel.current_job_id())
            with agent_otel.job(type="request"):
                pass
        start_response("200 OK", [])
        return [b"ok"]

    environ: dict[str, Any] = {"HTTP_TRACEPARENT": carrier["traceparent"], "HTTP_BAGGAGE": carrier["baggage"]}
    wsgiref.util.setup_testing_defaults(environ)
    assert list(OpenTelemetryMiddleware(app, tracer_provider=otel.tracer_provider)(environ, lambda *_: None)) == [b"ok"]
    [server] = [span for span in otel.spans() if span.kind is trace.SpanKind.SERVER]
    [request_job] = otel.spans("invoke_workflow request")
    assert server.parent is not None and server.parent.span_id == caller.span_id
    assert request_job.parent is not None and request_job.parent.span_id == server.context.span_id
    assert request_job.context.trace_id == caller.trace_id
    assert seen == ["caller-job"]


@pytest.mark.parametrize("server", ["started in the extracted context", "started in it made current",
                                    "inherited by a fork"])
def test_attached_under_a_framework_span_below_the_server_span_runs_under_it(otel: Any, monkeypatch: pytest.MonkeyPatch,
                                                                             server: str) -> None:
    """A framework's span between the server instrumentation's span and the handler (A2A's request handler, a
    router's): ``attached(headers)`` there ran the block beside the server span, as another child of the remote
    caller's span (probe p50c). It runs under the framework's span, in the server span's trace, whether the server span
    was given the extracted context or started in it made current (review rv64). A span started before this process
    was forked (a worker's inherited one) continues nothing: the block runs under the caller's span."""
    from opentelemetry import context as otel_context
    from opentelemetry import propagate

    from agent_otel._context import propagation

    inherited_by_fork = server == "inherited by a fork"
    with agent_otel.job("caller-job", type="caller"):
        carrier: dict[str, str] = {}
        agent_otel.inject(carrier)
        caller = trace.get_current_span().get_span_context()
    tracer = otel.tracer_provider.get_tracer("a.server")
    made_current = server == "started in it made current"
    token = otel_context.attach(propagate.extract(carrier)) if made_current else None
    with (tracer.start_as_current_span("POST /", context=None if made_current else propagate.extract(carrier),
                                       kind=trace.SpanKind.SERVER),
          tracer.start_as_current_span("dispatch") as framework):
        if inherited_by_fork:
            monkeypatch.setattr(propagation, "_forked_at_ns", framework.start_time + 1)
        with agent_otel.attached(carrier):
            seen = agent_otel.current_job_id()
            with agent_otel.job(type="request"):
                pass
    if token is not None:
        otel_context.detach(token)
    [request_job] = otel.spans("invoke_workflow request")
    expected_parent = caller.span_id if inherited_by_fork else framework.get_span_context().span_id
    assert request_job.parent is not None and request_job.parent.span_id == expected_parent
    assert request_job.context.trace_id == caller.trace_id
    assert seen == "caller-job"


def test_attached_to_a_carrier_of_a_span_below_runs_under_that_span(otel: Any) -> None:
    """A carrier handed between two steps of one request (an in-process queue): its span is one of this process below
    the current one, which does not continue it; the block runs under the carrier's span, as an ``attached()`` with no
    span around it does (review rv63: it ran under the handler's span, above the carrier's). Its span, extracted, is a
    remote parent like a caller's: another library's span started directly in a first block (an HTTP client's)
    continued it, and a second ``attached()`` of it ran under the handler's span (review rv66). A carrier is continued
    only while its continuation runs, and not above it."""
    from opentelemetry import propagate

    with agent_otel.job("caller-job", type="caller"):
        incoming: dict[str, str] = {}
        agent_otel.inject(incoming)
    server = otel.tracer_provider.get_tracer("a.server")
    client = otel.tracer_provider.get_tracer("an.http.client")
    with (server.start_as_current_span("POST /", context=propagate.extract(incoming), kind=trace.SpanKind.SERVER),
          server.start_as_current_span("handler")):
        with server.start_as_current_span("produce") as produce:
            handed: dict[str, str] = {}
            agent_otel.inject(handed)
        for step in ("consume-1", "consume-2"):
            with agent_otel.attached(handed):
                if step == "consume-1":
                    with client.start_as_current_span("GET /backend", kind=trace.SpanKind.CLIENT):
                        pass
                with agent_otel.job(type=step):
                    pass
    for step in ("consume-1", "consume-2"):
        [consumed] = otel.spans(f"invoke_workflow {step}")
        assert consumed.parent is not None and consumed.parent.span_id == produce.get_span_context().span_id, step


@pytest.mark.parametrize("second", ["started later", "ended"])
def test_attached_in_one_of_two_requests_of_one_caller_runs_under_its_framework_span(otel: Any, second: str) -> None:
    """A caller that injected its context once and sent two requests (or retried one still running): the second
    request's server span took the first's place as the caller's continuation, and the first request's ``attached()``
    below its framework span ran beside its server span, as another child of the caller's (review rv67)."""
    from opentelemetry import propagate

    with agent_otel.job("caller-job", type="caller"):
        carrier: dict[str, str] = {}
        agent_otel.inject(carrier)
    server = otel.tracer_provider.get_tracer("a.server")
    first = server.start_span("POST /a", context=propagate.extract(carrier), kind=trace.SpanKind.SERVER)
    if second == "ended":  # the other request came and went before the first's framework span started
        other = server.start_span("POST /b", context=propagate.extract(carrier), kind=trace.SpanKind.SERVER)
        other.end()
    dispatch = server.start_span("dispatch", context=trace.set_span_in_context(first))
    if second == "started later":  # and still runs as the first's handler attaches the headers
        other = server.start_span("POST /b", context=propagate.extract(carrier), kind=trace.SpanKind.SERVER)
    with trace.use_span(dispatch, end_on_exit=True), agent_otel.attached(carrier), agent_otel.job(type="handler"):
        pass
    first.end()
    other.end()
    [handler] = otel.spans("invoke_workflow handler")
    assert handler.parent is not None and handler.parent.span_id == dispatch.get_span_context().span_id


def test_attached_below_a_framework_span_in_a_job_continuing_the_caller_runs_under_it(otel: Any) -> None:
    """No server instrumentation: the handler's own job continues the remote caller, and a library it calls, given
    the same headers, attaches them below a framework span in that job. Spans of agent-otel's were not noted as
    continuing a caller, so that block ran beside the job, as another child of the caller's span (review rv66)."""
    headers = {"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"}
    framework = otel.tracer_provider.get_tracer("a.framework")
    with (agent_otel.attached(headers), agent_otel.job(type="outer"),
          framework.start_as_current_span("step") as step, agent_otel.attached(headers), agent_otel.job(type="inner")):
        pass
    [outer] = otel.spans("invoke_workflow outer")
    [inner] = otel.spans("invoke_workflow inner")
    assert outer.parent is not None and outer.parent.span_id == int("b" * 16, 16)
    assert inner.parent is not None and inner.parent.span_id == step.get_span_context().span_id


def test_attached_under_a_span_continuing_the_caller_takes_only_that_span_from_the_servers_context(otel: Any) -> None:
    """The span kept under ``attached()`` is all it keeps of the server's context: the server's own job, its local
    baggage and a suppression of instrumentation stay outside the block, as without such a span."""
    from opentelemetry import baggage, propagate
    from opentelemetry import context as otel_context
    from opentelemetry.instrumentation.utils import is_instrumentation_enabled, suppress_instrumentation

    with agent_otel.job("caller-job", type="caller"):
        carrier: dict[str, str] = {}
        agent_otel.inject(carrier)
    server = otel.tracer_provider.get_tracer("a.server")
    token = otel_context.attach(baggage.set_baggage("tenant", "server-local"))
    try:
        with agent_otel.job("server-job", type="server"), suppress_instrumentation(), \
                server.start_as_current_span("GET /work", context=propagate.extract(carrier)) as handler, \
                agent_otel.attached(carrier):
            seen = (agent_otel.current_job_id(), baggage.get_baggage("tenant"), is_instrumentation_enabled(),
                    trace.get_current_span() is handler)
    finally:
        otel_context.detach(token)
    assert seen == ("caller-job", None, True, True)


def test_attached_takes_nothing_of_the_servers_context_whatever_the_propagators_order(otel: Any) -> None:
    """With the baggage propagator first (``OTEL_PROPAGATORS=baggage,tracecontext``), extracting onto no context began
    from the current one: the server's own job and baggage came through."""
    from opentelemetry import baggage, propagate
    from opentelemetry import context as otel_context
    from opentelemetry.baggage.propagation import W3CBaggagePropagator
    from opentelemetry.propagators.composite import CompositePropagator
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    with agent_otel.job("caller-job", type="caller"):
        carrier: dict[str, str] = {}
        agent_otel.inject(carrier)
    before = propagate.get_global_textmap()
    propagate.set_global_textmap(CompositePropagator([W3CBaggagePropagator(), TraceContextTextMapPropagator()]))
    token = otel_context.attach(baggage.set_baggage("tenant", "server-local"))
    try:
        with agent_otel.job("server-job", type="server"), agent_otel.attached(carrier):
            seen = (agent_otel.current_job_id(), baggage.get_baggage("tenant"))
    finally:
        otel_context.detach(token)
        propagate.set_global_textmap(before)
    assert seen == ("caller-job", None)


def test_attached_to_a_baggage_alone_or_to_no_trace_after_all(otel: Any) -> None:
    """A baggage alone brings a job and no trace: the block starts a trace of its own, not one under whatever span
    it runs in (a queue consumer's polling loop). A ``tracestate`` alone, or a ``traceparent`` that is no trace,
    brings nothing: the block stays in its job and span, as with neither header (it kept the span and lost the
    job)."""
    server = otel.tracer_provider.get_tracer("a.consumer")
    with server.start_as_current_span("poll") as poll:
        with agent_otel.attached({"baggage": "job.id=message-job"}):
            alone = (agent_otel.current_job_id(), trace.get_current_span().get_span_context().is_valid)
        with agent_otel.job("consumer-job", type="consumer"):
            for carrier in ({"tracestate": "vendor=1"}, {"traceparent": "00-" + "0" * 32 + "-" + "0" * 16 + "-01"}):
                with agent_otel.attached(carrier):
                    assert agent_otel.current_job_id() == "consumer-job"
                    assert trace.get_current_span() is not poll  # the job's own span
                    assert trace.get_current_span().get_span_context().is_valid
    assert alone == ("message-job", False)


def test_a_server_started_in_its_parents_job_passes_each_requests_job_on(otel: Any,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """MCP probe: a stdio server started inside a job (``BAGGAGE`` in its environment, which ``configure()`` attaches)
    kept that job for every request: its own baggage won over the job each request carried, so the tool's span and
    ``current_job_id()`` named the parent's job while MCP's request span named the caller's. The baggage the process
    started in is older than any request; baggage the program sets itself still wins (see the next test)."""
    from opentelemetry import context as otel_context
    from opentelemetry import propagate

    from agent_otel._context import stamping

    started_in = propagate.extract({"baggage": f"{semconv.BAGGAGE_JOB_ID}=job-outer"})  # what configure() attaches
    monkeypatch.setattr(stamping, "startup_baggage", started_in.get(BAGGAGE_KEY))
    server = otel.tracer_provider.get_tracer("mcp-python-sdk")
    library = otel.tracer_provider.get_tracer("opentelemetry.instrumentation.httpx")

    @agent_otel.tool("which_job")
    def which_job() -> str | None:
        return agent_otel.current_job_id()

    seen = []
    token = otel_context.attach(started_in)
    try:
        for job_id in ("job-A", "job-B"):
            with agent_otel.job(job_id, type="task"):
                carrier: dict[str, str] = {}
                agent_otel.inject(carrier)
            with server.start_as_current_span(f"tools/call {job_id}", context=propagate.extract(carrier)), (
                    agent_otel.conversation("c-1") if job_id == "job-B" else contextlib.nullcontext()):
                # (baggage the program sets since, a conversation: the request's job stays beside it)
                seen.append(which_job())
                with library.start_as_current_span(f"GET {job_id}"):
                    pass
        with library.start_as_current_span("GET outside"):  # no request: the job it started in
            pass
    finally:
        otel_context.detach(token)
    assert seen == ["job-A", "job-B"]
    ids = [(span.name, (span.attributes or {}).get(semconv.JOB_ID)) for span in otel.spans()
           if not span.name.startswith("invoke_workflow")]  # in the order they ended
    assert ids == [("execute_tool which_job", "job-A"), ("GET job-A", "job-A"), ("tools/call job-A", "job-A"),
                   ("execute_tool which_job", "job-B"), ("GET job-B", "job-B"), ("tools/call job-B", "job-B"),
                   ("GET outside", "job-outer")]


def test_a_request_carrying_a_job_alone_keeps_the_conversation_the_server_started_in(
        otel: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Review: every member the process started with was dropped from under a request, not only those the request
    replaces: a server started in a conversation lost it on its tool spans (not on other libraries' spans)."""
    from opentelemetry import context as otel_context
    from opentelemetry import propagate

    from agent_otel._context import stamping

    started_in = propagate.extract(
        {"baggage": f"{semconv.BAGGAGE_JOB_ID}=job-outer,{semconv.BAGGAGE_CONVERSATION_ID}=conv-outer"})
    monkeypatch.setattr(stamping, "startup_baggage", started_in.get(BAGGAGE_KEY))
    server = otel.tracer_provider.get_tracer("mcp-python-sdk")
    library = otel.tracer_provider.get_tracer("opentelemetry.instrumentation.httpx")

    @agent_otel.tool("greet")
    def greet() -> None:
        with library.start_as_current_span("GET inside"):
            pass

    carrier = {"baggage": f"{semconv.BAGGAGE_JOB_ID}=job-A"}  # another process's job, in no conversation
    token = otel_context.attach(started_in)
    try:
        with server.start_as_current_span("tools/call greet", context=propagate.extract(carrier)):
            greet()
    finally:
        otel_context.detach(token)
    ids = {span.name: ((span.attributes or {}).get(semconv.JOB_ID),
                       (span.attributes or {}).get(semconv.GEN_AI_CONVERSATION_ID)) for span in otel.spans()}
    assert ids["execute_tool greet"] == ids["GET inside"] == ("job-A", "conv-outer")


def test_configure_keeps_the_baggage_the_process_started_in() -> None:
    """What the test above takes as the process's start-up baggage is what ``configure()`` attached from the
    environment."""
    code = ("import agent_otel; agent_otel.configure(metrics_exporter='none', traces_exporter='none'); "
            "from opentelemetry import context; from agent_otel._context import stamping; "
            "from agent_otel._context.job import BAGGAGE_KEY; "
            "print(stamping.startup_baggage is context.get_current().get(BAGGAGE_KEY), agent_otel.current_job_id())")
    child = subprocess.run([sys.executable, "-c", code], env={**CLEAN_ENV, "BAGGAGE": "job.id=job-outer"},
                           capture_output=True, text=True, timeout=60)
    assert (child.returncode, child.stdout, child.stderr) == (0, "True job-outer\n", "")


def test_what_a_request_span_carries_on_is_its_callers_job_and_conversation_beside_the_programs_baggage(
        otel: Any) -> None:
    """Review of the carried job: only agent-otel's own baggage members are carried on (the caller's other members,
    ``tenant`` here, were forwarded by every request our calls made); the program's own baggage, or a conversation of
    its own, keeps the caller's job beside it (it was dropped); a baggage the program cleared stays clear; a request
    whose baggage names no job or conversation carries nothing."""
    from opentelemetry import baggage, propagate
    from opentelemetry import context as otel_context

    from agent_otel._context.stamping import CARRIED

    with agent_otel.job("job-42", type="caller"):
        carrier: dict[str, str] = {}
        agent_otel.inject(carrier)
    carrier["baggage"] += ",tenant=acme"
    server = otel.tracer_provider.get_tracer("mcp-python-sdk")
    library = otel.tracer_provider.get_tracer("opentelemetry.instrumentation.httpx")
    seen: dict[str, object] = {}

    @agent_otel.tool("greet")
    def greet(label: str) -> None:
        sent: dict[str, str] = {}
        propagate.inject(sent)
        seen[label] = (agent_otel.current_job_id(), agent_otel.current_conversation_id(),
                       sorted(member.split("=")[0] for member in sent.get("baggage", "").split(",") if member))

    with server.start_as_current_span("tools/call greet", context=propagate.extract(carrier)):
        greet("plain")
        token = otel_context.attach(baggage.set_baggage("own", "1"))
        try:
            greet("program's baggage")
            with library.start_as_current_span("GET /own"):
                pass
        finally:
            otel_context.detach(token)
        with agent_otel.conversation("c-2"):
            greet("conversation")
        token = otel_context.attach(baggage.clear())
        try:
            with library.start_as_current_span("GET /cleared"):
                pass
        finally:
            otel_context.detach(token)
    no_job = propagate.extract({"baggage": "user=alice"})
    with server.start_as_current_span("tools/call other", context=no_job) as other:
        pass
    assert seen == {"plain": ("job-42", None, ["job.id", "job.type"]),
                    "program's baggage": ("job-42", None, ["job.id", "job.type", "own"]),
                    "conversation": ("job-42", "c-2", ["gen_ai.conversation.id", "job.id", "job.type"])}
    ids = {span.name: (span.attributes or {}).get(semconv.JOB_ID) for span in otel.spans()}
    assert (ids["GET /own"], ids["GET /cleared"]) == ("job-42", None)
    assert getattr(other, CARRIED, None) is None


def test_under_a_request_span_a_local_job_keeps_the_callers_conversation_and_explicit_contexts_get_the_job(
        otel: Any) -> None:
    """Review 3: a job of this process opened under a request span that carries its caller's ids dropped the caller's
    conversation (it keeps it under ``attached(headers)``); a span started with ``context=`` the current one, with
    baggage of the program's own, got no job where one started without it did."""
    from opentelemetry import baggage, propagate
    from opentelemetry import context as otel_context

    with agent_otel.conversation("conv-caller"), agent_otel.job("job-42", type="caller"):
        carrier: dict[str, str] = {}
        agent_otel.inject(carrier)
    server = otel.tracer_provider.get_tracer("mcp-python-sdk")
    library = otel.tracer_provider.get_tracer("opentelemetry.instrumentation.httpx")
    with server.start_as_current_span("tools/call greet", context=propagate.extract(carrier)):
        with agent_otel.job("local-job", type="local"):
            in_job = (agent_otel.current_job_id(), agent_otel.current_conversation_id())
        token = otel_context.attach(baggage.set_baggage("own", "1"))
        try:
            with library.start_as_current_span("GET /explicit", context=otel_context.get_current()):
                pass
        finally:
            otel_context.detach(token)
    assert in_job == ("local-job", "conv-caller")
    attributes = {span.name: span.attributes or {} for span in otel.spans()}
    assert attributes["invoke_workflow local"][semconv.GEN_AI_CONVERSATION_ID] == "conv-caller"
    assert attributes["GET /explicit"][semconv.JOB_ID] == "job-42"


def test_a_baggage_header_sent_twice_is_one_list() -> None:
    """A proxy that adds its own ``baggage`` line: HTTP reads two lines of a header as one list. By name alone the
    last line hid the first, and the caller's job id in it; plain OpenTelemetry's extract kept the first."""
    headers = email.message.Message()  # what http.server hands a handler
    headers["Baggage"] = f"{semconv.BAGGAGE_JOB_ID}=J1"
    headers["baggage"] = "tenant=acme"
    context = agent_otel.extract(headers)  # type: ignore[arg-type]
    assert agent_otel.current_job_id(context) == "J1"


class _Echo(QuietHandler):
    """Answers with the baggage header it got."""

    def do_GET(self) -> None:
        self.send_body(200, (self.headers.get("baggage") or "").encode(), "text/plain")


@pytest.fixture
def echo() -> Iterator[str]:
    server = LoopbackServer(_Echo)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def test_the_http_client_patch_adds_the_jobs_baggage_to_the_programs_own(otel: Any, echo: str) -> None:
    """``http_headers``: a request whose program sets a ``baggage`` header of its own carried no job id (its header
    was left as it was); the job's members join it, in place of any the header has (a header reused from an earlier
    job's request holds that job's)."""
    instrument_http_headers()
    try:
        own = {"baggage": f"tenant=acme,{semconv.BAGGAGE_JOB_ID}=own"}
        with agent_otel.job("J1", type="batch"):
            sent = [urllib.request.urlopen(urllib.request.Request(echo, headers=headers), timeout=10).read().decode()
                    for headers in ({"Baggage": "tenant=acme"}, own, {}, {"baggage": b"tenant=acme"})]
    finally:
        uninstrument_http_headers()
    assert sent[0] == f"tenant=acme,{semconv.BAGGAGE_JOB_ID}=J1,{semconv.BAGGAGE_JOB_TYPE}=batch"
    assert sent[1] == f"tenant=acme,{semconv.BAGGAGE_JOB_ID}=J1,{semconv.BAGGAGE_JOB_TYPE}=batch"
    assert sent[2] == f"{semconv.BAGGAGE_JOB_ID}=J1,{semconv.BAGGAGE_JOB_TYPE}=batch"
    assert sent[3] == "tenant=acme"  # a value given as bytes is the program's as it is (str() of it was b'...')


class _EchoTraceHeaders(QuietHandler):
    """Answers with every line of ``traceparent`` and ``baggage`` it got."""

    def do_GET(self) -> None:
        lines = [f"{name}: {value}" for name in ("traceparent", "baggage")
                 for value in self.headers.get_all(name) or ()]
        self.send_body(200, "\n".join(lines).encode(), "text/plain")


def test_the_http_client_patch_keeps_headers_the_program_names_in_bytes(otel: Any) -> None:
    """``http.client`` takes header names as bytes: the program's own ``b"traceparent"`` went out with a second
    ``traceparent`` of ours (two, which W3C treats as invalid), and its ``b"baggage"`` beside a second ``baggage``."""
    import http.client

    server = LoopbackServer(_EchoTraceHeaders)
    server.start()
    instrument_http_headers()
    try:
        with agent_otel.job("J1", type="batch"):
            connection = http.client.HTTPConnection("127.0.0.1", int(server.url.rsplit(":", 1)[1]),
                                                    timeout=10)
            connection.request("GET", "/", headers={b"traceparent": PROGRAMS_TRACEPARENT, b"baggage": "tenant=acme"})
            received = connection.getresponse().read().decode().splitlines()
            connection.close()
    finally:
        uninstrument_http_headers()
        server.stop()
    assert received == [f"traceparent: {PROGRAMS_TRACEPARENT}",
                        f"baggage: tenant=acme,{semconv.BAGGAGE_JOB_ID}=J1,{semconv.BAGGAGE_JOB_TYPE}=batch"]


PROGRAMS_TRACEPARENT = "00-11111111111111111111111111111111-2222222222222222-01"


def test_the_http_instrumentations_keep_the_programs_own_baggage_header(otel: Any, echo: str) -> None:
    """OpenTelemetry's requests and httpx instrumentations inject into the request's own headers, and its baggage
    propagator *sets* ``baggage``: inside a job, the program's own header (``tenant=acme``) was replaced by the
    job's entries, where without agent-otel (nothing in baggage, nothing written) it went out as the program set it.
    It is kept, with the job's entries set in it (a carrier reused from an earlier job held that job's, and sent them
    for the next one); with an entry of the program's in baggage, the propagator replaces it as it always did."""
    import httpx
    import requests
    from opentelemetry import baggage
    from opentelemetry import context as otel_context
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.requests import RequestsInstrumentor

    def send(headers: dict[str, str]) -> list[str]:
        return [requests.get(echo, headers=headers, timeout=10).text, httpx.get(echo, headers=headers).text,
                agent_otel.inject(dict(headers))[next(iter(headers))]]

    instrumentors = (RequestsInstrumentor(), HTTPXClientInstrumentor())
    for instrumentor in instrumentors:
        instrumentor.instrument()
    try:
        with agent_otel.job("J1", type="batch"):
            kept = send({"baggage": "tenant=acme"})
            spelled = send({"Baggage": "tenant=acme"})
            earlier = send({"baggage": f"tenant=acme,{semconv.BAGGAGE_JOB_ID}=J0"})  # a header reused from job J0
            reused = {"baggage": "tenant=acme"}
            agent_otel.inject(reused)
            token = otel_context.attach(baggage.set_baggage("region", "eu"))
            try:
                replaced = send({"baggage": "tenant=acme"})
            finally:
                otel_context.detach(token)
        with agent_otel.job("J2", type="batch"):
            again = agent_otel.inject(reused)["baggage"]  # the same carrier, in the next job
            too_long = agent_otel.inject({"baggage": "tenant=" + "a" * 8170})["baggage"]
        outside = send({"baggage": "tenant=acme"})
    finally:
        for instrumentor in instrumentors:
            instrumentor.uninstrument()
    jobs = f"{semconv.BAGGAGE_JOB_ID}=J1,{semconv.BAGGAGE_JOB_TYPE}=batch"
    assert kept == spelled == [f"tenant=acme,{jobs}"] * 3
    assert earlier == [f"tenant=acme,{jobs}"] * 3
    assert again == f"tenant=acme,{semconv.BAGGAGE_JOB_ID}=J2,{semconv.BAGGAGE_JOB_TYPE}=batch"
    assert too_long == "tenant=" + "a" * 8170  # over W3C's 8,192 bytes with the job's: the program's, as it was,
    assert error_count(otel, "propagation.baggage") == 1  # and the ids that could not travel counted
    assert replaced == [f"{jobs},region=eu"] * 3  # what the propagator writes without agent-otel: its entries
    assert outside == ["tenant=acme"] * 3


def test_a_job_id_too_long_for_baggage_stays_in_its_process_counted_and_quiet(otel: Any) -> None:
    """A 4,100-character id: the propagators dropped it from every header and child environment with a warning on
    the program's stderr (Python's last-resort handler), and nothing counted it. It stays on this process's spans
    now, and an enclosing job's id does not travel in its place."""
    code = ("import logging, os, agent_otel\n"
            "with agent_otel.job('outer'), agent_otel.job('x' * 4100) as job:\n"
            "    print(job.id == 'x' * 4100, agent_otel.inject({}).get('baggage'), "
            "agent_otel.subprocess_env().get('BAGGAGE'))\n")
    child = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=CLEAN_ENV, capture_output=True, text=True,
                           timeout=120)
    assert (child.returncode, child.stderr) == (0, "")
    job_type_only = f"{semconv.BAGGAGE_JOB_TYPE}=default"
    assert child.stdout.split() == ["True", job_type_only, job_type_only]
    with agent_otel.job("y" * 4100):
        pass
    assert otel.span(semconv.job_span_name("default")).attributes[semconv.JOB_ID] == "y" * 4100
    assert error_count(otel, semconv.JOB_ID) == 1


def test_ids_are_the_same_in_every_process_and_an_empty_job_id_gets_a_fresh_one(otel: Any) -> None:
    """W3C baggage drops the spaces around a value: a child read ' job-7 ' as 'job-7', and its spans carried another
    id than the parent's. Ids are stripped where they are given. An empty job id ('': an extractor that read
    nothing) went into the span and baggage as it was; it is a fresh id, and the miss is counted."""
    with agent_otel.job(" job-7 ") as job, agent_otel.conversation(" chat-7 "):
        sent = agent_otel.inject({})
        here = (job.id, agent_otel.current_conversation_id())
    with agent_otel.attached(sent):
        there = (agent_otel.current_job_id(), agent_otel.current_conversation_id())
    assert here == there == ("job-7", "chat-7")
    with agent_otel.job("") as empty:
        assert len(empty.id) == 32
    assert error_count(otel, semconv.JOB_ID) == 1


def test_a_job_type_too_long_for_a_label_is_other_in_its_process_and_in_baggage_counted_and_quiet(otel: Any) -> None:
    """A job's type went into baggage unchecked: a warning on the program's stderr at every header and child
    environment, and nothing counted. Longer than a label may be (256 characters), it is ``_OTHER`` everywhere,
    the span's name and the baggage alike, counted at ``cardinality.job.type``."""
    code = ("import agent_otel\n"
            "with agent_otel.job('j1', type='t' * 4100):\n"
            "    print(agent_otel.inject({}).get('baggage'), agent_otel.subprocess_env().get('BAGGAGE'))\n")
    child = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=CLEAN_ENV, capture_output=True, text=True,
                           timeout=120)
    assert (child.returncode, child.stderr) == (0, "")
    assert child.stdout.split() == [f"{semconv.BAGGAGE_JOB_ID}=j1,{semconv.BAGGAGE_JOB_TYPE}=_OTHER"] * 2
    with agent_otel.job("j2", type="u" * 4100):
        pass
    assert otel.span(semconv.job_span_name("_OTHER")).attributes[semconv.JOB_TYPE] == "_OTHER"
    assert error_count(otel, "cardinality." + semconv.JOB_TYPE) == 1


def test_a_conversation_id_too_long_for_baggage_stamps_its_process_and_is_counted(otel: Any) -> None:
    with agent_otel.conversation("c" * 4100), agent_otel.tool_call("t"):
        pass
    assert otel.span(semconv.tool_span_name("t")).attributes[semconv.GEN_AI_CONVERSATION_ID] == "c" * 4100
    assert error_count(otel, semconv.GEN_AI_CONVERSATION_ID) == 1
    with agent_otel.conversation("\U0001f600" * 340):  # 340 characters, 4,080 percent-encoded: over with its key
        pass
    assert error_count(otel, semconv.GEN_AI_CONVERSATION_ID) == 2


def test_a_child_forked_while_a_caller_was_being_noted_notes_its_own() -> None:
    """The callers continued here are noted by threads serving requests while the program forks: under a lock, a child
    forked while another thread held it hung at its first span with a remote parent (review rv65; 21 of 40 children).
    Noted without one now: every child notes its own, and exits."""
    code = """
import os, sys, threading, time
from opentelemetry import propagate
from opentelemetry.sdk.trace import TracerProvider
from agent_otel._context import continued

tracer = TracerProvider().get_tracer("a.server")


def served(n):
    caller = {"traceparent": f"00-{n + 1:032x}-{n + 1:016x}-01"}
    return tracer.start_span("POST /", context=propagate.extract(caller))


stop = threading.Event()


def serve():
    n = 0
    while not stop.is_set():
        continued.note_continued(served(n))
        n += 1


threads = [threading.Thread(target=serve) for _ in range(4)]
for thread in threads:
    thread.start()
sys.setswitchinterval(1e-6)
outcomes = set()
for _ in range(20):
    span = served(10**9)
    pid = os.fork()
    if pid == 0:
        continued.note_continued(span)
        os._exit(0 if continued.continued_here(span.parent, span.start_time) else 3)
    deadline, reaped, status = time.monotonic() + 30, 0, 0
    while not reaped and time.monotonic() < deadline:
        reaped, status = os.waitpid(pid, os.WNOHANG)
        time.sleep(0.01)
    if not reaped:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    outcomes.add(os.waitstatus_to_exitcode(status) if reaped else "stuck")
stop.set()
for thread in threads:
    thread.join()
print(*sorted(outcomes, key=str))
"""
    child = subprocess.run([sys.executable, "-c", code], env=CLEAN_ENV, cwd=ROOT, capture_output=True, text=True,
                           timeout=300)
    assert (child.stdout, stderr_but_fork_warnings(child)) == ("0\n", "")
