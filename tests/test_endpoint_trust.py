"""The embedded endpoint as a store you can trust (issue: "durable when it answers, closed to
others, gone with its workspace"), tried as a hostile user and an unlucky operator would.

Every test drives real endpoint processes over HTTP (boto3, the AWS CLI, `suitcase endpoint`).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import pickle
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from click.testing import CliRunner

from suitcase.aws.clients import AwsTarget, aws_target
from suitcase.aws.endpoint import EmbeddedEndpoint
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
BUCKET = "suitcase-images"


def target_for(ws: Path) -> AwsTarget:
    return aws_target(Context.create(ws), lambda line: None)


def suitcase(ws: Path, *args: str) -> Any:
    return CliRunner().invoke(cli, ["--workspace", str(ws), *args])


def run_suitcase(ws: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    """The real CLI in a process of its own (what ends with it is seen ending)."""
    return subprocess.run(
        [str(BIN / "suitcase"), "--workspace", str(ws), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=180,
    )


def kill_endpoint(ws: Path) -> None:
    pid = int((ws / "endpoint" / "pid").read_text())
    os.kill(pid, signal.SIGKILL)
    wait_gone(pid)


def wait_gone(pid: int, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            return
        if state in ("Z", "X"):
            return
        time.sleep(0.05)
    raise AssertionError(f"pid {pid} still alive after {seconds} s")


def one_line_error(result: Any) -> str:
    """The output of a failed CLI run that said one line of error and nothing else."""
    text = result.output if hasattr(result, "output") else result.stdout + result.stderr
    code = result.exit_code if hasattr(result, "exit_code") else result.returncode
    assert code != 0, text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("suitcase: error: "), text
    assert "Traceback" not in text
    return lines[0]


def tree(path: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()
    }


# --- acknowledged means durable -----------------------------------------------------------------

Step = tuple[
    str, Callable[[AwsTarget, dict[str, Any]], None], Callable[[AwsTarget, dict[str, Any]], None]
]


def _steps() -> list[Step]:
    def put(t: AwsTarget, s: dict[str, Any]) -> None:
        t.client("s3").create_bucket(Bucket=BUCKET)
        t.client("s3").put_object(Bucket=BUCKET, Key="put", Body=b"put body")

    def has_put(t: AwsTarget, s: dict[str, Any]) -> None:
        assert t.client("s3").get_object(Bucket=BUCKET, Key="put")["Body"].read() == b"put body"

    def part(t: AwsTarget, s: dict[str, Any]) -> None:
        s3 = t.client("s3")
        s["upload"] = s3.create_multipart_upload(Bucket=BUCKET, Key="multi")["UploadId"]
        s["part1"] = os.urandom(5 * MiB)
        s["etag1"] = s3.upload_part(
            Bucket=BUCKET, Key="multi", UploadId=s["upload"], PartNumber=1, Body=s["part1"]
        )["ETag"]

    def has_part(t: AwsTarget, s: dict[str, Any]) -> None:
        parts = t.client("s3").list_parts(Bucket=BUCKET, Key="multi", UploadId=s["upload"])
        assert [p["ETag"] for p in parts["Parts"]] == [s["etag1"]]

    def complete(t: AwsTarget, s: dict[str, Any]) -> None:
        s3 = t.client("s3")
        etag2 = s3.upload_part(
            Bucket=BUCKET, Key="multi", UploadId=s["upload"], PartNumber=2, Body=b"tail"
        )["ETag"]
        s3.complete_multipart_upload(
            Bucket=BUCKET,
            Key="multi",
            UploadId=s["upload"],
            MultipartUpload={
                "Parts": [{"PartNumber": 1, "ETag": s["etag1"]}, {"PartNumber": 2, "ETag": etag2}]
            },
        )

    def has_complete(t: AwsTarget, s: dict[str, Any]) -> None:
        body = t.client("s3").get_object(Bucket=BUCKET, Key="multi")["Body"].read()
        assert body == s["part1"] + b"tail"

    def delete(t: AwsTarget, s: dict[str, Any]) -> None:
        t.client("s3").delete_object(Bucket=BUCKET, Key="put")

    def has_delete(t: AwsTarget, s: dict[str, Any]) -> None:
        keys = [o["Key"] for o in t.client("s3").list_objects_v2(Bucket=BUCKET)["Contents"]]
        assert keys == ["multi"]

    def start(t: AwsTarget, s: dict[str, Any]) -> None:
        s["snap"] = t.client("ebs").start_snapshot(VolumeSize=1)["SnapshotId"]

    def has_start(t: AwsTarget, s: dict[str, Any]) -> None:
        found = t.client("ec2").describe_snapshots(SnapshotIds=[s["snap"]])["Snapshots"]
        assert found[0]["State"] == "pending"

    def block(t: AwsTarget, s: dict[str, Any]) -> None:
        s["block"] = os.urandom(524288)
        t.client("ebs").put_snapshot_block(
            SnapshotId=s["snap"],
            BlockIndex=3,
            BlockData=s["block"],
            DataLength=524288,
            Checksum=base64.b64encode(hashlib.sha256(s["block"]).digest()).decode(),
            ChecksumAlgorithm="SHA256",
        )

    def has_block(t: AwsTarget, s: dict[str, Any]) -> None:
        assert read_block(t.client("ebs"), s["snap"], 3) == s["block"]

    def done(t: AwsTarget, s: dict[str, Any]) -> None:
        t.client("ebs").complete_snapshot(SnapshotId=s["snap"], ChangedBlocksCount=1)

    def has_done(t: AwsTarget, s: dict[str, Any]) -> None:
        found = t.client("ec2").describe_snapshots(SnapshotIds=[s["snap"]])["Snapshots"]
        assert found[0]["State"] == "completed"

    def register(t: AwsTarget, s: dict[str, Any]) -> None:
        s["ami"] = t.client("ec2").register_image(
            Name="durable-image",
            RootDeviceName="/dev/xvda",
            VirtualizationType="hvm",
            EnaSupport=True,
            BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": s["snap"]}}],
        )["ImageId"]

    def has_register(t: AwsTarget, s: dict[str, Any]) -> None:
        image = t.client("ec2").describe_images(ImageIds=[s["ami"]])["Images"][0]
        assert image["Name"] == "durable-image" and image["EnaSupport"] is True

    def tag(t: AwsTarget, s: dict[str, Any]) -> None:
        t.client("ec2").create_tags(
            Resources=[s["ami"], s["snap"]], Tags=[{"Key": "suitcase:set", "Value": "durable"}]
        )

    def has_tag(t: AwsTarget, s: dict[str, Any]) -> None:
        image = t.client("ec2").describe_images(ImageIds=[s["ami"]])["Images"][0]
        assert {"Key": "suitcase:set", "Value": "durable"} in image["Tags"]

    def deregister(t: AwsTarget, s: dict[str, Any]) -> None:
        t.client("ec2").deregister_image(ImageId=s["ami"])

    def has_deregister(t: AwsTarget, s: dict[str, Any]) -> None:
        assert t.client("ec2").describe_images(Owners=["self"])["Images"] == []

    return [
        ("put", put, has_put),
        ("upload part", part, has_part),
        ("multipart complete", complete, has_complete),
        ("delete", delete, has_delete),
        ("start snapshot", start, has_start),
        ("put snapshot block", block, has_block),
        ("complete snapshot", done, has_done),
        ("register", register, has_register),
        ("tag", tag, has_tag),
        ("deregister", deregister, has_deregister),
    ]


@pytest.mark.slow  # ten kill -9 and restarts of a real endpoint
def test_kill_9_after_each_mutating_call_loses_none_of_it(ws: Path) -> None:
    """Once the endpoint answers a change, a kill -9 at once loses none of it (nor earlier ones)."""
    state: dict[str, Any] = {}
    for name, change, check in _steps():
        change(target_for(ws), state)
        kill_endpoint(ws)
        try:
            check(target_for(ws), state)  # a new endpoint, from what is on disk
        except (AssertionError, ClientError) as exc:
            raise AssertionError(f"after a kill -9 following '{name}': {exc!r}") from exc
    target = target_for(ws)  # and all of it, at the end
    assert (
        target.client("s3").get_object(Bucket=BUCKET, Key="multi")["ContentLength"] == 5 * MiB + 4
    )
    assert read_block(target.client("ebs"), state["snap"], 3) == state["block"]


# --- nothing outside its folder is touched --------------------------------------------------------


@pytest.mark.parametrize("entry", ["tmp", "data"])
def test_a_linked_entry_is_refused_and_nothing_behind_it_deleted(
    ws: Path, tmp_path: Path, entry: str
) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious").write_text("keep me\n")
    assert suitcase(ws, "endpoint", "start").exit_code == 0
    assert suitcase(ws, "endpoint", "stop").exit_code == 0
    folder = ws / "endpoint" / entry
    shutil.rmtree(folder)
    folder.symlink_to(victim)
    line = one_line_error(suitcase(ws, "endpoint", "start"))
    assert f"{folder} is a symbolic link" in line, line
    assert (victim / "precious").read_text() == "keep me\n"
    assert not endpoint_pids(ws)
    line = one_line_error(suitcase(ws, "endpoint", "stop"))
    assert "symbolic link" in line and (victim / "precious").exists()
    folder.unlink()  # the operator puts it right; the endpoint starts again
    assert suitcase(ws, "endpoint", "start").exit_code == 0


def test_a_linked_log_a_foreign_or_open_entry_and_a_file_for_a_folder_are_refused(
    ws: Path, tmp_path: Path
) -> None:
    assert suitcase(ws, "endpoint", "start").exit_code == 0
    assert suitcase(ws, "endpoint", "stop").exit_code == 0
    folder = ws / "endpoint"
    foreign = tmp_path / "foreign.log"
    foreign.write_text("someone else's\n")
    log = folder / "endpoint.log"
    log.unlink()
    log.symlink_to(foreign)
    assert "endpoint.log is a symbolic link" in one_line_error(suitcase(ws, "endpoint", "start"))
    assert foreign.read_text() == "someone else's\n"
    log.unlink()
    log.write_text("")
    log.chmod(0o666)
    assert "writable by others" in one_line_error(suitcase(ws, "endpoint", "start"))
    log.chmod(0o600)
    os.chown(log, 65534, 65534)
    assert "belongs to uid 65534" in one_line_error(suitcase(ws, "endpoint", "start"))
    os.chown(log, 0, 0)
    shutil.rmtree(folder / "data")
    (folder / "data").write_text("a file where a folder belongs\n")
    assert "data is not a folder" in one_line_error(suitcase(ws, "endpoint", "start"))
    (folder / "data").unlink()
    folder.chmod(0o777)
    assert "writable by others" in one_line_error(suitcase(ws, "endpoint", "start"))
    folder.chmod(0o700)
    assert suitcase(ws, "endpoint", "start").exit_code == 0


def test_a_linked_endpoint_folder_is_refused(ws: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (ws / "endpoint").symlink_to(elsewhere)
    assert "symbolic link" in one_line_error(suitcase(ws, "endpoint", "start"))
    assert list(elsewhere.iterdir()) == []
    (ws / "endpoint").unlink()


# --- no state is dropped silently, and none runs code --------------------------------------------


def _stored(ws: Path) -> dict[str, bytes]:
    """A bucket with an object stored, the endpoint stopped; the folder's files."""
    target = target_for(ws)
    target.client("s3").create_bucket(Bucket=BUCKET)
    target.client("s3").put_object(Bucket=BUCKET, Key="k", Body=b"stored body")
    assert suitcase(ws, "endpoint", "stop").exit_code == 0
    return tree(ws / "endpoint" / "data")


