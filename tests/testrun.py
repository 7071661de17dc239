"""How the suite runs: tiers, a private temporary folder per run, and a leak check at the end.

Tiers (bin/test runs them in this order, README's one test command):
- `fast`: everything outside tests/slow/: no VM, no image build (real endpoint processes and
  small QEMU disks are fine), run with `-n 2`;
- `own`: a tests/slow test that needs no shared build set (it builds or boots its own), marked
  `pytest.mark.own`; run beside the shared set's build;
- `set`: a tests/slow test that reads the shared build set (asks for `built_set`).
A tests/slow test that is neither is a collection error: every test picks its tier.

Each run (and each xdist worker) gets its own TMPDIR, `/tmp/st-<run>/<worker>` (short:
Packer's plugin sockets live below it), so Suitcase's scratch, Packer's temporary folders and
QEMU's overlays of one run are told apart from another's by path, and everything the run
started carries SUITCASE_TEST_RUN=<run> in its environment. At the end of the session the
controller looks for what the run left: a process with its mark, a mount or loop device on its
folders, a file left in its TMPDIR. Each is named (terminal summary and reports/leaks.txt) and
fails the run, then is cleaned up so the next run starts clean.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from suitcase.config import PROJECT_ROOT
from suitcase.safety import mount_points, remove_tree_quietly

TIERS = ("fast", "own", "set")
SLOW = Path(__file__).resolve().parent / "slow"
RUN_VARIABLE = "SUITCASE_TEST_RUN"
#: how long what a run started may take to go after the session ends (parent-death signals,
#: the kernel dropping a dead mount namespace and auto-clearing its loop devices)
GRACE = float(os.environ.get("SUITCASE_LEAK_GRACE", "30"))


@pytest.hookimpl(trylast=True)  # after pytest's tmp_path factory exists
def pytest_configure(config: pytest.Config) -> None:
    for tier, what in (
        ("fast", "no VM and no image build; bin/test runs it with -n 2"),
        ("own", "slow, builds or boots what it needs itself; runs beside the set build"),
        ("set", "slow, reads the one shared build set (the built_set fixture)"),
    ):
        config.addinivalue_line("markers", f"{tier}: {what}")
    worker = getattr(config, "workerinput", None)
    if worker is None:
        _start_run(config)
    else:  # each worker its own TMPDIR below the run's
        base = Path(os.environ.get("SUITCASE_TEST_TMP", tempfile.gettempdir()))
        _use_tmpdir(base / str(worker.get("workerid", "worker")))


def _use_tmpdir(folder: Path) -> None:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.environ["TMPDIR"] = str(folder)
    tempfile.tempdir = None  # tempfile caches the first answer: ask again


def _start_run(config: pytest.Config) -> None:
    # pytest's own folder (kept for failed tests) stays where pytest keeps it
    config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    # short: Packer's plugin sockets live below it, and a unix socket's path has 107 bytes
    run = f"{os.getpid():x}{secrets.token_hex(2)}"
    folder = Path("/tmp") / f"st-{run}"
    folder.mkdir(mode=0o700)
    os.environ[RUN_VARIABLE] = run
    os.environ["SUITCASE_TEST_TMP"] = str(folder)
    _use_tmpdir(folder)
    config.stash[_RUN] = (run, folder)


_RUN = pytest.StashKey[tuple[str, Path]]()
_LEAKS = pytest.StashKey[list[str]]()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give every test its tier before `-m` selects (explicit markers are checked, not trusted)."""
    wrong = []
    for item in items:
        named = [t for t in TIERS if item.get_closest_marker(t)]
        if SLOW not in Path(item.path).resolve().parents:
            tier = "fast"
        elif "built_set" in getattr(item, "fixturenames", ()):
            tier = "set"
        elif named == ["own"]:
            tier = "own"
        else:
            wrong.append(f"{item.nodeid}: a slow test marks itself `own` or uses built_set")
            continue
        if named and named != [tier]:
            wrong.append(f"{item.nodeid}: marked {named}, but its tier is {tier}")
        item.add_marker(tier)
    if wrong:
        raise pytest.UsageError("tiers: " + "; ".join(wrong))


# -- the leak check ---------------------------------------------------------------------------


