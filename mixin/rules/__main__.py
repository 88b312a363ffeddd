"""``python -m mixin.rules`` writes the rule files; ``--check`` exits 1 when a committed one is stale; ``--assets DIR``
generates into a copy of the assets instead of the package's."""

from __future__ import annotations

import argparse
import sys

from mixin.config import shown, use_assets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mixin.rules", description="Generate the Prometheus recording rules, alerts and their tests."
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if a committed file is stale")
    parser.add_argument("--assets", metavar="DIR", help="a copy of the assets (agent-otel assets --copy DIR): read "
                        "its thresholds.yaml, write its files (default: the package's own)")
    args = parser.parse_args(argv)
    if args.assets:
        use_assets(args.assets)
    from mixin.rules.files import stale, write  # after --assets: the files' paths are read as it is imported

    if not args.check:
        write()
        return 0
    outdated = stale()
    for path in outdated:
        print(f"stale: {shown(path)} (run python -m mixin.rules)", file=sys.stderr)
    return 1 if outdated else 0


if __name__ == "__main__":
    sys.exit(main())
