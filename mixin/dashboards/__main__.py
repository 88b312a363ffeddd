"""``python -m mixin.dashboards [--check] [--assets DIR]``."""

import sys

from mixin.config import assets_argument

assets_argument(sys.argv[1:])  # before the dashboards are imported: they read the thresholds as they are

from mixin.dashboards.generate import main  # noqa: E402

sys.exit(main())
