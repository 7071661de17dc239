"""A build killed mid-stage: what it started dies with it, and the rerun completes untouched.

The Debian bootstrap is replaced by a stub that mounts a tmpfs and a bind mount of a folder
*outside* the workspace (holding a sentinel file) under the stage's work folder, attaches a loop
device to a file there, then waits; Packer by a stub that turns the bootstrap's disk into the
stage's qcow2. The real CLI runs in a subprocess, as an operator's would. A few seconds each.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from suitcase.config import Paths
from suitcase.safety import mounts_under
from suitcase.sweep import loops_under, release, start_time
from tests.conftest import sigint_as_usual, tree_snapshot

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounts and loop devices need root")

OS_NAME = "Debian-12-x86_64"
TIMESTAMP = "20260101000000"

STUB_BOOTSTRAP = r"""#!/usr/bin/env bash
# A Debian bootstrap cut short: with $STUB_STATE/hang present it mounts, attaches and waits.
set -euo pipefail
OUTPUT=""
while [ $# -gt 0 ]; do
    case $1 in --output) OUTPUT=$2; shift 2 ;; *) shift ;; esac
done
if [ -e "$STUB_STATE/hang" ]; then
    rm "$STUB_STATE/hang"
    dir=$(dirname "$OUTPUT")/.stub
    mkdir -p "$dir/tmpfs" "$dir/bind"
    mount -t tmpfs stub "$dir/tmpfs"
    echo scratch > "$dir/tmpfs/file"
    mount --bind "$STUB_OUTSIDE" "$dir/bind"
    truncate -s 8M "$dir/disk.img"
    losetup --find --show "$dir/disk.img" > "$STUB_STATE/loop"
    trap 'exit 143' TERM INT
    sleep 600 &
    read -r pid _ < /proc/self/stat  # this shell's pid as the host sees it
    echo "$pid" > "$STUB_STATE/pid"
    wait
fi
truncate -s 1M "$OUTPUT"
echo "stub bootstrap wrote $OUTPUT"
"""

STUB_PACKER = r"""#!/usr/bin/env bash
# Packer cut short: `version` answers, `build` converts the source disk into the output folder.
set -euo pipefail
case $1 in
    version) echo "Packer v1.6.6"; exit 0 ;;
    build) ;;
    *) exit 0 ;;
