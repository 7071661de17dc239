"""Derived stages built at once (site.yaml `build_jobs`), with the real Packer on the fake
project (null builder, shell-local): they overlap, each VM gets its share of the cores, a failed
one lets the others finish, and an interrupt stops them all with nothing left running or done
that is not whole."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from suitcase.config import PROJECT_ROOT
from tests.conftest import sigint_as_usual
from tests.fakes import FAKE_TEMPLATE
from tests.slow.reliability import processes_mentioning

TS = "20260101000000"
OS = "Fake-12-x86_64"
SET = ("--os", OS, "--timestamp", TS)
SUITCASE = (sys.executable, "-m", "suitcase")
DERIVED = ("vagrant", "aws-hvm")  # aws-paravirt needs a partitioned disk: not the fake one


def _timed_template(home: Path, nap: str) -> Path:
    """The fake template, saying when each stage's Packer run starts and ends, with its vCPUs;
    a derived stage naps `nap` seconds (the nap's text is unique: its process can be found)."""
    template = json.loads(json.dumps(FAKE_TEMPLATE))
    runs = "{{user `scripts_dir`}}/../runs.txt"
    inline = template["provisioners"][0]["inline"]
    inline.insert(
        0, f'echo "start {{{{user `stage`}}}} {{{{user `cpus`}}}} $(date +%s.%N)" >> {runs}'
    )
    inline.insert(1, f"[ {{{{user `stage`}}}} = master ] || sleep {nap}")
    inline.append(f'echo "end {{{{user `stage`}}}} x $(date +%s.%N)" >> {runs}')
    (home / "image-templates" / "qemu-disk.json").write_text(json.dumps(template))
    return home / "runs.txt"


def _spans(runs: Path) -> dict[str, tuple[float, float, int]]:
    starts, ends, cpus = {}, {}, {}
    for line in runs.read_text().splitlines():
        what, stage, vcpus, when = line.split()
        if what == "start":
            starts[stage], cpus[stage] = float(when), int(vcpus)
        else:
            ends[stage] = float(when)
    return {s: (starts[s], ends[s], cpus[s]) for s in starts if s in ends}


def _started(runs: Path) -> int:
    text = runs.read_text() if runs.exists() else ""
    return sum(1 for line in text.splitlines() if line.startswith("start"))


def _ws(tmp_path: Path, fake_home: Path, jobs: int) -> Path:
    shutil.copytree(PROJECT_ROOT / "os" / "data", fake_home / "os" / "data", dirs_exist_ok=True)
    ws = tmp_path / f"ws{jobs}"
    ws.mkdir()
    (ws / "site.yaml").write_text(
        f"mirrors: {{debian: 'http://mirror.invalid/debian'}}\nbuild_jobs: {jobs}\ncpus: 2\n"
    )
    return ws


def _build(ws: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SUITCASE, "--workspace", str(ws), "build", ",".join(DERIVED), *SET, *extra],
        capture_output=True,
        text=True,
        check=False,
    )


def _stage(ws: Path, image: str) -> Path:
    return ws / "images" / image / f"{OS}-{TS}"


@pytest.mark.parametrize("jobs", [1, 3])
def test_derived_stages_build_at_once_each_with_its_share_of_the_cores(
    fake_home: Path,
    tmp_path: Path,
    jobs: int,
) -> None:
    runs = _timed_template(fake_home, "1.5")
    ws = _ws(tmp_path, fake_home, jobs)
    result = _build(ws)
    assert result.returncode == 0, result.stderr
    spans = _spans(runs)
    assert set(spans) == {"master", *DERIVED}
    master_end = spans["master"][1]
    assert all(spans[d][0] >= master_end for d in DERIVED)  # the master first, always
    ordered = sorted(spans[d][:2] for d in DERIVED)
    overlapping = any(later[0] < earlier[1] for earlier, later in itertools.pairwise(ordered))
    if jobs == 1:
        assert not overlapping  # one after another
        assert {spans[d][2] for d in DERIVED} == {2}  # the site's cpus
    else:
        assert overlapping
        # two VMs at once on this machine's cores: each its share (at most the site's cpus)
        share = max(1, min(2, len(os.sched_getaffinity(0)) // len(DERIVED)))
        assert {spans[d][2] for d in DERIVED} == {share}
        assert "building vagrant, aws-hvm at once" in result.stderr
    assert spans["master"][2] == 2  # the master builds alone, with every core it is given
    for image in ("master", *DERIVED):
        assert (_stage(ws, image) / "manifest.json").is_file()
    assert result.stderr.count("built in") == 3


def test_a_failed_derived_build_lets_the_others_finish(
    fake_home: Path,
    tmp_path: Path,
) -> None:
    runs = _timed_template(fake_home, "0.5")
    ws = _ws(tmp_path, fake_home, 3)
    (fake_home / "fail-aws-hvm").write_text("")
    result = _build(ws)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert not (_stage(ws, "aws-hvm") / "manifest.json").exists()
    for image in ("master", "vagrant"):
        assert (_stage(ws, image) / "manifest.json").is_file(), image
    # the rerun builds only what failed
    (fake_home / "fail-aws-hvm").unlink()
    runs.unlink()
    again = _build(ws)
    assert again.returncode == 0, again.stderr
    assert set(_spans(runs)) == {"aws-hvm"}


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT])
def test_an_interrupt_stops_every_build_in_flight(
    fake_home: Path,
    tmp_path: Path,
    how: signal.Signals,
) -> None:
    nap = "41.%d" % how  # noqa: UP031  (unique: this test's naps are findable)
    runs = _timed_template(fake_home, nap)
    ws = _ws(tmp_path, fake_home, 3)
    proc = subprocess.Popen(
        [*SUITCASE, "--workspace", str(ws), "build", ",".join(DERIVED), *SET],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=sigint_as_usual,
    )
    try:
        deadline = time.monotonic() + 60
        while _started(runs) < 1 + len(DERIVED):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the derived builds never all started"
            time.sleep(0.1)
        assert len(processes_mentioning(f"sleep {nap}")) == len(DERIVED)  # all at once
        proc.send_signal(how)
        asked = time.monotonic()
        _, err = proc.communicate(timeout=60)
        # at once: the naps are stopped, not waited for
        assert time.monotonic() - asked < 15, err
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert "Traceback" not in err
    deadline = time.monotonic() + 30
    while processes_mentioning(f"sleep {nap}") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_mentioning(f"sleep {nap}") == []  # nothing of the builds runs on
    assert (_stage(ws, "master") / "manifest.json").is_file()
    for image in DERIVED:
        stage = _stage(ws, image)
        assert not (stage / "manifest.json").exists(), image  # none marked done
        assert not (stage / ".run.json").exists(), image
        assert not (stage / ".build").exists(), image  # no scratch left


def test_a_rebuilt_stage_loses_the_upload_cookie_of_its_earlier_build(
    fake_home: Path,
    tmp_path: Path,
) -> None:
    """The cookie names what S3 held of the earlier build; the rebuilt stage is another."""
    ws = _ws(tmp_path, fake_home, 3)
    assert _build(ws).returncode == 0
    cookie = _stage(ws, "vagrant") / ".upload_done"
    cookie.write_text('{"stage": "vagrant", "objects": []}\n')
    (_stage(ws, "vagrant") / "manifest.json").unlink()  # the stage is to be built again
    result = _build(ws)
    assert result.returncode == 0, result.stderr
    assert not cookie.exists()
