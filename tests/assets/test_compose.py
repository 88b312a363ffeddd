"""compose.yaml runs maintained images, pinned, with the shipped configs.

No images are pulled here (the tests run offline), so this checks the file: each image is a maintained line
at or above the release it was written for, pinned to an exact version; every file a service mounts is one
of the package's assets; and Jaeger v2's config is wired to what the Collector and Grafana expect of it.
The Collector service is checked in test_collector.py.
"""

from __future__ import annotations

import re

import pytest

from tests.support.ops import load_yaml
from tests.support.paths import ASSETS, ROOT

COMPOSE = load_yaml(ROOT / "compose.yaml")
SERVICES = COMPOSE["services"]

#: image -> the oldest release compose.yaml may pin (the one it was written for).
MAINTAINED = {
    "prom/prometheus": (3, 14, 0),
    "prom/alertmanager": (0, 34, 0),
    "grafana/grafana": (12, 4, 0),
    "jaegertracing/jaeger": (2, 20, 0),
}
#: Images that are no longer maintained, with what replaced them.
RETIRED = {"jaegertracing/all-in-one": "jaegertracing/jaeger (Jaeger v2)"}
JAEGER_CONFIG = ASSETS / "jaeger" / "jaeger.yaml"


def image(service: str) -> tuple[str, str]:
    repo, _, tag = SERVICES[service]["image"].rpartition(":")
    return repo, tag


def bind_mounts(service: str) -> list[tuple[str, str]]:
    """(source, target) of each mount from the checkout (named volumes excluded)."""
    mounts = []
    for volume in SERVICES[service].get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            mounts.append((source, target))
    return mounts


@pytest.mark.parametrize("service", sorted(set(SERVICES) - {"otel-collector"}))
def test_images_are_maintained_and_pinned_to_a_release(service: str) -> None:
    repo, tag = image(service)
    assert repo not in RETIRED, f"{service}: {repo} is no longer maintained; use {RETIRED[repo]}"
    assert repo in MAINTAINED, f"{service}: {repo} is not one of the images this stack is written for"
    version = re.fullmatch(r"v?(\d+)\.(\d+)\.(\d+)", tag)
    assert version, f"{service}: {repo}:{tag} is not pinned to a release"
    pinned = tuple(int(part) for part in version.groups())
    assert pinned >= MAINTAINED[repo], f"{service}: {repo}:{tag} is older than {MAINTAINED[repo]}"


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_mounted_config_is_a_shipped_asset(service: str) -> None:
    for source, target in bind_mounts(service):
        path = (ROOT / source).resolve()
        assert path.exists(), f"{service} mounts {source}, which does not exist"
        assert path.is_relative_to(ASSETS), f"{service} mounts {source}, not a file of src/agent_otel/assets"
        assert target.startswith("/"), f"{service} mounts {source} at {target!r}, not an absolute path"


def test_jaeger_v2_runs_the_shipped_config() -> None:
    jaeger = SERVICES["jaeger"]
    [config_flag] = [arg for arg in jaeger["command"] if arg.startswith("--config=")]
    mounted = {target: (ROOT / source).resolve() for source, target in bind_mounts("jaeger")}
    assert mounted[config_flag.removeprefix("--config=")] == JAEGER_CONFIG
    assert "environment" not in jaeger or "COLLECTOR_OTLP_ENABLED" not in jaeger["environment"]  # a v1 setting


def test_jaeger_config_is_wired() -> None:
    """Every component a pipeline or the service uses is defined, every defined one is used, and the storage
    names agree (what `jaeger validate` would reject first)."""
    config = load_yaml(JAEGER_CONFIG)
    service = config["service"]
    assert set(service["extensions"]) == set(config["extensions"])
    [pipeline] = service["pipelines"].values()
    for kind in ("receivers", "processors", "exporters"):
        assert set(pipeline[kind]) == set(config[kind] or {}), kind
    backends = config["extensions"]["jaeger_storage"]["backends"]
    assert config["extensions"]["jaeger_query"]["storage"]["traces"] in backends
    assert config["exporters"]["jaeger_storage_exporter"]["trace_storage"] in backends


def port_of(endpoint: str) -> str:
    return endpoint.rsplit(":", 1)[1]


def test_jaeger_listens_where_the_collector_and_grafana_look() -> None:
    config = load_yaml(JAEGER_CONFIG)
    grpc = config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    backend = SERVICES["otel-collector"]["environment"]["OTEL_TRACES_BACKEND_ENDPOINT"]
    assert backend == f"jaeger:{port_of(grpc)}"
    assert grpc.startswith("0.0.0.0:"), "inside the container Jaeger must listen beyond its own loopback"
    query = config["extensions"]["jaeger_query"]["http"]["endpoint"]
    assert query.startswith("0.0.0.0:")
    assert f"127.0.0.1:{port_of(query)}:{port_of(query)}" in SERVICES["jaeger"]["ports"]
    datasources = load_yaml(next((ASSETS / "grafana" / "provisioning" / "datasources").glob("*.yaml")))
    [jaeger_source] = [ds for ds in datasources["datasources"] if ds["type"] == "jaeger"]
    assert jaeger_source["url"] == f"http://jaeger:{port_of(query)}"
