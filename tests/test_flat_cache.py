"""The flat cache: a verified qcow2 is flattened once per stage key and sha256, then reused.

Small real disks (an ext4 file system made with mkfs.ext4 -d, converted to qcow2); the mount
tests need root (loop devices). A second or so each.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

import suitcase.command
from suitcase.errors import BuildError
from suitcase.machine import mounted
from suitcase.safety import UnsafeFolder
from suitcase.sweep import start_time
from suitcase.verified import (
    ArtifactChanged,
    DigestCache,
    FlatCache,
    stage_cache_name,
)

STAGE = stage_cache_name("master", "Debian-12-x86_64-20260101000000")
KEY = "0123456789abcdef" * 4
SIZE = 8 * 2**20


def make_disk(folder: Path, text: str, name: str = "disk.qcow2") -> Path:
    """A qcow2 holding a bare ext4 file system with /etc/hostname = `text`."""
    tree = folder / f"{name}.tree"
    (tree / "etc").mkdir(parents=True, exist_ok=True)
    (tree / "etc" / "hostname").write_text(text)
    raw = folder / f"{name}.raw"
    subprocess.run(["truncate", "-s", str(SIZE), str(raw)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(tree), str(raw)], check=True)
    disk = folder / name
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(disk)], check=True)
    raw.unlink()
    return disk


@pytest.fixture
def cache(tmp_path: Path) -> FlatCache:
    return FlatCache(tmp_path / "images" / ".verify" / "flat", DigestCache(tmp_path / "d.json"))


@pytest.fixture
def converts(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Every `qemu-img convert` the cache runs."""
    seen: list[list[str]] = []
    real = suitcase.command.run

    def counting(argv: list[str], **kwargs: object) -> suitcase.command.Result:
        if argv[:2] == ["qemu-img", "convert"]:
            seen.append(argv)
        return real(argv, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(suitcase.command, "run", counting)
    return seen


def sha(cache: FlatCache, disk: Path) -> str:
    return cache.digests.sha256(disk)


def same_blocks(raw: Path, disk: Path) -> bool:
    argv = ["qemu-img", "compare", "-f", "raw", "-F", "qcow2", str(raw), str(disk)]
    return subprocess.run(argv, capture_output=True).returncode == 0


def test_flattened_once_then_reused(
    tmp_path: Path, cache: FlatCache, converts: list[list[str]]
) -> None:
    disk = make_disk(tmp_path, "one")
    entry = cache.raw_of(disk, STAGE, KEY, sha(cache, disk))
    assert entry == cache.folder / f"{STAGE}-{KEY[:16]}-{sha(cache, disk)}.raw"
    st = entry.lstat()
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o400
    assert st.st_uid == os.geteuid() and st.st_size == SIZE
    assert stat.S_IMODE(cache.folder.stat().st_mode) == 0o700
    assert same_blocks(entry, disk)
    assert len(converts) == 1
    again = cache.raw_of(disk, STAGE, KEY, sha(cache, disk))
    assert again == entry and again.stat().st_ino == st.st_ino
    assert len(converts) == 1, "a hit converts nothing"
    assert [p.name for p in cache.folder.iterdir() if not p.name.startswith(".")] == [entry.name]


def test_a_changed_disk_is_another_entry_and_drops_the_old(
    tmp_path: Path, cache: FlatCache, converts: list[list[str]]
) -> None:
    disk = make_disk(tmp_path, "one")
    old_sha = sha(cache, disk)
    old = cache.raw_of(disk, STAGE, KEY, old_sha)
    box = make_disk(tmp_path, "x", "box.img")
    other = cache.raw_of(box, "vagrant.S", KEY, sha(cache, box))
    # the disk is rebuilt (or tampered with): same name, another sha256
    disk.unlink()
    make_disk(tmp_path, "two")
    with pytest.raises(ArtifactChanged, match="not the verified"):
        cache.raw_of(disk, STAGE, KEY, old_sha)  # a stale verified sha256 is never taken
    new = cache.raw_of(disk, STAGE, KEY, sha(cache, disk))
    assert new != old and not old.exists(), "one entry per stage"
    assert other.exists(), "another stage's entry stays"
    assert same_blocks(new, disk) and len(converts) == 3


def test_a_killed_writers_partial_is_swept_a_live_ones_kept(
    tmp_path: Path, cache: FlatCache
) -> None:
    disk = make_disk(tmp_path, "one")
    entry = cache.entry(STAGE, KEY, sha(cache, disk))
    cache.folder.mkdir(parents=True, mode=0o700)
    killed = subprocess.Popen(["sleep", "60"])
    dead_start = start_time(killed.pid)
    killed.kill()
    killed.wait()
    dead = cache.folder / f"{entry.name}.{killed.pid}-{dead_start}.partial"
    dead.write_bytes(b"half a disk")
    writer = subprocess.Popen(["sleep", "60"])  # another process, still writing
    try:
        live = cache.folder / f"{entry.name}.{writer.pid}-{start_time(writer.pid)}.partial"
        live.write_bytes(b"being written")
        assert cache.raw_of(disk, STAGE, KEY, sha(cache, disk)) == entry
        assert not dead.exists(), "a dead run's partial is swept"
        assert live.exists(), "a live writer's partial is left alone"
    finally:
        writer.kill()
        writer.wait()


@pytest.mark.parametrize("plant", ["symlink", "mode", "owner", "size"])
def test_a_planted_file_at_the_entrys_name_is_never_trusted(
    tmp_path: Path, cache: FlatCache, plant: str
) -> None:
    disk = make_disk(tmp_path, "genuine")
    entry = cache.entry(STAGE, KEY, sha(cache, disk))
    cache.folder.mkdir(parents=True, mode=0o700)
    decoy = tmp_path / "decoy.raw"
    subprocess.run(["truncate", "-s", str(SIZE), str(decoy)], check=True)
    os.chmod(decoy, 0o400)
    if plant == "symlink":
        entry.symlink_to(decoy)
    else:
        os.link(decoy, entry)
        if plant == "mode":
            os.chmod(entry, 0o644)
        elif plant == "owner":
            os.chown(entry, 65534, 65534)
        else:
            os.truncate(entry, SIZE - 4096)
    assert not FlatCache.trusted(entry, SIZE)
    got = cache.raw_of(disk, STAGE, KEY, sha(cache, disk))
    assert got == entry and not entry.is_symlink()
    assert FlatCache.trusted(entry, SIZE) and same_blocks(entry, disk)
    assert entry.stat().st_ino != decoy.stat().st_ino, "replaced, not written through"
    assert decoy.read_bytes() == bytes(len(decoy.read_bytes())), "the decoy is untouched"


def test_a_folder_others_can_write_is_refused(tmp_path: Path, cache: FlatCache) -> None:
    disk = make_disk(tmp_path, "one")
    cache.folder.mkdir(parents=True)
    os.chmod(cache.folder, 0o777)
    with pytest.raises(UnsafeFolder, match="writable by group or others"):
        cache.raw_of(disk, STAGE, KEY, sha(cache, disk))


def test_a_disk_reading_another_file_is_refused(tmp_path: Path, cache: FlatCache) -> None:
    base = make_disk(tmp_path, "base")
    overlay = tmp_path / "overlay.qcow2"
    argv = ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(base)]
    subprocess.run([*argv, str(overlay)], check=True)
    with pytest.raises(ArtifactChanged, match="backing or data file"):
        cache.raw_of(overlay, STAGE, KEY, sha(cache, overlay))
    assert not cache.folder.exists() or not any(cache.folder.glob("*.raw"))


