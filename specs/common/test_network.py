"""Network naming: every platform sees eth0, whatever the NIC model."""

import re

import pytest

from pytest_suitcase import facts


def test_classic_interface_names_on_kernel_line(host, suitcase_image):
    """net.ifnames=0 keeps eth0 across virtio, Xen and ENA; configs name eth0."""
    config = "/boot/grub/grub.conf" if suitcase_image == "aws-paravirt" else None
    lines = facts.kernel_lines(host, config)
    assert lines and all("net.ifnames=0" in line for line in lines)


@pytest.mark.suitcase_booted
def test_eth0_is_up_with_an_address(host):
    """A derived image that boots without network is unreachable on its platform: eth0's link
    is UP (administratively, and operstate up: carrier) and it has an IPv4 address."""
    eth0 = host.interface("eth0")
    assert eth0.exists, "no eth0"
    link = host.run("ip -o link show dev eth0")
    assert link.rc == 0, f"ip link show eth0 failed: {link.stderr.strip()}"
    flags = re.search(r"<([^>]*)>", link.stdout)
    assert flags and "UP" in flags.group(1).split(","), f"eth0 is not up: {link.stdout.strip()}"
    state = facts.read_required(host, "/sys/class/net/eth0/operstate").strip()
    assert state == "up", f"eth0's operstate is {state}"
    assert any("." in address for address in eth0.addresses), "eth0 has no IPv4 address"
