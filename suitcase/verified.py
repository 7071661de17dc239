"""What verification trusts before it looks inside an image, and what it may build.

- `check_build_policy`: a verification run builds only what --build never|missing|stale allows;
  by default a stage that exists but is stale is a failure that says why, never a rebuild.
- `DigestCache`: a file's sha256, cached by (device, inode, size, mtime, ctime), so checking a
  multi-GiB artifact against its manifest costs one stat() on every run after the first. The
  ctime cannot be set by `touch` or `os.utime`: rewriting a file in place always changes it.
- `FlatCache`: the raw copy of a verified qcow2 that read-only mounts use, made once per stage
  key and disk sha256 (images/.verify/flat/), instead of a fresh copy for every mount.
- `shipped_output`: the output of a stage that ships, whose sha256 verification checks and records.
- `unpack_box`: a `.box` unpacked as Vagrant does (a tar of box.img, metadata.json, Vagrantfile).
- `vmdk_holds`: `qemu-img compare` of the verified raw disk and the VMDK that ships beside it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import stat
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from suitcase.errors import BuildError, ConfigError, SuitcaseError
from suitcase.imagetypes import IMAGE_TYPES
from suitcase.manifest import Manifest, Output, inspect_manifest, sha256_file, write_atomic
from suitcase.plan import BuildPlan

BUILD_POLICIES = ("never", "missing", "stale")
DEFAULT_BUILD_POLICY = "missing"
#: the output kind that ships, per image type, when it is not the disk the specs boot
SHIPPED_KIND = {"vagrant": "box"}
_BLOCK = 1024 * 1024
_ZERO = bytes(_BLOCK)


class NotAllowedToBuild(BuildError):
    """A verification run would have to build (or rebuild) a stage its --build policy forbids."""


class ArtifactChanged(BuildError):
    """An artifact no longer matches its manifest (a tampered or damaged file)."""


def check_build_policy(plan: BuildPlan, policy: str, option: str = "--build") -> None:
    """Refuse, naming the stage and why, when `plan` would build what `policy` forbids.

    missing: only stages with no manifest at all may be built; stale: any stage may be rebuilt;
    never: nothing may be built.
    """
    if policy not in BUILD_POLICIES:
        raise ConfigError(f"{option} {policy}: choose one of {', '.join(BUILD_POLICIES)}")
    for state in plan.states():
        if state.done:
            continue
        name, set_id = state.stage.image.name, plan.build_set.id
        missing = inspect_manifest(state.stage.directory) == (None, None)
        if policy == "never":
            raise NotAllowedToBuild(
                f"{name} of {set_id} is not ready ({state.reason}) and {option} never builds "
                f"anything: build it first (suitcase build {name} --os {plan.os.name} "
                f"--timestamp {plan.build_set.timestamp}) or use {option} missing"
            )
        if policy == "missing" and not missing:
            raise NotAllowedToBuild(
                f"{name} of {set_id} is stale ({state.reason}); verification does not rebuild "
                f"by surprise: rebuild it with 'suitcase build', or allow it with {option} stale"
            )


class DigestCache:
    """sha256 of files, cached in a JSON file keyed by what any change to a file changes."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @staticmethod
    def key(path: Path) -> str:
        st = path.stat()
        return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"

    def sha256(self, path: Path) -> str:
        key = self.key(path)
        with self._locked():
            known = self._load().get(key)
        if known is not None:
            return known
        digest = sha256_file(path)
        if self.key(path) != key:  # changed while it was read: this digest proves nothing
            raise ArtifactChanged(f"{path} changed while its sha256 was computed")
        with self._locked():
            entries = self._load()
            entries[key] = digest
            # keep it small: the newest entries win (a workspace holds a few dozen artifacts)
            kept = dict(list(entries.items())[-256:])
            with contextlib.suppress(OSError):  # a cache that cannot be written only costs time
                write_atomic(self.path, json.dumps(kept, indent=0) + "\n", 0o600)
        return digest

    def _load(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}  # no cache, or a damaged one: digests are computed again
        if not isinstance(data, dict):
            return {}
        return {str(k): str(v) for k, v in data.items() if isinstance(v, str) and len(v) == 64}

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


