"""The AMI specs and `suitcase_ami` / `suitcase_disk` through pytester, against the fixed moto
server over HTTP: registered once, skipped in an account without --suitcase-register, failing on
an AMI whose snapshot or attributes are not the verified disk's, and --suitcase-source=ami.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from suitcase.aws import ebs
from suitcase.aws.clients import AwsTarget
from suitcase.cli import cli
from suitcase.config import PROJECT_ROOT
from suitcase.manifest import Manifest, describe_output, read_manifest, write_manifest
from tests.endpoint_support import REGION, Launched, launch
from tests.s3_support import point_at
from tests.test_plugin import ARGS, _specs
from tests.test_s3 import held, s3

pytest_plugins = ["pytester"]
SET = "Fake-12-x86_64-20260101000000"
BUCKET = "suitcase-ami-fixture"
#: where the fake disk gets data: two blocks, the second far from the first
DATA = ((0, b"suitcase-master-boot-sector" * 100), (37 * ebs.BLOCK_SIZE + 4096, b"\x5a" * 9000))


@pytest.fixture
def account(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Launched]:
    """The fixed moto server as a configured account (AWS_ENDPOINT_URL): kind 'account'."""
    with launch("fixes", tmp_path / "moto") as server:
        point_at(monkeypatch, server, BUCKET, tmp_path)
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        s3(server).create_bucket(Bucket=BUCKET)
        yield server


def _built(pytester: pytest.Pytester) -> Path:
    """Build the fake aws-hvm stage, then give its disk data (the manifest follows it)."""
    _specs(pytester)
    shutil.copy(
        PROJECT_ROOT / "specs" / "aws-hvm" / "test_hvm_ami.py", pytester.path / "specs" / "aws-hvm"
    )
    pytester.runpytest_subprocess("specs", "--image=aws-hvm", "-k", "built", *ARGS).assert_outcomes(
        passed=1
    )
    stage = pytester.path / "images" / "aws-hvm" / SET
    manifest = read_manifest(stage)
    assert manifest is not None
    raw = manifest.output("raw")
    assert raw is not None
    disk = stage / raw.path
    with disk.open("r+b") as handle:
        for offset, data in DATA:
            handle.seek(offset)
            handle.write(data)
    outputs = [
        describe_output(stage, disk, "raw") if o.kind == "raw" else o for o in manifest.outputs
    ]
    write_manifest(stage, Manifest(**{**manifest.__dict__, "outputs": outputs}))
    return disk


def _target(url: str) -> AwsTarget:
    return AwsTarget(kind="account", region=REGION, endpoint_url=url)


def _swap_ami(url: str, disk: Path, corrupt_block: bool, drop_ena: bool) -> str:
    """Replace the registered AMI by one with the same tags whose snapshot holds `disk` with one
    byte changed in a data block, and/or without EnaSupport: what the specs must catch."""
    target = _target(url)
    ec2 = target.client("ec2")
    (old,) = ec2.describe_images(Owners=["self"])["Images"]
    copy = disk.with_name("corrupted.raw")
    shutil.copyfile(disk, copy)
    if corrupt_block:
        with copy.open("r+b") as handle:
            handle.seek(DATA[1][0] + 10)
            handle.write(b"\x00")
    tags = {t["Key"]: t["Value"] for t in old["Tags"]}
    upload = ebs.write_snapshot(
        target,
        copy,
        token="swap-" + old["ImageId"],
        tags=tags,
        description="swapped",
        workers=2,
        wait_interval=0.05,
    )
    copy.unlink()
    ec2.deregister_image(ImageId=old["ImageId"])
    mapping = old["BlockDeviceMappings"][0]
    args: dict[str, Any] = {
        "Name": old["Name"] + "-swapped",
        "Architecture": old["Architecture"],
        "VirtualizationType": old["VirtualizationType"],
        "RootDeviceName": old["RootDeviceName"],
        "BlockDeviceMappings": [
            {
                "DeviceName": mapping["DeviceName"],
                "Ebs": {**mapping["Ebs"], "SnapshotId": upload.snapshot_id},
            }
        ],
        "SriovNetSupport": old["SriovNetSupport"],
        "BootMode": old["BootMode"],
        "ImdsSupport": old["ImdsSupport"],
        "TagSpecifications": [{"ResourceType": "image", "Tags": old["Tags"]}],
    }
    if not drop_ena:
        args["EnaSupport"] = True
    image_id: str = ec2.register_image(**args)["ImageId"]
    return image_id


def _readback(pytester: pytest.Pytester) -> pytest.RunResult:
    """The aws-hvm readback spec, verifying the registered AMI's snapshot read back."""
    return pytester.runpytest_subprocess(
        "specs",
        "--image=aws-hvm",
        "--suitcase-register",
        "--suitcase-source=ami",
        "-k",
        "readback",
        *ARGS,
    )


