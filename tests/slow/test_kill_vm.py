"""Real QEMU: `kill -9` of Suitcase alone leaves no VM behind, and every port is on 127.0.0.1.

A blank disk booted through the real qemu-disk template (Packer waits for an SSH that never
comes) and by verification's booted(); while each runs, `ss -ltnp` shows every listening socket of
its process tree on 127.0.0.1 (the SSH forward, VNC; a verification VM's only in its own network
namespace, none on the host's); then the Suitcase process is killed with
SIGKILL and no process of that tree, QEMU above all, may survive. About a minute in all.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from suitcase.config import PROJECT_ROOT
from suitcase.keys import ensure_key_pair
from suitcase.packer import TMP_PREFIX, stale_temp_dirs
from suitcase.safety import remove_tree
from suitcase.sweep import Record, scratch_dir, start_time

pytestmark = [pytest.mark.slow, pytest.mark.own]

PACKER_DRIVER = """
import json, sys
from pathlib import Path
from suitcase.build import run_packer
tmp = Path(sys.argv[1])
(tmp / "work").mkdir()
run_packer(
    Path(sys.argv[2]), json.loads((tmp / "vars.json").read_text()), work=tmp / "work",
    log=tmp / "build.log", console=tmp / "console.log", say=print, on_error="cleanup",
    cache_dir=tmp / "cache", boots=1, pidfile=tmp / "run.json",
)
"""

VM_DRIVER = """
import sys, time
from pathlib import Path
from suitcase.keys import ensure_key_pair
from suitcase.machine import booted
tmp = Path(sys.argv[1])
keys = ensure_key_pair(tmp / "keys", "suitcase-test")
with booted(tmp / "blank.raw", "build-key", keys, memory=256, cpus=1, timeout=600, boots=1,
            keep_dir=tmp, runs_dir=tmp / "runs"):
    pass
