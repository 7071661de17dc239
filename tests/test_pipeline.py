"""`suitcase all`'s summary and rerun decisions, from recorded manifests, cookies and JUnit files.

The JUnit reports are written by a real pytest run of parametrized tests named as the specs are.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from suitcase.gates import reached
from suitcase.machine import vm_cpus
from suitcase.manifest import read_manifest, write_manifest
from suitcase.pipeline import junit_name, verify_workers
from suitcase.summary import (
    PipelineRecord,
    StepRecord,
    build_rows,
    human_size,
    image_of_case,
    junit_counts,
    record_path,
    render,
)
from suitcase.workspace import BuildSet, Workspace
from tests.fakes import workspace_stage

OS = "Debian-12-x86_64"
TS = "20260101000000"
BSET = BuildSet(OS, TS)
IMAGES = ["master", "vagrant", "aws-hvm", "aws-paravirt"]

SPECS = """
import pytest

@pytest.mark.parametrize("image", {images!r})
def test_spec(image):
    assert image not in {failing!r}

@pytest.mark.parametrize("image", {images!r})
def test_skipped_spec(image):
    if image == "aws-paravirt":  # as the plugin plans it (gates.PLANNED)
        pytest.skip("planned: needs the running system; aws-paravirt is verified offline here")
    if image in {unplanned!r}:  # a spec skipped for a reason found while it ran
        pytest.skip("/etc/cloud/cloud.cfg is missing")
