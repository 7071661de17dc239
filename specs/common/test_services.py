"""Services the original suite required in every image."""

import pytest


@pytest.mark.suitcase_family("el")
def test_nscd_enabled(host):
    """nscd caches LDAP/NSS lookups; without it logins stall when the directory is slow."""
    assert host.service("nscd").is_enabled


@pytest.mark.suitcase_family("debian")
def test_nscd_installed_and_enabled(host):
    """nscd caches NSS lookups, as on the EL images."""
    assert host.package("nscd").is_installed
    assert host.service("nscd").is_enabled


@pytest.mark.suitcase_needs("cloud-init")
def test_cloud_init_installed(host):
    """Installed in the master for every image; enabled only where the platform wants it."""
    assert host.package("cloud-init").is_installed
