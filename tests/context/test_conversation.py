"""agent_otel.conversation(): the id goes on every span inside, wherever the work goes, and never on a metric."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import multiprocessing
import re
import subprocess
import sys
import textwrap
import threading
import tomllib
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry import trace

import agent_otel
from agent_otel import ConfigurationError, semconv
from agent_otel._context.carriers import instrument_http_headers, uninstrument_http_headers
from agent_otel._engine.instruments import runtime
from agent_otel._zerocode.config import parse_config
from tests.support.carrier_targets import child_conversation, view_of_a_child_process
from tests.support.environment import CLEAN_ENV
from tests.support.telemetry import assert_no_ids_on_metrics, error_count

CONVERSATION = semconv.GEN_AI_CONVERSATION_ID


@pytest.fixture(autouse=True)
def foreign_tracer(otel: Any) -> Iterator[None]:
    """Spans of another library: a plain OTel tracer, taken from the host's provider."""
    global _foreign
    _foreign = otel.tracer_provider.get_tracer("someone.else")
    yield
    _foreign = trace.NoOpTracer()


_foreign: trace.Tracer = trace.NoOpTracer()


def foreign_span(name: str, **attributes: Any) -> None:
    _foreign.start_span(name, attributes=attributes).end()


def conversation_of(otel: Any, name: str) -> Any:
    return otel.span(name).attributes.get(CONVERSATION)


def test_every_span_inside_gets_the_id_ours_and_other_libraries(otel: Any) -> None:
    @agent_otel.tool("lookup")
    def lookup() -> None:
        foreign_span("inside a tool")

    assert agent_otel.current_conversation_id() is None
    with agent_otel.conversation("chat-1") as scope:
        assert agent_otel.current_conversation_id() == "chat-1"
        assert scope.invocation is not None
        foreign_span("plain")
        lookup()
        with agent_otel.agent_call("planner"):
            pass
        with agent_otel.job("j-1", type="t"):
            foreign_span("in a job")
    assert agent_otel.current_conversation_id() is None
    foreign_span("after")
    for name in ("plain", "execute_tool lookup", "inside a tool", "invoke_agent planner", "invoke_workflow t",
                 "in a job"):
        assert conversation_of(otel, name) == "chat-1", name
    assert otel.span("in a job").attributes[semconv.JOB_ID] == "j-1"  # both ids, one processor
    assert conversation_of(otel, "after") is None
    assert len(otel.spans()) == 7  # a conversation has no span of its own


def test_nested_conversations_inner_wins_outer_returns_and_the_hosts_value_wins(otel: Any) -> None:
    with agent_otel.conversation("outer"):
        with agent_otel.conversation(7):
            assert agent_otel.current_conversation_id() == "7"
            foreign_span("in inner")
        foreign_span("in outer")
        foreign_span("own value", **{CONVERSATION: "the host's"})
    assert conversation_of(otel, "in inner") == "7"
    assert conversation_of(otel, "in outer") == "outer"
    assert conversation_of(otel, "own value") == "the host's"


def test_decorator_literal_and_extractor_each_call_its_own_scope(otel: Any) -> None:
    @agent_otel.conversation(agent_otel.path("args.session_id"))
    def reply(session_id: str | None, text: str) -> str | None:
        foreign_span(f"reply {text}")
        return agent_otel.current_conversation_id()

    @agent_otel.conversation("fixed")
    async def areply() -> str | None:
        await asyncio.sleep(0)
        return agent_otel.current_conversation_id()

    class Session:
        def __init__(self, session_id: int) -> None:
            self.id = session_id

        @agent_otel.conversation(agent_otel.path("self.id"))
        def turns(self) -> Iterator[str | None]:
            yield agent_otel.current_conversation_id()
            yield agent_otel.current_conversation_id()

    assert reply("s-1", "a") == "s-1"
    assert reply("s-2", "b") == "s-2"
    assert agent_otel.current_conversation_id() is None
    with agent_otel.conversation("enclosing"):
        assert reply(None, "c") == "enclosing"  # the extractor found nothing: the enclosing one goes on
    assert asyncio.run(areply()) == "fixed"
    assert list(Session(42).turns()) == ["42", "42"]
    assert [conversation_of(otel, f"reply {text}") for text in "abc"] == ["s-1", "s-2", "enclosing"]


