"""The specs of issue 11 on fixture trees: each passes on a clean tree (Debian's and EL's layout)
and fails on a tree with the defect it is meant to catch; strict facts never answer "" for an
unreadable file."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from pytest_suitcase import facts
from tests.test_facts import TreeHost, spec_module, tree

PROBE_IDS = facts.root_filesystem_ids  # the real probe, before any test stands in for it
IDS = {"UUID": "9e12fe8b-41ec-4d52-bcdb-21d8ab850603", "LABEL": "root"}
PASSWD = "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
SHADOW = "root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n"
VAGRANT_PASSWD = PASSWD + "vagrant:x:1000:1000:vagrant:/home/vagrant:/bin/bash\n"
VAGRANT_SHADOW = SHADOW + "vagrant:*:19000:0:99999:7:::\n"
DEBIAN_SUDOERS = (
    'Defaults\tenv_reset\nDefaults\tsecure_path="/usr/sbin:/usr/bin"\n'
    "root\tALL=(ALL:ALL) ALL\n%sudo\tALL=(ALL:ALL) ALL\n@includedir /etc/sudoers.d\n"
)
EL_SUDOERS = (
    "Defaults   !visiblepw\nroot\tALL=(ALL) \tALL\n%wheel\tALL=(ALL)\tALL\n"
    "# %wheel ALL=(ALL) NOPASSWD: ALL\n#includedir /etc/sudoers.d\n"
)
EXTLINUX = "DEFAULT debian\nLABEL debian\n  KERNEL /boot/vmlinuz\n  APPEND root=LABEL=root ro\n"
EL7_GRUB2 = "menuentry 'CentOS' {\n  linux16 /vmlinuz root=UUID=" + IDS["UUID"] + " ro\n}\n"
DEBIAN = {
    "/etc/passwd": PASSWD,
    "/etc/shadow": SHADOW,
    "/etc/sudoers": DEBIAN_SUDOERS,
    "/etc/sudoers.d/README": "# files here are read by sudo\n",
    "/etc/fstab": "LABEL=root / ext4 errors=remount-ro 0 1\n",
    "/etc/resolv.conf": "",
    "/etc/network/interfaces": (
        "auto lo\niface lo inet loopback\nsource /etc/network/interfaces.d/*\n"
    ),
    "/etc/network/interfaces.d/eth0": "allow-hotplug eth0\niface eth0 inet dhcp\n",
    "/etc/cloud/cloud.cfg": "datasource_list: [ NoCloud, Ec2, None ]\n",
    "/etc/cloud/cloud.cfg.d/90-suitcase.cfg": "datasource_list: [ Ec2, None ]\n",
    "/boot/extlinux/extlinux.conf": EXTLINUX,
    "/root/.bashrc": "",
    "/root/.profile": "",
    "/root/.ssh/authorized_keys": "\n",
    "/var/lib/apt/lists/lock": "",
    "/var/log/wtmp": "",
    "/var/log/lastlog": "",
}
EL = {
    **{
        k: v
        for k, v in DEBIAN.items()
        if "apt" not in k and "network" not in k and "extlinux" not in k
    },
    "/etc/sudoers": EL_SUDOERS,
    "/etc/fstab": f"UUID={IDS['UUID']} / xfs defaults 0 0\n",
    "/etc/sysconfig/network-scripts/ifcfg-eth0": "DEVICE=eth0\nBOOTPROTO=dhcp\nONBOOT=yes\n",
    "/boot/grub2/grub.cfg": EL7_GRUB2,
    "/root/.bash_profile": "",
    "/root/.cshrc": "",
}
EL = {k: v for k, v in EL.items() if k != "/etc/sudoers.d/README"}
VAGRANT = {
    "/etc/passwd": VAGRANT_PASSWD,
    "/etc/shadow": VAGRANT_SHADOW,
    "/etc/sudoers.d/vagrant": "Defaults:vagrant !requiretty\nvagrant ALL=(ALL) NOPASSWD: ALL\n",
}
EMPTY_FOLDERS = (
    "/var/lib/cloud/scripts/per-boot",
    "/var/lib/dhcp",
    "/var/log/journal",
    "/tmp",
    "/usr/bin",
)


def spec(relative: str) -> ModuleType:
    return spec_module(f"common/{relative}")


def make(root: Path, layout: dict[str, str], *extra: dict[str, str]) -> TreeHost:
    files = dict(layout)
    for more in extra:
        files.update(more)
    host = tree(root, files)
    for folder in EMPTY_FOLDERS:
        (root / folder.lstrip("/")).mkdir(parents=True, exist_ok=True)
    return host


@pytest.fixture(autouse=True)
def real_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixture trees have no block device: the root file system's ids are given."""
    monkeypatch.setattr(facts, "root_filesystem_ids", lambda host: dict(IDS))


