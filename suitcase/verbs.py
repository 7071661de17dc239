"""What each CLI verb does, as library calls (the pytest plugin uses the same ones)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from suitcase.aws.ship import read_cookie
from suitcase.build import Say, StageResult, preflight, run_plan
from suitcase.context import Context, image_types
from suitcase.errors import ConfigError, SuitcaseError
from suitcase.imagetypes import IMAGE_TYPES, resolve_images
from suitcase.manifest import UPLOAD_COOKIE, inspect_manifest, write_atomic
from suitcase.ostemplate import OSTemplate, list_os, load_os
from suitcase.plan import BuildPlan
from suitcase.verified import check_build_policy
from suitcase.workspace import BuildSet, new_timestamp


class CannotStart(ConfigError):
    """A run whose builds cannot start (no medium, no room, a bad template): one line, exit 2."""


def preflight_plan(ctx: Context, plan: BuildPlan) -> None:
    """Refuse up front, once, when a stage the run needs cannot be built (the CLI and plugin)."""
    todo = [state.stage for state in plan.states() if not state.done]
    if not todo:
        return
    try:
        ctx.workspace.check_writable()
        preflight(ctx, plan, todo)
    except SuitcaseError as exc:
        raise CannotStart(str(exc).splitlines()[0]) from None


def existing_build_set(
    ctx: Context, os_name: str, timestamp: str | None, allow_new: bool
) -> BuildSet:
    """The build set a verify/parity run means; a set the user named must exist (never built).

    No timestamp: the newest set with a completed stage, else (`allow_new`) a new one.
    """
    if timestamp is None:
        latest = ctx.workspace.latest(os_name)
        if latest is not None:
            return BuildSet(os_name, latest)
        if allow_new:
            return BuildSet(os_name, new_timestamp())
        raise ConfigError(
            f"no build set of {os_name} with a completed stage in {ctx.workspace.images_dir}"
        )
    bset = BuildSet(os_name, ctx.workspace.resolve_timestamp(os_name, timestamp))
    if not ctx.workspace.exists(bset):
        raise ConfigError(
            f"build set {bset.id} does not exist in {ctx.workspace.images_dir}: build it with "
            f"'suitcase build --os {os_name} --timestamp {bset.timestamp}', or leave out "
            "--timestamp for the newest one"
        )
    return bset


def build(
    ctx: Context,
    image: str | None,
    os_name: str | None,
    timestamp: str | None,
    on_error: str,
    wait: float,
    say: Say,
) -> list[StageResult]:
    plan = ctx.plan(os_name, image, timestamp)
    ctx.workspace.check_writable()
    say(f"build set {plan.build_set.id} (builder {plan.builder}, {ctx.site.accelerator})")
    return run_plan(ctx, plan, say, on_error=on_error, wait=wait)


def plan_text(ctx: Context, image: str | None, os_name: str | None, timestamp: str | None) -> str:
    plan = ctx.plan(os_name, image, timestamp, keep_refused=True)
    return render_plan(plan, ctx.site.ami_xen_only)


def render_plan(plan: BuildPlan, xen_only: bool = False) -> str:
    from suitcase.ostemplate import image_refusal

    lines = [f"build set {plan.build_set.id}  (OS {plan.os.name}, builder {plan.builder})"]
    for number, state in enumerate(plan.states(), 1):
        stage = state.stage
        refusal = image_refusal(plan.os.spec, stage.image.name, xen_only)
        verdict = "done" if state.done else "would run"
        if refusal and not state.done:
            verdict, state = "would be refused", dataclasses.replace(state, reason=refusal)
        parent = f" <- {stage.parent}" if stage.parent else ""
        lines.append(
            f"  {number}. {stage.image.name:<13} key {stage.key[:12]}  {verdict}: {state.reason}"
            f"{parent}"
        )
        lines.append(f"     template {stage.template.name}, folder {stage.directory}")
    return "\n".join(lines)


def capability_line(tpl: OSTemplate, xen_only: bool = False) -> str:
    """The OS template's capability table in one line, and the image types it refuses."""
    from suitcase.ostemplate import image_refusal

    caps = tpl.spec.capabilities
    refused = [i for i in IMAGE_TYPES if image_refusal(tpl.spec, i, xen_only)]
    return (
        f"kernel {caps.kernel} (ena {'yes' if caps.ena else 'no'}, xen-pv "
        f"{'yes' if caps.xen_pv else 'no'}), cloud-init {caps.cloud_init or 'none'}, OpenSSH "
        f"{tpl.spec.openssh_version or '?'}, {caps.init}, {caps.network}, "
        f"{caps.package_manager}, root {tpl.spec.root_fs}; refuses: "
        + (", ".join(refused) if refused else "nothing")
    )


