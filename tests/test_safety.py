"""remove_tree never deletes through a mount point (tested with real bind mounts, as root)."""

from __future__ import annotations

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