"""


def real_junit(
    tmp_path: Path,
    dest: Path,
    images: list[str],
    failing: tuple[str, ...] = (),
    unplanned: tuple[str, ...] = (),
) -> Path:
    """A JUnit report from a real pytest run whose test ids carry the image type, like specs."""
    spec = tmp_path / f"test_specs_{len(list(tmp_path.glob('test_specs_*')))}.py"
    spec.write_text(SPECS.format(images=images, failing=failing, unplanned=unplanned))
    dest.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(spec),
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={dest}",
            f"--rootdir={tmp_path}",
        ],
        capture_output=True,
        check=False,
        cwd=tmp_path,
    )
    assert dest.is_file()
    return dest


def shipped_set(
    ws: Path, tmp_path: Path, failing: tuple[str, ...] = (), unplanned: tuple[str, ...] = ()
) -> PipelineRecord:
    """A build set as `all` leaves it: manifests, cookies, AMIs, JUnit reports, the record."""
    record = PipelineRecord(record_path(Workspace.at(ws), BSET))
    junit = real_junit(
        tmp_path, ws / "reports" / f"junit-{BSET.id}.xml", IMAGES, failing, unplanned
    )
    ami_junit = real_junit(tmp_path, ws / "reports" / f"junit-{BSET.id}-ami.xml", ["aws-hvm"])
    for number, image in enumerate(IMAGES):
        stage = workspace_stage(ws, image, OS, TS)
        manifest = read_manifest(stage)
        assert manifest is not None
        if image.startswith("aws-"):
            manifest.extra["amis"] = {"us-east-1": {"image_id": f"ami-{number:017x}"}}
            write_manifest(stage, manifest)
        cookie = {
            "fake": False,
            "key": manifest.key,
            "bucket": "suitcase-images",
            "objects": [{"key": f"images/{image}/{BSET.id}/disk.qcow2", "size": 1024}],
        }
        (stage / ".upload_done").write_text(json.dumps(cookie))
        for step, seconds in (("build", 100 + number), ("upload", 10), ("register", 5)):
            record.put(step, image, StepRecord("ran", seconds, manifest.key))
        # recorded as `all` records them: relative to the workspace
        verified = StepRecord("ran", 40, manifest.key, junit=str(junit.relative_to(ws)))
        verified.reached = reached(image, "auto")
        record.put("verify", image, verified)
    ami_verified = StepRecord("ran", 70, "k", junit=str(ami_junit.relative_to(ws)))
    record.put("verify-ami", "aws-hvm", ami_verified)
    record.wall = {"build": 400.0, "verify": 95.0, "total": 600.0}
    record.save()
    return PipelineRecord.load(record.path)


def test_the_summary_says_everything_from_the_recorded_files(
    workspace: Path, tmp_path: Path
) -> None:
    record = shipped_set(workspace, tmp_path)
    rows = build_rows(Workspace.at(workspace), BSET, IMAGES, record)
    assert [r.image for r in rows] == [*IMAGES[:3], "aws-hvm (AMI)", "aws-paravirt"]
    assert all(r.ok for r in rows), [r.problems for r in rows]
    by = {r.image: r for r in rows}
    manifest = read_manifest(workspace / "images" / "aws-hvm" / BSET.id)
    assert manifest is not None
    assert by["aws-hvm"].sha256 == manifest.outputs[0].sha256[:12]
    assert by["aws-hvm"].size == "1.0 KiB"
    assert by["aws-hvm"].specs == "2/0/0"
    assert by["aws-paravirt"].specs == "1/0/1"
    assert by["aws-hvm"].ami == "ami-00000000000000002"
    assert by["master"].ami == "-"
    assert by["vagrant"].s3 == f"s3://suitcase-images/images/vagrant/{BSET.id}/"
    assert by["master"].junit == f"reports/junit-{BSET.id}.xml"
    assert by["aws-hvm (AMI)"].junit == f"reports/junit-{BSET.id}-ami.xml"
    assert by["vagrant"].times == {
        "build": "101 s",
        "verify": "40 s",
        "upload": "10 s",
        "register": "5 s",
    }
    text = render(rows, "suitcase all", record.wall)
    for value in ("ami-00000000000000003", f"junit-{BSET.id}.xml", "2/0/0", "101 s"):
        assert value in text
    assert "wall time: build 400 s, verify 95 s; total 600 s" in text
    assert text.endswith("all of it holds: built, verified, uploaded, registered")


def test_a_workspace_copied_elsewhere_reads_its_own_reports(
    workspace: Path, tmp_path: Path
) -> None:
    """A CI cache restored under another path, or a copy: the record names reports relative to
    the workspace, so the copy's reports are read, not the original's (gone here)."""
    shipped_set(workspace, tmp_path)
    copy = tmp_path / "elsewhere" / "ws"
    shutil.copytree(workspace, copy, symlinks=True)
    shutil.rmtree(workspace / "reports")
    record = PipelineRecord.load(record_path(Workspace.at(copy), BSET))
    reports = [e.junit for images in record.steps.values() for e in images.values() if e.junit]
    assert reports and not any(Path(j).is_absolute() for j in reports)
    rows = build_rows(Workspace.at(copy), BSET, IMAGES, record)
    assert all(r.ok for r in rows), [r.problems for r in rows]
    assert {r.specs for r in rows} >= {"2/0/0", "1/0/1"}


def test_a_failed_spec_a_missing_upload_and_no_ami_fail_the_summary(
    workspace: Path, tmp_path: Path
) -> None:
    record = shipped_set(workspace, tmp_path, failing=("vagrant",))
    (workspace / "images" / "master" / BSET.id / ".upload_done").unlink()
    hvm = workspace / "images" / "aws-hvm" / BSET.id
    manifest = read_manifest(hvm)
    assert manifest is not None
    manifest.extra.pop("amis")
    write_manifest(hvm, manifest)
    rows = {r.image: r for r in build_rows(Workspace.at(workspace), BSET, IMAGES, record)}
    assert rows["vagrant"].specs == "1/1/0"
    assert rows["vagrant"].problems == ["specs did not pass"]
    assert rows["master"].problems == ["not uploaded"]
    assert rows["aws-hvm"].problems == ["no AMI registered"]
    assert rows["aws-paravirt"].ok
    text = render(list(rows.values()), "t", {})
    assert "vagrant: specs did not pass" in text
    assert "all of it holds" not in text


def test_a_spec_skipped_where_it_was_to_run_fails_the_summary(
    workspace: Path, tmp_path: Path
) -> None:
    """ "1 passed, 1 skipped" is no verified image when the skip was not planned from the spec
    files (issue 21, item 6): the row fails and says how many; planned skips stay a pass."""
    record = shipped_set(workspace, tmp_path, unplanned=("vagrant",))
    rows = {r.image: r for r in build_rows(Workspace.at(workspace), BSET, IMAGES, record)}
    assert rows["vagrant"].specs == "1/0/1 (1 unplanned)"
    assert rows["vagrant"].problems == ["specs did not pass"]
    assert rows["aws-paravirt"].specs == "1/0/1" and rows["aws-paravirt"].ok
    assert not rows["vagrant"].ok and rows["master"].ok


def test_a_cookie_of_another_stage_key_or_a_fake_one_is_no_upload(
    workspace: Path, tmp_path: Path
) -> None:
    record = shipped_set(workspace, tmp_path)
    stage = workspace / "images" / "vagrant" / BSET.id
    (stage / ".upload_done").write_text(json.dumps({"fake": True, "key": "0" * 64}))
    master = workspace / "images" / "master" / BSET.id / ".upload_done"
    cookie = json.loads(master.read_text())
    master.write_text(json.dumps({**cookie, "key": "1" * 64}))
    rows = {r.image: r for r in build_rows(Workspace.at(workspace), BSET, IMAGES, record)}
    assert rows["vagrant"].problems == ["not uploaded"]
    assert rows["master"].problems == ["not uploaded"]


def test_skipped_steps_show_what_they_took_when_they_ran(workspace: Path, tmp_path: Path) -> None:
    record = shipped_set(workspace, tmp_path)
    record.put("build", "master", StepRecord("skipped", 102, "k", "done"))
    record.put("upload", "master", StepRecord("skipped", 0, "k", "uploaded before"))
    rows = {r.image: r for r in build_rows(Workspace.at(workspace), BSET, IMAGES, record)}
    assert rows["master"].times["build"] == "skipped (102 s before)"
    assert rows["master"].times["upload"] == "skipped"


def test_no_junit_report_is_no_pass(workspace: Path, tmp_path: Path) -> None:
    record = shipped_set(workspace, tmp_path)
    (workspace / "reports" / f"junit-{BSET.id}-ami.xml").unlink()
    rows = {r.image: r for r in build_rows(Workspace.at(workspace), BSET, IMAGES, record)}
    assert rows["aws-hvm (AMI)"].specs == "no report"
    assert not rows["aws-hvm (AMI)"].ok


def test_junit_counts_by_image_type(tmp_path: Path) -> None:
    junit = real_junit(tmp_path, tmp_path / "r.xml", IMAGES, failing=("master",))
    counts = junit_counts(junit, IMAGES)
    assert dict(counts["master"]) == {"passed": 1, "failed": 1}
    assert dict(counts["aws-paravirt"]) == {"passed": 1, "skipped": 1}
    mixed = real_junit(tmp_path, tmp_path / "u.xml", IMAGES, unplanned=("master",))
    assert dict(junit_counts(mixed, IMAGES)["master"]) == {
        "passed": 1,
        "skipped": 1,
        "unplanned": 1,
    }
    assert junit_counts(tmp_path / "missing.xml", IMAGES) == {}
    (tmp_path / "bad.xml").write_text("<testsuites")
    assert junit_counts(tmp_path / "bad.xml", IMAGES) == {}


@pytest.mark.parametrize(
    ("name", "image"),
    [
        ("test_x[aws-hvm]", "aws-hvm"),
        ("test_x[aws-hvm-3]", "aws-hvm"),
        ("test_x[/etc/fstab-aws-paravirt]", "aws-paravirt"),
        ("test_x", None),
        ("test_x[other]", None),
    ],
)
def test_image_of_case(name: str, image: str | None) -> None:
    assert image_of_case(name, IMAGES) == image


def test_the_record_survives_a_reload_and_ignores_junk(tmp_path: Path) -> None:
    path = tmp_path / "pipeline.json"
    record = PipelineRecord(path)
    record.put("verify", "master", StepRecord("ran", 31.5, "k", junit="/r.xml"))
    again = PipelineRecord.load(path)
    assert again.get("verify", "master") == StepRecord("ran", 31.5, "k", "", "/r.xml")
    record.put("verify", "aws-hvm", StepRecord("ran", 1.0, "k", junit="/r.xml", reached="boot"))
    assert PipelineRecord.load(path).get("verify", "aws-hvm").reached == "boot"  # type: ignore[union-attr]
    bad = {"x": "y", "m": {"status": "ran", "seconds": "ten"}, "v": {"status": "ran", "key": 1}}
    path.write_text(json.dumps({"steps": {"bogus": {}, "build": bad}, "wall": {"a": "b"}}))
    junk = PipelineRecord.load(path)
    assert junk.steps == {"build": {}} and junk.wall == {}
    path.write_text("[1, 2]")
    assert PipelineRecord.load(path).steps == {}


def test_junit_names_never_overwrite_another_steps_report() -> None:
    assert junit_name(BSET, IMAGES, IMAGES, False) == f"junit-{BSET.id}.xml"
    assert junit_name(BSET, ["vagrant"], IMAGES, False) == f"junit-{BSET.id}-vagrant.xml"
    assert junit_name(BSET, ["aws-hvm"], [], True) == f"junit-{BSET.id}-ami.xml"


def test_workers_and_vcpus() -> None:
    assert verify_workers(IMAGES, "auto") == 4
    assert verify_workers(["master"], "auto") == 0
    assert vm_cpus(3, cores=2) == 1  # three VMs on two cores: one vCPU each, not six threads
    assert vm_cpus(1, cores=2) == 2
    assert vm_cpus(2, cores=8) == 4
    assert vm_cpus(0, cores=2) == 2


def test_human_size() -> None:
    assert [human_size(n) for n in (0, 2048, 4 * 1024**3)] == ["0 B", "2.0 KiB", "4.0 GiB"]


def test_aws_hvm_outputs_convert_side_by_side_and_are_checksummed_once_each(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """_finish of aws-hvm with real qemu-img: a raw disk and a streamOptimized VMDK of the same
    content, each with the sha256 of its file, every file checksummed exactly once."""
    import hashlib

    from suitcase import build, manifest
    from suitcase.artifact import disk_info
    from suitcase.aws.s3 import file_crc64nvme
    from suitcase.context import Context

    ctx = Context.create(workspace)
    plan = ctx.plan(OS, "aws-hvm", TS)
    stage = plan.stage("aws-hvm")
    stage.directory.mkdir(parents=True)
    work = stage.directory / ".build"
    (work / "packer").mkdir(parents=True)
    base = work / "base.raw"
    with base.open("wb") as handle:
        handle.truncate(32 * 2**20)
        handle.seek(2**20)
        handle.write(b"suitcase" * 4096)
    subprocess.run(
        [
            "qemu-img",
            "create",
            "-q",
            "-f",
            "qcow2",
            "-F",
            "raw",
            "-b",
            str(base),
            str(work / "packer" / "disk.qcow2"),
        ],
        check=True,
    )
    hashed: list[str] = []
    real = manifest.file_digests

    def counting(path: Path) -> tuple[str, str]:
        hashed.append(path.name)
        return real(path)

    monkeypatch.setattr(manifest, "file_digests", counting)
    outputs = build._finish(ctx, plan, stage, work, None, lambda _: None)  # type: ignore[arg-type]
    assert [(o.path, o.kind) for o in outputs] == [("disk.raw", "raw"), ("disk.vmdk", "vmdk")]
    for output in outputs:
        path = stage.directory / output.path
        assert output.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
        assert output.size == path.stat().st_size
        assert output.crc64nvme == file_crc64nvme(path)  # S3's checksum, from the same read
    assert sorted(hashed) == ["disk.raw", "disk.vmdk"]
    assert (stage.directory / "disk.raw").read_bytes() == base.read_bytes()
    assert disk_info(stage.directory / "disk.vmdk")["format"] == "vmdk"
    assert not list(stage.directory.glob("*.partial"))


def test_a_manifest_written_before_crc64nvme_was_recorded_still_reads(tmp_path: Path) -> None:
    from suitcase.manifest import Manifest

    stage = workspace_stage(tmp_path, "master", OS, TS)
    data = json.loads((stage / "manifest.json").read_text())
    assert data["outputs"][0]["crc64nvme"]
    del data["outputs"][0]["crc64nvme"]
    assert Manifest.from_dict(data).outputs[0].crc64nvme is None
    data["outputs"][0]["crc64nvme"] = "not base64!"
    with pytest.raises(ValueError, match="crc64nvme"):
        Manifest.from_dict(data)


def test_a_rerun_verifies_only_what_did_not_pass_for_its_stage_key(
    workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pipeline._verify with verbs.verify replaced by a real pytest run writing the report."""
    from suitcase import pipeline as pipeline_module
    from suitcase.context import Context

    record = shipped_set(workspace, tmp_path)
    ctx = Context.create(workspace)
    calls: list[tuple[str, int, tuple[str, ...]]] = []

    def verify(
        ctx: Context,
        image: str,
        os_name: str,
        ts: str,
        workers: int,
        mode: str,
        extra: tuple[str, ...] = (),
        source: str = "artifact",
    ) -> int:
        calls.append((image, workers, extra))
        junit = Path(extra[-1].removeprefix("--junitxml="))
        real_junit(tmp_path, junit, image.split(","))
        return 0

    monkeypatch.setattr(pipeline_module.verbs, "verify", verify)
    pipe = pipeline_module.Pipeline(ctx, "all", OS, lambda _: None)
    manifests = {}
    for image in IMAGES:
        manifest = read_manifest(workspace / "images" / image / BSET.id)
        assert manifest is not None
        manifests[image] = manifest
    wall: dict[str, float] = {}
    assert pipe._verify(BSET, manifests, record, "auto", wall)
    assert calls == []  # every image type passed for its key, its report still there
    assert {record.get("verify", i).status for i in IMAGES} == {"skipped"}  # type: ignore[union-attr]

    manifests["vagrant"].key = "1" * 64  # rebuilt since
    assert pipe._verify(BSET, manifests, record, "auto", wall)
    junit = workspace / "reports" / f"junit-{BSET.id}-vagrant.xml"
    assert calls == [("vagrant", 0, ("-q", f"--junitxml={junit}"))]
    assert record.get("verify", "vagrant") == StepRecord(
        "ran", 0.0, "1" * 64, "", str(junit.relative_to(workspace)), "boot"
    )

    calls.clear()
    (workspace / "reports" / f"junit-{BSET.id}.xml").unlink()  # the reports went: again
    assert pipe._verify(BSET, manifests, record, "auto", wall)
    assert [(c[0], c[1]) for c in calls] == [("master,aws-hvm,aws-paravirt", 3)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["all", "bogus", "--os", OS], "bogus"),
        (["all", "--os", "Nope-1"], "Nope-1"),
        (["all", "--os", OS, "--mode", "sideways"], "sideways"),
        (["all", "--os", OS, "--timestamp", "2026"], "2026"),
    ],
)
def test_all_refuses_bad_input_in_one_line_and_writes_nothing(
    workspace: Path, args: list[str], message: str
) -> None:
    from click.testing import CliRunner

    from suitcase.cli import cli
    from tests.conftest import tree_snapshot

    before = tree_snapshot(workspace)
    result = CliRunner().invoke(cli, ["--workspace", str(workspace), *args])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("suitcase: error: ") and message in lines[0]
    assert tree_snapshot(workspace) == before
