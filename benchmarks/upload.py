"""Upload benchmark: `suitcase upload` of a 4 GiB raw disk-like file against `aws s3 cp` of the
same file to the same endpoint (moto's server on loopback), side by side, alternating order.

    .venv/bin/python benchmarks/upload.py [--size-gib 4] [--rounds 2]
    .venv/bin/python benchmarks/upload.py --sweep --size-gib 1   # transfer client, part size,
                                                                 # concurrency (pins site.yaml s3:)

The disk is disk-like: 1 MiB of random data in every 4 MiB, holes between (both tools read and
send every byte). Suitcase's time includes what it does beyond `aws s3 cp`: a CRC64NVME+sha256
pass over the file first and the HeadObject check after. Results are printed and saved under
benchmarks/results/ (not committed).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from common import ROOT, save

sys.path.insert(0, str(ROOT))

from suitcase.aws.endpoint import EmbeddedEndpoint
from suitcase.context import Context
from suitcase.manifest import Manifest, describe_output, write_manifest

OS, TS, BUCKET = "Debian-12-x86_64", "20260101000000", "suitcase-bench"
MiB = 1024 * 1024
BIN = ROOT / ".venv" / "bin"
KEY: list[str] = []  # the running endpoint's access key id and secret
STREAMING = True  # --stock-moto: moto_server as shipped (fails a 4 GiB full-object upload)


@contextlib.contextmanager
def moto(folder: Path) -> Iterator[str]:
    """The embedded endpoint as Suitcase runs it (durable store, key), in a fresh folder; its URL
    (its key goes to KEY for env_for). --stock-moto: moto_server as shipped."""
    if STREAMING:
        shutil.rmtree(folder / "ws", ignore_errors=True)
        endpoint = EmbeddedEndpoint(folder / "ws")
        running, _ = endpoint.ensure(lambda line: None, idle=0)
        found = endpoint.credentials()
        KEY[:] = [found.access_key_id, found.secret_access_key] if found else []
        try:
            yield running.url
        finally:
            endpoint.stop()
            shutil.rmtree(folder / "ws", ignore_errors=True)  # GBs of data: not kept per run
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = (folder / "moto.log").open("wb")
    proc = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "MOTO_EC2_LOAD_DEFAULT_AMIS": "false"},
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    KEY[:] = ["bench", "bench"]
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=2).close()
                break
            except OSError:
                time.sleep(0.2)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        log.close()


def disk_like(path: Path, size: int) -> None:
    rng = random.Random(1)
    with path.open("wb") as handle:
        handle.truncate(size)
        for offset in range(0, size, 4 * MiB):
            handle.seek(offset)
            handle.write(rng.randbytes(min(MiB, size - offset)))


def build_set(ws: Path, size: int) -> Path:
    """aws-hvm (and a tiny master) marked done, as a real build leaves them; the raw disk's path."""
    ctx = Context.create(ws)
    plan = ctx.plan(OS, "aws-hvm", TS)
    disk = None
    for stage in plan.stages:
        stage.directory.mkdir(parents=True, exist_ok=True)
        out = stage.directory / ("disk.raw" if stage.image.name == "aws-hvm" else "disk.qcow2")
        if stage.image.name == "aws-hvm":
            disk_like(out, size)
            disk = out
        else:
            out.write_bytes(os.urandom(MiB))
        write_manifest(
            stage.directory,
            Manifest(
                stage=stage.image.name,
                os=OS,
                timestamp=TS,
                key=stage.key,
                inputs=stage.inputs,
                parent=None,
                outputs=[describe_output(stage.directory, out, "raw")],
                tool_versions={},
                git_revision="bench",
                started="",
                finished="",
                suitcase_version="",
            ),
        )
    assert disk is not None
    return disk


