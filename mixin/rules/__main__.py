"""``python -m mixin.rules`` writes the rule files; ``--check`` exits 1 when a committed one is stale."""

from __future__ import annotations

import argparse
import sys

from mixin.config import shown
from mixin.rules.files import stale, write


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mixin.rules", description="Generate the Prometheus recording rules, alerts and their tests."
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if a committed file is stale")
    args = parser.parse_args(argv)
    if not args.check:
        write()
        return 0
    outdated = stale()
    for path in outdated:
        print(f"stale: {shown(path)} (run python -m mixin.rules)", file=sys.stderr)
    return 1 if outdated else 0


if __name__ == "__main__":
    sys.exit(main())
