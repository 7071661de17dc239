"""Everything a verb needs, gathered once: data paths, site settings, workspace, OS, build set."""

from __future__ import annotations

import functools
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from suitcase import __version__
from suitcase.buildsecrets import build_secrets
from suitcase.command import run
from suitcase.config import Paths, Site
from suitcase.errors import ConfigError, ToolError
from suitcase.imagetypes import ImageType, resolve_images
from suitcase.ostemplate import OSTemplate, image_refusal, load_os
from suitcase.packer import packer_version
from suitcase.plan import BuildPlan, make_plan
from suitcase.workspace import BuildSet, Workspace


@dataclass(frozen=True)
class Context:
    paths: Paths
    site: Site
    workspace: Workspace
    #: the site settings file the settings came from, if any (verify hands it to pytest)
    site_file: Path | None = None

    @classmethod
    def create(
        cls,
        workspace: str | Path | None = None,
        site_file: str | Path | None = None,
        overrides: dict[str, object] | None = None,
    ) -> Context:
        build_secrets()  # a bad SUITCASE_SECRET_* is one line, before anything runs
        ws = Workspace.at(workspace)
        if site_file is not None:
            if str(site_file) == "":
                raise ConfigError("the site settings file name is empty (--site/SUITCASE_SITE)")
            if not Path(site_file).exists():
                raise ConfigError(f"site settings {site_file} not found")
            site_path: Path | None = Path(site_file)
        else:
            candidates = [ws.root / "site.yaml", Paths.default().root / "site.yaml"]
            # whatever is there by that name counts: a folder or a dangling link named site.yaml
            # is an error to report, never a reason to fall back to the shipped settings
            site_path = next((p for p in candidates if p.exists() or p.is_symlink()), None)
        return cls(Paths.default(), Site.load(site_path, overrides), ws, site_path)

    def os_template(self, name: str | None) -> OSTemplate:
        return load_os(self.site.default_os if name is None else name, self.paths)

    def build_set(self, os_template: OSTemplate, timestamp: str | None) -> BuildSet:
        return BuildSet(
            os_template.name, self.workspace.resolve_timestamp(os_template.name, timestamp)
        )

    def plan(
        self,
        os_name: str | None,
        images: str | None,
        timestamp: str | None,
        keep_refused: bool = False,
    ) -> BuildPlan:
        """The plan for IMAGES of the OS. Asked for every type (`all`, or none named), a type
        this OS cannot make boot (ostemplate.image_refusal) is left out, unless `keep_refused`
        (`suitcase plan` shows it as "would be refused"); named, it stays, and the build's
        preflight refuses it in one line."""
        os_template = self.os_template(os_name)
        types = image_types(os_template, images, keep_refused, self.site.ami_xen_only)
        return make_plan(
            os_template,
            types,
            self.build_set(os_template, timestamp),
            self.workspace,
            self.paths,
            self.site,
            tool_versions(),
        )


def image_types(
    os_template: OSTemplate,
    images: str | None,
    keep_refused: bool = False,
    xen_only: bool = False,
) -> list[ImageType]:
    """resolve_images, less the types this OS cannot make boot when every type was asked for
    (`all`, or none named); a type named outright is kept, for preflight to refuse."""
    types: list[ImageType] = resolve_images(images)
    every = images is None or "all" in [x.strip() for x in images.split(",")]
    if every and not keep_refused:
        types = [t for t in types if image_refusal(os_template.spec, t.name, xen_only) is None]
    return types


def tool_versions() -> dict[str, str]:
    """Versions of the tools that shape an image; Packer's is part of every stage key."""
    return dict(_tool_versions(shutil.which("packer"), shutil.which("qemu-img")))


@functools.cache
def _tool_versions(packer: str | None, qemu_img: str | None) -> tuple[tuple[str, str], ...]:
    versions = {"suitcase": __version__, "packer": packer_version()}
    try:
        out = run(["qemu-img", "--version"]).stdout
        match = re.search(r"version (\S+)", out)
        versions["qemu-img"] = match.group(1) if match else "unknown"
    except ToolError:
        versions["qemu-img"] = "missing"
    return tuple(versions.items())


def git_revision(root: Path) -> str:
    try:
        head = run(["git", "-C", str(root), "rev-parse", "HEAD"], check=True).stdout.strip()
        dirty = run(["git", "-C", str(root), "status", "--porcelain"], check=True).stdout.strip()
    except ToolError:
        return "unknown"
    return head + ("-dirty" if dirty else "")
