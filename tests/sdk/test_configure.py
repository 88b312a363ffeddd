"""configure()/shutdown(): defaults, environment, host providers, clear errors.

Whatever sets OTel's process-global providers runs in a child interpreter, so tests stay independent.
"""

from __future__ import annotations

import hashlib
import json
import logging
import socket
import subprocess
import sys
import textwrap
import threading

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import agent_otel
from agent_otel import ConfigurationError, semconv
from agent_otel._engine.instruments import runtime
from agent_otel._ops.stack import free_port
from agent_otel._sdk.settings import resolve_settings, traces_sampler
from tests.support.environment import CLEAN_ENV
from tests.support.otlp_receiver import OtlpHttpReceiver, attributes_of


def run_child(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env={**CLEAN_ENV, **env},
                          capture_output=True, text=True, timeout=120)


def test_defaults_without_environment() -> None:
    settings = resolve_settings(env={})
    assert (settings.prometheus_host, settings.prometheus_port) == ("127.0.0.1", 9464)
    assert settings.metrics_exporters == ("prometheus",)
    assert settings.traces_exporters == ()
    assert settings.otlp_endpoint is None


def test_otlp_as_soon_as_an_endpoint_is_given() -> None:
    grpc = resolve_settings(env={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"})
    assert grpc.traces_exporters == ("otlp",) and grpc.metrics_exporters == ("otlp",)
    assert grpc.otlp_protocol == "grpc"
    http = resolve_settings(otlp_endpoint="http://collector:4318/")
    assert http.otlp_protocol == "http/protobuf" and http.otlp_endpoint == "http://collector:4318"
    both = resolve_settings(env={"OTEL_EXPORTER_OTLP_ENDPOINT": "https://c:4317",
                                 "OTEL_METRICS_EXPORTER": "otlp,prometheus", "OTEL_TRACES_EXPORTER": "console",
                                 "OTEL_EXPORTER_PROMETHEUS_HOST": "0.0.0.0", "OTEL_EXPORTER_PROMETHEUS_PORT": "9999",
                                 "OTEL_SERVICE_NAME": "svc"})
    assert both.metrics_exporters == ("otlp", "prometheus") and both.traces_exporters == ("console",)
    assert (both.prometheus_host, both.prometheus_port, both.service_name) == ("0.0.0.0", 9999, "svc")


@pytest.mark.parametrize(("env", "message"), [
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4317"}, "OTEL_EXPORTER_OTLP_ENDPOINT='collector:4317': malformed"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:43x7"}, "malformed OTLP endpoint (malformed port)"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://:4317"}, "malformed OTLP endpoint (no host)"),
    ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER: unknown exporter 'zipkin'"),
    ({"OTEL_METRICS_EXPORTER": "prometheus,statsd"}, "OTEL_METRICS_EXPORTER: unknown exporter 'statsd'"),
    ({"OTEL_EXPORTER_PROMETHEUS_PORT": "nine"}, "OTEL_EXPORTER_PROMETHEUS_PORT='nine': expected a port"),
    ({"OTEL_EXPORTER_OTLP_PROTOCOL": "thrift"}, "OTEL_EXPORTER_OTLP_PROTOCOL='thrift'"),
    ({"OTEL_RESOURCE_ATTRIBUTES": "a=1,novalue"}, "OTEL_RESOURCE_ATTRIBUTES='a=1,novalue': 'novalue' is not key=value"),
    ({"OTEL_RESOURCE_ATTRIBUTES": "=x"}, "OTEL_RESOURCE_ATTRIBUTES='=x': '=x' has an empty key"),
])
def test_bad_settings_give_one_clear_error(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        resolve_settings(env=env)
    assert message in str(caught.value)


@pytest.mark.parametrize(("env", "message"), [
    ({"OTEL_TRACES_SAMPLER": "traceidratoi"}, "OTEL_TRACES_SAMPLER='traceidratoi': expected one of always_on, "),
    ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1%"},
     "OTEL_TRACES_SAMPLER_ARG='1%': expected a sampling ratio from 0 to 1 (for OTEL_TRACES_SAMPLER=traceidratio)"),
    ({"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "5"},
     "OTEL_TRACES_SAMPLER_ARG='5': expected a sampling ratio from 0 to 1"),
])
def test_a_bad_sampler_is_one_clear_error(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        traces_sampler(env)
    assert message in str(caught.value)


def test_a_bad_port_argument_is_named_as_the_argument_not_the_variable() -> None:
    with pytest.raises(ConfigurationError) as caught:
        resolve_settings(prometheus_port=70000, env={})
    assert str(caught.value) == "prometheus_port=70000: expected a port number 0..65535"


@pytest.mark.parametrize("port", [True, 0.9, [9464]])
def test_a_port_argument_of_another_type_is_one_clear_error(port: object) -> None:
    """``True`` bound port 1 and ``0.9`` port 0 (int() took them); a list raised a bare TypeError."""
    with pytest.raises(ConfigurationError, match=r"prometheus_port=.*: expected a port number 0\.\.65535"):
        resolve_settings(prometheus_port=port, env={})  # type: ignore[arg-type]


_SDK_TRACER_PROVIDER = ("an opentelemetry.sdk.trace.TracerProvider (for a provider that wraps one, as logfire's "
                        "do, pass the one it wraps)")
_SDK_METER_PROVIDER = ("an opentelemetry.sdk.metrics.MeterProvider (for a provider that wraps one, as logfire's do, "
                       "pass the one it wraps)")


@pytest.mark.parametrize(("argument", "value", "expected"), [
    ("otlp_endpoint", 4317, "a string"),
    ("prometheus_host", 127, "a string"),
    ("traces_exporter", 123, "a name or a tuple of names"),
    ("traces_exporter", ("otlp", None), "a name or a tuple of names"),
    ("resource", {"a": "b"}, "an opentelemetry.sdk.resources.Resource"),
    ("span_bridge", "no", "True or False"),
    ("prometheus_port", True, "a port number 0..65535"),
    ("tracer_provider", "x", _SDK_TRACER_PROVIDER),  # was ignored: a provider of ours was built
    ("meter_provider", object(), _SDK_METER_PROVIDER),
    # an API provider of another kind cannot take agent-otel's span processor and views: it was ignored, silently
    # (logfire's proxy providers among them: agent-otel's spans never reached logfire's exporters)
    ("tracer_provider", trace.NoOpTracerProvider(), _SDK_TRACER_PROVIDER),
    ("meter_provider", metrics.NoOpMeterProvider(), _SDK_METER_PROVIDER),
])
def test_a_configure_argument_of_another_type_is_one_clear_error(argument: str, value: object, expected: str) -> None:
    """They gave a bare TypeError or AttributeError deep in the set-up, or were taken by their truth
    (``span_bridge="no"`` left the bridge on) or by int() (``prometheus_port=True`` bound port 1). An object is
    named by its class, not its repr (a provider's ran to pages)."""
    with pytest.raises(ConfigurationError) as caught:
        agent_otel.configure(**{argument: value})  # type: ignore[arg-type]
    shown = repr(value) if isinstance(value, str | int | tuple | dict) else (
        f"<{type(value).__module__}.{type(value).__qualname__} object>")
    assert str(caught.value) == f"configure(): {argument}={shown}: expected {expected}"


def test_an_empty_variable_is_an_unset_one() -> None:
    """As the OpenTelemetry configuration spec has it: ``OTEL_METRIC_EXPORT_INTERVAL=`` was an error and
    ``OTEL_METRICS_EXPORTER=`` turned /metrics off, where an empty port or limit already meant the default."""
    settings = resolve_settings(env={"OTEL_METRIC_EXPORT_INTERVAL": "", "OTEL_METRICS_EXPORTER": " ",
                                     "OTEL_TRACES_EXPORTER": ""})
    assert settings.metrics_exporters == ("prometheus",) and settings.traces_exporters == ()  # none
    assert settings.metric_export_interval_ms == 10000


def test_the_sampler_variable_is_read_checked_and_an_empty_one_is_the_default() -> None:
    """``OTEL_TRACES_SAMPLER=`` printed "Couldn't recognize sampler" on the program's stderr (the SDK's reading); a
    misspelt name or a ratio that is no number sampled everything, with such a warning."""
    default = traces_sampler({"OTEL_TRACES_SAMPLER": " "}).get_description()
    assert default == traces_sampler({}).get_description()
    assert default.startswith("ParentBased{root:AlwaysOnSampler")
    ratio = traces_sampler({"OTEL_TRACES_SAMPLER": "TraceIdRatio", "OTEL_TRACES_SAMPLER_ARG": "0.25"})
    assert ratio.get_description() == "TraceIdRatioBased{0.25}"
    child = run_child("""
        import agent_otel
        from opentelemetry import trace
        agent_otel.configure(metrics_exporter="none")
        print(trace.get_tracer_provider().sampler.get_description())
    """, OTEL_TRACES_SAMPLER="")
    assert (child.returncode, child.stderr) == (0, "")
    # the parts that drop spans (an unsampled parent's) record GenAI spans for the bridge; a span of a sampled trace
    # goes through no wrapper
    assert child.stdout.strip() == (
        "ParentBased{root:AlwaysOnSampler,remoteParentSampled:AlwaysOnSampler,"
        "remoteParentNotSampled:GenAiMetricsSampler{AlwaysOffSampler},localParentSampled:AlwaysOnSampler,"
        "localParentNotSampled:GenAiMetricsSampler{AlwaysOffSampler}}")
    assert default == child.stdout.strip().replace("GenAiMetricsSampler{AlwaysOffSampler}", "AlwaysOffSampler")
    # a host's own provider keeps its sampler: a name only the distro's entry points know is no error then
    host = run_child("""
        import agent_otel
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.sampling import ALWAYS_ON
        trace.set_tracer_provider(TracerProvider(sampler=ALWAYS_ON))
        agent_otel.configure(metrics_exporter="none")
        print(trace.get_tracer_provider().sampler.get_description())
    """, OTEL_TRACES_SAMPLER="parentbased_jaeger_remote")
    assert (host.returncode, host.stdout.strip()) == (0, "AlwaysOnSampler"), host.stderr


def test_a_provider_whose_sampler_records_dropped_genai_spans_is_not_told_to_wrap_it() -> None:
    """configure() with a host's provider says when its sampler hides GenAI spans from the bridge; the provider an
    earlier configure() built (its sampler's dropping parts wrapped) and one that drops nothing are not told to wrap
    it (review: the check looked for a GenAiMetricsSampler at the top only)."""
    child = run_child("""
        import logging, sys
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased
        import agent_otel

        logging.basicConfig(level=logging.INFO, format="%(message)s")
        built = agent_otel.configure(metrics_exporter="none", set_global=False).tracer_provider
        agent_otel.shutdown()
        for provider in (built, TracerProvider(sampler=ALWAYS_ON), TracerProvider(sampler=ParentBased(ALWAYS_ON))):
            print("---", file=sys.stderr)
            agent_otel.configure(metrics_exporter="none", tracer_provider=provider, set_global=False)
            agent_otel.shutdown()
    """)
    assert child.returncode == 0, child.stderr
    told = [("wrap it" in part) for part in child.stderr.split("---")[1:]]
    assert told == [False, False, True], child.stderr


def test_an_export_interval_that_is_no_whole_number_says_so() -> None:
    """``OTEL_METRIC_EXPORT_INTERVAL=1.5`` was refused as "expected milliseconds > 0", which 1.5 is."""
    with pytest.raises(ConfigurationError, match=r"^OTEL_METRIC_EXPORT_INTERVAL='1\.5': expected a whole number of "
                                                 r"milliseconds > 0$"):
        resolve_settings(env={"OTEL_METRIC_EXPORT_INTERVAL": "1.5"})


def test_an_exit_budget_of_digits_int_cannot_read_is_one_clear_error() -> None:
    from agent_otel._sdk.configure import exit_flush_timeout_millis

    with pytest.raises(ConfigurationError, match="AGENT_OTEL_EXIT_FLUSH_TIMEOUT_MS='²': expected a whole number"):
        exit_flush_timeout_millis({"AGENT_OTEL_EXIT_FLUSH_TIMEOUT_MS": "²"})  # a digit to str.isdigit()


def test_the_metrics_url_of_an_ipv6_host_brackets_it() -> None:
    """It read ``http://::1:PORT/metrics``, which curl and ``urlsplit().port`` refuse."""
    import urllib.parse
    import urllib.request

    # nothing process-wide beyond /metrics: the tests after it in this process run on providers of their own
    telemetry = agent_otel.configure(prometheus_host="::1", prometheus_port=0, traces_exporter="none",
                                     set_global=False, instrument_threads=False, instrument_processes=False,
                                     system_metrics=False)
    try:
        url = telemetry.prometheus_url
        assert url is not None and url.startswith("http://[::1]:")
        assert urllib.parse.urlsplit(url).port == telemetry.prometheus_server.socket.getsockname()[1]
        assert urllib.request.urlopen(url, timeout=10).status == 200
    finally:
        agent_otel.shutdown()


def test_a_malformed_resource_attribute_is_one_clear_error_without_sdk_noise() -> None:
    """Before, configure() went on and the SDK's "Invalid key value resource attribute pair" warning reached
    stderr twice, through Python's last-resort handler; no error named the variable."""
    child = run_child("""
        import agent_otel
        try:
            agent_otel.configure(metrics_exporter="none")
        except agent_otel.ConfigurationError as exc:
            print(exc)
        print("program output")
    """, OTEL_RESOURCE_ATTRIBUTES="novalue")
    assert (child.returncode, child.stderr) == (0, "")
    assert child.stdout == ("OTEL_RESOURCE_ATTRIBUTES='novalue': 'novalue' is not key=value; expected comma-separated "
                            "key=value pairs (values URL-encoded)\nprogram output\n")


def test_a_bad_debug_flag_is_a_clear_error_of_configure() -> None:
    """Before, AGENT_OTEL_DEBUG=yess was silently off: it is read when logging, where no error can be raised."""
    child = run_child("""
        import agent_otel
        try:
            agent_otel.configure(metrics_exporter="none")
        except agent_otel.ConfigurationError as exc:
            print(exc)
    """, AGENT_OTEL_DEBUG="yess")
    assert (child.returncode, child.stderr) == (0, "")
    assert child.stdout == "environment variable AGENT_OTEL_DEBUG='yess': expected true or false\n"


def test_bad_boolean_env_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from agent_otel._engine.instruments import enabled_from_env

    monkeypatch.setenv("AGENT_OTEL_ENABLED", "maybe")
    with pytest.raises(ConfigurationError, match="AGENT_OTEL_ENABLED='maybe': expected true or false"):
        enabled_from_env()


def test_embedded_default_serves_the_contract_on_metrics_and_honours_resource_env() -> None:
    port = free_port()
    child = run_child("""
        import urllib.request, agent_otel
        from agent_otel._engine.instruments import runtime
        t = agent_otel.configure()
        with agent_otel.job("job-1", type="nightly"):
            pass
        print(t.prometheus_url)
        print(urllib.request.urlopen(t.prometheus_url, timeout=10).read().decode())
        agent_otel.shutdown()
    """, OTEL_EXPORTER_PROMETHEUS_PORT=str(port), OTEL_SERVICE_NAME="svc-under-test",
        OTEL_RESOURCE_ATTRIBUTES="deployment.environment=test")
    assert child.returncode == 0, child.stderr
    url, body = child.stdout.split("\n", 1)
    assert url == f"http://127.0.0.1:{port}/metrics"
    assert 'job_duration_seconds_count{job_outcome="success",job_type="nightly"' in body
    assert "job-1" not in body  # the job id is never a metric label
    target_info = next(line for line in body.splitlines() if line.startswith("target_info{"))
    assert 'service_name="svc-under-test"' in target_info and 'deployment_environment="test"' in target_info
    assert semconv.PROCESS_MEMORY_USAGE_PROMETHEUS in body  # process metrics from system-metrics
    assert "python_gc_objects_collected_total" not in body  # prometheus_client's defaults stay out


def test_an_idle_service_reports_its_build_info_before_any_call() -> None:
    """The heartbeat AgentOtelServiceTelemetryStopped counts: a process restarted into a quiet hour served no
    agent-otel series until its first call, and the alert fired for a service that was up."""
    child = run_child("""
        import urllib.request, agent_otel
        t = agent_otel.configure(prometheus_port=0)
        print(urllib.request.urlopen(t.prometheus_url, timeout=10).read().decode())
        agent_otel.shutdown()
    """)
    assert child.returncode == 0, child.stderr
    ours = [line for line in child.stdout.splitlines() if 'otel_scope_name="agent_otel"' in line]
    assert [line.split("{")[0] for line in ours] == [semconv.BUILD_INFO.prometheus]
    assert f'agent_otel_version="{agent_otel.__version__}"' in ours[0] and ours[0].endswith(" 1.0")


def test_a_config_files_resource_labels_every_series_and_the_environment_wins() -> None:
    """``resource = {...}`` in the config file: the environment as every series' label (the demo's and the README's
    ``attributes = {"deployment.environment.name" = ...}`` were span attributes only, so the dashboards' Environment
    variable was empty); ``OTEL_RESOURCE_ATTRIBUTES`` wins, as ``OTEL_SERVICE_NAME`` does over ``service_name``."""
    child = run_child("""
        import urllib.request
        from agent_otel._zerocode.config import Config
        from agent_otel._zerocode.instrumentor import configure_sdk
        t = configure_sdk(Config(source="x.toml", resource={"deployment.environment.name": "prod", "team": "a"}),
                          prometheus_port=0)
        body = urllib.request.urlopen(t.prometheus_url, timeout=10).read().decode().splitlines()
        print(*[line for line in body if line.startswith(("agent_otel_build_info", "target_info"))], sep=chr(10))
    """, OTEL_RESOURCE_ATTRIBUTES="team=b")
    assert child.returncode == 0, child.stderr
    build_info, = (line for line in child.stdout.splitlines() if line.startswith("agent_otel_build_info"))
    target_info, = (line for line in child.stdout.splitlines() if line.startswith("target_info"))
    assert 'deployment_environment_name="prod"' in build_info
    assert 'team="b"' in target_info


def test_a_port_in_use_leaves_the_program_running_with_its_other_exporters_said_and_counted() -> None:
    """Another process serves /metrics on the port (a sibling worker of a server whose workers each call configure()):
    configure() raised, and the worker failed to boot. It returns now, with no /metrics and its other exporters (the
    console's here), one warning line on the agent_otel logger, and the miss counted."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        child = run_child("""
            import logging, sys
            logging.basicConfig(stream=sys.stderr, format="%(name)s %(levelname)s %(message)s")
            import agent_otel
            telemetry = agent_otel.configure(metrics_exporter=("prometheus", "console"))
            print(telemetry.prometheus_url, file=sys.stderr)
            agent_otel.shutdown()
        """, OTEL_EXPORTER_PROMETHEUS_PORT=str(port))
    assert child.returncode == 0, child.stderr
    logged = child.stderr.splitlines()
    assert logged == [f"agent_otel WARNING agent-otel: cannot serve /metrics on 127.0.0.1:{port} (Address already in "
                      "use); the port is probably in use: set OTEL_EXPORTER_PROMETHEUS_PORT to a free port; this "
                      "process serves no /metrics (in a server whose worker processes each call configure(), only one "
                      "can: export their metrics over OTLP, or configure() before the server forks its workers)",
                      "None"], child.stderr
    exported = json.loads(child.stdout)  # the console exporter's, at shutdown
    counted = [point for resource in exported["resource_metrics"] for scope in resource["scope_metrics"]
               for metric in scope["metrics"] if metric["name"] == semconv.INSTRUMENTATION_ERRORS.name
               for point in metric["data"]["data_points"]]
    assert [(point["attributes"], point["value"]) for point in counted] == [
        ({semconv.INSTRUMENTATION_STAGE: "metrics.port_busy"}, 1)]


@pytest.mark.parametrize("host", ["no.such.host.invalid", "192.0.2.1"])
def test_a_host_not_of_this_machine_names_the_host_variable_not_a_busy_port(host: str) -> None:
    """Before, a host that does not resolve or is not this machine's was reported as a busy port (set
    OTEL_EXPORTER_PROMETHEUS_PORT), and `agent-otel run` ran the program on without metrics as for one."""
    child = run_child("""
        import agent_otel
        try:
            agent_otel.configure()
        except agent_otel.ConfigurationError as exc:
            print(exc)
    """, OTEL_EXPORTER_PROMETHEUS_HOST=host, OTEL_EXPORTER_PROMETHEUS_PORT=str(free_port()))
    assert child.returncode == 0, child.stderr
    assert child.stdout.startswith(f"cannot serve /metrics on {host}:"), child.stdout
    assert "set OTEL_EXPORTER_PROMETHEUS_HOST to an address of this machine" in child.stdout
    assert "port is probably in use" not in child.stdout


def test_host_providers_are_reused_not_replaced_and_configure_twice_is_harmless() -> None:
    child = run_child("""
        import logging, sys
        logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
        from opentelemetry import trace, metrics
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        exporter = InMemorySpanExporter()
        tp = TracerProvider(); tp.add_span_processor(SimpleSpanProcessor(exporter))
        mp = MeterProvider()
        trace.set_tracer_provider(tp); metrics.set_meter_provider(mp)
        import agent_otel
        first = agent_otel.configure()
        second = agent_otel.configure()
        assert first is second
        assert first.tracer_provider is tp and first.meter_provider is mp
        assert trace.get_tracer_provider() is tp
        with agent_otel.job("j-7"):
            trace.get_tracer("host").start_span("host span").end()
        names = {s.name: s.attributes.get("job.id") for s in exporter.get_finished_spans()}
        assert names == {"host span": "j-7", "invoke_workflow default": "j-7"}, names
        agent_otel.shutdown()
        print("OK")
    """)
    assert child.returncode == 0, child.stderr + child.stdout
    lines = child.stdout.splitlines()
    assert lines[-1] == "OK"
    assert sum("using the SDK TracerProvider the host program installed" in line for line in lines) == 1
    assert sum("using the SDK MeterProvider the host program installed" in line for line in lines) == 1


def test_a_phoenix_provider_keeps_exporting_the_programs_spans_after_configure() -> None:
    """Phoenix's ``register()`` builds an SDK TracerProvider subclass whose ``add_span_processor()`` shuts its own
    exporting processor down unless told not to: after ``configure()`` (called after the host's setup, as the
    README asks) Phoenix received no span of the program's, and nothing said so."""
    with OtlpHttpReceiver() as receiver:
        child = run_child(f"""
            from phoenix.otel import register
            tp = register(project_name="p", endpoint="{receiver.endpoint}/v1/traces", protocol="http/protobuf",
                          batch=False, verbose=False)
            import agent_otel
            agent_otel.configure(prometheus_port=0)
            with agent_otel.job("j-9"):
                tp.get_tracer("app").start_span("work").end()
            tp.force_flush()
        """)
        assert child.returncode == 0, child.stderr
        spans = {span.name: attributes_of(span) for request in receiver.traces for resources in request.resource_spans
                 for scope in resources.scope_spans for span in scope.spans}
    assert spans["work"]["job.id"] == "j-9"
    assert "invoke_workflow default" in spans


def test_a_global_tracer_provider_not_of_the_sdk_is_said_once() -> None:
    """A tracing library that provides the API's TracerProvider with a class of its own (ddtrace with
    ``DD_TRACE_OTEL_ENABLED``, logfire's proxies; a class of the API's stands for them here) stays global, and the spans
    other instrumentations make through it never reach agent-otel's span processor: their model calls counted zero,
    with nothing said. One warning says so, and what to do."""
    child = run_child("""
        import logging, sys
        logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="%(levelname)s %(message)s")
        from opentelemetry import trace
        class TheirProvider(trace.TracerProvider):
            def get_tracer(self, *args, **kwargs):
                return trace.NoOpTracer()
        trace.set_tracer_provider(TheirProvider())
        import agent_otel
        agent_otel.configure(prometheus_port=0)
        agent_otel.configure(prometheus_port=0)
        assert type(trace.get_tracer_provider()).__name__ == "TheirProvider"
    """)
    assert child.returncode == 0, child.stderr
    said = [line for line in child.stdout.splitlines() if "global TracerProvider" in line]
    assert len(said) == 1, child.stdout
    # by its module too: logfire's class is named ProxyTracerProvider, as the API's placeholder is
    assert said[0].startswith("WARNING agent-otel: the global TracerProvider is __main__.TheirProvider, not the "
                              "OpenTelemetry SDK's"), said


def test_export_arguments_beside_a_host_tracer_provider_are_said_not_to_reach_the_spans() -> None:
    """Beside a host's SDK TracerProvider (Sentry's, logfire's), spans go to that provider's exporters: an
    ``otlp_endpoint`` or ``traces_exporter`` given to configure() sent them nowhere, with only the INFO line that the
    host's provider is used. One warning names the arguments (not their values); the endpoint still takes the metrics.
    The bridge's sampler line says what the SDK's default sampler drops: only an unsampled incoming trace's spans."""
    with OtlpHttpReceiver() as receiver:
        child = run_child(f"""
            import logging, sys
            logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(levelname)s %(message)s")
            from opentelemetry import trace
            from opentelemetry.sdk.trace import TracerProvider
            trace.set_tracer_provider(TracerProvider())
            import agent_otel
            agent_otel.configure(otlp_endpoint="{receiver.endpoint}", otlp_protocol="http/protobuf",
                                 metrics_exporter="otlp", prometheus_port=0)
            agent_otel.tool("lookup")(lambda: 1)()
            agent_otel.shutdown()
        """)
        assert child.returncode == 0, child.stderr
        assert receiver.metrics, "the endpoint still takes the metrics"
        assert not receiver.traces
    warned = [line for line in child.stdout.splitlines() if line.startswith("WARNING")]
    assert warned == ["WARNING agent-otel: configure(otlp_endpoint, otlp_protocol) does not reach the spans: they go "
                      "to the exporters of the host's TracerProvider; add an exporter to it to send them there too; "
                      "the metrics go to the endpoint"], warned
    assert receiver.endpoint.split("//")[1] not in child.stdout
    asked_for_none = run_child("""
        import logging, sys
        logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="%(levelname)s %(message)s")
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        trace.set_tracer_provider(TracerProvider())
        import agent_otel
        agent_otel.configure(traces_exporter="none", prometheus_port=0)  # what happens: nothing to say
        agent_otel.shutdown()
    """)
    assert asked_for_none.returncode == 0, asked_for_none.stderr
    assert "WARNING" not in asked_for_none.stdout, asked_for_none.stdout
    sampler_line = [line for line in child.stdout.splitlines() if "sampler" in line]
    expected = ("INFO agent-otel: the span bridge sees only the spans the host's sampler records (the SDK's default, "
                "ParentBased(ALWAYS_ON), drops the spans of a trace that came in unsampled); wrap it in "
                "agent_otel.GenAiMetricsSampler to count the GenAI spans it drops")
    assert sampler_line == [expected], sampler_line


def test_configure_again_names_the_arguments_it_ignores_never_their_values() -> None:
    """The second configure() keeps the first configuration: an argument it sets otherwise is named in one warning
    line (the program learns why its service name or port did not take), a call asking for nothing says nothing."""
    child = run_child("""
        import logging, sys
        logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="%(levelname)s %(message)s")
        import agent_otel
        import os
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        first = agent_otel.configure(prometheus_port=0, service_name="svc-first", metrics_exporter="prometheus")
        print("-- same")
        assert agent_otel.configure(prometheus_port=0, service_name="svc-first") is first
        agent_otel.configure()  # a library's defensive call: asks for nothing
        # what is in effect, said otherwise: the exporters by another spelling, the provider in use, no resource
        agent_otel.configure(metrics_exporter=["Prometheus"], traces_exporter="none", resource=Resource({}),
                             tracer_provider=trace.get_tracer_provider(), otlp_protocol="grpc", span_bridge=True)
        pid = os.fork()
        if pid == 0:  # a worker's post-fork set-up, as the parent's: the child's own configuration, the same asked
            agent_otel.configure(prometheus_port=0, service_name="svc-first", metrics_exporter="prometheus")
            os._exit(0)
        os.waitpid(pid, 0)
        print("-- other")
        assert agent_otel.configure(service_name="svc-second-secret", prometheus_port=0, system_metrics=False) is first
        agent_otel.shutdown()
    """)
    assert child.returncode == 0, child.stderr
    same, other = child.stdout.split("-- same\n")[1].split("-- other\n")
    assert same == "", same
    assert other.splitlines() == ["WARNING agent-otel: configure() was called again with other service_name, "
                                  "system_metrics; the first configuration stays (call shutdown() first to set up "
                                  "again)"], other



def test_global_providers_of_another_kind_that_cannot_be_hashed_are_left_as_they_are() -> None:
    """logfire's proxy providers are dataclasses, whose ``__eq__`` takes their hash away: configure() looked them up
    in a ``WeakSet`` and raised ``TypeError: unhashable type`` into the program (which had set logfire up first, as
    the README asks), leaving a /metrics server running. Providers of another kind than the SDK's stay global;
    agent-otel records through its own, beside them."""
    child = run_child("""
        import dataclasses, json, sys
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.trace import TracerProvider
        import agent_otel

        @dataclasses.dataclass
        class WrappingTracerProvider(trace.TracerProvider):  # as logfire's: a dataclass, so unhashable
            provider: TracerProvider
            def get_tracer(self, *args, **kwargs):
                return self.provider.get_tracer(*args, **kwargs)

        @dataclasses.dataclass
        class WrappingMeterProvider(metrics.MeterProvider):
            provider: MeterProvider
            def get_meter(self, *args, **kwargs):
                return self.provider.get_meter(*args, **kwargs)

        trace.set_tracer_provider(WrappingTracerProvider(TracerProvider()))
        metrics.set_meter_provider(WrappingMeterProvider(MeterProvider()))

        @agent_otel.tool("search")
        def search(query):
            return {"hits": 1}

        telemetry = agent_otel.configure(metrics_exporter="none")
        print(json.dumps([search("q"), type(trace.get_tracer_provider()).__name__,
                          type(metrics.get_meter_provider()).__name__,
                          telemetry.owns_tracer_provider, telemetry.owns_meter_provider]))
        agent_otel.shutdown()
    """)
    assert child.returncode == 0, child.stderr
    assert json.loads(child.stdout) == [{"hits": 1}, "WrappingTracerProvider", "WrappingMeterProvider", True, True]
    assert child.stderr == ""


def test_the_apis_stand_in_providers_are_no_provider() -> None:
    """``configure(tracer_provider=trace.get_tracer_provider())`` before any provider is set passes the API's
    stand-in (a proxy that wraps nothing): it is no provider, as not given, not a provider of another kind."""
    from opentelemetry.metrics import _internal as metrics_internal

    agent_otel.shutdown()
    try:
        telemetry = agent_otel.configure(tracer_provider=trace.ProxyTracerProvider(),
                                         meter_provider=metrics_internal._ProxyMeterProvider(), set_global=False,
                                         metrics_exporter="none")
        assert (telemetry.owns_tracer_provider, telemetry.owns_meter_provider) == (True, True)
    finally:
        agent_otel.shutdown()


def test_a_configure_that_fails_half_way_undoes_it_and_says_one_line(monkeypatch: pytest.MonkeyPatch,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    """A failure of ours late in the set-up (here: the process carriers) raised into the program and left what was
    set up before it running: a /metrics server answering with nothing, instrumentors on. Now it is undone, said in
    one line, and configure() returns; the program goes on without telemetry and a later configure() sets up."""
    import agent_otel._sdk.configure as configure_module

    def broken() -> None:
        raise RuntimeError("a failure of agent-otel's own")

    agent_otel.shutdown()
    port = free_port()
    monkeypatch.setattr(configure_module, "instrument_process_carriers", broken)
    with caplog.at_level(logging.WARNING, "agent_otel"):
        failed = agent_otel.configure(prometheus_port=port, set_global=False)
    assert (failed.settings, failed.prometheus_url, configure_module.current_telemetry()) == (None, None, None)
    assert [record.getMessage() for record in caplog.records] == [
        "agent-otel: configure failed (RuntimeError); the host call was not affected"]
    with socket.socket() as again:  # the server it started is stopped, its port free
        again.bind(("127.0.0.1", port))
    monkeypatch.undo()
    try:
        telemetry = agent_otel.configure(prometheus_port=port, set_global=False)
        assert telemetry.prometheus_url == f"http://127.0.0.1:{port}/metrics"
    finally:
        agent_otel.shutdown()


def test_after_shutdown_the_programs_meters_come_from_the_global_provider_quietly() -> None:
    """The API sets a global provider once, so agent-otel's stays global after shutdown(): the SDK then said "A
    shutdown `MeterProvider` can not provide a `Meter`" on the program's stderr at every get_meter(), another
    library's included. Shut down, it gives a no-op meter, as a program with no provider gets."""
    child = run_child("""
        from opentelemetry import metrics
        import agent_otel

        agent_otel.configure(metrics_exporter="none")
        agent_otel.shutdown()
        for library in ("a.library", "another.library"):
            metrics.get_meter(library).create_counter("requests").add(1)
        print("done")
    """)
    assert (child.returncode, child.stdout, child.stderr) == (0, "done\n", "")


def test_a_hosts_meter_provider_shut_down_before_agent_otel_is_not_asked_for_a_meter_again(
        caplog: pytest.LogCaptureFixture) -> None:
    """The host shut its meter provider down, then called agent_otel.shutdown(): agent-otel asked it for a meter
    again (for the calls after), and the SDK warned on the program's stderr."""
    from opentelemetry.sdk.metrics import MeterProvider

    agent_otel.shutdown()
    host = MeterProvider()
    agent_otel.configure(tracer_provider=TracerProvider(), meter_provider=host, set_global=False)
    host.shutdown()
    with caplog.at_level(logging.WARNING):
        agent_otel.shutdown()
    assert "can not provide a `Meter`" not in caplog.text


def test_shutdown_flushes_pending_spans() -> None:
    agent_otel.shutdown()
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=3_600_000))
    agent_otel.configure(tracer_provider=tracer_provider, set_global=False, system_metrics=False,
                         metrics_exporter="none")
    with agent_otel.job("flush-me"):
        pass
    assert exporter.get_finished_spans() == ()
    agent_otel.shutdown()
    assert [s.attributes["job.id"] for s in exporter.get_finished_spans()] == ["flush-me"]


def test_sdk_disabled_makes_configure_and_wrappers_inert(monkeypatch: pytest.MonkeyPatch,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    agent_otel.shutdown()
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    telemetry = agent_otel.configure()
    assert telemetry.settings is None and telemetry.prometheus_url is None
    assert runtime().enabled is False

    @agent_otel.job("x")
    def work() -> int:
        return 5

    with caplog.at_level(logging.WARNING):
        assert work() == 5
        with agent_otel.job("y") as j:
            assert j.id is None
            assert agent_otel.current_job_id() is None
    agent_otel.shutdown()


@pytest.mark.parametrize(("value", "disabled"), [("TRUE", True), (" true ", True), ("1", False), ("on", False),
                                               ("maybe", False), ("", False)])
def test_otel_sdk_disabled_is_read_as_the_sdk_reads_it(monkeypatch: pytest.MonkeyPatch, value: str,
                                                       disabled: bool) -> None:
    """The specification's boolean: true is ``true`` in any case, anything else is false. Read as agent-otel's own
    switches, ``1`` or ``on`` turned agent-otel off while the SDK went on exporting the program's spans (the job id
    gone from them), and ``maybe`` made configure() raise where the SDK runs."""
    agent_otel.shutdown()
    monkeypatch.setenv("OTEL_SDK_DISABLED", value)
    telemetry = agent_otel.configure(metrics_exporter="none", traces_exporter="none", system_metrics=False,
                                     set_global=False)  # the process's global providers stay the tests' own
    try:
        assert TracerProvider()._disabled is disabled  # the SDK's own reading, beside ours
        assert (telemetry.settings is None, runtime().enabled) == (disabled, not disabled)
    finally:
        agent_otel.shutdown()


def test_traceparent_from_the_environment_is_continued() -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    child = run_child("""
        import json, agent_otel
        from opentelemetry import trace
        agent_otel.configure(metrics_exporter="none", system_metrics=False)
        ctx = trace.get_current_span().get_span_context()
        print(json.dumps({"trace_id": format(ctx.trace_id, "032x"), "job": agent_otel.current_job_id()}))
        agent_otel.shutdown()
    """, TRACEPARENT=f"00-{trace_id}-00f067aa0ba902b7-01", BAGGAGE="job.id=from-parent")
    assert child.returncode == 0, child.stderr
    assert json.loads(child.stdout) == {"trace_id": trace_id, "job": "from-parent"}


def test_the_parents_context_is_taken_back_at_shutdown_where_plain_python_would_and_nothing_is_printed() -> None:
    """``configure()`` makes the parent process's context current (``TRACEPARENT``/``BAGGAGE``: every Python child
    started in a job has them). ``shutdown()`` at the end of an async main, or the exit flush of a SIGTERM that
    uvicorn re-raises in its task, detached it from the task's copy of the Context: OpenTelemetry printed "Failed to
    detach context" and a traceback on stderr (Prefect's ephemeral API server did on every run). It is left there
    now; in the Context it was attached in it is taken back, unless the program's own is current above it."""
    setup = """
        import asyncio, agent_otel
        from opentelemetry import trace
        agent_otel.configure(metrics_exporter="none", traces_exporter="none", system_metrics=False)
    """
    programs = {
        "in a task": """
            async def main():
                agent_otel.shutdown()  # in the task's copy of the Context
                return agent_otel.current_job_id()
            print(asyncio.run(main()), agent_otel.current_job_id())  # the main Context keeps it
        """,
        "under the program's span": """
            with trace.get_tracer("program").start_as_current_span("own"):
                agent_otel.shutdown()  # left: the block's exit finds its span current, as plain
                print(agent_otel.current_job_id(), trace.get_current_span().name)
        """,
        "where it was attached": """
            agent_otel.shutdown()
            print(agent_otel.current_job_id(), trace.get_current_span().get_span_context().is_valid)
        """,
    }
    printed = {}
    for where, program in programs.items():
        child = run_child(textwrap.dedent(setup) + textwrap.dedent(program),
                          TRACEPARENT="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                          BAGGAGE="job.id=from-parent")
        assert (child.returncode, child.stderr) == (0, ""), where
        printed[where] = child.stdout.strip()
    assert printed == {"in a task": "from-parent from-parent", "under the program's span": "from-parent own",
                       "where it was attached": "None False"}


def test_metrics_endpoint_is_reachable_while_configured() -> None:
    port = free_port()
    child = run_child(f"""
        import agent_otel, urllib.request
        t = agent_otel.configure(prometheus_port={port})
        print(urllib.request.urlopen(t.prometheus_url, timeout=10).status)
        agent_otel.shutdown()
        try:
            urllib.request.urlopen(t.prometheus_url, timeout=2)
            print("still up")
        except OSError:
            print("closed")
    """)
    assert child.returncode == 0, child.stderr
    assert child.stdout.split() == ["200", "closed"]


def test_a_filtered_scrape_answers_with_the_series_it_names() -> None:
    """``/metrics?name[]=...`` is prometheus_client's filter on sample names. Before, it answered with nothing
    at all: the registry left out our collector, which names no series up front."""
    child = run_child("""
        import agent_otel, urllib.request
        t = agent_otel.configure(prometheus_port=0, traces_exporter="none", system_metrics=False)
        agent_otel.tool("search")(lambda: {"success": True})()
        for query in ("?name[]=gen_ai_execute_tool_duration_seconds_count", "?name[]=target_info"):
            body = urllib.request.urlopen(t.prometheus_url + query, timeout=10).read().decode()
            print(sorted({line.split("{")[0] for line in body.splitlines() if not line.startswith("#")}))
        agent_otel.shutdown()
    """)
    assert child.returncode == 0, child.stderr
    assert child.stdout.splitlines() == ["['gen_ai_execute_tool_duration_seconds_count']", "['target_info']"]


def test_each_signal_reads_its_own_otlp_variables_over_the_generic_ones() -> None:
    """The OTLP exporter spec's per-signal variables: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` alone turns OTLP traces
    on (it exported nothing before), used as it is; a signal's protocol variable wins over the generic one; the
    `otlp_endpoint` argument wins over the environment for every signal."""
    only_traces = resolve_settings(env={"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://tempo:4318/v1/traces"})
    assert only_traces.traces_exporters == ("otlp",) and only_traces.metrics_exporters == ("prometheus",)
    assert only_traces.otlp_signals == {"traces": ("http://tempo:4318/v1/traces", "http/protobuf")}
    split = resolve_settings(env={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
                                  "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://tempo:4317",
                                  "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"})
    assert split.otlp_signals == {"traces": ("http://tempo:4317", "grpc"),
                                  "metrics": ("http://collector:4318/v1/metrics", "http/protobuf")}
    argument = resolve_settings(otlp_endpoint="http://c:4317",
                                env={"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://tempo:4318/v1/traces"})
    assert argument.otlp_signals == {"traces": ("http://c:4317", "grpc"), "metrics": ("http://c:4317", "grpc")}
    for variable, value in (("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "tempo:4317"),
                            ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "udp")):
        with pytest.raises(ConfigurationError, match=f"^{variable}={value!r}: "):
            resolve_settings(env={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", variable: value})


def test_a_hashed_key_among_the_resource_attributes_is_hashed_on_every_span() -> None:
    """``OTEL_RESOURCE_ATTRIBUTES=user.id=...`` went with every span in clear (the metrics already dropped it)."""
    child = run_child("""
        import agent_otel
        from opentelemetry import trace
        agent_otel.configure(traces_exporter="none", metrics_exporter="none", system_metrics=False)
        print(trace.get_tracer_provider().resource.attributes["user.id"])
        agent_otel.shutdown()
    """, OTEL_RESOURCE_ATTRIBUTES="user.id=alice")
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == hashlib.sha256(b"alice").hexdigest()


@pytest.mark.parametrize("program", [
    "from agent_otel.testing import capture_telemetry\nCAPTURE = capture_telemetry()\nCAPTURE.__enter__()\n",
    "import agent_otel\nagent_otel.configure()\n"
    "class Closer:\n    def __del__(self):\n        agent_otel.shutdown()\n"
    "CLOSER = Closer()\nCLOSER.cycle = CLOSER\n",
])
def test_a_shutdown_the_interpreters_finalization_runs_does_not_hang_the_exit(program: str) -> None:
    """A shutdown() that runs while the interpreter finalizes (a test helper's generator closed by the garbage
    collector, a host object's ``__del__``): it started threads for its steps, which never start then, and waited
    for them for ever: the process hung at exit, and SIGTERM did not end it."""
    result = subprocess.run([sys.executable, "-c", program], env={**CLEAN_ENV, "OTEL_TRACES_EXPORTER": "none",
                                                                  "OTEL_METRICS_EXPORTER": "none"},
                            capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


@pytest.mark.parametrize(("env", "message"), [
    ({"OTEL_METRICS_EXEMPLAR_FILTER": "bogus"},
     "OTEL_METRICS_EXEMPLAR_FILTER='bogus': expected one of always_on, always_off, trace_based"),
    ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
      "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "99999"},
     "OTEL_BSP_MAX_EXPORT_BATCH_SIZE=99999 is above OTEL_BSP_MAX_QUEUE_SIZE=2048: a batch is taken from the queue"),
    *(({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", name: value},
       f"{name}={value}: expected a positive integer")
      for name, value in (("OTEL_BSP_MAX_QUEUE_SIZE", "0"), ("OTEL_BSP_SCHEDULE_DELAY", "-1"),
                          ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "0"))),
    # the console exporter gets a batch processor too: the SDK's bare ValueError, exit status 1 under agent-otel run
    ({"OTEL_TRACES_EXPORTER": "console", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "1000", "OTEL_BSP_MAX_QUEUE_SIZE": "10"},
     "OTEL_BSP_MAX_EXPORT_BATCH_SIZE=1000 is above OTEL_BSP_MAX_QUEUE_SIZE=10: a batch is taken from the queue"),
    ({"OTEL_TRACES_EXPORTER": "console", "OTEL_BSP_SCHEDULE_DELAY": "0"},
     "OTEL_BSP_SCHEDULE_DELAY=0: expected a positive integer"),
    # the span limits, read as the tracer provider is built, with no traces exporter too: a bare ValueError out of
    # configure(), a traceback and exit status 1 under agent-otel run
    *(({"OTEL_TRACES_EXPORTER": "none", name: value}, f"{name}={value!r}: expected a non-negative integer (empty: no "
       "limit)") for name, value in (("OTEL_SPAN_EVENT_COUNT_LIMIT", "abc"), ("OTEL_SPAN_LINK_COUNT_LIMIT", "-1"),
                                     ("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "1.5"),
                                     ("OTEL_ATTRIBUTE_COUNT_LIMIT", "unset"))),
])
def test_values_the_sdk_refuses_are_one_configuration_error_naming_the_variable(env: dict[str, str],
                                                                                message: str) -> None:
    """Before, the SDK raised a bare ValueError in the middle of configure() ("Unknown exemplar filter 'bogus'.",
    "max_export_batch_size must be less than or equal to max_queue_size."), naming no variable."""
    with pytest.raises(ConfigurationError) as raised:
        resolve_settings(env=env)
    assert str(raised.value) == message


def test_a_batch_size_above_the_queue_is_no_error_without_a_traces_exporter() -> None:
    """No batch span processor is built then: nothing for the SDK to refuse."""
    settings = resolve_settings(env={"OTEL_TRACES_EXPORTER": "none", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "99999"})
    assert settings.traces_exporters == ()


def test_the_meter_provider_built_beside_a_hosts_tracer_provider_describes_the_hosts_service() -> None:
    """A host that set up only its TracerProvider: its spans said ``checkout-agent`` and the metrics agent-otel built
    the provider for said ``agent-otel-app``, so an exemplar's trace id pointed into another service. The built
    MeterProvider takes the host's resource (a ``resource`` given to configure() adds to it), and a forked child's
    ``service.instance.id`` is still its own."""
    child = run_child("""
        import json, os, urllib.request
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        import agent_otel
        trace.set_tracer_provider(TracerProvider(resource=Resource.create({"service.name": "checkout-agent"})))
        telemetry = agent_otel.configure(prometheus_port=0, resource=Resource({"team": "payments"}),
                                         system_metrics=False)
        resource = dict(telemetry.meter_provider._sdk_config.resource.attributes)
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            forked = agent_otel._sdk.configure.current_telemetry().meter_provider._sdk_config.resource
            os.write(write, json.dumps([forked.attributes[key] for key in ("service.name", "service.instance.id")]
                                       ).encode())
            os._exit(0)
        os.waitpid(pid, 0)
        print(json.dumps([resource, json.loads(os.read(read, 500))]))
    """)
    assert child.returncode == 0, child.stderr
    resource, (forked_service, forked_instance) = json.loads(child.stdout)
    assert (resource["service.name"], resource["team"]) == ("checkout-agent", "payments")
    assert (forked_service, forked_instance != resource["service.instance.id"]) == ("checkout-agent", True)


@pytest.mark.parametrize("named", [True, False])
def test_a_hosts_tracer_provider_without_a_service_name_leaves_configures_own(named: bool) -> None:
    """The SDK names a resource made without one ``unknown_service:python``: that placeholder took the place of the
    service_name given to configure() on the metrics. Given none, the metrics keep the host's placeholder, as its
    spans do: they said ``agent-otel-app``, another service than the spans of the same process."""
    child = run_child(f"""
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        import agent_otel
        trace.set_tracer_provider(TracerProvider())
        telemetry = agent_otel.configure({'service_name="my-agent", ' if named else ''}metrics_exporter="none",
                                         system_metrics=False)
        print(telemetry.meter_provider._sdk_config.resource.attributes["service.name"],
              trace.get_tracer_provider().resource.attributes["service.name"])
    """)
    assert (child.returncode, child.stdout) == (
        0, "my-agent unknown_service:python\n" if named else "unknown_service:python unknown_service:python\n"), (
        child.stderr)


def test_a_program_that_joins_every_thread_it_finds_is_not_held_by_agent_otels() -> None:
    """``for t in threading.enumerate(): t.join()`` waited for ever for the /metrics server's thread, which runs
    for the process's life (and the resource sampler's while sampled calls ran): without agent-otel they do not exist.
    Listed as any thread, they return at once from the program's join."""
    child = run_child("""
        import threading, agent_otel
        agent_otel.configure(prometheus_port=0, traces_exporter="none")

        started = threading.Barrier(4)

        @agent_otel.agent("sampled", sample_resources=True)
        def work():
            started.wait()  # each call's sampler runs by now
            started.wait()  # and until the program has listed the threads

        for index in range(3):
            threading.Thread(target=work).start()
        started.wait()
        threads = threading.enumerate()
        started.wait()
        assert sum(thread.name == "agent-otel-resource-sampler" for thread in threads) == 1  # one for the 3 calls
        for thread in threads:
            if thread is not threading.main_thread():
                thread.join()
        print("all threads done", any(t.name == "agent-otel-metrics" for t in threading.enumerate()))
    """)
    assert (child.returncode, child.stdout, child.stderr) == (0, "all threads done True\n", "")


#: A program that turns the threading instrumentation on itself, as strands' tracer does when it is made.
THREADS_ON_BY_THE_PROGRAM = """
    import os, threading
    if os.environ.get("WITH_AGENT_OTEL"):
        import agent_otel
        agent_otel.configure(metrics_exporter="none", traces_exporter="none")
    from opentelemetry import trace
    from opentelemetry.instrumentation.threading import ThreadingInstrumentor
    ThreadingInstrumentor().instrument()
    seen = []
    with trace.get_tracer("app").start_as_current_span("parent") as parent:
        thread = threading.Thread(target=lambda: seen.append(trace.get_current_span() is parent))
        thread.start()
        thread.join()
    if os.environ.get("TURN_OFF"):
        ThreadingInstrumentor().uninstrument()
    if os.environ.get("AGAIN"):
        ThreadingInstrumentor().instrument()
    if os.environ.get("WITH_AGENT_OTEL"):
        agent_otel.shutdown()
    with trace.get_tracer("app").start_as_current_span("parent") as parent:  # and after agent-otel's shutdown
        thread = threading.Thread(target=lambda: seen.append(trace.get_current_span() is parent))
        thread.start()
        thread.join()
    print(seen, ThreadingInstrumentor().is_instrumented_by_opentelemetry)
"""


GEVENT_THREAD_IN_A_LIBRARYS_RUN = """
    from gevent import monkey
    monkey.patch_all()
    import threading
    import agent_otel
    from agent_otel import semconv
    from agent_otel.testing import capture_telemetry
    from opentelemetry import context, trace
    with capture_telemetry() as capture:
        run = capture.tracer_provider.get_tracer("opentelemetry.instrumentation.somelib").start_span(
            "invoke_workflow team", attributes={semconv.GEN_AI_OPERATION_NAME: "invoke_workflow"})
        kept = trace.set_span_in_context(run)  # the library's, made current again for its steps

        @agent_otel.tool("lookup")
        def lookup():
            return "found"

        def step():
            token = context.attach(kept)
            try:
                lookup()
            finally:
                context.detach(token)

        @agent_otel.agent("worker")
        def worker():
            thread = threading.Thread(target=step)
            thread.start()
            thread.join()

        token = context.attach(kept)
        worker()
        context.detach(token)
        run.end()
        print([p.attributes.get(semconv.GEN_AI_AGENT_NAME) for p in capture.points(semconv.TOOL_DURATION.name)])
"""


def test_a_thread_under_gevent_carries_the_calls_it_was_made_inside() -> None:
    """gevent's ``patch_all()`` makes ``threading.Thread`` a class of its own that defines none of the methods
    agent-otel patches: they are patched where the standard library's class defines them (nothing was, and a
    thread made inside an agent in a library's run counted its tool for no agent)."""
    done = run_child(GEVENT_THREAD_IN_A_LIBRARYS_RUN)
    assert (done.returncode, done.stdout, done.stderr) == (0, "['worker']\n", "")


GEVENT_TIMER = """
    from gevent import monkey
    monkey.patch_all()
    import os, threading
    if os.environ.get("WITH_AGENT_OTEL"):
        import agent_otel
        agent_otel.configure(metrics_exporter="none", traces_exporter="none")
    ran = []
    timer = threading.Timer(0.01, lambda: ran.append(1))
    timer.start()
    timer.join()
    print(ran)
"""


def test_a_timer_under_gevent_calls_its_function() -> None:
    """Under gevent's ``patch_all()``, the threading instrumentation wraps gevent's ``Timer.run`` with the
    ``Thread.run`` it finds through gevent's ``Thread``: the timer never called its function. agent-otel takes the
    instrumentation's ``run`` wrappers away (its own patch carries the context), and from a class that defined none,
    leaves none."""
    plain = run_child(GEVENT_TIMER)
    ours = run_child(GEVENT_TIMER, WITH_AGENT_OTEL="1")
    assert (ours.returncode, ours.stdout, ours.stderr) == (plain.returncode, plain.stdout, plain.stderr) == (
        0, "[1]\n", "")


EXIT_HOOKS_AFTER_A_NOTED_THREAD = """
    import atexit, os, tempfile, threading
    if os.environ.get("WITH_AGENT_OTEL"):
        import agent_otel
        from agent_otel import semconv
        from opentelemetry import trace
        agent_otel.configure(metrics_exporter="none", traces_exporter="none")
        run = trace.get_tracer("opentelemetry.instrumentation.somelib").start_span(
            "invoke_workflow team", attributes={semconv.GEN_AI_OPERATION_NAME: "invoke_workflow"})
        agent = agent_otel.agent("worker")
    else:
        agent = lambda function: function

    @agent
    def worker():
        thread = threading.Thread(target=lambda: None)
        thread.start()
        thread.join()

    worker()
    kept = {}
    atexit.register(lambda: print("directory there at exit:", os.path.exists(kept["directory"].name)))
    kept["directory"] = tempfile.TemporaryDirectory()  # its cleanup: weakref.finalize's exit hook, registered now
"""


def test_a_thread_made_inside_a_noted_call_leaves_the_programs_exit_hooks_in_their_order() -> None:
    """A thread made inside a call of ours while another library's span is open carries the call's note; the first
    ``weakref.finalize`` that kept it aside registered weakref's exit hook before the program's, so the program's
    temporary directory was still there when its own exit hook ran (removed first without agent-otel)."""
    plain = run_child(EXIT_HOOKS_AFTER_A_NOTED_THREAD)
    ours = run_child(EXIT_HOOKS_AFTER_A_NOTED_THREAD, WITH_AGENT_OTEL="1")
    assert (ours.returncode, ours.stdout, ours.stderr) == (plain.returncode, plain.stdout, plain.stderr) == (
        0, "directory there at exit: False\n", "")


def test_the_thread_patches_patch_nothing_where_no_class_defines_their_methods(monkeypatch: pytest.MonkeyPatch) -> None:
    """``Thread._bootstrap_inner`` is CPython's: where it is absent, nothing is patched (the patches raised)."""
    from agent_otel._context import carriers

    monkeypatch.delattr(threading.Thread, "_bootstrap_inner")
    carriers.instrument_thread_subclasses()
    carriers.unwrap_instrumented_thread_run()
    carriers.uninstrument_thread_subclasses()
    assert not hasattr(threading.Thread, "_bootstrap_inner")


def test_the_programs_own_threading_instrumentation_after_configure_says_nothing() -> None:
    """configure() turns the threading instrumentation on; the program's own ``instrument()`` after it (strands) made
    the instrumentor print "Attempting to instrument while already instrumented" on the program's stderr, which
    without agent-otel it does not. Threads carry the context either way; the program's ``uninstrument()`` turns it
    off (and agent-otel's shutdown says nothing of it), and agent-otel's shutdown leaves the program's on, threads
    carrying the context after it too (the review: they did not, agent-otel's own carrier gone with it)."""
    for turn_off, again in (("", ""), ("1", "1")):
        plain = run_child(THREADS_ON_BY_THE_PROGRAM, TURN_OFF=turn_off, AGAIN=again)
        ours = run_child(THREADS_ON_BY_THE_PROGRAM, TURN_OFF=turn_off, AGAIN=again, WITH_AGENT_OTEL="1")
        assert (ours.returncode, ours.stdout, ours.stderr) == (plain.returncode, plain.stdout, plain.stderr)
        assert (plain.stdout, plain.stderr) == ("[True, True] True\n", "")
    # Turned off by the program and left off: off, and nothing said. (A thread started after it still carries the
    # context without agent-otel, as the instrumentation's uninstrument() leaves it; after agent-otel's shutdown, not.)
    plain = run_child(THREADS_ON_BY_THE_PROGRAM, TURN_OFF="1")
    ours = run_child(THREADS_ON_BY_THE_PROGRAM, TURN_OFF="1", WITH_AGENT_OTEL="1")
    assert (ours.returncode, ours.stdout.split("] ")[1], ours.stderr) == (0, "False\n", "") == (
        plain.returncode, plain.stdout.split("] ")[1], plain.stderr)


def test_trace_ids_neither_follow_nor_move_the_hosts_random_stream() -> None:
    """The SDK's default id generator draws from the global ``random``: a program that seeds it for a reproducible run
    (openevolve does, by default) got the same trace and span ids in every run, and other numbers of its own than
    without agent-otel (two draws per span, and one per measurement of a counter in a recorded span after its first
    in a collection, for its exemplar). The providers agent-otel builds (``configure()``'s, a capture's) draw ids from
    a generator of agent-otel's own, as job ids do (a forked child draws others than its parent), and a counter keeps
    its latest exemplar."""
    program = """
        import json, os, random
        import agent_otel
        from agent_otel.testing import capture_telemetry
        from opentelemetry import trace

        @agent_otel.agent("planner")
        def plan():
            context = trace.get_current_span().get_span_context()
            return {"success": True, "fixes_applied": 2, "ids": (context.trace_id, context.span_id)}

        def run():
            random.seed(42)
            ids = [plan()["ids"] for _ in range(3)][0]  # (a counter's second exemplar in a collection drew too)
            return ids, [random.random() for _ in range(3)]

        random.seed(42)
        plain = [random.random() for _ in range(3)]
        agent_otel.configure(prometheus_port=0)
        (first, draws), (second, _) = run(), run()
        read, write = os.pipe()
        if os.fork() == 0:
            os.write(write, json.dumps(run()[0]).encode())
            os._exit(0)
        os.close(write)
        child = tuple(json.loads(os.read(read, 200)))
        agent_otel.shutdown()
        with capture_telemetry():
            (captured, capture_draws), (captured_again, _) = run(), run()
        print(json.dumps({"draws": draws == plain == capture_draws, "runs": first != second,
                          "spans": first[1] != second[1], "fork": child != first and child != second,
                          "capture": captured != captured_again and captured[0] != 0}))
    """
    result = run_child(program)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"draws": True, "runs": True, "spans": True, "fork": True, "capture": True}


def test_two_libraries_counters_of_one_name_say_nothing_on_stderr() -> None:
    """The exemplar views above match every counter, and a view that matches makes the SDK compare the instrument with
    every one matched before, by name: two libraries' counters of one name, each on a meter of its own (Google ADK's
    token counters beside agent-otel's, probe p50b), printed "Views ... will cause conflicting metrics identities"
    on the program's stderr, which the SDK alone (its default view) never does. Quiet, and both still counted."""
    program = """
        from opentelemetry import metrics
        import agent_otel
        from agent_otel.testing import capture_telemetry

        agent_otel.configure(prometheus_port=0)
        for library in ("lib.a", "lib.b"):
            metrics.get_meter(library).create_counter("requests").add(1)
            metrics.get_meter(library).create_up_down_counter("in_flight").add(1)
        agent_otel.shutdown()
        with capture_telemetry() as telemetry:
            for library in ("lib.c", "lib.d"):
                telemetry.meter_provider.get_meter(library).create_counter("requests").add(2)
            data = telemetry.reader.get_metrics_data()
            print(sorted((scope.scope.name, point.value) for resource in data.resource_metrics
                         for scope in resource.scope_metrics for metric in scope.metrics if metric.name == "requests"
                         for point in metric.data.data_points))
    """
    result = run_child(program)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.strip() == "[('lib.c', 2), ('lib.d', 2)]"
