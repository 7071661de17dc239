"""The build set's SSH key pair, and how paramiko logs in with it to old and new sshd alike.

Keys are generated per build set, never committed, private half 0600. Their type follows the OS
template (`build_key_type`): Ed25519 where the image's OpenSSH knows it (6.5 and later), RSA where
it does not (EL6's 5.3p1, CentOS 7.0's 6.4p1). Which OpenSSH accepts what is data:
os/data/openssh.yaml, from OpenSSH's release notes.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from suitcase.config import Paths
from suitcase.errors import ConfigError
from suitcase.redact import remember

KEY_TYPES = ("ed25519", "rsa")
RSA_BITS = 3072
#: paramiko 2.9+ signs with RSA/SHA-2 first; a server without server-sig-algs (OpenSSH < 7.2)
#: rejects that, so it must be told to use ssh-rsa (paramiko's changelog for 2.9.0).
LEGACY_RSA_DISABLED = ("rsa-sha2-512", "rsa-sha2-256")
#: Opens a connection to an sshd within a timeout (suitcase.machine.Login.connect).
Opener = Callable[[float], socket.socket]


@dataclass(frozen=True)
class KeyPair:
    private: Path
    public: Path

    @property
    def public_line(self) -> str:
        return self.public.read_text().strip()


def ensure_key_pair(folder: Path, comment: str, key_type: str = "ed25519") -> KeyPair:
    """Create `folder`/id_<type>{,.pub} once; later calls return the same pair.

    RSA private keys are written as PKCS#1 PEM, which every client here reads (Packer 1.6's
    Go SSH library, paramiko, old ssh(1)); Ed25519 keys only exist in OpenSSH's format.
    """
    if key_type not in KEY_TYPES:
        raise ConfigError(f"unknown SSH key type '{key_type}' (known: {', '.join(KEY_TYPES)})")
    private = folder / f"id_{key_type}"
    public = folder / f"id_{key_type}.pub"
    if private.exists() and public.exists():
        with contextlib.suppress(OSError):  # never shown, wherever it turns up
            remember(private.read_text(errors="replace"))
        return KeyPair(private, public)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)  # private from its creation
    os.chmod(folder, 0o700)  # and when an older run left it open
    key: Ed25519PrivateKey | rsa.RSAPrivateKey
    if key_type == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
        fmt = serialization.PrivateFormat.TraditionalOpenSSL
    else:
        key = Ed25519PrivateKey.generate()
        fmt = serialization.PrivateFormat.OpenSSH
    pem = key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())
    openssh = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    tmp = private.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    os.replace(tmp, private)
    remember(pem.decode())
    public.write_text(f"{openssh.decode()} {comment}\n")
    return KeyPair(private, public)


def fingerprint(public_line: str) -> str:
    """The key's fingerprint as `ssh-keygen -l` prints it: SHA256:<base64 of the key blob>."""
    import base64
    import hashlib

    fields = public_line.split()
    try:
        blob = base64.b64decode(fields[1], validate=True)
    except (IndexError, ValueError):
        raise ConfigError("not an OpenSSH public key line") from None
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


# --- which OpenSSH accepts what (os/data/openssh.yaml) -------------------------------------------


def version_tuple(version: str) -> tuple[int, ...]:
    """'5.3p1' -> (5, 3); '6.6.1p1' -> (6, 6, 1)."""
    match = re.match(r"^(\d+(?:\.\d+)*)", version.strip())
    if not match:
        raise ConfigError(f"'{version}' is not an OpenSSH version (like 5.3p1)")
    return tuple(int(p) for p in match.group(1).split("."))


def openssh_table(data_dir: Path | None = None) -> dict[str, Any]:
    """The table of os/data/openssh.yaml: since which OpenSSH release each key type works."""
    return _read_table((data_dir or Paths.default().os_dir / "data") / "openssh.yaml")


@functools.cache
def _read_table(path: Path) -> dict[str, Any]:
    try:
        table = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        raise ConfigError(f"{path}: cannot read the OpenSSH table") from None
    if not isinstance(table, dict) or not isinstance(table.get("key_types"), dict):
        raise ConfigError(f"{path}: needs a 'key_types' mapping")
    return table


def accepted_key_types(openssh_version: str, data_dir: Path | None = None) -> list[str]:
    """Key types an sshd of this version accepts for public-key login."""
    have = version_tuple(openssh_version)
    return [
        name
        for name, since in openssh_table(data_dir)["key_types"].items()
        if have >= version_tuple(str(since))
    ]


def knows_rsa_sha2(openssh_version: str) -> bool:
    """RSA signatures with SHA-2 (RFC 8332) and server-sig-algs arrived together in 7.2."""
    return version_tuple(openssh_version) >= version_tuple(str(openssh_table()["rsa_sha2"]))


# --- connecting ----------------------------------------------------------------------------------


def server_openssh_version(
    host: str, port: int, timeout: float = 10, opener: Opener | None = None
) -> str | None:
    """The OpenSSH version in an sshd's identification line ('SSH-2.0-OpenSSH_5.3'), or None.

    The server speaks first, so this costs one short connection and no authentication.
    `opener` makes that connection (a VM's own network: suitcase.netns) instead of `host:port`.
    """
    try:
        opened = opener(timeout) if opener else socket.create_connection((host, port), timeout)
        with opened as sock:
            sock.settimeout(timeout)
            data = b""
            while b"\n" not in data and len(data) < 1024:
                chunk = sock.recv(256)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return None
    for line in data.decode("ascii", "replace").splitlines():
        match = re.match(r"^SSH-2\.0-OpenSSH_(\S+)", line)
        if match:
            return match.group(1)
    return None


def connect_options(
    host: str, port: int, timeout: float = 5, opener: Opener | None = None
) -> dict[str, Any]:
    """Extra paramiko connect() arguments for this server: ssh-rsa for OpenSSH older than 7.2.

    Only RSA keys are affected (the option filters RSA signature algorithms), so it is safe
    whatever the key; against 7.2 and later nothing is changed (8.8 refuses ssh-rsa).
    """
    version = server_openssh_version(host, port, timeout, opener)
    if version is not None and not knows_rsa_sha2(version):
        return {"disabled_algorithms": {"pubkeys": list(LEGACY_RSA_DISABLED)}}
    return {}
