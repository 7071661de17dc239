"""A real master bootstrap killed mid-way (kill -9 of the process group), then rerun.

The kill lands while the chroot has /proc, /sys, /dev and devpts mounted. Afterwards nothing of
it runs, nothing is mounted under the workspace (the host's /dev above all), nothing outside the
stage folder changed, and the rerun builds the master (booting it under `-cpu max`) with no
mount or loop device left behind. About 6-8 minutes (debootstrap twice, one Packer pass).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from suitcase.safety import mounts_under
from suitcase.sweep import Record, loops_under, start_time
from tests.conftest import tree_snapshot
from tests.slow.conftest import OS_NAME, SUITCASE, suitcase

pytestmark = pytest.mark.slow

TIMESTAMP = "20260202000000"


def test_kill_9_of_the_group_mid_bootstrap_then_rerun(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "sentinel").write_text("precious\n")
    dev_before = sorted(os.listdir("/dev"))
    stage = workspace / "images" / "master" / f"{OS_NAME}-{TIMESTAMP}"
    argv = [*SUITCASE, "--workspace", str(workspace), "build", "master"]
    argv += ["--os", OS_NAME, "--timestamp", TIMESTAMP]
    with (tmp_path / "first.err").open("w") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    try:
        deadline = time.monotonic() + 900
        log = stage / "build.log"
        while not (log.exists() and "configuring the root file system" in log.read_text()):
            assert proc.poll() is None, (tmp_path / "first.err").read_text()[-2000:]
            assert time.monotonic() < deadline, "the bootstrap never reached the chroot"
            time.sleep(1)
        time.sleep(0.5)  # inside the chroot phase: proc, sys, dev and devpts are mounted
        record = Record.read(stage / ".run.json")
        assert record is not None
        tree = record.members()
        assert len(tree) >= 2  # unshare and the script, at least
        # the chroot's mounts live in the bootstrap's private mount namespace only
        assert mounts_under(workspace) == []
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    deadline = time.monotonic() + 30
    while any(start_time(p) is not None for p in tree) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert all(start_time(p) is None for p in tree), "the bootstrap outlived Suitcase"
    assert mounts_under(workspace) == []  # its mounts were private to it and went with it
    outside_before = tree_snapshot(outside)
    keys_before = tree_snapshot(workspace / "keys")

    result = suitcase(
        "build", "master", "--os", OS_NAME, "--timestamp", TIMESTAMP, workspace=workspace
    )
    assert "detached /dev/loop" in result.stderr or not loops_under(workspace)
    assert (stage / "manifest.json").is_file()
    assert mounts_under(workspace) == []
    assert loops_under(workspace) == []
    assert not (stage / ".run.json").exists()
    assert tree_snapshot(outside) == outside_before
    assert (outside / "sentinel").read_text() == "precious\n"
    assert tree_snapshot(workspace / "keys") == keys_before
    assert set(dev_before) <= set(os.listdir("/dev"))  # nothing of the host's /dev deleted
    assert Path("/dev/null").is_char_device()
