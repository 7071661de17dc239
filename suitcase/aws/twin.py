"""The embedded endpoint as a strict twin of AWS: rules AWS enforces that moto does not.

Applied inside the endpoint process after `suitcase.aws.moto_fixes` (which makes moto keep what
AWS keeps); this module makes it *refuse* what AWS refuses and *delay* what AWS delays, so code
that passes the twin works against a real account the first time. Every rule names its AWS
source; tests/aws_rules/ checks each over HTTP (and, with --aws-account, against AWS itself);
docs/aws-twin.md is the table.

Switches AWS has as account settings are AWS's own calls (EnableEbsEncryptionByDefault). Those
AWS has no call for are the twin's, set with `POST /_suitcase/twin` (suitcase.aws.endpoint_server):

- `invisible_seconds`: a new snapshot (EBS direct) or AMI is not found for this long, nor a
  snapshot's block list right after it completes ("eventual consistency", EC2 API reference);
- `completing_seconds`: a completed snapshot and a registered AMI read `pending` for this long;
- `failing_images`: 1 makes each AMI registered meanwhile end `failed` (as AWS marks an AMI it
  could not make), 0 (the default) not;
- `minute_seconds`: how long one of StartSnapshot's `Timeout` minutes lasts (60; a test makes it
  short to see a snapshot AWS gives up on go to `error`).

Both are display-only: what the endpoint stores is the final state, so a restart never leaves a
snapshot pending forever.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import threading
import time
from typing import Any

#: The embedded endpoint's defaults (the AWS-like ones); a bare test server starts at zero.
EMBEDDED = {"invisible_seconds": 2.0, "completing_seconds": 1.0}
_settings: dict[str, float] = {
    "invisible_seconds": 0.0,
    "completing_seconds": 0.0,
    "minute_seconds": 60.0,
    "failing_images": 0.0,
}
_start: dict[str, float] = dict(_settings)
_lock = threading.Lock()
#: resource id -> time.monotonic() of the event the window counts from
_born: dict[str, float] = {}
_completed: dict[str, float] = {}
#: AMIs registered while `failing_images` was on
_failed: set[str] = set()
#: snapshot id -> (time.monotonic() it started, its Timeout in minutes)
_timeouts: dict[str, tuple[float, float]] = {}

BLOCK_SIZE = 524288
_applied = False


def configure(reset: bool = False, **settings: Any) -> dict[str, float]:
    """Change the switches (reset: back to the process's start values); the new settings."""
    with _lock:
        if reset:
            _settings.update(_start)
        for name, value in settings.items():
            if name not in _settings:
                raise ValueError(f"no twin switch {name!r} (known: {', '.join(_settings)})")
            number = float(value)
            if not 0 < number <= 600 if name == "minute_seconds" else not 0 <= number <= 600:
                raise ValueError(f"{name} must be 0-600 seconds (minute_seconds: above 0)")
            _settings[name] = number
        return dict(_settings)


def start_with(**settings: Any) -> None:
    """The values this process starts with, and returns to on reset."""
    configure(**settings)
    _start.update(_settings)


def _within(table: dict[str, float], key: str, setting: str) -> bool:
    at = table.get(key)
    return at is not None and time.monotonic() - at < _settings[setting]


def hidden(resource_id: str) -> bool:
    return _within(_born, resource_id, "invisible_seconds")


def still_pending(resource_id: str) -> bool:
    return _within(_completed, resource_id, "completing_seconds")


def timed_out(snapshot_id: str) -> bool:
    """Past its StartSnapshot Timeout: AWS stops taking blocks and fails the snapshot."""
    started = _timeouts.get(snapshot_id)
    if started is None:
        return False
    at, minutes = started
    return time.monotonic() - at > minutes * _settings["minute_seconds"]


# --- errors as AWS shapes them ------------------------------------------------------------------


def _ebs_error(kind: str, message: str, reason: str) -> Exception:
    """An EBS error as AWS's model shapes it (its HTTP status, and the Reason member)."""
    from moto.core.exceptions import ServiceException

    error = ServiceException(kind, message)
    if reason:
        error.Reason = error.reason = reason  # type: ignore[attr-defined]
    return error


def not_found(snapshot_id: str) -> Exception:
    return _ebs_error(
        "ResourceNotFoundException",
        f"The snapshot '{snapshot_id}' does not exist.",
        "SNAPSHOT_NOT_FOUND",
    )


def invalid(message: str, reason: str = "INVALID_PARAMETER_VALUE") -> Exception:
    return _ebs_error("ValidationException", message, reason)


def _ec2_error(code: str, message: str) -> Exception:
    from moto.ec2.exceptions import EC2ClientError

    return EC2ClientError(code, message)


# --- the rules ----------------------------------------------------------------------------------


def default_key_arn(account: str, region: str) -> str:
    """The account's AWS managed key for EBS (alias aws/ebs) in a region: a stable fake id."""
    digest = hashlib.sha256(f"aws/ebs:{account}:{region}".encode()).hexdigest()
    uuid = f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"
    return f"arn:aws:kms:{region}:{account}:key/{uuid}"


def junk(snapshot_id: str, index: int) -> bytes:
    """What an encrypted snapshot's unwritten block reads as: not zeros (coldsnap #395)."""
    import random

    seed = int.from_bytes(hashlib.sha256(f"{snapshot_id}:{index}".encode()).digest()[:8], "big")
    return random.Random(seed).randbytes(BLOCK_SIZE)


def apply() -> None:
    """Patch moto's EBS and EC2 handlers in this process (after moto_fixes.apply; idempotent)."""
    global _applied
    if _applied:
        return
    _ebs_rules()
    _ec2_rules()
    _applied = True


def _ebs_rules() -> None:
    from moto.core.responses import ActionResult
    from moto.ebs import responses as ebs_responses
    from moto.ebs.models import Block

    response: Any = ebs_responses.EBSResponse
    fixed_start = response.start_snapshot
    fixed_list = response.list_snapshot_blocks

    def backend_snapshot(self: Any, snapshot_id: str) -> Any:
        snapshot = self.ebs_backend.snapshots.get(snapshot_id)
        if snapshot is None or hidden(snapshot_id):
            raise not_found(snapshot_id)
        ec2_snapshot = self.ebs_backend.ec2_backend.snapshots.get(snapshot_id)
        if ec2_snapshot is None:
            raise not_found(snapshot_id)  # deleted through EC2
        if snapshot.status == "pending" and timed_out(snapshot_id):
            # StartSnapshot Timeout: "the snapshot is automatically cancelled if: No blocks are
            # written to the snapshot. The snapshot is not completed after writing the last
            # block" within it (EBS API reference, StartSnapshot): counted from the last write
            snapshot.status = ec2_snapshot.status = "error"
            _timeouts.pop(snapshot_id, None)
        return snapshot

    def start_snapshot(self: Any) -> Any:
        # StartSnapshot ClientToken: the same token returns the original result, even for a
        # snapshot since deleted; a different request under it is a ConflictException
        # (EBS API reference, StartSnapshot; EC2 User Guide, "Ensuring idempotency").
        backend = self.ebs_backend
        ec2 = backend.ec2_backend
        token = self._get_param("ClientToken")
        encrypted = bool(self._get_param("Encrypted")) or bool(ec2.ebs_encryption_by_default)
        kms = self._get_param("KmsKeyArn") or ""
        if kms and not encrypted:
            raise invalid("KmsKeyArn requires Encrypted", "INVALID_CUSTOMER_KEY")
        timeout = self._get_param("Timeout")
        if timeout is not None and not 10 <= int(timeout) <= 4320:
            raise invalid(f"Timeout {timeout} is outside 10-4320 minutes")
        request = {
            "VolumeSize": int(self._get_param("VolumeSize") or 0),
            "Encrypted": encrypted,
            "KmsKeyArn": kms,
            "Description": self._get_param("Description") or "",
        }
        answers: dict[str, Any] = backend.__dict__.setdefault("_suitcase_answers", {})
        if token and token in answers:
            original = answers[token]
            if original["request"] != request:
                raise _ebs_error(
                    "ConflictException",
                    "The request uses the same client token as a previous, but non-identical "
                    "request.",
                    "",
                )
            return ActionResult(original["answer"])
        result = fixed_start(self)
        answer = dict(result.result)
        snapshot_id = answer["SnapshotId"]
        if encrypted:
            key = kms or default_key_arn(backend.account_id, backend.region_name)
            ec2_snapshot = ec2.snapshots[snapshot_id]
            ec2_snapshot.encrypted = True
            ec2_snapshot.kms_key_id = key
            answer.update(KmsKeyArn=key, SseType="sse-ebs")
        else:
            answer["SseType"] = "none"
        if token:
            answers[token] = {"request": request, "answer": answer}
        _born[snapshot_id] = time.monotonic()
        _timeouts[snapshot_id] = (time.monotonic(), float(timeout or 60))
        return ActionResult(answer)

    def put_snapshot_block(self: Any) -> Any:
        # "your request must provide a Base64-encoded SHA256 checksum ... If the checksums do
        # not correspond, the request fails" (EBS User Guide, "Use EBS direct APIs checksums");
        # blocks are 524,288 bytes; a completed snapshot takes no new block (CompleteSnapshot).
        snapshot_id = self._get_param("SnapshotId")
        snapshot = backend_snapshot(self, snapshot_id)
        if snapshot.status != "pending":
            raise invalid(f"snapshot {snapshot_id} is {snapshot.status}: it takes no block")
        index = int(self._get_param("BlockIndex"))
        data = self._get_param("BlockData")
        data = data if isinstance(data, bytes) else bytes(data or b"")
        if not 0 <= index < snapshot.volume_size * 2**30 // BLOCK_SIZE:
            raise invalid(f"block index {index} is outside the volume", "INVALID_BLOCK")
        if int(self._get_param("DataLength") or -1) != len(data) or len(data) != BLOCK_SIZE:
            raise invalid(f"a block is {BLOCK_SIZE} bytes; DataLength must say so")
        checksum = self._get_param("Checksum") or ""
        if self._get_param("ChecksumAlgorithm") != "SHA256" or not checksum:
            raise invalid("a block must carry its SHA256 checksum")
        if base64.b64encode(hashlib.sha256(data).digest()).decode() != checksum:
            raise invalid(f"block {index}: the checksum does not match the data")
        snapshot.put_block(index, data, checksum, "SHA256", len(data))
        if snapshot_id in _timeouts:
            _timeouts[snapshot_id] = (time.monotonic(), _timeouts[snapshot_id][1])
        return ActionResult({"Checksum": checksum, "ChecksumAlgorithm": "SHA256"})

    def complete_snapshot(self: Any) -> Any:
        # ChangedBlocksCount is "the number of blocks that were written"; the LINEAR checksum is
        # SHA-256 over the blocks' SHA-256s in index order; a mismatch puts the snapshot in
        # `error` (EBS API reference, CompleteSnapshot; "Use EBS direct APIs checksums").
        snapshot_id = self._get_param("SnapshotId")
        snapshot = backend_snapshot(self, snapshot_id)
        ec2_snapshot = self.ebs_backend.ec2_backend.snapshots[snapshot_id]
        if snapshot.status != "pending":
            return ActionResult({"Status": snapshot.status})
        blocks = snapshot.blocks
        problem = None
        count = self._get_param("ChangedBlocksCount")
        if count is None or int(count) != len(blocks):
            problem = f"ChangedBlocksCount {count} but {len(blocks)} blocks were written"
        aggregate = self._get_param("Checksum")
        if aggregate and problem is None:
            total = hashlib.sha256()
            for index in sorted(blocks):
                total.update(base64.b64decode(blocks[index].checksum or ""))
            if base64.b64encode(total.digest()).decode() != aggregate:
                problem = "the aggregated checksum does not match the blocks written"
        if problem:
            snapshot.status = ec2_snapshot.status = "error"
            ec2_snapshot.__dict__["state_message"] = problem
        else:
            snapshot.status = ec2_snapshot.status = "completed"
        _completed[snapshot_id] = time.monotonic()
        _born[snapshot_id] = time.monotonic()  # its block list is not there yet either
        return ActionResult({"Status": "pending"})

    def list_snapshot_blocks(self: Any) -> Any:
        snapshot_id = self._get_param("SnapshotId")
        snapshot = backend_snapshot(self, snapshot_id)
        ec2_snapshot = self.ebs_backend.ec2_backend.snapshots[snapshot_id]
        if not getattr(ec2_snapshot, "encrypted", False):
            return fixed_list(self)
        # An encrypted snapshot's unwritten blocks are not zeros (coldsnap #395): the twin lists
        # them, and reads them as the junk a volume made from it would show.
        total = snapshot.volume_size * 2**30 // BLOCK_SIZE
        limit = int(self._get_param("MaxResults") or 10000)
        start = int(self._get_param("NextToken") or self._get_param("StartingBlockIndex") or 0)
        page = range(start, min(total, start + limit))
        blocks = [
            {
                "BlockIndex": i,
                "BlockToken": snapshot.blocks[i].block_token if i in snapshot.blocks else f"u{i}",
            }
            for i in page
        ]
        result: dict[str, Any] = {
            "Blocks": blocks,
            "VolumeSize": snapshot.volume_size,
            "BlockSize": BLOCK_SIZE,
        }
        if page.stop < total:
            result["NextToken"] = str(page.stop)
        return ActionResult(result)

    def get_snapshot_block(self: Any) -> Any:
        snapshot_id = self._get_param("SnapshotId")
        snapshot = backend_snapshot(self, snapshot_id)
        index = int(self._get_param("BlockIndex"))
        token = self._get_param("BlockToken")
        block = snapshot.blocks.get(index)
        if block is None and token == f"u{index}":
            data = junk(snapshot_id, index)
            block = Block(data, base64.b64encode(hashlib.sha256(data).digest()).decode(), "", 0)
        elif block is None or block.block_token != token:
            raise invalid(f"block token for block {index} is not valid", "INVALID_BLOCK_TOKEN")
        return ActionResult(
            {
                "DataLength": BLOCK_SIZE,
                "BlockData": block.block_data,
                "Checksum": block.checksum,
                "ChecksumAlgorithm": "SHA256",
            }
        )

    response.start_snapshot = start_snapshot
    response.put_snapshot_block = put_snapshot_block
    response.complete_snapshot = complete_snapshot
    response.list_snapshot_blocks = list_snapshot_blocks
    response.get_snapshot_block = get_snapshot_block


def _shown(item: Any, attribute: str) -> Any:
    """`item` as Describe* shows it now: `pending` within its completing window (then `failed`
    for an AMI made to fail)."""
    state = "pending" if still_pending(item.id) else "failed" if item.id in _failed else None
    if state is None:
        return item
    shown = copy.copy(item)
    setattr(shown, attribute, state)
    return shown


def _ec2_rules() -> None:
    from moto.core.responses import ActionResult
    from moto.ec2.responses.amis import AmisResponse
    from moto.ec2.responses.elastic_block_store import ElasticBlockStore

    amis: Any = AmisResponse
    fixed_register = amis.register_image
    fixed_copy = amis.copy_image
    stock_deregister = amis.deregister_image

    def describe_images(self: Any) -> Any:
        # "Eventual consistency": a new AMI can be missing from DescribeImages for a while
        # (EC2 API reference, "Eventual consistency in the Amazon EC2 API").
        self.error_on_dryrun()
        ami_ids = self._get_param("ImageIds", [])
        hide = [i for i in ami_ids if hidden(i)]
        if hide:
            raise _ec2_error(
                "InvalidAMIID.NotFound", f"The image id '[{', '.join(hide)}]' does not exist"
            )
        images = self.ec2_backend.describe_images(
            ami_ids=ami_ids,
            filters=self._filters_from_querystring(),
            exec_users=self._get_param("ExecutableUsers", []),
            owners=self._get_param("Owners", []),
        )
        return ActionResult({"Images": [_shown(i, "state") for i in images if not hidden(i.id)]})

    def describe_snapshots(self: Any) -> Any:
        snapshots = self.ec2_backend.describe_snapshots(
            snapshot_ids=self._get_param("SnapshotIds", []),
            filters=self._filters_from_querystring(),
        )
        return ActionResult({"Snapshots": [_shown(s, "status") for s in snapshots]})

    def _check_name(backend: Any, name: str) -> None:
        # AMI names are unique per account and region (EC2 API reference, RegisterImage Name /
        # CopyImage: InvalidAMIName.Duplicate).
        for image in backend.amis.values():
            if image.name == name and image.owner_id == backend.account_id:
                raise _ec2_error(
                    "InvalidAMIName.Duplicate",
                    f"AMI name {name} is already in use by AMI {image.id}",
                )

    def register_image(self: Any) -> Any:
        # RegisterImage refuses: a duplicate name; a snapshot that is not `completed`; a
        # VolumeSize smaller than the snapshot; a kernel id that is no kernel image here (EC2 API
        # reference, RegisterImage; EC2 User Guide, "Create an AMI from a snapshot").
        backend = self.ec2_backend
        _check_name(backend, self._get_param("Name") or "")
        for mapping in self._get_param("BlockDeviceMappings") or []:
            ebs = mapping.get("Ebs") or {}
            snapshot_id = ebs.get("SnapshotId")
            snapshot = backend.snapshots.get(snapshot_id) if snapshot_id else None
            if snapshot_id and snapshot is None:
                raise _ec2_error(
                    "InvalidSnapshot.NotFound", f"The snapshot '{snapshot_id}' does not exist."
                )
            if snapshot is None:
                continue
            if snapshot.status != "completed" or still_pending(str(snapshot_id)):
                raise _ec2_error("IncorrectState", f"Snapshot '{snapshot_id}' is not 'completed'")
            size = ebs.get("VolumeSize")
            if size is not None and int(size) < int(snapshot.volume.size):
                raise _ec2_error(
                    "InvalidBlockDeviceMapping",
                    f"Volume of size {size}GB is smaller than snapshot '{snapshot_id}', expect "
                    f"size >= {snapshot.volume.size}GB",
                )
        kernel = self._get_param("KernelId")
        if kernel:
            found = backend.amis.get(kernel)
            if found is None or getattr(found, "image_type", "") != "kernel":
                raise _ec2_error(
                    "InvalidAMIID.NotFound", f"The image id '[{kernel}]' does not exist"
                )
        result = fixed_register(self)
        image_id = result.result["ImageId"]
        if _settings["failing_images"]:
            _failed.add(image_id)
        _born[image_id] = time.monotonic()
        _completed[image_id] = time.monotonic()
        return result

    def copy_image(self: Any) -> Any:
        backend = self.ec2_backend
        token = self._get_param("ClientToken")
        known: dict[str, str] = backend.__dict__.get("_suitcase_copy_tokens", {})
        if not (token and known.get(token) in backend.amis):
            _check_name(backend, self._get_param("Name") or "")
        result = fixed_copy(self)
        image_id = result.result["ImageId"]
        if image_id not in _born:
            _born[image_id] = time.monotonic()
            _completed[image_id] = time.monotonic()
        return result

    def deregister_image(self: Any) -> Any:
        # DeleteAssociatedSnapshots: "deletes the snapshots associated with the AMI"
        # (EC2 API reference, DeregisterImage).
        backend = self.ec2_backend
        image_id = self._get_param("ImageId")
        delete = str(self._get_param("DeleteAssociatedSnapshots")).lower() == "true"
        image = backend.amis.get(image_id)
        snapshots = [
            (m.get("Ebs") or {}).get("SnapshotId")
            for m in (image.block_device_mappings if image is not None else [])
        ]
        result = stock_deregister(self)
        if delete:
            for snapshot_id in filter(None, snapshots):
                if snapshot_id in backend.snapshots:
                    backend.snapshots[snapshot_id].from_ami = None
                    backend.delete_snapshot(snapshot_id)
        return result

    amis.describe_images = describe_images
    amis.register_image = register_image
    amis.copy_image = copy_image
    amis.deregister_image = deregister_image
    ElasticBlockStore.describe_snapshots = describe_snapshots  # type: ignore[method-assign]
