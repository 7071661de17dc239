"""Saving and reloading the embedded endpoint's state: moto's backends, pickled atomically.

Runs only inside the endpoint process (`suitcase.aws.endpoint_server`). moto's recorder replays
requests, which cannot bring back multipart uploads (their ids are random); pickling the
backends keeps everything, in-progress multipart uploads and EBS blocks included.

S3 object bodies live in moto in temporary files. Pickled as they are, every save would rewrite
every body (GBs); instead each body is written once into `blobs/` beside the state and the pickle
names it. A restored object reads its body from that file; a blob no object names any more is
removed after the next save.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

#: The moto services whose state Suitcase uses (S3 for artifacts, EC2 and EBS for snapshots and
#: AMIs); a later service is one more name here.
SERVICES = ("s3", "ec2", "ebs")
STATE_FILE = "state.pickle"
BLOBS_DIR = "blobs"
FORMAT = 1
CHUNK = 8 * 1024 * 1024

_saving = threading.local()  # the blobs folder and the set of blob names while a save runs


class BlobReader:
    """A read-only stand-in for a restored S3 object's body buffer, opened only while read.

    Thousands of objects stay restorable without holding a file descriptor each.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pos = 0
        self.closed = False

    def seek(self, pos: int, whence: int = 0) -> int:
        size = self.path.stat().st_size
        self.pos = {0: pos, 1: self.pos + pos, 2: size + pos}[whence]
        return self.pos

    def tell(self) -> int:
        return self.pos

    def read(self, size: int = -1) -> bytes:
        if self.closed:
            raise ValueError("read of a closed blob")
        with self.path.open("rb") as f:
            f.seek(self.pos)
            data = f.read(size)
        self.pos += len(data)
        return data

    def close(self) -> None:
        self.closed = True


def install() -> None:
    """Teach moto's S3 objects and EBS blocks to pickle their data as blob files (as soon as
    moto imports those services)."""
    from suitcase.aws.endpoint_models import after_import

    after_import("moto.s3.models", _install_s3_bodies)
    after_import("moto.ebs.models", _install_ebs_blocks)


def _install_s3_bodies(models: Any) -> None:
    """FakeKey keeps its body in a file-like buffer; saved, it names a blob (only in a save)."""
    FakeKey: Any = models.FakeKey  # patched in place: moto's responses make FakeKeys
    if getattr(FakeKey, "_suitcase_blobs", False):
        return
    original_getstate = FakeKey.__getstate__
    original_setstate = FakeKey.__setstate__
    value_property = FakeKey.__dict__["value"]
    original_setter = value_property.fset

    def getstate(self: Any) -> dict[str, Any]:
        blobs: Path | None = getattr(_saving, "blobs", None)
        if blobs is None:  # moto's own copies (versioning) keep moto's behaviour
            state: dict[str, Any] = original_getstate(self)
            return state
        name = getattr(self, "_suitcase_blob", None)
        if name is None or not (blobs / name).exists():
            try:
                name = _write_blob(self, blobs)
            except ValueError:  # a disposed key (its buffer closed): moto keeps it empty
                state = original_getstate(self)
                return state
            self._suitcase_blob = name
        _saving.names.add(name)
        state = self.__dict__.copy()
        del state["_value_buffer"], state["lock"]
        state["_suitcase_blob"] = name
        return state

    def setstate(self: Any, state: dict[str, Any]) -> None:
        name = state.get("_suitcase_blob")
        blobs: Path | None = getattr(_saving, "loading", None)
        if name is None or blobs is None or "value" in state:
            original_setstate(self, state)
            return
        self.__dict__.update(state)
        self._value_buffer = BlobReader(blobs / name)
        self.lock = threading.Lock()

    def set_value(self: Any, new_value: bytes) -> None:
        # a restored body is a read-only blob: a new value gets a fresh buffer, as moto makes
        if isinstance(getattr(self, "_value_buffer", None), BlobReader):
            self._value_buffer = tempfile.SpooledTemporaryFile(self._max_buffer_size)  # noqa: SIM115
        self._suitcase_blob = None
        original_setter(self, new_value)

    FakeKey.__getstate__ = getstate
    FakeKey.__setstate__ = setstate
    FakeKey.value = property(value_property.fget, set_value)
    FakeKey._suitcase_blobs = True


