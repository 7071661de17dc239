"""The AMI checks both AMI image types share (specs/aws-hvm/test_hvm_ami.py and
specs/aws-paravirt/test_pv_ami.py call them): the root device is the snapshot, the tags name the
build, the snapshot is recorded, and it reads back as the very disk the specs verified.

Assertions here are rewritten by pytest as in a spec (registered in plugin.py).
"""

from __future__ import annotations

from typing import Any

from suitcase.aws import tags
from suitcase.aws.ebs import compare_snapshot, volume_gib
from suitcase.aws.images import resource_tags
from suitcase.manifest import sha256_file


def root_device_is_the_snapshot(ami: Any, root: str) -> None:
    mappings = {m["DeviceName"]: m for m in ami.description["BlockDeviceMappings"]}
    ebs = mappings[root]["Ebs"]
    assert ebs["SnapshotId"] == ami.snapshot_id
    assert ebs["VolumeSize"] == volume_gib(ami.disk.stat().st_size)
    assert ebs["VolumeType"] == "gp3"
    assert ebs["DeleteOnTermination"] is True


def tags_name_the_build(ami: Any, session: Any, artifact: Any, image_type: str) -> None:
    found = ami.tags
    assert found[tags.BUILD_SET] == session.build_set.id
    assert found[tags.STAGE_KEY] == artifact.key
    assert found[tags.IMAGE_TYPE] == image_type
    assert resource_tags(artifact).items() <= found.items()


def root_snapshot(ami: Any, artifact: Any) -> None:
    snapshot = ami.snapshot
    assert snapshot["State"] == "completed"
    assert snapshot["VolumeSize"] == volume_gib(ami.disk.stat().st_size)
    found = {t["Key"]: t["Value"] for t in snapshot.get("Tags", [])}
    assert found.get(tags.STAGE_KEY) == artifact.key
    recorded = ami.manifest.extra["amis"][ami.target.region]
    assert recorded["image_id"] == ami.image_id
    assert recorded["snapshot_id"] == ami.snapshot_id


def snapshot_is_the_verified_disk(ami: Any, artifact: Any, output: str) -> None:
    """Read back block by block (ListSnapshotBlocks, GetSnapshotBlock, checksums checked)."""
    recorded = artifact.output(output)
    assert recorded is not None and ami.disk.name == recorded.path.split("/")[-1]
    assert sha256_file(ami.disk) == recorded.sha256  # the disk the specs verified
    assert compare_snapshot(ami.target, ami.snapshot_id, ami.disk) == []


# Suitcase's own defaults for the AMI settings (README, "Registering AMIs"), written out again here
# so the specs never take them from the settings object registration used.
SITE_DEFAULTS = {"ami_boot_mode": "legacy-bios", "ami_imds_support": "v2.0", "ami_xen_only": False}


def site_setting(session: Any, name: str) -> str:
    """An AMI setting as the operator wrote it, read on its own: the site file's YAML (the file
    the run used), then SUITCASE_<NAME>, else the documented default. Never `ctx.site`, which is
    what registration sent: checking the AMI against that would compare the code with itself."""
    import os
    from pathlib import Path

    import yaml

    value: object = SITE_DEFAULTS[name]
    path = getattr(session.ctx, "site_file", None)
    if path is not None and Path(path).is_file():
        data = yaml.safe_load(Path(path).read_text()) or {}
        if isinstance(data, dict) and name in data:
            value = data[name]
    value = os.environ.get(f"SUITCASE_{name.upper()}", value)
    if isinstance(value, bool):  # YAML's true/false as the variable would spell it
        return str(value).lower()
    return "" if value is None else str(value)
