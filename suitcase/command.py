"""One way to run external tools (Packer, qemu-img, debootstrap, ...): argv in, small result out.

>>> run(["true"]).returncode
0
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from suitcase.errors import ToolError
from suitcase.redact import Redactor as Redactor  # re-exported: callers build one per run
from suitcase.redact import open_log, redact_text

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
}


def interrupt_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt, so VMs, mounts and locks are released as on Ctrl-C."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


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
    """Run to completion, capturing output; raise ToolError with stdout and stderr on failure."""
    require(argv[0])
    try:
        proc = subprocess.run(
            argv,
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            check=False,
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
) -> tuple[int, list[str]]:
    """Run with output merged, passing each redacted line to `on_line` and appending it to `log`.

    Returns the exit code and the last `tail` lines; raw output is never kept unredacted.
    """
    require(argv[0])
    redact = redact or Redactor()
    log.parent.mkdir(parents=True, exist_ok=True)
    last: deque[str] = deque(maxlen=tail)
    with open_log(log) as handle:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            start_new_session=False,
        )
        assert proc.stdout is not None
        try:
            _pump(proc.stdout, handle, last, redact, on_line)
        except BaseException:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise
        return proc.wait(), list(last)


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
