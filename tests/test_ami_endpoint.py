"""suitcase.aws.moto_fixes: each fixed behaviour of the embedded endpoint, with the AWS rule it
follows, checked over HTTP against `python -m suitcase.aws.moto_fixes`."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from suitcase.aws import moto_fixes
from suitcase.aws.ebs import BLOCK_SIZE, ebs_client, snapshot_blocks
from tests import aws_endpoint
from tests.aws_endpoint import target_for
from tests.endpoint_support import REGION, Launched, launch

endpoint = aws_endpoint.endpoint  # fixtures: the fixed moto server, reset per test
aws_env = aws_endpoint.aws_env


def _snapshot(url: str, blocks: dict[int, bytes], token: str = "t1", region: str = REGION) -> str:
    ebs = ebs_client(target_for(url, region))
    snapshot_id: str = ebs.start_snapshot(VolumeSize=1, ClientToken=token, Timeout=60)["SnapshotId"]
    for index, data in blocks.items():
        ebs.put_snapshot_block(
            SnapshotId=snapshot_id,
            BlockIndex=index,
            BlockData=data,
            DataLength=BLOCK_SIZE,
            Checksum=base64.b64encode(hashlib.sha256(data).digest()).decode(),
            ChecksumAlgorithm="SHA256",
        )
    ebs.complete_snapshot(SnapshotId=snapshot_id, ChangedBlocksCount=len(blocks))
    return snapshot_id


def _register(ec2: Any, snapshot_id: str) -> str:
    image_id: str = ec2.register_image(
        Name="fixture-image",
        Architecture="x86_64",
        VirtualizationType="hvm",
        RootDeviceName="/dev/xvda",
        BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": snapshot_id}}],
    )["ImageId"]
    return image_id


def test_ebs_block_size_is_524288(aws_env: Launched) -> None:
    """AWS: "The size of the blocks in the snapshot, in bytes" is 524288 (EBS API reference,
    StartSnapshot / ListSnapshotBlocks BlockSize)."""
    ebs = ebs_client(target_for(aws_env.url))
    assert ebs.start_snapshot(VolumeSize=1, Timeout=60)["BlockSize"] == 524288
    snapshot_id = _snapshot(aws_env.url, {0: os.urandom(BLOCK_SIZE)})
    assert ebs.list_snapshot_blocks(SnapshotId=snapshot_id)["BlockSize"] == 524288


def test_start_snapshot_client_token_is_idempotent(aws_env: Launched) -> None:
    """AWS: a retried StartSnapshot with the same ClientToken returns the original result
    (EBS API reference, StartSnapshot ClientToken)."""
    ebs = ebs_client(target_for(aws_env.url))
    first = ebs.start_snapshot(VolumeSize=1, ClientToken="same", Timeout=60)["SnapshotId"]
    again = ebs.start_snapshot(VolumeSize=1, ClientToken="same", Timeout=60)["SnapshotId"]
    other = ebs.start_snapshot(VolumeSize=1, ClientToken="other", Timeout=60)["SnapshotId"]
    assert first == again != other


def test_snapshot_is_pending_until_completed(aws_env: Launched) -> None:
    """AWS: a snapshot started with the EBS direct APIs stays `pending` until CompleteSnapshot
    (EBS User Guide, "Use the EBS direct APIs": write a snapshot)."""
    target = target_for(aws_env.url)
    ebs, ec2 = ebs_client(target), target.client("ec2")
    snapshot_id = ebs.start_snapshot(VolumeSize=1, Timeout=60)["SnapshotId"]
    state = ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]["State"]
    assert state == "pending"
    ebs.complete_snapshot(SnapshotId=snapshot_id, ChangedBlocksCount=0)
    state = ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]["State"]
    assert state == "completed"


def test_list_snapshot_blocks_is_sorted_and_paged(aws_env: Launched) -> None:
    """AWS: ListSnapshotBlocks returns blocks in index order, MaxResults per page with a
    NextToken (EBS API reference, ListSnapshotBlocks)."""
    indices = [3 * i for i in range(101)]  # MaxResults is at least 100: two pages
    random.Random(1).shuffle(indices)
    snapshot_id = _snapshot(aws_env.url, dict.fromkeys(indices, bytes(BLOCK_SIZE)))
    ebs = ebs_client(target_for(aws_env.url))
    seen: list[int] = []
    args: dict[str, Any] = {"SnapshotId": snapshot_id, "MaxResults": 100}
    pages = 0
    while True:
        page = ebs.list_snapshot_blocks(**args)
        pages += 1
        seen += [b["BlockIndex"] for b in page["Blocks"]]
        if not page.get("NextToken"):
            break
        args["NextToken"] = page["NextToken"]
    assert seen == sorted(indices) and pages == 2
    listed, volume = snapshot_blocks(ebs, snapshot_id, page_size=100)  # Suitcase's own paging
    assert [index for index, _ in listed] == sorted(indices) and volume == 1


def test_register_image_keeps_what_aws_keeps_on_the_given_snapshot(aws_env: Launched) -> None:
    """AWS: RegisterImage records the architecture, virtualization type, root device, block
    device mappings (the snapshot given, no other), ENA, SR-IOV, boot mode, IMDS support,
    kernel and tags it is sent (EC2 API reference, RegisterImage)."""
    snapshot_id = _snapshot(aws_env.url, {0: os.urandom(BLOCK_SIZE)})
    ec2 = target_for(aws_env.url).client("ec2")
    image_id = ec2.register_image(
        Name="fixture-image",
        Architecture="x86_64",
        VirtualizationType="paravirtual",
        RootDeviceName="/dev/sda",
        KernelId="aki-919dcaf8",
        BlockDeviceMappings=[
            {
                "DeviceName": "/dev/sda",
                "Ebs": {"SnapshotId": snapshot_id, "VolumeSize": 3, "VolumeType": "gp3"},
            }
        ],
        EnaSupport=False,
        SriovNetSupport="simple",
        BootMode="legacy-bios",
        ImdsSupport="v2.0",
        TagSpecifications=[{"ResourceType": "image", "Tags": [{"Key": "k", "Value": "v"}]}],
    )["ImageId"]
    (image,) = ec2.describe_images(ImageIds=[image_id])["Images"]
    assert image["Architecture"] == "x86_64"
    assert image["VirtualizationType"] == "paravirtual"
    assert image["RootDeviceName"] == "/dev/sda" and image["RootDeviceType"] == "ebs"
    assert image["KernelId"] == "aki-919dcaf8"
    assert image["BlockDeviceMappings"] == [
        {
            "DeviceName": "/dev/sda",
            "Ebs": {"SnapshotId": snapshot_id, "VolumeSize": 3, "VolumeType": "gp3"},
        }
    ]
    assert image["EnaSupport"] is False and image["SriovNetSupport"] == "simple"
    assert image["BootMode"] == "legacy-bios" and image["ImdsSupport"] == "v2.0"
    assert image["Tags"] == [{"Key": "k", "Value": "v"}]
    snapshots = ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]
    assert [s["SnapshotId"] for s in snapshots] == [snapshot_id]  # no snapshot of its own


def test_register_image_refuses_an_unknown_snapshot(aws_env: Launched) -> None:
    """AWS: RegisterImage with a snapshot that does not exist fails
    (InvalidSnapshot.NotFound, EC2 API error codes)."""
    ec2 = target_for(aws_env.url).client("ec2")
    with pytest.raises(ec2.exceptions.ClientError, match=r"InvalidSnapshot\.NotFound"):
        _register(ec2, "snap-0123456789abcdef0")


def test_a_snapshot_in_use_by_an_ami_cannot_be_deleted(aws_env: Launched) -> None:
    """AWS: "You cannot delete a snapshot of the root device of an EBS volume used by a
    registered AMI. You must first deregister the AMI" (EC2 API reference, DeleteSnapshot)."""
    snapshot_id = _snapshot(aws_env.url, {0: os.urandom(BLOCK_SIZE)})
    ec2 = target_for(aws_env.url).client("ec2")
    image_id = _register(ec2, snapshot_id)
    with pytest.raises(ec2.exceptions.ClientError, match=r"InvalidSnapshot\.InUse"):
        ec2.delete_snapshot(SnapshotId=snapshot_id)
    ec2.deregister_image(ImageId=image_id)
    ec2.delete_snapshot(SnapshotId=snapshot_id)
    assert ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"] == []


