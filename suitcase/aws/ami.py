"""Register a stage's disk as an AMI (aws-hvm, aws-paravirt) and deregister it, idempotently.

The disk goes into an EBS snapshot through the EBS direct APIs (suitcase.aws.ebs), then
RegisterImage. Everything carries the stage key as a tag, so a rerun finds what an earlier run
made; a snapshot in flight is recorded in the stage folder (.register.json) so an interrupted run
is finished or deleted by the next one, never orphaned.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from suitcase.aws import ebs
from suitcase.aws.clients import AwsTarget
from suitcase.aws.images import (
    ami_name,
    delete_snapshot,
    error_code,
    find_images,
    pv_grub_kernel,
    resource_tags,
    snapshot_state,
    tagged_snapshots,
    wait_available,
)
from suitcase.errors import ConfigError
from suitcase.manifest import Manifest, write_atomic, write_manifest

Say = Callable[[str], None]
STATE_FILE = ".register.json"
#: manifest.extra key holding {region: {"image_id", "snapshot_id", "name", ...}}
MANIFEST_KEY = "amis"


@dataclass(frozen=True)
class Kind:
    """What RegisterImage gets for one image type."""

    image: str
    disk_kind: str  # the manifest output holding the disk
    virtualization: str
    root_device: str
    hvm: bool


KINDS = {
    "aws-hvm": Kind("aws-hvm", "raw", "hvm", "/dev/xvda", True),
    "aws-paravirt": Kind("aws-paravirt", "raw-partition", "paravirtual", "/dev/sda", False),
}


@dataclass(frozen=True)
class AmiSettings:
    """The site settings registration uses (from suitcase.config.Site)."""

    prefix: str = "suitcase"
    boot_mode: str = "legacy-bios"
    imds_support: str = "v2.0"
    workers: int = ebs.DEFAULT_WORKERS
    wait_interval: float = 2.0
    launch_accounts: tuple[str, ...] = ()
    copy_regions: tuple[str, ...] = ()

    @classmethod
    def from_site(cls, site: Any) -> AmiSettings:
        return cls(
            prefix=site.prefix,
            boot_mode=getattr(site, "ami_boot_mode", cls.boot_mode),
            imds_support=getattr(site, "ami_imds_support", cls.imds_support),
            workers=int(getattr(site, "ebs_workers", 0) or cls.workers),
            launch_accounts=tuple(getattr(site, "ami_launch_accounts", ())),
            copy_regions=tuple(getattr(site, "ami_copy_regions", ())),
        )


@dataclass(frozen=True)
class Registration:
    image: str
    region: str
    image_id: str
    snapshot_id: str
    name: str
    created: bool
    copies: tuple[Registration, ...] = ()

    def line(self) -> str:
        verb = "registered" if self.created else "already registered"
        text = (
            f"{self.image}: {verb} {self.image_id} ({self.name}) in {self.region}, "
            f"snapshot {self.snapshot_id}"
        )
        for copy in self.copies:
            verb = "copied" if copy.created else "already copied"
            text += f"\n{self.image}: {verb} to {copy.region}: {copy.image_id}, "
            text += f"snapshot {copy.snapshot_id}"
        return text


# --- the state file: a snapshot in flight, per region ---------------------------------------


def _read_state(stage_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((stage_dir / STATE_FILE).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_state(stage_dir: Path, state: dict[str, Any]) -> None:
    path = stage_dir / STATE_FILE
    if state:
        write_atomic(path, json.dumps(state, indent=2, sort_keys=True) + "\n")
    else:
        path.unlink(missing_ok=True)


def client_token(key: str, image: str, region: str, generation: int) -> str:
    """StartSnapshot's ClientToken: from the stage key; a new generation after a delete."""
    return hashlib.sha256(f"{key}:{image}:{region}:{generation}".encode()).hexdigest()[:64]


# --- register ---------------------------------------------------------------------------------


