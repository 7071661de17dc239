"""Changing one derived stage's script rebuilds that stage only; a master script change, all four."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from suitcase.config import PROJECT_ROOT
from tests.slow.conftest import OS_NAME, BuiltSet, suitcase

pytestmark = pytest.mark.slow


@pytest.fixture
def copies(built_set: BuiltSet, tmp_path: Path) -> tuple[Path, Path]:
    """A hard-linked copy of the workspace (cheap; rebuilt files get new inodes) and of the data."""
    workspace = tmp_path / "ws"
    workspace.mkdir()
    for name in ("images", "keys"):
        subprocess.run(
            ["cp", "-al", str(built_set.workspace / name), str(workspace / name)], check=True
        )
    shutil.rmtree(workspace / "images" / ".locks", ignore_errors=True)
    home = tmp_path / "home"
    for name in ("os", "ks", "scripts", "image-templates", "specs"):
        shutil.copytree(PROJECT_ROOT / name, home / name)
    return workspace, home


def _touch(script: Path) -> None:
    script.write_text(script.read_text() + "\n# a change\n")


def test_derived_script_change_rebuilds_that_stage_only(
    built_set: BuiltSet, copies: tuple[Path, Path]
) -> None:
    workspace, home = copies
    _touch(sorted((home / "scripts" / "aws-paravirt").glob("*.sh"))[-1])
    env = {"SUITCASE_HOME": str(home)}
    master_disk = (
        workspace / "images" / "master" / f"{OS_NAME}-{built_set.timestamp}" / "disk.qcow2"
    )
    before = master_disk.stat().st_ino
    result = suitcase(
        "build",
        "all",
        "--os",
        OS_NAME,
        "--timestamp",
        built_set.timestamp,
        workspace=workspace,
        env=env,
    )
    err = result.stderr
    for image in ("master", "vagrant", "aws-hvm"):
        assert f"[{image}] up to date" in err, err
    assert "[aws-paravirt] building: inputs changed: scripts" in err
    assert "[aws-paravirt] built in" in err
    assert master_disk.stat().st_ino == before  # the master was reused, not rewritten


def test_master_script_change_rebuilds_all_four(
    built_set: BuiltSet, copies: tuple[Path, Path]
) -> None:
    workspace, home = copies
    _touch(sorted((home / "scripts" / "master").glob("*.sh"))[0])
    result = suitcase(
        "plan",
        "all",
        "--os",
        OS_NAME,
        "--timestamp",
        built_set.timestamp,
        workspace=workspace,
        env={"SUITCASE_HOME": str(home)},
    )
    out = result.stdout
    assert "master        key" in out and "would run: inputs changed: scripts" in out
    assert out.count("would run") == 4, out
    assert out.count("its parent master will be rebuilt") == 3
