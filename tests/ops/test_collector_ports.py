"""``on_loopback``: the shipped Collector configs on loopback ports, each endpoint on its own port."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import yaml

from agent_otel._ops import collector
from tests.support.paths import ASSETS


def listening_ports(config: dict[str, Any]) -> list[int]:
    ports = [int(protocol["endpoint"].rsplit(":", 1)[1]) for receiver in config["receivers"].values()
             for protocol in receiver["protocols"].values()]
    ports += [int(exporter["endpoint"].rsplit(":", 1)[1]) for name, exporter in config["exporters"].items()
              if name.split("/")[0] == "prometheus"]
    ports += [int(extension["endpoint"].rsplit(":", 1)[1]) for extension in config.get("extensions", {}).values()]
    ports += [reader["pull"]["exporter"]["prometheus"]["port"]
              for reader in config["service"]["telemetry"]["metrics"]["readers"]]
    return ports


@pytest.mark.parametrize("name", ["otelcol.yaml", "gateway.yaml", "agent-to-gateway.yaml"])
def test_every_endpoint_gets_its_own_port_even_when_the_kernel_repeats_one(name: str,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A port found free is free only until bound, and nothing binds it before the Collector starts: the
    kernel handed the same one to pprof and the OTLP receiver once, and the Collector (of a test, or of
    `agent-otel demo --collector`) exited with 'address already in use'. Here every port comes twice."""
    repeated = itertools.chain.from_iterable((port, port) for port in itertools.count(20000))
    monkeypatch.setattr(collector, "free_port", lambda: next(repeated))
    config = collector.on_loopback(yaml.safe_load((ASSETS / "collector" / name).read_text()))
    ports = listening_ports(config)
    assert len(ports) >= 5 and len(set(ports)) == len(ports), ports
