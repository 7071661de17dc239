"""OS templates: one YAML file per OS in os/, checked strictly on load.

>>> tpl = load_os("Debian-12-x86_64")            # doctest: +SKIP
>>> tpl.family, tpl.method
('debian', 'bootstrap')
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from suitcase.config import Paths, load_yaml_mapping
from suitcase.errors import ConfigError
from suitcase.keys import KEY_TYPES, accepted_key_types

# key -> (type, required). Nested mappings are described by their own schema below.
_TOP: dict[str, tuple[type | tuple[type, ...], bool]] = {
    "distribution": (str, True),
    "family": (str, True),
    "version": (str, True),
    "major": (int, True),
    "arch": (str, True),
    "method": (str, True),
    "disk_size_mb": (int, True),
    "root_fs": (str, True),
    "openssh_version": (str, False),
    "build_key_type": (str, False),
    "installer": (dict, False),
    "bootstrap": (dict, False),
}
_INSTALLER: dict[str, tuple[type | tuple[type, ...], bool]] = {
    "iso_path": (str, True),
    "iso_checksum": ((str, type(None)), True),
    "checksum_source": (str, True),
    "answer_file": (str, True),
    "mirror": (str, False),
    "iso_content": (str, False),
    "repositories": (list, False),
}
_REPOSITORY: dict[str, tuple[type | tuple[type, ...], bool]] = {
    "name": (str, True),
    "path": (str, True),
    "content": (str, True),
}
_BOOTSTRAP: dict[str, tuple[type | tuple[type, ...], bool]] = {
    "suite": (str, True),
    "packages": (list, True),
}
FAMILIES = ("el", "debian")
METHODS = {"installer": "el", "bootstrap": "debian"}
_CHECKSUM = re.compile(r"^sha256:[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class OSTemplate:
    """One OS an image set can be built from."""

    name: str
    path: Path
    data: dict[str, Any]

    @property
    def family(self) -> str:
        return str(self.data["family"])

    @property
    def major(self) -> int:
        return int(self.data["major"])

    @property
    def version(self) -> str:
        return str(self.data["version"])

    @property
    def method(self) -> str:
        return str(self.data["method"])

    @property
    def distribution(self) -> str:
        return str(self.data["distribution"])

    @property
    def disk_size_mb(self) -> int:
        return int(self.data["disk_size_mb"])

    @property
    def installer(self) -> dict[str, Any]:
        return dict(self.data.get("installer") or {})

    @property
    def bootstrap(self) -> dict[str, Any]:
        return dict(self.data.get("bootstrap") or {})

    @property
    def build_key_type(self) -> str:
        """ed25519 unless the template says rsa (an sshd older than OpenSSH 6.5)."""
        return str(self.data.get("build_key_type", "ed25519"))

    @property
    def answer_file(self) -> str | None:
        return self.installer.get("answer_file")

    def fingerprint(self) -> str:
        """sha256 of the parsed template: comments and key order do not change it."""
        return hashlib.sha256(json.dumps(self.data, sort_keys=True).encode()).hexdigest()

    def iso_checksum(self) -> str:
        """The install medium's checksum, or an error saying how to give one."""
        checksum = self.installer.get("iso_checksum")
        if not checksum:
            raise ConfigError(
                f"{self.path}: no published sha256 for the install medium "
                f"({self.installer.get('checksum_source', 'unknown')}); set installer.iso_checksum "
                "to the vendor's sha256 before building"
            )
        return str(checksum)


def list_os(paths: Paths) -> list[str]:
    return sorted(p.stem for p in paths.os_dir.glob("*.yaml"))


def load_os(name: str, paths: Paths | None = None) -> OSTemplate:
    """Load and check os/<name>.yaml; every problem is one line naming the file and key."""
    paths = paths or Paths.default()
    if not _NAME.match(name):
        raise ConfigError(f"'{name}' is not a valid OS template name")
    path = paths.os_dir / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(list_os(paths)) or "none"
        raise ConfigError(f"unknown OS '{name}' (known: {known})")
    return parse_os(name, path)


def parse_os(name: str, path: Path) -> OSTemplate:
    data = load_yaml_mapping(path, "an OS template")
    _check(path, data, _TOP, "")
    if data["family"] not in FAMILIES:
        raise ConfigError(f"{path}: key 'family' must be one of {', '.join(FAMILIES)}")
    if data["method"] not in METHODS:
        raise ConfigError(f"{path}: key 'method' must be one of {', '.join(METHODS)}")
    section = data["method"]
    if section not in data:
        raise ConfigError(f"{path}: missing key '{section}' (required by method '{section}')")
    _check(path, data[section], _INSTALLER if section == "installer" else _BOOTSTRAP, section + ".")
    if data["disk_size_mb"] < 1024:
        raise ConfigError(f"{path}: key 'disk_size_mb' must be at least 1024")
    checksum = (data.get("installer") or {}).get("iso_checksum")
    if checksum is not None and not _CHECKSUM.match(checksum):
        raise ConfigError(f"{path}: key 'installer.iso_checksum' must look like sha256:<64 hex>")
    packages = (data.get("bootstrap") or {}).get("packages", [])
    if not all(isinstance(p, str) and re.match(r"^[a-z0-9][a-z0-9.+-]*$", p) for p in packages):
        raise ConfigError(f"{path}: key 'bootstrap.packages' must be a list of package names")
    for index, repo in enumerate((data.get("installer") or {}).get("repositories") or []):
        _check(path, repo, _REPOSITORY, f"installer.repositories[{index}].")
    _check_key_type(path, data)
    return OSTemplate(name=name, path=path, data=data)


def _check_key_type(path: Path, data: dict[str, Any]) -> None:
    """The build key must be one the image's own sshd accepts (os/data/openssh.yaml)."""
    key_type = data.get("build_key_type", "ed25519")
    if key_type not in KEY_TYPES:
        raise ConfigError(f"{path}: key 'build_key_type' must be one of {', '.join(KEY_TYPES)}")
    version = data.get("openssh_version")
    if version is None:
        return
    data_dir = path.parent / "data"
    accepted = accepted_key_types(version, data_dir if data_dir.is_dir() else None)
    if key_type not in accepted:
        raise ConfigError(
            f"{path}: build_key_type {key_type} is not accepted by OpenSSH {version} "
            f"(it accepts {', '.join(accepted)})"
        )


def _check(
    path: Path, data: Any, schema: dict[str, tuple[type | tuple[type, ...], bool]], prefix: str
) -> None:
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: key '{prefix.rstrip('.')}' must be a mapping")
    for key in data:
        if key not in schema:
            raise ConfigError(f"{path}: unknown key '{prefix}{key}'")
    for key, (kind, required) in schema.items():
        if key not in data:
            if required:
                raise ConfigError(f"{path}: missing key '{prefix}{key}'")
            continue
        value = data[key]
        bad_bool = isinstance(value, bool) and kind is int
        if bad_bool or not isinstance(value, kind):
            names = (
                kind.__name__
                if isinstance(kind, type)
                else " or ".join("null" if k is type(None) else k.__name__ for k in kind)
            )
            raise ConfigError(f"{path}: key '{prefix}{key}' must be of type {names}")
