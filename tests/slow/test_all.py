"""`suitcase all` of the shared built set: no build runs, the table shows one AMI per AWS image
type, and a rerun with --timestamp latest only checks (kept cheap: the two AWS image types,
verified offline, against the embedded endpoint).

The first run is the set's one fill (tests/slow/conftest.py `fill`: its output is kept); the
rerun works on a copy of the filled set, endpoint state included, so nothing is shipped twice."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.slow.conftest import OFFLINE_SITE, OS_NAME, BuiltSet, suitcase

pytestmark = pytest.mark.slow

AWS = ("aws-hvm", "aws-paravirt")


def _row(stdout: str, image: str) -> list[str]:
    line = next(line for line in stdout.splitlines() if re.match(rf"│ {re.escape(image)} +│", line))
    return [cell.strip() for cell in line.strip("│").split("│")]


def test_all_ships_the_built_set_and_a_rerun_only_checks(
    built_set: BuiltSet, tmp_path: Path
) -> None:
    ws = built_set.copy(tmp_path / "ws", filled=True)
    args = ("all", ",".join(AWS), "--os", OS_NAME, "--timestamp", built_set.timestamp)
    try:
        first_stdout, first_stderr, pipeline = (
            built_set.fill
        )  # the fill ran exactly `args --mode offline`
        assert "building:" not in first_stderr  # every stage was built already: none rebuilt
        assert "up to date" in first_stderr
        amis = {}
        for image in AWS:
            cells = _row(first_stdout, image)
            assert re.fullmatch(r"ami-[0-9a-f]+", cells[6]), cells  # exactly one AMI
            assert re.fullmatch(r"[0-9]+/0/[0-9]+", cells[4]) and not cells[4].startswith("0/")
            assert cells[5].startswith("s3://") and cells[7].startswith("reports/junit-")
            amis[image] = cells[6]
        ami_row = _row(first_stdout, "aws-hvm (AMI)")
        assert ami_row[6] == amis["aws-hvm"] and ami_row[7].endswith("-ami.xml")
        assert "all of it holds" in first_stdout
        record = json.loads(pipeline)
        assert set(record["steps"]) == {"build", "verify", "upload", "register", "verify-ami"}

        # the site by default registers only what a booted run verified: refused before
        # anything, in one line (the fill's site accepts offline, as OFFLINE_SITE says)
        strict = suitcase(*args[:-1], "latest", "--mode", "offline", workspace=ws, check=False)
        assert strict.returncode == 2 and "register_requires is boot" in strict.stderr
        assert "verifying" not in strict.stderr and "build set" not in strict.stderr
        again = suitcase(*args[:-1], "latest", "--mode", "offline", workspace=ws, env=OFFLINE_SITE)
        assert "verifying" not in again.stderr  # nothing verified, uploaded or registered again
        for image in AWS:
            assert _row(again.stdout, image)[6] == amis[image]
        skipped = again.stdout.split("skipped (already done): ")[1]
        for step in (
            "build aws-hvm",
            "verify aws-hvm",
            "upload aws-paravirt",
            "register aws-hvm",
            "verify-ami aws-hvm",
        ):
            assert step in skipped
    finally:
        suitcase("endpoint", "stop", workspace=ws, check=False)