def test_an_unreadable_state_is_refused_and_kept(ws: Path) -> None:
    data = _stored(ws)
    state = ws / "endpoint" / "state.sqlite"
    state.write_bytes(b"not a database, but somebody's only copy" * 200)
    before = state.read_bytes()
    line = one_line_error(suitcase(ws, "endpoint", "start"))
    assert f"{state} cannot be read" in line and "nothing was changed" in line, line
    assert state.read_bytes() == before and tree(ws / "endpoint" / "data") == data
    assert not endpoint_pids(ws)


def test_a_state_of_another_format_is_refused(ws: Path) -> None:
    _stored(ws)
    state = ws / "endpoint" / "state.sqlite"
    with contextlib.closing(sqlite3.connect(state)) as db:
        db.execute("UPDATE meta SET value = '1' WHERE key = 'format'")
        db.commit()
    line = one_line_error(suitcase(ws, "endpoint", "start"))
    assert "has state format '1'; this Suitcase reads format 2" in line, line


def test_missing_and_damaged_data_are_found(ws: Path) -> None:
    _stored(ws)
    (blob,) = (ws / "endpoint" / "data").iterdir()
    body = blob.read_bytes()
    blob.write_bytes(body[:-1] + bytes([body[-1] ^ 1]))  # same size: found on reading
    target = target_for(ws)
    with pytest.raises(ClientError) as damaged:
        target.client("s3").get_object(Bucket=BUCKET, Key="k")["Body"].read()
    assert damaged.value.response["Error"]["Code"] == "InternalError"
    assert f"data file {blob} is damaged" in str(damaged.value)
    blob.unlink()  # gone while it runs: even a HEAD (upload's "is it there?") is refused
    with pytest.raises(ClientError) as gone:
        target.client("s3", retries={"max_attempts": 1}).head_object(Bucket=BUCKET, Key="k")
    assert gone.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert suitcase(ws, "endpoint", "stop").exit_code == 0  # missing: found at start
    line = one_line_error(suitcase(ws, "endpoint", "start"))
    assert "1 data file(s) of the saved state are missing or damaged" in line, line
    assert blob.name in line and (ws / "endpoint" / "state.sqlite").exists()


