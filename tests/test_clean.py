"""`suitcase clean`: checks every selected set first, removes all it was asked to or none, lists
what it removed, takes a set's build keys and reports with it, and locks only what it touches."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from suitcase.cli import cli
from suitcase.workspace import BuildSet, Workspace
from tests.conftest import tree_snapshot
from tests.fakes import workspace_stage

DEBIAN = "Debian-12-x86_64"
SET_A = f"{DEBIAN}-20260101000000"


def _set_with_keys_and_reports(ws: Path, ts: str, images: tuple[str, ...]) -> None:
    for image in images:
        workspace_stage(ws, image, DEBIAN, ts)
    keys = ws / "keys" / f"{DEBIAN}-{ts}"
    keys.mkdir(parents=True)
    (keys / "id_ed25519").write_text("private\n")
    (ws / "reports").mkdir(exist_ok=True)
    (ws / "reports" / f"junit-{DEBIAN}-{ts}.xml").write_text("<testsuites/>\n")


def test_whole_set_goes_with_its_keys_and_reports_and_is_listed(
    runner: CliRunner, workspace: Path, home: object
) -> None:
    _set_with_keys_and_reports(workspace, "20260101000000", ("master", "vagrant"))
    _set_with_keys_and_reports(workspace, "20260201000000", ("master",))
    # another OS whose name ends like ours: its report must not match
    (workspace / "reports" / f"junit-X-{SET_A}.xml").write_text("other\n")
    result = runner.invoke(cli, ["clean", "all", "--os", DEBIAN, "--timestamp", "20260101000000"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"removed {workspace}/images/master/{SET_A}",
        f"removed {workspace}/images/vagrant/{SET_A}",
        f"removed {workspace}/keys/{SET_A}",
        f"removed {workspace}/reports/junit-{SET_A}.xml",
    ]
    left = sorted(tree_snapshot(workspace))
    # (lock files are the lock's business: another change keeps them from piling up)
    gone = [
        p for p in left if SET_A in p and not p.startswith(("reports/junit-X-", "images/.locks"))
    ]
    assert not gone, gone
    assert (workspace / "keys" / f"{DEBIAN}-20260201000000" / "id_ed25519").exists()
    assert (workspace / "reports" / f"junit-{DEBIAN}-20260201000000.xml").exists()
    assert (workspace / "reports" / f"junit-X-{SET_A}.xml").exists()


def test_part_of_a_set_keeps_its_keys_and_reports(
    runner: CliRunner, workspace: Path, home: object
) -> None:
    _set_with_keys_and_reports(workspace, "20260101000000", ("master", "vagrant"))
    result = runner.invoke(cli, ["clean", "vagrant", "--os", DEBIAN, "--timestamp", "latest"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [f"removed {workspace}/images/vagrant/{SET_A}"]
    assert (workspace / "images" / "master" / SET_A / "manifest.json").exists()
    assert (workspace / "keys" / SET_A / "id_ed25519").exists()
    assert (workspace / "reports" / f"junit-{SET_A}.xml").exists()


def test_dry_run_lists_keys_and_reports_and_removes_nothing(
    runner: CliRunner, workspace: Path, home: object
) -> None:
    _set_with_keys_and_reports(workspace, "20260101000000", ("master",))
    before = tree_snapshot(workspace)
    result = runner.invoke(cli, ["clean", "--os", DEBIAN, "--dry-run"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"would remove {workspace}/images/master/{SET_A}",
        f"would remove {workspace}/keys/{SET_A}",
        f"would remove {workspace}/reports/junit-{SET_A}.xml",
    ]
    assert tree_snapshot(workspace) == before


def test_no_lock_on_sets_it_does_not_touch(
    runner: CliRunner, workspace: Path, home: object
) -> None:
    workspace_stage(workspace, "vagrant", DEBIAN, "20260101000000")
    workspace_stage(workspace, "master", DEBIAN, "20260101000000")
    busy = workspace_stage(workspace, "master", DEBIAN, "20260201000000")  # no vagrant stage
    with Workspace(workspace).lock(BuildSet(DEBIAN, "20260201000000")):
        result = runner.invoke(cli, ["clean", "vagrant", "--os", DEBIAN])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [f"removed {workspace}/images/vagrant/{SET_A}"]
    assert (busy / "manifest.json").exists()


def test_every_set_of_the_os_goes_when_none_is_in_use(
    runner: CliRunner, workspace: Path, home: object
) -> None:
    for ts in ("20260101000000", "20260201000000"):
        workspace_stage(workspace, "master", DEBIAN, ts)
    kept = workspace_stage(workspace, "master", "Rocky-9.7-x86_64", "20260101000000")
    result = runner.invoke(cli, ["clean", "--os", DEBIAN])
    assert result.exit_code == 0, result.output
    assert len(result.output.splitlines()) == 2
    assert sorted(p.name for p in (workspace / "images" / "master").iterdir()) == [kept.name]
