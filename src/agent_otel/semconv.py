"""The telemetry contract in one place (the contract of the design brief, ``DESIGN.md``).

Every span name, attribute key, instrument name, unit, description, bucket list and the Prometheus
name each instrument must produce lives here. Code, dashboards, rules and tests import these names
instead of spelling them, so a rename cannot leave a panel or an alert silently empty. Keys and
operation names the OpenTelemetry semantic conventions define come from
``opentelemetry-semantic-conventions``; the ones agent-otel invents are spelled here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

from opentelemetry.metrics import Counter, Histogram
from opentelemetry.metrics import _Gauge as Gauge
from opentelemetry.semconv._incubating.attributes import deployment_attributes as _deployment
from opentelemetry.semconv._incubating.attributes import error_attributes as _incubating_error
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as _gen_ai
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import GenAiOperationNameValues
from opentelemetry.semconv.attributes import code_attributes as _code
from opentelemetry.semconv.attributes import error_attributes as _error
from opentelemetry.semconv.attributes import exception_attributes as _exception
from opentelemetry.semconv.attributes import service_attributes as _service

# --------------------------------------------------------------------------------------------------
# Attribute keys
# --------------------------------------------------------------------------------------------------

JOB_ID = "job.id"
JOB_TYPE = "job.type"
JOB_OUTCOME = "job.outcome"

GEN_AI_OPERATION_NAME = _gen_ai.GEN_AI_OPERATION_NAME
GEN_AI_PROVIDER_NAME = _gen_ai.GEN_AI_PROVIDER_NAME
GEN_AI_REQUEST_MODEL = _gen_ai.GEN_AI_REQUEST_MODEL
GEN_AI_RESPONSE_MODEL = _gen_ai.GEN_AI_RESPONSE_MODEL
GEN_AI_REQUEST_STREAM = _gen_ai.GEN_AI_REQUEST_STREAM  # on a streamed call's span, with its time to first chunk
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK = _gen_ai.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK
GEN_AI_USAGE_INPUT_TOKENS = _gen_ai.GEN_AI_USAGE_INPUT_TOKENS
GEN_AI_USAGE_OUTPUT_TOKENS = _gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS
GEN_AI_AGENT_NAME = _gen_ai.GEN_AI_AGENT_NAME
GEN_AI_AGENT_ID = _gen_ai.GEN_AI_AGENT_ID
GEN_AI_TOOL_NAME = _gen_ai.GEN_AI_TOOL_NAME
GEN_AI_TOOL_TYPE = _gen_ai.GEN_AI_TOOL_TYPE
GEN_AI_CONVERSATION_ID = _gen_ai.GEN_AI_CONVERSATION_ID
GEN_AI_RESPONSE_ID = _gen_ai.GEN_AI_RESPONSE_ID
GEN_AI_RESPONSE_FINISH_REASONS = _gen_ai.GEN_AI_RESPONSE_FINISH_REASONS  # spans only, as the conventions record it
GEN_AI_TOOL_CALL_ID = _gen_ai.GEN_AI_TOOL_CALL_ID
GEN_AI_INPUT_MESSAGES = _gen_ai.GEN_AI_INPUT_MESSAGES  # only with content capture on
GEN_AI_OUTPUT_MESSAGES = _gen_ai.GEN_AI_OUTPUT_MESSAGES
#: ``gen_ai.token.modality`` (GenAI conventions v0.1.0): the usage counters' modality; ``unknown`` when the
#: provider does not split usage by modality, which is what every response agent-otel reads reports.
GEN_AI_TOKEN_MODALITY = "gen_ai.token.modality"
TOKEN_MODALITY_UNKNOWN = "unknown"
# Names agent-otel invents live in its own namespace, ``agent_otel.*`` (the scope name): ``gen_ai.*`` is
# OpenTelemetry's. Their previous ``gen_ai.*`` spellings are in PREVIOUS_ATTRIBUTES below.
AGENT_OTEL_FALLBACK_TO = "agent_otel.fallback.to"
AGENT_OTEL_FALLBACK_REASON = "agent_otel.fallback.reason"
AGENT_OTEL_RETRY_COUNT = "agent_otel.client.retry_count"
AGENT_OTEL_RETRY_REASON = "agent_otel.retry.reason"
# Cost and token details (issue 14 item 4). Tokens: GenAI conventions v0.1.0 (a subset of input/output tokens).
# Cost: the standard names of semantic-conventions-genai #443, a change merged after v0.1.0 (see
# docs/semconv.md); they replace our earlier ``gen_ai.usage.cost``, which became their prefix.
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS = "gen_ai.usage.cache_write.input_tokens"
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS = "gen_ai.usage.reasoning.output_tokens"
GEN_AI_USAGE_COST_AMOUNT = "gen_ai.usage.cost.amount"
GEN_AI_USAGE_COST_CURRENCY = "gen_ai.usage.cost.currency"
GEN_AI_USAGE_COST_SOURCE = "gen_ai.usage.cost.source"
#: The currency of every cost agent-otel records (the price table is in US dollars).
COST_CURRENCY_USD = "USD"
#: ``gen_ai.usage.cost.source``: computed here from the local price table (the other value, ``provider``, is
#: a cost the provider reported).
COST_SOURCE_LOCAL = "local"
ERROR_TYPE = _error.ERROR_TYPE
#: On a span's ``exception`` event: the exception's type (module-qualified, as the SDK records it).
EXCEPTION_TYPE = _exception.EXCEPTION_TYPE
ERROR_MESSAGE = _incubating_error.ERROR_MESSAGE
#: ``error.type`` of a provider call whose ``success`` option read false (a health check or selection).
ERROR_TYPE_UNAVAILABLE = "unavailable"
#: ``error.type`` of a tool call whose result says the tool failed (an MCP ``CallToolResult`` with ``isError``), as
#: the MCP semantic conventions name it.
ERROR_TYPE_TOOL_ERROR = "tool_error"
#: Attributes that hold prompts, responses and tool payloads: recorded by no span, ours or another
#: instrumentation's, unless content capture is on. Keys, then key prefixes (indexed, flattened messages).
CONTENT_ATTRIBUTES = frozenset({
    GEN_AI_INPUT_MESSAGES, GEN_AI_OUTPUT_MESSAGES, "gen_ai.system_instructions", "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result", "gen_ai.prompt", "gen_ai.completion", "input.value", "output.value",
    "final_result",  # pydantic-ai's run output
    "pydantic_ai.all_messages",  # pydantic-ai's every message of a run, on its agent span
    "pydantic_ai.decision.state",  # what a pydantic-ai decision model was shown
    "model_request_parameters",  # pydantic-ai's request, with the agent's instructions in it
    "tool_arguments", "tool_response",  # pydantic-ai's tool payloads (its instrumentation format 2)
    "gen_ai.retrieval.query.text", "gen_ai.retrieval.documents",  # a retriever's query and what it found
    "llm.prompts", "llm.prompt_template.variables",  # OpenInference's completion prompts, a template's values,
    "llm.prompt_template.template",  # the template's text (a system prompt),
    "llm.invocation_parameters",  # and the request's parameters (a predicted output, the tools' descriptions)
    "gen_ai.tool.definitions",  # the tools a model was offered: their descriptions and schemas
    # smolagents' (OpenInference's instrumentation): the task an agent was given, and the values passed with it
    "smolagents.task", "smolagents.additional_args",
    # OpenInference's: the function call a model made (its arguments), a reranker's query, messages as one value
    "llm.function_call", "reranker.query", "llm.input_messages", "llm.output_messages", "llm.choices",
    # OpenLLMetry's (traceloop) chain and workflow spans: what they were given and returned
    "traceloop.entity.input", "traceloop.entity.output",
    # CrewAI's (OpenInference's instrumentation): a crew's kickoff inputs, its tasks' and agents' texts (descriptions,
    # backstories); CrewAI's own task spans: what a task asked for and what it answered
    "crew_inputs", "crew_tasks", "crew_agents",
    "crewai.task.description", "crewai.task.expected_output", "crewai.task.output",
    # Google ADK's own spans (its tracer ``gcp.vertex.agent``): a model call's request (the system instruction and the
    # conversation) and response, a tool call's arguments and response, the data sent to a live agent
    "gcp.vertex.agent.llm_request", "gcp.vertex.agent.llm_response", "gcp.vertex.agent.tool_call_args",
    "gcp.vertex.agent.tool_response", "gcp.vertex.agent.data",
})
CONTENT_PREFIXES = ("gen_ai.prompt.", "gen_ai.completion.", "llm.input_messages.", "llm.output_messages.",
                    "llm.prompts.", "retrieval.documents.", "reranker.input_documents.", "reranker.output_documents.",
                    "embedding.embeddings.", "llm.tools.",  # (OpenInference: the tools offered)
                    # OpenInference's completions' choices, and the images and documents (PDFs) an operation took or
                    # made
                    "llm.choices.", "input.images.", "output.images.", "input.documents.", "output.documents.",
                    "llm.request.functions.")  # (OpenLLMetry: the tools offered)
#: Keys under a content prefix that are not content: a prompt's name (its template's), not its text.
NOT_CONTENT = frozenset({_gen_ai.GEN_AI_PROMPT_NAME})
#: The attributes a span carries that names a GenAI call (or a step of one, in OpenInference's vocabulary; OpenLLMetry's
#: request type, on the spans of its instrumentations that name no operation): the span bridge looks at a span only
#: with one of them.
GENAI_MARKERS = frozenset({"gen_ai.operation.name", "openinference.span.kind", "llm.request.type"})
#: Attributes that mark a span of another library as a GenAI one, whose content attributes are removed as it ends
#: (unless content goes on spans): the GenAI conventions' operation, OpenInference's span kind, and the older
#: vocabulary's ``gen_ai.system`` and ``llm.request.type`` (OpenLLMetry; its chains' ``traceloop.span.kind``),
#: whichever way and whenever they were set.
CONTENT_MARKERS = frozenset({"gen_ai.operation.name", "openinference.span.kind", "gen_ai.system",
                             "gen_ai.provider.name", "llm.request.type",
                             "traceloop.span.kind",  # (OpenLLMetry's workflow and task spans)
                             "gcp.vertex.agent.data"})  # (Google ADK's live send_data span: no other marker)
#: The GenAI evaluation event and its attributes (``gen_ai.evaluation.result``).
EVENT_EVALUATION_RESULT = "gen_ai.evaluation.result"
GEN_AI_EVALUATION_NAME = _gen_ai.GEN_AI_EVALUATION_NAME
GEN_AI_EVALUATION_SCORE_VALUE = _gen_ai.GEN_AI_EVALUATION_SCORE_VALUE
GEN_AI_EVALUATION_SCORE_LABEL = _gen_ai.GEN_AI_EVALUATION_SCORE_LABEL
GEN_AI_EVALUATION_EXPLANATION = _gen_ai.GEN_AI_EVALUATION_EXPLANATION
#: On an evaluation event ``record_evaluation()`` added and counted already: the bridge does not count it again.
EVALUATION_COUNTED = "agent_otel.evaluation.counted"
#: The function a configured (zero-code) wrapper wraps, ``module.Class.method``.
CODE_FUNCTION_NAME = _code.CODE_FUNCTION_NAME

AGENT_TASK_TYPE = "agent.task.type"
AGENT_OUTCOME = "agent.outcome"
AGENT_CONFIDENCE = "agent.confidence"
AGENT_WORK_KIND = "agent.work.kind"
AGENT_PATTERN = "agent.pattern"
AGENT_PROVIDER_USED = "agent.provider.used"
AGENT_KPI_NAME = "agent.kpi.name"
#: Prefix of the span attributes an agent's result reports: its work counts (``agent.result.<kind>``)
#: and any ``result_attributes``.
AGENT_RESULT_PREFIX = "agent.result."
AGENT_RESULT_PATTERNS = AGENT_RESULT_PREFIX + "patterns"

EVOLUTION_TYPE = "evolution.type"
EVOLUTION_STRATEGY = "evolution.strategy"
EVOLUTION_STATUS = "evolution.status"
EVOLUTION_ROLLBACK = "evolution.rollback"
EVOLUTION_ITERATIONS = "evolution.convergence.iterations"
EVOLUTION_KPI_BEFORE_PREFIX = "evolution.kpi.before."
EVOLUTION_KPI_AFTER_PREFIX = "evolution.kpi.after."
EVOLUTION_KPI_DELTA_PREFIX = "evolution.kpi.delta."
EVOLUTION_IMPROVEMENT = "evolution.performance.improvement"

# Agent versions and evolution lineage.
#: The agent's version on its spans and, under the cardinality cap (old versions age out of it), on its
#: duration/outcome metric and on the cost of the model calls it makes.
GEN_AI_AGENT_VERSION = _gen_ai.GEN_AI_AGENT_VERSION
#: The prompt (template) an agent call used: spans only.
GEN_AI_PROMPT_NAME = _gen_ai.GEN_AI_PROMPT_NAME
#: Ours: the GenAI conventions define ``gen_ai.prompt.name`` but no prompt version.
PROMPT_VERSION = "agent_otel.prompt.version"
#: On ``agent_otel.agent.version.introduced.timestamp``: the version the introduced one replaced.
AGENT_VERSION_PREVIOUS = "agent_otel.agent.version.previous"
#: On an evolution span: the agent version the run started from, the one it produced, and the one a
#: rollback returned to.
EVOLUTION_VERSION_FROM = "agent_otel.evolution.version.from"
EVOLUTION_VERSION_TO = "agent_otel.evolution.version.to"
EVOLUTION_ROLLBACK_VERSION = "agent_otel.evolution.rollback.version"
#: Attribute keys whose values age out of the cardinality cap (a version nobody uses any more stops
#: counting against it) instead of filling it for good: see ``Policy.bounded_recent``.
AGING_ATTRIBUTES = frozenset({GEN_AI_AGENT_VERSION, AGENT_VERSION_PREVIOUS})

RESOURCE_CPU_TIME = "process.cpu.time"
RESOURCE_CPU_UTILIZATION = "process.cpu.utilization"
RESOURCE_MEMORY_PEAK = "process.memory.peak"

INSTRUMENTATION_STAGE = "agent_otel.stage"
#: The agent-otel release a process runs (a label of :data:`BUILD_INFO` only).
AGENT_OTEL_VERSION = "agent_otel.version"
#: Set on a span when the consumer stopped a stream before it was exhausted.
STREAM_CLOSED_EARLY = "agent_otel.stream.closed_early"
#: Set on a span whose call a framework's control-flow exception left (a LangGraph pause or hand-off, a pydantic-ai
#: deferred tool call: no failure), to its class name.
CONTROL_FLOW = "agent_otel.control_flow"

# Roll-ups stamped on the job span when the job ends.
JOB_ROLLUP_AGENT_CALLS = "job.agent.calls"
JOB_ROLLUP_PROVIDER_CALLS = "job.provider.calls"
JOB_ROLLUP_TOOL_CALLS = "job.tool.calls"
JOB_ROLLUP_INPUT_TOKENS = "job.usage.input_tokens"
JOB_ROLLUP_OUTPUT_TOKENS = "job.usage.output_tokens"
JOB_ROLLUP_COST = "job.usage.cost"
#: The job's model calls the price table has no price for (only when there are): its cost is then incomplete.
JOB_ROLLUP_UNPRICED_CALLS = "job.usage.unpriced_calls"

# Workflow phases, steps and patterns (``agent_otel.phase()``, the ``pattern`` option of jobs and agents).
#: The phase a span runs (the phase span's own), and a metric attribute of the tool and agent calls inside it.
WORKFLOW_PHASE = "agent_otel.workflow.phase"
WORKFLOW_PHASE_OUTCOME = "agent_otel.workflow.phase.outcome"
#: The number of a step (a tool or plugin call) within its phase: on spans only, never a metric attribute.
WORKFLOW_STEP = "agent_otel.workflow.step"
#: The workflow pattern a job or an agent follows (``pattern=``): a name the program gives, e.g. to promote
#: patterns from discovered to validated to learned. Not ``agent.pattern``, the patterns an agent's result
#: says it applied (counted on ``agent.patterns.used``).
WORKFLOW_PATTERN = "agent_otel.workflow.pattern"
WORKFLOW_PATTERN_OUTCOME = "agent_otel.workflow.pattern.outcome"
#: Roll-ups on the job span: the distinct tools (plugins) that ran under the job, its phases in the order
#: they started, and the files its agents and tools reported creating.
JOB_ROLLUP_PLUGINS_USED = "agent_otel.job.plugins.used"
JOB_ROLLUP_PHASES = "agent_otel.job.phases"
JOB_ROLLUP_FILES_CREATED = "agent_otel.job.files.created"

#: Baggage key carrying the job id across process and service boundaries.
BAGGAGE_JOB_ID = JOB_ID
BAGGAGE_JOB_TYPE = JOB_TYPE
#: Baggage key carrying the conversation id (``agent_otel.conversation()``), as the job id is carried.
BAGGAGE_CONVERSATION_ID = GEN_AI_CONVERSATION_ID

#: Metric attributes a series may lack: ``error.type`` is there only for errors, a retry's reason only
#: when the program gave one.
OPTIONAL_ATTRIBUTES = frozenset({ERROR_TYPE, AGENT_OTEL_RETRY_REASON, GEN_AI_EVALUATION_SCORE_LABEL,
                                 WORKFLOW_PHASE,  # a tool or agent call outside any phase has none
                                 GEN_AI_AGENT_VERSION})  # an agent given no version has none

#: Attributes that hold ids, or numbers of one execution (step numbers). They may go on spans, never on metrics:
#: the Collector configs' privacy net (``transform/privacy``) deletes each of them from every metric data point,
#: another library's too (``enduser.id`` and ``session.id`` are the ids its span statements hash).
ID_ATTRIBUTES = frozenset({JOB_ID, GEN_AI_CONVERSATION_ID, GEN_AI_AGENT_ID, "user.id", "enduser.id", "session.id",
                           "trace_id", "span_id", WORKFLOW_STEP,
                           # a GenAI instrumentation's own ids of one response and one tool call
                           GEN_AI_RESPONSE_ID, GEN_AI_TOOL_CALL_ID})


class Outcome(StrEnum):
    """Outcome of an agent, tool, provider call or job."""

    SUCCESS = "success"
    FAILURE = "failure"  # returned, but reported itself unsuccessful
    ERROR = "error"  # raised


class EvolutionStatus(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"


# --------------------------------------------------------------------------------------------------
# Span names
# --------------------------------------------------------------------------------------------------

OPERATION_INVOKE_AGENT = GenAiOperationNameValues.INVOKE_AGENT.value
OPERATION_EXECUTE_TOOL = GenAiOperationNameValues.EXECUTE_TOOL.value
OPERATION_INVOKE_WORKFLOW = GenAiOperationNameValues.INVOKE_WORKFLOW.value
OPERATION_CHAT = GenAiOperationNameValues.CHAT.value
#: The operations of a model call that answers with generated content: one call named by two instrumentations with
#: two of them (agent-otel's provider kind says ``chat`` by default, google-genai's ``generate_content``) is one.
INFERENCE_OPERATIONS = frozenset({OPERATION_CHAT, GenAiOperationNameValues.GENERATE_CONTENT.value,
                                  GenAiOperationNameValues.TEXT_COMPLETION.value})
OPERATION_EVOLVE = "evolve"
OPERATION_RUN_PHASE = "run_phase"


def job_span_name(job_type: str) -> str:
    return f"{OPERATION_INVOKE_WORKFLOW} {job_type}"


def agent_span_name(agent_name: str) -> str:
    return f"{OPERATION_INVOKE_AGENT} {agent_name}"


def provider_span_name(operation: str, model: str | None) -> str:
    return f"{operation} {model}" if model else operation


def tool_span_name(tool_name: str) -> str:
    return f"{OPERATION_EXECUTE_TOOL} {tool_name}"


def evolution_span_name(agent_name: str) -> str:
    return f"{OPERATION_EVOLVE} {agent_name}"


def phase_span_name(phase: str) -> str:
    return f"{OPERATION_RUN_PHASE} {phase}"


# --------------------------------------------------------------------------------------------------
# Bucket lists
# --------------------------------------------------------------------------------------------------


def _doubling(start: float, count: int) -> tuple[float, ...]:
    return tuple(round(start * 2**i, 6) for i in range(count))


#: GenAI semconv advisory buckets for client durations, 0.01 .. 81.92 s.
GENAI_DURATION_BUCKETS = _doubling(0.01, 14)
#: GenAI semconv advisory buckets for token counts, 1 .. 67108864.
TOKEN_BUCKETS = tuple(4**i for i in range(14))
#: Agent invocations run longer than single model calls: 0.1 .. 409.6 s.
AGENT_DURATION_BUCKETS = _doubling(0.1, 13)
#: Inference and tool calls per agent invocation: the advice of semantic-conventions-genai #336, 1 .. 128, and 0,
#: so that an agent that called no tool reads as 0 calls (in the first bucket with 1, a p95 read 0.95).
CALL_COUNT_BUCKETS = (0, *(2**i for i in range(8)))
#: Cost of one model call in US dollars (our choice: #443 gives no advice), 10 micro-dollars .. 5 dollars.
CALL_COST_BUCKETS = (0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0)
#: Cost of one job in US dollars, a tenth of a cent .. 100 dollars.
JOB_COST_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 50.0, 100.0)
#: Jobs, evolution runs and workflow phases: minutes to hours, and under a second for those that end at once
#: (a job that fails fast, a cached answer: a 60 ms job read as a p50 of 0.5 s with 1 s as the first bound).
LONG_DURATION_BUCKETS = (0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0)
_TENTHS = tuple(round(0.1 * i, 1) for i in range(1, 11))

#: Confidence bands used by calibration rules, report and dashboards: low < 0.5 <= medium < 0.8 <= high
#: (a stated 0.8 is high, a stated 0.5 medium).
CONFIDENCE_BAND_EDGES = (0.5, 0.8)
#: A histogram bucket includes its upper bound (``le``), so "below 0.8" needs a bound with nothing between it
#: and 0.8: the largest double below each edge (0.7999999999999999). A band is then exactly the difference
#: of two cumulative buckets, on every path (the ``le`` label is the shortest round-trip spelling, in Python
#: and Go alike).
CONFIDENCE_BAND_BOUNDS = tuple(math.nextafter(edge, 0.0) for edge in CONFIDENCE_BAND_EDGES)
#: Stated confidence: 0.1 .. 1.0 in tenths, and the band bounds just below 0.5 and 0.8.
CONFIDENCE_BUCKETS = tuple(sorted((*_TENTHS, *CONFIDENCE_BAND_BOUNDS)))

#: The improvements an evolution rule can ask "at least this much" of (a run's KPI after minus before): each with the
#: largest double below it as a bound too, so that the runs that improved by at least an edge are exactly the count
#: minus one cumulative bucket, as for the confidence bands. ``evolution_min_improvement`` must be one of them.
IMPROVEMENT_EDGES = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
#: No improvement (a regression records 0: a histogram takes no negative value, and with a negative bound
#: prometheus_client serves no ``_sum`` and ``_count``), then the edges and the bounds just below them.
IMPROVEMENT_BUCKETS = tuple(sorted((0.0, *IMPROVEMENT_EDGES,
                                    *(math.nextafter(edge, 0.0) for edge in IMPROVEMENT_EDGES))))



def le_below(edge: float) -> str:
    """The ``le`` label of the bound just below ``edge`` (:data:`IMPROVEMENT_BUCKETS`), spelt as Prometheus stores it:
    the cumulative bucket of what improved by less than ``edge``."""
    return repr(math.nextafter(float(edge), 0.0))


#: Evaluation scores: 0..1 in tenths (most evaluators), then the 1-5 and 1-10 scales some use.
EVALUATION_SCORE_BUCKETS = (*_TENTHS, 2.0, 3.0, 4.0, 5.0, 7.5, 10.0)

#: The bands as the calibration rules and ``agent-otel report`` count them: (name, lower cumulative bucket
#: or None, upper cumulative bucket), bounds spelled as Prometheus ``le`` values. A band holds
#: lower < confidence <= upper, i.e. low < 0.5 <= medium < 0.8 <= high.
CONFIDENCE_BANDS: tuple[tuple[str, str | None, str], ...] = (
    ("low", None, repr(CONFIDENCE_BAND_BOUNDS[0])),
    ("medium", repr(CONFIDENCE_BAND_BOUNDS[0]), repr(CONFIDENCE_BAND_BOUNDS[1])),
    ("high", repr(CONFIDENCE_BAND_BOUNDS[1]), "+Inf"),
)


# --------------------------------------------------------------------------------------------------
# Instruments
# --------------------------------------------------------------------------------------------------


class Kind(StrEnum):
    COUNTER = "counter"
    HISTOGRAM = "histogram"
    GAUGE = "gauge"


def prometheus_label(attribute: str) -> str:
    """The Prometheus label name of an attribute key (every key of the contract: dots become underscores)."""
    return attribute.replace(".", "_")


#: The OpenTelemetry instrument type a row creates (Counter, Histogram or Gauge; follows ``kind``).
InstrumentT = TypeVar("InstrumentT", bound=Counter | Histogram | Gauge, covariant=True)


@dataclass(frozen=True)
class Instrument(Generic[InstrumentT]):
    """One row of the metric contract."""

    name: str
    kind: Kind
    unit: str
    description: str
    prometheus: str
    attributes: tuple[str, ...]
    buckets: tuple[float, ...] | None = None

    @property
    def prometheus_labels(self) -> tuple[str, ...]:
        """The label names Prometheus stores for this instrument's attributes."""
        return tuple(prometheus_label(key) for key in self.attributes)

    @property
    def prometheus_series(self) -> tuple[str, ...]:
        """The series names Prometheus stores for this instrument."""
        if self.kind is Kind.HISTOGRAM:
            return tuple(f"{self.prometheus}_{suffix}" for suffix in ("bucket", "count", "sum"))
        return (self.prometheus,)


