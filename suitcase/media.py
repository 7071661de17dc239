"""EL install media and repositories: what a build needs beyond the ISO, checked before any VM.

An OS template says where its release lives (`installer.mirror`, a key of the site's `mirrors`;
default: the distribution's name), which repositories its package set needs beyond the ISO
(`installer.repositories`: name, path under that mirror, and the `content` they carry, a key of
os/data/packages.yaml) and what its ISO carries (`installer.iso_content`). The site gives each
repository either explicitly (`repos.<answer file>` entry of the same name) or through the
mirror. `preflight` refuses in one line, before Packer starts, when any of that is missing or
when a local ISO's sha256 is not the template's.

>>> preflight(ctx, plan, todo)                     # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from suitcase.config import Paths, Site
from suitcase.errors import ConfigError
from suitcase.ostemplate import OSTemplate

if TYPE_CHECKING:
    from suitcase.context import Context
    from suitcase.plan import BuildPlan, Stage

#: Derived image types that enable cloud-init (scripts/aws-*/30-cloud-init.sh).
NEEDS_CLOUD_INIT = ("aws-hvm", "aws-paravirt")
CHUNK = 4 * 2**20


# --- what each medium carries (os/data/packages.yaml) --------------------------------------


def package_data(paths: Paths) -> dict[str, Any]:
    path = paths.os_dir / "data" / "packages.yaml"
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        raise ConfigError(f"{path}: cannot read the package lists") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must map a content name to its source and packages")
    return data


def content_packages(paths: Paths, content: str, where: str) -> set[str]:
    entry = package_data(paths).get(content)
    if not isinstance(entry, dict) or not isinstance(entry.get("packages"), list):
        raise ConfigError(f"{where}: content '{content}' is not in os/data/packages.yaml")
    return {str(p) for p in entry["packages"]}


def declared_repositories(os_template: OSTemplate) -> list[dict[str, str]]:
    return [dict(r) for r in os_template.installer.get("repositories") or []]


def carried_packages(os_template: OSTemplate, paths: Paths) -> set[str]:
    """Every package the template's ISO and declared repositories carry (of those listed)."""
    where = str(os_template.path)
    found: set[str] = set()
    if os_template.installer.get("iso_content"):
        found |= content_packages(paths, str(os_template.installer["iso_content"]), where)
    for repo in declared_repositories(os_template):
        found |= content_packages(paths, repo["content"], where)
    return found


def has_cloud_init(os_template: OSTemplate, paths: Paths) -> bool:
    """Whether the master can install cloud-init from its media (EL6's 6.5 extras cannot)."""
    return "cloud-init" in carried_packages(os_template, paths)


def master_has_cloud_init(os_template: OSTemplate, paths: Paths) -> bool:
    """Whether the master gets cloud-init: from its media where the template names them."""
    installer = os_template.installer
    if os_template.method != "installer":
        return True  # Debian: the bootstrap's package list holds it
    if not installer.get("iso_content") and not installer.get("repositories"):
        return True  # media not described: the kickstart asks for it, as before
    return has_cloud_init(os_template, paths)


# --- where a release lives ----------------------------------------------------------------


def mirror_key(os_template: OSTemplate) -> str:
    """The site `mirrors` key of this release: installer.mirror, else the distribution's name."""
    return str(os_template.installer.get("mirror") or os_template.distribution).lower()


def mirror_for(site: Site, os_template: OSTemplate) -> str | None:
    return site.mirror(mirror_key(os_template))


def kickstart_repos(site: Site, os_template: OSTemplate) -> list[dict[str, str]]:
    """The kickstart's `repo` lines: declared repositories the site resolves, then the site's own.

    Never raises: `suitcase plan` renders kickstarts without a mirror; `preflight` refuses.
    """
    given = {r.name: r for r in site.repos.get(os_template.answer_file or "", [])}
    mirror = mirror_for(site, os_template)
    repos: list[dict[str, str]] = []
    for repo in declared_repositories(os_template):
        if repo["name"] in given:
            repos.append({"name": repo["name"], "baseurl": given[repo["name"]].baseurl})
        elif mirror:
            repos.append({"name": repo["name"], "baseurl": f"{mirror}/{repo['path'].strip('/')}/"})
    declared = {r["name"] for r in repos}
    repos += [
        {"name": r.name, "baseurl": r.baseurl} for r in given.values() if r.name not in declared
    ]
    return repos


