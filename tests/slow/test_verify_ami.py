"""`suitcase verify aws-hvm --from ami`: the specs run on the AMI's snapshot read back, booted."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from tests.slow.conftest import OS_NAME, BuiltSet, suitcase

#: they read and write the live set (verification records, reports, the set lock): one
#: xdist worker, in order
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("live")]


def test_verify_aws_hvm_from_ami(built_set: BuiltSet) -> None:
    workspace = built_set.workspace
    try:
        result = suitcase(
            "verify",
            "aws-hvm",
            "--os",
            OS_NAME,
            "--timestamp",
            built_set.timestamp,
            "--from",
            "ami",
            "--",
            "-q",
            workspace=workspace,
            check=False,
        )
    finally:  # the embedded endpoint it started holds the snapshot: stop it (its state is saved)
        suitcase("endpoint", "stop", workspace=workspace, check=False)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-6000:]
    assert "aws-hvm: reading snapshot snap-" in out
    stage = built_set.stage_dir("aws-hvm")
    assert not (stage / ".ami-readback").exists()  # the read-back disk is removed
    junit = workspace / "reports" / f"junit-{OS_NAME}-{built_set.timestamp}.xml"
    cases = {c.get("name", ""): c for c in ET.parse(junit).getroot().findall(".//testcase")}
    for name in (
        "test_snapshot_is_the_verified_disk[aws-hvm]",
        "test_hvm_attributes[aws-hvm]",
        "test_eth0_is_up_with_an_address[aws-hvm]",  # booted from the read-back disk
    ):
        case = cases[name]
        assert case.find("skipped") is None and case.find("failure") is None, name
    assert not any(n.endswith("[vagrant]") or n.endswith("[master]") for n in cases)
