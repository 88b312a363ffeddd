"""Local price table for cost estimates. Never fetched over the network.

Prices are US dollars per million tokens, ``(input, output)``. A model is looked up exactly, then
by the longest known prefix (``gpt-4o-2024-08-06`` costs as ``gpt-4o``). Override or extend with
:func:`set_prices` (a dict, or a TOML/JSON file of ``model = {input = .., output = ..}``).
"""

from __future__ import annotations

import json
import threading
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agent_otel.errors import ConfigurationError

#: Shipped defaults (list prices, USD per 1M tokens); check your contract and override as needed.
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "o3": (2.00, 8.00),
    "o3-mini": (1.10, 4.40),
    "o4-mini": (1.10, 4.40),
    "claude-opus-4": (15.00, 75.00),
    "claude-sonnet-4": (3.00, 15.00),
    "claude-3-5-sonnet": (3.00, 15.00),
    "claude-3-5-haiku": (0.80, 4.00),
    "claude-3-haiku": (0.25, 1.25),
    "gemini-2.5-pro": (1.25, 10.00),
    "gemini-2.5-flash": (0.30, 2.50),
    "gemini-2.0-flash": (0.10, 0.40),
    "mistral-large": (2.00, 6.00),
    "llama-3.1-70b": (0.88, 0.88),
}

_prices: dict[str, tuple[float, float]] = dict(DEFAULT_PRICES)
_lock = threading.Lock()


def _parse(table: Mapping[str, Any], source: str) -> dict[str, tuple[float, float]]:
    parsed: dict[str, tuple[float, float]] = {}
    for model, entry in table.items():
        try:
            if isinstance(entry, Mapping):
                unknown = set(entry) - {"input", "output"}
                if unknown:
                    raise ValueError(f"unknown key {sorted(unknown)[0]!r}")
                pair = (float(entry["input"]), float(entry["output"]))
            else:
                pair = (float(entry[0]), float(entry[1]))
            if min(pair) < 0:
                raise ValueError("negative price")
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ConfigurationError(f"{source}: price of {model!r}: expected {{input = <USD per 1M tokens>, "
                                     f"output = <USD per 1M tokens>}} ({exc})") from None
        parsed[str(model)] = pair
    return parsed


def set_prices(table: Mapping[str, Any] | str | Path, replace: bool = False) -> None:
    """Add (or with ``replace`` swap in) prices from a dict or a TOML/JSON file."""
    source = "prices"
    if isinstance(table, str | Path):
        path = Path(table)
        source = str(path)
        try:
            text = path.read_text()
            table = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"{source}: cannot read price table ({exc})") from None
        except RecursionError:  # both parsers recurse once per level of nesting
            raise ConfigurationError(f"{source}: cannot read price table (nested too deeply)") from None
    parsed = _parse(table, source)
    global _prices
    with _lock:
        _prices = parsed if replace else {**_prices, **parsed}


def reset_prices() -> None:
    """Back to the shipped price table, dropping prices set in code or config."""
    global _prices
    with _lock:
        _prices = dict(DEFAULT_PRICES)


def price_of(model: str | None) -> tuple[float, float] | None:
    if not model:
        return None
    prices = _prices
    found = prices.get(model)
    if found is not None:
        return found
    best = max((known for known in prices if model.startswith(known)), key=len, default=None)
    return prices[best] if best else None


def cost_of(model: str | None, input_tokens: int | None, output_tokens: int | None) -> float | None:
    price = price_of(model)
    if price is None or (input_tokens is None and output_tokens is None):
        return None
    return ((input_tokens or 0) * price[0] + (output_tokens or 0) * price[1]) / 1_000_000
