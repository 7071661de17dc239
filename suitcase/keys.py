"""The build set's SSH key pair: generated per build set, never committed, private half 0600."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from suitcase.redact import remember


@dataclass(frozen=True)
class KeyPair:
    private: Path
    public: Path

    @property
    def public_line(self) -> str:
        return self.public.read_text().strip()


def ensure_key_pair(folder: Path, comment: str) -> KeyPair:
    """Create `folder`/id_ed25519{,.pub} once; later calls return the same pair."""
    private = folder / "id_ed25519"
    public = folder / "id_ed25519.pub"
    if private.exists() and public.exists():
        with contextlib.suppress(OSError):  # never shown, wherever it turns up
            remember(private.read_text(errors="replace"))
        return KeyPair(private, public)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)  # private from its creation
    os.chmod(folder, 0o700)  # and when an older run left it open
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
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
