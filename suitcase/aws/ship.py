"""Build sets in S3: upload a plan's stages, fetch them onto another machine, delete them, and the
`.upload_done` cookie that records what was confirmed.

Objects live at `s3://<bucket>/<prefix>/<type>/<os>-<timestamp>/<output path>`, the stage's
`manifest.json` beside its outputs (uploaded last, fetched first, written locally last).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from suitcase.aws import tags
from suitcase.aws.clients import aws_target
from suitcase.aws.progress import transfers
from suitcase.aws.s3 import (
    Bucket,
    S3Error,
    StoredObject,
    TransferSettings,
    aws_calls,
    aws_error,
)
from suitcase.context import Context
from suitcase.errors import ConfigError
from suitcase.manifest import (
    MANIFEST_NAME,
    UPLOAD_COOKIE,
    Manifest,
    outputs_intact,
    read_manifest,
    sha256_file,
    write_atomic,
    write_manifest,
)
from suitcase.plan import BuildPlan
from suitcase.workspace import BuildSet

Say = Callable[[str], None]


def open_bucket(ctx: Context, say: Say) -> Bucket:
    settings = TransferSettings.from_site(ctx.site.s3)
    return Bucket(aws_target(ctx, say), ctx.site.bucket, settings)


def stage_prefix(ctx: Context, stage: str, build_set: BuildSet) -> str:
    parts = [p for p in (ctx.site.prefix.strip("/"), stage, build_set.id) if p]
    return "/".join(parts) + "/"


# --- the cookie -------------------------------------------------------------------------------


def read_cookie(stage_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((stage_dir / UPLOAD_COOKIE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def real_upload(stage_dir: Path, manifest: Manifest | None = None) -> dict[str, Any] | None:
    """The cookie of a real, confirmed upload (of `manifest`'s stage key), never a fake one."""
    cookie = read_cookie(stage_dir)
    if cookie is None or cookie.get("fake", True) is not False or not cookie.get("objects"):
        return None
    if manifest is not None and cookie.get("key") != manifest.key:
        return None
    return cookie


def write_cookie(
    stage_dir: Path, bucket: Bucket, manifest: Manifest, objects: list[StoredObject]
) -> None:
    cookie = {
        "fake": False,
        "stage": manifest.stage,
        "build_set": f"{manifest.os}-{manifest.timestamp}",
        "key": manifest.key,
        "target": bucket.target.kind,
        "endpoint": bucket.target.endpoint_url or "aws",
        "region": bucket.target.region,
        "bucket": bucket.name,
        "objects": [o.__dict__ for o in objects],
        "confirmed": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    write_atomic(stage_dir / UPLOAD_COOKIE, json.dumps(cookie, indent=2) + "\n")


# --- upload -----------------------------------------------------------------------------------


def ready_bucket(ctx: Context, create_bucket: bool, say: Say) -> Bucket:
    """The site's bucket, checked (name, settings, reachable, ours) before anything is built."""
    with aws_calls(f"bucket {ctx.site.bucket}"):
        return _ready_bucket(ctx, create_bucket, say)


def _ready_bucket(ctx: Context, create_bucket: bool, say: Say) -> Bucket:
    bucket = open_bucket(ctx, say)
    bucket.ensure(create_bucket or bucket.target.kind == "embedded", say)
    return bucket


def upload_plan(
    ctx: Context,
    plan: BuildPlan,
    create_bucket: bool,
    say: Say,
    wait: float = 0,
    trust_cookies: bool = False,
    bucket: Bucket | None = None,
    held: bool = False,
) -> list[str]:
    """Upload every stage of `plan` (all must be done); a cookie per stage once confirmed.

    `held`: the caller holds the build-set lock already (`all` uploading a finished stage while
    the next one builds, see run_plan's `after_stage`), so it is not taken again.

    `wait`: seconds to wait for another holder of the build set (-1: forever).
    `trust_cookies`: a stage whose real cookie matches its manifest, and whose recorded objects
    S3 still holds (HeadObject), is not uploaded again: the pytest fixture, where a second xdist
    worker waits for the lock, then finds the first one's work done.
    """
    with aws_calls(f"upload of {plan.build_set.id}"):
        return _upload_plan(ctx, plan, create_bucket, say, wait, trust_cookies, bucket, held)


def _upload_plan(
    ctx: Context,
    plan: BuildPlan,
    create_bucket: bool,
    say: Say,
    wait: float = 0,
    trust_cookies: bool = False,
    bucket: Bucket | None = None,
    held: bool = False,
) -> list[str]:
    if bucket is None:
        bucket = _ready_bucket(ctx, create_bucket, say)
    lines: list[str] = []
    lock = contextlib.nullcontext() if held else ctx.workspace.lock(plan.build_set, wait=wait)
    with lock, transfers() as track:
        states = plan.states()
        for state in states:
            if not state.done or state.manifest is None:
                raise ConfigError(
                    f"{state.stage.image.name} of {plan.build_set.id} is not built: {state.reason}"
                )
        for state in states:
            stage, manifest = state.stage, state.manifest
            assert manifest is not None
            cookie = real_upload(stage.directory, manifest) if trust_cookies else None
            if cookie is not None:
                missing = _not_held(bucket, cookie)
                if not missing:
                    lines.append(f"{stage.image.name}: uploaded already (cookie, objects there)")
                    continue
                say(
                    f"{stage.image.name}: its cookie says uploaded, but {bucket.url(missing)} is "
                    "not there as recorded (lost endpoint state?): uploading again"
                )
                # the cookie is a lie from here on: gone before any byte is sent, so a run
                # killed during the upload leaves no cookie claiming what S3 does not hold
                (stage.directory / UPLOAD_COOKIE).unlink(missing_ok=True)
            prefix = stage_prefix(ctx, stage.image.name, plan.build_set)
            for upload in bucket.unfinished(prefix):
                say(
                    f"found an unfinished multipart upload of {bucket.url(upload['Key'])} "
                    f"(begun {upload['Initiated']:%Y-%m-%d %H:%M:%S}): resuming or aborting it"
                )
            objects = []
            for output in manifest.outputs:
                path = stage.directory / output.path
                advance = track(f"{stage.image.name}/{output.path}", output.size)
                objects.append(
                    bucket.put(
                        path, prefix + output.path, output.sha256, say, advance, output.crc64nvme
                    )
                )
            manifest_path = stage.directory / MANIFEST_NAME
            advance = track(f"{stage.image.name}/{MANIFEST_NAME}", manifest_path.stat().st_size)
            objects.append(
                bucket.put(
                    manifest_path, prefix + MANIFEST_NAME, sha256_file(manifest_path), say, advance
                )
            )
            for upload in bucket.unfinished(prefix):  # none may outlive this verb
                bucket.abort(upload["Key"], upload["UploadId"])
            write_cookie(stage.directory, bucket, manifest, objects)
            size = sum(o.size for o in objects)
            lines.append(
                f"{stage.image.name}: {len(objects)} objects ({size:,} bytes) confirmed in "
                f"{bucket.url(prefix)}"
            )
    return lines


def _describes(cookie: dict[str, Any], bucket: Bucket, deleted: set[str]) -> bool:
    """Does `cookie` record an object among `deleted` (from `bucket`)? Only then is it a lie
    now: an upload under another prefix, bucket or endpoint is still whole."""
    same_place = (
        cookie.get("bucket") == bucket.name
        and cookie.get("endpoint") == (bucket.target.endpoint_url or "aws")
        and cookie.get("region") == bucket.target.region
    )
    recorded = {str(obj.get("key", "")) for obj in cookie.get("objects", [])}
    return same_place and bool(recorded & deleted)


def _not_held(bucket: Bucket, cookie: dict[str, Any]) -> str:
    """The first object a cookie records that S3 does not hold as recorded ('' when all are)."""
    if cookie.get("bucket") != bucket.name:
        return str(cookie.get("objects", [{}])[0].get("key", ""))
    for obj in cookie.get("objects", []):
        head = bucket.head(str(obj.get("key", "")))
        if head is None or (head.get("ContentLength"), head.get("ChecksumCRC64NVME")) != (
            obj.get("size"),
            obj.get("crc64nvme"),
        ):
            return str(obj.get("key", ""))
    return ""


# --- fetch ------------------------------------------------------------------------------------


def fetch_plan(ctx: Context, plan: BuildPlan, say: Say) -> list[str]:
    """Download every stage of `plan` from S3, verified; a stage's manifest is written last."""
    with aws_calls(f"fetch of {plan.build_set.id}"):
        return _fetch_plan(ctx, plan, say)


def _fetch_plan(ctx: Context, plan: BuildPlan, say: Say) -> list[str]:
    bucket = open_bucket(ctx, say)
    bucket.ensure(False, say)
    remote: dict[str, Manifest] = {}
    for stage in plan.stages:
        prefix = stage_prefix(ctx, stage.image.name, plan.build_set)
        if bucket.head(prefix + MANIFEST_NAME) is None:
            raise S3Error(
                f"{stage.image.name} of {plan.build_set.id} was never uploaded: nothing at "
                f"{bucket.url(prefix)}; nothing fetched"
            )
        try:
            data = json.loads(bucket.get_bytes(prefix + MANIFEST_NAME))
            remote[stage.image.name] = Manifest.from_dict(data)
        except (ValueError, TypeError, KeyError) as exc:
            raise S3Error(
                f"{bucket.url(prefix + MANIFEST_NAME)} is not a manifest: {exc}"
            ) from None
        for output in remote[stage.image.name].outputs:
            _safe_relative(output.path, bucket.url(prefix + MANIFEST_NAME))
    lines: list[str] = []
    with ctx.workspace.lock(plan.build_set), transfers() as track:
        for stage in plan.stages:
            name = stage.image.name
            manifest = remote[name]
            prefix = stage_prefix(ctx, name, plan.build_set)
            local = read_manifest(stage.directory)
            if local == manifest and outputs_intact(stage.directory, manifest) is None:
                lines.append(f"{name}: already here, up to date")
                continue
            # every output is fetched and checked beside the stage first: a corrupt or failed
            # download leaves the local stage exactly as it was (manifest, cookie and all)
            staged: list[tuple[Path, Path]] = []
            objects = []
            try:
                for output in manifest.outputs:
                    dest = stage.directory / output.path
                    ctx.workspace.inside(dest.parent)  # no link out
                    beside = dest.with_name(f".{dest.name}{FETCHED}")
                    staged.append((beside, dest))
                    advance = track(f"{name}/{output.path}", output.size)
                    objects.append(
                        bucket.get(
                            prefix + output.path, beside, output.size, output.sha256, advance
                        )
                    )
                # all here and checked: from now on the stage changes, and a fetch killed
                # midway must never leave it looking done (the manifest goes first)
                (stage.directory / MANIFEST_NAME).unlink(missing_ok=True)
                (stage.directory / UPLOAD_COOKIE).unlink(missing_ok=True)
                for beside, dest in staged:
                    beside.replace(dest)
            finally:
                for beside, _dest in staged:
                    beside.unlink(missing_ok=True)
            write_manifest(stage.directory, manifest)
            head = bucket.head(prefix + MANIFEST_NAME) or {}
            objects.append(
                StoredObject(
                    prefix + MANIFEST_NAME,
                    (stage.directory / MANIFEST_NAME).stat().st_size,
                    str(head.get("ChecksumCRC64NVME", "")),
                    sha256_file(stage.directory / MANIFEST_NAME),
                )
            )
            write_cookie(stage.directory, bucket, manifest, objects)
            lines.append(f"{name}: fetched {len(manifest.outputs)} outputs, verified")
    for state in plan.states():
        if not state.done:
            lines.append(f"note: {state.stage.image.name} is not current here: {state.reason}")
    return lines


#: suffix of an output fetched beside its stage, before the whole stage has arrived
FETCHED = ".fetched"


def _safe_relative(path: str, source: str) -> None:
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts or path.startswith("."):
        raise S3Error(f"{source} lists an output outside its stage folder: {path!r}")


# --- delete -----------------------------------------------------------------------------------


def amis_of(bucket: Bucket, build_set: BuildSet) -> list[str]:
    """AMIs of ours tagged with the build set (deleting its objects would orphan them)."""
    from botocore.exceptions import BotoCoreError, ClientError

    ec2 = bucket.target.client("ec2")
    try:
        images = ec2.describe_images(
            Owners=["self"], Filters=[{"Name": f"tag:{tags.BUILD_SET}", "Values": [build_set.id]}]
        )["Images"]
    except ClientError as exc:
        raise aws_error(exc, "cannot list AMIs") from None
    except BotoCoreError as exc:
        raise S3Error(f"cannot list AMIs: {exc}") from None
    return sorted(i["ImageId"] for i in images)


def delete_stages(
    ctx: Context, build_set: BuildSet, names: list[str], force: bool, dry_run: bool, say: Say
) -> list[str]:
    """Remove the objects of `names` in one build set; refused while its AMIs exist."""
    with aws_calls(f"delete of {build_set.id}"):
        return _delete_stages(ctx, build_set, names, force, dry_run, say)


def _delete_stages(
    ctx: Context, build_set: BuildSet, names: list[str], force: bool, dry_run: bool, say: Say
) -> list[str]:
    bucket = open_bucket(ctx, say)
    bucket.ensure(False, say)
    amis = amis_of(bucket, build_set)
    if amis and not force:
        raise S3Error(
            f"build set {build_set.id} has registered AMIs ({', '.join(amis)}): deregister them "
            "first, or pass --force"
        )
    lines = [f"warning: AMIs {', '.join(amis)} remain registered (--force)"] if amis else []
    found = False
    for name in names:
        prefix = stage_prefix(ctx, name, build_set)
        keys = sorted(bucket.keys(prefix))
        uploads = bucket.unfinished(prefix)
        found = found or bool(keys or uploads)
        if dry_run:
            lines.extend(f"would delete {bucket.url(k)}" for k in keys)
            lines.extend(
                f"would abort the unfinished upload of {bucket.url(u['Key'])}" for u in uploads
            )
            continue
        for upload in uploads:
            bucket.abort(upload["Key"], upload["UploadId"])
        bucket.delete(keys)
        stage_dir = ctx.workspace.stage_dir(name, build_set)
        cookie = real_upload(stage_dir)
        if cookie is not None and _describes(cookie, bucket, set(keys)):
            (stage_dir / UPLOAD_COOKIE).unlink()  # the cookie would now be a lie
        if keys:
            lines.append(f"{name}: deleted {len(keys)} objects from {bucket.url(prefix)}")
    if not found:
        where = bucket.url(stage_prefix(ctx, "<type>", build_set))
        raise S3Error(f"no such build set in S3: nothing at {where} for {', '.join(names)}")
    return lines