def test_agent_and_job_take_a_conversation(otel: Any) -> None:
    @agent_otel.agent("support", conversation=agent_otel.path("args.session.id"))
    def answer(session: dict[str, Any]) -> dict[str, bool]:
        foreign_span("llm call " + str(session["id"]))
        return {"success": True}

    @agent_otel.job(type="batch", conversation=agent_otel.path("args.chat"))
    def batch(chat: str) -> str | None:
        return agent_otel.current_conversation_id()

    answer({"id": "c-9"})
    answer({"id": None})
    assert batch("c-10") == "c-10"
    with agent_otel.job("j", type="literal", conversation=11):
        assert agent_otel.current_conversation_id() == "11"
    assert [s.attributes.get(CONVERSATION) for s in otel.spans("invoke_agent support")] == ["c-9", None]
    assert conversation_of(otel, "llm call c-9") == "c-9"
    assert conversation_of(otel, "invoke_workflow batch") == "c-10"
    assert conversation_of(otel, "invoke_workflow literal") == "11"


def test_the_id_is_never_a_metric_label(otel: Any) -> None:
    @agent_otel.agent("a", conversation="on-agent")
    def work() -> dict[str, Any]:
        return {"success": True, "confidence": 0.5, "fixes_applied": 1}

    @agent_otel.provider("openai", model="gpt-4o")
    def complete() -> dict[str, Any]:
        return {"model": "gpt-4o", "usage": {"prompt_tokens": 3, "completion_tokens": 2}}

    with agent_otel.conversation("c-metrics"), agent_otel.job(type="t"):
        work()
        complete()
    assert otel.metrics()
    assert_no_ids_on_metrics(otel)
    assert CONVERSATION in semconv.ID_ATTRIBUTES


def sha(salt: str, value: str) -> str:
    return hashlib.sha256((salt + value).encode()).hexdigest()


def test_hashed_when_listed_in_hashed_keys_on_every_span(otel: Any) -> None:
    agent_otel.set_policy(hashed_keys=[CONVERSATION, semconv.JOB_ID], salt="pepper")

    @agent_otel.tool("t")
    def tool() -> None:
        foreign_span("foreign in tool")

    with agent_otel.conversation("secret-chat"), agent_otel.job("secret-job", type="j"):
        tool()
        foreign_span("foreign")
    assert {s.name for s in otel.spans()} == {"execute_tool t", "foreign in tool", "foreign", "invoke_workflow j"}
    for span in otel.spans():
        assert span.attributes[CONVERSATION] == sha("pepper", "secret-chat"), span.name
        assert span.attributes[semconv.JOB_ID] == sha("pepper", "secret-job"), span.name


def test_threads_and_thread_pools(otel: Any) -> None:
    seen: dict[str, str | None] = {}

    def record(key: str) -> None:
        seen[key] = agent_otel.current_conversation_id()

    pool = ThreadPoolExecutor(2)  # created outside any conversation: it travels per submit
    with agent_otel.conversation("c-a"):
        thread = threading.Thread(target=record, args=("thread",))
        thread.start()
        thread.join()
        pool.submit(record, "pool-a").result()
    with agent_otel.conversation("c-b"):
        pool.submit(record, "pool-b").result()
    pool.submit(record, "outside").result()
    pool.shutdown()
    assert seen == {"thread": "c-a", "pool-a": "c-a", "pool-b": "c-b", "outside": None}


def test_asyncio_tasks_and_to_thread(otel: Any) -> None:
    async def one(i: int) -> tuple[str | None, str | None]:
        async with agent_otel.conversation(f"c-{i}"):
            in_task = await asyncio.create_task(asyncio.sleep(0, result=agent_otel.current_conversation_id()))
            in_thread = await asyncio.to_thread(agent_otel.current_conversation_id)
            return in_task, in_thread

    async def main() -> list[tuple[str | None, str | None]]:
        return await asyncio.gather(*(one(i) for i in range(20)))

    assert asyncio.run(main()) == [(f"c-{i}", f"c-{i}") for i in range(20)]


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_process_pool_executor(otel: Any, method: str) -> None:
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context(method)) as pool:
        with agent_otel.conversation(f"pp-{method}"):
            alone = pool.submit(child_conversation, "alone").result(timeout=120)  # no span, no job
            with agent_otel.job("pp-job"):
                with_job = pool.submit(child_conversation, "job").result(timeout=120)
        outside = pool.submit(child_conversation, "outside").result(timeout=120)
    assert alone == {"conversation": f"pp-{method}", "job": None, "tag": "alone"}
    assert with_job == {"conversation": f"pp-{method}", "job": "pp-job", "tag": "job"}
    assert outside["conversation"] is None  # nothing leaks between submits


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_multiprocessing_process(otel: Any, method: str) -> None:
    with agent_otel.conversation(f"mp-{method}"):
        view = view_of_a_child_process(method, "alone")
    assert view == {"conversation": f"mp-{method}", "job": None, "tag": "alone"}


