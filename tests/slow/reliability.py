"""Helpers of the reliability suite (issue 12 item 3) and the fan-out test: a `suitcase` run in
the background to kill on an observable event, and what a killed run may never leave behind.

A copy of the shared built set is made of hard links (Suitcase replaces files, never rewrites
them in place), so each test resumes that set instead of building one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from suitcase.aws.clients import AwsTarget
from suitcase.aws.endpoint import EmbeddedEndpoint
from suitcase.manifest import inspect_manifest, outputs_intact
from suitcase.safety import mount_points, mounts_under, remove_tree
from suitcase.sweep import loops_under
from tests.slow.conftest import OS_NAME, SUITCASE


@dataclass
class Run:
    """One `suitcase` process in the background, its stderr in a file."""

    proc: subprocess.Popen[bytes]
    err: Path
    out: Path

    @classmethod
    def start(cls, workspace: Path, *args: str, env: dict[str, str] | None = None) -> Run:
        name = workspace.parent / f"run-{time.monotonic_ns()}"
        err, out = name.with_suffix(".err"), name.with_suffix(".out")
        with err.open("wb") as errors, out.open("wb") as output:
            proc = subprocess.Popen(
                [*SUITCASE, "--workspace", str(workspace), *args],
                stdout=output,
                stderr=errors,
                env={**os.environ, **(env or {})},
            )
        return cls(proc, err, out)

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    def wait_for(self, what: str, event: Callable[[], bool], timeout: float = 900) -> None:
        """Poll for an observable event (a file, a process, a log line) while the run lives."""
        deadline = time.monotonic() + timeout
        while not event():
            if self.proc.poll() is not None:
                code, tail = self.proc.returncode, self.stderr()[-3000:]
                raise AssertionError(f"the run ended ({code}) before {what}:\n{tail}")
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"timed out waiting for {what}:\n{self.stderr()[-3000:]}")
            time.sleep(0.05)

    def kill(self) -> None:
        """kill -9 of Suitcase alone (not its process group): what it started must go by itself."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def finish(self, timeout: float = 1800) -> str:
        code = self.proc.wait(timeout=timeout)
        assert code == 0, f"suitcase exited {code}:\n{self.stderr()[-4000:]}"
        return self.stderr()


def text_of(path: Path) -> str:
    """A file's text, or "" while it does not exist yet (an event to poll for)."""
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def children(pid: int) -> list[int]:
    """Every descendant of `pid` (from /proc), to know what a run started."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        try:
            kids = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            continue
        for kid in map(int, kids):
            found.append(kid)
            todo.append(kid)
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def processes_mentioning(text: str) -> list[str]:
    """Live processes whose command line names `text` (a workspace path): what was left running."""
    mine = os.getpid()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == mine:
            continue
        line = cmdline(int(entry.name))
        if text in line and "suitcase.aws.endpoint_server" not in line:
            found.append(f"{entry.name}: {line[:200]}")
    return found


def wait_until_gone(workspace: Path, timeout: float = 60) -> list[str]:
    """Processes of a killed run die by themselves (parent-death signals): give them a moment."""
    deadline = time.monotonic() + timeout
    while (left := processes_mentioning(str(workspace))) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


def own_scratch_mount(point: Path) -> bool:
    """A mount in a scratch folder of this test's runs: below this process's TMPDIR (each xdist
    worker has its own, tests/testrun.py), never another worker's (defects planted there)."""
    return str(point).startswith(tempfile.gettempdir() + "/") and "suitcase-mnt-" in str(point)


def scratch_mounts() -> set[Path]:
    """Mounts of the scratch folders of this test's runs seen now: taken before a test, so
    that only the ones its runs left count."""
    return {m for m in mount_points() if own_scratch_mount(m)}


