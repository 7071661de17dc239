"""The embedded AWS endpoint, seen from Suitcase: start, find, hold, stop and describe it.

The endpoint is a background process owned by the workspace (`suitcase.aws.endpoint_server`),
listening on 127.0.0.1 only. Everything it has lives in `<workspace>/endpoint/` (0700, every
entry ours and writable by us alone, no links): `key` (0600, the access key every request must
carry), `state.sqlite` and `data/` (its durable store), `pid`, `port`, `endpoint.log` (0600),
`lock` (so two verbs never start two endpoints) and `holders` (a Suitcase process using it
holds a shared lock on it; an idle endpoint that nobody holds stops).

A verb that starts the endpoint stops it when the verb ends, unless another process holds it;
`suitcase endpoint start` starts one that stays until `suitcase endpoint stop`.

>>> EmbeddedEndpoint(Path("/ws")).log_file
PosixPath('/ws/endpoint/endpoint.log')
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import importlib.util
import json
import os
import secrets
import signal
import stat
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

from suitcase.aws.endpoint_server import HOLDERS_FILE, KEY_FILE, MODULE
from suitcase.aws.endpoint_store import DB, StoreError, check_entries, open_folder
from suitcase.aws.errors import EndpointError

if TYPE_CHECKING:
    pass

START_TIMEOUT = 60.0  # moto's import alone takes a few seconds on a busy 2-core machine
STOP_TIMEOUT = 60.0  # every change is already on disk: a stop only waits for requests in flight
LOCK_TIMEOUT = 120.0
#: An endpoint a verb started stops this long after its last request once nobody holds it
#: (a verb killed before it could stop it leaves nothing running for long).
VERB_IDLE = 600.0

Say = Callable[[str], None]

_HELD: dict[str, int] = {}  # endpoint folder -> descriptor of `holders` this process locks


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


@dataclass(frozen=True)
class Credentials:
    """The workspace's key: the access key id is checked by the endpoint; repr shows neither."""

    access_key_id: str
    secret_access_key: str

    def __repr__(self) -> str:
        return "Credentials(<redacted>)"


