"""Specs must catch defects: copies of built images, one defect each, and the matching spec fails.

Each case copies the image (sparse), mounts the copy read-write by offset, injects one defect, then
runs the real specs through the plugin in offline mode against a workspace holding that copy.
"""

from __future__ import annotations

import contextlib
import re
import struct
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.slow.conftest import OS_NAME, BuiltSet, hardlink_workspace, run_specs

pytestmark = pytest.mark.slow

DISKS = {"aws-hvm": "disk.raw", "aws-paravirt": "root.raw"}


@contextlib.contextmanager
def mounted_rw(raw: Path, partitioned: bool) -> Iterator[Path]:
    offset = 0
    if partitioned:
        with raw.open("rb") as handle:
            mbr = handle.read(512)
        offset = struct.unpack("<I", mbr[446 + 8 : 446 + 12])[0] * 512
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["mount", "-o", f"loop,offset={offset}", str(raw), tmp], check=True)
        try:
            yield Path(tmp)
        finally:
            subprocess.run(["umount", tmp], check=True)


def _vagrant_user(root: Path) -> None:
    with (root / "etc" / "passwd").open("a") as handle:
        handle.write("vagrant:x:1000:1000:vagrant:/home/vagrant:/bin/bash\n")


def _root_key(root: Path) -> None:
    (root / "root" / ".ssh" / "authorized_keys").write_text(
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHBhY2tlcg intruder\n"
    )


def _no_xen_blkfront(root: Path) -> None:
    for initrd in sorted((root / "boot").glob("initrd.img-*")):
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(["unmkinitramfs", str(initrd), tmp], check=True)
            tree = Path(tmp) / "main" if (Path(tmp) / "main").is_dir() else Path(tmp)
            removed = [p for p in tree.rglob("xen-blkfront.ko*")]
            assert removed, "nothing to remove: the defect would not be a defect"
            for path in removed:
                path.unlink()
            archive = subprocess.run(
                f"cd {tree} && find . | cpio -o -H newc --quiet | zstd -q",
                shell=True,
                capture_output=True,
                check=True,
            ).stdout
            initrd.write_bytes(archive)


def _permit_root_login(root: Path) -> None:
    config = root / "etc" / "ssh" / "sshd_config"
    config.write_text("PermitRootLogin yes\n" + config.read_text())


def _host_keys(root: Path) -> None:
    (root / "etc" / "ssh" / "ssh_host_ed25519_key").write_text("left behind\n")


def _cloud_init_disabled(root: Path) -> None:
    (root / "etc" / "cloud" / "cloud-init.disabled").write_text("")


def _wrong_console(root: Path) -> None:
    conf = root / "boot" / "extlinux" / "extlinux.conf"
    conf.write_text(conf.read_text().replace("console=ttyS0,115200n8", "console=ttyS1,9600"))


def _no_menu_lst(root: Path) -> None:
    (root / "boot" / "grub" / "menu.lst").unlink()


def _extra_package(root: Path) -> None:
    with (root / "var" / "lib" / "dpkg" / "status").open("a") as handle:
        handle.write(
            "\nPackage: suitcase-intruder\nStatus: install ok installed\n"
            "Priority: optional\nSection: misc\nMaintainer: nobody <nobody@invalid>\n"
            "Architecture: all\nVersion: 1.0\nDescription: injected by a test\n"
        )


# defect -> (image, injection, the spec that must fail)
DEFECTS: dict[str, tuple[str, Callable[[Path], None], str]] = {
    "vagrant-user-in-aws-hvm": ("aws-hvm", _vagrant_user, "test_no_vagrant_user"),
    "key-in-root-authorized-keys": (
        "aws-hvm",
        _root_key,
        "test_root_authorized_keys_only_a_newline",
    ),
    "xen-blkfront-missing": ("aws-hvm", _no_xen_blkfront, "test_xen_blkfront_in_initramfs"),
    "permit-root-login-yes": ("aws-hvm", _permit_root_login, "test_root_login_by_key_only"),
    "ssh-host-keys-left": ("aws-hvm", _host_keys, "test_no_ssh_host_keys"),
    "cloud-init-disabled": ("aws-hvm", _cloud_init_disabled, "test_cloud_init_enabled"),
    "wrong-console": ("aws-hvm", _wrong_console, "test_serial_console_on_kernel_line"),
    "menu-lst-missing": ("aws-paravirt", _no_menu_lst, "test_menu_lst_links_to_grub_conf"),
    "package-not-in-master": ("aws-hvm", _extra_package, "test_same_packages_and_config_as_master"),
}


def defective_workspace(
    built: BuiltSet, tmp: Path, image: str, inject: Callable[[Path], None] | None
) -> Path:
    """A workspace of hard links to the built set, with a real copy of `image`'s disk, defected."""
    workspace = hardlink_workspace(built.workspace, tmp / "ws")
    disk = workspace / "images" / image / f"{OS_NAME}-{built.timestamp}" / DISKS[image]
    copy = disk.with_suffix(".copy")
    subprocess.run(["cp", "--sparse=always", str(disk), str(copy)], check=True)
    copy.replace(disk)  # a new inode: the built set's own file is never touched
    if inject is not None:
        with mounted_rw(disk, partitioned=image != "aws-paravirt") as root:
            inject(root)
    return workspace


def offline_specs(workspace: Path, image: str, selection: str) -> subprocess.CompletedProcess[str]:
    return run_specs(
        workspace,
        image,
        "--suitcase-mode",
        "offline",
        "-k",
        selection,
        "-rA",
        "-q",
        timestamp="latest",
    )


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_spec_catches_defect(defect: str, built_set: BuiltSet, tmp_path: Path) -> None:
    image, inject, spec = DEFECTS[defect]
    workspace = defective_workspace(built_set, tmp_path, image, inject)
    result = offline_specs(workspace, image, spec)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out[-3000:]
    assert re.search(rf"^FAILED \S+::{spec}\[{image}\]", out, re.M), out[-3000:]


@pytest.mark.parametrize("image", sorted(DISKS))
def test_the_same_specs_pass_without_a_defect(
    image: str, built_set: BuiltSet, tmp_path: Path
) -> None:
    workspace = defective_workspace(built_set, tmp_path, image, None)
    specs = " or ".join(sorted({s for i, _f, s in DEFECTS.values() if i == image}))
    result = offline_specs(workspace, image, specs)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert len(re.findall(r"^PASSED ", out, re.M)) == len(
        {s for i, _f, s in DEFECTS.values() if i == image}
    ), out[-2000:]
