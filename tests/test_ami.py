"""Registering and deregistering AMIs against the fixed moto server over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from suitcase.aws import ebs, tags
from suitcase.aws.ami import STATE_FILE, AmiSettings, deregister_stage, register_stage
from suitcase.aws.clients import AwsTarget
from suitcase.aws.ebs import BLOCK_SIZE
from suitcase.aws.images import ami_name
from suitcase.cli import cli
from suitcase.context import Context
from suitcase.errors import ConfigError
from suitcase.manifest import Manifest, read_manifest
from tests import aws_endpoint
from tests.aws_endpoint import RecordingTarget, target_for
from tests.aws_proxy import Fault, FaultProxy, is_ebs_put, is_ec2_or_ebs
from tests.endpoint_support import REGION, Launched, put_snapshot
from tests.fakes import fake_stage, mark_verified

endpoint = aws_endpoint.endpoint  # fixtures: the fixed moto server, reset per test
aws_env = aws_endpoint.aws_env

SETTINGS = AmiSettings(workers=4, wait_interval=0.05)


def _quiet(text: str) -> None:
    pass


def _images(target: RecordingTarget) -> list[dict[str, Any]]:
    images: list[dict[str, Any]] = target.client("ec2").describe_images(Owners=["self"])["Images"]
    return images


def _snapshots(target: RecordingTarget) -> list[str]:
    answer = target.client("ec2").describe_snapshots(OwnerIds=["self"])["Snapshots"]
    return sorted(s["SnapshotId"] for s in answer)


def _register(target: RecordingTarget, stage: Path, say: Any = _quiet) -> Any:
    manifest = read_manifest(stage)
    assert manifest is not None
    return register_stage(target, stage, manifest, SETTINGS, say)


def _aws_cli(url: str, *args: str) -> Any:
    aws = Path(sys.executable).with_name("aws")
    out = subprocess.run(
        [str(aws), "--endpoint-url", url, "--region", REGION, "--output", "json", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out)


def test_register_hvm_sends_every_attribute(aws_env: Launched, tmp_path: Path) -> None:
    stage = tmp_path / "aws-hvm"
    manifest = fake_stage(stage)
    target = target_for(aws_env.url)
    result = _register(target, stage)
    (request,) = target.named("RegisterImage")
    name = f"suitcase-Debian-12-x86_64-aws-hvm-20260101000000-{manifest.key[:12]}"
    assert request["Name"] == name
    assert request["Architecture"] == "x86_64"
    assert request["VirtualizationType"] == "hvm"
    assert request["RootDeviceName"] == "/dev/xvda"
    assert request["BlockDeviceMappings"] == [
        {
            "DeviceName": "/dev/xvda",
            "Ebs": {
                "SnapshotId": result.snapshot_id,
                "VolumeSize": 1,
                "VolumeType": "gp3",
                "DeleteOnTermination": True,
            },
        }
    ]
    assert request["EnaSupport"] is True
    assert request["SriovNetSupport"] == "simple"
    assert request["BootMode"] == "legacy-bios"
    assert request["ImdsSupport"] == "v2.0"
    assert "KernelId" not in request
    (spec,) = request["TagSpecifications"]
    sent_tags = {t["Key"]: t["Value"] for t in spec["Tags"]}
    assert spec["ResourceType"] == "image"
    assert sent_tags == {
        tags.BUILD_SET: "Debian-12-x86_64-20260101000000",
        tags.STAGE_KEY: manifest.key,
        tags.OS: "Debian-12-x86_64",
        tags.TIMESTAMP: "20260101000000",
        tags.IMAGE_TYPE: "aws-hvm",
        tags.VERSION: "0.1.0",
    }
    # what the AWS CLI reads back through the endpoint
    (image,) = _aws_cli(aws_env.url, "ec2", "describe-images", "--owners", "self")["Images"]
    assert image["ImageId"] == result.image_id
    assert image["Architecture"] == "x86_64" and image["VirtualizationType"] == "hvm"
    assert image["RootDeviceName"] == "/dev/xvda" and image["RootDeviceType"] == "ebs"
    assert image["BlockDeviceMappings"] == request["BlockDeviceMappings"]
    assert image["EnaSupport"] is True and image["SriovNetSupport"] == "simple"
    assert image["BootMode"] == "legacy-bios" and image["ImdsSupport"] == "v2.0"
    assert {t["Key"]: t["Value"] for t in image["Tags"]} == sent_tags
    (snapshot,) = _aws_cli(aws_env.url, "ec2", "describe-snapshots", "--owner-ids", "self")[
        "Snapshots"
    ]
    assert snapshot["SnapshotId"] == result.snapshot_id
    assert {t["Key"]: t["Value"] for t in snapshot["Tags"]}[tags.STAGE_KEY] == manifest.key
    # the manifest records it, the state file is gone, the snapshot equals the disk
    recorded = read_manifest(stage)
    assert recorded is not None
    assert recorded.extra["amis"][REGION]["image_id"] == result.image_id
    assert recorded.extra["amis"][REGION]["snapshot_id"] == result.snapshot_id
    assert not (stage / STATE_FILE).exists()
    assert ebs.compare_snapshot(target, result.snapshot_id, stage / "disk.raw") == []


def test_register_twice_makes_one_ami(aws_env: Launched, tmp_path: Path) -> None:
    stage = tmp_path / "aws-hvm"
    fake_stage(stage)
    target = target_for(aws_env.url)
    first = _register(target, stage)
    second = _register(target, stage)
    assert first.created and not second.created
    assert second.image_id == first.image_id
    assert "already registered" in second.line()
    assert len(_images(target)) == 1
    assert _snapshots(target) == [first.snapshot_id]
    assert len(target.named("RegisterImage")) == 1
    assert len(target.named("StartSnapshot")) == 1


def test_deregister_twice_leaves_nothing(aws_env: Launched, tmp_path: Path) -> None:
    stage = tmp_path / "aws-hvm"
    fake_stage(stage)
    target = target_for(aws_env.url)
    result = _register(target, stage)
    manifest = read_manifest(stage)
    assert manifest is not None
    lines = deregister_stage(target, stage, manifest, _quiet)
    assert f"aws-hvm: deregistered {result.image_id} in {REGION}" in lines
    assert f"aws-hvm: deleted snapshot {result.snapshot_id} in {REGION}" in lines
    assert _images(target) == [] and _snapshots(target) == []
    again = read_manifest(stage)
    assert again is not None and "amis" not in again.extra
    assert deregister_stage(target, stage, again, _quiet) == [
        "aws-hvm: no AMI registered, nothing to deregister"
    ]


def test_register_paravirt_uses_the_regions_pv_grub(aws_env: Launched, tmp_path: Path) -> None:
    stage = tmp_path / "aws-paravirt"
    fake_stage(stage, "aws-paravirt")
    target = target_for(aws_env.url)
    said: list[str] = []
    result = _register(target, stage, said.append)
    (request,) = target.named("RegisterImage")
    assert request["KernelId"] == "aki-919dcaf8"  # AWS's us-east-1 pv-grub-hd0_1.05-x86_64
    assert request["VirtualizationType"] == "paravirtual"
    # a paravirtual root is /dev/sda1 (EC2 User Guide, "Device names on Linux instances")
    assert request["RootDeviceName"] == "/dev/sda1"
    assert request["BlockDeviceMappings"][0]["DeviceName"] == "/dev/sda1"
    assert not {"EnaSupport", "SriovNetSupport", "BootMode"} & set(request)
    assert any("previous-generation instance types" in line for line in said)
    (image,) = _images(target)
    assert image["KernelId"] == "aki-919dcaf8" and image["ImageId"] == result.image_id


def test_paravirt_is_refused_where_there_is_no_pv_grub(aws_env: Launched, tmp_path: Path) -> None:
    stage = tmp_path / "aws-paravirt"
    fake_stage(stage, "aws-paravirt")
    target = target_for(aws_env.url, region="eu-north-1")
    with pytest.raises(ConfigError, match="eu-north-1 has no PV-GRUB kernel image"):
        _register(target, stage)
    assert target.named("StartSnapshot") == [] and _snapshots(target) == []


def test_faults_on_a_fifth_of_calls_still_make_one_correct_ami(
    aws_env: Launched, tmp_path: Path
) -> None:
    stage = tmp_path / "aws-hvm"
    fake_stage(stage, disk_size=32 * 2**20, extra=40)  # about 60 EC2 and EBS calls
    with FaultProxy(aws_env.url, seed=7) as proxy:
        # a fifth of EC2 and EBS calls fail: 503 (Unavailable / ServiceUnavailableException) or
        # throttled (RequestLimitExceeded / 429 ThrottlingException), as a busy AWS answers
        proxy.add(Fault("503", when=is_ec2_or_ebs, probability=0.1))
        proxy.add(Fault("throttle", when=is_ec2_or_ebs, probability=0.1))
        result = _register(target_for(proxy.url), stage)
        assert sum(proxy.hits.values()) >= 5, (proxy.hits, proxy.requests)
    direct = target_for(aws_env.url)
    (image,) = _images(direct)
    assert image["ImageId"] == result.image_id
    assert _snapshots(direct) == [result.snapshot_id]
    assert ebs.compare_snapshot(direct, result.snapshot_id, stage / "disk.raw") == []


def test_ctrl_c_during_the_upload_names_the_snapshot_and_the_rerun_finishes_it(
    aws_env: Launched, tmp_path: Path
) -> None:
    stage = tmp_path / "aws-hvm"
    fake_stage(stage)
    target = target_for(aws_env.url)
    puts = 0

    def interrupt(**kwargs: Any) -> None:
        nonlocal puts
        puts += 1
        if puts == 2:
            raise KeyboardInterrupt

    class Interrupting(RecordingTarget):
        def client(self, service: str, **config: Any) -> Any:
            made = super().client(service, **config)
            made.meta.events.register("after-call.ebs.PutSnapshotBlock", interrupt)
            return made

    said: list[str] = []
    settings = AmiSettings(workers=1, wait_interval=0.05)
    manifest = read_manifest(stage)
    assert manifest is not None
    with pytest.raises(KeyboardInterrupt):
        register_stage(Interrupting(**_fields(target)), stage, manifest, settings, said.append)
    (pending,) = _snapshots(target)
    assert any(pending in line and STATE_FILE in line for line in said)
    assert json.loads((stage / STATE_FILE).read_text())[REGION]["snapshot_id"] == pending
    result = _register(target, stage)
    assert result.snapshot_id == pending and _snapshots(target) == [pending]
    assert ebs.compare_snapshot(target, pending, stage / "disk.raw") == []


def test_a_rebuilt_disk_never_reuses_the_old_snapshot(aws_env: Launched, tmp_path: Path) -> None:
    stage = tmp_path / "aws-hvm"
    fake_stage(stage)
    target = target_for(aws_env.url)

    def stop(**kwargs: Any) -> None:
        raise KeyboardInterrupt

    class Stopping(RecordingTarget):
        def client(self, service: str, **config: Any) -> Any:
            made = super().client(service, **config)
            made.meta.events.register("before-call.ec2.RegisterImage", stop)
            return made

    manifest = read_manifest(stage)
    assert manifest is not None
    with pytest.raises(KeyboardInterrupt):  # the snapshot is complete, no AMI yet
        register_stage(Stopping(**_fields(target)), stage, manifest, SETTINGS, _quiet)
    (old,) = _snapshots(target)
    fake_stage(stage)  # rebuilt: same stage key, other bytes
    result = _register(target, stage)
    assert result.snapshot_id != old and _snapshots(target) == [result.snapshot_id]
    assert ebs.compare_snapshot(target, result.snapshot_id, stage / "disk.raw") == []


def _fields(target: RecordingTarget) -> dict[str, Any]:
    return {"kind": target.kind, "region": target.region, "endpoint_url": target.endpoint_url}


KILLER = """
import os, signal, sys
from pathlib import Path
from suitcase.aws.ami import AmiSettings, register_stage
from suitcase.aws.clients import AwsTarget
from suitcase.manifest import read_manifest

