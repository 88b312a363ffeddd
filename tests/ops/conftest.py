"""Make the ops test helpers (opslib) and the generators in tools/ importable, whatever pytest's import mode."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for path in (HERE, HERE.parents[1] / "tools"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
