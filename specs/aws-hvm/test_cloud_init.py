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
