"""Shared bits of the benchmarks: run the real CLI, time it, keep results out of git."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def suitcase(workspace: Path, *args: str, env: dict[str, str] | None = None) -> tuple[float, str]:
    """Run `suitcase` for real; return (seconds, stderr). Raises on failure."""
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "suitcase", "--workspace", str(workspace), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )
    seconds = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"suitcase {' '.join(args)} failed:\n{result.stderr[-2000:]}")
    return seconds, result.stderr


def manifest(workspace: Path, image: str, os_name: str, timestamp: str) -> dict:  # type: ignore[type-arg]
    path = workspace / "images" / image / f"{os_name}-{timestamp}" / "manifest.json"
    return json.loads(path.read_text())


def save(name: str, data: dict) -> Path:  # type: ignore[type-arg]
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}-{time.strftime('%Y%m%d%H%M%S')}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def hardlink_copy(source: Path, dest: Path) -> Path:
    dest.mkdir(parents=True)
    for name in ("images", "keys", "packer_cache"):
        if (source / name).exists():
            subprocess.run(["cp", "-al", str(source / name), str(dest / name)], check=True)
    subprocess.run(["rm", "-rf", str(dest / "images" / ".locks")], check=True)
    return dest
