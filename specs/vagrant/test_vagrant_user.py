"""The vagrant box contract: user vagrant, the insecure key, sudo without a password."""

import re

import pytest

from pytest_suitcase import facts

INSECURE = "AAAAB3NzaC1yc2EAAAABIwAAAQEA6NF8iallvQVp22WDkTkyrtvp9eWW6A8YVr+kz4TjGYe7gHzIw+niNltGEFHzD8+v1I2YJ6oXevct1YeS0o9HZyN1Q9qgCgzUFtdOKLv6IedplqoPkcmF0aYet2PkEDo3MlTBckFXPITAMzF8dJSIFo9D8HfdOV0IAdx4O7PtixWKn5y2hMNG0zQPyUecp4pzC6kivAIhyfHilFR61RGL+GPXQ2MWZWFYbAGjyiYJnAmCP3NOTd0jMZEnDkbUvxhMmBYSdETk1rRgm+R4LOzFUGaHqHDLKLX+FIPKcF96hrucXzcWyLbIbEgE98OHlnVYCzRdK8jlqm8tehUc9c9WhQ=="


def test_vagrant_user_has_the_insecure_key(image):
    """`vagrant up` logs in with the insecure key first, then replaces it."""
    homes = [row[5] for row in facts.passwd(image) if row[0] == "vagrant"]
    assert homes, "no vagrant user"
    keys = facts.authorized_keys(image, homes[0]) or ""
    assert INSECURE in keys


def test_passwordless_sudo_without_tty(image):
    """Vagrant runs provisioners through sudo without a terminal: a rule sudo reads (not a
    comment) gives vagrant NOPASSWD: ALL, and the last requiretty setting for it is off."""
    lines = facts.sudoers(image)
    rules = [
        " ".join(rule.split())
        for _, rule in facts.sudo_rules(lines)
        if "vagrant" in rule.split()[0].split(",")
    ]
    assert any(re.search(r"\bNOPASSWD:\s*ALL$", r) for r in rules), f"vagrant's rules: {rules}"
    tty = [
        word.strip(",")
        for _, line in lines
        if line.split()[0] in ("Defaults", "Defaults:vagrant")
        for word in line.split()[1:]
        if word.strip(",") in ("requiretty", "!requiretty")
    ]
    assert tty and tty[-1] == "!requiretty", f"requiretty settings for vagrant: {tty}"


def test_root_keys_wiped(image):
    """Root is reached through vagrant's sudo, never by a key baked into the box."""
    assert (facts.authorized_keys(image, "/root") or "").strip() == ""


@pytest.mark.suitcase_booted
def test_vagrant_can_sudo(host):
    """What `vagrant up` does first, done for real on the booted box."""
    # testinfra runs every command through sudo (as root): this one runs as vagrant itself,
    # over vagrant's own SSH login, with no terminal, as Vagrant's first command does.
    result = facts.run_as_login_user(host, 'test "$(id -un)" = vagrant && sudo -n true')
    assert result.rc == 0, result.stderr
