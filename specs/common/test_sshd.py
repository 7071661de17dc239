"""sshd: root only by key, never by password."""

from pytest_suitcase import facts


def test_root_login_by_key_only(host):
    """PermitRootLogin yes would let a guessed password in as root."""
    assert facts.sshd_option(host, "PermitRootLogin") in ("prohibit-password", "without-password")


def test_password_authentication_off(host):
    """Images are reached by key; a password login is an attack surface nobody uses."""
    assert facts.sshd_option(host, "PasswordAuthentication") == "no"


def test_sshd_enabled(host):
    """Without sshd at boot, nobody can reach the instance."""
    assert host.service(
        "ssh" if host.file("/lib/systemd/system/ssh.service").exists else "sshd"
    ).is_enabled
