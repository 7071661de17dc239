"""Where Suitcase finds its data (OS templates, Packer templates, ...) and the site settings.

Data stays data: every path to a template, script or spec folder comes from `Paths`, and every
operator setting from `Site`, which layers built-in defaults < site.yaml < environment < options.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_origin

import yaml
from pydantic import AfterValidator, Field, ValidationError
from pydantic.fields import FieldInfo

from suitcase.errors import ConfigError
from suitcase.schema import Annotated, StrictModel, explain, matching, short

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


#: An OS template's name: os/<name>.yaml (never a path).
OS_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
#: An answer file's name: ks/<name>.ks.j2, and the key of its extra repositories in the site.
ANSWER_FILE = r"el[0-9]{1,2}"
#: Whole numbers of build VMs: a sane ceiling where the host's RAM cannot be read.
MAX_CPUS = 64
MIN_MEMORY_MB = 256
MAX_MEMORY_MB = 1024 * 1024
MAX_YAML_BYTES = 1024 * 1024


def host_memory_mb() -> int:
    """This machine's RAM in MiB (a build VM given more fails inside Packer minutes later)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2**20
    except (ValueError, OSError):
        return MAX_MEMORY_MB


def _fits_host(value: int) -> int:
    ram = min(host_memory_mb(), MAX_MEMORY_MB)
    if value > ram:
        raise ValueError(f"must be at most this machine's {ram} MiB of RAM")
    return value


URL = matching(
    r"(https?|file)://[^\s\"'\\<>`]+", "an http(s):// or file:// URL (no spaces or quotes)"
)


