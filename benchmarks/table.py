"""The README's benchmark table, made from the newest result file of each benchmark.

    .venv/bin/python benchmarks/table.py [--results benchmarks/results] [--readme README.md]
        [--rerun build_stages,verify_parallel,...]

Each row says what was measured, on what, the figure and the ratio, and where it came from:
the result file's date, and "not rerun" when run-all did not run that benchmark this time.
The table replaces what lies between `<!-- bench:start -->` and `<!-- bench:end -->`.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

START, END = "<!-- bench:start -->", "<!-- bench:end -->"
NAMES = (
    "build_stages",
    "verify_parallel",
    "vcpus",
    "upload",
    "register",
    "endpoint",
    "pipeline",
)
STAMP = re.compile(r"-(\d{14})\.json$")
Row = tuple[str, str, str, str]


def newest_path(results: Path, name: str) -> Path | None:
    """The newest `<name>-<YYYYmmddHHMMSS>.json` in `results`, if any."""
    found = sorted(
        (m.group(1), p)
        for p in results.glob(f"{name}-*.json")
        if (m := STAMP.search(p.name)) and p.name[: m.start()] == name
    )
    return found[-1][1] if found else None


def newest(results: Path, name: str) -> tuple[dict[str, Any], str] | None:
    """The newest result of `name` and its date, if any."""
    path = newest_path(results, name)
    if path is None:
        return None
    match = STAMP.search(path.name)
    assert match is not None
    stamp = match.group(1)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    date = f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]} {stamp[8:10]}:{stamp[10:12]}"
    return (data if isinstance(data, dict) else {}), date


def _median(values: list[float]) -> float:
    return float(statistics.median(values))


def _gib(size: float) -> str:
    return f"{size / 2**30:.2f} GiB" if size < 2**30 else f"{size / 2**30:.1f} GiB"


def build_rows(data: dict[str, Any]) -> list[Row]:
    stages = data.get("stages", {})
    master = stages.get("master", {}).get("seconds")
    rows: list[Row] = []
    noop = data.get("noop_rebuild", {}).get("median_seconds")
    if noop is not None:
        ratio = f"x{master / noop:,.0f} faster than building the master" if master else "-"
        rows.append(
            (
                "no-op rebuild (`build all`, every stage done)",
                "built Debian 12 set",
                f"{noop:.2f} s, 0 Packer runs",
                ratio,
            )
        )
    jobs = data.get("jobs", {})
    if jobs:
        pair = jobs.get("pairs", [{}])[0]
        rows.append(
            (
                "the three derived builds: one by one vs at once (`build_jobs` 1 vs 3)",
                "built Debian 12 master, 2 cores, TCG",
                f"one by one {pair.get('1', {}).get('seconds', 0):.0f} s, "
                f"at once {pair.get('3', {}).get('seconds', 0):.0f} s",
                f"x{jobs.get('speedup_at_once')} faster at once",
            )
        )
    derive = data.get("derive", {})
    if derive:
        pair = derive.get("pairs", [{}])[0]
        overlay = pair.get("overlay", {})
        rows.append(
            (
                "derive aws-hvm: full copy vs qcow2 overlay",
                "Debian 12 master",
                f"overlay {overlay.get('seconds', 0):.0f} s, "
                f"{overlay.get('packer_output_bytes', 0) / 2**20:.0f} MiB written",
                f"time x{derive.get('time_ratio_copy_over_overlay')}, "
                f"bytes x{derive.get('bytes_ratio_copy_over_overlay')} (copy / overlay)",
            )
        )
    return rows


def verify_rows(data: dict[str, Any]) -> list[Row]:
    n0, n3 = data.get("seconds_n0", []), data.get("seconds_n3", [])
    if not n0 or not n3:
        return []
    per = data.get("per_image_seconds", {}).get("3", {})
    slowest = max(per.values()) if per else None
    what = "4 image types booted/mounted, specs run"
    figure = f"-n 0 {min(n0):.0f} s, -n 3 {min(n3):.0f} s"
    if slowest:
        figure += f" (slowest image {slowest:.0f} s)"
    return [
        (
            "verification -n 3 vs -n 0",
            what,
            figure,
            f"x{data.get('speedup_n3_over_n0')} faster (limit x2 on 2 cores)",
        )
    ]


def vcpus_rows(data: dict[str, Any]) -> list[Row]:
    one, two = data.get("seconds_smp1", []), data.get("seconds_smp2", [])
    if not one or not two:
        return []
    vms, cores = data.get("vms", 3), data.get("cores", 2)
    return [
        (
            f"{vms} verification VMs at once: `-smp 1` vs `-smp 2`",
            f"Debian 12 master booted to a settled first boot, {cores} cores, TCG",
            f"-smp 1 {_median(one):.0f} s, -smp 2 {_median(two):.0f} s "
            f"(one VM alone {float(data.get('seconds_one_vm_alone', 0)):.0f} s)",
            f"x{data.get('speedup_smp1_over_smp2')} faster sized to the cores",
        )
    ]


def upload_rows(data: dict[str, Any]) -> list[Row]:
    mine, theirs = data.get("suitcase_s", []), data.get("aws_cli_s", [])
    if not mine or not theirs:
        return []
    size = _gib(float(data.get("size_bytes", 0)))
    return [
        (
            "`suitcase upload` vs `aws s3 cp`",
            f"{size} disk-like file, embedded endpoint",
            f"suitcase {_median(mine):.1f} s, aws {_median(theirs):.1f} s",
            f"x{float(data.get('ratio', 0)):.2f} (aws time / suitcase time)",
        )
    ]


def register_rows(data: dict[str, Any]) -> list[Row]:
    runs = data.get("runs", [])
    if not runs:
        return []
    disk, allocated = int(data.get("disk_bytes", 0)), int(data.get("allocated_bytes", 0))
    sent = max(int(r.get("bytes_sent", 0)) for r in runs)
    on = f"{_gib(disk)} sparse disk, {_gib(allocated)} allocated"
    rows: list[Row] = [
        (
            "EBS direct: bytes sent vs disk",
            on,
            f"{sent / 2**20:.0f} MiB sent",
            f"{sent / disk:.3f} of the disk, {sent / allocated:.3f} of its allocation"
            if disk and allocated
            else "-",
        )
    ]
    if "register_seconds" in data:
        best = max(runs, key=lambda r: float(r.get("mib_per_second", 0)))
        rows.append(
            (
                "register (snapshot + RegisterImage)",
                on,
                f"{data['register_seconds']:.1f} s",
                f"best {best.get('mib_per_second')} MiB/s with {best.get('workers')} workers",
            )
        )
    return rows


def endpoint_rows(data: dict[str, Any]) -> list[Row]:
    results = data.get("results", {})
    store, memory, alone = results.get("store"), results.get("memory"), data.get("store_alone")
    if not store or not memory or not alone:
        return []
    ratio = data.get("store_vs_memory", {})
    return [
        (
            "embedded endpoint: durable store vs moto's memory",
            f"upload {_gib(float(data['compare_gib']) * 2**30)} (Suitcase's parts), "
            f"snapshot {data.get('snapshot_mib')} MiB",
            f"time x{ratio.get('upload_time', 0):.2f} upload, "
            f"x{ratio.get('snapshot_time', 0):.2f} snapshot",
            f"peak RSS {store['peak_mib']} MiB vs {memory['peak_mib']} MiB",
        ),
        (
            "embedded endpoint memory, store alone",
            f"upload {_gib(float(data['upload_gib']) * 2**30)}, then holding it",
            f"peak RSS {alone['peak_mib']} MiB, holding {alone['holding_mib']} MiB",
            f"start {alone['start_s']:.1f} s; restart holding it all "
            f"{alone.get('restart_s', 0):.1f} s, {alone.get('restarted_mib', 0)} MiB",
        ),
    ]


def pipeline_rows(data: dict[str, Any]) -> list[Row]:
    wall = data.get("wall", {})
    total = wall.get("total")
    if not total:
        return []
    on = data.get("on", "`suitcase all`")
    parts = [
        f"{step} {wall[step]:.0f} s"
        for step in ("build", "verify", "upload", "register", "verify-ami")
        if step in wall
    ]
    shares = [
        f"{step} {wall[step] / total:.0%}"
        for step in ("build", "verify", "upload", "register", "verify-ami")
        if step in wall
    ]
    if wall.get("upload-during-build"):
        parts.append(f"(+ upload {wall['upload-during-build']:.0f} s while building)")
    rows: list[Row] = [
        (
            "whole pipeline per stage (`suitcase all`)",
            on,
            f"{', '.join(parts)}; total {total:.0f} s",
            "share: " + ", ".join(shares),
        )
    ]
    baseline = data.get("baseline_total")
    if baseline:
        rows.append(
            (
                "whole pipeline vs before this change",
                on,
                f"{total:.0f} s vs {baseline:.0f} s",
                f"x{baseline / total:.2f} faster",
            )
        )
    return rows


ROWS: dict[str, Callable[[dict[str, Any]], list[Row]]] = {
    "build_stages": build_rows,
    "verify_parallel": verify_rows,
    "vcpus": vcpus_rows,
    "upload": upload_rows,
    "register": register_rows,
    "endpoint": endpoint_rows,
    "pipeline": pipeline_rows,
}


def table(results: Path, rerun: set[str]) -> str:
    lines = [
        "| measured | on | figure | ratio | result |",
        "|---|---|---|---|---|",
    ]
    for name in NAMES:
        found = newest(results, name)
        if found is None:
            missing = "no result file here (earlier figures below)"
            lines.append(f"| {name} | - | {missing} | - | not rerun |")
            continue
        data, date = found
        rows = ROWS[name](data)
        source = f"{date}" + ("" if name in rerun else ", not rerun")
        if data.get("quick"):
            source += ", --quick"
        if data.get("note"):
            source += f"; {data['note']}"
        for what, on, figure, ratio in rows or [(name, "-", "no figures in the result", "-")]:
            lines.append(f"| {what} | {on} | {figure} | {ratio} | {source} |")
    return "\n".join(lines)


def rewrite(readme: Path, text: str) -> bool:
    """Replace the text between the markers (kept); False when the markers are missing."""
    content = readme.read_text()
    start, end = content.find(START), content.find(END)
    if start < 0 or end < start:
        return False
    new = content[: start + len(START)] + "\n" + text + "\n" + content[end:]
    if new != content:
        readme.write_text(new)
    return True


def main() -> None:
    root = Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=Path, default=root / "benchmarks" / "results")
    parser.add_argument("--readme", type=Path, default=root / "README.md")
    parser.add_argument("--rerun", default="", help="benchmarks rerun this time (comma list)")
    args = parser.parse_args()
    text = table(args.results, {n for n in args.rerun.split(",") if n})
    if not rewrite(args.readme, text):
        raise SystemExit(f"{args.readme}: no {START} ... {END} markers")
    print(text)


if __name__ == "__main__":
    main()
