"""Suitcase's side of issue 19's "S3 details": parts sized to fit 10,000 (new and resumed
uploads alike), ExpectedBucketOwner on every call that takes it, and a 403 on HeadBucket said as
what it is known to be. The twin's side is in tests/aws_rules/test_s3_rules.py."""

from __future__ import annotations

import base64
import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from awscrt.checksums import crc64nvme
from botocore.stub import Stubber

from suitcase.aws.errors import BucketNotOwned
from suitcase.aws.s3 import (
    MAX_PARTS,
    Bucket,
    S3Error,
    TransferSettings,
    part_size_for,
    resumed_part_size,
)
from suitcase.machine import free_port
from tests.aws_endpoint import RecordingTarget, target_for
from tests.endpoint_support import Launched, launch

MiB = 1024 * 1024
GiB = 1024 * MiB
#: the owner the stubbed (serverless) HeadBucket tests give their bucket
STUBBED_OWNER = "123456789012"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launched]:
    """The twin, for the whole module (each test has its own bucket)."""
    with launch("twin", tmp_path_factory.mktemp("twin")) as running:
        yield running


@pytest.fixture(scope="module")
def account(server: Launched) -> str:
    """The account the twin answers STS GetCallerIdentity with (and that owns its buckets)."""
    return server.account()


@pytest.fixture
def target(server: Launched, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> RecordingTarget:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", server.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", server.secret_access_key)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return target_for(server.url)


def crc(data: bytes) -> str:
    return base64.b64encode(crc64nvme(data).to_bytes(8, "big")).decode()


def quiet(_line: str) -> None:
    pass


