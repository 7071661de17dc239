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
from dataclasses import dataclass
from pathlib import Path

import pytest

from suitcase.safety import remove_tree
from tests.slow.conftest import OS_NAME, BuiltSet, run_specs
from tests.slow.defect_images import Kit, box_is_verified, build_key_line, plant
from tests.slow.defects import CATCH_ALL, DEFECTS, PARITY, Defect
from tests.spec_names import (
    crashed,
    expected,
    failure_texts,
    outcomes,
    per_image,
    spec_names,
)

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


def expectations(run: Run, existing: set[str]) -> dict[tuple[str, str], str]:
    """(spec, image) that must fail -> the defect meant for it."""
    must: dict[tuple[str, str], str] = {}
    for name in run.defects:
        defect: Defect = DEFECTS[name]
        said = dict(defect.fragments)
        for spec in sorted(defect.specs & existing):
            other = must.get((spec, defect.image))
            # shared only where both rows name what the spec must say about each
            assert other is None or (spec in said and spec in dict(DEFECTS[other].fragments)), (
                f"{name} and {other}"
            )
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
        # parity (in a derived image) and the explained specs may fail with any planted file
        and not ((spec == PARITY or spec in CATCH_ALL) and run.defects)
    )
    # a row that names what a spec must say is caught only when it says it (no crash counts)
    texts = failure_texts(junit)
    unsaid = sorted(
        f"{name}: {spec}[{DEFECTS[name].image}] lacks {fragment!r}"
        for name in run.defects
        for spec, fragment in DEFECTS[name].fragments
        if fragment not in texts.get((spec, DEFECTS[name].image), "")
    )
    assert not unsaid, "\n".join(unsaid) + "\n" + out
    crashes = sorted(f"{spec}[{image}]" for spec, image in crashed(junit) if (spec, image) in must)
    assert not crashes, f"specs that crashed instead of failing: {crashes}\n{out}"
    assert not missed and not unexpected, (
        f"defects the specs missed: {missed}\nspecs failing for no planted defect: {unexpected}\n"
        + out
    )
    images = list(ALL) if run.image == "all" else [run.image]
    # the exact control: per image type, the specs that ran and those skipped as planned are
    # the ones the spec files say, computed apart from the plugin (tests/spec_names.expected)
    mode = "offline" if run.offline else "auto"
    found = per_image(seen)
    assert set(found) == set(images), out
    for image in images:
        wanted = expected(image, mode, ami=False)
        assert found[image] == wanted, (
            f"{image} in {mode}: ran {sorted(found[image][0] ^ wanted[0])}, skipped "
            f"{sorted(found[image][1] ^ wanted[1])} differ from the spec files\n{out}"
        )
