"""A derived script change rebuilds that stage only; a master script change rebuilds all four.

Only the first test builds (one derived stage): that a master change means four builds is the
plan's to say, and `plan` is what the build itself follows (suitcase.build.run_plan), so the
second test asks the plan and does not spend a fresh master and three derived builds to see it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from suitcase.config import PROJECT_ROOT
from tests.slow.conftest import OS_NAME, BuiltSet, build_all

pytestmark = pytest.mark.slow
IMAGES = ("master", "vagrant", "aws-hvm", "aws-paravirt")


@pytest.fixture
def copies(built_set: BuiltSet, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A hard-linked copy of the workspace and a copy of the data, selected by SUITCASE_HOME."""
    workspace = built_set.copy(tmp_path / "ws")
    home = tmp_path / "home"
    for name in ("os", "ks", "scripts", "image-templates", "specs"):
        shutil.copytree(PROJECT_ROOT / name, home / name)
    return workspace, {"SUITCASE_HOME": str(home)}


def _change(env: dict[str, str], stage: str) -> None:
    script = sorted((Path(env["SUITCASE_HOME"]) / "scripts" / stage).glob("*.sh"))[-1]
    script.write_text(script.read_text() + "\n# a change\n")


def _inode(workspace: Path, built: BuiltSet) -> int:
    return (
        (workspace / "images" / "master" / f"{OS_NAME}-{built.timestamp}" / "disk.qcow2")
        .stat()
        .st_ino
    )


def test_derived_script_change_rebuilds_that_stage_only(
    built_set: BuiltSet, copies: tuple[Path, dict[str, str]]
) -> None:
    workspace, env = copies
    _change(env, "aws-paravirt")
    before = _inode(workspace, built_set)
    original = _files(built_set.built / "images")
    err = build_all(workspace, env=env).stderr
    for image in ("master", "vagrant", "aws-hvm"):
        assert f"[{image}] up to date" in err, err
    assert "[aws-paravirt] building: inputs changed: scripts" in err
    assert "[aws-paravirt] built in" in err
    assert _inode(workspace, built_set) == before  # the master was reused, not rewritten
    # files are replaced, never rewritten: the hard-linked original set is untouched
    assert _files(built_set.built / "images") == original


def test_master_script_change_plans_all_four(
    built_set: BuiltSet, copies: tuple[Path, dict[str, str]]
) -> None:
    workspace, env = copies
    _change(env, "master")
    plan = build_all(workspace, env=env, verb="plan").stdout
    assert plan.count("would run") == 4, plan
    assert plan.count("its parent master will be rebuilt") == 3
    for image in IMAGES:  # each stage's own line says it would run
        line = next(x for x in plan.splitlines() if x.split()[1:2] == [image])
        assert "would run" in line, plan


def _files(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file() and ".locks" not in p.parts
    }
