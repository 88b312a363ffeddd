"""Local price table for cost estimates. Never fetched over the network.

Prices are US dollars per million tokens: ``input`` and ``output``, and optionally ``cache_read`` (input
tokens read from the provider's prompt cache), ``cache_write`` (input tokens written to it) and
``reasoning`` (output tokens spent thinking). A missing ``cache_read``/``cache_write`` costs as ``input``, a
missing ``reasoning`` as ``output`` (what OpenAI bills). A model is looked up exactly, then as a dated or
numbered snapshot of a known one (``gpt-4o-2024-08-06`` costs as ``gpt-4o``); any other name is unpriced
(``o3-pro`` is not ``o3``, nor ``gemini-2.5-flash-lite`` ``gemini-2.5-flash``). Override or extend with
:func:`set_prices` (a dict, or a TOML/JSON file of ``model = {input = .., output = .., cache_read = ..}``).
"""

from __future__ import annotations

import json
import math
import re
import threading
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from agent_otel.errors import ConfigurationError

#: When the shipped list prices were taken from the vendors' price pages. Prices change: check your
#: contract and override with :func:`set_prices`.
PRICES_AS_OF = "2025-07"


class Price(NamedTuple):
    """USD per 1M tokens. ``None``: that kind of token costs as its plain kind (input or output)."""

    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None
    reasoning: float | None = None


#: The keys of a price entry, required ones first.
PRICE_KEYS = Price._fields
_REQUIRED = ("input", "output")

#: Shipped defaults (list prices of :data:`PRICES_AS_OF`, USD per 1M tokens). OpenAI bills cached input at
#: its cached price and writes to the cache at the input price; Anthropic reads at 0.1x and writes (5-minute
#: cache) at 1.25x its input price; reasoning tokens are billed as output tokens by both.
DEFAULT_PRICES: dict[str, Price] = {
    "gpt-4o": Price(2.50, 10.00, cache_read=1.25),
    "gpt-4o-2024-05-13": Price(5.00, 15.00),  # the first snapshot keeps its own, higher price
    "gpt-4o-mini": Price(0.15, 0.60, cache_read=0.075),
    "gpt-4.1": Price(2.00, 8.00, cache_read=0.50),
    "gpt-4.1-mini": Price(0.40, 1.60, cache_read=0.10),
    "gpt-4.1-nano": Price(0.10, 0.40, cache_read=0.025),
    "o3": Price(2.00, 8.00, cache_read=0.50),
    "o3-mini": Price(1.10, 4.40, cache_read=0.55),
    "o4-mini": Price(1.10, 4.40, cache_read=0.275),
    "claude-opus-4": Price(15.00, 75.00, cache_read=1.50, cache_write=18.75),
    "claude-opus-4-0": Price(15.00, 75.00, cache_read=1.50, cache_write=18.75),  # Anthropic's alias of it
    "claude-sonnet-4": Price(3.00, 15.00, cache_read=0.30, cache_write=3.75),
    "claude-sonnet-4-0": Price(3.00, 15.00, cache_read=0.30, cache_write=3.75),
    "claude-3-5-sonnet": Price(3.00, 15.00, cache_read=0.30, cache_write=3.75),
    "claude-3-5-haiku": Price(0.80, 4.00, cache_read=0.08, cache_write=1.00),
    "claude-3-haiku": Price(0.25, 1.25, cache_read=0.03, cache_write=0.30),
    "gemini-2.5-pro": Price(1.25, 10.00, cache_read=0.31),
    "gemini-2.5-flash": Price(0.30, 2.50, cache_read=0.075),
    "gemini-2.0-flash": Price(0.10, 0.40, cache_read=0.025),
    "mistral-large": Price(2.00, 6.00),
    "llama-3.1-70b": Price(0.88, 0.88),
}

#: What may follow a known model's name in the name of a snapshot of it, once or more: a date
#: (``-2024-08-06``, ``-20241022``, Vertex's ``@20240620``), a build number (``-001``), ``-latest`` or an API
#: version (``-v2``, Bedrock's ``-v1:0``). A short number (``claude-opus-4-5``) or a word (``-pro``,
#: ``-lite``) names another model, which may cost something else entirely.
_SNAPSHOT_SUFFIX = re.compile(r"(?:[-@](?:\d{4}-\d{2}-\d{2}|\d{3,}|latest|v\d+(?::\d+)?))+")