def _ours(pid: int, run: str, folders: tuple[Path, ...]) -> bool:
    proc = Path(f"/proc/{pid}")
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        if state in ("Z", "X"):
            return False
        environ = (proc / "environ").read_bytes().split(b"\0")
        line = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (OSError, IndexError):
        return False
    if f"{RUN_VARIABLE}={run}".encode() in environ:
        return True
    return any(str(f) in line for f in folders)


def _processes(run: str, folders: tuple[Path, ...]) -> dict[int, str]:
    me = os.getpid()
    ancestors = {me, os.getppid()}
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in ancestors:
            continue
        pid = int(entry.name)
        if _ours(pid, run, folders):
            with contextlib.suppress(OSError):
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                found[pid] = cmd[:160]
    return found


def _under(path: Path, folders: tuple[Path, ...]) -> bool:
    return any(path == f or f in path.parents for f in folders)


def _loops(folders: tuple[Path, ...]) -> dict[str, str]:
    found = {}
    for backing in Path("/sys/block").glob("loop*/loop/backing_file"):
        with contextlib.suppress(OSError):
            name = backing.read_text().strip()
            if _under(Path(name.removesuffix(" (deleted)")), folders):
                found[f"/dev/{backing.parent.parent.name}"] = name
    return found


def _left(tmp: Path) -> list[Path]:
    """Entries of the run's TMPDIR other than the workers' folders, Suitcase's (empty) scratch
    root in each, and pytest's own folders."""
    allowed = {tmp}
    for folder in (tmp, *(p for p in tmp.glob("gw*") if p.is_dir() and not p.is_symlink())):
        allowed |= {folder, folder / f"suitcase-{os.geteuid()}"}
    left = []
    for entry in sorted(tmp.rglob("*")) if tmp.is_dir() else []:
        # pytest's own folders, the run's and those of the pytest runs its tests start
        # (`suitcase verify`), are pytest's to keep three of: not a leak
        if entry in allowed or any(
            p.startswith("pytest-of-") for p in entry.relative_to(tmp).parts
        ):
            continue
        if entry.parent in allowed:  # named once, not with everything below it
            left.append(entry)
    return left


def leaks(run: str, folders: tuple[Path, ...], tmp: Path) -> list[str]:
    """What the run left, after waiting up to GRACE seconds for it to go by itself."""
    deadline = time.monotonic() + GRACE
    while True:
        found = [f"process {pid}: {cmd}" for pid, cmd in _processes(run, folders).items()]
        found += [f"mount {m}" for m in mount_points() if _under(m, folders)]
        found += [f"loop device {dev} on {name}" for dev, name in _loops(folders).items()]
        if not found or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    found += [f"left in the run's TMPDIR: {entry}" for entry in _left(tmp)]
    return found


def _clean_up(run: str, folders: tuple[Path, ...], tmp: Path) -> None:
    for pid in _processes(run, folders):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    for mount in sorted((m for m in mount_points() if _under(m, folders)), reverse=True):
        subprocess.run(["umount", "-l", str(mount)], check=False, capture_output=True)
    for dev in _loops(folders):
        subprocess.run(["losetup", "-d", dev], check=False, capture_output=True)
    remove_tree_quietly(tmp)  # never through a mount that would not go: kept, and named above


def _folders(config: pytest.Config, tmp: Path) -> tuple[Path, ...]:
    """Where the run's own processes, mounts and loop devices live. Not the shared build set's
    workspace: bin/test builds it beside the `own` tier (its processes are not this run's; what
    a `set` test starts there carries the run's mark and is found by that)."""
    basetemp = config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    return (tmp, Path(basetemp).resolve())


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if _RUN not in config.stash:
        return
    run, tmp = config.stash[_RUN]
    folders = _folders(config, tmp)
    found = leaks(run, folders, tmp)
    config.stash[_LEAKS] = found
    report = PROJECT_ROOT / "reports" / "leaks.txt"
    with contextlib.suppress(OSError):
        report.parent.mkdir(exist_ok=True)
        report.write_text("".join(f"leaked: {line}\n" for line in found))
    _clean_up(run, folders, tmp)
    if found and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    found = terminalreporter.config.stash.get(_LEAKS, [])
    if found:
        terminalreporter.section("leaks: the run left these behind", red=True)
        for line in found:
            terminalreporter.line(f"leaked: {line}", red=True)
