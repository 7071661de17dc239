"""Deleting safely: nothing Suitcase removes is ever followed across a mount point.

`shutil.rmtree` descends into mount points: a build killed mid-bootstrap leaves the host's /dev,
/proc or a bind mount under its work folder, and a plain rmtree of that folder would delete
through them. `remove_tree` refuses instead, naming the mount.

>>> remove_tree(Path("/nonexistent-suitcase-folder"))  # a missing folder is nothing to do
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from suitcase.errors import SuitcaseError

MOUNTINFO = Path("/proc/self/mountinfo")


class MountedError(SuitcaseError):
    """A folder to be removed has a file system mounted at or below it."""


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo octal."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mount_points(mountinfo: Path = MOUNTINFO) -> list[Path]:
    """Every mount point of this process's mount namespace, in mount order."""
    points = []
    for line in mountinfo.read_text().splitlines():
        fields = line.split()
        if len(fields) > 4:
            points.append(Path(_unescape(fields[4])))
    return points


def mounts_under(path: Path, mountinfo: Path = MOUNTINFO) -> list[Path]:
    """Mount points at `path` or anywhere below it, deepest first (the order to unmount them)."""
    top = Path(os.path.realpath(path))
    found = [p for p in mount_points(mountinfo) if p == top or top in p.parents]
    return sorted(set(found), key=lambda p: len(p.parts), reverse=True)


def remove_tree(path: Path) -> None:
    """Remove `path` and everything below it, never crossing into another file system.

    Refuses (MountedError, nothing removed) when anything is mounted at or below `path`; while
    walking, a folder on another device is refused too (a mount made during the walk). Symlinks
    are unlinked, never followed; a symlink as `path` itself is unlinked, not its target.
    """
    try:
        top = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(top.st_mode):
        os.unlink(path)
        return
    mounted = mounts_under(path)
    if mounted:
        raise MountedError(
            f"refusing to delete {path}: {mounted[0]} is mounted there "
            f"({len(mounted)} mount(s) below it); unmount them first"
        )
    _remove(str(path), top.st_dev)


def _remove(folder: str, device: int) -> None:
    with os.scandir(folder) as entries:
        children = list(entries)
    for entry in children:
        info = entry.stat(follow_symlinks=False)
        if stat.S_ISDIR(info.st_mode):
            if info.st_dev != device or os.path.ismount(entry.path):
                raise MountedError(f"refusing to delete {entry.path}: it is a mount point")
            _remove(entry.path, device)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
    os.rmdir(folder)


def remove_tree_quietly(path: Path) -> bool:
    """remove_tree for clean-up paths that must not raise: False when something was kept."""
    try:
        remove_tree(path)
    except (OSError, MountedError):
        return False
    return True
