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
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from suitcase.aws import ebs
from suitcase.aws.clients import AwsTarget
from suitcase.aws.images import (
    RegisterError,
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
    # a paravirtual root is /dev/sda1 (EC2 User Guide, "Device names on Linux instances")
    "aws-paravirt": Kind("aws-paravirt", "raw-partition", "paravirtual", "/dev/sda1", False),
}


@dataclass(frozen=True)
class AmiSettings:
    """The site settings registration uses (from suitcase.config.Site)."""

    prefix: str = "suitcase"
    boot_mode: str = "legacy-bios"
    imds_support: str = "v2.0"
    #: parallel block uploads (0: per target, ebs.DEFAULT_WORKERS or ebs.ACCOUNT_WORKERS)
    workers: int = 0
    #: seconds between waiter polls (None: botocore's waiters' own pacing, 15 s)
    wait_interval: float | None = None
    launch_accounts: tuple[str, ...] = ()
    copy_regions: tuple[str, ...] = ()
    kms_key: str = ""
    #: no EnaSupport on aws-hvm AMIs (an OS without the ENA driver; site ami_xen_only)
    xen_only: bool = False

    @classmethod
    def from_site(cls, site: Any) -> AmiSettings:
        return cls(
            prefix=site.prefix,
            boot_mode=getattr(site, "ami_boot_mode", cls.boot_mode),
            imds_support=getattr(site, "ami_imds_support", cls.imds_support),
            workers=int(getattr(site, "ebs_workers", 0) or 0),
            launch_accounts=tuple(getattr(site, "ami_launch_accounts", ())),
            copy_regions=tuple(getattr(site, "ami_copy_regions", ())),
            kms_key=str(getattr(site, "ami_kms_key", "") or ""),
            xen_only=bool(getattr(site, "ami_xen_only", False)),
        )

    def for_target(self, target: AwsTarget) -> AmiSettings:
        """What the site left to the target: the embedded endpoint answers in moments (poll it
        every second, not every 15 s) and was measured best at 8 block uploads; AWS gets
        coldsnap's 64."""
        embedded = target.kind == "embedded"
        settings = self
        if settings.wait_interval is None and embedded:
            settings = dataclasses.replace(settings, wait_interval=1.0)
        if not settings.workers:
            workers = ebs.DEFAULT_WORKERS if embedded else ebs.ACCOUNT_WORKERS
            settings = dataclasses.replace(settings, workers=workers)
        return settings


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


def new_token() -> str:
    """StartSnapshot's ClientToken for one attempt at a snapshot: random, recorded in the state
    file before StartSnapshot is sent, so a rerun after a crash reuses it (and gets the same
    snapshot), while a snapshot made after a delete gets a new one. AWS answers a replayed token
    with the original snapshot even after it was deleted (EBS API reference, StartSnapshot)."""
    return secrets.token_hex(32)


def disk_is_gpt(disk: Path) -> bool:
    """Does the disk carry a GPT (its header, "EFI PART", at LBA 1)?"""
    with disk.open("rb") as f:
        f.seek(512)
        return f.read(8) == b"EFI PART"


def check_settings(kind: Kind, disk: Path, settings: AmiSettings) -> None:
    """Refuse, before any upload, what RegisterImage would accept and EC2 could not boot."""
    if kind.hvm and settings.boot_mode == "uefi" and not disk_is_gpt(disk):
        raise ConfigError(
            f"ami_boot_mode uefi: the {kind.image} disk has an MBR partition table and no EFI "
            "system partition, so it cannot boot by UEFI; use legacy-bios or uefi-preferred"
        )


def check_paravirtual(ec2: Any, region: str) -> None:
    """A region (or account) with no paravirtual instance type is found before the upload."""
    from suitcase.aws.errors import aws_errors

    with aws_errors(f"looking for paravirtual instance types in {region}"):
        found = ec2.describe_instance_types(
            Filters=[{"Name": "supported-virtualization-type", "Values": ["paravirtual"]}],
            MaxResults=5,
        )["InstanceTypes"]
    if not found:
        raise ConfigError(
            f"region {region} offers no instance type that runs paravirtual AMIs; register "
            "aws-hvm instead"
        )


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
    settings = settings.for_target(target)
    check_settings(kind, disk, settings)
    region = target.region
    ec2 = target.client("ec2")
    name = ami_name(settings.prefix, manifest)
    existing = find_images(ec2, manifest.key, kind.image)
    for image in [i for i in existing if i.get("State") == "failed"]:
        # a failed AMI would block every rerun: deregister it (its snapshot stays, reused)
        ec2.deregister_image(ImageId=image["ImageId"])
        say(f"{kind.image}: AMI {image['ImageId']} failed; deregistered it to register again")
        existing.remove(image)
    if existing:
        image = existing[0]
        if image.get("State") != "available":
            wait_available(ec2, image["ImageId"], settings.wait_interval)
        if len(existing) > 1:
            others = ", ".join(i["ImageId"] for i in existing[1:])
            say(f"{kind.image}: more than one AMI has this stage key; keeping the first ({others})")
        result = _registration(kind.image, region, image, created=False)
        share(ec2, result, settings.launch_accounts, say, settings.kms_key)
        _finish(ec2, stage_dir, manifest, result)
        return copy_to_regions(target, stage_dir, manifest, result, settings, say)
    if settings.launch_accounts and not settings.kms_key:
        _refuse_default_key_sharing(ec2, kind)
    kernel = None
    if not kind.hvm:
        check_paravirtual(ec2, region)
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
        args.update(SriovNetSupport="simple", BootMode=settings.boot_mode)
        if not settings.xen_only:  # every current instance type needs ENA
            args["EnaSupport"] = True
    else:
        args["KernelId"] = kernel
    if settings.imds_support:
        args["ImdsSupport"] = settings.imds_support
    image_id = _register_image(ec2, args)
    say(f"{kind.image}: registered {image_id} ({name})")
    wait_available(ec2, image_id, settings.wait_interval)
    result = Registration(kind.image, region, image_id, snapshot_id, name, created=True)
    share(ec2, result, settings.launch_accounts, say, settings.kms_key)
    _finish(ec2, stage_dir, manifest, result)
    return copy_to_regions(target, stage_dir, manifest, result, settings, say)


