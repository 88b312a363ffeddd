"""What Prometheus holds after scraping the demo: the contract's metrics and labels, every recording rule,
every dashboard query, a clean exposition, and exemplars that lead to the agent spans."""

from __future__ import annotations

import re
import subprocess
import urllib.request
from pathlib import Path

import pytest
from mixin.rules.layout import MARKER as LAYOUT_MARKER

from agent_otel import semconv
from tests.support.dashboards import SELECTIONS, check_every_dashboard_query_returns_data
from tests.support.e2e import E2E, check_contract_series, recording_rules, wait_for_series
from tests.support.http import http_get_json
from tests.support.ops import binary
from tests.support.otlp_receiver import attributes_of
from tests.support.polling import wait_until

pytestmark = pytest.mark.e2e

#: Labels Prometheus adds to every scraped series, and the instrumentation scope the OTel Prometheus
#: compatibility spec puts on every sample (as the stock reader does).
#: Labels on every series: the scrape's, the instrumentation scope, and the service and environment of the resource.
SCRAPE_LABELS = {"__name__", "job", "instance", "otel_scope_name", "otel_scope_version",
                 *(semconv.prometheus_label(key) for key in semconv.SCOPING_RESOURCE_ATTRIBUTES)}
PROCESS_METRICS = (semconv.PROCESS_CPU_TIME_PROMETHEUS, semconv.PROCESS_CPU_UTILIZATION_PROMETHEUS,
                   semconv.PROCESS_MEMORY_USAGE_PROMETHEUS, semconv.PROCESS_MEMORY_VIRTUAL_PROMETHEUS,
                   semconv.PROCESS_THREAD_COUNT_PROMETHEUS)


@pytest.mark.parametrize("instrument", semconv.INSTRUMENTS, ids=lambda i: i.name)
def test_every_contract_metric_is_in_prometheus_with_its_labels_and_no_id(e2e_each_mode: E2E,
                                                                           instrument: semconv.Instrument) -> None:
    check_contract_series(instrument, lambda name: wait_for_series(e2e_each_mode.api, name),
                          common_labels=SCRAPE_LABELS, job="agent-otel-demo")


@pytest.mark.parametrize("instrument", semconv.PREVIOUS_LAYOUT, ids=lambda i: i.name)
def test_the_transition_mode_also_sends_the_previous_names(e2e_dup: E2E, instrument: semconv.Instrument) -> None:
    check_contract_series(instrument, lambda name: wait_for_series(e2e_dup.api, name), common_labels=SCRAPE_LABELS,
                          job="agent-otel-demo")


def test_the_default_mode_sends_no_previous_name(e2e: E2E) -> None:
    wait_until(lambda: e2e.query(f"{semconv.CLIENT_INFERENCE_DURATION.prometheus}_count"), "model calls", timeout_s=60)
    for instrument in semconv.PREVIOUS_LAYOUT:
        assert not e2e.query(instrument.prometheus_series[0]), instrument.name


def test_the_previous_layout_rules_copy_nothing_a_process_sends_in_both(e2e_dup: E2E) -> None:
    """In the transition mode every previous series has its current twin: the layout group copies none of them,
    so nothing is counted twice."""
    wait_until(lambda: e2e_dup.query(semconv.PREVIOUS_CLIENT_OPERATION_DURATION.prometheus_series[1]),
               "previous names", timeout_s=60)
    assert not e2e_dup.query(f'{{{LAYOUT_MARKER}="previous"}}')


@pytest.mark.parametrize("name", PROCESS_METRICS)
def test_process_metrics_are_in_prometheus(e2e: E2E, name: str) -> None:
    wait_until(lambda: e2e.query(name), name, timeout_s=60)


def test_every_recording_rule_returns_data(e2e_each_mode: E2E) -> None:
    """Every rule but the previous-layout group's, which copies only what a process sends in the previous layout
    alone (promtool unit test: previous-layout.test.yaml)."""
    names = recording_rules(previous_layout=False)
    assert len(names) > 100
    missing: list[str] = []

    def all_have_data() -> bool:
        missing[:] = [name for name in names if not e2e_each_mode.query(name)]
        return not missing

    wait_until(all_have_data, "data from every recording rule", timeout_s=90)


