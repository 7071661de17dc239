"""S3 rules Suitcase relies on (issue 19, item 8), each checked against the twin and, where stock
moto lacks it, shown missing there.

Sources:
- CompleteMultipartUpload, `ChecksumCRC64NVME` and `ChecksumType` (S3 API Reference,
  https://docs.aws.amazon.com/AmazonS3/latest/API/API_CompleteMultipartUpload.html) and
  "Checking object integrity in Amazon S3" (S3 User Guide,
  https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html): S3
  validates a full-object checksum it is sent against the one it computes; a mismatch is 400
  `BadDigest` ("The crc64nvme you specified did not match the calculated checksum.").
- UploadPart, `PartNumber` (https://docs.aws.amazon.com/AmazonS3/latest/API/API_UploadPart.html)
  and "Amazon S3 multipart upload limits"
  (https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html): parts are numbered 1 to
  10,000.
- "Verifying bucket ownership with bucket owner condition" (S3 User Guide,
  https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucket-owner-condition.html): with
  `ExpectedBucketOwner` naming another account than the bucket's owner, the request fails with
  403 Access Denied.
"""

from __future__ import annotations

import base64
import hashlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from awscrt.checksums import crc64nvme
from botocore.exceptions import ClientError

from suitcase.aws.clients import AwsTarget
from suitcase.aws.s3 import Bucket, S3Error, TransferSettings
from tests.aws_rules.conftest import Aws

MiB = 1024 * 1024
OTHER_ACCOUNT = "111122223333"


def crc(data: bytes) -> str:
    return base64.b64encode(crc64nvme(data).to_bytes(8, "big")).decode()


def _bucket(client: Any) -> Iterator[str]:
    name = f"suitcase-rules-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    try:
        yield name
    finally:  # a rule test leaves nothing behind in an account
        for upload in client.list_multipart_uploads(Bucket=name).get("Uploads", []):
            client.abort_multipart_upload(
                Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"]
            )
        for item in client.list_objects_v2(Bucket=name).get("Contents", []):
            client.delete_object(Bucket=name, Key=item["Key"])
        client.delete_bucket(Bucket=name)


@pytest.fixture
def bucket(aws: Aws) -> Iterator[str]:
    yield from _bucket(aws.client("s3"))


@pytest.fixture
def stock_s3(stock: AwsTarget, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, str]]:
    """A client of stock moto (any keys do: it checks none) and a fresh bucket there."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    client = stock.client("s3")
    for name in _bucket(client):
        yield client, name


def two_part_upload(client: Any, bucket: str, key: str) -> tuple[str, list[dict[str, Any]], bytes]:
    """A FULL_OBJECT CRC64NVME multipart upload of two parts (5 MiB, then 1 KiB), not completed."""
    upload = client.create_multipart_upload(
        Bucket=bucket, Key=key, ChecksumAlgorithm="CRC64NVME", ChecksumType="FULL_OBJECT"
    )["UploadId"]
    bodies = [b"a" * 5 * MiB, b"b" * 1024]
    parts = []
    for number, body in enumerate(bodies, 1):
        answer = client.upload_part(
            Bucket=bucket,
            Key=key,
            UploadId=upload,
            PartNumber=number,
            Body=body,
            ChecksumAlgorithm="CRC64NVME",
        )
        parts.append({"PartNumber": number, "ETag": answer["ETag"]})
    return upload, parts, b"".join(bodies)


def complete(client: Any, bucket: str, key: str, upload: str, parts: Any, checksum: str) -> Any:
    return client.complete_multipart_upload(
        Bucket=bucket,
        Key=key,
        UploadId=upload,
        MultipartUpload={"Parts": parts},
        ChecksumCRC64NVME=checksum,
        ChecksumType="FULL_OBJECT",
    )


# --- CompleteMultipartUpload compares the full-object CRC64NVME --------------------------------


def test_complete_refuses_a_full_object_crc64nvme_that_differs(aws: Aws, bucket: str) -> None:
    """CompleteMultipartUpload with `ChecksumType=FULL_OBJECT` and a `ChecksumCRC64NVME` that is
    not the assembled object's: 400 BadDigest, no object, the upload still open (S3 API Reference,
    CompleteMultipartUpload; S3 User Guide, "Checking object integrity in Amazon S3")."""
    s3 = aws.client("s3")
    upload, parts, data = two_part_upload(s3, bucket, "disk.img")
    with pytest.raises(ClientError) as refused:
        complete(s3, bucket, "disk.img", upload, parts, crc(data + b"!"))
    assert refused.value.response["Error"]["Code"] == "BadDigest"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "crc64nvme" in refused.value.response["Error"]["Message"].lower()
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    # the upload is still there, and completes with the right checksum
    open_uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [u["UploadId"] for u in open_uploads] == [upload]
    complete(s3, bucket, "disk.img", upload, parts, crc(data))
    head = s3.head_object(Bucket=bucket, Key="disk.img", ChecksumMode="ENABLED")
    assert (head["ChecksumCRC64NVME"], head["ChecksumType"]) == (crc(data), "FULL_OBJECT")
    assert head["ContentLength"] == len(data)


def test_stock_moto_lacks_the_full_object_checksum_check(stock_s3: tuple[Any, str]) -> None:
    """Stock moto stores the object whatever full-object CRC64NVME the client sends at
    CompleteMultipartUpload (AWS answers BadDigest): the check above is the twin's own."""
    s3, stock_bucket = stock_s3
    upload, parts, data = two_part_upload(s3, stock_bucket, "disk.img")
    complete(s3, stock_bucket, "disk.img", upload, parts, crc(data + b"!"))
    head = s3.head_object(Bucket=stock_bucket, Key="disk.img", ChecksumMode="ENABLED")
    assert head["ContentLength"] == len(data) and head["ChecksumCRC64NVME"] == crc(data)


