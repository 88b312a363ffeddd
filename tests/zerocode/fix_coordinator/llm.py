"""Provider clients and the chain that retries and falls back between them."""

from __future__ import annotations

from dataclasses import dataclass, field


class ProviderDown(Exception):
    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


@dataclass
class Usage:
    """Running totals since the client was created: the only usage this client keeps."""

    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class Client:
    name: str
    model: str
    healthy: bool = True
    failures_left: int = 0  # the next N requests fail, then requests succeed
    usage: Usage = field(default_factory=Usage)

    def request(self, prompt: str) -> str:
        """The raw request: adds to the running totals, returns only text."""
        if self.failures_left:
            self.failures_left -= 1
            self.usage.prompt_tokens += 10  # a failed request still used its prompt
            raise ProviderDown("rate_limit")
        self.usage.prompt_tokens += 10 * len(prompt.split())
        self.usage.completion_tokens += 4
        return f"{self.name}: fixed {prompt}"

    def check_health(self) -> bool:
        return self.healthy


def backoff(attempt: int, error: ProviderDown) -> None:
    """Runs once per retry (a real one sleeps here)."""


class RetryingProvider:
    """The outer provider function: retries the raw request of one client."""

    def __init__(self, client: Client, retries: int = 2) -> None:
        self.client = client
        self.name = client.name
        self.retries = retries

    def generate(self, prompt: str) -> str:
        for attempt in range(self.retries + 1):
            try:
                return self.client.request(prompt)
            except ProviderDown as error:
                if attempt == self.retries:
                    raise
                backoff(attempt + 1, error)
        raise AssertionError("unreachable")


class ProviderChain:
    def __init__(self, providers: list[RetryingProvider]) -> None:
        self.providers = providers

    def select(self) -> RetryingProvider:
        """The first healthy provider; the first one is the preferred provider."""
        for provider in self.providers:
            if provider.client.check_health():
                return provider
        raise ProviderDown("all_unhealthy")

    def generate(self, prompt: str) -> str:
        return self.select().generate(prompt)