url, stage, event, nth = sys.argv[1:5]
seen = []

class Killing(AwsTarget):
    def client(self, service, **config):
        made = super().client(service, **config)
        def hook(**kwargs):
            seen.append(1)
            if len(seen) >= int(nth):
                os.kill(os.getpid(), signal.SIGKILL)
        made.meta.events.register(event, hook)
        return made

target = Killing(kind="account", region="us-east-1", endpoint_url=url)
register_stage(target, Path(stage), read_manifest(Path(stage)),
               AmiSettings(workers=1, wait_interval=0.05), print)
"""


@pytest.mark.parametrize(
    ("event", "nth"),
    [
        ("after-call.ebs.StartSnapshot", 1),  # the id was never recorded: ClientToken finds it
        ("after-call.ebs.PutSnapshotBlock", 2),  # half the blocks sent
        ("after-call.ec2.RegisterImage", 1),  # the AMI exists, the manifest does not know it
    ],
)
def test_kill_9_then_rerun_ends_with_one_ami_and_no_orphan(
    aws_env: Launched, tmp_path: Path, event: str, nth: int
) -> None:
    stage = tmp_path / "aws-hvm"
    fake_stage(stage)
    killed = subprocess.run(
        [sys.executable, "-c", KILLER, aws_env.url, str(stage), event, str(nth)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -9, killed.stderr
    target = target_for(aws_env.url)
    assert len(_snapshots(target)) == 1
    result = _register(target, stage)
    (image,) = _images(target)
    assert image["ImageId"] == result.image_id
    assert _snapshots(target) == [result.snapshot_id]
    assert ebs.compare_snapshot(target, result.snapshot_id, stage / "disk.raw") == []
    assert not (stage / STATE_FILE).exists()


# --- the CLI --------------------------------------------------------------------------------


def _built_set(
    workspace: Path, timestamp: str, disk_size: int = 2**20, verified: bool = True
) -> Context:
    """Fake done stages of a real plan (keys as Suitcase computes them), without building;
    with `verified`, each as a whole booted run of the specs that passed records it."""
    ctx = Context.create(workspace)
    plan = ctx.plan("Debian-12-x86_64", "aws-hvm", timestamp)
    for stage in plan.stages:
        fake_stage(
            stage.directory,
            stage.image.name,
            key=stage.key,
            timestamp=timestamp,
            inputs=stage.inputs,
            disk_size=disk_size,
        )
        if verified:
            mark_verified(stage.directory, stage.image.name)
    return ctx


def test_cli_register_and_deregister(aws_env: Launched, workspace: Path, runner: CliRunner) -> None:
    ts = "20260102030405"
    _built_set(workspace, ts)
    args = ["aws-hvm", "--os", "Debian-12-x86_64", "--timestamp", ts]
    # not uploaded: register uploads first, as the original's did (here the account's bucket
    # does not exist, so it stops there, in one line, with no AMI made)
    refused = runner.invoke(cli, ["register", *args])
    assert refused.exit_code == 1, refused.output
    assert "uploading what is not uploaded yet" in refused.output
    assert "suitcase: error: bucket suitcase-images does not exist" in refused.output
    cookie = workspace / "images" / "aws-hvm" / f"Debian-12-x86_64-{ts}" / ".upload_done"
    cookie.write_text('{"key": "an earlier build of the stage"}\n')
    stale = runner.invoke(cli, ["register", *args])  # a cookie of another key does not count
    assert stale.exit_code == 1 and "uploading what is not uploaded yet" in stale.output
    assert _images(target_for(aws_env.url)) == []
    assert runner.invoke(cli, ["fake-upload", *args]).exit_code == 0
    first = runner.invoke(cli, ["register", *args])
    assert first.exit_code == 0, first.output
    assert "aws-hvm: registered ami-" in first.output
    second = runner.invoke(cli, ["register", "awshvm", "--os", "Debian-12-x86_64"])  # latest
    assert second.exit_code == 0, second.output
    assert "aws-hvm: already registered ami-" in second.output
    target = target_for(aws_env.url)
    assert len(_images(target)) == 1
    manifest = read_manifest(workspace / "images" / "aws-hvm" / f"Debian-12-x86_64-{ts}")
    assert isinstance(manifest, Manifest) and REGION in manifest.extra["amis"]
    gone = runner.invoke(cli, ["deregister", *args])
    assert gone.exit_code == 0 and "deregistered ami-" in gone.output
    again = runner.invoke(cli, ["deregister", *args])
    assert again.exit_code == 0 and "nothing to deregister" in again.output
    assert _images(target) == [] and _snapshots(target) == []


def test_cli_register_needs_a_whole_passed_verification_of_the_stage(
    aws_env: Launched, workspace: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An upload cookie, a fake one least of all, is never enough (issue 21, item 6): register
    refuses, in one line and before anything is uploaded or registered, a stage never verified,
    verified as another build, verified in part, or verified offline when the site asks for a
    booted run; the site's `register_requires: offline` accepts the offline pass."""
    monkeypatch.delenv("SUITCASE_REGISTER_REQUIRES", raising=False)
    ts = "20260102030407"
    ctx = _built_set(workspace, ts, verified=False)
    stage = ctx.plan("Debian-12-x86_64", "aws-hvm", ts).stage("aws-hvm").directory
    args = ["aws-hvm", "--os", "Debian-12-x86_64", "--timestamp", ts]
    assert runner.invoke(cli, ["fake-upload", *args]).exit_code == 0
    target = target_for(aws_env.url)

    def refused(why: str) -> None:
        result = runner.invoke(cli, ["register", *args])
        assert result.exit_code == 1, result.output
        errors = [line for line in result.output.splitlines() if "error" in line]
        assert errors == [
            f"suitcase: error: aws-hvm of Debian-12-x86_64-{ts} is not registered: {why}; verify "
            f"it first (suitcase verify aws-hvm --os Debian-12-x86_64 --timestamp {ts})"
        ], result.output
        assert "uploading" not in result.output and "Traceback" not in result.output
        assert _images(target) == [] and _snapshots(target) == []

    refused("never verified")
    mark_verified(stage, "aws-hvm", key="0" * 64)
    refused("verified as another build of the stage (stage key differs)")
    mark_verified(stage, "aws-hvm", complete=False)
    refused("only part of the specs ran (-k, -m or a file selection)")
    mark_verified(stage, "aws-hvm", passed=False)
    refused("its last verification did not pass")
    mark_verified(stage, "aws-hvm", mode="offline", reached="offline")
    refused("verified offline; the site's register_requires asks for boot")
    monkeypatch.setenv("SUITCASE_REGISTER_REQUIRES", "offline")
    accepted = runner.invoke(cli, ["register", *args])
    assert accepted.exit_code == 0, accepted.output
    assert "aws-hvm: registered ami-" in accepted.output and len(_images(target)) == 1


