"""Digest benchmark: what checking an artifact's sha256 before verification costs, cold (the
file read in full) against cached (one stat, the digest found by device, inode, size, mtime and
ctime), per artifact of a built set.

    .venv/bin/python benchmarks/digest_check.py [--workspace .test-workspace] [--rounds 3]

The cold round uses a fresh cache file (the page cache may still hold the file: that is the
best case for "cold"; the first check after a build meets the same). Results are printed and
saved under benchmarks/results/ (not committed).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from common import ROOT, save

from suitcase.manifest import read_manifest
from suitcase.verified import DigestCache, shipped_output

STAGES = ("master", "vagrant", "aws-hvm", "aws-paravirt")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workspace", type=Path, default=ROOT / ".test-workspace")
    parser.add_argument("--os", default="Debian-12-x86_64")
    parser.add_argument("--timestamp", default="20260101000000")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    for stage in STAGES:
        stage_dir = args.workspace / "images" / stage / f"{args.os}-{args.timestamp}"
        manifest = read_manifest(stage_dir)
        if manifest is None:
            print(f"{stage}: not built, skipped")
            continue
        path = stage_dir / shipped_output(manifest).path
        cold, cached = [], []
        for _ in range(args.rounds):
            with tempfile.TemporaryDirectory() as tmp:
                cache = DigestCache(Path(tmp) / "cache.json")
                started = time.perf_counter()
                cache.sha256(path)
                cold.append(time.perf_counter() - started)
                started = time.perf_counter()
                cache.sha256(path)
                cached.append(time.perf_counter() - started)
        size = path.stat().st_size
        row = {
            "bytes": size,
            "cold_s": statistics.median(cold),
            "cached_s": statistics.median(cached),
            "ratio": statistics.median(cold) / statistics.median(cached),
        }
        results[stage] = row
        print(
            f"{stage:<13} {path.name:<40} {size / 2**30:6.2f} GiB  cold {row['cold_s']:7.2f} s"
            f"  cached {row['cached_s'] * 1000:6.2f} ms  ratio {row['ratio']:,.0f}x"
        )
    print(f"saved {save('digest_check', {'os': args.os, 'stages': results})}")


if __name__ == "__main__":
    main()
