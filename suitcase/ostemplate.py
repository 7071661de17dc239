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
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from suitcase.config import ANSWER_FILE, OS_NAME, Paths, load_yaml_mapping
from suitcase.errors import ConfigError
from suitcase.keys import accepted_key_types
from suitcase.schema import RELATIVE_PATH, Annotated, StrictModel, explain, matching, short

FAMILIES = ("el", "debian")
#: How each family is installed: the method a template names must be its family's.
METHODS = {"installer": "el", "bootstrap": "debian"}


CONTENT = r"[a-z0-9][a-z0-9.-]{0,63}"


class Repository(StrictModel):
    """A repository the installer needs beside the ISO (its path under the release's mirror)."""

    name: Annotated[
        str, matching(r"[A-Za-z][A-Za-z0-9_-]{0,39}", "a repository name such as extras")
    ]
    path: Annotated[str, matching(RELATIVE_PATH, "a relative path without '..'")]
    content: Annotated[str, matching(CONTENT, "a content name in os/data/packages.yaml")]


class Installer(StrictModel):
    """EL: the install medium and the answer file that drives the installer."""

    iso_path: Annotated[str, matching(RELATIVE_PATH, "a relative path without '..'")]
    iso_checksum: (
        Annotated[str, matching(r"sha256:[0-9a-f]{64}", "sha256:<64 hex digits> or null")] | None
    )
    checksum_source: Annotated[str, matching(r"[^\n\r]{1,400}", "one line saying where it is from")]
    answer_file: Annotated[str, matching(ANSWER_FILE, "an answer file in ks/, such as el7")]
    # a key of the site's mirrors naming where this release lives (default: the distribution)
    mirror: Annotated[str, matching(r"[a-z0-9][a-z0-9 ._-]{0,39}", "a site mirrors key")] | None = (
        None
    )
    # what the ISO and each declared repository carry: a content name in os/data/packages.yaml
    iso_content: (
        Annotated[str, matching(CONTENT, "a content name in os/data/packages.yaml")] | None
    ) = None
    repositories: list[Repository] = Field(default_factory=list)


class Bootstrap(StrictModel):
    """Debian: the package bootstrap (debootstrap) of the master's root file system."""

    # reaches folder names and debootstrap's command line: a plain word, nothing else
    suite: Annotated[str, matching(r"[a-z][a-z0-9-]{0,31}", "a plain word such as bookworm")]
    packages: Annotated[
        list[Annotated[str, matching(r"[a-z0-9][a-z0-9.+-]{0,99}", "a Debian package name")]],
        Field(min_length=1),
    ]


VERSION = r"[0-9]{1,3}(\.[0-9]{1,3}){0,3}"


class Capabilities(StrictModel):
    """What the OS release can do, declared once per template (issue 22's table): preflight,
    `plan`, `list` and the specs read it, so an image type the OS cannot make work is refused
    before any VM starts, and a spec that needs a feature is skipped (planned) only where the
    OS lacks it."""

    kernel: Annotated[str, matching(r"[0-9][0-9A-Za-z._-]{0,40}", "a kernel version")]
    #: the Amazon ENA driver in the distribution's kernel (RHEL kernels from 7.4)
    ena: bool
    #: Xen paravirtual guest support (PV-GRUB boots it; gone from EL8 on)
    xen_pv: bool
    #: the cloud-init the media carry (None: none): `cloud-init status` from 17.2, IMDSv2 19.4
    cloud_init: Annotated[str, matching(VERSION, "a version such as 23.4")] | None
    init: Literal["systemd", "upstart", "sysvinit"]
    network: Literal["ifupdown", "ifcfg", "keyfile"]
    package_manager: Literal["apt", "yum", "dnf"]

    def cloud_init_at_least(self, version: str) -> bool:
        """The media's cloud-init is `version` or newer (False without cloud-init)."""
        if self.cloud_init is None:
            return False
        have = tuple(int(p) for p in self.cloud_init.split("."))
        return have >= tuple(int(p) for p in version.split("."))


