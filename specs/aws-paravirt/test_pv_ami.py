"""The AMI itself: what EC2 launches is the disk these specs verified, as a paravirtual AMI
booted by the region's PV-GRUB.

Registers the image first where needed (the embedded endpoint by default; a real account only
with --suitcase-register, else these specs are skipped with that reason).
"""

from pathlib import Path

import pytest
import yaml

from pytest_suitcase import amichecks

pytestmark = pytest.mark.suitcase_ami

# AWS's published PV-GRUB hd0 AKIs (source cited in the file), independent of registration's lookup
AKIS = yaml.safe_load((Path(__file__).parent / "pv_grub_akis.yaml").read_text())["x86_64"]
ROOT = "/dev/sda1"  # a paravirtual root (EC2 User Guide, "Device names on Linux instances")


def test_paravirtual_attributes(suitcase_ami, suitcase_session):
    image = suitcase_ami.description
    assert image["State"] == "available"
    assert image["Architecture"] == "x86_64"
    assert image["VirtualizationType"] == "paravirtual"
    assert image["RootDeviceType"] == "ebs"
    assert image["RootDeviceName"] == ROOT
    imds = amichecks.site_setting(suitcase_session, "ami_imds_support")
    assert image.get("ImdsSupport") == (imds or None)  # the site file's, read on its own
    assert not image.get("EnaSupport")  # no PV instance type has ENA or SR-IOV
    assert not image.get("SriovNetSupport")
    assert image.get("BootMode") in (None, "legacy-bios")  # PV never boots UEFI


def test_kernel_is_the_regions_pv_grub(suitcase_ami):
    """PV-GRUB "hd0" reads /boot/grub/menu.lst from the unpartitioned disk (test_pv_grub.py):
    the KernelId is the region's AKI in AWS's published table, not registration's own lookup."""
    region = suitcase_ami.target.region
    kernel = suitcase_ami.description.get("KernelId")
    assert region in AKIS, f"{region} has no PV-GRUB AKI in AWS's table (pv_grub_akis.yaml)"
    assert kernel == AKIS[region], f"KernelId {kernel}, AWS's PV-GRUB hd0 AKI is {AKIS[region]}"


def test_root_device_is_the_snapshot(suitcase_ami):
    amichecks.root_device_is_the_snapshot(suitcase_ami, ROOT)


def test_tags_name_the_build(suitcase_ami, suitcase_session, suitcase_artifact):
    amichecks.tags_name_the_build(suitcase_ami, suitcase_session, suitcase_artifact, "aws-paravirt")


def test_root_snapshot(suitcase_ami, suitcase_artifact):
    amichecks.root_snapshot(suitcase_ami, suitcase_artifact)


def test_snapshot_is_the_verified_disk(suitcase_ami, suitcase_artifact):
    """Read back block by block (ListSnapshotBlocks, GetSnapshotBlock, checksums checked)."""
    amichecks.snapshot_is_the_verified_disk(suitcase_ami, suitcase_artifact, "raw-partition")
