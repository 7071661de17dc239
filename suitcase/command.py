"""One way to run external tools (Packer, qemu-img, debootstrap, ...): argv in, small result out.

>>> run(["true"]).returncode
0
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from suitcase.errors import ToolError

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

_SECRET_PATTERNS = (
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)", re.S),
    re.compile(
        r"(?i)((?:aws_)?secret(?:_access)?_key|(?:session_)?token|password|passwd)(['\"]?\s*[:=]\s*['\"]?)"
        r"([^\s'\",]+)"
    ),
)


def interrupt_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt, so VMs, mounts and locks are released as on Ctrl-C."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


class Redactor:
    """Masks known secrets and secret-looking assignments before text is shown or kept."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)
        for name in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            value = os.environ.get(name)
            if value and len(value) >= 4:
                self.secrets.append(value)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "<redacted>")
        text = _SECRET_PATTERNS[0].sub("<redacted private key>", text)
        return _SECRET_PATTERNS[1].sub(lambda m: f"{m[1]}{m[2]}<redacted>", text)


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
        detail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-5:]
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
    with log.open("a") as handle:
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
    for raw in source:
        line = redact(raw.rstrip("\n"))
        log.write(line + "\n")
        log.flush()
        last.append(line)
        if on_line is not None:
            on_line(line)
