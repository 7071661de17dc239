"""EC2 AMIs: the rules AWS enforces at RegisterImage, CopyImage and DescribeImages, on the twin
(and, opt-in, on AWS), and Suitcase's register/deregister living by them."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from suitcase.aws import ebs
from suitcase.aws.ami import AmiSettings, deregister_stage, register_stage
from suitcase.aws.clients import AwsTarget
from suitcase.aws.ebs import BLOCK_SIZE
from suitcase.aws.errors import error_code
from suitcase.aws.images import RegisterError, wait_available
from suitcase.errors import ConfigError
from suitcase.manifest import read_manifest
from tests.aws_rules.conftest import Aws
from tests.endpoint_support import put_snapshot
from tests.fakes import fake_stage

SETTINGS = AmiSettings(wait_interval=0.5)


def _quiet(_line: str) -> None:
    pass


def _completed_snapshot(target: AwsTarget) -> str:
    snapshot_id = put_snapshot(target.client("ebs"), {0: os.urandom(BLOCK_SIZE)})
    ebs.wait_completed(target.client("ec2"), snapshot_id, interval=0.5)
    return snapshot_id


def _register(ec2: Any, name: str, snapshot_id: str, **extra: Any) -> str:
    mapping: dict[str, Any] = {"SnapshotId": snapshot_id, **extra.pop("ebs", {})}
    image_id: str = ec2.register_image(
        Name=name,
        Architecture="x86_64",
        VirtualizationType="hvm",
        RootDeviceName="/dev/xvda",
        BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": mapping}],
        **extra,
    )["ImageId"]
    return image_id


def test_ami_names_are_unique_per_account_and_region(aws: Aws, stock: AwsTarget) -> None:
    """RegisterImage refuses a name the account already uses in the region
    (InvalidAMIName.Duplicate; EC2 API reference, RegisterImage `Name` and its errors)."""
    ec2 = aws.client("ec2")
    name = f"rules-duplicate-{os.urandom(4).hex()}"
    first = _register(ec2, name, _completed_snapshot(aws.target))
    with pytest.raises(ClientError) as refused:
        _register(ec2, name, _completed_snapshot(aws.target))
    assert error_code(refused.value) == "InvalidAMIName.Duplicate"
    ec2.deregister_image(ImageId=first, DeleteAssociatedSnapshots=True)
    plain = stock.client("ec2")
    snap = plain.create_snapshot(
        VolumeId=plain.create_volume(Size=1, AvailabilityZone="us-east-1a")["VolumeId"]
    )
    for _ in range(2):  # stock moto registers the same name twice
        _register(plain, "same", snap["SnapshotId"])


def test_a_new_ami_is_not_found_at_first(aws: Aws) -> None:
    """ "Eventual consistency": DescribeImages right after RegisterImage can answer
    InvalidAMIID.NotFound (EC2 API reference, "Eventual consistency in the Amazon EC2 API");
    botocore's `image_exists` waiter is how to wait for it."""
    aws.twin(invisible_seconds=3)
    ec2 = aws.client("ec2")
    image_id = _register(ec2, f"rules-new-{os.urandom(4).hex()}", _completed_snapshot(aws.target))
    with pytest.raises(ClientError) as missing:
        ec2.describe_images(ImageIds=[image_id])
    assert error_code(missing.value) == "InvalidAMIID.NotFound"
    wait_available(ec2, image_id, interval=0.5)
    ec2.deregister_image(ImageId=image_id, DeleteAssociatedSnapshots=True)


