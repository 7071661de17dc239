"""The embedded AWS endpoint over HTTP, as real processes: lifecycle, kept state, lost state.

No in-process mocks: every test talks to `python -m suitcase.aws.endpoint_server` through
boto3, the AWS CLI or the `suitcase endpoint` commands.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig
from click.testing import CliRunner

from suitcase.aws.clients import AwsTarget, aws_target
from suitcase.aws.ebs import wait_completed
from suitcase.aws.endpoint import EmbeddedEndpoint
from suitcase.aws.errors import LostState
from suitcase.aws.images import wait_available
from suitcase.aws.presence import check_image, check_object, check_snapshot
from suitcase.cli import cli
from suitcase.context import Context
from tests.endpoint_support import (
    embedded_workspace,  # noqa: F401  (the `ws` fixture)
    endpoint_pids,
    put_snapshot,
    read_block,
)

BIN = Path(sys.executable).parent
MiB = 1024 * 1024


def target_for(ws: Path) -> tuple[AwsTarget, list[str]]:
    said: list[str] = []
    return aws_target(Context.create(ws), said.append), said


def suitcase(ws: Path, *args: str) -> Any:
    return CliRunner().invoke(cli, ["--workspace", str(ws), *args])


def test_first_verb_starts_it_later_verbs_reuse_it(ws: Path) -> None:
    target, said = target_for(ws)
    assert target.kind == "embedded"
    url = target.endpoint_url or ""
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
    assert any(line.startswith("started the embedded AWS endpoint") for line in said)
    assert (
        f"using the embedded AWS endpoint at {url} (aws: auto, no AWS account configured)" in said
    )
    endpoint = EmbeddedEndpoint(ws)
    pid = int(endpoint.pid_file.read_text())
    again, said_again = target_for(ws)
    assert again.endpoint_url == url and int(endpoint.pid_file.read_text()) == pid
    assert not any("started" in line for line in said_again), said_again
    # its files: the log is 0600, the process owned by this workspace
    assert stat.S_IMODE(endpoint.log_file.stat().st_mode) == 0o600
    assert endpoint_pids(ws) == [pid]


def test_listens_on_loopback_only(ws: Path) -> None:
    target, _ = target_for(ws)
    pid = EmbeddedEndpoint(ws).pid_file.read_text().strip()
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    mine = [line for line in out.splitlines() if f"pid={pid}," in line]
    assert mine, f"pid {pid} listens nowhere:\n{out}"
    for line in mine:
        local = line.split()[3]
        assert local.startswith("127.0.0.1:"), line
    assert any(
        line.split()[3] == f"127.0.0.1:{target.endpoint_url.rsplit(':', 1)[1]}" for line in mine
    )  # type: ignore[union-attr]


@pytest.mark.slow  # real endpoint processes: seconds each; CI runs it
def test_state_survives_stop_and_start(ws: Path, tmp_path: Path) -> None:
    """Objects (one by multipart), an unfinished multipart upload, EBS blocks and an AMI."""
    target, _ = target_for(ws)
    s3, ec2, ebs = target.client("s3"), target.client("ec2"), target.client("ebs")
    s3.create_bucket(Bucket="suitcase-images")
    s3.put_object(Bucket="suitcase-images", Key="small", Body=b"small body")
    big = tmp_path / "big.raw"
    big.write_bytes(os.urandom(12 * MiB))
    config = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    s3.upload_file(str(big), "suitcase-images", "big.raw", Config=config)
    assert s3.head_object(Bucket="suitcase-images", Key="big.raw")["ETag"].endswith('-3"')
    upload = s3.create_multipart_upload(Bucket="suitcase-images", Key="resumed")
    part1 = os.urandom(5 * MiB)
    etag1 = s3.upload_part(
        Bucket="suitcase-images",
        Key="resumed",
        UploadId=upload["UploadId"],
        PartNumber=1,
        Body=part1,
    )["ETag"]
    blocks = {0: os.urandom(524288), 7: b"\x01" * 524288}
    snapshot_id = put_snapshot(ebs, blocks)
    wait_completed(ec2, snapshot_id, interval=0.5)  # the twin, as AWS, shows `pending` first
    image_id = ec2.register_image(
        Name="suitcase-test",
        RootDeviceName="/dev/xvda",
        BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": snapshot_id}}],
    )["ImageId"]
    wait_available(ec2, image_id, interval=0.5)  # a new AMI is found only after a moment
    snapshots = len(ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"])
    status = suitcase(ws, "endpoint", "status")
    assert status.exit_code == 0, status.output
    held = f"1 buckets, 2 objects, 1 unfinished uploads, {snapshots} snapshots, 1 AMIs"
    assert held in status.output

    stopped = suitcase(ws, "endpoint", "stop")
    assert stopped.exit_code == 0 and "stopped the embedded AWS endpoint" in stopped.output
    assert not endpoint_pids(ws)
    assert "not running" in suitcase(ws, "endpoint", "status").output
    assert stat.S_IMODE((ws / "endpoint" / "state.sqlite").stat().st_mode) == 0o600
    started = suitcase(ws, "endpoint", "start")
    assert started.exit_code == 0 and "state restored" in started.output, started.output

    target, _ = target_for(ws)
    s3, ec2, ebs = target.client("s3"), target.client("ec2"), target.client("ebs")
    assert s3.get_object(Bucket="suitcase-images", Key="small")["Body"].read() == b"small body"
    assert s3.get_object(Bucket="suitcase-images", Key="big.raw")["Body"].read() == big.read_bytes()
    # the unfinished upload goes on where it stopped: same id, part 1 kept
    parts = s3.list_parts(Bucket="suitcase-images", Key="resumed", UploadId=upload["UploadId"])
    assert [p["ETag"] for p in parts["Parts"]] == [etag1]
    etag2 = s3.upload_part(
        Bucket="suitcase-images",
        Key="resumed",
        UploadId=upload["UploadId"],
        PartNumber=2,
        Body=b"end",
    )["ETag"]
    s3.complete_multipart_upload(
        Bucket="suitcase-images",
        Key="resumed",
        UploadId=upload["UploadId"],
        MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": etag1}, {"PartNumber": 2, "ETag": etag2}]
        },
    )
    assert s3.get_object(Bucket="suitcase-images", Key="resumed")["Body"].read() == part1 + b"end"
    for index, data in blocks.items():
        assert read_block(ebs, snapshot_id, index) == data
    assert check_image(target, image_id, rerun="suitcase register")["Name"] == "suitcase-test"
    assert check_snapshot(target, snapshot_id, rerun="suitcase register")["State"] == "completed"
    assert held.replace("2 objects, 1 unfinished", "3 objects, 0 unfinished") in (
        suitcase(ws, "endpoint", "status").output
    )

    # a restored object can be overwritten and deleted; a deleted body leaves data/ at once
    blobs = ws / "endpoint" / "data"
    sizes = sorted(p.stat().st_size for p in blobs.iterdir())
    assert sizes.count(5 * MiB) >= 2 and sizes.count(524288) >= len(blocks)  # parts, blocks
    assert (ws / "endpoint" / "state.sqlite").stat().st_size < MiB  # beside it, not inside
    s3.put_object(Bucket="suitcase-images", Key="small", Body=b"second body")
    s3.delete_object(Bucket="suitcase-images", Key="big.raw")
    assert [p for p in blobs.iterdir() if p.stat().st_size == 2 * MiB] == []  # big.raw's tail
    assert suitcase(ws, "endpoint", "stop").exit_code == 0
    target, _ = target_for(ws)
    s3 = target.client("s3")
    assert s3.get_object(Bucket="suitcase-images", Key="small")["Body"].read() == b"second body"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="suitcase-images")["Contents"]]
    assert keys == ["resumed", "small"]


def test_kill_9_loses_nothing_it_answered_and_reports_what_is_gone(ws: Path) -> None:
    target, _ = target_for(ws)
    s3 = target.client("s3")
    s3.create_bucket(Bucket="suitcase-images")
    s3.put_object(Bucket="suitcase-images", Key="answered", Body=b"kept")
    pid = int(EmbeddedEndpoint(ws).pid_file.read_text())
    os.kill(pid, signal.SIGKILL)
    _wait_gone(pid)

    # the next verb finds the pid file stale and starts a new endpoint from the stored state
    target, said = target_for(ws)
    assert any(line.startswith("started the embedded AWS endpoint") for line in said), said
    s3 = target.client("s3")
    assert s3.get_object(Bucket="suitcase-images", Key="answered")["Body"].read() == b"kept"
    rerun = "suitcase upload aws-hvm --os Debian-12-x86_64 --timestamp 20261127000000"
    with pytest.raises(LostState) as lost:
        check_object(target, "suitcase-images", "never-put", rerun=rerun)
    assert str(lost.value) == (
        "s3://suitcase-images/never-put is gone from the embedded endpoint (its state was lost); "
        f"run `{rerun}` again"
    )
    assert check_object(target, "suitcase-images", "answered", rerun=rerun)["ContentLength"] == 4


@pytest.mark.slow  # real endpoint processes: seconds each; CI runs it
def test_stale_pid_files_are_replaced_never_killed(ws: Path) -> None:
    endpoint = EmbeddedEndpoint(ws)
    endpoint.dir.mkdir()
    other = subprocess.Popen(["sleep", "60"])  # a live pid that is not an endpoint
    try:
        endpoint.pid_file.write_text(f"{other.pid}\n")
        endpoint.port_file.write_text("1\n")
        target, said = target_for(ws)
        assert other.poll() is None, "a stranger's process was killed"
        assert any(f"stale endpoint pid file (pid {other.pid}" in line for line in said), said
        assert int(endpoint.pid_file.read_text()) != other.pid
    finally:
        other.kill()
        other.wait()
    gone = subprocess.Popen(["true"])
    gone.wait()
    EmbeddedEndpoint(ws).stop()
    endpoint.pid_file.write_text(f"{gone.pid}\n")
    target, said = target_for(ws)
    assert target.kind == "embedded" and any("stale" in line for line in said)


@pytest.mark.slow  # real endpoint processes: seconds each; CI runs it
def test_concurrent_verbs_start_one_endpoint(ws: Path) -> None:
    argv = [str(BIN / "suitcase"), "--workspace", str(ws), "endpoint", "start"]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) for _ in range(3)]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    assert sum("started the embedded AWS endpoint" in out for out in outputs) == 1, outputs
    urls = {re.search(r"http://127\.0\.0\.1:\d+", out).group(0) for out in outputs}  # type: ignore[union-attr]
    assert len(urls) == 1 and len(endpoint_pids(ws)) == 1


@pytest.mark.slow  # real endpoint processes: seconds each; CI runs it
def test_aws_cli_sees_what_boto3_made(ws: Path) -> None:
    target, _ = target_for(ws)
    s3 = target.client("s3")
    s3.create_bucket(Bucket="made-by-boto3")
    s3.put_object(Bucket="made-by-boto3", Key="a/b.txt", Body=b"12345")
    key = EmbeddedEndpoint(ws).credentials()
    assert key is not None
    env = dict(
        os.environ,
        AWS_ACCESS_KEY_ID=key.access_key_id,
        AWS_SECRET_ACCESS_KEY=key.secret_access_key,
        AWS_DEFAULT_REGION="us-east-1",
    )
    url = target.endpoint_url or ""
    aws = [str(BIN / "aws"), "--endpoint-url", url, "--output", "json", "s3api"]
    buckets = subprocess.run([*aws, "list-buckets"], env=env, capture_output=True, text=True)
    assert buckets.returncode == 0, buckets.stderr
    assert '"Name": "made-by-boto3"' in buckets.stdout
    objects = subprocess.run(
        [*aws, "list-objects-v2", "--bucket", "made-by-boto3"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert '"Key": "a/b.txt"' in objects.stdout and '"Size": 5' in objects.stdout


def test_endpoint_that_cannot_start_says_why(
    ws: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = suitcase(ws, "endpoint", "start", "--port", str(port))
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "suitcase: error: the embedded AWS endpoint could not start (exit 1): "
        + result.output.split("(exit 1): ", 1)[1].strip()
    ]
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in result.output
    assert not (ws / "endpoint" / "pid").exists()

    shim = tmp_path / "shim" / "moto"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError('moto was removed for this test')\n")
    monkeypatch.setenv("PYTHONPATH", str(shim.parent))
    result = suitcase(ws, "endpoint", "start")
    assert result.exit_code == 1 and "moto[server] is not installed" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_ranged_gets_return_exactly_their_range(ws: Path, tmp_path: Path) -> None:
    """The endpoint's ranged-GET fix (it reads only the range) answers as S3 does."""
    target, _ = target_for(ws)
    s3 = target.client("s3")
    s3.create_bucket(Bucket="suitcase-images")
    body = os.urandom(11 * MiB + 123)
    s3.put_object(Bucket="suitcase-images", Key="k", Body=body)

    def ranged(spec: str) -> tuple[bytes, str]:
        got = s3.get_object(Bucket="suitcase-images", Key="k", Range=spec)
        return got["Body"].read(), got.get("ContentRange", "")

    for restarted in (False, True):  # before and after a restart
        assert ranged("bytes=100-199") == (body[100:200], f"bytes 100-199/{len(body)}")
        assert ranged("bytes=-10")[0] == body[-10:]
        assert ranged(f"bytes={5 * MiB}-")[0] == body[5 * MiB :]
        assert ranged(f"bytes=0-{len(body) + 50}")[0] == body
        with pytest.raises(s3.exceptions.ClientError, match="InvalidRange"):
            ranged(f"bytes={len(body)}-")
        out = tmp_path / f"k-{restarted}"
        config = TransferConfig(multipart_threshold=MiB, multipart_chunksize=MiB)
        s3.download_file("suitcase-images", "k", str(out), Config=config)
        assert out.read_bytes() == body
        if not restarted:
            EmbeddedEndpoint(ws).stop()
            target, _ = target_for(ws)
            s3 = target.client("s3")


