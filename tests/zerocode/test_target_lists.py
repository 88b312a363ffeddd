"""One entry, several targets: `target = ["pkg.graph:Graph.invoke", "pkg.graph:Graph.ainvoke"]` becomes one
target per element with the same options, each named by its element's key; every mistake in the array is one
error naming the file, the key path with the element's index, and the problem."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agent_otel import ConfigurationError
from agent_otel._zerocode.config import load_file, parse_config
from agent_otel._zerocode.patching import instrument, uninstrument
from agent_otel.testing import TelemetryCapture
from tests.support.check_output import targets_section


def test_an_array_gives_one_target_per_element_with_the_same_options() -> None:
    config = parse_config({"agent": [{"target": ["pkg.graph:Graph.invoke", "pkg.graph:Graph.ainvoke"],
                                      "name": "graph", "subclasses": True, "attributes": {"team": "core"}}],
                           "tool": [{"target": "pkg.tools:grep"}]}, "t.toml")
    assert [(spec.key, spec.target, spec.module, spec.qualname) for spec in config.targets] == [
        ("agent[0].target[0]", "pkg.graph:Graph.invoke", "pkg.graph", "Graph.invoke"),
        ("agent[0].target[1]", "pkg.graph:Graph.ainvoke", "pkg.graph", "Graph.ainvoke"),
        ("tool[0]", "pkg.tools:grep", "pkg.tools", "grep")]  # a string keeps the entry's own key
    first, second = config.targets[:2]
    assert first.options == second.options == {"name": "graph"}
    assert first.options is not second.options
    assert first.subclasses is second.subclasses is True
    assert first.attributes == second.attributes == {"team": "core"}


def test_the_pyproject_prefix_is_on_every_elements_key(tmp_path: Path) -> None:
    file = tmp_path / "pyproject.toml"
    file.write_text('[[tool.agent-otel.tool]]\ntarget = ["a:b", "a:c"]\n')
    assert [spec.key for spec in load_file(file).targets] == ["tool.agent-otel.tool[0].target[0]",
                                                              "tool.agent-otel.tool[0].target[1]"]


BAD = [
    ('[[agent]]\ntarget = []\n', "agent[0].target: expected at least one target, got an empty array"),
    ('[[agent]]\ntarget = ["a:b", 3]\n', "agent[0].target[1]: expected a string, got an integer (3)"),
    ('[[agent]]\ntarget = ["a:b", ["c:d"]]\n', "agent[0].target[1]: expected a string, got an array"),
    ('[[agent]]\ntarget = [{ path = "args.x" }]\n', "agent[0].target[0]: expected a string, got a table"),
    ('[[agent]]\ntarget = ["a:b", "pkg.mod.func"]\n', "agent[0].target[1]: malformed target 'pkg.mod.func'; "
     'expected "package.module:function" or "package.module:Class.method"'),
    ('[[agent]]\ntarget = ["a:b", "a:c", "a:b"]\n', "agent[0].target[2]: 'a:b' is already configured at "
     "agent[0].target[0]"),
    ('[[agent]]\ntarget = ["a:b", "a:c"]\n[[tool]]\ntarget = ["x:y", "a:c"]\n', "tool[0].target[1]: 'a:c' is "
     "already configured at agent[0].target[1]"),
    ('[[agent]]\ntarget = ["a:b", "a:c"]\n[[tool]]\ntarget = "a:b"\n', "tool[0].target: 'a:b' is already "
     "configured at agent[0].target[0]"),
    ('[[tool]]\ntarget = "a:b"\n[[agent]]\ntarget = ["c:d", "a:b"]\n', "tool[0].target: 'a:b' is already "
     "configured at agent[0].target[1]"),  # kinds are read in a fixed order: agent before tool
    ('[[agent]]\ntarget = ["a:C.m", "a:f"]\nsubclasses = true\n', "agent[0].target[1]: 'a:f' is not a method; "
     'subclasses = true needs "package.module:Class.method"'),
    ('[[agent]]\ntarget = true\n', "agent[0].target: expected a string or an array of strings, got a boolean "
     "(true)"),
    ('[[agent]]\ntarget = { a = "b:c" }\n', "agent[0].target: expected a string or an array of strings, got a "
     "table"),
]


@pytest.mark.parametrize(("text", "message"), BAD, ids=[message.split(":")[0] for _, message in BAD])
def test_a_bad_target_array_gives_one_error_naming_file_key_and_element(tmp_path: Path, text: str,
                                                                        message: str) -> None:
    file = tmp_path / "agent-otel.toml"
    file.write_text(text)
    with pytest.raises(ConfigurationError) as raised:
        load_file(file)
    assert str(raised.value) == f"{file}: {message}"


GRAPH = """
class Graph:
    def invoke(self, state):
        return {"state": state, "success": True}

    async def ainvoke(self, state):
        return {"state": state, "success": True}
"""


def test_a_sync_async_pair_from_one_entry_is_traced_alike(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          otel: TelemetryCapture) -> None:
    (tmp_path / "pair_graph_zc.py").write_text(GRAPH)
    monkeypatch.syspath_prepend(str(tmp_path))
    config = parse_config({"agent": [{"target": ["pair_graph_zc:Graph.invoke", "pair_graph_zc:Graph.ainvoke"],
                                      "name": "graph", "task_type": "route"}]}, "t.toml")
    instrument(config)
    try:
        import pair_graph_zc

        graph = pair_graph_zc.Graph()
        graph.invoke(1)
        asyncio.run(graph.ainvoke(2))
    finally:
        uninstrument()
        sys.modules.pop("pair_graph_zc", None)
    spans = otel.spans()
    assert [(span.name, span.attributes["agent.task.type"], span.attributes["code.function.name"]) for span in spans] \
        == [("invoke_agent graph", "route", "pair_graph_zc.Graph.invoke"),
            ("invoke_agent graph", "route", "pair_graph_zc.Graph.ainvoke")]


def test_check_names_each_element_of_an_array(tmp_path: Path) -> None:
    (tmp_path / "pair_graph_zc.py").write_text(GRAPH)
    (tmp_path / "agent-otel.toml").write_text(textwrap.dedent("""
        [[agent]]
        target = ["pair_graph_zc:Graph.invoke", "pair_graph_zc:Graph.ainvoke", "pair_graph_zc:Graph.stream"]
    """))
    result = subprocess.run([str(Path(sys.executable).parent / "agent-otel"), "check"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert targets_section(result.stdout) == [
        "TARGET                       ENTRY               CALLABLE      STATUS",
        "pair_graph_zc:Graph.invoke   agent[0].target[0]  method        ok",
        "pair_graph_zc:Graph.ainvoke  agent[0].target[1]  async method  ok",
        "pair_graph_zc:Graph.stream   agent[0].target[2]  -             error: class Graph has no attribute 'stream'",
        f"{tmp_path / 'agent-otel.toml'}: 3 targets, 2 resolved, 1 error"]
