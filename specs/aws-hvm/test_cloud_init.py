"""cloud-init really configures the instance at boot (the same NoCloud path EC2's datasource uses)."""

import json

import pytest

from pytest_suitcase import facts


@pytest.mark.suitcase_booted
def test_cloud_init_finished_without_errors(host, suitcase_session):
    """We logged in with a key cloud-init installed; it must also report a clean finish.

    "status: done" can follow recoverable errors: the per-stage errors in status.json and the
    errors of result.json must be empty as well. A cloud-init older than 17.2 (the OS
    template's capabilities) has no `status` verb: its final stage's boot-finished is the
    evidence, and its reports live in /var/lib/cloud/data."""
    modern, reports = facts.cloud_init_reporting(suitcase_session.os.spec.capabilities)
    if modern:
        result = host.run("cloud-init status --wait")
        assert result.rc == 0 and "status: done" in result.stdout, result.stdout + result.stderr
    else:
        assert facts.exists(host, "/var/lib/cloud/instance/boot-finished"), "no boot-finished"
    outcome = json.loads(facts.read_required(host, f"{reports}/result.json"))
    assert outcome["v1"]["errors"] == [], outcome["v1"]["errors"]
    status = json.loads(facts.read_required(host, f"{reports}/status.json"))["v1"]
    stages = [s for s in ("init-local", "init", "modules-config", "modules-final") if s in status]
    assert "modules-final" in stages, f"cloud-init stages that ran: {stages}"
    for stage in stages:
        state = status[stage] or {}
        assert state.get("errors", []) == [], f"{stage}: {state.get('errors')}"
        assert not state.get("recoverable_errors"), f"{stage}: {state.get('recoverable_errors')}"


@pytest.mark.suitcase_booted
def test_host_keys_generated_at_first_boot(host):
    """Shipped without host keys, the instance makes its own."""
    assert host.run("ls /etc/ssh/ssh_host_*_key").rc == 0


# systemd's journal holds the boot's sshd log; EL6 (no systemd) has none to read, declared here
@pytest.mark.suitcase_booted
@pytest.mark.suitcase_family("debian", "el7", "el8+")
def test_first_boot_does_not_restart_sshd(host):
    """A restart while cloud-init runs resets whoever is logging in at that moment."""
    assert host.exists("journalctl"), "no journalctl: this boot's sshd log cannot be read"
    result = host.run("journalctl -b --no-pager -o cat -u ssh.service -u sshd.service")
    assert result.rc == 0, f"journalctl failed: {result.stderr.strip()}"
    log = result.stdout
    starts = [line for line in log.splitlines() if "Server listening on 0.0.0.0" in line]
    assert len(starts) == 1, log
