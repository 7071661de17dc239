"""Artifact helpers on small real disks made with qemu-img and mkfs."""

from __future__ import annotations

import json
import struct
import subprocess
import tarfile
from pathlib import Path

import pytest

from suitcase import artifact
from suitcase.errors import BuildError


def _mbr_disk(path: Path, start: int, sectors: int, size: int) -> Path:
    mbr = bytearray(512)
    mbr[446] = 0x80
    mbr[446 + 4] = 0x83
    mbr[446 + 8 : 446 + 16] = struct.pack("<II", start, sectors)
    mbr[510:512] = b"\x55\xaa"
    with path.open("wb") as handle:
        handle.write(mbr)
        handle.truncate(size)
    return path


def test_first_partition_and_sparse_copy(tmp_path: Path) -> None:
    disk = _mbr_disk(tmp_path / "d.raw", 2048, 4096, (2048 + 4096) * 512)
    with disk.open("r+b") as handle:
        handle.seek(2048 * 512 + 4096)
        handle.write(b"payload")
    offset, length = artifact.first_partition(disk)
    assert (offset, length) == (2048 * 512, 4096 * 512)
    part = artifact.sparse_copy(disk, tmp_path / "p.raw", offset, length)
    assert part.stat().st_size == length
    assert part.read_bytes()[4096:4103] == b"payload"
    assert part.stat().st_blocks * 512 < length  # zeros stayed holes


def test_partition_beyond_the_disk_is_refused(tmp_path: Path) -> None:
    disk = _mbr_disk(tmp_path / "d.raw", 2048, 10**6, 4096 * 512)
    with pytest.raises(BuildError, match="no partition"):
        artifact.first_partition(disk)


def test_bare_filesystem_with_a_boot_sector_is_not_a_partition_table(tmp_path: Path) -> None:
    fs = tmp_path / "fs.raw"
    subprocess.run(["truncate", "-s", "16M", str(fs)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(fs)], check=True)
    with fs.open("r+b") as handle:  # what extlinux leaves in the boot block
        handle.seek(510)
        handle.write(b"\x55\xaa")
    assert artifact.is_bare_filesystem(fs)
    assert not artifact.is_bare_filesystem(_mbr_disk(tmp_path / "d.raw", 2048, 2048, 4096 * 512))


def test_libvirt_box_refuses_an_overlay_and_records_virtual_size(tmp_path: Path) -> None:
    base = tmp_path / "base.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "3G"], check=True)
    overlay = tmp_path / "overlay.qcow2"
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(base), str(overlay)],
        check=True,
    )
    with pytest.raises(BuildError, match="standalone"):
        artifact.libvirt_box(overlay, tmp_path / "x.box")
    flat = artifact.convert(overlay, tmp_path / "flat.qcow2", "qcow2")
    box = artifact.libvirt_box(flat, tmp_path / "x.box")
    with tarfile.open(box) as tar:
        meta = json.load(tar.extractfile("metadata.json"))  # type: ignore[arg-type]
        assert sorted(tar.getnames()) == ["Vagrantfile", "box.img", "metadata.json"]
    assert meta == {"provider": "libvirt", "format": "qcow2", "virtual_size": 3}
