"""What a killed run leaves behind: its processes, mounts and loop devices, found and released.

Every process tree Suitcase starts (Packer and its QEMU, the Debian bootstrap, a verification VM)
is a session of its own, recorded in a pid file while it runs: the session leader's pid and start
time, its argv and the pid and start time of the Suitcase process that owns it. Processes die with
Suitcase on their own (parent-death signal, a PID namespace); the sweep is for what outlives that
(an older Suitcase, a process still dying) and for what they leave mounted or attached.

>>> Record.read(Path("/nonexistent/run.json")) is None
True
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from suitcase.errors import BusyError
from suitcase.safety import (
    MountedError,
    UnsafeFolder,
    check_owned,
    mounts_under,
    remove_tree_quietly,
    scratch_root,
)

SYS_BLOCK = Path("/sys/block")
GONE_TIMEOUT = 30.0  # a killed QEMU of several GB can take seconds to release its memory


def start_time(pid: int) -> int | None:
    """The start time of `pid` in clock ticks since boot, or None when there is no such process.

    With the pid it names one process for good: a pid can be reused, a (pid, start) pair cannot.
    """
    fields = _stat(pid)
    return int(fields[19]) if fields else None


def session_of(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[3]) if fields else None


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name (which may hold spaces and parentheses)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = text[text.rindex(")") + 2 :].split()
    # a zombie has released everything it held: it is as good as gone
    return None if fields[0] in ("Z", "X") else fields


def uid_of(pid: int) -> int | None:
    """The real uid of `pid` (the owner of /proc/PID), or None when it is gone."""
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def alive(pid: int, start: int) -> bool:
    return start_time(pid) == start


@dataclass(frozen=True)
class Record:
    """One running process tree: its session leader and the Suitcase process that started it."""

    pid: int
    start: int
    argv: list[str]
    owner: int
    owner_start: int
    #: the user whose processes these are: a sweep never touches anyone else's
    uid: int = -1

    @classmethod
    def of(cls, pid: int, argv: list[str]) -> Record:
        me = os.getpid()
        return cls(pid, start_time(pid) or 0, argv, me, start_time(me) or 0, os.geteuid())

    @classmethod
    def read(cls, path: Path) -> Record | None:
        """The record at `path`; None when there is none (or it is unreadable garbage).

        Only a record this user wrote is believed: a link, a file of another user's or one
        that group or others may write, in a folder others may write, is refused
        (UnsafeFolder), so nobody can make Suitcase kill a process by writing a record.
        """
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafeFolder(f"run record {path} is a link: not believed") from None
            return None
        with os.fdopen(fd, "rb") as handle:
            check_owned(os.fstat(handle.fileno()), path, "run record")
            check_owned(os.lstat(path.parent), path.parent, "run records folder")
            raw = handle.read(1 << 20)
        try:
            data = json.loads(raw)
            return cls(
                int(data["pid"]),
                int(data["start"]),
                [str(a) for a in data["argv"]],
                int(data["owner"]),
                int(data["owner_start"]),
                int(data["uid"]),
            )
        except (ValueError, KeyError, TypeError):
            return None

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(asdict(self), handle)
        tmp.replace(path)

    def owner_alive(self) -> bool:
        return self.owner != os.getpid() and alive(self.owner, self.owner_start)

    def members(self) -> list[int]:
        """Every live process of the recorded session (the leader too, if it still runs).

        The kernel never hands out a pid that is still some session's id, so a process in a
        session numbered like our leader, started no earlier than it, belongs to that run, unless
        the pid now leads another session (a different start time): then none of it is ours.
        """
        leader = start_time(self.pid)
        if leader is not None and leader != self.start:
            return []
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            fields = _stat(pid)
            if fields and int(fields[3]) == self.pid and int(fields[19]) >= self.start:
                found.append(pid)
        found = [pid for pid in found if uid_of(pid) == self.uid]
        if self.start_matches() and self.pid not in found and uid_of(self.pid) == self.uid:
            found.append(self.pid)
        return found

    def is_member(self, pid: int) -> bool:
        fields = _stat(pid)
        if fields is None or uid_of(pid) != self.uid:
            return False
        if pid == self.pid:
            return int(fields[19]) == self.start
        return int(fields[3]) == self.pid and int(fields[19]) >= self.start

    def start_matches(self) -> bool:
        return alive(self.pid, self.start)


@dataclass
class Running:
    """A recorded process tree while its block runs; `leave` keeps what outlives the block."""

    record: Record
    leave: bool


@contextlib.contextmanager
def recorded(
    path: Path | None, pid: int, argv: list[str], leave: bool = False
) -> Iterator[Running]:
    """Keep a pid file for the process tree led by `pid` while the block runs.

    On leaving, whatever of the tree is still there (a stray child) is killed and the file goes,
    unless `leave` is still set: then a live tree keeps its file for the next run's sweep.
    """
    running = Running(Record.of(pid, argv), leave)
    if path is not None:
        running.record.write(path)
    try:
        yield running
    finally:
        if not (running.leave and running.record.members()):
            with contextlib.suppress(BusyError):
                wait_gone(running.record, GONE_TIMEOUT)
                if path is not None:
                    path.unlink(missing_ok=True)


def kill_recorded(path: Path, timeout: float = GONE_TIMEOUT) -> list[str]:
    """Kill the process tree a pid file names, unless its owner still runs; wait until it is gone.

    Returns what was done, one line each. A pid whose start time differs from the record is some
    other process that got the number since: it is never touched.
    """
    record = Record.read(path)
    if record is None:
        path.unlink(missing_ok=True)
        return []
    if record.owner_alive():
        raise BusyError(f"{path} names a run still owned by process {record.owner}; stop it first")
    done = []
    members = record.members()
    if members:
        name = Path(record.argv[0]).name if record.argv else "?"
        done.append(f"killed {len(members)} process(es) left by an earlier run ({name} ...)")
    wait_gone(record, timeout)
    path.unlink(missing_ok=True)
    return done


def stop_own(path: Path, timeout: float = GONE_TIMEOUT) -> None:
    """Kill the process tree a pid file names if this process started it (a build of this run
    that must stop now: another build of the run was interrupted). Anything else is left."""
    record = Record.read(path)
    if record is not None and record.owner == os.getpid():
        with contextlib.suppress(BusyError):
            wait_gone(record, timeout)


def wait_gone(record: Record, timeout: float) -> None:
    """SIGKILL every member of the recorded session until none is left, or refuse."""
    deadline = time.monotonic() + timeout
    while True:
        members = record.members()
        if not members:
            return
        if time.monotonic() > deadline:
            raise BusyError(
                f"processes {', '.join(map(str, sorted(members)))} of an earlier run "
                f"({' '.join(record.argv[:3])}) did not die within {int(timeout)} s"
            )
        for pid in members:
            _kill_member(record, pid)
        time.sleep(0.1)


def _kill_member(record: Record, pid: int) -> None:
    """SIGKILL `pid` through a pidfd, checked a member of `record` once the pidfd holds it: a
    pid freed and reused between the check and the signal is never hit."""
    try:
        fd = os.pidfd_open(pid)
    except (ProcessLookupError, PermissionError):
        return
    try:
        if record.is_member(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                signal.pidfd_send_signal(fd, signal.SIGKILL)
    finally:
        os.close(fd)


def stale_vm_records(folder: Path) -> list[Path]:
    """Pid files in `folder` whose owner is dead: VMs (or their files) left by a killed run."""
    if not folder.is_dir():
        return []
    stale = []
    for path in sorted(folder.glob("*.json")):
        record = Record.read(path)
        if record is None or not record.owner_alive():
            stale.append(path)
    return stale


def loops_under(folder: Path) -> list[tuple[str, Path]]:
    """Loop devices whose backing file lies at or below `folder`, as (device, backing file)."""
    top = Path(os.path.realpath(folder))
    found = []
    for backing in sorted(SYS_BLOCK.glob("loop*/loop/backing_file")):
        try:
            name = backing.read_text().strip()
        except OSError:
            continue
        name = name.removesuffix(" (deleted)")
        path = Path(name)
        if path == top or top in path.parents:
            found.append((f"/dev/{backing.parent.parent.name}", path))
    return found


def release(folder: Path, pidfile: Path | None = None) -> list[str]:
    """Free `folder` of everything an earlier killed run left in it, or refuse in one line.

    Kills the process tree recorded in `pidfile`, unmounts every mount at or below `folder`
    (deepest first) and detaches every loop device whose backing file lies below it. Nothing
    outside `folder` is touched: a mount is only detached, never written; only recorded
    processes are killed. Returns what was done, one line each.
    """
    done = kill_recorded(pidfile) if pidfile is not None else []
    for point in mounts_under(folder):
        ok = _quiet(["umount", str(point)]) or _quiet(["umount", "--lazy", str(point)])
        if ok:
            done.append(f"unmounted {point}")
    for device, backing in loops_under(folder):
        # a device still busy is detached once its last user lets go (the kernel's autoclear)
        if _quiet(["losetup", "--detach", device]):
            done.append(f"detached {device} ({backing})")
    left = mounts_under(folder)
    if left:
        raise MountedError(
            f"cannot reuse {folder}: {left[0]} is mounted there and would not unmount; "
            f"run `umount {left[0]}` by hand"
        )
    busy = [d for d, _ in loops_under(folder) if not _autoclear(d)]
    if busy:
        raise MountedError(
            f"cannot reuse {folder}: loop device {busy[0]} still holds a file in it; "
            f"run `losetup -d {busy[0]}` by hand"
        )
    return done


def _autoclear(device: str) -> bool:
    """A loop device set to detach itself once its last user closes it (a lazy detach)."""
    flag = SYS_BLOCK / Path(device).name / "loop" / "autoclear"
    try:
        return flag.read_text().strip() == "1"
    except OSError:
        return True  # the device went away meanwhile


def _quiet(argv: list[str]) -> bool:
    try:
        return subprocess.run(argv, capture_output=True, check=False).returncode == 0
    except FileNotFoundError:
        return False


def stale_scratch(kind: str, base: Path | None = None) -> list[Path]:
    """Scratch folders `<kind>-<pid>-<start>-*` of this user's scratch root whose process is
    gone (killed while it worked: a VM's overlays, a mounted image's raw copy, Packer's log)."""
    found = []
    prefix = f"{kind}-"
    for path in sorted((base or scratch_root()).glob(f"{prefix}*")):
        parts = path.name[len(prefix) :].split("-")
        numbered = len(parts) == 3 and parts[0].isdigit() and parts[1].isdigit()
        if numbered and not alive(int(parts[0]), int(parts[1])):
            found.append(path)
    return found


def scratch_dir(kind: str) -> Path:
    """A fresh 0700 folder of this process in the scratch root (`<kind>-<pid>-<start>-*`),
    after sweeping the ones killed runs left: their mounts and loop devices are released
    first, and no removal crosses a mount point or follows a link (safety.remove_tree)."""
    root = scratch_root()
    for stale in stale_scratch(kind, root):
        with contextlib.suppress(MountedError):
            release(stale)
            remove_tree_quietly(stale)
    me = os.getpid()
    return Path(tempfile.mkdtemp(prefix=f"{kind}-{me}-{start_time(me)}-", dir=root))