# --- part sizes --------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [160 * GiB, 200 * GiB, 1024 * GiB, 5 * 1024 * GiB])
def test_a_big_file_fits_in_10000_parts(size: int) -> None:
    """16 MiB parts break S3's 10,000-part limit past ~156 GiB: the part size grows instead."""
    assert -(-size // (16 * MiB)) > MAX_PARTS  # what the configured size alone would need
    part = part_size_for(16 * MiB, size)
    assert -(-size // part) <= MAX_PARTS and part % (16 * MiB) == 0


def test_a_small_file_keeps_the_configured_part_size() -> None:
    assert part_size_for(16 * MiB, 10 * GiB) == 16 * MiB
    assert part_size_for(5 * MiB, 1) == 5 * MiB


@pytest.mark.parametrize(
    ("parts", "size", "configured", "expected"),
    [
        # a 200 GiB upload begun with 32 MiB parts (16 MiB configured, grown): kept at 32
        ({1: 32 * MiB, 2: 32 * MiB}, 200 * GiB, 16 * MiB, 32 * MiB),
        # the settings changed since it began (6 MiB then, 5 now): the parts say 6
        ({1: 6 * MiB, 2: 6 * MiB}, 14 * MiB, 5 * MiB, 6 * MiB),
        # only the short last part is there: its place says 6 MiB parts
        ({3: 2 * MiB}, 14 * MiB, 5 * MiB, 6 * MiB),
        # the parts agree with the settings: those
        ({2: 5 * MiB}, 14 * MiB, 5 * MiB, 5 * MiB),
        # no part tells, or none fits any size: what a new upload would use
        ({}, 200 * GiB, 16 * MiB, 32 * MiB),
        ({1: 6 * MiB, 2: 7 * MiB}, 20 * MiB, 5 * MiB, 5 * MiB),
    ],
)
def test_a_resumed_upload_keeps_the_part_size_it_began_with(
    parts: dict[int, int], size: int, configured: int, expected: int
) -> None:
    assert resumed_part_size(parts, size, configured) == expected


def test_resume_reads_the_part_size_from_the_parts_in_s3(
    target: RecordingTarget, tmp_path: Path
) -> None:
    """An upload begun with 6 MiB parts, resumed with 5 MiB configured: the two parts there are
    kept, only the missing one is sent (with the configured size, none would be kept)."""
    data = os.urandom(14 * MiB)  # 6 + 6 + 2 MiB
    path = tmp_path / "disk.img"
    path.write_bytes(data)
    bucket = Bucket(target, f"details-{uuid.uuid4().hex[:12]}", TransferSettings(part_size_mb=5))
    bucket.ensure(create=True, say=quiet)
    upload = bucket.client.create_multipart_upload(
        Bucket=bucket.name,
        Key="disk.img",
        ChecksumAlgorithm="CRC64NVME",
        ChecksumType="FULL_OBJECT",
    )["UploadId"]
    for number, body in ((1, data[: 6 * MiB]), (3, data[12 * MiB :])):
        bucket.client.upload_part(
            Bucket=bucket.name,
            Key="disk.img",
            UploadId=upload,
            PartNumber=number,
            Body=body,
            ChecksumAlgorithm="CRC64NVME",
        )
    target.calls.clear()
    said: list[str] = []
    bucket.put(path, "disk.img", hashlib.sha256(data).hexdigest(), said.append, lambda _n: None)
    assert any("resuming an unfinished upload (2 of 3 parts already there)" in s for s in said)
    sent = target.named("UploadPart")
    assert [(p["PartNumber"], len(p["Body"])) for p in sent] == [(2, 6 * MiB)]
    head = bucket.head("disk.img")
    assert head is not None and head["ChecksumCRC64NVME"] == crc(data)
    assert head["ETag"].endswith('-3"')
    assert bucket.get_bytes("disk.img") == data


# --- ExpectedBucketOwner -----------------------------------------------------------------------

#: S3 calls Suitcase makes that take no ExpectedBucketOwner (ListBuckets is about the caller)
NO_OWNER = {"CreateBucket", "ListBuckets"}


def test_every_s3_call_names_the_expected_bucket_owner(
    target: RecordingTarget, tmp_path: Path, account: str
) -> None:
    """Every call of upload (fresh and resumed), check, list, fetch and delete carries the
    account STS names as ExpectedBucketOwner."""
    bucket = Bucket(target, f"details-{uuid.uuid4().hex[:12]}", TransferSettings(part_size_mb=5))
    bucket.ensure(create=True, say=quiet)
    data = os.urandom(11 * MiB)
    path = tmp_path / "disk.img"
    path.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    bucket.put(path, "a/disk.img", sha, quiet, lambda _n: None)
    bucket.put(path, "a/disk.img", sha, quiet, lambda _n: None)  # there already: skipped
    begun = bucket.client.create_multipart_upload(
        Bucket=bucket.name,
        Key="b/disk.img",
        ChecksumAlgorithm="CRC64NVME",
        ChecksumType="FULL_OBJECT",
    )["UploadId"]
    bucket.client.upload_part(
        Bucket=bucket.name,
        Key="b/disk.img",
        UploadId=begun,
        PartNumber=1,
        Body=data[: 5 * MiB],
        ChecksumAlgorithm="CRC64NVME",
    )
    target.calls.clear()
    bucket.ensure(create=False, say=quiet)
    bucket.put(path, "b/disk.img", sha, quiet, lambda _n: None)  # resumed
    bucket.get("a/disk.img", tmp_path / "back.img", len(data), sha, lambda _n: None)
    assert bucket.get_bytes("b/disk.img") == data
    assert set(bucket.keys("")) == {"a/disk.img", "b/disk.img"}
    assert bucket.unfinished("") == []
    bucket.abort("b/disk.img", "no-such-upload")
    bucket.delete(["a/disk.img", "b/disk.img"])
    s3_calls = [(name, params) for name, params in target.calls if name != "GetCallerIdentity"]
    names = {name for name, _ in s3_calls}
    assert {"HeadBucket", "ListParts", "UploadPart", "CompleteMultipartUpload"} <= names
    assert {"HeadObject", "GetObject", "ListObjectsV2", "ListMultipartUploads"} <= names
    assert {"AbortMultipartUpload", "DeleteObjects"} <= names
    missing = [
        name
        for name, params in s3_calls
        if name not in NO_OWNER and params.get("ExpectedBucketOwner") != account
    ]
    assert missing == []


def test_a_fresh_upload_names_the_owner_and_the_full_object_checksum(
    target: RecordingTarget, tmp_path: Path, account: str
) -> None:
    """A new upload's CompleteMultipartUpload carries the file's CRC64NVME (FULL_OBJECT), for
    S3 to compare with what it assembled, and the expected owner on every call."""
    bucket = Bucket(target, f"details-{uuid.uuid4().hex[:12]}", TransferSettings(part_size_mb=5))
    bucket.ensure(create=True, say=quiet)
    data = os.urandom(6 * MiB)
    path = tmp_path / "disk.img"
    path.write_bytes(data)
    target.calls.clear()
    bucket.put(path, "disk.img", hashlib.sha256(data).hexdigest(), quiet, lambda _n: None)
    (completed,) = target.named("CompleteMultipartUpload")
    assert completed["ChecksumCRC64NVME"] == crc(data)
    assert completed["ChecksumType"] == "FULL_OBJECT"
    for name in ("CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"):
        assert all(p["ExpectedBucketOwner"] == account for p in target.named(name)), name


def test_no_owner_is_sent_when_sts_does_not_answer(tmp_path: Path) -> None:
    """An endpoint that serves no STS (a bare S3 stand-in): no ExpectedBucketOwner, no error."""
    bucket = Bucket(
        target_for(f"http://127.0.0.1:{free_port()}"), "nobody-answers", TransferSettings()
    )
    assert bucket.owner == {}


# --- a 403 on HeadBucket -----------------------------------------------------------------------


def _denied_bucket(
    target: RecordingTarget, listing: dict[str, Any] | None, raised: type[Exception]
) -> str:
    """What `ensure` says when HeadBucket answers 403 and ListBuckets answers `listing` (None:
    ListBuckets is denied too)."""
    bucket = Bucket(target, "suitcase-denied", TransferSettings())
    bucket._owner = (STUBBED_OWNER,)
    with Stubber(bucket.client) as stub:
        stub.add_client_error(
            "head_bucket",
            service_error_code="403",
            http_status_code=403,
            expected_params={"Bucket": "suitcase-denied", "ExpectedBucketOwner": STUBBED_OWNER},
        )
        if listing is None:
            stub.add_client_error("list_buckets", "AccessDenied", http_status_code=403)
        else:
            stub.add_response("list_buckets", listing, {"Prefix": "suitcase-denied"})
        with pytest.raises(raised) as refused:
            bucket.ensure(create=True, say=quiet)
        stub.assert_no_pending_responses()
    message = str(refused.value)
    assert "\n" not in message
    return message


def test_a_403_on_a_bucket_this_account_lists_is_a_policy_not_someone_else(
    target: RecordingTarget,
) -> None:
    listing = {"Buckets": [{"Name": "suitcase-denied"}], "Owner": {"ID": "me"}}
    message = _denied_bucket(target, listing, S3Error)
    assert "is this account's, but access to it is denied" in message
    assert "bucket policy or your IAM policy" in message
    assert "another account" not in message


def test_a_403_on_a_bucket_this_account_does_not_list_is_someone_elses(
    target: RecordingTarget,
) -> None:
    message = _denied_bucket(target, {"Buckets": [{"Name": "suitcase-denied-2"}]}, BucketNotOwned)
    assert message.startswith("bucket suitcase-denied belongs to another account (HeadBucket: 403")


def test_a_403_when_s3_will_not_tell_whose_names_both(target: RecordingTarget) -> None:
    message = _denied_bucket(target, None, S3Error)
    assert message.startswith("access to bucket suitcase-denied is denied (HeadBucket: 403")
    assert "bucket policy or your IAM policy" in message and "another account's bucket" in message
