"""Changing one file of a hard-linked copy of the shared set without touching the set: the one
sparse copy and the one manifest re-record the slow tests use (Suitcase replaces files, never
rewrites them, so every change here is a new file put in place)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from suitcase.manifest import MANIFEST_NAME, describe_output, write_atomic


def replace_with(path: Path, source: Path) -> None:
    """Put a sparse copy of `source` in `path`'s place (a new inode: the hard link is left)."""
    tmp = path.with_name(path.name + ".new")
    subprocess.run(["cp", "--sparse=always", str(source), str(tmp)], check=True)
    tmp.replace(path)


def own_copy(path: Path) -> None:
    """Give `path` an inode of its own (a sparse copy of itself), to be changed in place."""
    replace_with(path, path)


def rerecord(stage_dir: Path, changed: set[str]) -> None:
    """The manifest (a new file) records each changed output's size and sha256, and a box
    catalog its changed box's sha256: a stage built that way, not tampered with afterwards.
    `changed` holds paths relative to the stage folder."""
    path = stage_dir / MANIFEST_NAME
    data = json.loads(path.read_text())
    kinds = {o["kind"]: o["path"] for o in data["outputs"]}
    fresh = {
        o["path"]: describe_output(stage_dir, stage_dir / o["path"], o["kind"])
        for o in data["outputs"]
        if o["path"] in changed
    }
    if kinds.get("box") in fresh and "box-catalog" in kinds:
        catalog_path = stage_dir / kinds["box-catalog"]
        catalog = json.loads(catalog_path.read_text())
        for version in catalog["versions"]:
            for provider in version["providers"]:
                provider["checksum"] = fresh[kinds["box"]].sha256
        write_atomic(catalog_path, json.dumps(catalog, indent=2) + "\n")
        fresh[kinds["box-catalog"]] = describe_output(stage_dir, catalog_path, "box-catalog")
    for output in data["outputs"]:
        if output["path"] in fresh:
            output["size"], output["sha256"] = (
                fresh[output["path"]].size,
                fresh[output["path"]].sha256,
            )
    write_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
