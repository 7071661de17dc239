"""`all` uploads each finished stage while the next one builds: run_plan hands stages over and
waits for their uploads before it unlocks the build set (the endpoint Suitcase ships, over
HTTP)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from suitcase.aws.ship import real_upload
from suitcase.build import run_plan
from suitcase.context import Context
from suitcase.errors import BusyError
from suitcase.overlap import BackgroundUploads
from tests.endpoint_support import Launched, launch
from tests.fakes import fake_build_set
from tests.s3_support import OS, point_at, site_workspace
from tests.test_s3 import held, s3, unfinished


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launched]:
    """The twin, for the whole module (each test has its own bucket)."""
    with launch("twin", tmp_path_factory.mktemp("twin")) as running:
        yield running


@pytest.fixture
def ws(tmp_path: Path, server: Launched, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = site_workspace(tmp_path, monkeypatch)
    name = f"suitcase-overlap-{os.urandom(6).hex()}"
    point_at(monkeypatch, server, name, tmp_path)
    s3(server).create_bucket(Bucket=name)
    return root


def test_each_done_stage_uploads_under_the_builds_lock(ws: Path, server: Launched) -> None:
    plan = fake_build_set(ws, "aws-hvm")
    ctx = Context.create(ws)
    said: list[str] = []
    uploads = BackgroundUploads(ctx, OS, plan.build_set, said.append)
    handed: list[str] = []
    locked_meanwhile: list[bool] = []

    def after(result: object) -> None:
        handed.append(getattr(result, "stage", ""))
        uploads.submit(result)  # type: ignore[arg-type]

    def before_unlock() -> None:
        uploads.finish()
        try:  # still ours: another process would be refused now
            with ctx.workspace.lock(plan.build_set):
                locked_meanwhile.append(False)
        except BusyError:
            locked_meanwhile.append(True)

    results = run_plan(ctx, plan, said.append, after_stage=after, before_unlock=before_unlock)
    assert handed == ["master", "aws-hvm"] == [r.stage for r in results]
    assert locked_meanwhile == [True]
    bucket = os.environ["SUITCASE_BUCKET"]
    keys = set(held(server, bucket))
    for stage in plan.stages:
        cookie = real_upload(stage.directory)
        assert cookie is not None
        assert {o["key"] for o in cookie["objects"]} <= keys
    assert set(uploads.seconds) == {"master", "aws-hvm"} and not uploads.skipped
    assert unfinished(server, bucket) == []
    assert any("(while building)" in line for line in said)

    # a second run finds everything uploaded: nothing is sent again
    again = BackgroundUploads(ctx, OS, plan.build_set, said.append)
    run_plan(ctx, plan, said.append, after_stage=again.submit, before_unlock=again.finish)
    assert again.skipped == {"master", "aws-hvm"}


def test_an_upload_error_reaches_the_build_and_nothing_is_left_unfinished(
    ws: Path, server: Launched
) -> None:
    plan = fake_build_set(ws, "master")
    ctx = Context.create(ws)
    disk = plan.stages[0].directory / "disk-master.img"
    data = bytearray(disk.read_bytes())
    data[7] ^= 1  # changed since its manifest: S3's CRC64NVME will not be the manifest's
    disk.write_bytes(bytes(data))
    uploads = BackgroundUploads(ctx, OS, plan.build_set, lambda _: None)
    with pytest.raises(Exception, match="no longer matches the checksums its manifest records"):
        run_plan(
            ctx, plan, lambda _: None, after_stage=uploads.submit, before_unlock=uploads.finish
        )
    bucket = os.environ["SUITCASE_BUCKET"]
    assert unfinished(server, bucket) == []
    assert real_upload(plan.stages[0].directory) is None
    assert not any(k.endswith("disk-master.img") for k in held(server, bucket))
