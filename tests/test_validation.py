"""Input checked once at load (issue 7, items 7 and 8): timestamps, 'latest', the shipped data,
where a bad value is blamed, and --workspace after the verb."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from click.testing import CliRunner

from suitcase.answerfile import render
from suitcase.cli import cli
from suitcase.config import PROJECT_ROOT, Paths, Site
from suitcase.errors import ConfigError
from suitcase.manifest import inspect_manifest, write_atomic
from suitcase.ostemplate import list_os, load_os
from suitcase.workspace import Workspace, check_timestamp
from tests.fakes import workspace_stage

DEBIAN = "Debian-12-x86_64"
NOW = dt.datetime(2026, 11, 27, 12, 0, 0, tzinfo=dt.UTC)


def test_timestamps_up_to_a_day_ahead_are_taken_later_ones_refused() -> None:
    assert check_timestamp("20261128110000", now=NOW) == "20261128110000"
    with pytest.raises(ConfigError, match="is in the future"):
        check_timestamp("20261128130000", now=NOW)
    with pytest.raises(ConfigError, match="in the future"):
        check_timestamp("99991231235959")


def test_latest_skips_impossible_future_and_unfinished_sets(tmp_path: Path) -> None:
    workspace_stage(tmp_path, "master", DEBIAN, "20260101000000")
    workspace_stage(tmp_path, "vagrant", DEBIAN, "20260201000000", manifest=False)  # failed, empty
    workspace_stage(tmp_path, "master", DEBIAN, "20261399000000")  # no such month
    workspace_stage(tmp_path, "master", DEBIAN, "99991231235959")  # the future
    broken = workspace_stage(tmp_path, "master", DEBIAN, "20260301000000")
    (broken / "manifest.json").write_text('{"stage": "master"}')  # not a manifest
    ws = Workspace(tmp_path)
    assert ws.resolve_timestamp(DEBIAN, "latest") == "20260101000000"
    assert [b.timestamp for b in ws.build_sets(DEBIAN)] == [
        "20260101000000",
        "20260201000000",
        "20260301000000",
    ]


def test_shipped_site_and_defaults_are_valid() -> None:
    assert Site.load(PROJECT_ROOT / "site.yaml") == Site()
    assert Site.model_validate({}) == Site()


def test_variables_and_options_are_typed_and_layered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUITCASE_CPUS", " 4 ")
    monkeypatch.setenv("SUITCASE_MEMORY", "1024")
    site = Site.load(None, {"accelerator": "kvm", "builder": None})
    assert (site.cpus, site.memory, site.accelerator, site.builder) == (4, 1024, "kvm", "qemu")
    monkeypatch.setenv("SUITCASE_DERIVE", "clone")
    with pytest.raises(ConfigError, match=r"^SUITCASE_DERIVE: must be 'overlay' or 'copy'"):
        Site.load(None)


def test_a_repo_name_with_a_newline_never_reaches_the_kickstart(tmp_path: Path) -> None:
    site_file = tmp_path / "site.yaml"
    site_file.write_text(
        'repos: {el7: [{name: "epel\\n%post\\ntouch /pwned\\n%end", baseurl: "http://m.invalid/"}]}\n'
    )
    with pytest.raises(ConfigError, match=r"repos\.el7\[0\]\.name"):
        Site.load(site_file)
    site_file.write_text('repos: {el7: [{name: epel, baseurl: "http://m.invalid/7/"}]}\n')
    site = Site.load(site_file)
    text = render(
        load_os("CentOS-7.3-x86_64"), Paths.default(), "ssh-ed25519 AAAA k", site.repos["el7"]
    )
    assert 'repo --name="epel" --baseurl=http://m.invalid/7/\n' in text


def test_a_folder_named_like_a_template_is_not_listed(home: Paths) -> None:
    (home.os_dir / "Folder-1-x86_64.yaml").mkdir()
    (home.os_dir / "bad name!.yaml").write_text("x: 1\n")
    assert "Folder-1-x86_64" not in list_os(home)
    assert "bad name!" not in list_os(home)
    assert len(list_os(home)) == 10


def test_list_omits_a_template_folder(runner: CliRunner, workspace: Path, home: Paths) -> None:
    (home.os_dir / "Folder-1-x86_64.yaml").mkdir()
    result = runner.invoke(cli, ["list"])
    assert result.exit_code == 0 and "Folder-1" not in result.output


def test_workspace_after_the_verb(runner: CliRunner, workspace: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    workspace_stage(other, "master", DEBIAN, "20260101000000")
    for args in (
        ["list", "--workspace", str(other)],
        ["--workspace", "/nonexistent", "list", "--workspace", str(other)],
    ):
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, result.output
        assert f"Build sets in {other}/images:" in result.output
        assert f"{DEBIAN}-20260101000000" in result.output
    result = runner.invoke(
        cli, ["plan", "master", "--os", DEBIAN, "--timestamp", "latest", "--workspace", str(other)]
    )
    assert result.exit_code == 0 and f"{DEBIAN}-20260101000000" in result.output


def test_a_manifest_with_unknown_keys_or_bad_checksums_is_untrusted(tmp_path: Path) -> None:
    stage = workspace_stage(tmp_path, "master", DEBIAN, "20260101000000")
    good = (stage / "manifest.json").read_text()
    assert inspect_manifest(stage)[1] is None
    write_atomic(stage / "manifest.json", good.replace('"extra": {}', '"extra": {}, "evil": 1'))
    assert inspect_manifest(stage) == (None, "untrusted manifest.json: unknown key 'evil'")
    write_atomic(stage / "manifest.json", good.replace('"size": 1024', '"size": -1'))
    problem = inspect_manifest(stage)[1] or ""
    assert "key 'outputs[0].size' must be greater than or equal to 0" in problem