def leftovers(workspace: Path, before: set[Path] | None = None, timeout: float = 30) -> list[str]:
    """What a killed run may never leave: a process (QEMU above all), a mount (below the
    workspace, or a scratch mount not in `before`), a loop device on a file of the workspace.

    The kernel takes a moment to drop a dead mount namespace and auto-clear its loop device, so
    this waits up to `timeout` seconds for everything to go before saying what stayed."""
    wait_until_gone(workspace)
    deadline = time.monotonic() + timeout
    while True:
        found = [f"process {p}" for p in processes_mentioning(str(workspace))]
        found += [f"mount {m}" for m in mounts_under(workspace)]
        if before is not None:
            found += [f"mount {m}" for m in scratch_mounts() - before]
        found += [f"loop {dev} ({path})" for dev, path in loops_under(workspace)]
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def stage_dir(workspace: Path, image: str, timestamp: str) -> Path:
    return workspace / "images" / image / f"{OS_NAME}-{timestamp}"


def done_honestly(stage: Path, deep: bool = False) -> bool | None:
    """True: done and every output intact (`deep`: sha256 too); None: not done; False: a
    manifest that cannot be trusted, or outputs that do not match it (wrongly marked done)."""
    manifest, problem = inspect_manifest(stage)
    if manifest is None:
        return None if problem is None else False
    return outputs_intact(stage, manifest, deep=deep) is None


def endpoint_url(workspace: Path, start: bool = True) -> str:
    """The workspace's endpoint, started (until stop_endpoint) if the verb that started it has
    stopped it at its end (never with `start` False: then a missing port file raises)."""
    port = workspace / "endpoint" / "port"
    if start and not port.exists():
        subprocess.run(
            [*SUITCASE, "--workspace", str(workspace), "endpoint", "start"],
            capture_output=True,
            check=True,
        )
    return f"http://127.0.0.1:{port.read_text().strip()}"


def clients(workspace: Path, region: str = "us-east-1", start: bool = True) -> tuple[Any, Any]:
    """S3 and EC2 clients of the workspace's endpoint, with its key."""
    target = AwsTarget(
        kind="embedded",
        region=region,
        endpoint_url=endpoint_url(workspace, start),
        credentials=EmbeddedEndpoint(workspace).credentials(),
    )
    return target.client("s3"), target.client("ec2")


def aws_holdings(workspace: Path, stage_key: str) -> dict[str, Any]:
    """Objects per key, unfinished uploads, AMIs of a stage key and snapshots no AMI uses."""
    s3, ec2 = clients(workspace)
    keys: list[str] = []
    uploads = 0
    for bucket in s3.list_buckets().get("Buckets", []):
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket["Name"]):
            keys += [v["Key"] for v in page.get("Versions", [])]
        uploads += len(s3.list_multipart_uploads(Bucket=bucket["Name"]).get("Uploads", []))
    tag = [{"Name": "tag:suitcase:stage-key", "Values": [stage_key]}]
    amis = ec2.describe_images(Owners=["self"], Filters=tag)["Images"]
    used = {
        m["Ebs"]["SnapshotId"]
        for image in ec2.describe_images(Owners=["self"])["Images"]
        for m in image.get("BlockDeviceMappings", [])
        if "Ebs" in m and "SnapshotId" in m["Ebs"]
    }
    snapshots = ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]
    return {
        "duplicate keys": sorted({k for k in keys if keys.count(k) > 1}),
        "keys": sorted(keys),
        "unfinished uploads": uploads,
        "amis": [i["ImageId"] for i in amis],
        "orphan snapshots": [s["SnapshotId"] for s in snapshots if s["SnapshotId"] not in used],
    }


def stop_endpoint(workspace: Path) -> None:
    """Stop the workspace's endpoint and drop what it kept: a 4 GiB disk uploaded
    is 4 GiB there (holes included), too much to keep for every test until the session ends."""
    if (workspace / "endpoint" / "pid").exists():
        subprocess.run(
            [*SUITCASE, "--workspace", str(workspace), "endpoint", "stop"],
            capture_output=True,
            check=False,
        )
    if (workspace / "endpoint" / "data").is_dir():  # the bodies; its state and log stay, for
        remove_tree(workspace / "endpoint" / "data")  # the secret scan (never started again)
