"""Fake stage folders (a manifest + files, no real build) and the environment that points Suitcase
at a moto server over HTTP, for the S3 tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from suitcase.context import Context
from suitcase.imagetypes import IMAGE_TYPES
from suitcase.manifest import Manifest, describe_output, write_manifest
from suitcase.plan import BuildPlan

OS = "Debian-12-x86_64"
TS = "20260101000000"
MiB = 1024 * 1024


def disk_like(path: Path, size: int, seed: int) -> None:
    """A disk-like file: random blocks with holes between them (never all zeros)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = __import__("random").Random(seed)
    with path.open("wb") as handle:
        handle.truncate(size)
        for offset in range(0, size, 4 * MiB):
            handle.seek(offset)
            handle.write(rng.randbytes(min(MiB, size - offset)))


def fake_build_set(
    workspace: Path, images: str = "all", ts: str = TS, disk_size: int = 12 * MiB
) -> BuildPlan:
    """Every stage of `images` made done: a disk, a nested small file and a current manifest."""
    ctx = Context.create(workspace)
    plan = ctx.plan(OS, images, ts)
    for number, stage in enumerate(plan.stages):
        folder = stage.directory
        disk = folder / f"disk-{stage.image.name}.img"
        disk_like(disk, disk_size + number * 12345, seed=number)
        notes = folder / "extra" / "notes.txt"
        notes.parent.mkdir(parents=True, exist_ok=True)
        notes.write_text(f"stage {stage.image.name}\n")
        write_manifest(
            folder,
            Manifest(
                stage=stage.image.name,
                os=OS,
                timestamp=ts,
                key=stage.key,
                inputs=stage.inputs,
                parent={"stage": stage.parent, "key": "p"} if stage.parent else None,
                outputs=[
                    describe_output(folder, disk, IMAGE_TYPES[stage.image.name].disk),
                    describe_output(folder, notes, "notes"),
                ],
                tool_versions={"packer": "x"},
                git_revision="x",
                started="s",
                finished="f",
                suitcase_version="0",
            ),
        )
    assert all(s.done for s in plan.states()), [s.reason for s in plan.states()]
    return plan


def point_at(monkeypatch: pytest.MonkeyPatch, url: str, bucket: str, tmp: Path) -> None:
    """Suitcase (and the AWS CLI) talk to `url` with dummy credentials, using `bucket`."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp / "no-aws-credentials"))
    monkeypatch.setenv("SUITCASE_BUCKET", bucket)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("SUITCASE_AWS", raising=False)
    for name in ("SUITCASE_OS", "SUITCASE_TIMESTAMP", "SUITCASE_WORKSPACE", "SUITCASE_SITE"):
        monkeypatch.delenv(name, raising=False)


def env_for(url: str, bucket: str, tmp: Path) -> dict[str, str]:
    """The same, for a subprocess."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SUITCASE_", "AWS_"))}
    env.update(
        AWS_ENDPOINT_URL=url,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=str(tmp / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp / "no-aws-credentials"),
        SUITCASE_BUCKET=bucket,
    )
    return env


SITE = "s3:\n  part_size_mb: 5\n  concurrency: 4\n"


def site_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, site: str = SITE) -> Path:
    """A workspace under `tmp_path` with `site` as its site.yaml, made the current folder."""
    root = tmp_path / "ws"
    root.mkdir()
    (root / "site.yaml").write_text(site)
    monkeypatch.chdir(root)
    return root
