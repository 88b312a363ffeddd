"""Every Python snippet of the README runs as is, in a fresh interpreter, as a new user would paste it; every
configuration snippet is a valid agent-otel.toml."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from agent_otel._ops.stack import free_port
from agent_otel._zerocode.config import load_file
from tests.support.paths import ROOT

README = (ROOT / "README.md").read_text()
SNIPPETS = [(README.count("\n", 0, match.start()) + 2, match.group(1))
            for match in re.finditer(r"^```python\n(.*?)^```", README, re.S | re.M)]
CONFIGS = [(README.count("\n", 0, match.start()) + 2, match.group(1))
           for match in re.finditer(r"^```toml\n(.*?)^```", README, re.S | re.M)]


def test_the_readme_has_python_snippets() -> None:
    assert len(SNIPPETS) >= 10


@pytest.mark.parametrize(("line", "code"), SNIPPETS, ids=[f"README.md:{line}" for line, _ in SNIPPETS])
def test_snippet_runs(line: int, code: str, tmp_path: Path) -> None:
    # Unset what the surrounding shell may have set, and a free port for the default /metrics endpoint.
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OTEL_", "AGENT_OTEL_"))}
    env["OTEL_EXPORTER_PROMETHEUS_PORT"] = str(free_port())
    if re.search(r"^def test_", code, re.M):  # a test for the user's suite: run it as one
        (tmp_path / "test_snippet.py").write_text(code)
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_snippet.py"]
    else:
        command = [sys.executable, "-c", code]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env, cwd=str(tmp_path))
    assert result.returncode == 0, f"README.md:{line} exited {result.returncode}:\n{result.stderr}"
    assert "Traceback" not in result.stderr, f"README.md:{line}:\n{result.stderr}"
    for expected in re.findall(r"print\(.*?\)\s*#\s*(\S.*)$", code, re.M):
        assert expected.strip() in result.stdout, f"README.md:{line} should print {expected!r}:\n{result.stdout}"


@pytest.mark.parametrize(("line", "text"), CONFIGS, ids=[f"README.md:{line}" for line, _ in CONFIGS])
def test_config_snippet_is_a_valid_file(line: int, text: str, tmp_path: Path) -> None:
    # Validated as `agent-otel check` and `agent-otel run` validate a file (its targets are examples: not imported).
    (tmp_path / "agent-otel.toml").write_text(text)
    load_file(tmp_path / "agent-otel.toml")


def test_the_readme_has_config_snippets() -> None:
    assert len(CONFIGS) >= 8
