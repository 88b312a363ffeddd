"""The promtool unit tests of the recording rules: the workload of ``workload.yaml`` as input series, and
for every recording rule and window the values worked out by hand from that workload.

The alert unit tests (``tests/alerts*.test.yaml``) are written by hand, on purpose: their expected labels
and annotations are an independent statement of what each alert must say.
"""

from __future__ import annotations

from fractions import Fraction

from agent_otel import semconv as sc
from mixin.names import (
    AGENT,
    AGENT_DUR,
    CLIENT_DUR,
    CONFIDENCE,
    COST,
    EVAL_NAME,
    EVAL_SCORE,
    EVO_ATTEMPTS,
    EVO_STATUS,
    EVO_TYPE,
    FALLBACKS,
    INPUT_TOKENS,
    JOB_DUR,
    JOB_TYPE,
    OUTCOME,
    OUTPUT_TOKENS,
    PATTERN_DUR,
    PHASE,
    PROVIDER,
    RETRIES,
    TOOL,
    TOOL_DUR,
    WORKFLOW_PATTERN,
)
from mixin.rules import agents, calibration, evolution, providers, telemetry, tools_jobs, workflows, workload
from mixin.rules.rule import WINDOW_SECONDS, duration, stem
from mixin.rules.yamlout import HEADER, dump
from mixin.scope import ENVIRONMENT, SERVICE, Scope

#: The labels every scraped series carries: Prometheus's job and instance, the instrumentation scope, and the
#: service and environment of its resource (semconv.SCOPING_RESOURCE_ATTRIBUTES).
SCRAPE = {"job": "agent-otel", "instance": "app:9464", "otel_scope_name": sc.SCOPE_NAME,
          SERVICE: "checkout", ENVIRONMENT: "prod"}

Number = Fraction | float | int
#: One promql_expr_test: the expression and its expected samples (labels, value).
Case = tuple[str, list[tuple[dict[str, str], Number]]]

HALF = Fraction(1, 2)


def _agent_cases(w: str) -> list[Case]:
    pl, co = {AGENT: "planner"}, {AGENT: "coder"}
    cases: list[Case] = [
        (f"agent:{AGENT_DUR}_count:rate{w}", [(pl, 4), (co, 1)]),
        (f"agent:gen_ai_invoke_agent_successes:rate{w}", [(pl, 3), (co, 1)]),
        (f"agent:gen_ai_invoke_agent_errors:rate{w}", [(pl, HALF), (co, 0)]),
        (f"agent:gen_ai_invoke_agent_successes_per_invocations:ratio_rate{w}", [(pl, 0.75), (co, 1)]),
        (f"agent:gen_ai_invoke_agent_errors_per_invocations:ratio_rate{w}", [(pl, 0.125), (co, 0)]),
        (f'agent_le:{AGENT_DUR}_bucket:rate{w}{{le="3.2"}}', [({**pl, "le": "3.2"}, 4)]),
        (f"agent:{AGENT_DUR}_sum:rate{w}", [(pl, 8)]),
        (f"agent:{AGENT_DUR}:mean{w}", [(pl, 2)]),
        (f"agent:{stem(COST)}:rate{w}", [(pl, 2)]),
        (f"agent:{stem(COST)}_per_invocations:ratio_rate{w}", [(pl, HALF)]),
    ]
    # histogram_quantile interpolates linearly inside the bucket; the values are compared in
    # thousandths because bucket bounds such as 1.6 have no exact binary representation.
    for q, v in (("0.5", 1600), ("0.95", 3040), ("0.99", 3168)):
        cases.append(
            (
                f'round(1000 * agent_quantile:{AGENT_DUR}:histogram_quantile_rate{w}{{quantile="{q}"}})',
                [({**pl, "quantile": q}, v)],
            )
        )
    return cases


def _calibration_cases(w: str) -> list[Case]:
    s = WINDOW_SECONDS[w]  # increase() over the window = rate * s
    per_outcome = f"agent_outcome_band:{CONFIDENCE}_invocations:increase{w}"
    band = {b: {AGENT: "planner", "confidence_band": b} for b in ("low", "medium", "high")}
    coder = {b: {AGENT: "coder", "confidence_band": b} for b in ("low", "medium", "high")}
    return [
        (
            f'{per_outcome}{{{OUTCOME}="success"}}',
            [({**band[b], OUTCOME: "success"}, r * s) for b, r in (("low", 1), ("medium", 1), ("high", 3))],
        ),
        (
            f"agent_band:{CONFIDENCE}_invocations:increase{w}",
            [(band["low"], 2 * s), (band["medium"], s), (band["high"], 4 * s),
             (coder["low"], 0), (coder["medium"], 0), (coder["high"], s)],
        ),
        (
            f"agent_band:{CONFIDENCE}_successes:increase{w}",
            [(band["low"], s), (band["medium"], s), (band["high"], 3 * s),
             (coder["low"], 0), (coder["medium"], 0), (coder["high"], 0)],
        ),
        (
            f"agent_band:{CONFIDENCE}_successes_per_invocations:ratio_increase{w}",
            [(band["low"], HALF), (band["medium"], 1), (band["high"], 0.75), (coder["high"], 0)],
        ),
        *(_mean_cases() if w == "1h" else []),
    ]