def test_register_image_refuses_what_aws_refuses(aws: Aws) -> None:
    """RegisterImage: the snapshot must be `completed`; the volume at least the snapshot's size;
    a KernelId must be a kernel image (EC2 User Guide, "Create an AMI from a snapshot"; EC2 API
    reference, RegisterImage, BlockDeviceMapping/EbsBlockDevice VolumeSize)."""
    ec2, client = aws.client("ec2"), aws.client("ebs")
    pending = client.start_snapshot(VolumeSize=1, Timeout=60)["SnapshotId"]
    done = _completed_snapshot(aws.target)
    cases: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [
        (pending, {}, ("IncorrectState", "InvalidSnapshot.NotFound", "InvalidParameterValue")),
        (done, {"ebs": {"VolumeSize": 0}}, ("InvalidBlockDeviceMapping", "InvalidParameterValue")),
        (done, {"KernelId": "aki-00000000"}, ("InvalidAMIID.NotFound", "InvalidAKIID.NotFound")),
    ]
    for snapshot_id, extra, codes in cases:
        with pytest.raises(ClientError) as refused:
            _register(ec2, f"rules-refused-{os.urandom(4).hex()}", snapshot_id, **extra)
        assert error_code(refused.value) in codes, (extra, refused.value)
    for snapshot_id in (pending, done):
        ec2.delete_snapshot(SnapshotId=snapshot_id)


def test_suitcase_registers_under_the_twins_delays_and_a_rebuild_gets_its_own_name(
    aws: Aws, tmp_path: Path
) -> None:
    """Suitcase against the twin's default delays (new snapshot and AMI invisible, `pending`
    first): one AMI; a stage rebuilt in the same build set (a new key) registers beside it under
    a name that cannot collide; deregister, then register again, takes a new snapshot (a new
    client token: a replayed one returns the deleted snapshot)."""
    target = aws.target
    stage = tmp_path / "aws-hvm"
    manifest = fake_stage(stage)
    first = register_stage(target, stage, manifest, SETTINGS, _quiet)
    rebuilt_dir = tmp_path / "rebuilt"
    rebuilt = fake_stage(rebuilt_dir, key="r" * 64)
    second = register_stage(target, rebuilt_dir, rebuilt, SETTINGS, _quiet)
    assert first.name != second.name and first.image_id != second.image_id
    deregister_stage(target, stage, read_manifest(stage) or manifest, _quiet)
    again = register_stage(target, stage, read_manifest(stage) or manifest, SETTINGS, _quiet)
    assert again.created and again.snapshot_id != first.snapshot_id
    for directory in (stage, rebuilt_dir):
        found = read_manifest(directory)
        assert found is not None
        deregister_stage(target, directory, found, _quiet)


def test_a_name_taken_by_another_ami_is_one_line(aws: Aws, tmp_path: Path) -> None:
    """InvalidAMIName.Duplicate from an AMI that is not the stage's: a RegisterError naming the
    AMI and what to do, not a traceback."""
    stage = tmp_path / "aws-hvm"
    manifest = fake_stage(stage, key="d" * 64)
    from suitcase.aws.images import ami_name

    ec2 = aws.client("ec2")
    squatter = _register(ec2, ami_name("suitcase", manifest), _completed_snapshot(aws.target))
    wait_available(ec2, squatter, interval=0.5)
    with pytest.raises(RegisterError, match=f"already used by {squatter}.*deregister it"):
        register_stage(aws.target, stage, manifest, SETTINGS, _quiet)
    ec2.deregister_image(ImageId=squatter, DeleteAssociatedSnapshots=True)
    deregister_stage(aws.target, stage, manifest, _quiet)


def test_uefi_on_an_mbr_disk_is_refused_before_any_upload(aws: Aws, tmp_path: Path) -> None:
    """BootMode uefi needs a GPT disk with an EFI system partition (EC2 User Guide, "Boot
    modes"); Suitcase's disks are MBR: refused in one line, nothing sent."""
    stage = tmp_path / "aws-hvm"
    manifest = fake_stage(stage, key="u" * 64)
    settings = dataclasses.replace(SETTINGS, boot_mode="uefi")
    before = aws.client("ec2").describe_snapshots(OwnerIds=["self"])["Snapshots"]
    with pytest.raises(ConfigError, match="MBR"):
        register_stage(aws.target, stage, manifest, settings, _quiet)
    after = aws.client("ec2").describe_snapshots(OwnerIds=["self"])["Snapshots"]
    assert len(after) == len(before)


