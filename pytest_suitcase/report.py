"""Results per image type and spec folder: a closing table, and a record in each manifest."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from pytest_suitcase.schedule import image_of
from pytest_suitcase.session import SuitcaseSession, spec_folder
from suitcase.manifest import read_manifest, write_manifest

OUTCOMES = ("passed", "failed", "skipped", "error")


class Recorder:
    """Counts outcomes by (image type, spec folder) on the controller (xdist sends it reports)."""

    def __init__(self, session: SuitcaseSession) -> None:
        self.session = session
        self.counts: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
        self.spans: dict[str, tuple[float, float]] = {}

    def _where(self, report: pytest.TestReport) -> tuple[str, str] | None:
        image = image_of(report.nodeid, self.session.image_names)
        if image is None:
            return None
        path = Path(report.fspath) if report.fspath else Path(report.nodeid.split("::")[0])
        return image, spec_folder(path.resolve()) or path.parent.name

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        where = self._where(report)
        if where is None:
            return
        first, last = self.spans.get(where[0], (report.start, report.stop))
        self.spans[where[0]] = (min(first, report.start), max(last, report.stop))
        if report.when == "call" or (report.when == "setup" and not report.passed):
            outcome: str = report.outcome
            if report.when == "setup" and report.failed:
                outcome = "error"
            self.counts[where][outcome] += 1

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.counts:
            return
        terminalreporter.section("suitcase verification")
        header = f"{'image type':<14}{'spec folder':<14}" + "".join(f"{o:>9}" for o in OUTCOMES)
        terminalreporter.write_line(header)
        for (image, folder), counter in sorted(self.counts.items()):
            row = f"{image:<14}{folder:<14}" + "".join(f"{counter[o]:>9}" for o in OUTCOMES)
            terminalreporter.write_line(row)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if hasattr(session.config, "workerinput"):
            return
        by_image: dict[str, dict[str, dict[str, int]]] = defaultdict(dict)
        for (image, folder), counter in self.counts.items():
            by_image[image][folder] = {o: counter[o] for o in OUTCOMES}
        for image, folders in by_image.items():
            stage_dir = self.session.ctx.workspace.stage_dir(image, self.session.build_set)
            manifest = read_manifest(stage_dir)
            if manifest is None:
                continue
            manifest.extra["verification"] = {
                "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "mode": self.session.mode,
                "passed": all(c["failed"] == 0 and c["error"] == 0 for c in folders.values()),
                "folders": folders,
                # from the first setup (build or reuse, boot) to the last teardown of its specs
                "seconds": round(self.spans[image][1] - self.spans[image][0], 1),
            }
            write_manifest(stage_dir, manifest)
