"""A workspace, its images/ and keys/ that another user could change are refused in one line,
and what Suitcase creates has its own modes whatever the caller's umask."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from suitcase.config import PROJECT_ROOT
from suitcase.errors import ConfigError
from suitcase.workspace import Workspace

NOBODY = 65534


def _group_writable(ws: Path) -> None:
    ws.chmod(0o775)


def _world_writable_sticky(ws: Path) -> None:
    ws.chmod(0o1777)  # /tmp's own mode: anyone can plant a folder or link by name


def _foreign_images(ws: Path) -> None:
    (ws / "images").mkdir()
    os.chown(ws / "images", NOBODY, NOBODY)


def _linked_keys(ws: Path) -> None:
    elsewhere = ws.parent / "elsewhere"
    elsewhere.mkdir()
    (ws / "keys").symlink_to(elsewhere)


def _foreign_workspace(ws: Path) -> None:
    os.chown(ws, NOBODY, NOBODY)


def _world_writable_images(ws: Path) -> None:
    (ws / "images").mkdir()
    (ws / "images").chmod(0o777)


CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "group-writable-workspace": (_group_writable, "has mode 775: writable by group or others"),
    "sticky-world-writable-workspace": (_world_writable_sticky, "has mode 1777"),
    "foreign-images": (_foreign_images, f"belongs to uid {NOBODY}, not to this user"),
    "linked-keys": (_linked_keys, "keys folder"),
    "foreign-workspace": (_foreign_workspace, f"belongs to uid {NOBODY}"),
    "world-writable-images": (_world_writable_images, "has mode 777"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_folder_others_can_change_is_refused_in_one_line(name: str, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir(mode=0o755)
    plant, expected = CASES[name]
    plant(ws)
    with pytest.raises(ConfigError, match=expected):
        Workspace.at(ws)
    before = sorted(p.name for p in ws.iterdir())
    result = subprocess.run(
        [sys.executable, "-m", "suitcase", "--workspace", str(ws), "list"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
    )
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in ws.iterdir()) == before  # nothing made there


def test_an_own_0755_workspace_passes(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir(mode=0o755)
    (ws / "images").mkdir(mode=0o755)
    (ws / "keys").mkdir(mode=0o700)
    assert Workspace.at(ws).root == ws.resolve()
