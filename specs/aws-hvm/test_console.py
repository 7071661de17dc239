"""HVM boot: serial console on the kernel line, for EC2's console output and serial console."""

import pytest

from pytest_suitcase import facts


def test_serial_console_on_kernel_line(host):
    """Without console=ttyS0 `aws ec2 get-console-output` shows nothing when boot fails."""
    lines = facts.kernel_lines(host)
    assert lines and all("console=ttyS0,115200n8" in line for line in lines)


@pytest.mark.suitcase_booted
def test_booted_kernel_uses_the_serial_console(host):
    """The boot loader really passed the line on (checked on the running kernel)."""
    assert "console=ttyS0" in host.file("/proc/cmdline").content_string
