"""suitcase.aws.moto_fixes for S3: each fixed behaviour of the embedded endpoint, with the AWS rule
it follows, checked over HTTP against `python -m suitcase.aws.moto_fixes`."""

from __future__ import annotations

import datetime
import re
import time
import uuid
from pathlib import Path

import pytest

from suitcase.aws import moto_fixes
from suitcase.aws.s3 import Bucket, TransferSettings
from tests import aws_endpoint
from tests.aws_endpoint import target_for
from tests.endpoint_support import Launched, launch
from tests.fakes import fake_build_set
from tests.s3_support import OS, TS, point_at, site_workspace
from tests.test_s3 import suitcase

endpoint = aws_endpoint.endpoint  # fixtures: the fixed moto server, reset per test
aws_env = aws_endpoint.aws_env

#: what moto 5.2.6 answers as every unfinished upload's Initiated
MOTO_INITIATED = datetime.datetime(2010, 11, 10, 20, 48, 33, tzinfo=datetime.UTC)


def _bucket(url: str) -> Bucket:
    bucket = Bucket(target_for(url), f"fixes-{uuid.uuid4().hex[:12]}", TransferSettings())
    bucket.ensure(create=True, say=lambda line: None)
    return bucket


def _near_now(when: datetime.datetime, seconds: float = 5) -> bool:
    now = datetime.datetime.now(datetime.UTC)
    return abs((when - now).total_seconds()) <= seconds


def test_list_multipart_uploads_reports_when_each_upload_began(aws_env: Launched) -> None:
    """AWS: an upload's `Initiated` is the "Date and time at which the multipart upload was
    initiated" (S3 API reference, MultipartUpload, as ListMultipartUploads returns it)."""
    bucket = _bucket(aws_env.url)
    first = bucket.client.create_multipart_upload(Bucket=bucket.name, Key="a/disk.raw")
    time.sleep(1.1)  # S3 reports whole seconds
    second = bucket.client.create_multipart_upload(Bucket=bucket.name, Key="a/disk.raw")
    initiated = {u["UploadId"]: u["Initiated"] for u in bucket.unfinished("a/")}
    began, then = initiated[first["UploadId"]], initiated[second["UploadId"]]
    assert _near_now(began) and _near_now(then), initiated
    assert began < then  # what resuming relies on to keep the newest upload


def test_upload_names_when_an_unfinished_upload_began(
    aws_env: Launched, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`suitcase upload` finding an unfinished upload says when it was begun: now, not 2010."""
    name = f"fixes-{uuid.uuid4().hex[:12]}"
    point_at(monkeypatch, aws_env, name, tmp_path)
    ws = site_workspace(tmp_path, monkeypatch)
    fake_build_set(ws, "master")
    client = target_for(aws_env.url).client("s3")
    client.create_bucket(Bucket=name)
    key = f"suitcase/master/{OS}-{TS}/disk-master.img"
    client.create_multipart_upload(Bucket=name, Key=key)
    result = suitcase(ws, "upload", "master", "--os", OS, "--timestamp", TS)
    assert result.exit_code == 0, result.output
    found = re.search(
        r"unfinished multipart upload of \S+ \(begun ([\d-]+ [\d:]+)\)", result.output
    )
    assert found is not None, result.output
    begun = datetime.datetime.strptime(found[1], "%Y-%m-%d %H:%M:%S")
    assert _near_now(begun.replace(tzinfo=datetime.UTC), 30), found[0]


def test_apply_is_idempotent() -> None:
    from moto.s3.models import FakeMultipart
    from moto.s3.responses import S3Response

    moto_fixes.apply()
    patched = S3Response.list_multipart_uploads, FakeMultipart.__init__
    moto_fixes.apply()
    moto_fixes._fix_multipart_initiated()  # even called on its own again, it patches once
    assert (S3Response.list_multipart_uploads, FakeMultipart.__init__) == patched
    assert all(f.__module__ == "suitcase.aws.moto_fixes" for f in patched)


def test_plain_moto_differs_so_these_tests_can_fail(tmp_path: Path) -> None:
    """The same calls against moto without the fixes show each gap the fixes close."""
    with launch("stock", tmp_path / "stock") as server, pytest.MonkeyPatch.context() as env:
        url = server.url
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        bucket = _bucket(url)
        bucket.client.create_multipart_upload(Bucket=bucket.name, Key="a/disk.raw")
        (upload,) = bucket.unfinished("a/")
        assert upload["Initiated"] == MOTO_INITIATED
