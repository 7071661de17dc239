"""cloud-init really configures the instance at boot (the same NoCloud path EC2's datasource uses)."""

import pytest


@pytest.mark.suitcase_booted
def test_cloud_init_finished_without_errors(host):
    """We logged in with a key cloud-init installed; it must also report a clean finish."""
    result = host.run("cloud-init status --wait")
    assert "status: done" in result.stdout


@pytest.mark.suitcase_booted
def test_host_keys_generated_at_first_boot(host):
    """Shipped without host keys, the instance makes its own."""
    assert host.run("ls /etc/ssh/ssh_host_*_key").rc == 0


@pytest.mark.suitcase_booted
def test_first_boot_does_not_restart_sshd(host):
    """A restart while cloud-init runs resets whoever is logging in at that moment."""
    if not host.exists("journalctl"):
        pytest.skip("no systemd journal to read")
    log = host.check_output("journalctl -b --no-pager -o cat -u ssh.service -u sshd.service")
    starts = [line for line in log.splitlines() if "Server listening on 0.0.0.0" in line]
    assert len(starts) == 1, log