def test_sharing_a_snapshot_under_the_default_key_is_refused(aws: Aws, tmp_path: Path) -> None:
    """AWS will not share a snapshot encrypted with the default AWS managed key (EBS User
    Guide, "Share an Amazon EBS snapshot"): with launch accounts, no `ami_kms_key` and the
    account encrypting by default, Suitcase refuses in one line before anything is uploaded."""
    ec2 = aws.client("ec2")
    stage = tmp_path / "aws-hvm"
    manifest = fake_stage(stage, key="s" * 64)
    settings = dataclasses.replace(SETTINGS, launch_accounts=("111122223333",))
    before = ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]
    ec2.enable_ebs_encryption_by_default()
    try:
        with pytest.raises(ConfigError, match="encrypts new snapshots by default") as refused:
            register_stage(aws.target, stage, manifest, settings, _quiet)
    finally:
        ec2.disable_ebs_encryption_by_default()
    assert "\n" not in str(refused.value)
    assert ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"] == before
    # a snapshot already encrypted under the default key (an earlier run) is not shared either
    from suitcase.aws.ami import Registration, share

    encrypted = aws.client("ebs").start_snapshot(VolumeSize=1, Timeout=60, Encrypted=True)
    found = Registration("aws-hvm", aws.target.region, "ami-0", encrypted["SnapshotId"], "n", True)
    with pytest.raises(ConfigError, match="default key"):
        share(ec2, found, ("111122223333",), _quiet)
    ec2.delete_snapshot(SnapshotId=encrypted["SnapshotId"])


def test_an_aws_error_is_one_line_naming_the_call_and_what_to_do(aws: Aws) -> None:
    """Any refusal AWS sends through `aws_errors` is one line: what Suitcase was doing, where,
    the code, the API call and, where the code says it, what to do."""
    from suitcase.aws.errors import AwsError, aws_errors

    ec2 = aws.client("ec2")
    name = f"rules-one-line-{os.urandom(4).hex()}"
    first = _register(ec2, name, _completed_snapshot(aws.target))
    with pytest.raises(AwsError) as refused, aws_errors("registering aws-hvm", aws.target):
        _register(ec2, name, _completed_snapshot(aws.target))
    line = str(refused.value)
    assert "\n" not in line and line.startswith("registering aws-hvm: ")
    assert "InvalidAMIName.Duplicate to RegisterImage" in line
    assert "deregister it or change `prefix`" in line
    ec2.deregister_image(ImageId=first, DeleteAssociatedSnapshots=True)


def test_a_failed_ami_fails_the_run_and_the_rerun_replaces_it(aws: Aws, tmp_path: Path) -> None:
    """An AMI AWS could not make ends `failed` (EC2 API reference, Image State; the
    `image_available` waiter's failure state). `register` says so in one line; the rerun
    deregisters the failed AMI (it would block every rerun) and registers the stage again."""
    stage = tmp_path / "aws-hvm"
    manifest = fake_stage(stage, key="f" * 64)
    aws.twin(failing_images=1)
    with pytest.raises(RegisterError, match="is failed"):
        register_stage(aws.target, stage, manifest, SETTINGS, _quiet)
    aws.twin(failing_images=0)
    (failed,) = [
        i["ImageId"]
        for i in aws.client("ec2").describe_images(Owners=["self"])["Images"]
        if i.get("State") == "failed"
    ]
    lines: list[str] = []
    result = register_stage(aws.target, stage, manifest, SETTINGS, lines.append)
    assert result.created and result.image_id != failed
    assert any(f"AMI {failed} failed; deregistered it" in x for x in lines), lines
    states = {
        i["ImageId"]: i["State"]
        for i in aws.client("ec2").describe_images(Owners=["self"])["Images"]
    }
    assert failed not in states and states[result.image_id] == "available"
    deregister_stage(aws.target, stage, read_manifest(stage) or manifest, _quiet)
