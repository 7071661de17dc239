"""The AMI itself: what EC2 launches is the disk these specs verified, described as an HVM AMI.

Registers the image first where needed (the embedded endpoint by default; a real account only
with --suitcase-register, else these specs are skipped with that reason).
"""

import pytest

from pytest_suitcase import amichecks

pytestmark = pytest.mark.suitcase_ami

ROOT = "/dev/xvda"


def test_hvm_attributes(suitcase_ami, suitcase_session):
    """BootMode, ImdsSupport and EnaSupport as the site file asks, read apart from
    registration's settings."""
    image = suitcase_ami.description
    assert image["State"] == "available"
    assert image["Architecture"] == "x86_64"
    assert image["VirtualizationType"] == "hvm"
    assert image["RootDeviceType"] == "ebs"
    assert image["RootDeviceName"] == ROOT
    # every current instance type needs ENA; a site that registers Xen-only AMIs (an OS whose
    # kernel lacks the driver) sets none
    xen_only = amichecks.site_setting(suitcase_session, "ami_xen_only").lower() == "true"
    assert image.get("EnaSupport") is (None if xen_only else True)
    assert image.get("SriovNetSupport") == "simple"
    assert image.get("BootMode") == amichecks.site_setting(suitcase_session, "ami_boot_mode")
    imds = amichecks.site_setting(suitcase_session, "ami_imds_support")
    assert image.get("ImdsSupport") == (imds or None)
    assert not image.get("KernelId")  # HVM boots its own GRUB


def test_root_device_is_the_snapshot(suitcase_ami):
    amichecks.root_device_is_the_snapshot(suitcase_ami, ROOT)


def test_tags_name_the_build(suitcase_ami, suitcase_session, suitcase_artifact):
    amichecks.tags_name_the_build(suitcase_ami, suitcase_session, suitcase_artifact, "aws-hvm")


def test_root_snapshot(suitcase_ami, suitcase_artifact):
    amichecks.root_snapshot(suitcase_ami, suitcase_artifact)


def test_snapshot_is_the_verified_disk(suitcase_ami, suitcase_artifact):
    """Read back block by block (ListSnapshotBlocks, GetSnapshotBlock, checksums checked)."""
    amichecks.snapshot_is_the_verified_disk(suitcase_ami, suitcase_artifact, "raw")
