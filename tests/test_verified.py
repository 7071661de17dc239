"""What verification trusts: digests (cached by inode and ctime), boxes, VMDKs; real qemu-img."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from suitcase import artifact, manifest, verified
from suitcase.errors import BuildError
from suitcase.manifest import describe_output
from suitcase.verified import (
    ArtifactChanged,
    DigestCache,
    box_problems,
    check_output,
    unpack_box,
    vmdk_holds,
)


def _tamper_same_size(path: Path) -> None:
    """Change one byte in place and put the old mtime back (what `touch -r` would hide)."""
    st = path.stat()
    with path.open("r+b") as handle:
        handle.seek(100)
        old = handle.read(1)
        handle.seek(100)
        handle.write(bytes([old[0] ^ 0xFF]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns


def test_digest_is_cached_and_a_same_size_tamper_is_seen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = tmp_path / "disk.raw"
    disk.write_bytes(os.urandom(300_000))
    cache = DigestCache(tmp_path / "cache.json")
    first = cache.sha256(disk)
    assert first == manifest.sha256_file(disk)
    reads: list[Path] = []
    real = verified.sha256_file
    monkeypatch.setattr(verified, "sha256_file", lambda p: reads.append(p) or real(p))
    assert cache.sha256(disk) == first and reads == []  # answered from the cache
    _tamper_same_size(disk)
    assert cache.sha256(disk) != first and reads == [disk]  # the ctime moved: read again


def test_a_damaged_cache_file_is_only_a_miss(tmp_path: Path) -> None:
    disk = tmp_path / "disk.raw"
    disk.write_bytes(b"x" * 4096)
    (tmp_path / "cache.json").write_text("{not json")
    assert DigestCache(tmp_path / "cache.json").sha256(disk) == manifest.sha256_file(disk)


def test_check_output_names_the_tampered_file(tmp_path: Path) -> None:
    disk = tmp_path / "disk.raw"
    disk.write_bytes(os.urandom(8192))
    output = describe_output(tmp_path, disk, "raw")
    cache = DigestCache(tmp_path / ".verify" / "cache.json")
    assert check_output(tmp_path, output, cache) == output.sha256
    _tamper_same_size(disk)
    with pytest.raises(ArtifactChanged, match=rf"{disk} does not match its manifest: sha256"):
        check_output(tmp_path, output, cache)
    disk.unlink()
    with pytest.raises(ArtifactChanged, match="is missing"):
        check_output(tmp_path, output, cache)


@pytest.fixture
def box(tmp_path: Path) -> Path:
    disk = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "1536M"], check=True)
    return artifact.libvirt_box(disk, tmp_path / "test.box")


def test_box_unpacks_as_vagrant_reads_it(tmp_path: Path, box: Path) -> None:
    folder = unpack_box(box, tmp_path / "unpacked")
    assert sorted(p.name for p in folder.iterdir()) == ["Vagrantfile", "box.img", "metadata.json"]
    assert box_problems(folder) == []
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["virtual_size"] == 2  # 1.5 GiB, rounded up as vagrant-libvirt wants it


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"provider": "virtualbox"}, "provider is 'virtualbox', not 'libvirt'"),
        ({"format": "raw"}, "format is 'raw', not 'qcow2'"),
        ({"virtual_size": 1}, "virtual_size is 1, box.img's virtual size is 2 GiB"),
    ],
)
def test_wrong_box_metadata_is_named(
    tmp_path: Path, box: Path, change: dict[str, object], problem: str
) -> None:
    folder = unpack_box(box, tmp_path / "unpacked")
    meta = json.loads((folder / "metadata.json").read_text())
    (folder / "metadata.json").write_text(json.dumps({**meta, **change}))
    assert any(problem in p for p in box_problems(folder)), box_problems(folder)


def test_a_box_without_vagrantfile_is_named(tmp_path: Path, box: Path) -> None:
    folder = unpack_box(box, tmp_path / "unpacked")
    (folder / "Vagrantfile").unlink()
    assert box_problems(folder) == ["the box holds no Vagrantfile"]


def _tar(path: Path, members: list[tarfile.TarInfo]) -> Path:
    with tarfile.open(path, "w") as tar:
        for member in members:
            data = b"x" * member.size
            tar.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return path


@pytest.mark.parametrize("name", ["../evil", "/etc/evil", "a/../../evil"])
def test_a_member_outside_the_box_folder_is_refused(tmp_path: Path, name: str) -> None:
    member = tarfile.TarInfo(name)
    member.size = 3
    box = _tar(tmp_path / "evil.box", [member])
    with pytest.raises(BuildError, match="lies outside the box"):
        unpack_box(box, tmp_path / "unpacked")
    assert not (tmp_path / "evil").exists()


def test_a_link_in_the_box_is_refused(tmp_path: Path) -> None:
    link = tarfile.TarInfo("box.img")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    with pytest.raises(BuildError, match="is not a regular file"):
        unpack_box(_tar(tmp_path / "link.box", [link]), tmp_path / "unpacked")


def test_unpacking_leaves_zero_blocks_as_holes(tmp_path: Path) -> None:
    raw = tmp_path / "box.img"
    with raw.open("wb") as handle:
        handle.write(b"boot" * 1024)
        handle.truncate(32 * 2**20)
    box = tmp_path / "sparse.box"
    with tarfile.open(box, "w") as tar:  # written out in full: tar is not told about holes
        tar.add(raw, arcname="box.img")
    out = unpack_box(box, tmp_path / "unpacked") / "box.img"
    assert out.read_bytes() == raw.read_bytes()
    assert out.stat().st_blocks * 512 < 2 * 2**20  # 32 MiB apparent, about 1 MiB on disk


def test_vmdk_holds_the_raw_disk_and_a_different_one_is_named(tmp_path: Path) -> None:
    raw = tmp_path / "disk.raw"
    with raw.open("wb") as handle:
        handle.write(os.urandom(2**20))
        handle.truncate(16 * 2**20)
    vmdk = artifact.convert(raw, tmp_path / "disk.vmdk", "vmdk", "subformat=streamOptimized")
    assert vmdk_holds(raw, vmdk) is None
    other = tmp_path / "other.raw"
    other.write_bytes(raw.read_bytes())
    _tamper_same_size(other)
    artifact.convert(other, vmdk, "vmdk", "subformat=streamOptimized")
    assert "disk.vmdk differs from disk.raw" in (vmdk_holds(raw, vmdk) or "")
    vmdk.write_bytes(b"garbage" * 100)
    assert "cannot be compared" in (vmdk_holds(raw, vmdk) or "")
