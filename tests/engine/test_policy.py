"""Guards: cardinality cap with _OTHER, hashed id keys, no message content unless enabled, no ids on metrics."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

import agent_otel
from agent_otel import ConfigurationError, path, semconv
from agent_otel._engine import policy
from agent_otel._engine.instruments import runtime
from tests.support.telemetry import assert_no_ids_on_metrics, error_count

DURATION = semconv.AGENT_DURATION.name


def sha(salt: str, value: str) -> str:
    return hashlib.sha256((salt + value).encode()).hexdigest()


def all_span_values(otel: Any) -> str:
    return repr([dict(s.attributes) for s in otel.spans()])


def test_cardinality_cap_maps_the_rest_to_other_and_counts_once(otel: Any) -> None:
    agent_otel.set_policy(cardinality_limit=3)

    @agent_otel.agent("a", task_type=path("args.kind"))
    def handle(kind: str) -> None:
        return None

    for kind in ("t1", "t2", "t3", "t4", "t5", "t1", "t4"):
        handle(kind)
    by_type = {p.attributes[semconv.AGENT_TASK_TYPE]: p.count for p in otel.points(DURATION)}
    assert by_type == {"t1": 2, "t2": 1, "t3": 1, "_OTHER": 3}
    assert error_count(otel, "cardinality." + semconv.AGENT_TASK_TYPE) == 1
    assert [s.attributes[semconv.AGENT_TASK_TYPE] for s in otel.spans()] == [
        "t1", "t2", "t3", "_OTHER", "_OTHER", "t1", "_OTHER"]


def test_a_new_policy_keeps_the_values_the_cap_admitted_and_no_more(otel: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Changing the salt, or applying a configuration file again, made a policy that had admitted nothing: each
    change let another cardinality_limit values into the series the meter provider still holds."""
    monkeypatch.setenv("AGENT_OTEL_CARDINALITY_LIMIT", "3")
    policy.reset_policy()
    tool = agent_otel.tool(path("args.name"))(lambda name: None)
    for round_number, change in enumerate((lambda: None, lambda: agent_otel.set_policy(salt="pepper"),
                                           lambda: policy.set_config_policy(hashed_keys={"user.id"}))):
        change()
        for i in range(5):
            tool(f"t{round_number}-{i}")
    names = {p.attributes[semconv.GEN_AI_TOOL_NAME] for p in otel.points(semconv.TOOL_DURATION.name)}
    assert names == {"t0-0", "t0-1", "t0-2", "_OTHER"}


def test_error_stages_naming_the_hosts_keys_go_through_the_cap(otel: Any) -> None:
    """Some stages name the host's key (``invalid_text.<key>``, ``agent.extract.<kind>``): 300 keys made 300
    series of agent_otel_instrumentation_errors_total."""
    agent_otel.set_policy(cardinality_limit=10)
    for i in range(30):
        agent_otel.tool_call("t", attributes={f"header.{i}": "bad \ud800"}).__enter__().__exit__(None, None, None)
    stages = {p.attributes[semconv.INSTRUMENTATION_STAGE] for p in otel.points(semconv.INSTRUMENTATION_ERRORS.name)}
    # 10 of the host's, the rest as _OTHER, and the overflow itself by its key (a stage of the contract's keys)
    assert len(stages) == 12 and {"_OTHER", f"cardinality.{semconv.INSTRUMENTATION_STAGE}"} <= stages


def test_an_overflow_is_counted_by_its_key_whatever_the_cap(otel: Any) -> None:
    """With a strict cap the stage label overflowed too, and which keys overflowed read "_OTHER"."""
    agent_otel.set_policy(cardinality_limit=1)
    for i in range(3):
        with agent_otel.tool_call(f"tool-{i}"), agent_otel.provider_call(f"provider-{i}", model=f"model-{i}"):
            pass
    stages = {p.attributes[semconv.INSTRUMENTATION_STAGE] for p in otel.points(semconv.INSTRUMENTATION_ERRORS.name)}
    assert {f"cardinality.{key}" for key in (semconv.GEN_AI_TOOL_NAME, semconv.GEN_AI_PROVIDER_NAME,
                                              semconv.GEN_AI_REQUEST_MODEL)} <= stages


