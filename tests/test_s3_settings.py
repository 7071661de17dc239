"""The S3 layer's pure parts: site `s3:` settings, bucket names, checksums, cookies."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from awscrt.checksums import crc64nvme

from suitcase.aws.s3 import TransferSettings, check_bucket_name, file_crc64nvme, file_digests
from suitcase.aws.ship import real_upload
from suitcase.config import Site
from suitcase.errors import ConfigError
from suitcase.manifest import UPLOAD_COOKIE


def test_site_s3_settings_are_read_and_checked(tmp_path: Path) -> None:
    site_file = tmp_path / "site.yaml"
    site_file.write_text("s3:\n  part_size_mb: 16\n  concurrency: 3\n")
    settings = TransferSettings.from_site(Site.load(site_file).s3)
    assert (settings.part_size, settings.concurrency, settings.transfer_client) == (
        16 * 1024 * 1024,
        3,
        "classic",
    )
    config = settings.transfer_config(upload=True)
    assert config.multipart_chunksize == 16 * 1024 * 1024 and config.multipart_threshold == 1
    assert config.preferred_transfer_client == "classic"


@pytest.mark.parametrize(
    ("values", "text"),
    [
        ({"part_size_mb": 4}, "5 to 5120"),
        ({"part_size_mb": "big"}, "5 to 5120"),
        ({"concurrency": 0}, "1 to 64"),
        ({"transfer_client": "auto"}, "classic or crt"),
        ({"colour": 1}, "unknown"),
    ],
)
def test_bad_s3_settings_are_one_line(values: dict[str, object], text: str) -> None:
    with pytest.raises(ConfigError, match=text):
        TransferSettings.from_site(values)


@pytest.mark.parametrize(
    "name",
    ["ab", "a" * 64, "bad..name", "bad.-name", "Bad", "-bad", "10.0.0.1", "xn--x", "x-s3alias"],
)
def test_bucket_names_s3_rejects(name: str) -> None:
    with pytest.raises(ConfigError, match="not a valid S3 bucket name"):
        check_bucket_name(name)


@pytest.mark.parametrize("name", ["abc", "suitcase-images", "my.bucket.name", "a" * 63])
def test_bucket_names_s3_accepts(name: str) -> None:
    assert check_bucket_name(name) == name


def test_file_checksums_match_awscrt_and_hashlib(tmp_path: Path) -> None:
    data = bytes(range(256)) * 40000  # spans several read chunks
    path = tmp_path / "f"
    path.write_bytes(data)
    expected = base64.b64encode(crc64nvme(data).to_bytes(8, "big")).decode()
    crc, sha = file_digests(path)
    assert crc == expected == file_crc64nvme(path)
    assert sha == __import__("hashlib").sha256(data).hexdigest()
    part = base64.b64encode(crc64nvme(data[1000:6000]).to_bytes(8, "big")).decode()
    assert file_crc64nvme(path, 1000, 5000) == part


def test_only_a_real_cookie_counts(tmp_path: Path) -> None:
    cookie = tmp_path / UPLOAD_COOKIE
    for text in ('{"fake": true, "key": "k", "objects": []}', "{", '{"key": "k"}', "[]"):
        cookie.write_text(text)
        assert real_upload(tmp_path) is None
    cookie.write_text(json.dumps({"fake": False, "key": "k", "objects": [{"key": "x"}]}))
    assert real_upload(tmp_path) is not None
