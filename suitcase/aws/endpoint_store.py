"""The embedded endpoint's store: acknowledged means on disk, and nothing on disk runs code.

Runs only inside the endpoint process (`suitcase.aws.endpoint_server`). Its folder:

- `data/<sha256>`: every S3 object or part body and every EBS block, content-addressed, written
  and fsynced while the request that brought it is handled (so before its answer);
- `state.sqlite` (WAL, synchronous=FULL): what moto holds, as JSON in the safe format of
  `suitcase.aws.endpoint_codec` (one document for S3, EC2 and EBS, minus EBS blocks, which are
  rows of their own so a 4 GiB snapshot is not rewritten per block), committed after every
  mutating request and before its answer; plus its format version and moto's version.

A state it cannot read, or one whose data files are missing or damaged, stops the endpoint with
one line naming the file: nothing is deleted and nothing is started empty behind the user's back.
Everything is done relative to directory handles opened once at start, so a folder swapped for
a symlink, or removed and made anew, is never written through.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import sqlite3
import stat
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from suitcase.aws import endpoint_codec as codec

FORMAT = 2
DB = "state.sqlite"
DATA = "data"
TMP = "tmp"
#: The pickle of Suitcase before format 2: never loaded (loading a pickle can run code).
OLD_STATE = "state.pickle"
#: moto's state that Suitcase keeps, per backend (S3 objects, EBS snapshots, AMIs, tags); and
#: every attribute a fix adds (they start with `_suitcase_`). Anything else is rebuilt by moto.
PERSISTED = {
    "s3": ("buckets", "tagger"),
    "ebs": ("snapshots",),
    "ec2": (
        "amis",
        "deleted_amis",
        "snapshots",
        "volumes",
        "tags",
        "ebs_encryption_by_default",
        "default_kms_key_id",
    ),
}
SERVICES = tuple(PERSISTED)
#: EBS blocks are rows of their own (see the module docstring).
EXTERNAL = {"moto.ebs.models:EBSSnapshot": "blocks"}
CHUNK = 8 * 2**20
_NAME = re.compile(r"^[0-9a-f]{64}$")


class StoreError(Exception):
    """The store cannot be used as it is; the message is one line for the operator."""


class DamagedBlob(OSError):
    """A data file is missing, or its content no longer matches its name (sha256)."""


_STORE: Store | None = None
_damage = threading.local()


def note_damage(message: str) -> None:
    """Remember, for the request this thread serves, that it met damaged data."""
    _damage.message = message


def clear_damage() -> str | None:
    """The damage the current request met (then forgotten), or None."""
    message: str | None = getattr(_damage, "message", None)
    _damage.message = None
    return message


def active() -> Store | None:
    """The process's store, once the endpoint opened one (None in a bare moto server)."""
    return _STORE


class BlobBody:
    """A read-only, seekable body made of data files (one for a put, several for a completed
    multipart upload); opened only while read, so thousands of objects hold no descriptor."""

    def __init__(self, store: Store, segments: list[tuple[str, int]]) -> None:
        self.store = store
        self.segments = segments
        self.size = sum(size for _, size in segments)
        self.pos = 0
        self.closed = False

    def seek(self, pos: int, whence: int = 0) -> int:
        self.pos = {0: pos, 1: self.pos + pos, 2: self.size + pos}[whence]
        return self.pos

    def tell(self) -> int:
        return self.pos

    def read(self, size: int = -1) -> bytes:
        end = self.size if size is None or size < 0 else min(self.size, self.pos + size)
        pieces = []
        offset = 0
        for name, length in self.segments:
            lo, hi = max(self.pos, offset), min(end, offset + length)
            if lo < hi:
                pieces.append(self.store.read_blob(name, lo - offset, hi - lo))
            offset += length
            if offset >= end:
                break
        self.pos = max(self.pos, end)
        # one piece is returned as read: a body is never held twice
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def truncate(self, size: int | None = None) -> int:
        raise OSError(errno.EROFS, "a stored body is read-only")

    def write(self, data: bytes) -> int:
        raise OSError(errno.EROFS, "a stored body is read-only")

    def close(self) -> None:
        self.closed = True  # moto closes a disposed key's buffer; the data stays for others


