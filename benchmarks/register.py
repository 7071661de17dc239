"""Registration benchmark against the embedded endpoint (moto with suitcase.aws.moto_fixes):
bytes sent through EBS direct against the disk's size and its allocated size, blocks per second
per worker count, and the wall time of a whole register.

    .venv/bin/python benchmarks/register.py [--disk PATH] [--size-gib 4] [--data-mib 800]
        [--workers 1,4,8,16]

Without --disk it makes a disk-like sparse file: --data-mib of data in 1 MiB extents spread over
--size-gib, plus 64 MiB of allocated zeros (which are read but not sent).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from common import ROOT, save

sys.path.insert(0, str(ROOT))

from suitcase.aws import ebs
from suitcase.aws.ami import AmiSettings, register_stage
from suitcase.aws.clients import AwsTarget
from suitcase.manifest import Manifest, describe_output, write_manifest

MIB = 2**20


def start_endpoint(log: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "MOTO_EC2_LOAD_DEFAULT_AMIS": "false"}
    argv = [sys.executable, "-m", "suitcase.aws.moto_fixes", "-H", "127.0.0.1", "-p", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=out, env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=2).read()
            return process, url
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("the endpoint did not start")


def reset(url: str) -> None:
    request = urllib.request.Request(f"{url}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=60).read()


def make_disk(path: Path, size_gib: int, data_mib: int) -> Path:
    size = size_gib * 2**30
    stride = max(MIB, size // max(1, data_mib) // MIB * MIB)
    with path.open("wb") as handle:
        handle.truncate(size)
        for n in range(data_mib):
            handle.seek(n * stride)
            handle.write(os.urandom(MIB))
        handle.seek(size // 2 + 17 * MIB)
        handle.write(bytes(64 * MIB))  # allocated zeros
    return path


def fake_stage(directory: Path, disk: Path) -> Manifest:
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "disk.raw"
    if not target.exists():
        target.symlink_to(disk.resolve())  # read only: never a link to the original file
    manifest = Manifest(
        stage="aws-hvm",
        os="Debian-12-x86_64",
        timestamp="20260101000000",
        key="b" * 64,
        inputs={},
        parent=None,
        outputs=[describe_output(directory, target, "raw")],
        tool_versions={},
        git_revision="benchmark",
        started="",
        finished="",
        suitcase_version="0.1.0",
    )
    write_manifest(directory, manifest)
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--disk", type=Path, help="a raw disk to register (default: made up)")
    parser.add_argument("--size-gib", type=int, default=4)
    parser.add_argument("--data-mib", type=int, default=800)
    parser.add_argument("--workers", default="1,4,8,16")
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "benchmark")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "benchmark")
    with tempfile.TemporaryDirectory(dir=ROOT / "benchmarks") as scratch_name:
        scratch = Path(scratch_name)
        disk = args.disk or make_disk(scratch / "disk.raw", args.size_gib, args.data_mib)
        process, url = start_endpoint(scratch / "moto.log")
        target = AwsTarget(kind="account", region="us-east-1", endpoint_url=url)
        results: dict[str, object] = {
            "disk": str(disk),
            "disk_bytes": disk.stat().st_size,
            "allocated_bytes": disk.stat().st_blocks * 512,
            "data_blocks": len(ebs.data_blocks(disk)),
            "load_average": os.getloadavg()[0],
            "runs": [],
        }
        try:
            for workers in [int(w) for w in args.workers.split(",")]:
                reset(url)
                upload = ebs.write_snapshot(
                    target,
                    disk,
                    token=f"bench-{workers}",
                    tags={},
                    description="benchmark",
                    workers=workers,
                    wait_interval=0.2,
                )
                run = {
                    "workers": workers,
                    "seconds": round(upload.seconds, 2),
                    "blocks_sent": upload.blocks_sent,
                    "bytes_sent": upload.bytes_sent,
                    "blocks_per_second": round(upload.blocks_sent / upload.seconds, 1),
                    "mib_per_second": round(upload.bytes_sent / MIB / upload.seconds, 1),
                }
                results["runs"].append(run)  # type: ignore[attr-defined]
                print(run, flush=True)
            reset(url)
            stage = scratch / "stage"
            manifest = fake_stage(stage, disk)
            started = time.monotonic()
            registration = register_stage(
                target, stage, manifest, AmiSettings(wait_interval=0.2), lambda _line: None
            )
            results["register_seconds"] = round(time.monotonic() - started, 2)
            results["registered"] = registration.image_id
        finally:
            process.terminate()
            process.wait(30)
    sent = max(r["bytes_sent"] for r in results["runs"])  # type: ignore[attr-defined]
    results["sent_over_allocated"] = round(sent / int(str(results["allocated_bytes"])), 4)
    print(results)
    print(f"saved {save('register', results)}")


if __name__ == "__main__":
    main()
