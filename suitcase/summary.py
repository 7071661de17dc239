"""The closing table of `suitcase all`, made only from what the pipeline left on disk.

Manifests (artifact, size, sha256, build time, AMI id), upload cookies (S3 location), JUnit
reports (specs passed/failed/skipped) and the pipeline record (`reports/pipeline-<set>.json`:
stage timings, what ran and what was skipped). Pure reading: a rerun, or another process, prints
the same table from the same files.
"""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ElementTree
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from suitcase.gates import planned
from suitcase.imagetypes import IMAGE_TYPES
from suitcase.manifest import Manifest, read_manifest, write_atomic
from suitcase.workspace import BuildSet, Workspace

#: the steps of the pipeline, in order, each timed per image type
STEPS = ("build", "verify", "upload", "register", "verify-ami")
#: the image types the pipeline verifies once more from their registered AMI
AMI_VERIFIED = ("aws-hvm",)


def image_of_case(name: str, images: list[str]) -> str | None:
    """The image type a JUnit test case belongs to (its parameter: `test_x[aws-hvm]`)."""
    if not name.endswith("]") or "[" not in name:
        return None
    ids = name[name.rindex("[") + 1 : -1]
    for image in sorted(images, key=len, reverse=True):
        if ids == image or ids.startswith(image + "-") or ids.endswith("-" + image):
            return image
    return None


def junit_counts(path: Path, images: list[str]) -> dict[str, Counter[str]]:
    """passed/failed/skipped per image type from a pytest JUnit XML file (errors count as failed);
    "unplanned": the skips among them the plugin did not plan from the spec files (gates.PLANNED).

    A missing or unreadable report gives no counts (the summary then shows none).
    """
    counts: dict[str, Counter[str]] = {}
    try:
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError):
        return counts
    for case in root.iter("testcase"):
        image = image_of_case(case.get("name", ""), images)
        if image is None:
            continue
        tags = {child.tag for child in case}
        if tags & {"failure", "error"}:
            outcome = "failed"
        elif "skipped" in tags:
            outcome = "skipped"
            skip = case.find("skipped")
            if skip is not None and not planned(skip.get("message", "")):
                counts.setdefault(image, Counter())["unplanned"] += 1
        else:
            outcome = "passed"
        counts.setdefault(image, Counter())[outcome] += 1
    return counts


@dataclass
class StepRecord:
    """One step of one image type: ran, skipped (and why), or failed; seconds it took."""

    status: str
    seconds: float = 0.0
    key: str = ""
    note: str = ""
    junit: str = ""
    #: verify steps: how far the verification reached (suitcase.gates.reached)
    reached: str = ""


