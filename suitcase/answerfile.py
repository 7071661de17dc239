"""Answer files: kickstart templates in ks/, rendered per build set with Jinja2."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jinja2
import yaml

from suitcase.config import Paths, Repo
from suitcase.errors import ConfigError
from suitcase.media import master_has_cloud_init
from suitcase.ostemplate import OSTemplate

#: Stands in for the build key when hashing an answer file: the key is per build set, the
#: template's meaning is not.
KEY_PLACEHOLDER = "ssh-ed25519 AAAA-build-key-placeholder suitcase-build"


def render(
    os_template: OSTemplate,
    paths: Paths,
    public_key: str,
    repos: Sequence[Repo | dict[str, str]] | None = None,
    build_id: str = "",
) -> str:
    """The answer file for `os_template`, e.g. ks/el7.ks.j2 rendered for one build set."""
    name = os_template.answer_file
    if name is None:
        raise ConfigError(
            f"{os_template.path}: OS installed by {os_template.method} has no answer file"
        )
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(paths.answer_files_dir),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    try:
        template = env.get_template(f"{name}.ks.j2")
    except jinja2.TemplateNotFound:
        raise ConfigError(
            f"{os_template.path}: answer file ks/{name}.ks.j2 does not exist"
        ) from None
    context: dict[str, Any] = {
        "os": os_template.data,
        "build_public_key": public_key,
        "repos": repos or [],
        "cloud_init": master_has_cloud_init(os_template, paths),
        "build_id": build_id,
    }
    try:
        return template.render(**context)
    except jinja2.TemplateError as exc:
        raise ConfigError(f"ks/{name}.ks.j2: {exc}") from None


BOOT_KEYS = ("keys", "args", "ks_arg")


def boot_command(os_template: OSTemplate, paths: Paths) -> dict[str, str]:
    """How Packer starts the installer: menu `keys`, kernel `args`, and the kickstart `ks_arg`."""
    path = paths.answer_files_dir / "boot-commands.yaml"
    try:
        commands = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        raise ConfigError(f"{path}: cannot read the boot commands") from None
    name = os_template.answer_file
    entry = commands.get(name) if isinstance(commands, dict) else None
    if not isinstance(entry, dict) or set(entry) != set(BOOT_KEYS):
        raise ConfigError(f"{path}: '{name}' needs exactly {', '.join(BOOT_KEYS)}")
    return {k: str(entry[k]) for k in BOOT_KEYS}


def typed_boot_command(entry: dict[str, str]) -> str:
    """What Packer types, as the templates assemble it (for display and tests)."""
    return (
        f"{entry['keys']}<wait> {entry['args']} {entry['ks_arg']}=http://10.0.2.100/ks.cfg<enter>"
    )
