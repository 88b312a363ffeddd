"""``python -m mixin.dashboards [--check]``."""

import sys

from mixin.dashboards.generate import main

sys.exit(main())
