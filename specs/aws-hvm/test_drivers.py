"""Drivers for every HVM instance family: Xen (xen-blkfront) and Nitro (nvme, ena)."""

from pytest_suitcase import facts


def test_nitro_drivers_in_initramfs(image):
    """Nitro instances expose EBS as NVMe and the NIC as ENA; missing either, no boot or no network."""
    modules = facts.initramfs_modules(image)
    assert modules
    for found in modules.values():
        assert {"nvme", "ena", "xen_blkfront"} <= found


def test_sriov_drivers_shipped(image):
    """Enhanced networking (SR-IOV): ena, and ixgbevf for older families. The original never ran
    this spec because of its file name; the plugin's collection check now makes that impossible."""
    for module in ("ena", "ixgbevf"):
        found = image.run(f"find /lib/modules -name '{module}.ko*' | head -1").stdout.strip()
        assert found, module
