"""Debian's real Vagrant accepts the box, directly and through its catalog (checksum verified)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.slow.conftest import BuiltSet

pytestmark = pytest.mark.slow


def vagrant(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VAGRANT_HOME": str(home), "VAGRANT_CHECKPOINT_DISABLE": "1"}
    return subprocess.run(
        ["vagrant", *args], capture_output=True, text=True, env=env, check=False, timeout=600
    )


def _outputs(built: BuiltSet) -> dict[str, Path]:
    data = json.loads((built.stage_dir("vagrant") / "manifest.json").read_text())
    return {o["kind"]: built.stage_dir("vagrant") / o["path"] for o in data["outputs"]}


def test_box_added_directly(built_set: BuiltSet, tmp_path: Path) -> None:
    box = _outputs(built_set)["box"]
    result = vagrant(tmp_path, "box", "add", "--name", "suitcase/direct", str(box))
    assert result.returncode == 0, result.stdout + result.stderr
    listing = vagrant(tmp_path, "box", "list").stdout
    assert "suitcase/direct" in listing and "libvirt" in listing


def test_box_added_through_catalog_with_checksum(built_set: BuiltSet, tmp_path: Path) -> None:
    catalog = _outputs(built_set)["box-catalog"]
    result = vagrant(tmp_path, "box", "add", catalog.as_uri())
    assert result.returncode == 0, result.stdout + result.stderr
    listing = vagrant(tmp_path, "box", "list").stdout
    assert f"suitcase/{built_set.stage_dir('vagrant').name.rsplit('-', 1)[0]}" in listing
    assert built_set.timestamp in listing


def test_catalog_with_a_wrong_checksum_is_refused(built_set: BuiltSet, tmp_path: Path) -> None:
    catalog = json.loads(_outputs(built_set)["box-catalog"].read_text())
    catalog["versions"][0]["providers"][0]["checksum"] = "0" * 64
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(catalog))
    result = vagrant(tmp_path / "home", "box", "add", bad.as_uri())
    assert result.returncode != 0
    assert "checksum" in (result.stdout + result.stderr).lower()