def test_suitcase_sends_the_files_crc64nvme_and_stores_nothing_on_a_mismatch(
    aws: Aws, bucket: str, tmp_path: Path
) -> None:
    """Suitcase's answer to the rule above: CompleteMultipartUpload carries the manifest's
    CRC64NVME, so a file that no longer matches its manifest is refused by S3 itself (BadDigest),
    in one line, with no object and no unfinished upload left, for a new upload and a resumed
    one alike."""
    data = os.urandom(6 * MiB)
    path = tmp_path / "disk.img"
    path.write_bytes(data)
    wrong = crc(data[:-1] + b"!")
    store = Bucket(aws.target, bucket, TransferSettings(part_size_mb=5))
    sha = hashlib.sha256(data).hexdigest()
    with pytest.raises(S3Error) as refused:
        store.put(path, "new.img", sha, lambda _l: None, lambda _n: None, crc64nvme=wrong)
    assert "(BadDigest)" in str(refused.value) and "\n" not in str(refused.value)
    s3 = aws.client("s3")
    begun = s3.create_multipart_upload(
        Bucket=bucket, Key="resumed.img", ChecksumAlgorithm="CRC64NVME", ChecksumType="FULL_OBJECT"
    )["UploadId"]
    s3.upload_part(
        Bucket=bucket,
        Key="resumed.img",
        UploadId=begun,
        PartNumber=1,
        Body=data[: 5 * MiB],
        ChecksumAlgorithm="CRC64NVME",
    )
    with pytest.raises(S3Error) as refused:
        store.put(path, "resumed.img", sha, lambda _l: None, lambda _n: None, crc64nvme=wrong)
    assert "(BadDigest)" in str(refused.value)
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    store.put(path, "new.img", sha, lambda _l: None, lambda _n: None, crc64nvme=crc(data))
    assert s3.get_object(Bucket=bucket, Key="new.img")["Body"].read() == data


# --- part numbers stop at 10,000 ---------------------------------------------------------------


def test_part_numbers_stop_at_10000(aws: Aws, bucket: str) -> None:
    """UploadPart with PartNumber 10,001 is refused, 10,000 accepted (S3 API Reference, UploadPart
    `PartNumber`; S3 User Guide, "Amazon S3 multipart upload limits"): why Suitcase sizes parts
    with s3transfer's ChunksizeAdjuster. moto has this rule already; kept here so it stays."""
    s3 = aws.client("s3")
    upload = s3.create_multipart_upload(Bucket=bucket, Key="big.img")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="big.img", UploadId=upload, PartNumber=10000, Body=b"x")
    with pytest.raises(ClientError) as refused:
        s3.upload_part(Bucket=bucket, Key="big.img", UploadId=upload, PartNumber=10001, Body=b"x")
    assert refused.value.response["Error"]["Code"] == "InvalidArgument"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


