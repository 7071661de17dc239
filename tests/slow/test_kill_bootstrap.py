"""kill -9 of `suitcase all master` inside the master's stage: in debootstrap, then in the
master's Packer boot, then the rerun that completes (issue 12 item 3: the kill points of the
master's build; tests/slow/test_kill_pipeline.py has those of a derived build and after).

A fresh workspace (the master is what is killed, so nothing can be resumed from the shared set):
the one full master build of the suite beyond the shared set's, which is why this test runs in
the `own` tier, beside the shared set's build. Verified offline and shipped to the embedded
endpoint. Suitcase alone is killed (SIGKILL), never
its process group: what it started must go by itself.
- In debootstrap: the kill lands in the chroot phase, with /proc, /sys, /dev and devpts mounted
  in the bootstrap's private mount namespace. Afterwards nothing of the bootstrap runs, nothing is
  mounted (the host's /dev above all) and the stage is not done.
- In the Packer boot: the rerun bootstraps again and is killed while QEMU boots the master.
  Afterwards no QEMU, no mount, no loop device (the first run's was detached by the second's
  sweep), and the stage is not done.
- The last rerun completes: the master done and whole (sha256), verified, uploaded with one
  object per key and no unfinished upload; nothing outside the stage changed, the build key
  kept. About 8-10 minutes (debootstrap three times, one whole Packer pass).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from suitcase.aws.ship import read_cookie
from suitcase.packer import stale_temp_dirs
from suitcase.safety import mounts_under
from suitcase.sweep import Record, loops_under, start_time
from tests.conftest import tree_snapshot
from tests.slow.conftest import OS_NAME
from tests.slow.reliability import (
    Run,
    aws_holdings,
    done_honestly,
    leftovers,
    processes_mentioning,
    scratch_mounts,
    stop_endpoint,
    text_of,
)

pytestmark = [pytest.mark.slow, pytest.mark.own]

TIMESTAMP = "20260202000000"
ENV = {"SUITCASE_AWS": "embedded"}


def _qemu_under(stage: Path) -> bool:
    """A QEMU of the stage runs (found by its command line: Packer, a Go program, starts it from
    any of its threads, so /proc's per-thread children lists may not show it under Suitcase)."""
    return any("qemu-system" in line for line in processes_mentioning(str(stage)))


def test_kill_9_of_all_in_debootstrap_and_in_the_masters_packer_boot_then_resume(
    tmp_path: Path,
) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "sentinel").write_text("precious\n")
    dev_before = sorted(os.listdir("/dev"))
    before = scratch_mounts()
    stage = ws / "images" / "master" / f"{OS_NAME}-{TIMESTAMP}"
    log = stage / "build.log"
    pipeline = ["all", "master", "--os", OS_NAME, "--timestamp", TIMESTAMP, "--mode", "offline"]
    runs: list[Run] = []
    try:
        # 1. inside debootstrap, in its chroot phase
        run = Run.start(ws, *pipeline, env=ENV)
        runs.append(run)
        run.wait_for(
            "the bootstrap's chroot phase",
            lambda: "configuring the root file system" in text_of(log),
        )
        time.sleep(0.5)  # inside the chroot phase: proc, sys, dev and devpts are mounted
        record = Record.read(stage / ".run.json")
        assert record is not None
        tree = record.members()
        assert len(tree) >= 2  # unshare and the script, at least
        assert mounts_under(ws) == []  # the chroot's mounts are the bootstrap's own
        run.kill()
        deadline = time.monotonic() + 30
        while any(start_time(p) is not None for p in tree) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert all(start_time(p) is None for p in tree), "the bootstrap outlived Suitcase"
        assert mounts_under(ws) == []  # its mounts were private to it and went with it
        assert done_honestly(stage) is None
        keys_before = tree_snapshot(ws / "keys")
        outside_before = tree_snapshot(outside)

        # 2. inside the master's Packer boot (the rerun bootstraps again, then boots)
        run = Run.start(ws, *pipeline, env=ENV)
        runs.append(run)
        run.wait_for(
            "the master's Packer boot",
            lambda: "Waiting for SSH" in text_of(log) and _qemu_under(stage),
        )
        run.kill()
        assert leftovers(ws, before) == []  # QEMU, mounts, and the first run's loop device
        assert done_honestly(stage) is None
        assert not list(stage.glob("manifest.json"))

        # 3. the rerun completes
        run = Run.start(ws, *pipeline, env=ENV)
        runs.append(run)
        run.finish()
        assert "all of it holds" in run.stdout()
        assert leftovers(ws, before) == []
        assert done_honestly(stage, deep=True) is True
        assert not (stage / ".run.json").exists()
        assert not loops_under(ws)
        assert stale_temp_dirs() == []  # the killed Packer's temporary folder, swept
        cookie = read_cookie(stage)
        assert cookie is not None and cookie.get("fake") is False
        held = aws_holdings(ws, "-")
        assert held["duplicate keys"] == []
        assert held["unfinished uploads"] == 0
        assert {o["key"] for o in cookie["objects"]} <= set(held["keys"])
        assert tree_snapshot(outside) == outside_before
        assert (outside / "sentinel").read_text() == "precious\n"
        assert tree_snapshot(ws / "keys") == keys_before  # the build set's key, kept
        assert set(dev_before) <= set(os.listdir("/dev"))  # nothing of the host's /dev deleted
        assert Path("/dev/null").is_char_device()
    finally:
        for each in runs:
            each.kill()
        stop_endpoint(ws)
