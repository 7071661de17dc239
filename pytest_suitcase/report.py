"""Results per image type and spec folder: a closing table, and a record in each manifest."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from pytest_suitcase.schedule import image_of
from pytest_suitcase.session import SuitcaseSession, spec_folder
from suitcase.gates import planned, reached
from suitcase.manifest import read_manifest, write_manifest
from suitcase.redact import redact_text

OUTCOMES = ("passed", "failed", "skipped", "error")


class RedactingFilter(logging.Filter):
    """testinfra logs every command's output at DEBUG (an `/etc/shadow` read included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


def redact_report(report: pytest.TestReport) -> None:
    """Pass a test's failure text and captured output through the one redaction path, before
    the terminal, xdist or the JUnit XML sees them (a spec may quote a secret it found)."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple):  # a skip: (path, line, reason)
        report.longrepr = (longrepr[0], longrepr[1], redact_text(longrepr[2]))
    elif longrepr is not None:
        text = str(longrepr)
        if redact_text(text) != text:
            # redact pytest's structured report in place (it keeps the one-line summary);
            # whatever that misses, the plain redacted text replaces
            _redact_fields(longrepr)
            if redact_text(str(longrepr)) != str(longrepr):
                report.longrepr = redact_text(text)
    report.sections = [(title, redact_text(content)) for title, content in report.sections]


def _redact_fields(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, list):
        return [_redact_fields(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_redact_fields(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for name in [*(f.name for f in dataclasses.fields(value)), "chain"]:
            if hasattr(value, name):
                with contextlib.suppress(AttributeError, dataclasses.FrozenInstanceError):
                    setattr(value, name, _redact_fields(getattr(value, name)))
    return value


class Recorder:
    """Counts outcomes by (image type, spec folder) on the controller (xdist sends it reports)."""

    def __init__(self, session: SuitcaseSession, complete: bool = True) -> None:
        self.session = session
        #: the whole spec tree ran (no -k, -m, file or node selection): see `whole_run`
        self.complete = complete
        self.counts: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
        #: per image type, the specs skipped for a reason the plugin did not plan (gates.PLANNED)
        self.unplanned: dict[str, list[str]] = defaultdict(list)
        self.spans: dict[str, tuple[float, float]] = {}
        testinfra_log = logging.getLogger("testinfra")
        if not any(isinstance(f, RedactingFilter) for f in testinfra_log.filters):
            testinfra_log.addFilter(RedactingFilter())

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        report = yield
        redact_report(report)
        return report

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
            if report.skipped and not planned(_skip_reason(report)):
                self.unplanned[where[0]].append(report.nodeid)

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
            verified = _verified_file(stage_dir, manifest, self.session)
            unplanned = sorted(self.unplanned.get(image, []))
            # the AMI's verification is kept apart: it never stands for the built image's
            entry = "verification" if self.session.source == "artifact" else "verification_ami"
            manifest.extra[entry] = {
                "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                # the stage key verified, and how far verification reached (suitcase.gates)
                "key": manifest.key,
                "mode": self.session.mode,
                "reached": reached(image, self.session.mode),
                "complete": self.complete,
                # artifact: the built disk; ami: the AMI's snapshot read back (--suitcase-source)
                "source": self.session.source,
                # the file that ships, as it was when verified (its sha256 checked first)
                "file": verified,
                # no failure, something passed, and every skip planned from the spec files
                "passed": verified.get("sha256") is not None
                and all(c["failed"] == 0 and c["error"] == 0 for c in folders.values())
                and sum(c["passed"] for c in folders.values()) > 0
                and not unplanned,
                "unplanned_skips": unplanned[:20],
                "folders": folders,
                # from the first setup (build or reuse, boot) to the last teardown of its specs
                "seconds": round(self.spans[image][1] - self.spans[image][0], 1),
            }
            write_manifest(stage_dir, manifest)


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    return str(longrepr[2]) if isinstance(longrepr, tuple) and len(longrepr) == 3 else ""


#: options that run part of the spec tree (pytest's and its bundled plugins')
NARROWING = ("keyword", "markexpr", "deselect", "ignore", "ignore_glob", "lf", "stepwise")


def whole_run(config: pytest.Config) -> bool:
    """The run covers the whole spec tree: every argument is a spec root (a folder with a
    `common` folder), and nothing narrows the selection. A part of the specs passing is never
    recorded as the image verified."""
    if any(getattr(config.option, name, None) for name in NARROWING):
        return False
    for arg in config.args:
        path = config.invocation_params.dir / arg
        if "::" in arg or not path.is_dir() or not (path / "common").is_dir():
            return False
    return bool(config.args)


def _verified_file(stage_dir: Path, manifest: Any, session: SuitcaseSession) -> dict[str, Any]:
    """{path, sha256} of the shipped file the specs looked at (sha256 None when it no longer
    matches its manifest: then the run cannot have passed). Cheap: the digest is cached."""
    from suitcase.errors import SuitcaseError
    from suitcase.verified import check_output, digest_cache, shipped_output

    try:
        output = shipped_output(manifest)
    except SuitcaseError:
        return {"path": None, "sha256": None}
    try:
        sha = check_output(stage_dir, output, digest_cache(session.ctx.workspace.images_dir))
    except SuitcaseError:
        return {"path": output.path, "sha256": None}
    return {"path": output.path, "sha256": sha}
