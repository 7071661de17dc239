from __future__ import annotations

from pathlib import Path

import pytest

from suitcase.config import Site, apt_mirror
from suitcase.errors import ConfigError


def test_layering_defaults_file_env_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site_file = tmp_path / "site.yaml"
    site_file.write_text("bucket: from-file\nregion: eu-west-1\ncpus: 4\n")
    monkeypatch.setenv("SUITCASE_REGION", "ap-south-1")
    site = Site.load(site_file, {"cpus": 1, "builder": None})
    assert (site.bucket, site.region, site.cpus, site.builder) == (
        "from-file",
        "ap-south-1",
        1,
        "qemu",
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bucket: [\n", "not valid YAML"),
        ("colour: blue\n", "unknown key 'colour'"),
        ("builder: vmware\n", "key 'builder' must be 'qemu' or 'virtualbox' .got 'vmware'"),
        ("derive: clone\n", "key 'derive' must be 'overlay' or 'copy' .got 'clone'."),
        ("cpus: many\n", "'cpus' must be a whole number"),
        ("bucket: Not_A_Bucket\n", "must be a valid S3 bucket name"),
        ("mirrors: {debian: ftp.example}\n", "mirrors.debian"),
        ("- just a list\n", "must be a mapping"),
    ],
)
def test_bad_site_files(tmp_path: Path, text: str, message: str) -> None:
    site_file = tmp_path / "site.yaml"
    site_file.write_text(text)
    with pytest.raises(ConfigError, match=message):
        Site.load(site_file)


def test_apt_mirror_is_read_from_deb822_and_one_line_sources(tmp_path: Path) -> None:
    deb822 = tmp_path / "debian.sources"
    deb822.write_text(
        "Types: deb\nURIs: http://mirror.invalid/debian/\nSuites: bookworm\n\n"
        "Types: deb\nURIs: http://mirror.invalid/debian-security\n"
    )
    assert apt_mirror((deb822,)) == "http://mirror.invalid/debian"
    legacy = tmp_path / "sources.list"
    legacy.write_text("# comment\ndeb [arch=amd64] http://other.invalid/debian bookworm main\n")
    assert apt_mirror((tmp_path / "missing", legacy)) == "http://other.invalid/debian"
    assert apt_mirror((tmp_path / "missing",)) is None


def test_site_mirror_overrides_apt(tmp_path: Path) -> None:
    site = Site(mirrors={"debian": "http://local.invalid/debian/"})
    assert site.mirror("Debian") == "http://local.invalid/debian"
    assert Site().mirror("CentOS") is None