def test_subprocess_environment_carrier(otel: Any) -> None:
    code = ("import json, os, agent_otel; agent_otel.configure(metrics_exporter='none', system_metrics=False); "
            "print(json.dumps([agent_otel.current_conversation_id(), os.environ.get('BAGGAGE')]))")
    with agent_otel.conversation("sub-chat"):  # alone: no span, no job
        child = dict(zip(("conversation", "baggage"), json.loads(subprocess.run(
            [sys.executable, "-c", code], env=CLEAN_ENV, capture_output=True, text=True, timeout=120,
            check=True).stdout), strict=True))
        explicit_env = agent_otel.subprocess_env({"PATH": "/usr/bin"})
    assert child["conversation"] == "sub-chat"
    assert f"{CONVERSATION}=sub-chat" in child["baggage"]
    assert f"{CONVERSATION}=sub-chat" in explicit_env["BAGGAGE"]


class _Receiver(BaseHTTPRequestHandler):
    """Continues the caller's context, as a receiving service does with agent_otel.attached()."""

    received: dict[str, Any] = {}

    def do_GET(self) -> None:
        with agent_otel.attached(dict(self.headers)):
            self.received[self.path] = agent_otel.current_conversation_id()
            runtime().tracer.start_span("server side " + self.path).end()
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        _Receiver.received.clear()


def test_http_headers_inject_extract_and_the_http_client_patch(otel: Any, receiver: str) -> None:
    with agent_otel.conversation("http-chat"):
        headers = agent_otel.inject({})
        urllib.request.urlopen(urllib.request.Request(receiver + "/explicit", headers=headers), timeout=10).read()
        instrument_http_headers()
        try:
            urllib.request.urlopen(receiver + "/patched", timeout=10).read()  # no headers of the program's own
        finally:
            uninstrument_http_headers()
        context = agent_otel.extract(headers)
    assert f"{CONVERSATION}=http-chat" in headers["baggage"]
    assert agent_otel.current_conversation_id(context) == "http-chat"
    assert _Receiver.received == {"/explicit": "http-chat", "/patched": "http-chat"}
    assert conversation_of(otel, "server side /explicit") == "http-chat"
    assert conversation_of(otel, "server side /patched") == "http-chat"


@pytest.mark.parametrize("value", [1.5, True, "", None, ["a"], {"id": 1}])
def test_an_id_that_is_not_a_string_or_an_integer_is_an_error(value: Any) -> None:
    expected = (f"conversation(): a conversation id must be a non-empty string, an integer or an extractor "
                f"(e.g. path(\"args.session_id\")), got {value!r}")
    with pytest.raises(ConfigurationError, match=re.escape(expected)):
        agent_otel.conversation(value)(lambda: None)  # decorating: the code's own value
    if value is not None:
        with pytest.raises(ConfigurationError, match="agent\\(\\): a conversation id"):
            agent_otel.agent("a", conversation=value)
        with pytest.raises(ConfigurationError, match="job\\(\\): a conversation id"):
            agent_otel.job(conversation=value)(lambda: None)  # decorating: the code's own value


@pytest.mark.parametrize("value", [1.5, True, ""])
def test_a_jobs_conversation_id_of_the_programs_in_a_with_block_is_counted_as_in_conversation(
        otel: Any, value: Any) -> None:
    """As in ``conversation()``, a with-block's id is the program's value at run time: the job runs in no
    conversation and the miss is counted. It raised ConfigurationError into the program."""
    with agent_otel.conversation(value), agent_otel.job("j", type="chat", conversation=value) as job:
        assert job.id == "j" and agent_otel.current_conversation_id() is None
    assert len(otel.spans("invoke_workflow chat")) == 1
    assert error_count(otel, "conversation.id") == 2  # the conversation's miss and the job's


def test_an_extractor_in_a_with_block_or_one_read_too_late_is_an_error() -> None:
    scope = agent_otel.conversation(agent_otel.path("args.session_id"))
    with pytest.raises(ConfigurationError, match="only meaningful when conversation\\(\\) decorates a function"), \
            scope:
        pass
    with pytest.raises(ConfigurationError, match="only meaningful when job\\(\\) decorates"), \
            agent_otel.job(conversation=agent_otel.path("args.x")):
        pass
    with pytest.raises(ConfigurationError, match=re.escape(
            "conversation(): conversation: extractor path 'result.id' reads the result but this key is read when the "
            "call starts; use a path rooted at args or self")):
        agent_otel.conversation(agent_otel.path("result.id"))
    with pytest.raises(ConfigurationError, match="has no parameter 'session'"):
        agent_otel.conversation(agent_otel.path("args.session"))(lambda chat_id: None)


