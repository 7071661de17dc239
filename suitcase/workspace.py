"""The workspace: images/<type>/<os>-<timestamp>/, caches, build keys and build-set locks."""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from suitcase.errors import BusyError, ConfigError
from suitcase.imagetypes import IMAGE_TYPES
from suitcase.manifest import read_manifest
from suitcase.safety import UnsafeFolder, check_own_folder, mounts_under, remove_tree

_TIMESTAMP = re.compile(r"\A[0-9]{12}([0-9]{2})?\Z")


def new_timestamp(now: dt.datetime | None = None) -> str:
    """YYYYMMDDhhmmss in UTC."""
    return (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%d%H%M%S")


#: A build set stamped later than this after now is a typo (or a clock gone wrong), never taken.
FUTURE_SLACK = dt.timedelta(days=1)


def check_timestamp(value: str, now: dt.datetime | None = None) -> str:
    """Accept YYYYMMDDhhmmss, or YYYYMMDDhhmm as the original's docs showed, if it is real.

    A timestamp more than a day ahead of now is refused: it would be 'latest' for ever after.
    """
    if not _TIMESTAMP.match(value):
        raise ConfigError(
            f"timestamp {value[:40]!r} is not YYYYMMDDhhmmss (14 digits) or YYYYMMDDhhmm (12), "
            "nor 'latest'"
        )
    fmt = "%Y%m%d%H%M%S" if len(value) == 14 else "%Y%m%d%H%M"
    try:
        when = dt.datetime.strptime(value, fmt).replace(tzinfo=dt.UTC)
    except ValueError:
        raise ConfigError(f"timestamp '{value}' is not a real date and time") from None
    if when > (now or dt.datetime.now(dt.UTC)) + FUTURE_SLACK:
        raise ConfigError(
            f"timestamp '{value}' is in the future ({when:%Y-%m-%d %H:%M} UTC); a build set is "
            "stamped with the time it was started"
        )
    return value


def _valid_timestamp(value: str) -> bool:
    try:
        check_timestamp(value)
    except ConfigError:
        return False
    return True


@dataclass(frozen=True)
class BuildSet:
    os: str
    timestamp: str

    @property
    def id(self) -> str:
        return f"{self.os}-{self.timestamp}"


@dataclass(frozen=True)
class Workspace:
    """A folder holding build outputs; nothing outside it is ever written or deleted."""

    root: Path

    @classmethod
    def at(cls, root: Path | str | None) -> Workspace:
        """The workspace at `root` (default: SUITCASE_WORKSPACE, else the current folder)."""
        raw = str(root if root is not None else os.environ.get("SUITCASE_WORKSPACE", "."))
        if not raw.strip():
            raise ConfigError(
                "the workspace is an empty string (--workspace/SUITCASE_WORKSPACE); "
                "leave it out for the current folder"
            )
        if "\0" in raw:
            raise ConfigError(f"workspace {raw!r} is not a valid path")
        try:
            path = Path(raw).expanduser()
        except RuntimeError:  # Python's answer for ~user of a user that does not exist
            raise ConfigError(f"workspace {raw}: no such user {raw.split('/')[0]!r}") from None
        try:
            resolved = path.resolve()
            if resolved.exists() and not resolved.is_dir():
                raise ConfigError(f"workspace {path} is not a folder")
        except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python < 3.13)
            raise ConfigError(f"workspace {path} cannot be used ({_why(exc)})") from None
        workspace = cls(resolved)
        try:
            check_own_folder(resolved, "workspace")
            check_own_folder(workspace.images_dir, "images folder")
            check_own_folder(workspace.keys_dir, "keys folder")
        except UnsafeFolder as exc:
            raise ConfigError(str(exc)) from None
        return workspace

    @property
    def images_dir(self) -> Path:
        return self.root / "images"

    @property
    def cache_dir(self) -> Path:
        return self.root / "packer_cache"

    @property
    def keys_dir(self) -> Path:
        return self.root / "keys"

    def stage_dir(self, image: str, build_set: BuildSet) -> Path:
        return self.images_dir / image / build_set.id

    def inside(self, path: Path) -> Path:
        """`path` resolved, or an error if it lies outside the workspace (symlinks followed)."""
        try:
            resolved = path.resolve()
        except (OSError, RuntimeError) as exc:
            raise ConfigError(f"{path} cannot be resolved ({_why(exc)})") from None
        if resolved != self.root and self.root not in resolved.parents:
            raise ConfigError(f"{path} is outside the workspace {self.root}")
        return resolved

    def check_writable(self, folder: Path | None = None) -> None:
        """Refuse (one line) before a verb writes anything where it cannot (default: the root)."""
        folder = folder or self.root
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(dir=folder, prefix=".suitcase-probe.")
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            what = "workspace" if folder == self.root else "folder"
            raise ConfigError(f"{what} {folder} is not writable ({_why(exc)})") from None

    def resolve_timestamp(self, os_name: str, value: str | None) -> str:
        """A new timestamp, a checked given one, or the newest build set of `os_name` ('latest')."""
        if value is None:
            return new_timestamp()
        if value == "latest":
            stamp = self.latest(os_name)
            if stamp is None:
                raise ConfigError(
                    f"no build set of {os_name} with a completed stage in {self.images_dir} for "
                    "'latest' (name an unfinished one by its timestamp)"
                )
            return stamp
        return check_timestamp(value)

    def latest(self, os_name: str) -> str | None:
        """The newest build set of `os_name` with a completed stage (a valid manifest), if any."""
        for bset in reversed(self.build_sets(os_name)):
            if any(read_manifest(self.stage_dir(image, bset)) for image in IMAGE_TYPES):
                return bset.timestamp
        return None

    def exists(self, build_set: BuildSet) -> bool:
        """Has any stage of `build_set` a folder here (built, building or failed)?"""
        return any(os.path.lexists(self.stage_dir(image, build_set)) for image in IMAGE_TYPES)

    def build_sets(self, os_name: str | None = None) -> list[BuildSet]:
        """Every build set found under images/, optionally of one OS, oldest first.

        Folders whose timestamp is no real date (or lies in the future) are no build set.
        """
        found: set[BuildSet] = set()
        for image in IMAGE_TYPES:
            folder = self.images_dir / image
            if not folder.is_dir():
                continue
            for entry in folder.iterdir():
                match = re.match(r"^(?P<os>.+)-(?P<ts>\d{12}|\d{14})$", entry.name)
                if (
                    match
                    and (os_name is None or match["os"] == os_name)
                    and _valid_timestamp(match["ts"])
                ):
                    found.add(BuildSet(match["os"], match["ts"]))
        return sorted(found, key=lambda b: (b.timestamp, b.os))

    @contextlib.contextmanager
    def lock(self, build_set: BuildSet, wait: float = 0) -> Iterator[None]:
        """Hold the build set; a second holder waits `wait` seconds (-1: forever), then refuses.

        The lock file is removed on release, so none accumulate under images/.locks; the kernel
        drops the lock with its holder however the holder dies.
        """
        locks = self.images_dir / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        fd = _acquire(locks / f"{build_set.id}.lock", wait)
        if fd is None:
            raise BusyError(
                f"build set {build_set.id} is in use by another suitcase process; "
                "wait for it to finish or pick another --timestamp"
            )
        try:
            yield
        finally:
            _release(locks / f"{build_set.id}.lock", fd)

    def clean(self, images: list[str], build_set: BuildSet | None, os_name: str) -> list[Path]:
        """Remove the stage folders of `images` for one build set (or every set of `os_name`).

        All or nothing: every selected folder is checked first (a symlink, a path outside the
        workspace, a mount below it, a set in use by another process), and only when all pass is
        anything removed. When a set loses its last stage folder its build keys (keys/<set>/) and
        reports (reports/<kind>-<set>.<ext>) go too. Only the sets that lose something are
        locked. Returns what was removed.
        """
        targets = self.clean_targets(images, build_set, os_name)
        with contextlib.ExitStack() as held:
            for bset in targets:
                try:
                    held.enter_context(self.lock(bset))
                except BusyError as exc:
                    raise BusyError(f"{exc} (nothing was removed)") from None
            removed: list[Path] = []
            for paths in targets.values():
                for path in paths:
                    remove_tree(path)  # never follows symlinks or crosses a mount point
                    removed.append(path)
        return removed

    def clean_targets(
        self, images: list[str], build_set: BuildSet | None, os_name: str
    ) -> dict[BuildSet, list[Path]]:
        """What `clean` would remove, per build set, after checking every path (or an error)."""
        sets = [build_set] if build_set else self.build_sets(os_name)
        targets: dict[BuildSet, list[Path]] = {}
        for bset in sets:
            paths = [
                self.stage_dir(image, bset)
                for image in images
                if os.path.lexists(self.stage_dir(image, bset))
            ]
            if not paths:
                continue
            others = [
                image
                for image in IMAGE_TYPES
                if image not in images and os.path.lexists(self.stage_dir(image, bset))
            ]
            if not others:  # the whole set goes: its build key and reports with it
                paths += [p for p in [self.keys_dir / bset.id] if os.path.lexists(p)]
                paths += self._reports(bset)
            targets[bset] = paths
        for paths in targets.values():
            for path in paths:
                self._check_removable(path)
        return targets

    def _reports(self, bset: BuildSet) -> list[Path]:
        folder = self.root / "reports"
        if not folder.is_dir():
            return []
        # <kind>-<set>[-<part>].<ext>: the kind is one word, so another OS's set never matches,
        # and a part starts with a letter, so a longer timestamp never does (junit-<set>-ami.xml)
        pattern = re.compile(rf"[a-z]+-{re.escape(bset.id)}(-[a-z][a-z0-9-]*)?\.[a-z]+")
        return sorted(p for p in folder.iterdir() if pattern.fullmatch(p.name))

    def _check_removable(self, path: Path) -> None:
        if path.is_symlink():
            raise ConfigError(f"refusing to clean {path}: it is a symlink (nothing was removed)")
        self.inside(path)  # images/ or images/<type> may be a link out
        mounted = mounts_under(path)
        if mounted:
            raise ConfigError(
                f"refusing to clean {path}: {mounted[0]} is mounted there (nothing was removed)"
            )


def _why(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc)


def _acquire(path: Path, wait: float) -> int | None:
    """An exclusive flock on `path` (its open descriptor), or None after `wait` seconds.

    A holder removes the file on release, so the file we opened may have been unlinked before
    we locked it: then the lock guards nothing and we start again on the path as it is now.
    """
    deadline = None if wait < 0 else time.monotonic() + wait
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if deadline is not None and time.monotonic() >= deadline:
                return None
            time.sleep(0.05)
            continue
        try:
            current = os.stat(path).st_ino
        except FileNotFoundError:
            current = None
        if current == os.fstat(fd).st_ino:
            return fd
        os.close(fd)


def _release(path: Path, fd: int) -> None:
    # unlink while still holding it: a waiter that opened the old file sees it gone and retries
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    os.close(fd)
