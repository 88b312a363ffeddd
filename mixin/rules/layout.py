"""The previous layout, read as the current one: every rule, alert and panel reads the current names only,
so data that an older agent-otel (or one with ``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental``
``/dup`` off) wrote under the previous names must reach them too.

One group copies each series of the previous layout (``semconv.PREVIOUS_LAYOUT``) to its current name and
labels, marked ``agent_otel_layout="previous"``, unless the same series already exists under its current name
(a process in the ``/dup`` mode sends both: the copy stays out, nothing is counted twice). The marker keeps
the copies out of that comparison, which would otherwise match a copy with itself at the next evaluation.
Everything is derived from the contract's rename tables, so a rename there updates this group.
"""

from __future__ import annotations

from agent_otel import semconv as sc
from mixin.rules.recording_tests import SCRAPE, selector
from mixin.rules.rule import Group, Rule, record
from mixin.rules.yamlout import HEADER, dump
from mixin.scope import Scope, eq

#: The label that marks a series copied from the previous layout.
MARKER = "agent_otel_layout"
_PREVIOUS = "previous"


def _set(expr: str, label: str, value: str) -> str:
    return f'label_replace({expr}, "{label}", "{value}", "", "")'


def _drop(expr: str, label: str) -> str:
    return _set(expr, label, "")  # an empty value removes the label


def _move(expr: str, old: str, new: str) -> str:
    """``old`` label's value moved to ``new``."""
    return _drop(f'label_replace({expr}, "{new}", "$1", "{old}", "(.*)")', old)


def _copy(s: Scope, current: str, previous_expr: str) -> Rule:
    return record(current, f"{_set(previous_expr, MARKER, _PREVIOUS)}\nunless ignoring ({MARKER})\n"
                           f"{s.series(current, eq(MARKER, ''))}")


def _renamed_rules(s: Scope) -> list[Rule]:
    rules = []
    for name, previous in sc.PREVIOUS_INSTRUMENTS.items():
        current = sc.INSTRUMENTS_BY_NAME[name]
        moved = [(sc.prometheus_label(sc.PREVIOUS_ATTRIBUTES[key]), sc.prometheus_label(key))
                 for key in current.attributes if key in sc.PREVIOUS_ATTRIBUTES]
        for old_series, new_series in zip(previous.prometheus_series, current.prometheus_series, strict=True):
            expr = s.series(old_series)
            for old_label, new_label in moved:
                expr = _move(expr, old_label, new_label)
            rules.append(_copy(s, new_series, expr))
    return rules


def _token_rules(s: Scope) -> list[Rule]:
    """``gen_ai.client.token.usage`` (one histogram by token type) was both the usage counters (its ``_sum``)
    and the per-operation histograms (its buckets)."""
    token_type = sc.prometheus_label(sc.PREVIOUS_TOKEN_TYPE)
    previous = sc.PREVIOUS_CLIENT_TOKEN_USAGE.prometheus
    rules = []
    for kind, counter, histogram in sc.PREVIOUS_TOKEN_SPLIT:
        of_kind = eq(token_type, kind.value)
        usage = _set(_drop(s.series(f"{previous}_sum", of_kind), token_type),
                     sc.prometheus_label(sc.GEN_AI_TOKEN_MODALITY), sc.TOKEN_MODALITY_UNKNOWN)
        rules.append(_copy(s, counter.prometheus, usage))
        for suffix, current in zip(("bucket", "count", "sum"), histogram.prometheus_series, strict=True):
            rules.append(_copy(s, current, _drop(s.series(f"{previous}_{suffix}", of_kind), token_type)))
    return rules


def previous_layout_group(s: Scope) -> Group:
    return Group(
        "agent-otel-previous-layout",
        "The previous layout (agent-otel before GenAI conventions v0.1.0) under the current names and labels,\n"
        f'marked {MARKER}="previous", unless the current series exists (CHANGELOG.md lists the renames).',
        [*_renamed_rules(s), *_token_rules(s)],
    )


def _labels(spec: sc.Instrument[object], values: dict[str, str]) -> dict[str, str]:  # type: ignore[type-var]
    """The Prometheus labels of one series of ``spec``: ``values`` for the attributes it has."""
    return {label: values[label] for label in spec.prometheus_labels if label in values}