_prices: dict[str, Price] = dict(DEFAULT_PRICES)
_lock = threading.Lock()


@dataclass(slots=True)
class TokenUsage:
    """The tokens of one model call, as the GenAI conventions count them: ``input`` includes the cache reads
    and writes, ``output`` includes the reasoning tokens. None: not reported."""

    input: int | None = None
    output: int | None = None
    cache_read: int | None = None
    cache_write: int | None = None
    reasoning: int | None = None

    @property
    def reported(self) -> bool:
        return self.input is not None or self.output is not None


#: The largest price per 1M tokens (a dollar a token): far above any model's, and small enough that no cost
#: (at most :data:`~agent_otel._calls.options.MAX_COUNT` tokens a call) nor a job's sum of them overflows.
MAX_PRICE = 1_000_000.0
#: What a price is, in errors.
PRICE_RANGE = f"a number from 0 to {MAX_PRICE:,.0f}"


def valid_price(value: object) -> bool:
    """A price per 1M tokens: a number in [0, :data:`MAX_PRICE`], not a boolean (a NaN or infinite one, or one
    so large that a cost overflowed, made every cost it entered NaN or infinite, which the SDK then refused with
    a warning on the program's stderr)."""
    return (not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
            and 0 <= value <= MAX_PRICE)


def _parse(table: Mapping[str, Any], source: str) -> dict[str, Price]:
    expected = ", ".join(f"{key} = <USD per 1M tokens>" for key in _REQUIRED)
    if not isinstance(table, Mapping):
        raise ConfigurationError(f"{source}: expected a table of model name -> {{{expected}}}, "
                                 f"got {type(table).__name__}")
    parsed: dict[str, Price] = {}
    for model, entry in table.items():
        try:
            if isinstance(entry, Mapping):
                unknown = sorted(set(entry) - set(PRICE_KEYS))
                if unknown:
                    if isinstance(entry[unknown[0]], Mapping):  # TOML read gpt-4.1 = {...} as gpt-4 -> 1 -> {...}
                        raise ValueError(f"unknown key {unknown[0]!r}, a table: quote a model name with a dot in "
                                         f'it, "{model}.{unknown[0]}" = {{ ... }}')
                    raise ValueError(f"unknown key {unknown[0]!r}; known: {', '.join(PRICE_KEYS)}")
                values = [entry[key] if key in _REQUIRED else entry.get(key) for key in PRICE_KEYS]
            else:
                if not isinstance(entry, list | tuple):  # a string is no list of prices: "125" read as 1, 2, 5
                    raise TypeError(f"got {type(entry).__name__} {entry!r}")
                if not 2 <= len(entry) <= len(PRICE_KEYS):
                    raise ValueError(f"expected 2 to {len(PRICE_KEYS)} numbers ({', '.join(PRICE_KEYS)})")
                values = [*entry, *[None] * (len(PRICE_KEYS) - len(entry))]
            if any(isinstance(value, bool) for value in values):
                raise ValueError("a price is a number, not a boolean")
            if not all(value is None or valid_price(value) for value in values):  # a string too, as in a config file
                raise ValueError(f"a price is {PRICE_RANGE}")
            price = Price(*(None if value is None else float(value) for value in values))  # type: ignore[arg-type]
        except KeyError as exc:  # a required price left out: its repr alone ('output') says nothing
            raise ConfigurationError(f"{source}: price of {model!r}: expected {{{expected}}}, optionally "
                                     f"cache_read, cache_write, reasoning (missing {exc})") from None
        except (TypeError, ValueError, IndexError) as exc:
            raise ConfigurationError(f"{source}: price of {model!r}: expected {{{expected}}}, optionally "
                                     f"cache_read, cache_write, reasoning ({exc})") from None
        parsed[str(model)] = price
    return parsed


