"""Parity reads a mounted image from the host: a link in a hostile image leads nowhere out of it.

Each link below points at a host folder of the test's (a stand-in for the host's /etc, /root or
/srv). Resolved the way the image itself would (suitcase.safety.resolve_in_root), an absolute
target starts again at the image's root, so none of the host's files is read; links that stay
inside the image (merged /usr's `lib -> usr/lib`) still work.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from suitcase.parity import Rules, contents
from suitcase.safety import UnsafeFolder, resolve_in_root


@pytest.fixture
def host(tmp_path: Path) -> Path:
    """Host files no image may make the host read."""
    folder = tmp_path / "host"
    (folder / "etc").mkdir(parents=True)
    (folder / "etc" / "passwd").write_text("hostuser:x:0:0::/root:/bin/sh\n")
    (folder / "root" / ".ssh").mkdir(parents=True)
    (folder / "root" / ".ssh" / "authorized_keys").write_text("ssh-ed25519 HOSTKEY host\n")
    (folder / "srv" / "x").mkdir(parents=True)
    (folder / "srv" / "x" / "secret").write_text("host secret\n")
    return folder


def _image(tmp_path: Path, host: Path) -> Path:
    root = tmp_path / "image"
    (root / "usr" / "lib").mkdir(parents=True)
    (root / "usr" / "lib" / "os-release").write_text("ID=debian\n")
    (root / "lib").symlink_to("usr/lib")  # merged /usr: inside the image
    (root / "etc").symlink_to(host / "etc")  # absolute: the image's own /tmp/..., not the host's
    (root / "home").mkdir()
    (root / "home" / "v").symlink_to(host / "root")
    (root / "opt").symlink_to(host / "srv")
    return root


def test_links_resolve_inside_the_image(tmp_path: Path, host: Path) -> None:
    root = _image(tmp_path, host)
    assert resolve_in_root(root, "/lib/os-release") == root / "usr/lib/os-release"
    assert resolve_in_root(root, "/etc/passwd") == root / str(host / "etc/passwd").lstrip("/")
    assert resolve_in_root(root, "/../../../lib/../lib/os-release") == root / "usr/lib/os-release"
    assert resolve_in_root(root, "/lib", follow_last=False) == root / "lib"
    (root / "loop").symlink_to("loop")
    with pytest.raises(UnsafeFolder, match="more than 40 links"):
        resolve_in_root(root, "/loop/x")


def test_parity_reads_nothing_of_the_host_through_an_image_link(tmp_path: Path, host: Path) -> None:
    root = _image(tmp_path, host)
    # the image's own passwd would name user v with home /home/v: here it is the host's that
    # a host-side read would find, through /etc
    rules = Rules(trees=["/opt/x"], files=["/lib/os-release", "/etc/passwd"], ignore=[], deltas={})
    snap = contents(root, rules, {})
    assert not any("hostuser" in key for key in snap.accounts), snap.accounts
    assert snap.files["/etc/passwd"] == "absent"
    assert snap.files["/opt/x"] == "absent"  # the tree is not walked on the host
    assert snap.files["/lib/os-release"].startswith("file ")
    assert all("HOSTKEY" not in str(k) for k in snap.keys.values())
    assert snap.keys == {}


def test_a_home_linked_out_of_the_image_is_not_read(tmp_path: Path, host: Path) -> None:
    root = _image(tmp_path, host)
    (root / "etc").unlink()
    (root / "etc").mkdir()
    (root / "etc" / "passwd").write_text("v:x:1000:1000::/home/v:/bin/sh\n")
    (host / "root" / ".ssh" / "authorized_keys2").write_text("ssh-rsa HOSTKEY2 host\n")
    snap = contents(root, Rules(trees=[], files=[], ignore=[], deltas={}), {})
    assert "user v (/etc/passwd)" in snap.accounts
    assert snap.keys == {}  # /home/v -> the host's /root: resolved inside the image, absent
