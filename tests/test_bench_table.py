"""benchmarks/table.py (what run-all ends with) on recorded result files: the README table between
its markers is rewritten from the newest result of each benchmark; nothing else is touched."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from suitcase.config import PROJECT_ROOT

RECORDED = PROJECT_ROOT / "tests" / "data" / "bench"
SCRIPT = PROJECT_ROOT / "benchmarks" / "table.py"
BEFORE = "# Title\n\n## Benchmarks\n\nprose before\n\n<!-- bench:start -->\nold table\n"
AFTER = "<!-- bench:end -->\n\nprose after\n"


def _table(tmp_path: Path, *extra: str, readme: str = BEFORE + AFTER) -> tuple[int, str, str]:
    tmp_path.mkdir(exist_ok=True)
    results = tmp_path / "results"
    shutil.copytree(RECORDED, results)
    path = tmp_path / "README.md"
    path.write_text(readme)
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--results", str(results), "--readme", str(path), *extra],
        capture_output=True,
        text=True,
        check=False,
    )
    return run.returncode, path.read_text(), run.stderr


def test_the_table_is_rewritten_between_the_markers_from_the_newest_results(
    tmp_path: Path,
) -> None:
    code, text, err = _table(tmp_path, "--rerun", "upload,pipeline")
    assert code == 0, err
    assert text.startswith(BEFORE.replace("old table\n", "| measured |"))
    assert text.endswith(AFTER)
    assert "old table" not in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    by = {row.split(" | ")[0].lstrip("| "): row for row in rows}
    # the newest upload result (x1.01), never the older one (x0.91); rerun this time
    upload = by["`suitcase upload` vs `aws s3 cp`"]
    assert "x1.01 (aws time / suitcase time)" in upload and "0.91" not in upload
    assert "suitcase 108.9 s, aws 109.6 s" in upload
    assert upload.endswith("| 2026-11-27 12:00 |")
    assert "0.20 s, 0 Packer runs" in by["no-op rebuild (`build all`, every stage done)"]
    assert (
        "x510 faster than building the master"
        in by["no-op rebuild (`build all`, every stage done)"]
    )
    assert "time x0.971, bytes x132.0" in by["derive aws-hvm: full copy vs qcow2 overlay"]
    assert "x1.21 faster" in by["verification -n 3 vs -n 0"]
    vcpus = by["3 verification VMs at once: `-smp 1` vs `-smp 2`"]
    assert "-smp 1 100 s, -smp 2 150 s (one VM alone 40 s) | x1.5 faster" in vcpus
    assert "0.195 of the disk, 0.926 of its allocation" in by["EBS direct: bytes sent vs disk"]
    assert "21.5 s" in by["register (snapshot + RegisterImage)"]
    assert by["register (snapshot + RegisterImage)"].endswith(
        "| 2026-11-27 12:00, not rerun, --quick |"
    )
    pipeline = by["whole pipeline per stage (`suitcase all`)"]
    assert "build 330 s, verify 120 s, upload 60 s, register 15 s, verify-ami 75 s" in pipeline
    assert "build 55%" in pipeline
    assert "x1.50 faster" in by["whole pipeline vs before this change"]
    assert by["verification -n 3 vs -n 0"].endswith("not rerun |")
    assert "| endpoint | - | no result file here (earlier figures below) | - | not rerun |" in text


def test_rewriting_twice_gives_the_same_readme(tmp_path: Path) -> None:
    code, first, _ = _table(tmp_path / "one")
    assert code == 0
    code, second, _ = _table(tmp_path / "two", readme=first)
    assert code == 0 and second == first


@pytest.mark.parametrize("readme", ["no markers\n", AFTER + BEFORE])
def test_a_readme_without_the_markers_in_order_is_left_alone(tmp_path: Path, readme: str) -> None:
    code, text, err = _table(tmp_path, readme=readme)
    assert code != 0 and "markers" in err
    assert text == readme


def test_run_all_refuses_an_unknown_benchmark() -> None:
    run = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "benchmarks" / "run_all.py"), "--only", "bogus"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 2 and "unknown benchmark bogus" in run.stderr
