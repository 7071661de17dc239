"""aws-paravirt is refused, before any VM or upload, where PV-GRUB or the kernel cannot boot it:
PV-GRUB is GRUB legacy (ext2/3/4 only), and EL8/9 kernels dropped Xen PV guest support."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from suitcase.cli import cli
from suitcase.config import Paths
from suitcase.ostemplate import image_refusal, list_os, load_os
from tests.conftest import tree_snapshot


def test_every_template_is_judged(home: Paths) -> None:
    verdicts = {}
    for name in list_os(home):
        spec = load_os(name, home).spec
        verdicts[name] = image_refusal(spec, "aws-paravirt")
        assert image_refusal(spec, "aws-hvm") is None
        if spec.root_fs == "xfs":
            assert "PV-GRUB" in (verdicts[name] or "")
        elif spec.family == "el" and spec.major >= 8:
            assert "paravirtual guest support" in (verdicts[name] or "")
        else:
            assert verdicts[name] is None
    assert verdicts["Debian-12-x86_64"] is None
    assert verdicts["CentOS-7.3-x86_64"]  # an XFS root


@pytest.mark.parametrize("os_name", ["CentOS-7.3-x86_64", "Rocky-9.7-x86_64"])
def test_plan_says_it_and_build_refuses_it_touching_nothing(
    home: Paths, workspace: Path, runner: CliRunner, os_name: str
) -> None:
    planned = runner.invoke(cli, ["plan", "aws-paravirt", "--os", os_name])
    assert planned.exit_code == 0, planned.output
    line = next(x for x in planned.output.splitlines() if "aws-paravirt" in x)
    assert "would be refused: PV-GRUB is GRUB legacy" in line
    before = tree_snapshot(workspace)
    built = runner.invoke(cli, ["build", "aws-paravirt", "--os", os_name])
    assert built.exit_code == 2
    assert "would not boot: PV-GRUB" in built.output and "Traceback" not in built.output
    made = set(tree_snapshot(workspace)) - set(before)
    # only the workspace's lock folder (any verb makes it); no build set, no stage, no file
    assert made <= {"images", "images/.locks"}, made
