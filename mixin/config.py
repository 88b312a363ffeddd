"""Where the mixin reads its one config and writes its outputs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from agent_otel._environment import AGENT_OTEL_ASSETS

ROOT = Path(__file__).resolve().parent.parent
#: The package's own assets, which the generated files committed in a checkout are.
PACKAGE_ASSETS = ROOT / "src" / "agent_otel" / "assets"


def _assets() -> Path:
    """The assets folder the generators read ``thresholds.yaml`` from and write into: the package's own, or the copy
    ``$AGENT_OTEL_ASSETS`` names (one ``agent-otel assets --copy DIR`` made, then edited), as ``agent-otel report``
    and the demo read it: a threshold edited in a copy then reaches its rules and dashboards too."""
    override = os.environ.get(AGENT_OTEL_ASSETS)
    if not override:
        return PACKAGE_ASSETS
    folder = Path(override).resolve()
    if not (folder / "thresholds.yaml").is_file():
        raise SystemExit(f"{AGENT_OTEL_ASSETS}={override}: no thresholds.yaml there (make the copy with "
                         "`agent-otel assets --copy DIR`)")
    return folder


ASSETS = _assets()
THRESHOLDS_FILE = ASSETS / "thresholds.yaml"


def shown(path: Path) -> str:
    """``path`` as a message names it: from the checkout's root when inside it."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def load_thresholds() -> dict[str, Any]:
    """``thresholds.yaml``: selectors, thresholds and windows that every rule, alert and panel hangs off."""
    loaded: dict[str, Any] = yaml.safe_load(THRESHOLDS_FILE.read_text())
    return loaded