def test_sigterm_during_the_upload_prints_the_snapshot_and_the_rerun_finishes(
    aws_env: Launched, workspace: Path, runner: CliRunner
) -> None:
    ts = "20260102030405"
    _built_set(workspace, ts, disk_size=12 * 2**20)
    args = ["aws-hvm", "--os", "Debian-12-x86_64", "--timestamp", ts]
    assert runner.invoke(cli, ["fake-upload", *args]).exit_code == 0
    stage = workspace / "images" / "aws-hvm" / f"Debian-12-x86_64-{ts}"
    with FaultProxy(aws_env.url) as proxy:
        proxy.add(Fault("delay", when=is_ebs_put, seconds=1.0))  # a slow link
        env = {**os.environ, "AWS_ENDPOINT_URL": proxy.url, "SUITCASE_EBS_WORKERS": "1"}
        process = subprocess.Popen(
            [sys.executable, "-c", "from suitcase.cli import main; main()", "register", *args],
            env=env,
            cwd=workspace,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while not (stage / STATE_FILE).exists() or "snap-" not in (stage / STATE_FILE).read_text():
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.1)
        time.sleep(0.5)
        process.terminate()  # SIGTERM
        _, err = process.communicate(timeout=60)
    assert process.returncode != 0
    pending = json.loads((stage / STATE_FILE).read_text())[REGION]["snapshot_id"]
    assert f"interrupted: snapshot {pending} is unfinished" in err
    target = target_for(aws_env.url)
    assert _images(target) == [] and _snapshots(target) == [pending]
    rerun = runner.invoke(cli, ["register", *args])
    assert rerun.exit_code == 0, rerun.output
    assert f"finishing snapshot {pending}" in rerun.output
    assert len(_images(target)) == 1 and _snapshots(target) == [pending]


