"""``agent-otel check``: validate a configuration file and resolve every target.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from agent_otel._environment import AGENT_OTEL_CONFIG
from agent_otel._zerocode.config import find_config, load_file
from agent_otel._zerocode.patching import _all_subclasses
from agent_otel._zerocode.targets import TargetError, resolve_target
from agent_otel.errors import ConfigurationError


def run_check(args: argparse.Namespace) -> int:
    try:
        file = Path(args.file) if args.file else find_config()
        if file is None:
            print(f"agent-otel: no configuration found: pass FILE, set {AGENT_OTEL_CONFIG}, or create agent-otel.toml "
                  "(or [tool.agent-otel] in pyproject.toml) in the current directory", file=sys.stderr)
            return 2
        config = load_file(file)
    except ConfigurationError as exc:
        print(f"agent-otel: {exc}", file=sys.stderr)
        return 2
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` would: the project's modules import from here
    rows = [("TARGET", "KIND", "CALLABLE", "STATUS")]
    errors = 0
    for spec in config.targets:
        try:
            found = resolve_target(spec)
        except TargetError as exc:
            errors += 1
            rows.append((spec.target, spec.kind, "-", f"error: {exc}"))
            continue
        status = "ok"
        if found.defined_on is not found.owner:
            status += f" (inherited from {found.defined_on.__qualname__})"
        if spec.subclasses and isinstance(found.owner, type):
            overrides = [sub.__qualname__ for sub in _all_subclasses(found.owner) if found.attr in sub.__dict__]
            status += f" (+{len(overrides)} subclass override{'s' if len(overrides) != 1 else ''}" + (
                f": {', '.join(sorted(overrides))})" if overrides else ")")
        rows.append((spec.target, spec.kind, found.shape, status))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)) + "  " + row[3])
    resolved = len(config.targets) - errors
    print(f"{config.source}: {len(config.targets)} target{'s' if len(config.targets) != 1 else ''}, "
          f"{resolved} resolved, {errors} error{'s' if errors != 1 else ''}")
    return 1 if errors else 0
