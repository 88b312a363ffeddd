"""Where the shipped operator assets are: rules, Alertmanager config, dashboards, Collector configs.

They are package data (``agent_otel/assets/``), so an installed wheel has them as a checkout does.
``$AGENT_OTEL_ASSETS`` points at another copy, e.g. one an operator edited. ``agent-otel assets`` prints
the directory in use, and ``agent-otel assets --copy DIR`` copies it out for an operator to deploy or edit.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from importlib import resources
from pathlib import Path

from agent_otel._environment import AGENT_OTEL_ASSETS

ASSETS_ENV = AGENT_OTEL_ASSETS
ASSETS_HELP = "print where the shipped rules, Alertmanager config, dashboards and Collector configs are"
ASSETS_DESCRIPTION = (
    "Print the directory of the shipped operator assets (Prometheus rules and their tests, Alertmanager config, "
    "Grafana dashboards and provisioning, Collector configs, thresholds.yaml): the installed package's copy, or "
    f"${ASSETS_ENV} when set. With --copy DIR, copy them into DIR to deploy or edit them. Exit status: 0 printed "
    "or copied, 2 the assets cannot be found or copied (DIR has some of the files: pass --force).")
#: Conflicting files named in the refusal to overwrite; the rest are counted.
_CONFLICTS_SHOWN = 5


class AssetsError(RuntimeError):
    """The assets cannot be found or copied; the message names the directory."""


def assets_root() -> Path:
    """The assets directory in use: ``$AGENT_OTEL_ASSETS`` when set, else the package's own copy."""
    override = os.environ.get(ASSETS_ENV)
    if override:
        return Path(override)
    return Path(str(resources.files("agent_otel") / "assets"))  # pip installs it as files, never zipped


def existing_assets_root() -> Path:
    """:func:`assets_root`, which must be a directory."""
    root = assets_root()
    if not root.is_dir():
        raise AssetsError(f"the assets directory {root} {'is a file' if root.exists() else 'does not exist'}"
                          f"{f' (set by {ASSETS_ENV})' if os.environ.get(ASSETS_ENV) else ''}")
    return root


def asset_files(root: Path) -> list[Path]:
    """Every asset file under ``root``, relative to it, sorted (bytecode caches left out)."""
    return sorted(path.relative_to(root) for path in root.rglob("*")
                  if path.is_file() and "__pycache__" not in path.parts)


def _directory(text: str) -> Path:
    """--copy's DIR: an empty one (an unset shell variable) was the working directory, which got the assets."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"--copy names no directory ({text!r})")
    return Path(text)


def copy_assets(destination: Path, *, force: bool = False) -> list[Path]:
    """Copy the assets in use into ``destination`` (created if missing) and return the files copied,
    relative to it. Existing files are overwritten only with ``force``; nothing is copied otherwise."""
    source = existing_assets_root()
    if destination.exists() and not destination.is_dir():
        raise AssetsError(f"cannot copy the assets to {destination}: it is not a directory")
    files = asset_files(source)
    if not force:
        existing = [name for name in files if (destination / name).exists()]
        if existing:
            shown = ", ".join(str(name) for name in existing[:_CONFLICTS_SHOWN])
            more = f" and {len(existing) - _CONFLICTS_SHOWN} more" if len(existing) > _CONFLICTS_SHOWN else ""
            raise AssetsError(f"cannot copy the assets to {destination}: {len(existing)} file(s) exist there "
                              f"({shown}{more}); pass --force to overwrite them")
    try:
        for name in files:
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / name, destination / name)
    except OSError as exc:
        raise AssetsError(f"cannot copy the assets to {destination}: "
                          f"{exc.strerror or exc}{f' ({exc.filename})' if exc.filename else ''}") from None
    return files


def add_assets_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--copy", type=_directory, metavar="DIR",
                        help="copy every asset into DIR (created if missing) instead of printing the directory")
    parser.add_argument("--force", action="store_true", help="with --copy: overwrite files that exist in DIR")


def run_assets(args: argparse.Namespace) -> int:
    """``agent-otel assets``: 0 printed or copied, 2 the assets cannot be found or copied."""
    try:
        if args.copy is None and args.force:
            raise AssetsError("--force only applies with --copy DIR")
        if args.copy is None:
            print(existing_assets_root())
            return 0
        copied = copy_assets(args.copy, force=args.force)
    except AssetsError as exc:
        print(f"agent-otel assets: {exc}", file=sys.stderr)
        return 2
    print(f"agent-otel assets: copied {len(copied)} files to {args.copy}; "
          f"`{ASSETS_ENV}={args.copy} agent-otel demo --stack` runs the stack with them")
    return 0
