"""The plugin verifies what ships and builds only what --suitcase-build allows (pytester, real
Packer with the fake templates of test_plugin, real qemu-img)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from suitcase.config import PROJECT_ROOT
from tests.test_plugin import ARGS, _specs

pytest_plugins = ["pytester"]
SET = "Fake-12-x86_64-20260101000000"


def _stage(root: Path, image: str) -> Path:
    return root / "images" / image / SET


def _manifest(root: Path, image: str) -> Any:
    return json.loads((_stage(root, image) / "manifest.json").read_text())


def _runs(home: Path) -> list[str]:
    path = home / "packer-runs.txt"
    return path.read_text().split() if path.exists() else []


def _built(pytester: pytest.Pytester, image: str = "aws-hvm") -> None:
    result = pytester.runpytest_subprocess("specs", f"--image={image}", *ARGS)
    result.assert_outcomes(passed=1 if image == "aws-hvm" else 2)


def test_a_stale_stage_fails_instead_of_being_rebuilt(
    pytester: pytest.Pytester, fake_home: Path
) -> None:
    _specs(pytester)
    _built(pytester)
    runs = _runs(fake_home)
    (fake_home / "scripts" / "aws-hvm" / "10-new.sh").write_text("#!/bin/sh\n")
    result = pytester.runpytest_subprocess("specs", "--image=aws-hvm", *ARGS)
    result.assert_outcomes(errors=1, passed=0)
    result.stdout.fnmatch_lines(
        [
            "*aws-hvm of Fake-12-x86_64-20260101000000 is stale (inputs changed: scripts)*"
            "--suitcase-build stale*"
        ]
    )
    assert _runs(fake_home) == runs  # nothing was rebuilt
    again = pytester.runpytest_subprocess(
        "specs", "--image=aws-hvm", "--suitcase-build=stale", *ARGS
    )
    again.assert_outcomes(passed=1)
    assert _runs(fake_home) == [*runs, "aws-hvm"]  # only the stale stage, not its master


def test_never_builds_nothing_and_says_what_is_missing(
    pytester: pytest.Pytester, fake_home: Path
) -> None:
    _specs(pytester)
    result = pytester.runpytest_subprocess(
        "specs", "--image=aws-hvm", "--suitcase-build=never", *ARGS
    )
    result.assert_outcomes(errors=1, passed=0)
    result.stdout.fnmatch_lines(["*master of * is not ready (not built yet)*never builds*"])
    assert _runs(fake_home) == []
    _built(pytester)  # once built, `never` verifies it as it is
    runs = _runs(fake_home)
    again = pytester.runpytest_subprocess(
        "specs", "--image=aws-hvm", "--suitcase-build=never", *ARGS
    )
    again.assert_outcomes(passed=1)
    assert _runs(fake_home) == runs


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--timestamp=20250101000000"], "build set Fake-12-x86_64-20250101000000 does not exist"),
        (["--timestamp=latest"], "no build set of Fake-12-x86_64 with a completed stage"),
        (["--suitcase-workspace=no-such-ws"], "workspace no-such-ws does not exist"),
        (["--suitcase-build=sometimes"], "--suitcase-build 'sometimes': choose one of never"),
    ],
)
def test_naming_what_does_not_exist_is_a_usage_error(
    pytester: pytest.Pytester, fake_home: Path, args: list[str], message: str
) -> None:
    _specs(pytester)
    base = [a for a in ARGS if not a.startswith("--timestamp")]
    result = pytester.runpytest_subprocess("specs", "--image=aws-hvm", *base, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    lines = [line for line in [*result.outlines, *result.errlines] if line.strip()]
    assert any(message in line for line in lines), lines
    assert _runs(fake_home) == [] and not (pytester.path / "no-such-ws").exists()


def test_a_same_size_tampered_artifact_fails_before_any_spec(
    pytester: pytest.Pytester, fake_home: Path
) -> None:
    _specs(pytester)
    _built(pytester)
    record = _manifest(pytester.path, "aws-hvm")["extra"]["verification"]
    raw = _stage(pytester.path, "aws-hvm") / "disk.raw"
    manifest_sha = next(
        o["sha256"] for o in _manifest(pytester.path, "aws-hvm")["outputs"] if o["kind"] == "raw"
    )
    assert record["passed"] is True
    assert record["file"] == {"path": "disk.raw", "sha256": manifest_sha}
    st = raw.stat()
    with raw.open("r+b") as handle:  # same size, mtime put back: only the ctime tells
        handle.seek(4096)
        handle.write(b"tampered")
    os.utime(raw, ns=(st.st_atime_ns, st.st_mtime_ns))
    result = pytester.runpytest_subprocess("specs", "--image=aws-hvm", *ARGS)
    result.assert_outcomes(errors=1, passed=0)
    result.stdout.fnmatch_lines([f"*{raw} does not match its manifest: sha256*"])
    record = _manifest(pytester.path, "aws-hvm")["extra"]["verification"]
    assert record["passed"] is False and record["file"]["sha256"] is None


def _copy_spec(pytester: pytest.Pytester, relative: str) -> None:
    target = pytester.path / "specs" / relative
    shutil.copy(PROJECT_ROOT / "specs" / relative, target)


def test_vagrant_specs_see_the_box_and_its_metadata(
    pytester: pytest.Pytester, fake_home: Path
) -> None:
    _specs(pytester)
    _copy_spec(pytester, "vagrant/test_box.py")  # the real spec, on the fake's real box
    (pytester.path / "specs" / "vagrant" / "test_disk.py").write_text(
        "def test_disk_is_the_boxs(suitcase_disk, suitcase_box):\n"
        "    assert suitcase_disk == suitcase_box / 'box.img' and suitcase_disk.is_file()\n"
    )
    result = pytester.runpytest_subprocess("specs", "--image=vagrant", *ARGS)
    result.assert_outcomes(passed=3)
    box_path = _manifest(pytester.path, "vagrant")["extra"]["verification"]["file"]["path"]
    assert box_path == f"{SET}.box"
    assert not (pytester.path / "images" / ".verify" / SET / "vagrant").exists()  # removed after


def test_a_corrupted_vmdk_fails_its_spec(pytester: pytest.Pytester, fake_home: Path) -> None:
    _specs(pytester)
    _copy_spec(pytester, "aws-hvm/test_vmdk.py")
    result = pytester.runpytest_subprocess("specs", "--image=aws-hvm", *ARGS)
    result.assert_outcomes(passed=2)
    vmdk = _stage(pytester.path, "aws-hvm") / "disk.vmdk"
    data = bytearray(vmdk.read_bytes())
    data[-600] ^= 0xFF  # inside the last grain or its table: same size, different file
    vmdk.write_bytes(bytes(data))
    result = pytester.runpytest_subprocess("specs", "--image=aws-hvm", *ARGS)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([f"*{vmdk} does not match its manifest*"])


def test_verify_verb_refuses_a_stale_stage_in_one_line(fake_home: Path, tmp_path: Path) -> None:
    from suitcase.cli import cli

    (fake_home / "specs" / "common").mkdir()
    (fake_home / "specs" / "common" / "test_built.py").write_text(
        "def test_built(suitcase_artifact):\n    assert suitcase_artifact.outputs\n"
    )
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "site.yaml").write_text("mirrors: {debian: 'http://mirror.invalid/debian'}\n")
    ts = ["--os", "Fake-12-x86_64", "--timestamp", "20260101000000", "--workspace", str(ws)]
    assert CliRunner().invoke(cli, ["build", "aws-hvm", *ts]).exit_code == 0
    (fake_home / "scripts" / "common" / "20-more.sh").write_text("#!/bin/sh\n")
    stale = CliRunner().invoke(cli, ["verify", "aws-hvm", *ts])
    assert stale.exit_code == 1, stale.output
    assert stale.output.splitlines() == [
        f"suitcase: error: master of {SET} is stale (inputs changed: scripts); verification "
        "does not rebuild by surprise: rebuild it with 'suitcase build', or allow it with "
        "--build stale"
    ]
    rebuilt = CliRunner().invoke(cli, ["verify", "aws-hvm", "--build", "stale", *ts])
    assert rebuilt.exit_code == 0, rebuilt.output


def test_the_manifest_names_the_build_key_and_a_lost_key_is_an_error(
    pytester: pytest.Pytester, fake_home: Path
) -> None:
    from suitcase.keys import fingerprint

    _specs(pytester)
    (pytester.path / "specs" / "common" / "test_key.py").write_text(
        "def test_key(suitcase_build_key):\n    assert suitcase_build_key.startswith('ssh-')\n"
    )
    result = pytester.runpytest_subprocess("specs", "--image=aws-hvm", *ARGS)
    result.assert_outcomes(passed=2)
    keys = pytester.path / "keys" / SET
    public = next(keys.glob("*.pub")).read_text()
    for image in ("master", "aws-hvm"):
        assert _manifest(pytester.path, image)["extra"]["build_key"] == fingerprint(public)
    shutil.rmtree(keys)
    result = pytester.runpytest_subprocess("specs", "--image=aws-hvm", *ARGS)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [f"*build set {SET} has built stages (master, aws-hvm) but its build key*missing*"]
    )
    assert not keys.exists()


def test_verify_verb_refuses_a_workspace_that_does_not_exist(
    fake_home: Path, tmp_path: Path
) -> None:
    from suitcase.cli import cli

    typo = tmp_path / "wrokspace"
    result = CliRunner().invoke(
        cli, ["verify", "aws-hvm", "--os", "Fake-12-x86_64", "--workspace", str(typo)]
    )
    assert result.exit_code == 2, result.output
    assert result.output.splitlines() == [
        f"suitcase: error: workspace {typo} does not exist; create it first"
    ]
    assert not typo.exists()
