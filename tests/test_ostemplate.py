from __future__ import annotations

from pathlib import Path

import pytest

from suitcase.config import Paths
from suitcase.errors import ConfigError
from suitcase.ostemplate import list_os, load_os

ORIGINAL = {
    "CentOS-6.5-x86_64": "f9d84907d77df62017944cb23cab66305e94ee6ae6c1126415b81cc5e999bdd0",
    "CentOS-6.6-x86_64": "5458f357e8a55e3a866dd856896c7e0ac88e7f9220a3dd74c58a3b0acede8e4d",
    "CentOS-6.7-x86_64": "9d3fec5897be6b3fed4d3dda80b8fa7bb62c616bbfd4bdcd27295ca9b764f498",
    "CentOS-7.0-x86_64": "745a0a4a02147d8371b87dd09d402c7dc5fddc609caa7af44bc7b004de78c58a",
    "CentOS-7.2-x86_64": "148449e661535f52aa846aa4a0112798f9153df8526b83e76075560a1de3accf",
    "CentOS-7.3-x86_64": "af4969ebbdc479d330de97c5bfbb37eedc64c369f009cb15a97f9553ba441c88",
}


def test_ten_templates_ship_and_all_load() -> None:
    names = list_os(Paths.default())
    assert len(names) == 10
    assert set(ORIGINAL) <= set(names)
    assert "Debian-12-x86_64" in names
    for name in names:
        tpl = load_os(name)
        assert tpl.name == name
        assert tpl.family in ("el", "debian")


@pytest.mark.parametrize(("name", "sha"), sorted(ORIGINAL.items()))
def test_original_media_checksums_carried_over(name: str, sha: str) -> None:
    assert load_os(name).iso_checksum() == f"sha256:{sha}"


def test_root_filesystem_follows_the_original() -> None:
    assert load_os("CentOS-6.7-x86_64").data["root_fs"] == "ext4"
    assert load_os("CentOS-7.3-x86_64").data["root_fs"] == "xfs"


def test_missing_checksum_refuses_with_one_line() -> None:
    tpl = load_os("AlmaLinux-9.6-x86_64")
    with pytest.raises(ConfigError, match="no published sha256") as err:
        tpl.iso_checksum()
    assert "\n" not in str(err.value)


def test_fingerprint_ignores_comments_but_not_values(home: Paths) -> None:
    path = home.os_dir / "Debian-12-x86_64.yaml"
    before = load_os("Debian-12-x86_64", home).fingerprint()
    path.write_text("# a new comment\n" + path.read_text())
    assert load_os("Debian-12-x86_64", home).fingerprint() == before
    path.write_text(path.read_text().replace("disk_size_mb: 4096", "disk_size_mb: 5000"))
    assert load_os("Debian-12-x86_64", home).fingerprint() != before


def _write(home: Paths, text: str) -> None:
    (home.os_dir / "Broken-1-x86_64.yaml").write_text(text)


GOOD = Path(__file__).resolve().parent.parent / "os" / "CentOS-7.3-x86_64.yaml"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda t: t + "colour: blue\n", "unknown key 'colour'"),
        (lambda t: t.replace("major: 7\n", ""), "missing key 'major'"),
        (
            lambda t: t.replace("major: 7", "major: seven"),
            "key 'major' must be a whole number (got 'seven')",
        ),
        (
            lambda t: t.replace('version: "7.3"', "version: 7.3"),
            "key 'version' must be a string (got 7.3)",
        ),
        (
            lambda t: t.replace("family: el", "family: bsd"),
            "key 'family' must be 'el' or 'debian' (got 'bsd')",
        ),
        (lambda t: t.replace("  answer_file: el7\n", ""), "missing key 'installer.answer_file'"),
        (lambda t: t.replace("sha256:af49", "md5:af49"), "installer.iso_checksum"),
        (lambda t: t + "  extra: 1\n", "unknown key 'installer.extra'"),
        (lambda t: "family: [el\n", "not valid YAML"),
        (lambda t: "- a list\n", "must be a mapping"),
    ],
)
def test_bad_templates_name_file_and_key(home: Paths, mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    _write(home, mutate(GOOD.read_text()))
    with pytest.raises(ConfigError) as err:
        load_os("Broken-1-x86_64", home)
    text = str(err.value)
    assert message in text
    assert "Broken-1-x86_64.yaml" in text
    assert "\n" not in text


def test_unknown_and_unsafe_names() -> None:
    with pytest.raises(ConfigError, match=r"unknown OS 'Nope'.*known: AlmaLinux"):
        load_os("Nope")
    with pytest.raises(ConfigError, match="not a valid OS template name"):
        load_os("../etc/passwd")
