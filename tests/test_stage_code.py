"""Stage keys cover Suitcase's own code: every module the build runs is either listed as shaping
a stage's outputs (ImageType.code) or said here not to, and a change to one rebuilds."""

from __future__ import annotations

import ast
import dataclasses
import shutil
from pathlib import Path

import pytest

import suitcase
from suitcase import plan as plan_module
from suitcase.context import Context
from suitcase.imagetypes import IMAGE_TYPES
from suitcase.manifest import read_manifest, write_manifest
from suitcase.verbs import render_plan
from tests.fakes import workspace_stage

PACKAGE = Path(suitcase.__file__).resolve().parent

#: modules the build imports that do not shape what a stage writes, and why
NOT_SHAPING = {
    "__init__.py": "the version, already in every manifest's tool versions",
    "buildsecrets.py": "hands SUITCASE_SECRET_* to the scripts; by design no stage input (README)",
    "command.py": "runs processes and streams their output; writes no stage output",
    "config.py": "reads site.yaml and paths; the settings that shape images are stage inputs",
    "context.py": "gathers paths, settings and tool versions (the versions are inputs)",
    "errors.py": "exception classes",
    "imagetypes.py": "data: the lists of code that shapes each type live here",
    "machine.py": "build only reads the guest console's tail from it, for error messages",
    "manifest.py": "records outputs after they are written (checksums), never changes them",
    "netns.py": "a verification VM's own network (through machine.py); no build output",
    "plan.py": "computes the stage keys themselves",
    "redact.py": "masks secrets in logs and messages",
    "safety.py": "removes scratch folders",
    "schema.py": "validation helpers",
    "sweep.py": "stops processes an earlier killed run left",
    "workspace.py": "where stage folders, keys and locks are; their names are not outputs",
}


def _imports(module: Path) -> set[str]:
    """suitcase modules (file names) that `module` imports, at any depth inside the file."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(module.read_text())):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] != "suitcase":
                continue
            if len(parts) == 1:
                found.add("__init__.py")
            elif (PACKAGE / f"{parts[1]}.py").is_file():
                found.add(f"{parts[1]}.py")
    return found


def _reachable(start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(_imports(PACKAGE / name) - seen)
    return seen


def test_every_module_the_build_runs_is_classified() -> None:
    listed = {m for t in IMAGE_TYPES.values() for m in t.code}
    unclassified = _reachable("build.py") - listed - set(NOT_SHAPING)
    assert not unclassified, (
        f"{sorted(unclassified)}: the build imports these; list each in ImageType.code "
        "(suitcase/imagetypes.py) if it shapes a stage's outputs, else in NOT_SHAPING here"
    )
    assert not listed & set(NOT_SHAPING)
    assert all((PACKAGE / m).is_file() for m in listed | set(NOT_SHAPING))


def test_the_modules_that_write_outputs_are_listed() -> None:
    assert {"build.py", "packer.py", "artifact.py"} <= set(IMAGE_TYPES["vagrant"].code)
    assert "artifact.py" in IMAGE_TYPES["aws-paravirt"].code  # the PV partition is cut there
    assert {"answerfile.py", "build.py"} <= set(IMAGE_TYPES["master"].code)


def test_a_code_change_rebuilds_and_plan_says_so(
    workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = Context.create(workspace)
    first = ctx.plan("Debian-12-x86_64", "vagrant", "20260101000000")
    for stage in first.stages:  # both stages built with today's code
        folder = workspace_stage(workspace, stage.image.name, "Debian-12-x86_64", "20260101000000")
        manifest = read_manifest(folder)
        assert manifest is not None
        write_manifest(folder, dataclasses.replace(manifest, key=stage.key, inputs=stage.inputs))
    assert all(s.done for s in first.states())
    changed = tmp_path / "suitcase"
    shutil.copytree(PACKAGE, changed)
    with (changed / "artifact.py").open("a") as handle:
        handle.write("\n# a change to how boxes are packed\n")
    monkeypatch.setattr(plan_module, "_PACKAGE", changed)
    second = ctx.plan("Debian-12-x86_64", "vagrant", "20260101000000")
    states = {s.stage.image.name: s for s in second.states()}
    assert states["master"].done  # the master does not run artifact.py
    assert not states["vagrant"].done
    assert states["vagrant"].reason == "code changed: artifact.py"
    assert "would run: code changed: artifact.py" in render_plan(second)
