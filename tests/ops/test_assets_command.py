"""`agent-otel assets`: where the shipped operator files are, and copying them out for an operator."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import agent_otel
from agent_otel._cli import main
from agent_otel._ops.assets import ASSETS_ENV, asset_files
from agent_otel._ops.stack import assets_dir

PACKAGED = Path(agent_otel.__file__).resolve().parent / "assets"


@pytest.fixture(autouse=True)
def packaged_assets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts from the package's own assets, whatever the caller's environment says."""
    monkeypatch.delenv(ASSETS_ENV, raising=False)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["assets", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_it_prints_the_packaged_assets_directory() -> None:
    done = subprocess.run([sys.executable, "-m", "agent_otel", "assets"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    printed = Path(done.stdout.strip())
    assert printed.resolve() == PACKAGED
    assert (printed / "prometheus" / "agent-otel.rules.yaml").is_file()


def test_assets_env_is_the_directory_in_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(ASSETS_ENV, str(tmp_path))
    assert run(capsys) == (0, f"{tmp_path}\n", "")


def test_a_missing_assets_directory_is_named_with_the_variable_that_set_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(ASSETS_ENV, str(tmp_path / "nowhere"))
    code, out, err = run(capsys)
    assert (code, out) == (2, "")
    assert f"the assets directory {tmp_path / 'nowhere'} does not exist (set by {ASSETS_ENV})" in err


def test_a_file_named_as_the_assets_directory_is_said_to_be_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "thresholds.yaml").write_text("selector: ''\n")  # the file, not its directory: said so
    monkeypatch.setenv(ASSETS_ENV, str(tmp_path / "thresholds.yaml"))
    code, out, err = run(capsys)
    assert (code, out) == (2, "")
    assert f"the assets directory {tmp_path / 'thresholds.yaml'} is a file (set by {ASSETS_ENV})" in err


def test_copy_copies_every_asset_byte_for_byte_and_the_copy_runs_the_stack(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "ops" / "agent-otel"
    code, out, err = run(capsys, "--copy", str(target))
    assert (code, err) == (0, "")
    shipped = asset_files(PACKAGED)
    assert f"copied {len(shipped)} files to {target}" in out
    assert asset_files(target) == shipped
    for name in shipped:
        assert (target / name).read_bytes() == (PACKAGED / name).read_bytes(), name
    assert {Path("thresholds.yaml"), Path("alertmanager/alertmanager.yml"), Path("collector/otelcol.yaml"),
            Path("prometheus/agent-otel.alerts.yaml")} <= set(shipped)
    monkeypatch.setenv(ASSETS_ENV, str(target))
    assert assets_dir() == target


def test_copy_refuses_to_overwrite_and_copies_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edited = tmp_path / "alertmanager" / "alertmanager.yml"
    edited.parent.mkdir()
    edited.write_text("route: {receiver: mine}\n")
    code, out, err = run(capsys, "--copy", str(tmp_path))
    assert (code, out) == (2, "")
    assert f"cannot copy the assets to {tmp_path}: 1 file(s) exist there (alertmanager/alertmanager.yml)" in err
    assert "--force" in err
    assert edited.read_text() == "route: {receiver: mine}\n"
    assert asset_files(tmp_path) == [Path("alertmanager/alertmanager.yml")]


def test_force_overwrites_the_shipped_files_and_keeps_the_others(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    edited = tmp_path / "alertmanager" / "alertmanager.yml"
    edited.parent.mkdir()
    edited.write_text("route: {receiver: mine}\n")
    (tmp_path / "notes.txt").write_text("mine\n")
    code, _, err = run(capsys, "--copy", str(tmp_path), "--force")
    assert (code, err) == (0, "")
    assert edited.read_bytes() == (PACKAGED / "alertmanager" / "alertmanager.yml").read_bytes()
    assert (tmp_path / "notes.txt").read_text() == "mine\n"


@pytest.mark.parametrize(("layout", "problem"), [
    ("a-file", "it is not a directory"),
    ("a-file/below", "Not a directory"),
])
def test_an_unusable_destination_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str], layout: str,
                                          problem: str) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    code, out, err = run(capsys, "--copy", str(tmp_path / layout))
    assert (code, out) == (2, "")
    assert f"agent-otel assets: cannot copy the assets to {tmp_path / layout}: {problem}" in err, err


def test_force_without_copy_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--force")
    assert (code, out) == (2, "")
    assert "--force only applies with --copy DIR" in err


def test_copy_into_an_empty_name_is_an_error_not_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """``--copy "$UNSET"`` copied every asset into the working directory."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exited:
        main(["assets", "--copy", ""])
    assert exited.value.code == 2 and "--copy names no directory" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
