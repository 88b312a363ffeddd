"""Minimal OTLP receivers for tests (HTTP/protobuf and gRPC), built on opentelemetry-proto.

No Collector runs here: each receiver binds 127.0.0.1 on a free port, keeps every export request
that arrived, and answers queries on them. Use as a context manager (stopped on exit).
"""

from __future__ import annotations

import threading
import time
from concurrent import futures
from typing import Any

from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.support.loopback import LoopbackServer, QuietHandler


def attributes_of(item: Any) -> dict[str, Any]:
    """A span's or data point's attributes as a plain dict (string, int, double or bool values)."""
    result = {}
    for attribute in item.attributes:
        kind = attribute.value.WhichOneof("value")
        result[attribute.key] = getattr(attribute.value, kind) if kind else None
    return result


def data_points_of(metric: Any) -> list[Any]:
    """The data points of a metric, whatever its type (gauge, sum, histogram...)."""
    kind = metric.WhichOneof("data")
    return list(getattr(metric, kind).data_points) if kind else []


class OtlpReceiver:
    """Storage and queries shared by the transports; subclasses start and stop their server."""

    protocol: str = ""

    def __init__(self) -> None:
        self.traces: list[ExportTraceServiceRequest] = []
        self.metrics: list[ExportMetricsServiceRequest] = []
        self._lock = threading.Lock()

    # -- transport ---------------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> OtlpReceiver:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def store_traces(self, request: ExportTraceServiceRequest) -> ExportTraceServiceResponse:
        with self._lock:
            self.traces.append(request)
        return ExportTraceServiceResponse()

    def store_metrics(self, request: ExportMetricsServiceRequest) -> ExportMetricsServiceResponse:
        with self._lock:
            self.metrics.append(request)
        return ExportMetricsServiceResponse()

    # -- queries -----------------------------------------------------------------------------------

    def spans(self) -> list[Any]:
        with self._lock:
            return [span for request in self.traces for rs in request.resource_spans
                    for ss in rs.scope_spans for span in ss.spans]

    def span_names_with_attribute(self, key: str) -> dict[str, str]:
        result = {}
        for span in self.spans():
            for attribute in span.attributes:
                if attribute.key == key:
                    result[span.name] = attribute.value.string_value
        return result

    def metric_list(self) -> list[Any]:
        with self._lock:
            return [metric for request in self.metrics for rm in request.resource_metrics
                    for sm in rm.scope_metrics for metric in sm.metrics]

    def metric_names(self) -> set[str]:
        return {metric.name for metric in self.metric_list()}

    def metrics_named(self, name: str) -> list[Any]:
        return [metric for metric in self.metric_list() if metric.name == name]


class OtlpHttpReceiver(OtlpReceiver):
    """Accepts POST /v1/traces and /v1/metrics (protobuf)."""

    protocol = "http/protobuf"

    def __init__(self) -> None:
        super().__init__()
        receiver = self
        #: While set and not released, a trace export hangs (a trace backend that accepts and never answers);
        #: metrics are still answered.
        self.hold_traces: threading.Event | None = None
        #: How long a trace export takes to be answered (a slow backend): a model of the server, not a wait of a test
        self.traces_latency_s = 0.0

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                response: Any
                if self.path == "/v1/traces":
                    if receiver.hold_traces is not None:
                        receiver.hold_traces.wait()
                    if receiver.traces_latency_s:
                        time.sleep(receiver.traces_latency_s)
                    response = receiver.store_traces(ExportTraceServiceRequest.FromString(body))
                elif self.path == "/v1/metrics":
                    response = receiver.store_metrics(ExportMetricsServiceRequest.FromString(body))
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_body(200, response.SerializeToString(), "application/x-protobuf")

        self._server = LoopbackServer(Handler)

    @property
    def endpoint(self) -> str:
        return self._server.url

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()


class OtlpGrpcReceiver(OtlpReceiver):
    """Serves the OTLP TraceService and MetricsService (insecure gRPC)."""

    protocol = "grpc"

    def __init__(self) -> None:
        import grpc

        super().__init__()
        receiver = self

        class Traces(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request: Any, context: Any) -> Any:
                return receiver.store_traces(request)

        class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
            def Export(self, request: Any, context: Any) -> Any:
                return receiver.store_metrics(request)

        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), self._server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), self._server)
        self._port = self._server.add_insecure_port("127.0.0.1:0")
        if not self._port:
            raise RuntimeError("gRPC receiver: could not bind 127.0.0.1")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop(grace=None).wait()
