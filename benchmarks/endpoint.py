"""Embedded endpoint benchmark: start time (empty, and with saved state), idle RSS, and what
keeping state costs (the first save after a large upload, a save with nothing new, stop, the
restart that reloads it), in a throwaway workspace.

    .venv/bin/python benchmarks/endpoint.py [--object-mib 512] [--snapshot-mib 64]

Results are printed and saved under benchmarks/results/ (not committed).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from boto3.s3.transfer import TransferConfig
from common import save

from suitcase.aws.clients import AwsTarget
from suitcase.aws.endpoint import EmbeddedEndpoint

MiB = 1024 * 1024


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def timed_start(endpoint: EmbeddedEndpoint) -> tuple[float, AwsTarget, int]:
    started = time.monotonic()
    running, _ = endpoint.ensure(lambda line: None)
    seconds = time.monotonic() - started
    return seconds, AwsTarget("embedded", "us-east-1", running.url), running.pid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--object-mib", type=int, default=512)
    parser.add_argument("--snapshot-mib", type=int, default=64)
    args = parser.parse_args()
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="suitcase-endpoint-bench-", dir="/var/tmp") as tmp:
        endpoint = EmbeddedEndpoint(Path(tmp))
        try:
            results["start_empty_s"], target, pid = timed_start(endpoint)
            time.sleep(1)
            results["idle_rss_mib"] = rss_mib(pid)
            body = Path(tmp) / "body.raw"
            with body.open("wb") as f:
                for _ in range(args.object_mib // 16):
                    f.write(os.urandom(16 * MiB))
            s3 = target.client("s3")
            s3.create_bucket(Bucket="bench")
            config = TransferConfig(multipart_chunksize=64 * MiB, max_concurrency=4)
            t = time.monotonic()
            s3.upload_file(str(body), "bench", "body.raw", Config=config)
            results["upload_s"] = time.monotonic() - t
            ebs = target.client("ebs")
            snap = ebs.start_snapshot(VolumeSize=1)["SnapshotId"]
            block = os.urandom(524288)
            for index in range(args.snapshot_mib * 2):
                ebs.put_snapshot_block(
                    SnapshotId=snap,
                    BlockIndex=index,
                    BlockData=block,
                    DataLength=len(block),
                    Checksum="unused",
                    ChecksumAlgorithm="SHA256",
                )
            ebs.complete_snapshot(SnapshotId=snap, ChangedBlocksCount=args.snapshot_mib * 2)
            results["rss_after_writes_mib"] = rss_mib(pid)
            t = time.monotonic()
            saved = endpoint.save(target.endpoint_url or "")
            results["first_save_s"] = time.monotonic() - t
            results["state_pickle_mib"] = saved["bytes"] / MiB
            t = time.monotonic()
            endpoint.save(target.endpoint_url or "")
            results["save_nothing_new_s"] = time.monotonic() - t
            t = time.monotonic()
            endpoint.stop()
            results["stop_s"] = time.monotonic() - t
            results["start_with_state_s"], target, pid = timed_start(endpoint)
            results["rss_after_reload_mib"] = rss_mib(pid)
            got = target.client("s3").head_object(Bucket="bench", Key="body.raw")
            assert got["ContentLength"] == args.object_mib * MiB
        finally:
            endpoint.stop()
    for name, value in results.items():
        print(f"{name:>24}: {value:8.2f}")
    print(f"saved to {save('endpoint', {'args': vars(args), 'results': results})}")


if __name__ == "__main__":
    main()
