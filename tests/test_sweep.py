"""The stale-run sweep: recorded processes, mounts and loop devices a killed run left behind.

Real processes, real mounts and real loop devices (as root); nothing outside the swept folder
may change.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from suitcase import sweep
from suitcase.config import PROJECT_ROOT
from suitcase.errors import BusyError
from suitcase.keys import ensure_key_pair
from suitcase.machine import BootHung, booted
from suitcase.safety import MountedError, UnsafeFolder, mounts_under
from suitcase.sweep import (
    Record,
    kill_recorded,
    loops_under,
    release,
    stale_vm_records,
    start_time,
)
from tests.conftest import tree_snapshot

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounts and loop devices need root")


def _dead_owner() -> tuple[int, int]:
    """The pid and start time of a process that has exited: an owner killed long ago."""
    proc = subprocess.Popen(["sleep", "60"])  # alive until its start time is read
    start = start_time(proc.pid)
    assert start is not None
    proc.kill()
    proc.wait()
    return proc.pid, start


def _orphan(tmp_path: Path) -> subprocess.Popen[bytes]:
    """A session of two processes (a shell and its child), as a killed run's tree would be."""
    return subprocess.Popen(
        ["bash", "-c", f"sleep 600 & echo $! > {tmp_path / 'child'}; wait"],
        start_new_session=True,
    )


def _record(path: Path, proc: subprocess.Popen[bytes], owner: tuple[int, int]) -> Record:
    record = Record(
        proc.pid, start_time(proc.pid) or 0, ["bash", "-c", "..."], *owner, os.geteuid()
    )
    record.write(path)
    return record


