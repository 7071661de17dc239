"""Fakes for Suitcase's own tests, made in one place: built-looking stage folders (a disk and a
manifest, no Packer, no QEMU), a whole fake build set, and a fake Suitcase tree (`fake_home`, the
fixture in tests/conftest.py) whose Packer template only writes small qcow2 files."""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

from suitcase.aws.ebs import BLOCK_SIZE
from suitcase.config import PROJECT_ROOT
from suitcase.context import Context
from suitcase.imagetypes import IMAGE_TYPES
from suitcase.manifest import Manifest, describe_output, write_manifest
from suitcase.plan import BuildPlan

MIB = 2**20
OS = "Debian-12-x86_64"
TS = "20260101000000"

#: the disk each image type's stage holds: (file name, output kind)
DISKS = {
    "aws-hvm": ("disk.raw", "raw"),
    "aws-paravirt": ("root.raw", "raw-partition"),
    "master": ("disk.qcow2", "disk"),
    "vagrant": ("disk.qcow2", "disk"),
}
#: `parent` of fake_stage: a derived stage gets a master parent, a master none
AUTO = "auto"


def fake_disk(
    path: Path, size: int = 6 * MIB + 4096, pattern: str = "ebs", seed: int = 0, extra: int = 0
) -> Path:
    """A fake disk file at `path`:

    - `ebs`: sparse raw, data at the start, in the middle (crossing an EBS block edge), an
      explicitly written all-zero block (allocated, not a hole), `extra` random blocks from block
      7 on, and a data tail (random each time);
    - `spread`: random 1 MiB runs every 4 MiB with holes between them (never all zeros; the same
      for the same `seed`);
    - `small`: `size` bytes of b"disk" repeated (1 KiB for a stage nobody reads)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if pattern == "small":
        path.write_bytes((b"disk" * (size // 4 + 1))[:size])
        return path
    with path.open("wb") as handle:
        handle.truncate(size)
        if pattern == "spread":
            rng = random.Random(seed)
            for offset in range(0, size, 4 * MIB):
                handle.seek(offset)
                handle.write(rng.randbytes(min(MIB, size - offset)))
            return path
        if pattern != "ebs":
            raise ValueError(f"no disk pattern {pattern!r}")
        handle.seek(0)
        handle.write(os.urandom(70_000))
        handle.seek(3 * BLOCK_SIZE - 1000)
        handle.write(os.urandom(5000))
        handle.seek(6 * BLOCK_SIZE)
        handle.write(bytes(BLOCK_SIZE))  # allocated zeros
        if extra:
            handle.write(os.urandom(extra * BLOCK_SIZE))
        handle.seek(size - 3000)
        handle.write(os.urandom(3000))
    return path


def stage_dir(workspace: Path, image: str, os_name: str = OS, timestamp: str = TS) -> Path:
    """Where a workspace keeps the stage `image` of the set `os_name`-`timestamp`."""
    return workspace / "images" / image / f"{os_name}-{timestamp}"


def fake_stage(
    directory: Path,
    image: str = "aws-hvm",
    *,
    os: str = OS,
    timestamp: str = TS,
    key: str = "k" * 64,
    inputs: dict[str, str] | None = None,
    parent: dict[str, str] | str | None = AUTO,
    disk_name: str | None = None,
    kind: str | None = None,
    disk_size: int = 6 * MIB + 4096,
    pattern: str = "ebs",
    seed: int = 0,
    extra: int = 0,
    files: dict[str, tuple[str, str]] | None = None,
    manifest: bool = True,
) -> Manifest:
    """A built-looking stage folder: its disk (named and of the kind its image type has, unless
    told: `disk_name`, `kind`), `files` ({relative path: (text, kind)}) and its manifest, which
    is returned (and with `manifest=False`, a failed stage, not written)."""
    directory.mkdir(parents=True, exist_ok=True)
    default_name, default_kind = DISKS.get(image, ("disk.qcow2", "disk"))
    disk = fake_disk(directory / (disk_name or default_name), disk_size, pattern, seed, extra)
    outputs = [describe_output(directory, disk, kind or default_kind)]
    for name, (text, what) in (files or {}).items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        outputs.append(describe_output(directory, path, what))
    if parent == AUTO:
        parent = None if image == "master" else {"stage": "master", "key": "p" * 64}
    made = Manifest(
        stage=image,
        os=os,
        timestamp=timestamp,
        key=key,
        inputs={"test": "fake"} if inputs is None else inputs,
        parent=parent if isinstance(parent, dict) else None,
        outputs=outputs,
        tool_versions={"suitcase": "0.1.0"},
        git_revision="test",
        started="2026-01-01T00:00:00+00:00",
        finished="2026-01-01T00:00:00+00:00",
        suitcase_version="0.1.0",
    )
    if manifest:
        write_manifest(directory, made)
    return made


def mark_verified(directory: Path, image: str, **changes: object) -> Manifest:
    """Record in the stage's manifest what the plugin records after a whole, passed run of the
    specs (pytest_suitcase.report), `changes` overriding any of it; the manifest."""
    from suitcase.gates import reached
    from suitcase.manifest import read_manifest
    from suitcase.verified import shipped_output

    manifest = read_manifest(directory)
    assert manifest is not None, directory
    output = shipped_output(manifest)
    manifest.extra["verification"] = {
        "finished": "2026-01-01T00:00:00+00:00",
        "key": manifest.key,
        "mode": "auto",
        "reached": reached(image, "auto"),
        "complete": True,
        "source": "artifact",
        "file": {"path": output.path, "sha256": output.sha256},
        "passed": True,
        "unplanned_skips": [],
        "folders": {"common": {"passed": 1, "failed": 0, "skipped": 0, "error": 0}},
        "seconds": 1.0,
        **changes,
    }
    write_manifest(directory, manifest)
    return manifest


def workspace_stage(
    workspace: Path, image: str, os_name: str, timestamp: str, manifest: bool = True
) -> Path:
    """A small built-looking stage in `workspace` (1 KiB `disk.qcow2` of kind `disk`, key 0…0,
    no inputs, no parent): for tests of listing, cleaning and planning; its folder."""
    stage = stage_dir(workspace, image, os_name, timestamp)
    fake_stage(
        stage,
        image,
        os=os_name,
        timestamp=timestamp,
        key="0" * 64,
        inputs={},
        parent=None,
        disk_name="disk.qcow2",
        kind="disk",
        disk_size=1024,
        pattern="small",
        manifest=manifest,
    )
    return stage


def fake_build_set(
    workspace: Path, images: str = "all", ts: str = TS, disk_size: int = 12 * MIB
) -> BuildPlan:
    """Every stage of `images` made done: a disk (`disk-<image>.img`, spread data), a nested small
    file and a current manifest."""
    ctx = Context.create(workspace)
    plan = ctx.plan(OS, images, ts)
    for number, stage in enumerate(plan.stages):
        name = stage.image.name
        fake_stage(
            stage.directory,
            name,
            timestamp=ts,
            key=stage.key,
            inputs=stage.inputs,
            parent={"stage": stage.parent, "key": "p"} if stage.parent else None,
            disk_name=f"disk-{name}.img",
            kind=IMAGE_TYPES[name].disk,
            disk_size=disk_size + number * 12345,
            pattern="spread",
            seed=number,
            files={"extra/notes.txt": (f"stage {name}\n", "notes")},
        )
    assert all(s.done for s in plan.states()), [s.reason for s in plan.states()]
    return plan


FAKE_TEMPLATE = {
    "variables": {
        k: ""
        for k in (
            "vm_name",
            "output_directory",
            "source_disk",
            "source_format",
            "use_backing_file",
            "accelerator",
            "headless",
            "cpus",
            "memory",
            "disk_size",
            "ssh_username",
            "ssh_private_key_file",
            "ssh_timeout",
            "scripts_dir",
            "stage",
            "os_family",
            "os_name",
            "os_major",
            "build_id",
        )
    },
    "builders": [{"type": "null", "communicator": "none"}],
    "provisioners": [
        {
            "type": "shell-local",
            "inline": [
                "echo {{user `stage`}} >> {{user `scripts_dir`}}/../packer-runs.txt",
                "test ! -e {{user `scripts_dir`}}/../fail-{{user `stage`}}",
                "mkdir -p {{user `output_directory`}}",
                "qemu-img create -q -f qcow2 {{user `output_directory`}}/{{user `vm_name`}} 64M",
            ],
        }
    ],
}

OS_TEMPLATE = """\
distribution: Debian
family: debian
version: "12"
major: 12
arch: x86_64
method: bootstrap
disk_size_mb: 1024
root_fs: ext4
capabilities:
  kernel: "6.1"
  ena: true
  xen_pv: true
  cloud_init: "22.4.2"
  init: systemd
  network: ifupdown
  package_manager: apt
