"""Our `/metrics`: the SDK's metric data in the Prometheus formats, with trace exemplars.

The stock OTel Prometheus reader drops exemplars, so a latency spike on a dashboard cannot lead to
the trace that caused it. This reader serves the same names and labels (dots to underscores, unit
suffixes, ``_total`` on counters, ``otel_scope_*`` labels, ``target_info``) and adds each
histogram bucket's and counter's latest exemplar (``trace_id``, ``span_id``) in the OpenMetrics
format, which Prometheus requests when scraping.

Two ways out, with the same bytes: :attr:`AgentOtelPrometheusReader.collector`, a prometheus_client
collector for any registry, and :meth:`AgentOtelPrometheusReader.render`, which writes the text
formats directly (no ``Sample`` objects, each series' label string escaped once and reused across
scrapes and across its bucket lines) and is what :func:`metrics_app` serves. Most of a scrape is
then the SDK's own collection.
"""

from __future__ import annotations

import gzip
import re
import socket
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterator
from functools import partial
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from opentelemetry.sdk.metrics.export import (
    Gauge,
    MetricReader,
    MetricsData,
    Sum,
)
from opentelemetry.sdk.metrics.export import (
    Histogram as HistogramData,
)
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.exposition import generate_latest as generate_text
from prometheus_client.openmetrics.exposition import UNDERSCORES, escape_label_name, escape_metric_name
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.registry import Collector
from prometheus_client.samples import Exemplar, Sample
from prometheus_client.utils import floatToGoString

from agent_otel._engine.self_telemetry import report_error

_INVALID = re.compile(r"[^a-zA-Z0-9_:]")
_UNIT_SUFFIXES = {"s": "seconds", "ms": "milliseconds", "By": "bytes", "KiBy": "kibibytes", "MiBy": "mebibytes"}
_SCOPE_NAME = "otel_scope_name"
_SCOPE_VERSION = "otel_scope_version"


def _sanitize(name: str) -> str:
    name = _INVALID.sub("_", name)
    return "_" + name if name[:1].isdigit() else name


def prometheus_name(name: str, unit: str) -> tuple[str, str]:
    """Base Prometheus name and OpenMetrics unit for an OTel instrument (counters add ``_total`` later)."""
    base = _sanitize(name)
    suffix = "" if not unit or unit == "1" or unit.startswith("{") else _UNIT_SUFFIXES.get(unit, _sanitize(unit))
    if suffix and not base.endswith("_" + suffix):
        base = f"{base}_{suffix}"
    return base, suffix


def _format_bound(bound: float) -> str:
    return "+Inf" if bound == float("inf") else str(bound)  # as the stock reader writes it


def _exemplar(exemplar: Any) -> Exemplar | None:
    if exemplar.trace_id is None or exemplar.span_id is None:
        return None
    return Exemplar({"trace_id": format(exemplar.trace_id, "032x"), "span_id": format(exemplar.span_id, "016x")},
                    exemplar.value, exemplar.time_unix_nano / 1e9)


def _bucket_exemplars(point: Any, bounds: list[float]) -> dict[int, Exemplar]:
    """Each bucket's latest exemplar, by bucket index."""
    exemplars: dict[int, Exemplar] = {}
    for exemplar in point.exemplars:
        converted = _exemplar(exemplar)
        if converted is not None:
            exemplars[bisect_left(bounds, exemplar.value)] = converted
    return exemplars


def _counter_exemplar(point: Any) -> Exemplar | None:
    exemplar = None
    for candidate in point.exemplars or ():
        exemplar = _exemplar(candidate) or exemplar
    return exemplar


def _family_type(data: Any) -> str | None:
    if isinstance(data, HistogramData):
        return "histogram"
    if isinstance(data, Sum) and data.is_monotonic:
        return "counter"
    if isinstance(data, Sum | Gauge):
        return "gauge"
    return None