_GENAI_CLIENT_ATTRS = (
    GEN_AI_OPERATION_NAME,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_RESPONSE_MODEL,
    ERROR_TYPE,
)

JOB_DURATION: Instrument[Histogram] = Instrument(
    "job.duration", Kind.HISTOGRAM, "s",
    "Duration of a job (workflow run), by job type and outcome.",
    "job_duration_seconds", (JOB_TYPE, JOB_OUTCOME), LONG_DURATION_BUCKETS,
)
AGENT_DURATION: Instrument[Histogram] = Instrument(
    "gen_ai.invoke_agent.duration", Kind.HISTOGRAM, "s",
    "Duration of an agent invocation, by agent, task type and outcome.",
    "gen_ai_invoke_agent_duration_seconds",
    (GEN_AI_AGENT_NAME, AGENT_TASK_TYPE, AGENT_OUTCOME, ERROR_TYPE, WORKFLOW_PHASE, GEN_AI_AGENT_VERSION),
    AGENT_DURATION_BUCKETS,
)
AGENT_CONFIDENCE_HISTOGRAM: Instrument[Histogram] = Instrument(
    "agent.confidence", Kind.HISTOGRAM, "1",
    "Confidence an agent stated for its result (0..1), by outcome, for calibration.",
    "agent_confidence", (GEN_AI_AGENT_NAME, AGENT_OUTCOME), CONFIDENCE_BUCKETS,
)
AGENT_EVALUATION_SCORE: Instrument[Histogram] = Instrument(
    "agent.evaluation.score", Kind.HISTOGRAM, "1",
    "Scores of evaluations (gen_ai.evaluation.result events), by evaluation and agent.",
    "agent_evaluation_score", (GEN_AI_EVALUATION_NAME, GEN_AI_AGENT_NAME, GEN_AI_EVALUATION_SCORE_LABEL),
    EVALUATION_SCORE_BUCKETS,
)
AGENT_WORK_ITEMS: Instrument[Counter] = Instrument(
    "agent.work.items", Kind.COUNTER, "{item}",
    "Work items an agent reported (fixes applied, files modified, remaining issues...).",
    "agent_work_items_total", (GEN_AI_AGENT_NAME, AGENT_WORK_KIND),
)
AGENT_PATTERNS_USED: Instrument[Counter] = Instrument(
    "agent.patterns.used", Kind.COUNTER, "{pattern}",
    "Patterns an agent applied, by pattern.",
    "agent_patterns_used_total", (GEN_AI_AGENT_NAME, AGENT_PATTERN),
)
# GenAI client inference (semantic-conventions-genai v0.1.0; docs/semconv.md).
_TOKEN_COUNTER_ATTRS = (*_GENAI_CLIENT_ATTRS[:-1], GEN_AI_TOKEN_MODALITY)
CLIENT_INFERENCE_DURATION: Instrument[Histogram] = Instrument(
    "gen_ai.client.inference.duration", Kind.HISTOGRAM, "s",
    "Duration of a GenAI inference (model call).",
    "gen_ai_client_inference_duration_seconds", _GENAI_CLIENT_ATTRS, GENAI_DURATION_BUCKETS,
)
CLIENT_TIME_TO_FIRST_CHUNK: Instrument[Histogram] = Instrument(
    "gen_ai.client.inference.time_to_first_chunk", Kind.HISTOGRAM, "s",
    "Time from request to the first chunk of a streamed response.",
    "gen_ai_client_inference_time_to_first_chunk_seconds", _GENAI_CLIENT_ATTRS, GENAI_DURATION_BUCKETS,
)
CLIENT_USAGE_INPUT_TOKENS: Instrument[Counter] = Instrument(
    "gen_ai.client.inference.usage.input_tokens", Kind.COUNTER, "{token}",
    "Input tokens of GenAI inferences (cached ones included).",
    "gen_ai_client_inference_usage_input_tokens_total", _TOKEN_COUNTER_ATTRS,
)
CLIENT_USAGE_OUTPUT_TOKENS: Instrument[Counter] = Instrument(
    "gen_ai.client.inference.usage.output_tokens", Kind.COUNTER, "{token}",
    "Output tokens of GenAI inferences (reasoning ones included).",
    "gen_ai_client_inference_usage_output_tokens_total", _TOKEN_COUNTER_ATTRS,
)
CLIENT_USAGE_CACHE_READ_TOKENS: Instrument[Counter] = Instrument(
    "gen_ai.client.inference.usage.cache_read.input_tokens", Kind.COUNTER, "{token}",
    "Input tokens read from the provider's prompt cache (a subset of the input tokens).",
    "gen_ai_client_inference_usage_cache_read_input_tokens_total", _TOKEN_COUNTER_ATTRS,
)
CLIENT_USAGE_CACHE_WRITE_TOKENS: Instrument[Counter] = Instrument(
    "gen_ai.client.inference.usage.cache_write.input_tokens", Kind.COUNTER, "{token}",
    "Input tokens written to the provider's prompt cache (a subset of the input tokens).",
    "gen_ai_client_inference_usage_cache_write_input_tokens_total", _TOKEN_COUNTER_ATTRS,
)
CLIENT_USAGE_REASONING_TOKENS: Instrument[Counter] = Instrument(
    "gen_ai.client.inference.usage.reasoning.output_tokens", Kind.COUNTER, "{token}",
    "Output tokens spent on reasoning (a subset of the output tokens).",
    "gen_ai_client_inference_usage_reasoning_output_tokens_total", _TOKEN_COUNTER_ATTRS,
)
CLIENT_OPERATION_INPUT_TOKENS: Instrument[Histogram] = Instrument(
    "gen_ai.client.inference.operation.input_tokens", Kind.HISTOGRAM, "{token}",
    "Input tokens per GenAI inference, for percentiles (totals: the usage counters).",
    "gen_ai_client_inference_operation_input_tokens", _GENAI_CLIENT_ATTRS[:-1], TOKEN_BUCKETS,
)
CLIENT_OPERATION_OUTPUT_TOKENS: Instrument[Histogram] = Instrument(
    "gen_ai.client.inference.operation.output_tokens", Kind.HISTOGRAM, "{token}",
    "Output tokens per GenAI inference, for percentiles (totals: the usage counters).",
    "gen_ai_client_inference_operation_output_tokens", _GENAI_CLIENT_ATTRS[:-1], TOKEN_BUCKETS,
)
# Names of agent-otel's own: the ``agent_otel.*`` namespace.
CLIENT_COST: Instrument[Counter] = Instrument(
    "agent_otel.client.cost", Kind.COUNTER, "{USD}",
    "Estimated cost in US dollars of GenAI client operations, from the local price table.",
    "agent_otel_client_cost_total",
    (GEN_AI_PROVIDER_NAME, GEN_AI_REQUEST_MODEL, GEN_AI_AGENT_NAME, GEN_AI_AGENT_VERSION),
)
# Cost and per-invocation counts (issue 14 items 4 and 7); names: docs/semconv.md.
CLIENT_OPERATION_COST: Instrument[Histogram] = Instrument(
    "gen_ai.client.operation.cost", Kind.HISTOGRAM, "{USD}",
    "Cost in US dollars of one GenAI client operation, from the local price table (cache and reasoning aware).",
    "gen_ai_client_operation_cost", _GENAI_CLIENT_ATTRS[:-1], CALL_COST_BUCKETS,
)
CLIENT_UNPRICED_CALLS: Instrument[Counter] = Instrument(
    "agent_otel.client.unpriced_calls", Kind.COUNTER, "{call}",
    "Model calls that reported tokens for a model the price table does not know: their cost is not counted.",
    "agent_otel_client_unpriced_calls_total", (GEN_AI_PROVIDER_NAME, GEN_AI_REQUEST_MODEL),
)
JOB_COST: Instrument[Histogram] = Instrument(
    "agent_otel.job.cost", Kind.HISTOGRAM, "{USD}",
    "Cost in US dollars of one job (every priced model call under it), by job type.",
    "agent_otel_job_cost", (JOB_TYPE,), JOB_COST_BUCKETS,
)
AGENT_INFERENCE_CALLS: Instrument[Histogram] = Instrument(
    "gen_ai.invoke_agent.inference_calls", Kind.HISTOGRAM, "{inference_call}",
    "Inference (model) calls one agent invocation made, failed ones included, its sub-agents' excluded.",
    "gen_ai_invoke_agent_inference_calls", (GEN_AI_AGENT_NAME, ERROR_TYPE), CALL_COUNT_BUCKETS,
)
AGENT_TOOL_CALLS: Instrument[Histogram] = Instrument(
    "gen_ai.invoke_agent.tool_calls", Kind.HISTOGRAM, "{tool_call}",
    "Tool calls one agent invocation made, failed ones included, its sub-agents' excluded.",
    "gen_ai_invoke_agent_tool_calls", (GEN_AI_AGENT_NAME, ERROR_TYPE), CALL_COUNT_BUCKETS,
)
CLIENT_RETRIES: Instrument[Counter] = Instrument(
    "agent_otel.client.retries", Kind.COUNTER, "{retry}",
    "Retries of GenAI client operations.",
    "agent_otel_client_retries_total", (GEN_AI_PROVIDER_NAME, GEN_AI_REQUEST_MODEL, AGENT_OTEL_RETRY_REASON),
)
CLIENT_FALLBACKS: Instrument[Counter] = Instrument(
    "agent_otel.client.fallbacks", Kind.COUNTER, "{fallback}",
    "Fallbacks from one provider to another, by target and reason.",
    "agent_otel_client_fallbacks_total", (GEN_AI_PROVIDER_NAME, AGENT_OTEL_FALLBACK_TO, AGENT_OTEL_FALLBACK_REASON),
)
TOOL_DURATION: Instrument[Histogram] = Instrument(
    "gen_ai.execute_tool.duration", Kind.HISTOGRAM, "s",
    "Duration of a tool or plugin execution.",
    "gen_ai_execute_tool_duration_seconds", (GEN_AI_TOOL_NAME, GEN_AI_AGENT_NAME, ERROR_TYPE, WORKFLOW_PHASE),
    GENAI_DURATION_BUCKETS,
)
PHASE_DURATION: Instrument[Histogram] = Instrument(
    "agent_otel.workflow.phase.duration", Kind.HISTOGRAM, "s",
    "Duration of a workflow phase, by job type, phase and outcome.",
    "agent_otel_workflow_phase_duration_seconds", (JOB_TYPE, WORKFLOW_PHASE, WORKFLOW_PHASE_OUTCOME),
    LONG_DURATION_BUCKETS,
)
PATTERN_DURATION: Instrument[Histogram] = Instrument(
    "agent_otel.workflow.pattern.duration", Kind.HISTOGRAM, "s",
    "Duration of an execution of a workflow pattern (a job or agent call that names it), by pattern and outcome; "
    "its count is the executions by outcome.",
    "agent_otel_workflow_pattern_duration_seconds", (WORKFLOW_PATTERN, WORKFLOW_PATTERN_OUTCOME),
    LONG_DURATION_BUCKETS,
)
EVOLUTION_ATTEMPTS: Instrument[Counter] = Instrument(
    "evolution.attempts", Kind.COUNTER, "{attempt}",
    "Evolution (self-improvement) runs, by status (succeeded, failed, rolled_back).",
    "evolution_attempts_total", (GEN_AI_AGENT_NAME, EVOLUTION_TYPE, EVOLUTION_STATUS),
)
EVOLUTION_DURATION: Instrument[Histogram] = Instrument(
    "evolution.duration", Kind.HISTOGRAM, "s",
    "Duration of an evolution run, by status.",
    "evolution_duration_seconds", (GEN_AI_AGENT_NAME, EVOLUTION_TYPE, EVOLUTION_STATUS),
    LONG_DURATION_BUCKETS,
)
EVOLUTION_PERFORMANCE_IMPROVEMENT: Instrument[Gauge] = Instrument(
    "evolution.performance.improvement", Kind.GAUGE, "1",
    "KPI improvement (after minus before) of the latest evolution run.",
    "evolution_performance_improvement", (GEN_AI_AGENT_NAME, EVOLUTION_TYPE),
)
EVOLUTION_IMPROVEMENT_HISTOGRAM: Instrument[Histogram] = Instrument(
    "agent_otel.evolution.improvement", Kind.HISTOGRAM, "1",
    "KPI improvement (after minus before) of each evolution run, 0 for one that made it worse or failed or was rolled "
    "back: how many runs improved by at least an amount, however many ran between two scrapes (the gauge holds the "
    "latest run's).",
    "agent_otel_evolution_improvement", (GEN_AI_AGENT_NAME, EVOLUTION_TYPE), IMPROVEMENT_BUCKETS,
)
EVOLUTION_MEMORY_PEAK: Instrument[Gauge] = Instrument(
    "evolution.memory.peak", Kind.GAUGE, "By",
    "Peak resident memory of the process during the latest evolution run.",
    "evolution_memory_peak_bytes", (GEN_AI_AGENT_NAME, EVOLUTION_TYPE),
)
AGENT_VERSION_INTRODUCED: Instrument[Gauge] = Instrument(
    "agent_otel.agent.version.introduced.timestamp", Kind.GAUGE, "s",
    "When an evolution run (or its rollback) put a version of an agent in place (Unix time), and the version "
    "it replaced.",
    "agent_otel_agent_version_introduced_timestamp_seconds",
    (GEN_AI_AGENT_NAME, GEN_AI_AGENT_VERSION, AGENT_VERSION_PREVIOUS),
)
AGENT_KPI_CURRENT: Instrument[Gauge] = Instrument(
    "agent.kpi.current", Kind.GAUGE, "1",
    "Current value of an agent KPI, as measured by the latest evolution run.",
    "agent_kpi_current", (GEN_AI_AGENT_NAME, AGENT_KPI_NAME),
)
BUILD_INFO: Instrument[Gauge] = Instrument(
    "agent_otel.build.info", Kind.GAUGE, "1",
    "Always 1 from configure() on, labelled with the agent-otel release: a service that is up reports it before "
    "its first call (AgentOtelServiceTelemetryStopped counts it), and the fleet's releases show.",
    "agent_otel_build_info", (AGENT_OTEL_VERSION,),
)
INSTRUMENTATION_ERRORS: Instrument[Counter] = Instrument(
    "agent_otel.instrumentation.errors", Kind.COUNTER, "{error}",
    "Failures inside agent-otel itself (caught, never raised into the host), by stage.",
    "agent_otel_instrumentation_errors_total", (INSTRUMENTATION_STAGE,),
)

