"""Every environment variable of agent-otel's own, in one table.

The standard ``OTEL_*`` variables agent-otel honours are named by the SDK
(``opentelemetry.sdk.environment_variables``) and the API (``opentelemetry.environment_variables``)
and imported from there where they are read.
"""

from __future__ import annotations

import os

from agent_otel.errors import ConfigurationError

#: ``false``: the wrappers make no OpenTelemetry call at all (default ``true``; ``OTEL_SDK_DISABLED`` too).
AGENT_OTEL_ENABLED = "AGENT_OTEL_ENABLED"
#: The zero-code configuration file (else ``./agent-otel.toml``, else ``[tool.agent-otel]``).
AGENT_OTEL_CONFIG = "AGENT_OTEL_CONFIG"
#: Distinct values each metric attribute keeps before further ones become ``_OTHER`` (default 100).
AGENT_OTEL_CARDINALITY_LIMIT = "AGENT_OTEL_CARDINALITY_LIMIT"
#: Comma-separated attribute keys replaced by a salted SHA-256 (default ``user.id``).
AGENT_OTEL_HASHED_KEYS = "AGENT_OTEL_HASHED_KEYS"
#: The salt of those hashes.
AGENT_OTEL_HASH_SALT = "AGENT_OTEL_HASH_SALT"
#: A copy of ``agent_otel/assets`` (rules, Alertmanager config, dashboards) to use instead of the shipped one.
AGENT_OTEL_ASSETS = "AGENT_OTEL_ASSETS"
#: ``true``: agent-otel's own diagnostics (logger ``agent_otel``) carry the traceback (default ``false``: one
#: line naming the stage and the exception type, never a value from the host's data).
AGENT_OTEL_DEBUG = "AGENT_OTEL_DEBUG"
#: Milliseconds the flush at process exit may take (default 1000): a collector that is down is tried once,
#: not retried, and what it did not take is lost and counted (``agent_otel.instrumentation.errors``).
AGENT_OTEL_EXIT_FLUSH_TIMEOUT_MS = "AGENT_OTEL_EXIT_FLUSH_TIMEOUT_MS"
#: ``false``: no span bridge (GenAI spans of other instrumentations are not turned into agent-otel metrics;
#: default ``true``).
AGENT_OTEL_SPAN_BRIDGE = "AGENT_OTEL_SPAN_BRIDGE"
#: Set to ``1`` by ``agent-otel run`` for the processes it starts (not a user knob).
AGENT_OTEL_LAUNCHER = "AGENT_OTEL_LAUNCHER"
#: The file ``agent-otel run`` found (or was given with ``--config``) and named in ``AGENT_OTEL_CONFIG`` for the
#: processes it starts (not a user knob): an ``agent-otel run`` among them, in another project, finds its own.
AGENT_OTEL_CONFIG_FOUND = "AGENT_OTEL_CONFIG_FOUND"
#: The process id ``agent-otel run`` execs the program in (not a user knob): a Python started there that cannot
#: import agent-otel (another interpreter) says so once; the other processes the program starts stay silent.
AGENT_OTEL_PROGRAM_PID = "AGENT_OTEL_PROGRAM_PID"
#: ``<pid>:<service.instance.id>``: the process that keeps the ``service.instance.id`` its host chose (in
#: ``OTEL_RESOURCE_ATTRIBUTES`` or ``configure(resource=...)``) as given; set by the first ``configure()`` that
#: keeps it, and by ``agent-otel run`` for the program it execs (not a user knob). Any other process that inherits
#: it and is given the same id (a ``subprocess`` child, a grandchild) gets that id with ``-<pid>`` appended.
AGENT_OTEL_INSTANCE_ID_OWNER = "AGENT_OTEL_INSTANCE_ID_OWNER"
#: The script (its absolute path) or ``-m`` module ``agent-otel run`` runs as ``__main__`` (not a user knob): a
#: ``multiprocessing`` worker started by spawn or forkserver that runs it again, as ``__mp_main__``, wraps its
#: ``__main__`` targets there too.
AGENT_OTEL_PROGRAM_MAIN = "AGENT_OTEL_PROGRAM_MAIN"
#: Where prompts and responses (``gen_ai.input.messages``...) go: ``NO_CONTENT`` (default), ``SPAN_ONLY``,
#: ``EVENT_ONLY``, ``SPAN_AND_EVENT`` (``true``/``false``: span only / none). The OTel GenAI instrumentations'
#: switch; the core OTel packages do not name it.
OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
#: The entry point of the ``LoggerProvider`` the Logs API builds on first use (the API's variable; its
#: constant is private there).
OTEL_PYTHON_LOGGER_PROVIDER = "OTEL_PYTHON_LOGGER_PROVIDER"

#: OpenTelemetry's semantic-convention opt-in (comma-separated); its value ``gen_ai_latest_experimental/dup``
#: (``semconv.STABILITY_OPT_IN_DUP``) also emits agent-otel's previous metric and attribute names.
OTEL_SEMCONV_STABILITY_OPT_IN = "OTEL_SEMCONV_STABILITY_OPT_IN"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def is_true(text: str) -> bool:
    """Whether ``text`` is one of the spellings of true an environment variable may use."""
    return text.strip().lower() in _TRUE


def is_false(text: str) -> bool:
    return text.strip().lower() in _FALSE


def env_flag(name: str, default: bool) -> bool:
    """Read a boolean env var; an unparseable value is a configuration error naming the variable."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigurationError(f"environment variable {name}={raw!r}: expected true or false")


def semconv_opt_in() -> frozenset[str]:
    """The values of ``OTEL_SEMCONV_STABILITY_OPT_IN`` (comma-separated, spaces ignored)."""
    raw = os.environ.get(OTEL_SEMCONV_STABILITY_OPT_IN, "")
    return frozenset(value.strip() for value in raw.split(",") if value.strip())
