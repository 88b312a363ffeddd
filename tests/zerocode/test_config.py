"""agent-otel.toml / [tool.agent-otel]: good files load; every bad one gives one exact error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent_otel import ConfigurationError
from agent_otel._calls.extractors import Path as ExtractorPath
from agent_otel._calls.pricing import Price
from agent_otel._zerocode.config import Config, Switches, find_config, load_config, load_file, parse_config

GOOD = """
service_name = "svc"
attributes = { team = "core", tier = 2 }
prices = { "m-1" = { input = 1, output = 2.5 } }
[policy]
cardinality_limit = 10
hashed_keys = ["user.id", "tenant.id"]
capture_content = false
[instrumentation]
threads = false
[[job]]
target = "app.jobs:Runner.run"
id = { path = "self.job_id" }
type = "nightly"
[[agent]]
target = "app.agents:Base.Inner.solve"
subclasses = true
task_type = { path = "args.issue.type.value" }
success = { path = "result.success" }
confidence = 0.5
patterns = ["retry", "plan"]
files_modified = { path = "result.files" }
work = { tests_added = { path = "result.tests" }, lines = 3 }
result_attributes = { "agent.issue.id" = { path = "args.issue.id" } }
attributes = { owner = "me" }
sample_resources = true
[[provider]]
target = "app.llm:chat"
provider = "openai"
model = { path = "args.model" }
stream = true
[[tool]]
target = "app.tools:grep"
[[evolution]]
target = "app.evo:Orchestrator.evolve"
agent = { path = "args.agent" }
kpis_before = { accuracy = 1, latency = 2.5 }
kpi = "accuracy"
sample_resources = false
[[fallback]]
target = "app.llm:Chain.fall_back"
from = { path = "args.a" }
to = "backup"
"""


def write(tmp_path: Path, text: str, name: str = "agent-otel.toml") -> Path:
    file = tmp_path / name
    file.write_text(text)
    return file


def test_good_file_loads_every_section(tmp_path: Path) -> None:
    config = load_file(write(tmp_path, GOOD))
    assert isinstance(config, Config)
    assert config.service_name == "svc"
    assert config.attributes == {"team": "core", "tier": 2}
    assert config.prices == {"m-1": Price(1.0, 2.5)}
    assert config.policy == {"cardinality_limit": 10, "hashed_keys": ["user.id", "tenant.id"],
                             "capture_content": False}
    assert config.switches == Switches(threads=False)
    kinds = [(spec.kind, spec.key, spec.module, spec.qualname) for spec in config.targets]
    assert kinds == [("job", "job[0]", "app.jobs", "Runner.run"),
                     ("agent", "agent[0]", "app.agents", "Base.Inner.solve"),
                     ("provider", "provider[0]", "app.llm", "chat"), ("tool", "tool[0]", "app.tools", "grep"),
                     ("evolution", "evolution[0]", "app.evo", "Orchestrator.evolve"),
                     ("fallback", "fallback[0]", "app.llm", "Chain.fall_back")]
    agent = config.targets[1]
    assert agent.subclasses is True
    assert agent.attributes == {"owner": "me"}
    assert agent.options["sample_resources"] is True
    # Literals stay literals; { path = ... } becomes an extractor. The two never mix.
    assert agent.options["task_type"] == ExtractorPath("args.issue.type.value", "args", ())
    assert isinstance(agent.options["success"], ExtractorPath)
    assert agent.options["confidence"] == 0.5 and agent.options["patterns"] == ["retry", "plan"]
    assert isinstance(agent.options["work"]["tests_added"], ExtractorPath) and agent.options["work"]["lines"] == 3
    assert config.targets[2].options == {"provider": "openai", "model": ExtractorPath("args.model", "args", ()),
                                         "stream": True}
    assert config.targets[4].options["kpis_before"] == {"accuracy": 1.0, "latency": 2.5}
    assert config.targets[5].options["to"] == "backup"


def test_pyproject_table_and_discovery(tmp_path: Path) -> None:
    pyproject = write(tmp_path, '[project]\nname = "x"\n[tool.agent-otel]\nservice_name = "p"\n'
                      '[[tool.agent-otel.tool]]\ntarget = "a:b"\n', "pyproject.toml")
    assert find_config(tmp_path, environ={}) == pyproject
    config = load_config(directory=tmp_path, environ={})
    assert config is not None and config.service_name == "p" and config.targets[0].key == "tool.agent-otel.tool[0]"
    own = write(tmp_path, 'service_name = "own"\n')
    assert find_config(tmp_path, environ={}) == own  # agent-otel.toml wins over pyproject.toml
    other = write(tmp_path, 'service_name = "env"\n', "elsewhere.toml")
    assert find_config(tmp_path, environ={"AGENT_OTEL_CONFIG": str(other)}) == other
    assert load_config(directory=tmp_path / "nowhere", environ={}) is None
    with pytest.raises(ConfigurationError) as raised:
        find_config(tmp_path, environ={"AGENT_OTEL_CONFIG": str(tmp_path / "missing.toml")})
    assert str(raised.value) == f"AGENT_OTEL_CONFIG={str(tmp_path / 'missing.toml')!r}: no such file"


def test_a_pyproject_naming_the_table_that_does_not_parse_is_found_and_its_error_said(tmp_path: Path) -> None:
    """Before, `agent-otel run` said "no configuration found" and ran with no target wrapped, and check
    said to create a file: the TOML error in the table the user wrote was never named."""
    pyproject = write(tmp_path, '[project]\nname = "x"\n[tool.agent-otel]\nservice_name = "p\n', "pyproject.toml")
    assert find_config(tmp_path, environ={}) == pyproject
    with pytest.raises(ConfigurationError) as raised:
        load_config(directory=tmp_path, environ={})
    assert str(raised.value) == f"{pyproject}: invalid TOML: Illegal character '\\n' (at line 4, column 18)"
    write(tmp_path, '[project\nname = "x"\n', "pyproject.toml")  # another project's broken file: not ours
    assert find_config(tmp_path, environ={}) is None
    # not UTF-8: was "no configuration found", and `run` ran the program uninstrumented
    pyproject.write_bytes(b'[project]\nname = "caf\xe9"\n[tool.agent-otel]\nservice_name = "p"\n')
    assert find_config(tmp_path, environ={}) == pyproject
    with pytest.raises(ConfigurationError) as raised:
        load_config(directory=tmp_path, environ={})
    assert str(raised.value).startswith(f"{pyproject}: not UTF-8 text")
    pyproject.write_bytes(b'[project]\nname = "caf\xe9"\n')  # another project's: not ours
    assert find_config(tmp_path, environ={}) is None



def test_a_pyproject_table_in_a_file_named_otherwise_says_where_it_is_read(tmp_path: Path) -> None:
    """Its keys were read as [[tool]] entries: "tool: expected an array of tables ([[tool]]), got a table"."""
    copy = write(tmp_path, '[tool.agent-otel]\nservice_name = "p"\n', "prod-pyproject.toml")
    with pytest.raises(ConfigurationError) as raised:
        load_file(copy)
    assert str(raised.value) == (f"{copy}: tool.agent-otel: a [tool.agent-otel] table is read only from a file "
                                 "named pyproject.toml; in prod-pyproject.toml, write its keys at the top level (as "
                                 "agent-otel.toml)")


def test_a_directory_named_by_the_variable_is_said_to_be_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as raised:
        find_config(tmp_path, environ={"AGENT_OTEL_CONFIG": str(tmp_path)})
    assert str(raised.value) == f"AGENT_OTEL_CONFIG={str(tmp_path)!r}: a directory, not a file"


def test_a_device_named_by_the_variable_is_said_to_be_no_regular_file() -> None:
    """``AGENT_OTEL_CONFIG=/dev/null`` (a way to say "no configuration" elsewhere) was said not to exist."""
    with pytest.raises(ConfigurationError) as raised:
        find_config(environ={"AGENT_OTEL_CONFIG": "/dev/null"})
    assert str(raised.value) == "AGENT_OTEL_CONFIG='/dev/null': not a regular file"


def test_pyproject_without_table_is_not_found_and_errors_when_named(tmp_path: Path) -> None:
    pyproject = write(tmp_path, '[project]\nname = "x"\n', "pyproject.toml")
    assert find_config(tmp_path, environ={}) is None
    with pytest.raises(ConfigurationError) as raised:
        load_file(pyproject)
    assert str(raised.value) == f"{pyproject}: no [tool.agent-otel] table"


def test_pyproject_errors_name_the_full_key_path(tmp_path: Path) -> None:
    pyproject = write(tmp_path, '[[tool.agent-otel.agent]]\ntarget = "a:b"\nconfidence = "high"\n', "pyproject.toml")
    with pytest.raises(ConfigurationError) as raised:
        load_file(pyproject)
    assert str(raised.value) == (f"{pyproject}: tool.agent-otel.agent[0].confidence: expected a number or "
                                 "{ path = \"...\" }, got a string 'high'")  # (no path: no hint to write one)


BAD = [
    ('nonsense = 1\n', "nonsense: unknown key; expected one of service_name, resource, attributes, prices, policy, "
     "instrumentation, job, phase, agent, provider, tool, evolution, fallback, retry, rollback"),
    ('agents = []\n', "agents: unknown key; did you mean 'agent'?"),
    ('service_name = 3\n', "service_name: expected a string, got an integer (3)"),
    ('attributes = { a = { b = 1 } }\n', "attributes.a: static attributes are literals (a string, number or "
     "boolean); extractors belong in result_attributes"),
    ('attributes = { a = [1] }\n', "attributes.a: expected a string, number or boolean, got an array"),
    ('prices = { m = 3 }\n', "prices.m: expected { input = <USD per 1M tokens>, output = <USD per 1M tokens> }, "
     "got an integer (3)"),
    ('prices = { m = { input = 1 } }\n', "prices.m.output: required key is missing"),
    ('prices = { "a.b" = { input = -1, output = 1 } }\n', 'prices."a.b".input: expected a number from 0 to '
     "1,000,000, got an integer (-1)"),
    ('prices = { m = { input = nan, output = 1 } }\n', "prices.m.input: expected a number from 0 to 1,000,000, got "
     "a float (nan)"),
    ('prices = { m = { input = 1, output = inf } }\n', "prices.m.output: expected a number from 0 to 1,000,000, "
     "got a float (inf)"),
    # a cost of a price this large overflowed to inf, which the SDK refused with a warning on the program's stderr
    ('prices = { m = { input = 1e308, output = 1 } }\n', "prices.m.input: expected a number from 0 to 1,000,000, "
     "got a float (1e+308)"),
    ('prices = { m = { input = 1, output = 1, cached = 2 } }\n', "prices.m.cached: unknown key; did you mean "
     "'cache_read'?"),
    # TOML reads [prices.gpt-5.1] as gpt-5 -> 1 -> {...}: "unknown key" said nothing of the dot
    ('[prices.gpt-5.1]\ninput = 1\noutput = 2\n', 'prices.gpt-5.1: a table, not a price: quote a model name with a '
     'dot in it, [prices."gpt-5.1"] or "gpt-5.1" = { ... }'),
    ('prices = { m = { input = 1, output = 1, cache_read = true } }\n', "prices.m.cache_read: expected a "
     "number from 0 to 1,000,000, got a boolean (true)"),
    ('[policy]\ncardinality_limit = 0\n', "policy.cardinality_limit: expected a positive integer, got an integer (0)"),
    ('[policy]\nhashed_keys = "user.id"\n', "policy.hashed_keys: expected an array of attribute keys, got a string "
     "'user.id'"),
    ('[policy]\ncapture_content = "yes"\n', "policy.capture_content: expected true, false or one of NO_CONTENT, "
     "SPAN_ONLY, EVENT_ONLY, SPAN_AND_EVENT, got a string 'yes'"),
    ('[policy]\nsalt = "x"\n', "policy.salt: unknown key; expected one of cardinality_limit, hashed_keys, "
     "capture_content"),
    ('[instrumentation]\nthread = true\n', "instrumentation.thread: unknown key; did you mean 'threads'?"),
    ('[instrumentation]\nthreads = 1\n', "instrumentation.threads: expected a boolean, got an integer (1)"),
    ('agent = { target = "a:b" }\n', "agent: expected an array of tables ([[agent]]), got a table"),
    ('[[agent]]\nname = "x"\n', "agent[0].target: required key is missing"),
    ('[[provider]]\ntarget = "a:b"\n', "provider[0].provider: required key is missing"),
    ('[[evolution]]\ntarget = "a:b"\n', "evolution[0].agent: required key is missing"),
    ('[[fallback]]\ntarget = "a:b"\nfrom = "x"\n', "fallback[0].to: required key is missing"),
    ('[[tool]]\ntarget = "a:b"\n[[tool]]\ntarget = "a:b"\n', "tool[1].target: 'a:b' is already configured at "
     "tool[0]"),
    ('[[agent]]\ntarget = "a:b"\n[[tool]]\ntarget = "a:b"\n', "tool[0].target: 'a:b' is already configured at "
     "agent[0]"),
    ('[[agent]]\ntarget = "pkg.mod.func"\n', "agent[0].target: malformed target 'pkg.mod.func'; expected "
     '"package.module:function" or "package.module:Class.method"'),
    ('[[agent]]\ntarget = "pkg.mod:Class..m"\n', "agent[0].target: malformed target 'pkg.mod:Class..m'; expected "
     '"package.module:function" or "package.module:Class.method"'),
    ('[[agent]]\ntarget = "pkg:f"\nsubclasses = true\n', "agent[0].subclasses: 'pkg:f' is not a method; "
     'subclasses = true needs "package.module:Class.method"'),
    ('[[agent]]\ntarget = 3\n', "agent[0].target: expected a string or an array of strings, got an integer (3)"),
    ('[[agent]]\ntarget = "a:b"\nsucess = true\n', "agent[0].sucess: unknown key; did you mean 'success'?"),
    ('[[tool]]\ntarget = "a:b"\n[[agent]]\ntarget = "c:d"\n[[agent]]\ntarget = "e:f"\n[[agent]]\ntarget = "g:h"\n'
     'task_type = 7\n', "agent[2].task_type: expected a string or { path = \"...\" }, got an integer (7)"),
    ('[[agent]]\ntarget = "a:b"\nsuccess = "result.success"\n', "agent[0].success: expected a boolean or "
     "{ path = \"...\" }, got a string 'result.success' (an extractor is written { path = \"result.success\" })"),
    ('[[agent]]\ntarget = "a:b"\nconfidence = true\n', "agent[0].confidence: expected a number or "
     "{ path = \"...\" }, got a boolean (true)"),
    # a word that is no path gets no hint to write it as one
    ('[[agent]]\ntarget = "a:b"\nconfidence = "high"\n', "agent[0].confidence: expected a number or "
     "{ path = \"...\" }, got a string 'high'"),
    ('[[agent]]\ntarget = "a:b"\ntask_type = { path = "result.kind" }\n', "agent[0].task_type: extractor path "
     "'result.kind' reads the result but this key is read when the call starts; use a path rooted at args or self"),
    ('[[agent]]\ntarget = "a:b"\nsuccess = { path = "outcome.ok" }\n', "agent[0].success: extractor path "
     "'outcome.ok': must start with one of args, self, result, error at character 0"),
    ('[[agent]]\ntarget = "a:b"\nsuccess = { path = "result..ok" }\n', "agent[0].success: extractor path "
     "'result..ok': expected a name after '.' at character 7"),
    ('[[agent]]\ntarget = "a:b"\nresult_attributes = { s = { path = \'self.__init__.__globals__["os"].environ\' } }\n',
     "agent[0].result_attributes.s: extractor path 'self.__init__.__globals__[\"os\"].environ': '__init__' starts "
     "with '__', which a path never reads (write [\"__init__\"] for a key of a mapping) at "
     "character 5"),
    ('[[agent]]\ntarget = "a:b"\nsuccess = { path = "result.ok", default = true }\n', "agent[0].success: unknown "
     "key 'default' in an extractor; an extractor is written { path = \"args.x.y\" }, with optional at, delta, "
     "equals, in or not_in"),
    ('[[agent]]\ntarget = "a:b"\nsuccess = { value = true }\n', "agent[0].success: unknown key 'value' in an "
     "extractor; an extractor is written { path = \"args.x.y\" }, with optional at, delta, equals, in or not_in"),
    ('[[agent]]\ntarget = "a:b"\nsuccess = { path = 3 }\n', "agent[0].success: an extractor path must be a "
     "string, got an integer (3)"),
    ('[[agent]]\ntarget = "a:b"\nfixes_applied = -1\n', "agent[0].fixes_applied: expected a non-negative integer "
     "or { path = \"...\" }, got an integer (-1)"),
    ('[[agent]]\ntarget = "a:b"\npatterns = [1]\n', "agent[0].patterns: expected an array of strings or "
     "{ path = \"...\" }, got an array"),
    ('[[agent]]\ntarget = "a:b"\nwork = { lines = "many" }\n', "agent[0].work.lines: expected a non-negative "
     "integer or { path = \"...\" }, got a string 'many'"),
    ('[[agent]]\ntarget = "a:b"\nresult_attributes = { k = "v" }\n', "agent[0].result_attributes.k: expected an "
     "extractor { path = \"...\" }, got a string 'v'"),
    ('[[agent]]\ntarget = "a:b"\nsubclasses = "yes"\n', "agent[0].subclasses: expected a boolean, got a string "
     "'yes'"),
    ('[[provider]]\ntarget = "a:b"\nprovider = "p"\nstream = { path = "self.s" }\n', "provider[0].stream: expected "
     "a boolean, got a table"),
    ('[[evolution]]\ntarget = "a:b"\nagent = "x"\nkpis_after = { accuracy = "high" }\n', "evolution[0].kpis_after"
     ".accuracy: expected a number, got a string 'high'"),
    ('[[evolution]]\ntarget = "a:b"\nagent = "x"\nkpi = { path = "args.k" }\n', "evolution[0].kpi: expected a "
     "string, got a table"),
    ('[[agent]]\ntarget = "a:b"\nname = ""\n', "agent[0].name: expected a name, got an empty string (a literal "
     "or an extractor)"),
    ('[[agent]]\ntarget = ""\n', "agent[0].target: expected a name, got an empty string"),  # takes no extractor
    ('[[provider]]\ntarget = "a:b"\nprovider = " "\n', "provider[0].provider: expected a name, got an empty string "
     "(e.g. provider='openai')"),
    ('[[tool]]\ntarget = "a:b"\nattributes = { "" = 1 }\n', "tool[0].attributes: expected names as keys, got a "
     "string ''"),
    ('[[tool]]\ntarget = "a:b"\nresult_attributes = { "" = { path = "result.ok" } }\n', "tool[0].result_attributes:"
     " expected names as keys, got a string ''"),
    ('[[agent]]\ntarget = "a:b"\nsuccess = { path = "result.x", in = [{ a = 1 }] }\n', "agent[0].success: in takes "
     "strings, numbers or booleans, got a table"),
    ('[[job]]\ntarget = "a:b"\nid = 1.5\n', "job[0].id: expected a string or an integer or { path = \"...\" }, got "
     "a float (1.5)"),
]


@pytest.mark.parametrize(("text", "message"), BAD, ids=[message.split(":")[0] for _, message in BAD])
def test_bad_file_gives_one_error_naming_file_key_and_problem(tmp_path: Path, text: str, message: str) -> None:
    file = write(tmp_path, text)
    with pytest.raises(ConfigurationError) as raised:
        load_file(file)
    assert str(raised.value) == f"{file}: {message}"


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as raised:
        load_file(tmp_path / "missing.toml")
    assert str(raised.value) == f"{tmp_path / 'missing.toml'}: no such file"
    broken = write(tmp_path, "[[agent]\n")
    with pytest.raises(ConfigurationError) as raised:
        load_file(broken)
    assert str(raised.value) == f"{broken}: invalid TOML: Expected ']]' at the end of an array declaration " \
                                "(at line 1, column 8)"
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigurationError) as raised:
        load_file(binary)
    assert str(raised.value) == f"{binary}: not UTF-8 text (invalid start byte at byte 0)"


DEEP = 5_000
NESTED = {"arrays": "x = " + "[" * DEEP + "]" * DEEP + "\n",
          "inline tables": "x = " + "{ a = " * DEEP + "1" + " }" * DEEP + "\n"}


@pytest.mark.parametrize("shape", NESTED)
def test_a_file_nested_thousands_deep_is_a_configuration_error(tmp_path: Path, shape: str) -> None:
    file = write(tmp_path, NESTED[shape])
    with pytest.raises(ConfigurationError) as raised:
        load_file(file)
    assert str(raised.value) == f"{file}: invalid TOML: arrays or inline tables nested too deeply"
    pyproject = write(tmp_path, "[tool.agent-otel]\n" + NESTED[shape], "pyproject.toml")
    with pytest.raises(ConfigurationError) as raised:
        load_file(pyproject)
    assert str(raised.value) == f"{pyproject}: invalid TOML: arrays or inline tables nested too deeply"
    file.unlink()
    assert find_config(tmp_path, environ={}) == pyproject  # it names the table: its error is said, see below


def nested(depth: int, leaf: Any) -> Any:
    """``leaf`` inside ``depth`` alternating tables and arrays, built without recursion."""
    for level in range(depth):
        leaf = {"a": leaf} if level % 2 else [leaf]
    return leaf


@pytest.mark.parametrize(("document", "message"), [
    ({"attributes": {"k": nested(DEEP, 1)}}, "attributes.k: static attributes are literals (a string, number or "
     "boolean); extractors belong in result_attributes"),
    ({"agent": [{"target": "a:b", "result_attributes": {"k": nested(DEEP, 1)}}]},
     "agent[0].result_attributes.k: unknown key 'a' in an extractor; an extractor is written { path = \"args.x.y\" }, "
     "with optional at, delta, equals, in or not_in"),
    ({"prices": {"m": nested(DEEP, 1)}}, "prices.m.a: unknown key; expected one of input, output, cache_read, "
     "cache_write, reasoning"),
    ({"policy": {"hashed_keys": nested(DEEP, "k")}}, "policy.hashed_keys: expected an array of attribute keys, got "
     "a table"),
])
def test_a_parsed_document_nested_thousands_deep_is_checked_without_recursion(document: dict[str, Any],
                                                                              message: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        parse_config(document, "deep.toml")
    assert str(raised.value) == f"deep.toml: {message}"


def test_the_file_is_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = f'[[agent]]\ntarget = "os:system"\nname = "__import__(\'os\').system(\'touch {marker}\')"\n'
    config = load_file(write(tmp_path, text))
    assert config.targets[0].options["name"].startswith("__import__")  # a literal string, nothing more
    assert not marker.exists()
