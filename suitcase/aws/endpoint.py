"""The embedded AWS endpoint, seen from Suitcase: start, find, save, stop and describe it.

The endpoint is a background process owned by the workspace (`suitcase.aws.endpoint_server`),
listening on 127.0.0.1 only. Everything it has lives in `<workspace>/endpoint/`: `pid`, `port`,
`endpoint.log` (0600), `state.pickle` and `blobs/` (its saved state), `lock` (so two verbs never
start two endpoints).

>>> EmbeddedEndpoint(Path("/ws")).log_file
PosixPath('/ws/endpoint/endpoint.log')
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import filelock

from suitcase.aws.endpoint_server import MODULE
from suitcase.aws.errors import EndpointError

if TYPE_CHECKING:
    from suitcase.aws.clients import AwsTarget

START_TIMEOUT = 60.0  # moto's import alone takes a few seconds on a busy 2-core machine
STOP_TIMEOUT = 300.0  # saving a large state (GBs of EBS blocks) on stop takes a while
LOCK_TIMEOUT = 120.0

Say = Callable[[str], None]


@dataclass(frozen=True)
class Running:
    """A live endpoint that answered its ping."""

    pid: int
    port: int
    started: float
    restored: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class EmbeddedEndpoint:
    """The workspace's endpoint process and its files."""

    def __init__(self, workspace_root: Path) -> None:
        self.dir = workspace_root / "endpoint"

    pid_file = property(lambda self: self.dir / "pid")
    port_file = property(lambda self: self.dir / "port")
    log_file = property(lambda self: self.dir / "endpoint.log")
    lock_file = property(lambda self: self.dir / "lock")
    state_file = property(lambda self: self.dir / "state.pickle")

    # --- finding it ---------------------------------------------------------------------------

    def _pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def is_ours(self, pid: int) -> bool:
        """Is `pid` alive and this workspace's endpoint (not a reused pid, not a zombie)?"""
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        if not _alive(pid, stat):
            return False
        args = [a.decode(errors="replace") for a in argv]
        return MODULE in args and "--dir" in args and str(self.dir) in args

    def ping(self, port: int, timeout: float = 3.0) -> dict[str, Any] | None:
        try:
            return _request(f"http://127.0.0.1:{port}/_suitcase/ping", "GET", timeout)
        except (OSError, ValueError):
            return None

    def running(self) -> Running | None:
        """The live endpoint of this workspace, or None (never started, stopped, or stale)."""
        pid = self._pid()
        if pid is None or not self.is_ours(pid):
            return None
        try:
            port = int(self.port_file.read_text().strip())
        except (OSError, ValueError):
            return None
        info = self.ping(port)
        if not info or info.get("pid") != pid:
            return None
        return Running(pid, port, float(info["started"]), str(info.get("restored", "")))

    # --- starting and stopping ----------------------------------------------------------------

    def _lock(self) -> filelock.BaseFileLock:
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        return filelock.FileLock(str(self.lock_file), timeout=LOCK_TIMEOUT)

    def ensure(self, say: Say, port: int = 0) -> tuple[Running, bool]:
        """The running endpoint, started first if needed; (endpoint, whether this call started)."""
        found = self.running()
        if found:
            return found, False
        try:
            with self._lock():
                # another verb may have started it while we waited, or it answers late
                found = self.running() or self._clear_stale(say)
                if found:
                    return found, False
                return self._start(say, port), True
        except filelock.Timeout:
            raise EndpointError(
                f"another suitcase process holds {self.lock_file} (starting or stopping the "
                f"embedded endpoint) for over {LOCK_TIMEOUT:.0f} s"
            ) from None

    def _clear_stale(self, say: Say) -> Running | None:
        """Make way for a new endpoint; an endpoint of ours that answers late is kept instead."""
        pid = self._pid()
        if pid is not None and self.is_ours(pid):
            # ours: maybe only slow (a busy machine, a long save); give it time before judging
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and self.is_ours(pid):
                found = self.running()
                if found:
                    return found
                time.sleep(0.5)
            if self.is_ours(pid):
                say(f"the embedded endpoint (pid {pid}) does not answer: stopping it")
                _terminate(pid, 60.0)
        elif pid is not None:
            say(f"removing a stale endpoint pid file (pid {pid} is not this workspace's endpoint)")
        for path in (self.pid_file, self.port_file):
            path.unlink(missing_ok=True)
        return None

    def _start(self, say: Say, port: int) -> Running:
        if importlib.util.find_spec("moto") is None:
            raise EndpointError(
                "the embedded AWS endpoint cannot start: moto is not installed "
                "(pip install 'moto[server]', or configure an AWS account)"
            )
        fd = os.open(self.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.fchmod(fd, 0o600)
        # the operator's AWS settings are not the endpoint's business (and a bad AWS_PROFILE
        # breaks the botocore sessions moto makes)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(MOTO_EC2_LOAD_DEFAULT_AMIS="false", PYTHONUNBUFFERED="1")
        started = time.monotonic()
        with os.fdopen(fd, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", MODULE, "--dir", str(self.dir), "--port", str(port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=self.dir,
                env=env,
                start_new_session=True,  # outlives the verb (and its Ctrl-C): later verbs use it
            )
        _write_atomic(self.pid_file, f"{proc.pid}\n")
        while time.monotonic() - started < START_TIMEOUT:
            if proc.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise EndpointError(
                    f"the embedded AWS endpoint could not start (exit {proc.returncode}): "
                    f"{self.last_log_line()} (log: {self.log_file})"
                )
            found = self.running()
            if found:
                return found
            time.sleep(0.1)
        _terminate(proc.pid, 5.0)
        self.pid_file.unlink(missing_ok=True)
        raise EndpointError(
            f"the embedded AWS endpoint did not answer within {START_TIMEOUT:.0f} s: "
            f"{self.last_log_line()} (log: {self.log_file})"
        )

    def stop(self, timeout: float = STOP_TIMEOUT) -> str:
        """Stop the endpoint (it saves its state first); one line saying what happened."""
        with self._lock():
            pid = self._pid()
            if pid is None or not self.is_ours(pid):
                for path in (self.pid_file, self.port_file):
                    path.unlink(missing_ok=True)
                return "the embedded AWS endpoint is not running"
            graceful = _terminate(pid, timeout)
            for path in (self.pid_file, self.port_file):
                path.unlink(missing_ok=True)
        if "save FAILED" in self.last_log_line():
            raise EndpointError(
                f"the embedded AWS endpoint (pid {pid}) stopped but could not save its state: "
                f"{self.last_log_line()}; the previous save is kept in {self.state_file}"
            )
        if not graceful:
            return (
                f"the embedded AWS endpoint (pid {pid}) did not stop within {timeout:.0f} s and "
                "was killed: changes since its last save are lost"
            )
        return f"stopped the embedded AWS endpoint (pid {pid}); its state is in {self.state_file}"

    # --- talking to it ------------------------------------------------------------------------

    @staticmethod
    def save(url: str, timeout: float = STOP_TIMEOUT) -> dict[str, Any]:
        """Ask the endpoint at `url` to save its state now (after a verb changed something)."""
        try:
            return _request(f"{url}/_suitcase/save", "POST", timeout)
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            raise EndpointError(f"the embedded AWS endpoint could not save: {detail}") from None
        except (OSError, ValueError) as exc:
            raise EndpointError(
                f"the embedded AWS endpoint at {url} did not save its state ({exc}); "
                "run `suitcase endpoint status`"
            ) from None

    def last_log_line(self) -> str:
        try:
            lines = [x for x in self.log_file.read_text(errors="replace").splitlines() if x.strip()]
        except OSError:
            return "no log"
        return lines[-1].strip() if lines else "the log is empty"


def _request(url: str, method: str, timeout: float) -> dict[str, Any]:
    # never through a proxy: the endpoint is on loopback
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with opener.open(request, timeout=timeout) as response:
        data = json.loads(response.read())
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def _alive(pid: int, stat: str | None = None) -> bool:
    """Alive and not a zombie (a zombie is gone for every purpose here, but kill -0 finds it)."""
    try:
        stat = stat or Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def _terminate(pid: int, timeout: float) -> bool:
    """SIGTERM (the endpoint saves, then exits), SIGKILL after `timeout`; True if it went freely."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        os.kill(pid, signal.SIGCONT)  # a stopped process handles SIGTERM only once continued
    deadline = time.monotonic() + timeout
    graceful = True
    while _alive(pid) and time.monotonic() < deadline + 10:
        if graceful and time.monotonic() > deadline:
            graceful = False
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)  # reap it if this process started it
    return graceful


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def start(workspace_root: Path, say: Say, port: int = 0) -> str:
    """`suitcase endpoint start`: start it unless it runs; one line saying where it is."""
    running, started = EmbeddedEndpoint(workspace_root).ensure(say, port)
    if started:
        where = f"{running.url} (pid {running.pid}; {running.restored})"
        return f"started the embedded AWS endpoint at {where}"
    return f"the embedded AWS endpoint is already running at {running.url} (pid {running.pid})"


def save_state(target: AwsTarget) -> None:
    """After a verb changed the embedded endpoint's state: save it now (a no-op for AWS)."""
    if target.kind == "embedded" and target.endpoint_url:
        EmbeddedEndpoint.save(target.endpoint_url)


# --- what `suitcase endpoint status` shows ------------------------------------------------------


def holdings(url: str, region: str) -> dict[str, int]:
    """Count what the endpoint holds, through boto3 as any client would see it."""
    from suitcase.aws.clients import AwsTarget
    from suitcase.aws.errors import aws_errors

    target = AwsTarget(kind="embedded", region=region, endpoint_url=url)
    s3, ec2 = target.client("s3"), target.client("ec2")
    counts = {"buckets": 0, "objects": 0, "unfinished uploads": 0, "snapshots": 0, "AMIs": 0}
    with aws_errors("counting what the embedded endpoint holds", target):
        for bucket in s3.list_buckets().get("Buckets", []):
            counts["buckets"] += 1
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket["Name"]):
                counts["objects"] += page.get("KeyCount", 0)
            uploads = s3.list_multipart_uploads(Bucket=bucket["Name"]).get("Uploads", [])
            counts["unfinished uploads"] += len(uploads)
        counts["snapshots"] = len(ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"])
        counts["AMIs"] = len(ec2.describe_images(Owners=["self"])["Images"])
    return counts


def status_lines(workspace_root: Path, region: str) -> list[str]:
    """What `suitcase endpoint status` prints: URL, pid, uptime, state and what it holds."""
    endpoint = EmbeddedEndpoint(workspace_root)
    found = endpoint.running()
    if found is None:
        saved = endpoint.state_file
        kept = (
            f"saved state: {saved} ({saved.stat().st_size} bytes, "
            f"{time.ctime(saved.stat().st_mtime)})"
            if saved.exists()
            else "no saved state"
        )
        return ["the embedded AWS endpoint is not running", kept]
    counts = holdings(found.url, region)
    held = ", ".join(f"{n} {what}" for what, n in counts.items())
    return [
        f"the embedded AWS endpoint is running at {found.url}",
        f"pid {found.pid}, up {_duration(time.time() - found.started)}",
        f"state: {found.restored}",
        f"holds ({region}): {held}",
        f"folder: {endpoint.dir} (log: {endpoint.log_file.name})",
    ]


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min {secs} s" if hours else f"{minutes} min {secs} s"
