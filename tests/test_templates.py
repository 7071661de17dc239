"""Every Packer template passes the real `packer validate` with the var-file Suitcase writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from suitcase import packer
from suitcase.build import build_key, stage_variables
from suitcase.config import PROJECT_ROOT
from suitcase.context import Context

CASES = [
    ("Debian-12-x86_64", "qemu", "master"),
    ("Debian-12-x86_64", "qemu", "vagrant"),
    ("Debian-12-x86_64", "qemu", "aws-hvm"),
    ("Debian-12-x86_64", "qemu", "aws-paravirt"),
    ("CentOS-6.7-x86_64", "qemu", "master"),
    ("CentOS-7.3-x86_64", "qemu", "master"),
    ("Rocky-9.7-x86_64", "qemu", "master"),
    ("CentOS-7.3-x86_64", "virtualbox", "master"),
    ("CentOS-7.3-x86_64", "virtualbox", "vagrant"),
    ("Rocky-8.10-x86_64", "virtualbox", "aws-hvm"),
]


@pytest.mark.parametrize(("os_name", "builder", "image"), CASES)
def test_template_validates(os_name: str, builder: str, image: str, tmp_path: Path) -> None:
    (tmp_path / "site.yaml").write_text(
        f"builder: {builder}\nmirrors: {{centos: 'https://m.invalid/c', "
        "'rocky linux': 'https://m.invalid/r', 'rocky-vault': 'https://m.invalid/rv', "
        "debian: 'http://m.invalid/d'}\n"
    )
    ctx = Context.create(tmp_path, tmp_path / "site.yaml")
    plan = ctx.plan(os_name, image, "20260101000000")
    stage = plan.stage(image)
    work = tmp_path / "work"
    work.mkdir()
    variables = stage_variables(ctx, plan, stage, build_key(ctx, plan), work)
    if not stage.image.is_master:  # the parent's disk, as a derived build would find it
        source = Path(str(variables["source_disk"]))
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text("")
    var_file = packer.write_var_file(tmp_path / "vars.json", variables)
    packer.validate(stage.template, var_file, cwd=work)


def test_validate_catches_a_missing_variable(tmp_path: Path) -> None:
    ctx = Context.create(tmp_path, None)
    plan = ctx.plan("Debian-12-x86_64", "master", "20260101000000")
    stage = plan.stage("master")
    variables = stage_variables(ctx, plan, stage, build_key(ctx, plan), tmp_path)
    del variables["ssh_private_key_file"]
    var_file = packer.write_var_file(tmp_path / "vars.json", variables)
    with pytest.raises(Exception, match="does not validate"):
        packer.validate(stage.template, var_file)


def test_spec_file_names_are_unique_across_spec_folders() -> None:
    """pytest imports spec folders without packages: two files of one name fail to import."""
    from collections import Counter

    names = Counter(p.name for p in (PROJECT_ROOT / "specs").rglob("test_*.py"))
    assert [name for name, count in names.items() if count > 1] == []
