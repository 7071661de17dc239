"""Upload finished stages while the next stage builds (`suitcase all`).

Packer's VM of a derived build leaves CPU idle while its guest boots; uploading the stage
before it (the embedded endpoint is one Python process) fills it. The build-set lock is held by
the build for the whole time (run_plan's `after_stage` hands each done stage over, and its
`before_unlock` waits for the uploads), so no other process sees a half-uploaded set.

Ctrl-C or a failed build aborts the multipart uploads in flight (S3 keeps nothing unfinished)
and the next run resumes from the cookies; a stage is never marked uploaded unless confirmed.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

from suitcase.build import StageResult
from suitcase.context import Context
from suitcase.workspace import BuildSet

Say = Callable[[str], None]


class BackgroundUploads:
    """One thread uploading, in order, the stages it is handed (and their parents, if needed)."""

    def __init__(self, ctx: Context, os_name: str, build_set: BuildSet, say: Say) -> None:
        from suitcase.aws.ship import ready_bucket

        self.ctx, self.os_name, self.build_set, self.say = ctx, os_name, build_set, say
        self.bucket = ready_bucket(ctx, False, say)  # a bad bucket fails before any build
        self.seconds: dict[str, float] = {}
        self.skipped: set[str] = set()
        self.error: BaseException | None = None
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._stop = threading.Event()
        # a daemon: Ctrl-C must never wait for a transfer (abort() ends it)
        self._thread = threading.Thread(target=self._work, name="suitcase-upload", daemon=True)
        self._thread.start()

    def submit(self, result: StageResult) -> None:
        self._queue.put(result.stage)

    def finish(self) -> None:
        """Wait for every upload handed over; raise the first error one met."""
        self._queue.put(None)
        self._thread.join()
        if self.error is not None:
            raise self.error

    def abort(self) -> None:
        """Stop: abort the multipart uploads in flight under this build set, then end."""
        from suitcase.aws.ship import stage_prefix

        self._stop.set()
        self._queue.put(None)
        for image in ("master", "vagrant", "aws-hvm", "aws-paravirt"):
            prefix = stage_prefix(self.ctx, image, self.build_set)
            try:
                for upload in self.bucket.unfinished(prefix):
                    self.bucket.abort(upload["Key"], upload["UploadId"])
            except Exception:  # best effort: the next upload lists and resumes what is left
                continue
        self._thread.join(timeout=30)

    def _work(self) -> None:
        from suitcase.aws.ship import upload_plan

        while (name := self._queue.get()) is not None:
            if self._stop.is_set() or self.error is not None:
                continue
            began = time.monotonic()
            try:
                plan = self.ctx.plan(self.os_name, name, self.build_set.timestamp)
                lines = upload_plan(
                    self.ctx,
                    plan,
                    False,
                    self.say,
                    trust_cookies=True,
                    bucket=self.bucket,
                    held=True,  # the build holds the build-set lock for us
                )
            except BaseException as exc:  # handed to the main thread by finish()
                self.error = exc
                continue
            mine = [line for line in lines if line.startswith(f"{name}: ")]
            for line in mine:
                self.say(f"[{name}] {line.removeprefix(f'{name}: ')} (while building)")
            if mine and all("uploaded already" in line for line in mine):
                self.skipped.add(name)
            self.seconds[name] = round(time.monotonic() - began, 1)
