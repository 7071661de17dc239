"""Rerun every benchmark, then rewrite README's benchmark table from the newest results.

    benchmarks/run-all [--quick] [--only build_stages,verify_parallel,...] [--table-only]

Run it on an otherwise idle machine: the figures are ratios, but load still skews them.
--quick takes small sizes (a 256 MiB upload, a 1 GiB disk to register, one round each, the
pipeline on a copy of the built test set); the table marks each row --quick and says which rows
were not rerun this time. A benchmark that fails is reported and the others still run; the exit
status is then 1, and the table keeps that benchmark's previous result, marked not rerun.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from common import RESULTS, ROOT
from table import NAMES, newest_path

BENCH = ROOT / "benchmarks"

FULL: dict[str, list[str]] = {
    "build_stages": [],
    "verify_parallel": [],
    "vcpus": [],
    "upload": [],
    "register": [],
    "endpoint": [],
    "pipeline": [],
}
QUICK: dict[str, list[str]] = {
    "build_stages": [],  # the built test set is reused: a no-op rebuild and one aws-hvm pair
    "verify_parallel": [],
    "vcpus": [],
    "upload": ["--size-gib", "0.25", "--rounds", "1"],
    "register": ["--size-gib", "1", "--data-mib", "100", "--workers", "8"],
    "endpoint": ["--upload-gib", "0.25", "--snapshot-mib", "64"],
    "pipeline": ["--quick"],
}


def mark_quick(name: str) -> None:
    """Say in the newest result of `name` that it was taken with --quick's small sizes."""
    found = newest_path(RESULTS, name)
    if found is not None:
        data = json.loads(found.read_text())
        data["quick"] = True
        found.write_text(json.dumps(data, indent=2) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one round")
    parser.add_argument("--only", default=",".join(NAMES), help="comma list of benchmarks")
    parser.add_argument("--table-only", action="store_true", help="rewrite the table only")
    args = parser.parse_args()
    chosen = [n for n in args.only.split(",") if n]
    unknown = [n for n in chosen if n not in NAMES]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(NAMES)}")
    rerun, failed = [], []
    for name in [] if args.table_only else chosen:
        extra = (QUICK if args.quick else FULL)[name]
        print(f"== {name} {' '.join(extra)}", flush=True)
        started = time.monotonic()
        result = subprocess.run([sys.executable, str(BENCH / f"{name}.py"), *extra], check=False)
        print(f"== {name}: exit {result.returncode} in {time.monotonic() - started:.0f} s")
        (rerun if result.returncode == 0 else failed).append(name)
        if result.returncode == 0 and args.quick:
            mark_quick(name)
    table = subprocess.run(
        [sys.executable, str(BENCH / "table.py"), "--rerun", ",".join(rerun)], check=False
    )
    if failed:
        print(f"failed: {', '.join(failed)} (their rows keep the previous result)")
    return 1 if failed or table.returncode else 0


if __name__ == "__main__":
    sys.exit(main())
