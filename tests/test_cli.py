"""The CLI through click's CliRunner: happy paths and a catalogue of bad input."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from suitcase.cli import cli
from suitcase.config import Paths
from suitcase.workspace import BuildSet, Workspace
from tests.conftest import tree_snapshot
from tests.fakes import workspace_stage


def invoke(runner: CliRunner, *args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return runner.invoke(cli, list(args), env=env, catch_exceptions=False)


def test_list_shows_verbs_image_types_and_ten_os_templates(
    runner: CliRunner, workspace: Path
) -> None:
    result = invoke(runner, "list")
    assert result.exit_code == 0
    out = result.output
    for verb in (
        "build",
        "upload",
        "fake-upload",
        "fetch",
        "register",
        "deregister",
        "delete",
        "all",
        "clean",
        "list",
        "plan",
        "verify",
    ):
        assert re.search(rf"^  {verb}\s", out, re.M), verb
    types = out.split("Image types:")[1].split("OS templates:")[0]
    assert [line.split()[0] for line in types.strip().splitlines()] == [
        "master",
        "vagrant",
        "aws-hvm",
        "aws-paravirt",
    ]
    listed = out.split("OS templates:")[1].split("Build sets")[0].strip("\n").splitlines()
    templates = [line for line in listed if not line.startswith("    ")]
    assert len(templates) == 10
    # each with its capability table (issue 22) and what it refuses
    capabilities = [line.strip() for line in listed if line.startswith("    ")]
    assert len(capabilities) == 10 and all(c.startswith("kernel ") for c in capabilities)
    assert any("ena no" in c and "refuses: aws-hvm" in c for c in capabilities)
    by_name = {line.split()[0]: line for line in templates}
    assert "no checksum yet: supply it" in by_name["AlmaLinux-9.6-x86_64"]
    assert "checksum from the original var-file only" in by_name["CentOS-7.3-x86_64"]
    assert "var-file" not in by_name["Rocky-9.7-x86_64"] + by_name["CentOS-6.5-x86_64"]
    assert "(none)" in out.split("Build sets")[1]


def test_plan_shows_master_then_three_derived_with_keys(runner: CliRunner, workspace: Path) -> None:
    result = invoke(runner, "plan", "all", "--os", "CentOS-7.3-x86_64")
    assert result.exit_code == 0
    rows = re.findall(
        r"^\s+\d\. (\S+)\s+key ([0-9a-f]{12})\s+would run: not built yet", result.output, re.M
    )
    assert [r[0] for r in rows] == ["master", "vagrant"]
    # CentOS 7.3's kernel has no ENA, and PV-GRUB cannot read its XFS root: shown, not built
    # (tests/test_pv_refusal.py)
    refused = re.findall(
        r"^\s+\d\. (\S+)\s+key ([0-9a-f]{12})\s+would be refused: (.*)$", result.output, re.M
    )
    assert [(r[0], r[2][:20]) for r in refused] == [
        ("aws-hvm", "the kernel (3.10.0-5"),
        ("aws-paravirt", "PV-GRUB is GRUB lega"),
    ]
    assert len({r[1] for r in rows + refused}) == 4


def test_os_comes_from_the_environment(runner: CliRunner, workspace: Path) -> None:
    result = invoke(runner, "plan", "master", env={"SUITCASE_OS": "Rocky-9.7-x86_64"})
    assert "Rocky-9.7-x86_64" in result.output


def test_plan_with_given_timestamp_and_latest(runner: CliRunner, workspace: Path) -> None:
    workspace_stage(workspace, "master", "Debian-12-x86_64", "20260101000000")
    result = invoke(runner, "plan", "master", "--os", "Debian-12-x86_64", "--timestamp", "latest")
    assert "Debian-12-x86_64-20260101000000" in result.output
    result = invoke(
        runner, "plan", "master", "--os", "Debian-12-x86_64", "--timestamp", "202602020202"
    )
    assert "Debian-12-x86_64-202602020202" in result.output


def test_fake_upload_marks_only_built_stages(runner: CliRunner, workspace: Path) -> None:
    result = invoke(
        runner,
        "fake-upload",
        "aws-hvm",
        "--os",
        "Debian-12-x86_64",
        "--timestamp",
        "20260101000000",
    )
    assert result.exit_code == 2
    assert "is not built" in result.output
    assert not (workspace / "images").exists() or not list(
        (workspace / "images").rglob(".upload_done")
    )


def test_clean_removes_a_build_set(runner: CliRunner, workspace: Path) -> None:
    stage = workspace / "images" / "vagrant" / "Debian-12-x86_64-20260101000000"
    stage.mkdir(parents=True)
    result = invoke(
        runner,
        "clean",
        "vagrant",
        "--os",
        "Debian-12-x86_64",
        "--timestamp",
        "20260101000000",
        "--dry-run",
    )
    assert "would remove" in result.output and stage.exists()
    result = invoke(
        runner, "clean", "vagrant", "--os", "Debian-12-x86_64", "--timestamp", "20260101000000"
    )
    assert result.exit_code == 0 and not stage.exists()


# --- the bad-input catalogue: one clear line, non-zero exit, no traceback, nothing touched ------

Setup = Callable[[Path, Paths], list[str]]


def _malformed_os(ws: Path, home: Paths) -> list[str]:
    (home.os_dir / "Bad-1-x86_64.yaml").write_text("family: [el\n")
    return ["plan", "--os", "Bad-1-x86_64"]


def _unknown_key_os(ws: Path, home: Paths) -> list[str]:
    text = (home.os_dir / "CentOS-7.3-x86_64.yaml").read_text()
    (home.os_dir / "Bad-1-x86_64.yaml").write_text(text + "colour: red\n")
    return ["plan", "--os", "Bad-1-x86_64"]


def _site(text: str) -> Setup:
    def setup(ws: Path, home: Paths) -> list[str]:
        (ws / "site.yaml").write_text(text)
        return ["plan"]

    return setup


def _symlinked_stage(ws: Path, home: Paths) -> list[str]:
    outside = ws.parent / "outside"
    outside.mkdir()
    (outside / "precious").write_text("x")
    (ws / "images" / "master").mkdir(parents=True)
    os.symlink(outside, ws / "images" / "master" / "Debian-12-x86_64-20260101000000")
    return ["clean", "master", "--os", "Debian-12-x86_64", "--timestamp", "20260101000000"]


def _symlinked_type_dir(ws: Path, home: Paths) -> list[str]:
    outside = ws.parent / "outside"
    (outside / "Debian-12-x86_64-20260101000000").mkdir(parents=True)
    (outside / "Debian-12-x86_64-20260101000000" / "precious").write_text("x")
    (ws / "images").mkdir()
    os.symlink(outside, ws / "images" / "vagrant")
    return ["clean", "vagrant", "--os", "Debian-12-x86_64"]


def _no_packer(ws: Path, home: Paths) -> list[str]:
    os.environ["PATH"] = str(ws / "empty-bin")
    return ["plan", "--os", "Debian-12-x86_64"]


def _held(ws: Path, home: Paths) -> list[str]:
    lock = Workspace(ws).lock(BuildSet("Debian-12-x86_64", "20260101000000"))
    lock.__enter__()
    _HELD.append(lock)
    return ["build", "master", "--os", "Debian-12-x86_64", "--timestamp", "20260101000000"]


_HELD: list[object] = []


def _workspace_is_a_file(ws: Path, home: Paths) -> list[str]:
    (ws / "afile").write_text("x")
    return ["--workspace", str(ws / "afile"), "list"]


def _no_mirror_for_el(ws: Path, home: Paths) -> list[str]:
    return ["build", "master", "--os", "CentOS-7.3-x86_64"]


CATALOGUE: dict[str, tuple[Setup, str]] = {
    "unknown-os": (lambda ws, h: ["plan", "--os", "Nope-1"], "unknown OS 'Nope-1'"),
    "path-os": (lambda ws, h: ["plan", "--os", "../../etc/passwd"], "not a valid OS template name"),
    "unknown-image": (
        lambda ws, h: ["plan", "awsx", "--os", "Debian-12-x86_64"],
        "unknown image type",
    ),
    "malformed-os-yaml": (_malformed_os, "not valid YAML"),
    "unknown-key-os": (_unknown_key_os, "unknown key 'colour'"),
    "short-timestamp": (lambda ws, h: ["plan", "--timestamp", "2026"], "is not YYYYMMDDhhmmss"),
    "impossible-timestamp": (
        lambda ws, h: ["plan", "--timestamp", "20261399000000"],
        "not a real date",
    ),
    "latest-without-sets": (lambda ws, h: ["plan", "--timestamp", "latest"], "no build set of"),
    "malformed-site": (_site("bucket: [\n"), "not valid YAML"),
    "unknown-site-key": (_site("colour: red\n"), "unknown key 'colour'"),
    "bad-builder": (_site("builder: vmware\n"), "key 'builder' must be 'qemu' or 'virtualbox'"),
    "missing-site-file": (lambda ws, h: ["--site", str(ws / "nope.yaml"), "plan"], "not found"),
    "workspace-is-a-file": (_workspace_is_a_file, "is not a folder"),
    "missing-packer": (_no_packer, "packer not found on PATH"),
    "no-checksum": (
        lambda ws, h: ["build", "master", "--os", "AlmaLinux-9.6-x86_64"],
        "no published sha256",
    ),
    "no-el-mirror": (_no_mirror_for_el, "no install medium"),
    "clean-symlinked-stage": (_symlinked_stage, "symlink"),
    "clean-symlinked-type-dir": (_symlinked_type_dir, "outside the workspace"),
    "build-set-in-use": (_held, "in use by another"),
    "fake-upload-no-timestamp": (
        lambda ws, h: ["fake-upload", "--os", "Debian-12-x86_64"],
        "needs --timestamp",
    ),
    "bad-on-error": (
        lambda ws, h: ["build", "--on-error", "explode"],
        "Invalid value for '--on-error'",
    ),
}


@pytest.mark.parametrize("case", sorted(CATALOGUE))
def test_bad_input(
    case: str, runner: CliRunner, workspace: Path, home: Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", os.environ["PATH"])
    setup, expected = CATALOGUE[case]
    args = setup(workspace, home)
    before = tree_snapshot(workspace.parent)
    try:
        result = runner.invoke(cli, args)
    finally:
        while _HELD:
            _HELD.pop().__exit__(None, None, None)  # type: ignore[attr-defined]
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert expected in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("suitcase: error:")]
    if not expected.startswith("Invalid value"):
        assert len(errors) == 1, result.output
    after = tree_snapshot(workspace.parent)
    lost = {path for path in before if path not in after and ".locks" not in path}
    assert not lost, f"deleted: {lost}"


def test_catalogue_is_big_enough() -> None:
    assert len(CATALOGUE) >= 15


@pytest.fixture
def small_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A real 64 MiB file system (tmpfs), far too small for a build."""
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m,mode=0755", "tmpfs", str(mount)], check=True
    )
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_build_refuses_without_room_instead_of_hanging(
    runner: CliRunner, workspace: Path, small_filesystem: Path
) -> None:
    # QEMU pauses a guest whose disk cannot grow: Packer would wait for SSH until its timeout.
    args = ["--workspace", str(small_filesystem), "build", "all", "--os", "Debian-12-x86_64"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("suitcase: error:")]
    assert len(errors) == 1, result.output
    assert "not enough free space" in errors[0] and "needs about 9.0 GiB" in errors[0]
    assert not (small_filesystem / "images" / "master").exists()
    assert not (small_filesystem / "keys").exists()
