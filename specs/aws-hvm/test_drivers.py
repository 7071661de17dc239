"""Drivers for every HVM instance family: Xen (xen-blkfront) and Nitro (nvme, ena)."""

from pytest_suitcase import facts


def test_nitro_drivers_in_initramfs(image):
    """Nitro instances expose EBS as NVMe and the NIC as ENA; missing either, no boot or no network."""
    modules = facts.initramfs_modules(image)
    assert modules
    for found in modules.values():
        assert {"nvme", "ena", "xen_blkfront"} <= found


def test_sriov_drivers_shipped(image):
    """Enhanced networking (SR-IOV): ena, and ixgbevf for older families, for the kernel the image
    boots (another kernel's modules are no help), a .ko in its tree or built in. The original
    never ran this spec because of its file name; the plugin's collection check now makes that
    impossible."""
    versions = facts.boot_kernel_versions(image)
    missing = [
        f"{module} ({version})"
        for version in versions
        for module in ("ena", "ixgbevf")
        if not facts.kernel_module_present(image, version, module)
    ]
    assert missing == [], f"SR-IOV drivers missing for the booted kernel: {missing}"
