"""A build set's key is known from its manifests: never silently replaced by a new one."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from suitcase.build import KEY_FIELD, build_key
from suitcase.context import Context
from suitcase.errors import BuildError
from suitcase.keys import ensure_key_pair, fingerprint
from suitcase.plan import BuildPlan
from tests.fakes import workspace_stage

OS = "Debian-12-x86_64"
TS = "20260101000000"
SET = f"{OS}-{TS}"


@pytest.fixture
def plan(workspace: Path) -> tuple[Context, BuildPlan]:
    ctx = Context.create(workspace)
    return ctx, ctx.plan(OS, "vagrant", TS)


def _stage(workspace: Path, image: str, fp: str | None) -> None:
    stage = workspace_stage(workspace, image, OS, TS)
    data = json.loads((stage / "manifest.json").read_text())
    if fp is not None:
        data["extra"][KEY_FIELD] = fp
    (stage / "manifest.json").write_text(json.dumps(data))


@pytest.mark.parametrize("key_type", ["ed25519", "rsa"])
def test_fingerprint_is_what_ssh_keygen_prints(tmp_path: Path, key_type: str) -> None:
    pair = ensure_key_pair(tmp_path, "test", key_type)
    printed = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", str(pair.public)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[1]
    assert fingerprint(pair.public_line) == printed


def test_a_new_set_gets_its_key(workspace: Path, plan: tuple[Context, BuildPlan]) -> None:
    ctx, p = plan
    pair = build_key(ctx, p)
    assert pair.private.is_file() and build_key(ctx, p) == pair


def test_missing_keys_of_a_built_set_are_an_error(
    workspace: Path, plan: tuple[Context, BuildPlan]
) -> None:
    ctx, p = plan
    fp = fingerprint(build_key(ctx, p).public_line)
    _stage(workspace, "master", fp)
    shutil.rmtree(workspace / "keys" / SET)
    with pytest.raises(BuildError) as caught:
        build_key(ctx, p)
    message = str(caught.value)
    assert f"build set {SET} has built stages (master)" in message
    assert f"they were built with {fp}" in message
    assert not (workspace / "keys" / SET).exists()  # no new key was made


def test_a_different_key_is_an_error_naming_both(
    workspace: Path, plan: tuple[Context, BuildPlan]
) -> None:
    ctx, p = plan
    old = fingerprint(build_key(ctx, p).public_line)
    _stage(workspace, "master", old)
    shutil.rmtree(workspace / "keys" / SET)
    new = fingerprint(ensure_key_pair(workspace / "keys" / SET, "other").public_line)
    with pytest.raises(BuildError) as caught:
        build_key(ctx, p)
    assert f"build set {SET}: master was built with key {old}, but " in str(caught.value)
    assert f" holds {new};" in str(caught.value)


def test_old_manifests_are_accepted_while_the_key_is_there(
    workspace: Path, plan: tuple[Context, BuildPlan]
) -> None:
    ctx, p = plan
    pair = build_key(ctx, p)
    _stage(workspace, "master", None)
    assert build_key(ctx, p) == pair
    shutil.rmtree(workspace / "keys" / SET)
    with pytest.raises(BuildError, match="a key their manifests do not record"):
        build_key(ctx, p)
