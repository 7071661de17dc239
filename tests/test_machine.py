"""Mounts are always released: on normal exit and when the process is terminated."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from suitcase.machine import mounted
from suitcase.sweep import loops_under


@pytest.fixture
def ext4_image(tmp_path: Path) -> Path:
    image = tmp_path / "fs.raw"
    subprocess.run(["truncate", "-s", "32M", str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "root", str(image)], check=True)
    return image


def _mounts() -> str:
    return Path("/proc/mounts").read_text()


def test_mounted_read_only_and_released(ext4_image: Path) -> None:
    with mounted(ext4_image) as root:
        assert str(root) in _mounts()
        with pytest.raises(OSError):
            (root / "new-file").write_text("x")
    assert str(root) not in _mounts()
    assert not root.exists()


def test_sigterm_releases_the_mount(ext4_image: Path, tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from suitcase.command import interrupt_on_sigterm
        from suitcase.machine import mounted
        interrupt_on_sigterm()
        with mounted(Path({str(ext4_image)!r})) as root:
            print(root, flush=True)
            time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    root = proc.stdout.readline().strip()
    assert root and root in _mounts()
    proc.terminate()
    proc.wait(timeout=30)
    time.sleep(0.5)
    assert root not in _mounts()
    assert not Path(root).exists()


def test_kill_9_leaves_scratch_the_next_mount_sweeps(ext4_image: Path, tmp_path: Path) -> None:
    """`kill -9` inside mounted() leaves its mount and its raw copy of a qcow2 in the scratch
    root (nothing can run on SIGKILL); the next mounted() releases the mount and removes them."""
    qcow2 = tmp_path / "fs.qcow2"
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", str(ext4_image), str(qcow2)], check=True)
    script = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from suitcase.machine import mounted
        with mounted(Path({str(qcow2)!r})) as root:
            print(root, flush=True)
            time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    root = Path(proc.stdout.readline().strip())
    proc.kill()
    proc.wait(timeout=30)
    work = root.parent
    assert str(root) in _mounts() and (work / "disk.raw").exists()  # left behind
    assert loops_under(work) != []
    with mounted(ext4_image) as again:
        assert again.parent != work
        assert str(root) not in _mounts() and not work.exists()  # swept first
        assert loops_under(work) == []
    assert not again.exists()
