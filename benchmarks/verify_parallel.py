"""Verification benchmark: `pytest specs --image=all -n 3` against `-n 0` on already-built
images, side by side in one run, plus each image's boot-to-verified time.

    .venv/bin/python benchmarks/verify_parallel.py [--workspace .test-workspace] [--rounds 1]
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, manifest, save, suitcase

IMAGES = ("master", "vagrant", "aws-hvm", "aws-paravirt")


def run_specs(
    ws: Path,
    os_name: str,
    ts: str,
    workers: int,
    extra: list[str] | None = None,
    code: Path | None = None,
) -> tuple[float, dict[str, float]]:
    argv = [
        sys.executable,
        "-m",
        "pytest",
        str(ROOT / "specs"),
        "-q",
        "-p",
        "no:cacheprovider",
        "--os",
        os_name,
        "--image",
        "all",
        "--timestamp",
        ts,
        "--suitcase-workspace",
        str(ws),
        "-n",
        str(workers),
        *(extra or []),
    ]
    # `code`: another checkout's suitcase and plugin (the code before a change), side by side
    env = {**os.environ, "PYTHONPATH": str(code)} if code else None
    started = time.monotonic()
    result = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=ROOT, env=env)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"specs failed with -n {workers}:\n{result.stdout[-3000:]}")
    per_image = {
        i: manifest(ws, i, os_name, ts)["extra"]["verification"]["seconds"] for i in IMAGES
    }
    return seconds, per_image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workspace", type=Path, default=ROOT / ".test-workspace")
    parser.add_argument("--os", default="Debian-12-x86_64")
    parser.add_argument("--timestamp", default="20260101000000")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--pytest-args", default="", help="more pytest arguments, e.g. -m ...")
    parser.add_argument("--baseline-code", type=Path, help="also -n 3 with this checkout's code")
    args = parser.parse_args()
    extra = shlex.split(args.pytest_args)
    ws = args.workspace.resolve()
    suitcase(ws, "build", "all", "--os", args.os, "--timestamp", args.timestamp)  # not measured

    runs: dict[int, list[float]] = {0: [], 3: []}
    per_image: dict[int, dict[str, float]] = {}
    for round_ in range(args.rounds):
        for workers in (0, 3) if round_ % 2 == 0 else (3, 0):
            seconds, per_image[workers] = run_specs(ws, args.os, args.timestamp, workers, extra)
            runs[workers].append(seconds)
    serial, parallel = statistics.median(runs[0]), statistics.median(runs[3])
    results = {
        "seconds_n0": runs[0],
        "seconds_n3": runs[3],
        "speedup_n3_over_n0": round(serial / parallel, 2),
        "per_image_seconds": per_image,
        "pytest_args": extra,
        "load_average": os.getloadavg()[0],
    }
    if args.baseline_code:
        old, _ = run_specs(ws, args.os, args.timestamp, 3, extra, args.baseline_code.resolve())
        results["seconds_n3_baseline_code"] = [old]
        results["speedup_n3_over_baseline_n3"] = round(old / parallel, 2)
        print(f"-n 3 with {args.baseline_code}: {old:.0f} s (x{old / parallel:.2f})")
    print(f"-n 0: {serial:.0f} s   -n 3: {parallel:.0f} s   speed-up x{serial / parallel:.2f}")
    for image in IMAGES:
        print(
            f"  {image:<14} boot-to-verified  -n 0: {per_image[0][image]:>6.0f} s"
            f"   -n 3: {per_image[3][image]:>6.0f} s"
        )
    print(f"saved {save('verify_parallel', results)}")


if __name__ == "__main__":
    main()
