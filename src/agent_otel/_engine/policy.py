"""Guards applied to what the kinds record: cardinality caps, hashed keys, message content.

User data reaches attribute values (task types, models, pattern and KPI names); each metric
attribute key keeps at most ``cardinality_limit`` distinct values and maps the rest to ``_OTHER``,
so a bug in the host cannot blow up Prometheus. Versions (:data:`semconv.AGING_ATTRIBUTES`) only ever
grow, so their values age out instead: a full cap admits a new version in place of the one used
longest ago, if that one has been idle for ``aging_idle_seconds`` (default an hour); a version
per call, a bug, still ends at ``_OTHER``. Keys listed in ``hashed_keys`` (e.g. ``user.id``)
are replaced by a salted SHA-256 before they reach any exporter. Message content is recorded only where
``content`` (:class:`ContentCapture`, ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``) says.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, cast

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Span
from opentelemetry.util.types import AttributeValue

from agent_otel import semconv
from agent_otel._engine.self_telemetry import logger, report_error
from agent_otel._environment import (
    AGENT_OTEL_CARDINALITY_LIMIT,
    AGENT_OTEL_HASH_SALT,
    AGENT_OTEL_HASHED_KEYS,
    OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT,
    is_false,
    is_true,
)
from agent_otel.errors import ConfigurationError

OTHER = "_OTHER"
DEFAULT_CARDINALITY_LIMIT = 100
#: The longest metric attribute value taken from the program's data: a longer one is a dump (an object's repr, a
#: prompt), no name, and becomes ``_OTHER``.
LABEL_LENGTH_LIMIT = 256
#: How long a version must go unused before a new one may take its place in a full cap.
DEFAULT_AGING_IDLE_SECONDS = 3600.0

#: Set (only) in the context agent-otel starts its own spans with: their attributes are already
#: scrubbed, so :func:`hash_present` does not hash the hash, and already carry the job and
#: conversation ids, so the span processor need not stamp them again.
SCRUBBED_KEY = otel_context.create_key("agent_otel.scrubbed")


class ContentCapture(Enum):
    """Where message content goes, as the GenAI instrumentations' standard variable names it."""

    NO_CONTENT = "NO_CONTENT"
    SPAN_ONLY = "SPAN_ONLY"
    EVENT_ONLY = "EVENT_ONLY"
    SPAN_AND_EVENT = "SPAN_AND_EVENT"

    @property
    def on_span(self) -> bool:
        return self in (ContentCapture.SPAN_ONLY, ContentCapture.SPAN_AND_EVENT)

    @property
    def on_event(self) -> bool:
        return self in (ContentCapture.EVENT_ONLY, ContentCapture.SPAN_AND_EVENT)


def content_capture(value: object, source: str) -> ContentCapture:
    """A content capture mode from a mode name (any case) or a boolean (true: ``SPAN_ONLY``, where earlier
    versions put content); a clear error naming ``source`` otherwise."""
    if isinstance(value, ContentCapture):
        return value
    if isinstance(value, bool):
        return ContentCapture.SPAN_ONLY if value else ContentCapture.NO_CONTENT
    if isinstance(value, str):
        text = value.strip()
        if text.upper() in ContentCapture.__members__:
            return ContentCapture[text.upper()]
        if not text or is_false(text):
            return ContentCapture.NO_CONTENT
        if is_true(text):
            return ContentCapture.SPAN_ONLY
    modes = ", ".join(ContentCapture.__members__)
    raise ConfigurationError(f"{source}={value!r}: expected one of {modes} (or true/false)")