def test_the_old_pickle_is_never_loaded(ws: Path, tmp_path: Path) -> None:
    """A state.pickle planted by anyone who could write the folder ran as root at start."""
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self) -> tuple[Any, ...]:
            return (os.system, (f"touch {marker}",))

    (ws / "endpoint").mkdir(mode=0o700)
    planted = ws / "endpoint" / "state.pickle"
    planted.write_bytes(pickle.dumps({"format": 1, "backends": Payload()}))
    planted.chmod(0o600)
    line = one_line_error(suitcase(ws, "endpoint", "start"))
    assert "state.pickle is a state of an older Suitcase" in line and "never loaded" in line
    assert not marker.exists() and planted.exists()


def test_a_planted_state_names_no_code(ws: Path, tmp_path: Path) -> None:
    """The state format names classes only, and only moto's: a callable is refused."""
    _stored(ws)
    state = ws / "endpoint" / "state.sqlite"
    marker = tmp_path / "ran"
    with contextlib.closing(sqlite3.connect(state)) as db:
        doc = json.loads(db.execute("SELECT doc FROM state").fetchone()[0])
        doc["backends"][0]["attributes"]["buckets"] = {
            "$o": "subprocess:Popen",
            "id": 0,
            "a": {"args": {"$t": ["touch", str(marker)]}},
        }
        db.execute("UPDATE state SET doc = ?", (json.dumps(doc),))
        db.commit()
    line = one_line_error(suitcase(ws, "endpoint", "start"))
    assert "class subprocess:Popen is not one the state may name" in line, line
    assert not marker.exists()


