"""Build keys per OS: a type each image's sshd accepts, and logins that work against old sshd."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest

from pytest_suitcase.ssh import ssh_host
from suitcase.config import Paths
from suitcase.errors import ConfigError
from suitcase.keys import (
    accepted_key_types,
    connect_options,
    ensure_key_pair,
    knows_rsa_sha2,
    server_openssh_version,
)
from suitcase.machine import Login
from suitcase.ostemplate import list_os, load_os, parse_os

ALL_OS = list_os(Paths.default())


@pytest.mark.parametrize("name", ALL_OS)
def test_build_key_type_is_one_the_images_openssh_accepts(name: str) -> None:
    tpl = load_os(name)
    assert "openssh_version" in tpl.data and "build_key_type" in tpl.data, name
    assert tpl.build_key_type in accepted_key_types(tpl.data["openssh_version"])


def test_the_table_refuses_ed25519_before_openssh_6_5() -> None:
    # what every EL6 and CentOS 7.0 template did before: an Ed25519 build key
    assert "ed25519" not in accepted_key_types("5.3p1")
    assert "ed25519" not in accepted_key_types("6.4p1")
    assert "ed25519" in accepted_key_types("6.6.1p1")
    assert accepted_key_types("5.3p1") == ["rsa"]
    assert not knows_rsa_sha2("6.6.1p1") and knows_rsa_sha2("7.2p2")


def test_a_template_with_a_key_its_sshd_refuses_is_refused(tmp_path: Path) -> None:
    source = Paths.default().os_dir / "CentOS-6.7-x86_64.yaml"
    path = tmp_path / "CentOS-6.7-x86_64.yaml"
    path.write_text(source.read_text().replace("build_key_type: rsa", "build_key_type: ed25519"))
    with pytest.raises(ConfigError, match=r"ed25519 is not accepted by OpenSSH 5\.3p1"):
        parse_os("CentOS-6.7-x86_64", path)


def test_rsa_key_pair_is_pkcs1_pem_and_readable(tmp_path: Path) -> None:
    pair = ensure_key_pair(tmp_path / "k", "suitcase-build-x", "rsa")
    assert pair.private.name == "id_rsa"
    assert pair.private.stat().st_mode & 0o777 == 0o600
    assert pair.private.read_text().startswith("-----BEGIN RSA PRIVATE KEY-----")
    derived = subprocess.run(
        ["ssh-keygen", "-y", "-f", str(pair.private)], capture_output=True, text=True, check=True
    ).stdout.split()
    assert derived[:2] == pair.public_line.split()[:2]
    assert pair.public_line.startswith("ssh-rsa ")
    assert ensure_key_pair(tmp_path / "k", "other", "rsa") == pair  # generated once


def test_unknown_key_type_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown SSH key type 'dsa'"):
        ensure_key_pair(tmp_path, "x", "dsa")


# --- an sshd that speaks like OpenSSH 5.3: ssh-rsa only, no server-sig-algs, SHA-1 KEX ---------


class _Server(paramiko.ServerInterface):
    def __init__(self, allowed: paramiko.PKey) -> None:
        self.allowed = allowed

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        ok = username == "root" and key.asbytes() == self.allowed.asbytes()
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return paramiko.OPEN_SUCCEEDED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        def answer() -> None:
            # paramiko replies "exec accepted" once this method returns: answer after that
            time.sleep(0.3)
            channel.sendall(b"old-sshd-ran:" + command)
            channel.send_exit_status(0)
            channel.close()

        threading.Thread(target=answer, daemon=True).start()
        return True


OLD_SSHD = {
    # OpenSSH 5.3's algorithms, as far as paramiko implements them
    "pubkeys": ["rsa-sha2-512", "rsa-sha2-256", "ssh-ed25519"],
    "keys": ["rsa-sha2-512", "rsa-sha2-256"],
    "kex": [
        k
        for k in paramiko.Transport._preferred_kex
        if k not in ("diffie-hellman-group14-sha1", "diffie-hellman-group1-sha1")
    ],
}


@pytest.fixture
def old_sshd(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """(port, client key): a loopback sshd that behaves like EL6's OpenSSH 5.3p1."""
    pair = ensure_key_pair(tmp_path / "client", "suitcase-test", "rsa")
    client_key = paramiko.RSAKey.from_private_key_file(str(pair.private))
    host_key = paramiko.RSAKey.generate(2048)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.5)
    stop = threading.Event()
    transports: list[paramiko.Transport] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                sock, _ = listener.accept()
            except OSError:
                continue
            transport = paramiko.Transport(
                sock, disabled_algorithms=OLD_SSHD, server_sig_algs=False
            )
            transport.local_version = "SSH-2.0-OpenSSH_5.3"
            transport.add_server_key(host_key)
            transports.append(transport)
            try:
                transport.start_server(server=_Server(client_key))
            except (paramiko.SSHException, EOFError, OSError):
                continue  # a banner probe hangs up before key exchange

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], pair.private
    finally:
        stop.set()
        thread.join(5)
        for transport in transports:
            transport.close()
        listener.close()


def _login(port: int, key: Path, **extra: Any) -> str:
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    try:
        client.connect(
            "127.0.0.1",
            port=port,
            username="root",
            pkey=paramiko.RSAKey.from_private_key_file(str(key)),
            timeout=10,
            allow_agent=False,
            look_for_keys=False,
            **extra,
        )
        _stdin, stdout, _stderr = client.exec_command("true")
        return str(stdout.read().decode())
    finally:
        client.close()


def test_the_banner_names_the_openssh_version(old_sshd: tuple[int, Path]) -> None:
    port, _key = old_sshd
    assert server_openssh_version("127.0.0.1", port) == "5.3"
    assert connect_options("127.0.0.1", port) == {
        "disabled_algorithms": {"pubkeys": ["rsa-sha2-512", "rsa-sha2-256"]}
    }


def test_plain_paramiko_cannot_log_in_to_old_sshd(old_sshd: tuple[int, Path]) -> None:
    port, key = old_sshd
    with pytest.raises(paramiko.AuthenticationException):
        _login(port, key)


def test_connect_options_log_in_to_old_sshd(old_sshd: tuple[int, Path]) -> None:
    port, key = old_sshd
    assert _login(port, key, **connect_options("127.0.0.1", port)) == "old-sshd-ran:true"


@pytest.mark.filterwarnings("ignore:Unknown ssh-rsa host key")
def test_the_specs_host_runs_commands_on_old_sshd(old_sshd: tuple[int, Path]) -> None:
    port, key = old_sshd
    host = ssh_host(Login("root", port, key))
    assert host.run("uname").stdout.startswith("old-sshd-ran:")


def test_no_options_for_a_closed_port() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert server_openssh_version("127.0.0.1", port, timeout=1) is None
    assert connect_options("127.0.0.1", port, timeout=1) == {}
