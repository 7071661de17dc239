"""Every file explained: each file of an image is owned by a package and unmodified, or written by
Suitcase and declared, or in a declared runtime-state path; anything else is named, with why.

Read from the image as shipped (mounted read-only) by host code only: the image's package
database is parsed here, never queried with the image's programs, and no link of the image is
followed out of it (safety.resolve_in_root, lstat, os.walk without following links).

- Owned and unmodified, as `dpkg --verify` judges (content against the package's md5sums, a
  conffile against the md5 in dpkg's status): dpkg records no mode or owner to verify against,
  so those are judged by the whole-tree checks below. Paths are compared as the image resolves
  them (Debian 12's merged /usr: a package listing /bin/sh owns /usr/bin/sh), diversions
  followed.
- Declared (`specs/explained.yaml`): what Suitcase writes, per family and image type, each with
  its kind, mode, owner and a content check (`contains`, or `empty`); runtime-state globs; the
  privileged files (setuid/setgid, file capabilities) the family's packages ship; a size budget
  for everything not owned by a package.
- Budget: the bytes of every file no package owns (declared, runtime state, and unexplained:
  a crash dump is named here too) stay within the image type's budget.
- Whole tree: privilege only where declared, no world-writable folder without the sticky bit and
  no world-writable file, no private key or password hash readable by every user.

EL (rpm's database) is not read here yet: its specs skip, planned, with that reason.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from suitcase.errors import ConfigError
from suitcase.safety import UnsafeFolder, resolve_in_root, walk_one_filesystem

#: the families whose package database is read here
FAMILIES = ("debian",)
#: a file that starts as a PEM or OpenSSH private key does is a secret (never readable by all)
SECRET_START = b"-----BEGIN "
SECRET_MARK = b"PRIVATE KEY-----"
_SECRET_HEAD = 4096
_CAPABILITY = "security.capability"


@dataclass(frozen=True)
class Written:
    """A path Suitcase writes into an image, and what it must look like."""

    pattern: str
    kind: str  # file, folder, link
    mode: str | None = None  # "0644"
    owner: str | None = None  # "0:0"
    contains: tuple[str, ...] = ()
    empty: bool = False
    target: str | None = None  # a link's target
    #: the file's lines, comments and blank lines aside, exactly (none: not checked)
    lines: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Rules:
    written: tuple[Written, ...]
    runtime: tuple[str, ...]
    privileged: frozenset[str]
    capabilities: frozenset[str]
    budget: int  # bytes of files not owned by a package
    #: folders only (a file or link there is not explained by it)
    runtime_folders: tuple[str, ...] = ()
    #: links only, each glob with the globs its target may match (enablement links, ...)
    links: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass
class Entry:
    path: str  # as the image names it: /usr/bin/sh
    kind: str  # file, folder, link, special
    mode: int
    uid: int
    gid: int
    size: int
    md5: str | None = None
    secret: bool = False
    capability: bool = False
    target: str | None = None


@dataclass
class Packages:
    """What the image's dpkg database says: owner of each path, and its recorded md5."""

    owner: dict[str, str] = field(default_factory=dict)
    md5: dict[str, str] = field(default_factory=dict)
    conffiles: set[str] = field(default_factory=set)


