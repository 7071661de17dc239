from __future__ import annotations

import datetime as dt
import multiprocessing
import os
from pathlib import Path

import pytest

from suitcase.errors import BusyError, ConfigError
from suitcase.workspace import BuildSet, Workspace, check_timestamp, new_timestamp
from tests.fakes import workspace_stage


def test_new_timestamp_is_utc_14_digits() -> None:
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert new_timestamp(when) == "20260102030405"
    assert len(new_timestamp()) == 14


@pytest.mark.parametrize("value", ["20261126010203", "202611260102"])
def test_twelve_and_fourteen_digits_accepted(value: str) -> None:
    assert check_timestamp(value) == value


@pytest.mark.parametrize(
    "value", ["2026", "20261326010203", "2026112601020x", "20260230000000", ""]
)
def test_bad_timestamps_refused(value: str) -> None:
    with pytest.raises(ConfigError):
        check_timestamp(value)


def test_latest_picks_newest_set_of_that_os(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    for image, os_name, ts in [
        ("master", "Debian-12-x86_64", "20260101000000"),
        ("vagrant", "Debian-12-x86_64", "20260301000000"),
        ("master", "CentOS-7.3-x86_64", "20260401000000"),
    ]:
        workspace_stage(tmp_path, image, os_name, ts)
    assert ws.resolve_timestamp("Debian-12-x86_64", "latest") == "20260301000000"
    with pytest.raises(ConfigError, match="no build set of Rocky"):
        ws.resolve_timestamp("Rocky-9.7-x86_64", "latest")


def test_inside_refuses_escapes(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "out").symlink_to(tmp_path)
    with pytest.raises(ConfigError, match="outside the workspace"):
        ws.inside(tmp_path / "ws" / ".." / "elsewhere")
    with pytest.raises(ConfigError, match="outside the workspace"):
        ws.inside(tmp_path / "ws" / "out" / "x")


def _hold(
    root: str, ready: multiprocessing.synchronize.Event, release: multiprocessing.synchronize.Event
) -> None:  # type: ignore[name-defined]
    ws = Workspace(Path(root))
    with ws.lock(BuildSet("Debian-12-x86_64", "20260101000000")):
        ready.set()
        release.wait(30)


def test_second_holder_of_a_build_set_is_refused(tmp_path: Path) -> None:
    ready, release = multiprocessing.Event(), multiprocessing.Event()
    proc = multiprocessing.Process(target=_hold, args=(str(tmp_path), ready, release))
    proc.start()
    try:
        assert ready.wait(30)
        ws = Workspace(tmp_path)
        with (
            pytest.raises(BusyError, match="in use by another"),
            ws.lock(BuildSet("Debian-12-x86_64", "20260101000000"), wait=0.2),
        ):
            pass
        with ws.lock(BuildSet("Debian-12-x86_64", "20270101000000"), wait=0):
            pass  # another build set is independent
    finally:
        release.set()
        proc.join(30)


def test_clean_removes_only_the_named_set(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    keep = ws.images_dir / "master" / "Debian-12-x86_64-20260101000000"
    gone = ws.images_dir / "vagrant" / "Debian-12-x86_64-20260101000000"
    for d in (keep, gone):
        d.mkdir(parents=True)
        (d / "f").write_text("x")
    removed = ws.clean(
        ["vagrant"], BuildSet("Debian-12-x86_64", "20260101000000"), "Debian-12-x86_64"
    )
    assert removed == [gone]
    assert not gone.exists() and (keep / "f").exists()


def test_clean_does_not_follow_links_inside_a_stage(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "data").write_text("keep me")
    stage = ws.images_dir / "master" / "Debian-12-x86_64-20260101000000"
    stage.mkdir(parents=True)
    os.symlink(outside, stage / "link")
    ws.clean(["master"], None, "Debian-12-x86_64")
    assert not stage.exists()
    assert (outside / "data").read_text() == "keep me"
