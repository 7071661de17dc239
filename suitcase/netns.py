"""A network of its own for every verification VM: the guest reaches nothing of the host.

QEMU's user networking connects the guest's outgoing TCP from QEMU's own network namespace:
10.0.2.2 is that namespace's 127.0.0.1, and anything else is routed the way that namespace
routes. `restrict=on` would close all of it, but slirp then hands out no gateway and no resolver
over DHCP, and a booted image's resolver is a spec. So each verification QEMU runs in a new,
empty network namespace instead (`isolated`): DHCP is as on any cloud, while the guest's
connections land in a namespace holding only a loopback with QEMU's SSH forward on it. Nothing
of the host (the embedded endpoint, another VM, the network) is reachable from the image under
verification.

The SSH forward is reachable from the host only by a process that enters that namespace
(`connect`, which needs CAP_SYS_ADMIN): there is no host port for another local user to take or
talk to.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import functools
import os
import socket
import struct
import threading

from suitcase.command import require

CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
IFREQ = "16sH22x"  # struct ifreq on Linux x86-64: a name, then the flags of its 24-byte union


def isolated(argv: list[str]) -> list[str]:
    """`argv` run in a new network namespace (unshare execs it: its pid stays the process's)."""
    return [require("unshare"), "--net", "--", *argv]


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc().setns(fd, CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"cannot enter the VM's network namespace: {os.strerror(code)}")


def _loopback_up() -> None:
    """Bring up `lo` of the namespace this thread is in (a new namespace has it down)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack(IFREQ, b"lo", 0)
        flags = struct.unpack(IFREQ, fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        if not flags & IFF_UP:
            fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack(IFREQ, b"lo", flags | IFF_UP))


def _namespace(path: str) -> tuple[int, int]:
    info = os.stat(path)
    return info.st_dev, info.st_ino


def connect(pid: int, port: int, timeout: float) -> socket.socket:
    """A TCP connection to 127.0.0.1:`port` inside the network namespace of process `pid`.

    `pid` must be a child this process has not reaped (so it cannot be another process's pid).
    Until it has left this process's namespace (unshare has not run yet) the connection is
    refused, as a VM whose SSH is not up yet is: nothing on the host is ever connected to.
    A short-lived thread enters the namespace (setns changes the calling thread only), so the
    rest of this process never leaves its own; the socket keeps the namespace it was made in.
    """
    fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        theirs = os.fstat(fd)
        if (theirs.st_dev, theirs.st_ino) == _namespace("/proc/self/ns/net"):
            raise ConnectionRefusedError(errno.ECONNREFUSED, "the VM has no network of its own yet")
        outcome: list[socket.socket | BaseException] = []

        def inside() -> None:
            try:
                _setns(fd)
                _loopback_up()
                outcome.append(socket.create_connection(("127.0.0.1", port), timeout))
            except BaseException as exc:  # handed to the caller's thread below
                outcome.append(exc)

        thread = threading.Thread(target=inside, name=f"netns-{pid}", daemon=True)
        thread.start()
        thread.join()
    finally:
        os.close(fd)
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    return result
