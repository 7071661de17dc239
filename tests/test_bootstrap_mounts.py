"""The Debian bootstrap mounts /proc, /sys and /dev into the tree debootstrap unpacked: a mount
point there that is a link, or leads out of the tree, is refused before anything is mounted.

Runs the script's own chroot_mount (cut out of scripts/bootstrap/debian-disk.sh) on planted trees;
the real mounts are exercised by tests/slow/test_debian_build.py.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from suitcase.config import PROJECT_ROOT

SCRIPT = PROJECT_ROOT / "scripts" / "bootstrap" / "debian-disk.sh"


def _functions() -> str:
    text = SCRIPT.read_text()
    die = re.search(r"^die\(\) \{.*\}$", text, re.M)
    mount = re.search(r"^chroot_mount\(\) \{\n.*?^\}$", text, re.M | re.S)
    assert die and mount, "chroot_mount or die moved: update this test"
    return f"PROG=debian-disk\nCHROOT_MOUNTS=()\n{die.group(0)}\n{mount.group(0)}\n"


def _mount(rootfs: Path, target: Path) -> subprocess.CompletedProcess[str]:
    script = _functions() + f'ROOTFS={rootfs}\nchroot_mount bind /nonexistent-source "{target}"\n'
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True)


@pytest.mark.parametrize("plant", ["proc-is-a-link", "parent-leads-out"])
def test_a_mount_point_that_leads_elsewhere_is_refused(tmp_path: Path, plant: str) -> None:
    host = tmp_path / "host-etc"
    host.mkdir()
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    if plant == "proc-is-a-link":
        (rootfs / "proc").symlink_to(host)
        target = rootfs / "proc"
        expected = "is a link: refusing to mount there"
    else:
        (rootfs / "dev").symlink_to(host)
        target = rootfs / "dev" / "pts"
        expected = "leads out of"
    done = _mount(rootfs, target)
    assert done.returncode == 1 and expected in done.stderr, done.stderr
    assert list(host.iterdir()) == []  # not even the mount point was made there


def test_a_plain_mount_point_gets_as_far_as_mounting(tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    done = _mount(rootfs, rootfs / "proc")
    # the source does not exist: mount itself fails, after the checks passed
    assert "refusing" not in done.stderr and "nonexistent-source" in done.stderr, done.stderr