def _check_entry(st: os.stat_result, where: str, kind: str) -> None:
    """An entry the endpoint uses: the right kind, not a link, ours, writable by us alone."""
    if stat.S_ISLNK(st.st_mode):
        raise StoreError(f"{where} is a symbolic link: the embedded endpoint uses no links")
    wanted = stat.S_ISDIR if kind == "folder" else stat.S_ISREG
    if not wanted(st.st_mode):
        raise StoreError(f"{where} is not a {kind}: move it away")
    if st.st_uid != os.geteuid():
        raise StoreError(f"{where} belongs to uid {st.st_uid}, not to this user ({os.geteuid()})")
    if st.st_mode & 0o022:
        mode = stat.S_IMODE(st.st_mode)
        raise StoreError(f"{where} is writable by others (mode {mode:o}): chmod go-w it")


def open_folder(path: Path, create: bool = False) -> int:
    """A directory handle on `path`, checked (see _check_entry); O_NOFOLLOW: no link followed."""
    if create:
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o700)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            kind = "a symbolic link" if os.path.islink(path) else "not a folder"
            raise StoreError(f"{path} is {kind}: the embedded endpoint refuses it") from None
        raise StoreError(f"{path}: {exc.strerror}") from None
    try:
        _check_entry(os.fstat(fd), str(path), "folder")
    except BaseException:
        os.close(fd)
        raise
    return fd


def subfolder(parent: int, name: str, where: Path) -> int:
    """Open (making it if missing) the folder `name` under the handle `parent`, checked."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, 0o700, dir_fd=parent)
    try:
        fd = os.open(
            name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent
        )
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise StoreError(
                f"{where / name} is not a folder (or is a link): move it away"
            ) from None
        raise StoreError(f"{where / name}: {exc.strerror}") from None
    try:
        _check_entry(os.fstat(fd), str(where / name), "folder")
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_entries(fd: int, where: Path) -> None:
    """Every entry of the endpoint's folder: no link, nothing foreign or writable by others."""
    for entry in os.scandir(fd):
        st = entry.stat(follow_symlinks=False)
        kind = "folder" if stat.S_ISDIR(st.st_mode) else "file"
        _check_entry(st, str(where / entry.name), kind)