@pytest.mark.parametrize("region", ["us-east-1", "us-west-2", "eu-north-1"])
def test_pv_grub_kernels_exist_where_aws_publishes_them(aws_env: Launched, region: str) -> None:
    """AWS publishes PV-GRUB AKIs, owned by amazon, named pv-grub-hd0_1.05-x86_64.gz, in the
    regions of its table (EC2 User Guide, "User provided kernels"); newer regions have none."""
    aws = Path(sys.executable).with_name("aws")
    argv = [str(aws), "--endpoint-url", aws_env.url, "--region", region, "--output", "json"]
    argv += ["ec2", "describe-images", "--owners", "amazon"]
    argv += ["--filters", "Name=name,Values=pv-grub-hd0*", "Name=architecture,Values=x86_64"]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    images = json.loads(out)["Images"]
    expected = moto_fixes.pv_grub_table().get(region)
    assert [i["ImageId"] for i in images] == ([expected] if expected else [])
    for image in images:
        assert image["ImageType"] == "kernel" and image["ImageOwnerAlias"] == "amazon"
        assert image["Name"] == "pv-grub-hd0_1.05-x86_64.gz"


def test_apply_is_idempotent() -> None:
    from moto.ec2.responses.amis import AmisResponse

    moto_fixes.apply()
    patched = AmisResponse.register_image
    moto_fixes.apply()
    assert AmisResponse.register_image is patched
    assert patched.__module__ == "suitcase.aws.twin"  # the strict rules wrap moto_fixes' ones


def test_plain_moto_differs_so_these_tests_can_fail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same calls against moto without the fixes show each gap the fixes close."""
    with launch("stock", tmp_path / "stock") as server:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        url = server.url
        ebs = ebs_client(target_for(url))
        assert ebs.start_snapshot(VolumeSize=1, Timeout=60)["BlockSize"] == 512
        snapshot_id = _snapshot(url, {0: os.urandom(BLOCK_SIZE)})
        ec2 = target_for(url).client("ec2")
        (image,) = ec2.describe_images(ImageIds=[_register(ec2, snapshot_id)])["Images"]
        assert "Architecture" not in image
        assert image["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"] != snapshot_id
        ec2.delete_snapshot(SnapshotId=snapshot_id)  # in use, yet deleted
