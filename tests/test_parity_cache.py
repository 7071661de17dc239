"""The master's parity snapshot: taken once per disk, rules and code, then read by every check
(in this process or another: pytest-xdist workers); anything doubtful is taken again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from suitcase import parity
from suitcase.parity import (
    Delta,
    Rules,
    Snapshot,
    SnapshotCache,
    from_json,
    master_snapshot,
    to_json,
)
from suitcase.verified import flat_cache, stage_cache_name
from tests.test_flat_cache import make_disk

STAGE = stage_cache_name("master", "Debian-12-x86_64-20260101000000")
KEY = "0123456789abcdef" * 4
SHA = "ab" * 32
RULES = Rules(["/etc"], ["/etc/passwd"], ["/etc/ld.so.cache"], {"vagrant": Delta([], {"v"}, [])})
SNAP = Snapshot(
    {"bash": "5.2"},
    {"/etc": "folder 0:0 0755", "/etc/passwd": "file 0:0 0644 sha256:00"},
    {"user root (/etc/passwd)": "x:0:0::/root:/bin/bash"},
    {"/root/.ssh/authorized_keys": frozenset({"k1", "k2"})},
)


class Taker:
    """A `take` that counts its calls."""

    def __init__(self, snap: Snapshot = SNAP) -> None:
        self.snap, self.calls = snap, 0

    def __call__(self) -> Snapshot:
        self.calls += 1
        return self.snap


def stored(cache: SnapshotCache) -> list[Path]:
    return sorted(cache.folder.glob("*.json"))


def test_json_round_trip() -> None:
    assert from_json(json.loads(json.dumps(to_json(SNAP)))) == SNAP


@pytest.mark.parametrize(
    "bad",
    [[], {"keys": []}, {"keys": {}, "packages": {"a": 1}}, {"keys": {"p": "k"}, "packages": {}}],
)
def test_a_malformed_snapshot_is_refused(bad: object) -> None:
    with pytest.raises(ValueError):
        from_json(bad)


def test_taken_once_then_read(tmp_path: Path) -> None:
    take = Taker()
    assert SnapshotCache(tmp_path).get(STAGE, KEY, SHA, "debian", RULES, take) == SNAP
    # another process (a fresh cache object) reads the file
    assert SnapshotCache(tmp_path).get(STAGE, KEY, SHA, "debian", RULES, take) == SNAP
    assert take.calls == 1
    [path] = stored(SnapshotCache(tmp_path))
    assert path.name.startswith(f"{STAGE}-{KEY[:16]}-{SHA}-")
    assert path.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("change", ["trees", "ignore", "deltas", "family", "sha256", "code"])
def test_taken_again_when_what_it_depends_on_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    cache = SnapshotCache(tmp_path)
    take = Taker()
    cache.get(STAGE, KEY, SHA, "debian", RULES, take)
    rules, family, sha = RULES, "debian", SHA
    if change == "trees":
        rules = Rules(["/etc", "/boot"], RULES.files, RULES.ignore, RULES.deltas)
    elif change == "ignore":
        rules = Rules(RULES.trees, RULES.files, [], RULES.deltas)
    elif change == "deltas":
        rules = Rules(RULES.trees, RULES.files, RULES.ignore, {})
    elif change == "family":
        family = "el"
    elif change == "sha256":
        sha = "cd" * 32
    else:
        monkeypatch.setattr(parity, "_code_digest", lambda: "another version of parity.py")
    cache.get(STAGE, KEY, sha, family, rules, take)
    assert take.calls == 2
    assert len(stored(cache)) == 1, "the stage's older snapshot is dropped"
    cache.get(STAGE, KEY, sha, family, rules, take)
    assert take.calls == 2


def test_rules_text_change_in_parity_yaml_is_a_new_snapshot(tmp_path: Path) -> None:
    from suitcase.config import Paths

    (tmp_path / "specs").mkdir()
    yaml = tmp_path / "specs" / "parity.yaml"
    yaml.write_text("trees: [/etc]\nfiles: []\nignore: []\ndeltas: {}\n")
    cache, take = SnapshotCache(tmp_path / "cache"), Taker()
    cache.get(STAGE, KEY, SHA, "debian", Rules.load(Paths(tmp_path)), take)
    cache.get(STAGE, KEY, SHA, "debian", Rules.load(Paths(tmp_path)), take)
    assert take.calls == 1
    yaml.write_text("trees: [/etc]\nfiles: [/etc/hosts]\nignore: []\ndeltas: {}\n")
    cache.get(STAGE, KEY, SHA, "debian", Rules.load(Paths(tmp_path)), take)
    assert take.calls == 2


def _plant(path: Path, how: str) -> None:
    good = path.read_text()
    if how == "garbage":
        path.write_text("{not json")
    elif how == "truncated":
        path.write_text(good[: len(good) // 2])
    elif how == "other-sha":  # a genuine snapshot of another disk, renamed
        path.write_text(good.replace(SHA, "ef" * 32))
    elif how == "wrong-shape":
        data = json.loads(good)
        data["snapshot"]["files"] = ["/etc"]
        path.write_text(json.dumps(data))
    elif how == "mode":
        os.chmod(path, 0o666)
    elif how == "owner":
        os.chown(path, 65534, 65534)
    elif how == "symlink":
        target = path.with_name("elsewhere.txt")
        path.rename(target)
        path.symlink_to(target)


@pytest.mark.parametrize(
    "how", ["garbage", "truncated", "other-sha", "wrong-shape", "mode", "owner", "symlink"]
)
def test_a_doubtful_file_is_taken_again(tmp_path: Path, how: str) -> None:
    if how == "owner" and os.geteuid() != 0:
        pytest.skip("chown needs root")
    cache = SnapshotCache(tmp_path)
    cache.get(STAGE, KEY, SHA, "debian", RULES, Taker())
    [path] = stored(cache)
    _plant(path, how)
    fresh = Snapshot({"zsh": "1"}, {"/etc": "folder"}, {}, {})
    take = Taker(fresh)
    assert cache.get(STAGE, KEY, SHA, "debian", RULES, take) == fresh
    assert take.calls == 1
    assert not path.is_symlink() and path.stat().st_uid == os.geteuid()
    assert cache.get(STAGE, KEY, SHA, "debian", RULES, Taker()) == fresh, "and stored again"


HELPER = """
import sys, time
from pathlib import Path
from suitcase.parity import SnapshotCache, Snapshot
from tests.test_parity_cache import RULES, SNAP, STAGE, KEY, SHA

