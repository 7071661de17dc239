from __future__ import annotations

import hashlib
import os
from pathlib import Path

from suitcase.manifest import (
    Manifest,
    describe_output,
    outputs_intact,
    read_manifest,
    write_atomic,
    write_manifest,
)


def make(tmp_path: Path) -> Manifest:
    (tmp_path / "disk.raw").write_bytes(b"data" * 1000)
    out = describe_output(tmp_path, tmp_path / "disk.raw", "raw")
    return Manifest(
        stage="aws-hvm",
        os="Debian-12-x86_64",
        timestamp="20260101000000",
        key="k" * 64,
        inputs={"a": "b"},
        parent={"stage": "master", "key": "p"},
        outputs=[out],
        tool_versions={"packer": "1.6.6"},
        git_revision="abc",
        started="s",
        finished="f",
        suitcase_version="0.1.0",
    )


def test_round_trip_with_real_checksums(tmp_path: Path) -> None:
    manifest = make(tmp_path)
    write_manifest(tmp_path, manifest)
    back = read_manifest(tmp_path)
    assert back == manifest
    assert back.outputs[0].sha256 == hashlib.sha256(b"data" * 1000).hexdigest()
    assert outputs_intact(tmp_path, back, deep=True) is None


def test_tampered_output_is_noticed(tmp_path: Path) -> None:
    manifest = make(tmp_path)
    (tmp_path / "disk.raw").write_bytes(b"DATA" * 1000)
    assert outputs_intact(tmp_path, manifest) is None  # same size: only the deep check sees it
    assert "sha256" in (outputs_intact(tmp_path, manifest, deep=True) or "")
    (tmp_path / "disk.raw").write_bytes(b"x")
    assert "changed size" in (outputs_intact(tmp_path, manifest) or "")


def test_half_written_manifest_is_not_trusted(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text('{"stage": "master", "os"')
    assert read_manifest(tmp_path) is None


def test_atomic_write_leaves_no_temporary_files(tmp_path: Path) -> None:
    write_atomic(tmp_path / "f.json", "{}")
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_sha256_prefix_is_the_disk_then_zeros(tmp_path: Path) -> None:
    from suitcase.manifest import sha256_prefix

    disk = os.urandom(3 * 1024 * 1024 + 7)
    digest = hashlib.sha256(disk).hexdigest()
    volume = tmp_path / "volume.raw"
    volume.write_bytes(disk)
    os.truncate(volume, 64 * 1024 * 1024)  # a hole to the volume's end
    assert sha256_prefix(volume, len(disk)) == (digest, True)
    with volume.open("r+b") as handle:  # one byte of data past the disk's end
        handle.seek(40 * 1024 * 1024)
        handle.write(b"\1")
    assert sha256_prefix(volume, len(disk)) == (digest, False)
    assert sha256_prefix(volume, len(disk) - 1)[0] != digest
    assert sha256_prefix(volume, 65 * 1024 * 1024) == (None, False)  # shorter than the disk
