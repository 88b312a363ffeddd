"""Our direct /metrics renderer and server: byte for byte what prometheus_client makes of our collector.

The renderer exists for speed only (see the module docstring of agent_otel._sdk.prometheus); these tests
keep it from ever writing anything prometheus_client would not."""

from __future__ import annotations

import gzip
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any
from unittest.mock import patch
from wsgiref.simple_server import make_server

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry, generate_latest, make_wsgi_app
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from agent_otel._sdk.configure import histogram_views
from agent_otel._sdk.prometheus import (
    AgentOtelPrometheusReader,
    ScrapeFailed,
    metrics_app,
    metrics_registry,
    serve_metrics,
)
from tests.support.every_kind import record_everything

OPENMETRICS = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
PROMETHEUS_3 = ("application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
                "application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,"
                "text/plain;version=0.0.4;q=0.3,*/*;q=0.2")


@pytest.fixture
def reader() -> Iterator[tuple[AgentOtelPrometheusReader, CollectorRegistry]]:
    """Every contract instrument plus awkward names, units, label values, bounds and values."""
    registry, reader = metrics_registry(), AgentOtelPrometheusReader()
    registry.register(reader.collector)
    resource = Resource.create({"service.name": 'we"ird\\ \n name', "deployment.count": 3})
    provider = MeterProvider(metric_readers=[reader], views=histogram_views(), resource=resource)
    record_everything(provider, TracerProvider())
    meter = provider.get_meter("other.scope", "1.2")
    counter = meter.create_counter("x.y", unit="By", description='doc "quoted" \\ and \n newline')
    counter.add(1.5, {"a": 'v"\\\n', "le": "an attribute named le", "z": 1, "flag": True, "seq": ("a", "b")})
    counter.add(1, {"a_b": "second", "a.b": "first", "a-b": 3})  # three keys, one label name
    updown = meter.create_up_down_counter("queue.depth")
    updown.add(-0.0, {"a": "b"})
    updown.add(3, {"a": "c"})
    updown.add(10**7, {"a": "large int"})
    gauge = meter.create_gauge("odd.values")
    for i, value in enumerate((1234567.0, 12345678.5, 1e22, 1.5e-7, -1e7, -0.0)):
        gauge.set(value, {"i": i})
    histogram = meter.create_histogram("odd.bounds", explicit_bucket_boundaries_advisory=[1, 2.5, 1e7])
    histogram.record(3, {"m": "n"})
    histogram.record(1e8)
    with TracerProvider().get_tracer("t").start_as_current_span("s"):
        histogram.record(2, {"m": "n"})
        counter.add(2, {"a": "exemplar"})
    # The SDK hands out each exemplar once: every rendering in a test reads this one collection.
    data = reader.scrape()
    reader.scrape = lambda: data  # type: ignore[method-assign]
    yield reader, registry
    provider.shutdown()


def test_render_is_byte_identical_to_prometheus_client(reader: Any) -> None:
    ours, registry = reader
    for _ in range(2):  # the second scrape reuses the cached label strings
        assert ours.render() == generate_latest(registry)
        assert ours.render(openmetrics=True) == generate_openmetrics(registry)
    assert ours.render(openmetrics=True).count(b'# {span_id="') >= 3



def test_keys_that_share_a_label_name_join_their_values_in_the_order_of_the_keys(reader: Any) -> None:
    """The OpenTelemetry spec's Prometheus mapping: values joined with ``;``, ordered by the original keys
    (``a-b`` < ``a.b`` < ``a_b``). Before, the last key's value alone was kept."""
    ours, _ = reader
    assert b'x_y_bytes_total{a_b="3;first;second",otel_scope_name="other.scope"' in ours.render()

def test_render_of_an_empty_reader() -> None:
    registry, reader = metrics_registry(), AgentOtelPrometheusReader()
    registry.register(reader.collector)
    MeterProvider(metric_readers=[reader], resource=Resource.get_empty())
    assert reader.render() == generate_latest(registry) == b""
    assert reader.render(openmetrics=True) == generate_openmetrics(registry) == b"# EOF\n"


