"""Image types an OS cannot make work are refused, before any VM or upload, from the OS
template's capability table (issue 22): aws-paravirt where PV-GRUB or the kernel cannot boot it
(PV-GRUB is GRUB legacy, ext2/3/4 only; EL8/9 kernels dropped Xen PV guest support), aws-hvm
where the kernel has no ENA driver (CentOS 6 and 7.0-7.3), unless the site asks for Xen-only
AMIs."""

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
        hvm = image_refusal(spec, "aws-hvm")
        assert (hvm is None) == spec.capabilities.ena, name
        assert hvm is None or "has no ENA driver" in hvm
        assert image_refusal(spec, "aws-hvm", xen_only=True) is None
        if spec.root_fs == "xfs":
            assert "PV-GRUB" in (verdicts[name] or "")
        elif not spec.capabilities.xen_pv:
            assert spec.family == "el" and spec.major >= 8, name
            assert "paravirtual guest support" in (verdicts[name] or "")
        else:
            assert verdicts[name] is None
    assert verdicts["Debian-12-x86_64"] is None
    assert verdicts["CentOS-7.3-x86_64"]  # an XFS root
    enaless = sorted(n for n in list_os(home) if not load_os(n, home).spec.capabilities.ena)
    assert enaless == [
        "CentOS-6.5-x86_64",
        "CentOS-6.6-x86_64",
        "CentOS-6.7-x86_64",
        "CentOS-7.0-x86_64",
        "CentOS-7.2-x86_64",
        "CentOS-7.3-x86_64",
    ]


def test_aws_hvm_without_ena_is_refused_unless_the_site_asks_for_xen_only(
    home: Paths, workspace: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """plan says it without media; build refuses it touching nothing; `ami_xen_only` lets it
    through (plan: would run) and registration then sets no EnaSupport."""
    from suitcase.aws.ami import AmiSettings
    from suitcase.config import Site

    planned = runner.invoke(cli, ["plan", "aws-hvm", "--os", "CentOS-7.3-x86_64"])
    assert planned.exit_code == 0, planned.output
    line = next(x for x in planned.output.splitlines() if "aws-hvm" in x)
    assert "would be refused: the kernel (3.10.0-514) has no ENA driver" in line
    before = tree_snapshot(workspace)
    built = runner.invoke(cli, ["build", "aws-hvm", "--os", "CentOS-7.3-x86_64"])
    assert built.exit_code == 2 and "would not boot: the kernel" in built.output
    assert "ami_xen_only: true" in built.output and "Traceback" not in built.output
    assert set(tree_snapshot(workspace)) - set(before) <= {"images", "images/.locks"}
    monkeypatch.setenv("SUITCASE_AMI_XEN_ONLY", "true")
    allowed = runner.invoke(cli, ["plan", "aws-hvm", "--os", "CentOS-7.3-x86_64"])
    line = next(x for x in allowed.output.splitlines() if "aws-hvm" in x)
    assert "would be refused" not in line and "would run" in line, allowed.output
    assert AmiSettings.from_site(Site.load(None)).xen_only is True


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
