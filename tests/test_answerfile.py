"""Every shipped EL OS template renders to a kickstart that pykickstart's ksvalidator accepts."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from suitcase.answerfile import boot_command, render, typed_boot_command
from suitcase.config import Paths
from suitcase.keys import ensure_key_pair
from suitcase.ostemplate import list_os, load_os

EL = [n for n in list_os(Paths.default()) if load_os(n).family == "el"]
KSVALIDATOR = shutil.which("ksvalidator") or str(Path(sys.executable).parent / "ksvalidator")


def ksvalidator(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    """pykickstart's real validator; its preprocessed copy (a `tmp*-ks.cfg` it never deletes)
    goes to `tmp`, not the machine's /tmp."""
    return subprocess.run(
        [KSVALIDATOR, *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "TMPDIR": str(tmp)},
    )


@pytest.fixture(scope="module")
def public_key(tmp_path_factory: pytest.TempPathFactory) -> str:
    return ensure_key_pair(tmp_path_factory.mktemp("key"), "suitcase-build-test").public_line


@pytest.mark.parametrize(
    "repos",
    [[], [{"name": "epel", "baseurl": "http://repo.invalid/epel/"}]],
    ids=["no-repos", "one-repo"],
)
@pytest.mark.parametrize("name", EL)
def test_rendered_kickstart_validates(
    name: str, repos: list[dict[str, str]], public_key: str, tmp_path: Path
) -> None:
    tpl = load_os(name)
    text = render(tpl, Paths.default(), public_key, repos, f"{name}-20260101000000")
    ks = tmp_path / "ks.cfg"
    ks.write_text(text)
    version = f"RHEL{tpl.major}"
    result = ksvalidator("-e", "-v", version, str(ks), tmp=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert public_key in text
    for repo in repos:
        assert repo["baseurl"] in text


def test_ksvalidator_really_rejects_a_broken_kickstart(tmp_path: Path) -> None:
    ks = tmp_path / "ks.cfg"
    ks.write_text("rootpw --no-such-option\n%packages\n")
    result = ksvalidator("-v", "RHEL7", str(ks), tmp=tmp_path)
    assert result.returncode != 0


@pytest.mark.parametrize("name", EL)
def test_no_plain_text_password(name: str, public_key: str) -> None:
    text = render(load_os(name), Paths.default(), public_key, [], "x")
    for line in text.splitlines():
        if line.startswith(("rootpw", "user ")):
            assert "--plaintext" not in line
            assert "--lock" in line or "--iscrypted" in line
            words = line.split()
            if "--iscrypted" in words:
                assert words[-1] in ("!!", "!", "*"), "a real hash must never be committed"


@pytest.mark.parametrize("name", EL)
def test_a_locked_root_has_no_hash_behind_the_lock(name: str, public_key: str) -> None:
    """`rootpw --lock` with no password makes EL7's anaconda write `!$6$...` (a locked hash of
    the empty password): root's crypted value is the "no password" marker on every EL."""
    text = render(load_os(name), Paths.default(), public_key, [], "x")
    lines = [line for line in text.splitlines() if line.startswith("rootpw")]
    assert lines == ["rootpw --iscrypted --lock !!"], lines


@pytest.mark.parametrize("name", EL)
def test_boot_command_fetches_the_served_kickstart(name: str) -> None:
    joined = typed_boot_command(boot_command(load_os(name), Paths.default()))
    assert re.search(r"ks=http://10\.0\.2\.100/ks\.cfg<enter>", joined)
    # anaconda from EL7 on reads inst.ks; EL6 only knows ks
    major = load_os(name).major
    assert (" inst.ks=" in joined) == (major >= 8)
    assert ("inst.text" in joined) == (major >= 8)
    assert joined.rstrip().endswith(("<enter>", "<wait>"))
