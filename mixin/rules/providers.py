"""Model providers: calls, errors, availability (with and without slow calls), latency, retries, fallbacks,
cost and tokens; the alerts on availability, latency, fallbacks and spend."""

from __future__ import annotations

from agent_otel import semconv as sc
from mixin.names import CLIENT_DUR, COST, ERROR_TYPE, FALLBACKS, INPUT_TOKENS, OUTPUT_TOKENS, PROVIDER, RETRIES
from mixin.rules.rule import (
    Group,
    LowTraffic,
    Rule,
    Thresholds,
    alert,
    duration,
    low_traffic_alert,
    pct,
    quantile_rules,
    ratio,
    ratio_above,
    ratio_below,
    record,
    stem,
    value_of,
    window_groups,
)
from mixin.scope import Scope, eq, ne

WINDOWS = ("5m", "1h", "1d")
_COMMENT = (
    "Per provider over {w}: calls, errors, availability (with and without slow calls), latency,\n"
    "retries and fallbacks per call, cost and tokens."
)


def check_thresholds(t: Thresholds) -> None:
    """A slow call is counted from the bucket below the threshold, so the threshold must be a bucket bound."""
    if t["provider_slow_call_seconds"] not in sc.GENAI_DURATION_BUCKETS:
        raise SystemExit("provider_slow_call_seconds must be one of semconv.GENAI_DURATION_BUCKETS")


def _rules(w: str, t: Thresholds, s: Scope) -> list[Rule]:
    calls = f"provider:{CLIENT_DUR}_count:rate{w}"
    errors = f"provider:gen_ai_client_inference_errors:rate{w}"
    slow = f"provider:gen_ai_client_inference_slow:rate{w}"
    slow_le = str(t["provider_slow_call_seconds"])
    count, bucket = f"{CLIENT_DUR}_count", f"{CLIENT_DUR}_bucket"
    rules = [
        record(calls, f"sum by ({s.by(PROVIDER)}) (rate({s.series(count)}[{w}]))"),
        record(
            errors,
            f'sum by ({s.by(PROVIDER)}) (rate({s.series(count, ne(ERROR_TYPE, ""))}[{w}]))\nor\n0 * {calls}',
        ),
        # Slow calls are counted among the calls without error only, so that a call that timed out is
        # not counted twice by the *_availability_with_slow rule.
        record(
            slow,
            f'(\n  sum by ({s.by(PROVIDER)}) (rate({s.series(count, eq(ERROR_TYPE, ""))}[{w}]))\n  -\n'
            f'  sum by ({s.by(PROVIDER)}) (rate({s.series(bucket, eq(ERROR_TYPE, ""), eq("le", slow_le))}[{w}]))\n)\n'
            f"or\n0 * {calls}",
        ),
        record(f"provider:gen_ai_client_inference_availability:ratio_rate{w}", f"1 - {errors} / ({calls} > 0)"),
        record(
            f"provider:gen_ai_client_inference_availability_with_slow:ratio_rate{w}",
            f"1 - ({errors} + {slow}) / ({calls} > 0)",
        ),
        record(
            f"provider_le:{CLIENT_DUR}_bucket:rate{w}",
            f"sum by ({s.by(PROVIDER, 'le')}) (rate({s.series(bucket)}[{w}]))",
        ),
        *quantile_rules("provider", CLIENT_DUR, w),
    ]
    for counter in (RETRIES, FALLBACKS):
        rules += [
            record(f"provider:{stem(counter)}:rate{w}", f"sum by ({s.by(PROVIDER)}) (rate({s.series(counter)}[{w}]))"),
            record(
                f"provider:{stem(counter)}_per_operations:ratio_rate{w}",
                ratio(f"provider:{stem(counter)}:rate{w}", calls),
            ),
        ]
    rules += [
        record(f"provider:{stem(COST)}:rate{w}", f"sum by ({s.by(PROVIDER)}) (rate({s.series(COST)}[{w}]))"),
        *(record(f"provider:{stem(tokens)}:rate{w}", f"sum by ({s.by(PROVIDER)}) (rate({s.series(tokens)}[{w}]))")
          for tokens in (INPUT_TOKENS, OUTPUT_TOKENS)),
    ]
    if w == "1h":
        # Spend per rolling hour, what the budget alert compares against.
        rules.append(record(f"provider:{stem(COST)}:increase1h",
                            f"sum by ({s.by(PROVIDER)}) (increase({s.series(COST)}[1h]))"))
    return rules


