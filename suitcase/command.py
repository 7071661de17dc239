"""One way to run external tools (Packer, qemu-img, debootstrap, ...): argv in, small result out.

>>> run(["true"]).returncode
0
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from suitcase.errors import ToolError
from suitcase.redact import Redactor as Redactor  # re-exported: callers build one per run
from suitcase.redact import open_log, redact_text
from suitcase.sweep import recorded

#: Debian package that provides each tool, for the "how to fix" half of a missing-tool error.
PACKAGES = {
    "packer": "packer",
    "qemu-img": "qemu-utils",
    "qemu-system-x86_64": "qemu-system-x86",
    "debootstrap": "debootstrap",
    "vagrant": "vagrant",
    "ssh-keygen": "openssh-client",
    "ksvalidator": "pykickstart (pip)",
    "losetup": "mount",
    "extlinux": "extlinux",
    "setpriv": "util-linux",
    "unshare": "util-linux",
    "bwrap": "bubblewrap",
    "socat": "socat",
    "genisoimage": "genisoimage",
}

#: How long a stopped tool gets to clean up (Packer stops its VM, the bootstrap unmounts).
STOP_GRACE = 30.0


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or a termination signal: unwinds like Ctrl-C so VMs, mounts and locks are released."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(f"signal {signum}")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


def signal_of(interrupt: KeyboardInterrupt) -> int:
    return interrupt.signum if isinstance(interrupt, Interrupted) else signal.SIGINT


def interrupt_on_sigterm() -> None:
    """Turn SIGTERM and SIGHUP into Interrupted, so they are handled like Ctrl-C."""

    def handler(signum: int, frame: object) -> None:
        raise Interrupted(signum)

    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, handler)


def dies_with_us(argv: list[str]) -> list[str]:
    """`argv` run so that the kernel kills it (SIGKILL) when this process dies, however it dies."""
    return [require("setpriv"), "--pdeathsig", "KILL", "--", *argv]


def contained(argv: list[str], private_mounts: bool = False) -> list[str]:
    """`argv` and everything it starts, made to die with this process however it dies.

    setpriv gives unshare a parent-death signal; unshare makes `argv` the first process of a new
    PID namespace and kills it when unshare dies (--kill-child); the kernel kills every process of
    a PID namespace when its first one dies. So `kill -9` of Suitcase alone still takes down
    Packer, its plugins and its QEMU, or debootstrap and whatever it runs in the chroot. With
    `private_mounts`, what the tree mounts is private to it and vanishes with it too.
    """
    unshare = [require("unshare"), "--pid", "--fork", "--kill-child"]
    if private_mounts:
        unshare += ["--mount", "--propagation", "private"]
    return dies_with_us([*unshare, "--", *argv])


def stop_tree(proc: subprocess.Popen[Any], grace: float = STOP_GRACE) -> None:
    """Stop a process started as a session leader and everything in its session.

    SIGTERM to the whole process group first (Packer stops its VM, the bootstrap unmounts), then
    SIGKILL after `grace` seconds, or at once on a second Ctrl-C.
    """
    try:
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=grace)
    finally:
        _signal_group(proc.pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


@dataclass(frozen=True)
class Result:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str


def require(tool: str) -> str:
    """The full path of `tool`, or a one-line error saying how to install it."""
    path = shutil.which(tool)
    if path is None:
        package = PACKAGES.get(tool, tool)
        raise ToolError(
            f"{tool} not found on PATH; install it (Debian package: {package}) "
            "or run bin/setup-host"
        )
    return path


def run(
    argv: list[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    check: bool = True,
    timeout: float | None = None,
    input: str | None = None,
) -> Result:
    """Run to completion, capturing output; raise ToolError with stdout and stderr on failure.

    The tool dies with Suitcase (parent-death signal): a `qemu-img convert` never outlives a
    killed build to keep writing into a folder the next run reuses.
    """
    require(argv[0])
    try:
        proc = subprocess.run(
            dies_with_us(argv),
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            check=False,
            start_new_session=True,  # Ctrl-C reaches Suitcase, which stops the tool itself
        )
    except subprocess.TimeoutExpired:
        raise ToolError(f"{argv[0]} did not finish within {timeout} s") from None
    result = Result(argv, proc.returncode, proc.stdout, proc.stderr)
    if check and proc.returncode != 0:
        # redacted whole before it is cut: a key's last lines are masked by its BEGIN line
        detail = redact_text(proc.stderr.strip() or proc.stdout.strip()).splitlines()[-5:]
        raise ToolError(
            f"{' '.join(argv[:3])} failed (exit {proc.returncode}): " + " | ".join(detail)
        )
    return result


def stream(
    argv: list[str],
    *,
    log: Path,
    on_line: Callable[[str], None] | None = None,
    redact: Redactor | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    tail: int = 20,
    pidfile: Path | None = None,
    private_mounts: bool = False,
    leave_running: bool = False,
) -> tuple[int, list[str]]:
    """Run with output merged, passing each redacted line to `on_line` and appending it to `log`.

    Returns the exit code and the last `tail` lines; raw output is never kept unredacted. The tool
    and all it starts run contained (see `contained`) in a session of their own, recorded in
    `pidfile` while they run; on any exception (Ctrl-C too) the whole session is stopped.
    `leave_running` (Packer's -on-error=abort, which keeps a failed VM for debugging) runs the
    tool uncontained and leaves what outlives it to the next run's sweep.
    """
    require(argv[0])
    redact = redact or Redactor()
    log.parent.mkdir(parents=True, exist_ok=True)
    last: deque[str] = deque(maxlen=tail)
    with open_log(log) as handle:
        proc = subprocess.Popen(
            dies_with_us(argv) if leave_running else contained(argv, private_mounts),
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            start_new_session=True,
        )
        with recorded(pidfile, proc.pid, argv, leave_running) as record:
            assert proc.stdout is not None
            try:
                _pump(proc.stdout, handle, last, redact, on_line)
                code = proc.wait()
            except BaseException:
                record.leave = False
                try:
                    stop_tree(proc)
                except KeyboardInterrupt:  # a second Ctrl-C: no more grace
                    stop_tree(proc, grace=0)
                raise
            return code, list(last)


def _pump(
    source: IO[str],
    log: IO[str],
    last: deque[str],
    redact: Redactor,
    on_line: Callable[[str], None] | None,
) -> None:
    line_filter = redact.lines()  # one per stream: a key block spans lines
    for raw in source:
        line = line_filter(raw.rstrip("\n"))
        log.write(line + "\n")
        log.flush()
        last.append(line)
        if on_line is not None:
            on_line(line)