def list_text(ctx: Context, commands: Mapping[str, Any]) -> str:
    lines = ["Verbs:"]
    for name, command in sorted(commands.items()):
        help_line = (command.get_short_help_str(limit=70) or "").strip()
        lines.append(f"  {name:<12} {help_line}")
    lines.append("Image types:")
    for t in IMAGE_TYPES.values():
        aliases = f" (also {', '.join(t.aliases)})" if t.aliases else ""
        parent = t.parent or "-"
        lines.append(
            f"  {t.name:<13} from {parent:<7} verify by {t.verification:<8} "
            f"{t.description}{aliases}"
        )
    lines.append("OS templates:")
    for name in list_os(ctx.paths):
        try:
            tpl = load_os(name, ctx.paths)
        except ConfigError as exc:
            lines.append(f"  {name:<22} INVALID: {exc}")
            continue
        medium = tpl.method
        if tpl.method == "installer" and not tpl.installer.get("iso_checksum"):
            medium += ", no checksum yet: supply it (see the template's checksum_source)"
        elif tpl.method == "installer" and str(tpl.installer.get("checksum_source", "")).startswith(
            "the original Suitcase var-file"
        ):
            medium += ", checksum from the original var-file only (unconfirmed by the vendor)"
        lines.append(f"  {name:<22} {tpl.family:<7} {medium}")
        lines.append(f"    {capability_line(tpl, ctx.site.ami_xen_only)}")
    lines.append(f"Build sets in {ctx.workspace.images_dir}:")
    sets = ctx.workspace.build_sets()
    if not sets:
        lines.append("  (none)")
    for bset in sets:
        lines.append(f"  {bset.id}")
        lines.extend(f"    {line}" for line in _set_states(ctx, bset))
    return "\n".join(lines)


def _set_states(ctx: Context, bset: BuildSet) -> list[str]:
    out = []
    for image in IMAGE_TYPES:
        directory = ctx.workspace.stage_dir(image, bset)
        if not directory.exists():
            continue
        manifest, problem = inspect_manifest(directory)
        if manifest is None:
            out.append(f"{image:<13} incomplete ({problem or 'no manifest'})")
            continue
        cookie = read_cookie(directory)
        uploaded = ""
        if cookie is not None:
            uploaded = " uploaded (fake)" if cookie.get("fake", True) is not False else " uploaded"
        out.append(f"{image:<13} done, key {manifest.key[:12]}, {manifest.finished}{uploaded}")
    return out


def clean(
    ctx: Context, image: str | None, os_name: str | None, timestamp: str | None, dry_run: bool
) -> list[str]:
    """Remove IMAGE's stage folders of one build set (or every set of the OS): all or none."""
    os_template = ctx.os_template(os_name)
    names = [t.name for t in resolve_images(image)]
    bset = (
        BuildSet(os_template.name, ctx.workspace.resolve_timestamp(os_template.name, timestamp))
        if timestamp is not None
        else None
    )
    if dry_run:
        targets = ctx.workspace.clean_targets(names, bset, os_template.name)
        found = [path for paths in targets.values() for path in paths]
        return [f"would remove {p}" for p in found] or ["nothing to remove"]
    sets = [bset] if bset is not None else ctx.workspace.build_sets(os_template.name)
    removed = ctx.workspace.clean(names, bset, os_template.name)
    return [f"removed {p}" for p in [*removed, *_drop_caches(ctx, names, sets, removed)]] or [
        "nothing to remove"
    ]


