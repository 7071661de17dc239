"""Specs must catch defects: planted into copies of every image type, verified by the full specs.

The defects of tests/slow/defects.py run in four groups, each one hard-linked workspace and one
pytest run of ALL the specs (AMI specs aside: they have fault tests of their own and would upload
and register every copy): the master's `auto` defects (booted), the derived images' `auto`
defects beside a clean master (vagrant and aws-hvm booted, aws-paravirt offline), everybody's
`offline` defects (--suitcase-mode offline), and a clean copy made by the same pipeline, which
must pass with zero failures. In each run exactly the specs the table names fail, and no other
(parity may fail in a derived image of a run in which it or its master carries a defect).
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from suitcase.safety import remove_tree
from tests.slow.conftest import OS_NAME, BuiltSet, run_specs
from tests.slow.defect_images import Kit, box_is_verified, build_key_line, hardlink_workspace, plant
from tests.slow.defects import DEFECTS, PARITY, Defect
from tests.spec_names import spec_names

pytestmark = pytest.mark.slow

ALL = ("master", "vagrant", "aws-hvm", "aws-paravirt")


@dataclass(frozen=True)
class Run:
    """One defective workspace and the specs run on it."""

    images: tuple[str, ...]  # verified in this run
    defects: tuple[str, ...]  # planted in this run
    offline: bool


def _chosen(images: tuple[str, ...], mode: str) -> tuple[str, ...]:
    box = box_is_verified()
    return tuple(
        sorted(
            name
            for name, d in DEFECTS.items()
            if d.image in images and d.mode == mode and (d.target != "box" or box)
        )
    )


RUNS = {
    "master-booted": Run(("master",), _chosen(("master",), "auto"), offline=False),
    "derived-booted": Run(ALL[1:], _chosen(ALL[1:], "auto"), offline=False),
    "offline": Run(ALL[:3], _chosen(ALL, "offline"), offline=True),
    "clean": Run(ALL, (), offline=True),
}


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


def expectations(run: Run, existing: set[str]) -> tuple[dict[tuple[str, str], str], set[str]]:
    """(spec, image) that must fail -> the defect meant for it; and the derived images in which
    parity may fail as well."""
    must: dict[tuple[str, str], str] = {}
    for name in run.defects:
        defect: Defect = DEFECTS[name]
        for spec in sorted(defect.specs & existing):
            assert (spec, defect.image) not in must, f"{name} and {must[spec, defect.image]}"
            must[spec, defect.image] = name
    defected = {DEFECTS[n].image for n in run.defects}
    may_parity = {i for i in run.images if i != "master" and ({i, "master"} & defected)}
    return must, may_parity


@pytest.mark.parametrize("run_name", sorted(RUNS))
def test_specs_fail_exactly_for_the_planted_defects(
    run_name: str, built_set: BuiltSet, tmp_path: Path
) -> None:
    run = RUNS[run_name]
    workspace = hardlink_workspace(built_set.workspace, tmp_path / "ws")
    build_set = f"{OS_NAME}-{built_set.timestamp}"
    kit = Kit(build_key_line(workspace, build_set))
    started = time.monotonic()
    try:

        def plant_image(image: str) -> None:
            chosen = [DEFECTS[n] for n in run.defects if DEFECTS[n].image == image]
            plant(
                workspace / "images" / image / build_set,
                image,
                [d.inject for d in chosen if d.target == "disk"],
                [d.inject for d in chosen if d.target == "box"],
                kit,
            )

        # each image gets files of its own, even a clean one (the same pipeline); two at a time
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(plant_image, run.images))
        planted = time.monotonic() - started
        junit = tmp_path / "junit.xml"
        extra = ["--suitcase-mode", "offline"] if run.offline else []
        result = run_specs(
            workspace,
            ",".join(run.images),
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
    must, may_parity = expectations(run, spec_names())
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
        and not (spec == PARITY and image in may_parity)
    )
    assert not missed and not unexpected, (
        f"defects the specs missed: {missed}\nspecs failing for no planted defect: {unexpected}\n"
        + out
    )
    passed = [k for k, state in seen.items() if state == "passed"]
    assert len(passed) > 20 * len(run.images) // 2, out  # the run really verified something
    assert sorted({image for _, image in seen}) == sorted(run.images), out
