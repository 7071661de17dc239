"""Stage manifests: the record that a stage is done, written atomically after its checks."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, field
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass

from suitcase.config import OS_NAME
from suitcase.schema import RELATIVE_PATH, Annotated, explain, matching

MANIFEST_NAME = "manifest.json"
#: the upload cookie beside a stage's manifest: what was shipped of it (suitcase.aws.ship)
UPLOAD_COOKIE = ".upload_done"
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
_CHUNK = 4 * 1024 * 1024
# Manifests are read back by every later verb: strict, no unknown keys; an output's path stays
# inside its stage folder (a manifest is data a copy or a hand could have changed).
_CONFIG = ConfigDict(extra="forbid", strict=True)


@dataclass(frozen=True, config=_CONFIG)
class Output:
    """One file a stage produced, relative to the stage folder."""

    path: Annotated[str, matching(RELATIVE_PATH, "a relative path inside the stage folder")]
    kind: Annotated[str, matching(r"[a-z0-9][a-z0-9-]{0,39}", "an output kind such as disk")]
    size: Annotated[int, Field(ge=0)]
    sha256: Annotated[str, matching(r"[0-9a-f]{64}", "64 hex digits")]
    # S3's full-object checksum, computed in the same read as the sha256: an upload needs no
    # read of its own before sending, and S3's CRC64NVME of what it got proves the object is
    # the file as built (None in manifests written before it was recorded)
    crc64nvme: Annotated[str, matching(r"[A-Za-z0-9+/]{11}=", "a base64 CRC64NVME")] | None = None


@dataclass(config=_CONFIG)
class Manifest:
    """What a stage produced and from what; later verbs (verify, upload, register) read it back."""

    stage: Annotated[str, matching(r"[a-z0-9][a-z0-9-]{0,39}", "an image type")]
    os: Annotated[str, matching(OS_NAME, "an OS template name")]
    timestamp: Annotated[str, matching(r"[0-9]{12}([0-9]{2})?", "YYYYMMDDhhmm[ss]")]
    key: Annotated[str, matching(r"[0-9A-Za-z]{1,128}", "a stage key")]
    inputs: dict[str, str]
    parent: dict[str, str] | None
    outputs: list[Output]
    tool_versions: dict[str, str]
    git_revision: str
    started: str
    finished: str
    suitcase_version: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        """A manifest from parsed JSON, checked as strictly as one read from disk (ValueError)."""
        try:
            return _ADAPTER.validate_json(json.dumps(data))
        except ValidationError as exc:
            raise ValueError(explain(exc, lambda loc: (MANIFEST_NAME, True))) from None

    def output(self, kind: str) -> Output | None:
        return next((o for o in self.outputs if o.kind == kind), None)


_ADAPTER: TypeAdapter[Manifest] = TypeAdapter(Manifest)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_prefix(path: Path, length: int) -> tuple[str | None, bool]:
    """The sha256 of `path`'s first `length` bytes (None when it is shorter), and whether every
    byte after them is zero: a disk read back into a larger volume (an EBS snapshot) holds the
    disk it was written from exactly when both match."""
    import os

    digest, left = hashlib.sha256(), length
    with path.open("rb") as handle:
        while left > 0 and (chunk := handle.read(min(_CHUNK, left))):
            digest.update(chunk)
            left -= len(chunk)
        if left > 0:
            return None, False
        fd = handle.fileno()
        for start, end in data_extents(path):
            start = max(start, length)
            while start < end:
                chunk = os.pread(fd, min(_CHUNK, end - start), start)
                if chunk.count(0) != len(chunk):
                    return digest.hexdigest(), False
                start += len(chunk)
    return digest.hexdigest(), True


def data_extents(path: Path) -> list[tuple[int, int]]:
    """(start, end) byte ranges of `path` that hold data, from SEEK_DATA/SEEK_HOLE."""
    import os

    extents: list[tuple[int, int]] = []
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        offset = 0
        while offset < size:
            try:
                start = os.lseek(fd, offset, os.SEEK_DATA)
            except OSError:  # ENXIO: only a hole is left
                break
            end = os.lseek(fd, start, os.SEEK_HOLE)
            extents.append((start, end))
            offset = end
    finally:
        os.close(fd)
    return extents


def file_digests(path: Path) -> tuple[str, str]:
    """The file's hex sha256 and base64 CRC64NVME (S3's full-object checksum), in one read."""
    import base64

    from awscrt.checksums import crc64nvme

    crc, digest = 0, hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            crc = crc64nvme(chunk, crc)
            digest.update(chunk)
    return digest.hexdigest(), base64.b64encode(crc.to_bytes(8, "big")).decode()


def describe_output(stage_dir: Path, path: Path, kind: str) -> Output:
    sha256, crc = file_digests(path)
    return Output(
        path=str(path.relative_to(stage_dir)),
        kind=kind,
        size=path.stat().st_size,
        sha256=sha256,
        crc64nvme=crc,
    )


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Write `text` to `path` so that readers see the old file or the whole new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_manifest(stage_dir: Path, manifest: Manifest) -> Path:
    path = stage_dir / MANIFEST_NAME
    write_atomic(path, manifest.to_json())
    return path


def read_manifest(stage_dir: Path) -> Manifest | None:
    """The stage's manifest, or None when there is none or it cannot be trusted."""
    return inspect_manifest(stage_dir)[0]


def inspect_manifest(stage_dir: Path) -> tuple[Manifest | None, str | None]:
    """(manifest, None), or (None, why it cannot be trusted), or (None, None) when there is none."""
    path = stage_dir / MANIFEST_NAME
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_MANIFEST_BYTES + 1)
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, f"{MANIFEST_NAME} cannot be read ({exc.strerror})"
    if len(raw) > MAX_MANIFEST_BYTES:
        return None, f"{MANIFEST_NAME} is too large to be a manifest"
    try:
        return _ADAPTER.validate_json(raw), None
    except ValidationError as exc:
        return None, "untrusted " + explain(exc, lambda loc: (MANIFEST_NAME, True))


def outputs_intact(stage_dir: Path, manifest: Manifest, deep: bool = False) -> str | None:
    """None when every output has its recorded size (and sha256 if `deep`), else why not."""
    try:
        top = stage_dir.resolve()
        for output in manifest.outputs:
            path = stage_dir / output.path
            # a symlink in the stage folder must not make a file elsewhere count as built
            if top not in path.resolve().parents:
                return f"output {output.path} lies outside the stage folder"
            if not path.is_file():
                return f"output {output.path} is missing"
            if path.stat().st_size != output.size:
                return f"output {output.path} changed size"
            if deep and sha256_file(path) != output.sha256:
                return f"output {output.path} does not match its sha256"
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python < 3.13)
        return f"outputs cannot be checked ({exc})"
    return None