def test_cli_register_refuses_image_types_without_an_ami(
    aws_env: Launched, workspace: Path, runner: CliRunner
) -> None:
    result = runner.invoke(cli, ["register", "vagrant", "--os", "Debian-12-x86_64"])
    assert result.exit_code == 2
    assert result.output.strip() == (
        "suitcase: error: 'vagrant' has no AMI image type: register aws-hvm or aws-paravirt"
    )


def test_listed_accounts_may_launch_the_ami_and_copy_its_snapshot(
    aws_env: Launched, tmp_path: Path
) -> None:
    stage = tmp_path / "aws-hvm"
    manifest = fake_stage(stage)
    target = target_for(aws_env.url)
    accounts = ("111122223333", "444455556666")
    settings = AmiSettings(workers=4, wait_interval=0.05, launch_accounts=accounts)
    result = register_stage(target, stage, manifest, settings, _quiet)
    ec2 = target.client("ec2")
    launch = ec2.describe_image_attribute(ImageId=result.image_id, Attribute="launchPermission")
    assert sorted(p["UserId"] for p in launch["LaunchPermissions"]) == list(accounts)
    volume = ec2.describe_snapshot_attribute(
        SnapshotId=result.snapshot_id, Attribute="createVolumePermission"
    )
    assert sorted(p["UserId"] for p in volume["CreateVolumePermissions"]) == list(accounts)


