"""Plant defects into copies of a built set: every image type, as it ships.

A defective workspace is a hard-linked copy of the built set (cheap: Suitcase replaces files,
never rewrites them) in which each defected output is a NEW file: a raw disk is copied sparsely
and mounted by offset, a qcow2 disk is converted to a temporary raw disk, defected and converted
back; vagrant's defected disk becomes disk.qcow2, or, once the specs verify the box, the box's
box.img (the box packed again, its catalog re-checksummed); aws-hvm's VMDK is made again from the
defected raw disk; and the manifest records the new sizes and sha256s. The built set's own files
(hard links shared with other checkouts) are never written.
"""

from __future__ import annotations

import json
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from suitcase import artifact
from suitcase.imagetypes import IMAGE_TYPES
from suitcase.machine import mounted
from suitcase.manifest import MANIFEST_NAME
from tests.slow.copies import own_copy, rerecord


@dataclass(frozen=True)
class Kit:
    """What an injection may need besides the mounted root: the build set's public key."""

    build_key: str


#: an injection into the mounted root file system of a disk (or, for "box", the unpacked box)
Injection = Callable[[Path, Kit], None]


def build_key_line(workspace: Path, build_set: str) -> str:
    """The build set's public key line (keys/<set>/*.pub)."""
    keys = sorted((workspace / "keys" / build_set).glob("*.pub"))
    assert keys, f"no build key in {workspace / 'keys' / build_set}"
    return keys[0].read_text().strip()


def _inject_raw(raw: Path, injections: Iterable[Injection], kit: Kit) -> None:
    with mounted(raw, writable=True) as root:
        for inject in injections:
            inject(root, kit)


def _repack_box(box: Path, disk: Path, box_injections: Iterable[Injection], kit: Kit) -> None:
    """Pack `box` again with `disk` as box.img (as build does), then apply box injections."""
    with tempfile.TemporaryDirectory(dir=box.parent, prefix=".box-") as tmp:
        parts = Path(tmp)
        with tarfile.open(box) as tar:
            names = tar.getnames()
            for name in names:
                if name != "box.img":
                    tar.extract(name, parts, filter="data")
        for inject in box_injections:
            inject(parts, kit)
        partial = box.with_name(box.name + ".partial")
        with tarfile.open(partial, "w") as tar:
            for name in names:
                source = disk if name == "box.img" else parts / name
                tar.add(source, arcname=name)
        partial.replace(box)


def plant(
    stage_dir: Path,
    image: str,
    disk_injections: list[Injection],
    box_injections: list[Injection],
    kit: Kit,
    vmdk_injections: list[Injection] | None = None,
) -> None:
    """Give the stage in `stage_dir` (of a hard-linked workspace) defected outputs of its own.

    The defected disk goes where the specs look: vagrant's disk.qcow2, or, once the plugin
    verifies the box (fixture `suitcase_box`), the box's box.img (disk.qcow2 then stays as built:
    one defected copy instead of two keeps the suite inside the shared disk's room).
    """
    data = json.loads((stage_dir / MANIFEST_NAME).read_text())
    outputs = {o["kind"]: o["path"] for o in data["outputs"]}
    disk = stage_dir / outputs[IMAGE_TYPES[image].disk]
    in_box = "box" in outputs and box_is_verified()
    assert in_box or not box_injections, f"{image}: the box is not verified here"
    changed: set[str] = set()
    if artifact.disk_info(disk).get("format") == "raw":
        own_copy(disk)
        _inject_raw(disk, disk_injections, kit)
        changed.add(outputs[IMAGE_TYPES[image].disk])
    else:
        raw = stage_dir / ".defect.raw"
        target = stage_dir / ".defect.qcow2" if in_box else disk
        try:
            artifact.convert(disk, raw, "raw")
            _inject_raw(raw, disk_injections, kit)
            artifact.convert(raw, target, "qcow2")  # to a .partial, then renamed: a new inode
            raw.unlink()
            if in_box:
                _repack_box(stage_dir / outputs["box"], target, box_injections, kit)
                changed.add(outputs["box"])
            else:
                changed.add(outputs[IMAGE_TYPES[image].disk])
        finally:
            raw.unlink(missing_ok=True)
            if in_box:
                target.unlink(missing_ok=True)
    if "vmdk" in outputs:  # what ships to EC2 beside the raw disk: made again from it
        artifact.convert(disk, stage_dir / outputs["vmdk"], "vmdk", "subformat=streamOptimized")
        for inject in vmdk_injections or []:  # the VMDK alone differs from the verified disk
            inject(stage_dir / outputs["vmdk"], kit)
        changed.add(outputs["vmdk"])
    rerecord(stage_dir, changed)


def box_is_verified() -> bool:
    """Whether the specs look inside the .box (the plugin's `suitcase_box` fixture exists)."""
    import pytest_suitcase.plugin as plugin

    return hasattr(plugin, "suitcase_box")


def free_space_ok(path: Path, gib: float) -> bool:
    return shutil.disk_usage(path).free > gib * 2**30
