"""Hygiene of the image as shipped: nothing of the build, nothing that must be unique."""

import pytest

from pytest_suitcase import facts


def test_no_ssh_host_keys(image):
    """Shared host keys let one instance impersonate every other built from the same image:
    none under /etc/ssh (at any depth), and none wherever a HostKey line points."""
    assert facts.exists(image, "/etc/ssh/sshd_config"), "no /etc/ssh/sshd_config: wrong tree?"
    keys = [
        "/etc/ssh/" + name
        for kind, _, name in facts.tree(image, "/etc/ssh") or []
        if kind != "d" and name.rsplit("/", 1)[-1].startswith("ssh_host_")
    ]
    keys += [p for p in facts.sshd_options(image, "HostKey") if facts.exists(image, p)]
    assert sorted(set(keys)) == []


def test_machine_id_empty(image):
    """A baked machine-id gives every instance the same identity (DHCP, journald, dbus)."""
    assert (facts.read(image, "/etc/machine-id") or "").strip() == ""
    dbus = "/var/lib/dbus/machine-id"
    assert not facts.exists(image, dbus) or image.file(dbus).is_symlink, f"{dbus} is a file"


def password_state(host, user):
    """'locked', 'set' or 'missing': never the hash itself, so no assertion, --showlocals or
    JUnit report can print it (it lives only inside this function, which has returned)."""
    for line in facts.read_required(host, "/etc/shadow").splitlines():
        if line.startswith(f"{user}:"):
            return "locked" if line.split(":")[1].startswith(("!", "*")) else "set"
    return "missing"


def test_root_password_locked(image):
    """A root password baked into an image is a password every instance shares."""
    state = password_state(image, "root")
    assert state == "locked", f"root's password is {state} (the hash is not shown)"


@pytest.mark.suitcase_images("vagrant", "aws-hvm", "aws-paravirt")
def test_no_build_key(image, suitcase_build_key):
    """The build key is for the build; a shipped image must not trust it."""
    body = suitcase_build_key.split()[1]
    for home in ("/root", *(f"/home/{u}" for u in facts.login_users(image))):
        assert body not in (facts.authorized_keys(image, home) or "")


@pytest.mark.suitcase_images("master")
def test_master_keeps_only_the_build_key(image, suitcase_build_key):
    """The master is internal: derived builds and its own verification log in with the build key."""
    keys = [ln for ln in (facts.authorized_keys(image, "/root") or "").splitlines() if ln.strip()]
    assert keys == [suitcase_build_key] or [k.split()[1] for k in keys] == [
        suitcase_build_key.split()[1]
    ]


def test_no_shell_history(image):
    """History files leak the build's commands (and sometimes secrets typed into them)."""
    for name in (".bash_history", ".history", ".python_history", ".lesshst", ".viminfo"):
        assert not facts.exists(image, f"/root/{name}"), name


def test_temporary_folders_empty(image):
    """Leftovers in /tmp are build debris every instance carries."""
    for folder in ("/tmp", "/var/tmp"):
        entries = facts.tree(image, folder, depth=1)
        assert entries is not None, f"{folder} does not exist"
        assert [name for _, _, name in entries] == [], folder


def test_package_caches_clean(image):
    """Downloaded packages waste space in every copy of the image."""
    leftover = facts.glob(
        image,
        "/var/cache/apt/archives/*.deb /var/cache/yum/*/*/packages/*.rpm "
        "/var/cache/dnf/*/packages/*.rpm",
    )
    assert leftover == []


def test_no_guest_additions_iso(image):
    """The original left VBoxGuestAdditions.iso behind; never again."""
    assert facts.glob(image, "/root/*.iso /home/*/*.iso") == []