def test_a_raw_disk_is_mounted_as_it_is(tmp_path: Path, cache: FlatCache) -> None:
    raw = tmp_path / "disk.raw"
    subprocess.run(["truncate", "-s", str(SIZE), str(raw)], check=True)
    assert cache.raw_of(raw, STAGE, KEY, "f" * 64) == raw


def test_drop_removes_the_stages_entries_only(tmp_path: Path, cache: FlatCache) -> None:
    disk = make_disk(tmp_path, "one")
    entry = cache.raw_of(disk, STAGE, KEY, sha(cache, disk))
    other = cache.raw_of(disk, "master.Other-1", KEY, sha(cache, disk))
    assert cache.drop(STAGE) == [entry]
    assert not entry.exists() and other.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts and loop devices need root")
def test_mounted_read_only_from_the_entry(tmp_path: Path, cache: FlatCache) -> None:
    disk = make_disk(tmp_path, "from the cache")
    entry = cache.raw_of(disk, STAGE, KEY, sha(cache, disk))
    before = entry.stat()
    with mounted(entry) as root:
        assert (root / "etc" / "hostname").read_text() == "from the cache"
        with pytest.raises(OSError):
            (root / "etc" / "new").write_text("x")
    after = entry.stat()
    assert (after.st_mtime_ns, after.st_size) == (before.st_mtime_ns, before.st_size)
    with pytest.raises(BuildError, match="cannot mount it writable"), mounted(disk, writable=True):
        pass


def test_clean_drops_the_stages_entries(workspace: Path, home: object) -> None:
    from click.testing import CliRunner

    from suitcase.cli import cli
    from suitcase.parity import snapshot_cache
    from suitcase.verified import flat_cache

    images = workspace / "images"
    set_a, set_b = "Debian-12-x86_64-20260101000000", "Debian-12-x86_64-20260201000000"
    for bset in (set_a, set_b):
        (images / "master" / bset).mkdir(parents=True)
    disk = make_disk(workspace, "one")
    flat = flat_cache(images)
    digest = flat.digests.sha256(disk)
    a = flat.raw_of(disk, stage_cache_name("master", set_a), KEY, digest)
    a_box = flat.raw_of(disk, stage_cache_name("master", set_a, "box"), KEY, digest)
    b = flat.raw_of(disk, stage_cache_name("master", set_b), KEY, digest)
    snaps = snapshot_cache(images).folder
    snaps.mkdir(mode=0o700)
    snap_a = snaps / f"{stage_cache_name('master', set_a)}-{KEY[:16]}-{digest}-{'1' * 16}.json"
    snap_a.write_text("{}")
    result = CliRunner().invoke(
        cli, ["clean", "master", "--os", "Debian-12-x86_64", "--timestamp", "20260101000000"]
    )
    assert result.exit_code == 0, result.output
    assert f"removed {a}" in result.output and f"removed {snap_a}" in result.output
    assert f"removed {a_box}" in result.output
    assert not a.exists() and not a_box.exists() and not snap_a.exists() and b.exists()
