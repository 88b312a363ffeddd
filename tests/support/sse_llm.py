"""A loopback server speaking the OpenAI and Anthropic streaming APIs (server-sent events), so the
tests can drive the real ``openai`` and ``anthropic`` SDKs and their stream objects.

``POST /v1/chat/completions`` streams two content chunks and a usage chunk (``stream_options.include_usage``)
then ``[DONE]``; ``POST /v1/responses`` the Responses API's events, usage last; ``POST /v1/messages`` streams
Anthropic's events from ``message_start`` to ``message_stop``, or for the model :data:`OVERLOADED_MODEL` its
first two events and then an ``error`` event, as Anthropic reports a failure mid-stream; ``POST
/v1beta/models/{model}:streamGenerateContent`` (Gemini's, with ``alt=sse``) two ``GenerateContentResponse`` chunks,
the usage complete on the last; ``POST /model/{id}/converse-stream`` Amazon Bedrock's ConverseStream events, in its
binary event-stream framing, the usage on the last (``metadata``); ``POST /api/chat`` Ollama's answer, or with
``stream`` (its default) its newline-delimited chunks, the counts on the last (``prompt_eval_count``, ``eval_count``).
"""

from __future__ import annotations

import binascii
import json
import struct
import threading
from typing import Any

from tests.support.loopback import LoopbackServer, QuietHandler

OPENAI_MODEL = "gpt-4o-mini-2024-07-18"
OPENAI_USAGE = {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14}
ANTHROPIC_MODEL = "claude-3-5-haiku-20241022"
ANTHROPIC_INPUT_TOKENS, ANTHROPIC_OUTPUT_TOKENS = 40, 9
#: The model whose Anthropic stream fails after it started.
OVERLOADED_MODEL = "claude-overloaded"
#: The model whose Anthropic stream sends its first three events (a text delta among them), then nothing more until the
#: server stops: a reader waits there until it is cancelled.
STALLING_MODEL = "claude-stalling"
OLLAMA_MODEL = "llama3.1:8b"
OLLAMA_INPUT_TOKENS, OLLAMA_OUTPUT_TOKENS = 17, 9
_OVERLOADED = ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})


def _openai_events() -> list[tuple[str | None, Any]]:
    def chunk(choices: list[Any], **extra: Any) -> dict[str, Any]:
        return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": OPENAI_MODEL,
                "choices": choices, **extra}

    def delta(text: str, finish: str | None = None) -> dict[str, Any]:
        return {"index": 0, "delta": {"role": "assistant", "content": text}, "finish_reason": finish}

    return [(None, chunk([delta("Hel")])), (None, chunk([delta("lo", "stop")])),
            (None, chunk([], usage=OPENAI_USAGE)), (None, "[DONE]")]


def _anthropic_events() -> list[tuple[str | None, Any]]:
    message = {"id": "msg_1", "type": "message", "role": "assistant", "content": [], "model": ANTHROPIC_MODEL,
               "stop_reason": None, "stop_sequence": None,
               "usage": {"input_tokens": ANTHROPIC_INPUT_TOKENS, "output_tokens": 1}}
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": message},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
         "usage": {"output_tokens": ANTHROPIC_OUTPUT_TOKENS}},
        {"type": "message_stop"},
    ]
    return [(event["type"], event) for event in events]


GEMINI_MODEL = "gemini-2.5-flash-001"
GEMINI_INPUT_TOKENS, GEMINI_OUTPUT_TOKENS = 13, 5


def _gemini_events() -> list[tuple[str | None, Any]]:
    def chunk(text: str, output_tokens: int | None, finish: str | None) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}
        if finish is not None:
            candidate["finishReason"] = finish
        usage = {"promptTokenCount": GEMINI_INPUT_TOKENS,
                 "totalTokenCount": GEMINI_INPUT_TOKENS + (output_tokens or 0)}
        if output_tokens is not None:
            usage["candidatesTokenCount"] = output_tokens
        return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": GEMINI_MODEL, "responseId": "r1"}

    return [(None, chunk("Hel", None, None)), (None, chunk("lo", GEMINI_OUTPUT_TOKENS, "STOP"))]


BEDROCK_INPUT_TOKENS, BEDROCK_OUTPUT_TOKENS = 17, 9


