"""Stage manifests: the record that a stage is done, written atomically after its checks."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MANIFEST_NAME = "manifest.json"
_CHUNK = 4 * 1024 * 1024


@dataclass(frozen=True)
class Output:
    """One file a stage produced, relative to the stage folder."""

    path: str
    kind: str
    size: int
    sha256: str


@dataclass
class Manifest:
    """What a stage produced and from what; later verbs (verify, upload, register) read it back."""

    stage: str
    os: str
    timestamp: str
    key: str
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
        outputs = [Output(**o) for o in data.pop("outputs")]
        return cls(outputs=outputs, **data)

    def output(self, kind: str) -> Output | None:
        return next((o for o in self.outputs if o.kind == kind), None)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def describe_output(stage_dir: Path, path: Path, kind: str) -> Output:
    return Output(
        path=str(path.relative_to(stage_dir)),
        kind=kind,
        size=path.stat().st_size,
        sha256=sha256_file(path),
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
    path = stage_dir / MANIFEST_NAME
    try:
        data = json.loads(path.read_text())
        return Manifest.from_dict(data)
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def outputs_intact(stage_dir: Path, manifest: Manifest, deep: bool = False) -> str | None:
    """None when every output has its recorded size (and sha256 if `deep`), else why not."""
    for output in manifest.outputs:
        path = stage_dir / output.path
        if not path.is_file():
            return f"output {output.path} is missing"
        if path.stat().st_size != output.size:
            return f"output {output.path} changed size"
        if deep and sha256_file(path) != output.sha256:
            return f"output {output.path} does not match its sha256"
    return None