# --- closed to others -----------------------------------------------------------------------------


def test_requests_without_the_key_are_refused(ws: Path) -> None:
    target = target_for(ws)
    target.client("s3").create_bucket(Bucket=BUCKET)
    stranger = AwsTarget(kind="account", region="us-east-1", endpoint_url=target.endpoint_url)
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    for service, call, code in (
        ("s3", lambda c: c.list_buckets(), "InvalidAccessKeyId"),
        ("ec2", lambda c: c.describe_images(Owners=["self"]), "AuthFailure"),
        ("ebs", lambda c: c.start_snapshot(VolumeSize=1), "UnrecognizedClientException"),
        ("sts", lambda c: c.get_caller_identity(), "InvalidClientTokenId"),
    ):
        client = AwsTarget(
            kind="embedded", region="us-east-1", endpoint_url=stranger.endpoint_url
        ).client(service, retries={"max_attempts": 1})
        with pytest.raises(ClientError) as refused:
            call(client)
        assert refused.value.response["Error"]["Code"] == code, service
    import urllib.error
    import urllib.request

    for path, method in (
        ("/moto-api/reset", "POST"),
        ("/moto-api/", "GET"),
        ("/_suitcase/ping", "GET"),
    ):
        request = urllib.request.Request(f"{target.endpoint_url}{path}", method=method)
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(request, timeout=10)
        assert answer.value.code in (403, 404), path
    buckets = target.client("s3").list_buckets()["Buckets"]
    assert [b["Name"] for b in buckets] == [BUCKET]  # the reset did nothing