class _Family:
    """A prometheus_client-compatible metric family built from samples directly (no label zipping)."""

    __slots__ = ("documentation", "name", "samples", "type", "unit")

    def __init__(self, name: str, documentation: str, typ: str, unit: str) -> None:
        self.name = name
        self.documentation = documentation
        self.type = typ
        self.unit = unit
        self.samples: list[Any] = []


class AgentOtelPrometheusReader(MetricReader):
    """A pull reader: each scrape collects from the SDK and renders the Prometheus text formats."""

    def __init__(self, disable_target_info: bool = False) -> None:
        super().__init__()  # cumulative temporality for every instrument: what Prometheus expects
        self._data: MetricsData | None = None
        self._disable_target_info = disable_target_info
        self._names = _Names()
        self.collector = _Translator(self)
        self._text = _TextRenderer(self)

    def _receive_metrics(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> None:
        self._data = metrics_data

    def scrape(self) -> MetricsData | None:
        self._data = None
        self.collect()
        return self._data

    def render(self, openmetrics: bool = False) -> bytes:
        """One scrape in the Prometheus text format 0.0.4, or OpenMetrics 1.0.0 with exemplars: the
        bytes ``generate_latest`` / ``openmetrics.exposition.generate_latest`` make of :attr:`collector`."""
        return self._text.render(openmetrics)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        pass


class _Names:
    """OTel to Prometheus names, translated once: metric base names and label names."""

    def __init__(self) -> None:
        self._metrics: dict[tuple[str, str], tuple[str, str]] = {}
        self._labels: dict[str, str] = {}

    def metric(self, metric: Any) -> tuple[str, str]:
        key = (metric.name, metric.unit)
        names = self._metrics.get(key)
        if names is None:
            names = self._metrics[key] = prometheus_name(metric.name, metric.unit)
        return names

    def label(self, key: str) -> str:
        label = self._labels.get(key)
        if label is None:
            label = self._labels[key] = _sanitize(key)
        return label

    def labels(self, attributes: Any, scope: dict[str, str]) -> dict[str, str]:
        labels = {self.label(k): str(v) for k, v in attributes.items()}
        labels.update(scope)
        return labels


def _scopes(reader: AgentOtelPrometheusReader, stage: str) -> Iterator[tuple[Any, dict[str, str] | None, Any]]:
    """(resource metrics, None, None) for each resource, then (None, scope labels, metric) for its metrics."""
    try:
        data = reader.scrape()
    except Exception as exc:
        report_error(stage + ".collect", exc)
        return
    if data is None:
        return
    for resource_metrics in data.resource_metrics:
        if not reader._disable_target_info and resource_metrics.resource.attributes:
            yield resource_metrics, None, None
        for scope_metrics in resource_metrics.scope_metrics:
            scope = {_SCOPE_NAME: scope_metrics.scope.name}
            if scope_metrics.scope.version:
                scope[_SCOPE_VERSION] = scope_metrics.scope.version
            for metric in scope_metrics.metrics:
                yield None, scope, metric


class _Translator(Collector):
    """The prometheus_client collector: families of ``Sample`` objects."""

    def __init__(self, reader: AgentOtelPrometheusReader) -> None:
        self._reader = reader
        self._names = reader._names

    def describe(self) -> list:
        return []  # collecting has side effects; never run it at registration time

    def collect(self) -> Iterator[Any]:
        families: dict[str, _Family] = {}
        for resource_metrics, scope, metric in _scopes(self._reader, "exposition"):
            if metric is None:
                info = _Family("target", "Target metadata", "info", "")
                info.samples.append(Sample("target_info", self._names.labels(resource_metrics.resource.attributes,
                                                                             {}), 1.0))
                families["target"] = info
                continue
            try:
                self._add(families, metric, scope)  # type: ignore[arg-type]
            except Exception as exc:
                report_error("exposition.translate", exc)
        yield from families.values()

    def _add(self, families: dict[str, _Family], metric: Any, scope: dict[str, str]) -> None:
        base, unit = self._names.metric(metric)
        data = metric.data
        typ = _family_type(data)
        if typ is None:
            return
        family = families.get(base) or families.setdefault(base, _Family(base, metric.description, typ, unit))
        append = family.samples.append
        labels_of = self._names.labels
        for point in data.data_points:
            labels = labels_of(point.attributes, scope)
            if typ == "histogram":
                bounds = [*point.explicit_bounds, float("inf")]
                exemplars = _bucket_exemplars(point, bounds)
                cumulative = 0
                for index, (bound, count) in enumerate(zip(bounds, point.bucket_counts, strict=False)):
                    cumulative += count
                    append(Sample(base + "_bucket", {**labels, "le": _format_bound(bound)}, cumulative, None,
                                  exemplars.get(index)))
                append(Sample(base + "_count", labels, point.count))
                append(Sample(base + "_sum", labels, point.sum))
            elif typ == "counter":
                append(Sample(base + "_total", labels, point.value, None, _counter_exemplar(point)))
            else:
                append(Sample(base, labels, point.value))


def _escape_value(value: str) -> str:
    """A label value as prometheus_client writes it (both formats)."""
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')
    return value


class _TextRenderer:
    """Writes what prometheus_client would make of :class:`_Translator`'s families, directly.

    A series' label string (sorted, escaped) is computed once and kept while the series exists;
    histogram buckets reuse it around their ``le`` label; values are formatted once per scrape."""

    def __init__(self, reader: AgentOtelPrometheusReader) -> None:
        self._reader = reader
        self._names = reader._names
        self._label_names: dict[str, str] = {"le": "le"}
        self._series: dict[Any, tuple[str, str, str]] = {}
        self._les: dict[tuple, list[str]] = {}  # bucket bounds -> their `le="..."` label strings

    def _label_name(self, name: str) -> str:
        escaped = self._label_names.get(name)
        if escaped is None:
            escaped = self._label_names[name] = escape_label_name(name, UNDERSCORES)
        return escaped

    def _label_strings(self, labels: dict[str, str]) -> tuple[str, str, str]:
        """(all labels, the ones sorting before ``le`` + ",", "," + the ones after) for one series."""
        items = sorted(labels.items())
        pairs = [f'{self._label_name(k)}="{_escape_value(v)}"' for k, v in items]
        keys = [k for k, _ in items]
        at = bisect_left(keys, "le")
        after = at + 1 if at < len(keys) and keys[at] == "le" else at  # a bucket's own `le` replaces it
        head, tail = ",".join(pairs[:at]), ",".join(pairs[after:])
        return ",".join(pairs), head + "," if head else "", "," + tail if tail else ""

    def render(self, openmetrics: bool) -> bytes:
        families: dict[str, tuple[str, str, str, list[str]]] = {}
        previous, self._series = self._series, {}
        values: dict[Any, str] = {}
        for resource_metrics, scope, metric in _scopes(self._reader, "exposition.render"):
            if metric is None:
                labels, _, _ = self._label_strings(self._names.labels(resource_metrics.resource.attributes, {}))
                families["target"] = ("info", "Target metadata", "", [f"target_info{{{labels}}} 1.0\n"])
                continue
            try:
                self._add(families, metric, scope, previous, values, openmetrics)  # type: ignore[arg-type]
            except Exception as exc:
                report_error("exposition.translate", exc)
        output = []
        for base, (typ, documentation, unit, lines) in families.items():
            if openmetrics:
                name = escape_metric_name(base, UNDERSCORES)
                help_text = documentation.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')
                output.append(f"# HELP {name} {help_text}\n# TYPE {name} {typ}\n")
                if unit:
                    output.append(f"# UNIT {name} {unit}\n")
            else:
                name = escape_metric_name(base + "_total" if typ == "counter" else
                                          base + "_info" if typ == "info" else base, UNDERSCORES)
                help_text = documentation.replace("\\", r"\\").replace("\n", r"\n")
                output.append(f"# HELP {name} {help_text}\n# TYPE {name} {'gauge' if typ == 'info' else typ}\n")
            output.extend(lines)
        if openmetrics:
            output.append("# EOF\n")
        return "".join(output).encode("utf-8")

    def _add(self, families: dict[str, tuple[str, str, str, list[str]]], metric: Any, scope: dict[str, str],
             previous: dict[Any, tuple[str, str, str]], values: dict[Any, str], openmetrics: bool) -> None:
        base, unit = self._names.metric(metric)
        data = metric.data
        typ = _family_type(data)
        if typ is None:
            return
        family = families.get(base) or families.setdefault(base, (typ, metric.description, unit, []))
        append = family[3].append
        series = self._series
        scope_key = tuple(scope.items())

        def go(value: Any) -> str:
            if type(value) is not int:  # floats are not cached: 0.0 == -0.0 but they print differently
                return floatToGoString(value)
            text = values.get(value)
            if text is None:
                text = values[value] = floatToGoString(value)
            return text

        for point in data.data_points:
            try:
                key: Any = (scope_key, tuple(point.attributes.items()))
                strings = series.get(key) or previous.get(key)
            except TypeError:  # an unhashable attribute value: no caching for this series
                key, strings = None, None
            if strings is None:
                strings = self._label_strings(self._names.labels(point.attributes, scope))
            if key is not None:
                series[key] = strings
            labels, head, tail = strings
            braced = "{" + labels + "}" if labels else ""
            if typ == "histogram":
                bounds = point.explicit_bounds
                les = self._les.get(bounds) if type(bounds) is tuple else None
                if les is None:
                    les = [f'le="{_escape_value(_format_bound(bound))}"' for bound in (*bounds, float("inf"))]
                    if type(bounds) is tuple and len(self._les) < 1000:
                        self._les[bounds] = les
                exemplars = (_bucket_exemplars(point, [*bounds, float("inf")]) if openmetrics and point.exemplars
                             else None)
                cumulative = 0
                bucket = base + "_bucket{" + head
                end = tail + "} "
                for index, (le, count) in enumerate(zip(les, point.bucket_counts, strict=False)):
                    cumulative += count
                    exemplar = exemplars.get(index) if exemplars else None
                    append(f'{bucket}{le}{end}{values.get(cumulative) or go(cumulative)}'
                           f'{_exemplar_text(exemplar) if exemplar is not None else ""}\n')
                append(f"{base}_count{braced} {go(point.count)}\n")
                append(f"{base}_sum{braced} {go(point.sum)}\n")
            elif typ == "counter":
                exemplar = _counter_exemplar(point) if openmetrics else None
                append(f"{base}_total{braced} {go(point.value)}"
                       f"{_exemplar_text(exemplar) if exemplar is not None else ''}\n")
            else:
                append(f"{base}{braced} {go(point.value)}\n")


def _exemplar_text(exemplar: Exemplar) -> str:
    labels = ",".join(f'{k}="{_escape_value(v)}"' for k, v in sorted(exemplar.labels.items()))
    return f" # {{{labels}}} {floatToGoString(exemplar.value)} {exemplar.timestamp}"


# --------------------------------------------------------------------------------------------------
# Serving /metrics
# --------------------------------------------------------------------------------------------------


def _fast_format(encoder: Any) -> bool | None:
    """Which of :meth:`AgentOtelPrometheusReader.render`'s formats prometheus_client's content
    negotiation chose (False: text 0.0.4, True: OpenMetrics 1.0.0), or None for anything else."""
    if encoder is generate_text:
        return False
    if isinstance(encoder, partial) and not encoder.args and encoder.keywords.get("escaping") == UNDERSCORES:
        if encoder.func is generate_openmetrics and encoder.keywords.get("version") == "1.0.0":
            return True
        if encoder.func is generate_text and set(encoder.keywords) == {"escaping"}:
            return False
    return None


def metrics_app(reader: AgentOtelPrometheusReader, registry: CollectorRegistry) -> Callable[..., Any]:
    """A WSGI app serving ``/metrics`` like prometheus_client's (same content negotiation, gzip,
    methods), rendered by ``reader.render()``; requests it cannot render (``name[]`` filters, other
    escapings or versions) go to prometheus_client's app over ``registry``."""
    fallback = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if (environ.get("REQUEST_METHOD") != "GET" or environ.get("PATH_INFO") == "/favicon.ico"
                or "name[]" in parse_qs(environ.get("QUERY_STRING", ""))):
            return fallback(environ, start_response)
        encoder, content_type = choose_encoder(environ.get("HTTP_ACCEPT"))
        openmetrics = _fast_format(encoder)
        if openmetrics is None:
            return fallback(environ, start_response)
        output = reader.render(openmetrics)
        headers = [("Content-Type", content_type)]
        if gzip_accepted(environ.get("HTTP_ACCEPT_ENCODING")):
            output = gzip.compress(output)
            headers.append(("Content-Encoding", "gzip"))
        start_response("200 OK", headers)
        return [output]

    return app


#: Seconds a /metrics connection may stall (send no request, or not read the answer) before its server
#: thread gives up on it: without a socket timeout, a client that connects and sends nothing holds a
#: thread forever. Far above Prometheus' default scrape timeout (10 s), so no real scrape is cut.
SCRAPE_SOCKET_TIMEOUT_S = 30.0


def _timeout_handler(base: type[WSGIRequestHandler]) -> type[WSGIRequestHandler]:
    """``base`` with a socket timeout of :data:`SCRAPE_SOCKET_TIMEOUT_S` (read now) that drops the
    connection quietly when it expires."""

    class Handler(base):  # type: ignore[valid-type,misc]
        timeout = SCRAPE_SOCKET_TIMEOUT_S

        def handle(self) -> None:
            try:
                super().handle()
            except OSError:  # the request timed out, or the client went away: drop the connection
                self.close_connection = True

    return Handler


def serve_metrics(reader: AgentOtelPrometheusReader, registry: CollectorRegistry, port: int,
                  addr: str = "127.0.0.1") -> tuple[Any, threading.Thread]:
    """Serve :func:`metrics_app` on ``addr:port`` from a daemon thread, as prometheus_client's
    ``start_http_server`` does (same server classes, plus a socket timeout:
    :data:`SCRAPE_SOCKET_TIMEOUT_S`); returns the server and its thread."""
    try:
        from prometheus_client.exposition import ThreadingWSGIServer, _get_best_family, _SilentHandler
    except ImportError:  # a prometheus_client without them: the same from the standard library, its rendering
        return _serve_fallback(registry, port, addr)

    class Server(ThreadingWSGIServer):
        pass

    Server.address_family, addr = _get_best_family(addr, port)
    server = make_server(addr, port, metrics_app(reader, registry), Server,
                         handler_class=_timeout_handler(_SilentHandler))
    thread = threading.Thread(target=server.serve_forever, name="agent-otel-metrics", daemon=True)
    thread.start()
    return server, thread


def _serve_fallback(registry: CollectorRegistry, port: int, addr: str) -> tuple[Any, threading.Thread]:
    """prometheus_client's ``start_http_server`` rebuilt from the standard library (its server
    classes are private), serving its own app over ``registry``, with the socket timeout."""

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    class SilentHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    family, _, _, _, sockaddr = socket.getaddrinfo(addr, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    Server.address_family = family
    server = make_server(sockaddr[0], port, make_wsgi_app(registry), Server,
                         handler_class=_timeout_handler(SilentHandler))
    thread = threading.Thread(target=server.serve_forever, name="agent-otel-metrics", daemon=True)
    thread.start()
    return server, thread