esac
for arg in "$@"; do
    case $arg in -var-file=*) VARS=${arg#-var-file=} ;; esac
done
python3 - "$VARS" <<'EOF'
import json, os, subprocess, sys
v = json.load(open(sys.argv[1]))
os.makedirs(v["output_directory"])
out = os.path.join(v["output_directory"], v["vm_name"])
subprocess.run(["qemu-img", "convert", "-O", "qcow2", v["source_disk"], out], check=True)
EOF
"""


@dataclass
class Stubbed:
    workspace: Path
    state: Path
    outside: Path
    env: dict[str, str]

    @property
    def stage(self) -> Path:
        return self.workspace / "images" / "master" / f"{OS_NAME}-{TIMESTAMP}"

    def start(self) -> subprocess.Popen[str]:
        """`suitcase build master` in a process group of its own, stopped in the stub."""
        (self.state / "hang").touch()
        proc = subprocess.Popen(
            self.argv(),
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=(self.state / "first.err").open("w"),
            text=True,
            start_new_session=True,
            preexec_fn=sigint_as_usual,
        )
        deadline = time.monotonic() + 60
        while not (self.state / "pid").exists() or not (self.state / "pid").read_text():
            assert proc.poll() is None, (self.state / "first.err").read_text()
            assert time.monotonic() < deadline, "the stub bootstrap never started"
            time.sleep(0.1)
        return proc

    def argv(self) -> list[str]:
        return [
            *(sys.executable, "-m", "suitcase", "--workspace", str(self.workspace)),
            *("build", "master", "--os", OS_NAME, "--timestamp", TIMESTAMP),
        ]

    def rerun(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(), env=self.env, capture_output=True, text=True)

    def stub_pids(self) -> list[int]:
        return [int(p) for p in (self.state / "pid").read_text().split()]

    def loop(self) -> str:
        return (self.state / "loop").read_text().strip()


@pytest.fixture
def stubbed(home: Paths, workspace: Path, tmp_path: Path) -> Iterator[Stubbed]:
    stub = home.scripts_dir / "bootstrap" / "debian-disk.sh"
    stub.write_text(STUB_BOOTSTRAP)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "packer").write_text(STUB_PACKER)
    (bin_dir / "packer").chmod(0o755)
    (workspace / "site.yaml").write_text("mirrors: {debian: 'http://mirror.invalid/debian'}\n")
    state = tmp_path / "state"
    state.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "sentinel").write_text("precious\n")
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "STUB_STATE": str(state),
        "STUB_OUTSIDE": str(outside),
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
    env.pop("SUITCASE_WORKSPACE", None)
    stubbed = Stubbed(workspace, state, outside, env)
    try:
        yield stubbed
    finally:  # whatever happened, leave nothing mounted, attached or running
        for pid in _stub_processes(state):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        release(tmp_path)


def _stub_processes(state: Path) -> list[int]:
    """Every process started for this test's stubs (they carry its STUB_STATE)."""
    mark = f"STUB_STATE={state}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and mark in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
    return found


def _gone(pids: list[int], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(start_time(pid) is None for pid in pids):
            return True
        time.sleep(0.05)
    return False


def _assert_untouched_and_released(stubbed: Stubbed, before: dict[str, int]) -> None:
    assert (stubbed.outside / "sentinel").read_text() == "precious\n"
    assert tree_snapshot(stubbed.outside) == before
    assert mounts_under(stubbed.workspace) == []
    assert loops_under(stubbed.workspace) == []
    assert (stubbed.stage / "manifest.json").is_file()
    assert (stubbed.stage / "disk.qcow2").is_file()
    assert not (stubbed.stage / ".build").exists()
    assert not (stubbed.stage / ".run.json").exists()
    assert list((stubbed.workspace / "images" / ".locks").iterdir()) == []


def test_kill_9_of_the_process_group_then_a_rerun_completes(stubbed: Stubbed) -> None:
    before = tree_snapshot(stubbed.outside)
    proc = stubbed.start()
    assert (stubbed.stage / ".run.json").is_file()  # the stage's process tree is recorded
    os.killpg(proc.pid, signal.SIGKILL)  # what `kill -9 -PGID` of the terminal's group does
    proc.wait(timeout=10)
    # the bootstrap ran in a session of its own, so the group kill missed it: it died with
    # Suitcase (parent-death signal, then its PID namespace), and its mounts with it
    assert _gone(stubbed.stub_pids()), "the bootstrap outlived Suitcase"
    assert mounts_under(stubbed.workspace) == []
    assert loops_under(stubbed.stage)  # loop devices are global: left for the sweep
    result = stubbed.rerun()
    assert result.returncode == 0, result.stderr
    assert f"detached {stubbed.loop()}" in result.stderr
    _assert_untouched_and_released(stubbed, before)


def test_kill_9_of_the_main_process_alone_then_an_immediate_rerun(stubbed: Stubbed) -> None:
    before = tree_snapshot(stubbed.outside)
    proc = stubbed.start()
    pids = stubbed.stub_pids()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    result = stubbed.rerun()  # at once: the dying bootstrap must not race it
    assert result.returncode == 0, result.stderr
    assert _gone(pids, timeout=1), "the bootstrap outlived Suitcase"
    _assert_untouched_and_released(stubbed, before)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupted_says_so_and_releases_everything(
    stubbed: Stubbed, signum: signal.Signals, code: int
) -> None:
    proc = stubbed.start()
    pids = stubbed.stub_pids()
    os.kill(proc.pid, signum)
    assert proc.wait(timeout=60) == code
    err = (stubbed.state / "first.err").read_text()
    assert err.splitlines()[-1] == f"suitcase: interrupted ({signum.name})", err
    assert "Traceback" not in err
    log = (stubbed.stage / "build.log").read_text().splitlines()
    assert log[-1] == f"suitcase: interrupted ({signum.name}); master was not built"
    assert _gone(pids, timeout=1)  # stopped before Suitcase exited
    assert not (stubbed.stage / ".run.json").exists()
    assert not (stubbed.stage / ".build").exists()
    assert list((stubbed.workspace / "images" / ".locks").iterdir()) == []
    assert (stubbed.outside / "sentinel").read_text() == "precious\n"
