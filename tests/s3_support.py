"""The environment that points Suitcase (and the AWS CLI) at an endpoint over HTTP, for the S3
tests: the endpoint Suitcase ships, started by tests.endpoint_support.launch, with its key. Fake
build sets are tests/fakes.py's."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.endpoint_support import Launched
from tests.fakes import MIB as MiB
from tests.fakes import OS, TS

__all__ = ["OS", "SITE", "TS", "MiB", "env_for", "point_at", "site_workspace"]


def point_at(
    monkeypatch: pytest.MonkeyPatch,
    server: Launched,
    bucket: str,
    tmp: Path,
    url: str | None = None,
) -> None:
    """Suitcase (and the AWS CLI) talk to `server` (or `url`: a proxy in front of it, or nothing)
    with its key, using `bucket`."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", url or server.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", server.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", server.secret_access_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp / "no-aws-credentials"))
    monkeypatch.setenv("SUITCASE_BUCKET", bucket)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("SUITCASE_AWS", raising=False)
    for name in ("SUITCASE_OS", "SUITCASE_TIMESTAMP", "SUITCASE_WORKSPACE", "SUITCASE_SITE"):
        monkeypatch.delenv(name, raising=False)


def env_for(server: Launched, bucket: str, tmp: Path, url: str | None = None) -> dict[str, str]:
    """The same, for a subprocess."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SUITCASE_", "AWS_"))}
    env.update(
        AWS_ENDPOINT_URL=url or server.url,
        AWS_ACCESS_KEY_ID=server.access_key_id,
        AWS_SECRET_ACCESS_KEY=server.secret_access_key,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=str(tmp / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp / "no-aws-credentials"),
        SUITCASE_BUCKET=bucket,
    )
    return env


SITE = "s3:\n  part_size_mb: 5\n  concurrency: 4\n"


def site_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, site: str = SITE) -> Path:
    """A workspace under `tmp_path` with `site` as its site.yaml, made the current folder."""
    root = tmp_path / "ws"
    root.mkdir()
    (root / "site.yaml").write_text(site)
    monkeypatch.chdir(root)
    return root
