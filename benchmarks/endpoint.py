"""The embedded endpoint's durable store against moto's memory, side by side in one run.

Both servers get the same work, through Suitcase's own code: a disk written into an EBS
snapshot (`suitcase.aws.ebs.write_snapshot`, as `register` does) and a file uploaded to S3
(`suitcase.aws.s3.Bucket.put`, as `upload` does). For each: the wall time, and the server's peak
resident memory (VmHWM) and its memory afterwards, holding all of it.

- `store`: the workspace's endpoint (`suitcase.aws.endpoint_server`): every change fsynced
  and committed before its answer, bodies and blocks in files;
- `memory`: moto's server with Suitcase's fixes (`suitcase.aws.moto_fixes`), which keeps
  everything in memory and on nothing.

    .venv/bin/python benchmarks/endpoint.py [--upload-gib 4] [--snapshot-mib 1024]

Also the store's start: empty, and again holding all of the above (a restart reads its state).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from common import ROOT, save
from register import start_endpoint

sys.path.insert(0, str(ROOT))

from suitcase.aws import ebs
from suitcase.aws.clients import AwsTarget
from suitcase.aws.endpoint import EmbeddedEndpoint
from suitcase.aws.s3 import Bucket, TransferSettings, file_digests

MIB = 2**20


def memory(pid: int) -> dict[str, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    found = {k: re.search(rf"{k}:\s+(\d+)", status) for k in ("VmRSS", "VmHWM")}
    return {k: int(m.group(1)) // 1024 for k, m in found.items() if m}


@contextmanager
def store_endpoint(folder: Path) -> Iterator[tuple[AwsTarget, int]]:
    endpoint = EmbeddedEndpoint(folder)
    running, _ = endpoint.ensure(lambda line: None, idle=0)
    target = AwsTarget(
        kind="embedded",
        region="us-east-1",
        endpoint_url=running.url,
        credentials=endpoint.credentials(),
    )
    try:
        yield target, running.pid
    finally:
        endpoint.stop()


@contextmanager
def memory_endpoint(folder: Path) -> Iterator[tuple[AwsTarget, int]]:
    # the same allocator settings as the store's process: only the store differs
    os.environ.update(MALLOC_MMAP_THRESHOLD_="131072", MALLOC_ARENA_MAX="2")
    folder.mkdir(parents=True, exist_ok=True)
    process, url = start_endpoint(folder / "moto.log")  # register.py's: moto with the fixes
    try:
        yield AwsTarget(kind="embedded", region="us-east-1", endpoint_url=url), process.pid
    finally:
        process.kill()
        process.wait()


def make_file(path: Path, size: int, seed: int) -> None:
    """Data that does not compress or repeat (each MiB differs), made quickly."""
    block = os.urandom(MIB)
    with path.open("wb") as out:
        for i in range(size // MIB):
            out.write(i.to_bytes(8, "big") + block[8:])


def peak_while(pid: int, work: Callable[[], Any]) -> tuple[float, int]:
    """(seconds, highest VmRSS seen, sampled every 50 ms) of `work`."""
    peak, done = 0, threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, memory(pid).get("VmRSS", 0))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    started = time.monotonic()
    try:
        work()
    finally:
        done.set()
        sampler.join()
    return time.monotonic() - started, peak


def run(kind: str, folder: Path, disk: Path, upload: Path) -> dict[str, Any]:
    start = store_endpoint if kind == "store" else memory_endpoint
    started = time.monotonic()
    with start(folder) as (target, pid):
        start_s = time.monotonic() - started
        base = memory(pid)["VmRSS"]

        def snapshot() -> None:
            ebs.write_snapshot(target, disk, token=f"bench-{kind}", tags={}, description="bench")

        snap_s, snap_peak = peak_while(pid, snapshot)
        bucket = Bucket(target, "suitcase-bench", TransferSettings())
        bucket.ensure(create=True, say=lambda line: None)
        crc, sha = file_digests(upload)

        def put() -> None:
            bucket.put(upload, "upload.raw", sha, lambda line: None, lambda n: None, crc)

        up_s, up_peak = peak_while(pid, put)
        after = memory(pid)
    restart: dict[str, Any] = {}
    if kind == "store":  # the same folder again: the state read back, nothing held in memory
        started = time.monotonic()
        with start(folder) as (target, pid):
            restart["restart_s"] = round(time.monotonic() - started, 2)
            target.client("s3").head_object(Bucket="suitcase-bench", Key="upload.raw")
            restart["restarted_mib"] = memory(pid)["VmRSS"]
    return {
        "start_s": round(start_s, 2),
        **restart,
        "base_mib": base,
        "snapshot_s": round(snap_s, 2),
        "snapshot_peak_mib": snap_peak,
        "upload_s": round(up_s, 2),
        "upload_peak_mib": up_peak,
        "holding_mib": after["VmRSS"],
        "peak_mib": after["VmHWM"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upload-gib", type=float, default=4, help="the store alone")
    parser.add_argument(
        "--compare-gib",
        type=float,
        default=1,
        help="both, side by side (moto's memory holds "
        "every upload several times over: 4.8 GB for 1 GiB)",
    )
    parser.add_argument("--snapshot-mib", type=int, default=1024)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=ROOT / "benchmarks") as scratch:
        work = Path(scratch)
        disk, upload = work / "disk.raw", work / "upload.raw"
        make_file(disk, args.snapshot_mib * MIB, 1)
        make_file(upload, int(args.compare_gib * 1024) * MIB, 2)
        results = {kind: run(kind, work / kind, disk, upload) for kind in ("memory", "store")}
        upload.unlink()
        make_file(upload, int(args.upload_gib * 1024) * MIB, 3)
        alone = run("store", work / "alone", disk, upload)
    store, mem = results["store"], results["memory"]
    summary = {
        "upload_gib": args.upload_gib,
        "compare_gib": args.compare_gib,
        "snapshot_mib": args.snapshot_mib,
        "results": results,
        "store_alone": alone,
        "store_vs_memory": {
            "snapshot_time": round(store["snapshot_s"] / mem["snapshot_s"], 2),
            "upload_time": round(store["upload_s"] / mem["upload_s"], 2),
            "holding_memory": round(store["holding_mib"] / mem["holding_mib"], 2),
        },
    }
    save("endpoint", summary)
    for kind, row in results.items():
        print(f"{kind:7} {row}")
    print(f"store, {args.upload_gib} GiB upload: {alone}")
    print(f"store / memory: {summary['store_vs_memory']}")


if __name__ == "__main__":
    main()
