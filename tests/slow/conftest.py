"""The slow tests share one real Debian 12 build set, built once (also across xdist workers).

Set SUITCASE_TEST_WORKSPACE to keep it elsewhere; by default it lives in .test-workspace/ of the
checkout, so a second run reuses every stage whose key still matches.

Beside the live workspace (which test_verify, test_verify_ami and test_debian_build read and
write, one after another in the xdist group "live") the fixture keeps two frozen hard-linked
copies that other tests copy from, so what a copy holds never depends on which test ran first:
- `<ws>.built`: the set as built: nothing verified, shipped or registered, no endpoint;
- `<ws>.filled`: after the one fill (`all aws-hvm,aws-paravirt --mode offline` and
  `upload master`), with the embedded endpoint's state: a test that needs a set already
  uploaded and registered copies this one and never refills a new endpoint with the same GBs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import filelock
import pytest

from suitcase.config import PROJECT_ROOT
from suitcase.safety import remove_tree

OS_NAME = "Debian-12-x86_64"
TIMESTAMP = "20260101000000"
SUITCASE = [sys.executable, "-m", "suitcase"]


@dataclass(frozen=True)
class BuiltSet:
    workspace: Path
    timestamp: str
    output: str
    #: the fill's `suitcase all aws-hvm,aws-paravirt --mode offline`: stdout, stderr, and the
    #: pipeline record it wrote (reports/pipeline-<set>.json)
    fill: tuple[str, str, str] = ("", "", "")

    def stage_dir(self, image: str) -> Path:
        return self.workspace / "images" / image / f"{OS_NAME}-{self.timestamp}"

    @property
    def built(self) -> Path:
        """The frozen copy as built: copy it with `copy`, never change it."""
        return frozen(self.workspace, "built")

    @property
    def filled(self) -> Path:
        """The frozen copy after the fill, endpoint state included."""
        return frozen(self.workspace, "filled")

    def copy(self, dest: Path, filled: bool = False) -> Path:
        """A hard-linked copy of the set as built (or as filled: with its endpoint's state)."""
        return hardlink_workspace(self.filled if filled else self.built, dest, endpoint=filled)


def frozen(workspace: Path, kind: str) -> Path:
    return workspace.with_name(f"{workspace.name}.{kind}")


def suitcase(
    *args: str, workspace: Path, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a subprocess, as an operator would."""
    result = subprocess.run(
        [*SUITCASE, "--workspace", str(workspace), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"suitcase {' '.join(args)} failed ({result.returncode}):\n"
            f"{result.stdout}\n{result.stderr[-3000:]}"
        )
    return result


def build_all(
    workspace: Path,
    timestamp: str = TIMESTAMP,
    env: dict[str, str] | None = None,
    verb: str = "build",
) -> subprocess.CompletedProcess[str]:
    """`suitcase build all` (or another verb) of the test OS at `timestamp`."""
    return suitcase(
        verb, "all", "--os", OS_NAME, "--timestamp", timestamp, workspace=workspace, env=env
    )


def hardlink_workspace(source: Path, dest: Path, endpoint: bool = False) -> Path:
    """A cheap copy of a workspace: hard links (Suitcase replaces files, never rewrites them).

    With `endpoint`, the stopped embedded endpoint's state comes along: its blobs hard-linked
    (content-addressed, written once, never rewritten), its database and key copied; never its
    pid, port, log or holders (a copy starts its own endpoint); and so do the reports, which
    say what `all` did already."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("images", "keys", "packer_cache"):
        if (source / name).exists():
            subprocess.run(["cp", "-al", str(source / name), str(dest / name)], check=True)
    if (dest / "images" / ".locks").exists():
        remove_tree(dest / "images" / ".locks")  # never across a mount, never through a link
    state = source / "endpoint"
    if endpoint and state.is_dir():
        assert not (state / "pid").exists(), f"{state} is running: stop it before copying"
        (dest / "endpoint").mkdir(mode=0o700)
        if (state / "data").exists():
            subprocess.run(["cp", "-al", str(state / "data"), str(dest / "endpoint")], check=True)
        for entry in state.iterdir():
            if entry.name.startswith("state.sqlite") or entry.name == "key":
                shutil.copy2(entry, dest / "endpoint" / entry.name)
    if endpoint and (source / "reports").is_dir():  # the pipeline's record and its JUnit reports
        shutil.copytree(source / "reports", dest / "reports")  # copied: pytest rewrites in place
    return dest


def run_specs(
    workspace: Path, image: str, *extra: str, timestamp: str = TIMESTAMP
) -> subprocess.CompletedProcess[str]:
    """The specs through the plugin, in a subprocess, against `workspace`."""
    argv = [
        sys.executable,
        "-m",
        "pytest",
        str(PROJECT_ROOT / "specs"),
        "-p",
        "no:cacheprovider",
        "--os",
        OS_NAME,
        "--image",
        image,
        "--timestamp",
        timestamp,
        "--suitcase-workspace",
        str(workspace),
        *extra,
    ]
    return subprocess.run(argv, capture_output=True, text=True, check=False, cwd=PROJECT_ROOT)


def set_digest(workspace: Path, timestamp: str = TIMESTAMP) -> str:
    """What the set is: the stage keys of its manifests (a rebuilt stage changes it)."""
    keys = []
    for manifest in sorted((workspace / "images").glob(f"*/{OS_NAME}-{timestamp}/manifest.json")):
        keys.append(f"{manifest.parent.parent.name}={json.loads(manifest.read_text())['key']}")
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()


def _refresh(copy: Path, marker: Path, digest: str, make: Callable[[], None]) -> None:
    """Make `copy` again unless `marker` says it was made from the set `digest`."""
    if marker.exists() and marker.read_text() == digest and copy.is_dir():
        return
    marker.unlink(missing_ok=True)
    if copy.exists():
        remove_tree(copy)  # refuses through a mount: a copy is never removed under a test
    make()
    marker.write_text(digest)


#: a site whose `register` accepts an offline verification (gates.required): the set is
#: verified offline to spare two boots, and registered all the same
OFFLINE_SITE = {"SUITCASE_REGISTER_REQUIRES": "offline"}


def fill(workspace: Path, timestamp: str = TIMESTAMP) -> tuple[str, str]:
    """Ship the set once: both AWS image types verified offline, uploaded and registered (the
    AMI read back) in the embedded endpoint, the master uploaded too; the endpoint stopped."""
    try:
        shipped = suitcase(
            "all", "aws-hvm,aws-paravirt", "--os", OS_NAME, "--timestamp", timestamp,
            "--mode", "offline", workspace=workspace, env=OFFLINE_SITE,
        )  # fmt: skip
        suitcase("upload", "master", "--os", OS_NAME, "--timestamp", timestamp, workspace=workspace)
    finally:
        suitcase("endpoint", "stop", workspace=workspace, check=False)
    return shipped.stdout, shipped.stderr


def prepare_set(workspace: Path, timestamp: str = TIMESTAMP) -> BuiltSet:
    """Build the set (what is missing), keep its built copy, fill it, keep its filled copy.
    Callers hold the set's lock."""
    began = time.monotonic()
    result = suitcase(
        "build", "all", "--os", OS_NAME, "--timestamp", timestamp, "--wait", "-1",
        workspace=workspace,
    )  # fmt: skip
    print(result.stderr, f"[set] built in {time.monotonic() - began:.0f} s", sep="\n", flush=True)
    digest = set_digest(workspace, timestamp)
    notes = workspace.with_name(f"{workspace.name}.notes")
    notes.mkdir(exist_ok=True)
    built, filled = frozen(workspace, "built"), frozen(workspace, "filled")
    _refresh(built, notes / "built", digest, lambda: hardlink_workspace(workspace, built))

    def fill_and_keep() -> None:
        began = time.monotonic()
        out, err = fill(workspace, timestamp)
        print(err, out, f"[set] filled in {time.monotonic() - began:.0f} s", sep="\n", flush=True)
        (notes / "fill.stdout").write_text(out)
        (notes / "fill.stderr").write_text(err)
        record = workspace / "reports" / f"pipeline-{OS_NAME}-{timestamp}.json"
        shutil.copyfile(record, notes / "fill.pipeline.json")
        if filled.exists():
            remove_tree(filled)
        hardlink_workspace(workspace, filled, endpoint=True)

    _refresh(filled, notes / "filled", digest, fill_and_keep)
    out, err, record = (
        (notes / f"fill.{n}").read_text() for n in ("stdout", "stderr", "pipeline.json")
    )
    return BuiltSet(workspace, timestamp, result.stderr, (out, err, record))


def shared_workspace() -> Path:
    return Path(os.environ.get("SUITCASE_TEST_WORKSPACE", PROJECT_ROOT / ".test-workspace"))


@pytest.fixture(scope="session")
def built_set() -> BuiltSet:
    workspace = shared_workspace()
    workspace.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(str(workspace / ".slow-tests.lock")):
        return prepare_set(workspace)


if __name__ == "__main__":  # bin/test: the set built and filled beside the `own` tier
    ws = shared_workspace()
    ws.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(str(ws / ".slow-tests.lock")):
        prepare_set(ws)