def _parts(s3: Any, key: str, parts: list[bytes], **create: str) -> dict[str, Any]:
    upload = s3.create_multipart_upload(Bucket="suitcase-images", Key=key, **create)
    done = [
        {
            "PartNumber": n,
            "ETag": s3.upload_part(
                Bucket="suitcase-images", Key=key, UploadId=upload["UploadId"], PartNumber=n, Body=p
            )["ETag"],
        }
        for n, p in enumerate(parts, 1)
    ]
    s3.complete_multipart_upload(
        Bucket="suitcase-images",
        Key=key,
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": done},
    )
    head: dict[str, Any] = s3.head_object(Bucket="suitcase-images", Key=key, ChecksumMode="ENABLED")
    assert s3.get_object(Bucket="suitcase-images", Key=key)["Body"].read() == b"".join(parts)
    return head


def test_completed_multipart_uploads_match_moto_checksums(ws: Path) -> None:
    """The streaming-complete fix answers what moto's own code computes, checksum for checksum."""
    from moto.s3.utils import compute_checksum

    target, _ = target_for(ws)
    s3 = target.client("s3")
    s3.create_bucket(Bucket="suitcase-images")
    parts = [os.urandom(5 * MiB), os.urandom(5 * MiB), b"tail"]
    whole = b"".join(parts)
    head = _parts(s3, "full", parts, ChecksumAlgorithm="CRC32", ChecksumType="FULL_OBJECT")
    assert head["ChecksumCRC32"] == compute_checksum(whole, "CRC32").decode()
    assert head["ChecksumType"] == "FULL_OBJECT" and head["ContentLength"] == len(whole)
    head = _parts(s3, "composite", parts, ChecksumAlgorithm="CRC32")
    per_part = b"".join(compute_checksum(p, "CRC32", encode_base64=False) for p in parts)
    # (moto's HeadObject leaves out the "-3" part count AWS appends)
    assert head["ChecksumCRC32"].split("-")[0] == compute_checksum(per_part, "CRC32").decode()
    head = _parts(s3, "default", parts)  # no checksum asked for: none kept
    assert head["ETag"].endswith('-3"') and not any(k.startswith("Checksum") for k in head)
    with pytest.raises(s3.exceptions.ClientError, match="EntityTooSmall"):
        _parts(s3, "small", [b"a", b"b"])


