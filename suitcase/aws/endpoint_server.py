"""The embedded AWS endpoint's process: moto's server on loopback, behind a key, on a durable store.

Started in the background by `suitcase.aws.endpoint` (never by hand):

    python -m suitcase.aws.endpoint_server --dir WORKSPACE/endpoint [--port N] [--idle S]

- It binds 127.0.0.1 only and answers only requests made with the workspace's key (`key`, 0600:
  the access key id is checked on every request, as a bearer token, since moto checks no
  signature); moto's own `/moto-api/` (reset, seed, recorder) answers 404.
- Every mutating request is handled alone and committed to the store before it is answered
  (`suitcase.aws.endpoint_store`): a success answer means the change is on disk.
- It exits when its folder is removed or replaced (writing nothing more), and after `--idle`
  seconds without a request while no Suitcase process holds it (`holders`, a shared flock).
- `GET /_suitcase/ping` (with the key in `X-Suitcase-Key`) says who it is. The control routes
  start with `_`, which no S3 bucket name can, so they never shadow a path-style bucket.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import gc
import hmac
import io
import json
import os
import re
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

CONTROL = "/_suitcase/"
MODULE = "suitcase.aws.endpoint_server"
KEY_FILE = "key"
HOLDERS_FILE = "holders"
KEY_HEADER = "HTTP_X_SUITCASE_KEY"
#: EC2/STS query actions that change nothing (everything else with an Action does).
_READ_ACTION = re.compile(r"^(Describe|Get|List)")
_BLOCK_PUT = re.compile(r"^/snapshots/[^/]+/blocks/\d+$")
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/[^/]*/[^/]*/([^/,\s]+)/")
_SIGV2 = re.compile(r"^AWS ([^:\s]+):")
WATCH_INTERVAL = 1.0
BIG_BODY = 1024 * 1024

StartResponse = Callable[..., Any]


class SharedExclusiveLock:
    """Reads share it; a mutating request takes it alone (moto's models are not thread-safe,
    and its commit must see only its own change)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._writer)
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._writer)
            self._writer = True  # new requests wait from here on
            self._cond.wait_for(lambda: self._readers == 0)
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


def request_action(environ: dict[str, Any]) -> str | None:
    """The query API's Action (EC2, STS), from the query string or a form body (kept readable)."""
    action = parse_qs(environ.get("QUERY_STRING", "")).get("Action")
    if action:
        return str(action[0])
    kind = environ.get("CONTENT_TYPE", "")
    if environ.get("REQUEST_METHOD") != "POST" or not kind.startswith(
        "application/x-www-form-urlencoded"
    ):
        return None
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    found = parse_qs(body.decode(errors="replace")).get("Action")
    return found[0] if found else None


def is_mutating(environ: dict[str, Any]) -> bool:
    action = request_action(environ)
    if action is not None:
        return not _READ_ACTION.match(action)
    return environ.get("REQUEST_METHOD") not in ("GET", "HEAD", "OPTIONS")


def presented_key(environ: dict[str, Any]) -> tuple[str | None, str | None]:
    """(access key id, service) a request was signed for: SigV4 header or query, or SigV2."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    found = _CREDENTIAL.search(auth)
    if found:
        return found.group(1), found.group(2)
    v2 = _SIGV2.match(auth)
    if v2:
        return v2.group(1), "s3"
    query = parse_qs(environ.get("QUERY_STRING", ""))
    credential = (query.get("X-Amz-Credential") or [""])[0].split("/")
    if len(credential) >= 4:
        return credential[0], credential[3]
    return (query.get("AWSAccessKeyId") or [None])[0], "s3"


def error_response(
    start_response: StartResponse, service: str | None, status: str, code: str, message: str
) -> list[bytes]:
    """An error as the service's protocol carries it, so boto3 and the AWS CLI show the code."""
    text = message.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if service in ("ebs",):
        data = json.dumps({"message": message}).encode()
        headers = [("Content-Type", "application/json"), ("x-amzn-ErrorType", code)]
    elif service == "ec2":
        data = (
            f"<?xml version='1.0' encoding='UTF-8'?><Response><Errors><Error><Code>{code}</Code>"
            f"<Message>{text}</Message></Error></Errors><RequestID>0</RequestID></Response>"
        ).encode()
        headers = [("Content-Type", "text/xml")]
    elif service in ("sts", "iam"):
        data = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{text}"
            "</Message></Error><RequestId>0</RequestId></ErrorResponse>"
        ).encode()
        headers = [("Content-Type", "text/xml")]
    else:
        data = (
            f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
            f"<Message>{text}</Message></Error>"
        ).encode()
        headers = [("Content-Type", "application/xml")]
    start_response(status, [*headers, ("Content-Length", str(len(data)))])
    return [data]