def test_site_settings_for_amis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from suitcase.config import Site

    site = tmp_path / "site.yaml"
    site.write_text("ami_boot_mode: uefi\nami_launch_accounts: ['111122223333']\n")
    loaded = Site.load(site)
    settings = AmiSettings.from_site(loaded)
    assert settings.boot_mode == "uefi" and settings.launch_accounts == ("111122223333",)
    assert settings.imds_support == "v2.0" and settings.workers == 0  # left to the target
    embedded = AwsTarget(kind="embedded", region=REGION, endpoint_url="http://127.0.0.1:1")
    account = AwsTarget(kind="account", region=REGION)
    assert settings.for_target(embedded).workers == ebs.DEFAULT_WORKERS  # measured here
    assert settings.for_target(account).workers == ebs.ACCOUNT_WORKERS  # coldsnap's
    assert settings.for_target(embedded).wait_interval == 1.0
    assert settings.for_target(account).wait_interval is None  # the waiters' own 15 s
    monkeypatch.setenv("SUITCASE_AMI_LAUNCH_ACCOUNTS", "111122223333,444455556666")
    monkeypatch.setenv("SUITCASE_EBS_WORKERS", "3")
    settings = AmiSettings.from_site(Site.load(site))
    assert settings.launch_accounts == ("111122223333", "444455556666") and settings.workers == 3
    assert settings.for_target(AwsTarget(kind="account", region=REGION)).workers == 3
    monkeypatch.delenv("SUITCASE_AMI_LAUNCH_ACCOUNTS")
    monkeypatch.delenv("SUITCASE_EBS_WORKERS")
    for bad, message in (
        ("ami_boot_mode: bios\n", "key 'ami_boot_mode' must be 'legacy-bios', 'uefi' or"),
        ("ami_launch_accounts: ['12']\n", r"ami_launch_accounts\[0\]' must be a 12-digit"),
        ("ami_imds_support: v1\n", "key 'ami_imds_support' must be 'v2.0' or ''"),
        ("ebs_workers: 500\n", "key 'ebs_workers' must be less than or equal to 64"),
    ):
        site.write_text(bad)
        with pytest.raises(ConfigError, match=message):
            Site.load(site)


