"""The suite's own machinery (tests/testrun.py): every test has exactly one tier, and the leak
check names what a run left behind (a process, a file in the run's TMPDIR) and fails the run."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from suitcase.config import PROJECT_ROOT

pytest_plugins = ["pytester"]


def _collected(*args: str) -> int:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "tests",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            *args,
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    last = out.strip().splitlines()[-1]
    return int(last.split("/")[0].split()[0])


def test_every_test_is_in_exactly_one_tier() -> None:
    total = _collected()
    tiers = [_collected("-m", tier) for tier in ("fast", "own", "set")]
    assert all(tiers), tiers
    assert sum(tiers) == total, (tiers, total)


def _inner(pytester: pytest.Pytester, body: str) -> pytest.RunResult:
    pytester.makeconftest('pytest_plugins = ["tests.testrun"]\n')
    pytester.makepyfile(test_inner=body)
    env = {"PYTHONPATH": str(PROJECT_ROOT), "SUITCASE_LEAK_GRACE": "1"}
    for name, value in env.items():
        pytester._monkeypatch.setenv(name, value)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider")


def _alive(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def test_a_clean_run_has_no_leaks(pytester: pytest.Pytester) -> None:
    result = _inner(pytester, "def test_nothing():\n    assert True\n")
    assert result.ret == 0
    assert "leaked" not in result.stdout.str()


def test_a_left_process_and_a_stray_file_fail_the_run_and_are_named(
    pytester: pytest.Pytester,
) -> None:
    seconds = f"{300 + uuid.uuid4().int % 1000}.{os.getpid()}"
    body = (
        "import subprocess, tempfile, os\n"
        "def test_leaves_things():\n"
        f"    subprocess.Popen(['sleep', '{seconds}'], start_new_session=True)\n"
        "    open(os.path.join(tempfile.gettempdir(), 'stray-file'), 'w').write('x')\n"
    )
    result = _inner(pytester, body)
    out = result.stdout.str()
    assert result.ret == 1, out
    assert "1 passed" in out
    assert "leaked: process" in out and f"sleep {seconds}" in out, out
    assert "stray-file" in out, out
    deadline = time.monotonic() + 10
    while _alive(f"sleep\0{seconds}") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(f"sleep\0{seconds}")  # and it was cleaned up after being named


def test_ci_runs_the_readme_test_command() -> None:
    """README's test command is what .ci/run runs after setting the host up (keep them in step)."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    ci = (PROJECT_ROOT / ".ci" / "run").read_text()
    assert "\nbin/setup-host && bin/test\n" in readme
    commands = [line.split("#")[0].strip() for line in ci.splitlines()]
    assert "bin/setup-host || exit 1" in commands
    assert any(c.startswith("timeout ") and c.endswith(" bin/test") for c in commands), commands


def test_what_counts_as_left_in_the_runs_tmpdir(tmp_path: Path) -> None:
    from tests.testrun import _left

    scratch = tmp_path / "gw0" / f"suitcase-{os.geteuid()}"
    scratch.mkdir(parents=True)
    (tmp_path / "gw1").mkdir()
    (tmp_path / "gw0" / "pytest-of-root" / "pytest-0").mkdir(parents=True)  # a nested pytest's
    assert _left(tmp_path) == []
    (scratch / "suitcase-mnt-1-2-x" / "root").mkdir(parents=True)
    (tmp_path / "gw1" / "stray").write_text("x")
    assert _left(tmp_path) == [scratch / "suitcase-mnt-1-2-x", tmp_path / "gw1" / "stray"]
