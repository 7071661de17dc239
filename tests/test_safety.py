"""remove_tree never deletes through a mount point (tested with real bind mounts, as root)."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from suitcase.safety import MountedError, mounts_under, remove_tree, remove_tree_quietly

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="bind mounts need root")


@pytest.fixture
def bound(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A precious folder outside the tree, bind-mounted deep inside the tree to be removed."""
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep.txt").write_text("keep me\n")
    tree = tmp_path / "work"
    point = tree / "rootfs" / "dev"
    point.mkdir(parents=True)
    (tree / "rootfs" / "file").write_text("x")
    subprocess.run(["mount", "--bind", str(precious), str(point)], check=True)
    try:
        yield tree, precious
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)


@needs_root
def test_refuses_a_tree_with_a_mount_below_and_deletes_nothing(bound: tuple[Path, Path]) -> None:
    tree, precious = bound
    assert mounts_under(tree) == [tree / "rootfs" / "dev"]
    with pytest.raises(MountedError, match="is mounted there"):
        remove_tree(tree)
    assert (precious / "keep.txt").read_text() == "keep me\n"
    assert (tree / "rootfs" / "file").exists()  # refused up front: nothing half-removed
    assert remove_tree_quietly(tree) is False
    assert (precious / "keep.txt").exists()


@needs_root
def test_refuses_a_mount_point_itself(bound: tuple[Path, Path]) -> None:
    tree, precious = bound
    with pytest.raises(MountedError):
        remove_tree(tree / "rootfs" / "dev")
    assert (precious / "keep.txt").exists()


@needs_root
def test_removes_the_tree_once_unmounted(bound: tuple[Path, Path]) -> None:
    tree, precious = bound
    subprocess.run(["umount", str(tree / "rootfs" / "dev")], check=True)
    remove_tree(tree)
    assert not tree.exists()
    assert (precious / "keep.txt").exists()


def test_symlinks_are_unlinked_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "link").symlink_to(outside)
    (tree / "top-link").symlink_to(outside / "keep.txt")
    remove_tree(tree)
    assert not tree.exists()
    assert (outside / "keep.txt").read_text() == "keep"


def test_a_symlink_given_as_the_tree_is_unlinked_not_its_target(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir()
    (target / "keep.txt").write_text("keep")
    link = tmp_path / "link"
    link.symlink_to(target)
    remove_tree(link)
    assert not link.exists() and (target / "keep.txt").exists()


def test_missing_tree_is_nothing_to_do(tmp_path: Path) -> None:
    remove_tree(tmp_path / "absent")


def test_mountinfo_escapes_are_decoded(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(
        "36 35 98:0 / /mnt/with\\040space rw - ext4 /dev/x rw\n"
        f"37 35 98:0 / {tmp_path}/a\\040b/dev rw - devtmpfs udev rw\n"
    )
    assert mounts_under(tmp_path / "a b", info) == [tmp_path / "a b" / "dev"]


RENAME_EXCHANGE = 2
AT_FDCWD = -100


def _exchange(libc: object, a: bytes, b: bytes) -> None:
    libc.renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE)  # type: ignore[attr-defined]


def test_a_folder_swapped_for_a_link_mid_removal_is_never_followed(tmp_path: Path) -> None:
    """A racer swaps a folder of the tree with a link to a victim folder (renameat2 with
    RENAME_EXCHANGE, in a loop) while the tree is removed: the victim loses nothing. By path
    name (lstat, then scandir and unlink by path) the removal followed the link within a few
    hundred tries; through directory handles it cannot."""
    import ctypes
    import threading
    import time

    libc = ctypes.CDLL(None, use_errno=True)
    victim = tmp_path / "victim"
    victim.mkdir()
    for i in range(20):
        (victim / f"precious{i}").write_text("keep me\n")
    deadline = time.monotonic() + 3
    rounds = 0
    while time.monotonic() < deadline:
        work = tmp_path / f"work{rounds}"
        (work / "sub").mkdir(parents=True)
        for i in range(50):
            (work / "sub" / f"f{i}").write_text("x")
        (work / "link").symlink_to(victim)
        stop = threading.Event()
        a, b = bytes(work / "sub"), bytes(work / "link")

        def race(a: bytes = a, b: bytes = b, stop: threading.Event = stop) -> None:
            while not stop.is_set():
                _exchange(libc, a, b)

        racer = threading.Thread(target=race)
        racer.start()
        try:
            with contextlib.suppress(OSError):  # the race may fail a removal: not the point
                remove_tree(work)
        finally:
            stop.set()
            racer.join()
        remove_tree_quietly(work)
        rounds += 1
        assert sorted(p.name for p in victim.iterdir()) == sorted(f"precious{i}" for i in range(20))
    assert rounds > 20


def test_scratch_lives_in_a_checked_folder_of_ours(tmp_path: Path) -> None:
    """Scratch is never looked for by name in a shared folder: only in the effective user's own
    0700 folder, which is refused when someone else planted it, or a link, in its place."""
    from suitcase.safety import UnsafeFolder, scratch_root

    root = scratch_root(tmp_path)
    assert root == tmp_path / f"suitcase-{os.geteuid()}"
    assert (os.stat(root).st_mode & 0o777, os.stat(root).st_uid) == (0o700, os.geteuid())
    assert scratch_root(tmp_path) == root  # found again, checked again
    root.rmdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    root.symlink_to(elsewhere)
    with pytest.raises(UnsafeFolder, match="is a link"):
        scratch_root(tmp_path)
    root.unlink()
    root.write_text("planted\n")
    with pytest.raises(UnsafeFolder, match="is not a folder"):
        scratch_root(tmp_path)
    root.unlink()
    root.mkdir(mode=0o700)
    os.chown(root, 65534, 65534)
    with pytest.raises(UnsafeFolder, match="belongs to uid 65534"):
        scratch_root(tmp_path)
    os.chown(root, os.geteuid(), os.getegid())
    root.chmod(0o777)
    with pytest.raises(UnsafeFolder, match="mode 777"):
        scratch_root(tmp_path)
    root.chmod(0o750)  # readable by its group: scratch holds keys and logs, 0700 only
    with pytest.raises(UnsafeFolder, match="mode 750: open to group or others"):
        scratch_root(tmp_path)


def test_packer_scratch_is_never_swept_from_the_shared_tmp(tmp_path: Path) -> None:
    """A folder anyone made in /tmp under Packer's scratch name is not Suitcase's to delete."""
    import tempfile

    from suitcase import packer

    planted = Path(tempfile.mkdtemp(prefix=f"{packer.TMP_PREFIX}1-1-"))  # pid 1 is alive
    dead = Path(tempfile.gettempdir()) / f"{packer.TMP_PREFIX}999999999-1-planted"
    dead.mkdir()
    (dead / "keep").write_text("x")
    try:
        assert dead not in packer.stale_temp_dirs()
        with packer.private_tmp() as mine:
            assert mine.parent == Path(tempfile.gettempdir()) / f"suitcase-{os.geteuid()}"
        assert (dead / "keep").exists()
    finally:
        remove_tree(dead)
        remove_tree(planted)
