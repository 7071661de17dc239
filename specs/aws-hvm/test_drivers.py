"""Drivers for every HVM instance family: Xen (xen-blkfront) and Nitro (nvme, ena).

ENA is in the kernel from Debian 9 and RHEL 7.4 on: where the OS template's capability table
says the kernel lacks it (and the site registers Xen-only AMIs), the ENA specs are skipped,
planned, with that reason.
"""

import pytest

from pytest_suitcase import facts


def test_nitro_drivers_in_initramfs(image):
    """Nitro instances expose EBS as NVMe; Xen ones as xen-blkfront: missing either, no boot."""
    modules = facts.initramfs_modules(image)
    assert modules
    for found in modules.values():
        assert {"nvme", "xen_blkfront"} <= found


@pytest.mark.suitcase_needs("ena")
def test_ena_in_initramfs(image):
    """Nitro instances' NIC is ENA: without it in the initramfs, no network at first boot."""
    modules = facts.initramfs_modules(image)
    assert modules
    missing = [name for name, found in modules.items() if "ena" not in found]
    assert missing == [], f"initramfs without ena: {missing}"


def test_sriov_drivers_shipped(image):
    """Enhanced networking (SR-IOV) of older families: ixgbevf, for the kernel the image boots
    (another kernel's modules are no help), a .ko in its tree or built in. The original never ran
    this spec because of its file name; the plugin's collection check now makes that
    impossible."""
    versions = facts.boot_kernel_versions(image)
    missing = [
        f"ixgbevf ({version})"
        for version in versions
        if not facts.kernel_module_present(image, version, "ixgbevf")
    ]
    assert missing == [], f"SR-IOV drivers missing for the booted kernel: {missing}"


@pytest.mark.suitcase_needs("ena")
def test_ena_driver_shipped(image):
    """ENA, for the kernel the image boots, a .ko in its tree or built in."""
    versions = facts.boot_kernel_versions(image)
    missing = [v for v in versions if not facts.kernel_module_present(image, v, "ena")]
    assert missing == [], f"the ena driver is missing for the booted kernel: {missing}"
