"""Run an image's own programs (offline specs, parity's package query) without the host.

An image under verification is hostile until proven otherwise, and `chroot` is no boundary for
root: with the host's /proc bound in, `/proc/1/root` is the host's root, and root may write
`/proc/sys` or `/proc/sysrq-trigger` by plain file permissions. So an image's program runs only
here, under bubblewrap:

- the image's root, read-only, is the whole file system (pivoted into, not chrooted: nothing of
  the host's is below it), with a minimal /dev of bubblewrap's own (null, zero, random, tty...)
  and a small /tmp; **no /proc and no /sys at all**;
- new PID, network, IPC, UTS and cgroup namespaces: no host process to see or signal, no
  network, no abstract socket of the host's;
- uid 0 (file ownership reads true) with every capability dropped but CAP_DAC_READ_SEARCH (read
  a mode-0000 /etc/shadow), no_new_privs, a new session (no TIOCSTI into the caller's terminal),
  an empty environment (no credential of the caller's), and it dies with its caller.

Only host tools (bwrap) start it; the image's programs run inside.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from suitcase.command import require

#: what the image's programs see; nothing of the caller's environment
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
ENV = {"PATH": PATH, "HOME": "/root", "LC_ALL": "C", "TERM": "dumb"}


def argv(root: Path, command: list[str]) -> list[str]:
    """`command` run inside the image mounted at `root` (see the module's words)."""
    prefix = [
        require("bwrap"),
        "--ro-bind",
        str(root),
        "/",
        "--dev",
        "/dev",
        "--tmpfs",
        "/tmp",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--cap-add",
        "CAP_DAC_READ_SEARCH",
        "--clearenv",
    ]
    for name, value in ENV.items():
        prefix += ["--setenv", name, value]
    return [*prefix, "--chdir", "/", "--", *command]


def run(root: Path, command: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`command` in the image at `root`; its output as text, never raising for its exit code."""
    return subprocess.run(
        argv(root, command),
        capture_output=True,
        text=True,
        errors="replace",
        check=False,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
