"""agent-otel / Providers & cost: availability, latency, tokens, cost, retries, fallbacks and errors."""

from __future__ import annotations

from grafana_foundation_sdk.models.dashboard import Dashboard

from agent_otel import semconv as sc
from mixin.config import load_thresholds
from mixin.dashboards.common import (
    RATE_INTERVAL,
    RAW,
    SCOPE,
    VARIABLES,
    below_steps,
    dashboard,
    label_values,
    quantiles,
    query,
    row,
    stat_panel,
    steps,
    timeseries_panel,
    with_threshold_lines,
)
from mixin.names import (
    CLIENT_DUR,
    COST,
    ERROR_TYPE,
    FALLBACK_REASON,
    FALLBACK_TO,
    FALLBACKS,
    INPUT_TOKENS,
    MODEL,
    OUTPUT_TOKENS,
    PROVIDER,
    TTFC,
)

FILE = "providers.json"
OPERATION_COST = sc.CLIENT_OPERATION_COST.prometheus
UNPRICED = sc.CLIENT_UNPRICED_CALLS.prometheus


def build() -> Dashboard:
    limits = load_thresholds()
    # Red below the critical, yellow below the warning threshold of AgentOtelProviderAvailabilityLow.
    availability = steps(*below_steps(limits["provider_availability_critical"],
                                      limits["provider_availability_warning"]))
    p = f'{VARIABLES},{PROVIDER}=~"$provider"'
    raw_p = f'{RAW},{PROVIDER}=~"$provider"'
    raw_pm = f'{raw_p},{MODEL}=~"$model"'
    return dashboard(
        "agent-otel-providers", "agent-otel / Providers & cost",
        "Model providers: availability, latency, tokens, cost, retries, fallbacks and errors.",
        [label_values("provider", "Provider", f"{CLIENT_DUR}_count{{{RAW}}}", PROVIDER),
         label_values("model", "Model", f"{CLIENT_DUR}_count{{{raw_p}}}", MODEL)],
        [
            row("Availability"),
            stat_panel(
                "Availability (24h)",
                "Share of calls without error over the last 24 hours, per provider (errors are calls with an "
                "error_type).", "percentunit",
                [query(f"provider:gen_ai_client_inference_availability:ratio_rate1d{{{p}}}",
                       "{{gen_ai_provider_name}}", instant=True)],
            ).min(0).max(1).thresholds(availability).span(6),
            stat_panel(
                "Availability incl. slow calls (24h)",
                f"As 'Availability', also counting calls slower than {limits['provider_slow_call_seconds']} s as "
                "unavailable.", "percentunit",
                [query(f"provider:gen_ai_client_inference_availability_with_slow:ratio_rate1d{{{p}}}",
                       "{{gen_ai_provider_name}}", instant=True)],
            ).min(0).max(1).thresholds(availability).span(6),
            with_threshold_lines(timeseries_panel(
                "Availability",
                "Share of calls without error over 5 minutes and 1 hour. The dashed lines are the alert's thresholds "
                f"(AgentOtelProviderAvailabilityLow: warning below {limits['provider_availability_warning']:.0%}, "
                f"critical below {limits['provider_availability_critical']:.0%}); the axis goes a little above "
                "100 % so that a provider at 100 % stays visible.", "percentunit",
                [query(f"provider:gen_ai_client_inference_availability:ratio_rate5m{{{p}}}",
                       "{{gen_ai_provider_name}} 5m"),
                 query(f"provider:gen_ai_client_inference_availability:ratio_rate1h{{{p}}}",
                       "{{gen_ai_provider_name}} 1h")],
            ).min(0).max(1.05).thresholds(availability)),
            timeseries_panel(
                "Errors by type", "Failed calls per second by provider and error type.", "ops",
                [query(f'sum by ({PROVIDER}, {ERROR_TYPE}) (rate({CLIENT_DUR}_count{{{raw_pm},{ERROR_TYPE}!=""}}'
                       f"[{RATE_INTERVAL}]))", "{{gen_ai_provider_name}} {{error_type}}")], stack=True),
            timeseries_panel(
                "Calls by model", "Model calls per second by provider and requested model.", "reqps",
                [query(f"sum by ({PROVIDER}, {MODEL}) (rate({CLIENT_DUR}_count{{{raw_pm}}}[{RATE_INTERVAL}]))",
                       "{{gen_ai_provider_name}} {{gen_ai_request_model}}")], stack=True),
            row("Latency"),
            timeseries_panel(
                "Latency quantiles",
                "p50, p95 and p99 duration of model calls per provider. Exemplars link to the call's trace.", "s",
                quantiles(CLIENT_DUR, PROVIDER, raw_pm)),
            timeseries_panel(
                "Time to first chunk p95",
                "p95 time from request to the first chunk of streamed responses, per model.", "s",
                [query(f"histogram_quantile(0.95, sum by (le, {PROVIDER}, {MODEL}) "
                       f"(rate({TTFC}_bucket{{{raw_pm}}}[{RATE_INTERVAL}])))",
                       "{{gen_ai_provider_name}} {{gen_ai_request_model}}", exemplar=True)]),
            row("Tokens and cost"),
            timeseries_panel(
                "Tokens per second", "Input and output tokens per second by provider.", "short",
                [query(f"sum by ({PROVIDER}) (rate({tokens}{{{raw_pm}}}[{RATE_INTERVAL}]))",
                       f"{{{{gen_ai_provider_name}}}} {direction}")
                 for tokens, direction in ((INPUT_TOKENS, "input"), (OUTPUT_TOKENS, "output"))],
                stack=True).span(8),
            timeseries_panel(
                "Spend per hour by model",
                "Estimated spend as US dollars per hour, by provider and model (local price table).", "currencyUSD",
                [query(f"sum by ({PROVIDER}, {MODEL}) (rate({COST}{{{raw_pm}}}[{RATE_INTERVAL}])) * 3600",
                       "{{gen_ai_provider_name}} {{gen_ai_request_model}}")], stack=True).span(8),
            stat_panel(
                "Spend in the last hour",
                "Estimated spend over the last hour of each service and environment, all selected providers: red at "
                f"the budget, {limits['spend_budget_usd_per_hour']} USD, where AgentOtelTokenSpendOverBudget fires for "
                "that deployment (a total over deployments would turn red with none of them over it).", "currencyUSD",
                [query(f"sum by ({SCOPE.by()}) (provider:agent_otel_client_cost:increase1h{{{p}}})", "spend",
                       instant=True)],
            ).thresholds(steps(("green", None), ("red", limits["spend_budget_usd_per_hour"]))).span(8),
            timeseries_panel(
                "Cost per call",
                "p50 and p95 estimated cost of one model call, per model (gen_ai.client.operation.cost: cached input "
                "and reasoning tokens at their own prices).", "currencyUSD",
                [query(f"histogram_quantile({q}, sum by (le, {PROVIDER}, {MODEL}) "
                       f"(rate({OPERATION_COST}_bucket{{{raw_pm}}}[{RATE_INTERVAL}])))",
                       f"p{round(q * 100)} {{{{gen_ai_request_model}}}}", exemplar=True) for q in (0.5, 0.95)],
            ).span(12),
            timeseries_panel(
                "Calls without a price",
                "Model calls per second that reported tokens for a model the price table does not know: their cost "
                "is missing from every spend panel. Add the model with set_prices() or the config's [prices]. "
                "All providers and models (not only the selected ones), so that none is missed.",
                "ops",
                [query(f"sum by ({PROVIDER}, {MODEL}) (rate({UNPRICED}{{{RAW}}}[{RATE_INTERVAL}]))",
                       "{{gen_ai_provider_name}} {{gen_ai_request_model}}")]).span(12),
            row("Retries and fallbacks"),
            timeseries_panel(
                "Retries per call", "Retries per model call over 5 minutes, per provider.", "short",
                [query(f"provider:agent_otel_client_retries_per_operations:ratio_rate5m{{{p}}}",
                       "{{gen_ai_provider_name}}")]),
            timeseries_panel(
                "Fallbacks", "Fallbacks away from each provider per second, by target and reason.", "ops",
                [query(f"sum by ({PROVIDER}, {FALLBACK_TO}, {FALLBACK_REASON}) "
                       f"(rate({FALLBACKS}{{{raw_p}}}[{RATE_INTERVAL}]))",
                       "{{gen_ai_provider_name}} -> {{agent_otel_fallback_to}} ({{agent_otel_fallback_reason}})")],
                stack=True),
        ],
    )
