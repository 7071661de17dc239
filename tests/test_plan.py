from __future__ import annotations

from pathlib import Path

import pytest

from suitcase.config import Paths, Site
from suitcase.imagetypes import resolve_images
from suitcase.manifest import Manifest, Output, write_manifest
from suitcase.ostemplate import load_os
from suitcase.plan import BuildPlan, make_plan
from suitcase.workspace import BuildSet, Workspace

TOOLS = {"packer": "1.6.6"}
BSET = BuildSet("Debian-12-x86_64", "20261126010203")


def plan_for(
    home: Paths,
    ws: Path,
    images: str = "all",
    os_name: str = "Debian-12-x86_64",
    site: Site | None = None,
    tools: dict[str, str] | None = None,
) -> BuildPlan:
    return make_plan(
        load_os(os_name, home),
        resolve_images(images),
        BuildSet(os_name, BSET.timestamp),
        Workspace(ws),
        home,
        site or Site(),
        tools or TOOLS,
    )


def test_master_first_then_derived(home: Paths, tmp_path: Path) -> None:
    plan = plan_for(home, tmp_path, "all", "CentOS-7.3-x86_64")
    assert [s.image.name for s in plan.stages] == ["master", "vagrant", "aws-hvm", "aws-paravirt"]
    assert plan.stages[0].template.name == "qemu-iso.json"
    assert all(s.parent == "master" for s in plan.stages[1:])
    assert len({s.key for s in plan.stages}) == 4


def test_asking_for_one_derived_image_brings_its_master(home: Paths, tmp_path: Path) -> None:
    plan = plan_for(home, tmp_path, "awspv")
    assert [s.image.name for s in plan.stages] == ["master", "aws-paravirt"]


def test_keys_are_stable_and_pure(home: Paths, tmp_path: Path) -> None:
    a = plan_for(home, tmp_path)
    b = plan_for(home, tmp_path)
    assert [s.key for s in a.stages] == [s.key for s in b.stages]


def keys(plan: BuildPlan) -> dict[str, str]:
    return {s.image.name: s.key for s in plan.stages}


def test_derived_script_change_moves_only_that_stage(home: Paths, tmp_path: Path) -> None:
    before = keys(plan_for(home, tmp_path))
    script = sorted((home.scripts_dir / "aws-hvm").glob("*.sh"))[0]
    script.write_text(script.read_text() + "\n# changed\n")
    after = keys(plan_for(home, tmp_path))
    changed = {k for k in before if before[k] != after[k]}
    assert changed == {"aws-hvm"}


def test_master_script_change_moves_every_stage(home: Paths, tmp_path: Path) -> None:
    before = keys(plan_for(home, tmp_path))
    script = sorted((home.scripts_dir / "master").glob("*.sh"))[0]
    script.write_text(script.read_text() + "\n# changed\n")
    after = keys(plan_for(home, tmp_path))
    assert all(before[k] != after[k] for k in before)


@pytest.mark.parametrize(
    "change",
    [
        lambda home: (home.os_dir / "Debian-12-x86_64.yaml").write_text(
            (home.os_dir / "Debian-12-x86_64.yaml").read_text().replace("    - rsync\n", "")
        ),
        lambda home: (home.templates_dir / "qemu-disk.json").write_text(
            (home.templates_dir / "qemu-disk.json").read_text() + "\n"
        ),
        lambda home: (home.scripts_dir / "cleanup" / "99-tmp.sh").write_text("# x\n"),
    ],
    ids=["os-template", "packer-template", "cleanup-script"],
)
def test_every_input_moves_the_master_key(home: Paths, tmp_path: Path, change) -> None:  # type: ignore[no-untyped-def]
    before = keys(plan_for(home, tmp_path))["master"]
    change(home)
    assert keys(plan_for(home, tmp_path))["master"] != before


def test_packer_version_and_builder_are_inputs(home: Paths, tmp_path: Path) -> None:
    base = keys(plan_for(home, tmp_path, "all", "CentOS-7.3-x86_64"))
    newer = keys(plan_for(home, tmp_path, "all", "CentOS-7.3-x86_64", tools={"packer": "1.7.0"}))
    vbox = keys(
        plan_for(home, tmp_path, "all", "CentOS-7.3-x86_64", site=Site(builder="virtualbox"))
    )
    assert base["master"] != newer["master"] != vbox["master"]


def test_answer_file_is_an_input(home: Paths, tmp_path: Path) -> None:
    before = keys(plan_for(home, tmp_path, "master", "CentOS-7.3-x86_64"))
    ks = home.answer_files_dir / "el7.ks.j2"
    ks.write_text(ks.read_text().replace("@core", "@core\nvim-enhanced"))
    assert keys(plan_for(home, tmp_path, "master", "CentOS-7.3-x86_64")) != before


def _done(plan: BuildPlan, name: str, key: str | None = None) -> None:
    stage = plan.stage(name)
    stage.directory.mkdir(parents=True, exist_ok=True)
    (stage.directory / "disk.qcow2").write_bytes(b"x" * 10)
    write_manifest(
        stage.directory,
        Manifest(
            stage=name,
            os=plan.os.name,
            timestamp=plan.build_set.timestamp,
            key=key or stage.key,
            inputs=stage.inputs,
            parent=None,
            outputs=[Output("disk.qcow2", "disk", 10, "0" * 64)],
            tool_versions=TOOLS,
            git_revision="x",
            started="s",
            finished="f",
            suitcase_version="0",
        ),
    )


def test_states_say_what_is_done_and_why_the_rest_runs(home: Paths, tmp_path: Path) -> None:
    plan = plan_for(home, tmp_path)
    for name in ("master", "vagrant", "aws-hvm"):
        _done(plan, name)
    states = {s.stage.image.name: s for s in plan.states()}
    assert states["master"].done and states["vagrant"].done and states["aws-hvm"].done
    assert not states["aws-paravirt"].done
    assert states["aws-paravirt"].reason == "not built yet"


def test_changed_master_makes_children_rebuild(home: Paths, tmp_path: Path) -> None:
    plan = plan_for(home, tmp_path)
    for stage in plan.stages:
        _done(plan, stage.image.name)
    _done(plan, "master", key="old")
    states = {s.stage.image.name: s for s in plan.states()}
    assert not states["master"].done
    assert states["master"].reason.startswith("inputs changed")
    assert states["vagrant"].reason == "its parent master will be rebuilt"


def test_missing_output_means_not_done(home: Paths, tmp_path: Path) -> None:
    plan = plan_for(home, tmp_path, "master")
    _done(plan, "master")
    (plan.stage("master").directory / "disk.qcow2").unlink()
    state = plan.states()[0]
    assert not state.done and "missing" in state.reason


def test_deriving_by_copy_changes_derived_keys_only(home: Paths, tmp_path: Path) -> None:
    overlay = keys(plan_for(home, tmp_path))
    copy = keys(plan_for(home, tmp_path, site=Site(derive="copy")))
    assert overlay["master"] == copy["master"]
    assert all(overlay[k] != copy[k] for k in ("vagrant", "aws-hvm", "aws-paravirt"))