def test_a_failing_extractor_is_counted_and_the_call_runs(otel: Any) -> None:
    def broken(call: agent_otel.Call) -> str:
        raise RuntimeError("boom")

    @agent_otel.conversation(broken)
    def run() -> str:
        return "ran"

    assert run() == "ran"
    errors = otel.points(semconv.INSTRUMENTATION_ERRORS.name, {semconv.INSTRUMENTATION_STAGE: "conversation.extract"})
    assert sum(p.value for p in errors) == 1


def test_an_invalid_text_id_is_carried_repaired_not_raised(otel: Any) -> None:
    with agent_otel.conversation("bad\udc80id"):
        env = agent_otel.subprocess_env({})  # encoding the baggage must not fail
        foreign_span("repaired")
    assert conversation_of(otel, "repaired") == "bad\ufffdid"
    assert "BAGGAGE" in env


def config(text: str) -> Any:
    return parse_config(tomllib.loads(textwrap.dedent(text)), "t.toml")


def test_config_key_opens_a_conversation_around_each_call(otel: Any, tmp_path: Any) -> None:
    module = tmp_path / "conv_app.py"
    module.write_text(textwrap.dedent("""
        TRACER = None  # set by the test: an LLM library's tracer

        class Bot:
            def answer(self, session, text):
                TRACER.start_span("llm " + text).end()
                return {"success": True}

        def nightly(chat):
            return None
    """))
    sys.path.insert(0, str(tmp_path))
    try:
        agent_otel.instrument(config("""
            [[agent]]
            target = "conv_app:Bot.answer"
            conversation = { path = "args.session.id" }
            [[job]]
            target = "conv_app:nightly"
            conversation = "fixed-chat"
        """))
        import conv_app

        conv_app.TRACER = otel.tracer_provider.get_tracer("llm")
        conv_app.Bot().answer({"id": "from-config"}, "hi")
        conv_app.nightly("x")
    finally:
        agent_otel.uninstrument()
        sys.path.remove(str(tmp_path))
        sys.modules.pop("conv_app", None)
    assert conversation_of(otel, "invoke_agent Bot") == "from-config"
    assert conversation_of(otel, "llm hi") == "from-config"
    assert conversation_of(otel, "invoke_workflow default") == "fixed-chat"


@pytest.mark.parametrize(("value", "problem"), [
    ("1.5", "expected a string or an integer or { path = \"...\" }, got a float (1.5)"),
    ('{ path = "result.id" }', "extractor path 'result.id' reads the result but this key is read when the call "
                               "starts; use a path rooted at args or self"),
])
def test_config_key_bad_values_name_file_key_and_problem(value: str, problem: str) -> None:
    for kind in ("agent", "job"):
        with pytest.raises(ConfigurationError) as caught:
            config(f'[[{kind}]]\ntarget = "m:f"\nname = "n"\nconversation = {value}\n' if kind == "agent"
                   else f'[[{kind}]]\ntarget = "m:f"\nconversation = {value}\n')
        assert str(caught.value) == f"t.toml: {kind}[0].conversation: {problem}"


def test_one_function_called_in_turn_in_other_jobs_and_conversations_carries_each_calls_own_ids(otel: Any) -> None:
    """A call's span starts with the ids of its job and conversation; a function called in turn in several of
    them (and with the policy changed between two calls) never carries the ids of another call."""
    @agent_otel.tool("t")
    def tool(n: int) -> int:
        return n

    expected: list[tuple[str | None, str | None]] = []
    job_a, job_b = agent_otel.job("job-a", type="j"), agent_otel.job("job-b", type="j")
    for n, (job_id, conversation_id) in enumerate([("job-a", None), ("job-b", None), ("job-a", None), (None, None),
                                                   ("job-a", "chat-1"), ("job-a", "chat-2"), (None, "chat-2"),
                                                   ("job-b", "chat-2"), ("job-b", None)]):
        with contextlib.ExitStack() as stack:
            if job_id is not None:
                stack.enter_context(job_a if job_id == "job-a" else job_b)
            if conversation_id is not None:
                stack.enter_context(agent_otel.conversation(conversation_id))
            assert tool(n) == n
        expected.append((job_id, conversation_id))
    with job_a:
        tool(len(expected))
        agent_otel.set_policy(hashed_keys=[semconv.JOB_ID], salt="pepper")
        tool(len(expected) + 1)
    expected += [("job-a", None), (sha("pepper", "job-a"), None)]

    spans = sorted(otel.spans("execute_tool t"), key=lambda span: span.start_time or 0)
    assert [(s.attributes.get(semconv.JOB_ID), s.attributes.get(CONVERSATION)) for s in spans] == expected