def test_a_scrape_whose_collection_fails_is_a_500_not_an_empty_exposition(capfd: Any) -> None:
    """The collection failed (in the probe, under a program's low recursion limit): /metrics answered 200 with an
    empty body, which Prometheus reads as a target whose every series has gone, ``up`` staying 1, so the target-down
    alert never fired. It is a 500 in every format, with one line saying where the failure is counted, and nothing on
    the program's output. (The failure is made by replacing the reader's collection with one that raises: nothing
    makes the SDK's fail on demand.)"""
    registry, failing = metrics_registry(), AgentOtelPrometheusReader()
    registry.register(failing.collector)
    MeterProvider(metric_readers=[failing])

    def collect(timeout_millis: float = 10_000) -> None:
        raise RuntimeError("the collection failed")

    failing.collect = collect  # type: ignore[method-assign]
    with pytest.raises(ScrapeFailed):
        failing.render()
    app = metrics_app(failing, registry)
    for request_args in ({}, {"accept": OPENMETRICS}, {"accept": PROMETHEUS_3}, {"query": "name[]=queue_depth"},
                         {"encoding": "gzip"}):
        status, headers, body = call(app, **request_args)
        assert (status, body) == ("500 Internal Server Error", b"agent-otel: collecting the metrics failed (counted on "
                                  b"agent_otel_instrumentation_errors_total, logged on the agent_otel logger)\n")
        assert dict(headers)["Content-Type"] == "text/plain; charset=utf-8"
    assert capfd.readouterr() == ("", "")


def call(app: Any, method: str = "GET", accept: str | None = None, encoding: str | None = None,
         query: str = "", path: str = "/metrics") -> tuple[str, list, bytes]:
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query}
    if accept is not None:
        environ["HTTP_ACCEPT"] = accept
    if encoding is not None:
        environ["HTTP_ACCEPT_ENCODING"] = encoding
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list) -> None:
        answer.update(status=status, headers=headers)

    body = b"".join(app(environ, start_response))
    return answer["status"], answer["headers"], body


