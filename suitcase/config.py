"""Where Suitcase finds its data (OS templates, Packer templates, ...) and the site settings.

Data stays data: every path to a template, script or spec folder comes from `Paths`, and every
operator setting from `Site`, which layers built-in defaults < site.yaml < environment < options.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from suitcase.errors import ConfigError

#: The project root holding os/, image-templates/, ks/, scripts/ and specs/.
PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Paths:
    """The data folders of a Suitcase tree.

    >>> Paths.default().os_dir.name
    'os'
    """

    root: Path

    @classmethod
    def default(cls) -> Paths:
        return cls(Path(os.environ.get("SUITCASE_HOME", PROJECT_ROOT)).resolve())

    @property
    def os_dir(self) -> Path:
        return self.root / "os"

    @property
    def templates_dir(self) -> Path:
        return self.root / "image-templates"

    @property
    def answer_files_dir(self) -> Path:
        return self.root / "ks"

    @property
    def scripts_dir(self) -> Path:
        return self.root / "scripts"

    @property
    def specs_dir(self) -> Path:
        return self.root / "specs"


@dataclass(frozen=True)
class Site:
    """Operator settings: the original's site.rb, as YAML.

    `mirrors` maps a distribution (lower case) to a mirror base URL; the Debian mirror defaults to
    the one this machine's apt uses. `repos` maps an answer-file name (el7, ...) to extra
    repositories for the installer.
    """

    bucket: str = "suitcase-images"
    prefix: str = "suitcase"
    region: str = "us-east-1"
    account: str = ""
    builder: str = "qemu"
    accelerator: str = "tcg"
    default_os: str = "Debian-12-x86_64"
    cpus: int = 2
    memory: int = 2048
    derive: str = "overlay"
    mirrors: dict[str, str] = field(default_factory=dict)
    repos: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    s3: dict[str, Any] = field(default_factory=dict)  # part_size_mb, concurrency, transfer_client

    BUILDERS = ("qemu", "virtualbox")
    ACCELERATORS = ("tcg", "kvm", "hvf", "whpx", "none")
    DERIVE = ("overlay", "copy")

    @classmethod
    def load(cls, path: Path | None, overrides: dict[str, Any] | None = None) -> Site:
        """Defaults, then `path` (if present), then SUITCASE_* variables, then overrides."""
        values: dict[str, Any] = {}
        if path is not None and path.exists():
            values.update(_read_site_file(path))
        known = {f.name for f in fields(cls)}
        for name in known:
            env = os.environ.get(f"SUITCASE_{name.upper()}")
            if env is not None and name not in ("mirrors", "repos", "s3"):
                values[name] = env
        for name, value in (overrides or {}).items():
            if value is not None:
                values[name] = value
        site = cls()
        source = str(path) if path else "site settings"
        for name, value in values.items():
            default = getattr(site, name)
            if isinstance(default, int) and not isinstance(default, bool):
                try:
                    value = int(value)
                except (TypeError, ValueError):
                    raise ConfigError(f"{source}: '{name}' must be a whole number") from None
            elif isinstance(default, str) and not isinstance(value, str):
                raise ConfigError(f"{source}: '{name}' must be a string")
            elif isinstance(default, dict) and not isinstance(value, dict):
                raise ConfigError(f"{source}: '{name}' must be a mapping")
            site = replace(site, **{name: value})
        site.check(source)
        return site

    def check(self, source: str) -> None:
        if self.builder not in self.BUILDERS:
            raise ConfigError(
                f"{source}: builder '{self.builder}' is not one of {', '.join(self.BUILDERS)}"
            )
        if self.accelerator not in self.ACCELERATORS:
            raise ConfigError(
                f"{source}: accelerator '{self.accelerator}' is not one of "
                f"{', '.join(self.ACCELERATORS)}"
            )
        if self.derive not in self.DERIVE:
            raise ConfigError(f"{source}: derive '{self.derive}' is not one of overlay, copy")
        if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", self.bucket):
            raise ConfigError(f"{source}: bucket '{self.bucket}' is not a valid S3 bucket name")
        for name, url in self.mirrors.items():
            if not isinstance(url, str) or not re.match(r"^(https?|file)://", url):
                raise ConfigError(f"{source}: mirrors.{name} must be an http(s):// or file:// URL")

    def mirror(self, distribution: str) -> str | None:
        """The mirror base URL for a distribution, from the site or (Debian) from apt."""
        key = distribution.lower()
        if key in self.mirrors:
            return self.mirrors[key].rstrip("/")
        if key == "debian":
            return apt_mirror()
        return None


def load_yaml_mapping(path: Path, what: str) -> dict[str, Any]:
    """A YAML file that must hold a mapping; any problem is one line naming the file (and line)."""
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}:" if mark else ""
        raise ConfigError(f"{path}:{where} not valid YAML") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what} ({exc.strerror})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: {what} must be a mapping of keys to values")
    return data


def _read_site_file(path: Path) -> dict[str, Any]:
    data = load_yaml_mapping(path, "site settings")
    known = {f.name for f in fields(Site)}
    for key in data:
        if key not in known:
            raise ConfigError(f"{path}: unknown key '{key}' (known: {', '.join(sorted(known))})")
    return data


def apt_mirror(sources: tuple[Path, ...] | None = None) -> str | None:
    """The Debian archive URL this machine's apt is configured with (never hard-coded here)."""
    if sources is None:
        sources = (
            *sorted(Path("/etc/apt/sources.list.d").glob("*.sources")),
            *sorted(Path("/etc/apt/sources.list.d").glob("*.list")),
            Path("/etc/apt/sources.list"),
        )
    for path in sources:
        try:
            text = path.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            line = line.strip()
            match = re.match(r"^URIs:\s*(\S+)", line) or re.match(
                r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)", line
            )
            if match and "security" not in match.group(1):
                return match.group(1).rstrip("/")
    return None
