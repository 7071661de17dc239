"""Shared by the endpoint tests: a clean AWS environment and a guarantee nothing is left running."""

from __future__ import annotations

import base64
import functools
import hashlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from suitcase.aws.ebs import until_visible
from suitcase.aws.endpoint import EmbeddedEndpoint
from suitcase.aws.endpoint_server import MODULE

#: Variables that would point boto3 at an account or another endpoint.
AWS_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_STS",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "SUITCASE_AWS",
    "SUITCASE_REGION",
    "INITIAL_NO_AUTH_ACTION_COUNT",
)


def clean_aws_env(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """No account configured: no AWS_* credentials, an empty HOME, no metadata service."""
    for name in AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    home.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    # never reach for 169.254.169.254 from a test, whatever the code under test decides
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def endpoint_pids(under: Path) -> list[int]:
    """Every live endpoint process whose folder is below `under`."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        text = [a.decode(errors="replace") for a in args]
        if (
            MODULE in text
            and any(a.startswith(str(under)) for a in text)
            and _alive(int(proc.name))
        ):
            found.append(int(proc.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def kill_leftovers(under: Path) -> list[int]:
    """SIGKILL endpoints a test left below `under` (only those: never by name); their pids."""
    pids = endpoint_pids(under)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
    return pids


def stop_all(ws: Path) -> None:
    EmbeddedEndpoint(ws).stop(timeout=60)


def put_snapshot(ebs: Any, blocks: dict[int, bytes]) -> str:
    """A snapshot written through the EBS direct APIs (as `register` does: a new snapshot may
    be unknown to them for a while, as on AWS, so each call waits for it)."""
    snap = ebs.start_snapshot(VolumeSize=1, Tags=[{"Key": "suitcase:test", "Value": "1"}])
    for index, data in blocks.items():
        put = functools.partial(
            ebs.put_snapshot_block,
            SnapshotId=snap["SnapshotId"],
            BlockIndex=index,
            BlockData=data,
            DataLength=len(data),
            Checksum=base64.b64encode(hashlib.sha256(data).digest()).decode(),
            ChecksumAlgorithm="SHA256",
        )
        until_visible(put, "test")
    until_visible(
        lambda: ebs.complete_snapshot(
            SnapshotId=snap["SnapshotId"], ChangedBlocksCount=len(blocks)
        ),
        "test",
    )
    return str(snap["SnapshotId"])


def read_block(ebs: Any, snapshot_id: str, index: int) -> bytes:
    blocks = until_visible(lambda: ebs.list_snapshot_blocks(SnapshotId=snapshot_id), "test")[
        "Blocks"
    ]
    token = next(b["BlockToken"] for b in blocks if b["BlockIndex"] == index)
    got = ebs.get_snapshot_block(SnapshotId=snapshot_id, BlockIndex=index, BlockToken=token)
    data: bytes = got["BlockData"].read()
    return data


@pytest.fixture(name="ws")
def embedded_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A workspace with no AWS account configured; fails if an endpoint is left running."""
    clean_aws_env(monkeypatch, tmp_path / "home")
    for name in ("SUITCASE_WORKSPACE", "SUITCASE_SITE"):
        monkeypatch.delenv(name, raising=False)
    root = tmp_path / "ws"
    root.mkdir()
    monkeypatch.chdir(root)
    yield root
    EmbeddedEndpoint(root).stop(timeout=60)
    left = kill_leftovers(tmp_path)
    assert not left, f"endpoints left running: {left}"