def set_prices(table: Mapping[str, Any] | str | Path, replace: bool = False) -> None:
    """Add (or with ``replace`` swap in) prices from a dict or a TOML/JSON file."""
    if not isinstance(replace, bool):  # replace="no" is true, and dropped the shipped table
        raise ConfigurationError(f"set_prices(): replace: expected True or False, got {type(replace).__name__} "
                                 f"{replace!r}")
    source = "prices"
    if isinstance(table, str | Path):
        path = Path(table)
        source = str(path)
        try:
            text = path.read_text()
            table = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"{source}: cannot read price table ({exc})") from None
        except RecursionError:  # both parsers recurse once per level of nesting
            raise ConfigurationError(f"{source}: cannot read price table (nested too deeply)") from None
    if source != "prices" and isinstance(table, Mapping) and list(table) == ["prices"] and isinstance(
            table["prices"], Mapping):  # agent-otel.toml's layout: a model named "prices" would be no table of tables
        raise ConfigurationError(f"{source}: holds a [prices] table, as agent-otel.toml does; set_prices() reads the "
                                 "models at the top level of its file: remove the [prices] header")
    parsed = _parse(table, source)
    global _prices
    with _lock:
        _prices = parsed if replace else {**_prices, **parsed}


def reset_prices() -> None:
    """Back to the shipped price table, dropping prices set in code or config."""
    global _prices
    with _lock:
        _prices = dict(DEFAULT_PRICES)


def price_of(model: str | None) -> Price | None:
    if not model:
        return None
    prices = _prices  # (one table for every look, should set_prices() replace it meanwhile)
    found = _priced(model, prices)
    if found is None and (routed := _ROUTED_AS.match(model)):  # LiteLLM's route: the model's own name after it
        model = model[routed.end():]
        found = _priced(model, prices)
    if found is None and (served := _SERVED_AS.match(model)):  # Amazon Bedrock's id: the model's own name after its
        found = _priced(model[served.end():], prices)  # vendor's
    return found


def _priced(model: str, prices: dict[str, Price]) -> Price | None:
    """``model``'s price, or its snapshot's (see :data:`_SNAPSHOT_SUFFIX`)."""
    found = prices.get(model)
    if found is not None:
        return found
    best = max((known for known in prices
                if model.startswith(known) and _SNAPSHOT_SUFFIX.fullmatch(model, len(known))), key=len, default=None)
    return prices[best] if best else None


#: What comes before a model's name in a LiteLLM model (DSPy's and CrewAI's name models so too): its provider, after a
#: router's or not (``openai/gpt-4o-mini``, ``openrouter/anthropic/claude-3-5-haiku``, ``bedrock/anthropic.claude-3``).
_ROUTED_AS = re.compile(r"(?:[a-z][a-z0-9_-]*/){1,2}")
#: What comes before a model's own name in an Amazon Bedrock model id: its vendor, after a cross-region inference
#: profile's geography or not (``anthropic.claude-3-haiku-20240307-v1:0``,
#: ``us.anthropic.claude-sonnet-4-20250514-v1:0``). Words of letters only, each followed by a dot: no model's name
#: starts so (``gpt-4.1``, ``llama-3.1-70b`` have a digit before their dot).
_SERVED_AS = re.compile(r"(?:[a-z]+(?:-[a-z]+)*\.){1,2}(?=[a-z])")


def cost_of(model: str | None, input_tokens: int | None, output_tokens: int | None, *, cache_read: int | None = None,
            cache_write: int | None = None, reasoning: int | None = None) -> float | None:
    """USD of one call, or None when the model has no price or no tokens were reported. Cache reads and writes
    are parts of ``input_tokens``, reasoning tokens part of ``output_tokens`` (each priced at its own rate)."""
    price = price_of(model)
    if price is None or (input_tokens is None and output_tokens is None):
        return None
    read, written, thought = cache_read or 0, cache_write or 0, reasoning or 0
    plain_in = max((input_tokens or 0) - read - written, 0)
    plain_out = max((output_tokens or 0) - thought, 0)
    total = (plain_in * price.input + plain_out * price.output
             + read * (price.input if price.cache_read is None else price.cache_read)
             + written * (price.input if price.cache_write is None else price.cache_write)
             + thought * (price.output if price.reasoning is None else price.reasoning))
    return total / 1_000_000


def cost_of_usage(model: str | None, usage: TokenUsage) -> float | None:
    """:func:`cost_of` for a :class:`TokenUsage`."""
    return cost_of(model, usage.input, usage.output, cache_read=usage.cache_read, cache_write=usage.cache_write,
                   reasoning=usage.reasoning)