@pytest.mark.slow  # a 256 MiB upload
def test_completing_a_large_upload_does_not_hold_it_in_memory(ws: Path, tmp_path: Path) -> None:
    target, _ = target_for(ws)
    s3 = target.client("s3")
    s3.create_bucket(Bucket="suitcase-images")
    big = tmp_path / "big.raw"
    with big.open("wb") as out:
        for _ in range(16):
            out.write(os.urandom(16 * MiB))
    config = TransferConfig(multipart_chunksize=16 * MiB, max_concurrency=8)  # as Suitcase uploads
    s3.upload_file(str(big), "suitcase-images", "big.raw", Config=config)
    pid = EmbeddedEndpoint(ws).pid_file.read_text().strip()
    status = Path(f"/proc/{pid}/status").read_text()
    peak_mib = int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) // 1024  # type: ignore[union-attr]
    # measured: 346 MiB with the streaming fix alone, 651 MiB with moto's own complete
    assert peak_mib < 300, f"the endpoint peaked at {peak_mib} MiB"
    got = s3.head_object(Bucket="suitcase-images", Key="big.raw")
    assert got["ContentLength"] == 256 * MiB


def test_status_of_a_workspace_without_endpoint(ws: Path) -> None:
    result = suitcase(ws, "endpoint", "status")
    assert result.exit_code == 0
    assert result.output.splitlines() == [
        "the embedded AWS endpoint is not running",
        f"no saved state (no {ws / 'endpoint'})",
    ]
    assert "not running" in suitcase(ws, "endpoint", "stop").output
    assert not (ws / "endpoint").exists()  # neither status nor stop makes the folder


