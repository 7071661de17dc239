"""A raw disk into an EBS snapshot and back, through the EBS direct APIs (coldsnap's shape).

Blocks are AWS's 524,288 bytes, whatever an endpoint claims; holes in the file are never read or
sent; each block carries its SHA-256 and CompleteSnapshot the LINEAR aggregate of them.

>>> math.ceil(5 * 2**20 / BLOCK_SIZE)
10
"""

from __future__ import annotations

import base64
import concurrent.futures as cf
import hashlib
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from suitcase.aws.clients import AwsTarget
from suitcase.aws.errors import error_code
from suitcase.errors import SuitcaseError
from suitcase.manifest import data_extents

#: EBS direct APIs' block size (the EBS User Guide, "EBS direct APIs"): fixed, not negotiated.
BLOCK_SIZE = 524288
GIB = 2**30
_ZERO = bytes(BLOCK_SIZE)
#: Measured against the embedded endpoint on this machine (benchmarks/register.py, README).
DEFAULT_WORKERS = 8
#: Against AWS: coldsnap's SNAPSHOT_BLOCK_WORKERS (awslabs/coldsnap src/upload.rs), chosen by
#: AWS for its own EBS direct APIs; not measured from here (no account on these machines).
ACCOUNT_WORKERS = 64
#: Attempts per call, SDK retries only (never stacked under a loop of our own: coldsnap #437),
#: with botocore's standard backoff for throttling, 5xx and dropped connections.
ATTEMPTS = 8
#: Minutes AWS keeps a started snapshot open for blocks (StartSnapshot Timeout, 10-4320).
START_TIMEOUT_MINUTES = 60
#: How long a new snapshot may stay invisible to the EBS direct APIs ("eventual consistency":
#: PutSnapshotBlock can answer SNAPSHOT_NOT_FOUND for up to about two minutes; coldsnap #43/#56).
VISIBLE_WITHIN = 120.0

Progress = Callable[[int, int], None]


class EbsError(SuitcaseError):
    """A snapshot could not be written, completed or read back."""


@dataclass(frozen=True)
class Upload:
    """What write_snapshot did: the snapshot and what went over the wire."""

    snapshot_id: str
    volume_gib: int
    blocks_sent: int
    bytes_sent: int
    disk_size: int
    allocated: int
    seconds: float
    encrypted: bool = False


def ebs_client(target: AwsTarget, workers: int = DEFAULT_WORKERS) -> Any:
    return target.client(
        "ebs",
        retries={"max_attempts": ATTEMPTS, "mode": "standard"},
        max_pool_connections=workers + 2,
    )


def volume_gib(size: int) -> int:
    """The volume a disk of `size` bytes needs, in whole GiB (at least 1)."""
    return max(1, math.ceil(size / GIB))


