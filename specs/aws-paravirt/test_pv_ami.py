"""The AMI itself: what EC2 launches is the disk these specs verified, as a paravirtual AMI
booted by the region's PV-GRUB.

Registers the image first where needed (the embedded endpoint by default; a real account only
with --suitcase-register, else these specs are skipped with that reason).
"""

import pytest

from suitcase.aws import tags
from suitcase.aws.ami import AmiSettings
from suitcase.aws.ebs import compare_snapshot, volume_gib
from suitcase.aws.images import pv_grub_kernel, resource_tags
from suitcase.manifest import sha256_file

pytestmark = pytest.mark.suitcase_ami

ROOT = "/dev/sda"


def test_paravirtual_attributes(suitcase_ami, suitcase_session):
    settings = AmiSettings.from_site(suitcase_session.ctx.site)
    image = suitcase_ami.description
    assert image["State"] == "available"
    assert image["Architecture"] == "x86_64"
    assert image["VirtualizationType"] == "paravirtual"
    assert image["RootDeviceType"] == "ebs"
    assert image["RootDeviceName"] == ROOT
    assert image.get("ImdsSupport") == settings.imds_support
    assert not image.get("EnaSupport")  # no PV instance type has ENA or SR-IOV
    assert not image.get("SriovNetSupport")
    assert image.get("BootMode") in (None, "legacy-bios")  # PV never boots UEFI


def test_kernel_is_the_regions_pv_grub(suitcase_ami):
    """PV-GRUB "hd0" reads /boot/grub/menu.lst from the unpartitioned disk (test_pv_grub.py)."""
    ec2 = suitcase_ami.target.client("ec2")
    kernel = suitcase_ami.description.get("KernelId")
    assert kernel and kernel.startswith("aki-")
    assert kernel == pv_grub_kernel(ec2, suitcase_ami.target.region)


def test_root_device_is_the_snapshot(suitcase_ami):
    mappings = {m["DeviceName"]: m for m in suitcase_ami.description["BlockDeviceMappings"]}
    ebs = mappings[ROOT]["Ebs"]
    assert ebs["SnapshotId"] == suitcase_ami.snapshot_id
    assert ebs["VolumeSize"] == volume_gib(suitcase_ami.disk.stat().st_size)
    assert ebs["VolumeType"] == "gp3"
    assert ebs["DeleteOnTermination"] is True


def test_tags_name_the_build(suitcase_ami, suitcase_session, suitcase_artifact):
    found = suitcase_ami.tags
    assert found[tags.BUILD_SET] == suitcase_session.build_set.id
    assert found[tags.STAGE_KEY] == suitcase_artifact.key
    assert found[tags.IMAGE_TYPE] == "aws-paravirt"
    assert resource_tags(suitcase_artifact).items() <= found.items()


def test_root_snapshot(suitcase_ami, suitcase_artifact):
    snapshot = suitcase_ami.snapshot
    assert snapshot["State"] == "completed"
    assert snapshot["VolumeSize"] == volume_gib(suitcase_ami.disk.stat().st_size)
    found = {t["Key"]: t["Value"] for t in snapshot.get("Tags", [])}
    assert found.get(tags.STAGE_KEY) == suitcase_artifact.key
    region = suitcase_ami.target.region
    assert suitcase_ami.manifest.extra["amis"][region]["image_id"] == suitcase_ami.image_id
    assert suitcase_ami.manifest.extra["amis"][region]["snapshot_id"] == suitcase_ami.snapshot_id


def test_snapshot_is_the_verified_disk(suitcase_ami, suitcase_artifact):
    """Read back block by block (ListSnapshotBlocks, GetSnapshotBlock, checksums checked)."""
    recorded = suitcase_artifact.output("raw-partition")
    assert recorded is not None and suitcase_ami.disk.name == recorded.path.split("/")[-1]
    assert sha256_file(suitcase_ami.disk) == recorded.sha256  # the disk the specs verified
    assert compare_snapshot(suitcase_ami.target, suitcase_ami.snapshot_id, suitcase_ami.disk) == []
