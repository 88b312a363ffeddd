"""The package's shape: a public surface, private internals, and imports that flow one way."""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import agent_otel
from tests.support.paths import ROOT

PACKAGE = ROOT / "src" / "agent_otel"
PUBLIC_MODULES = {"agent_otel", "agent_otel.semconv", "agent_otel.errors", "agent_otel.testing",
                  "agent_otel.version", "agent_otel.__main__"}
#: The layers, lowest first: a module may import its own layer and those below it at import time.
LAYERS = (
    "agent_otel.version", "agent_otel.errors", "agent_otel._environment", "agent_otel.semconv",
    "agent_otel._engine", "agent_otel._context", "agent_otel._calls", "agent_otel._bridge", "agent_otel._sdk",
    "agent_otel._zerocode",
    "agent_otel.testing", "agent_otel._ops", "agent_otel._cli", "agent_otel.__main__",
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE.rglob("*.py") if "bootstrap" not in path.parts}


def top_level_imports(path: Path) -> set[str]:
    """agent_otel modules imported when ``path`` is imported (not those imported inside functions)."""
    found: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("agent_otel"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("agent_otel"))
    known = modules()
    # the root package runs first whatever is imported from it: an edge to it says nothing about layering
    return {name for name in found if name in known and name != "agent_otel"}


def layer(name: str) -> int:
    return max(i for i, prefix in enumerate(LAYERS) if name == prefix or name.startswith(prefix + "."))


def test_every_module_outside_the_public_surface_is_private() -> None:
    for name in modules():
        if name not in PUBLIC_MODULES:
            assert any(part.startswith("_") for part in name.split(".")[1:]), f"{name} looks public"


def test_imports_flow_from_lower_layers_only() -> None:
    for name, path in modules().items():
        if name == "agent_otel":
            continue  # the public API re-exports every layer
        for imported in top_level_imports(path):
            assert layer(imported) <= layer(name), f"{name} imports {imported} from a higher layer"


def test_no_import_cycles() -> None:
    graph = {name: top_level_imports(path) - {name} for name, path in modules().items()}
    visiting: list[str] = []
    done: set[str] = set()

    def visit(name: str) -> None:
        assert name not in visiting, "import cycle: " + " -> ".join([*visiting[visiting.index(name):], name])
        if name in done:
            return
        visiting.append(name)
        for imported in graph.get(name, ()):
            visit(imported)
        visiting.pop()
        done.add(name)

    for name in graph:
        visit(name)


def test_the_public_api_is_what_init_exports() -> None:
    exported = set(agent_otel.__all__)
    # (names starting with "@" are pytest's assertion rewriting: the package is also a pytest plugin)
    assert {name for name in dir(agent_otel) if not name.startswith(("_", "@"))} - {
        "semconv", "errors", "version", "testing"} <= exported
    for name in exported:
        assert getattr(agent_otel, name) is not None


def telemetry_names() -> set[str]:
    """Every string of the contract: a doc naming ``agent_otel.stage`` means the attribute, not a module."""
    from agent_otel import semconv

    names = {value for value in vars(semconv).values() if isinstance(value, str) and "." in value}
    names.update(spec.name for spec in semconv.INSTRUMENTS)
    return names


def resolves(dotted: str) -> bool:
    target: object = agent_otel
    for part in dotted.split(".")[1:]:
        if not hasattr(target, part):
            try:
                target = importlib.import_module(f"{getattr(target, '__name__', '')}.{part}")
            except ImportError:
                return False
        else:
            target = getattr(target, part)
    return True


def test_readme_and_docs_name_only_the_public_api() -> None:
    reference = re.compile(r"\bagent_otel(?:\.[A-Za-z_]\w*)+")
    telemetry = telemetry_names()
    for doc in (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))):
        if doc.name == "architecture.md":
            continue  # the map of the private modules, for contributors
        for number, line in enumerate(doc.read_text().splitlines(), 1):
            for found in reference.finditer(line):
                dotted = found.group(0)
                if any(name == dotted or name.startswith(dotted + ".") or dotted.startswith(name + ".")
                       for name in telemetry):
                    continue
                assert not re.search(r"\._[a-z]", dotted), f"{doc.name}:{number} names a private module: {dotted}"
                assert resolves(dotted), f"{doc.name}:{number} names {dotted}, which does not exist"


def test_a_type_checker_sees_the_public_api_and_no_other_name(tmp_path: Path) -> None:
    """The lazily imported EvaluationLogProcessor is typed, and a misspelt name is an error (a module-level
    ``__getattr__`` visible to type checkers made every name an ``object``)."""
    (tmp_path / "user.py").write_text(textwrap.dedent("""
        import agent_otel
        from agent_otel import EvaluationLogProcessor

        reveal_type(EvaluationLogProcessor)
        agent_otel.confgure()
    """))
    done = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental", "user.py"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, check=False)
    assert 'Revealed type is "def () -> agent_otel._bridge.logs.EvaluationLogProcessor"' in done.stdout, done.stdout
    assert 'Module has no attribute "confgure"' in done.stdout, done.stdout
    assert "Found 1 error" in done.stdout, done.stdout