def _test_series(provider: str) -> list[tuple[str, str, dict[str, str]]]:
    """(previous series, current series, current labels) pairs of one process, for the layout unit test."""
    values = {sc.prometheus_label(key): value for key, value in (
        (sc.GEN_AI_OPERATION_NAME, "chat"), (sc.GEN_AI_PROVIDER_NAME, provider), (sc.GEN_AI_REQUEST_MODEL, "m"),
        (sc.GEN_AI_AGENT_NAME, "planner"), (sc.AGENT_OTEL_FALLBACK_TO, "backup"),
        (sc.AGENT_OTEL_FALLBACK_REASON, "timeout"), (sc.AGENT_OTEL_RETRY_REASON, "rate_limit"))}
    previous_values = {sc.prometheus_label(sc.PREVIOUS_ATTRIBUTES.get(key, key)): values[sc.prometheus_label(key)]
                       for key in (sc.AGENT_OTEL_FALLBACK_TO, sc.AGENT_OTEL_FALLBACK_REASON,
                                   sc.AGENT_OTEL_RETRY_REASON)}
    pairs = []
    for name, previous in sc.PREVIOUS_INSTRUMENTS.items():
        current = sc.INSTRUMENTS_BY_NAME[name]
        labels = _labels(current, values)
        previous_labels = _labels(previous, {**values, **previous_values})
        for old_series, new_series in zip(previous.prometheus_series, current.prometheus_series, strict=True):
            le = {"le": "+Inf"} if new_series.endswith("_bucket") else {}
            pairs.append((selector(old_series, {**previous_labels, **le}), new_series, {**labels, **le}))
    token_type = sc.prometheus_label(sc.PREVIOUS_TOKEN_TYPE)
    tokens = sc.PREVIOUS_CLIENT_TOKEN_USAGE
    for kind, counter, histogram in sc.PREVIOUS_TOKEN_SPLIT:
        old = _labels(tokens, {**values, token_type: kind.value})
        pairs.append((selector(f"{tokens.prometheus}_sum", old), counter.prometheus, _labels(counter, {
            **values, sc.prometheus_label(sc.GEN_AI_TOKEN_MODALITY): sc.TOKEN_MODALITY_UNKNOWN})))
        for suffix, current in zip(("bucket", "count", "sum"), histogram.prometheus_series, strict=True):
            le = {"le": "+Inf"} if suffix == "bucket" else {}
            pairs.append((selector(f"{tokens.prometheus}_{suffix}", {**old, **le}), current,
                          {**_labels(histogram, values), **le}))
    return pairs


def layout_test_file(rules_file: str, scrape: dict[str, str] = SCRAPE) -> str:
    """promtool unit test of :func:`previous_layout_group`: a process that sends only the previous layout
    (provider ``legacy``) is read under the current names; one that sends both (``dup``) is not copied."""
    legacy, dup = _test_series("legacy"), _test_series("dup")
    series = [{"series": old.replace("{", "{" + ",".join(f'{k}="{v}"' for k, v in scrape.items()) + ",", 1),
               "values": "0+1x10"} for old, _, _ in legacy + dup]
    series += [{"series": selector(new, {**scrape, **labels}), "values": "0+1x10"} for _, new, labels in dup]
    tests = []
    for _, new, labels in legacy:
        expected = selector("", {"__name__": new, **scrape, **labels, MARKER: _PREVIOUS})
        tests.append({"expr": f'{new}{{{MARKER}="{_PREVIOUS}"}}', "eval_time": "5m",
                      "exp_samples": [{"labels": expected, "value": 5}]})
    for _, new, _ in dup:
        tests.append({"expr": f'count({new}{{gen_ai_provider_name="dup"}})', "eval_time": "5m",
                      "exp_samples": [{"labels": "{}", "value": 1}]})
    doc = {"rule_files": [f"../{rules_file}"], "evaluation_interval": "1m",
           "tests": [{"name": "the previous layout under the current names", "interval": "1m",
                      "input_series": series, "promql_expr_test": tests}]}
    return HEADER + "# promtool test rules: the agent-otel-previous-layout group (mixin/rules/layout.py).\n" + dump(doc)