def outcome(module: str, name: str, host: TreeHost, image_type: str) -> str:
    """Run one spec function on a fixture tree: "passed" or "failed: <its message>"."""
    check = getattr(spec(module), name)
    args = {"image": host, "host": host, "suitcase_image": image_type}
    wanted = check.__code__.co_varnames[: check.__code__.co_argcount]
    try:
        check(**{a: args[a] for a in wanted})
    except (AssertionError, pytest.fail.Exception) as exc:
        return f"failed: {exc}"
    return "passed"


# (spec module, spec, image type, change to the clean tree: file -> text, or a callable)
Change = dict[str, str] | Callable[[Path], None]
DEFECTS: list[tuple[str, str, str, Change]] = [
    (
        "test_accounts.py",
        "test_only_root_has_uid_0",
        "master",
        {"/etc/passwd": PASSWD + "toor:x:0:0::/root:/bin/bash\n"},
    ),
    (
        "test_accounts.py",
        "test_only_root_has_uid_0",
        "vagrant",
        {"/etc/passwd": VAGRANT_PASSWD + "toor:x:0:0::/root:/bin/bash\n"},
    ),
    (
        "test_accounts.py",
        "test_login_users_are_declared",
        "aws-hvm",
        {"/etc/passwd": PASSWD + "packer:x:1001:1001::/home/packer:/bin/bash\n"},
    ),
    (
        "test_accounts.py",
        "test_login_users_are_declared",
        "vagrant",
        {"/etc/passwd": VAGRANT_PASSWD + "packer:x:1001:1001::/home/packer:/bin/bash\n"},
    ),
    ("test_accounts.py", "test_login_users_are_declared", "master", VAGRANT),
    (
        "test_accounts.py",
        "test_sudo_rules_are_declared",
        "master",
        {"/etc/sudoers.d/90-build": "packer ALL=(ALL) NOPASSWD: ALL\n"},
    ),
    (
        "test_accounts.py",
        "test_sudo_rules_are_declared",
        "aws-paravirt",
        {"/etc/sudoers": DEBIAN_SUDOERS + "packer ALL=(ALL) NOPASSWD: ALL\n"},
    ),
    (
        "test_accounts.py",
        "test_sudo_rules_are_declared",
        "vagrant",
        {"/etc/sudoers.d/vagrant": "vagrant ALL=(ALL) NOPASSWD: ALL\nbuild ALL=(ALL) ALL\n"},
    ),
    ("test_accounts.py", "test_sudo_rules_are_declared", "master", VAGRANT),
    (
        "test_accounts.py",
        "test_sudo_rules_are_declared",
        "master",
        {"/etc/sudoers": DEBIAN_SUDOERS + "%sudo ALL=(ALL:ALL) NOPASSWD: ALL\n"},
    ),
    (
        "test_accounts.py",
        "test_no_account_has_a_password",
        "master",
        {"/etc/shadow": SHADOW.replace("daemon:*", "daemon:$6$salt$hash")},
    ),
    (
        "test_accounts.py",
        "test_no_account_has_a_password",
        "master",
        {"/etc/shadow": SHADOW.replace("root:*", "root:!$6$salt$hash")},
    ),
    (
        "test_accounts.py",
        "test_no_account_has_a_password",
        "master",
        {"/etc/shadow": SHADOW.replace("root:*", "root:")},
    ),
    (
        "test_leftovers.py",
        "test_package_metadata_clean",
        "master",
        {"/var/lib/apt/lists/mirror.invalid_dists_bookworm_InRelease": "x"},
    ),
    (
        "test_leftovers.py",
        "test_package_metadata_clean",
        "master",
        {"/var/cache/apt/pkgcache.bin": "x"},
    ),
    (
        "test_leftovers.py",
        "test_package_metadata_clean",
        "master",
        {"/var/cache/dnf/baseos-1/repodata/repomd.xml": "x"},
    ),
    (
        "test_leftovers.py",
        "test_package_metadata_clean",
        "master",
        {"/var/cache/yum/x86_64/7/base/x": "x"},
    ),
    (
        "test_leftovers.py",
        "test_no_dhcp_leases",
        "master",
        {"/var/lib/dhcp/dhclient.eth0.leases": "l"},
    ),
    (
        "test_leftovers.py",
        "test_no_dhcp_leases",
        "master",
        {"/var/lib/dhclient/dhclient--eth0.lease": "l"},
    ),
    (
        "test_leftovers.py",
        "test_no_dhcp_leases",
        "master",
        {"/var/lib/NetworkManager/internal-1-eth0.lease": "l"},
    ),
    ("test_leftovers.py", "test_no_build_logins_or_journals", "master", {"/var/log/wtmp": "boot"}),
    ("test_leftovers.py", "test_no_build_logins_or_journals", "master", {"/var/log/btmp": "x"}),
    ("test_leftovers.py", "test_no_build_logins_or_journals", "master", {"/var/log/lastlog": "x"}),
    (
        "test_leftovers.py",
        "test_no_build_logins_or_journals",
        "master",
        {"/var/log/journal/74ab/system.journal": "x"},
    ),
    (
        "test_leftovers.py",
        "test_root_home_holds_only_its_skeleton",
        "master",
        {"/root/build.sh": "x"},
    ),
    (
        "test_leftovers.py",
        "test_root_home_holds_only_its_skeleton",
        "master",
        {"/root/anaconda-ks.cfg": "x"},
    ),
    (
        "test_leftovers.py",
        "test_root_home_holds_only_its_skeleton",
        "master",
        {"/root/.ssh/known_hosts": "x"},
    ),
    (
        "test_leftovers.py",
        "test_cloud_init_state_clean",
        "aws-hvm",
        {"/var/lib/cloud/instances/i-1/boot-finished": "x"},
    ),
    (
        "test_leftovers.py",
        "test_cloud_init_state_clean",
        "aws-hvm",
        lambda root: (root / "var/lib/cloud/instance").symlink_to("instances/i-1"),
    ),
    (
        "test_leftovers.py",
        "test_cloud_init_state_clean",
        "aws-hvm",
        lambda root: (root / "var/lib/cloud/data").mkdir(parents=True),
    ),
    (
        "test_identity.py",
        "test_resolv_conf_has_no_build_resolver",
        "master",
        {"/etc/resolv.conf": "nameserver 10.0.2.3\n"},
    ),
    (
        "test_identity.py",
        "test_resolv_conf_has_no_build_resolver",
        "master",
        {"/etc/resolv.conf": "search build.example\n"},
    ),
    (
        "test_identity.py",
        "test_no_interface_pinned_to_the_build_network",
        "master",
        {
            "/etc/udev/rules.d/70-persistent-net.rules": (
                'SUBSYSTEM=="net", ATTR{address}=="52:54:00:12:34:56", NAME="eth0"\n'
            )
        },
    ),
    (
        "test_identity.py",
        "test_no_interface_pinned_to_the_build_network",
        "master",
        {
            "/etc/network/interfaces.d/eth0": (
                "iface eth0 inet dhcp\n  hwaddress ether 52:54:00:12:34:56\n"
            )
        },
    ),
    (
        "test_identity.py",
        "test_no_interface_pinned_to_the_build_network",
        "master",
        {"/etc/network/interfaces.d/eth0": "iface eth0 inet static\n  address 10.0.2.15/24\n"},
    ),
    (
        "test_identity.py",
        "test_no_interface_pinned_to_the_build_network",
        "master",
        {"/etc/sysconfig/network-scripts/ifcfg-eth0": "DEVICE=eth0\nHWADDR=52:54:00:12:34:56\n"},
    ),
    (
        "test_identity.py",
        "test_no_interface_pinned_to_the_build_network",
        "master",
        {"/etc/systemd/network/10-eth0.network": "[Match]\nMACAddress=52:54:00:12:34:56\n"},
    ),
    (
        "test_identity.py",
        "test_no_interface_pinned_to_the_build_network",
        "master",
        {
            "/etc/netplan/50.yaml": (
                "network:\n  ethernets:\n    eth0:\n      match:\n        macaddress: x\n"
            )
        },
    ),
    (
        "test_boot.py",
        "test_kernel_root_is_the_root_filesystem",
        "master",
        {"/boot/extlinux/extlinux.conf": EXTLINUX.replace("LABEL=root", "/dev/vda1")},
    ),
    (
        "test_boot.py",
        "test_kernel_root_is_the_root_filesystem",
        "master",
        {"/boot/extlinux/extlinux.conf": EXTLINUX.replace("LABEL=root", "UUID=0000-1111")},
    ),
    (
        "test_boot.py",
        "test_kernel_root_is_the_root_filesystem",
        "aws-paravirt",
        {
            "/boot/grub/grub.conf": (
                "title x\n root (hd0)\n kernel /boot/vmlinuz root=LABEL=other ro\n"
            )
        },
    ),
    (
        "test_boot.py",
        "test_fstab_root_is_the_root_filesystem",
        "master",
        {"/etc/fstab": "UUID=0000-1111 / ext4 defaults 0 1\n"},
    ),
    (
        "test_boot.py",
        "test_fstab_root_is_the_root_filesystem",
        "master",
        {"/etc/fstab": "/dev/vda1 / ext4 defaults 0 1\n"},
    ),
    (
        "test_permissions.py",
        "test_nothing_world_writable_in_system_trees",
        "master",
        lambda root: (root / "etc/passwd").chmod(0o666),
    ),
    (
        "test_permissions.py",
        "test_nothing_world_writable_in_system_trees",
        "master",
        lambda root: (root / "boot/extlinux").chmod(0o777),
    ),
    (
        "test_aws.py",
        "test_ec2_datasource_listed",
        "aws-hvm",
        {"/etc/cloud/cloud.cfg.d/99-ds.cfg": "datasource_list: [NoCloud, None]\n"},
    ),
    (
        "test_aws.py",
        "test_datasources_are_the_platform_s_only",
        "aws-paravirt",
        {"/etc/cloud/cloud.cfg.d/99-ds.cfg": "datasource_list: [ NoCloud, Ec2, None ]\n"},
    ),
]


