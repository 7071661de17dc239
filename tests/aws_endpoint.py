"""Test support for AMI registration: the fixed moto server over HTTP, request recording, and
small fake stage folders (a manifest and a sparse raw disk; no real image build)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from suitcase.aws.clients import AwsTarget
from suitcase.aws.ebs import BLOCK_SIZE
from suitcase.manifest import Manifest, describe_output, write_manifest

MIB = 2**20
REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Endpoint:
    url: str
    process: subprocess.Popen[bytes]

    def reset(self) -> None:
        urllib.request.urlopen(
            urllib.request.Request(f"{self.url}/moto-api/reset", method="POST"), timeout=30
        ).read()


def start_endpoint(log: Path) -> Endpoint:
    """`python -m suitcase.aws.moto_fixes` on a free loopback port, waited for."""
    port = free_port()
    env = {**os.environ, "MOTO_EC2_LOAD_DEFAULT_AMIS": "false"}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "suitcase.aws.moto_fixes", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto server exited: {log.read_text()}")
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=2).read()
            return Endpoint(url, process)
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("moto server did not answer in 60 s")


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    server = start_endpoint(tmp_path_factory.mktemp("moto") / "moto.log")
    try:
        yield server
    finally:
        server.process.terminate()
        try:
            server.process.wait(10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


@pytest.fixture
def aws_env(endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch) -> Endpoint:
    """A reset endpoint, named by AWS_ENDPOINT_URL, with dummy credentials."""
    endpoint.reset()
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return endpoint


@dataclass(frozen=True)
class RecordingTarget(AwsTarget):
    """An AwsTarget whose clients record every API call (operation, parameters) they make."""

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list, compare=False)

    def client(self, service: str, **config: Any) -> Any:
        made = super().client(service, **config)

        def record(params: dict[str, Any], model: Any, **kwargs: Any) -> None:
            kept = {k: v for k, v in params.items() if k != "BlockData"}
            self.calls.append((model.name, kept))

        made.meta.events.register("provide-client-params", record)
        return made

    def named(self, operation: str) -> list[dict[str, Any]]:
        return [params for name, params in self.calls if name == operation]


def target_for(url: str, region: str = REGION) -> RecordingTarget:
    return RecordingTarget(kind="account", region=region, endpoint_url=url)


def sparse_disk(path: Path, size: int = 6 * MIB + 4096, extra: int = 0) -> Path:
    """A sparse raw disk: data at the start, in the middle (crossing a block edge), an
    explicitly written all-zero block (allocated, not a hole), `extra` random blocks from block
    7 on, and a data tail."""
    with path.open("wb") as handle:
        handle.truncate(size)
        handle.seek(0)
        handle.write(os.urandom(70_000))
        handle.seek(3 * BLOCK_SIZE - 1000)
        handle.write(os.urandom(5000))
        handle.seek(6 * BLOCK_SIZE)
        handle.write(bytes(BLOCK_SIZE))  # allocated zeros
        if extra:
            handle.write(os.urandom(extra * BLOCK_SIZE))
        handle.seek(size - 3000)
        handle.write(os.urandom(3000))
    return path


def fake_stage(
    directory: Path,
    stage: str = "aws-hvm",
    key: str = "k" * 64,
    timestamp: str = "20260101000000",
    disk_size: int = 6 * MIB + 4096,
    inputs: dict[str, str] | None = None,
    extra: int = 0,
) -> Manifest:
    """A built-looking stage folder: its disk and a manifest (no Packer, no QEMU)."""
    directory.mkdir(parents=True, exist_ok=True)
    name, kind = {
        "aws-hvm": ("disk.raw", "raw"),
        "aws-paravirt": ("root.raw", "raw-partition"),
        "master": ("disk.qcow2", "disk"),
        "vagrant": ("disk.qcow2", "disk"),
    }[stage]
    sparse_disk(directory / name, disk_size, extra)
    manifest = Manifest(
        stage=stage,
        os="Debian-12-x86_64",
        timestamp=timestamp,
        key=key,
        inputs=inputs or {"test": "fake"},
        parent=None if stage == "master" else {"stage": "master", "key": "p" * 64},
        outputs=[describe_output(directory, directory / name, kind)],
        tool_versions={"suitcase": "0.1.0"},
        git_revision="test",
        started="2026-01-01T00:00:00+00:00",
        finished="2026-01-01T00:00:00+00:00",
        suitcase_version="0.1.0",
    )
    write_manifest(directory, manifest)
    return manifest
