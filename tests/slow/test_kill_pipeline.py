"""kill -9 of `suitcase all` at each stage boundary and inside each stage, then the rerun, then
a scan of everything the runs wrote for the secrets they were given.

One hard-linked copy of the shared built set, its aws-paravirt stage cleaned (the cheapest
derived build), and `suitcase all aws-paravirt --timestamp <the set>` started again and again,
each run killed (SIGKILL, Suitcase alone) on an observable event: inside the derived build's
Packer boot, at the build/verify boundary (the manifest written), inside verification (the specs
running on the mounted image, seen in their mount namespace), at the verify/upload boundary (the
verification record written), inside the upload (a multipart upload in flight), at the
upload/register boundary (the upload cookie written) and inside registering (the snapshot in
flight recorded). After every kill: no process of the run (QEMU above all), no mount, no loop
device, and no stage done that is not whole. The last rerun completes; then S3 holds one object
per key and no unfinished upload, EC2 one AMI for the stage key and no orphan snapshot, and the
master was never rebuilt.

The runs go to the workspace's endpoint as a configured AWS account, with secrets set
(tests/slow/planted.py: AWS credentials and a session token, a root password set and printed by a
provisioning script, the build key Packer logs in with); none of them may appear in any file of
the workspace or in what any run printed, the killed ones included. The kills inside the master's
build (debootstrap, its Packer boot) are tests/slow/test_kill_bootstrap.py.

It copies the set as built (`built_set.copy`), not as filled: its endpoint is a fresh one on
purpose, since that endpoint's key is the planted secret, and its log and state are what the
secret scan reads (an endpoint copied from the fill would hold neither).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from suitcase.aws.ship import read_cookie
from suitcase.packer import stale_temp_dirs
from suitcase.safety import mount_points, mounts_under
from tests.slow.conftest import OS_NAME, BuiltSet, suitcase
from tests.slow.planted import plant, scan
from tests.slow.reliability import (
    Run,
    aws_holdings,
    children,
    clients,
    cmdline,
    done_honestly,
    leftovers,
    own_scratch_mount,
    processes_mentioning,
    scratch_mounts,
    stage_dir,
    stop_endpoint,
)

pytestmark = pytest.mark.slow

#: where, the event to kill on, and None where aws-paravirt's stage cannot be done afterwards
Kill = tuple[str, Callable[[Run], bool], bool | None]


def _uploads_in_flight(ws: Path) -> bool:
    if not (ws / "endpoint" / "port").exists():
        return False
    try:
        s3, _ = clients(ws, start=False)  # never started by the poll
        return any(
            s3.list_multipart_uploads(Bucket=b["Name"]).get("Uploads")
            for b in s3.list_buckets().get("Buckets", [])
        )
    except Exception:  # the endpoint starting up, or between two requests: not yet
        return False


def _derived_boot(pv: Path) -> Callable[[Run], bool]:
    """aws-paravirt's build VM runs now (a QEMU naming its stage folder). Not "Waiting for SSH"
    in its build.log: an earlier run's log says so too, and the event then counts as missed when
    a run killed elsewhere (an upload in flight, polled first) is followed by another; and not
    the run's process tree: Packer starts QEMU from any of its threads."""
    return lambda run: any("qemu-system" in p for p in processes_mentioning(str(pv)))


def _verified(stage: Path) -> bool:
    """The verification record is in the stage's manifest: verification has ended."""
    try:
        return "verification" in json.loads((stage / "manifest.json").read_text())["extra"]
    except (OSError, ValueError, KeyError):
        return False


def _specs_on_a_mount(ws: Path, run: Run) -> bool:
    """The specs run on the mounted image: seen in pytest's own mount namespace."""
    for pid in children(run.proc.pid):
        if "pytest" not in cmdline(pid):
            continue
        info = Path(f"/proc/{pid}/mountinfo")
        try:
            points = mount_points(info)
        except OSError:
            continue
        if mounts_under(ws, info) or any(own_scratch_mount(m) for m in points):
            return True
    return False