class OSTemplateSpec(StrictModel):
    """One os/<name>.yaml: every field typed, ranged or patterned; one line per field."""

    distribution: Annotated[
        str, matching(r"[A-Za-z][A-Za-z0-9 ._-]{0,39}", "a distribution name such as CentOS")
    ]
    family: Literal["el", "debian"]
    version: Annotated[str, matching(r"[0-9]{1,3}(\.[0-9]{1,3}){0,2}", "a version such as 7.3")]
    major: Annotated[int, Field(ge=1, le=999)]
    arch: Literal["x86_64"]
    method: Literal["installer", "bootstrap"]
    disk_size_mb: Annotated[int, Field(ge=1024, le=2 * 1024 * 1024)]
    root_fs: Literal["ext3", "ext4", "xfs"]
    # the image's own sshd: the build key must be a type it accepts (os/data/openssh.yaml)
    openssh_version: (
        Annotated[
            str,
            matching(
                r"[0-9]{1,2}(\.[0-9]{1,2}){1,2}(p[0-9]{1,2})?", "an OpenSSH version such as 5.3p1"
            ),
        ]
        | None
    ) = None
    build_key_type: Literal["ed25519", "rsa"] = "ed25519"
    capabilities: Capabilities
    installer: Installer | None = None
    bootstrap: Bootstrap | None = None

    @model_validator(mode="after")
    def _consistent(self) -> OSTemplateSpec:
        if METHODS[self.method] != self.family:
            raise ValueError(
                f"family '{self.family}' is not installed by method '{self.method}' "
                f"(el: installer, debian: bootstrap)"
            )
        if self.version.split(".")[0] != str(self.major):
            raise ValueError(f"version '{self.version}' does not start with major {self.major}")
        if getattr(self, self.method) is None:
            raise ValueError(f"missing key '{self.method}' (required by method '{self.method}')")
        other = "bootstrap" if self.method == "installer" else "installer"
        if getattr(self, other) is not None:
            raise ValueError(f"key '{other}' does not belong to method '{self.method}'")
        return self


def image_refusal(spec: OSTemplateSpec, image: str, xen_only: bool = False) -> str | None:
    """Why this OS cannot make a working `image`, or None. Decided from the template alone (its
    capability table), so `plan` can say it and the build refuses it before any VM starts.
    `xen_only`: the site registers aws-hvm AMIs without EnaSupport (site `ami_xen_only`).

    >>> caps = Capabilities.model_construct(ena=True, xen_pv=False)
    >>> spec = OSTemplateSpec.model_construct(
    ...     family="el", major=9, root_fs="ext4", capabilities=caps
    ... )
    >>> image_refusal(spec, "aws-paravirt")
    'the EL9 kernel has no Xen paravirtual guest support (dropped in EL8): register aws-hvm'
    """
    caps = spec.capabilities
    if image == "aws-hvm" and not caps.ena and not xen_only:
        return (
            f"the kernel ({caps.kernel}) has no ENA driver, which every current instance type "
            "needs (RHEL kernels ship it from 7.4): set ami_xen_only: true in site.yaml for an "
            "AMI without EnaSupport (Xen instance types only)"
        )
    if image != "aws-paravirt":
        return None
    if spec.root_fs not in ("ext2", "ext3", "ext4"):
        return (
            f"PV-GRUB is GRUB legacy and reads ext2/3/4 only, not this OS's {spec.root_fs} root: "
            "register aws-hvm"
        )
    if not caps.xen_pv:
        name = f"EL{spec.major}" if spec.family == "el" else f"{spec.family} {spec.major}"
        return (
            f"the {name} kernel has no Xen paravirtual guest support (dropped in EL8): "
            "register aws-hvm"
        )
    return None


@dataclass(frozen=True)
class OSTemplate:
    """One OS an image set can be built from."""

    name: str
    path: Path
    #: the file as parsed (its fingerprint is a stage-key input) and its checked model
    data: dict[str, Any]
    spec: OSTemplateSpec

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
    """The OS template names in os/: regular files named like an OS, nothing else."""
    return sorted(
        p.stem for p in paths.os_dir.glob("*.yaml") if p.is_file() and re.fullmatch(OS_NAME, p.stem)
    )


def load_os(name: str, paths: Paths | None = None) -> OSTemplate:
    """Load and check os/<name>.yaml; every problem is one line naming the file and key."""
    paths = paths or Paths.default()
    if not name:
        raise ConfigError("the OS name is empty (give --os NAME; 'suitcase list' shows them)")
    if not re.fullmatch(OS_NAME, name):
        raise ConfigError(f"{short(name)} is not a valid OS template name")
    path = paths.os_dir / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(list_os(paths)) or "none"
        raise ConfigError(f"unknown OS '{name}' (known: {known})")
    return parse_os(name, path)


def parse_os(name: str, path: Path) -> OSTemplate:
    data = load_yaml_mapping(path, "an OS template")
    try:
        spec = OSTemplateSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(explain(exc, lambda loc: (str(path), True))) from None
    _check_key_type(path, data)
    return OSTemplate(name=name, path=path, data=data, spec=spec)


def _check_key_type(path: Path, data: dict[str, Any]) -> None:
    """The build key must be one the image's own sshd accepts (os/data/openssh.yaml)."""
    key_type = data.get("build_key_type", "ed25519")
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