def data_blocks(path: Path) -> list[int]:
    """Indices of the 512 KiB blocks that hold any data (the rest are holes: never read)."""
    blocks: set[int] = set()
    for start, end in data_extents(path):
        blocks.update(range(start // BLOCK_SIZE, (end - 1) // BLOCK_SIZE + 1))
    return sorted(blocks)


def b64_sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def linear_checksum(digests: Iterable[bytes]) -> str:
    """The LINEAR aggregate: SHA-256 over the blocks' binary SHA-256s in block-index order.

    (EBS API reference, CompleteSnapshot: ChecksumAggregationMethod LINEAR.)
    """
    total = hashlib.sha256()
    for digest in digests:
        total.update(digest)
    return base64.b64encode(total.digest()).decode()


@dataclass(frozen=True)
class Started:
    """StartSnapshot's answer, as far as writing depends on it."""

    snapshot_id: str
    #: encrypted (by request or by the account's default): every block must then be written,
    #: since an unwritten block of an encrypted snapshot reads as junk, not zeros (coldsnap #395)
    encrypted: bool
    kms_key: str = ""


def start_snapshot(
    ebs: Any,
    size: int,
    token: str,
    tags: dict[str, str],
    description: str,
    kms_key: str = "",
) -> Started:
    """StartSnapshot; the same `token` returns the same snapshot (AWS's idempotency).

    Whether it is encrypted is read from the answer (SseType/KmsKeyArn), never assumed from the
    request: an account that encrypts by default encrypts whatever the request says.
    """
    args: dict[str, Any] = {
        "VolumeSize": volume_gib(size),
        "ClientToken": token,
        "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
        "Description": description,
        "Timeout": START_TIMEOUT_MINUTES,
    }
    if kms_key:
        args.update(Encrypted=True, KmsKeyArn=kms_key)
    answer = ebs.start_snapshot(**args)
    sse = str(answer.get("SseType") or "none")
    key = str(answer.get("KmsKeyArn") or "")
    return Started(str(answer["SnapshotId"]), encrypted=sse != "none" or bool(key), kms_key=key)


def until_visible(call: Callable[[], Any], what: str, limit: float = VISIBLE_WITHIN) -> Any:
    """`call()`, retried while the EBS direct APIs do not see the snapshot yet (bounded)."""
    deadline = time.monotonic() + limit
    pause = 0.5
    while True:
        try:
            return call()
        except Exception as exc:
            if error_code(exc) != "ResourceNotFoundException" or time.monotonic() > deadline:
                if error_code(exc) == "ResourceNotFoundException":
                    raise EbsError(
                        f"{what}: the snapshot was still not found after {limit:.0f} s"
                    ) from None
                raise
        time.sleep(pause)
        pause = min(pause * 2, 8.0)


def _read_block(fd: int, index: int) -> bytes:
    data = os.pread(fd, BLOCK_SIZE, index * BLOCK_SIZE)
    return data + bytes(BLOCK_SIZE - len(data)) if len(data) < BLOCK_SIZE else data


def put_blocks(
    ebs: Any,
    snapshot_id: str,
    disk: Path,
    indices: list[int],
    workers: int = DEFAULT_WORKERS,
    encrypted: bool = False,
    progress: Progress | None = None,
) -> dict[int, bytes]:
    """PutSnapshotBlock for each data block of `indices`, in parallel; {index: binary sha256}.

    All-zero blocks are skipped unless the snapshot is encrypted: a missing block of an
    encrypted snapshot reads back as garbage, not zeros (coldsnap #395).
    """
    sent: dict[int, bytes] = {}
    fd = os.open(disk, os.O_RDONLY)

    def one(index: int) -> tuple[int, bytes | None]:
        data = _read_block(fd, index)
        if data == _ZERO and not encrypted:
            return index, None
        digest = hashlib.sha256(data).digest()
        until_visible(
            lambda: ebs.put_snapshot_block(
                SnapshotId=snapshot_id,
                BlockIndex=index,
                BlockData=data,
                DataLength=BLOCK_SIZE,
                Checksum=base64.b64encode(digest).decode(),
                ChecksumAlgorithm="SHA256",
            ),
            f"writing block {index} of {snapshot_id}",
        )
        return index, digest

    pool = cf.ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="ebs-put")
    try:
        futures = [pool.submit(one, index) for index in indices]
        for done, future in enumerate(cf.as_completed(futures), 1):
            index, digest = future.result()
            if digest is not None:
                sent[index] = digest
            if progress:
                progress(done, len(indices))
    except BaseException:
        # Ctrl-C or a failed block: no new block starts; those in flight end within timeouts.
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        os.close(fd)
    pool.shutdown(wait=True)
    return sent


def complete_snapshot(ebs: Any, snapshot_id: str, sent: dict[int, bytes]) -> None:
    until_visible(
        lambda: ebs.complete_snapshot(
            SnapshotId=snapshot_id,
            ChangedBlocksCount=len(sent),
            Checksum=linear_checksum(sent[i] for i in sorted(sent)),
            ChecksumAlgorithm="SHA256",
            ChecksumAggregationMethod="LINEAR",
        ),
        f"completing {snapshot_id}",
    )


def wait_completed(
    ec2: Any,
    snapshot_id: str,
    interval: float | None = None,
    timeout: float = 3600.0,
) -> None:
    """botocore's `snapshot_completed` waiter (its pacing unless `interval`); fails on `error`.

    A snapshot DescribeSnapshots does not know yet (eventual consistency) is waited for too.
    """
    from botocore.exceptions import WaiterError

    delay = interval if interval is not None else 15.0
    attempts = max(2, int(timeout / max(delay, 0.1)))

    def wait() -> None:
        ec2.get_waiter("snapshot_completed").wait(
            SnapshotIds=[snapshot_id], WaiterConfig={"Delay": delay, "MaxAttempts": attempts}
        )

    deadline = time.monotonic() + VISIBLE_WITHIN
    while True:
        try:
            wait()
            return
        except WaiterError as exc:
            last = exc.last_response or {}
            if error_code_of(last) == "InvalidSnapshot.NotFound" and time.monotonic() < deadline:
                time.sleep(min(delay, 2.0))
                continue
            found = last.get("Snapshots") or [{}]
            state = found[0].get("State", "missing")
            reason = found[0].get("StateMessage") or error_code_of(last) or exc.reason
            if state == "error":
                raise EbsError(f"snapshot {snapshot_id} failed: {reason}") from None
            raise EbsError(f"snapshot {snapshot_id} is {state}: {reason}") from None


def error_code_of(answer: dict[str, Any]) -> str:
    return str((answer.get("Error") or {}).get("Code", ""))


def is_encrypted(ec2: Any, snapshot_id: str) -> bool:
    found = ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"]
    return bool(found and found[0].get("Encrypted"))


def write_snapshot(
    target: AwsTarget,
    disk: Path,
    *,
    token: str,
    tags: dict[str, str],
    description: str,
    workers: int = DEFAULT_WORKERS,
    kms_key: str = "",
    snapshot_id: str | None = None,
    on_started: Callable[[str], None] | None = None,
    on_completing: Callable[[str], None] | None = None,
    progress: Progress | None = None,
    wait_interval: float | None = None,
) -> Upload:
    """Write `disk` into a new EBS snapshot (or into the still-open `snapshot_id`) and wait.

    `on_started` gets the snapshot id before any block is sent, so a caller can record it; an
    interrupted write leaves that snapshot open (pending) for a rerun to finish or delete. An
    encrypted snapshot gets every block of its volume, zeros included (coldsnap #395/#396).
    """
    started = time.monotonic()
    size = disk.stat().st_size
    ebs = ebs_client(target, workers)
    ec2 = target.client("ec2")
    if snapshot_id is None:
        answer = start_snapshot(ebs, size, token, tags, description, kms_key)
        snapshot_id, encrypted = answer.snapshot_id, answer.encrypted
    else:
        encrypted = is_encrypted(ec2, snapshot_id)
    if on_started:
        on_started(snapshot_id)
    # encrypted: every block of the volume (zeros included); else only blocks that hold data
    indices = list(range(volume_gib(size) * GIB // BLOCK_SIZE)) if encrypted else data_blocks(disk)
    sent = put_blocks(ebs, snapshot_id, disk, indices, workers, encrypted, progress)
    complete_snapshot(ebs, snapshot_id, sent)
    if on_completing:  # no block may be sent any more: a rerun only waits
        on_completing(snapshot_id)
    wait_completed(ec2, snapshot_id, interval=wait_interval)
    return Upload(
        snapshot_id=snapshot_id,
        volume_gib=volume_gib(size),
        blocks_sent=len(sent),
        bytes_sent=len(sent) * BLOCK_SIZE,
        disk_size=size,
        allocated=disk.stat().st_blocks * 512,
        seconds=time.monotonic() - started,
        encrypted=encrypted,
    )


def snapshot_blocks(
    ebs: Any, snapshot_id: str, page_size: int = 10000
) -> tuple[list[tuple[int, str]], int]:
    """Every (index, token) of a completed snapshot, sorted by index, and its volume GiB."""
    blocks: dict[int, str] = {}
    args: dict[str, Any] = {"SnapshotId": snapshot_id, "MaxResults": page_size}
    volume = 0
    while True:
        page = until_visible(
            lambda: ebs.list_snapshot_blocks(**args), f"listing the blocks of {snapshot_id}"
        )
        volume = int(page.get("VolumeSize", volume))
        for block in page.get("Blocks", []):
            blocks[int(block["BlockIndex"])] = str(block["BlockToken"])
        token = page.get("NextToken")
        if not token:
            break
        args["NextToken"] = token
    return sorted(blocks.items()), volume


def get_block(ebs: Any, snapshot_id: str, index: int, token: str) -> bytes:
    """One block, its SHA-256 checked against the checksum EBS sends with it."""
    answer = ebs.get_snapshot_block(SnapshotId=snapshot_id, BlockIndex=index, BlockToken=token)
    data: bytes = answer["BlockData"].read()
    expected = answer.get("Checksum")
    if expected and b64_sha256(data) != expected:
        raise EbsError(f"block {index} of {snapshot_id} does not match its checksum")
    if len(data) != BLOCK_SIZE:
        raise EbsError(f"block {index} of {snapshot_id} is {len(data)} bytes, not {BLOCK_SIZE}")
    return data


def compare_snapshot(
    target: AwsTarget, snapshot_id: str, disk: Path, workers: int = DEFAULT_WORKERS
) -> list[str]:
    """Differences between a snapshot and a local disk, block by block ([] when equal).

    Every block of the volume is accounted for, zeros never assumed where AWS does not promise
    them: a block the snapshot lacks reads as zeros only in an unencrypted snapshot (then the
    disk must hold zeros there); in an encrypted one it reads as junk, so it is a difference.
    Past the disk's end the volume must read as zeros too.
    """
    ebs = ebs_client(target, workers)
    listed, volume = snapshot_blocks(ebs, snapshot_id)
    encrypted = is_encrypted(target.client("ec2"), snapshot_id)
    size = disk.stat().st_size
    problems: list[str] = []
    if volume * GIB < size:
        problems.append(f"snapshot volume {volume} GiB is smaller than the disk ({size} bytes)")
    tokens = dict(listed)
    total = max(volume * GIB, size) // BLOCK_SIZE
    if encrypted:
        unwritten = [i for i in range(total) if i not in tokens]
        if unwritten:
            problems.append(
                f"{len(unwritten)} blocks of encrypted snapshot {snapshot_id} were never written "
                f"(first: {unwritten[0]}): they read as random data, not zeros"
            )
    fd = os.open(disk, os.O_RDONLY)

    def check(index: int) -> str | None:
        local = _read_block(fd, index) if index * BLOCK_SIZE < size else _ZERO
        if index in tokens:
            remote = get_block(ebs, snapshot_id, index, tokens[index])
        elif encrypted:
            return None  # counted above
        else:
            remote = _ZERO
        return None if local == remote else f"block {index} differs"

    try:
        wanted = sorted(set(tokens) | set(data_blocks(disk)))
        with cf.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            problems += [p for p in pool.map(check, wanted) if p]
    finally:
        os.close(fd)
    return problems


def read_snapshot(
    target: AwsTarget, snapshot_id: str, dest: Path, workers: int = DEFAULT_WORKERS
) -> Path:
    """Write a snapshot into a sparse local raw disk of its volume size (missing blocks: holes)."""
    ebs = ebs_client(target, workers)
    listed, volume = snapshot_blocks(ebs, snapshot_id)
    tmp = dest.with_name(dest.name + ".partial")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)

    def fetch(item: tuple[int, str]) -> None:
        index, token = item
        data = get_block(ebs, snapshot_id, index, token)
        if data != _ZERO:
            os.pwrite(fd, data, index * BLOCK_SIZE)

    try:
        os.ftruncate(fd, volume * GIB)
        with cf.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            list(pool.map(fetch, listed))
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    tmp.replace(dest)
    return dest