@pytest.mark.parametrize("layout", ["debian", "el"])
@pytest.mark.parametrize("image_type", ["master", "vagrant", "aws-hvm", "aws-paravirt"])
def test_every_new_spec_passes_on_a_clean_tree(
    tmp_path: Path, layout: str, image_type: str
) -> None:
    files = DEBIAN if layout == "debian" else EL
    host = make(tmp_path, files, VAGRANT if image_type == "vagrant" else {})
    for module in (
        "test_accounts.py",
        "test_leftovers.py",
        "test_identity.py",
        "test_boot.py",
        "test_permissions.py",
        "test_aws.py",
    ):
        for name in vars(spec(module)):
            if not name.startswith("test_") or name in (
                "test_resolv_conf_resolves",
                "test_xen_blkfront_in_initramfs",
                "test_cloud_init_enabled",
                "test_no_vagrant_user",
                "test_root_authorized_keys_only_a_newline",
            ):
                continue
            assert outcome(module, name, host, image_type) == "passed", name


@pytest.mark.parametrize(
    ("module", "name", "image_type", "change"),
    DEFECTS,
    ids=[f"{d[1]}-{i}" for i, d in enumerate(DEFECTS)],
)
def test_each_new_spec_fails_on_its_defect(
    tmp_path: Path, module: str, name: str, image_type: str, change: Change
) -> None:
    host = make(tmp_path, DEBIAN, VAGRANT if image_type == "vagrant" else {})
    if callable(change):
        change(tmp_path)
    else:
        tree(tmp_path, change)
    result = outcome(module, name, host, image_type)
    assert result.startswith("failed"), f"{name} passed on its defect {change}"
    assert "$6$" not in result, "a spec printed a password hash"