def _install_ebs_blocks(models: Any) -> None:
    """An EBS Block's data (bytes) becomes a blob at a save and is read from it when restored,
    so a save does not rewrite every snapshot and a restored snapshot is not held in memory."""
    Block: Any = models.Block
    if getattr(Block, "_suitcase_blobs", False):
        return

    def get_data(self: Any) -> bytes:
        data = self.__dict__.get("_suitcase_data")
        if isinstance(data, Path):
            return data.read_bytes()
        return bytes(data or b"")

    def set_data(self: Any, data: bytes) -> None:
        self.__dict__["_suitcase_data"] = data
        self.__dict__["_suitcase_blob"] = None

    def getstate(self: Any) -> dict[str, Any]:
        state = dict(self.__dict__)
        blobs: Path | None = getattr(_saving, "blobs", None)
        if blobs is None:  # a copy outside a save carries its data
            state["_suitcase_data"] = get_data(self)
            return state
        name = state.get("_suitcase_blob")
        if name is None or not (blobs / name).exists():
            name = _write_bytes(blobs, get_data(self))
            self.__dict__["_suitcase_blob"] = name
        _saving.names.add(name)
        state["_suitcase_data"], state["_suitcase_blob"] = None, name
        return state

    def setstate(self: Any, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        loading: Path | None = getattr(_saving, "loading", None)
        if state.get("_suitcase_data") is None and state.get("_suitcase_blob") and loading:
            self.__dict__["_suitcase_data"] = loading / state["_suitcase_blob"]

    Block.block_data = property(get_data, set_data)
    Block.__getstate__ = getstate
    Block.__setstate__ = setstate
    Block._suitcase_blobs = True


def _write_bytes(blobs: Path, data: bytes) -> str:
    name = uuid.uuid4().hex
    tmp = blobs / f".tmp-{name}"
    try:
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.rename(blobs / name)
    return name


def _write_blob(key: Any, blobs: Path) -> str:
    name = uuid.uuid4().hex
    tmp = blobs / f".tmp-{name}"
    try:
        with key.lock, os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as out:
            buffer = key._value_buffer
            buffer.seek(0)
            while block := buffer.read(CHUNK):
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.rename(blobs / name)
    return name


def snapshot() -> dict[str, dict[str, dict[str, Any]]]:
    """{service: {account: {region: backend}}} for every backend that was ever used."""
    from moto.backends import get_backend

    state: dict[str, dict[str, dict[str, Any]]] = {}
    for service in SERVICES:
        if f"moto.{service}.models" not in sys.modules:
            continue  # never used since start (moto imports a service on its first request)
        backends = get_backend(service)  # type: ignore[call-overload]
        state[service] = {
            account: dict(dict.items(regions)) for account, regions in dict.items(backends)
        }
    return state


def save(directory: Path) -> tuple[int, float]:
    """Pickle every backend into `directory/state.pickle` atomically; (bytes, seconds).

    The caller makes sure no request changes the backends meanwhile.
    """
    started = time.monotonic()
    blobs = directory / BLOBS_DIR
    blobs.mkdir(mode=0o700, exist_ok=True)
    tmp = directory / f".{STATE_FILE}.tmp"
    _saving.blobs, _saving.names = blobs, set()
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            pickle.dump(
                {
                    "format": FORMAT,
                    "saved": time.time(),
                    "moto": _moto_version(),
                    "backends": snapshot(),
                },
                out,
                protocol=pickle.HIGHEST_PROTOCOL,
            )
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, directory / STATE_FILE)
        _fsync_dir(directory)
        names: set[str] = _saving.names
    finally:
        del _saving.blobs, _saving.names
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    for path in blobs.iterdir():  # bodies no saved object names any more
        if path.name not in names:
            path.unlink(missing_ok=True)
    return (directory / STATE_FILE).stat().st_size, time.monotonic() - started


def load(directory: Path) -> str:
    """Reload a saved state into moto's backends; says what happened in one line.

    A missing state is a fresh start; an unreadable one is kept aside (never deleted) and the
    endpoint starts empty, which verbs then report as lost state.
    """
    from moto.backends import get_backend

    path = directory / STATE_FILE
    if not path.exists():
        return "no saved state: starting empty"
    _saving.loading = directory / BLOBS_DIR
    try:
        with path.open("rb") as f:
            data = pickle.load(f)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"unknown state format {data.get('format')!r}")
    except Exception as exc:
        aside = directory / f"{STATE_FILE}.unreadable-{int(time.time())}"
        path.rename(aside)
        return f"state LOST: {path.name} unreadable ({type(exc).__name__}: {exc}); kept as {aside}"
    finally:
        del _saving.loading
    for service, accounts in data["backends"].items():
        backends = get_backend(service)
        for account, regions in accounts.items():
            for region, backend in regions.items():
                backends[account][region] = backend
    written_by = data.get("moto", "?")
    note = "" if written_by == _moto_version() else f", written by moto {written_by}"
    return f"state restored from {path.name} (saved {time.ctime(data['saved'])}{note})"


def _moto_version() -> str:
    from importlib.metadata import version

    return version("moto")


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
