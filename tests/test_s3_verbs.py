"""upload / fetch / delete: interruption, deletion rules and bad input, over HTTP to the endpoint
Suitcase ships (the twin, with its key)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from suitcase.aws import tags
from suitcase.aws.s3 import file_crc64nvme
from suitcase.aws.ship import real_upload
from suitcase.machine import free_port
from suitcase.manifest import UPLOAD_COOKIE
from tests.aws_proxy import Fault, FaultProxy, is_upload_part
from tests.endpoint_support import VENV_BIN, Launched, launch
from tests.fakes import fake_build_set
from tests.s3_support import OS, SITE, TS, MiB, env_for, point_at, site_workspace
from tests.test_s3 import held, s3, suitcase, unfinished, upload_all

BUILD_SET = f"{OS}-{TS}"
DISK_KEY = f"suitcase/master/{BUILD_SET}/disk-master.img"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launched]:
    """The twin, for the whole module (each test has its own bucket)."""
    with launch("twin", tmp_path_factory.mktemp("twin")) as running:
        yield running


@pytest.fixture
def proxy(server: Launched) -> Iterator[FaultProxy]:
    with FaultProxy(server.url, seed=3) as running:
        yield running


@pytest.fixture
def bucket(
    proxy: FaultProxy, server: Launched, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    name = f"suitcase-verbs-{os.urandom(6).hex()}"
    point_at(monkeypatch, server, name, tmp_path, url=proxy.url)
    return name


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return site_workspace(tmp_path, monkeypatch, SITE.replace("concurrency: 4", "concurrency: 2"))


def _start_slow_upload(
    ws: Path, server: Launched, proxy: FaultProxy, bucket: str, tmp_path: Path
) -> subprocess.Popen[bytes]:
    """`suitcase upload master` of a 60 MiB disk (12 parts) in a subprocess, parts slowed down."""
    fake_build_set(ws, "master", disk_size=60 * MiB)
    s3(server).create_bucket(Bucket=bucket)
    proxy.add(Fault("delay", when=is_upload_part, seconds=0.4))
    return upload_master(
        ws, server, bucket, tmp_path, subprocess.PIPE, subprocess.STDOUT, url=proxy.url
    )


def upload_master(
    ws: Path,
    server: Launched,
    bucket: str,
    tmp_path: Path,
    stdout: Any,
    stderr: Any,
    url: str | None = None,
) -> subprocess.Popen[bytes]:
    """`suitcase upload master` of the fake build set, in a session of its own, against
    `server` (or `url`: a proxy in front of it)."""
    argv = [str(VENV_BIN / "suitcase"), "--workspace", str(ws), "upload", "master"]
    return subprocess.Popen(
        [*argv, "--os", OS, "--timestamp", TS],
        env=env_for(server, bucket, tmp_path, url=url),
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
    )


def _wait_for_parts(
    server: Launched, bucket: str, proc: subprocess.Popen[bytes], count: int
) -> int:
    client = s3(server)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        for upload in unfinished(server, bucket):
            if upload["Key"] == DISK_KEY:
                parts = client.list_parts(Bucket=bucket, Key=DISK_KEY, UploadId=upload["UploadId"])
                if len(parts.get("Parts", [])) >= count:
                    return len(parts["Parts"])
        time.sleep(0.1)
    raise AssertionError(f"the upload never reached {count} parts: {proc.communicate()[0]!r}")


def test_kill_9_midway_then_the_rerun_resumes_and_completes(
    ws: Path, bucket: str, server: Launched, proxy: FaultProxy, tmp_path: Path
) -> None:
    proc = _start_slow_upload(ws, server, proxy, bucket, tmp_path)
    try:
        _wait_for_parts(server, bucket, proc, 3)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    stage = ws / "images" / "master" / BUILD_SET
    assert not (stage / UPLOAD_COOKIE).exists()
    assert [u["Key"] for u in unfinished(server, bucket)] == [DISK_KEY]  # killed midway indeed
    assert DISK_KEY not in held(server, bucket)
    proxy.clear()
    result = suitcase(ws, "upload", "master", "--os", OS, "--timestamp", TS)
    assert result.exit_code == 0, result.output
    assert "found an unfinished multipart upload" in result.output
    assert "resuming an unfinished upload (" in result.output
    assert unfinished(server, bucket) == []
    head = s3(server).head_object(Bucket=bucket, Key=DISK_KEY, ChecksumMode="ENABLED")
    assert head["ChecksumCRC64NVME"] == file_crc64nvme(stage / "disk-master.img")
    assert real_upload(stage) is not None


def test_sigterm_midway_leaves_no_unfinished_upload_and_no_cookie(
    ws: Path, bucket: str, server: Launched, proxy: FaultProxy, tmp_path: Path
) -> None:
    proc = _start_slow_upload(ws, server, proxy, bucket, tmp_path)
    try:
        _wait_for_parts(server, bucket, proc, 2)
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode != 0
    assert unfinished(server, bucket) == []
    assert not (ws / "images" / "master" / BUILD_SET / UPLOAD_COOKIE).exists()


def test_a_mismatched_unfinished_upload_is_aborted_not_resumed(
    ws: Path, bucket: str, server: Launched
) -> None:
    fake_build_set(ws, "master")
    client = s3(server)
    client.create_bucket(Bucket=bucket)
    upload = client.create_multipart_upload(Bucket=bucket, Key=DISK_KEY)
    client.upload_part(
        Bucket=bucket, Key=DISK_KEY, UploadId=upload["UploadId"], PartNumber=1, Body=b"x" * 5 * MiB
    )
    result = suitcase(ws, "upload", "master", "--os", OS, "--timestamp", TS)
    assert result.exit_code == 0, result.output
    assert "does not match the file, aborted" in result.output
    assert unfinished(server, bucket) == []


def _ami(server: Launched, build_set: str) -> str:
    ec2 = server.client("ec2")
    image = ec2.register_image(
        Name=f"suitcase-{build_set}-{os.urandom(4).hex()}",
        RootDeviceName="/dev/xvda",
        VirtualizationType="hvm",
    )["ImageId"]
    ec2.create_tags(Resources=[image], Tags=[{"Key": tags.BUILD_SET, "Value": build_set}])
    # a new AMI is not found at once (eventual consistency: the twin hides it for a while, as
    # AWS may): the AMI "exists" for `delete` once DescribeImages finds it
    deadline = time.monotonic() + 30
    while not ec2.describe_images(Filters=[{"Name": "image-id", "Values": [image]}])["Images"]:
        assert time.monotonic() < deadline, f"{image} never became visible"
        time.sleep(0.2)
    return str(image)


def test_delete_refuses_while_an_ami_exists_lists_with_dry_run_and_forces(
    ws: Path, bucket: str, server: Launched
) -> None:
    fake_build_set(ws, "master")
    ts = "20260202000000"
    # an AMI of another build set does not hold this one back
    assert upload_all(ws, "master").exit_code == 0
    other_ami = _ami(server, f"{OS}-{ts}")
    assert (
        suitcase(ws, "delete", "master", "--os", OS, "--timestamp", TS, "--dry-run").exit_code == 0
    )
    ami = _ami(server, BUILD_SET)
    refused = suitcase(ws, "delete", "master", "--os", OS, "--timestamp", TS)
    assert refused.exit_code == 1
    assert f"has registered AMIs ({ami})" in refused.output and other_ami not in refused.output
    assert len(held(server, bucket)) == 3
    dry = suitcase(ws, "delete", "master", "--os", OS, "--timestamp", TS, "--dry-run", "--force")
    assert dry.exit_code == 0 and dry.output.count("would delete s3://") == 3
    assert len(held(server, bucket)) == 3
    stage = ws / "images" / "master" / BUILD_SET
    assert real_upload(stage) is not None
    forced = suitcase(ws, "delete", "master", "--os", OS, "--timestamp", TS, "--force")
    assert forced.exit_code == 0, forced.output
    assert "deleted 3 objects" in forced.output and ami in forced.output
    assert held(server, bucket) == {}
    assert not (stage / UPLOAD_COOKIE).exists()
    again = suitcase(ws, "delete", "master", "--os", OS, "--timestamp", TS, "--force")
    assert again.exit_code == 1 and "no such build set in S3" in again.output


def _one_line(result: object, code: int, text: str) -> None:
    output = getattr(result, "output", "")
    errors = [line for line in output.splitlines() if line.startswith("suitcase: error:")]
    assert getattr(result, "exit_code", None) == code, output
    assert len(errors) == 1 and text in errors[0], output
    assert "Traceback" not in output


@pytest.mark.parametrize(
    ("name", "code", "text"),
    [
        ("bad..bucket", 2, "must be a valid S3 bucket name"),
        ("192.168.10.20", 2, "may not look like an IP address"),
        ("xn--suitcase", 2, "reserved by S3"),
        ("Upper_Case", 2, "must be a valid S3 bucket name"),
    ],
)
def test_a_bucket_name_s3_rejects_is_one_line_and_nothing_is_made(
    ws: Path,
    bucket: str,
    server: Launched,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    code: int,
    text: str,
) -> None:
    fake_build_set(ws, "master")
    monkeypatch.setenv("SUITCASE_BUCKET", name)
    _one_line(upload_all(ws, "master"), code, text)
    assert s3(server).list_buckets().get("Buckets", []) == [] or name not in [
        b["Name"] for b in s3(server).list_buckets()["Buckets"]
    ]
    assert not (ws / "images" / "master" / BUILD_SET / UPLOAD_COOKIE).exists()


def test_bad_input_for_upload_fetch_and_delete(ws: Path, bucket: str, server: Launched) -> None:
    fake_build_set(ws, "master")
    # no such build set here
    _one_line(
        suitcase(ws, "upload", "master", "--os", OS, "--timestamp", "20250101000000"),
        2,
        "no build set",
    )
    # a missing bucket is never created on an account without --create-bucket
    _one_line(suitcase(ws, "upload", "master", "--os", OS, "--timestamp", TS), 1, "does not exist")
    assert bucket not in [b["Name"] for b in s3(server).list_buckets().get("Buckets", [])]
    s3(server).create_bucket(Bucket=bucket)
    # a set never uploaded: nothing fetched, nothing written
    before = sorted(p for p in ws.rglob("*"))
    _one_line(suitcase(ws, "fetch", "master", "--os", OS, "--timestamp", TS), 1, "never uploaded")
    assert sorted(p for p in ws.rglob("*")) == before
    _one_line(suitcase(ws, "fetch", "master", "--os", OS), 2, "needs --timestamp")
    _one_line(suitcase(ws, "fetch", "master", "--os", OS, "--timestamp", "latest"), 2, "explicit")
    _one_line(
        suitcase(ws, "delete", "master", "--os", OS, "--timestamp", "20250101000000"),
        1,
        "no such build set",
    )
    _one_line(suitcase(ws, "delete", "master", "--os", OS), 2, "needs --timestamp")
    _one_line(suitcase(ws, "upload", "master", "--os", "Nope-1"), 2, "Nope-1")


def test_a_file_changed_since_its_manifest_is_not_left_in_s3(
    ws: Path, bucket: str, server: Launched
) -> None:
    plan = fake_build_set(ws, "master")
    disk = plan.stages[0].directory / "disk-master.img"
    data = bytearray(disk.read_bytes())
    data[100] ^= 0x01  # same size: only the sha256 can tell
    disk.write_bytes(bytes(data))
    result = upload_all(ws, "master")
    _one_line(result, 1, "no longer matches the checksums its manifest records")
    assert DISK_KEY not in held(server, bucket)
    assert unfinished(server, bucket) == []
    assert not (plan.stages[0].directory / UPLOAD_COOKIE).exists()


def test_a_resumed_upload_keeps_matching_parts_and_resends_the_rest(
    ws: Path, bucket: str, server: Launched, proxy: FaultProxy
) -> None:
    plan = fake_build_set(ws, "master")  # 12 MiB: parts of 5, 5 and 2 MiB
    disk = (plan.stages[0].directory / "disk-master.img").read_bytes()
    client = s3(server)
    client.create_bucket(Bucket=bucket)
    upload = client.create_multipart_upload(
        Bucket=bucket, Key=DISK_KEY, ChecksumAlgorithm="CRC64NVME", ChecksumType="FULL_OBJECT"
    )
    for number, body in ((1, disk[: 5 * MiB]), (2, b"\0" * 5 * MiB)):  # part 2 is wrong
        client.upload_part(
            Bucket=bucket, Key=DISK_KEY, UploadId=upload["UploadId"], PartNumber=number, Body=body
        )
    result = suitcase(ws, "upload", "master", "--os", OS, "--timestamp", TS)
    assert result.exit_code == 0, result.output
    assert "resuming an unfinished upload (1 of 3 parts already there)" in result.output
    sent = [p for m, p, q in proxy.log if m == "PUT" and "partNumber" in q and p.endswith(".img")]
    assert len(sent) == 2  # parts 2 and 3, never part 1 again
    assert held(server, bucket)[DISK_KEY] == disk
    assert unfinished(server, bucket) == []


def test_an_endpoint_that_does_not_answer_is_one_line(
    ws: Path, server: Launched, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_build_set(ws, "master")
    nowhere = f"http://127.0.0.1:{free_port()}"
    point_at(monkeypatch, server, "suitcase-nowhere", tmp_path, url=nowhere)
    for verb in ("upload", "fetch", "delete"):
        result = suitcase(ws, verb, "master", "--os", OS, "--timestamp", TS)
        _one_line(result, 1, "127.0.0.1")
    assert not (ws / "images" / "master" / BUILD_SET / UPLOAD_COOKIE).exists()


def test_a_missing_bucket_fails_before_anything_is_built(ws: Path, bucket: str) -> None:
    stage = ws / "images" / "master" / BUILD_SET
    stage.mkdir(parents=True)  # the set exists, its master is not built
    result = suitcase(ws, "upload", "master", "--os", OS, "--timestamp", TS)
    _one_line(result, 1, f"bucket {bucket} does not exist")
    assert "building" not in result.output
    assert list(stage.iterdir()) == []


def test_an_empty_output_goes_up_and_comes_back(
    ws: Path, bucket: str, server: Launched, tmp_path: Path
) -> None:
    from suitcase.manifest import describe_output, read_manifest, write_manifest

    plan = fake_build_set(ws, "master")
    folder = plan.stages[0].directory
    manifest = read_manifest(folder)
    assert manifest is not None
    (folder / "empty.log").write_bytes(b"")
    manifest.outputs.append(describe_output(folder, folder / "empty.log", "log"))
    write_manifest(folder, manifest)
    assert upload_all(ws, "master").exit_code == 0
    assert held(server, bucket)[f"suitcase/master/{BUILD_SET}/empty.log"] == b""
    other = tmp_path / "other"
    other.mkdir()
    result = suitcase(other, "fetch", "master", "--os", OS, "--timestamp", TS)
    assert result.exit_code == 0, result.output
    assert (other / "images" / "master" / BUILD_SET / "empty.log").read_bytes() == b""


def test_the_endpoint_dying_midway_is_one_line(ws: Path, tmp_path: Path) -> None:
    """kill -9 of the endpoint (the twin) while 8 parts are in flight: one error line, no tracebacks
    (s3transfer failed the in-flight parts' bodies inside awscrt's signer, which printed each)."""
    (ws / "site.yaml").write_text("s3:\n  part_size_mb: 5\n  concurrency: 8\n")
    fake_build_set(ws, "master", disk_size=300 * MiB)
    bucket = f"suitcase-dies-{os.urandom(6).hex()}"
    with launch("twin", tmp_path / "dying") as server:
        s3(server).create_bucket(Bucket=bucket)
        proc = upload_master(ws, server, bucket, tmp_path, subprocess.DEVNULL, subprocess.PIPE)
        try:
            _wait_for_parts(server, bucket, proc, 2)
            os.kill(server.pid, signal.SIGKILL)
            stderr = proc.communicate(timeout=60)[1].decode()
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    lines = stderr.splitlines()
    assert proc.returncode == 1, stderr
    assert len(lines) <= 4 and "Traceback" not in stderr, stderr
    assert lines[-1].startswith("suitcase: error: upload of disk-master.img to s3://"), stderr
    assert "failed: " in lines[-1] and server.url in lines[-1], stderr
