"""A run killed between a stage's manifest and its clean-up leaves `.build` (Packer's own disk,
which may hold what provisioning wrote and deleted); the next run over the done stage removes it."""

from __future__ import annotations

from pathlib import Path

import pytest

from suitcase.build import run_plan
from suitcase.context import Context
from tests.fakes import fake_build_set
from tests.s3_support import site_workspace


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return site_workspace(tmp_path, monkeypatch)


def test_a_done_stage_loses_the_scratch_a_killed_run_left(ws: Path) -> None:
    plan = fake_build_set(ws, "aws-paravirt", disk_size=1 << 20)
    left = plan.stage("aws-paravirt").directory / ".build" / "packer" / "vm-disk"
    left.parent.mkdir(parents=True)
    left.write_bytes(b"root_password=left-in-a-deleted-block")
    said: list[str] = []
    results = run_plan(Context.create(ws), plan, said.append)
    assert [r.built for r in results] == [False, False]  # nothing rebuilt
    assert not left.parent.parent.exists()
    assert any("removed the scratch a killed run left" in line for line in said), said
    for stage in plan.stages:  # the stages themselves are untouched and still done
        assert (stage.directory / "manifest.json").is_file()
