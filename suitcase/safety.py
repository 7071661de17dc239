"""Deleting safely: nothing Suitcase removes is ever followed across a mount point.

`shutil.rmtree` descends into mount points: a build killed mid-bootstrap leaves the host's /dev,
/proc or a bind mount under its work folder, and a plain rmtree of that folder would delete
through them. `remove_tree` refuses instead, naming the mount.

>>> remove_tree(Path("/nonexistent-suitcase-folder"))  # a missing folder is nothing to do
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from suitcase.errors import SuitcaseError

MOUNTINFO = Path("/proc/self/mountinfo")


class MountedError(SuitcaseError):
    """A folder to be removed has a file system mounted at or below it."""


class UnsafeFolder(SuitcaseError):
    """A folder Suitcase keeps its scratch in is a link, another user's, or open to others."""


def scratch_root(base: Path | None = None) -> Path:
    """The effective user's own 0700 folder under the temporary folder, checked, for scratch
    (Packer's TMPDIR, verification VMs' overlays and copies): scratch is never looked for by name
    in the world-writable /tmp, where anyone can plant a folder or a link by that name.

    >>> scratch_root().name == f"suitcase-{os.geteuid()}"
    True
    """
    import tempfile

    root = Path(base or tempfile.gettempdir()) / f"suitcase-{os.geteuid()}"
    with contextlib.suppress(FileExistsError):
        os.mkdir(root, 0o700)
    check_own_folder(root, "scratch folder", open_to=0o077)
    return root


#: what Suitcase creates is never writable by group or others, whatever umask it was started with
UMASK = 0o022


def own_modes() -> None:
    """Files and folders Suitcase creates get its own modes (0755/0644 at most), not the
    caller's: under `umask 000` a stage folder would be 0777 and a fetched disk 0666."""
    os.umask(UMASK)