"""


def _blank(tmp_path: Path) -> Path:
    blank = tmp_path / "blank.raw"
    subprocess.run(["truncate", "-s", "64M", str(blank)], check=True)
    return blank


def _listening(pids: set[int], netns_of: int | None = None) -> list[str]:
    """Local addresses of every TCP socket listening in a process of `pids` (from ss -ltnp), in
    the host's network or in that of process `netns_of`."""
    enter = ["nsenter", f"--net=/proc/{netns_of}/ns/net"] if netns_of else []
    argv = [*enter, "ss", "-ltnpH"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        owners = {int(p) for p in re.findall(r"pid=(\d+)", line)}
        if owners & pids:
            found.append(line.split()[3])
    return found


def _qemu_of(pids: list[int]) -> list[int]:
    return [p for p in pids if _comm(p).startswith("qemu-system")]


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _wait_for(what: str, check: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _kill_and_prove_gone(driver: subprocess.Popen[str], tree: list[int], marker: str) -> None:
    os.kill(driver.pid, signal.SIGKILL)  # Suitcase alone, nothing else
    driver.wait(timeout=10)
    _wait_for("the VM's process tree to die", lambda: all(start_time(p) is None for p in tree), 20)
    survivors = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout
    assert survivors.strip() == "", f"a QEMU of the killed run survived: {survivors}"


def _run_driver(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
    )


def _packer_vars(tmp_path: Path, **own: object) -> dict[str, object]:
    """Variables every blank-disk Packer run here shares, and `own`."""
    keys = ensure_key_pair(tmp_path / "keys", "suitcase-test")
    return {
        "output_directory": str(tmp_path / "work" / "packer"),
        "disk_size": 64,
        "cpus": 1,
        "memory": 256,
        "ssh_private_key_file": str(keys.private),
        "ssh_timeout": "10m",
        "scripts_dir": str(PROJECT_ROOT / "scripts"),
        "qemu_binary": str(PROJECT_ROOT / "scripts" / "host" / "qemu.sh"),
        "os_name": "Blank-1-x86_64",
        "os_major": 1,
        "build_id": "blank",
        **own,
    }


@contextlib.contextmanager
def _packer_waiting_for_ssh(
    tmp_path: Path, template: str, variables: dict[str, object]
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Suitcase's run_packer of `template` in a process of its own, once Packer waits for SSH
    (the guest never answers); yields the driver and build.log's text. Killed afterwards."""
    (tmp_path / "vars.json").write_text(json.dumps(variables))
    path = PROJECT_ROOT / "image-templates" / template
    driver = _run_driver(PACKER_DRIVER, str(tmp_path), str(path))
    try:
        log = tmp_path / "build.log"
        _wait_for(
            "Packer to wait for SSH",
            lambda: log.exists() and "Waiting for SSH to become available" in log.read_text(),
            180,
        )
        yield driver, log.read_text()
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()


@pytest.fixture(autouse=True)
def _the_next_run_sweeps() -> Iterator[None]:
    """Packer killed with Suitcase leaves its private TMPDIR (its log, shell-local's scripts) for
    the next run to sweep: after each test, what the next run does first takes it, and nothing of
    the killed run stays in the scratch folder (the run's leak check would name it)."""
    yield
    left = stale_temp_dirs()
    remove_tree(scratch_dir(TMP_PREFIX.rstrip("-")))  # the next run's first step, and its end
    assert not [p for p in left if p.exists()], left


def test_packer_qemu_listens_on_loopback_and_dies_with_suitcase(tmp_path: Path) -> None:
    blank = _blank(tmp_path)
    variables = _packer_vars(
        tmp_path,
        vm_name="killme",
        source_disk=str(blank),
        source_format="raw",
        use_backing_file=False,
        accelerator="tcg",
        stage="master",
        os_family="debian",
        serial_log=str(tmp_path / "console.log"),
    )
    with _packer_waiting_for_ssh(tmp_path, "qemu-disk.json", variables) as (driver, _log):
        record = Record.read(tmp_path / "run.json")
        assert record is not None
        tree = record.members()
        qemu = _qemu_of(tree)
        assert qemu, f"no QEMU in the recorded tree {tree}"
        assert "-cpu max" in " ".join(Path(f"/proc/{qemu[0]}/cmdline").read_text().split("\0"))
        addresses = _listening(set(tree))
        assert len(addresses) == 1, addresses  # the SSH forward, and no VNC (-vnc none)
        assert all(a.startswith("127.0.0.1:") for a in addresses), addresses
        _kill_and_prove_gone(driver, tree, str(blank))


def test_verification_vm_listens_on_loopback_and_dies_with_suitcase(tmp_path: Path) -> None:
    blank = _blank(tmp_path)
    driver = _run_driver(VM_DRIVER, str(tmp_path))
    try:
        runs = tmp_path / "runs"
        _wait_for("the VM to be recorded", lambda: runs.is_dir() and any(runs.iterdir()), 60)
        record = Record.read(next(runs.iterdir()))
        assert record is not None
        tree = record.members()
        assert _qemu_of(tree) and "-cpu" in record.argv and "max" in record.argv
        qemu = _qemu_of(tree)[0]
        _wait_for("QEMU to listen", lambda: len(_listening(set(tree), qemu)) >= 1, 30)
        addresses = _listening(set(tree), qemu)  # in the VM's own network (suitcase.netns)
        assert all(a.startswith("127.0.0.1:") for a in addresses), addresses
        assert _listening(set(tree)) == []  # and on no port of the host's
        _kill_and_prove_gone(driver, tree, str(blank))
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()


def _vnc_security_types(port: int) -> list[int]:
    """The security types an RFB 3.8 server offers (1: none, 2: VNC password)."""
    with socket.create_connection(("127.0.0.1", port), 10) as sock:
        version = sock.recv(12)
        assert version.startswith(b"RFB "), version
        sock.sendall(b"RFB 003.008\n")
        count = sock.recv(1)[0]
        assert count > 0, "the VNC server refused the handshake"
        offered = b""
        while len(offered) < count:
            offered += sock.recv(count - len(offered))
        return list(offered)


def test_installer_vnc_takes_a_password_that_no_log_shows(tmp_path: Path) -> None:
    """qemu-iso types its boot command over VNC: a blank ISO booted through the real template
    gets it typed (Packer knows the password), while VNC offers no way in without one, the QMP
    socket that set it lives in the run's 0700 folder, and the log shows the password masked."""
    iso_dir = tmp_path / "iso"
    iso_dir.mkdir()
    (iso_dir / "empty").write_text("")
    iso = tmp_path / "blank.iso"
    subprocess.run(["genisoimage", "-quiet", "-o", str(iso), str(iso_dir)], check=True)
    (tmp_path / "http").mkdir()
    variables = _packer_vars(
        tmp_path,
        vm_name="vnc",
        iso_url=str(iso),
        iso_checksum="none",
        http_directory=str(tmp_path / "http"),
        boot_wait="1s",
    )
    with _packer_waiting_for_ssh(tmp_path, "qemu-iso.json", variables) as (driver, text):
        assert "Typing the boot command over VNC" in text
        port = re.search(r"Connecting to VM via VNC \(127\.0\.0\.1:(\d+)\)", text)
        assert port, text[-2000:]
        assert _vnc_security_types(int(port.group(1))) == [2]  # a password, nothing else
        shown = re.findall(r"with the password: (\S+)", text)
        assert shown and set(shown) == {"<redacted>"}, shown
        qmp = re.search(r"QMP socket at: (\S+)", text)
        assert qmp, text[-2000:]
        folder = Path(qmp.group(1)).parent
        assert folder.stat().st_mode & 0o077 == 0 and folder.stat().st_uid == os.geteuid()
        record = Record.read(tmp_path / "run.json")
        assert record is not None
        _kill_and_prove_gone(driver, record.members(), str(iso))
