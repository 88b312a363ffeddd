"""A fake OpenAI-style chat completions server on 127.0.0.1 for the zero-code tests.

``/flaky/v1/chat/completions`` always answers 500, ``/truncated/v1/chat/completions`` half a body
(``/truncated-chunked/`` chunked); ``/stable/v1/chat/completions`` answers with token usage (streamed as
server-sent events when the request says ``"stream": true``, the usage last unless ``stream_options.include_usage`` is
false); ``/agent/v1/chat/completions``
plays one agent turn with a tool (:func:`agent_turn`): it calls the request's first tool once, then answers
from the tool's result, with the token counts of ``AGENT_TURNS`` (a request without tools gets the answer).
``/held/v1/chat/completions`` answers as ``/stable/`` once a POST to ``/release`` has come (requests made at once).
For every request the server continues the caller's trace from the W3C headers (``agent_otel.attached``) and starts a
SERVER span of its own, so the test can see the job id arrive on the server side.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

import agent_otel
from agent_otel._sdk.span_processor import AgentOtelSpanProcessor
from tests.support.loopback import LoopbackServer, QuietHandler

USAGE = {"prompt_tokens": 11, "completion_tokens": 7}
STREAM_USAGE = {"prompt_tokens": 5, "completion_tokens": 3}
RESPONSE_MODEL = "stable-model-001"
# The agent route's two answers: a tool call, then the final text; each with its usage (cache and reasoning included).
TOOL_ARGUMENTS = {"city": "Paris"}
FINAL_ANSWER_TOOL = "final_answer"  # when the request offers it, the second turn calls it with the answer
AGENT_TURNS = (
    {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25,
     "prompt_tokens_details": {"cached_tokens": 4}, "completion_tokens_details": {"reasoning_tokens": 0}},
    {"prompt_tokens": 30, "completion_tokens": 8, "total_tokens": 38,
     "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 2}},
)


def _observation(message: dict[str, Any]) -> str | None:
    """The tool result in a user message ``Observation:\n<result>``, as smolagents sends one."""
    content = message.get("content")
    parts = content if isinstance(content, list) else [{"text": content}]
    for part in parts:
        text = part.get("text") if isinstance(part, dict) else None
        if message.get("role") == "user" and isinstance(text, str) and text.startswith("Observation:\n"):
            return text.removeprefix("Observation:\n")
    return None


def _tool_call(call_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"role": "assistant", "content": None, "tool_calls": [
        {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}]}


def agent_turn(body: dict[str, Any]) -> dict[str, Any]:
    """The chat completion that answers ``body``: a call of its first tool until a tool result is in the
    messages, then the final text, which quotes the tool's result (a request without tools gets the final
    text at once; one that offers a ``final_answer`` tool gets a call of it with that text instead)."""
    messages = body.get("messages", [])
    message: dict[str, Any]
    tool_results = [message for message in messages if message.get("role") == "tool"]
    tools = [tool["function"]["name"] for tool in body.get("tools", [])]
    observation = _observation(messages[-1]) if messages else None
    if observation is not None and FINAL_ANSWER_TOOL in tools:  # smolagents: the run ends with this tool's call
        usage = AGENT_TURNS[1]
        message = _tool_call("call_2", FINAL_ANSWER_TOOL, {"answer": f"Forecast: {observation}"})
        finish = "tool_calls"
    elif tool_results or not tools:
        usage = AGENT_TURNS[1]
        forecast = tool_results[-1]["content"] if tool_results else "sunny"
        message = {"role": "assistant", "content": f"Forecast: {forecast}"}
        finish = "stop"
    else:
        usage = AGENT_TURNS[0]
        message = _tool_call("call_1", tools[0], TOOL_ARGUMENTS)
        finish = "tool_calls"
    return {"id": f"chatcmpl-{len(messages)}", "object": "chat.completion", "created": 0, "model": RESPONSE_MODEL,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}], "usage": usage}


class FakeLLM:
    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(AgentOtelSpanProcessor(None))  # stamps the ids its requests carry
        provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        tracer = provider.get_tracer("fake-llm")
        self.requests: list[dict[str, Any]] = []
        self.released = threading.Event()
        fake = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                headers = {key.lower(): value for key, value in self.headers.items()}
                fake.requests.append({"path": self.path, "headers": headers})
                with agent_otel.attached(headers) as ctx:
                    span = tracer.start_span(f"POST {self.path}", context=ctx, kind=SpanKind.SERVER)
                    try:
                        self.answer(body)
                    finally:
                        span.end()

            def answer(self, body: dict[str, Any]) -> None:
                if self.path.startswith("/held/"):
                    fake.released.wait(60)
                if self.path.startswith("/release"):
                    fake.released.set()
                    self.send_json(200, {})
                elif self.path.startswith("/flaky/"):
                    self.send_json(500, {"error": {"message": "overloaded"}})
                elif self.path.startswith(("/truncated/", "/truncated-chunked/")):  # half the body, then the
                    # connection closed; with its length, or chunked (the half as a chunk, no last chunk)
                    payload = json.dumps({"model": RESPONSE_MODEL, "usage": USAGE, "choices": []}).encode()
                    half = payload[:len(payload) // 2]
                    chunked = self.path.startswith("/truncated-chunked/")
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    if chunked:
                        self.send_header("Transfer-Encoding", "chunked")
                    else:
                        self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(half), half) if chunked else half)
                    self.close_connection = True
                elif self.path.startswith("/agent/"):
                    self.send_json(200, agent_turn(body))
                elif body.get("stream"):
                    chunks = [{"model": RESPONSE_MODEL, "choices": [{"index": 0, "delta": {"content": word}}]}
                              for word in ("looks ", "safe")]
                    if (body.get("stream_options") or {}).get("include_usage") is not False:  # (asked not to: none)
                        chunks.append({"model": RESPONSE_MODEL, "choices": [], "usage": STREAM_USAGE})
                    payload = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
                    self.send_body(200, payload.encode(), "text/event-stream")
                else:
                    self.send_json(200, {"model": RESPONSE_MODEL, "usage": USAGE,
                                         "choices": [{"message": {"role": "assistant", "content": "done"}}]})

            def send_json(self, status: int, data: Any) -> None:
                self.send_body(status, json.dumps(data).encode(), "application/json")

        self._server = LoopbackServer(Handler)

    @property
    def url(self) -> str:
        return self._server.url

    def spans(self) -> list[Any]:
        return list(self.exporter.get_finished_spans())

    def __enter__(self) -> FakeLLM:
        self._server.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.stop()


def main() -> None:
    """``python -m tests.support.fake_llm`` (from the repository's root): serve until Ctrl-C, for the README's
    legacy application (its ``--llm-url`` is the URL this prints)."""
    with FakeLLM() as fake:
        print(fake.url, flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