def test_kill_9_of_all_at_every_stage_then_resume(built_set: BuiltSet, tmp_path: Path) -> None:
    ws = built_set.copy(tmp_path / "ws")
    ts = built_set.timestamp
    pv, master = stage_dir(ws, "aws-paravirt", ts), stage_dir(ws, "master", ts)
    master_manifest = json.loads((master / "manifest.json").read_text())
    suitcase("clean", "aws-paravirt", "--os", OS_NAME, "--timestamp", ts, workspace=ws)
    pipeline = ["all", "aws-paravirt", "--os", OS_NAME, "--timestamp", ts]
    before = scratch_mounts()
    planted = plant(ws, tmp_path, ts)  # the endpoint as an account, credentials, a root password
    runs: list[Run] = []

    kills: list[Kill] = [
        # (where, the event to kill on, what aws-paravirt's stage is afterwards)
        ("inside the derived build's Packer boot", _derived_boot(pv), None),
        ("at the build/verify boundary", lambda run: (pv / "manifest.json").exists(), True),
        ("inside verification", lambda run: _specs_on_a_mount(ws, run), True),
        ("inside the upload", lambda run: _uploads_in_flight(ws), True),
        ("at the upload/register boundary", lambda run: (pv / ".upload_done").exists(), True),
        ("inside registering", lambda run: (pv / ".register.json").exists(), True),
        ("at the verify/upload boundary", lambda run: _verified(pv), True),
    ]
    try:
        # Each run is killed at the first of the remaining events that happens while it runs
        # (the order of the later ones depends on which spec the plugin runs first); an event
        # already true when a run starts can no longer be caught, and is reported at the end.
        remaining = list(kills)
        missed: list[str] = []
        for _ in range(len(kills)):
            if not remaining:
                break
            run = Run.start(ws, *pipeline, env=planted.env)
            runs.append(run)
            missed += [where for where, event, _ in remaining if event(run)]
            remaining = [k for k in remaining if k[0] not in missed]
            if not remaining:
                run.finish()
                break
            hit: list[tuple[str, bool | None]] = []

            def fired(
                run: Run = run,
                hit: list[tuple[str, bool | None]] = hit,
                waiting: list[Kill] = remaining,
            ) -> bool:
                hit.extend((where, done) for where, event, done in waiting if event(run))
                return bool(hit)

            run.wait_for(" or ".join(where for where, _, _ in remaining), fired)
            run.kill()
            where, pv_done = hit[0]
            remaining = [k for k in remaining if k[0] != where]
            assert leftovers(ws, before) == [], where
            # never wrongly done; not done while its own Packer runs (other events may come
            # before or after aws-paravirt's build, as `all` overlaps uploads with builds)
            assert done_honestly(pv) is not False, where
            assert pv_done is not None or done_honestly(pv) is None, where
            assert done_honestly(master) is True, where
            for stage in (master, pv):  # a cookie only for what S3 holds whole
                cookie = read_cookie(stage)
                if cookie is not None and (ws / "endpoint" / "port").exists():
                    stored = set(aws_holdings(ws, "-")["keys"])
                    assert {o["key"] for o in cookie["objects"]} <= stored, where
        never = missed + [where for where, _, _ in remaining]
        assert not never, f"kill points never reached: {never}"

        final = Run.start(ws, *pipeline, env=planted.env)
        runs.append(final)
        said = final.finish() + final.stdout()
        assert "using the configured AWS account" in said
        assert leftovers(ws, before) == []
        assert done_honestly(pv, deep=True) is True
        assert stale_temp_dirs() == []  # the killed Packer's temporary folder (its log), swept
        assert done_honestly(master, deep=True) is True
        now = json.loads((master / "manifest.json").read_text())
        assert (now["key"], now["outputs"]) == (master_manifest["key"], master_manifest["outputs"])
        # the very file of the shared set (a hard link): nothing rewrote or replaced it
        shared = built_set.stage_dir("master") / "disk.qcow2"
        assert (master / "disk.qcow2").stat().st_ino == shared.stat().st_ino
        key = json.loads((pv / "manifest.json").read_text())["key"]
        held = aws_holdings(ws, key)
        assert held["duplicate keys"] == []
        assert held["unfinished uploads"] == 0
        assert len(held["amis"]) == 1, held["amis"]
        assert held["orphan snapshots"] == []
        for stage in (master, pv):
            cookie = read_cookie(stage)
            assert cookie is not None and cookie.get("fake") is False
            assert {o["key"] for o in cookie["objects"]} <= set(held["keys"])
        manifest = json.loads((pv / "manifest.json").read_text())
        assert len(manifest["extra"]["amis"]) == 1  # one region, one AMI recorded
    finally:
        stop_endpoint(ws)
    # every run, the killed ones included: no secret in any file, nor in what they printed
    # the planted script ran in the build that completed, and its careless line was logged
    assert "root_password=" in (pv / "build.log").read_text()
    printed = [r.err for r in runs] + [r.out for r in runs]
    assert scan(ws, printed, planted) == []