def test_copies_to_other_regions_are_tagged_readable_and_deregistered(
    aws_env: Launched, tmp_path: Path
) -> None:
    stage = tmp_path / "aws-hvm"
    manifest = fake_stage(stage)
    target = target_for(aws_env.url)
    regions = ("us-west-2", "eu-west-1")
    settings = AmiSettings(workers=4, wait_interval=0.05, copy_regions=regions)
    result = register_stage(target, stage, manifest, settings, _quiet)
    assert [c.region for c in result.copies] == list(regions)
    (source,) = _images(target)
    for copy in result.copies:
        there = target_for(aws_env.url, copy.region)
        (image,) = _images(there)
        assert image["ImageId"] == copy.image_id != result.image_id
        for field in ("Architecture", "VirtualizationType", "RootDeviceName", "EnaSupport"):
            assert image[field] == source[field], field
        assert image["BootMode"] == "legacy-bios" and image["ImdsSupport"] == "v2.0"
        assert {t["Key"]: t["Value"] for t in image["Tags"]}[tags.STAGE_KEY] == manifest.key
        assert _snapshots(there) == [copy.snapshot_id] != [result.snapshot_id]
        assert ebs.compare_snapshot(there, copy.snapshot_id, stage / "disk.raw") == []
        assert f"copied to {copy.region}: {copy.image_id}" in result.line()
    recorded = read_manifest(stage)
    assert recorded is not None and sorted(recorded.extra["amis"]) == sorted([REGION, *regions])
    again = register_stage(target, stage, recorded, settings, _quiet)
    assert not again.created and not any(c.created for c in again.copies)
    assert [c.image_id for c in again.copies] == [c.image_id for c in result.copies]
    lines = deregister_stage(target, stage, recorded, _quiet)
    assert len([line for line in lines if "deregistered" in line]) == 3
    for region in (REGION, *regions):
        assert _images(target_for(aws_env.url, region)) == []
        assert _snapshots(target_for(aws_env.url, region)) == []