def check_own_folder(path: Path, what: str, open_to: int = 0o022) -> None:
    """Refuse (one line) a folder another user could change under Suitcase: a link, not a
    folder, not the effective user's, or with any of the `open_to` mode bits (by default:
    writable by group or others). A folder that does not exist yet passes: Suitcase makes it
    with its own modes."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise UnsafeFolder(f"{what} {path} cannot be checked ({exc.strerror})") from None
    if stat.S_ISLNK(st.st_mode):
        raise UnsafeFolder(f"{what} {path} is a link: Suitcase works only in real folders")
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeFolder(f"{what} {path} is not a folder")
    check_owned(st, path, what, open_to)


def check_owned(st: os.stat_result, path: Path, what: str, open_to: int = 0o022) -> None:
    """Refuse (one line) what `st` describes unless the effective user owns it and none of the
    `open_to` mode bits is set: only then can nobody else have written it."""
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid != os.geteuid():
        raise UnsafeFolder(
            f"{what} {path} belongs to uid {st.st_uid}, not to this user ({os.geteuid()}): "
            "its owner could change what Suitcase builds, kills and deletes there"
        )
    if mode & open_to:
        raise UnsafeFolder(
            f"{what} {path} has mode {mode:o}: open to group or others, who could change what "
            f"Suitcase builds, kills and deletes there (chmod go-rwx {path})"
            if open_to & 0o044
            else f"{what} {path} has mode {mode:o}: writable by group or others, who could "
            f"change what Suitcase builds, kills and deletes there (chmod go-w {path})"
        )


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
    walking, a folder on another mount is refused too (a mount made during the walk). Symlinks
    are unlinked, never followed; a symlink as `path` itself is unlinked, not its target. The
    walk works through directory handles (`O_NOFOLLOW`, `scandir(fd)`, `unlink(dir_fd=)`): a
    folder swapped for a link while it runs is never followed (a racer in a shared folder could
    otherwise point a removal by path anywhere).
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
    parent = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fd = _open_folder(path.name, parent)
        if fd is None:  # swapped for something else since the lstat: that is unlinked, no more
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path.name, dir_fd=parent)
            return
        try:
            _remove_at(fd, str(path), _mount_id(fd))
        finally:
            os.close(fd)
        os.rmdir(path.name, dir_fd=parent)
    finally:
        os.close(parent)


def _open_folder(name: str, parent: int) -> int | None:
    """A handle on the folder `name` in `parent`, or None if it is not (or no longer) a folder."""
    try:
        return os.open(
            name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent
        )
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            return None
        raise


def _mount_id(fd: int) -> int:
    """The mount a handle is on (/proc/self/fdinfo): a bind mount shares its device number."""
    for line in Path(f"/proc/self/fdinfo/{fd}").read_text().splitlines():
        if line.startswith("mnt_id:"):
            return int(line.split()[1])
    return -1


def _remove_at(fd: int, where: str, mount: int) -> None:
    with os.scandir(fd) as entries:
        children = list(entries)
    for entry in children:
        info = entry.stat(follow_symlinks=False)
        if not stat.S_ISDIR(info.st_mode):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.name, dir_fd=fd)
            continue
        child = _open_folder(entry.name, fd)
        if child is None:  # swapped for a link or a file since the scan: unlink it, never follow
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.name, dir_fd=fd)
            continue
        try:
            if _mount_id(child) != mount:
                raise MountedError(f"refusing to delete {where}/{entry.name}: it is a mount point")
            _remove_at(child, f"{where}/{entry.name}", mount)
        finally:
            os.close(child)
        os.rmdir(entry.name, dir_fd=fd)


def remove_tree_quietly(path: Path) -> bool:
    """remove_tree for clean-up paths that must not raise: False when something was kept."""
    try:
        remove_tree(path)
    except (OSError, MountedError):
        return False
    return True


def write_beneath(root: Path, relative: str, text: str, mode: int = 0o644) -> None:
    """Create `relative` (a fresh file, replacing any entry of that name) under `root`, an
    untrusted tree such as a mounted image, through directory handles opened O_NOFOLLOW: a
    link anywhere on the way (an image's /etc may point at the host's) is refused, never
    followed. Missing folders are made (0755)."""
    parts = [p for p in relative.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        raise UnsafeFolder(f"{relative!r} is not a plain relative path")
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(root, flags)
    try:
        for depth, name in enumerate(parts[:-1]):
            try:
                inner = os.open(name, flags, dir_fd=fd)
            except FileNotFoundError:
                os.mkdir(name, 0o755, dir_fd=fd)
                inner = os.open(name, flags, dir_fd=fd)
            except OSError as exc:
                where = "/" + "/".join(parts[: depth + 1])
                raise UnsafeFolder(
                    f"{where} in {root} is not a folder (a link?): nothing written through it "
                    f"({exc.strerror})"
                ) from None
            os.close(fd)
            fd = inner
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            os.unlink(parts[-1], dir_fd=fd)
        out = os.open(
            parts[-1], os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode, dir_fd=fd
        )
        with os.fdopen(out, "w") as handle:
            handle.write(text)
    finally:
        os.close(fd)


#: links followed in one path before resolve_in_root gives up (the kernel's own limit)
MAX_LINKS = 40


def walk_one_filesystem(top: Path) -> Iterator[Path]:
    """Every folder, file and link below `top`, links never followed and never into another
    file system (a bound /proc, a separate /boot/efi): for reading a mounted image."""
    device = top.stat().st_dev
    for folder, dirs, names in os.walk(top):
        here = Path(folder)
        dirs[:] = [d for d in dirs if (here / d).lstat().st_dev == device]
        for name in [*dirs, *names]:
            yield here / name


def resolve_in_root(root: Path, name: str, follow_last: bool = True) -> Path:
    """`name`, a path as an image sees it, resolved the way the image itself would: every link
    is followed inside `root` (an absolute target starts again at `root`, `..` stops there),
    never out of it. A mounted image's `/etc` linking to `/` means its own root, not the host's.

    With `follow_last` false the last element is left as it is (to lstat a link itself). The
    tree must not change meanwhile: Suitcase reads images through read-only mounts.
    """
    parts = [p for p in name.split("/") if p not in ("", ".")]
    done: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if done:
                done.pop()
            continue
        candidate = root.joinpath(*done, part)
        if (parts or follow_last) and os.path.islink(candidate):
            links += 1
            if links > MAX_LINKS:
                raise UnsafeFolder(f"{name} in {root}: more than {MAX_LINKS} links")
            target = os.readlink(candidate)
            if target.startswith("/"):
                done = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        done.append(part)
    return root.joinpath(*done)
