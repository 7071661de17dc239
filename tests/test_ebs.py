"""suitcase.aws.ebs against the fixed moto server over HTTP: a disk into a snapshot and back."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import pytest

from suitcase.aws import ebs
from suitcase.aws.ebs import BLOCK_SIZE
from tests import aws_endpoint
from tests.aws_endpoint import target_for
from tests.aws_proxy import Fault, FaultProxy, is_ebs_block_read
from tests.endpoint_support import Launched
from tests.fakes import MIB, fake_disk

endpoint = aws_endpoint.endpoint  # fixtures: the fixed moto server, reset per test
aws_env = aws_endpoint.aws_env


def _blocks(disk: Path) -> dict[int, bytes]:
    """The disk's 512 KiB blocks, independently of ebs.py (zero-padded at the end)."""
    data = disk.read_bytes()
    data += bytes(-len(data) % BLOCK_SIZE)
    return {i: data[i * BLOCK_SIZE : (i + 1) * BLOCK_SIZE] for i in range(len(data) // BLOCK_SIZE)}


def _write(aws_env: Launched, disk: Path, **kwargs: Any) -> tuple[Any, ebs.Upload]:
    target = target_for(aws_env.url)
    upload = ebs.write_snapshot(
        target, disk, token="t-" + disk.name, tags={"a": "b"}, description="test",
        wait_interval=0.05, **kwargs,
    )  # fmt: skip
    return target, upload


def test_round_trip_blocks_read_back_equal_the_disk(aws_env: Launched, tmp_path: Path) -> None:
    disk = fake_disk(tmp_path / "disk.raw")
    target, upload = _write(aws_env, disk)
    assert upload.volume_gib == 1
    assert ebs.compare_snapshot(target, upload.snapshot_id, disk) == []
    back = ebs.read_snapshot(target, upload.snapshot_id, tmp_path / "back.raw")
    assert back.stat().st_size == 2**30
    with back.open("rb") as handle:
        assert handle.read(disk.stat().st_size) == disk.read_bytes()
        assert handle.read(MIB) == bytes(MIB)


def test_holes_and_zero_blocks_are_not_sent(aws_env: Launched, tmp_path: Path) -> None:
    disk = fake_disk(tmp_path / "disk.raw")
    target, upload = _write(aws_env, disk)
    sent = sorted(p["BlockIndex"] for p in target.named("PutSnapshotBlock"))
    blocks = _blocks(disk)
    allocated = ebs.data_blocks(disk)  # SEEK_DATA: holes are not in here
    nonzero = [i for i in allocated if blocks[i] != bytes(BLOCK_SIZE)]
    assert sent == nonzero
    assert 6 in allocated and 6 not in sent  # written zeros: allocated, skipped
    assert len(allocated) < len(blocks) / 2  # the disk is mostly holes, never read
    assert upload.bytes_sent == len(sent) * BLOCK_SIZE <= upload.allocated + 5 * BLOCK_SIZE


def test_every_block_and_the_snapshot_carry_sha256_checksums(
    aws_env: Launched, tmp_path: Path
) -> None:
    disk = fake_disk(tmp_path / "disk.raw")
    target, _ = _write(aws_env, disk)
    blocks = _blocks(disk)
    puts = target.named("PutSnapshotBlock")
    for put in puts:
        digest = hashlib.sha256(blocks[put["BlockIndex"]]).digest()
        assert put["Checksum"] == base64.b64encode(digest).decode()
        assert put["ChecksumAlgorithm"] == "SHA256"
        assert put["DataLength"] == BLOCK_SIZE
    (complete,) = target.named("CompleteSnapshot")
    # LINEAR (EBS API reference, CompleteSnapshot): SHA-256 over the binary block checksums,
    # in block-index order
    linear = hashlib.sha256(
        b"".join(hashlib.sha256(blocks[p["BlockIndex"]]).digest() for p in
                 sorted(puts, key=lambda p: p["BlockIndex"]))
    ).digest()  # fmt: skip
    assert complete["Checksum"] == base64.b64encode(linear).decode()
    assert complete["ChecksumAggregationMethod"] == "LINEAR"
    assert complete["ChangedBlocksCount"] == len(puts)
    (start,) = target.named("StartSnapshot")
    assert start["VolumeSize"] == 1 and start["ClientToken"] and start["Timeout"] >= 10


def test_an_account_that_encrypts_by_default_gets_every_block(
    aws_env: Launched, tmp_path: Path
) -> None:
    """Encryption is read from StartSnapshot's answer, not from the request: with the account's
    EBS encryption by default on, every block of the volume is sent, zeros and holes too."""
    disk = fake_disk(tmp_path / "disk.raw")
    target_for(aws_env.url).client("ec2").enable_ebs_encryption_by_default()
    target, upload = _write(aws_env, disk)
    (start,) = target.named("StartSnapshot")
    assert "Encrypted" not in start  # the account decided, not the request
    sent = sorted(p["BlockIndex"] for p in target.named("PutSnapshotBlock"))
    assert upload.encrypted and sent == list(range(ebs.GIB // BLOCK_SIZE))
    assert ebs.compare_snapshot(target, upload.snapshot_id, disk) == []


def test_a_changed_disk_is_noticed(aws_env: Launched, tmp_path: Path) -> None:
    disk = fake_disk(tmp_path / "disk.raw")
    target, upload = _write(aws_env, disk)
    with disk.open("r+b") as handle:
        handle.seek(4 * BLOCK_SIZE + 10)  # a hole before: now data the snapshot lacks
        handle.write(b"x")
    assert ebs.compare_snapshot(target, upload.snapshot_id, disk) == ["block 4 differs"]


def test_a_block_corrupted_on_the_way_back_is_refused(aws_env: Launched, tmp_path: Path) -> None:
    disk = fake_disk(tmp_path / "disk.raw")
    _, upload = _write(aws_env, disk)
    with FaultProxy(aws_env.url) as proxy:
        proxy.add(Fault("corrupt_read", when=is_ebs_block_read))  # every block read back
        with pytest.raises(ebs.EbsError, match="does not match its checksum"):
            ebs.compare_snapshot(target_for(proxy.url), upload.snapshot_id, disk)
        with pytest.raises(ebs.EbsError, match="does not match its checksum"):
            ebs.read_snapshot(target_for(proxy.url), upload.snapshot_id, tmp_path / "back.raw")
    assert not (tmp_path / "back.raw").exists()
    assert not (tmp_path / "back.raw.partial").exists()


def test_volume_size_rounds_up_to_whole_gib() -> None:
    assert ebs.volume_gib(1) == 1
    assert ebs.volume_gib(2**30) == 1
    assert ebs.volume_gib(2**30 + 1) == 2