def _mean_cases() -> list[Case]:
    return [
        (f"agent:{CONFIDENCE}:mean1h", [({AGENT: "planner"}, HALF), ({AGENT: "coder"}, 0.75)]),
        (f"agent_evaluation:{EVAL_SCORE}:mean1h", [({AGENT: "summarizer", EVAL_NAME: "faithfulness"}, HALF)]),
    ]


def _provider_cases(w: str) -> list[Case]:
    oa, an = {PROVIDER: "openai"}, {PROVIDER: "anthropic"}
    cases: list[Case] = [
        (f"provider:{CLIENT_DUR}_count:rate{w}", [(oa, 4), (an, 2)]),
        (f"provider:gen_ai_client_inference_errors:rate{w}", [(oa, 1), (an, 0)]),
        (f"provider:gen_ai_client_inference_slow:rate{w}", [(oa, 1), (an, 0)]),
        (f"provider:gen_ai_client_inference_availability:ratio_rate{w}", [(oa, 0.75), (an, 1)]),
        (f"provider:gen_ai_client_inference_availability_with_slow:ratio_rate{w}", [(oa, HALF), (an, 1)]),
        (
            f'provider_le:{CLIENT_DUR}_bucket:rate{w}{{le="+Inf"}}',
            [({**oa, "le": "+Inf"}, 3), ({**an, "le": "+Inf"}, 2)],
        ),
        (f"provider:{stem(RETRIES)}:rate{w}", [(oa, 2)]),
        (f"provider:{stem(RETRIES)}_per_operations:ratio_rate{w}", [(oa, HALF), (an, 0)]),
        (f"provider:{stem(FALLBACKS)}:rate{w}", [(oa, 1)]),
        (f"provider:{stem(FALLBACKS)}_per_operations:ratio_rate{w}", [(oa, 0.25), (an, 0)]),
        (f"provider:{stem(COST)}:rate{w}", [(oa, 2)]),
        (f"provider:{stem(INPUT_TOKENS)}:rate{w}", [(oa, 100)]),
        (f"provider:{stem(OUTPUT_TOKENS)}:rate{w}", [(oa, 20)]),
    ]
    # openai: buckets 10.24:1 20.48:2 40.96:3 +Inf:3; anthropic: 20.48:2 +Inf:2 (first bucket from 0).
    for q, vo, va in (("0.5", 15360, 10240), ("0.95", 37888, 19456), ("0.99", 40346, 20275)):
        cases.append(
            (
                f'round(1000 * provider_quantile:{CLIENT_DUR}:histogram_quantile_rate{w}{{quantile="{q}"}})',
                [({**oa, "quantile": q}, vo), ({**an, "quantile": q}, va)],
            )
        )
    if w == "1h":
        cases.append((f"provider:{stem(COST)}:increase1h", [(oa, 2 * 3600)]))
    return cases


def _tool_job_cases(w: str) -> list[Case]:
    search, grep = {TOOL: "search"}, {TOOL: "grep"}
    nightly, adhoc = {JOB_TYPE: "nightly"}, {JOB_TYPE: "adhoc"}
    return [
        (f"tool:{TOOL_DUR}_count:rate{w}", [(search, 4), (grep, 1)]),
        (f"tool:gen_ai_execute_tool_errors:rate{w}", [(search, 1), (grep, 0)]),
        (f"tool:gen_ai_execute_tool_errors_per_executions:ratio_rate{w}", [(search, 0.25), (grep, 0)]),
        (f"job_type:{JOB_DUR}_count:rate{w}", [(nightly, 2), (adhoc, 1)]),
        (f"job_type:job_failures:rate{w}", [(nightly, 1), (adhoc, 0)]),
        (f"job_type:job_failures_per_jobs:ratio_rate{w}", [(nightly, HALF), (adhoc, 0)]),
    ]


def _plugin_phase_cases(w: str) -> list[Case]:
    """Only search runs in a phase (research); grep, outside any, has no series here."""
    search = {TOOL: "search", PHASE: "research"}
    return [
        (f"tool_phase:{TOOL_DUR}_count:rate{w}", [(search, 4)]),
        (f"tool_phase:gen_ai_execute_tool_errors:rate{w}", [(search, 1)]),
        (f"tool_phase:gen_ai_execute_tool_errors_per_executions:ratio_rate{w}", [(search, 0.25)]),
    ]


def _pattern_cases(w: str) -> list[Case]:
    first, tdd = {WORKFLOW_PATTERN: "research-first"}, {WORKFLOW_PATTERN: "tdd"}
    return [
        (f"pattern:{PATTERN_DUR}_count:rate{w}", [(first, 2), (tdd, 1)]),
        (workflows.PATTERN_SUCCESSES.format(w=w), [(first, Fraction(3, 2)), (tdd, 0)]),
        (workflows.PATTERN_SUCCESS_RATIO.format(w=w), [(first, 0.75), (tdd, 0)]),
        (f"pattern:{PATTERN_DUR}_sum:rate{w}", [(first, 12), (tdd, 2)]),
        (f"pattern:{PATTERN_DUR}:mean{w}", [(first, 6), (tdd, 2)]),
    ]


