"""Parity: a derived image must equal its master except for its image type's declared deltas.

Compared on the images as shipped (mounted read-only): installed packages with versions; every
file, folder and link of the trees in specs/parity.yaml (`/etc`, `/boot`: content hash, type,
mode, owner); the user accounts (passwd, shadow, group, gshadow: password *states*, never a
hash); and the `authorized_keys` of every user. Deltas are globs of paths an image type may
change, users it may add or change, and key files that may only lose keys.

The master's snapshot is taken once per master disk: `master_snapshot` keeps it in
images/.verify/parity/ (JSON, keyed by the disk's verified sha256, the rules, the OS family and
this code), so each derived image's check, in any process, reads it instead of mounting again.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import hashlib
import json
import os
import stat
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from suitcase import sandbox
from suitcase.config import Paths
from suitcase.errors import ConfigError, ToolError
from suitcase.safety import resolve_in_root, walk_one_filesystem

PACKAGE_QUERY = {
    "debian": ["dpkg-query", "-W", "-f", "${Package}\t${Version}\t${db:Status-Abbrev}\n"],
    "el": ["rpm", "-qa", "--qf", "%{NAME}.%{ARCH}\t%{VERSION}-%{RELEASE}\tii\n"],
}
ACCOUNT_FILES = ("/etc/passwd", "/etc/shadow", "/etc/group", "/etc/gshadow")
# Fields of shadow/gshadow that hold a password: only its state is kept ("none", "empty", "hash").
SECRET_FIELD = {"/etc/shadow": 1, "/etc/gshadow": 1}


@dataclass(frozen=True)
class Snapshot:
    packages: dict[str, str]
    files: dict[str, str]
    accounts: dict[str, str] = field(default_factory=dict)
    keys: dict[str, frozenset[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Delta:
    paths: list[str]  # globs: `*` stays within a folder, `**` crosses folders
    users: set[str]
    fewer_keys: list[str]  # globs of authorized_keys files that may only lose keys


@dataclass(frozen=True)
class Rules:
    trees: list[str]
    files: list[str]
    ignore: list[str]
    deltas: dict[str, Delta]

    @classmethod
    def load(cls, paths: Paths) -> Rules:
        path = paths.specs_dir / "parity.yaml"
        try:
            data: Any = yaml.safe_load(path.read_text())
            deltas = {
                str(k): Delta(
                    [str(p) for p in v.get("files", [])],
                    {str(u) for u in v.get("users", [])},
                    [str(p) for p in v.get("fewer_keys", [])],
                )
                for k, v in (data.get("deltas") or {}).items()
            }
            rules = cls(
                [str(t) for t in data.get("trees", [])],
                [str(f) for f in data.get("files", [])],
                [str(i) for i in data.get("ignore", [])],
                deltas,
            )
        except (OSError, yaml.YAMLError, TypeError, AttributeError, ValueError):
            raise ConfigError(
                f"{path}: not a valid parity file "
                "(trees: [...], files: [...], ignore: [...], deltas: {type: {files, users}})"
            ) from None
        if not all(p.startswith("/") for p in [*rules.trees, *rules.files]):
            raise ConfigError(f"{path}: trees and files must be absolute paths")
        return rules


def matches(name: str, patterns: list[str]) -> bool:
    """Whether `name` matches a glob: `*`/`?`/`[...]` within one path element, `**` across."""
    return any(_glob_match(name, pattern) for pattern in patterns)


def _glob_match(name: str, pattern: str) -> bool:
    parts, names = pattern.strip("/").split("/"), name.strip("/").split("/")

    def walk(i: int, j: int) -> bool:
        if i == len(parts):
            return j == len(names)
        if parts[i] == "**":
            return any(walk(i + 1, k) for k in range(j, len(names) + 1))
        return j < len(names) and fnmatch.fnmatchcase(names[j], parts[i]) and walk(i + 1, j + 1)

    return walk(0, 0)


def _identity(path: Path, st: os.stat_result) -> str:
    owner = f"{st.st_uid}:{st.st_gid} {stat.S_IMODE(st.st_mode):04o}"
    if stat.S_ISLNK(st.st_mode):
        return "link -> " + os.readlink(path)
    if stat.S_ISDIR(st.st_mode):
        return f"folder {owner}"
    if stat.S_ISREG(st.st_mode):
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return f"file {owner} sha256:{digest.hexdigest()[:16]}"
    return f"special {stat.S_IFMT(st.st_mode):o} {owner}"


def _inside(root: Path, name: str, follow_last: bool = False) -> Path:
    """`name` of the image mounted at `root`, its links followed inside the image only (a link
    in a hostile image never leads the host's reads out of it: safety.resolve_in_root)."""
    return resolve_in_root(root, name, follow_last)


def _files(root: Path, rules: Rules) -> dict[str, str]:
    found: dict[str, str] = {}
    for tree in rules.trees:
        top = _inside(root, tree)
        if not top.is_dir() or top.is_symlink():
            found[tree] = "absent" if not os.path.lexists(top) else _identity(top, top.lstat())
            continue
        for path in walk_one_filesystem(top):
            # named as the tree was asked for, whatever links inside the image led there
            key = tree.rstrip("/") + "/" + str(path.relative_to(top))
            if not matches(key, rules.ignore):
                found[key] = _identity(path, path.lstat())
    for name in rules.files:
        path = _inside(root, name)
        found[name] = _identity(path, path.lstat()) if os.path.lexists(path) else "absent"
    return found


def _password_state(value: str) -> str:
    bare = value.lstrip("!")
    if value == "":
        return "empty"
    if bare == "" or bare.startswith("*") or bare in ("x", "LK", "NP"):
        return "none"
    return "hash"


def _accounts(root: Path) -> dict[str, str]:
    """`user NAME`/`group NAME` per account file, with password fields reduced to their state."""
    found: dict[str, str] = {}
    for name in ACCOUNT_FILES:
        path = _inside(root, name, follow_last=True)
        if path.is_symlink() or not path.is_file():
            continue
        kind = "user" if name in ("/etc/passwd", "/etc/shadow") else "group"
        for line in path.read_text(errors="replace").splitlines():
            fields = line.split(":")
            if not fields[0] or line.startswith("#"):
                continue
            secret = SECRET_FIELD.get(name)
            if secret is not None and len(fields) > secret:
                fields[secret] = "password " + _password_state(fields[secret])
            found[f"{kind} {fields[0]} ({name})"] = ":".join(fields[1:])
    return found


def _keys(root: Path, accounts: dict[str, str]) -> dict[str, frozenset[str]]:
    """The keys (type and body, hashed) of every user's authorized_keys and authorized_keys2."""
    homes = {"/root"}
    for key, value in accounts.items():
        if key.startswith("user ") and key.endswith("(/etc/passwd)"):
            fields = value.split(":")
            if len(fields) >= 5 and fields[4].startswith("/"):
                homes.add(fields[4])
    found: dict[str, frozenset[str]] = {}
    for home in sorted(homes):
        for name in ("authorized_keys", "authorized_keys2"):
            path = _inside(root, f"{home}/.ssh/{name}")
            if path.is_symlink() or not path.is_file():
                continue
            keys = set()
            for line in path.read_text(errors="replace").splitlines():
                words = line.split()
                if words and not words[0].startswith("#"):
                    keys.add(hashlib.sha256(" ".join(words).encode()).hexdigest()[:16])
            found[f"{home}/.ssh/{name}"] = frozenset(keys)
    return found


def snapshot(root: Path, family: str, rules: Rules) -> Snapshot:
    """Packages, file identities, accounts and keys of the image mounted at `root`."""
    query = PACKAGE_QUERY[family]
    result = sandbox.run(root, query)  # the image's own dpkg-query or rpm, never on the host
    if result.returncode != 0:
        raise ToolError(f"cannot list packages in {root}: {result.stderr.strip()[:200]}")
    packages = {}
    for line in result.stdout.splitlines():
        name, version, status = [*line.split("\t"), "", ""][:3]
        if status.strip().startswith("i"):
            packages[name] = version
    return contents(root, rules, packages)


def contents(root: Path, rules: Rules, packages: dict[str, str]) -> Snapshot:
    """The snapshot of a tree at `root` with its package list already known."""
    accounts = _accounts(root)
    return Snapshot(packages, _files(root, rules), accounts, _keys(root, accounts))


def compare(master: Snapshot, derived: Snapshot, image: str, rules: Rules) -> list[str]:
    """Every difference outside `image`'s declared deltas, one line each (empty: parity holds)."""
    problems = []
    for side, snap in (("the master", master), (image, derived)):
        present = [f for f, identity in snap.files.items() if identity != "absent"]
        if not present or not any(name.startswith("user root ") for name in snap.accounts):
            # two empty snapshots are equal: parity must never hold on nothing compared
            problems.append(f"{side}: nothing to compare (no files or no root account found)")
    for name in sorted(set(master.packages) | set(derived.packages)):
        a, b = master.packages.get(name), derived.packages.get(name)
        if a == b:
            continue
        if a is None:
            problems.append(f"package {name} {b} is in {image} but not in the master")
        elif b is None:
            problems.append(f"package {name} {a} is in the master but not in {image}")
        else:
            problems.append(f"package {name} is {b} in {image} but {a} in the master")
    delta = rules.deltas.get(image, Delta([], set(), []))
    for name in sorted(set(master.files) | set(derived.files)):
        a, b = master.files.get(name, "absent"), derived.files.get(name, "absent")
        if a != b and not matches(name, delta.paths):
            if "absent" not in (a, b):
                what = "differs from the master"
            else:
                what = "is not in the master" if a == "absent" else "is missing, unlike the master"
            problems.append(f"{name} {what} (not a declared {image} delta)")
    for name in sorted(set(master.accounts) | set(derived.accounts)):
        a, b = master.accounts.get(name), derived.accounts.get(name)
        if a != b and name.split()[1] not in delta.users:
            problems.append(f"{name} is {b!r} in {image} but {a!r} in the master")
    for path in sorted(set(master.keys) | set(derived.keys)):
        had, has = master.keys.get(path), derived.keys.get(path)
        if had == has or matches(path, delta.paths):
            continue
        before, after = had or frozenset(), has or frozenset()
        if matches(path, delta.fewer_keys) and has is not None and after <= before:
            continue
        added, removed = len(after - before), len(before - after)
        problems.append(
            f"{path}: {added} key(s) added, {removed} removed against the master "
            f"(not a declared {image} delta)"
        )
    return problems


#: the layout of a stored snapshot; any change to this module's code also makes a new one
SNAPSHOT_FORMAT = 1
_SNAPSHOT = r"[0-9a-f]{16}-[0-9a-f]{64}-[0-9a-f]{16}\.json"


def to_json(snap: Snapshot) -> dict[str, Any]:
    return {
        "packages": snap.packages,
        "files": snap.files,
        "accounts": snap.accounts,
        "keys": {path: sorted(keys) for path, keys in snap.keys.items()},
    }


def from_json(data: Any) -> Snapshot:
    """The snapshot `to_json` wrote (ValueError when `data` is not one, in any detail)."""

    def strings(value: Any) -> dict[str, str]:
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise ValueError("not a mapping of strings")
        return dict(value)

    if not isinstance(data, dict) or not isinstance(data.get("keys"), dict):
        raise ValueError("not a snapshot")
    keys = {}
    for path, found in data["keys"].items():
        if not isinstance(found, list) or not all(isinstance(k, str) for k in found):
            raise ValueError("keys are not lists of strings")
        keys[str(path)] = frozenset(found)
    return Snapshot(
        strings(data.get("packages")),
        strings(data.get("files")),
        strings(data.get("accounts")),
        keys,
    )


@functools.cache
def _code_digest() -> str:
    """This module's code and what it reads images with: a change to it is a new snapshot."""
    digest = hashlib.sha256(str(SNAPSHOT_FORMAT).encode())
    here = Path(__file__).resolve().parent
    for name in ("parity.py", "sandbox.py", "safety.py"):
        digest.update((here / name).read_bytes())
    return digest.hexdigest()


def snapshot_digest(rules: Rules, family: str) -> str:
    """What a snapshot depends on besides the disk: the rules, the OS family, the code."""
    text = json.dumps([asdict(rules), family, _code_digest()], sort_keys=True, default=sorted)
    return hashlib.sha256(text.encode()).hexdigest()


class SnapshotCache:
    """Snapshots of master disks, one file per (stage, key, disk sha256, rules and code digest).

    Taken under a flock, so with several pytest-xdist workers one mounts the master and the
    others wait and read its file. A file is believed only when it is a regular file of the
    effective user that nobody else may write, and it parses into a snapshot naming the same
    sha256 and digest; anything else is taken again and replaced (written atomically, 0600).
    Writing one drops the stage's others; `suitcase clean` drops them all.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def get(
        self,
        stage: str,
        key: str,
        sha256: str,
        family: str,
        rules: Rules,
        take: Callable[[], Snapshot],
    ) -> Snapshot:
        from suitcase.manifest import write_atomic
        from suitcase.verified import cache_folder, drop_entries, entry_name, held

        digest = snapshot_digest(rules, family)
        path = self.folder / entry_name(stage, key, sha256, f"-{digest[:16]}.json")
        with held(cache_folder(self.folder) / ".lock"):
            found = self.load(path, sha256, digest)
            if found is not None:
                return found
            snap = take()
            text = json.dumps({"sha256": sha256, "digest": digest, "snapshot": to_json(snap)})
            with contextlib.suppress(OSError):  # a cache that cannot be written only costs time
                write_atomic(path, text + "\n", 0o600)
                drop_entries(self.folder, stage, _SNAPSHOT, keep=path.name)
        return snap

    @staticmethod
    def load(path: Path, sha256: str, digest: str) -> Snapshot | None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return None  # none yet, or a link: taken again
        with os.fdopen(fd, "rb") as handle:
            st = os.fstat(handle.fileno())
            if (
                not stat.S_ISREG(st.st_mode)
                or st.st_uid != os.geteuid()
                or stat.S_IMODE(st.st_mode) & 0o022
            ):
                return None
            try:
                data = json.loads(handle.read())
                if data["sha256"] != sha256 or data["digest"] != digest:
                    return None
                return from_json(data["snapshot"])
            except (ValueError, KeyError, TypeError):
                return None

    def drop(self, stage: str) -> list[Path]:
        """Remove every snapshot of `stage` (its stage folder was cleaned)."""
        from suitcase.verified import cache_folder, drop_entries, held

        if not self.folder.is_dir():
            return []
        with held(cache_folder(self.folder) / ".lock"):
            return drop_entries(self.folder, stage, _SNAPSHOT)


def snapshot_cache(images_dir: Path) -> SnapshotCache:
    """The workspace's master snapshots (images/.verify/parity/)."""
    from suitcase.verified import verify_dir

    return SnapshotCache(verify_dir(images_dir) / "parity")


def master_snapshot(
    images_dir: Path, stage: str, key: str, disk: Path, sha256: str, family: str, rules: Rules
) -> Snapshot:
    """The snapshot of the master `disk` (its sha256 verified by the caller): read from the
    snapshot cache, else taken once, mounted through the flat cache, and stored."""
    from suitcase.machine import mounted
    from suitcase.verified import flat_cache

    def take() -> Snapshot:
        with mounted(flat_cache(images_dir).raw_of(disk, stage, key, sha256)) as root:
            return snapshot(root, family, rules)

    return snapshot_cache(images_dir).get(stage, key, sha256, family, rules, take)
