"""What ships is what is verified, on the real built set (offline mode, --suitcase-build never):
a same-size tampered disk fails before any spec, a repacked box whose vagrant key is gone fails
its spec, and a corrupted VMDK fails verification."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from suitcase import artifact
from suitcase.verified import unpack_box
from tests.slow.conftest import BuiltSet, run_specs
from tests.slow.copies import own_copy, replace_with, rerecord

pytestmark = pytest.mark.slow
NEVER = ("--suitcase-mode=offline", "--suitcase-build=never")


def test_a_same_size_tampered_disk_fails_before_any_spec(
    built_set: BuiltSet, tmp_path: Path
) -> None:
    ws = built_set.copy(tmp_path / "ws")
    stage = ws / "images" / "aws-paravirt" / built_set.stage_dir("aws-paravirt").name
    disk = stage / "root.raw"
    own_copy(disk)
    size, mtime = disk.stat().st_size, disk.stat().st_mtime_ns
    with disk.open("r+b") as handle:
        handle.seek(1024 * 1024 * 64)
        handle.write(b"tampered")
    os.utime(disk, ns=(mtime, mtime))
    assert disk.stat().st_size == size
    result = run_specs(ws, "aws-paravirt", *NEVER)
    out = result.stdout
    assert result.returncode != 0, out[-3000:]
    assert f"{disk} does not match its manifest" in out, out[-3000:]
    assert " passed" not in out.splitlines()[-1], out[-500:]  # no spec ran on it
    record = json.loads((stage / "manifest.json").read_text())["extra"]["verification"]
    assert record["passed"] is False and record["file"]["sha256"] is None


def test_a_box_without_the_insecure_key_fails_its_spec(built_set: BuiltSet, tmp_path: Path) -> None:
    ws = built_set.copy(tmp_path / "ws")
    stage = ws / "images" / "vagrant" / built_set.stage_dir("vagrant").name
    box = stage / f"{stage.name}.box"
    with tempfile.TemporaryDirectory(dir=tmp_path) as tmp:
        parts = unpack_box(box, Path(tmp) / "box")
        raw = artifact.convert(parts / "box.img", Path(tmp) / "box.raw", "raw")
        offset, length = artifact.first_partition(raw)
        mnt = Path(tmp) / "mnt"
        mnt.mkdir()
        subprocess.run(
            ["mount", "-o", f"loop,offset={offset},sizelimit={length}", str(raw), str(mnt)],
            check=True,
        )
        try:
            keys = mnt / "home" / "vagrant" / ".ssh" / "authorized_keys"
            assert keys.read_text().strip(), "the box had no key: the defect would be no defect"
            keys.write_text("")
        finally:
            subprocess.run(["umount", str(mnt)], check=True)
        disk = artifact.convert(raw, Path(tmp) / "disk.qcow2", "qcow2")
        repacked = artifact.libvirt_box(disk, Path(tmp) / "repacked.box")
        replace_with(box, repacked)
    rerecord(stage, {box.name})  # the box was packed like this: only the specs can tell
    result = run_specs(
        ws, "vagrant", *NEVER, "-k", "test_vagrant_user_has_the_insecure_key or test_box_metadata"
    )
    out = result.stdout
    assert result.returncode == 1, out[-3000:]
    assert "FAILED" in out and "test_vagrant_user_has_the_insecure_key[vagrant]" in out
    assert "1 failed, 1 passed" in out.splitlines()[-1], out[-1500:]


def test_a_corrupted_vmdk_fails_verification(built_set: BuiltSet, tmp_path: Path) -> None:
    ws = built_set.copy(tmp_path / "ws")
    stage = ws / "images" / "aws-hvm" / built_set.stage_dir("aws-hvm").name
    vmdk = stage / "disk.vmdk"
    corrupted = tmp_path / "corrupted.vmdk"
    shutil.copy(vmdk, corrupted)
    with corrupted.open("r+b") as handle:  # 64 KiB of the compressed grains, inverted
        handle.seek(corrupted.stat().st_size // 2)
        block = handle.read(65536)
        handle.seek(-len(block), 1)
        handle.write(bytes(b ^ 0xFF for b in block))
    replace_with(vmdk, corrupted)
    spec = ("-k", "test_vmdk_holds_the_verified_disk")
    tampered = run_specs(ws, "aws-hvm", *NEVER, *spec)
    assert tampered.returncode == 1 and "disk.vmdk does not match its manifest" in tampered.stdout
    rerecord(stage, {vmdk.name})  # built wrong, manifest consistent: qemu-img compare tells
    wrong = run_specs(ws, "aws-hvm", *NEVER, *spec)
    assert wrong.returncode == 1, wrong.stdout[-3000:]
    assert "disk.vmdk differs from disk.raw" in wrong.stdout or "cannot be compared" in (
        wrong.stdout
    ), wrong.stdout[-3000:]