@dataclass
class PipelineRecord:
    """`reports/pipeline-<set>.json`: what each step did per image type, kept across reruns."""

    path: Path
    steps: dict[str, dict[str, StepRecord]] = field(default_factory=dict)
    wall: dict[str, float] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> PipelineRecord:
        record = cls(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return record
        if not isinstance(data, dict):
            return record
        for step, images in (data.get("steps") or {}).items():
            if step in STEPS and isinstance(images, dict):
                record.steps[step] = {
                    image: StepRecord(**{k: v for k, v in entry.items() if k in _FIELDS})
                    for image, entry in images.items()
                    if _well_formed(entry)
                }
        wall = data.get("wall") or {}
        record.wall = {k: float(v) for k, v in wall.items() if isinstance(v, int | float)}
        return record

    def get(self, step: str, image: str) -> StepRecord | None:
        return self.steps.get(step, {}).get(image)

    def put(self, step: str, image: str, entry: StepRecord) -> None:
        self.steps.setdefault(step, {})[image] = entry
        self.save()

    def save(self) -> None:
        data = {
            "steps": {
                step: {image: entry.__dict__ for image, entry in images.items()}
                for step, images in self.steps.items()
            },
            "wall": self.wall,
        }
        write_atomic(self.path, json.dumps(data, indent=2, sort_keys=True) + "\n")


_FIELDS = ("status", "seconds", "key", "note", "junit", "reached")


def _well_formed(entry: object) -> bool:
    """A record entry as `save` writes it; anything else (a hand edit, a torn file) is dropped."""
    if not isinstance(entry, dict) or not isinstance(entry.get("status"), str):
        return False
    seconds = entry.get("seconds", 0.0)
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        return False
    return all(isinstance(entry.get(k, ""), str) for k in ("key", "note", "junit", "reached"))


def record_path(workspace: Workspace, build_set: BuildSet) -> Path:
    return workspace.root / "reports" / f"pipeline-{build_set.id}.json"


@dataclass
class Row:
    """One line of the table: an image type (or its AMI verified again)."""

    image: str
    artifact: str = "-"
    size: str = "-"
    sha256: str = "-"
    specs: str = "-"
    s3: str = "-"
    ami: str = "-"
    junit: str = "-"
    times: dict[str, str] = field(default_factory=dict)
    ok: bool = False
    problems: list[str] = field(default_factory=list)


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover (the loop always returns)


def _seconds(entry: StepRecord | None) -> str:
    if entry is None:
        return "-"
    if entry.status == "skipped":
        return f"skipped ({entry.seconds:.0f} s before)" if entry.seconds else "skipped"
    if entry.status == "failed":
        return f"FAILED {entry.seconds:.0f} s"
    return f"{entry.seconds:.0f} s"


def specs_passed(counts: Counter[str] | None) -> tuple[str, bool]:
    """passed/failed/skipped, and whether that is a pass: nothing failed, something passed, and
    no spec that was to run here was skipped (only planned skips: "1 passed, 40 skipped" where
    40 were to run is no verified image)."""
    if not counts:
        return "no report", False
    text = f"{counts['passed']}/{counts['failed']}/{counts['skipped']}"
    if counts["unplanned"]:
        text += f" ({counts['unplanned']} unplanned)"
    return text, counts["failed"] == 0 and counts["passed"] > 0 and not counts["unplanned"]


def build_rows(
    workspace: Workspace, build_set: BuildSet, images: list[str], record: PipelineRecord
) -> list[Row]:
    """A row per image type (and one per AMI verified again), each saying whether it all holds."""
    rows: list[Row] = []
    for image in images:
        stage_dir = workspace.stage_dir(image, build_set)
        manifest = read_manifest(stage_dir)
        row = Row(image)
        rows.append(row)
        for step in ("build", "verify", "upload", "register"):
            row.times[step] = _seconds(record.get(step, image))
        if manifest is None:
            row.problems.append("not built")
            continue
        _artifact(row, manifest)
        verified = record.get("verify", image)
        junit = workspace.root / verified.junit if verified and verified.junit else None
        counts = junit_counts(junit, images).get(image) if junit else None
        row.specs, specs_ok = specs_passed(counts)
        if junit is not None:
            row.junit = _relative(junit, workspace.root)
        if not specs_ok:
            row.problems.append("specs did not pass")
        cookie = _cookie(stage_dir, manifest)
        if cookie is None:
            row.problems.append("not uploaded")
        else:
            prefix = f"{build_set.id}/"
            keys = [o.get("key", "") for o in cookie.get("objects", []) if isinstance(o, dict)]
            folder = next((k[: k.index(prefix) + len(prefix)] for k in keys if prefix in k), "")
            row.s3 = f"s3://{cookie.get('bucket', '?')}/{folder}"
        if IMAGE_TYPES[image].name in ("aws-hvm", "aws-paravirt"):
            amis = manifest.extra.get("amis") or {}
            ids = [str(a.get("image_id")) for a in amis.values() if isinstance(a, dict)]
            row.ami = ", ".join(ids) if ids else "-"
            if not ids:
                row.problems.append("no AMI registered")
        row.ok = not row.problems
        if image in AMI_VERIFIED:
            rows.append(_ami_row(workspace, image, row, record))
    return rows


def _ami_row(workspace: Workspace, image: str, artifact_row: Row, record: PipelineRecord) -> Row:
    row = Row(f"{image} (AMI)", artifact="AMI root snapshot read back", ami=artifact_row.ami)
    entry = record.get("verify-ami", image)
    row.times["verify"] = _seconds(entry)
    junit = workspace.root / entry.junit if entry and entry.junit else None
    counts = junit_counts(junit, [image]).get(image) if junit else None
    row.specs, ok = specs_passed(counts)
    if junit is not None:
        row.junit = _relative(junit, workspace.root)
    if not ok:
        row.problems.append("AMI specs did not pass")
    row.ok = ok
    return row


def _artifact(row: Row, manifest: Manifest) -> None:
    disk = manifest.output(IMAGE_TYPES[manifest.stage].disk) or (
        manifest.outputs[0] if manifest.outputs else None
    )
    if disk is not None:
        row.artifact, row.size, row.sha256 = disk.path, human_size(disk.size), disk.sha256[:12]


def _cookie(stage_dir: Path, manifest: Manifest) -> dict[str, Any] | None:
    from suitcase.aws.ship import real_upload

    return real_upload(stage_dir, manifest)


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


COLUMNS = (
    "image type",
    "artifact",
    "size",
    "sha256",
    "specs p/f/s",
    "S3",
    "AMI",
    "JUnit report",
    "build",
    "verify",
    "upload",
    "register",
)


def render(rows: list[Row], title: str, wall: dict[str, float], width: int | None = None) -> str:
    """The table as text (rich), then one line of wall time per step and a verdict."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=False, title_justify="left")
    for column in COLUMNS:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            row.image,
            row.artifact,
            row.size,
            row.sha256,
            row.specs,
            row.s3,
            row.ami,
            row.junit,
            *(row.times.get(step, "-") for step in ("build", "verify", "upload", "register")),
            style=None if row.ok else "red",
        )
    out = io.StringIO()
    console = Console(file=out, width=width or 320, force_terminal=False, color_system=None)
    console.print(table)
    steps = ", ".join(f"{step} {wall[step]:.0f} s" for step in STEPS if step in wall)
    if wall.get("upload-during-build"):
        steps += f" (+ upload {wall['upload-during-build']:.0f} s while building)"
    total = wall.get("total")
    lines = [line.rstrip() for line in out.getvalue().rstrip("\n").splitlines()]
    if steps:
        lines.append(f"wall time: {steps}" + (f"; total {total:.0f} s" if total else ""))
    bad = [f"{row.image}: {', '.join(row.problems)}" for row in rows if row.problems]
    lines.extend(bad or ["all of it holds: built, verified, uploaded, registered"])
    return "\n".join(lines)
