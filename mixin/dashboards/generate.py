"""Write the dashboards as classic dashboard JSON under ``agent_otel/assets/grafana/dashboards``, or check that
the committed files equal a fresh generation (tests/assets does the same)."""


from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard, VariableModel, VariableType

from mixin.config import ASSETS, shown
from mixin.dashboards import agents, evolution, jobs_tools, providers, system, workflows

OUT = ASSETS / "grafana" / "dashboards"
DASHBOARDS: dict[str, Callable[[], Dashboard]] = {
    module.FILE: module.build for module in (agents, providers, evolution, jobs_tools, workflows, system)
}


class _Encoder(JSONEncoder):
    """The SDK's encoder, plus the `definition` of a query variable, which the SDK model lacks: Grafana shows it
    in the variable list and dashboard linters read it."""

    def default(self, obj: object) -> object:
        if isinstance(obj, VariableModel) and obj.type_val == VariableType.QUERY and isinstance(obj.query, dict):
            return {**obj.to_json(), "definition": obj.query["query"]}
        return super().default(obj)


def render() -> dict[Path, str]:
    """Each dashboard file's path and its JSON text (keys sorted, so that a diff shows only real changes)."""
    return {OUT / name: json.dumps(build(), cls=_Encoder, indent=2, sort_keys=True) + "\n"
            for name, build in DASHBOARDS.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mixin.dashboards",
                                     description="Write (or --check) the agent-otel Grafana dashboards.")
    parser.add_argument("--check", action="store_true", help="exit 1 if a committed dashboard is stale")
    parser.add_argument("--assets", metavar="DIR", help="a copy of the assets (agent-otel assets --copy DIR): read "
                        "its thresholds.yaml, write its dashboards (default: the package's own; read by "
                        "`python -m mixin.dashboards` before this module is imported)")
    args = parser.parse_args(argv)
    stale = []
    for path, text in render().items():
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    for path in stale:
        print(f"stale: {shown(path)} (run python -m mixin.dashboards)", file=sys.stderr)
    return 1 if stale else 0
