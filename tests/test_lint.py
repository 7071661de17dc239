"""The code stays as clean as the day it was written: shellcheck, ruff and mypy --strict."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from suitcase.config import PROJECT_ROOT

BIN = Path(sys.executable).parent


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False, cwd=PROJECT_ROOT)


def test_shell_scripts_pass_shellcheck() -> None:
    scripts = sorted(str(p) for p in (PROJECT_ROOT / "scripts").rglob("*.sh"))
    scripts += [str(PROJECT_ROOT / "bin" / n) for n in ("setup-host", "test")]
    scripts.append(str(PROJECT_ROOT / ".ci" / "run"))
    scripts.append(str(PROJECT_ROOT / "benchmarks" / "run-all"))
    assert len(scripts) > 15
    result = _run("shellcheck", "-x", *scripts)
    assert result.returncode == 0, result.stdout[-3000:]


def test_ruff() -> None:
    paths = ("suitcase", "pytest_suitcase", "specs", "tests", "benchmarks")
    result = _run(str(BIN / "ruff"), "check", *paths)
    assert result.returncode == 0, result.stdout[-3000:]


def test_mypy_strict() -> None:
    result = _run(str(BIN / "mypy"))
    assert result.returncode == 0, result.stdout[-3000:]