def register_stage(
    target: AwsTarget,
    stage_dir: Path,
    manifest: Manifest,
    settings: AmiSettings,
    say: Say,
) -> Registration:
    """Register a built aws-hvm/aws-paravirt stage in the target's region (or find it)."""
    kind = KINDS.get(manifest.stage)
    if kind is None:
        raise ConfigError(f"{manifest.stage} is not an AMI image type (aws-hvm, aws-paravirt)")
    output = manifest.output(kind.disk_kind)
    if output is None or not (stage_dir / output.path).is_file():
        raise ConfigError(f"{stage_dir} has no {kind.disk_kind} disk to register")
    disk = stage_dir / output.path
    region = target.region
    ec2 = target.client("ec2")
    name = ami_name(settings.prefix, manifest)
    existing = find_images(ec2, manifest.key, kind.image)
    if existing:
        image = existing[0]
        if image.get("State") != "available":
            wait_available(ec2, image["ImageId"], settings.wait_interval)
        if len(existing) > 1:
            others = ", ".join(i["ImageId"] for i in existing[1:])
            say(f"{kind.image}: more than one AMI has this stage key; keeping the first ({others})")
        result = _registration(kind.image, region, image, created=False)
        share(ec2, result, settings.launch_accounts, say)
        _finish(ec2, stage_dir, manifest, result)
        return copy_to_regions(target, stage_dir, manifest, result, settings, say)
    kernel = None
    if not kind.hvm:
        kernel = pv_grub_kernel(ec2, region)
        say(
            f"{kind.image}: warning: AWS offers paravirtual AMIs only on previous-generation "
            "instance types (m1, m3, c3, t1, ...); new instance types need aws-hvm"
        )
    snapshot_id = _snapshot(target, ec2, stage_dir, disk, manifest, kind, settings, say)
    args: dict[str, Any] = {
        "Name": name,
        "Description": f"{manifest.os} {kind.image} built by Suitcase {manifest.suitcase_version}"
        f" (build set {manifest.os}-{manifest.timestamp}, stage key {manifest.key[:12]})",
        "Architecture": "x86_64",
        "VirtualizationType": kind.virtualization,
        "RootDeviceName": kind.root_device,
        "BlockDeviceMappings": [
            {
                "DeviceName": kind.root_device,
                "Ebs": {
                    "SnapshotId": snapshot_id,
                    "VolumeSize": ebs.volume_gib(disk.stat().st_size),
                    "VolumeType": "gp3",
                    "DeleteOnTermination": True,
                },
            }
        ],
        "TagSpecifications": [
            {
                "ResourceType": "image",
                "Tags": [{"Key": k, "Value": v} for k, v in resource_tags(manifest).items()],
            }
        ],
    }
    if kind.hvm:
        args.update(EnaSupport=True, SriovNetSupport="simple", BootMode=settings.boot_mode)
    else:
        args["KernelId"] = kernel
    if settings.imds_support:
        args["ImdsSupport"] = settings.imds_support
    image_id = ec2.register_image(**args)["ImageId"]
    say(f"{kind.image}: registered {image_id} ({name})")
    wait_available(ec2, image_id, settings.wait_interval)
    result = Registration(kind.image, region, image_id, snapshot_id, name, created=True)
    share(ec2, result, settings.launch_accounts, say)
    _finish(ec2, stage_dir, manifest, result)
    return copy_to_regions(target, stage_dir, manifest, result, settings, say)


def copy_to_regions(
    target: AwsTarget,
    stage_dir: Path,
    manifest: Manifest,
    result: Registration,
    settings: AmiSettings,
    say: Say,
) -> Registration:
    """CopyImage into each of the site's copy regions (found by tag when already there)."""
    copies: list[Registration] = []
    tag_list = [{"Key": k, "Value": v} for k, v in resource_tags(manifest).items()]
    for region in settings.copy_regions:
        if region == result.region:
            continue
        ec2 = dataclasses.replace(target, region=region).client("ec2")
        found = find_images(ec2, manifest.key, result.image)
        if found:
            image = found[0]
        else:
            token = f"{manifest.key}:{result.image_id}:{region}"
            image_id = ec2.copy_image(
                SourceImageId=result.image_id,
                SourceRegion=result.region,
                Name=result.name,
                Description=f"copy of {result.image_id} from {result.region}",
                ClientToken=hashlib.sha256(token.encode()).hexdigest()[:64],
                TagSpecifications=[
                    {"ResourceType": "image", "Tags": tag_list},
                    {"ResourceType": "snapshot", "Tags": tag_list},
                ],
            )["ImageId"]
            say(f"{result.image}: copying {result.image_id} to {region} as {image_id}")
            image = {"ImageId": image_id, "State": "pending"}
        if image.get("State") != "available":
            wait_available(ec2, image["ImageId"], settings.wait_interval)
            image = ec2.describe_images(ImageIds=[image["ImageId"]])["Images"][0]
        copy = _registration(result.image, region, image, created=not found)
        share(ec2, copy, settings.launch_accounts, say)
        _finish(ec2, stage_dir, manifest, copy)
        copies.append(copy)
    return dataclasses.replace(result, copies=tuple(copies))


