"""The root filesystem and boot loader every image shares with its master."""

import pytest

from pytest_suitcase import facts


def test_root_filesystem_type(host, suitcase_session):
    """Wrong root filesystem means the installer or bootstrap ignored the OS template: the type
    of the file system that really is root (its superblock offline, the mount table booted), and
    fstab agreeing with it."""
    expected = suitcase_session.os.data["root_fs"]
    real = facts.root_filesystem_type(host)
    assert real == expected, f"the root file system is {real}, the OS template says {expected}"
    claimed = facts.fstab_root_type(host)
    assert claimed == real, f"fstab mounts / as {claimed}, the file system is {real}"


def test_fstab_does_not_name_a_device_node(host):
    """Disks are vda here, xvda on Xen and nvme0n1 on Nitro: only labels and UUIDs survive that."""
    entry = facts.fstab_entry(host, "/")
    assert entry is not None and entry[0].startswith(("LABEL=", "UUID="))


@pytest.mark.suitcase_family("el6", "el7")
def test_elevator_noop_on_el6_and_el7(host):
    """Virtual disks are scheduled by the hypervisor; the guest should not reorder I/O."""
    assert all("elevator=noop" in line for line in facts.kernel_lines(host))


@pytest.mark.suitcase_family("el6")
def test_printk_time_on_el6(host):
    """Timestamps in the kernel log make boot problems on EL6 diagnosable."""
    assert all("printk.time=1" in line for line in facts.kernel_lines(host))