def test_ami_specs_register_once_and_fail_on_another_disk(
    account: Launched,  # first: the server runs the project's own data, not the fake home's
    pytester: pytest.Pytester,
    fake_home: Path,
) -> None:
    disk = _built(pytester)
    # a configured account: no AMI is registered unless asked for
    skipped = pytester.runpytest_subprocess("specs", "--image=aws-hvm", "-rs", *ARGS)
    skipped.assert_outcomes(passed=1, skipped=5)
    skipped.stdout.fnmatch_lines(
        ["*registers an AMI in the configured AWS account*--suitcase-register*"]
    )
    ec2 = _target(account.url).client("ec2")
    assert ec2.describe_images(Owners=["self"])["Images"] == []
    assert held(account, BUCKET) == {}  # nothing uploaded to that account either

    passed = pytester.runpytest_subprocess(
        "specs", "--image=aws-hvm", "--suitcase-register", "-n", "2", *ARGS
    )
    passed.assert_outcomes(passed=6)
    (image,) = ec2.describe_images(Owners=["self"])["Images"]
    again = pytester.runpytest_subprocess("specs", "--image=aws-hvm", "--suitcase-register", *ARGS)
    again.assert_outcomes(passed=6)
    assert [i["ImageId"] for i in ec2.describe_images(Owners=["self"])["Images"]] == [
        image["ImageId"]
    ]

    # the AMI's snapshot read back is the disk the specs see with --suitcase-source=ami
    (pytester.path / "specs" / "aws-hvm" / "test_readback.py").write_text(
        "def test_readback(suitcase_disk, suitcase_ami):\n"
        "    assert suitcase_disk.parent.name == '.ami-readback'\n"
        "    assert suitcase_disk != suitcase_ami.disk\n"
        f"    data = {DATA!r}\n"
        "    with suitcase_disk.open('rb') as handle:\n"
        "        for offset, expected in data:\n"
        "            handle.seek(offset)\n"
        "            assert handle.read(len(expected)) == expected\n"
        "    assert suitcase_disk.stat().st_size >= suitcase_ami.disk.stat().st_size\n"
    )
    readback = _readback(pytester)
    readback.assert_outcomes(passed=1)
    assert not (disk.parent / ".ami-readback").exists()
    record = read_manifest(disk.parent)
    assert record is not None and record.extra["verification_ami"]["source"] == "ami"

    # an AMI with the same stage key whose snapshot is another disk, and no ENA: both caught
    swapped = _swap_ami(account.url, disk, corrupt_block=True, drop_ena=True)
    recorded = read_manifest(disk.parent)
    assert recorded is not None
    mine = recorded.extra["amis"][REGION]["image_id"]
    # the AMI register recorded is gone and a stranger carries the stage's tags: not verified
    stranger = pytester.runpytest_subprocess(
        "specs", "--image=aws-hvm", "--suitcase-register", "-k", "not readback", *ARGS
    )
    stranger.assert_outcomes(passed=1, errors=5)
    stranger.stdout.fnmatch_lines([f"*register recorded {mine}*now answers {swapped}*"])
    # had register itself recorded that AMI (so the fixture takes it), the specs catch it
    recorded.extra["amis"][REGION] = {
        **recorded.extra["amis"][REGION],
        "image_id": swapped,
        "snapshot_id": ec2.describe_images(ImageIds=[swapped])["Images"][0]["BlockDeviceMappings"][
            0
        ]["Ebs"]["SnapshotId"],
    }
    write_manifest(disk.parent, recorded)
    failed = pytester.runpytest_subprocess(
        "specs", "--image=aws-hvm", "--suitcase-register", "-k", "not readback", *ARGS
    )
    failed.assert_outcomes(passed=4, failed=2)
    out = failed.stdout.str()
    assert "test_snapshot_is_the_verified_disk" in out and "block 37 differs" in out
    assert "test_hvm_attributes" in out and "EnaSupport" in out
    assert [i["ImageId"] for i in ec2.describe_images(Owners=["self"])["Images"]] == [swapped]
    # read back from that AMI, no spec ever sees its disk: the fixture compares it first
    refused = _readback(pytester)
    refused.assert_outcomes(errors=1)
    refused.stdout.fnmatch_lines([f"*{swapped}'s snapshot snap-* is not the verified disk*"])
    assert not (disk.parent / ".ami-readback").exists()


def test_source_ami_is_only_for_amis(
    pytester: pytest.Pytester,
    fake_home: Path,
) -> None:
    _specs(pytester)
    result = pytester.runpytest("specs", "--image=vagrant", "--suitcase-source=ami", *ARGS)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--from ami verifies an AMI: vagrant is not one*"])


def test_verify_from_ami_refuses_other_image_types(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fake_home: Path,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "site.yaml").write_text("mirrors: {debian: 'http://mirror.invalid/debian'}\n")
    result = CliRunner().invoke(
        cli,
        ["verify", "vagrant", "--os", "Fake-12-x86_64", "--from", "ami"],
        catch_exceptions=False,
    )
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "suitcase: error: --from ami verifies an AMI: vagrant is not one (only aws-hvm and "
        "aws-paravirt)"
    ]
    assert not (tmp_path / "images").exists()
    assert sorted(os.listdir(tmp_path)) == ["fakehome", "site.yaml"]  # nothing written