def _bedrock_events() -> bytes:
    """ConverseStream's events, each an ``application/vnd.amazon.eventstream`` message: a prelude (total and headers
    lengths, its CRC32), string headers naming the event, its JSON payload, the message's CRC32."""
    usage = {"inputTokens": BEDROCK_INPUT_TOKENS, "outputTokens": BEDROCK_OUTPUT_TOKENS,
             "totalTokens": BEDROCK_INPUT_TOKENS + BEDROCK_OUTPUT_TOKENS}
    events = [("messageStart", {"role": "assistant"}),
              ("contentBlockDelta", {"delta": {"text": "Hello"}, "contentBlockIndex": 0}),
              ("contentBlockStop", {"contentBlockIndex": 0}), ("messageStop", {"stopReason": "end_turn"}),
              ("metadata", {"usage": usage, "metrics": {"latencyMs": 5}})]

    def header(name: str, value: str) -> bytes:
        key, text = name.encode(), value.encode()
        return struct.pack("B", len(key)) + key + b"\x07" + struct.pack(">H", len(text)) + text

    def message(event: str, payload: dict[str, Any]) -> bytes:
        headers = (header(":event-type", event) + header(":content-type", "application/json")
                   + header(":message-type", "event"))
        body = json.dumps(payload).encode()
        prelude = struct.pack(">II", 12 + len(headers) + len(body) + 4, len(headers))
        framed = prelude + struct.pack(">I", binascii.crc32(prelude)) + headers + body
        return framed + struct.pack(">I", binascii.crc32(framed))

    return b"".join(message(event, payload) for event, payload in events)


RESPONSES_USAGE = {"input_tokens": 30, "output_tokens": 5, "total_tokens": 35,
                   "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}}


def _responses_events() -> list[tuple[str | None, Any]]:
    """OpenAI's Responses API: the usage is on the response that ``response.completed`` carries."""
    def message(status: str, text: str | None) -> dict[str, Any]:
        content = [] if text is None else [{"type": "output_text", "text": text, "annotations": []}]
        return {"id": "msg_1", "type": "message", "role": "assistant", "status": status, "content": content}

    def response(status: str, usage: dict[str, Any] | None) -> dict[str, Any]:
        output = [message("completed", "Hello")] if usage is not None else []
        return {"id": "resp_1", "object": "response", "created_at": 0, "model": OPENAI_MODEL, "status": status,
                "output": output, "parallel_tool_calls": True, "tool_choice": "auto", "tools": [], "usage": usage}

    at = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": response("in_progress", None)},
        {"type": "response.output_item.added", "output_index": 0, "item": message("in_progress", None)},
        {"type": "response.content_part.added", **at, "part": {"type": "output_text", "text": "", "annotations": []}},
        {"type": "response.output_text.delta", **at, "delta": "Hello", "logprobs": []},
        {"type": "response.output_item.done", "output_index": 0, "item": message("completed", "Hello")},
        {"type": "response.completed", "response": response("completed", RESPONSES_USAGE)},
    ]
    for number, event in enumerate(events):
        event["sequence_number"] = number
    return [(event["type"], event) for event in events]


def _ollama_chunks() -> list[dict[str, Any]]:
    base = {"model": OLLAMA_MODEL, "created_at": "2026-12-07T00:00:00.000Z"}
    return [{**base, "message": {"role": "assistant", "content": "Hel"}, "done": False},
            {**base, "message": {"role": "assistant", "content": "lo"}, "done": False},
            {**base, "message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "stop",
             "total_duration": 120000000, "load_duration": 1000000, "prompt_eval_count": OLLAMA_INPUT_TOKENS,
             "prompt_eval_duration": 20000000, "eval_count": OLLAMA_OUTPUT_TOKENS, "eval_duration": 90000000}]


def _sse(events: list[tuple[str | None, Any]]) -> bytes:
    lines = []
    for name, data in events:
        if name is not None:
            lines.append(f"event: {name}\n")
        lines.append(f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n")
    return "".join(lines).encode()


class StreamingLLM:
    """``with StreamingLLM() as llm:`` serves on ``llm.url`` until the block ends."""

    def __init__(self) -> None:
        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                if body.get("model") == STALLING_MODEL:
                    self.stall(_sse(_anthropic_events()[:3]))
                    return
                if self.path == "/api/chat":
                    chunks = _ollama_chunks()
                    if body.get("stream", True):
                        lines = b"".join(json.dumps(chunk).encode() + b"\n" for chunk in chunks)
                        self.send_body(200, lines, "application/x-ndjson")
                    else:
                        answer = {**chunks[-1], "message": {"role": "assistant", "content": "Hello"}}
                        self.send_body(200, json.dumps(answer).encode(), "application/json")
                    return
                if self.path.endswith("/converse-stream"):
                    self.send_body(200, _bedrock_events(), "application/vnd.amazon.eventstream")
                    return
                events = (_openai_events() if self.path.endswith("/chat/completions") else
                          _gemini_events() if ":streamGenerateContent" in self.path else
                          _responses_events() if self.path.endswith("/responses") else
                          [*_anthropic_events()[:2], _OVERLOADED] if body.get("model") == OVERLOADED_MODEL else
                          _anthropic_events())
                self.send_body(200, _sse(events), "text/event-stream")

            def stall(self, first: bytes) -> None:
                self.close_connection = True
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.end_headers()
                    self.wfile.write(first)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    return
                stopped.wait()

        stopped = self._stopped = threading.Event()
        self._server = LoopbackServer(Handler)

    @property
    def url(self) -> str:
        return self._server.url

    def __enter__(self) -> StreamingLLM:
        self._server.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stopped.set()
        self._server.stop()