#: Every instrument of the contract, in table order.
INSTRUMENTS: tuple[Instrument[Counter | Histogram | Gauge], ...] = (
    JOB_DURATION,
    AGENT_DURATION,
    AGENT_CONFIDENCE_HISTOGRAM,
    AGENT_EVALUATION_SCORE,
    AGENT_WORK_ITEMS,
    AGENT_PATTERNS_USED,
    CLIENT_INFERENCE_DURATION,
    CLIENT_TIME_TO_FIRST_CHUNK,
    CLIENT_USAGE_INPUT_TOKENS,
    CLIENT_USAGE_OUTPUT_TOKENS,
    CLIENT_USAGE_CACHE_READ_TOKENS,
    CLIENT_USAGE_CACHE_WRITE_TOKENS,
    CLIENT_USAGE_REASONING_TOKENS,
    CLIENT_OPERATION_INPUT_TOKENS,
    CLIENT_OPERATION_OUTPUT_TOKENS,
    CLIENT_COST,
    CLIENT_OPERATION_COST,
    CLIENT_UNPRICED_CALLS,
    JOB_COST,
    AGENT_INFERENCE_CALLS,
    AGENT_TOOL_CALLS,
    CLIENT_RETRIES,
    CLIENT_FALLBACKS,
    TOOL_DURATION,
    PHASE_DURATION,
    PATTERN_DURATION,
    EVOLUTION_ATTEMPTS,
    EVOLUTION_DURATION,
    EVOLUTION_PERFORMANCE_IMPROVEMENT,
    EVOLUTION_IMPROVEMENT_HISTOGRAM,
    EVOLUTION_MEMORY_PEAK,
    AGENT_KPI_CURRENT,
    AGENT_VERSION_INTRODUCED,
    INSTRUMENTATION_ERRORS,
    BUILD_INFO,
)

