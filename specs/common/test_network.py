"""Network naming: every platform sees eth0, whatever the NIC model."""

import pytest

from pytest_suitcase import facts


def test_classic_interface_names_on_kernel_line(host, suitcase_image):
    """net.ifnames=0 keeps eth0 across virtio, Xen and ENA; configs name eth0."""
    config = "/boot/grub/grub.conf" if suitcase_image == "aws-paravirt" else None
    lines = facts.kernel_lines(host, config)
    assert lines and all("net.ifnames=0" in line for line in lines)


@pytest.mark.suitcase_booted
def test_eth0_is_up_with_an_address(host):
    """A derived image that boots without network is unreachable on its platform."""
    eth0 = host.interface("eth0")
    assert eth0.exists
    assert any("." in address for address in eth0.addresses)