def _refuse_default_key_sharing(ec2: Any, kind: Kind) -> None:
    """Before any upload: an account that encrypts by default would encrypt the snapshot under
    its default key, which AWS will not share (EBS User Guide, "Share an Amazon EBS snapshot")."""
    if ec2.get_ebs_encryption_by_default().get("EbsEncryptionByDefault"):
        raise ConfigError(
            f"{kind.image}: the account encrypts new snapshots by default, with a key AWS will "
            "not share with `ami_launch_accounts`; set `ami_kms_key` to a customer managed key "
            "those accounts may use"
        )


def _register_image(ec2: Any, args: dict[str, Any]) -> str:
    try:
        return str(ec2.register_image(**args)["ImageId"])
    except Exception as exc:
        if error_code(exc) != "InvalidAMIName.Duplicate":
            raise
        taken = ec2.describe_images(
            Owners=["self"], Filters=[{"Name": "name", "Values": [args["Name"]]}]
        )["Images"]
        owner = taken[0]["ImageId"] if taken else "another AMI"
        raise RegisterError(
            f"AMI name {args['Name']} is already used by {owner}, which is not this stage's AMI; "
            "deregister it (`aws ec2 deregister-image`) or change `prefix` in site.yaml"
        ) from None


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
        share(ec2, copy, settings.launch_accounts, say, settings.kms_key)
        _finish(ec2, stage_dir, manifest, copy)
        copies.append(copy)
    return dataclasses.replace(result, copies=tuple(copies))


def share(
    ec2: Any, result: Registration, accounts: tuple[str, ...], say: Say, kms_key: str = ""
) -> None:
    """Let `accounts` launch the AMI and create volumes from its snapshot (adding is idempotent;
    an account no longer listed keeps its permission until removed by hand).

    AWS does not let a snapshot encrypted with the default AWS managed key (aws/ebs) be shared
    (EBS User Guide, "Share an Amazon EBS snapshot"): refused in one line, before any change.
    """
    if not accounts:
        return
    found = ec2.describe_snapshots(SnapshotIds=[result.snapshot_id])["Snapshots"]
    snapshot = found[0] if found else {}
    if snapshot.get("Encrypted") and not kms_key:
        raise ConfigError(
            f"{result.image}: snapshot {result.snapshot_id} is encrypted with the account's "
            "default key (aws/ebs), which AWS will not share with other accounts; set "
            "`ami_kms_key` to a customer managed key those accounts may use, then register again"
        )
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
    entry: dict[str, Any] = state.get(region, {"token": new_token(), "snapshot_id": None})
    entry.setdefault("token", new_token())  # a state file written before tokens were random
    known = entry.get("snapshot_id")
    if entry.get("disk_sha256", sha) != sha:
        # the stage was rebuilt since: that snapshot holds another disk
        if known:
            _drop(ec2, known, kind, "holds an earlier disk", say)
        entry = {"token": new_token(), "snapshot_id": None}
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
            say(f"{kind.image}: snapshot {known} of an earlier run is {status or 'gone'}")
            if status is not None:  # error: AWS gave up on it (StartSnapshot Timeout)
                _drop(ec2, known, kind, f"is {status}", say)
            entry = {"token": new_token(), "snapshot_id": None, "disk_sha256": sha}
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
            token=entry["token"],
            tags={**resource_tags(manifest), "Name": ami_name(settings.prefix, manifest)},
            description=f"{kind.image} disk of {manifest.os}-{manifest.timestamp}",
            workers=settings.workers,
            kms_key=settings.kms_key,
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


def _drop(ec2: Any, snapshot_id: str, kind: Kind, why: str, say: Say) -> None:
    if delete_snapshot(ec2, snapshot_id):
        say(f"{kind.image}: snapshot {snapshot_id} {why}: deleted")
    else:
        say(f"{kind.image}: snapshot {snapshot_id} {why}, but is still in use: kept")


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
            ec2.deregister_image(ImageId=found["ImageId"], DeleteAssociatedSnapshots=True)
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