INSTRUMENTS_BY_NAME = {instrument.name: instrument for instrument in INSTRUMENTS}

# --------------------------------------------------------------------------------------------------
# The previous layout (agent-otel before the GenAI conventions v0.1.0): emitted as well with
# OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental/dup, for a transition; CHANGELOG.md lists the renames.
# --------------------------------------------------------------------------------------------------

#: The value of ``OTEL_SEMCONV_STABILITY_OPT_IN`` that also emits the previous names (the ``/dup`` form of
#: OpenTelemetry's instrumentations, e.g. ``http/dup``). Without it only the current names are emitted.
STABILITY_OPT_IN_DUP = "gen_ai_latest_experimental/dup"

#: Attribute keys of the previous layout, by their current key (spans and metric attributes alike).
PREVIOUS_ATTRIBUTES = {
    AGENT_OTEL_FALLBACK_TO: "gen_ai.fallback.to",
    AGENT_OTEL_FALLBACK_REASON: "gen_ai.fallback.reason",
    AGENT_OTEL_RETRY_COUNT: "gen_ai.client.retry_count",
    AGENT_OTEL_RETRY_REASON: "gen_ai.retry.reason",
    GEN_AI_USAGE_COST_AMOUNT: "gen_ai.usage.cost",  # its currency and source are new
}
#: The previous ``gen_ai.token.type`` attribute of ``gen_ai.client.token.usage`` and its values.
PREVIOUS_TOKEN_TYPE = _gen_ai.GEN_AI_TOKEN_TYPE


