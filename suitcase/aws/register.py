"""The `register` and `deregister` verbs as library calls (the CLI and the plugin share them)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from suitcase.aws.ami import KINDS, AmiSettings, deregister_stage, register_stage
from suitcase.aws.clients import aws_target
from suitcase.aws.errors import aws_errors
from suitcase.aws.ship import read_cookie, upload_plan
from suitcase.context import Context
from suitcase.errors import ConfigError, SuitcaseError
from suitcase.imagetypes import resolve_images
from suitcase.manifest import Manifest, read_manifest

Say = Callable[[str], None]


class NotVerified(SuitcaseError):
    """A stage `register` may not make an AMI of: not built, stale, or not verified enough."""


def _ami_types(image: str | None) -> list[str]:
    names = [t.name for t in resolve_images(image) if t.name in KINDS]
    if not names:
        raise ConfigError(f"'{image}' has no AMI image type: register aws-hvm or aws-paravirt")
    return names


def uploaded(stage_dir: Path, key: str) -> bool:
    """The stage carries an upload cookie (real, or `fake-upload`'s) for this very stage key."""
    cookie = read_cookie(stage_dir)
    return cookie is not None and cookie.get("key") == key


def register(
    ctx: Context, image: str | None, os_name: str | None, timestamp: str | None, say: Say
) -> list[str]:
    """Register each AMI type of IMAGE of a build set (default: the newest), found, never
    duplicated. Only a built stage whose verification passed (suitcase.gates) is registered;
    what is not uploaded yet is uploaded first, as the original's register did."""
    names = _ami_types(image)
    os_template = ctx.os_template(os_name)
    bset = ctx.build_set(os_template, timestamp or "latest")
    plan = ctx.plan(os_template.name, ",".join(names), bset.timestamp)
    say(f"build set {plan.build_set.id}")
    for state in plan.states():  # the checks read only the workspace: refused before any call
        name = state.stage.image.name
        if name in names:
            require_verified(ctx, name, state.stage.directory, plan.build_set.id, state.reason)
    target = aws_target(ctx, say)
    stages = {n: plan.stage(n).directory for n in names}
    manifests = {n: read_manifest(d) for n, d in stages.items()}
    if not all(m is not None and uploaded(stages[n], m.key) for n, m in manifests.items()):
        say("uploading what is not uploaded yet")
        upload_plan(ctx, plan, False, say, trust_cookies=True)
    settings = AmiSettings.from_site(ctx.site)
    lines = []
    with ctx.workspace.lock(plan.build_set):
        for name in names:
            stage_dir = plan.stage(name).directory
            manifest = require_verified(ctx, name, stage_dir, plan.build_set.id)
            if not uploaded(stage_dir, manifest.key):
                raise ConfigError(f"{name} of {plan.build_set.id} is not uploaded")
            with aws_errors(f"registering {name} of {plan.build_set.id}", target):
                result = register_stage(target, stage_dir, manifest, settings, say)
            lines.append(result.line())
    return lines


def require_verified(
    ctx: Context, name: str, stage_dir: Path, set_id: str, stale: str = "up to date"
) -> Manifest:
    """The stage's manifest, when its stage is built and up to date and its verification let
    it be registered (suitcase.gates); else NotVerified, in one line saying what to run."""
    from suitcase.gates import verification_problem
    from suitcase.verified import check_output, digest_cache, shipped_output

    manifest = read_manifest(stage_dir)
    if manifest is None:
        raise NotVerified(f"{name} of {set_id} is not built: run `suitcase all {name}` first")
    if stale != "up to date":
        raise NotVerified(f"{name} of {set_id} is not up to date ({stale}): rebuild and verify it")
    output = shipped_output(manifest)
    check_output(stage_dir, output, digest_cache(ctx.workspace.images_dir))  # still as built
    record = manifest.extra.get("verification")
    problem = verification_problem(
        name, manifest.key, output.sha256, record, ctx.site.register_requires
    )
    if problem is not None:
        os_name, timestamp = set_id.rsplit("-", 1)
        raise NotVerified(
            f"{name} of {set_id} is not registered: {problem}; verify it first (suitcase verify "
            f"{name} --os {os_name} --timestamp {timestamp})"
        )
    return manifest


def deregister(
    ctx: Context, image: str | None, os_name: str | None, timestamp: str | None, say: Say
) -> list[str]:
    """Deregister IMAGE's AMIs of a build set (default: the newest) and delete their snapshots."""
    names = _ami_types(image)
    os_template = ctx.os_template(os_name)
    bset = ctx.build_set(os_template, timestamp or "latest")
    target = aws_target(ctx, say)
    lines = []
    with ctx.workspace.lock(bset):
        for name in names:
            stage_dir = ctx.workspace.stage_dir(name, bset)
            manifest = read_manifest(stage_dir)
            if manifest is None:
                lines.append(f"{name}: not built in {bset.id}, nothing to deregister")
                continue
            with aws_errors(f"deregistering {name} of {bset.id}", target):
                lines += deregister_stage(target, stage_dir, manifest, say)
    return lines
