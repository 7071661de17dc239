"""AMI fixtures: the registered AMI of the image under test, and its snapshot read back as a disk.

`suitcase_ami` builds, uploads and registers what is missing (once across xdist workers: the
build-set lock is held, and `register_stage` finds an AMI another worker registered by its stage
key). Against a real account it registers only with --suitcase-register: registering must never
be a side effect anyone gets by surprise. `suitcase_disk` is the disk the specs look at: the
built artifact, or with --suitcase-source=ami the AMI's root snapshot read back block by block.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_suitcase.fixtures import _say, disk_of
from pytest_suitcase.session import SuitcaseSession
from suitcase.errors import SuitcaseError
from suitcase.gates import PLANNED
from suitcase.manifest import Manifest, read_manifest
from suitcase.verbs import AMI_IMAGES

#: the folder, inside the stage folder, a read-back snapshot is written to (removed afterwards)
SCRATCH = ".ami-readback"


def _same_as_verified(ami: Ami, disk: Path) -> None:
    """The snapshot read back must be the verified disk, byte for byte (then zeros to the end of
    its volume), before any spec sees it: an AMI that only carries the stage's tags is not it."""
    from suitcase.aws.ami import KINDS
    from suitcase.manifest import sha256_prefix

    output = ami.manifest.output(KINDS[ami.manifest.stage].disk_kind)
    assert output is not None  # register_stage refused a stage without it
    digest, zeros_after = sha256_prefix(disk, output.size)
    if digest != output.sha256 or not zeros_after:
        pytest.fail(
            f"{ami.image_id}'s snapshot {ami.snapshot_id} is not the verified disk "
            f"{ami.disk.name} (sha256 {output.sha256[:16]}…): "
            + ("its first bytes differ" if digest != output.sha256 else "data after its end"),
            pytrace=False,
        )


@dataclass(frozen=True)
class Ami:
    """The registered AMI of the image under test, as the endpoint describes it."""

    target: Any  # suitcase.aws.clients.AwsTarget
    image_id: str
    snapshot_id: str
    description: dict[str, Any]  # DescribeImages' answer
    snapshot: dict[str, Any]  # DescribeSnapshots' answer
    manifest: Manifest  # the stage's manifest after registering (its `amis` recorded)
    disk: Path  # the verified disk the snapshot was written from

    @property
    def tags(self) -> dict[str, str]:
        return {t["Key"]: t["Value"] for t in self.description.get("Tags", [])}


def register_wanted(config: pytest.Config) -> bool:
    return bool(config.getoption("suitcase_register", False))


def _register(request: pytest.FixtureRequest, session: SuitcaseSession, image: str) -> Ami:
    from suitcase.aws.ami import KINDS, MANIFEST_KEY, AmiSettings, register_stage
    from suitcase.aws.clients import aws_target

    say = _say(request)
    ctx = session.ctx
    target = aws_target(ctx, say)
    if target.kind != "embedded" and not register_wanted(request.config):
        pytest.skip(  # decided before anything is uploaded to that account: planned
            f"{PLANNED}registers an AMI in {target.describe()}: only with --suitcase-register "
            "(the embedded endpoint needs no option)"
        )
    request.getfixturevalue("suitcase_upload")  # register needs the stages uploaded first
    stage_dir = ctx.workspace.stage_dir(image, session.build_set)
    with ctx.workspace.lock(session.build_set, wait=-1):
        manifest = read_manifest(stage_dir)
        if manifest is None:
            pytest.fail(f"{image} of {session.build_set.id} has no manifest", pytrace=False)
        recorded = dict((manifest.extra.get(MANIFEST_KEY) or {}).get(target.region) or {})
        result = register_stage(target, stage_dir, manifest, AmiSettings.from_site(ctx.site), say)
        manifest = read_manifest(stage_dir) or manifest
    # the AMI `register` recorded for this stage is the one verified, never another that only
    # carries the stage's tags (one registered since, by anyone who can in that account)
    found = (result.image_id, result.snapshot_id)
    if recorded and found != (recorded.get("image_id"), recorded.get("snapshot_id")):
        pytest.fail(
            f"{image}: register recorded {recorded.get('image_id')} (snapshot "
            f"{recorded.get('snapshot_id')}) in {target.region}, but the account now answers "
            f"{found[0]} (snapshot {found[1]}) for this stage: not verified; deregister the "
            "stranger, or the record with `suitcase deregister`",
            pytrace=False,
        )
    ec2 = target.client("ec2")
    description = ec2.describe_images(ImageIds=[result.image_id])["Images"][0]
    snapshots = ec2.describe_snapshots(SnapshotIds=[result.snapshot_id])["Snapshots"]
    output = manifest.output(KINDS[image].disk_kind)
    assert output is not None  # register_stage refused a stage without it
    return Ami(
        target,
        result.image_id,
        result.snapshot_id,
        description,
        snapshots[0] if snapshots else {},
        manifest,
        stage_dir / output.path,
    )


@pytest.fixture(scope="session")
def suitcase_ami(
    request: pytest.FixtureRequest,
    suitcase_session: SuitcaseSession,
    suitcase_image: str,
    suitcase_artifact: Manifest,
) -> Ami:
    """The AMI of the image under test: built, uploaded and registered first where missing."""
    if suitcase_image not in AMI_IMAGES:
        pytest.fail(f"{suitcase_image} is not an AMI image type", pytrace=False)
    try:
        return _register(request, suitcase_session, suitcase_image)
    except SuitcaseError as exc:
        pytest.fail(f"suitcase register {suitcase_image}: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def suitcase_disk(
    request: pytest.FixtureRequest,
    suitcase_session: SuitcaseSession,
    suitcase_image: str,
    suitcase_artifact: Manifest,
) -> Iterator[Path]:
    """The disk the specs verify: the artifact's (for vagrant the `.box`'s box.img), or
    (--suitcase-source=ami) the AMI's snapshot read back into the stage folder, removed again
    after the session."""
    if suitcase_session.source != "ami":
        if suitcase_image == "vagrant":  # what ships: the box's disk, as Vagrant unpacks it
            yield request.getfixturevalue("suitcase_box") / "box.img"
            return
        yield disk_of(suitcase_session, suitcase_artifact)
        return
    from suitcase.aws.ebs import read_snapshot
    from suitcase.safety import remove_tree

    ami: Ami = request.getfixturevalue("suitcase_ami")
    scratch = ami.disk.parent / SCRATCH
    if scratch.exists():  # left by a killed run
        remove_tree(scratch)
    scratch.mkdir()
    try:
        disk = scratch / ami.disk.name
        _say(request)(f"{suitcase_image}: reading snapshot {ami.snapshot_id} back into {disk}")
        try:
            read_snapshot(ami.target, ami.snapshot_id, disk)
        except SuitcaseError as exc:
            pytest.fail(f"reading back {ami.snapshot_id}: {exc}", pytrace=False)
        _same_as_verified(ami, disk)
        yield disk
    finally:
        remove_tree(scratch)
