"""Collector configs (agent and gateway), our Collector's manifest, and compose.yaml.

The real check is `otelcol-agent-otel validate` (bin/, built by `make collector` before the tests) on both
configs; the wiring rules and the YAML shape below say what the configs are meant to do, and why.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from agent_otel import semconv
from tests.support.ops import ALERTS, COLLECTOR, collector_binary, load_yaml
from tests.support.paths import ROOT

CONFIGS = {name: COLLECTOR / name for name in ("otelcol.yaml", "gateway.yaml", "agent-to-gateway.yaml")}
#: The configs whose metrics pipeline translates to Prometheus names (agent-to-gateway.yaml forwards OTLP).
TRANSLATING = ("otelcol.yaml", "gateway.yaml")
KINDS = ("receivers", "processors", "exporters", "connectors")
SIGNALS = ("traces", "metrics", "logs")
#: The one Collector release of collector-config/ (core v0.161.0 with its v1.67.0 modules, contrib v0.161.0).
VERSION = "0.161.0"
STABLE_VERSION = "1.67.0"
BUILD = ROOT / "collector-config"
#: What validate needs from the environment of each config.
VALIDATE_ENV = {"OTEL_TRACES_BACKEND_ENDPOINT": "localhost:14317", "OTEL_TRACES_BACKEND_INSECURE": "true",
                "AGENT_OTEL_HASH_SALT": "salt", "GATEWAY_SAMPLING_HOSTNAME": "localhost",
                "PROMETHEUS_REMOTE_WRITE_ENDPOINT": "http://localhost:19090/api/v1/write"}
#: Keys of the 0.161.0 Prometheus exporter that the agent may set (contrib exporter/prometheusexporter/config.go),
#: without the deprecated add_metric_suffixes and resource_to_telemetry_conversion.
PROMETHEUS_EXPORTER_KEYS = {"endpoint", "tls", "const_labels", "namespace", "send_timestamps", "metric_expiration",
                            "resource_constant_labels", "enable_open_metrics", "translation_strategy",
                            "without_scope_info"}
DEPRECATED_KEYS = {"add_metric_suffixes", "resource_to_telemetry_conversion"}


def ctype(component_id: str) -> str:
    return component_id.split("/", 1)[0]


def wiring_problems(config: dict) -> list[str]:
    """What `otelcol validate` would reject in the wiring of a config (and a little more)."""
    problems = []
    service = config.get("service", {})
    pipelines = service.get("pipelines", {})
    if not pipelines:
        problems.append("no pipelines")
    for extension in service.get("extensions", []):
        if extension not in config.get("extensions", {}):
            problems.append(f"extension {extension} used but not defined")
    for name in config.get("extensions", {}):
        if name not in service.get("extensions", []):
            problems.append(f"extension {name} defined but not enabled")
    used: dict[str, set[str]] = {kind: set() for kind in KINDS}
    connector_as_exporter: dict[str, set[str]] = {}
    connector_as_receiver: dict[str, set[str]] = {}
    connectors = config.get("connectors", {}) or {}
    for name, pipeline in pipelines.items():
        if ctype(name) not in SIGNALS:
            problems.append(f"pipeline {name}: unknown signal")
        if not pipeline.get("receivers"):
            problems.append(f"pipeline {name}: no receivers")
        if not pipeline.get("exporters"):
            problems.append(f"pipeline {name}: no exporters")
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline.get(kind, []):
                if kind != "processors" and component in connectors:
                    used["connectors"].add(component)
                    side = connector_as_receiver if kind == "receivers" else connector_as_exporter
                    side.setdefault(component, set()).add(ctype(name))
                elif component not in (config.get(kind) or {}):
                    problems.append(f"pipeline {name}: {kind[:-1]} {component} is not defined")
                else:
                    used[kind].add(component)
        processors = pipeline.get("processors", [])
        if processors and ctype(processors[0]) != "memory_limiter":
            problems.append(f"pipeline {name}: memory_limiter must come first")
        if "memory_limiter" not in processors:
            problems.append(f"pipeline {name}: no memory_limiter")
        if any(ctype(p) == "batch" for p in processors):
            problems.append(f"pipeline {name}: batch processor (exporters batch in their sending_queue)")
    for connector in connectors:
        if connector not in connector_as_exporter or connector not in connector_as_receiver:
            problems.append(f"connector {connector} must be an exporter in one pipeline and a receiver in another")
    for kind in KINDS:
        for name in (config.get(kind) or {}):
            if name not in used[kind]:
                problems.append(f"{kind[:-1]} {name} is defined but unused")
    return problems


@pytest.mark.parametrize("name", CONFIGS)
def test_wiring(name):
    assert wiring_problems(load_yaml(CONFIGS[name])) == []


@pytest.mark.parametrize(
    ("mutation", "expected"),
    [
        (lambda c: c["service"]["pipelines"]["metrics"]["processors"].reverse(), "memory_limiter must come first"),
        (lambda c: c["service"]["pipelines"]["metrics"]["exporters"].append("otlp/nowhere"), "is not defined"),
        (lambda c: c["service"]["pipelines"]["metrics"].update(receivers=[]), "no receivers"),
        (lambda c: c.setdefault("connectors", {}).update({"spanmetrics": {}}) or
         c["service"]["pipelines"]["traces"]["exporters"].append("spanmetrics"), "connector spanmetrics must be"),
        (lambda c: c["exporters"].update({"debug": {}}), "debug is defined but unused"),
    ],
    ids=["order", "undefined", "no-receivers", "half-connector", "unused"],
)
def test_wiring_check_catches(mutation, expected):
    """The checker is not vacuous: each broken variant of the agent config is reported."""
    config = load_yaml(CONFIGS["otelcol.yaml"])
    mutation(config)
    assert any(expected in p for p in wiring_problems(config)), wiring_problems(config)


def validate(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([collector_binary(), "validate", f"--config={config}"],
                          env={**os.environ, **VALIDATE_ENV}, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("name", CONFIGS)
def test_our_collector_validates(name):
    result = validate(CONFIGS[name])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("mutation", "expected"),
    [
        (lambda c: c["processors"].update(batch={}) or c["service"]["pipelines"]["metrics"]["processors"]
         .append("batch"), 'unknown type: "batch"'),
        (lambda c: c["exporters"]["prometheus"].update(translation_strategy="Dots"), "invalid translation_strategy"),
        (lambda c: c["service"]["pipelines"]["traces"]["exporters"].append("otlp_grpc/nowhere"), "otlp_grpc/nowhere"),
    ],
    ids=["component-not-built-in", "bad-value", "undefined"],
)
def test_validate_is_not_vacuous(mutation, expected, tmp_path):
    config = load_yaml(CONFIGS["otelcol.yaml"])
    mutation(config)
    broken = tmp_path / "otelcol.yaml"
    broken.write_text(yaml.safe_dump(config))
    result = validate(broken)
    assert result.returncode != 0 and expected in result.stdout + result.stderr, result.stdout + result.stderr


def used_components(config: dict) -> set[tuple[str, str]]:
    return {(kind, ctype(name)) for kind in (*KINDS, "extensions") for name in config.get(kind) or {}}


def built_components() -> dict[tuple[str, str], str]:
    """(kind, type) -> "module version" of every component in bin/otelcol-agent-otel (its `components`)."""
    listing = yaml.safe_load(subprocess.run([collector_binary(), "components"], capture_output=True, text=True,
                                            timeout=60, check=True).stdout)
    return {(kind, component["name"]): component["module"]
            for kind in (*KINDS, "extensions") for component in listing.get(kind) or []}


def test_our_collector_has_exactly_the_components_the_configs_use():
    built = built_components()
    used = set().union(*(used_components(load_yaml(path)) for path in CONFIGS.values()))
    assert set(built) == used
    manifest = load_yaml(BUILD / "builder-config.yaml")
    listed = {entry["gomod"] for kind in (*KINDS, "extensions") for entry in manifest.get(kind) or []}
    assert listed == set(built.values()), "builder-config.yaml and components.go list different modules"


def test_one_collector_release_throughout():
    manifest = load_yaml(BUILD / "builder-config.yaml")
    assert manifest["dist"]["version"].startswith(VERSION)
    gomods = [entry["gomod"] for kind in (*KINDS, "extensions", "providers") for entry in manifest.get(kind) or []]
    assert gomods and all(gomod.split()[1] in (f"v{VERSION}", f"v{STABLE_VERSION}") for gomod in gomods), gomods
    go_mod = (BUILD / "go.mod").read_text()
    for gomod in gomods:
        assert re.search(rf"^\s+{re.escape(gomod)}$", go_mod, re.M), f"go.mod does not require {gomod}"
    collector_modules = re.findall(r"^\s+((?:go\.opentelemetry\.io/collector|github\.com/open-telemetry/"
                                   r"opentelemetry-collector-contrib)\S*) (\S+)", go_mod, re.M)
    assert collector_modules
    assert {version for _, version in collector_modules} == {f"v{VERSION}", f"v{STABLE_VERSION}"}


@pytest.mark.parametrize("name", CONFIGS)
def test_version_is_pinned(name):
    assert f"Collector release {VERSION}" in CONFIGS[name].read_text()
    image = load_yaml(ROOT / "compose.yaml")["services"]["otel-collector"]["image"]
    assert image == f"otel/opentelemetry-collector-contrib:{VERSION}"


@pytest.mark.parametrize("name", CONFIGS)
def test_otlp_receivers_listen_on_the_sdk_default_ports(name):
    protocols = load_yaml(CONFIGS[name])["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert protocols["http"]["endpoint"] == "0.0.0.0:4318"


@pytest.mark.parametrize("name", CONFIGS)
def test_placeholders_are_env_references(name):
    text = CONFIGS[name].read_text()
    placeholders = re.findall(r"\$\{([^}]*)\}", text)
    assert placeholders
    for placeholder in placeholders:
        assert re.fullmatch(r"env:[A-Z][A-Z0-9_]*(:-[^}]*)?", placeholder), placeholder
    config = load_yaml(CONFIGS[name])
    for exporter_id, exporter in config["exporters"].items():
        endpoint = exporter.get("endpoint") or (exporter.get("http") or {}).get("endpoint")
        if endpoint and ctype(exporter_id) != "prometheus":
            assert endpoint.startswith("${env:"), f"{exporter_id}: remote endpoint must come from the environment"


@pytest.mark.parametrize("name", CONFIGS)
def test_memory_limiter_and_health_check(name):
    config = load_yaml(CONFIGS[name])
    limiter = config["processors"]["memory_limiter"]
    assert limiter["check_interval"] and 0 < limiter["spike_limit_percentage"] < limiter["limit_percentage"] <= 90
    assert config["extensions"]["health_check"]["endpoint"] == "0.0.0.0:13133"
    assert "health_check" in config["service"]["extensions"]


def test_agent_prometheus_exporter_yields_the_contract_names():
    config = load_yaml(CONFIGS["otelcol.yaml"])
    exporter = config["exporters"]["prometheus"]
    assert set(exporter) <= PROMETHEUS_EXPORTER_KEYS and not set(exporter) & DEPRECATED_KEYS
    assert exporter["endpoint"] == "0.0.0.0:8889"
    assert exporter["translation_strategy"] == "UnderscoreEscapingWithSuffixes"  # _total, _seconds as in the contract
    assert not exporter.get("resource_constant_labels"), "resource attributes stay on target_info"
    assert not exporter.get("namespace"), "a namespace would prefix every contract name"
    assert exporter["enable_open_metrics"] is True  # exemplars exist only in OpenMetrics
    assert not exporter.get("const_labels")
    scrape = [job for job in load_yaml(ALERTS / "prometheus.yml")["scrape_configs"]
              if job["job_name"] == "agent-otel-collector"]
    assert scrape and scrape[0]["honor_labels"] is True
    assert scrape[0]["static_configs"][0]["targets"] == ["otel-collector:8889"]


def test_agent_pipelines_and_privacy_transform():
    config = load_yaml(CONFIGS["otelcol.yaml"])
    pipelines = config["service"]["pipelines"]
    assert pipelines["metrics"]["exporters"] == ["prometheus"]
    assert pipelines["traces"]["exporters"] == ["otlp_grpc/traces"]
    for pipeline in pipelines.values():
        assert "transform/privacy" in pipeline["processors"]
    queue = config["exporters"]["otlp_grpc/traces"]["sending_queue"]
    assert queue["enabled"] is True and queue["batch"]["flush_timeout"]  # batching in the exporter, not a processor
    transform = config["processors"]["transform/privacy"]
    statements = "\n".join(s for block in transform["trace_statements"] for s in block["statements"])
    assert 'SHA256(Concat(["${env:AGENT_OTEL_HASH_SALT}", attributes["user.id"]], ""))' in statements
    assert "delete_matching_keys" in statements and "input\\\\.messages" in statements
    metric_statements = "\n".join(s for block in transform["metric_statements"] for s in block["statements"])
    assert 'delete_key(attributes, "job.id")' in metric_statements
    assert transform["error_mode"] == "ignore"


@pytest.mark.parametrize("name", ["otelcol.yaml", "agent-to-gateway.yaml"])
def test_the_privacy_net_deletes_every_id_of_the_contract_from_metrics(name):
    """No id is ever a metric label, another library's neither: every key of semconv.ID_ATTRIBUTES, and every id
    the span statements hash, is deleted from each metric data point. Before, only four were: another library's
    counter with gen_ai.agent.id, session.id, enduser.id (raw, while spans carry their hash), span_id or
    agent_otel.workflow.step reached Prometheus as one series per id through the real Collector."""
    transform = load_yaml(CONFIGS[name])["processors"]["transform/privacy"]
    spans = "\n".join(s for block in transform["trace_statements"] for s in block["statements"])
    hashed = set(re.findall(r'set\(attributes\["([^"]+)"\], SHA256', spans))
    assert {"user.id", "session.id", "gen_ai.conversation.id"} <= hashed
    [datapoints] = [block for block in transform["metric_statements"] if block["context"] == "datapoint"]
    deleted = {key for statement in datapoints["statements"]
               for key in re.findall(r'^delete_key\(attributes, "([^"]+)"\)$', statement)}
    assert hashed <= semconv.ID_ATTRIBUTES
    assert deleted == semconv.ID_ATTRIBUTES, (sorted(semconv.ID_ATTRIBUTES - deleted),
                                              sorted(deleted - semconv.ID_ATTRIBUTES))
    # Then the points that differed only by an id are added up (3 requests of 3 users stay 3, not the last 1).
    blocks = transform["metric_statements"]
    assert blocks.index(datapoints) < len(blocks) - 1 and blocks[-1] == {"context": "metric", "statements": [
        'aggregate_on_attributes("sum") where type == METRIC_DATA_TYPE_SUM or type == METRIC_DATA_TYPE_HISTOGRAM'
        ' or type == METRIC_DATA_TYPE_EXPONENTIAL_HISTOGRAM']}


def test_gateway_load_balances_samples_and_remote_writes():
    config = load_yaml(CONFIGS["gateway.yaml"])
    pipelines = config["service"]["pipelines"]
    lb = config["exporters"]["load_balancing"]
    assert lb["routing_key"] == "traceID"
    assert lb["resolver"]["dns"]["port"] == "4319"
    assert config["receivers"]["otlp/sampling"]["protocols"]["grpc"]["endpoint"] == "0.0.0.0:4319"
    assert pipelines["traces/ingest"]["exporters"] == ["load_balancing"]
    assert pipelines["traces/sampling"]["receivers"] == ["otlp/sampling"]
    assert "tail_sampling" in pipelines["traces/sampling"]["processors"]
    policies = {p["type"]: p for p in config["processors"]["tail_sampling"]["policies"]}
    assert policies["status_code"]["status_code"]["status_codes"] == ["ERROR"]
    assert policies["latency"]["latency"]["threshold_ms"] > 0
    failed_jobs = policies["string_attribute"]["string_attribute"]
    assert failed_jobs["key"] == "job.outcome" and set(failed_jobs["values"]) == {"failure", "error"}
    rw = config["exporters"]["prometheus_remote_write"]
    assert pipelines["metrics"]["exporters"] == ["prometheus_remote_write"]
    assert rw["http"]["endpoint"] == "${env:PROMETHEUS_REMOTE_WRITE_ENDPOINT}" and "endpoint" not in rw
    assert rw["translation_strategy"] == "UnderscoreEscapingWithSuffixes" and not set(rw) & DEPRECATED_KEYS
    assert not rw.get("namespace") and not rw.get("resource_constant_labels")


@pytest.mark.parametrize("name", TRANSLATING)
def test_unit_1_gauges_keep_their_contract_names(name):
    """The Collector's translation appends _ratio to unit-"1" gauges, the SDK exporter does not: the metrics
    pipeline must drop that unit so both paths serve e.g. evolution_performance_improvement."""
    from agent_otel import semconv as sc

    gauges = [i for i in sc.INSTRUMENTS if i.kind is sc.Kind.GAUGE and i.unit == "1"]
    assert gauges, "no unit-1 gauge left in the contract: this normalisation can go"
    for gauge in gauges:
        assert not gauge.prometheus.endswith("_ratio")
    config = load_yaml(CONFIGS[name])
    processors = config["service"]["pipelines"]["metrics"]["processors"]
    assert processors[-1] == "transform/contract_names"
    [block] = config["processors"]["transform/contract_names"]["metric_statements"]
    assert block["context"] == "metric"
    assert block["statements"] == ['set(unit, "") where type == METRIC_DATA_TYPE_GAUGE and unit == "1"']


def test_agent_to_gateway_routes_traces_by_trace_id_and_metrics_by_stream():
    """agent-to-gateway.yaml: otelcol.yaml's receivers and privacy net, then every span of a trace to the gateway
    replica that samples it (gateway.yaml's otlp/sampling port) and every series to one replica's OTLP port
    (remote-written once). tests/e2e/test_gateway.py runs it in front of two gateways."""
    config = load_yaml(CONFIGS["agent-to-gateway.yaml"])
    agent = load_yaml(CONFIGS["otelcol.yaml"])
    gateway = load_yaml(CONFIGS["gateway.yaml"])
    pipelines = config["service"]["pipelines"]
    assert config["receivers"] == agent["receivers"]
    assert config["processors"]["transform/privacy"] == agent["processors"]["transform/privacy"]
    assert pipelines["traces"]["processors"] == pipelines["metrics"]["processors"] == ["memory_limiter",
                                                                                       "transform/privacy"]
    assert pipelines["traces"]["exporters"] == ["load_balancing/traces"]
    assert pipelines["metrics"]["exporters"] == ["load_balancing/metrics"]
    traces, metrics = config["exporters"]["load_balancing/traces"], config["exporters"]["load_balancing/metrics"]
    assert traces["routing_key"] == "traceID" and metrics["routing_key"] == "streamID"
    sampling_port = gateway["receivers"]["otlp/sampling"]["protocols"]["grpc"]["endpoint"].rsplit(":", 1)[1]
    ingest_port = gateway["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"].rsplit(":", 1)[1]
    assert traces["resolver"]["dns"]["port"] == sampling_port == gateway["exporters"]["load_balancing"]["resolver"][
        "dns"]["port"]
    assert metrics["resolver"]["dns"]["port"] == ingest_port
    for exporter in (traces, metrics):
        assert exporter["resolver"]["dns"]["hostname"] == "${env:GATEWAY_SAMPLING_HOSTNAME}"
        assert exporter["protocol"]["otlp"]["sending_queue"]["enabled"] is True


def test_job_outcome_key_matches_the_contract():
    from agent_otel import semconv as sc

    assert sc.JOB_OUTCOME == "job.outcome"
    assert {o.value for o in sc.Outcome} >= {"failure", "error"}


# --------------------------------------------------------------------------------------------------
# compose.yaml
# --------------------------------------------------------------------------------------------------

COMPOSE = load_yaml(ROOT / "compose.yaml")


def test_compose_images_are_pinned():
    for name, service in COMPOSE["services"].items():
        image = service["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and re.fullmatch(r"v?\d+\.\d+\.\d+", tag), f"{name}: {image} is not pinned to a version"


def test_compose_services_and_mounts():
    services = COMPOSE["services"]
    assert set(services) >= {"otel-collector", "prometheus", "alertmanager", "grafana", "jaeger"}
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which does not exist"
    collector = services["otel-collector"]
    assert "./src/agent_otel/assets/collector/otelcol.yaml:/etc/otelcol-contrib/otelcol.yaml:ro" in collector["volumes"]
    assert {"4317:4317", "4318:4318"} <= set(collector["ports"])
    assert collector["environment"]["OTEL_TRACES_BACKEND_ENDPOINT"] == "jaeger:4317"


def test_compose_prometheus_uses_our_config_rules_and_exemplars():
    prometheus = COMPOSE["services"]["prometheus"]
    assert "--enable-feature=exemplar-storage" in prometheus["command"]
    assert "--config.file=/etc/agent-otel/alerts/prometheus.yml" in prometheus["command"]
    assert "./src/agent_otel/assets/prometheus:/etc/agent-otel/alerts:ro" in prometheus["volumes"]
    config = load_yaml(ALERTS / "prometheus.yml")
    [am] = config["alerting"]["alertmanagers"]
    assert am["static_configs"][0]["targets"] == ["alertmanager:9093"]
    targets = {t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    for target in targets:
        assert target.split(":")[0] in COMPOSE["services"]


def test_compose_publishes_uis_on_loopback_only():
    for name, service in COMPOSE["services"].items():
        for port in service.get("ports", []):
            if port not in ("4317:4317", "4318:4318"):
                assert port.startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"