@pytest.mark.slow  # real endpoint processes: seconds each; CI runs it
def test_concurrent_writers_are_all_kept_through_a_kill(ws: Path) -> None:
    """Requests from four threads at once: every one answered is there after a kill -9."""
    target, _ = target_for(ws)
    target.client("s3").create_bucket(Bucket="suitcase-images")

    def writer(n: int) -> None:
        s3 = target.client("s3")
        for i in range(40):
            s3.put_object(Bucket="suitcase-images", Key=f"w{n}/{i}", Body=os.urandom(64 * 1024))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    pid = int(EmbeddedEndpoint(ws).pid_file.read_text())
    os.kill(pid, signal.SIGKILL)
    _wait_gone(pid)
    target, _ = target_for(ws)
    pages = target.client("s3").get_paginator("list_objects_v2").paginate(Bucket="suitcase-images")
    assert sum(page["KeyCount"] for page in pages) == 160


@pytest.mark.slow  # waits 15 s for the stopped endpoint to answer before replacing it
def test_a_hung_endpoint_is_replaced_and_its_state_kept(ws: Path) -> None:
    target, _ = target_for(ws)
    target.client("s3").create_bucket(Bucket="suitcase-images")
    target.client("s3").create_bucket(Bucket="made-later")
    pid = int(EmbeddedEndpoint(ws).pid_file.read_text())
    os.kill(pid, signal.SIGSTOP)  # alive, ours, but answers nothing
    try:
        target, said = target_for(ws)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    assert f"the embedded endpoint (pid {pid}) does not answer: stopping it" in said
    assert int(EmbeddedEndpoint(ws).pid_file.read_text()) != pid
    _wait_gone(pid)
    names = [b["Name"] for b in target.client("s3").list_buckets()["Buckets"]]
    assert sorted(names) == ["made-later", "suitcase-images"]


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if (
            not Path(f"/proc/{pid}").exists()
            or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
        ):
            return
        time.sleep(0.05)
    raise AssertionError(f"pid {pid} still alive")
