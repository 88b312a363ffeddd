"""Head sampling that leaves the span bridge its GenAI spans.

The SDK hands a span to the span processors only when it is recorded. A span a sampler drops
(``TraceIdRatioBased``, or every span of a trace an upstream service did not sample, under ``ParentBased``)
never reaches the bridge, so the model calls, tokens and cost of other libraries' GenAI spans were counted
for the sampled traces only: metrics that followed the sampling ratio. :class:`GenAiMetricsSampler` records
such a span without sampling it: the processors see it (the bridge turns it into metrics), and no exporter
sends it (the SDK's span processors export sampled spans only), so what is exported is the sampler's choice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

from agent_otel._bridge.sources import GENAI_MARKERS
from agent_otel._engine.policy import SCRUBBED_KEY

_DROP = Decision.DROP  # read per span: a module global is cheaper than the Enum's attribute


class GenAiMetricsSampler(Sampler):
    """Decide as ``sampler`` does, except that a span it drops is recorded (not sampled, so not exported)
    when it starts as another library's GenAI span (``gen_ai.operation.name`` or OpenInference's span kind among
    its start attributes): the span bridge then counts its call, tokens and cost whatever the sampling. ``configure()``
    wraps in it each part of the sampler ``OTEL_TRACES_SAMPLER`` names that drops spans; wrap your own provider's
    sampler in it::

        TracerProvider(sampler=agent_otel.GenAiMetricsSampler(ParentBased(TraceIdRatioBased(0.1))))
    """

    def __init__(self, sampler: Sampler) -> None:
        self.sampler = sampler
        self._seen = _Seen()

    def should_sample(self, parent_context: Context | None, trace_id: int, name: str,
                      kind: SpanKind | None = None, attributes: Attributes = None,
                      links: Sequence[Link] | None = None, trace_state: TraceState | None = None) -> SamplingResult:
        decided = self.sampler.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)
        if decided.decision is not _DROP or not attributes or GENAI_MARKERS.isdisjoint(attributes):
            return decided
        if parent_context is not None and parent_context.get(SCRUBBED_KEY):  # one of ours: our wrappers record their
            # metrics without their span, but the bridge tells another library's span of the same call by ours,
            # around or inside it: recorded too once the process has such spans (else both counted the call)
            return SamplingResult(Decision.RECORD_ONLY, attributes, decided.trace_state) if self._seen.theirs \
                else decided
        self._seen.theirs = True
        return SamplingResult(Decision.RECORD_ONLY, attributes, decided.trace_state)

    def get_description(self) -> str:
        return f"GenAiMetricsSampler{{{self.sampler.get_description()}}}"


class _Seen:
    """Whether another library's GenAI span was recorded for the bridge: agent-otel's own dropped spans are then
    recorded too. Not before (the first such span's call may be counted twice, once): a process with no other GenAI
    instrumentation pays nothing for its unsampled calls. One for all the parts of a sampler (see
    :func:`dropping_parts`)."""

    __slots__ = ("theirs",)

    def __init__(self) -> None:
        self.theirs = False


def dropping_parts() -> Callable[[Sampler], Sampler]:
    """What the sampler configure() builds (``settings.traces_sampler``) does with each of its parts that drops spans:
    a :class:`GenAiMetricsSampler` around it, all sharing one :class:`_Seen`. Around its parts, not around all of it:
    under the default ``ParentBased(ALWAYS_ON)``, a span of a sampled trace, most spans of the process, goes through no
    wrapper (a Python call per span, about 0.1 µs); the decisions are the same."""
    seen = _Seen()

    def wrap(sampler: Sampler) -> Sampler:
        wrapped = GenAiMetricsSampler(sampler)
        wrapped._seen = seen
        return wrapped

    return wrap


def records_dropped_genai_spans(sampler: object) -> bool:
    """Whether a provider's sampler lets the bridge see the GenAI spans it would drop: a :class:`GenAiMetricsSampler`,
    one with such parts (the ``ParentBased`` configure() builds, or a host's own made the same way; its description is
    the public way to see a ``ParentBased``'s parts), or one that drops nothing."""
    if isinstance(sampler, GenAiMetricsSampler) or sampler is ALWAYS_ON:
        return True
    try:
        return "GenAiMetricsSampler{" in str(sampler.get_description())  # type: ignore[attr-defined]
    except Exception:  # a host's sampler with no description, or one that fails
        return False
