"""Is what a manifest or cookie names still there? If not, say so in one line and what to run.

The embedded endpoint keeps its state across stop/start, but a state file can be lost (deleted
workspace folder, a corrupt file kept aside, a kill -9 before the verb's save). A verb that finds
a cookie pointing at an object, snapshot or AMI calls these first: it must never report success
on state that is gone.

    check_object(target, bucket, key, rerun=f"suitcase upload {image} --os {os} --timestamp {ts}")
"""

from __future__ import annotations

from typing import Any

from suitcase.aws.clients import AwsTarget
from suitcase.aws.errors import LostState, aws_errors, error_code

#: Error codes meaning "no such thing" for each kind of resource.
MISSING = {
    "object": {"404", "NoSuchKey", "NotFound", "NoSuchBucket"},
    "snapshot": {"InvalidSnapshot.NotFound", "ResourceNotFoundException"},
    "image": {"InvalidAMIID.NotFound", "InvalidAMIID.Unavailable"},
}


def _gone(target: AwsTarget, what: str, rerun: str) -> LostState:
    if target.kind == "embedded":
        where = "the embedded endpoint (its state was lost)"
    else:
        where = target.describe()
    return LostState(f"{what} is gone from {where}; run `{rerun}` again")


def _missing(exc: Any, kind: str) -> bool:
    return error_code(exc) in MISSING[kind]


def check_object(target: AwsTarget, bucket: str, key: str, rerun: str) -> dict[str, Any]:
    """HeadObject of s3://bucket/key; LostState (one line naming `rerun`) if it is not there."""
    from botocore.exceptions import ClientError

    with aws_errors(f"checking s3://{bucket}/{key}", target):
        try:
            head: dict[str, Any] = target.client("s3").head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if _missing(exc, "object"):
                raise _gone(target, f"s3://{bucket}/{key}", rerun) from None
            raise
    return head


def check_snapshot(target: AwsTarget, snapshot_id: str, rerun: str) -> dict[str, Any]:
    """DescribeSnapshots of one snapshot; LostState if it is not there."""
    from botocore.exceptions import ClientError

    with aws_errors(f"checking snapshot {snapshot_id}", target):
        try:
            found = target.client("ec2").describe_snapshots(SnapshotIds=[snapshot_id])
        except ClientError as exc:
            if _missing(exc, "snapshot"):
                raise _gone(target, f"snapshot {snapshot_id}", rerun) from None
            raise
    if not found.get("Snapshots"):
        raise _gone(target, f"snapshot {snapshot_id}", rerun)
    snapshot: dict[str, Any] = found["Snapshots"][0]
    return snapshot


def check_image(target: AwsTarget, image_id: str, rerun: str) -> dict[str, Any]:
    """DescribeImages of one AMI; LostState if it is not there (or deregistered)."""
    from botocore.exceptions import ClientError

    with aws_errors(f"checking AMI {image_id}", target):
        try:
            found = target.client("ec2").describe_images(ImageIds=[image_id])
        except ClientError as exc:
            if _missing(exc, "image"):
                raise _gone(target, f"AMI {image_id}", rerun) from None
            raise
    images = [i for i in found.get("Images", []) if i.get("State") != "deregistered"]
    if not images:
        raise _gone(target, f"AMI {image_id}", rerun)
    image: dict[str, Any] = images[0]
    return image


def check_bucket(target: AwsTarget, bucket: str) -> bool:
    """True if the bucket exists and is this account's, False if it does not exist; on a 403,
    one line saying whose it is as far as S3 tells (suitcase.aws.s3.bucket_denied)."""
    from botocore.exceptions import ClientError

    from suitcase.aws.s3 import bucket_denied

    with aws_errors(f"checking bucket {bucket}", target):
        client = target.client("s3")
        try:
            client.head_bucket(Bucket=bucket)
        except ClientError as exc:
            code = error_code(exc)
            if code in ("404", "NoSuchBucket", "NotFound"):
                return False
            if code in ("403", "AccessDenied", "Forbidden"):
                raise bucket_denied(client, target, bucket) from None
            raise
    return True