class Repo(StrictModel):
    """An extra installer repository: both fields reach the kickstart's `repo` line."""

    name: Annotated[
        str,
        matching(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", "letters, digits, '.', '_' or '-' (up to 64)"),
    ]
    baseurl: Annotated[
        str,
        matching(
            r"(https?|ftp|nfs|file)://[^\s\"'\\<>`]+",
            "an http(s)://, ftp://, nfs:// or file:// URL (no spaces or quotes)",
        ),
    ]


class S3Transfer(StrictModel):
    """site.yaml `s3:`: multipart part size, parts in flight, and the pinned transfer client."""

    part_size_mb: Annotated[int, Field(ge=5, le=5120)] = 16
    concurrency: Annotated[int, Field(ge=1, le=64)] = 8
    transfer_client: Literal["classic", "crt"] = "classic"


class Site(StrictModel):
    """Operator settings: the original's site.rb, as YAML (one checked field per line).

    `mirrors` maps a distribution (lower case) to a mirror base URL; the Debian mirror defaults to
    the one this machine's apt uses. `repos` maps an answer-file name (el7, ...) to extra
    repositories for the installer.
    """

    bucket: Annotated[
        str,
        matching(r"(?!.*\.\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", "a valid S3 bucket name"),
    ] = "suitcase-images"
    prefix: Annotated[
        str,
        matching(
            r"(?!/)(?!.*//)(?!(.*/)?\.\.?(/|$))[A-Za-z0-9._/-]{0,200}",
            "an S3 key prefix: letters, digits, '.', '_', '-', '/' (no leading '/', no '..')",
        ),
    ] = "suitcase"
    region: Annotated[
        str, matching(r"[a-z]{2}(-[a-z]+)+-[0-9]{1,2}", "an AWS region such as us-east-1")
    ] = "us-east-1"
    account: Annotated[str, matching(r"([0-9]{12})?", "a 12-digit AWS account id, or empty")] = ""
    builder: Literal["qemu", "virtualbox"] = "qemu"
    accelerator: Literal["tcg", "kvm", "hvf", "whpx", "none"] = "tcg"
    default_os: Annotated[
        str, matching(OS_NAME, "an OS template name such as Debian-12-x86_64")
    ] = "Debian-12-x86_64"
    cpus: Annotated[int, Field(ge=1, le=MAX_CPUS)] = 2
    memory: Annotated[int, Field(ge=MIN_MEMORY_MB), AfterValidator(_fits_host)] = 2048
    derive: Literal["overlay", "copy"] = "overlay"
    # derived stages built at once, their VMs sharing the cores (suitcase.build.run_plan); 1:
    # one after another (measured side by side in benchmarks/build_stages.py)
    build_jobs: Annotated[int, Field(ge=1, le=8)] = 3
    aws: Literal["auto", "embedded", "account"] = (
        "auto"  # where AWS calls go (suitcase.aws.clients)
    )
    mirrors: dict[
        Annotated[str, matching(r"[a-z0-9][a-z0-9 ._-]{0,39}", "a distribution in lower case")],
        Annotated[str, URL],
    ] = Field(default_factory=dict)
    repos: dict[
        Annotated[str, matching(ANSWER_FILE, "an answer file name such as el7")], list[Repo]
    ] = Field(default_factory=dict)
    # AMI registration (suitcase.aws.ami): RegisterImage's BootMode and ImdsSupport, who may
    # launch the AMIs, where they are copied, and parallel EBS block uploads (0: the default, 8)
    ami_boot_mode: Literal["legacy-bios", "uefi", "uefi-preferred"] = "legacy-bios"
    # the weakest verification `register` accepts (suitcase.gates): boot, or offline (an image
    # type that cannot boot here, aws-paravirt, needs only what it can reach: offline)
    register_requires: Literal["boot", "offline"] = "boot"
    ami_imds_support: Literal["v2.0", ""] = "v2.0"
    # aws-hvm AMIs without EnaSupport, for an OS whose kernel has no ENA driver (its template's
    # capabilities.ena): they launch on Xen instance types only; false refuses such an OS
    ami_xen_only: bool = False
    ami_launch_accounts: list[
        Annotated[str, matching(r"[0-9]{12}", "a 12-digit AWS account id")]
    ] = Field(default_factory=list)
    ami_copy_regions: list[
        Annotated[
            str, matching(r"[a-z]{2}(-[a-z]+)+-[0-9]{1,2}", "an AWS region such as eu-west-1")
        ]
    ] = Field(default_factory=list)
    ebs_workers: Annotated[int, Field(ge=0, le=64)] = 0
    # the KMS key snapshots are encrypted with ("": unencrypted, unless the account encrypts by
    # default; then its default key, which AWS will not let other accounts use)
    ami_kms_key: Annotated[
        str,
        matching(
            r"(arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:(key|alias)/[A-Za-z0-9/_-]{1,250})?",
            "a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID or .../alias/NAME), or empty",
        ),
    ] = ""
    # upload/fetch transfer settings (measured with benchmarks/upload.py)
    s3: S3Transfer = Field(default_factory=lambda: S3Transfer())

    @classmethod
    def load(cls, path: Path | None, overrides: dict[str, Any] | None = None) -> Site:
        """Defaults, then `path` (if present), then SUITCASE_* variables, then options.

        Checked once, all layers together; a bad value is blamed on the layer it came from:
        the file and key, the variable, or the option (`--<name>`).
        """
        values: dict[str, Any] = {}
        sources: dict[str, tuple[str, bool]] = {}
        if path is not None and os.path.lexists(path):  # a missing file: the defaults
            for key, value in _read_site_file(path).items():
                values[key] = value
                sources[key] = (str(path), True)
        for name, info in cls.model_fields.items():
            env = os.environ.get(f"SUITCASE_{name.upper()}")
            if env is not None and _scalar(info):  # mappings come from the file only
                values[name] = _from_text(info, env)
                sources[name] = (f"SUITCASE_{name.upper()}", False)
        for name, value in (overrides or {}).items():
            if value is not None:
                known = cls.model_fields.get(name)
                text = isinstance(value, str)
                values[name] = _from_text(known, value) if known and text else value
                sources[name] = (f"--{name.replace('_', '-')}", False)
        default = (str(path) if path else "site settings", True)
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise ConfigError(
                explain(exc, lambda loc: sources.get(str(loc[0]), default) if loc else default)
            ) from None

    def mirror(self, distribution: str) -> str | None:
        """The mirror base URL for a distribution, from the site or (Debian) from apt."""
        key = distribution.lower()
        if key in self.mirrors:
            return self.mirrors[key].rstrip("/")
        if key == "debian":
            return apt_mirror()
        return None


#: how a variable or option spells a yes/no setting (anything else is refused by the schema)
BOOLEANS = {"true": True, "false": False, "yes": True, "no": False, "1": True, "0": False}


def _scalar(info: FieldInfo) -> bool:
    """Settings a variable can give: words, numbers, yes/no, choices, lists (comma-separated)."""
    origin = get_origin(info.annotation)
    return info.annotation in (str, int, bool) or origin is Literal or origin is list


def _from_text(info: FieldInfo | None, text: str) -> Any:
    """A variable's or option's text as the field's type: "4" is 4 for a whole-number field."""
    if info is not None and info.annotation is int and re.fullmatch(r"\s*[+-]?[0-9]+\s*", text):
        return int(text)
    if info is not None and info.annotation is bool and text.strip().lower() in BOOLEANS:
        return BOOLEANS[text.strip().lower()]
    if info is not None and get_origin(info.annotation) is list:
        return [item.strip() for item in text.split(",") if item.strip()]
    return text


def load_yaml_mapping(path: Path, what: str) -> dict[str, Any]:
    """A YAML file that must hold a mapping; any problem is one line naming the file (and line)."""
    try:
        if not path.is_file():
            raise ConfigError(f"{path}: {what} must be a regular file")
        with path.open("rb") as handle:
            raw = handle.read(MAX_YAML_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what} ({exc.strerror})") from None
    if len(raw) > MAX_YAML_BYTES:
        raise ConfigError(f"{path}: {what} is larger than {MAX_YAML_BYTES // 1024} KiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: {what} is not UTF-8 text (a binary file?)") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}:" if mark else ""
        raise ConfigError(f"{path}:{where} not valid YAML") from None
    except RecursionError:
        raise ConfigError(f"{path}: {what} is nested too deeply") from None
    if data is None:
        # an empty file is a truncated write or a mistake far more often than a wish for the
        # defaults (and a workspace site.yaml replaces the shipped one): say so, never guess
        raise ConfigError(f"{path}: the file is empty (write `{{}}` to mean no keys)")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: {what} must be a mapping of keys to values")
    return data


def _read_site_file(path: Path) -> dict[str, Any]:
    data = load_yaml_mapping(path, "site settings")
    known = set(Site.model_fields)
    for key in data:
        if key not in known:
            raise ConfigError(
                f"{path}: unknown key {short(key)} (known: {', '.join(sorted(known))})"
            )
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