@pytest.mark.parametrize("selection", SELECTIONS)
def test_every_dashboard_query_returns_data(e2e_each_mode: E2E, selection: str) -> None:
    """Every panel query, with the variables at All (Grafana's default here) and at their first value."""
    check_every_dashboard_query_returns_data(e2e_each_mode.api, e2e_each_mode.query, selection,
                                             e2e_each_mode.demo_alive)


def test_the_scraped_exposition_passes_promtool(e2e: E2E, tmp_path: Path) -> None:
    with urllib.request.urlopen(e2e.metrics_url, timeout=10) as response:
        text = response.read()
    assert b"gen_ai_invoke_agent_duration_seconds_bucket" in text
    checked = subprocess.run([binary("promtool"), "check", "metrics"], input=text, capture_output=True, timeout=60)
    assert checked.returncode == 0 and not checked.stdout and not checked.stderr, checked


def test_a_latency_exemplar_carries_the_trace_id_of_an_agent_span(e2e: E2E) -> None:
    found: dict[str, set[str]] = {"exemplars": set(), "spans": set()}

    def matched() -> bool:
        data = e2e.api("/api/v1/query_exemplars", query="gen_ai_invoke_agent_duration_seconds_bucket",
                       start="0", end="9999999999")
        found["exemplars"] = {exemplar["labels"]["trace_id"] for series in data for exemplar in series["exemplars"]}
        found["spans"] = {span.trace_id.hex() for span in e2e.spans.spans()
                          if span.name.startswith("invoke_agent ")}
        return bool(found["exemplars"] & found["spans"])

    wait_until(matched, "an agent latency exemplar whose trace id is an exported agent span's", timeout_s=60)
    for trace_id in found["exemplars"]:
        assert re.fullmatch(r"[0-9a-f]{32}", trace_id)


def test_prometheus_runs_the_shipped_rule_groups(e2e: E2E) -> None:
    unhealthy: list[tuple[str, str, str]] = []

    def all_evaluated_ok() -> bool:
        groups = http_get_json(f"{e2e.stack.prometheus_url}/api/v1/rules")["data"]["groups"]
        assert set(recording_rules()) <= {rule["name"] for group in groups for rule in group["rules"]}
        unhealthy[:] = [(rule["name"], rule["health"], rule.get("lastError", "")) for group in groups
                        for rule in group["rules"] if rule["health"] != "ok"]
        return not unhealthy

    try:  # "unknown" until a group's first evaluation; "err" is a failure
        wait_until(all_evaluated_ok, "every rule evaluated without error", timeout_s=60)
    except AssertionError:
        raise AssertionError(f"rules not healthy: {unhealthy}") from None


def test_a_bridged_source_reaches_prometheus_beside_the_wrapped_fleet(e2e: E2E) -> None:
    """The demo's summarizer traces itself with GenAI-semconv spans (no agent-otel wrapper): the span
    bridge turns them into provider calls and tokens under agent-otel's scope."""
    from agent_otel._ops.demo import summarizer

    selector = f'gen_ai_request_model="{summarizer.MODEL}",otel_scope_name="{semconv.SCOPE_NAME}"'
    wait_until(lambda: e2e.query(f"{semconv.CLIENT_INFERENCE_DURATION.prometheus}_count{{{selector}}}"),
               "bridged summarizer calls", timeout_s=60)
    wait_until(lambda: e2e.query(f"{semconv.CLIENT_USAGE_INPUT_TOKENS.prometheus}{{{selector}}}"), "bridged tokens",
               timeout_s=60)
    assert any(span.name == f"chat {summarizer.MODEL}" and attributes_of(span).get(semconv.JOB_ID)
               for span in e2e.spans.spans())
