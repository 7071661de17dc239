"""`suitcase verify` killed with SIGKILL takes its pytest, and what the specs mounted, along.

Real processes and a real mount: the verb runs the fake project's specs, one of which mounts a
tmpfs and then waits; Suitcase alone is killed with SIGKILL. pytest must die by itself (its
parent-death signal), and its mount, made in pytest's own mount namespace, was never visible
outside it and is gone with it. Before, pytest ran on, an orphan, and an offline spec's mount
(and its loop device) stayed on the host.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from suitcase.cli import cli
from suitcase.safety import mount_points
from suitcase.sweep import start_time

HANGING_SPEC = """\
import os, pathlib, subprocess, time

def test_hangs_on_a_mount(suitcase_artifact):
    where = pathlib.Path(os.environ["HANG_DIR"])
    (where / "mnt").mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(where / "mnt")], check=True)
    (where / "pid").write_text(str(os.getpid()))
    time.sleep(120)
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts need root")
def test_kill_9_of_verify_takes_pytest_and_its_mounts(
    fake_home: Path,
    tmp_path: Path,
) -> None:
    (fake_home / "specs" / "common").mkdir()
    (fake_home / "specs" / "common" / "test_hang.py").write_text(HANGING_SPEC)
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "site.yaml").write_text("mirrors: {debian: 'http://mirror.invalid/debian'}\n")
    ts = ["--os", "Fake-12-x86_64", "--timestamp", "20260101000000"]
    built = CliRunner().invoke(cli, ["--workspace", str(ws), "build", "master", *ts])
    assert built.exit_code == 0, built.output
    hang = tmp_path / "hang"
    hang.mkdir()
    verb = subprocess.Popen(
        [sys.executable, "-m", "suitcase", "--workspace", str(ws), "verify", "master", *ts],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "HANG_DIR": str(hang)},
    )
    try:
        deadline = time.monotonic() + 120
        while not (hang / "pid").exists():
            assert verb.poll() is None, "verify ended before the spec ran"
            assert time.monotonic() < deadline, "the spec never ran"
            time.sleep(0.1)
        time.sleep(0.2)
        specs = int((hang / "pid").read_text())
        assert start_time(specs) is not None
        assert (hang / "mnt") not in mount_points()  # the specs' mounts are theirs alone
        os.kill(verb.pid, signal.SIGKILL)
        verb.wait(timeout=10)
        deadline = time.monotonic() + 15
        while start_time(specs) is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert start_time(specs) is None, "pytest outlived the killed verify"
        assert (hang / "mnt") not in mount_points()
    finally:
        if verb.poll() is None:
            verb.kill()
            verb.wait()
        if (hang / "pid").exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int((hang / "pid").read_text()), signal.SIGKILL)
        if (hang / "mnt") in mount_points():
            subprocess.run(["umount", str(hang / "mnt")], check=False)