def _drop_caches(
    ctx: Context, names: list[str], sets: list[BuildSet], removed: list[Path]
) -> list[Path]:
    """Verification's flat copies and master snapshots of the stage folders just removed."""
    from suitcase.parity import snapshot_cache
    from suitcase.verified import CACHED_PARTS, flat_cache, stage_cache_name

    images_dir = ctx.workspace.images_dir
    dropped: list[Path] = []
    for bset in sets:
        for name in names:
            if ctx.workspace.stage_dir(name, bset) not in removed:
                continue
            for part in CACHED_PARTS:
                stage = stage_cache_name(name, bset.id, part)
                dropped += flat_cache(images_dir).drop(stage)
                dropped += snapshot_cache(images_dir).drop(stage)
    return dropped


def fake_upload(
    ctx: Context, image: str | None, os_name: str | None, timestamp: str | None
) -> list[str]:
    """Leave the upload cookie on built stages (as the original did) to try registration."""
    if timestamp is None:
        raise ConfigError("fake-upload needs --timestamp (a build set to mark; 'latest' works)")
    plan = ctx.plan(os_name, image, timestamp)
    wanted = {t.name for t in resolve_images(image)}
    lines = []
    for state in plan.states():
        name = state.stage.image.name
        if name not in wanted:
            continue
        if not state.done or state.manifest is None:
            raise ConfigError(f"{name} of {plan.build_set.id} is not built: {state.reason}")
        # marked fake, and holding no objects: nothing downstream takes it for an upload
        cookie = {"fake": True, "key": state.manifest.key, "objects": []}
        write_atomic(state.stage.directory / UPLOAD_COOKIE, json.dumps(cookie) + "\n")
        lines.append(f"{name}: marked as uploaded (fake)")
    return lines


def _existing_plan(
    ctx: Context, image: str | None, os_name: str | None, timestamp: str | None
) -> BuildPlan:
    """The plan of an existing build set (default: the newest of the OS with a completed stage)."""
    os_template = ctx.os_template(os_name)
    bset = existing_build_set(ctx, os_template.name, timestamp, allow_new=False)
    return ctx.plan(os_template.name, image, bset.timestamp)


#: the image types whose specs can run on their AMI's snapshot read back
AMI_IMAGES = ("aws-hvm", "aws-paravirt")


def check_source(source: str, names: list[str]) -> None:
    """Only AMIs can be verified from their AMI (`verify --from ami`, --suitcase-source=ami)."""
    others = [n for n in names if n not in AMI_IMAGES]
    if source == "ami" and others:
        raise ConfigError(
            f"--from ami verifies an AMI: {', '.join(others)} is not one (only "
            f"{' and '.join(AMI_IMAGES)})"
        )


def verify(
    ctx: Context,
    image: str | None,
    os_name: str | None,
    timestamp: str | None,
    workers: int,
    mode: str,
    extra: tuple[str, ...] = (),
    source: str = "artifact",
    build: str = "missing",
) -> int:
    """Run the specs through pytest (the plugin builds what is missing); returns pytest's code.

    A build set named with --timestamp must exist; without one, the newest completed set is
    verified, or a new one is built. A build that cannot start stops here, in one line.
    """
    os_template = ctx.os_template(os_name)
    types = image_types(os_template, image, xen_only=ctx.site.ami_xen_only)
    names = ",".join(t.name for t in types)
    check_source(source, names.split(","))
    if not ctx.workspace.root.is_dir():  # a typo must not start a whole new workspace
        raise ConfigError(f"workspace {ctx.workspace.root} does not exist; create it first")
    if workers < 0:
        raise ConfigError(f"-n {workers}: the number of workers must be 0 or more")
    bset = existing_build_set(ctx, os_template.name, timestamp, allow_new=True)
    plan = ctx.plan(os_template.name, names, bset.timestamp)
    check_build_policy(plan, build)  # a stale stage fails here, in one line, before pytest
    preflight_plan(ctx, plan)
    argv = [
        sys.executable,
        "-m",
        "pytest",
        str(ctx.paths.specs_dir),
        "-p",
        "no:cacheprovider",
        f"--rootdir={ctx.paths.specs_dir}",
        "--os",
        os_template.name,
        "--image",
        names,
        "--suitcase-workspace",
        str(ctx.workspace.root),
        "--suitcase-mode",
        mode,
        "--suitcase-build",
        build,
    ]
    if ctx.workspace.exists(bset):  # else the plugin starts the new set (pytest's own rule)
        argv += ["--timestamp", bset.timestamp]
    if ctx.site_file is not None:
        argv += ["--suitcase-site", str(ctx.site_file)]
    if source == "ami":  # asked for by name: registering in an account is no surprise here
        argv += ["--suitcase-source", "ami", "--suitcase-register"]
    if workers:
        argv += ["-n", str(workers)]
    # the options that override the site (--builder, --accelerator) reach pytest as variables
    env = {
        **os.environ,
        "SUITCASE_BUILDER": ctx.site.builder,
        "SUITCASE_ACCELERATOR": ctx.site.accelerator,
    }
    _endpoint_first(ctx, names.split(","))
    return subprocess.run(_specs_die_with_us([*argv, *extra]), check=False, env=env).returncode