def share(ec2: Any, result: Registration, accounts: tuple[str, ...], say: Say) -> None:
    """Let `accounts` launch the AMI and create volumes from its snapshot (adding is idempotent;
    an account no longer listed keeps its permission until removed by hand)."""
    if not accounts:
        return
    ec2.modify_image_attribute(
        ImageId=result.image_id, LaunchPermission={"Add": [{"UserId": a} for a in accounts]}
    )
    ec2.modify_snapshot_attribute(
        SnapshotId=result.snapshot_id,
        Attribute="createVolumePermission",
        OperationType="add",
        UserIds=list(accounts),
    )
    say(f"{result.image}: {result.image_id} may be launched by {', '.join(accounts)}")


def _registration(image: str, region: str, found: dict[str, Any], created: bool) -> Registration:
    snapshot = next(
        (
            m["Ebs"]["SnapshotId"]
            for m in found.get("BlockDeviceMappings", [])
            if m.get("Ebs", {}).get("SnapshotId")
        ),
        "",
    )
    return Registration(image, region, found["ImageId"], snapshot, found.get("Name", ""), created)


def _snapshot(
    target: AwsTarget,
    ec2: Any,
    stage_dir: Path,
    disk: Path,
    manifest: Manifest,
    kind: Kind,
    settings: AmiSettings,
    say: Say,
) -> str:
    """The stage's completed snapshot: reused, finished from an interrupted run, or written."""
    region = target.region
    state = _read_state(stage_dir)
    sha = next((o.sha256 for o in manifest.outputs if stage_dir / o.path == disk), "")
    entry: dict[str, Any] = state.get(region, {"generation": 0, "snapshot_id": None})
    known = entry.get("snapshot_id")
    if entry.get("disk_sha256", sha) != sha:
        # the stage was rebuilt since: that snapshot holds another disk
        if known:
            delete_snapshot(ec2, known)
            say(f"{kind.image}: snapshot {known} holds an earlier disk: deleted")
        entry = {"generation": int(entry.get("generation", 0)) + 1, "snapshot_id": None}
        known = None
    entry["disk_sha256"] = sha
    if known:
        status = snapshot_state(ec2, known)
        if status == "completed":
            say(f"{kind.image}: reusing completed snapshot {known} of an earlier run")
            return str(known)
        if status == "pending" and entry.get("completing"):
            say(f"{kind.image}: waiting for snapshot {known}, completed by an interrupted run")
            ebs.wait_completed(ec2, known, interval=settings.wait_interval)
            return str(known)
        if status == "pending":
            say(f"{kind.image}: finishing snapshot {known} of an interrupted run")
        else:
            if status is not None:  # error: AWS gave up on it (StartSnapshot Timeout)
                delete_snapshot(ec2, known)
            say(f"{kind.image}: snapshot {known} of an earlier run is {status or 'gone'}")
            entry = {
                "generation": int(entry.get("generation", 0)) + 1,
                "snapshot_id": None,
                "disk_sha256": sha,
            }
            known = None
    state[region] = entry
    _write_state(stage_dir, state)  # the token is known before StartSnapshot is sent

    def started(snapshot_id: str) -> None:
        entry["snapshot_id"] = snapshot_id
        state[region] = entry
        _write_state(stage_dir, state)
        say(f"{kind.image}: writing {disk.name} into snapshot {snapshot_id}")

    def completing(snapshot_id: str) -> None:
        entry["completing"] = True
        _write_state(stage_dir, state)

    snapshot_id = known
    try:
        upload = ebs.write_snapshot(
            target,
            disk,
            token=client_token(f"{manifest.key}:{sha}", kind.image, region, entry["generation"]),
            tags={**resource_tags(manifest), "Name": ami_name(settings.prefix, manifest)},
            description=f"{kind.image} disk of {manifest.os}-{manifest.timestamp}",
            workers=settings.workers,
            snapshot_id=known,
            on_started=started,
            on_completing=completing,
            wait_interval=settings.wait_interval,
        )
    except BaseException:
        snapshot_id = entry.get("snapshot_id")
        if snapshot_id:
            say(
                f"{kind.image}: interrupted: snapshot {snapshot_id} is unfinished; it is recorded "
                f"in {stage_dir / STATE_FILE}: run register again to finish it, or deregister "
                "to delete it"
            )
        raise
    say(
        f"{kind.image}: snapshot {upload.snapshot_id} completed: {upload.blocks_sent} blocks, "
        f"{upload.bytes_sent / 2**20:.0f} MiB sent of a {upload.disk_size / 2**30:.2f} GiB disk "
        f"in {upload.seconds:.1f} s"
    )
    return upload.snapshot_id


