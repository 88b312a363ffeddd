"""The assets ship with the package: a wheel built from the checkout, installed with a plain `pip install` in a
fresh venv outside the checkout, runs `agent-otel demo --stack` on the rules and Alertmanager config it carries.

The wheel is built from a copy of the checkout's sources (as `python -m build` builds from an sdist), so that a
stale ``build/`` directory in the checkout can neither leak into it nor hide a missing ``package-data`` entry.
The dependencies come from a wheelhouse kept between runs (filled from PyPI by ``pip download`` when it lacks
one), so that a warm run installs them from local files; only the isolated build of the wheel asks PyPI for
setuptools (answered from pip's cache when warm).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent_otel._ops.stack import free_port
from tests.support.demo import port_is_closed, stop
from tests.support.http import http_get_json
from tests.support.paths import ROOT
from tests.support.polling import wait_until

PACKAGE = ROOT / "src" / "agent_otel"
#: Dependency wheels kept between runs, outside the checkout.
WHEELHOUSE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "agent-otel-tests" / "wheelhouse"
#: Variables that would let the installed program see the checkout or another copy of the assets.
LEAKS = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "AGENT_OTEL_ASSETS")
#: Seconds the demo runs once its stack is up: ample for two HTTP queries, short enough to wait for.
DEMO_DURATION_S = 10
PIP = ["-m", "pip", "--disable-pip-version-check", "--no-input"]


@dataclass(frozen=True)
class Installation:
    wheel: Path
    venv: Path
    package: Path  # agent_otel/ in the venv's site-packages, as the installed interpreter imports it
    env: dict[str, str]
    elsewhere: Path  # a working directory outside the checkout

    def command(self, name: str) -> str:
        return str(self.venv / "bin" / name)


def source_files() -> set[str]:
    """Every file of the package in the checkout, as the wheel names it."""
    return {str(path.relative_to(PACKAGE.parent)) for path in PACKAGE.rglob("*")
            if path.is_file() and "__pycache__" not in path.parts}


def run(command: list[str], what: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    done: subprocess.CompletedProcess[str] = subprocess.run(command, capture_output=True, text=True, timeout=600,
                                                            **kwargs)
    assert done.returncode == 0, f"{what} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done


def build_wheel(workdir: Path) -> Path:
    checkout = workdir / "checkout"
    shutil.copytree(ROOT / "src", checkout / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for path in ROOT.iterdir():
        if path.is_file() and (path.name in ("pyproject.toml", "README.md") or path.name.startswith("LICEN")):
            shutil.copy2(path, checkout / path.name)
    run([sys.executable, *PIP, "wheel", "--no-deps", "--wheel-dir", str(workdir / "dist"), str(checkout)],
        "building the wheel")
    (wheel,) = (workdir / "dist").glob("agent_otel-*.whl")
    return wheel


def clean_env() -> dict[str, str]:
    """The caller's environment without a way back to the checkout (nor the project's venv on PATH)."""
    env = {key: value for key, value in os.environ.items() if key not in LEAKS}
    project_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(entry for entry in env.get("PATH", "").split(os.pathsep) if entry != project_bin)
    return env


def pip_install(python: Path, wheel: Path, env: dict[str, str]) -> None:
    """`pip install WHEEL`, dependencies from the wheelhouse; a cold or outdated wheelhouse is filled first."""
    install = [str(python), *PIP, "install", "--no-index", "--find-links", str(WHEELHOUSE), str(wheel)]
    if subprocess.run(install, capture_output=True, text=True, timeout=600, env=env).returncode != 0:
        WHEELHOUSE.mkdir(parents=True, exist_ok=True)
        run([str(python), *PIP, "download", "--dest", str(WHEELHOUSE), str(wheel)], "downloading the dependencies",
            env=env)
        for ours in WHEELHOUSE.glob("agent_otel-*.whl"):
            ours.unlink()
        run(install, "installing the wheel", env=env)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installation:
    workdir = tmp_path_factory.mktemp("wheel-install")
    assert not workdir.resolve().is_relative_to(ROOT), "the fresh venv must be outside the checkout"
    wheel = build_wheel(workdir)
    venv = workdir / "venv"
    env = clean_env()
    run([sys.executable, "-m", "venv", str(venv)], "creating the venv", env=env)
    pip_install(venv / "bin" / "python", wheel, env)
    elsewhere = workdir / "elsewhere"
    elsewhere.mkdir()
    where = json.loads(run([str(venv / "bin" / "python"), "-c",
                            "import json, sysconfig, agent_otel; print(json.dumps([agent_otel.__file__, "
                            "sysconfig.get_path('purelib')]))"], "importing the installed package",
                           cwd=elsewhere, env=env).stdout)
    package = Path(where[0]).resolve().parent
    assert package == Path(where[1]).resolve() / "agent_otel", where
    return Installation(wheel, venv, package, env, elsewhere)


def test_the_wheel_holds_every_file_of_the_package(installed: Installation) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        packaged = {name for name in wheel.namelist() if name.startswith("agent_otel/")}
    expected = source_files()
    assert {"agent_otel/py.typed", "agent_otel/_ops/demo/agent-otel.toml",
            "agent_otel/_zerocode/bootstrap/sitecustomize.py", "agent_otel/assets/thresholds.yaml",
            "agent_otel/assets/prometheus/tests/alerts.test.yaml",
            "agent_otel/assets/grafana/provisioning/datasources/agent-otel.yaml"} <= expected
    assert sorted(expected - packaged) == [], "missing from the wheel: add them to [tool.setuptools.package-data]"
    assert sorted(packaged - expected) == [], "in the wheel but not in the checkout"


def test_the_installed_package_has_every_asset_and_copies_them_out(installed: Installation, tmp_path: Path) -> None:
    shipped = sorted(path.relative_to(PACKAGE / "assets") for path in (PACKAGE / "assets").rglob("*")
                     if path.is_file() and "__pycache__" not in path.parts)
    for area in ("thresholds.yaml", "prometheus", "alertmanager", "grafana/dashboards", "grafana/provisioning",
                 "collector"):
        assert any(name == Path(area) or Path(area) in name.parents for name in shipped), area
    with zipfile.ZipFile(installed.wheel) as wheel:
        for name in shipped:
            packaged = wheel.read(f"agent_otel/assets/{name.as_posix()}")
            assert (installed.package / "assets" / name).read_bytes() == packaged, name
    printed = run([installed.command("agent-otel"), "assets"], "agent-otel assets", cwd=installed.elsewhere,
                  env=installed.env).stdout
    assert Path(printed.strip()).resolve() == installed.package / "assets"
    run([installed.command("agent-otel"), "assets", "--copy", str(tmp_path / "ops")], "agent-otel assets --copy",
        cwd=installed.elsewhere, env=installed.env)
    assert sorted(path.relative_to(tmp_path / "ops") for path in (tmp_path / "ops").rglob("*")
                  if path.is_file()) == shipped


def test_demo_stack_runs_on_the_assets_of_the_installed_package(installed: Installation, tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("metrics", "prometheus", "alertmanager")}
    log = tmp_path / "out"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [installed.command("agent-otel"), "demo", "--stack", "--duration", str(DEMO_DURATION_S), "--rate", "20",
             "--port", str(ports["metrics"]), "--prometheus-port", str(ports["prometheus"]),
             "--alertmanager-port", str(ports["alertmanager"]), "--workdir", str(tmp_path / "stack")],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=installed.elsewhere,
            env=installed.env)
    prometheus = f"http://127.0.0.1:{ports['prometheus']}"
    alertmanager = f"http://127.0.0.1:{ports['alertmanager']}"
    try:
        wait_until(lambda: "Ctrl-C stops the demo" in log.read_text() or process.poll() is not None,
                   "the installed demo to report its stack", timeout_s=90)
        assert process.poll() is None, log.read_text()
        groups = http_get_json(f"{prometheus}/api/v1/rules")["data"]["groups"]
        rules_dir = installed.package / "assets" / "prometheus"
        assert {Path(group["file"]).resolve() for group in groups} == {
            rules_dir / "agent-otel.rules.yaml", rules_dir / "agent-otel.alerts.yaml"}
        assert sum(1 for group in groups for rule in group["rules"] if rule["type"] == "alerting") > 10
        config = http_get_json(f"{alertmanager}/api/v2/status")["config"]["original"]
        shipped = (installed.package / "assets" / "alertmanager" / "alertmanager.yml").read_text()
        assert "alert-webhook.invalid" in shipped
        assert "alert-webhook.invalid" not in config and "http://127.0.0.1:" in config
        assert process.wait(DEMO_DURATION_S + 60) == 0, log.read_text()
    finally:
        stop(process)
    output = log.read_text()
    assert "Traceback" not in output, output
    assert "agent-otel demo: stopped after" in output, output
    for port in ports.values():
        assert port_is_closed(port)