def env_for(url: str) -> dict[str, str]:
    return {
        **os.environ,
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": KEY[0],
        "AWS_SECRET_ACCESS_KEY": KEY[1],
        "AWS_DEFAULT_REGION": "us-east-1",
        "SUITCASE_BUCKET": BUCKET,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.monotonic()
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed: {(result.stderr or result.stdout)[-1500:]}")
    return seconds


def run_suitcase(ws: Path, url: str) -> float:
    return timed(
        [
            str(BIN / "suitcase"),
            "--workspace",
            str(ws),
            "upload",
            "aws-hvm",
            "--os",
            OS,
            "--timestamp",
            TS,
            "--create-bucket",
        ],
        env_for(url),
    )


def run_cli(disk: Path, url: str) -> float:
    return timed(
        [
            str(BIN / "aws"),
            "--endpoint-url",
            url,
            "s3",
            "cp",
            "--only-show-errors",
            str(disk),
            f"s3://{BUCKET}/cli/disk.raw",
        ],
        env_for(url),
    )


def site(ws: Path, part: int, concurrency: int, client: str) -> None:
    (ws / "site.yaml").write_text(
        f"s3:\n  part_size_mb: {part}\n  concurrency: {concurrency}\n  transfer_client: {client}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-gib", type=float, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--sweep", action="store_true", help="measure client/part/concurrency")
    parser.add_argument("--part-mb", type=int, default=None)
    parser.add_argument("--concurrency", type=int, default=None)
    parser.add_argument("--client", default=None)
    parser.add_argument("--stock-moto", action="store_true", help="moto_server without the fix")
    args = parser.parse_args()
    global STREAMING
    STREAMING = not args.stock_moto
    with tempfile.TemporaryDirectory(prefix="suitcase-bench-") as tmp:
        ws = Path(tmp) / "ws"
        ws.mkdir()
        disk = build_set(ws, int(args.size_gib * 1024) * MiB)
        results: dict = {"size_bytes": disk.stat().st_size, "runs": []}  # type: ignore[type-arg]
        folder = Path(tmp)

        def measure(who: str) -> float:
            # a fresh endpoint per run: moto keeps what it was sent in memory, and a run must
            # neither pay for the last one's garbage nor fail for it
            with moto(folder) as url:
                boto3.client(
                    "s3",
                    endpoint_url=url,
                    region_name="us-east-1",
                    aws_access_key_id=KEY[0],
                    aws_secret_access_key=KEY[1],
                ).create_bucket(Bucket=BUCKET)
                try:
                    return run_suitcase(ws, url) if who == "suitcase" else run_cli(disk, url)
                except RuntimeError as exc:
                    logs = [folder / "moto.log", folder / "ws" / "endpoint" / "endpoint.log"]
                    log = "".join(p.read_text(errors="replace") for p in logs if p.exists())[-1500:]
                    raise RuntimeError(f"{exc}\nmoto log:\n{log}") from None

        import boto3

        if args.sweep:
            variants = [
                ("classic", 128, 8),
                ("classic", 64, 4),
                ("classic", 64, 8),
                ("classic", 16, 8),
                ("classic", 8, 10),
                ("crt", 64, 8),
            ]
            measure("suitcase")  # warm the page cache: no variant pays for a cold read
            for client, part, conc in variants:
                site(ws, part, conc, client)
                try:
                    seconds = measure("suitcase")
                except RuntimeError as exc:
                    print(f"{client:8} part {part:4} MiB x{conc:3}: failed: {exc}")
                    continue
                rate = disk.stat().st_size / MiB / seconds
                print(
                    f"{client:8} part {part:4} MiB x{conc:3}: {seconds:6.1f} s ({rate:.0f} MiB/s)"
                )
                results["runs"].append(
                    {"client": client, "part_mb": part, "concurrency": conc, "s": seconds}
                )
            print(f"saved {save('upload-sweep', results)}")
            return
        if args.part_mb:
            site(ws, args.part_mb, args.concurrency or 8, args.client or "classic")
        mine, theirs = [], []
        for number in range(args.rounds):
            order = ("suitcase", "cli") if number % 2 == 0 else ("cli", "suitcase")
            for who in order:
                seconds = measure(who)
                (mine if who == "suitcase" else theirs).append(seconds)
                print(f"round {number + 1}: {who:9} {seconds:6.1f} s", flush=True)
        ratio = statistics.median(theirs) / statistics.median(mine)
        print(
            f"{disk.stat().st_size / 2**30:.1f} GiB: suitcase upload median "
            f"{statistics.median(mine):.1f} s, aws s3 cp {statistics.median(theirs):.1f} s, "
            f"ratio (aws time / suitcase time) {ratio:.2f}x"
        )
        results.update(suitcase_s=mine, aws_cli_s=theirs, ratio=ratio)
        print(f"saved {save('upload', results)}")


if __name__ == "__main__":
    main()
