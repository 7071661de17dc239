"""The `register` and `deregister` verbs as library calls (the CLI and the plugin share them)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from suitcase.aws.ami import KINDS, AmiSettings, deregister_stage, register_stage
from suitcase.aws.clients import AwsTarget
from suitcase.context import Context
from suitcase.errors import ConfigError
from suitcase.imagetypes import resolve_images
from suitcase.manifest import read_manifest

Say = Callable[[str], None]
UPLOAD_COOKIE = ".upload_done"


def aws_target(ctx: Context, say: Say) -> AwsTarget:
    """Where AWS calls go: issue 9's rule when it is there, else AWS_ENDPOINT_URL."""
    from suitcase.aws import clients

    choose = getattr(clients, "aws_target", None)
    if choose is not None:
        target: AwsTarget = choose(ctx, say)
        return target
    found = clients.aws_target_from_env(ctx.site.region)
    if found is None:
        raise ConfigError(
            "no AWS endpoint: set AWS_ENDPOINT_URL (this version has no embedded endpoint yet)"
        )
    say(f"using {found.describe()}")
    return found


def _ami_types(image: str | None) -> list[str]:
    names = [t.name for t in resolve_images(image) if t.name in KINDS]
    if not names:
        raise ConfigError(f"'{image}' has no AMI image type: register aws-hvm or aws-paravirt")
    return names


def require_upload(stage_dir: Path, name: str, key: str) -> None:
    """The original registered only uploaded images (its `.upload_done` cookie).

    LEAD: wire issue 9's upload here (upload what is missing, as the original's register did);
    until then a cookie from `upload` or `fake-upload` for this very stage key is required.
    """
    try:
        cookie = json.loads((stage_dir / UPLOAD_COOKIE).read_text())
    except (OSError, ValueError):
        cookie = None
    if not isinstance(cookie, dict) or cookie.get("key") != key:
        raise ConfigError(
            f"{name} of {stage_dir.name} is not uploaded: run `suitcase upload {name}` "
            f"(or `suitcase fake-upload {name}`) first"
        )


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
    settings = AmiSettings.from_site(ctx.site)
    lines = []
    with ctx.workspace.lock(plan.build_set):
        for name in names:
            stage_dir = plan.stage(name).directory
            manifest = read_manifest(stage_dir)
            if manifest is None:
                raise ConfigError(f"{name} of {plan.build_set.id} has no manifest")
            require_upload(stage_dir, name, manifest.key)
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
            lines += deregister_stage(target, stage_dir, manifest, say)
    return lines