bootstrap:
  suite: bookworm
  packages: [openssh-server]
"""

BOOTSTRAP = """\
#!/bin/bash
while [ $# -gt 0 ]; do [ "$1" = --output ] && out=$2; shift; done
qemu-img create -q -f raw "$out" 64M
"""


def make_fake_home(home: Path) -> Path:
    """A fake Suitcase tree at `home`: the OS Fake-12-x86_64, a Packer template that only makes
    a 64 MiB qcow2 (and records each stage in packer-runs.txt; a file fail-<stage> fails it)."""
    (home / "os").mkdir(parents=True)
    (home / "os" / "Fake-12-x86_64.yaml").write_text(OS_TEMPLATE)
    (home / "image-templates").mkdir()
    (home / "image-templates" / "qemu-disk.json").write_text(json.dumps(FAKE_TEMPLATE))
    for folder in ("bootstrap", "common", "cleanup", "master", "vagrant", "aws-hvm"):
        (home / "scripts" / folder).mkdir(parents=True)
    (home / "scripts" / "bootstrap" / "debian-disk.sh").write_text(BOOTSTRAP)
    (home / "scripts" / "run-stage.sh").write_text("#!/bin/sh\n")
    shutil.copytree(PROJECT_ROOT / "ks", home / "ks")
    (home / "specs").mkdir()
    shutil.copy(PROJECT_ROOT / "specs" / "parity.yaml", home / "specs" / "parity.yaml")
    return home
