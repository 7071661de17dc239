"""The plugin's bad-input catalogue (issue 7, items 5 and 6): a run that cannot start is one usage
error line before any spec runs, no report is written for a build set that does not exist, and
nothing in the workspace is touched."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from suitcase.config import Paths
from tests.conftest import tree_snapshot
from tests.fakes import workspace_stage
from tests.test_plugin import ARGS, _specs

pytest_plugins = ["pytester"]

#: a new build set: naming one that does not exist (--timestamp) is a usage error of its own
NEW_SET = [arg for arg in ARGS if not arg.startswith("--timestamp")]

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounts need root")


@pytest.fixture
def mounts() -> Iterator[Callable[..., Path]]:
    """Mount a tmpfs (`ro=True`: read-only once `fill` has written into it); unmounted after."""
    made: list[Path] = []

    def mount(point: Path, size: str = "4m", ro: bool = False, fill: str = "") -> Path:
        point.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(point)],
            check=True,
        )
        made.append(point)
        if fill:
            (point / "site.yaml").write_text(fill)
        if ro:
            subprocess.run(["mount", "-o", "remount,ro", str(point)], check=True)
        return point

    yield mount
    for point in reversed(made):
        subprocess.run(["umount", str(point)], check=True)


def _one_usage_error(result: pytest.RunResult, expected: str) -> None:
    lines = [line for line in [*result.outlines, *result.errlines] if line.strip()]
    assert result.ret == pytest.ExitCode.USAGE_ERROR, lines
    assert len(lines) == 1, lines
    assert lines[0].startswith("ERROR: suitcase: "), lines
    assert expected in lines[0], lines
    assert "Traceback" not in "\n".join(lines)


def _sentinel(ws: Path) -> dict[str, int]:
    ws.mkdir(exist_ok=True)
    (ws / "site.yaml").write_text("mirrors: {debian: 'http://mirror.invalid/debian'}\n")
    (ws / "sentinel.txt").write_text("do not touch\n")
    workspace_stage(ws, "master", "Rocky-9.7-x86_64", "20250101000000")
    return tree_snapshot(ws)


def test_no_install_medium_is_one_line_and_no_report(
    pytester: pytest.Pytester, home: Paths
) -> None:
    # the seed's own usage: 1,394 lines and 31 setup tracebacks before
    ws = pytester.path / "ws"
    before = _sentinel(ws)
    result = pytester.runpytest_subprocess(
        str(home.specs_dir),
        "--image=vagrant",  # aws-hvm: CentOS 7.3 has no ENA, refused first
        "--os=CentOS-7.3-x86_64",
        f"--suitcase-workspace={ws}",
        "-p",
        "no:cacheprovider",
    )
    _one_usage_error(result, "no install medium for CentOS-7.3-x86_64")
    assert not (ws / "reports").exists()
    assert tree_snapshot(ws) == before


def test_missing_packer_template_stops_the_run(pytester: pytest.Pytester, fake_home: Path) -> None:
    _specs(pytester)
    (fake_home / "image-templates" / "qemu-disk.json").unlink()
    ws = pytester.path / "ws"
    before = _sentinel(ws)
    result = pytester.runpytest_subprocess(
        "specs", "--image=aws-hvm", f"--suitcase-workspace={ws}", *NEW_SET
    )
    _one_usage_error(result, "qemu-disk.json does not exist")
    assert not (fake_home / "packer-runs.txt").exists()
    assert tree_snapshot(ws) == before  # no reports/, no images/, no keys/


@needs_root
def test_no_room_stops_the_run(
    pytester: pytest.Pytester, fake_home: Path, mounts: Callable[..., Path]
) -> None:
    _specs(pytester)
    small = mounts(pytester.path / "small", size="64m")
    (small / "site.yaml").write_text("mirrors: {debian: 'http://mirror.invalid/debian'}\n")
    result = pytester.runpytest_subprocess(
        "specs", "--image=aws-hvm", f"--suitcase-workspace={small}", *NEW_SET
    )
    _one_usage_error(result, "not enough free space")
    assert sorted(p.name for p in small.iterdir()) == ["site.yaml"]


@needs_root
def test_read_only_workspace(
    pytester: pytest.Pytester, fake_home: Path, mounts: Callable[..., Path]
) -> None:
    _specs(pytester)
    ro = mounts(pytester.path / "ro", ro=True, fill="mirrors: {debian: 'http://m.invalid/d'}\n")
    result = pytester.runpytest_subprocess(
        "specs", "--image=aws-hvm", f"--suitcase-workspace={ro}", *NEW_SET
    )
    _one_usage_error(result, "is not writable (Read-only file system)")


@needs_root
def test_read_only_reports_folder(
    pytester: pytest.Pytester, fake_home: Path, mounts: Callable[..., Path]
) -> None:
    # the builds could run; only the reports could not be written (a traceback at the end, before)
    _specs(pytester)
    ws = pytester.path / "ws"
    before = _sentinel(ws)
    mounts(ws / "reports", ro=True)
    result = pytester.runpytest_subprocess(
        "specs", "--image=aws-hvm", f"--suitcase-workspace={ws}", *NEW_SET
    )
    _one_usage_error(result, "cannot write reports to")
    assert not (fake_home / "packer-runs.txt").exists()
    assert {k: v for k, v in tree_snapshot(ws).items() if k != "reports"} == before


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: p.write_bytes(b"\xff\xfe\x00\x01" * 64), "is not UTF-8 text"),
        (lambda p: p.write_text("a: " + "[" * 5000 + "]" * 5000), "nested too deeply"),
        (lambda p: p.write_text("cpus: true\n"), "key 'cpus' must be a whole number"),
        (lambda p: p.mkdir(), "must be a regular file"),
    ],
    ids=["binary", "deep", "cpus-bool", "folder"],
)
def test_garbage_site_option(
    pytester: pytest.Pytester, fake_home: Path, make: Callable[[Path], object], expected: str
) -> None:
    _specs(pytester)
    site = pytester.path / "garbage"
    make(site)
    ws = pytester.path / "ws"
    before = _sentinel(ws)
    result = pytester.runpytest(
        "specs",
        "--image=aws-hvm",
        f"--suitcase-site={site}",
        f"--suitcase-workspace={ws}",
        *NEW_SET,
    )
    _one_usage_error(result, expected)
    assert tree_snapshot(ws) == before


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--image=", "--os=Fake-12-x86_64"], "the image type is empty"),
        (["--image=master,all,bogus", "--os=Fake-12-x86_64"], "unknown image type 'bogus'"),
        (["--image=all", "--os="], "the OS name is empty"),
        (["--os=Fake-12-x86_64", "--timestamp=99991231235959"], "is in the future"),
        (["--os=Fake-12-x86_64", "--suitcase-workspace="], "the workspace is an empty string"),
        (["--os=Fake-12-x86_64", "--suitcase-workspace=~nosuchuser-x"], "no such user"),
        (["--os=Fake-12-x86_64", "--suitcase-mode=booted"], "--suitcase-mode 'booted': choose"),
        (["--os=Fake-12-x86_64", "--suitcase-build=always"], "--suitcase-build 'always': choose"),
        (["--os=Fake-12-x86_64", "--suitcase-source=s3"], "--suitcase-source 's3': choose"),
    ],
)
def test_bad_options_are_one_line(
    pytester: pytest.Pytester, fake_home: Path, args: list[str], expected: str
) -> None:
    _specs(pytester)
    ws = pytester.path / "ws"
    before = _sentinel(ws)
    workspace = [] if any("workspace" in a for a in args) else [f"--suitcase-workspace={ws}"]
    result = pytester.runpytest("specs", *args, *workspace, "-p", "no:cacheprovider")
    _one_usage_error(result, expected)
    assert tree_snapshot(ws) == before


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("SUITCASE_OS", "Nope-1-x86_64", "Nope-1-x86_64"),
        ("SUITCASE_OS", "", "SUITCASE_OS is set but empty"),
        ("SUITCASE_TIMESTAMP", "", "SUITCASE_TIMESTAMP is set but empty"),
        ("SUITCASE_TIMESTAMP", "20250101000000", "does not exist"),
    ],
)
def test_the_clis_variables_count_for_the_plugin_too(
    pytester: pytest.Pytester,
    fake_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
    expected: str,
) -> None:
    """SUITCASE_OS=... pytest specs never verifies (or builds) the site's default OS instead."""
    _specs(pytester)
    ws = pytester.path / "ws"
    before = _sentinel(ws)
    monkeypatch.setenv(variable, value)
    os_option = [] if variable == "SUITCASE_OS" else ["--os=Fake-12-x86_64"]
    result = pytester.runpytest(
        "specs",
        "--image=aws-hvm",
        *os_option,
        f"--suitcase-workspace={ws}",
        "-p",
        "no:cacheprovider",
    )
    _one_usage_error(result, expected)
    assert tree_snapshot(ws) == before
