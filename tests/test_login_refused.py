"""A login the guest refuses fails at once, naming the user and key (a paramiko loopback sshd
that speaks like EL6's OpenSSH 5.3, from test_keys)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from suitcase.keys import ensure_key_pair
from suitcase.machine import BootHung, Login, LoginRefused, _wait_for_ssh
from tests import test_keys

old_sshd = test_keys.old_sshd  # the loopback sshd (a fixture): it authorizes one key for root


@pytest.fixture
def vm(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A stand-in for QEMU: _wait_for_ssh only checks that it is still running."""
    proc = subprocess.Popen(["sleep", "300"])
    yield proc
    proc.kill()
    proc.wait()


@pytest.mark.filterwarnings("ignore:Unknown ssh-rsa host key")
def test_a_refused_key_fails_at_once_naming_user_and_key(
    old_sshd: tuple[int, Path], vm: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    port, _authorized = old_sshd
    stranger = ensure_key_pair(tmp_path / "stranger", "stranger", "rsa")
    expected = paramiko.PKey.from_path(stranger.private).fingerprint
    started = time.monotonic()
    with pytest.raises(LoginRefused) as caught:
        _wait_for_ssh(Login("root", port, stranger.private), vm, tmp_path, timeout=600)
    assert time.monotonic() - started < 20  # not the boot timeout
    message = str(caught.value)
    assert "refused the SSH login of root with key " + expected in message


@pytest.mark.filterwarnings("ignore:Unknown ssh-rsa host key")
def test_a_cloud_init_login_gets_a_grace_then_fails_the_same_way(
    old_sshd: tuple[int, Path], vm: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    port, _authorized = old_sshd
    stranger = ensure_key_pair(tmp_path / "stranger", "stranger", "rsa")
    started = time.monotonic()
    with pytest.raises(LoginRefused, match="refused the SSH login of root"):
        _wait_for_ssh(
            Login("root", port, stranger.private), vm, tmp_path, timeout=600, refused_grace=4
        )
    assert 4 <= time.monotonic() - started < 30


@pytest.mark.filterwarnings("ignore:Unknown ssh-rsa host key")
def test_the_authorized_key_logs_in(
    old_sshd: tuple[int, Path], vm: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    port, authorized = old_sshd
    _wait_for_ssh(Login("root", port, authorized), vm, tmp_path, timeout=60)


def test_no_sshd_at_all_is_still_a_hung_boot(vm: subprocess.Popen[bytes], tmp_path: Path) -> None:
    from suitcase.machine import free_port

    key = ensure_key_pair(tmp_path / "k", "k", "rsa").private
    with pytest.raises(BootHung):
        _wait_for_ssh(Login("root", free_port(), key), vm, tmp_path, timeout=1)
