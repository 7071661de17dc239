"""Shared by the endpoint tests: one launcher for every AWS endpoint a test talks to (`launch`), a
clean AWS environment and a guarantee nothing is left running."""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest

from suitcase.aws.clients import AwsTarget
from suitcase.aws.ebs import until_visible
from suitcase.aws.endpoint import Credentials, EmbeddedEndpoint
from suitcase.aws.endpoint_server import KEY_HEADER, MODULE
from suitcase.machine import free_port

REGION = "us-east-1"
VENV_BIN = Path(__file__).resolve().parent.parent / ".venv" / "bin"
#: what `launch` starts: `twin` = the endpoint Suitcase ships (`suitcase.aws.endpoint_server`:
#: moto with Suitcase's fixes and strict rules, its store, its key), as `suitcase endpoint start`
#: starts it; `fixes` = `python -m suitcase.aws.moto_fixes` (the fixes alone, any key, moto-api
#: reset); `stock` = plain `moto_server` (to show what the twin adds)
Kind = Literal["twin", "fixes", "stock"]

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
    """Every live endpoint process whose folder is below `under` (a twin, or a moto server
    `launch` started there)."""
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


@dataclass
class Launched:
    """A running endpoint `launch` started."""

    kind: Kind
    url: str
    pid: int
    root: Path
    #: the key it takes: the twin's own, `testing` for moto (which takes any)
    access_key_id: str = "testing"
    secret_access_key: str = "testing"

    @property
    def credentials(self) -> Credentials:
        return Credentials(self.access_key_id, self.secret_access_key)

    def target(self, region: str = REGION) -> AwsTarget:
        """An AwsTarget for it: the embedded kind with its key (none of the host's AWS set-up)."""
        key = self.credentials if self.kind == "twin" else None
        return AwsTarget(kind="embedded", region=region, endpoint_url=self.url, credentials=key)

    def env(self, region: str = REGION) -> dict[str, str]:
        """AWS_* variables that point boto3 and the AWS CLI at it."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_DEFAULT_REGION": region,
        }

    def client(self, service: str, region: str = REGION) -> Any:
        """A plain boto3 client with its key (no retries added: what the endpoint holds)."""
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
        )

    def account(self) -> str:
        """The account id it answers for (STS GetCallerIdentity)."""
        return str(self.client("sts").get_caller_identity()["Account"])

    def reset(self) -> None:
        """moto's reset (`fixes` and `stock` only: the twin has no moto-api)."""
        assert self.kind != "twin", "the twin keeps its state: start another one"
        urllib.request.urlopen(
            urllib.request.Request(f"{self.url}/moto-api/reset", method="POST"), timeout=30
        ).read()

    def twin(self, **settings: Any) -> dict[str, Any]:
        """Set the twin's switches (POST /_suitcase/twin, suitcase/aws/twin.py)."""
        assert self.kind == "twin", "only the twin has switches"
        request = urllib.request.Request(
            f"{self.url}/_suitcase/twin",
            data=json.dumps(settings).encode(),
            method="POST",
            headers={KEY_HEADER[5:].replace("_", "-"): self.access_key_id},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            data: dict[str, Any] = json.loads(answer.read())
        return data


def _moto(kind: Kind, root: Path, log: Path) -> tuple[int, str]:
    """moto's server (stock, or with Suitcase's fixes) on a free loopback port, answering."""
    port = free_port()
    program = {
        "fixes": [sys.executable, "-m", "suitcase.aws.moto_fixes"],
        "stock": [str(VENV_BIN / "moto_server")],
    }[kind]
    env = {**os.environ, "MOTO_EC2_LOAD_DEFAULT_AMIS": "false"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*program, "-H", "127.0.0.1", "-p", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=root,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=2).close()
            return proc.pid, url
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                _killpg(proc.pid)
                raise RuntimeError(
                    f"{kind} moto server did not start on {url}: {log.read_text()[-2000:]}"
                ) from None
            time.sleep(0.2)


def _killpg(pid: int) -> None:
    """SIGKILL the process group a launch started (it leads its own session), then reap."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


@contextlib.contextmanager
def launch(kind: Kind, root: Path, log: Path | None = None) -> Iterator[Launched]:
    """Start an endpoint of `kind` whose files (the twin's store and key, moto's log) live in
    `root`, wait until it answers, yield it; on exit stop it, kill its process group and any
    endpoint left below `root`."""
    root.mkdir(parents=True, exist_ok=True)
    if kind == "twin":
        endpoint = EmbeddedEndpoint(root)
        running, _ = endpoint.ensure(lambda _line: None, idle=0)
        key = endpoint.credentials()
        assert key is not None
        launched = Launched(
            kind, running.url, running.pid, root, key.access_key_id, key.secret_access_key
        )
    else:
        pid, url = _moto(kind, root, log or root / f"{kind}.log")
        launched = Launched(kind, url, pid, root)
    try:
        yield launched
    finally:
        try:
            if kind == "twin":
                EmbeddedEndpoint(root).stop(timeout=60)
        finally:
            left = kill_leftovers(root)  # a twin `stop` did not stop
            _killpg(launched.pid)
        assert not left, f"the {kind} endpoint was left running: {left}"


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