@contextlib.contextmanager
def held(lock: Path) -> Iterator[None]:
    """An exclusive flock on `lock` (made 0600, never followed if a link); the kernel drops it
    however its holder dies."""
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def cache_folder(path: Path) -> Path:
    """`path` made (0700) if missing and checked: a real folder of this user that nobody else can
    write (else UnsafeFolder, one line), since what lies in it is trusted by name."""
    from suitcase.safety import check_own_folder

    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    check_own_folder(path, "verification cache folder")
    return path


_STAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_HEX = re.compile(r"[0-9a-f]+")
_PARTIAL = re.compile(r"(?P<name>.+)\.(?P<pid>[0-9]+)-(?P<start>[0-9]+)\.partial")


def entry_name(stage: str, key: str, sha256: str, suffix: str) -> str:
    """`<stage>-<key[:16]>-<sha256><suffix>`: what a cache entry was made from, in its name."""
    if not _STAGE.fullmatch(stage) or not _HEX.fullmatch(key[:16]) or len(key) < 16:
        raise ConfigError(f"no cache entry for stage {stage!r} with key {key!r}")
    if not _HEX.fullmatch(sha256) or len(sha256) != 64:
        raise ConfigError(f"no cache entry for a sha256 of {sha256!r}")
    return f"{stage}-{key[:16]}-{sha256}{suffix}"


