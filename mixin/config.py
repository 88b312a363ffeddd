"""Where the mixin reads its one config and writes its outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "src" / "agent_otel" / "assets"
THRESHOLDS_FILE = ASSETS / "thresholds.yaml"


def load_thresholds() -> dict[str, Any]:
    """``thresholds.yaml``: selectors, thresholds and windows that every rule, alert and panel hangs off."""
    loaded: dict[str, Any] = yaml.safe_load(THRESHOLDS_FILE.read_text())
    return loaded