class EmbeddedEndpoint:
    """The workspace's endpoint process and its files."""

    def __init__(self, workspace_root: Path) -> None:
        self.dir = workspace_root / "endpoint"

    pid_file = property(lambda self: self.dir / "pid")
    port_file = property(lambda self: self.dir / "port")
    log_file = property(lambda self: self.dir / "endpoint.log")
    lock_file = property(lambda self: self.dir / "lock")
    key_file = property(lambda self: self.dir / KEY_FILE)
    holders_file = property(lambda self: self.dir / HOLDERS_FILE)
    state_file = property(lambda self: self.dir / DB)

    # --- the folder ---------------------------------------------------------------------------

    def check(self, create: bool = False) -> None:
        """The folder and every entry in it: no link, ours, writable by us alone (one line)."""
        try:
            fd = open_folder(self.dir, create=create)
        except StoreError as exc:
            raise EndpointError(f"the embedded AWS endpoint's folder: {exc}") from None
        try:
            check_entries(fd, self.dir)
        except StoreError as exc:
            raise EndpointError(f"the embedded AWS endpoint's folder: {exc}") from None
        finally:
            os.close(fd)

    def _read_private(self, path: Path) -> str | None:
        """A small file of the folder, opened without following a link; None if missing."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise EndpointError(f"cannot read {path}: {exc.strerror}") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
                raise EndpointError(f"{path} is not a file of this user: move it away")
            return os.read(fd, 65536).decode(errors="replace")
        finally:
            os.close(fd)

    def credentials(self) -> Credentials | None:
        """The workspace's key, or None before the first start."""
        text = self._read_private(self.key_file)
        if text is None:
            return None
        if stat.S_IMODE(os.stat(self.key_file).st_mode) & 0o077:
            raise EndpointError(f"{self.key_file} is readable by others: it must be 0600")
        try:
            data = json.loads(text)
            found = Credentials(str(data["access_key_id"]), str(data["secret_access_key"]))
        except (ValueError, KeyError, TypeError):
            raise EndpointError(
                f"{self.key_file} is not the endpoint's key: move it away (a new one is made)"
            ) from None
        from suitcase.redact import remember

        remember(found.access_key_id, found.secret_access_key)
        return found

    def _make_key(self) -> Credentials:
        """A new random key (0600), unless one exists."""
        found = self.credentials()
        if found is not None:
            return found
        made = Credentials("SCK" + secrets.token_hex(10).upper(), secrets.token_urlsafe(30))
        data = json.dumps(
            {"access_key_id": made.access_key_id, "secret_access_key": made.secret_access_key}
        )
        fd = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(data + "\n")
        return self.credentials() or made

    # --- finding it ---------------------------------------------------------------------------

    def _pid(self) -> int | None:
        try:
            return int((self._read_private(self.pid_file) or "").strip())
        except (EndpointError, ValueError):
            return None

    def _port(self) -> int | None:
        try:
            port = int((self._read_private(self.port_file) or "").strip())
        except (EndpointError, ValueError):
            return None
        return port if 0 < port < 65536 else None

    def is_ours(self, pid: int) -> bool:
        """Is `pid` alive and this workspace's endpoint (not a reused pid, not a zombie)?"""
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            stat_line = Path(f"/proc/{pid}/stat").read_text(errors="replace")
        except OSError:
            return False
        if not _alive(pid, stat_line):
            return False
        # as bytes: a non-ASCII path under an ASCII locale is still the same path
        return MODULE.encode() in argv and b"--dir" in argv and os.fsencode(self.dir) in argv

    def ping(self, port: int, timeout: float = 3.0) -> dict[str, Any] | None:
        found = self.credentials()
        if found is None:
            return None
        try:
            return _request(
                f"http://127.0.0.1:{port}/_suitcase/ping", "GET", timeout, found.access_key_id
            )
        except (OSError, ValueError):
            return None

    def running(self) -> Running | None:
        """The live endpoint of this workspace, or None (never started, stopped, or stale)."""
        if not self.dir.is_dir():
            return None
        pid = self._pid()
        if pid is None or not self.is_ours(pid):
            return None
        port = self._port()
        if port is None:
            return None
        info = self.ping(port)
        if not info or info.get("pid") != pid:
            return None
        try:
            here = os.stat(self.dir, follow_symlinks=False)
        except OSError:
            return None
        if info.get("folder") != [here.st_dev, here.st_ino]:
            return None  # an orphan of a folder that was removed and made again
        return Running(pid, port, float(info["started"]), str(info.get("restored", "")))

    # --- starting and stopping ----------------------------------------------------------------

    def _lock(self) -> filelock.BaseFileLock:
        return filelock.FileLock(str(self.lock_file), timeout=LOCK_TIMEOUT, mode=0o600)

    def ensure(self, say: Say, port: int = 0, idle: float = VERB_IDLE) -> tuple[Running, bool]:
        """The running endpoint, started first if needed; (endpoint, whether this call started)."""
        try:
            self.dir.parent.mkdir(parents=True, exist_ok=True)  # the workspace, as other verbs
        except OSError as exc:
            raise EndpointError(
                f"cannot make the workspace {self.dir.parent}: {exc.strerror}"
            ) from None
        self.check(create=True)
        found = self.running()
        if found:
            return found, False
        try:
            with self._lock():
                # another verb may have started it while we waited, or it answers late
                found = self.running() or self._clear_stale(say)
                if found:
                    return found, False
                return self._start(say, port, idle), True
        except filelock.Timeout:
            raise EndpointError(
                f"another suitcase process holds {self.lock_file} (starting or stopping the "
                f"embedded endpoint) for over {LOCK_TIMEOUT:.0f} s"
            ) from None

    def _clear_stale(self, say: Say) -> Running | None:
        """Make way for a new endpoint; an endpoint of ours that answers late is kept instead."""
        pid = self._pid()
        if pid is not None and self.is_ours(pid):
            # ours: maybe only slow (a busy machine); give it time before judging
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and self.is_ours(pid):
                found = self.running()
                if found:
                    return found
                time.sleep(0.5)
            if self.is_ours(pid):
                say(f"the embedded endpoint (pid {pid}) does not answer: stopping it")
                _terminate(pid, STOP_TIMEOUT)
        elif pid is not None:
            say(f"removing a stale endpoint pid file (pid {pid} is not this workspace's endpoint)")
        for path in (self.pid_file, self.port_file):
            path.unlink(missing_ok=True)
        return None

    def _start(self, say: Say, port: int, idle: float) -> Running:
        if importlib.util.find_spec("moto") is None:
            raise EndpointError(
                "the embedded AWS endpoint cannot start: moto is not installed "
                "(pip install 'moto[server]', or configure an AWS account)"
            )
        if not 0 <= port <= 65535:
            raise EndpointError(f"port {port} is not a TCP port (0-65535)")
        self._make_key()
        try:
            fd = os.open(
                self.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600
            )
        except OSError as exc:
            raise EndpointError(f"cannot open {self.log_file}: {exc.strerror}") from None
        os.fchmod(fd, 0o600)
        # the operator's AWS settings are not the endpoint's business (and a bad AWS_PROFILE
        # breaks the botocore sessions moto makes)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(MOTO_EC2_LOAD_DEFAULT_AMIS="false", PYTHONUNBUFFERED="1")
        # glibc raises its mmap threshold after the first freed big buffer, and request bodies
        # (MBs each, copied a few times by moto) then stay in per-thread arenas: a fixed
        # threshold hands every big buffer back when freed (benchmarks/endpoint_memory.py)
        env.update(MALLOC_MMAP_THRESHOLD_="131072", MALLOC_ARENA_MAX="2")
        argv = [sys.executable, "-m", MODULE, "--dir", str(self.dir), "--port", str(port)]
        argv += ["--idle", str(idle)]
        started = time.monotonic()
        with os.fdopen(fd, "ab") as log:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd="/",
                env=env,
                start_new_session=True,  # outlives the verb's Ctrl-C: it stops it itself
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
                if port and found.port != port:
                    _terminate(found.pid, STOP_TIMEOUT)
                    raise EndpointError(f"the embedded AWS endpoint did not get port {port}")
                return found
            time.sleep(0.1)
        _terminate(proc.pid, 5.0)
        self.pid_file.unlink(missing_ok=True)
        raise EndpointError(
            f"the embedded AWS endpoint did not answer within {START_TIMEOUT:.0f} s: "
            f"{self.last_log_line()} (log: {self.log_file})"
        )

    def stop(self, timeout: float = STOP_TIMEOUT) -> str:
        """Stop the endpoint; one line saying what happened. Never creates the folder."""
        if not self.dir.exists():
            return f"the embedded AWS endpoint is not running (no {self.dir})"
        self.check()
        with self._lock():
            pid = self._pid()
            if pid is None or not self.is_ours(pid):
                for path in (self.pid_file, self.port_file):
                    path.unlink(missing_ok=True)
                return "the embedded AWS endpoint is not running"
            graceful = _terminate(pid, timeout)
            for path in (self.pid_file, self.port_file):
                path.unlink(missing_ok=True)
        if not graceful:
            return (
                f"the embedded AWS endpoint (pid {pid}) did not stop within {timeout:.0f} s and "
                "was killed (every change it acknowledged is on disk)"
            )
        return f"stopped the embedded AWS endpoint (pid {pid}); its state is in {self.state_file}"

    # --- holding it ---------------------------------------------------------------------------

    def hold(self) -> None:
        """Hold the endpoint for this process's life (an idle endpoint nobody holds stops)."""
        if str(self.dir) in _HELD:
            return
        fd = os.open(
            self.holders_file, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
        fcntl.flock(fd, fcntl.LOCK_SH)
        _HELD[str(self.dir)] = fd

    def release(self) -> None:
        fd = _HELD.pop(str(self.dir), None)
        if fd is not None:
            os.close(fd)

    def stop_unless_held(self) -> str | None:
        """Release this process's hold; stop the endpoint unless another process holds it."""
        self.release()
        try:
            fd = os.open(self.holders_file, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return None  # someone else uses it: it stops when idle and unheld
        else:
            return self.stop()
        finally:
            os.close(fd)

    def started_by_this_run(self) -> None:
        """This process started it: stop it when the process ends (unless others hold it)."""
        atexit.register(_quietly, self.stop_unless_held)

    # --- what it says -------------------------------------------------------------------------

    def last_log_line(self) -> str:
        try:
            text = self._read_private(self.log_file)
        except EndpointError as exc:
            return str(exc)
        lines = [x for x in (text or "").splitlines() if x.strip()] if text is not None else []
        if text is None:
            return "no log"
        return lines[-1].strip() if lines else "the log is empty"

    def env_lines(self, region: str) -> list[str]:
        """`suitcase endpoint env`: what a shell needs to use the running endpoint on purpose."""
        found = self.running()
        if found is None:
            raise EndpointError(
                "the embedded AWS endpoint is not running: `suitcase endpoint start` first"
            )
        key = self.credentials()
        assert key is not None  # it runs, so it has its key
        return [
            f"export AWS_ENDPOINT_URL={found.url}",
            f"export AWS_ACCESS_KEY_ID={key.access_key_id}",
            f"export AWS_SECRET_ACCESS_KEY={key.secret_access_key}",
            f"export AWS_DEFAULT_REGION={region}",
            "unset AWS_PROFILE AWS_SESSION_TOKEN",
        ]


def _quietly(call: Callable[[], object]) -> None:
    with contextlib.suppress(Exception):
        call()


def _request(url: str, method: str, timeout: float, key: str) -> dict[str, Any]:
    # never through a proxy: the endpoint is on loopback
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(
        url,
        method=method,
        data=b"" if method == "POST" else None,
        headers={"X-Suitcase-Key": key},
    )
    with opener.open(request, timeout=timeout) as response:
        data = json.loads(response.read())
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def _alive(pid: int, stat_line: str | None = None) -> bool:
    """Alive and not a zombie (a zombie is gone for every purpose here, but kill -0 finds it)."""
    try:
        stat_line = stat_line or Path(f"/proc/{pid}/stat").read_text(errors="replace")
    except OSError:
        return False
    return stat_line.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def _terminate(pid: int, timeout: float) -> bool:
    """SIGTERM, SIGKILL after `timeout`; True if it went freely."""
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
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    tmp.replace(path)


def start(workspace_root: Path, say: Say, port: int = 0, idle: float = 0) -> str:
    """`suitcase endpoint start`: start it unless it runs; one line saying where it is."""
    running, started = EmbeddedEndpoint(workspace_root).ensure(say, port, idle)
    if started:
        where = f"{running.url} (pid {running.pid}; {running.restored})"
        return f"started the embedded AWS endpoint at {where}"
    if port and running.port != port:
        raise EndpointError(
            f"the embedded AWS endpoint already runs on port {running.port}, not {port}: "
            "`suitcase endpoint stop` first"
        )
    return f"the embedded AWS endpoint is already running at {running.url} (pid {running.pid})"


# --- what `suitcase endpoint status` shows ------------------------------------------------------


def holdings(url: str, region: str, credentials: Credentials | None) -> dict[str, int]:
    """Count what the endpoint holds, through boto3 as any client would see it."""
    from suitcase.aws.clients import AwsTarget
    from suitcase.aws.errors import aws_errors

    target = AwsTarget(kind="embedded", region=region, endpoint_url=url, credentials=credentials)
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
    if not endpoint.dir.exists():
        return ["the embedded AWS endpoint is not running", f"no saved state (no {endpoint.dir})"]
    endpoint.check()
    found = endpoint.running()
    if found is None:
        pid = endpoint._pid()
        if pid is not None and endpoint.is_ours(pid):
            raise EndpointError(
                f"the embedded AWS endpoint (pid {pid}) runs but does not answer as this "
                f"workspace's ({endpoint.port_file} unreadable, or the key changed): "
                "`suitcase endpoint stop`, then start it again"
            )
        saved = endpoint.state_file
        kept = (
            f"saved state: {saved} ({saved.stat().st_size} bytes, "
            f"{time.ctime(saved.stat().st_mtime)})"
            if saved.exists()
            else "no saved state"
        )
        return ["the embedded AWS endpoint is not running", kept]
    counts = holdings(found.url, region, endpoint.credentials())
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