def test_read_tells_missing_from_unreadable(tmp_path: Path) -> None:
    host = tree(tmp_path, {"/etc/passwd": PASSWD})
    assert facts.read(host, "/etc/passwd") == PASSWD
    assert facts.read(host, "/etc/nothing") is None
    (tmp_path / "etc" / "folder").mkdir()
    with pytest.raises(pytest.fail.Exception, match="cannot read /etc/folder"):
        facts.read(host, "/etc/folder")
    with pytest.raises(pytest.fail.Exception, match="/etc/nothing does not exist"):
        facts.read_required(host, "/etc/nothing")


class BrokenSudo(TreeHost):
    """Every command fails the way a broken sudo does: exit 1, nothing on stdout."""

    def run(self, command: str) -> Any:
        done = subprocess.run(
            ["sh", "-c", "echo 'sudo: broken' >&2; exit 1"],
            capture_output=True,
            text=True,
            check=False,
        )
        done.rc = done.returncode  # type: ignore[attr-defined]
        return done


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("test_accounts.py", "test_only_root_has_uid_0"),
        ("test_accounts.py", "test_login_users_are_declared"),
        ("test_accounts.py", "test_sudo_rules_are_declared"),
        ("test_accounts.py", "test_no_account_has_a_password"),
        ("test_leftovers.py", "test_package_metadata_clean"),
        ("test_leftovers.py", "test_no_dhcp_leases"),
        ("test_leftovers.py", "test_no_build_logins_or_journals"),
        ("test_leftovers.py", "test_root_home_holds_only_its_skeleton"),
        ("test_leftovers.py", "test_cloud_init_state_clean"),
        ("test_identity.py", "test_resolv_conf_has_no_build_resolver"),
        ("test_identity.py", "test_no_interface_pinned_to_the_build_network"),
        ("test_permissions.py", "test_nothing_world_writable_in_system_trees"),
        ("test_hygiene.py", "test_no_shell_history"),
        ("test_hygiene.py", "test_temporary_folders_empty"),
        ("test_hygiene.py", "test_package_caches_clean"),
        ("test_hygiene.py", "test_no_guest_additions_iso"),
        ("test_hygiene.py", "test_root_password_locked"),
        ("test_aws.py", "test_root_authorized_keys_only_a_newline"),
        ("test_aws.py", "test_ec2_datasource_listed"),
    ],
)
def test_no_spec_passes_when_it_cannot_read(tmp_path: Path, module: str, name: str) -> None:
    """A broken sudo (every command fails, stdout empty) must fail the spec, never pass it."""
    host = BrokenSudo(tmp_path)
    assert outcome(module, name, host, "aws-hvm").startswith("failed")


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mkfs.ext4"), reason="needs root")
def test_root_filesystem_ids_of_a_mounted_image(tmp_path: Path) -> None:
    """The chroot backend's ids come from the device mounted there (blkid on the build host)."""
    import testinfra

    disk = tmp_path / "fs.img"
    subprocess.run(["truncate", "-s", "16M", str(disk)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-L", "root", "-U", IDS["UUID"], str(disk)], check=True)
    mount = tmp_path / "mnt"
    mount.mkdir()
    subprocess.run(["mount", "-o", "loop,ro", str(disk), str(mount)], check=True)
    try:
        host = testinfra.get_host(str(mount), connection="chroot")
        assert PROBE_IDS(host) == IDS
        assert facts.names_root("LABEL=root", IDS) and facts.names_root(f"UUID={IDS['UUID']}", IDS)
        assert not facts.names_root("UUID=0000", IDS) and not facts.names_root("/dev/vda1", IDS)
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_el6_login_users_start_at_login_defs_uid_min(tmp_path: Path) -> None:
    el6_vagrant = {
        "/etc/login.defs": "PASS_MAX_DAYS\t99999\nUID_MIN\t\t\t  500\n",
        "/etc/passwd": PASSWD + "vagrant:x:500:500:vagrant:/home/vagrant:/bin/bash\n",
    }
    host = make(tmp_path, EL, VAGRANT, el6_vagrant)
    assert outcome("test_accounts.py", "test_login_users_are_declared", host, "vagrant") == "passed"
    tree(tmp_path, {"/etc/passwd": el6_vagrant["/etc/passwd"] + "packer:x:501:501::/:/bin/sh\n"})
    result = outcome("test_accounts.py", "test_login_users_are_declared", host, "vagrant")
    assert result.startswith("failed") and "packer" in result
