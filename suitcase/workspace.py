"""The workspace: images/<type>/<os>-<timestamp>/, caches, build keys and build-set locks."""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from suitcase.errors import BusyError, ConfigError
from suitcase.imagetypes import IMAGE_TYPES
from suitcase.safety import remove_tree

_TIMESTAMP = re.compile(r"^\d{12}(\d{2})?$")


def new_timestamp(now: dt.datetime | None = None) -> str:
    """YYYYMMDDhhmmss in UTC."""
    return (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%d%H%M%S")


def check_timestamp(value: str) -> str:
    """Accept YYYYMMDDhhmmss, or YYYYMMDDhhmm as the original's docs showed, if it is real."""
    if not _TIMESTAMP.match(value):
        raise ConfigError(
            f"timestamp '{value}' is not YYYYMMDDhhmmss (14 digits) or YYYYMMDDhhmm (12), "
            "nor 'latest'"
        )
    fmt = "%Y%m%d%H%M%S" if len(value) == 14 else "%Y%m%d%H%M"
    try:
        dt.datetime.strptime(value, fmt)
    except ValueError:
        raise ConfigError(f"timestamp '{value}' is not a real date and time") from None
    return value


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
        path = Path(root if root is not None else os.environ.get("SUITCASE_WORKSPACE", "."))
        path = path.expanduser()
        if path.exists() and not path.is_dir():
            raise ConfigError(f"workspace {path} is not a folder")
        return cls(path.resolve())

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
        resolved = path.resolve()
        if resolved != self.root and self.root not in resolved.parents:
            raise ConfigError(f"{path} is outside the workspace {self.root}")
        return resolved

    def resolve_timestamp(self, os_name: str, value: str | None) -> str:
        """A new timestamp, a checked given one, or the newest build set of `os_name` ('latest')."""
        if value is None:
            return new_timestamp()
        if value == "latest":
            stamps = sorted({b.timestamp for b in self.build_sets(os_name)})
            if not stamps:
                raise ConfigError(f"no build set of {os_name} in {self.images_dir} for 'latest'")
            return stamps[-1]
        return check_timestamp(value)

    def build_sets(self, os_name: str | None = None) -> list[BuildSet]:
        """Every build set found under images/, optionally of one OS, oldest first."""
        found: set[BuildSet] = set()
        for image in IMAGE_TYPES:
            folder = self.images_dir / image
            if not folder.is_dir():
                continue
            for entry in folder.iterdir():
                match = re.match(r"^(?P<os>.+)-(?P<ts>\d{12}|\d{14})$", entry.name)
                if match and (os_name is None or match["os"] == os_name):
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

        Only real folders inside images/ are removed; a symlink is refused, never followed.
        """
        sets = [build_set] if build_set else self.build_sets(os_name)
        targets: list[Path] = []
        for bset in sets:
            for image in images:
                path = self.stage_dir(image, bset)
                if path.is_symlink():
                    raise ConfigError(f"refusing to clean {path}: it is a symlink")
                if path.exists():
                    self.inside(path)  # images/ or images/<type> may be a link out
                    targets.append(path)
        for bset in sets:
            with self.lock(bset):
                for path in targets:
                    if path.name == bset.id:
                        # never follows symlinks or crosses a mount point
                        remove_tree(path)
        return targets


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
