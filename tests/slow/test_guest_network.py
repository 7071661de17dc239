"""A booted image under verification reaches nothing of the host, yet gets a cloud's DHCP.

The real master of the shared build set, booted by verification's booted(): QEMU runs in a
network namespace of its own (suitcase.netns), so the host's 127.0.0.1 (where the embedded
endpoint listens, here a listener of the test's own) is out of the guest's reach through
10.0.2.2, and no QEMU socket listens on the host at all. DHCP still names a gateway and a
resolver, which restrict=on would not (the resolv.conf spec needs one). About two minutes.
"""

from __future__ import annotations

import re
import socket
import subprocess
from pathlib import Path

import pytest

from pytest_suitcase.ssh import ssh_host
from suitcase.keys import KeyPair
from suitcase.machine import booted
from suitcase.manifest import read_manifest
from tests.slow.conftest import OS_NAME, BuiltSet

pytestmark = pytest.mark.slow


def _master(built_set: BuiltSet) -> tuple[Path, KeyPair]:
    folder = built_set.stage_dir("master")
    manifest = read_manifest(folder)
    output = manifest.output("disk") if manifest is not None else None
    assert output is not None, f"no master disk in {folder}"
    keys = built_set.workspace / "keys" / f"{OS_NAME}-{built_set.timestamp}"
    private = sorted(p for p in keys.glob("id_*") if p.suffix != ".pub")
    assert private, f"no build key in {keys}"
    return folder / output.path, KeyPair(private[0], private[0].with_suffix(".pub"))


def _host_sockets_of(pid: int) -> list[str]:
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if f"pid={pid}," in line]


@pytest.mark.filterwarnings("ignore:Unknown ssh-ed25519 host key")
def test_the_guest_gets_dhcp_but_reaches_nothing_of_the_host(
    built_set: BuiltSet, tmp_path: Path
) -> None:
    disk, key = _master(built_set)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0)
        port = listener.getsockname()[1]
        with booted(disk, "build-key", key, keep_dir=tmp_path) as login:
            assert login.netns_pid is not None
            assert _host_sockets_of(login.netns_pid) == []  # the SSH forward is on no host port
            host = ssh_host(login)
            routes = host.run("ip -4 route show default").stdout
            assert re.search(r"^default via 10\.0\.2\.2 ", routes, re.M), routes
            resolv = host.file("/etc/resolv.conf").content_string
            assert re.search(r"^nameserver\s+\S+", resolv, re.M), resolv
            for target in (f"10.0.2.2/{port}", "10.0.2.2/22", f"10.0.2.2/{login.port + 1}"):
                tried = host.run(f"timeout 10 bash -c 'exec 3<>/dev/tcp/{target}'")
                assert tried.rc != 0, f"the guest reached {target}: {tried}"
            # and the test's probe would have worked from the host: the listener is real
            with socket.create_connection(("127.0.0.1", port), 5):
                pass
            accepted, _ = listener.accept()
            accepted.close()
            with pytest.raises(BlockingIOError):  # nothing of the guest ever got through
                listener.accept()