class TokenType(StrEnum):
    INPUT = "input"
    OUTPUT = "output"


#: How the previous token histogram splits into the current instruments: (its ``gen_ai.token.type``, the usage
#: counter its ``_sum`` became, the per-operation histogram its buckets became).
PREVIOUS_TOKEN_SPLIT = ((TokenType.INPUT, CLIENT_USAGE_INPUT_TOKENS, CLIENT_OPERATION_INPUT_TOKENS),
                        (TokenType.OUTPUT, CLIENT_USAGE_OUTPUT_TOKENS, CLIENT_OPERATION_OUTPUT_TOKENS))

PREVIOUS_CLIENT_OPERATION_DURATION: Instrument[Histogram] = Instrument(
    "gen_ai.client.operation.duration", Kind.HISTOGRAM, "s",
    "Duration of a GenAI client operation (model call). Previous name of gen_ai.client.inference.duration.",
    "gen_ai_client_operation_duration_seconds", _GENAI_CLIENT_ATTRS, GENAI_DURATION_BUCKETS,
)
PREVIOUS_CLIENT_TIME_TO_FIRST_CHUNK: Instrument[Histogram] = Instrument(
    "gen_ai.client.operation.time_to_first_chunk", Kind.HISTOGRAM, "s",
    "Time to the first chunk of a streamed response. Previous name of gen_ai.client.inference.time_to_first_chunk.",
    "gen_ai_client_operation_time_to_first_chunk_seconds", _GENAI_CLIENT_ATTRS, GENAI_DURATION_BUCKETS,
)
PREVIOUS_CLIENT_TOKEN_USAGE: Instrument[Histogram] = Instrument(
    "gen_ai.client.token.usage", Kind.HISTOGRAM, "{token}",
    "Tokens per GenAI client operation, by token type. Previous layout of the gen_ai.client.inference.usage.* "
    "counters.",
    "gen_ai_client_token_usage", (*_GENAI_CLIENT_ATTRS[:-1], PREVIOUS_TOKEN_TYPE), TOKEN_BUCKETS,
)
PREVIOUS_CLIENT_COST: Instrument[Counter] = Instrument(
    "gen_ai.client.cost", Kind.COUNTER, "{USD}",
    "Estimated cost in US dollars. Previous name of agent_otel.client.cost.",
    "gen_ai_client_cost_total", CLIENT_COST.attributes,
)
PREVIOUS_CLIENT_RETRIES: Instrument[Counter] = Instrument(
    "gen_ai.client.retries", Kind.COUNTER, "{retry}",
    "Retries of GenAI client operations. Previous name of agent_otel.client.retries.",
    "gen_ai_client_retries_total", (GEN_AI_PROVIDER_NAME, GEN_AI_REQUEST_MODEL, "gen_ai.retry.reason"),
)
PREVIOUS_CLIENT_FALLBACKS: Instrument[Counter] = Instrument(
    "gen_ai.client.fallbacks", Kind.COUNTER, "{fallback}",
    "Fallbacks from one provider to another. Previous name of agent_otel.client.fallbacks.",
    "gen_ai_client_fallbacks_total", (GEN_AI_PROVIDER_NAME, "gen_ai.fallback.to", "gen_ai.fallback.reason"),
)
#: Each renamed instrument's previous row, by the current name. ``gen_ai.client.token.usage`` is the previous
#: layout of all the usage counters at once (one histogram, by ``gen_ai.token.type``), so it is not a rename of one.
PREVIOUS_INSTRUMENTS: dict[str, Instrument[Counter | Histogram | Gauge]] = {
    CLIENT_INFERENCE_DURATION.name: PREVIOUS_CLIENT_OPERATION_DURATION,
    CLIENT_TIME_TO_FIRST_CHUNK.name: PREVIOUS_CLIENT_TIME_TO_FIRST_CHUNK,
    CLIENT_COST.name: PREVIOUS_CLIENT_COST,
    CLIENT_RETRIES.name: PREVIOUS_CLIENT_RETRIES,
    CLIENT_FALLBACKS.name: PREVIOUS_CLIENT_FALLBACKS,
}
#: Every instrument of the previous layout (what the ``/dup`` opt-in emits besides INSTRUMENTS).
PREVIOUS_LAYOUT: tuple[Instrument[Counter | Histogram | Gauge], ...] = (
    *PREVIOUS_INSTRUMENTS.values(), PREVIOUS_CLIENT_TOKEN_USAGE)

