"""The `register` and `deregister` verbs as library calls (the CLI and the plugin share them)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from suitcase.aws.ami import KINDS, AmiSettings, deregister_stage, register_stage
from suitcase.aws.clients import aws_target
from suitcase.aws.errors import aws_errors
from suitcase.aws.ship import read_cookie, upload_plan
from suitcase.context import Context
from suitcase.errors import ConfigError
from suitcase.imagetypes import resolve_images
from suitcase.manifest import read_manifest

Say = Callable[[str], None]


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
    """Build what is missing, then register each AMI type of IMAGE (found, not duplicated)."""
    from suitcase.build import run_plan

    names = _ami_types(image)
    os_template = ctx.os_template(os_name)
    if timestamp is None and ctx.workspace.build_sets(os_template.name):
        timestamp = "latest"  # register the newest build set; a fresh one only when none exists
    target = aws_target(ctx, say)
    plan = ctx.plan(os_template.name, ",".join(names), timestamp)
    say(f"build set {plan.build_set.id}")
    run_plan(ctx, plan, say)
    # Like the original's register: what is not uploaded yet is uploaded first.
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
            manifest = read_manifest(stage_dir)
            if manifest is None:
                raise ConfigError(f"{name} of {plan.build_set.id} has no manifest")
            if not uploaded(stage_dir, manifest.key):
                raise ConfigError(f"{name} of {plan.build_set.id} is not uploaded")
            with aws_errors(f"registering {name} of {plan.build_set.id}", target):
                result = register_stage(target, stage_dir, manifest, settings, say)
            lines.append(result.line())
    return lines


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
