"""The full Debian 12 build of all four images, checked independently of the build code.

Images are read with qemu-img and through plain loop mounts by offset; nothing here uses
Suitcase's own artifact or mount code.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
import struct
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.slow.conftest import OS_NAME, BuiltSet, build_all

#: they read and write the live set (verification records, reports, the set lock): one
#: xdist worker, in order
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("live")]
INSECURE_KEY_START = "ssh-rsa AAAAB3NzaC1yc2EAAAABIwAAAQEA6NF8iallvQVp22WDkTkyrtvp9eWW6A8YVr"


def qemu_info(path: Path) -> dict:  # type: ignore[type-arg]
    return json.loads(
        subprocess.run(
            ["qemu-img", "info", "--output=json", str(path)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )


def partition_offset(raw: Path) -> int:
    mbr = raw.read_bytes()[:512] if raw.stat().st_size < 1024 else raw.open("rb").read(512)
    assert mbr[510:512] == b"\x55\xaa", "no MBR"
    start = struct.unpack("<I", mbr[446 + 8 : 446 + 12])[0]
    assert mbr[446] == 0x80, "partition 1 is not marked active"
    return start * 512


def partition_length(raw: Path) -> int:
    with raw.open("rb") as disk:
        mbr = disk.read(512)
    return int(struct.unpack("<I", mbr[446 + 12 : 446 + 16])[0]) * 512


@contextlib.contextmanager
def loop_mount(disk: Path, partitioned: bool = True) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(dir=disk.parent.parent.parent.parent) as tmp:
        raw = disk
        if qemu_info(disk)["format"] != "raw":
            raw = Path(tmp) / "disk.raw"
            subprocess.run(["qemu-img", "convert", "-O", "raw", str(disk), str(raw)], check=True)
        offset = partition_offset(raw) if partitioned else 0
        # the partition's exact extent, as Suitcase mounts it: mount(8) then shares the loop
        # device of a verification mounting the same disk at the same time (another xdist
        # worker's test, a hard link of the same file); a different extent would be refused
        # as an overlapping loop device
        length = partition_length(raw) if partitioned else raw.stat().st_size
        target = Path(tmp) / "mnt"
        target.mkdir()
        options = f"loop,ro,noload,offset={offset},sizelimit={length}"
        subprocess.run(["mount", "-o", options, str(raw), str(target)], check=True)
        try:
            yield target
        finally:
            subprocess.run(["umount", str(target)], check=True)


def manifest(built: BuiltSet, image: str) -> dict:  # type: ignore[type-arg]
    return json.loads((built.stage_dir(image) / "manifest.json").read_text())


def output(built: BuiltSet, image: str, kind: str) -> Path:
    entry = next(o for o in manifest(built, image)["outputs"] if o["kind"] == kind)
    return built.stage_dir(image) / entry["path"]


def initramfs_listing(root: Path) -> str:
    initrds = sorted((root / "boot").glob("initrd.img-*"))
    assert initrds, "no initramfs"
    return subprocess.run(
        ["lsinitramfs", str(initrds[-1])], capture_output=True, text=True, check=True
    ).stdout


def extlinux_append(root: Path) -> list[str]:
    text = (root / "boot" / "extlinux" / "extlinux.conf").read_text()
    return re.findall(r"^\s*APPEND\s+(.*)$", text, re.M)


def common_hygiene(root: Path) -> None:
    assert not list((root / "etc" / "ssh").glob("ssh_host_*")), "SSH host keys left in the image"
    assert (root / "etc" / "machine-id").read_text() == ""
    shadow = (root / "etc" / "shadow").read_text()
    assert re.search(r"^root:[!*]", shadow, re.M), "root password not locked"
    assert not (root / "root" / ".bash_history").exists()
    assert list((root / "tmp").iterdir()) == []
    fstab = (root / "etc" / "fstab").read_text()
    assert re.search(r"^(LABEL|UUID)=\S+\s+/\s+ext4", fstab, re.M)


def test_manifests_record_real_checksums(built_set: BuiltSet) -> None:
    for image in ("master", "vagrant", "aws-hvm", "aws-paravirt"):
        data = manifest(built_set, image)
        assert data["stage"] == image and len(data["key"]) == 64
        assert data["tool_versions"]["packer"].startswith("1.")
        for out in data["outputs"]:
            path = built_set.stage_dir(image) / out["path"]
            assert path.stat().st_size == out["size"]
            digest = hashlib.sha256()
            with path.open("rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 22), b""):
                    digest.update(chunk)
            assert digest.hexdigest() == out["sha256"], out["path"]
        if image != "master":
            assert data["parent"] == {
                "stage": "master",
                "key": manifest(built_set, "master")["key"],
            }


def test_master_disk(built_set: BuiltSet) -> None:
    disk = output(built_set, "master", "disk")
    subprocess.run(["qemu-img", "check", str(disk)], check=True, capture_output=True)
    info = qemu_info(disk)
    assert info["format"] == "qcow2" and "backing-filename" not in info
    build_key = next((built_set.workspace / "keys").glob(f"{OS_NAME}-*/id_ed25519.pub")).read_text()
    with loop_mount(disk) as root:
        common_hygiene(root)
        assert (root / "root" / ".ssh" / "authorized_keys").read_text().split()[
            1
        ] == build_key.split()[1]
        assert (root / "etc" / "cloud" / "cloud-init.disabled").exists()
        assert all("net.ifnames=0" in line for line in extlinux_append(root))
        assert "vagrant" not in (root / "etc" / "passwd").read_text()


def test_vagrant_box(built_set: BuiltSet, tmp_path: Path) -> None:
    box = output(built_set, "vagrant", "box")
    disk = output(built_set, "vagrant", "disk")
    info = qemu_info(disk)
    assert info["format"] == "qcow2" and "backing-filename" not in info, "box disk not flattened"
    with tarfile.open(box) as tar:
        assert sorted(tar.getnames()) == ["Vagrantfile", "box.img", "metadata.json"]
        metadata = json.load(tar.extractfile("metadata.json"))  # type: ignore[arg-type]
        assert tar.getmember("box.img").size == disk.stat().st_size
    assert metadata["provider"] == "libvirt" and metadata["format"] == "qcow2"
    assert metadata["virtual_size"] == math.ceil(info["virtual-size"] / 2**30)
    catalog = json.loads(output(built_set, "vagrant", "box-catalog").read_text())
    provider = catalog["versions"][0]["providers"][0]
    assert provider["checksum_type"] == "sha256"
    assert provider["checksum"] == hashlib.sha256(box.read_bytes()).hexdigest()
    with loop_mount(disk) as root:
        common_hygiene(root)
        assert re.search(r"^vagrant:", (root / "etc" / "passwd").read_text(), re.M)
        keys = (root / "home" / "vagrant" / ".ssh" / "authorized_keys").read_text()
        assert keys.startswith(INSECURE_KEY_START)
        sudoers = (root / "etc" / "sudoers.d" / "vagrant").read_text()
        assert "NOPASSWD" in sudoers and "!requiretty" in sudoers
        assert (root / "root" / ".ssh" / "authorized_keys").read_text().strip() == ""


def test_aws_hvm_disk(built_set: BuiltSet) -> None:
    raw = output(built_set, "aws-hvm", "raw")
    assert qemu_info(raw)["format"] == "raw"
    vmdk = qemu_info(output(built_set, "aws-hvm", "vmdk"))
    assert vmdk["format"] == "vmdk"
    assert vmdk["format-specific"]["data"]["create-type"] == "streamOptimized"
    with loop_mount(raw) as root:
        common_hygiene(root)
        lines = extlinux_append(root)
        assert lines and all("console=ttyS0,115200n8" in line for line in lines)
        listing = initramfs_listing(root)
        for module in ("xen-blkfront.ko", "nvme.ko", "ena.ko"):
            assert re.search(rf"/{re.escape(module)}(\.\w+)?$", listing, re.M), module
        assert not (root / "etc" / "cloud" / "cloud-init.disabled").exists()
        wants = root / "etc" / "systemd" / "system"
        for unit in ("cloud-init-local", "cloud-init", "cloud-config", "cloud-final"):
            # enablement symlinks point into the image's /lib: test the link, not its target
            links = [d / f"{unit}.service" for d in wants.glob("*.wants")]
            assert any(link.is_symlink() for link in links), f"{unit} not enabled"
        assert "vagrant" not in (root / "etc" / "passwd").read_text()
        assert (root / "root" / ".ssh" / "authorized_keys").read_text() == "\n"


def test_aws_paravirt_single_partition(built_set: BuiltSet) -> None:
    root_disk = output(built_set, "aws-paravirt", "raw-partition")
    master_raw_size = qemu_info(output(built_set, "master", "disk"))["virtual-size"]
    assert root_disk.stat().st_size < master_raw_size  # the partition, not the whole disk
    blkid = subprocess.run(
        ["blkid", "-o", "value", "-s", "TYPE", str(root_disk)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert blkid == "ext4", "the paravirt disk must be a bare filesystem"
    with loop_mount(root_disk, partitioned=False) as root:
        common_hygiene(root)
        menu = root / "boot" / "grub" / "menu.lst"
        assert menu.is_symlink() and menu.readlink().name == "grub.conf"
        grub = (root / "boot" / "grub" / "grub.conf").read_text()
        assert re.search(r"^\s*root \(hd0\)\s*$", grub, re.M)
        kernels = re.findall(r"^\s*kernel\s+(\S+)\s+(.*)$", grub, re.M)
        assert kernels and all("console=hvc0" in args for _path, args in kernels)
        assert all((root / path.lstrip("/")).exists() for path, _args in kernels)
        assert "xen-blkfront.ko" in initramfs_listing(root)
        assert (root / "root" / ".ssh" / "authorized_keys").read_text() == "\n"


def test_second_run_builds_nothing(built_set: BuiltSet) -> None:
    logs = {p: p.stat().st_mtime_ns for p in built_set.workspace.glob("images/*/*/build.log")}
    result = build_all(built_set.workspace)
    assert result.stderr.count("up to date") == 4, result.stderr
    assert "building" not in result.stderr
    assert {p: p.stat().st_mtime_ns for p in logs} == logs  # no Packer run touched a log