def test_the_key_is_private_and_endpoint_env_works_on_purpose(ws: Path) -> None:
    target_for(ws).client("s3").create_bucket(Bucket=BUCKET)
    key = ws / "endpoint" / "key"
    assert key.stat().st_mode & 0o777 == 0o600
    os.chmod(ws, 0o755)  # even with a readable workspace, nobody cannot read the key
    nobody = subprocess.run(
        ["runuser", "-u", "nobody", "--", "cat", str(key)], capture_output=True, text=True
    )
    assert nobody.returncode != 0 and "Permission denied" in nobody.stderr
    started = suitcase(ws, "endpoint", "start")
    assert started.exit_code == 0
    env = suitcase(ws, "endpoint", "env")
    assert env.exit_code == 0, env.output
    script = (
        env.output + f"\n{BIN / 'aws'} s3api list-buckets --output text --query 'Buckets[].Name'\n"
    )
    shell = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, env={**os.environ, "HOME": str(ws)}
    )
    assert shell.returncode == 0 and shell.stdout.strip() == BUCKET, shell.stderr


# --- one endpoint per workspace, gone with it ----------------------------------------------------


def test_removing_the_workspace_ends_its_endpoint(ws: Path, tmp_path: Path) -> None:
    assert suitcase(ws, "endpoint", "start").exit_code == 0
    (pid,) = endpoint_pids(ws)
    shutil.rmtree(ws)
    wait_gone(pid, 10)
    ws.mkdir()  # the fixture stops what it finds here


def test_an_orphan_never_writes_into_a_new_folder(ws: Path) -> None:
    assert suitcase(ws, "endpoint", "start").exit_code == 0
    (pid,) = endpoint_pids(ws)
    (ws / "endpoint").rename(ws / "endpoint.old")  # replaced: a new folder at the same path
    (ws / "endpoint").mkdir(mode=0o700)
    os.kill(pid, signal.SIGTERM)  # even a clean stop writes nothing into the new folder
    wait_gone(pid, 10)
    assert list((ws / "endpoint").iterdir()) == []
    assert "was removed or replaced" in (ws / "endpoint.old" / "endpoint.log").read_text() or (
        "signal 15" in (ws / "endpoint.old" / "endpoint.log").read_text()
    )