@functools.lru_cache(maxsize=4096)
def _pattern(glob: str) -> re.Pattern[str]:
    """`*` and `?` within one folder, `**` across folders (`/**/` also matches `/`), `[...]`."""
    out, i = [], 0
    while i < len(glob):
        if glob.startswith("/**/", i):
            out.append("/(?:.*/)?")
            i += 4
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif glob[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        elif glob[i] == "[" and "]" in glob[i + 1 :]:
            end = glob.index("]", i + 1)
            out.append("[" + glob[i + 1 : end].replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def glob_match(name: str, pattern: str) -> bool:
    return _pattern(pattern).match(name) is not None


def load_rules(path: Path, family: str, image: str) -> Rules:
    """The rules for `image` of `family`: the family's common part, then the image type's."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the declared files: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get(family), dict):
        raise ConfigError(f"{path}: no section for the {family} family")
    section: dict[str, Any] = data[family]
    parts = [section.get("common") or {}, section.get(image) or {}]
    written: list[Written] = []
    runtime: list[str] = []
    folders: list[str] = []
    links: list[tuple[str, tuple[str, ...]]] = []
    privileged: set[str] = set()
    capabilities: set[str] = set()
    for part in parts:
        for pattern, spec in (part.get("written") or {}).items():
            spec = spec or {}
            known = {"kind", "mode", "owner", "contains", "empty", "target", "lines", "why"}
            unknown = set(spec) - known
            if unknown or not str(pattern).startswith("/"):
                raise ConfigError(f"{path}: {family}/{image}: bad entry {pattern!r} {unknown}")
            written.append(
                Written(
                    str(pattern),
                    str(spec.get("kind", "file")),
                    spec.get("mode"),
                    spec.get("owner", "0:0"),
                    tuple(spec.get("contains") or ()),
                    bool(spec.get("empty", False)),
                    spec.get("target"),
                    None if spec.get("lines") is None else tuple(spec["lines"]),
                )
            )
        runtime += [str(p) for p in part.get("runtime") or ()]
        folders += [str(p) for p in part.get("runtime_folders") or ()]
        for pattern, targets in (part.get("links") or {}).items():
            if not isinstance(targets, list) or not targets:
                raise ConfigError(f"{path}: {family}/{image}: links {pattern!r}: list targets")
            links.append((str(pattern), tuple(str(t) for t in targets)))
        privileged |= {str(p) for p in part.get("privileged") or ()}
        capabilities |= {str(p) for p in part.get("capabilities") or ()}
    budgets = section.get("budget_mib") or {}
    budget = int(budgets.get(image, budgets.get("default", 0))) * 1024 * 1024
    return Rules(
        tuple(written),
        tuple(runtime),
        frozenset(privileged),
        frozenset(capabilities),
        budget,
        tuple(folders),
        tuple(links),
    )


def _canonical(root: Path, name: str, cache: dict[str, str]) -> str:
    """`name` as the image resolves its folders (the last element kept as it is)."""
    folder, _, base = name.rstrip("/").rpartition("/")
    if folder not in cache:
        relative = str(resolve_in_root(root, folder or "/", follow_last=True).relative_to(root))
        cache[folder] = "/" + ("" if relative == "." else relative)
    parent = cache[folder].rstrip("/")
    return f"{parent}/{base}" if base else parent or "/"


def _lines(path: Path) -> Iterator[str]:
    """Lines of a database file of the image (a regular file, never through a link)."""
    if path.is_symlink() or not path.is_file():
        return
    with path.open("rb") as handle:
        for raw in handle:
            yield raw.decode("utf-8", "surrogateescape").rstrip("\n")


def packages(root: Path) -> Packages:
    """The dpkg database of the image mounted at `root`, paths as the image resolves them."""
    try:
        return _packages(root)
    except (UnsafeFolder, OSError) as exc:  # a link loop, a folder where a file should be
        raise ConfigError(f"cannot read the image's package database: {exc}") from None


def _packages(root: Path) -> Packages:
    info = resolve_in_root(root, "/var/lib/dpkg/info")
    found = Packages()
    cache: dict[str, str] = {}
    if not info.is_dir():
        return found
    diverted: dict[str, str] = {}
    lines = list(_lines(resolve_in_root(root, "/var/lib/dpkg/diversions")))
    for index in range(0, len(lines) - 2, 3):  # from, to, package
        diverted[lines[index]] = lines[index + 1]
    for entry in sorted(os.listdir(info)):
        package, _, suffix = entry.rpartition(".")
        package = package.split(":")[0]
        if suffix == "list":
            for name in _lines(info / entry):
                if name and name != "/.":
                    name = diverted.get(name, name)
                    canonical = _canonical(root, name, cache)
                    found.owner.setdefault(canonical, package)
                    if os.path.islink(root / canonical.lstrip("/")):  # /lib64 owns /usr/lib64
                        where = resolve_in_root(root, canonical, follow_last=True)
                        if where.is_dir() and not where.is_symlink():
                            alias = str(where.relative_to(root))
                            found.owner.setdefault("/" + ("" if alias == "." else alias), package)
        elif suffix == "md5sums":
            for line in _lines(info / entry):
                digest, _, name = line.partition("  ")
                if name:
                    name = diverted.get("/" + name, "/" + name)
                    found.md5[_canonical(root, name, cache)] = digest
    status = resolve_in_root(root, "/var/lib/dpkg/status")
    conffiles = False
    for line in _lines(status):
        if not line.startswith(" "):
            conffiles = line.startswith("Conffiles:")
            continue
        if conffiles:
            fields = line.split()
            if len(fields) >= 2 and fields[1] != "newconffile":
                name = _canonical(root, fields[0], cache)
                found.md5[name] = fields[1]
                found.conffiles.add(name)
    return found


def entries(root: Path) -> Iterator[Entry]:
    """Every folder, file and link of the file system mounted at `root` (never another one),
    regular files read once for their md5 and their first bytes."""
    for path in walk_one_filesystem(root):
        st = path.lstat()
        rel = "/" + str(path.relative_to(root))
        entry = Entry(rel, "special", st.st_mode, st.st_uid, st.st_gid, st.st_size)
        if stat.S_ISDIR(st.st_mode):
            entry.kind = "folder"
        elif stat.S_ISLNK(st.st_mode):
            entry.kind, entry.target = "link", os.readlink(path)
        elif stat.S_ISREG(st.st_mode):
            entry.kind = "file"
            _read(path, entry)
        yield entry


def _read(path: Path, entry: Entry) -> None:
    digest = hashlib.md5(usedforsecurity=False)
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NOCTTY)
    with os.fdopen(fd, "rb") as handle:
        head = handle.read(_SECRET_HEAD)
        digest.update(head)
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
        try:
            entry.capability = bool(os.getxattr(handle.fileno(), _CAPABILITY))
        except OSError:
            entry.capability = False
    entry.md5 = digest.hexdigest()
    first = head.lstrip().split(b"\n", 1)[0]
    key = first.startswith(SECRET_START) and SECRET_MARK in first
    entry.secret = key or _password_hashes(head)


def _password_hashes(head: bytes) -> bool:
    """A shadow-like file: lines whose second field is a crypt hash ($id$...)."""
    for line in head.splitlines()[:50]:
        fields = line.split(b":")
        if len(fields) >= 8 and fields[1].lstrip(b"!").startswith(b"$"):
            return True
    return False


@dataclass
class Findings:
    """What `check` found, by kind; each item one line naming the path and why."""

    unexplained: list[str] = field(default_factory=list)
    privilege: list[str] = field(default_factory=list)
    writable: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    budget: list[str] = field(default_factory=list)


def _mode(entry: Entry) -> str:
    return f"{stat.S_IMODE(entry.mode):04o}"


def _declared(entry: Entry, rule: Written) -> str | None:
    """Why `entry` does not match its declaration (None: it does)."""
    if entry.kind != rule.kind:
        return f"a {entry.kind}, declared a {rule.kind}"
    if rule.mode is not None and _mode(entry) != rule.mode:
        return f"mode {_mode(entry)}, declared {rule.mode}"
    if rule.owner is not None and f"{entry.uid}:{entry.gid}" != rule.owner:
        return f"owner {entry.uid}:{entry.gid}, declared {rule.owner}"
    if rule.target is not None and entry.target != rule.target:
        return f"links to {entry.target}, declared {rule.target}"
    return None


def _content(root: Path, entry: Entry, rule: Written) -> str | None:
    if rule.empty and entry.size != 0:
        return f"{entry.size} bytes, declared empty"
    if not rule.contains and rule.lines is None:
        return None
    text = resolve_in_root(root, entry.path, follow_last=False).read_bytes()
    missing = [c for c in rule.contains if c.encode() not in text]
    if missing:
        return f"lacks the declared {missing[0]!r}"
    if rule.lines is not None:
        lines = [
            line.strip()
            for line in text.decode("utf-8", "replace").splitlines()
            if line.strip() and not line.lstrip().startswith("#")
        ]
        extra = [line for line in lines if line not in rule.lines]
        if extra:
            return f"holds lines not declared: {extra[:3]}"
        absent = [line for line in rule.lines if line not in lines]
        if absent:
            return f"lacks the declared line {absent[0]!r}"
    return None


def check(root: Path, rules: Rules, found: Packages | None = None) -> Findings:
    """Judge every entry of the image mounted at `root` against its packages and `rules`."""
    db = found if found is not None else packages(root)
    out = Findings()
    outside = 0  # bytes not owned by a package
    large: list[tuple[int, str]] = []
    for entry in entries(root):
        _whole_tree(entry, rules, db, out)
        rule = next((r for r in rules.written if glob_match(entry.path, r.pattern)), None)
        if rule is not None:
            problem = _declared(entry, rule) or (
                _content(root, entry, rule) if entry.kind == "file" else None
            )
            if problem:
                out.unexplained.append(f"{entry.path}: {problem}")
            if entry.kind == "file" and entry.path not in db.owner:
                outside += entry.size
                large.append((entry.size, entry.path))
            continue
        if entry.path in db.owner:
            recorded = db.md5.get(entry.path)
            if entry.kind == "file" and recorded is not None and recorded != entry.md5:
                what = "conffile" if entry.path in db.conffiles else "file"
                out.unexplained.append(
                    f"{entry.path}: modified ({db.owner[entry.path]}'s {what}, md5 differs), "
                    "and Suitcase declares no change to it"
                )
            continue
        if any(glob_match(entry.path, p) for p in rules.runtime):
            if entry.kind == "file":
                outside += entry.size
                large.append((entry.size, entry.path))
            continue
        if entry.kind == "folder" and any(glob_match(entry.path, p) for p in rules.runtime_folders):
            continue
        allowed = [t for pattern, t in rules.links if glob_match(entry.path, pattern)]
        if entry.kind == "link" and allowed:
            target = _absolute(entry.path, entry.target or "")
            if not any(glob_match(target, t) for targets in allowed for t in targets):
                out.unexplained.append(
                    f"{entry.path}: a link to {entry.target}, where only links to "
                    f"{', '.join(allowed[0])} are declared"
                )
            continue
        out.unexplained.append(
            f"{entry.path}: unowned (a {entry.kind} no package lists and Suitcase does not declare)"
        )
        if entry.kind == "file":  # a large unexplained file is named by the budget too
            outside += entry.size
            large.append((entry.size, entry.path))
    if outside > rules.budget:
        biggest = ", ".join(f"{p} ({s // 1024} KiB)" for s, p in sorted(large, reverse=True)[:5])
        out.budget.append(
            f"{outside // (1024 * 1024)} MiB of files no package owns, over the budget of "
            f"{rules.budget // (1024 * 1024)} MiB; the largest: {biggest}"
        )
    return out


def _absolute(path: str, target: str) -> str:
    """A link's target as an absolute path of the image (`..` stops at its root)."""
    base = [] if target.startswith("/") else path.split("/")[1:-1]
    for part in target.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if base:
                base.pop()
        else:
            base.append(part)
    return "/" + "/".join(base)


def _whole_tree(entry: Entry, rules: Rules, db: Packages, out: Findings) -> None:
    mode = stat.S_IMODE(entry.mode)
    if entry.kind == "file":
        if mode & (stat.S_ISUID | stat.S_ISGID) and entry.path not in rules.privileged:
            bits = "setuid" if mode & stat.S_ISUID else "setgid"
            out.privilege.append(f"{entry.path}: {bits} ({mode:04o}), not a declared one")
        elif mode & (stat.S_ISUID | stat.S_ISGID) and db.md5.get(entry.path) != entry.md5:
            out.privilege.append(f"{entry.path}: privileged and not its package's content")
        if entry.capability and entry.path not in rules.capabilities:
            out.privilege.append(f"{entry.path}: has file capabilities, not a declared one")
        if mode & stat.S_IWOTH:
            out.writable.append(f"{entry.path}: a world-writable file ({mode:04o})")
        if entry.secret and mode & stat.S_IROTH:
            out.secrets.append(f"{entry.path}: a secret readable by every user ({mode:04o})")
    elif entry.kind == "folder" and mode & stat.S_IWOTH and not mode & stat.S_ISVTX:
        out.writable.append(f"{entry.path}: world-writable without the sticky bit ({mode:04o})")