def test_cap_is_per_key_and_from_the_environment(otel: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_OTEL_CARDINALITY_LIMIT", "2")
    policy.reset_policy()

    @agent_otel.tool(path("args.name"))
    def run(name: str) -> None:
        return None

    @agent_otel.agent(path("args.name"))
    def handle(name: str) -> None:
        return None

    for name in ("a", "b", "c"):
        run(name)
        handle(name)
    assert sorted(p.attributes[semconv.GEN_AI_TOOL_NAME] for p in otel.points(semconv.TOOL_DURATION.name)) == [
        "_OTHER", "a", "b"]
    assert sorted(p.attributes[semconv.GEN_AI_AGENT_NAME] for p in otel.points(DURATION)) == ["_OTHER", "a", "b"]
    assert error_count(otel, "cardinality." + semconv.GEN_AI_TOOL_NAME) == 1
    assert error_count(otel, "cardinality." + semconv.GEN_AI_AGENT_NAME) == 1


@pytest.mark.parametrize("raw", ["0", "-3", "many"])
def test_bad_cardinality_limit_names_the_variable(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("AGENT_OTEL_CARDINALITY_LIMIT", raw)
    with pytest.raises(ConfigurationError, match="AGENT_OTEL_CARDINALITY_LIMIT"):
        policy.check_policy_environment()  # what configure() raises
    with pytest.raises(ConfigurationError, match="AGENT_OTEL_CARDINALITY_LIMIT"):
        agent_otel.set_policy()
    with pytest.raises(ConfigurationError, match="cardinality_limit=0"):
        monkeypatch.delenv("AGENT_OTEL_CARDINALITY_LIMIT")
        agent_otel.set_policy(cardinality_limit=0)


def test_hashed_keys_given_as_one_string_is_an_error_not_its_characters() -> None:
    """Before, set_policy(hashed_keys="user.id") hashed the keys 'u', 's', 'e'... and exported user.id in clear."""
    with pytest.raises(ConfigurationError) as raised:
        agent_otel.set_policy(hashed_keys="user.id,tenant.id")
    assert str(raised.value) == ("hashed_keys='user.id,tenant.id': expected a collection of attribute keys, "
                                 "e.g. {'user.id', 'tenant.id'}")


@pytest.mark.parametrize("raw", [",,", " , "])
def test_a_hashed_keys_variable_naming_no_key_is_an_error_not_user_id_in_clear(monkeypatch: pytest.MonkeyPatch,
                                                                              raw: str) -> None:
    """``AGENT_OTEL_HASHED_KEYS=",,"`` named no key, and turned the default hashing of user.id off in silence."""
    monkeypatch.setenv("AGENT_OTEL_HASHED_KEYS", raw)
    with pytest.raises(ConfigurationError, match=r"AGENT_OTEL_HASHED_KEYS=.*: names no attribute key; leave it "
                                                 r"unset \(or empty\) for the default, user.id"):
        policy.check_policy_environment()


@pytest.mark.parametrize("raw", ["", "  "])
def test_an_empty_hashed_keys_variable_is_unset_and_user_id_stays_hashed(otel: Any, monkeypatch: pytest.MonkeyPatch,
                                                                         raw: str) -> None:
    """An empty variable counts as unset (the OpenTelemetry configuration spec; the README says so): an unset
    compose substitution (``AGENT_OTEL_HASHED_KEYS=${HASHED_KEYS}``) exported ``user.id`` in clear."""
    monkeypatch.setenv("AGENT_OTEL_HASHED_KEYS", raw)
    policy.reset_policy()

    @agent_otel.tool("lookup", attributes={"user.id": "alice"})
    def lookup() -> int:
        return 1

    assert lookup() == 1
    assert otel.span("execute_tool lookup").attributes["user.id"] != "alice"


@pytest.mark.parametrize(("given", "problem"), [
    ({"salt": 5}, "salt=5: expected a string"),
    ({"hashed_keys": [1]}, "hashed_keys=[1]: expected a collection of attribute keys (strings)"),
    ({"hashed_keys": 7}, "hashed_keys=7: expected a collection of attribute keys (strings)"),
    ({"cardinality_limit": True}, "cardinality_limit=True: expected a positive integer"),
])
def test_policy_values_of_the_wrong_type_are_errors_naming_the_keyword(given: dict[str, Any], problem: str) -> None:
    """They were taken: with a salt of 5 a call with a hashed key lost its span (the hashing failed), a hashed
    key 1 hashed nothing, True became a cardinality limit of 1."""
    with pytest.raises(ConfigurationError) as raised:
        agent_otel.set_policy(**given)
    assert str(raised.value) == problem


@pytest.mark.parametrize(("variable", "raw"), [("AGENT_OTEL_CARDINALITY_LIMIT", "abc"),
                                               ("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "bogus")])
def test_a_bad_policy_variable_never_costs_a_call_its_telemetry(otel: Any, monkeypatch: pytest.MonkeyPatch,
                                                                variable: str, raw: str) -> None:
    """A call made with no configure() to raise the error first: the variable's default, the error counted. Before,
    every wrapped call failed to start and recorded nothing at all."""
    monkeypatch.setenv(variable, raw)
    monkeypatch.setenv("AGENT_OTEL_HASHED_KEYS", "user.id,team")
    policy.reset_policy()

    @agent_otel.tool("lookup", attributes={"team": "core"})
    def lookup() -> int:
        return 1

    assert lookup() == 1
    [span] = otel.spans("execute_tool lookup")
    assert span.attributes["team"] != "core"  # the other variables still apply: the key is hashed
    assert error_count(otel, "policy.environment") == 1


def test_hashed_keys_never_reach_the_span(otel: Any) -> None:
    agent_otel.set_policy(salt="pepper")

    @agent_otel.agent("a", attributes={"user.id": "alice"}, result_attributes={"user.id": path("result.user")})
    def handle() -> dict[str, str]:
        return {"user": "alice"}

    @agent_otel.agent("b", attributes={"user.id": "alice"})
    def other() -> None:
        return None

    @agent_otel.provider("openai", attributes={"user.id": "alice"})
    def complete() -> None:
        return None

    handle()
    other()
    complete()
    with agent_otel.job(type="j", **{"user.id": "alice"}), \
            runtime().tracer.start_as_current_span("foreign", attributes={"user.id": "alice"}):
        pass
    assert "alice" not in all_span_values(otel)
    expected = sha("pepper", "alice")
    assert {s.name: s.attributes["user.id"] for s in otel.spans()} == {
        "invoke_agent a": expected, "invoke_agent b": expected, "chat unknown": expected,
        "invoke_workflow j": expected, "foreign": expected}
    assert_no_ids_on_metrics(otel)


def test_hashed_keys_and_salt_from_the_environment(otel: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_OTEL_HASHED_KEYS", "tenant.id, user.email")
    monkeypatch.setenv("AGENT_OTEL_HASH_SALT", "s3")
    policy.reset_policy()

    @agent_otel.tool("t", attributes={"tenant.id": "acme", "user.email": "a@b", "user.id": "kept"})
    def run() -> None:
        return None

    run()
    attrs = otel.span("execute_tool t").attributes
    assert attrs["tenant.id"] == sha("s3", "acme")
    assert attrs["user.email"] == sha("s3", "a@b")
    assert attrs["user.id"] == "kept"  # the list replaces the default


def test_a_config_files_policy_and_set_policy_in_code_keep_each_others_fields(otel: Any) -> None:
    """``agent-otel run`` applies the file's ``[policy]``; the program sets its salt in code, as the README says to.
    Before, either one replaced the whole policy: the file's hashed ``tenant.id`` went out raw after
    ``set_policy(salt=...)``, and a file applied after the code's ``set_policy`` dropped its salt."""
    import tomllib

    from agent_otel._zerocode.config import parse_config
    from agent_otel._zerocode.patching import apply_settings

    config = parse_config(tomllib.loads('[policy]\nhashed_keys = ["user.id", "tenant.id"]\n'
                                        'capture_content = "SPAN_ONLY"\n'))
    apply_settings(config)
    agent_otel.set_policy(salt="s3")

    @agent_otel.tool("t", attributes={"tenant.id": "acme", "user.id": "alice"})
    def run() -> None:
        return None

    run()
    attrs = otel.span("execute_tool t").attributes
    assert (attrs["tenant.id"], attrs["user.id"]) == (sha("s3", "acme"), sha("s3", "alice"))
    assert policy.policy().content is policy.ContentCapture.SPAN_ONLY
    apply_settings(config)  # the file again (instrument() after the program's set_policy): the salt stays
    assert policy.policy().salt == "s3"
    agent_otel.set_policy(hashed_keys={"user.id"})  # code over the file, field by field; its salt replaced too
    assert (policy.policy().hashed_keys, policy.policy().salt) == (frozenset({"user.id"}), "")
    assert policy.policy().content is policy.ContentCapture.SPAN_ONLY


def test_no_prompt_text_by_default(otel: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)
    policy.reset_policy()
    assert policy.policy().capture_content is False

    @agent_otel.provider("openai", model="gpt-4o", prompt=path("args.prompt"), response=path("result"))
    def complete(prompt: str) -> str:
        return "RESPONSE-TEXT"

    complete("PROMPT-TEXT")
    text = all_span_values(otel)
    assert "PROMPT-TEXT" not in text and "RESPONSE-TEXT" not in text
    agent_otel.set_policy(capture_content=True)
    complete("PROMPT-TEXT")
    # structured JSON messages (tests/calls/test_content_capture.py)
    assert "PROMPT-TEXT" in otel.spans()[-1].attributes["gen_ai.input.messages"]
    assert "RESPONSE-TEXT" in otel.spans()[-1].attributes["gen_ai.output.messages"]


def test_bounded_directly() -> None:
    current = agent_otel.set_policy(cardinality_limit=1)
    assert current.bounded("k", "x") == "x"
    assert current.bounded("k", "x") == "x"
    assert current.bounded("k", "y") == "_OTHER"
    assert current.bounded("k", 5) == "_OTHER"
    assert current.bounded("other", 5) == "5"


def test_error_types_go_through_the_cap(otel: Any) -> None:
    """A program can make exception classes at run time (one per HTTP status, say)."""
    agent_otel.set_policy(cardinality_limit=2)

    @agent_otel.tool("t")
    def fail(status: int) -> None:
        raise type(f"HTTP{status}Error", (RuntimeError,), {})()

    @agent_otel.agent("a")
    def fail_agent(status: int) -> None:
        raise type(f"Agent{status}Error", (RuntimeError,), {})()

    @agent_otel.provider("p", model="m")
    def fail_provider(status: int) -> None:
        raise type(f"Provider{status}Error", (RuntimeError,), {})()

    for status in range(400, 410):
        for function in (fail, fail_agent, fail_provider):
            with pytest.raises(RuntimeError):
                function(status)
    names = (semconv.TOOL_DURATION.name, semconv.AGENT_DURATION.name, semconv.CLIENT_INFERENCE_DURATION.name)
    types = {name: {p.attributes[semconv.ERROR_TYPE] for p in otel.points(name)} for name in names}
    assert all(policy.OTHER in found for found in types.values()), types
    assert len(set().union(*types.values())) == 3, types  # the cap's two values and _OTHER, not 30


def test_every_metric_attribute_from_host_data_goes_through_the_cap(otel: Any) -> None:
    agent_otel.set_policy(cardinality_limit=10)

    @agent_otel.job(type=path("args.kind"))
    def run(kind: str) -> None:
        return None

    for n in range(200):
        run(f"kind-{n}")
        agent_otel.record_retry(provider=f"provider-{n}", model=f"model-{n}")
        agent_otel.record_fallback(to="backup", reason="timeout", from_provider=f"source-{n}")
    capped = {semconv.JOB_DURATION.name: (semconv.JOB_TYPE,),
              semconv.CLIENT_RETRIES.name: (semconv.GEN_AI_PROVIDER_NAME, semconv.GEN_AI_REQUEST_MODEL),
              semconv.CLIENT_FALLBACKS.name: (semconv.GEN_AI_PROVIDER_NAME,)}
    for name, keys in capped.items():
        found = otel.points(name)
        assert len(found) <= 11, (name, len(found))  # at most 10 values and _OTHER, not 200 series
        for key in keys:
            assert policy.OTHER in {p.attributes[key] for p in found}, (name, key)
    assert len(otel.points(semconv.JOB_DURATION.name)) == 11
    for key in (semconv.JOB_TYPE, semconv.GEN_AI_PROVIDER_NAME, semconv.GEN_AI_REQUEST_MODEL):
        assert error_count(otel, "cardinality." + key) == 1, key
