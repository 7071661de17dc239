"""Shared fixtures for Suitcase's own tests."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from suitcase.config import PROJECT_ROOT, Paths
from tests.fakes import make_fake_home

DATA_DIRS = ("os", "ks", "scripts", "image-templates", "specs")

#: tiers (fast, own, set) and the session-end leak check
pytest_plugins = ["tests.testrun"]


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


@pytest.fixture
def fake_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake Suitcase tree (tests/fakes.py: make_fake_home), selected through SUITCASE_HOME."""
    home = make_fake_home(tmp_path / "fakehome")
    monkeypatch.setenv("SUITCASE_HOME", str(home))
    return home


def sigint_as_usual() -> None:
    """Popen's preexec_fn: SIGINT handled as at a terminal, even when the test run itself was
    started in the background (a shell's `&` ignores SIGINT, and a child inherits that)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