#: Instrumentation scope name used for every instrument and tracer of agent-otel.
SCOPE_NAME = "agent_otel"

#: Resource attributes that every metric series carries as a label, on both export paths: our /metrics
#: endpoint adds them (``_sdk/prometheus.py``), the Collector's Prometheus exporter through
#: ``resource_constant_labels`` (``assets/collector/otelcol.yaml``). Without them a service and its
#: environment live only on ``target_info``, and rules that aggregate by them would need a join per query.
#: The ``scope_labels`` of ``assets/thresholds.yaml`` are their label names (plus ``job``).
SCOPING_RESOURCE_ATTRIBUTES = (_service.SERVICE_NAME, _deployment.DEPLOYMENT_ENVIRONMENT_NAME)

# --------------------------------------------------------------------------------------------------
# Process metrics (from opentelemetry-instrumentation-system-metrics, not ours)
# --------------------------------------------------------------------------------------------------

#: The system-metrics configuration configure() enables: process CPU and memory only, which is what
#: the System dashboard and the memory-exhaustion alert read. Keys are OTel names.
PROCESS_METRICS_CONFIG: dict[str, list[str] | None] = {
    "process.cpu.time": ["user", "system"],
    "process.cpu.utilization": None,
    "process.memory.usage": None,
    "process.memory.virtual": None,
    "process.thread.count": None,
}

#: Prometheus names of the process metrics above (label `type` on cpu time: user|system).
PROCESS_CPU_TIME_PROMETHEUS = "process_cpu_time_seconds_total"
PROCESS_CPU_UTILIZATION_PROMETHEUS = "process_cpu_utilization"
PROCESS_MEMORY_USAGE_PROMETHEUS = "process_memory_usage_bytes"
PROCESS_MEMORY_VIRTUAL_PROMETHEUS = "process_memory_virtual_bytes"
#: process.thread.count is a gauge; as `process_thread_count` Prometheus linters (promtool check metrics)
#: reject it, because `_count` is the histogram/summary suffix. configure() renames it with a View, on
#: every export path, to the name Prometheus's own process collectors use.
PROCESS_RENAMES = {"process.thread.count": "process.threads"}
PROCESS_THREAD_COUNT_PROMETHEUS = "process_threads"
