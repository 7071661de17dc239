"""Shared fixtures for Suitcase's own tests."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from suitcase.config import PROJECT_ROOT, Paths

DATA_DIRS = ("os", "ks", "scripts", "image-templates", "specs")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--aws-account",
        action="store_true",
        default=False,
        help="run tests/aws_rules against the AWS account boto3 finds, not the twin (opt-in)",
    )


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Paths:
    """A private copy of the project's data folders, selected through SUITCASE_HOME."""
    root = tmp_path / "home"
    for name in DATA_DIRS:
        if (PROJECT_ROOT / name).is_dir():
            shutil.copytree(PROJECT_ROOT / name, root / name, symlinks=True)
    shutil.copy(PROJECT_ROOT / "site.yaml", root / "site.yaml")
    monkeypatch.setenv("SUITCASE_HOME", str(root))
    return Paths(root)


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty workspace, made the current folder so nothing lands in the repo."""
    ws = tmp_path / "ws"
    ws.mkdir()
    monkeypatch.chdir(ws)
    for name in ("SUITCASE_OS", "SUITCASE_TIMESTAMP", "SUITCASE_SITE", "SUITCASE_WORKSPACE"):
        monkeypatch.delenv(name, raising=False)
    yield ws


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def tree_snapshot(root: Path) -> dict[str, int]:
    """Every path under `root` (links not followed) with its size: to prove nothing was touched."""
    return {
        str(p.relative_to(root)): (p.lstat().st_size if not p.is_dir() else -1)
        for p in sorted(root.rglob("*"))
    }


def fake_stage(
    workspace: Path, image: str, os_name: str, timestamp: str, manifest: bool = True
) -> Path:
    """A built-looking stage folder (a small disk and, unless told otherwise, a valid manifest)."""
    from suitcase.manifest import Manifest, describe_output, write_manifest

    stage = workspace / "images" / image / f"{os_name}-{timestamp}"
    stage.mkdir(parents=True, exist_ok=True)
    disk = stage / "disk.qcow2"
    disk.write_bytes(b"disk" * 256)
    if manifest:
        write_manifest(
            stage,
            Manifest(
                stage=image,
                os=os_name,
                timestamp=timestamp,
                key="0" * 64,
                inputs={},
                parent=None,
                outputs=[describe_output(stage, disk, "disk")],
                tool_versions={},
                git_revision="test",
                started="s",
                finished="f",
                suitcase_version="0",
            ),
        )
    return stage


def sigint_as_usual() -> None:
    """Popen's preexec_fn: SIGINT handled as at a terminal, even when the test run itself was
    started in the background (a shell's `&` ignores SIGINT, and a child inherits that)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