log = Path(sys.argv[2])
def take():
    with log.open("a") as f:
        f.write("took\\n")
    time.sleep(1)
    return SNAP
got = SnapshotCache(Path(sys.argv[1])).get(STAGE, KEY, SHA, "debian", RULES, take)
assert got == SNAP, got
"""


def test_two_processes_take_it_once(tmp_path: Path) -> None:
    log = tmp_path / "took.log"
    root = Path(__file__).resolve().parent.parent
    argv = [sys.executable, "-c", HELPER, str(tmp_path / "cache"), str(log)]
    procs = [subprocess.Popen(argv, cwd=root) for _ in range(2)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    assert log.read_text() == "took\n"


def test_drop_removes_the_stages_snapshots(tmp_path: Path) -> None:
    cache = SnapshotCache(tmp_path)
    cache.get(STAGE, KEY, SHA, "debian", RULES, Taker())
    cache.get("master.Other-1", KEY, SHA, "debian", RULES, Taker())
    [mine] = [p for p in stored(cache) if p.name.startswith(STAGE)]
    assert cache.drop(STAGE) == [mine]
    assert [p.name.split("-")[0] for p in stored(cache)] == ["master.Other"]


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts and loop devices need root")
def test_master_mounted_once_through_the_flat_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import suitcase.machine

    mounts: list[Path] = []
    real_mounted = suitcase.machine.mounted

    def counting(image: Path, *args: object, **kwargs: object) -> object:
        mounts.append(image)
        return real_mounted(image, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(suitcase.machine, "mounted", counting)
    # no package manager in this little file system: the rest of the snapshot is real
    monkeypatch.setattr(parity, "snapshot", lambda root, family, rules: contents(root, rules))
    images = tmp_path / "images"
    disk = make_disk(tmp_path, "master")
    sha = flat_cache(images).digests.sha256(disk)
    rules = Rules(["/etc"], [], [], {})
    snap: Callable[[], Snapshot] = lambda: master_snapshot(  # noqa: E731
        images, STAGE, KEY, disk, sha, "debian", rules
    )
    first, second = snap(), snap()
    assert first == second and first.files["/etc/hostname"].startswith("file ")
    assert mounts == [flat_cache(images).entry(STAGE, KEY, sha)], "one mount, of the flat entry"


def contents(root: Path, rules: Rules) -> Snapshot:
    return parity.contents(root, rules, {})
