"""Where the shipped operator assets are: rules, Alertmanager config, dashboards, Collector configs.

They are package data (``agent_otel/assets/``), so an installed wheel has them as a checkout does.
``$AGENT_OTEL_ASSETS`` points at another copy, e.g. one an operator edited.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

ASSETS_ENV = "AGENT_OTEL_ASSETS"


def assets_root() -> Path:
    """The assets directory in use: ``$AGENT_OTEL_ASSETS`` when set, else the package's own copy."""
    override = os.environ.get(ASSETS_ENV)
    if override:
        return Path(override)
    return Path(str(resources.files("agent_otel") / "assets"))