def _evolution_cases(w: str) -> list[Case]:
    evo = {AGENT: "planner", EVO_TYPE: "prompt"}
    runs = Fraction(WINDOW_SECONDS[w], 60)  # one run per minute per unit of the workload's rates
    return [
        (
            f"agent_evolution_type_status:{stem(EVO_ATTEMPTS)}:increase{w}",
            [
                ({**evo, EVO_STATUS: "succeeded"}, 2 * runs),
                ({**evo, EVO_STATUS: "failed"}, runs),
                ({**evo, EVO_STATUS: "rolled_back"}, runs),
            ],
        ),
        (f"agent_evolution_type:{stem(EVO_ATTEMPTS)}:increase{w}", [(evo, 4 * runs)]),
        (f"agent_evolution_type:{stem(EVO_ATTEMPTS)}_succeeded_per_attempts:ratio_increase{w}", [(evo, HALF)]),
        (f"agent_evolution_type:{stem(EVO_ATTEMPTS)}_failed_per_attempts:ratio_increase{w}", [(evo, 0.25)]),
    ]


def _baseline_cases() -> list[Case]:
    """Evaluated at 1h: the 5m error ratios are constant from the first evaluation on, so the baseline is exact."""
    pl, co = {AGENT: "planner"}, {AGENT: "coder"}
    return [
        ("agent:gen_ai_invoke_agent_errors_per_invocations:avg_over_time1d_ratio_rate5m", [(pl, 0.125), (co, 0)]),
        ("agent:gen_ai_invoke_agent_errors_per_invocations:stddev_over_time1d_ratio_rate5m", [(pl, 0), (co, 0)]),
    ]


def _heartbeat_cases() -> list[Case]:
    """Every workload series is one of agent-otel's: the count is the number of series in workload.yaml."""
    return [(telemetry.SERIES, [({}, len(workload.load()))])]


def _cases(w: str) -> list[Case]:
    """Every recording rule evaluated over window ``w``, domain by domain (without the scope labels, which
    :func:`_expr_test` adds to every expected sample)."""
    cases: list[Case] = _heartbeat_cases() if w == "5m" else []
    if w in agents.WINDOWS:
        cases += _agent_cases(w)
    if w in calibration.WINDOWS:
        cases += _calibration_cases(w)
    if w in providers.WINDOWS:
        cases += _provider_cases(w)
    if w in tools_jobs.WINDOWS:
        cases += _tool_job_cases(w)
    if w in workflows.PHASE_WINDOWS:
        cases += _plugin_phase_cases(w)
    if w in workflows.PATTERN_WINDOWS:
        cases += _pattern_cases(w)
    if w in evolution.WINDOWS:
        cases += _evolution_cases(w)
    if w == "1h":
        cases += _baseline_cases()
    return cases


def _number(x: Number) -> float | int:
    exact = Fraction(x)
    return int(exact) if exact.denominator == 1 else float(exact)


def selector(metric: str, labels: dict[str, str]) -> str:
    body = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return f"{metric}{{{body}}}"


def _expr_test(w: str, case: Case, scope: Scope) -> dict[str, object]:
    expr, expected = case
    # A bare selector keeps the recorded name; a function around it (round) drops it.
    name = {} if "(" in expr else {"__name__": expr.split("{")[0]}
    kept = {label: SCRAPE[label] for label in scope.labels}  # every rule keeps the scope labels
    samples = [{"labels": selector("", {**name, **kept, **labels}), "value": _number(value)}
               for labels, value in expected]
    return {"expr": expr, "eval_time": w, "exp_samples": samples}


def _input_series(interval_s: int, steps: int) -> list[dict[str, str]]:
    out = []
    for series in workload.load():
        per_sample = series.per_second * interval_s
        if per_sample.denominator != 1:
            raise SystemExit(f"{workload.WORKLOAD_FILE}: {series} does not add a whole number every {interval_s} s")
        out.append({"series": selector(series.metric, {**series.labels, **SCRAPE}),
                    "values": f"0+{int(per_sample)}x{steps}"})
    return out


def promtool_test_file(windows: tuple[str, ...], interval_s: int, comment: str, rules_file: str, scope: Scope
                       ) -> str:
    """A promtool test file: the workload sampled every ``interval_s`` over the longest window, and one
    test per window holding every recording rule's expected values."""
    steps = max(WINDOW_SECONDS[w] for w in windows) // interval_s + 2
    input_series = _input_series(interval_s, steps)
    interval = duration(interval_s)
    doc = {
        "rule_files": [f"../{rules_file}"],
        "evaluation_interval": interval,
        "tests": [
            {
                "name": f"recording rules over {w}",
                "interval": interval,
                "input_series": input_series,
                "promql_expr_test": [_expr_test(w, case, scope) for case in _cases(w)],
            }
            for w in windows
        ],
    }
    return HEADER + comment + dump(doc)
