"""Turn a stage's Packer output into its final artifacts: flatten overlays, package boxes.

Derived QEMU stages are qcow2 overlays on the master; this is the one place they are flattened.
"""

from __future__ import annotations

import json
import math
import struct
import tarfile
from pathlib import Path

from suitcase.command import run
from suitcase.errors import BuildError
from suitcase.manifest import write_atomic

_ZERO = bytes(1024 * 1024)
VAGRANTFILE_LIBVIRT = """\
# Made by Suitcase: defaults for the libvirt provider.
Vagrant.configure("2") do |config|
  config.vm.provider :libvirt do |libvirt|
    libvirt.driver = "kvm"
  end
end
"""
VAGRANTFILE_VIRTUALBOX = """\
# Made by Suitcase: defaults for the virtualbox provider.
Vagrant.configure("2") do |config|
  config.vm.base_mac = nil
end
"""


def disk_info(path: Path) -> dict[str, object]:
    """`qemu-img info` as a dict (format, virtual-size, backing-filename, ...)."""
    data: dict[str, object] = json.loads(
        run(["qemu-img", "info", "--output=json", str(path)]).stdout
    )
    return data


def convert(source: Path, dest: Path, fmt: str, options: str | None = None) -> Path:
    """Flatten `source` (following any backing chain) into a standalone `dest` of format `fmt`."""
    argv = ["qemu-img", "convert", "-O", fmt]
    if options:
        argv += ["-o", options]
    tmp = dest.with_name(dest.name + ".partial")
    run([*argv, str(source), str(tmp)])
    tmp.replace(dest)
    return dest


def is_bare_filesystem(raw: Path) -> bool:
    """A filesystem starting at byte 0 (ext2/3/4 or XFS), not a partitioned disk.

    Checked before the MBR: a boot loader in the filesystem's boot block (extlinux) also ends its
    first sector with 0x55AA, which would pass for a partition table.
    """
    with raw.open("rb") as handle:
        head = handle.read(2048)
    return head[1080:1082] == b"\x53\xef" or head[:4] == b"XFSB"


def first_partition(raw: Path) -> tuple[int, int]:
    """(byte offset, byte length) of the first MBR partition of a raw disk."""
    with raw.open("rb") as handle:
        mbr = handle.read(512)
    if len(mbr) < 512 or mbr[510:512] != b"\x55\xaa":
        raise BuildError(f"{raw} has no MBR partition table")
    for index in range(4):
        entry = mbr[446 + 16 * index : 446 + 16 * (index + 1)]
        ptype = entry[4]
        start, sectors = struct.unpack("<II", entry[8:16])
        if ptype != 0 and sectors and (start + sectors) * 512 <= raw.stat().st_size:
            return start * 512, sectors * 512
    raise BuildError(f"{raw} has no partition")


def sparse_copy(source: Path, dest: Path, offset: int, length: int) -> Path:
    """Copy `length` bytes from `offset` of `source`, leaving all-zero MiB blocks as holes."""
    tmp = dest.with_name(dest.name + ".partial")
    with source.open("rb") as src, tmp.open("wb") as out:
        src.seek(offset)
        remaining = length
        while remaining:
            block = src.read(min(len(_ZERO), remaining))
            if not block:
                raise BuildError(f"{source} ends before its partition does")
            if block == _ZERO[: len(block)]:
                out.seek(len(block), 1)
            else:
                out.write(block)
            remaining -= len(block)
        out.truncate(length)
    tmp.replace(dest)
    return dest


def libvirt_box(disk: Path, box: Path) -> Path:
    """A vagrant-libvirt box: box.img (standalone qcow2), metadata.json, Vagrantfile, as a tar."""
    info = disk_info(disk)
    if info.get("format") != "qcow2" or info.get("backing-filename"):
        raise BuildError(f"{disk} must be a standalone qcow2 to go into a box")
    size = int(str(info["virtual-size"]))
    metadata = {"provider": "libvirt", "format": "qcow2", "virtual_size": math.ceil(size / 2**30)}
    return _tar_box(box, {"box.img": disk}, metadata, VAGRANTFILE_LIBVIRT)


def virtualbox_box(ovf_dir: Path, box: Path) -> Path:
    """A virtualbox box from a VirtualBox export folder (box.ovf and its disks)."""
    members: dict[str, Path] = {}
    for path in sorted(ovf_dir.iterdir()):
        if path.suffix == ".ovf":
            members["box.ovf"] = path
        elif path.suffix in (".vmdk", ".vdi"):
            members[path.name] = path
    if "box.ovf" not in members:
        raise BuildError(f"{ovf_dir} holds no .ovf export")
    return _tar_box(box, members, {"provider": "virtualbox"}, VAGRANTFILE_VIRTUALBOX)


def _tar_box(
    box: Path, members: dict[str, Path], metadata: dict[str, object], vagrantfile: str
) -> Path:
    staging = box.with_name(box.name + ".parts")
    staging.mkdir(exist_ok=True)
    (staging / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
    (staging / "Vagrantfile").write_text(vagrantfile)
    tmp = box.with_name(box.name + ".partial")
    with tarfile.open(tmp, "w") as tar:
        tar.add(staging / "metadata.json", arcname="metadata.json")
        tar.add(staging / "Vagrantfile", arcname="Vagrantfile")
        for name, path in members.items():
            tar.add(path, arcname=name)
    for leftover in staging.iterdir():
        leftover.unlink()
    staging.rmdir()
    tmp.replace(box)
    return box


def box_catalog(
    path: Path, name: str, version: str, provider: str, box_url: str, sha256: str
) -> Path:
    """The Vagrant catalog JSON that `vagrant box add CATALOG` reads, with the box's checksum."""
    catalog = {
        "name": name,
        "description": f"{name}, built by Suitcase",
        "versions": [
            {
                "version": version,
                "providers": [
                    {
                        "name": provider,
                        "url": box_url,
                        "checksum_type": "sha256",
                        "checksum": sha256,
                    }
                ],
            }
        ],
    }
    write_atomic(path, json.dumps(catalog, indent=2) + "\n")
    return path