@pytest.fixture
def leftovers(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A stage folder as a killed old-style bootstrap left it: mounts (one of a folder outside),
    a loop device attached to a file in it, and its outside folder with a sentinel."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "sentinel").write_text("precious\n")
    stage = tmp_path / "stage"
    rootfs = stage / ".build" / ".debian-disk.x" / "rootfs"
    (rootfs / "dev").mkdir(parents=True)
    (rootfs / "proc").mkdir()
    subprocess.run(["mount", "-t", "proc", "proc", str(rootfs / "proc")], check=True)
    subprocess.run(["mount", "--bind", str(outside), str(rootfs / "dev")], check=True)
    disk = stage / ".build" / "bootstrap.raw.tmp"
    subprocess.run(["truncate", "-s", "8M", str(disk)], check=True)
    subprocess.run(["losetup", "--find", "--show", str(disk)], check=True, capture_output=True)
    try:
        yield stage, outside
    finally:
        for point in mounts_under(tmp_path):
            subprocess.run(["umount", "-l", str(point)], check=False)
        for device, _ in loops_under(tmp_path):
            subprocess.run(["losetup", "-d", device], check=False)


def test_release_frees_a_stage_folder_and_touches_nothing_outside(
    leftovers: tuple[Path, Path], tmp_path: Path
) -> None:
    stage, outside = leftovers
    before = tree_snapshot(outside)
    orphan = _orphan(tmp_path)
    time.sleep(0.2)
    child = int((tmp_path / "child").read_text())
    pidfile = stage / ".run.json"
    _record(pidfile, orphan, _dead_owner())
    assert len(mounts_under(stage)) == 2 and len(loops_under(stage)) == 1
    done = release(stage, pidfile)
    assert orphan.wait(timeout=5) == -signal.SIGKILL
    assert start_time(child) is None  # the whole recorded session, not only its leader
    assert mounts_under(stage) == []
    assert loops_under(stage) == []
    assert not pidfile.exists()
    assert any(line.startswith("killed 2 process(es)") for line in done), done
    assert sum(line.startswith("unmounted") for line in done) == 2
    assert any(line.startswith("detached /dev/loop") for line in done), done
    assert tree_snapshot(outside) == before
    assert (outside / "sentinel").read_text() == "precious\n"


def test_a_reused_pid_is_never_killed(tmp_path: Path) -> None:
    bystander = subprocess.Popen(["sleep", "600"], start_new_session=True)
    try:
        pidfile = tmp_path / "run.json"
        start = start_time(bystander.pid)
        assert start is not None
        # the record names this pid, but a process that started earlier: not the same process
        Record(bystander.pid, start - 1000, ["packer"], *_dead_owner()).write(pidfile)
        assert kill_recorded(pidfile) == []
        assert bystander.poll() is None
        assert not pidfile.exists()
    finally:
        bystander.kill()
        bystander.wait()


def test_a_run_whose_owner_still_runs_is_refused(tmp_path: Path) -> None:
    orphan = _orphan(tmp_path)
    try:
        pidfile = tmp_path / "run.json"
        # owned by a live process other than this one (our parent stands in for it)
        owner = os.getppid()
        _record(pidfile, orphan, (owner, start_time(owner) or 0))
        with pytest.raises(BusyError, match="still owned by process"):
            kill_recorded(pidfile)
        assert orphan.poll() is None
    finally:
        os.killpg(orphan.pid, signal.SIGKILL)
        orphan.wait()


def test_release_refuses_in_one_line_when_a_mount_stays(
    leftovers: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    stage, outside = leftovers
    monkeypatch.setattr(sweep, "_quiet", lambda argv: False)  # umount and losetup both fail
    with pytest.raises(MountedError, match=r"^cannot reuse .*would not unmount; run `umount ") as e:
        release(stage)
    assert "\n" not in str(e.value)
    assert (outside / "sentinel").read_text() == "precious\n"


def test_qemu_wrapper_dies_with_its_parent(tmp_path: Path) -> None:
    """scripts/host/qemu.sh (Packer's qemu_binary) gives QEMU a parent-death signal."""
    wrapper = PROJECT_ROOT / "scripts" / "host" / "qemu.sh"
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time; p = subprocess.Popen(sys.argv[1:]); "
            "print(p.pid, flush=True); time.sleep(600)",
            str(wrapper),
            "600",
        ],
        env={**os.environ, "SUITCASE_QEMU": "sleep"},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    qemu = int(parent.stdout.readline())
    time.sleep(0.3)
    assert Path(f"/proc/{qemu}/cmdline").read_bytes().split(b"\0")[:2] == [b"sleep", b"600"]
    parent.kill()  # kill -9 of "Packer" alone
    parent.wait()
    deadline = time.monotonic() + 5
    while start_time(qemu) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert start_time(qemu) is None, "QEMU outlived the Packer that started it"


FAKE_QEMU = """#!/bin/sh
echo "$@" >> "$FAKE_QEMU_ARGS"
readlink /proc/self/ns/net > "$FAKE_QEMU_ARGS.net"
exec sleep 600
"""


def test_verification_vm_cpu_loopback_record_and_sweep(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """booted(): -cpu max, SSH forwarded on 127.0.0.1 of a network namespace of the VM's own,
    recorded while it runs, and a VM recorded by a process that died is killed before the next
    one starts."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "qemu-system-x86_64").write_text(FAKE_QEMU)
    (bin_dir / "qemu-system-x86_64").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_QEMU_ARGS", str(tmp_path / "args"))
    runs = tmp_path / "runs"
    runs.mkdir()
    stale = subprocess.Popen(["sleep", "600"], start_new_session=True)
    _record(runs / "vm-stale.json", stale, _dead_owner())
    disk = tmp_path / "blank.raw"
    subprocess.run(["truncate", "-s", "16M", str(disk)], check=True)
    keys = ensure_key_pair(tmp_path / "keys", "suitcase-test")
    with (
        pytest.raises(BootHung),
        booted(disk, "build-key", keys, timeout=3, boots=1, keep_dir=tmp_path, runs_dir=runs),
    ):
        pass
    assert stale.wait(timeout=5) == -signal.SIGKILL  # swept first
    args = (tmp_path / "args").read_text().split()
    assert args[args.index("-cpu") + 1] == "max"
    netdev = args[args.index("-netdev") + 1]
    assert "hostfwd=tcp:127.0.0.1:" in netdev and "restrict" not in netdev  # DHCP as on a cloud
    assert (tmp_path / "args.net").read_text().strip() != os.readlink("/proc/self/ns/net")
    assert list(runs.iterdir()) == []  # its own record went with it


def test_qemu_templates_pin_cpu_loopback_and_wrapper() -> None:
    for name in ("qemu-disk.json", "qemu-iso.json"):
        template = json.loads((PROJECT_ROOT / "image-templates" / name).read_text())
        builder = template["builders"][0]
        args = {arg[0]: arg[1:] for arg in builder["qemuargs"]}
        assert args["-cpu"] == ["max"], name
        # Packer's own -netdev forwards SSH on every address (hostfwd=tcp::PORT-:22); the guest
        # reaches nothing of the host (restrict=on) but the kickstart server (guestfwd)
        ssh = "user,id=user.0,restrict=on,hostfwd=tcp:127.0.0.1:{{ .SSHHostPort }}-:22"
        kickstart = ",guestfwd=tcp:10.0.2.100:80-cmd:socat - TCP:127.0.0.1:{{ .HTTPPort }}"
        assert args["-netdev"] == [ssh + (kickstart if name == "qemu-iso.json" else "")], name
        assert builder["vnc_bind_address"] == "127.0.0.1"
        assert builder["qemu_binary"] == "{{user `qemu_binary`}}"
        if "http_directory" in builder:
            assert builder["http_bind_address"] == "127.0.0.1"
        # VNC is a root console: none where nothing is typed, a password where the boot
        # command is (tests/slow/test_kill_vm.py runs both)
        if "boot_command" in builder:
            assert builder["vnc_use_password"] is True and "-vnc" not in args, name
            assert builder["qmp_socket_path"] == "{{user `qmp_socket`}}"
            assert template["variables"]["qmp_socket"] == "{{env `SUITCASE_QMP_SOCKET`}}"
        else:
            # disable_vnc stops Packer connecting; it still passes -vnc, which -vnc none replaces
            assert builder["disable_vnc"] is True and args["-vnc"] == ["none"], name


def test_lock_files_do_not_accumulate(tmp_path: Path) -> None:
    from suitcase.workspace import BuildSet, Workspace

    ws = Workspace(tmp_path)
    for stamp in ("20260101000000", "20260102000000", "20260103000000"):
        with ws.lock(BuildSet("Debian-12-x86_64", stamp)):
            assert len(list((tmp_path / "images" / ".locks").iterdir())) == 1
    assert list((tmp_path / "images" / ".locks").iterdir()) == []


def test_the_lock_stays_exclusive_while_holders_remove_it(tmp_path: Path) -> None:
    """Many processes taking turns: never two inside at once, although each unlinks the file."""
    script = f"""
import os, sys, time
from pathlib import Path
from suitcase.workspace import BuildSet, Workspace
ws = Workspace(Path({str(tmp_path)!r}))
inside = Path({str(tmp_path / "inside")!r})
for _ in range(20):
    with ws.lock(BuildSet("Debian-12-x86_64", "20260101000000"), wait=-1):
        fd = os.open(inside, os.O_CREAT | os.O_EXCL | os.O_WRONLY)  # fails if another is in
        time.sleep(0.002)
        os.close(fd)
        os.unlink(inside)
"""
    procs = [subprocess.Popen([sys.executable, "-c", script]) for _ in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    assert list((tmp_path / "images" / ".locks").iterdir()) == []


def _bystander(*prefix: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*prefix, "sleep", "600"], start_new_session=True)


@pytest.mark.parametrize("plant", ["foreign-file", "group-writable-file", "open-folder", "link"])
def test_a_record_anyone_else_could_write_kills_nothing(tmp_path: Path, plant: str) -> None:
    """Whoever can write a run record would make root SIGKILL any process: only this user's
    own record, writable by it alone, in a folder writable by it alone, is believed."""
    runs = tmp_path / "runs"
    runs.mkdir(mode=0o755)
    victim = _bystander()
    try:
        path = runs / "vm-1.json"
        if plant == "link":
            real = tmp_path / "elsewhere.json"
            _record(real, victim, _dead_owner())
            path.symlink_to(real)
        else:
            _record(path, victim, _dead_owner())
        if plant == "foreign-file":
            os.chown(path, 65534, 65534)
        elif plant == "group-writable-file":
            path.chmod(0o664)
        elif plant == "open-folder":
            runs.chmod(0o1777)
        with pytest.raises(UnsafeFolder):
            kill_recorded(path)
        with pytest.raises(UnsafeFolder):
            stale_vm_records(runs)
        assert victim.poll() is None and path.exists()
    finally:
        victim.kill()
        victim.wait()


def test_a_recorded_session_of_another_user_is_never_killed(tmp_path: Path) -> None:
    """Even a believed record only reaches its own user's processes."""
    other = _bystander("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--")
    try:
        time.sleep(0.2)
        path = tmp_path / "run.json"
        _record(path, other, _dead_owner())
        assert Record.read(path) is not None
        kill_recorded(path, timeout=2)
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_a_trusted_record_still_kills_its_tree(tmp_path: Path) -> None:
    own = _bystander()
    path = tmp_path / "run.json"
    _record(path, own, _dead_owner())
    assert kill_recorded(path, timeout=5)
    assert own.wait(timeout=5) == -signal.SIGKILL and not path.exists()
