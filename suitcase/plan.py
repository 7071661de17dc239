"""The build plan: a pure function from (OS, image types, build set, workspace) to ordered stages.

Each stage's key hashes every input that shapes its output; a stage whose manifest carries the
same key (and whose outputs are still there) is done and is skipped.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from suitcase.answerfile import KEY_PLACEHOLDER, render
from suitcase.config import Paths, Site
from suitcase.imagetypes import ImageType, with_parents
from suitcase.manifest import Manifest, inspect_manifest, outputs_intact
from suitcase.media import kickstart_repos
from suitcase.ostemplate import OSTemplate
from suitcase.workspace import BuildSet, Workspace

#: Bump when Suitcase changes how it turns Packer's output into artifacts.
ARTIFACT_FORMAT = "1"


@dataclass(frozen=True)
class Stage:
    """One image to build, with everything that decides its output."""

    image: ImageType
    directory: Path
    template: Path
    inputs: dict[str, str]
    key: str
    parent: str | None


@dataclass(frozen=True)
class StageState:
    stage: Stage
    done: bool
    reason: str
    manifest: Manifest | None


@dataclass(frozen=True)
class BuildPlan:
    os: OSTemplate
    build_set: BuildSet
    stages: list[Stage]
    builder: str

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.image.name == name)

    def states(self) -> list[StageState]:
        """Which stages are done and which would run, and why (reads manifests, builds nothing)."""
        states: list[StageState] = []
        rebuilding: set[str] = set()
        for stage in self.stages:
            manifest, problem = inspect_manifest(stage.directory)
            reason = problem or _why_not_done(stage, manifest, rebuilding)
            if reason:
                rebuilding.add(stage.image.name)
            states.append(StageState(stage, not reason, reason or "up to date", manifest))
        return states


def hash_files(files: list[Path], root: Path) -> str:
    """sha256 over the names (relative to `root`) and contents of `files`."""
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def stage_scripts(paths: Paths, stage: str) -> list[Path]:
    """The scripts one stage runs: run-stage.sh, lib/, common/, the stage's, cleanup/."""
    root = paths.scripts_dir
    files = [root / "run-stage.sh"]
    for folder in ("lib", "common", stage, "cleanup"):
        files.extend(p for p in sorted((root / folder).glob("*")) if p.is_file())
    return [f for f in files if f.is_file()]


def make_plan(
    os_template: OSTemplate,
    images: list[ImageType],
    build_set: BuildSet,
    workspace: Workspace,
    paths: Paths,
    site: Site,
    tool_versions: dict[str, str],
) -> BuildPlan:
    """Every stage needed for `images` (parents first) with its key. Pure: reads only files."""
    stages: list[Stage] = []
    keys: dict[str, str] = {}
    for image in with_parents(images):
        template = paths.templates_dir / image.template(site.builder, os_template.method)
        inputs: dict[str, str] = {
            "os-template": os_template.fingerprint(),
            "packer-template": hash_files([template], paths.templates_dir)
            if template.exists()
            else "missing",
            "scripts": hash_files(stage_scripts(paths, image.name), paths.scripts_dir),
            "builder": site.builder,
            "packer": tool_versions.get("packer", "unknown"),
        }
        for module in image.code:  # Suitcase's own code that shapes the outputs
            inputs[f"{CODE_PREFIX}{module}"] = _code_hash(module)
        if image.is_master:
            if os_template.method == "installer":
                text = render(
                    os_template,
                    paths,
                    KEY_PLACEHOLDER,
                    kickstart_repos(site, os_template),
                    build_set.id,
                )
                inputs["answer-file"] = hashlib.sha256(text.encode()).hexdigest()
            else:
                bootstrap = paths.scripts_dir / "bootstrap" / "debian-disk.sh"
                inputs["bootstrap"] = (
                    hash_files([bootstrap], paths.scripts_dir) if bootstrap.exists() else "missing"
                )
        else:
            assert image.parent is not None
            inputs["parent"] = keys[image.parent]
            inputs["derive"] = site.derive
            inputs["artifact-format"] = ARTIFACT_FORMAT
        key = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()
        keys[image.name] = key
        stages.append(
            Stage(
                image=image,
                directory=workspace.stage_dir(image.name, build_set),
                template=template,
                inputs=inputs,
                key=key,
                parent=image.parent,
            )
        )
    return BuildPlan(os=os_template, build_set=build_set, stages=stages, builder=site.builder)


#: input names of Suitcase's own modules: "code:artifact.py"
CODE_PREFIX = "code:"
_PACKAGE = Path(__file__).resolve().parent


def _code_hash(module: str) -> str:
    return hashlib.sha256((_PACKAGE / module).read_bytes()).hexdigest()


def _why_not_done(stage: Stage, manifest: Manifest | None, rebuilding: set[str]) -> str:
    if manifest is None:
        return "not built yet"
    if stage.parent in rebuilding:
        return f"its parent {stage.parent} will be rebuilt"
    if manifest.key != stage.key:
        changed = sorted(k for k, v in stage.inputs.items() if manifest.inputs.get(k) != v)
        code = [k.removeprefix(CODE_PREFIX) for k in changed if k.startswith(CODE_PREFIX)]
        others = [k for k in changed if not k.startswith(CODE_PREFIX)]
        reasons = [f"code changed: {', '.join(code)}"] if code else []
        if others or not code:
            reasons.append("inputs changed: " + (", ".join(others) or "key format"))
        return "; ".join(reasons)
    broken = outputs_intact(stage.directory, manifest)
    return broken or ""