@pytest.mark.parametrize(("request_args", "rendered"), [
    ({}, True),
    ({"accept": OPENMETRICS}, True),
    ({"accept": "application/openmetrics-text"}, True),
    ({"accept": "application/openmetrics-text;version=1.0.0;escaping=underscores"}, True),
    ({"accept": "text/plain;version=1.0.0"}, True),
    ({"accept": "text/plain;version=1.0.0;escaping=underscores"}, True),
    ({"accept": OPENMETRICS, "encoding": "gzip"}, True),
    # the rest is prometheus_client's app
    ({"accept": "application/openmetrics-text;version=1.0.0;escaping=dots"}, False),
    ({"accept": PROMETHEUS_3}, False),
    ({"query": "name[]=queue_depth"}, False),
    ({"method": "POST"}, False),
    ({"method": "OPTIONS"}, False),
    ({"path": "/favicon.ico"}, False),
])
def test_app_answers_as_prometheus_client_does(reader: Any, request_args: dict, rendered: bool,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    ours, registry = reader
    renders: list[bool] = []
    render = ours.render
    monkeypatch.setattr(ours, "render", lambda openmetrics=False: renders.append(openmetrics) or render(openmetrics))
    status, headers, body = call(metrics_app(ours, registry), **request_args)
    assert bool(renders) == rendered
    stock_status, stock_headers, stock_body = call(make_wsgi_app(registry), **request_args)
    assert (status, headers) == (stock_status, stock_headers)
    if dict(headers).get("Content-Encoding") == "gzip":
        body, stock_body = gzip.decompress(body), gzip.decompress(stock_body)
    assert body == stock_body


def test_served_over_http(reader: Any) -> None:
    ours, registry = reader
    server, thread = serve_metrics(ours, registry, 0)
    try:
        port = server.server_address[1]
        request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Accept": OPENMETRICS})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
            assert response.read() == generate_openmetrics(registry)
    finally:
        server.shutdown()
        server.server_close()
    thread.join(5)


def test_an_error_a_request_lets_through_is_counted_not_printed(reader: Any, capfd: Any) -> None:
    """An error of a /metrics request that its handler let through (a scraper gone while the answer was written)
    was printed to the program's stderr by socketserver, with a traceback; it is reported in one line, and the
    server goes on answering."""
    ours, registry = reader
    served, thread = serve_metrics(ours, registry, 0)
    port = served.server_address[1]
    handler_class: Any = served.RequestHandlerClass
    failing = [True]

    def handle_once_failing(self: Any) -> None:
        if failing:
            failing.clear()
            raise ValueError("I/O operation on closed file.")
        handler_class.handle(self)

    try:
        with patch.object(served, "RequestHandlerClass", type("Failing", (handler_class,),
                                                               {"handle": handle_once_failing})), \
                patch("agent_otel._sdk.prometheus.report_error") as reported:
            with pytest.raises(OSError):  # the connection closed, unanswered
                urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
                assert response.status == 200
        [(stage, error)] = [call.args for call in reported.call_args_list]
        assert stage == "metrics.serve" and isinstance(error, ValueError)
    finally:
        served.shutdown()
        served.server_close()
    thread.join(5)
    assert "Exception occurred" not in capfd.readouterr().err


def test_a_stop_request_is_seen_at_once_not_at_the_next_poll(reader: Any) -> None:
    """Stopping the /metrics server wakes its select(): even with a poll of an hour it stops at once. Before,
    a stop waited for the next poll (0.5 s by default), and every exit of a process with /metrics paid it."""
    ours, registry = reader
    served, _ = serve_metrics(ours, registry, 0)
    served.shutdown()
    served.server_close()
    server = make_server("127.0.0.1", 0, metrics_app(ours, registry), type(served))  # the same server class
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 3600}, daemon=True)
    serving.start()
    try:  # one scrape answered: the loop runs, and is back in its hour-long select()
        with urllib.request.urlopen(f"http://127.0.0.1:{server.server_address[1]}/metrics", timeout=10) as response:
            assert response.status == 200
        stopping = threading.Thread(target=server.shutdown, daemon=True)
        stopping.start()
        stopping.join(60)
        serving.join(60)
        assert not stopping.is_alive() and not serving.is_alive()
    finally:
        server.server_close()


def test_instruments_of_two_types_under_one_name_keep_the_scrape_valid() -> None:
    """Two libraries' instruments of different types with one name, in their own scopes: the first one's family
    is kept and the other is left out and counted. Before, the second one's samples went into the first one's
    family, under its type, and an OpenMetrics parser refused the whole scrape."""
    registry, reader = metrics_registry(), AgentOtelPrometheusReader()
    registry.register(reader.collector)
    provider = MeterProvider(metric_readers=[reader], resource=Resource.get_empty())
    provider.get_meter("first").create_counter("jobs.done").add(2)
    provider.get_meter("second").create_up_down_counter("jobs.done").add(5)
    provider.get_meter("third").create_histogram("jobs.done").record(1.0)
    errors: list[tuple[str, BaseException]] = []
    with patch("agent_otel._sdk.prometheus.report_error", lambda stage, exc: errors.append((stage, exc))):
        text = reader.render(openmetrics=True).decode()
        assert text.encode() == generate_openmetrics(registry)  # and so does prometheus_client's rendering
    families = list(text_string_to_metric_families(text))
    assert [(family.name, family.type, [sample.value for sample in family.samples]) for family in families] == [
        ("jobs_done", "counter", [2.0])]
    assert [stage for stage, _ in errors] == ["exposition.type_conflict"] * 4
    provider.shutdown()
