"""Hygiene of the image as shipped: nothing of the build, nothing that must be unique."""

import shlex

import pytest

from pytest_suitcase import facts
from pytest_suitcase.session import family_matches


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


# Families without systemd have no /etc/machine-id (dbus makes its own at boot); every other
# image ships the file empty (or "uninitialized"), which systemd fills in at first boot.
NO_MACHINE_ID_FAMILIES = ("el6",)


def test_machine_id_empty(image, suitcase_session):
    """A baked machine-id gives every instance the same identity (DHCP, journald, dbus); a
    missing one is no proof of anything (and systemd treats it otherwise at first boot)."""
    text = facts.read(image, "/etc/machine-id")
    if text is None:
        assert family_matches(suitcase_session.os, NO_MACHINE_ID_FAMILIES), (
            f"/etc/machine-id is missing; {suitcase_session.os.name} ships it empty"
        )
    else:
        assert text.strip() in ("", "uninitialized"), "/etc/machine-id holds a machine id"
    dbus = "/var/lib/dbus/machine-id"
    assert facts.file_type(image, dbus) in (None, "l"), f"{dbus} is a file"


def test_root_password_locked(image):
    """A root password baked into an image is a password every instance shares (the state only,
    from the one shadow parser, never the hash)."""
    state = facts.password_states(image).get("root", "missing")
    shown = {"hash": "set", "empty": "set, and empty", "missing": "not in /etc/shadow"}
    assert state in ("none", "locked hash"), (
        f"root's password is {shown.get(state, state)} (the hash is not shown)"
    )


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


HISTORIES = (
    ".bash_history",
    ".history",
    ".sh_history",
    ".zsh_history",
    ".python_history",
    ".lesshst",
    ".viminfo",
    ".mysql_history",
    ".psql_history",
)


def test_no_shell_history(image):
    """History files leak the build's commands (and sometimes secrets typed into them): in
    every home /etc/passwd names, every folder in /home and /root."""
    homes = {"/root", *(row[5] for row in facts.passwd(image) if row[5].startswith("/"))}
    homes |= set(facts.glob(image, "/home/*"))
    paths = " ".join(shlex.quote(f"{h.rstrip('/')}/{n}") for h in sorted(homes) for n in HISTORIES)
    found = facts.glob(image, paths)
    assert found == [], f"shell histories: {found}"


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