def _unlink_files(folder: Path, doomed: Callable[[str], bool]) -> list[Path]:
    """Unlink the files of `folder` whose name is `doomed`, through a handle on the folder: an
    entry is unlinked, never followed; a folder by such a name is left alone. An entry another
    process has mounted stays readable to it (the kernel keeps the inode until the loop device
    lets go)."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return []
    gone = []
    try:
        for name in sorted(os.listdir(fd)):
            if not doomed(name):
                continue
            if stat.S_ISDIR(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=fd)
                gone.append(folder / name)
    finally:
        os.close(fd)
    return gone


def drop_entries(folder: Path, stage: str, pattern: str, keep: str | None = None) -> list[Path]:
    """Unlink the entries of `stage` in `folder` (names `<stage>-` + `pattern`) but `keep`."""
    wanted = re.compile(re.escape(stage) + "-" + pattern)
    return _unlink_files(folder, lambda name: name != keep and bool(wanted.fullmatch(name)))


def sweep_partials(folder: Path) -> list[Path]:
    """Unlink `<name>.<pid>-<start>.partial` files whose writer is gone (killed mid-write)."""
    from suitcase.sweep import alive

    def dead_writer(name: str) -> bool:
        found = _PARTIAL.fullmatch(name)
        return found is not None and not alive(int(found["pid"]), int(found["start"]))

    return _unlink_files(folder, dead_writer)


def partial_name(name: str) -> str:
    """`<name>.<pid>-<start>.partial`: a file this process is writing (swept once it is gone)."""
    from suitcase.sweep import start_time

    me = os.getpid()
    return f"{name}.{me}-{start_time(me) or 0}.partial"


def publish(partial: Path, entry: Path, mode: int) -> None:
    """fsync `partial`, give it `mode`, and rename it to `entry` (the folder fsynced too): a
    reader sees no entry or a whole one, even after a crash."""
    fd = os.open(partial, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fsync(fd)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    os.replace(partial, entry)
    folder = os.open(entry.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


#: what a flat cache entry must look like to be trusted (owner: the effective user)
FLAT_MODE = 0o400
_FLAT = r"[0-9a-f]{16}-[0-9a-f]{64}\.raw"


class FlatCache:
    """Raw copies of verified qcow2 disks, for read-only mounts: one per stage key and sha256.

    An entry `<stage>-<key[:16]>-<sha256>.raw` is made only from a disk whose sha256 is that
    (checked through the digest cache at the time, and unchanged while it was converted), so a
    tampered or planted disk names another entry: nothing is reused by name alone. It is
    trusted only as a regular file of the effective user, mode 0400, of the disk's virtual
    size; anything else by that name is replaced. Written kill -9 safe (under a flock, into a
    `.partial` named by pid and start time, fsynced, then renamed); a dead writer's partials
    are swept. Writing an entry drops the stage's others; `suitcase clean` drops them all.
    Never for writable mounts: those convert a private copy (machine.mounted).
    """

    def __init__(self, folder: Path, digests: DigestCache) -> None:
        self.folder = folder
        self.digests = digests

    def entry(self, stage: str, key: str, sha256: str) -> Path:
        return self.folder / entry_name(stage, key, sha256, ".raw")

    def raw_of(self, source: Path, stage: str, key: str, sha256: str) -> Path:
        """The path to mount `source` read-only from: itself when it is raw already, else its
        flattened raw entry (made now if missing or not trustworthy)."""
        from suitcase.artifact import disk_info
        from suitcase.command import run

        info = disk_info(source)
        fmt = str(info.get("format"))
        if fmt == "raw":
            return source
        if _reads_elsewhere(info):
            raise ArtifactChanged(
                f"{source} reads data from another file (a backing or data file): not a "
                "standalone disk, nothing verified it"
            )
        size = int(str(info.get("virtual-size", -1)))
        entry = self.entry(stage, key, sha256)
        self._check(source, sha256)  # never an entry for (or from) a disk that is not this one
        cache_folder(self.folder)  # what lies in it is trusted only if nobody else can write it
        if self.trusted(entry, size):
            return entry
        with held(self.folder / ".lock"):
            sweep_partials(self.folder)
            if self.trusted(entry, size):  # another process made it while we waited
                return entry
            if os.path.isdir(entry) and not os.path.islink(entry):
                raise ArtifactChanged(f"{entry} is a folder: remove it (a flat cache entry)")
            before = DigestCache.key(source)
            self._check(source, sha256)
            partial = self.folder / partial_name(entry.name)
            try:
                run(["qemu-img", "convert", "-f", fmt, "-O", "raw", str(source), str(partial)])
                if DigestCache.key(source) != before:
                    raise ArtifactChanged(f"{source} changed while it was flattened")
                if partial.stat().st_size != size:
                    raise ArtifactChanged(f"{source} flattened to an unexpected size")
                publish(partial, entry, FLAT_MODE)
            except BaseException:
                partial.unlink(missing_ok=True)
                raise
            drop_entries(self.folder, stage, _FLAT, keep=entry.name)
        return entry

    def _check(self, source: Path, sha256: str) -> None:
        actual = self.digests.sha256(source)
        if actual != sha256:
            raise ArtifactChanged(
                f"{source} has sha256 {actual[:16]}…, not the verified {sha256[:16]}…: "
                "it changed after it was checked"
            )

    @staticmethod
    def trusted(entry: Path, size: int) -> bool:
        """A regular file (not a link) of the effective user, mode 0400, `size` bytes."""
        try:
            st = os.lstat(entry)
        except OSError:
            return False
        return (
            stat.S_ISREG(st.st_mode)
            and st.st_uid == os.geteuid()
            and stat.S_IMODE(st.st_mode) == FLAT_MODE
            and st.st_size == size
        )

    def drop(self, stage: str) -> list[Path]:
        """Remove every entry of `stage` (its stage folder was cleaned)."""
        if not self.folder.is_dir():
            return []
        with held(cache_folder(self.folder) / ".lock"):
            return drop_entries(self.folder, stage, _FLAT)


def _reads_elsewhere(info: dict[str, object]) -> bool:
    """Does a disk read data from another file (a backing chain, a qcow2 external data file)?"""
    if info.get("backing-filename") or info.get("full-backing-filename"):
        return True
    specific = info.get("format-specific")
    data = specific.get("data") if isinstance(specific, dict) else None
    return isinstance(data, dict) and bool(data.get("data-file"))


def flat_cache(images_dir: Path) -> FlatCache:
    """The workspace's flat cache (images/.verify/flat/)."""
    return FlatCache(verify_dir(images_dir) / "flat", digest_cache(images_dir))


def stage_cache_name(image: str, set_id: str, part: str = "") -> str:
    """How the caches name one stage (its image type and build set), or a `part` of it that
    has entries of its own (the vagrant box's box.img: "box")."""
    return f"{image}.{set_id}" + (f".{part}" if part else "")


#: the parts of a stage with cache entries of their own besides its disk
CACHED_PARTS = ("", "box")


def verify_dir(images_dir: Path) -> Path:
    """Where verification keeps its scratch (unpacked boxes) and its digest cache."""
    return images_dir / ".verify"


def digest_cache(images_dir: Path) -> DigestCache:
    """The workspace's digest cache (images/.verify/sha256-cache.json)."""
    return DigestCache(verify_dir(images_dir) / "sha256-cache.json")


def shipped_output(manifest: Manifest) -> Output:
    """The output of the stage that ships and that verification looks at (or proves equal)."""
    kind = SHIPPED_KIND.get(manifest.stage, IMAGE_TYPES[manifest.stage].disk)
    output = manifest.output(kind)
    if output is None:
        raise ArtifactChanged(f"the {manifest.stage} manifest lists no {kind} output")
    return output


