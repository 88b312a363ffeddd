"""Bad input, fuzzed: config files (text and parsed documents), extractor paths and OTEL_* env values.

Whatever hypothesis makes up, the only exception is :class:`agent_otel.ConfigurationError` with a
message, never another exception, never a hang (each example has a generous deadline).
"""

from __future__ import annotations

import itertools
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from agent_otel import ConfigurationError
from agent_otel._calls.extractors import Call, path
from agent_otel._calls.extractors import Path as ExtractorPath
from agent_otel._sdk.settings import resolve_settings
from agent_otel._zerocode import config
from tests.support.reliability import RELIABILITY

# 300 examples; a generous per-example deadline, so that a hang fails the test
FUZZ = settings(RELIABILITY, max_examples=max(300, RELIABILITY.max_examples), deadline=5_000)


def only_configuration_errors(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call ``func``; a ConfigurationError with a message is fine, any other exception fails the test."""
    try:
        return func(*args, **kwargs)
    except ConfigurationError as exc:
        assert str(exc).strip(), f"{type(exc).__name__} without a message"
        return exc


# --------------------------------------------------------------------------------------------------
# Config documents

SCHEMA_KEYS = sorted({key for keys in config.SCHEMA.values() for key in keys}
                     | set(config.TOP_LEVEL) | set(config.POLICY_KEYS) | set(config.Switches.__dataclass_fields__)
                     | {"path", "input", "output", "tool", "agent-otel"})
keys = st.one_of(st.sampled_from(SCHEMA_KEYS), st.text(max_size=8))
path_texts = st.one_of(
    st.sampled_from(["args.x", "args.issue.type.value", "self.name", "result.usage[0]", "error", "result['k']",
                     "args.", "args.x[", "self[\"a\"]", "result.a.b[-1]", "nope.x", "args.x[1x]"]),
    st.text(alphabet="argsefltu.[]'\"0123456789_-x ", max_size=20),
    st.text(max_size=12),
)
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
targets = st.one_of(st.sampled_from(["pkg.mod:func", "pkg.mod:Class.method", "a:b.c", "mod:f"]),
                    st.from_regex(rf"{_NAME}(\.{_NAME})*:{_NAME}(\.{_NAME})*", fullmatch=True),
                    st.text(max_size=15))
scalars = st.one_of(st.text(max_size=12), st.integers(), st.floats(), st.booleans(), st.dates(), st.times(),
                    st.datetimes(), path_texts, targets)
#: An extractor table, maybe with the keys that say when and how it reads (at, delta, equals, in,
#: not_in), each with a right or a wrong value.
extractor_extras = st.dictionaries(
    st.sampled_from(["at", "delta", "equals", "in", "not_in", "path"]),
    st.one_of(st.sampled_from(["start", "end", "middle"]), st.booleans(), scalars,
              st.lists(scalars, max_size=3), st.dictionaries(st.text(max_size=4), scalars, max_size=2)),
    max_size=3)
extractors = st.builds(lambda text, extras: {"path": text, **extras}, st.one_of(path_texts, scalars),
                       st.one_of(st.just({}), extractor_extras))
documents_values = st.recursive(
    st.one_of(scalars, extractors),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=5)),
    max_leaves=20,
)


@st.composite
def entries(draw: st.DrawFn, kind: str) -> dict[str, Any]:
    """A [[kind]] entry that is mostly right, so the checks past the first one get exercised."""
    schema = sorted(config.SCHEMA[kind])
    entry: dict[str, Any] = {}
    if draw(st.booleans()):
        entry["target"] = draw(st.one_of(targets, st.lists(st.one_of(targets, scalars), max_size=4)))  # one or many
    for name in draw(st.lists(st.sampled_from(schema), max_size=5)):
        entry[name] = draw(st.one_of(scalars, extractors, documents_values))
    for name in config.REQUIRED[kind]:
        if draw(st.integers(0, 4)):
            entry.setdefault(name, draw(st.one_of(st.text(max_size=6), extractors)))
    if draw(st.integers(0, 5)) == 0:
        entry[draw(keys)] = draw(documents_values)
    return entry


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for kind in draw(st.lists(st.sampled_from(config.KINDS), max_size=3, unique=True)):
        doc[kind] = draw(st.one_of(st.lists(entries(kind), max_size=3), documents_values))
    for name in draw(st.lists(st.sampled_from(config.TOP_LEVEL), max_size=3)):
        doc.setdefault(name, draw(documents_values))
    if draw(st.booleans()):
        doc["prices"] = draw(st.dictionaries(st.text(max_size=6), st.one_of(
            st.fixed_dictionaries({"input": scalars, "output": scalars}), documents_values), max_size=3))
    if draw(st.booleans()):
        doc["policy"] = draw(st.dictionaries(st.one_of(st.sampled_from(config.POLICY_KEYS), keys),
                                             documents_values, max_size=3))
    if draw(st.booleans()):
        doc["instrumentation"] = draw(st.dictionaries(
            st.one_of(st.sampled_from(sorted(config.Switches.__dataclass_fields__)), keys), documents_values,
            max_size=3))
    if draw(st.integers(0, 5)) == 0:
        doc[draw(keys)] = draw(documents_values)
    return doc


@FUZZ
@given(doc=documents())
def test_fuzzed_config_documents_only_raise_configuration_errors(doc: dict[str, Any]) -> None:
    result = only_configuration_errors(config.parse_config, doc, "fuzz.toml")
    assert isinstance(result, config.Config | ConfigurationError)


# --------------------------------------------------------------------------------------------------
# Config files as text


def toml_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{toml_key(k)} = {toml_literal(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(toml_literal(v) for v in value) + "]"
    return str(value)


def toml_key(key: str) -> str:
    return key if key and all(c in string.ascii_letters + string.digits + "_-" for c in key) else toml_literal(key)


lines = st.one_of(
    st.builds(lambda k, v: f"{toml_key(k)} = {toml_literal(v)}", keys,
              st.one_of(st.text(max_size=8), st.integers(), st.booleans(), extractors,
                        st.lists(st.integers(), max_size=3))),
    st.builds(lambda k: f"[{toml_key(k)}]", st.one_of(st.sampled_from(["policy", "instrumentation", "prices",
                                                                        "tool.agent-otel"]), keys)),
    st.builds(lambda k: f"[[{k}]]", st.sampled_from(config.KINDS)),
    st.sampled_from(['target = "pkg.mod:func"', 'provider = "openai"', 'name = { path = "args.x" }', 'tool = 1',
                     "[tool]", 'agent-otel = 3', '"agent-otel" = "x"', "= 1", "[[", "a = ", "x = 1\nx = 2"]),
    st.text(max_size=15),
)
headers = st.sampled_from(["", "[tool.agent-otel]", "[tool]", "tool = 1", "tool = []", 'tool = "x"', "[tool.other]",
                           "[[tool]]", 'tool = { agent-otel = 1 }', "[tool]\nagent-otel = []"])
toml_texts = st.one_of(
    st.builds(lambda header, body: "\n".join([header, *body]), headers, st.lists(lines, max_size=12)),
    st.text(max_size=80),
)
file_names = st.sampled_from(["agent-otel.toml", "pyproject.toml", "other.toml"])
counter = itertools.count()


@FUZZ
@given(text=toml_texts, name=file_names)
@example(text="x = " + "[" * 5_000 + "]" * 5_000, name="agent-otel.toml")
@example(text="[tool.agent-otel]\nx = " + "{ a = " * 5_000 + "1" + " }" * 5_000, name="pyproject.toml")
def test_fuzzed_config_files_only_raise_configuration_errors(tmp_path: Path, text: str, name: str) -> None:
    folder = tmp_path / str(next(counter))
    folder.mkdir()
    file = folder / name
    file.write_text(text, encoding="utf-8")
    result = only_configuration_errors(config.load_file, file)
    assert isinstance(result, config.Config | ConfigurationError)
    only_configuration_errors(config.load_config, directory=folder, environ={})


@FUZZ
@given(data=st.binary(max_size=60), name=file_names)
def test_fuzzed_config_bytes_only_raise_configuration_errors(tmp_path: Path, data: bytes, name: str) -> None:
    folder = tmp_path / str(next(counter))
    folder.mkdir()
    file = folder / name
    file.write_bytes(data)
    only_configuration_errors(config.load_file, file)
    only_configuration_errors(config.load_config, directory=folder, environ={})


def test_unreadable_config_locations_are_configuration_errors(tmp_path: Path) -> None:
    for where in (tmp_path / "missing.toml", tmp_path):  # no such file; a directory
        error = only_configuration_errors(config.load_file, where)
        assert isinstance(error, ConfigurationError)
    error = only_configuration_errors(config.load_config, environ={config.ENV_VAR: str(tmp_path / "nope.toml")})
    assert isinstance(error, ConfigurationError)


# --------------------------------------------------------------------------------------------------
# Extractor paths


@FUZZ
@given(text=path_texts)
def test_fuzzed_extractor_paths_parse_or_raise_configuration_errors(text: str) -> None:
    result = only_configuration_errors(path, text)
    if isinstance(result, ExtractorPath):
        assert result.root in ("args", "self", "result", "error")
        # a parsed path reads a call without raising, whatever the call holds
        call = Call(None, object(), (), {"x": {"issue": None}})
        call.result = {"usage": [1], "k": [], "a": {"b": ()}}
        result(call)


@pytest.mark.parametrize("value", [None, 1, b"args.x", ["args.x"], object()])
def test_non_string_paths_are_configuration_errors(value: Any) -> None:
    assert isinstance(only_configuration_errors(path, value), ConfigurationError)


# --------------------------------------------------------------------------------------------------
# Environment

ENV_NAMES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER",
             "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_PROMETHEUS_PORT", "OTEL_EXPORTER_PROMETHEUS_HOST",
             "OTEL_METRIC_EXPORT_INTERVAL", "OTEL_SERVICE_NAME")
env_values = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["http://[", "http://[::1", "http://h:99999", "https://h:-1", "http://:1", "grpc", "otlp",
                     "otlp,,prometheus", " ", "", "0", "-5", "1e3", "1_000", "\uff19\uff14\uff16\uff14", "http://h:4318/",
                     "http://user@:4317", "http://[::1]:4317", "prometheus,none", "http/protobuf", "http://h:0x10"]),
    st.builds(lambda host, port: f"http://{host}:{port}", st.text(max_size=6), st.text(max_size=6)),
)


@FUZZ
@given(env=st.dictionaries(st.sampled_from(ENV_NAMES), env_values, max_size=len(ENV_NAMES)))
@example(env={"OTEL_METRIC_EXPORT_INTERVAL": "0"})
@example(env={"OTEL_METRIC_EXPORT_INTERVAL": "-5"})
@example(env={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://[::1"})
def test_fuzzed_otel_environment_only_raises_configuration_errors(env: dict[str, str]) -> None:
    settings = only_configuration_errors(resolve_settings, env=env)
    if not isinstance(settings, ConfigurationError):  # what resolves is usable: configure() cannot fail on it
        assert settings.metric_export_interval_ms > 0
        assert 0 <= settings.prometheus_port <= 65535
        assert settings.otlp_protocol in ("grpc", "http/protobuf")
        assert settings.otlp_endpoint is None or urlsplit(settings.otlp_endpoint).hostname


@FUZZ
@given(value=st.text(max_size=12))
def test_fuzzed_boolean_env_only_raises_configuration_errors(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    from agent_otel._engine.instruments import enabled_from_env

    monkeypatch.setenv("AGENT_OTEL_ENABLED", value.replace("\x00", ""))
    result = only_configuration_errors(enabled_from_env)
    assert isinstance(result, bool | ConfigurationError)
