"""Where the mixin reads its one config and writes its outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
#: The package's own assets, which the generated files committed in a checkout are.
PACKAGE_ASSETS = ROOT / "src" / "agent_otel" / "assets"
#: The assets folder the generators read ``thresholds.yaml`` from and write into: the package's own, unless the
#: command line chose another (:func:`use_assets`) before the generators were imported.
ASSETS = PACKAGE_ASSETS
THRESHOLDS_FILE = ASSETS / "thresholds.yaml"


def use_assets(folder: str) -> None:
    """Generate into ``folder``, a copy of the assets (``agent-otel assets --copy DIR``, then edited): read its
    ``thresholds.yaml``, write its rule files, rule tests and dashboards. A command-line flag, not the
    ``AGENT_OTEL_ASSETS`` that ``agent-otel report`` and the demo read: exported for those, it would have moved
    the checkout's own generation and its tests to the copy. Called before the generators are imported (their
    paths and scope are read when they are)."""
    global ASSETS, THRESHOLDS_FILE
    chosen = Path(folder).resolve()
    if not (chosen / "thresholds.yaml").is_file():
        raise SystemExit(f"--assets {folder}: no thresholds.yaml there (make the copy with `agent-otel assets "
                         "--copy DIR`)")
    ASSETS, THRESHOLDS_FILE = chosen, chosen / "thresholds.yaml"


def assets_argument(argv: list[str] | None) -> None:
    """Apply ``--assets DIR`` from the command line (see :func:`use_assets`) before the generators are imported."""
    import argparse

    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--assets")
    known, _ = parser.parse_known_args(argv)
    if known.assets:
        use_assets(known.assets)


def shown(path: Path) -> str:
    """``path`` as a message names it: from the checkout's root when inside it."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def load_thresholds() -> dict[str, Any]:
    """``thresholds.yaml``: selectors, thresholds and windows that every rule, alert and panel hangs off."""
    loaded: dict[str, Any] = yaml.safe_load(THRESHOLDS_FILE.read_text())
    return loaded
