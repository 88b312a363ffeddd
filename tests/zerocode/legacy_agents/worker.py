"""Run one plugin in a separate process: python -m legacy_agents.worker PLUGIN PATH."""

from __future__ import annotations

import sys

from legacy_agents.plugins import REGISTRY


def main(argv: list[str]) -> int:
    name, path = argv
    print(REGISTRY.run(name, path))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