@dataclass
class Policy:
    cardinality_limit: int = DEFAULT_CARDINALITY_LIMIT
    hashed_keys: frozenset[str] = frozenset({"user.id"})
    salt: str = ""
    content: ContentCapture = ContentCapture.NO_CONTENT
    aging_idle_seconds: float = DEFAULT_AGING_IDLE_SECONDS
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    _seen: dict[str, set[str]] = field(default_factory=dict, repr=False)
    _last_used: dict[str, dict[str, float]] = field(default_factory=dict, repr=False)
    _overflowed: set[str] = field(default_factory=set, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def bounded(self, key: str, value: object) -> str:
        """``value`` as a metric attribute value, or ``_OTHER`` once ``key`` has too many values."""
        text = value if isinstance(value, str) else readable_text(value, key)
        if text is None:
            return OTHER
        seen = self._seen.get(key)
        if seen is not None and text in seen:
            return text
        if len(text) > LABEL_LENGTH_LIMIT:
            return _too_long(key, text)
        text = valid_text(text, key)  # once per new value: what is in `seen` is valid
        with self._lock:
            seen = self._seen.setdefault(key, set())
            if text in seen:
                return text
            if len(seen) < self.cardinality_limit:
                seen.add(text)
                return text
            first_overflow = key not in self._overflowed
            self._overflowed.add(key)
        if first_overflow:
            report_error("cardinality." + key, OverflowError(
                f"more than {self.cardinality_limit} distinct values for {key}; further values become {OTHER}"))
        return OTHER

    def bounded_recent(self, key: str, value: object) -> str:
        """``value`` as a metric attribute value of a key whose values age out (versions): within the cap
        of the values used most recently; once the cap is full, a new value takes the place of the one used
        longest ago if that one has been idle for :attr:`aging_idle_seconds`, else it is ``_OTHER``. The
        series of an aged-out value stay as they are (a counter keeps its total); it is admitted anew if
        it comes back."""
        text = value if isinstance(value, str) else str(value)
        now = self.clock()
        used = self._last_used.get(key)
        if used is not None and text in used:
            used[text] = now  # unlocked: racing an eviction, a value in use may stay past the cap (by a few)
            return text
        if len(text) > LABEL_LENGTH_LIMIT:
            return _too_long(key, text)
        text = valid_text(text, key)
        with self._lock:
            used = self._last_used.setdefault(key, {})
            if text in used or len(used) < self.cardinality_limit:
                used[text] = now
                return text
            oldest = min(used, key=used.__getitem__)  # only when a new value meets a full cap
            if now - used[oldest] >= self.aging_idle_seconds:
                del used[oldest]
                used[text] = now
                return text
            first_overflow = key not in self._overflowed
            self._overflowed.add(key)
        if first_overflow:
            report_error("cardinality." + key, OverflowError(
                f"more than {self.cardinality_limit} distinct values of {key} used within "
                f"{self.aging_idle_seconds:g} s; further values become {OTHER}"))
        return OTHER

    @property
    def capture_content(self) -> bool:
        """Whether any message content is recorded (on spans or in events)."""
        return self.content is not ContentCapture.NO_CONTENT

    def hashed(self, value: object) -> str:
        # surrogatepass: a lone surrogate in an id is hashed like any other character, never raised
        return hashlib.sha256((self.salt + str(value)).encode("utf-8", "surrogatepass")).hexdigest()

    def scrub(self, attributes: dict[str, AttributeValue]) -> dict[str, AttributeValue]:
        """Hash the configured keys in a dict of span attributes (in place; returned for chaining)."""
        for key in self.hashed_keys.intersection(attributes):
            attributes[key] = self.hashed(attributes[key])
        return attributes


def _too_long(key: str, text: str) -> str:
    """A value too long for a label: ``_OTHER``, counted (its length said, never its text)."""
    report_error("cardinality." + key, ValueError(
        f"a value of {key} is {len(text)} characters, more than {LABEL_LENGTH_LIMIT}; recorded as {OTHER}"))
    return OTHER


def valid_text(text: str, key: str) -> str:
    """``text`` if it can be encoded as UTF-8, as every exporter must; else each lone surrogate in it
    (``json.loads`` lets them through) replaced by U+FFFD, counted at stage ``invalid_text.<key>``.
    A valid surrogate pair, kept as two code points, becomes the one character it encodes."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    report_error("invalid_text." + key, UnicodeError(
        f"a value of {key} is not valid Unicode (lone surrogate); recorded with U+FFFD in its place"))
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def readable_text(value: object, key: str) -> str | None:
    """A program's value as text: its ``str()``, or None when that raises, counted at stage ``text.<key>``. The
    program's object failing to print must not cost its call the span and metrics."""
    if isinstance(value, str):
        return value
    try:
        return str(value)
    except Exception as exc:
        report_error("text." + key, exc)
        return None


def valid_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """A program's span attributes with every text value through :func:`valid_text`, every integer through
    :func:`valid_int`: one value no exporter can encode would otherwise be dropped from the span with a traceback
    on the program's stderr."""
    return {key: valid_text(value, key) if isinstance(value, str) else valid_int(value, key)
            if type(value) is int else value for key, value in attributes.items()}


def valid_int(value: int, key: str) -> int | str:
    """An integer as OTLP carries one (64 bits, signed); a larger one as its digits, counted: the exporter drops
    it from the span, with a traceback per span on the program's stderr."""
    if -_INT64_LIMIT <= value < _INT64_LIMIT:
        return value
    report_error("invalid_int." + key, OverflowError(f"a value of {key} is beyond 64 bits; recorded as its digits"))
    return str(value)


_INT64_LIMIT = 2**63


def _policy_from_env(strict: bool = True) -> Policy:
    """The policy the environment gives. A malformed variable is a ``ConfigurationError`` naming it
    (``configure()`` and ``set_policy()`` raise it); not ``strict`` (a wrapped call, which must never raise
    nor lose its telemetry), that variable's default is used and the error counted."""
    defaults = Policy()

    def malformed(error: ConfigurationError) -> None:
        if strict:
            raise error
        report_error("policy.environment", error)

    raw_limit = os.environ.get(AGENT_OTEL_CARDINALITY_LIMIT, "")
    limit = defaults.cardinality_limit
    try:
        limit = int(raw_limit) if raw_limit.strip() else DEFAULT_CARDINALITY_LIMIT
        if limit < 1:
            raise ValueError
    except ValueError:
        limit = defaults.cardinality_limit
        malformed(ConfigurationError(
            f"environment variable {AGENT_OTEL_CARDINALITY_LIMIT}={raw_limit!r}: expected a positive integer"))
    keys = os.environ.get(AGENT_OTEL_HASHED_KEYS, "").strip()  # empty: unset, as the OpenTelemetry spec has it
    hashed = frozenset(k.strip() for k in keys.split(",") if k.strip()) if keys else defaults.hashed_keys
    if not hashed and keys:  # ",,": no key, and user.id went out in clear (a config file's hashed_keys = [] says so)
        hashed = defaults.hashed_keys
        malformed(ConfigurationError(f"environment variable {AGENT_OTEL_HASHED_KEYS}={keys!r}: names no attribute "
                                     "key; leave it unset (or empty) for the default, user.id"))
    salt = os.environ.get(AGENT_OTEL_HASH_SALT, "")
    if hashed and not salt:
        logger.debug("agent-otel: %s is not set; hashed keys use an unsalted SHA-256", AGENT_OTEL_HASH_SALT)
    content = defaults.content
    try:
        content = content_capture(os.environ.get(OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT, ""),
                                  f"environment variable {OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT}")
    except ConfigurationError as error:
        malformed(error)
    return Policy(cardinality_limit=limit, hashed_keys=hashed, salt=salt, content=content)


def check_policy_environment() -> None:
    """Raise the ``ConfigurationError`` of a malformed policy variable (``configure()`` calls it first)."""
    _policy_from_env()


_policy: Policy | None = None


def policy() -> Policy:
    global _policy
    if _policy is None:
        _policy = _policy_from_env(strict=False)
    return _policy


#: The fields of the policy set by a configuration file's ``[policy]`` (``agent-otel run``, ``instrument()``) and
#: by ``set_policy()`` in code, each over the environment's and code's over the file's: setting one never
#: drops the other's (a program's ``set_policy(salt=...)`` keeps the file's ``hashed_keys``).
_config_fields: dict[str, Any] = {}
_code_fields: dict[str, Any] = {}


def set_policy(cardinality_limit: int | None = None, hashed_keys: Iterable[str] | None = None, salt: str | None = None,
               capture_content: bool | str | None = None) -> Policy:
    """Replace the policy set in code (from code or tests); unspecified fields come from the configuration
    file's ``[policy]`` when one was applied, else from the environment.
    ``capture_content``: ``"NO_CONTENT"``, ``"SPAN_ONLY"``, ``"EVENT_ONLY"``, ``"SPAN_AND_EVENT"``, or a
    boolean (true: ``SPAN_ONLY``)."""
    global _code_fields
    fields = _fields(cardinality_limit=cardinality_limit, hashed_keys=hashed_keys, salt=salt,
                     capture_content=capture_content)
    current = _composed(_config_fields, fields)  # raises before anything changes
    _code_fields = fields
    return _install(current)


def set_config_policy(cardinality_limit: int | None = None, hashed_keys: Iterable[str] | None = None,
                      capture_content: bool | str | None = None) -> Policy:
    """The ``[policy]`` of a configuration file: under what ``set_policy()`` set in code, over the environment."""
    global _config_fields
    fields = _fields(cardinality_limit=cardinality_limit, hashed_keys=hashed_keys, capture_content=capture_content)
    current = _composed(fields, _code_fields)
    _config_fields = fields
    return _install(current)


def _fields(**given: Any) -> dict[str, Any]:
    hashed_keys = given.get("hashed_keys")
    if isinstance(hashed_keys, str):  # would be its characters: 'u', 's', 'e'... hashed, user.id not
        raise ConfigurationError(f"hashed_keys={hashed_keys!r}: expected a collection of attribute keys, "
                                 f"e.g. {{{', '.join(repr(key) for key in hashed_keys.split(',') if key)}}}")
    try:
        keys = frozenset(hashed_keys) if hashed_keys is not None else None
    except TypeError:  # not a collection, or one holding unhashable items
        keys = None
    if hashed_keys is not None and (keys is None or not all(isinstance(key, str) and key for key in keys)):
        raise ConfigurationError(f"hashed_keys={hashed_keys!r}: expected a collection of attribute keys (strings)")
    salt = given.get("salt")
    if salt is not None and not isinstance(salt, str):
        raise ConfigurationError(f"salt={salt!r}: expected a string")
    return {name: keys if name == "hashed_keys" else value for name, value in given.items() if value is not None}


def _composed(*layers: Mapping[str, Any]) -> Policy:
    base = _policy_from_env()
    for fields in layers:
        if "cardinality_limit" in fields:
            limit = fields["cardinality_limit"]
            if type(limit) is not int or limit < 1:  # not a bool: True would be a limit of 1
                raise ConfigurationError(f"cardinality_limit={limit!r}: expected a positive integer")
            base.cardinality_limit = limit
        if "hashed_keys" in fields:
            base.hashed_keys = fields["hashed_keys"]
        if "salt" in fields:
            base.salt = fields["salt"]
        if "capture_content" in fields:
            base.content = content_capture(fields["capture_content"], "capture_content")
    return base


def _install(current: Policy) -> Policy:
    """Make ``current`` the policy. The values each key admitted under the cap stay admitted, and only those: a
    new policy (a salt changed, a configuration file applied again) started from none, and let another
    ``cardinality_limit`` values into the series the meter provider still holds."""
    global _policy
    previous = _policy
    if previous is not None:
        current._seen, current._last_used = previous._seen, previous._last_used
        current._overflowed, current._lock = previous._overflowed, previous._lock
    _policy = current
    return current


def reset_policy() -> None:
    """Forget the policy set in code and by a configuration file (and the values seen per key): the next use
    reads the environment."""
    global _policy, _config_fields, _code_fields
    _policy = None
    _config_fields, _code_fields = {}, {}


#: The hashed-key values of each live span that are hashes already (hashed at its start, or by
#: :func:`set_hashed`), so that a value is hashed exactly once however many hashing processors a
#: provider has (one per ``configure()`` on a host's provider) and whichever path set it.
_known_hashes: weakref.WeakKeyDictionary[Span, dict[str, AttributeValue]] = weakref.WeakKeyDictionary()


#: Likewise for the attributes of each live span's events and links: the values that are hashes already.
_known_event_hashes: weakref.WeakKeyDictionary[Span, set[object]] = weakref.WeakKeyDictionary()


#: Likewise for each log record still referenced (a processor's queue): the values that are hashes already, so
#: that a record that meets two hashing processors (two :class:`~agent_otel.EvaluationLogProcessor`) is
#: hashed once.
_known_record_hashes: weakref.WeakKeyDictionary[object, set[object]] = weakref.WeakKeyDictionary()


def add_hashed_event(span: Span | trace.Span, name: str, attributes: dict[str, AttributeValue]) -> None:
    """Add an event to a span agent-otel started, its hashed keys hashed (and known to be)."""
    current = _policy or policy()
    current.scrub(attributes)
    if isinstance(span, Span):
        _known_event_hashes.setdefault(span, set()).update(
            attributes[key] for key in current.hashed_keys.intersection(attributes))
    span.add_event(name, attributes)


def set_hashed(span: Span | trace.Span, key: str, value: object) -> None:
    """Set a hashed key on a span agent-otel started, hashed (and known to be)."""
    hashed = policy().hashed(value)
    span.set_attribute(key, hashed)
    if isinstance(span, Span):
        _known_hashes.setdefault(span, {})[key] = hashed


def attribute_dict(span: Any) -> Any:
    """A span's attributes as the plain dict the SDK's ``BoundedAttributes`` keeps (``_dict``, pinned SDK
    version): read on every span start and end, where the public property would copy them. ``span`` is
    an SDK span, as the API types it when it comes from a context."""
    frozen: Any = span._attributes
    return getattr(frozen, "_dict", frozen) or {}


def drop_content(span: Span) -> None:
    """Remove prompt, response and tool-payload attributes (:data:`semconv.CONTENT_ATTRIBUTES`) from a span
    that is ending, unless content goes on spans: the rule our own spans follow, applied to another
    instrumentation's. Its attributes are frozen by then, so they are removed in place (the SDK's
    ``BoundedAttributes``, pinned SDK version)."""
    if (_policy or policy()).content.on_span:
        return
    found = [key for key in attribute_dict(span)
             if key in semconv.CONTENT_ATTRIBUTES or (key.startswith(semconv.CONTENT_PREFIXES)
                                                        and key not in semconv.NOT_CONTENT)]
    if not found:
        return
    frozen: Any = span._attributes
    try:
        frozen._immutable = False
        try:
            for key in found:
                del frozen[key]
        finally:
            frozen._immutable = True
    except Exception as exc:
        report_error("content.on_ending", exc)


def hash_present(span: Span, values: Mapping[str, Any], parent_context: Context | None, *, at_start: bool) -> None:
    """Hash the configured keys the span holds (``values``: its :func:`attribute_dict`), each value once.
    The span processor calls it for spans from any library: at span start (what later processors and
    samplers' users see), and again as the span ends, before any processor's ``on_end`` hands it to an
    exporter, for a value set after start (``span.set_attribute("user.id", ...)``). At that point the
    span's attributes are frozen, so the value is replaced in place (the SDK's ``_on_ending`` hook and
    ``BoundedAttributes``, pinned SDK version)."""
    frozen: Any = span._attributes
    current = _policy or policy()
    present = [key for key in current.hashed_keys if key in values]
    # agent-otel's own spans start with their ids hashed already: remember those values as hashes
    ours = at_start and parent_context is not None and otel_context.get_value(SCRUBBED_KEY, parent_context)
    known = _known_hashes.setdefault(span, {})
    for key in present:
        value = values[key]
        if known.get(key) == value:
            continue  # hashed already
        if ours:
            known[key] = value
            continue
        hashed = known[key] = current.hashed(value)
        if at_start:
            span.set_attribute(key, hashed)
            continue
        try:  # frozen once the span is ending: replaced in place
            frozen._immutable = False
            try:
                frozen[key] = hashed
            finally:
                frozen._immutable = True
        except Exception as exc:
            report_error("hashing.on_ending", exc)


def hash_events_and_links(span: Span) -> None:
    """Hash the configured keys in the attributes of the span's events and links
    (``span.add_event("login", {"user.id": ...})``), as the span ends: those attributes are frozen from
    the moment they are added, so the values are replaced in place (pinned SDK internals, as for the
    span's own). Called only for a span that has events or links."""
    current = _policy or policy()
    known: set[object] | None = None
    for item in (*span._events, *span._links):
        frozen: Any = cast(Any, item).attributes  # Event and Link alike
        if not isinstance(frozen, BoundedAttributes) or current.hashed_keys.isdisjoint(frozen):
            continue
        if known is None:
            known = _known_event_hashes.setdefault(span, set())
        try:
            frozen._immutable = False
            try:
                for key in current.hashed_keys.intersection(frozen):
                    if frozen[key] not in known:
                        hashed = frozen[key] = current.hashed(frozen[key])
                        known.add(hashed)
            finally:
                frozen._immutable = True
        except Exception as exc:
            report_error("hashing.on_ending", exc)


def hash_log_record(record: Any) -> None:
    """Hash the configured keys in the attributes of a log record being emitted (an SDK ``LogRecord``; the
    ``LoggingHandler``'s ``extra``, an evaluator's event attributes), each value once. Its attributes are
    still mutable then (the SDK's ``BoundedAttributes``, pinned SDK version); replaced in place, so that
    the processors after this one, the exporting one among them, see only the hashes."""
    attributes: Any = record.attributes
    current = _policy or policy()
    if not attributes or current.hashed_keys.isdisjoint(attributes):
        return
    try:
        known = _known_record_hashes.setdefault(record, set())
        for key in current.hashed_keys.intersection(attributes):
            value = attributes[key]
            if type(value) is not str or value not in known:  # a hash is a str; a mapping value is hashable too
                hashed = attributes[key] = current.hashed(value)
                known.add(hashed)
    except Exception as exc:
        report_error("hashing.log", exc)