def check_output(stage_dir: Path, output: Output, cache: DigestCache) -> str:
    """The output's sha256 after checking it against the manifest (ArtifactChanged if not)."""
    path = stage_dir / output.path
    try:
        if not path.is_file():
            raise ArtifactChanged(f"{path} is missing")
        actual = cache.sha256(path)
    except OSError as exc:
        raise ArtifactChanged(f"{path} cannot be read ({exc.strerror or exc})") from None
    if actual != output.sha256:
        raise ArtifactChanged(
            f"{path} does not match its manifest: sha256 {actual[:16]}…, the manifest says "
            f"{output.sha256[:16]}…; it was changed after it was built (clean the stage and "
            "build it again)"
        )
    return actual


def unpack_box(box: Path, dest: Path) -> Path:
    """Unpack a `.box` (a tar, as `vagrant box add` reads it) into the new folder `dest`.

    Only regular files and folders inside `dest` are taken (a member named `../x`, `/x`, or a
    link is refused, as Vagrant's own unpacking would never place it); all-zero MiB blocks are
    left as holes, so a raw box.img stays sparse.
    """
    dest.mkdir(parents=True)
    top = dest.resolve()
    try:
        with tarfile.open(box, "r:*") as tar:
            for member in tar:
                target = (top / member.name).resolve()
                if target == top or top not in target.parents:
                    raise BuildError(f"{box}: member {member.name!r} lies outside the box")
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                if not member.isfile():
                    raise BuildError(f"{box}: member {member.name!r} is not a regular file")
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                assert source is not None  # a regular file always has data
                _sparse_write(source, target, member.size)
    except (tarfile.TarError, EOFError) as exc:
        raise BuildError(f"{box} is not a readable box ({exc})") from None
    return dest


def _sparse_write(source: IO[bytes], target: Path, size: int) -> None:
    with target.open("wb") as out:
        while block := source.read(_BLOCK):
            if block == _ZERO[: len(block)]:
                out.seek(len(block), 1)
            else:
                out.write(block)
        out.truncate(size)


def box_problems(folder: Path) -> list[str]:
    """What is wrong with an unpacked libvirt box: metadata.json against box.img, Vagrantfile."""
    from suitcase.artifact import disk_info

    problems = []
    try:
        metadata = json.loads((folder / "metadata.json").read_text())
    except (OSError, ValueError) as exc:
        return [f"metadata.json cannot be read ({exc})"]
    if not isinstance(metadata, dict):
        return ["metadata.json is not a JSON object"]
    if metadata.get("provider") != "libvirt":
        problems.append(f"metadata.json provider is {metadata.get('provider')!r}, not 'libvirt'")
    if metadata.get("format") != "qcow2":
        problems.append(f"metadata.json format is {metadata.get('format')!r}, not 'qcow2'")
    if not (folder / "Vagrantfile").is_file():
        problems.append("the box holds no Vagrantfile")
    image = folder / "box.img"
    if not image.is_file():
        return [*problems, "the box holds no box.img"]
    try:
        info = disk_info(image)
    except SuitcaseError as exc:
        return [*problems, f"box.img cannot be read by qemu-img ({exc})"]
    if info.get("format") != "qcow2":
        problems.append(f"box.img is {info.get('format')}, not qcow2")
    gib = -(-int(str(info.get("virtual-size", 0))) // 2**30)  # vagrant-libvirt's unit: GiB
    if metadata.get("virtual_size") != gib:
        problems.append(
            f"metadata.json virtual_size is {metadata.get('virtual_size')!r}, box.img's virtual "
            f"size is {gib} GiB"
        )
    return problems


def vmdk_holds(raw: Path, vmdk: Path) -> str | None:
    """None when `vmdk` holds the same blocks as `raw` (`qemu-img compare`), else the difference."""
    result = subprocess.run(
        ["qemu-img", "compare", "-f", "raw", "-F", "vmdk", str(raw), str(vmdk)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode == 0:
        return None
    said = (result.stdout.strip() or result.stderr.strip()).splitlines()
    what = said[0] if said else f"exit {result.returncode}"
    if result.returncode == 1:
        return f"{vmdk.name} differs from {raw.name}: {what}"
    return f"{vmdk.name} cannot be compared with {raw.name}: {what}"