def _specs_die_with_us(argv: list[str]) -> list[str]:
    """pytest dies with Suitcase however Suitcase dies (kill -9 included), and what it mounts
    (offline specs, the `image` fixture) lives in a mount namespace of its own, so a killed run
    leaves no mount and no loop device behind (the kernel drops them with the namespace)."""
    from suitcase.command import dies_with_us, require

    return dies_with_us([require("unshare"), "--mount", "--propagation", "private", "--", *argv])


def _endpoint_first(ctx: Context, names: list[str]) -> None:
    """Start the embedded endpoint the AMI specs will use before pytest, outside its mount
    namespace: started inside, the long-lived endpoint would keep that namespace, and the mounts
    and loop devices of a killed run, alive."""
    if not any(name in AMI_IMAGES for name in names):
        return
    from suitcase.aws.clients import credential_source
    from suitcase.aws.endpoint import EmbeddedEndpoint

    mode = ctx.site.aws
    # aws_target's rule: auto reaches an account only when site.yaml names it (and STS agrees)
    if mode == "auto" and (
        os.environ.get("AWS_ENDPOINT_URL") or (ctx.site.account and credential_source())
    ):
        return
    if mode in ("auto", "embedded"):
        # on failure, the specs that need it start it themselves, and say what is wrong
        with contextlib.suppress(SuitcaseError):
            EmbeddedEndpoint(ctx.workspace.root).ensure(lambda line: print(line, file=sys.stderr))


def parity(
    ctx: Context, image: str | None, os_name: str | None, timestamp: str | None
) -> tuple[list[str], bool]:
    """Compare each derived image of a build set with its master; lines to show and a verdict.

    Every disk is checked against its manifest first; the master's snapshot is taken once per
    disk and rules (parity.master_snapshot), and qcow2 disks are mounted through the flat cache.
    """
    from suitcase.artifact import disk_info
    from suitcase.imagetypes import IMAGE_TYPES
    from suitcase.machine import mounted
    from suitcase.parity import Rules, compare, master_snapshot, snapshot
    from suitcase.verified import check_output, digest_cache, flat_cache, stage_cache_name

    plan = _existing_plan(ctx, image, os_name, timestamp)
    rules = Rules.load(ctx.paths)
    states = {s.stage.image.name: s for s in plan.states()}
    manifests = {n: s.manifest for n, s in states.items() if s.manifest is not None}
    if "master" not in manifests:
        raise ConfigError(f"the master of {plan.build_set.id} is not built")
    images_dir = ctx.workspace.images_dir

    def disk(name: str) -> tuple[Path, str]:
        """The stage's disk and its sha256, checked against the manifest."""
        manifest = manifests[name]
        output = manifest.output(IMAGE_TYPES[name].disk)
        if output is None:
            raise ConfigError(f"{name} of {plan.build_set.id} lists no disk")
        directory = plan.stage(name).directory
        return directory / output.path, check_output(directory, output, digest_cache(images_dir))

    def stage(name: str) -> str:
        return stage_cache_name(name, plan.build_set.id)

    family, key = plan.os.family, manifests["master"].key
    master = master_snapshot(images_dir, stage("master"), key, *disk("master"), family, rules)
    lines, ok = [f"parity of {plan.build_set.id} against its master"], True
    derived = [s.image.name for s in plan.stages if not s.image.is_master]
    for name in derived:
        if name not in manifests:
            lines.append(f"{name}: not built, skipped")
            continue
        path, sha256 = disk(name)
        if disk_info(path).get("format") != "raw":
            path = flat_cache(images_dir).raw_of(path, stage(name), manifests[name].key, sha256)
        with mounted(path) as root:
            problems = compare(master, snapshot(root, family, rules), name, rules)
        lines.append(f"{name}: {'holds' if not problems else f'{len(problems)} difference(s)'}")
        lines.extend(f"  {p}" for p in problems)
        ok = ok and not problems
    return lines, ok