class Store:
    """The endpoint folder's data files and state database (see the module docstring)."""

    def __init__(self, directory: Path) -> None:
        self.path = directory
        self.fd = open_folder(directory)
        check_entries(self.fd, directory)
        self.data_fd = subfolder(self.fd, DATA, directory)
        self.tmp_fd = subfolder(self.fd, TMP, directory)
        st = os.fstat(self.fd)
        self.identity = (st.st_dev, st.st_ino)
        self.lock = threading.RLock()
        self.verified: set[tuple[str, int, int, int, int]] = set()
        self.pending_blocks: list[tuple[str, int, Any]] = []
        self.data_dirty = False
        self.last_doc = ""
        self.doc_blobs: set[str] = set()
        self.db: sqlite3.Connection | None = None

    # --- the folder ---------------------------------------------------------------------------

    def still_ours(self) -> bool:
        """Is the folder at our path still the one we opened (not removed, not replaced)?"""
        try:
            st = os.stat(self.path, follow_symlinks=False)
            mine = os.fstat(self.fd)
        except OSError:
            return False
        return mine.st_nlink > 0 and (st.st_dev, st.st_ino) == self.identity

    def clear_tmp(self) -> int:
        """Empty `tmp/` (moto's spill files of a run that ended), through its handle."""
        return _unlink_files(self.tmp_fd, lambda name: True)

    # --- data files ---------------------------------------------------------------------------

    def put_blob(self, chunks: Iterable[bytes]) -> tuple[str, int]:
        """Write data into `data/<sha256>` (fsynced; kept if already there); (name, size)."""
        digest, size = hashlib.sha256(), 0
        tmp = f".tmp-{os.getpid()}-{threading.get_ident()}-{time.monotonic_ns()}"
        fd = os.open(
            tmp,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o600,
            dir_fd=self.data_fd,
        )
        try:
            for chunk in chunks:
                digest.update(chunk)
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
                size += len(chunk)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            os.unlink(tmp, dir_fd=self.data_fd)
            raise
        os.close(fd)
        name = digest.hexdigest()
        if self._has(name, size):
            os.unlink(tmp, dir_fd=self.data_fd)
        else:
            os.rename(tmp, name, src_dir_fd=self.data_fd, dst_dir_fd=self.data_fd)
        st = os.stat(name, dir_fd=self.data_fd, follow_symlinks=False)
        self.verified.add((name, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
        self.data_dirty = True
        return name, size

    def _has(self, name: str, size: int) -> bool:
        try:
            st = os.stat(name, dir_fd=self.data_fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        return stat.S_ISREG(st.st_mode) and st.st_size == size

    def body(self, data: bytes | Iterable[bytes]) -> BlobBody:
        """A stored body for `data` (bytes, or chunks of it)."""
        chunks = [data] if isinstance(data, bytes | bytearray | memoryview) else data
        name, size = self.put_blob(bytes(c) for c in chunks)
        return BlobBody(self, [(name, size)] if size else [])

    def check_present(self, body: BlobBody) -> None:
        """Every data file of `body` is there, with its size (a stat each: no read)."""
        for name, size in body.segments:
            if not self._has(name, size):
                message = f"data file {self.path / DATA / name} is missing or damaged"
                note_damage(f"the embedded endpoint's stored data is damaged: {message}")
                raise DamagedBlob(errno.EIO, message)

    def _open_blob(self, name: str) -> int:
        if not _NAME.match(name):
            raise DamagedBlob(errno.EINVAL, f"not a data file name: {name!r}")
        try:
            return os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.data_fd)
        except OSError as exc:
            message = f"data file {self.path / DATA / name} is missing ({exc.strerror})"
            note_damage(f"the embedded endpoint's stored data is damaged: {message}")
            raise DamagedBlob(exc.errno, message) from None

    def read_blob(self, name: str, offset: int, length: int) -> bytes:
        """`length` bytes at `offset` of a data file, whose whole content is checked against its
        name the first time this process reads it."""
        fd = self._open_blob(name)
        try:
            st = os.fstat(fd)
            # checked again if the file changed since (ctime: `touch` cannot forge it)
            seen = (name, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
            if seen not in self.verified:
                digest = hashlib.sha256()
                while chunk := os.read(fd, CHUNK):
                    digest.update(chunk)
                if digest.hexdigest() != name:
                    message = (
                        f"data file {self.path / DATA / name} is damaged (its sha256 no longer "
                        "matches its name)"
                    )
                    note_damage(f"the embedded endpoint's stored data is damaged: {message}")
                    raise DamagedBlob(errno.EIO, message)
                self.verified.add(seen)
            data = os.pread(fd, length, offset)
        finally:
            os.close(fd)
        if len(data) != length:
            message = f"data file {self.path / DATA / name} is short"
            note_damage(f"the embedded endpoint's stored data is damaged: {message}")
            raise DamagedBlob(errno.EIO, message)
        return data

    # --- the state database -------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self.db is None:
            with contextlib.suppress(FileExistsError):  # 0600 from the start (SQLite's -wal
                # takes the database's mode)
                os.close(
                    os.open(
                        DB,
                        os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                        0o600,
                        dir_fd=self.fd,
                    )
                )
            # by the handle's path, so a swapped folder is never the one opened; WAL with
            # exclusive locking keeps every file open from here on (no journal made per commit)
            db = sqlite3.connect(
                f"/proc/self/fd/{self.fd}/{DB}", isolation_level=None, check_same_thread=False
            )
            db.execute("PRAGMA locking_mode=EXCLUSIVE")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            self.db = db
        return self.db

    def load(self) -> str:
        """Bring the saved state back into moto's backends; one line saying what happened.

        Raises StoreError (one line, nothing changed on disk) for a state it cannot use.
        """
        names = set(os.listdir(self.fd))
        if DB not in names and OLD_STATE in names:
            raise StoreError(
                f"{self.path / OLD_STATE} is a state of an older Suitcase (a pickle, which can run "
                "code when loaded, so it is never loaded); to start this endpoint empty, move it "
                "and the blobs/ folder beside it elsewhere, then upload and register again"
            )
        fresh = DB not in names
        for name in (DB, f"{DB}-wal"):
            if name in names:
                _check_entry(
                    os.stat(name, dir_fd=self.fd, follow_symlinks=False),
                    str(self.path / name),
                    "file",
                )
        try:
            db = self._connect()
            db.execute(
                "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )
            db.execute(
                "CREATE TABLE IF NOT EXISTS state "
                "(id INTEGER PRIMARY KEY CHECK (id = 1), doc TEXT NOT NULL)"
            )
            db.execute(
                "CREATE TABLE IF NOT EXISTS blocks (snapshot TEXT NOT NULL, idx INTEGER NOT NULL, "
                "blob TEXT, doc TEXT NOT NULL, PRIMARY KEY (snapshot, idx))"
            )
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            if fresh or not meta:
                with self.transaction(db):
                    db.execute("INSERT OR REPLACE INTO meta VALUES ('format', ?)", (str(FORMAT),))
                    db.execute("INSERT OR REPLACE INTO meta VALUES ('moto', ?)", (moto_version(),))
                    db.execute(
                        "INSERT OR REPLACE INTO meta VALUES ('created', ?)",
                        (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),),
                    )
                meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            if meta.get("format") != str(FORMAT):
                raise StoreError(
                    f"{self.path / DB} has state format {meta.get('format')!r}; this Suitcase "
                    f"reads format {FORMAT}: use the Suitcase that wrote it, or move the endpoint "
                    "folder aside to start empty"
                )
            row = db.execute("SELECT doc FROM state WHERE id = 1").fetchone()
            blocks = db.execute("SELECT snapshot, idx, blob, doc FROM blocks").fetchall()
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"{self.path / DB} cannot be read ({exc}); nothing was changed: restore it, or "
                "move the endpoint folder aside to start empty"
            ) from None
        written_by = meta.get("moto", "?")
        if row is None:
            self.last_doc = ""
            self.gc()
            return "no saved state: starting empty" if fresh else "state is empty"
        try:
            restored = self._restore(row[0], blocks)
        except (codec.CodecError, ValueError, KeyError, TypeError) as exc:
            also = (
                ""
                if written_by == moto_version()
                else f" (written with moto {written_by}, this is moto {moto_version()})"
            )
            raise StoreError(
                f"{self.path / DB} holds a state this endpoint cannot restore{also}: {exc}; "
                "nothing was changed: use the Suitcase that wrote it, or move the endpoint "
                "folder aside"
            ) from None
        self.last_doc = row[0]
        self.doc_blobs = _doc_blobs(row[0])
        missing = self.missing_blobs(blocks)
        if missing:
            first = ", ".join(sorted(missing)[:3])
            raise StoreError(
                f"{len(missing)} data file(s) of the saved state are missing or damaged in "
                f"{self.path / DATA} (e.g. {first}); nothing was changed: put them back, or move "
                "the endpoint folder aside to start empty"
            )
        self.gc()
        note = "" if written_by == moto_version() else f", written by moto {written_by}"
        return f"state restored from {DB} ({restored}{note})"

    def _restore(self, text: str, blocks: list[tuple[str, int, str, str]]) -> str:
        from moto.backends import get_backend

        doc = json.loads(text)
        if not isinstance(doc, dict) or not isinstance(doc.get("backends"), list):
            raise codec.CodecError("the state document has no backends")
        live: dict[codec.BackendRef, Any] = {}
        for entry in doc["backends"]:
            service, account, region = entry["ref"]
            if service not in PERSISTED:
                raise codec.CodecError(f"a backend of service {service!r}")
            live[(service, account, region)] = get_backend(service)[account][region]
        decoder = codec.Decoder(lambda ref: _backend(live, ref), self._decode_body)
        counts = {"objects": 0, "snapshots": 0, "AMIs": 0}
        for entry in doc["backends"]:
            backend = live[tuple(entry["ref"])]
            attributes = entry["attributes"]
            if not isinstance(attributes, dict):
                raise codec.CodecError("malformed backend attributes")
            for name, value in attributes.items():
                if name not in PERSISTED[entry["ref"][0]] and not name.startswith("_suitcase_"):
                    raise codec.CodecError(f"an attribute {name!r} the state does not carry")
                vars(backend)[name] = decoder(value)
        by_id: dict[str, Any] = {}
        for (service, _, _), backend in live.items():
            if service == "ebs":
                for snapshot in backend.snapshots.values():
                    snapshot.blocks = {}
                    by_id[snapshot.snapshot_id] = snapshot
                counts["snapshots"] += len(backend.snapshots)
            elif service == "s3":
                counts["objects"] += sum(len(b.keys) for b in backend.buckets.values())
            elif service == "ec2":
                counts["AMIs"] += sum(1 for i in backend.amis if str(i).startswith("ami-"))
        for snapshot_id, index, _blob, block_doc in blocks:
            if snapshot_id in by_id:  # each row was encoded alone: a decoder of its own
                block = codec.Decoder(lambda ref: _backend(live, ref), self._decode_body)
                by_id[snapshot_id].blocks[int(index)] = block(json.loads(block_doc))
        return ", ".join(f"{n} {what}" for what, n in counts.items())

    def _decode_body(self, item: Any) -> BlobBody:
        segments = [(str(name), int(size)) for name, size in item]
        for name, _ in segments:
            if not _NAME.match(name):
                raise codec.CodecError(f"a data file name {name!r}")
        return BlobBody(self, segments)

    def missing_blobs(self, blocks: list[tuple[str, int, str, str]]) -> set[str]:
        """Data files the state names that are not there with the size it says."""
        sizes = _doc_blob_sizes(self.last_doc)
        for _, _, _, block_doc in blocks:
            sizes.update(_doc_blob_sizes(block_doc))
        return {name for name, size in sizes.items() if not self._has(name, size)}

    # --- committing ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self, db: sqlite3.Connection) -> Iterator[None]:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def encode_state(self) -> str:
        """What moto holds now, as the state document (JSON text)."""
        from moto.backends import get_backend

        refs: dict[int, codec.BackendRef] = {}
        backends: list[tuple[codec.BackendRef, Any]] = []
        for service in SERVICES:
            if f"moto.{service}.models" not in sys.modules:
                continue  # never used since start: moto imports a service on its first request
            for account, regions in dict.items(get_backend(service)):  # type: ignore[call-overload]
                for region, backend in dict.items(regions):
                    refs[id(backend)] = (service, account, region)
                    backends.append(((service, account, region), backend))
        encoder = codec.Encoder(refs, EXTERNAL, _encode_body)
        out = []
        for ref, backend in backends:
            attributes = {
                name: encoder(value)
                for name, value in vars(backend).items()
                if name in PERSISTED[ref[0]] or name.startswith("_suitcase_")
            }
            out.append({"ref": list(ref), "attributes": attributes})
        return json.dumps({"backends": out}, separators=(",", ":"), sort_keys=False)

    def commit(self, blocks_only: bool = False) -> None:
        """Make what moto holds durable: data files' folder fsynced, then one transaction."""
        if not self.still_ours():
            raise StoreError(
                f"{self.path} was removed or replaced: this endpoint writes nothing more"
            )
        doc = None if blocks_only else self.encode_state()
        blocks, self.pending_blocks = self.pending_blocks, []
        if self.data_dirty:
            os.fsync(self.data_fd)
            self.data_dirty = False
        if doc == self.last_doc:
            doc = None
        if doc is None and not blocks:
            return
        db = self._connect()
        gone: set[str] = set()
        dropped = 0
        with self.transaction(db):
            for snapshot_id, index, block in blocks:
                encoded = codec.encode(block, {}, None, _encode_body)
                body = encoded["a"].get("_suitcase_data")
                blob = body["$body"][0][0] if isinstance(body, dict) and body.get("$body") else None
                db.execute(
                    "INSERT OR REPLACE INTO blocks VALUES (?, ?, ?, ?)",
                    (snapshot_id, index, blob, json.dumps(encoded, separators=(",", ":"))),
                )
            if doc is not None:
                db.execute("INSERT OR REPLACE INTO state VALUES (1, ?)", (doc,))
                kept = _ebs_snapshot_ids(doc)
                dropped = db.execute(
                    "DELETE FROM blocks WHERE snapshot NOT IN (SELECT value FROM json_each(?))",
                    (json.dumps(sorted(kept)),),
                ).rowcount
                blobs = _doc_blobs(doc)
                gone = self.doc_blobs - blobs
                self.doc_blobs = blobs
        if doc is not None:
            self.last_doc = doc
        if gone or dropped > 0:
            self.gc()

    def gc(self) -> int:
        """Remove data files nothing in the saved state names (and interrupted writes)."""
        if self.db is None:
            return 0
        keep = set(self.doc_blobs) | {
            row[0] for row in self.db.execute("SELECT DISTINCT blob FROM blocks") if row[0]
        }
        return _unlink_files(
            self.data_fd,
            lambda name: (
                name.startswith(".tmp-") or (_NAME.match(name) is not None and name not in keep)
            ),
        )

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None
        for fd in (self.data_fd, self.tmp_fd, self.fd):
            with contextlib.suppress(OSError):
                os.close(fd)


def _backend(live: dict[codec.BackendRef, Any], ref: codec.BackendRef) -> Any:
    if ref not in live:
        raise codec.CodecError(f"a reference to backend {ref}, which the state does not have")
    return live[ref]


def _encode_body(value: Any) -> Any:
    if isinstance(value, BlobBody):
        return {"$body": [[name, size] for name, size in value.segments]}
    if hasattr(value, "read") and hasattr(value, "seek"):
        raise codec.CodecError(f"a body of type {type(value).__name__} that is not stored")
    return None


def _walk_bodies(node: Any) -> Iterator[list[Any]]:
    if isinstance(node, dict):
        if "$body" in node and isinstance(node["$body"], list):
            yield from node["$body"]
            return
        for value in node.values():
            yield from _walk_bodies(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk_bodies(value)


def _doc_blob_sizes(text: str) -> dict[str, int]:
    if not text:
        return {}
    return {str(name): int(size) for name, size in _walk_bodies(json.loads(text))}


def _doc_blobs(text: str) -> set[str]:
    return set(_doc_blob_sizes(text))


def _ebs_snapshot_ids(text: str) -> set[str]:
    ids: set[str] = set()
    for entry in json.loads(text)["backends"]:
        if entry["ref"][0] == "ebs":
            snapshots = entry["attributes"].get("snapshots", {}).get("$d", [])
            ids.update(str(pair[0]) for pair in snapshots)
    return ids


def _unlink_files(fd: int, doomed: Any) -> int:
    """Unlink the regular files of the folder `fd` that `doomed(name)` picks; never follows."""
    removed = 0
    for entry in os.scandir(fd):
        if not doomed(entry.name):
            continue
        st = entry.stat(follow_symlinks=False)
        if stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.name, dir_fd=fd)
                removed += 1
    return removed


def moto_version() -> str:
    from importlib.metadata import version

    return version("moto")


# --- moto's bodies and blocks into the store -----------------------------------------------------


def install(store: Store) -> None:
    """Make `store` the process's store: S3 bodies and EBS blocks go to its data files."""
    global _STORE
    _STORE = store
    from suitcase.aws.endpoint_models import after_import

    after_import("moto.s3.models", _install_s3_bodies)
    after_import("moto.ebs.models", _install_ebs_blocks)


def _install_s3_bodies(models: Any) -> None:
    key_class: Any = models.FakeKey
    if getattr(key_class, "_suitcase_store", False):
        return
    value_property = key_class.__dict__["value"]
    setter = value_property.fset

    def set_value(self: Any, new_value: Any) -> None:
        store = active()
        if isinstance(new_value, BlobBody):  # a completed upload's parts, adopted whole
            self._value_buffer, self.contentsize = new_value, new_value.size
            return
        if store is None or not isinstance(new_value, bytes | bytearray | str):
            setter(self, new_value)
            return
        if isinstance(new_value, str):
            new_value = new_value.encode()
        body = store.body(bytes(new_value))
        self._value_buffer, self.contentsize = body, body.size

    key_class.value = property(value_property.fget, set_value)
    key_class._suitcase_store = True

    backend_class: Any = models.S3Backend
    head_object = backend_class.head_object

    def head_object_checked(self: Any, *args: Any, **kwargs: Any) -> Any:
        """HeadObject reads no data, but says so when the object's data files are gone (a
        verb that only asks whether an object is there must not be told it is)."""
        found = head_object(self, *args, **kwargs)
        body = getattr(found, "_value_buffer", None)
        if isinstance(body, BlobBody):
            body.store.check_present(body)
        return found

    backend_class.head_object = head_object_checked


def _install_ebs_blocks(models: Any) -> None:
    block_class: Any = models.Block
    snapshot_class: Any = models.EBSSnapshot
    if getattr(block_class, "_suitcase_store", False):
        return

    def get_data(self: Any) -> bytes:
        data = self.__dict__.get("_suitcase_data")
        if isinstance(data, BlobBody):
            data.seek(0)
            return data.read()
        return bytes(data or b"")

    def set_data(self: Any, data: bytes) -> None:
        store = active()
        self.__dict__["_suitcase_data"] = store.body(bytes(data)) if store else data

    block_class.block_data = property(get_data, set_data)
    put_block = snapshot_class.put_block

    def put_block_noted(self: Any, block_idx: int, *args: Any, **kwargs: Any) -> None:
        put_block(self, block_idx, *args, **kwargs)
        store = active()
        if store is not None:
            store.pending_blocks.append((self.snapshot_id, int(block_idx), self.blocks[block_idx]))

    snapshot_class.put_block = put_block_noted
    block_class._suitcase_store = True
