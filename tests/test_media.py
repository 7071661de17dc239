"""EL media: repositories vs. package lists, ISO checksums, mirrors per release, cloud-init."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from suitcase.answerfile import render
from suitcase.cli import cli
from suitcase.config import Paths, Site
from suitcase.errors import ConfigError
from suitcase.media import (
    carried_packages,
    check_repositories,
    iso_url,
    kickstart_repos,
    master_has_cloud_init,
    package_data,
    sha256_of,
    verify_local_iso,
)
from suitcase.ostemplate import list_os, load_os
from tests.test_answerfile import ksvalidator

EL = [n for n in list_os(Paths.default()) if load_os(n).family == "el"]
MIRRORS = {
    "centos": "https://vault.invalid/centos",
    "rocky linux": "https://rocky.invalid/pub/rocky",
    "rocky-vault": "https://rocky.invalid/vault/rocky",
    "almalinux-vault": "https://alma.invalid/vault",
}
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey suitcase-test"


def site(**values: object) -> Site:
    return Site(**{"mirrors": dict(MIRRORS), **values})  # type: ignore[arg-type]


def asked_packages(kickstart: str) -> set[str]:
    """Package names in %packages (groups and exclusions left out)."""
    match = re.search(r"^%packages[^\n]*\n(.*?)^%end", kickstart, re.M | re.S)
    assert match, "no %packages section"
    words = [line.strip() for line in match.group(1).splitlines()]
    return {w for w in words if w and not w.startswith(("#", "@", "-"))}


@pytest.mark.parametrize("name", EL)
def test_every_package_the_kickstart_asks_for_is_on_the_declared_media(name: str) -> None:
    tpl = load_os(name)
    text = render(tpl, Paths.default(), KEY, kickstart_repos(site(), tpl), "x")
    missing = asked_packages(text) - carried_packages(tpl, Paths.default())
    assert not missing, f"{name} asks for {sorted(missing)}, which none of its media carry"


@pytest.mark.parametrize("name", EL)
def test_kickstart_with_the_resolved_repositories_validates(name: str, tmp_path: Path) -> None:
    tpl = load_os(name)
    repos = kickstart_repos(site(), tpl)
    assert [r["name"] for r in repos] == [r["name"] for r in tpl.installer["repositories"]]
    ks = tmp_path / "ks.cfg"
    ks.write_text(render(tpl, Paths.default(), KEY, repos, "x"))
    for repo in repos:
        assert f'repo --name="{repo["name"]}" --baseurl={repo["baseurl"]}' in ks.read_text()
    result = ksvalidator("-e", "-v", f"RHEL{tpl.major}", str(ks), tmp=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_package_data_cites_a_source_for_every_entry() -> None:
    for name, entry in package_data(Paths.default()).items():
        assert entry["source"].strip(), name


def test_repositories_come_from_the_releases_mirror() -> None:
    rocky9 = {r["name"]: r["baseurl"] for r in kickstart_repos(site(), load_os("Rocky-9.7-x86_64"))}
    assert rocky9["AppStream"] == "https://rocky.invalid/vault/rocky/9.7/AppStream/x86_64/os/"
    rocky8 = {
        r["name"]: r["baseurl"] for r in kickstart_repos(site(), load_os("Rocky-8.10-x86_64"))
    }
    assert rocky8["BaseOS"] == "https://rocky.invalid/pub/rocky/8.10/BaseOS/x86_64/os/"


def test_site_repos_by_name_replace_the_mirror_and_extras_are_kept() -> None:
    repos = {
        "el6": [
            {"name": "os", "baseurl": "http://local.invalid/c6/os/"},
            {"name": "extras", "baseurl": "http://local.invalid/c6/extras/"},
            {"name": "epel", "baseurl": "http://local.invalid/epel6/"},
        ]
    }
    tpl = load_os("CentOS-6.7-x86_64")
    got = kickstart_repos(Site(repos=repos), tpl)
    assert [r["name"] for r in got] == ["os", "extras", "epel"]
    assert got[0]["baseurl"] == "http://local.invalid/c6/os/"
    check_repositories(Site(repos=repos), tpl, Paths.default())  # all given: no error


@pytest.mark.parametrize("name", EL)
def test_no_mirror_and_no_repos_is_refused_naming_what_is_missing(name: str) -> None:
    tpl = load_os(name)
    with pytest.raises(ConfigError, match=r"needs the repositories .* which its ISO lacks"):
        check_repositories(Site(), tpl, Paths.default())


def test_centos6_refusal_names_the_packages_the_minimal_iso_lacks() -> None:
    with pytest.raises(ConfigError) as error:
        check_repositories(Site(), load_os("CentOS-6.7-x86_64"), Paths.default())
    for package in ("kernel-devel", "ntp", "nscd", "rsync", "cloud-init"):
        assert package in str(error.value)
    assert "mirrors.centos" in str(error.value) and "repos.el6" in str(error.value)


# --- mirrors per release -----------------------------------------------------------------------


def test_rocky_9_7_lives_in_the_vault_and_8_10_in_the_main_tree(tmp_path: Path) -> None:
    assert iso_url(tmp_path, site(), load_os("Rocky-9.7-x86_64")).startswith(
        "https://rocky.invalid/vault/rocky/9.7/isos/"
    )
    assert iso_url(tmp_path, site(), load_os("Rocky-8.10-x86_64")).startswith(
        "https://rocky.invalid/pub/rocky/8.10/isos/"
    )


def test_a_release_mirror_the_site_lacks_is_a_clear_error(tmp_path: Path) -> None:
    only_main = Site(mirrors={"rocky linux": "https://rocky.invalid/pub/rocky"})
    with pytest.raises(ConfigError, match=r"set mirrors\.rocky-vault in site\.yaml"):
        iso_url(tmp_path, only_main, load_os("Rocky-9.7-x86_64"))


# --- ISO checksums ------------------------------------------------------------------------------


def fake_iso(workspace: Path, name: str, data: bytes = b"not an installer\n") -> Path:
    tpl = load_os(name)
    path = workspace / "iso" / Path(tpl.installer["iso_path"]).name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_a_local_iso_with_the_wrong_sha256_is_refused(tmp_path: Path) -> None:
    iso = fake_iso(tmp_path, "Rocky-8.10-x86_64")
    with pytest.raises(ConfigError, match=r"sha256 [0-9a-f]{64} is not 2c735d3b") as error:
        verify_local_iso(tmp_path, load_os("Rocky-8.10-x86_64"), tmp_path / "cache.json")
    assert str(iso) in str(error.value) and "\n" not in str(error.value)


def test_a_local_iso_with_the_right_sha256_passes(
    tmp_path: Path, home: Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib

    data = b"a tiny stand-in for an ISO\n"
    path = home.os_dir / "Rocky-8.10-x86_64.yaml"
    text = re.sub(
        r"sha256:[0-9a-f]{64}", "sha256:" + hashlib.sha256(data).hexdigest(), path.read_text()
    )
    path.write_text(text)
    fake_iso(tmp_path, "Rocky-8.10-x86_64", data)
    verify_local_iso(tmp_path, load_os("Rocky-8.10-x86_64", home), tmp_path / "cache.json")


def test_the_checksum_is_cached_by_size_and_mtime(tmp_path: Path) -> None:
    iso = tmp_path / "x.iso"
    iso.write_bytes(b"A" * 1000)
    cache = tmp_path / "cache" / "iso-sha256.json"
    first = sha256_of(iso, cache)
    stat = iso.stat()
    iso.write_bytes(b"B" * 1000)  # same size; the old mtime put back: taken from the cache
    os.utime(iso, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert sha256_of(iso, cache) == first
    os.utime(iso, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touched: computed again
    assert sha256_of(iso, cache) != first


def test_build_refuses_a_wrong_iso_in_one_line_before_packer(
    runner: CliRunner, workspace: Path
) -> None:
    fake_iso(workspace, "CentOS-6.7-x86_64")
    (workspace / "site.yaml").write_text("mirrors: {centos: 'https://vault.invalid/centos'}\n")
    result = runner.invoke(cli, ["build", "master", "--os", "CentOS-6.7-x86_64"])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("suitcase: error:")]
    assert len(errors) == 1 and "sha256" in errors[0] and "is not 9d3fec58" in errors[0]
    assert not (workspace / "images").exists() or not any((workspace / "images").rglob("*.log"))


def test_build_refuses_missing_repositories_before_packer(
    runner: CliRunner, workspace: Path
) -> None:
    fake_iso(workspace, "CentOS-7.3-x86_64")  # the ISO is here, its extras repository is not
    result = runner.invoke(cli, ["build", "master", "--os", "CentOS-7.3-x86_64"])
    assert result.exit_code == 2, result.output
    assert "suitcase: error: CentOS-7.3-x86_64 needs the repositories extras" in result.output


# --- EL6 without cloud-init ------------------------------------------------------------------


def test_centos_6_5_builds_without_cloud_init_and_refuses_aws_images(
    runner: CliRunner, workspace: Path
) -> None:
    tpl = load_os("CentOS-6.5-x86_64")
    assert not master_has_cloud_init(tpl, Paths.default())
    text = render(tpl, Paths.default(), KEY, kickstart_repos(site(), tpl), "x")
    assert "cloud-init" not in asked_packages(text) and "chkconfig" not in text
    assert "cloud-init" in asked_packages(
        render(load_os("CentOS-6.7-x86_64"), Paths.default(), KEY, [], "x")
    )
    result = runner.invoke(cli, ["build", "aws-hvm", "--os", "CentOS-6.5-x86_64"])
    assert result.exit_code == 2, result.output
    assert "has no ENA driver" in result.output  # the capability table refuses it first
    xen_only = runner.invoke(
        cli, ["build", "aws-hvm", "--os", "CentOS-6.5-x86_64"], env={"SUITCASE_AMI_XEN_ONLY": "1"}
    )
    assert xen_only.exit_code == 2, xen_only.output
    assert "aws-hvm needs cloud-init, which CentOS-6.5-x86_64's media do not carry" in (
        xen_only.output
    )


@pytest.mark.skipif(Path("/etc/cloud").exists(), reason="this host has cloud-init")
def test_the_el6_master_script_skips_cloud_init_when_absent() -> None:
    script = Paths.default().scripts_dir / "master" / "40-cloud-init.sh"
    env = {"PATH": "/usr/bin:/bin", "SUITCASE_SCRIPTS": str(Paths.default().scripts_dir)}
    common = {"SUITCASE_FAMILY": "el", "SUITCASE_STAGE": "master"}
    el6 = subprocess.run(
        ["bash", str(script)], env={**env, **common, "SUITCASE_MAJOR": "6"}, capture_output=True
    )
    assert el6.returncode == 0, el6.stderr
    el7 = subprocess.run(
        ["bash", str(script)], env={**env, **common, "SUITCASE_MAJOR": "7"}, capture_output=True
    )
    assert el7.returncode != 0  # elsewhere a master without cloud-init is a broken master


def test_a_missing_repository_that_adds_nothing_is_still_named() -> None:
    given = Site(repos={"el6": [{"name": "os", "baseurl": "http://local.invalid/c65/os/"}]})
    with pytest.raises(ConfigError, match=r"CentOS-6\.5-x86_64 needs the repositories extras: set"):
        check_repositories(given, load_os("CentOS-6.5-x86_64"), Paths.default())
