"""Verification VMs sized to the cores they share: N VMs booted at once (to a settled first
boot, SSH answering) with `-smp 1` against `-smp 2`, side by side, and one VM alone.

    .venv/bin/python benchmarks/vcpus.py [--workspace .test-workspace] [--vms 3] [--rounds 1]

It boots the build set's master disk (read-only, behind throw-away overlays) with the build key,
as the verification fixtures do; nothing is built. Run it under the shared lock.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import statistics
import sys
import time
from pathlib import Path

from common import ROOT, save

sys.path.insert(0, str(ROOT))

from suitcase.build import build_key
from suitcase.context import Context
from suitcase.machine import booted
from suitcase.manifest import read_manifest


def boot_all(disk: Path, key: object, vms: int, cpus: int) -> float:
    def one(_: int) -> float:
        started = time.monotonic()
        with booted(disk, "build-key", key, cpus=cpus, timeout=900):  # type: ignore[arg-type]
            return time.monotonic() - started

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(vms) as pool:
        list(pool.map(one, range(vms)))
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workspace", type=Path, default=ROOT / ".test-workspace")
    parser.add_argument("--os", default="Debian-12-x86_64")
    parser.add_argument("--timestamp", default="20260101000000")
    parser.add_argument("--vms", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    ctx = Context.create(args.workspace.resolve())
    plan = ctx.plan(args.os, "master", args.timestamp)
    stage = plan.stage("master")
    manifest = read_manifest(stage.directory)
    if manifest is None or manifest.output("disk") is None:
        raise SystemExit(f"no built master in {stage.directory}")
    disk = stage.directory / manifest.output("disk").path  # type: ignore[union-attr]
    key = build_key(ctx, plan)
    runs: dict[int, list[float]] = {1: [], 2: []}
    load = os.getloadavg()[0]
    for round_ in range(args.rounds):
        for cpus in (2, 1) if round_ % 2 == 0 else (1, 2):
            seconds = boot_all(disk, key, args.vms, cpus)
            runs[cpus].append(seconds)
            print(f"{args.vms} VMs at once, -smp {cpus}: {seconds:.0f} s", flush=True)
    alone = boot_all(disk, key, 1, 2)
    print(f"1 VM alone, -smp 2: {alone:.0f} s")
    two, one = statistics.median(runs[2]), statistics.median(runs[1])
    results = {
        "vms": args.vms,
        "cores": len(os.sched_getaffinity(0)),
        "seconds_smp2": runs[2],
        "seconds_smp1": runs[1],
        "seconds_one_vm_alone": alone,
        "speedup_smp1_over_smp2": round(two / one, 2),
        "load_average_before": load,
        "load_average_after": os.getloadavg()[0],
    }
    print(f"{args.vms} VMs: -smp 1 x{two / one:.2f} faster than -smp 2")
    print(f"saved {save('vcpus', results)}")


if __name__ == "__main__":
    main()