def test_a_verb_that_started_it_stops_it_and_one_that_found_it_leaves_it(ws: Path) -> None:
    script = (
        "import sys\nfrom pathlib import Path\nfrom suitcase.aws.clients import aws_target\n"
        "from suitcase.context import Context\n"
        "t = aws_target(Context.create(Path(sys.argv[1])), print)\n"
        "t.client('s3').list_buckets()\n"
    )
    run = subprocess.run([sys.executable, "-c", script, str(ws)], capture_output=True, text=True)
    assert run.returncode == 0 and "started the embedded AWS endpoint" in run.stdout, run.stderr
    assert endpoint_pids(ws) == []  # it started it: it stopped it at its end
    assert suitcase(ws, "endpoint", "start").exit_code == 0
    (pid,) = endpoint_pids(ws)
    run = subprocess.run([sys.executable, "-c", script, str(ws)], capture_output=True, text=True)
    assert run.returncode == 0 and "started" not in run.stdout
    assert endpoint_pids(ws) == [pid]  # it found it running: it left it


def test_an_idle_endpoint_stops_unless_held(ws: Path) -> None:
    assert suitcase(ws, "endpoint", "start", "--idle", "2").exit_code == 0
    (pid,) = endpoint_pids(ws)
    endpoint = EmbeddedEndpoint(ws)
    endpoint.hold()
    try:
        time.sleep(4)
        assert endpoint_pids(ws) == [pid]  # idle, but held
    finally:
        endpoint.release()
    wait_gone(pid, 10)
    assert "idle for 2 s and held by no Suitcase process" in endpoint.log_file.read_text()


# --- smaller --------------------------------------------------------------------------------------


def test_a_port_out_of_range_is_a_usage_error(ws: Path) -> None:
    result = suitcase(ws, "endpoint", "start", "--port", "70000")
    assert result.exit_code == 2 and "70000 is not in the range 0<=x<=65535" in result.output
    assert not endpoint_pids(ws)


def test_a_non_ascii_workspace_under_an_ascii_locale(tmp_path: Path, ws: Path) -> None:
    odd = tmp_path / "wörkspace-é"
    odd.mkdir()
    env = {"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    try:
        first = run_suitcase(odd, "endpoint", "start", env=env)
        assert first.returncode == 0, first.stderr
        second = run_suitcase(odd, "endpoint", "start", env=env)
        assert second.returncode == 0 and "already running" in second.stdout, second.stdout
        assert len(endpoint_pids(tmp_path)) == 1
        stopped = run_suitcase(odd, "endpoint", "stop", env=env)
        assert stopped.returncode == 0 and "stopped" in stopped.stdout
    finally:
        EmbeddedEndpoint(odd).stop()
    assert endpoint_pids(tmp_path) == []


def test_a_garbage_port_file_is_said_not_hidden(ws: Path) -> None:
    assert suitcase(ws, "endpoint", "start").exit_code == 0
    (ws / "endpoint" / "port").write_text("garbage\n")
    line = one_line_error(suitcase(ws, "endpoint", "status"))
    assert "runs but does not answer" in line, line
    assert "stopped" in suitcase(ws, "endpoint", "stop").output
    assert endpoint_pids(ws) == []


def test_stop_and_status_never_make_a_mistyped_workspace(tmp_path: Path) -> None:
    typo = tmp_path / "no-such-workspace"
    for verb in ("stop", "status"):
        result = suitcase(typo, "endpoint", verb)
        assert result.exit_code == 0 and "not running" in result.output
    assert not typo.exists()


def test_many_snapshots_and_objects_survive_a_restart(ws: Path) -> None:
    target = target_for(ws)
    s3, ebs = target.client("s3"), target.client("ebs")
    s3.create_bucket(Bucket=BUCKET)
    for i in range(20):
        s3.put_object(Bucket=BUCKET, Key=f"o{i}", Body=os.urandom(1000))
    snaps = {put_snapshot(ebs, {i: os.urandom(524288)}): i for i in range(3)}
    assert suitcase(ws, "endpoint", "stop").exit_code == 0
    target = target_for(ws)
    assert target.client("s3").list_objects_v2(Bucket=BUCKET)["KeyCount"] == 20
    for snap, index in snaps.items():
        assert len(read_block(target.client("ebs"), snap, index)) == 524288