# --- the bucket owner condition ----------------------------------------------------------------


def _owners(aws_client: Any) -> tuple[str, str]:
    account = str(aws_client.get_caller_identity()["Account"])
    return account, OTHER_ACCOUNT if account != OTHER_ACCOUNT else "444455556666"


def test_a_wrong_expected_bucket_owner_is_access_denied(aws: Aws, bucket: str) -> None:
    """ExpectedBucketOwner naming another account than the bucket's: 403 AccessDenied on bucket
    and object operations alike, and nothing is written; the right owner works (S3 User Guide,
    "Verifying bucket ownership with bucket owner condition")."""
    s3 = aws.client("s3")
    mine, other = _owners(aws.client("sts"))
    s3.head_bucket(Bucket=bucket, ExpectedBucketOwner=mine)
    s3.put_object(Bucket=bucket, Key="mine", Body=b"1", ExpectedBucketOwner=mine)
    calls: dict[str, Callable[[], Any]] = {
        "HeadBucket": lambda: s3.head_bucket(Bucket=bucket, ExpectedBucketOwner=other),
        "PutObject": lambda: s3.put_object(
            Bucket=bucket, Key="theirs", Body=b"2", ExpectedBucketOwner=other
        ),
        "HeadObject": lambda: s3.head_object(Bucket=bucket, Key="mine", ExpectedBucketOwner=other),
        "ListObjectsV2": lambda: s3.list_objects_v2(Bucket=bucket, ExpectedBucketOwner=other),
        "CreateMultipartUpload": lambda: s3.create_multipart_upload(
            Bucket=bucket, Key="theirs", ExpectedBucketOwner=other
        ),
    }
    for name, call in calls.items():
        with pytest.raises(ClientError) as refused:
            call()
        answer = refused.value.response
        assert answer["ResponseMetadata"]["HTTPStatusCode"] == 403, name
        assert answer["Error"]["Code"] in ("AccessDenied", "403"), name  # HEAD has no body
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["mine"]
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_stock_moto_ignores_expected_bucket_owner(
    stock: AwsTarget, stock_s3: tuple[Any, str]
) -> None:
    """Stock moto writes to a bucket whatever ExpectedBucketOwner says (AWS answers 403)."""
    s3, stock_bucket = stock_s3
    _, other = _owners(stock.client("sts"))
    s3.head_bucket(Bucket=stock_bucket, ExpectedBucketOwner=other)
    s3.put_object(Bucket=stock_bucket, Key="theirs", Body=b"2", ExpectedBucketOwner=other)
    assert s3.get_object(Bucket=stock_bucket, Key="theirs")["Body"].read() == b"2"


def test_suitcase_names_the_owner_so_a_wrong_one_writes_nothing(
    aws: Aws, bucket: str, tmp_path: Path
) -> None:
    """Suitcase's answer: its calls carry ExpectedBucketOwner (the account STS names); were the
    bucket another account's, S3 would refuse them all. Shown with a wrong owner planted: the
    check, the upload and the listing are refused and nothing is written; with the account's
    own id (as Suitcase finds it) all works."""
    path = tmp_path / "small.img"
    path.write_bytes(b"x" * 1024)
    sha = hashlib.sha256(b"x" * 1024).hexdigest()
    right = Bucket(aws.target, bucket, TransferSettings())
    mine, other = _owners(aws.client("sts"))
    assert right.owner == {"ExpectedBucketOwner": mine}
    wrong = Bucket(aws.target, bucket, TransferSettings())
    wrong._owner = (other,)
    with pytest.raises(S3Error) as refused:
        wrong.ensure(create=False, say=lambda _l: None)
    # the account lists the bucket: the 403 is said as a denial, not as someone else's bucket
    assert "is this account's, but access to it is denied" in str(refused.value)
    with pytest.raises(S3Error):
        wrong.put(path, "small.img", sha, lambda _l: None, lambda _n: None)
    assert "Contents" not in aws.client("s3").list_objects_v2(Bucket=bucket)
    right.ensure(create=False, say=lambda _l: None)
    right.put(path, "small.img", sha, lambda _l: None, lambda _n: None)
    assert right.get_bytes("small.img") == b"x" * 1024
