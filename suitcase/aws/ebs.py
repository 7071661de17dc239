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
from suitcase.errors import SuitcaseError
from suitcase.manifest import data_extents

#: EBS direct APIs' block size (the EBS User Guide, "EBS direct APIs"): fixed, not negotiated.
BLOCK_SIZE = 524288
GIB = 2**30
_ZERO = bytes(BLOCK_SIZE)
#: Measured against the embedded endpoint on this machine (benchmarks/register.py, README).
DEFAULT_WORKERS = 8
#: Attempts per call, SDK retries only (never stacked under a loop of our own: coldsnap #437),
#: with botocore's standard backoff for throttling, 5xx and dropped connections.
ATTEMPTS = 8
#: Minutes AWS keeps a started snapshot open for blocks (StartSnapshot Timeout, 10-4320).
START_TIMEOUT_MINUTES = 60

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


def start_snapshot(
    ebs: Any,
    size: int,
    token: str,
    tags: dict[str, str],
    description: str,
    encrypted: bool = False,
) -> str:
    """StartSnapshot; the same `token` returns the same snapshot (AWS's idempotency)."""
    args: dict[str, Any] = {
        "VolumeSize": volume_gib(size),
        "ClientToken": token,
        "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
        "Description": description,
        "Timeout": START_TIMEOUT_MINUTES,
    }
    if encrypted:
        args["Encrypted"] = True
    answer = ebs.start_snapshot(**args)
    return str(answer["SnapshotId"])


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
        ebs.put_snapshot_block(
            SnapshotId=snapshot_id,
            BlockIndex=index,
            BlockData=data,
            DataLength=BLOCK_SIZE,
            Checksum=base64.b64encode(digest).decode(),
            ChecksumAlgorithm="SHA256",
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
    ebs.complete_snapshot(
        SnapshotId=snapshot_id,
        ChangedBlocksCount=len(sent),
        Checksum=linear_checksum(sent[i] for i in sorted(sent)),
        ChecksumAlgorithm="SHA256",
        ChecksumAggregationMethod="LINEAR",
    )


def wait_completed(
    ec2: Any,
    snapshot_id: str,
    interval: float = 2.0,
    timeout: float = 3600.0,
    successes: int = 3,
) -> None:
    """Until DescribeSnapshots says `completed` `successes` times in a row; fails on `error`."""
    deadline = time.monotonic() + timeout
    streak = 0
    while True:
        answer = ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"]
        state = answer[0]["State"] if answer else "missing"
        if state == "error":
            reason = answer[0].get("StateMessage", "no reason given")
            raise EbsError(f"snapshot {snapshot_id} failed: {reason}")
        streak = streak + 1 if state == "completed" else 0
        if streak >= successes:
            return
        if time.monotonic() > deadline:
            raise EbsError(f"snapshot {snapshot_id} still {state} after {timeout:.0f} s")
        time.sleep(interval)


def write_snapshot(
    target: AwsTarget,
    disk: Path,
    *,
    token: str,
    tags: dict[str, str],
    description: str,
    workers: int = DEFAULT_WORKERS,
    encrypted: bool = False,
    snapshot_id: str | None = None,
    on_started: Callable[[str], None] | None = None,
    on_completing: Callable[[str], None] | None = None,
    progress: Progress | None = None,
    wait_interval: float = 2.0,
) -> Upload:
    """Write `disk` into a new EBS snapshot (or into the still-open `snapshot_id`) and wait.

    `on_started` gets the snapshot id before any block is sent, so a caller can record it; an
    interrupted write leaves that snapshot open (pending) for a rerun to finish or delete.
    """
    started = time.monotonic()
    size = disk.stat().st_size
    ebs = ebs_client(target, workers)
    if snapshot_id is None:
        snapshot_id = start_snapshot(ebs, size, token, tags, description, encrypted)
    if on_started:
        on_started(snapshot_id)
    indices = data_blocks(disk)
    sent = put_blocks(ebs, snapshot_id, disk, indices, workers, encrypted, progress)
    complete_snapshot(ebs, snapshot_id, sent)
    if on_completing:  # no block may be sent any more: a rerun only waits
        on_completing(snapshot_id)
    wait_completed(target.client("ec2"), snapshot_id, interval=wait_interval)
    return Upload(
        snapshot_id=snapshot_id,
        volume_gib=volume_gib(size),
        blocks_sent=len(sent),
        bytes_sent=len(sent) * BLOCK_SIZE,
        disk_size=size,
        allocated=disk.stat().st_blocks * 512,
        seconds=time.monotonic() - started,
    )


def snapshot_blocks(
    ebs: Any, snapshot_id: str, page_size: int = 10000
) -> tuple[list[tuple[int, str]], int]:
    """Every (index, token) of a completed snapshot, sorted by index, and its volume GiB."""
    blocks: dict[int, str] = {}
    args: dict[str, Any] = {"SnapshotId": snapshot_id, "MaxResults": page_size}
    volume = 0
    while True:
        page = ebs.list_snapshot_blocks(**args)
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

    A block the snapshot lacks reads as zeros; the disk's blocks past its end read as zeros too.
    """
    ebs = ebs_client(target, workers)
    listed, volume = snapshot_blocks(ebs, snapshot_id)
    size = disk.stat().st_size
    problems: list[str] = []
    if volume * GIB < size:
        problems.append(f"snapshot volume {volume} GiB is smaller than the disk ({size} bytes)")
    tokens = dict(listed)
    fd = os.open(disk, os.O_RDONLY)

    def check(index: int) -> str | None:
        local = _read_block(fd, index) if index * BLOCK_SIZE < size else _ZERO
        remote = get_block(ebs, snapshot_id, index, tokens[index]) if index in tokens else _ZERO
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