def recording_groups(t: Thresholds, s: Scope) -> list[Group]:
    return window_groups("providers", WINDOWS, _COMMENT, lambda w: _rules(w, t, s))


_AVAILABILITY_1H = "provider:gen_ai_client_inference_availability:ratio_rate1h"
_CALLS_1H = f"provider:{CLIENT_DUR}_count:rate1h"


def _availability_alert(t: Thresholds, s: Scope, severity: str, for_: str) -> Rule:
    threshold = t[f"provider_availability_{severity}"]
    return alert(
        t,
        "AgentOtelProviderAvailabilityLow",
        ratio_below(_AVAILABILITY_1H, threshold, s.by(PROVIDER), _CALLS_1H, t["provider_min_calls_1h"]),
        for_,
        severity,
        "A model provider fails too many calls.",
        f"Provider {value_of(PROVIDER)} answered {{{{ $value | humanizePercentage }}}} of calls without error "
        f"over the last hour (threshold {pct(threshold)}).",
    )


def _availability_daily_alert(t: Thresholds, s: Scope) -> Rule:
    threshold, per_day = t["provider_availability_warning"], t["provider_min_calls_1d"]
    return low_traffic_alert(
        t, "AgentOtelProviderAvailabilityLow",
        LowTraffic("1d", f"provider:gen_ai_client_inference_availability:ratio_rate1d < {threshold}",
                   s.by(PROVIDER), f"provider:{CLIENT_DUR}_count:rate1d * 86400", per_day, f"{_CALLS_1H} * 3600",
                   t["provider_min_calls_1h"]),
        "A model provider fails too many calls.",
        f"Provider {value_of(PROVIDER)} answered {{{{ $value | humanizePercentage }}}} of calls without error "
        f"over the last day (threshold {pct(threshold)}; called fewer than {t['provider_min_calls_1h']} times an "
        f"hour on average, at least {per_day} a day).",
    )


def alert_group(t: Thresholds, s: Scope) -> Group:
    p = value_of(PROVIDER)
    return Group(
        "agent-otel-provider-alerts",
        "Model providers: availability, latency, fallbacks and what they cost.",
        [
            _availability_alert(t, s, "warning", "15m"),
            _availability_alert(t, s, "critical", "5m"),
            _availability_daily_alert(t, s),
            alert(
                t,
                "AgentOtelProviderLatencyHigh",
                "max without (quantile) "
                f'(provider_quantile:{CLIENT_DUR}:histogram_quantile_rate5m{{quantile="0.95"}})\n'
                f"> {t['provider_latency_p95_seconds']}",
                "15m",
                "warning",
                "A model provider is slow.",
                f"p95 latency of calls to provider {p} over 5 minutes is {{{{ $value | humanizeDuration }}}} "
                f"(threshold {duration(t['provider_latency_p95_seconds'])}).",
            ),
            alert(
                t,
                "AgentOtelProviderFallbackRateHigh",
                ratio_above(f"provider:{stem(FALLBACKS)}_per_operations:ratio_rate1h", t["provider_fallback_ratio"],
                            s.by(PROVIDER), _CALLS_1H, t["provider_min_calls_1h"]),
                "15m",
                "warning",
                "Calls fall back away from a model provider too often.",
                f"{{{{ $value | humanizePercentage }}}} of calls to provider {p} fell back to another provider "
                f"over the last hour (threshold {pct(t['provider_fallback_ratio'])}).",
            ),
            alert(
                t,
                "AgentOtelTokenSpendOverBudget",
                f"sum by ({s.by()}) (provider:{stem(COST)}:increase1h) > {t['spend_budget_usd_per_hour']}",
                "5m",
                "warning",
                "Model spend is above the hourly budget.",
                "Estimated spend on model calls over the last hour is {{ $value | printf \"%.2f\" }} USD "
                f"(budget {t['spend_budget_usd_per_hour']} USD per hour).",
            ),
        ],
    )