class Endpoint:
    """moto's WSGI app behind the key check, the lock and the store."""

    def __init__(self, store: Any, moto_app: Any, restored: str, key: str) -> None:
        self.store = store
        self.moto_app = moto_app
        self.lock = SharedExclusiveLock()
        self.started = time.time()
        self.last_request = time.monotonic()
        self.restored = restored
        self.key = key
        self.commits = 0
        self.failed: str | None = None

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        self.last_request = time.monotonic()
        path = environ.get("PATH_INFO", "")
        if path.startswith("/moto-api"):
            return _json(start_response, "404 Not Found", {"error": "no such route"})
        if path.startswith(CONTROL):
            return self.control(path[len(CONTROL) :], environ, start_response)
        presented, service = presented_key(environ)
        if service is None and path.startswith("/snapshots"):
            service = "ebs"
        if presented is None or not hmac.compare_digest(presented.encode(), self.key.encode()):
            code = {
                "s3": "InvalidAccessKeyId",
                "ec2": "AuthFailure",
                "sts": "InvalidClientTokenId",
            }.get(service or "s3", "UnrecognizedClientException")
            return error_response(
                start_response,
                service,
                "403 Forbidden",
                code,
                "the embedded endpoint's key is required (suitcase endpoint env)",
            )
        if self.failed:
            return error_response(
                start_response,
                service,
                "503 Service Unavailable",
                "ServiceUnavailable",
                self.failed,
            )
        from suitcase.aws import endpoint_store

        if not is_mutating(environ):
            with self.lock.shared():
                endpoint_store.clear_damage()
                # consume the response inside the lock: moto builds it from the backends
                body, answer = self._call(environ)
                damage = endpoint_store.clear_damage()
            if damage:
                return error_response(
                    start_response, service, "500 Internal Server Error", "InternalError", damage
                )
            start_response(*answer)
            return body
        blocks_only = environ.get("REQUEST_METHOD") == "PUT" and bool(_BLOCK_PUT.match(path))
        with self.lock.exclusive():
            endpoint_store.clear_damage()
            body, answer = self._call(environ)
            damage = endpoint_store.clear_damage()
            try:
                self.store.commit(blocks_only=blocks_only)
                self.commits += 1
            except Exception as exc:
                self.fail(
                    f"the embedded endpoint could not record a change ({type(exc).__name__}: "
                    f"{exc}); it stops so that nothing unrecorded is served"
                )
                return error_response(
                    start_response,
                    service,
                    "500 Internal Server Error",
                    "InternalError",
                    self.failed or "",
                )
        if damage:
            return error_response(
                start_response, service, "500 Internal Server Error", "InternalError", damage
            )
        start_response(*answer)
        return body

    def _call(self, environ: dict[str, Any]) -> tuple[list[bytes], tuple[Any, ...]]:
        """moto's answer, whole; an exception moto lets through is an InternalError naming it."""
        from suitcase.aws import endpoint_store

        answer: list[tuple[Any, ...]] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            answer[:] = [(status, headers)]
            return lambda data: None

        try:
            body = list(self.moto_app(environ, capture))
        except Exception as exc:
            why = f"{type(exc).__name__}: {exc}"
            log(f"request failed: {why}")
            endpoint_store.note_damage(
                endpoint_store.clear_damage() or f"the endpoint failed: {why}"
            )
            return [], ("500 Internal Server Error", [])
        if int(environ.get("CONTENT_LENGTH") or 0) >= BIG_BODY:
            # moto's request and response objects point at each other: a cycle, which keeps
            # the request's body (MBs) until the collector runs, and it rarely does (it counts
            # objects, not bytes): collect now, so memory does not grow with what is sent
            gc.collect()
        return body, answer[0]

    def fail(self, why: str) -> None:
        """Stop serving for good: the store and moto may now disagree."""
        self.failed = why
        log(why)
        threading.Timer(0.5, lambda: os._exit(4)).start()

    def control(
        self, route: str, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        presented = environ.get(KEY_HEADER, "")
        if not hmac.compare_digest(presented.encode(), self.key.encode()):
            return _json(start_response, "403 Forbidden", {"error": "the key is required"})
        if route == "ping" and environ.get("REQUEST_METHOD") == "GET":
            st = os.fstat(self.store.fd)
            body: dict[str, Any] = {
                "service": MODULE,
                "pid": os.getpid(),
                "folder": [st.st_dev, st.st_ino],
                "started": self.started,
                "restored": self.restored,
                "commits": self.commits,
            }
            return _json(start_response, "200 OK", body)
        if route == "twin" and environ.get("REQUEST_METHOD") in ("GET", "POST"):
            return self.twin(environ, start_response)
        return _json(start_response, "404 Not Found", {"error": f"no route {route}"})

    def twin(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """GET: the twin's switches; POST {"invisible_seconds": 5, ...} or {"reset": true}."""
        from suitcase.aws import twin

        if environ.get("REQUEST_METHOD") == "GET":
            return _json(start_response, "200 OK", twin.configure())
        try:
            size = min(int(environ.get("CONTENT_LENGTH") or 0), 4096)
            wanted = json.loads(environ["wsgi.input"].read(size) or b"{}")
            if not isinstance(wanted, dict):
                raise ValueError("the body must be a JSON object")
            with self.lock.exclusive():
                settings = twin.configure(**wanted)
        except (ValueError, TypeError) as exc:
            return _json(start_response, "400 Bad Request", {"error": str(exc)})
        return _json(start_response, "200 OK", settings)


def _json(start_response: StartResponse, status: str, body: dict[str, Any]) -> list[bytes]:
    data = json.dumps(body).encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    start_response(status, headers)
    return [data]


def log(text: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {text}", file=sys.stderr, flush=True)


def read_key(store: Any) -> str:
    """The workspace's access key id, from `key` (a regular 0600 file of ours, no link)."""
    from suitcase.aws.endpoint_store import StoreError, _check_entry

    try:
        fd = os.open(KEY_FILE, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=store.fd)
    except OSError as exc:
        raise StoreError(f"{store.path / KEY_FILE}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        _check_entry(st, str(store.path / KEY_FILE), "file")
        if st.st_mode & 0o077:
            raise StoreError(f"{store.path / KEY_FILE} is readable by others: it must be 0600")
        data = json.loads(os.read(fd, 4096))
    finally:
        os.close(fd)
    key = data.get("access_key_id") if isinstance(data, dict) else None
    if not isinstance(key, str) or len(key) < 16:
        raise StoreError(f"{store.path / KEY_FILE} holds no access key")
    return key


def unheld(store: Any) -> bool:
    """No Suitcase process holds the endpoint (each holds `holders` with a shared flock)."""
    try:
        fd = os.open(
            HOLDERS_FILE,
            os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o600,
            dir_fd=store.fd,
        )
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    finally:
        os.close(fd)  # closing drops the lock again
    return True


def watch(store: Any, app: Endpoint, idle: float, stop: threading.Event) -> None:
    """Exit at once when the folder is gone or replaced; stop when idle and unheld."""
    while not stop.wait(WATCH_INTERVAL):
        if not store.still_ours():
            log(f"{store.path} was removed or replaced: exiting, writing nothing more")
            os._exit(3)
        if idle > 0 and time.monotonic() - app.last_request > idle and unheld(store):
            log(f"idle for {idle:.0f} s and held by no Suitcase process: stopping")
            stop.set()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=MODULE, description=__doc__)
    parser.add_argument("--dir", required=True, type=Path, help="the workspace's endpoint/ folder")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: a free one)")
    parser.add_argument(
        "--idle", type=float, default=0, help="stop after this many idle, unheld seconds (0: never)"
    )
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        log(f"port {args.port} is not a TCP port (0-65535)")
        return 2
    # before moto is imported: no 1,301 fake AMIs
    os.environ["MOTO_EC2_LOAD_DEFAULT_AMIS"] = "false"

    from suitcase.aws import endpoint_models, endpoint_store

    try:
        store = endpoint_store.Store(Path(os.path.abspath(args.dir)))
        key = read_key(store)
        store.clear_tmp()
    except endpoint_store.StoreError as exc:
        log(f"refused: {exc}")
        return 2
    # bodies moto spools go to the folder's tmp/ through its handle (not a shared /tmp)
    tempfile.tempdir = f"/proc/self/fd/{store.tmp_fd}"

    try:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server
    except ImportError as exc:
        log(f"moto[server] is not installed ({exc}): pip install 'moto[server]'")
        return 1

    fixes = endpoint_models.install()
    from suitcase.aws import twin

    twin.start_with(**twin.EMBEDDED)  # AWS's delays, as the user's AWS would show them
    endpoint_store.install(store)
    try:
        restored = store.load()
    except endpoint_store.StoreError as exc:
        log(f"refused: {exc}")
        return 2
    log(restored)
    log(f"moto model fixes: {', '.join(fixes) or 'none'}")

    app = Endpoint(store, DomainDispatcherApplication(create_backend_app), restored, key)
    try:
        server = make_server(
            "127.0.0.1", args.port, app, threaded=True, request_handler=MotoRequestHandler
        )
    except OSError as exc:
        log(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}")
        return 1
    except SystemExit:  # werkzeug exits on a port in use, after printing its own advice
        log(f"cannot listen on 127.0.0.1:{args.port}: Address already in use")
        return 1
    port = server.server_address[1]
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        log(f"signal {signum}: stopping")
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # Only the main thread may take SIGTERM: a signal the kernel hands to a request thread
    # (it does, e.g. to a process stopped and continued) would wait for the main thread's next
    # bytecode. Threads inherit the mask: block, start the server thread, unblock here.
    stopping = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stopping)
    serving = threading.Thread(target=server.serve_forever, name="serve", daemon=True)
    serving.start()
    watcher = threading.Thread(
        target=watch, args=(store, app, args.idle, stop), name="watch", daemon=True
    )
    watcher.start()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, stopping)
    write_file(store, "port", f"{port}\n")
    log(f"listening on http://127.0.0.1:{port} (pid {os.getpid()})")
    while not stop.wait(1.0):  # short waits: a pending handler runs within a second
        pass
    server.shutdown()
    with app.lock.exclusive():  # a request being committed finishes first
        if store.still_ours():
            with contextlib.suppress(FileNotFoundError):
                os.unlink("port", dir_fd=store.fd)
        store.close()
    log("stopped")
    return 0


def write_file(store: Any, name: str, text: str) -> None:
    """Write `name` in the endpoint folder atomically, through its handle (no link followed)."""
    tmp = f".{name}.tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp, dir_fd=store.fd)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=store.fd)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.rename(tmp, name, src_dir_fd=store.fd, dst_dir_fd=store.fd)


if __name__ == "__main__":
    sys.exit(main())
