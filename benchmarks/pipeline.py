"""Pipeline benchmark: `suitcase all --os OS` timed per stage (build, verify, upload, register,
verify-ami), from the pipeline's own record (reports/pipeline-<set>.json).

    .venv/bin/python benchmarks/pipeline.py [--os Debian-12-x86_64] [--quick]
        [--workspace DIR] [--baseline-seconds S]

Without --quick it runs from an empty workspace (a clean clone with the set-up done: everything
is built); --quick runs on a hard-linked copy of the built test set (.test-workspace), so the
builds are skipped and verify, upload and register are measured. Run it under the shared lock.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import RESULTS, ROOT, hardlink_copy, save

sys.path.insert(0, str(ROOT))

from suitcase.safety import remove_tree

BUILT = ROOT / ".test-workspace"
BUILT_TIMESTAMP = "20260101000000"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--os", default="Debian-12-x86_64")
    parser.add_argument("--quick", action="store_true", help="on a copy of the built test set")
    parser.add_argument("--workspace", type=Path, help="keep the workspace here (default: temp)")
    parser.add_argument("--baseline-seconds", type=float, help="the same run before a change")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    parent = Path(tempfile.mkdtemp(prefix="ws-pipeline-", dir=RESULTS))
    try:
        ws = args.workspace.resolve() if args.workspace else parent / "ws"
        argv = ["all", "--os", args.os]
        if args.quick:
            if not (BUILT / "images" / "master").is_dir():
                raise SystemExit(f"--quick needs the built test set in {BUILT}")
            hardlink_copy(BUILT, ws)
            argv += ["--timestamp", BUILT_TIMESTAMP]
        ws.mkdir(parents=True, exist_ok=True)
        load = os.getloadavg()[0]
        started = time.monotonic()
        log, table = RESULTS / "pipeline-last.log", RESULTS / "pipeline-last.out"
        try:
            with log.open("w") as err, table.open("w") as out:  # watchable while it runs
                run = subprocess.run(
                    [sys.executable, "-m", "suitcase", "--workspace", str(ws), *argv],
                    stdout=out,
                    stderr=err,
                    check=False,
                )
            seconds = time.monotonic() - started
        finally:  # the endpoint `all` started; a failed save must not lose the measurement
            subprocess.run(
                [sys.executable, "-m", "suitcase", "--workspace", str(ws), "endpoint", "stop"],
                capture_output=True,
                check=False,
            )
        summary = table.read_text()
        if run.returncode != 0:
            raise SystemExit(f"suitcase all failed ({run.returncode}):\n{summary[-3000:]}")
        records = sorted((ws / "reports").glob("pipeline-*.json"), key=lambda p: p.stat().st_mtime)
        record = json.loads(records[-1].read_text())
        what = "built set copied (builds skipped)" if args.quick else "empty workspace"
        results = {
            "on": f"{args.os}, {what}, {len(os.sched_getaffinity(0))} cores, TCG",
            "quick": args.quick,
            "seconds": round(seconds, 1),
            "summary": summary,
            "wall": record["wall"],
            "steps": record["steps"],
            "load_average_before": load,
            "load_average_after": os.getloadavg()[0],
            "elapsed": round(time.monotonic() - started, 1),
        }
        if args.baseline_seconds:
            results["baseline_total"] = args.baseline_seconds
        wall = record["wall"]
        print(", ".join(f"{k} {v:.0f} s" for k, v in wall.items()))
        print(f"saved {save('pipeline', results)}")
    finally:
        remove_tree(parent)


if __name__ == "__main__":
    main()
