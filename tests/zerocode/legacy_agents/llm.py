"""Provider clients for an OpenAI-style HTTP API, with retries and a fallback chain."""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

log = logging.getLogger("legacy_agents.llm")


class ProviderError(Exception):
    def __init__(self, provider: str, kind: str, status: int) -> None:
        super().__init__(f"{provider}: {kind} (HTTP {status})")
        self.provider = provider
        self.kind = kind
        self.status = status


class OpenAIStyleClient:
    def __init__(self, name: str, base_url: str, model: str, max_retries: int = 2) -> None:
        self.name = name
        self.base_url = base_url
        self.model = model
        self.max_retries = max_retries
        self._local = threading.local()

    @property
    def last_retries(self) -> int:
        """Retries of the last call made from this thread."""
        return getattr(self._local, "retries", 0)

    def _post(self, payload: dict[str, Any]) -> Any:
        request = urllib.request.Request(self.base_url + "/v1/chat/completions", data=json.dumps(payload).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        return urllib.request.urlopen(request, timeout=10)

    def chat(self, prompt: str) -> dict[str, Any]:
        payload = {"model": self.model, "messages": [{"role": "user", "content": prompt}]}
        for attempt in range(self.max_retries + 1):
            self._local.retries = attempt
            try:
                with self._post(payload) as response:
                    return json.loads(response.read())
            except urllib.error.HTTPError as exc:
                exc.close()
                if exc.code < 500 or attempt == self.max_retries:
                    raise ProviderError(self.name, "server_error" if exc.code >= 500 else "client_error",
                                        exc.code) from None
        raise AssertionError("unreachable")

    def stream(self, prompt: str) -> Iterator[dict[str, Any]]:
        payload = {"model": self.model, "stream": True, "messages": [{"role": "user", "content": prompt}]}
        with self._post(payload) as response:
            for line in response:
                line = line.strip()
                if line.startswith(b"data: ") and line != b"data: [DONE]":
                    yield json.loads(line[6:])


class ProviderChain:
    """Try each provider in turn; fall back to the next one when a provider fails."""

    def __init__(self, clients: list[OpenAIStyleClient]) -> None:
        self.clients = clients

    def complete(self, prompt: str) -> str:
        error: ProviderError | None = None
        for index, client in enumerate(self.clients):
            try:
                response = client.chat(prompt)
                return response["choices"][0]["message"]["content"]
            except ProviderError as exc:
                error = exc
                if index + 1 < len(self.clients):
                    self._fall_back(client, self.clients[index + 1], exc)
        assert error is not None
        raise error

    def _fall_back(self, failed: OpenAIStyleClient, to: OpenAIStyleClient, error: ProviderError) -> None:
        log.warning("provider %s failed (%s); falling back to %s", failed.name, error, to.name)

    def stream(self, prompt: str) -> Iterator[str]:
        for chunk in self.clients[-1].stream(prompt):
            for choice in chunk.get("choices", []):
                yield choice["delta"].get("content", "")