def _finish(ec2: Any, stage_dir: Path, manifest: Manifest, result: Registration) -> None:
    """Record the AMI in the manifest, forget the snapshot in flight, delete stray snapshots."""
    amis = dict(manifest.extra.get(MANIFEST_KEY) or {})
    amis[result.region] = {
        "image_id": result.image_id,
        "snapshot_id": result.snapshot_id,
        "name": result.name,
    }
    manifest.extra[MANIFEST_KEY] = amis
    write_manifest(stage_dir, manifest)
    state = _read_state(stage_dir)
    state.pop(result.region, None)
    _write_state(stage_dir, state)
    for snapshot_id in tagged_snapshots(ec2, manifest.key):
        if snapshot_id != result.snapshot_id:
            delete_snapshot(ec2, snapshot_id, attempts=1)


# --- deregister -------------------------------------------------------------------------------


def deregister_stage(target: AwsTarget, stage_dir: Path, manifest: Manifest, say: Say) -> list[str]:
    """Deregister the stage's AMIs and delete their snapshots in every region recorded."""
    recorded: dict[str, Any] = dict(manifest.extra.get(MANIFEST_KEY) or {})
    state = _read_state(stage_dir)
    regions = sorted({target.region, *recorded, *state})
    lines: list[str] = []
    for region in regions:
        ec2 = dataclasses.replace(target, region=region).client("ec2")
        images = {i["ImageId"]: i for i in find_images(ec2, manifest.key, manifest.stage)}
        image_id = (recorded.get(region) or {}).get("image_id")
        if image_id and image_id not in images:
            try:
                for found in ec2.describe_images(ImageIds=[image_id])["Images"]:
                    images[found["ImageId"]] = found
            except Exception as error:
                if "InvalidAMIID" not in error_code(error):
                    raise
        snapshots: list[str] = []
        for found in images.values():
            snapshots += [
                m["Ebs"]["SnapshotId"]
                for m in found.get("BlockDeviceMappings", [])
                if m.get("Ebs", {}).get("SnapshotId")
            ]
            ec2.deregister_image(ImageId=found["ImageId"])
            lines.append(f"{manifest.stage}: deregistered {found['ImageId']} in {region}")
        pending = (state.get(region) or {}).get("snapshot_id")
        snapshots += [s for s in [pending, *tagged_snapshots(ec2, manifest.key)] if s]
        for snapshot_id in dict.fromkeys(snapshots):
            if delete_snapshot(ec2, snapshot_id):
                lines.append(f"{manifest.stage}: deleted snapshot {snapshot_id} in {region}")
            else:
                lines.append(f"{manifest.stage}: snapshot {snapshot_id} is still in use, kept")
        recorded.pop(region, None)
    if MANIFEST_KEY in manifest.extra:
        if recorded:
            manifest.extra[MANIFEST_KEY] = recorded
        else:
            del manifest.extra[MANIFEST_KEY]
        write_manifest(stage_dir, manifest)
    _write_state(stage_dir, {})
    return lines or [f"{manifest.stage}: no AMI registered, nothing to deregister"]
