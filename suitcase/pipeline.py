"""`suitcase all`: build, verify, upload, register, verify the AMI, then one summary table.

Each step is timed per image type and recorded in `reports/pipeline-<set>.json`; a rerun on
the same build set (`--timestamp latest`) does only what is missing:
- build: stages whose key is done are skipped (as `build` does);
- verify: an image type whose recorded verification passed for its current stage key, with its
  JUnit report still there, is not verified again; the others run in one pytest with one xdist
  worker per image type (each VM sized to the cores it shares, suitcase.machine.vm_cpus);
- upload: a stage whose real upload cookie matches its manifest is skipped;
- register: an AMI recorded in the manifest is found, never registered twice;
- verify-ami: the aws-hvm AMI's snapshot read back is verified again, unless that passed for
  the same stage key and AMI.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from suitcase import verbs
from suitcase.build import StageResult, run_plan
from suitcase.context import Context, image_types
from suitcase.errors import ConfigError
from suitcase.gates import at_least, reached, required
from suitcase.imagetypes import IMAGE_TYPES
from suitcase.manifest import Manifest, read_manifest
from suitcase.overlap import BackgroundUploads
from suitcase.summary import (
    AMI_VERIFIED,
    PipelineRecord,
    StepRecord,
    build_rows,
    junit_counts,
    record_path,
    render,
    specs_passed,
)
from suitcase.workspace import BuildSet

Say = Callable[[str], None]
AMI_TYPES = ("aws-hvm", "aws-paravirt")


@dataclass
class Outcome:
    """What `all` ends with: the table's text and whether all of it holds (exit 0)."""

    text: str
    ok: bool


def _manifest_seconds(manifest: Manifest) -> float:
    try:
        started = dt.datetime.fromisoformat(manifest.started)
        finished = dt.datetime.fromisoformat(manifest.finished)
    except ValueError:
        return 0.0
    return max(0.0, (finished - started).total_seconds())


def verify_workers(images: list[str], mode: str) -> int:
    """One xdist worker per image type (each boots its own VM): the VMs share the cores.

    A single image type needs no xdist (a worker costs a second Python start-up).
    """
    return len(images) if len(images) > 1 else 0


def junit_name(build_set: BuildSet, images: list[str], selected: list[str], ami: bool) -> str:
    """reports/junit-<set>.xml for a whole verification; a partial rerun or the AMI's gets a
    name of its own, so no report of an earlier step is overwritten."""
    if ami:
        return f"junit-{build_set.id}-ami.xml"
    if sorted(images) == sorted(selected):
        return f"junit-{build_set.id}.xml"
    return f"junit-{build_set.id}-{'-'.join(images)}.xml"


