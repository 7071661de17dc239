"""The specs, run through the plugin, pass on the real images: booted where they can boot."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from tests.slow.conftest import OS_NAME, BuiltSet, run_specs, suitcase
from tests.spec_names import expected, outcomes, per_image

#: they read and write the live set (verification records, reports, the set lock): one
#: xdist worker, in order
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("live")]


def test_every_image_meets_its_spec(built_set: BuiltSet) -> None:
    try:  # the AMI specs register in the workspace's embedded endpoint: stop it afterwards
        result = run_specs(built_set.workspace, "all", "-n", "2", "-q")
    finally:
        suitcase("endpoint", "stop", workspace=built_set.workspace, check=False)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-6000:]
    assert "suitcase verification" in out
    junit = built_set.workspace / "reports" / f"junit-{OS_NAME}-{built_set.timestamp}.xml"
    suites = ET.parse(junit).getroot()
    cases = suites.findall(".//testcase")
    assert not suites.findall(".//failure") and not suites.findall(".//error")
    # exactly the specs the spec files say ran (and passed) or were skipped, per image type
    # (booted where it boots; the AMI specs too: they register with the embedded endpoint)
    found = per_image(outcomes(junit))
    assert set(found) == {"master", "vagrant", "aws-hvm", "aws-paravirt"}
    for image, (ran, skipped) in found.items():
        wanted = expected(image, "auto", ami=True)
        assert (ran, skipped) == wanted, (image, ran ^ wanted[0], skipped ^ wanted[1])
    booted = {
        c.get("name", ""): c.find("skipped") is not None
        for c in cases
        if c.get("name", "").startswith("test_eth0_is_up")
    }
    # booted specs ran on the images that boot here, and were skipped (not faked) on paravirt
    assert booted == {
        "test_eth0_is_up_with_an_address[master]": False,
        "test_eth0_is_up_with_an_address[vagrant]": False,
        "test_eth0_is_up_with_an_address[aws-hvm]": False,
        "test_eth0_is_up_with_an_address[aws-paravirt]": True,
    }, booted
    for image in ("master", "vagrant", "aws-hvm", "aws-paravirt"):
        manifest = json.loads((built_set.stage_dir(image) / "manifest.json").read_text())
        record = manifest["extra"]["verification"]
        assert record["passed"] is True and "common" in record["folders"], image
    # the parity verb agrees with the spec
    parity = subprocess.run(
        [
            sys.executable,
            "-m",
            "suitcase",
            "--workspace",
            str(built_set.workspace),
            "parity",
            "--os",
            OS_NAME,
            "--timestamp",
            built_set.timestamp,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert parity.returncode == 0, parity.stdout + parity.stderr
    assert parity.stdout.count(": holds") == 3
