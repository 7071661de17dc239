"""The slow tests share one real Debian 12 build set, built once (also across xdist workers).

Set SUITCASE_TEST_WORKSPACE to keep it elsewhere; by default it lives in .test-workspace/ of the
checkout, so a second run reuses every stage whose key still matches.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import filelock
import pytest

from suitcase.config import PROJECT_ROOT

OS_NAME = "Debian-12-x86_64"
TIMESTAMP = "20260101000000"
SUITCASE = [sys.executable, "-m", "suitcase"]


@dataclass(frozen=True)
class BuiltSet:
    workspace: Path
    timestamp: str
    output: str

    def stage_dir(self, image: str) -> Path:
        return self.workspace / "images" / image / f"{OS_NAME}-{self.timestamp}"


def suitcase(
    *args: str, workspace: Path, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a subprocess, as an operator would."""
    result = subprocess.run(
        [*SUITCASE, "--workspace", str(workspace), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"suitcase {' '.join(args)} failed ({result.returncode}):\n"
            f"{result.stdout}\n{result.stderr[-3000:]}"
        )
    return result


def build_all(
    workspace: Path,
    timestamp: str = TIMESTAMP,
    env: dict[str, str] | None = None,
    verb: str = "build",
) -> subprocess.CompletedProcess[str]:
    """`suitcase build all` (or another verb) of the test OS at `timestamp`."""
    return suitcase(
        verb, "all", "--os", OS_NAME, "--timestamp", timestamp, workspace=workspace, env=env
    )


def hardlink_workspace(source: Path, dest: Path) -> Path:
    """A cheap copy of a workspace: hard links (Suitcase replaces files, never rewrites them)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("images", "keys", "packer_cache"):
        if (source / name).exists():
            subprocess.run(["cp", "-al", str(source / name), str(dest / name)], check=True)
    subprocess.run(["rm", "-rf", str(dest / "images" / ".locks")], check=True)
    return dest


def run_specs(
    workspace: Path, image: str, *extra: str, timestamp: str = TIMESTAMP
) -> subprocess.CompletedProcess[str]:
    """The specs through the plugin, in a subprocess, against `workspace`."""
    argv = [
        sys.executable,
        "-m",
        "pytest",
        str(PROJECT_ROOT / "specs"),
        "-p",
        "no:cacheprovider",
        "--os",
        OS_NAME,
        "--image",
        image,
        "--timestamp",
        timestamp,
        "--suitcase-workspace",
        str(workspace),
        *extra,
    ]
    return subprocess.run(argv, capture_output=True, text=True, check=False, cwd=PROJECT_ROOT)


@pytest.fixture(scope="session")
def built_set() -> BuiltSet:
    workspace = Path(os.environ.get("SUITCASE_TEST_WORKSPACE", PROJECT_ROOT / ".test-workspace"))
    workspace.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(str(workspace / ".slow-tests.lock")):
        result = suitcase(
            "build",
            "all",
            "--os",
            OS_NAME,
            "--timestamp",
            TIMESTAMP,
            "--wait",
            "-1",
            workspace=workspace,
        )
    return BuiltSet(workspace, TIMESTAMP, result.stderr)