class Pipeline:
    def __init__(self, ctx: Context, image: str | None, os_name: str | None, say: Say) -> None:
        self.ctx = ctx
        self.say = say
        self.os = ctx.os_template(os_name)
        # the selected image types, parents first (a derived image's upload ships its master)
        self.images = sorted(
            {t.name for t in image_types(self.os, image, xen_only=ctx.site.ami_xen_only)},
            key=list(IMAGE_TYPES).index,
        )
        self.selector = ",".join(self.images)
        self.uploaded_now: set[str] = set()

    def run(
        self, timestamp: str | None, on_error: str, mode: str = "auto", overlap: bool = True
    ) -> Outcome:
        self._check_mode(mode)
        started = time.monotonic()
        wall: dict[str, float] = {}
        step_start = time.monotonic()
        results, uploads = self._build(timestamp, on_error, overlap)
        bset = BuildSet(self.os.name, results[0].manifest.timestamp)
        record = PipelineRecord.load(record_path(self.ctx.workspace, bset))
        for result in results:
            seconds = result.seconds if result.built else _manifest_seconds(result.manifest)
            status = "ran" if result.built else "skipped"
            note = "" if result.built else "done (same stage key)"
            record.put(
                "build",
                result.stage,
                StepRecord(status, round(seconds, 1), result.manifest.key, note),
            )
        wall["build"] = time.monotonic() - step_start
        if uploads is not None:
            # handled while building (uploaded, or found uploaded): not checked again below
            self.uploaded_now = set(uploads.seconds)
            # hidden in the build's wall time: said on its own in the summary
            wall["upload-during-build"] = sum(uploads.seconds.values())
            for name, seconds in uploads.seconds.items():
                if name in self.images:
                    key = next(r.manifest.key for r in results if r.stage == name)
                    skipped = name in uploads.skipped
                    entry = StepRecord("ran", seconds, key, "while the next stage built")
                    if skipped:
                        before = record.get("upload", name)
                        earlier = before.seconds if before and before.key == key else 0.0
                        entry = StepRecord("skipped", earlier, key, "uploaded before")
                    record.put("upload", name, entry)

        manifests = {r.stage: r.manifest for r in results}
        ok = self._verify(bset, manifests, record, mode, wall)
        if ok:
            self._upload(bset, manifests, record, wall)
            self._register(bset, manifests, record, wall)
            ok = self._verify_ami(bset, record, mode, wall)
        else:
            shipped = "uploaded while building, but " if self.uploaded_now else ""
            self.say(f"verification failed: {shipped}no AMI registered")
        wall["total"] = time.monotonic() - started
        record.wall = {k: round(v, 1) for k, v in wall.items()}
        record.save()
        return self.summary(bset, record)

    def _check_mode(self, mode: str) -> None:
        """Refuse, before anything is built, a mode whose verification `register` would not
        accept for an AMI type of the selection (the site's register_requires)."""
        for image in (i for i in self.images if i in AMI_TYPES):
            wanted = required(image, self.ctx.site.register_requires)
            if not at_least(reached(image, mode), wanted):
                raise ConfigError(
                    f"--mode {mode} verifies {image} {reached(image, mode)} only, and the site's "
                    f"register_requires is {self.ctx.site.register_requires}: use --mode auto, "
                    "or set register_requires: offline in site.yaml"
                )

    def _build(
        self, timestamp: str | None, on_error: str, overlap: bool
    ) -> tuple[list[StageResult], BackgroundUploads | None]:
        """`build` of the selection; with `overlap`, each finished stage uploads while the next
        one builds (under the same build-set lock, waited for before it is released)."""
        plan = self.ctx.plan(self.os.name, self.selector, timestamp)
        self.ctx.workspace.check_writable()
        self.say(
            f"build set {plan.build_set.id} (builder {plan.builder}, {self.ctx.site.accelerator})"
        )
        if not overlap:
            return run_plan(self.ctx, plan, self.say, on_error=on_error), None
        uploads = BackgroundUploads(self.ctx, self.os.name, plan.build_set, self.say)
        try:
            results = run_plan(
                self.ctx,
                plan,
                self.say,
                on_error=on_error,
                after_stage=uploads.submit,
                before_unlock=uploads.finish,
            )
        except BaseException:
            uploads.abort()
            raise
        return results, uploads

    def summary(self, bset: BuildSet, record: PipelineRecord) -> Outcome:
        rows = build_rows(self.ctx.workspace, bset, self.images, record)
        title = f"suitcase all: {bset.id}"
        skipped = [
            f"{step} {image}"
            for step in ("build", "verify", "upload", "register", "verify-ami")
            for image, entry in record.steps.get(step, {}).items()
            if entry.status == "skipped" and image in self.images
        ]
        text = render(rows, title, record.wall)
        if skipped:
            text += "\nskipped (already done): " + ", ".join(skipped)
        return Outcome(text, all(row.ok for row in rows))

    # --- verify ----------------------------------------------------------------------------

    def _in_workspace(self, path: Path) -> str:
        """A report's path as recorded: relative to the workspace, so a workspace moved or
        copied elsewhere (a CI cache restored under another path) still finds its reports."""
        return str(path.relative_to(self.ctx.workspace.root))

    def _verified(self, record: PipelineRecord, step: str, image: str, key: str, mode: str) -> bool:
        """Passed before for this key, its report still there, in `mode` or a stronger one (an
        offline pass never stands for a booted run)."""
        entry = record.get(step, image)
        return (
            entry is not None
            and entry.status in ("ran", "skipped")
            and entry.key == key
            and at_least(entry.reached, reached(image, mode))
            and bool(entry.junit)
            and (self.ctx.workspace.root / entry.junit).is_file()
        )

    def _verify(
        self,
        bset: BuildSet,
        manifests: dict[str, Manifest],
        record: PipelineRecord,
        mode: str,
        wall: dict[str, float],
    ) -> bool:
        todo = [
            i
            for i in self.images
            if not self._verified(record, "verify", i, manifests[i].key, mode)
        ]
        for image in self.images:
            if image not in todo:
                entry = record.get("verify", image)
                assert entry is not None
                entry.status, entry.note = "skipped", "passed before (same stage key)"
                record.put("verify", image, entry)
        if not todo:
            return True
        junit = self.ctx.workspace.root / "reports" / junit_name(bset, todo, self.images, False)
        workers = verify_workers(todo, mode)
        self.say(f"verifying {', '.join(todo)} (-n {workers})")
        began = time.monotonic()
        code = verbs.verify(
            self.ctx,
            ",".join(todo),
            self.os.name,
            bset.timestamp,
            workers,
            mode,
            ("-q", f"--junitxml={junit}"),
        )
        wall["verify"] = time.monotonic() - began
        counts = junit_counts(junit, todo)
        ok = code == 0
        for image in todo:
            passed = image in counts and specs_passed(counts[image])[1]
            manifest = read_manifest(self.ctx.workspace.stage_dir(image, bset))
            seconds = 0.0
            if manifest is not None:
                seconds = float(manifest.extra.get("verification", {}).get("seconds", 0.0))
            status = "ran" if passed and ok else "failed"
            entry = StepRecord(status, seconds, manifests[image].key, "", self._in_workspace(junit))
            entry.reached = reached(image, mode)
            record.put("verify", image, entry)
        return ok and all(record.get("verify", i).status == "ran" for i in todo)  # type: ignore[union-attr]

    def _verify_ami(
        self, bset: BuildSet, record: PipelineRecord, mode: str, wall: dict[str, float]
    ) -> bool:
        ok = True
        for image in (i for i in AMI_VERIFIED if i in self.images):
            manifest = read_manifest(self.ctx.workspace.stage_dir(image, bset))
            if manifest is None:
                return False
            ami = ",".join(
                sorted(str(a.get("image_id")) for a in manifest.extra.get("amis", {}).values())
            )
            key = f"{manifest.key}:{ami}"
            if self._verified(record, "verify-ami", image, key, mode):
                entry = record.get("verify-ami", image)
                assert entry is not None
                entry.status, entry.note = "skipped", "passed before (same AMI)"
                record.put("verify-ami", image, entry)
                continue
            junit = self.ctx.workspace.root / "reports" / junit_name(bset, [image], [], True)
            self.say(f"verifying the registered {image} AMI ({ami})")
            began = time.monotonic()
            code = verbs.verify(
                self.ctx,
                image,
                self.os.name,
                bset.timestamp,
                0,
                mode,
                ("-q", f"--junitxml={junit}"),
                source="ami",
            )
            seconds = time.monotonic() - began
            wall["verify-ami"] = wall.get("verify-ami", 0.0) + seconds
            counts = junit_counts(junit, [image]).get(image)
            passed = code == 0 and specs_passed(counts)[1]
            record.put(
                "verify-ami",
                image,
                StepRecord(
                    "ran" if passed else "failed",
                    round(seconds, 1),
                    key,
                    "",
                    self._in_workspace(junit),
                    reached(image, mode),
                ),
            )
            ok = ok and passed
        return ok

    # --- ship ------------------------------------------------------------------------------

    def _upload(
        self,
        bset: BuildSet,
        manifests: dict[str, Manifest],
        record: PipelineRecord,
        wall: dict[str, float],
    ) -> None:
        """Each stage on its own (parents first), so each is timed; a stage whose cookie matches
        and whose objects S3 still holds (HeadObject) is skipped by upload_plan itself."""
        from suitcase.aws.ship import ready_bucket, upload_plan

        began = time.monotonic()
        bucket = ready_bucket(self.ctx, False, self.say)
        for image in self.images:
            if image in self.uploaded_now:  # uploaded while the next stage built
                continue
            step = time.monotonic()
            plan = self.ctx.plan(self.os.name, image, bset.timestamp)
            lines = upload_plan(
                self.ctx, plan, False, self.say, wait=-1, trust_cookies=True, bucket=bucket
            )
            mine = [line for line in lines if line.startswith(f"{image}: ")]
            skipped = bool(mine) and all("uploaded already" in line for line in mine)
            for line in mine:
                self.say(line)
            self._put(
                record, "upload", image, manifests[image].key, skipped, step, "uploaded before"
            )
        wall["upload"] = time.monotonic() - began

    def _register(
        self,
        bset: BuildSet,
        manifests: dict[str, Manifest],
        record: PipelineRecord,
        wall: dict[str, float],
    ) -> None:
        """Each AMI type on its own; an AMI registered before (by a run, or by the AMI specs
        during verification) is found by its tags, never registered twice."""
        from suitcase.aws.register import register

        began = time.monotonic()
        for image in (i for i in self.images if i in AMI_TYPES):
            step = time.monotonic()
            lines = register(self.ctx, image, self.os.name, bset.timestamp, self.say)
            for line in lines:
                self.say(line)
            skipped = all("already registered" in line for line in lines)
            self._put(
                record,
                "register",
                image,
                manifests[image].key,
                skipped,
                step,
                "found, registered before",
            )
        wall["register"] = time.monotonic() - began

    @staticmethod
    def _put(
        record: PipelineRecord,
        step: str,
        image: str,
        key: str,
        skipped: bool,
        began: float,
        note: str,
    ) -> None:
        seconds = round(time.monotonic() - began, 1)
        if skipped:
            before = record.get(step, image)
            # keep the time it took when it did run (same stage key), say what this run did
            earlier = (
                before.seconds if before and before.key == key and before.status == "ran" else 0.0
            )
            record.put(
                step, image, StepRecord("skipped", earlier, key, f"{note} ({seconds} s to check)")
            )
        else:
            record.put(step, image, StepRecord("ran", seconds, key))


def cores() -> int:
    return len(os.sched_getaffinity(0))
