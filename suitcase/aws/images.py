"""EC2 look-ups Suitcase's AMI code shares: what carries a stage key, snapshot states, the
region's PV-GRUB kernel, waiting for an AMI."""

from __future__ import annotations

import time
from typing import Any

from suitcase.aws import tags
from suitcase.errors import ConfigError, SuitcaseError
from suitcase.manifest import Manifest


class RegisterError(SuitcaseError):
    """An AMI could not be registered or deregistered."""


def ami_name(prefix: str, manifest: Manifest) -> str:
    """prefix-os-type-timestamp-<the stage key's first 12 characters>.

    AWS refuses a second AMI of the same name in an account and region
    (InvalidAMIName.Duplicate); a stage rebuilt within its build set has a new key, so its AMI
    gets a new name and the two can stand side by side until the old one is deregistered.
    """
    return f"{prefix}-{manifest.os}-{manifest.stage}-{manifest.timestamp}-{manifest.key[:12]}"


def resource_tags(manifest: Manifest) -> dict[str, str]:
    return {
        tags.BUILD_SET: f"{manifest.os}-{manifest.timestamp}",
        tags.STAGE_KEY: manifest.key,
        tags.OS: manifest.os,
        tags.TIMESTAMP: manifest.timestamp,
        tags.IMAGE_TYPE: manifest.stage,
        tags.VERSION: manifest.suitcase_version,
    }


def error_code(error: Exception) -> str:
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def find_images(ec2: Any, key: str, image: str) -> list[dict[str, Any]]:
    """This account's AMIs carrying the stage key (oldest first)."""
    found = ec2.describe_images(
        Owners=["self"],
        Filters=[
            {"Name": f"tag:{tags.STAGE_KEY}", "Values": [key]},
            {"Name": f"tag:{tags.IMAGE_TYPE}", "Values": [image]},
        ],
    )["Images"]
    return sorted(found, key=lambda i: (i.get("CreationDate", ""), i["ImageId"]))


def tagged_snapshots(ec2: Any, key: str) -> list[str]:
    answer = ec2.describe_snapshots(
        OwnerIds=["self"], Filters=[{"Name": f"tag:{tags.STAGE_KEY}", "Values": [key]}]
    )
    return [s["SnapshotId"] for s in answer["Snapshots"]]


def snapshot_state(ec2: Any, snapshot_id: str) -> str | None:
    """A snapshot's State, or None when it does not exist (any more)."""
    try:
        found = ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"]
    except Exception as error:
        if error_code(error) == "InvalidSnapshot.NotFound":
            return None
        raise
    return str(found[0]["State"]) if found else None


def delete_snapshot(ec2: Any, snapshot_id: str, attempts: int = 5) -> bool:
    """Delete a snapshot; True if it is gone. In use by an AMI: left alone (False)."""
    for attempt in range(attempts):
        try:
            ec2.delete_snapshot(SnapshotId=snapshot_id)
            return True
        except Exception as error:
            code = error_code(error)
            if code == "InvalidSnapshot.NotFound":
                return True
            if code != "InvalidSnapshot.InUse" or attempt == attempts - 1:
                if code == "InvalidSnapshot.InUse":
                    return False
                raise
            time.sleep(1.0)  # AWS frees a deregistered AMI's snapshot shortly after
    return False


def pv_grub_kernel(ec2: Any, region: str) -> str:
    """The region's PV-GRUB hd0 x86_64 AKI: looked up, else os/data/pv-grub.yaml, else refused."""
    found = ec2.describe_images(
        Owners=["amazon"],
        Filters=[
            # pv-grub-hd0_<version>-x86_64.gz: not hd00 (the kernel for partitioned disks)
            {"Name": "name", "Values": ["pv-grub-hd0_*"]},
            {"Name": "architecture", "Values": ["x86_64"]},
        ],
    )["Images"]
    kernels = sorted(
        (i for i in found if i.get("ImageType", "kernel") == "kernel"),
        key=lambda i: str(i.get("Name")),
    )
    if kernels:
        return str(kernels[-1]["ImageId"])
    from suitcase.aws.moto_fixes import pv_grub_table

    table = pv_grub_table()
    if region in table:
        return table[region]
    raise ConfigError(
        f"region {region} has no PV-GRUB kernel image: paravirtual AMIs cannot boot there "
        f"(regions with PV-GRUB: {', '.join(sorted(table))}); register aws-hvm instead"
    )


def wait_available(
    ec2: Any, image_id: str, interval: float | None = None, timeout: float = 3600
) -> None:
    """botocore's waiters: `image_exists` (a new AMI can be unknown to DescribeImages for a
    while: eventual consistency), then `image_available`; their pacing unless `interval`."""
    from botocore.exceptions import WaiterError

    delay = interval if interval is not None else 15.0
    for name, limit in (("image_exists", 120.0), ("image_available", timeout)):
        config = {"Delay": delay, "MaxAttempts": max(2, int(limit / max(delay, 0.1)))}
        try:
            ec2.get_waiter(name).wait(ImageIds=[image_id], WaiterConfig=config)
        except WaiterError as exc:
            found = (exc.last_response or {}).get("Images") or [{}]
            state = found[0].get("State", "not found")
            reason = (found[0].get("StateReason") or {}).get("Message", "")
            raise RegisterError(
                f"AMI {image_id} is {state}{': ' + reason if reason else ''} (waited with {name})"
            ) from None
