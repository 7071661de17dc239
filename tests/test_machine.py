"""Mounts are always released: on normal exit and when the process is terminated."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from suitcase.machine import mounted


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