def test_a_paravirt_copy_boots_with_the_destinations_pv_grub(
    aws_env: Launched, tmp_path: Path
) -> None:
    stage = tmp_path / "aws-paravirt"
    manifest = fake_stage(stage, "aws-paravirt")
    settings = AmiSettings(workers=4, wait_interval=0.05, copy_regions=("us-west-2",))
    result = register_stage(target_for(aws_env.url), stage, manifest, settings, _quiet)
    (image,) = _images(target_for(aws_env.url, "us-west-2"))
    assert image["ImageId"] == result.copies[0].image_id
    assert image["KernelId"] == "aki-fc8f11cc"  # AWS's us-west-2 pv-grub-hd0_1.05-x86_64


def test_cli_register_refused_by_a_taken_name_is_one_line(
    aws_env: Launched, workspace: Path, runner: CliRunner
) -> None:
    """An AMI that is not the stage's holds the name: `register` exits non-zero with one line
    naming that AMI and what to do; no traceback, no second AMI."""
    ts = "20260102030406"
    ctx = _built_set(workspace, ts)
    args = ["aws-hvm", "--os", "Debian-12-x86_64", "--timestamp", ts]
    assert runner.invoke(cli, ["fake-upload", *args]).exit_code == 0
    stage = ctx.plan("Debian-12-x86_64", "aws-hvm", ts).stage("aws-hvm").directory
    manifest = read_manifest(stage)
    assert isinstance(manifest, Manifest)
    target = target_for(aws_env.url)
    snapshot_id = put_snapshot(target.client("ebs"), {0: os.urandom(BLOCK_SIZE)})
    ec2 = target.client("ec2")
    ebs.wait_completed(ec2, snapshot_id, interval=0.2)
    squatter = ec2.register_image(
        Name=ami_name("suitcase", manifest),
        RootDeviceName="/dev/xvda",
        BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": snapshot_id}}],
    )["ImageId"]
    refused = runner.invoke(cli, ["register", *args])
    assert refused.exit_code != 0
    errors = [line for line in refused.output.splitlines() if line.startswith("suitcase: error")]
    assert len(errors) == 1 and f"already used by {squatter}" in errors[0], refused.output
    assert "Traceback" not in refused.output
    assert [i["ImageId"] for i in _images(target)] == [squatter]
