"""The fan-out of .github/workflows/images.yml in seconds: two workspaces, one S3.

The fake project (Packer's null builder) builds a master in the first workspace and uploads it to
that workspace's embedded endpoint (moto's server, over HTTP). The second workspace is another
machine: it reaches the same endpoint as an AWS account (`AWS_ENDPOINT_URL`, credentials,
`aws: account`), fetches the master and builds a derived image on it — Packer runs for the
derived stage only. tests/slow/test_fanout.py does the same with the real Debian images.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from suitcase.aws.endpoint import EmbeddedEndpoint
from suitcase.config import PROJECT_ROOT

TS = "20260101000000"
SET = f"Fake-12-x86_64-{TS}"


def _suitcase(ws: Path, *args: str, env: dict[str, str] | None = None) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    result = subprocess.run(
        [sys.executable, "-m", "suitcase", "--workspace", str(ws), *args],
        capture_output=True,
        text=True,
        env={**clean, **(env or {})},
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stderr


@pytest.fixture
def two_machines(fake_home: Path, tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    shutil.copytree(PROJECT_ROOT / "os" / "data", fake_home / "os" / "data")  # PV-GRUB table
    first, second = tmp_path / "first", tmp_path / "second"
    for ws in (first, second):
        ws.mkdir()
        (ws / "site.yaml").write_text("mirrors: {debian: 'http://mirror.invalid/debian'}\n")
    yield first, second
    _suitcase(first, "endpoint", "stop")


def first_machine_as_account(first: Path) -> tuple[dict[str, str], str]:
    """The first machine's endpoint (kept running), reached as an AWS account with its key:
    the environment another machine would be given, and the port."""
    _suitcase(first, "endpoint", "start")
    port = (first / "endpoint" / "port").read_text().strip()
    key = EmbeddedEndpoint(first).credentials()
    assert key is not None
    account = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": key.access_key_id,
        "AWS_SECRET_ACCESS_KEY": key.secret_access_key,
        "SUITCASE_AWS": "account",
    }
    return account, port


def test_second_workspace_fetches_the_master_and_builds_only_its_own_stage(
    two_machines: tuple[Path, Path],
    fake_home: Path,
) -> None:
    first, second = two_machines
    ts = ["--os", "Fake-12-x86_64", "--timestamp", TS]
    _suitcase(first, "build", "master", *ts)
    _suitcase(first, "upload", "master", *ts)
    account, port = first_machine_as_account(first)
    key = (first / "keys" / SET / "id_ed25519").read_text()
    subprocess.run(
        [str(PROJECT_ROOT / "bin" / "ci-build-key"), SET],
        env={**os.environ, "BUILD_KEY": key, "SUITCASE_WORKSPACE": str(second)},
        check=True,
        capture_output=True,
    )
    runs = fake_home / "packer-runs.txt"
    assert runs.read_text().split() == ["master"]

    said = _suitcase(second, "fetch", "master", *ts, env=account)
    assert f"using the configured AWS account (http://127.0.0.1:{port}" in said
    master1 = first / "images" / "master" / SET
    master2 = second / "images" / "master" / SET
    assert (master2 / "manifest.json").read_bytes() == (master1 / "manifest.json").read_bytes()
    assert (master2 / "disk.qcow2").read_bytes() == (master1 / "disk.qcow2").read_bytes()

    said = _suitcase(second, "build", "aws-hvm", *ts)
    assert "[master] up to date" in said
    assert runs.read_text().split() == ["master", "aws-hvm"]  # never the master again
    assert (second / "images" / "aws-hvm" / SET / "manifest.json").is_file()
    assert not (second / "endpoint").exists()  # the second machine ran no endpoint


def test_without_the_master_in_s3_fetch_says_so(
    two_machines: tuple[Path, Path],
    fake_home: Path,
) -> None:
    first, second = two_machines
    ts = ["--os", "Fake-12-x86_64", "--timestamp", TS]
    account, _ = first_machine_as_account(first)
    s3 = subprocess.run(
        [sys.executable, "-m", "suitcase", "--workspace", str(second), "fetch", "master", *ts],
        capture_output=True,
        text=True,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
            **account,
        },
        check=False,
    )
    lines = s3.stderr.strip().splitlines()
    assert s3.returncode != 0
    assert lines[-1].startswith("suitcase: error: "), lines
    assert "Traceback" not in s3.stderr
    assert not (second / "images" / "master" / SET / "manifest.json").exists()