def check_repositories(site: Site, os_template: OSTemplate, paths: Paths) -> None:
    """Refuse when the site gives a declared repository neither by name nor through a mirror."""
    resolved = {r["name"] for r in kickstart_repos(site, os_template)}
    missing = [r for r in declared_repositories(os_template) if r["name"] not in resolved]
    if not missing:
        return
    iso = set()
    if os_template.installer.get("iso_content"):
        iso = content_packages(paths, str(os_template.installer["iso_content"]), "")
    needed = sorted(
        set().union(*(content_packages(paths, r["content"], "") for r in missing)) - iso
    )
    names = ", ".join(r["name"] for r in missing)
    why = f" (for {', '.join(needed)}, which its ISO lacks)" if needed else ""
    raise ConfigError(
        f"{os_template.name} needs the repositories {names}{why}: set "
        f"mirrors.{mirror_key(os_template)} in site.yaml, or give repos."
        f"{os_template.answer_file} entries named {names}"
    )


# --- the ISO --------------------------------------------------------------------------------


def local_iso(workspace_root: Path, os_template: OSTemplate) -> Path:
    return workspace_root / "iso" / Path(str(os_template.installer["iso_path"])).name


def iso_url(workspace_root: Path, site: Site, os_template: OSTemplate) -> str:
    """<workspace>/iso/<file> if present, else <mirror of this release>/<iso_path>."""
    local = local_iso(workspace_root, os_template)
    if local.is_file():
        return local.as_uri()
    mirror = mirror_for(site, os_template)
    if not mirror:
        key = mirror_key(os_template)
        named = os_template.installer.get("mirror")
        where = f" (os template names mirror '{named}')" if named else ""
        raise ConfigError(
            f"no install medium for {os_template.name}: put {local.name} in {local.parent} "
            f"or set mirrors.{key} in site.yaml{where}"
        )
    return f"{mirror}/{os_template.installer['iso_path']}"


def sha256_of(path: Path, cache: Path) -> str:
    """sha256 of a (multi-GB) file, remembered by size and mtime in `cache` (JSON)."""
    stat = path.stat()
    stamp = f"{stat.st_size}:{stat.st_mtime_ns}"
    try:
        known = json.loads(cache.read_text())
    except (OSError, ValueError):
        known = {}
    if not isinstance(known, dict):
        known = {}
    entry = known.get(str(path.resolve()))
    if isinstance(entry, dict) and entry.get("stamp") == stamp:
        return str(entry["sha256"])
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    known[str(path.resolve())] = {"stamp": stamp, "sha256": digest.hexdigest()}
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(cache.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(known, indent=1, sort_keys=True))
    tmp.replace(cache)
    return digest.hexdigest()


def verify_local_iso(workspace_root: Path, os_template: OSTemplate, cache: Path) -> None:
    """A local ISO whose sha256 is not the template's is refused (Packer would start first)."""
    local = local_iso(workspace_root, os_template)
    if not local.is_file():
        return  # from a mirror Packer checks the download against the same checksum
    expected = os_template.iso_checksum().removeprefix("sha256:")
    actual = sha256_of(local, cache)
    if actual != expected:
        raise ConfigError(
            f"{local}: sha256 {actual} is not {expected} from "
            f"{os_template.installer.get('checksum_source', os_template.path)}: "
            "the file is damaged or another release; replace it"
        )


# --- all of it, before anything starts -----------------------------------------------------


def preflight(ctx: Context, plan: BuildPlan, todo: list[Stage]) -> None:
    """Media checks of a build: checksum, mirror, repositories, local ISO, cloud-init."""
    if plan.os.method != "installer":
        return
    names = {s.image.name for s in todo}
    aws = sorted(names & set(NEEDS_CLOUD_INIT))
    if aws and not master_has_cloud_init(plan.os, ctx.paths):
        verb = "need" if len(aws) > 1 else "needs"
        raise ConfigError(
            f"{', '.join(aws)} {verb} cloud-init, which {plan.os.name}'s media do not carry "
            "(os/data/packages.yaml): build master and vagrant only"
        )
    if "master" in names:
        plan.os.iso_checksum()
        iso_url(ctx.workspace.root, ctx.site, plan.os)
        check_repositories(ctx.site, plan.os, ctx.paths)
        verify_local_iso(ctx.workspace.root, plan.os, ctx.workspace.cache_dir / "iso-sha256.json")