def _stored_set(ctx: Context, os_name: str | None, timestamp: str | None, verb: str) -> BuildSet:
    """A build set named on the command line for a verb that works on S3."""
    os_template = ctx.os_template(os_name)
    if timestamp is None:
        raise ConfigError(f"{verb} needs --timestamp YYYYMMDDhhmmss (the build set)")
    if timestamp == "latest" and verb == "fetch":
        raise ConfigError("fetch needs an explicit --timestamp: 'latest' means the newest here")
    return ctx.build_set(os_template, timestamp)


def upload(
    ctx: Context,
    image: str | None,
    os_name: str | None,
    timestamp: str | None,
    create_bucket: bool,
    say: Say,
) -> list[str]:
    """Build what is missing of an existing build set, then upload its stages to S3."""
    from suitcase.aws.ship import ready_bucket, upload_plan

    os_template = ctx.os_template(os_name)
    if timestamp is None and not ctx.workspace.build_sets(os_template.name):
        bset = ctx.build_set(os_template, None)  # nothing built yet: a new build set
    else:
        bset = ctx.build_set(os_template, timestamp or "latest")
        if not any(ctx.workspace.stage_dir(t, bset).is_dir() for t in IMAGE_TYPES):
            raise ConfigError(
                f"no build set {bset.id} in {ctx.workspace.images_dir}: build it, or fetch it"
            )
    plan = ctx.plan(os_template.name, image, bset.timestamp)
    bucket = ready_bucket(ctx, create_bucket, say)  # a bad bucket fails before a long build
    run_plan(ctx, plan, say)
    return upload_plan(ctx, plan, create_bucket, say, bucket=bucket)


def fetch(
    ctx: Context, image: str | None, os_name: str | None, timestamp: str | None, say: Say
) -> list[str]:
    """Download a build set's stages (IMAGE and its parents) from S3 into the workspace."""
    from suitcase.aws.ship import fetch_plan

    bset = _stored_set(ctx, os_name, timestamp, "fetch")
    plan = ctx.plan(bset.os, image, bset.timestamp)
    return fetch_plan(ctx, plan, say)


def delete(
    ctx: Context,
    image: str | None,
    os_name: str | None,
    timestamp: str | None,
    force: bool,
    dry_run: bool,
    say: Say,
) -> list[str]:
    """Remove IMAGE's objects of one build set from S3 (refused while its AMIs exist)."""
    from suitcase.aws.ship import delete_stages

    bset = _stored_set(ctx, os_name, timestamp, "delete")
    names = [t.name for t in resolve_images(image)]
    return delete_stages(ctx, bset, names, force, dry_run, say)


def register_amis(
    ctx: Context, image: str | None, os_name: str | None, timestamp: str | None, say: Say
) -> list[str]:
    """Register the AMI image types among IMAGE (none: nothing to do), for `all`."""
    from suitcase.aws.ami import KINDS
    from suitcase.aws.register import register

    names = [t.name for t in resolve_images(image) if t.name in KINDS]
    if not names:
        return ["no AMI image type selected: nothing to register"]
    return register(ctx, ",".join(names), os_name, timestamp, say)
