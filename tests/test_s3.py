"""upload / fetch / delete against the endpoint Suitcase ships (the twin: moto with Suitcase's fixes
and AWS's rules, its key) over HTTP (never in-process mocks), with a proxy of our own in front of
it where the network has to misbehave."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from awscrt.checksums import crc64nvme
from click.testing import CliRunner

from suitcase.aws.ship import read_cookie, real_upload, upload_plan
from suitcase.cli import cli
from suitcase.context import Context
from suitcase.manifest import UPLOAD_COOKIE, read_manifest
from tests.aws_proxy import Fault, FaultProxy, is_s3_data, is_upload_part
from tests.endpoint_support import VENV_BIN, Launched, launch
from tests.fakes import fake_build_set
from tests.s3_support import OS, SITE, TS, point_at, site_workspace


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launched]:
    """The twin, for the whole module (each test has its own bucket)."""
    with launch("twin", tmp_path_factory.mktemp("twin")) as running:
        yield running


@pytest.fixture
def proxy(server: Launched) -> Iterator[FaultProxy]:
    with FaultProxy(server.url, seed=7) as running:
        yield running


@pytest.fixture
def bucket(
    proxy: FaultProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: Launched
) -> str:
    """A fresh bucket name; Suitcase talks to it through the proxy."""
    name = f"suitcase-test-{uuid.uuid4().hex[:12]}"
    point_at(monkeypatch, server, name, tmp_path, url=proxy.url)
    return name


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return site_workspace(tmp_path, monkeypatch)


def s3(server: Launched) -> Any:
    """A client straight to the endpoint, bypassing the proxy: what S3 really holds."""
    return server.client("s3")


def suitcase(ws: Path, *args: str) -> Any:
    result = CliRunner().invoke(cli, ["--workspace", str(ws), *args], catch_exceptions=False)
    return result


def crc_of(data: bytes) -> str:
    return base64.b64encode(crc64nvme(data).to_bytes(8, "big")).decode()


def held(server: Launched, bucket: str) -> dict[str, bytes]:
    client = s3(server)
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    return {k: client.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}


def unfinished(server: Launched, bucket: str) -> list[Any]:
    return list(s3(server).list_multipart_uploads(Bucket=bucket).get("Uploads", []))


def upload_all(ws: Path, image: str = "all") -> Any:
    return suitcase(ws, "upload", image, "--os", OS, "--timestamp", TS, "--create-bucket")


def test_round_trip_every_object_matches_its_manifest(
    ws: Path, bucket: str, server: Launched
) -> None:
    plan = fake_build_set(ws)
    result = upload_all(ws)
    assert result.exit_code == 0, result.output
    objects = held(server, bucket)
    client = s3(server)
    for stage in plan.stages:
        manifest = read_manifest(stage.directory)
        assert manifest is not None
        prefix = f"suitcase/{stage.image.name}/{OS}-{TS}/"
        assert objects[prefix + "manifest.json"] == (stage.directory / "manifest.json").read_bytes()
        for output in manifest.outputs:
            data = objects[prefix + output.path]
            assert len(data) == output.size
            assert hashlib.sha256(data).hexdigest() == output.sha256
            head = client.head_object(
                Bucket=bucket, Key=prefix + output.path, ChecksumMode="ENABLED"
            )
            assert head["Metadata"]["sha256"] == output.sha256
            assert head["ChecksumCRC64NVME"] == crc_of(data)
            assert head["ChecksumType"] == "FULL_OBJECT"
        cookie = real_upload(stage.directory, manifest)
        assert cookie is not None and cookie["bucket"] == bucket
        assert cookie["endpoint"].startswith("http://127.0.0.1:")
        recorded = {o["key"]: (o["size"], o["crc64nvme"]) for o in cookie["objects"]}
        assert recorded == {
            k: (len(v), crc_of(v)) for k, v in objects.items() if k.startswith(prefix)
        }
    assert len(objects) == 3 * len(plan.stages)
    assert unfinished(server, bucket) == []
    # the disks are multipart (12 MiB in 5 MiB parts): the ETag says how many parts
    disk_key = next(k for k in objects if k.endswith(".img"))
    assert client.head_object(Bucket=bucket, Key=disk_key)["ETag"].endswith('-3"')

    again = upload_all(ws)
    assert again.exit_code == 0
    assert again.output.count("already there with the same checksum, skipped") == len(objects)


def test_the_aws_cli_reads_back_what_suitcase_wrote(
    ws: Path, bucket: str, server: Launched
) -> None:
    plan = fake_build_set(ws, "master")
    assert upload_all(ws, "master").exit_code == 0
    env = {"AWS_PAGER": ""}
    base = [str(VENV_BIN / "aws"), "--endpoint-url", server.url, "--output", "json", "s3api"]

    def aws(*args: str) -> Any:
        out = subprocess.run(
            [*base, *args],
            capture_output=True,
            text=True,
            check=True,
            env={**__import__("os").environ, **env},
        )
        return json.loads(out.stdout)

    listing = aws("list-objects-v2", "--bucket", bucket)
    manifest = read_manifest(plan.stages[0].directory)
    assert manifest is not None
    prefix = f"suitcase/master/{OS}-{TS}/"
    expected = {prefix + o.path: o for o in manifest.outputs}
    listed = {o["Key"]: o["Size"] for o in listing["Contents"]}
    assert listed == {
        **{k: o.size for k, o in expected.items()},
        prefix + "manifest.json": (plan.stages[0].directory / "manifest.json").stat().st_size,
    }
    for key, output in expected.items():
        head = aws("head-object", "--bucket", bucket, "--key", key, "--checksum-mode", "ENABLED")
        data = (plan.stages[0].directory / output.path).read_bytes()
        assert head["ContentLength"] == output.size
        assert head["ChecksumCRC64NVME"] == crc_of(data)
        assert head["Metadata"] == {"sha256": output.sha256}


def test_upload_all_then_fetch_all_into_an_empty_workspace_is_byte_for_byte(
    ws: Path, bucket: str, tmp_path: Path
) -> None:
    plan = fake_build_set(ws)
    assert upload_all(ws).exit_code == 0
    other = tmp_path / "other"
    other.mkdir()
    (other / "site.yaml").write_text(SITE)
    result = suitcase(other, "fetch", "all", "--os", OS, "--timestamp", TS)
    assert result.exit_code == 0, result.output
    for stage in plan.stages:
        there = other / stage.directory.relative_to(ws)
        mine = {
            p.relative_to(stage.directory): p.read_bytes()
            for p in stage.directory.rglob("*")
            if p.is_file() and p.name != UPLOAD_COOKIE
        }
        theirs = {
            p.relative_to(there): p.read_bytes()
            for p in there.rglob("*")
            if p.is_file() and p.name != UPLOAD_COOKIE
        }
        assert mine == theirs
        assert real_upload(there) is not None
    # the fetched stages count as done: later verbs continue from them
    listing = suitcase(other, "plan", "all", "--os", OS, "--timestamp", TS)
    assert "would run" not in listing.output and listing.output.count("done") == len(plan.stages)
    again = suitcase(other, "fetch", "all", "--os", OS, "--timestamp", TS)
    assert again.output.count("already here") == len(plan.stages)


def test_network_faults_are_retried_and_the_data_stays_right(
    ws: Path, bucket: str, server: Launched, proxy: FaultProxy, tmp_path: Path
) -> None:
    plan = fake_build_set(ws, "master")
    # at least one of each for certain (the first part uploads), then a random mix on top:
    # SlowDown on 20 % of all requests, and a few dropped connections, 500s and 503s
    for kind in ("drop", "500", "503", "slowdown"):
        proxy.add(Fault(kind, when=is_upload_part, limit=1))
    proxy.add(Fault("slowdown", probability=0.2))
    for kind in ("drop", "500", "503"):
        proxy.add(Fault(kind, probability=0.03))
    result = upload_all(ws, "master")
    assert result.exit_code == 0, result.output
    uploaded_hits = dict(proxy.hits)
    assert set(uploaded_hits) == {"drop", "500", "503", "slowdown"}, uploaded_hits
    # and the download: object data dropped and refused on its way back
    proxy.add(Fault("drop", when=is_s3_data, limit=1))
    proxy.add(Fault("503", when=is_s3_data, limit=1))
    other = tmp_path / "other"
    other.mkdir()
    (other / "site.yaml").write_text(SITE)
    result = suitcase(other, "fetch", "master", "--os", OS, "--timestamp", TS)
    assert result.exit_code == 0, result.output
    assert sum(proxy.hits.values()) >= sum(uploaded_hits.values()) + 2, proxy.hits
    for stage in plan.stages:
        manifest = read_manifest(other / stage.directory.relative_to(ws))
        assert manifest is not None
        for output in manifest.outputs:
            data = (other / stage.directory.relative_to(ws) / output.path).read_bytes()
            assert hashlib.sha256(data).hexdigest() == output.sha256
    assert unfinished(server, bucket) == []


@pytest.mark.parametrize("target", ["part", "whole object"])
def test_a_flipped_byte_on_the_wire_fails_loudly(
    ws: Path, bucket: str, server: Launched, proxy: FaultProxy, target: str
) -> None:
    plan = fake_build_set(ws, "master")
    if target == "part":
        proxy.add(Fault("flip", when=is_upload_part, limit=1))
    else:  # the small file (one part)
        proxy.add(
            Fault(
                "flip", when=lambda r: is_upload_part(r) and r.path.endswith("notes.txt"), limit=1
            )
        )
    result = upload_all(ws, "master")
    assert proxy.hits["flip"] == 1
    assert result.exit_code == 1
    assert "corrupted on the way" in result.output
    errors = [line for line in result.output.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith("suitcase: error: ")
    assert "Traceback" not in result.output
    stage = plan.stages[0].directory
    assert not (stage / UPLOAD_COOKIE).exists()
    corrupted = "disk-master.img" if target == "part" else "notes.txt"
    assert not [k for k in held(server, bucket) if k.endswith(corrupted)]  # removed, never kept
    assert unfinished(server, bucket) == []
    proxy.clear()
    assert upload_all(ws, "master").exit_code == 0
    assert real_upload(stage) is not None


def test_fake_upload_cookie_is_never_taken_for_an_upload(
    ws: Path, bucket: str, server: Launched
) -> None:
    plan = fake_build_set(ws, "master")
    stage = plan.stages[0].directory
    result = suitcase(ws, "fake-upload", "master", "--os", OS, "--timestamp", TS)
    assert result.exit_code == 0, result.output
    cookie = read_cookie(stage)
    assert cookie is not None and cookie["fake"] is True
    assert real_upload(stage) is None
    assert "uploaded (fake)" in suitcase(ws, "list").output
    # upload still uploads; fetch finds nothing uploaded by the fake
    other = stage.parent.parent.parent.parent / "other"
    other.mkdir()
    s3(server).create_bucket(Bucket=bucket)
    fetched = suitcase(other, "fetch", "master", "--os", OS, "--timestamp", TS)
    assert fetched.exit_code == 1 and "was never uploaded" in fetched.output
    assert upload_all(ws, "master").exit_code == 0
    assert real_upload(stage) is not None
    assert len(held(server, bucket)) == 3


def test_a_corrupt_object_in_s3_is_never_marked_done_by_fetch(
    ws: Path, bucket: str, server: Launched, tmp_path: Path
) -> None:
    plan = fake_build_set(ws, "master")
    assert upload_all(ws, "master").exit_code == 0
    key = f"suitcase/master/{OS}-{TS}/disk-master.img"
    data = bytearray(s3(server).get_object(Bucket=bucket, Key=key)["Body"].read())
    data[len(data) // 2] ^= 0xFF
    s3(server).put_object(Bucket=bucket, Key=key, Body=bytes(data))
    other = tmp_path / "other"
    other.mkdir()
    result = suitcase(other, "fetch", "master", "--os", OS, "--timestamp", TS)
    assert result.exit_code == 1 and "arrived corrupt" in result.output, result.output
    there = other / plan.stages[0].directory.relative_to(ws)
    assert read_manifest(there) is None
    assert not (there / "disk-master.img").exists()
    assert [p.name for p in there.iterdir() if p.name.startswith(".")] == []


def test_fetch_refuses_a_manifest_pointing_outside_its_stage(
    ws: Path, bucket: str, server: Launched, tmp_path: Path
) -> None:
    fake_build_set(ws, "master")
    assert upload_all(ws, "master").exit_code == 0
    key = f"suitcase/master/{OS}-{TS}/manifest.json"
    data = json.loads(s3(server).get_object(Bucket=bucket, Key=key)["Body"].read())
    data["outputs"][0]["path"] = "../../../../escaped.img"
    s3(server).put_object(Bucket=bucket, Key=key, Body=json.dumps(data).encode())
    other = tmp_path / "other"
    other.mkdir()
    result = suitcase(other, "fetch", "master", "--os", OS, "--timestamp", TS)
    assert result.exit_code == 1 and "inside the stage folder" in result.output
    assert list(other.iterdir()) == [] and not list(tmp_path.rglob("escaped.img"))


def test_a_stale_cookie_goes_before_the_upload_again(
    ws: Path, bucket: str, server: Launched, proxy: FaultProxy
) -> None:
    """A cookie whose objects S3 no longer holds is removed before the upload again sends a
    byte: a run that dies during that upload leaves no cookie claiming what S3 does not hold
    (found by the kill test: a kill -9 inside the upload left the stale cookie)."""
    plan = fake_build_set(ws, "master")
    assert upload_all(ws, "master").exit_code == 0
    stage = plan.stages[0].directory
    assert real_upload(stage) is not None
    client = s3(server)
    for key in held(server, bucket):  # S3 lost them (an endpoint's state, a lifecycle rule)
        client.delete_object(Bucket=bucket, Key=key)
    proxy.max_streak = 1000  # and the upload again dies midway: every try of every part fails
    proxy.add(Fault("500", when=is_upload_part))
    said: list[str] = []
    with pytest.raises(Exception, match=r"InternalError|500"):
        upload_plan(Context.create(ws), plan, False, said.append, trust_cookies=True)
    assert any("its cookie says uploaded, but" in line for line in said), said
    assert not (stage / UPLOAD_COOKIE).exists()


def test_a_corrupt_remote_copy_leaves_the_good_local_stage_as_it_was(
    ws: Path, bucket: str, server: Launched
) -> None:
    """The local stage is done and uploaded; S3 holds a newer copy whose disk is corrupt. The
    fetch fails, and the stage keeps its manifest, cookie and disk, with nothing left beside."""
    plan = fake_build_set(ws, "master")
    assert upload_all(ws, "master").exit_code == 0
    stage = plan.stages[0].directory
    before = {p.name: p.read_bytes() for p in stage.iterdir() if p.is_file()}
    assert UPLOAD_COOKIE in before and "manifest.json" in before
    client = s3(server)
    prefix = f"suitcase/master/{OS}-{TS}/"
    remote = json.loads(
        client.get_object(Bucket=bucket, Key=prefix + "manifest.json")["Body"].read()
    )
    remote["extra"]["rebuilt"] = "elsewhere"  # not the local stage's manifest: fetch goes on
    client.put_object(Bucket=bucket, Key=prefix + "manifest.json", Body=json.dumps(remote).encode())
    data = bytearray(
        client.get_object(Bucket=bucket, Key=prefix + "disk-master.img")["Body"].read()
    )
    data[len(data) // 2] ^= 0xFF
    client.put_object(Bucket=bucket, Key=prefix + "disk-master.img", Body=bytes(data))
    result = suitcase(ws, "fetch", "master", "--os", OS, "--timestamp", TS)
    assert result.exit_code == 1 and "arrived corrupt" in result.output, result.output
    after = {p.name: p.read_bytes() for p in stage.iterdir() if p.is_file()}
    assert after == before


def test_delete_under_another_prefix_keeps_the_cookie_of_the_upload_still_whole(
    ws: Path, bucket: str, server: Launched
) -> None:
    """A cookie goes only with the objects it records: `delete` under a prefix that holds
    nothing of this stage leaves the upload under the old prefix, and its cookie, whole."""
    plan = fake_build_set(ws, "master")
    assert upload_all(ws, "master").exit_code == 0
    stage = plan.stages[0].directory
    cookie = (stage / UPLOAD_COOKIE).read_bytes()
    objects = held(server, bucket)
    (ws / "site.yaml").write_text("prefix: elsewhere\n" + SITE)
    result = suitcase(ws, "delete", "master", "--os", OS, "--timestamp", TS)
    assert result.exit_code == 1 and "no such build set in S3" in result.output, result.output
    assert (stage / UPLOAD_COOKIE).read_bytes() == cookie
    assert held(server, bucket) == objects
    # under the prefix it was uploaded to, delete removes the objects and the cookie with them
    (ws / "site.yaml").write_text(SITE)
    assert suitcase(ws, "delete", "master", "--os", OS, "--timestamp", TS).exit_code == 0
    assert not (stage / UPLOAD_COOKIE).exists() and held(server, bucket) == {}


def test_under_umask_000_a_fetch_makes_nothing_others_can_write(
    ws: Path, bucket: str, server: Launched, tmp_path: Path
) -> None:
    """`umask 000` made images/ and stage folders 0777 and a fetched disk 0666: Suitcase sets
    its own modes, whatever the caller's umask."""
    fake_build_set(ws, "master")
    assert upload_all(ws, "master").exit_code == 0
    other = tmp_path / "other"
    other.mkdir(mode=0o755)
    old = os.umask(0)
    try:
        (tmp_path / "umask-bites").mkdir()  # the umask is 000 for this process
        result = suitcase(other, "fetch", "master", "--os", OS, "--timestamp", TS)
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE((tmp_path / "umask-bites").stat().st_mode) == 0o777
    made = sorted(other.rglob("*"))
    assert any(p.name == "disk-master.img" for p in made)
    loose = [(str(p), oct(stat.S_IMODE(p.stat().st_mode) & 0o022)) for p in made]
    assert [entry for entry in loose if entry[1] != "0o0"] == []
