"""Specs must catch defects: planted into copies of every image type, verified by the full specs.

The defects of tests/slow/defects.py run in groups, one per image type and mode: each group is one
hard-linked workspace whose image carries all of the group's defects, and one pytest run of ALL
the specs on it (AMI specs aside: they have fault tests of their own and would upload and register
every copy). `auto` groups are verified as usual (master, vagrant and aws-hvm booted in QEMU,
aws-paravirt offline), `offline` groups with --suitcase-mode offline. In each run exactly the
specs the table names fail, and no other (parity may fail with any defect in a derived image).
The clean run verifies the built set's own files, all four types, and must have no failure.
One image per run keeps a run's copies (and the specs' scratch conversions) small: the disk
is shared by every engineer's builds.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

from suitcase.safety import remove_tree
from tests.slow.conftest import OS_NAME, BuiltSet, run_specs
from tests.slow.defect_images import Kit, box_is_verified, build_key_line, plant
from tests.slow.defects import DEFECTS, PARITY, Defect
from tests.spec_names import spec_names

pytestmark = pytest.mark.slow

ALL = ("master", "vagrant", "aws-hvm", "aws-paravirt")


@dataclass(frozen=True)
class Run:
    """One defective workspace (one image type's copy) and the specs run on it."""

    image: str
    defects: tuple[str, ...]  # planted in this run
    offline: bool


def _runs() -> dict[str, Run]:
    """One run per image type and mode that has defects, plus the clean set."""
    box = box_is_verified()
    runs = {"clean": Run("all", (), offline=True)}
    for image in ALL:
        for mode in ("auto", "offline"):
            chosen = tuple(
                sorted(
                    name
                    for name, d in DEFECTS.items()
                    if d.image == image and d.mode == mode and (d.target != "box" or box)
                )
            )
            if chosen:
                runs[f"{image}-{mode}"] = Run(image, chosen, offline=mode == "offline")
    return runs


RUNS = _runs()


def outcomes(junit: Path) -> dict[tuple[str, str], str]:
    """(spec, image) -> passed / failed / error / skipped, from the run's JUnit report."""
    found: dict[tuple[str, str], str] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = case.get("name", "")
        spec, _, image = name.partition("[")
        state = "passed"
        for tag in ("failure", "error", "skipped"):
            if case.find(tag) is not None:
                state = {"failure": "failed"}.get(tag, tag)
                break
        key = (spec, image.rstrip("]"))
        # a teardown error is a second testcase of the same name: the worse outcome stays
        if found.get(key) not in ("failed", "error"):
            found[key] = state
    return found


def expectations(run: Run, existing: set[str]) -> dict[tuple[str, str], str]:
    """(spec, image) that must fail -> the defect meant for it."""
    must: dict[tuple[str, str], str] = {}
    for name in run.defects:
        defect: Defect = DEFECTS[name]
        for spec in sorted(defect.specs & existing):
            assert (spec, defect.image) not in must, f"{name} and {must[spec, defect.image]}"
            must[spec, defect.image] = name
    return must


@pytest.mark.parametrize("run_name", sorted(RUNS))
def test_specs_fail_exactly_for_the_planted_defects(
    run_name: str, built_set: BuiltSet, tmp_path: Path
) -> None:
    run = RUNS[run_name]
    workspace = built_set.copy(tmp_path / "ws")
    build_set = f"{OS_NAME}-{built_set.timestamp}"
    kit = Kit(build_key_line(workspace, build_set))
    started = time.monotonic()
    try:
        if run.defects:  # the clean run verifies the built set's own files (hard links)
            chosen = [DEFECTS[n] for n in run.defects]
            plant(
                workspace / "images" / run.image / build_set,
                run.image,
                [d.inject for d in chosen if d.target == "disk"],
                [d.inject for d in chosen if d.target == "box"],
                kit,
                [d.inject for d in chosen if d.target == "vmdk"],
            )
        planted = time.monotonic() - started
        junit = tmp_path / "junit.xml"
        extra = ["--suitcase-mode", "offline"] if run.offline else []
        result = run_specs(
            workspace,
            run.image,
            *extra,
            "-m",
            "not suitcase_ami",
            f"--junitxml={junit}",
            "-q",
            "-rfE",
            timestamp=built_set.timestamp,
        )
        out = (result.stdout + result.stderr)[-6000:]
        assert junit.is_file(), out
        seen = outcomes(junit)
    finally:
        remove_tree(tmp_path / "ws")
    print(f"{run_name}: planted in {planted:.0f} s, verified in {time.monotonic() - started:.0f} s")
    must = expectations(run, spec_names())
    missed = {
        f"{spec}[{image}] ({must[spec, image]})": seen.get((spec, image), "not run")
        for spec, image in must
        if seen.get((spec, image)) != "failed"
    }
    unexpected = sorted(
        f"{spec}[{image}]: {state}"
        for (spec, image), state in seen.items()
        if state in ("failed", "error")
        and (spec, image) not in must
        and not (spec == PARITY and run.defects)
    )
    assert not missed and not unexpected, (
        f"defects the specs missed: {missed}\nspecs failing for no planted defect: {unexpected}\n"
        + out
    )
    passed = [k for k, state in seen.items() if state == "passed"]
    assert len(passed) >= 10, out  # the run really verified something
    images = list(ALL) if run.image == "all" else [run.image]
    # (a spec whose marker leaves no image of this run is collected once as "[NOTSET]", skipped)
    ran = {image for (_, image), state in seen.items() if state != "skipped"}
    assert sorted(ran) == sorted(images), out
