"""Evolution lineage: the agent version a run started from, the one it produced, the one a rollback
returned to, and the gauge that tells the rules which version replaced which (and when)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent_otel import semconv
from agent_otel._calls.handler import span_value, text_value
from agent_otel._engine.instruments import runtime
from agent_otel._engine.policy import policy

FROM_FIELDS = ("version_from", "from_version", "previous_version")
TO_FIELDS = ("version_to", "to_version", "new_version")
ROLLBACK_FIELDS = ("rollback_version", "rolled_back_to")


def version_text(value: Any) -> str | None:
    """A version as text (``3`` and ``"3"`` are one version); nothing for None or empty, and, counted, for a
    collection, as an agent's ``version`` (the run's result or record is no version: its text held the prompt)."""
    if value is None or isinstance(value, bool):
        return None
    return text_value(value, semconv.GEN_AI_AGENT_VERSION)


@dataclass(frozen=True)
class Lineage:
    """What one evolution run did to its agent's version (None: not given, not found)."""

    source: str | None
    produced: str | None
    returned_to: str | None  # only when the run was rolled back

    def in_place(self, status: semconv.EvolutionStatus) -> str | None:
        """The version the agent runs after the run: the one produced if it succeeded, the one a rollback
        returned to (by default the one it started from, and also when the run then failed), or the one it started
        from if it failed."""
        if status is semconv.EvolutionStatus.SUCCEEDED:
            return self.produced or self.source
        return self.returned_to or self.source

    def span_attributes(self) -> dict[str, Any]:
        return {key: span_value(value, key) for key, value in ((semconv.EVOLUTION_VERSION_FROM, self.source),
                                                               (semconv.EVOLUTION_VERSION_TO, self.produced),
                                                               (semconv.EVOLUTION_ROLLBACK_VERSION, self.returned_to))
                if value is not None}


#: A run that reports no versions (the common case): no new object, nothing to record.
NO_LINEAGE = Lineage(None, None, None)


def read_lineage(found: Mapping[str, Any], rolled_back: bool, rollback_version: Any = None,
                 marker_version: Any = None) -> Lineage:
    """The run's lineage from its result options (``found``: see ``EvolutionHandler.result_values``). A run
    ``rolled_back`` returns to the ``[[rollback]]`` target's version (``marker_version``), else
    ``rollback_version`` (the option or the result's field), else the version the run started from."""
    source = version_text(found.get("version_from"))
    produced = version_text(found.get("version_to"))
    if source is None and produced is None and not rolled_back:
        return NO_LINEAGE
    returned_to = None
    if rolled_back:
        returned_to = version_text(marker_version) or version_text(rollback_version) or source
    return Lineage(source, produced, returned_to)


def record_introduction(ctx: Any, agent_name: str, lineage: Lineage, status: semconv.EvolutionStatus) -> None:
    """When the run left the agent on another version than it started from: the time it did, by agent, the
    version now in place and the one it replaced (both bounded; old versions age out of the cap)."""
    current = lineage.in_place(status)
    if current is None or lineage.source is None or current == lineage.source:
        return
    guard = policy()
    runtime()[semconv.AGENT_VERSION_INTRODUCED].set(time.time(), {
        semconv.GEN_AI_AGENT_NAME: agent_name,
        semconv.GEN_AI_AGENT_VERSION: guard.bounded_recent(semconv.GEN_AI_AGENT_VERSION, current),
        semconv.AGENT_VERSION_PREVIOUS: guard.bounded_recent(semconv.AGENT_VERSION_PREVIOUS, lineage.source),
    }, context=ctx)
