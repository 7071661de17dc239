"""suitcase.netns: a verification VM's network of its own, with real namespaces (as root).

A Python listener stands in for QEMU's SSH forward: isolated() starts it in a new, empty network
namespace; connect() reaches it there, while the host's 127.0.0.1 has nothing on that port and
what runs inside reaches nothing the host listens on.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from suitcase import netns

LISTEN = """
import socket, sys
with socket.socket() as s:
    s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen()
    print("listening", flush=True)
    while True:
        c, _ = s.accept(); c.sendall(b"SSH-2.0-inside\\r\\n"); c.close()
"""


@pytest.fixture
def inside() -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        netns.isolated([sys.executable, "-c", LISTEN, "2222"]), stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline() == "listening\n"
    yield proc
    proc.kill()
    proc.wait()


def _own_listener() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    sock.settimeout(0)
    return sock


def test_connect_reaches_the_forward_inside_and_no_host_port(
    inside: subprocess.Popen[str],
) -> None:
    with netns.connect(inside.pid, 2222, 5) as sock:
        assert sock.recv(64) == b"SSH-2.0-inside\r\n"
    with socket.socket() as probe:  # what listens inside is on no port of the host
        assert probe.connect_ex(("127.0.0.1", 2222)) != 0 or _is_not_inside(probe)


def _is_not_inside(probe: socket.socket) -> bool:
    probe.settimeout(2)
    try:
        return probe.recv(64) != b"SSH-2.0-inside\r\n"
    except OSError:
        return True


def test_what_runs_inside_reaches_nothing_the_host_listens_on() -> None:
    with _own_listener() as host_side:
        port = host_side.getsockname()[1]
        code = (
            "import socket, sys\n"
            f"try: socket.create_connection(('127.0.0.1', {port}), 3)\n"
            "except OSError as e: print(type(e).__name__); sys.exit(0)\n"
            "print('reached'); sys.exit(1)\n"
        )
        tried = subprocess.run(
            netns.isolated([sys.executable, "-c", code]), capture_output=True, text=True
        )
        assert tried.returncode == 0, tried.stdout + tried.stderr
        with pytest.raises(BlockingIOError):
            host_side.accept()
        # the same code outside the namespace does reach it: the probe can fail
        outside = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert outside.returncode == 1 and outside.stdout.strip() == "reached"


def test_a_process_still_in_the_host_network_is_never_connected_through() -> None:
    """Before unshare has run (or for a process never isolated) connect() refuses: a host port
    that a local user holds is never taken for the VM's forward."""
    with _own_listener() as impostor:
        port = impostor.getsockname()[1]
        plain = subprocess.Popen(["sleep", "30"])
        try:
            with pytest.raises(ConnectionRefusedError, match="no network of its own"):
                netns.connect(plain.pid, port, 2)
        finally:
            plain.kill()
            plain.wait()
        with pytest.raises(BlockingIOError):
            impostor.accept()


def test_the_namespace_goes_with_its_process(inside: subprocess.Popen[str]) -> None:
    inside.kill()
    inside.wait()
    with pytest.raises(FileNotFoundError):
        netns.connect(inside.pid, 2222, 2)


def test_this_process_never_leaves_its_own_network(inside: subprocess.Popen[str]) -> None:
    before = _ns()
    for _ in range(3):
        netns.connect(inside.pid, 2222, 5).close()
    time.sleep(0.1)
    assert _ns() == before
    assert os.readlink("/proc/thread-self/ns/net") == before


def _ns() -> str:
    return os.readlink("/proc/self/ns/net")
