"""Parity: a derived image must equal its master except for its image type's declared deltas.

Compared on the images as shipped (mounted read-only): installed packages with versions, and the
content of the configuration files listed in specs/parity.yaml.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from suitcase.config import Paths
from suitcase.errors import ConfigError, ToolError

PACKAGE_QUERY = {
    "debian": ["dpkg-query", "-W", "-f", "${Package}\t${Version}\t${db:Status-Abbrev}\n"],
    "el": ["rpm", "-qa", "--qf", "%{NAME}.%{ARCH}\t%{VERSION}-%{RELEASE}\tii\n"],
}


@dataclass(frozen=True)
class Snapshot:
    packages: dict[str, str]
    files: dict[str, str]


@dataclass(frozen=True)
class Rules:
    files: list[str]
    deltas: dict[str, set[str]]

    @classmethod
    def load(cls, paths: Paths) -> Rules:
        path = paths.specs_dir / "parity.yaml"
        try:
            data: Any = yaml.safe_load(path.read_text())
            files = [str(f) for f in data["files"]]
            deltas = {k: set(v.get("files", [])) for k, v in (data.get("deltas") or {}).items()}
        except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError):
            raise ConfigError(
                f"{path}: not a valid parity file (files: [...], deltas: {{}})"
            ) from None
        return cls(files, deltas)


def _file_identity(root: Path, name: str) -> str:
    path = root / name.lstrip("/")
    if path.is_symlink():
        return "link:" + os.readlink(path)
    if not path.exists():
        return "absent"
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(root: Path, family: str, rules: Rules) -> Snapshot:
    """Packages and file identities of the image mounted at `root`."""
    query = PACKAGE_QUERY[family]
    result = subprocess.run(
        ["chroot", str(root), *query], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise ToolError(f"cannot list packages in {root}: {result.stderr.strip()[:200]}")
    packages = {}
    for line in result.stdout.splitlines():
        name, version, status = [*line.split("\t"), "", ""][:3]
        if status.strip().startswith("i"):
            packages[name] = version
    files = {name: _file_identity(root, name) for name in rules.files}
    return Snapshot(packages, files)


def compare(master: Snapshot, derived: Snapshot, image: str, rules: Rules) -> list[str]:
    """Every difference outside `image`'s declared deltas, one line each (empty: parity holds)."""
    problems = []
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
    allowed = rules.deltas.get(image, set())
    for name in rules.files:
        if master.files[name] != derived.files[name] and name not in allowed:
            problems.append(f"file {name} differs from the master (not a declared {image} delta)")
    return problems
