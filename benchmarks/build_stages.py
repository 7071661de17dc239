"""Build benchmark: wall time per stage, bytes per derived stage against the master, a no-op
rebuild, deriving by qcow2 overlay against deriving by full copy, and the three derived stages
built one after another (`build_jobs: 1`) against at once (3), side by side in one run.

    .venv/bin/python benchmarks/build_stages.py [--workspace .test-workspace] [--rounds 1]

It builds the set first if it is missing (that first build is not a measurement). Results are
printed and saved under benchmarks/results/ (not committed).
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import tempfile
from pathlib import Path

from common import ROOT, hardlink_copy, manifest, save, suitcase

STAGES = ("master", "vagrant", "aws-hvm", "aws-paravirt")


def _seconds(data: dict) -> float:  # type: ignore[type-arg]
    return (
        dt.datetime.fromisoformat(data["finished"]) - dt.datetime.fromisoformat(data["started"])
    ).total_seconds()


DERIVED = ("vagrant", "aws-hvm", "aws-paravirt")


def _jobs(ws: Path, os_name: str, ts: str, rounds: int) -> dict:  # type: ignore[type-arg]
    """The derived stages rebuilt on the built master with build_jobs 1, then 3 (the order
    alternating by round), each on a hard-linked copy of the set: wall time of `build all`."""
    pairs = []
    with tempfile.TemporaryDirectory(dir=ws.parent) as tmp:
        for round_ in range(rounds):
            pair = {}
            for jobs in (1, 3) if round_ % 2 == 0 else (3, 1):
                copy = hardlink_copy(ws, Path(tmp) / f"jobs{jobs}-{round_}")
                for image in DERIVED:
                    suitcase(copy, "clean", image, "--os", os_name, "--timestamp", ts)
                seconds, err = suitcase(
                    copy,
                    "build",
                    "all",
                    "--os",
                    os_name,
                    "--timestamp",
                    ts,
                    env={"SUITCASE_BUILD_JOBS": str(jobs)},
                )
                assert "[master] building" not in err, "the master was rebuilt"
                pair[str(jobs)] = {"seconds": seconds}
            pairs.append(pair)
    return {
        "pairs": pairs,
        "speedup_at_once": round(
            statistics.median(p["1"]["seconds"] / p["3"]["seconds"] for p in pairs), 3
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workspace", type=Path, default=ROOT / ".test-workspace")
    parser.add_argument("--os", default="Debian-12-x86_64")
    parser.add_argument("--timestamp", default="20260101000000")
    parser.add_argument("--rounds", type=int, default=1, help="overlay/copy pairs to run")
    parser.add_argument("--jobs-rounds", type=int, default=1, help="one-by-one/at-once pairs")
    args = parser.parse_args()
    ws, os_name, ts = args.workspace.resolve(), args.os, args.timestamp
    ws.mkdir(parents=True, exist_ok=True)
    suitcase(ws, "build", "all", "--os", os_name, "--timestamp", ts)

    results: dict = {"os": os_name, "stages": {}}  # type: ignore[type-arg]
    master = manifest(ws, "master", os_name, ts)
    master_bytes = master["extra"]["packer_output_bytes"]
    for image in STAGES:
        data = manifest(ws, image, os_name, ts)
        written = data["extra"].get("packer_output_bytes")
        results["stages"][image] = {
            "seconds": _seconds(data),
            "packer_output_bytes": written,
            "vs_master": round(written / master_bytes, 4) if written else None,
        }

    noop = []
    for _ in range(3):
        seconds, err = suitcase(ws, "build", "all", "--os", os_name, "--timestamp", ts)
        noop.append(seconds)
        assert "building" not in err, "a no-op rebuild ran Packer"
    results["noop_rebuild"] = {"median_seconds": statistics.median(noop), "packer_runs": 0}

    pairs = []
    with tempfile.TemporaryDirectory(dir=ws.parent) as tmp:
        for round_ in range(args.rounds):
            pair = {}
            order = ("overlay", "copy") if round_ % 2 == 0 else ("copy", "overlay")
            for mode in order:
                copy = hardlink_copy(ws, Path(tmp) / f"{mode}-{round_}")
                suitcase(copy, "clean", "aws-hvm", "--os", os_name, "--timestamp", ts)
                seconds, _ = suitcase(
                    copy,
                    "build",
                    "aws-hvm",
                    "--os",
                    os_name,
                    "--timestamp",
                    ts,
                    env={"SUITCASE_DERIVE": mode},
                )
                data = manifest(copy, "aws-hvm", os_name, ts)
                pair[mode] = {
                    "seconds": seconds,
                    "packer_output_bytes": data["extra"]["packer_output_bytes"],
                }
            pairs.append(pair)
    results["jobs"] = _jobs(ws, os_name, ts, args.jobs_rounds)
    results["derive"] = {
        "pairs": pairs,
        "time_ratio_copy_over_overlay": round(
            statistics.median(p["copy"]["seconds"] / p["overlay"]["seconds"] for p in pairs), 3
        ),
        "bytes_ratio_copy_over_overlay": round(
            statistics.median(
                p["copy"]["packer_output_bytes"] / p["overlay"]["packer_output_bytes"]
                for p in pairs
            ),
            1,
        ),
    }

    print(f"{'stage':<14}{'seconds':>9}{'packer bytes':>16}{'vs master':>11}")
    for image, row in results["stages"].items():
        print(
            f"{image:<14}{row['seconds']:>9.0f}{row['packer_output_bytes'] or 0:>16,}"
            f"{row['vs_master'] or 0:>11.3f}"
        )
    print(f"no-op rebuild: {results['noop_rebuild']['median_seconds']:.2f} s median, 0 Packer runs")
    d = results["derive"]
    print(
        f"derive aws-hvm by copy vs overlay: time x{d['time_ratio_copy_over_overlay']}, "
        f"bytes x{d['bytes_ratio_copy_over_overlay']}"
    )
    j = results["jobs"]
    print(
        f"derived stages one by one {j['pairs'][0]['1']['seconds']:.0f} s, at once "
        f"{j['pairs'][0]['3']['seconds']:.0f} s: x{j['speedup_at_once']} faster at once"
    )
    print(f"saved {save('build_stages', results)}")


if __name__ == "__main__":
    main()
