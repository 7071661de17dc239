"""A guest that never answers SSH: real QEMU booting a blank disk through the real template.

The build boots it once more (the first console kept), then fails with Packer's reason and the
console; `boots=1` (installer stages) fails at once. Verification's `booted()` does the same with
plain QEMU. About two minutes in all.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from suitcase.build import run_packer
from suitcase.config import PROJECT_ROOT
from suitcase.errors import BootTimeout
from suitcase.keys import ensure_key_pair
from suitcase.machine import BootHung, BootRetryWarning, booted

pytestmark = [pytest.mark.slow, pytest.mark.own]


def _variables(tmp_path: Path) -> dict[str, object]:
    blank = tmp_path / "blank.raw"
    subprocess.run(["truncate", "-s", "64M", str(blank)], check=True)
    keys = ensure_key_pair(tmp_path / "keys", "suitcase-test")
    return {
        "vm_name": "blank",
        "output_directory": str(tmp_path / "work" / "packer"),
        "source_disk": str(blank),
        "source_format": "raw",
        "use_backing_file": False,
        "disk_size": 64,
        "accelerator": "tcg",
        "cpus": 1,
        "memory": 256,
        "ssh_private_key_file": str(keys.private),
        "ssh_timeout": "15s",
        "scripts_dir": str(PROJECT_ROOT / "scripts"),
        "stage": "master",
        "os_family": "debian",
        "os_name": "Blank-1-x86_64",
        "os_major": 1,
        "build_id": "blank",
        "serial_log": str(tmp_path / "console.log"),
    }


def _run(tmp_path: Path, boots: int) -> tuple[BaseException, list[str]]:
    (tmp_path / "work").mkdir(exist_ok=True)
    said: list[str] = []
    with pytest.raises(BootTimeout) as caught:
        run_packer(
            PROJECT_ROOT / "image-templates" / "qemu-disk.json",
            _variables(tmp_path),
            work=tmp_path / "work",
            log=tmp_path / "build.log",
            console=tmp_path / "console.log",
            say=said.append,
            on_error="cleanup",
            cache_dir=tmp_path / "cache",
            boots=boots,
        )
    return caught.value, said


def test_a_boot_that_never_answers_is_retried_once_then_fails(tmp_path: Path) -> None:
    error, said = _run(tmp_path, boots=2)
    assert "Timeout waiting for SSH" in str(error)
    assert any(line.startswith("boot 1 of 2 failed (packer build failed") for line in said), said
    assert "booting again (2 of 2)" in said
    assert (tmp_path / "console.boot1.log").exists()  # the first boot's console, kept
    assert (tmp_path / "console.log").exists()  # the second boot's
    log = (tmp_path / "build.log").read_text()
    assert log.count("Waiting for SSH to become available") == 2
    assert "suitcase: boot 1 of 2 failed; booting again" in log


def test_a_single_boot_stage_fails_at_once(tmp_path: Path) -> None:
    error, said = _run(tmp_path, boots=1)
    assert "Timeout waiting for SSH" in str(error)
    assert not any("booting again" in line for line in said)
    assert not (tmp_path / "console.boot1.log").exists()
    assert (tmp_path / "build.log").read_text().count("Waiting for SSH to become available") == 1


def test_verification_boots_a_hung_machine_again_then_fails(tmp_path: Path) -> None:
    blank = tmp_path / "blank.raw"
    subprocess.run(["truncate", "-s", "64M", str(blank)], check=True)
    keys = ensure_key_pair(tmp_path / "keys", "suitcase-test")
    with (
        pytest.warns(BootRetryWarning, match=r"blank.raw: boot 1 of 2 never answered SSH"),
        pytest.raises(BootHung, match=r"no SSH to root@the VM.s own 127\.0\.0\.1:\d+ within \d+ s"),
        booted(
            blank,
            "build-key",
            keys,
            memory=256,
            cpus=1,
            timeout=40,
            keep_dir=tmp_path,
            first_boot_limit=12,
        ),
    ):
        pytest.fail("a blank disk never boots")
    assert not list(tmp_path.glob("suitcase-vm-*"))  # its overlays and console removed
    assert subprocess.run(["pgrep", "-f", str(blank)], check=False).returncode == 1  # QEMU gone
