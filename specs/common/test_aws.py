"""What both AWS images need (the original's shared aws specs)."""

import pytest

from pytest_suitcase import facts

pytestmark = pytest.mark.suitcase_images("aws-hvm", "aws-paravirt")

CLOUD_INIT_UNITS = ("cloud-init-local", "cloud-init", "cloud-config", "cloud-final")


def test_xen_blkfront_in_initramfs(image):
    """Without xen-blkfront in the initramfs a Xen instance cannot find its root disk."""
    modules = facts.initramfs_modules(image)
    assert modules and all("xen_blkfront" in found for found in modules.values())


def test_cloud_init_enabled(image):
    """cloud-init installs the instance's SSH key; disabled, nobody can log in."""
    assert not facts.exists(image, "/etc/cloud/cloud-init.disabled")
    for unit in CLOUD_INIT_UNITS:
        assert image.service(unit).is_enabled, unit


def test_no_vagrant_user(image):
    """The vagrant user and its public insecure key must never reach a cloud image."""
    assert "vagrant" not in [row[0] for row in facts.passwd(image)]


def test_root_authorized_keys_only_a_newline(image):
    """cloud-init fills keys in at boot; anything baked in is a back door."""
    assert facts.authorized_keys(image, "/root") in (None, "", "\n")


def test_datasources_are_the_platform_s_only(image):
    """A datasource that reads attached media (NoCloud's cidata volume, ConfigDrive, ...) lets
    whoever attaches a volume to the instance configure it at the next boot: a new instance-id,
    their user-data run and their keys installed as root. Only Ec2 (and None) may be listed,
    explicitly: cloud-init's built-in list includes NoCloud."""
    datasources = facts.cloud_datasources(image)
    assert datasources is not None, "no datasource_list: cloud-init's built-in one has NoCloud"
    others = [d for d in datasources if d not in ("Ec2", "None")]
    assert others == [], f"datasource_list is {datasources}: {others} beside Ec2"


def test_ec2_datasource_listed(image):
    """Without Ec2 in cloud-init's datasource list an instance never gets its key pair."""
    datasources = facts.cloud_datasources(image)
    # None: no file sets the list, and cloud-init's built-in list includes Ec2
    assert datasources is None or "Ec2" in datasources, f"datasource_list is {datasources}"
