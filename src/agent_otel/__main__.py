"""``python -m agent_otel``: the ``agent-otel`` command."""

import sys

from agent_otel._cli import main

sys.exit(main())
