"""An image's programs run only in suitcase.sandbox: a hostile image reaches nothing of the host.

A tiny image (the host's dash and cat with their libraries, in an ext4 file system made with
mkfs.ext4 -d) mounted by verification's mounted() and probed through the specs' testinfra host:
no host /proc to walk to the host's root through (`/proc/<caller>/root`), nothing mounted
inside the image (its `proc` is a link to a folder of the test's), no write anywhere, none of
the caller's environment, a PID namespace of its own; a mode-0000 file stays readable (EL's
/etc/shadow), as specs need.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_suitcase.sandboxed import image_host
from suitcase import sandbox
from suitcase.machine import mounted

LIBS = ("/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2")


def _copy(src: str, tree: Path) -> None:
    dest = tree / src.lstrip("/")
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(os.path.realpath(src), dest)


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A host folder the image's `proc` link points at: old code bound the host's /proc there."""
    folder = tmp_path / "victim"
    folder.mkdir()
    (folder / "untouched").write_text("host\n")
    return folder


@pytest.fixture
def hostile_root(tmp_path: Path, victim: Path) -> Iterator[Path]:
    tree = tmp_path / "tree"
    for path in ("/bin/sh", "/usr/bin/cat", *LIBS):
        _copy(path, tree)
    os.link(tree / "bin" / "sh", tree / "bin" / "dash")
    for folder in ("etc", "tmp", "root", "sys"):
        (tree / folder).mkdir(exist_ok=True)
    (tree / "dev").symlink_to("/")  # mount points that lead out of the image
    (tree / "proc").symlink_to(victim)
    (tree / "etc" / "shadow").write_text("root:!*:20000::::::\n")
    (tree / "etc" / "shadow").chmod(0)
    image = tmp_path / "image.raw"
    subprocess.run(["truncate", "-s", "32M", str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(tree), str(image)], check=True)
    before = Path("/proc/self/mountinfo").read_text().count("\n")
    with mounted(image) as root:
        assert Path("/proc/self/mountinfo").read_text().count("\n") == before + 1  # itself only
        yield root


def test_the_image_reaches_nothing_of_the_host(
    hostile_root: Path, victim: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "caller-secret-never-inside")
    host = image_host(hostile_root)
    assert sorted(p.name for p in victim.iterdir()) == ["untouched"]  # nothing bound over it
    # the host's root through /proc/PID/root of the process that started it: there is no /proc
    me = os.getpid()
    walk = host.run(f"test -e /proc/{me}/root/etc/hostname && echo reached || echo no")
    assert walk.stdout.strip() == "no", walk
    escaped = tmp_path / "escaped"
    tried = host.run(f"echo x > /proc/{me}/root{escaped}; echo x > /dev/etc/escaped")
    assert tried.rc != 0 and not escaped.exists()
    assert host.run("echo x > /etc/new").rc != 0  # read-only
    assert host.run('echo "[$AWS_SECRET_ACCESS_KEY]"').stdout.strip() == "[]"
    assert int(host.run("echo $$").stdout) <= 2  # bwrap is its PID 1
    assert host.run("cat /etc/shadow").stdout == "root:!*:20000::::::\n"


def test_the_same_probe_outside_the_sandbox_does_reach_the_host(tmp_path: Path) -> None:
    """What the image is kept from, a program on the host does: the probes can fail."""
    probe = f"test -e /proc/{os.getpid()}/root/etc/hostname && echo reached || echo no"
    assert subprocess.run(["sh", "-c", probe], capture_output=True, text=True).stdout == "reached\n"


def test_sandbox_run_takes_the_image_tools_and_never_raises(hostile_root: Path) -> None:
    done = sandbox.run(hostile_root, ["/usr/bin/cat", "/etc/shadow"])
    assert done.returncode == 0 and done.stdout.startswith("root:")
    missing = sandbox.run(hostile_root, ["/usr/bin/dpkg-query", "-W"])
    assert missing.returncode != 0


def test_without_bubblewrap_it_says_which_package_in_one_line(
    hostile_root: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from suitcase.errors import ToolError

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ToolError, match=r"bwrap not found on PATH.*Debian package: bubblewrap"):
        sandbox.run(hostile_root, ["/bin/sh", "-c", "true"])
