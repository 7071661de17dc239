"""The embedded AWS endpoint's process: moto's server on loopback, its state kept on disk.

Started in the background by `suitcase.aws.endpoint` (never by hand):

    python -m suitcase.aws.endpoint_server --dir WORKSPACE/endpoint

It binds 127.0.0.1 only (a free port unless --port), reloads `state.pickle`, applies Suitcase's
fixes to moto's models, writes the port to `port` once it listens, and saves its state on
SIGTERM/SIGINT and on `POST /_suitcase/save` (which verbs call after they change something, so a
kill -9 loses at most the last verb's work). `GET /_suitcase/ping` says who it is. The control
routes start with `_`, which no S3 bucket name can, so they never shadow a path-style bucket.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CONTROL = "/_suitcase/"
MODULE = "suitcase.aws.endpoint_server"

StartResponse = Callable[..., Any]


class SharedExclusiveLock:
    """Requests share it; a save takes it alone, so the pickled state is never half-changed."""

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


class Endpoint:
    """moto's WSGI app behind a lock, plus the control routes."""

    def __init__(self, directory: Path, moto_app: Any, restored: str) -> None:
        self.directory = directory
        self.moto_app = moto_app
        self.lock = SharedExclusiveLock()
        self.started = time.time()
        self.restored = restored
        self.saves = 0

    def save(self, why: str) -> dict[str, Any]:
        from suitcase.aws import endpoint_state

        with self.lock.exclusive():
            size, seconds = endpoint_state.save(self.directory)
            self.saves += 1
        log(f"saved state ({why}): {size} bytes in {seconds:.2f} s")
        return {"saved": True, "bytes": size, "seconds": round(seconds, 3)}

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(CONTROL):
            return self.control(path[len(CONTROL) :], environ, start_response)
        with self.lock.shared():
            # consume the response inside the lock: moto builds it from the backends
            return list(self.moto_app(environ, start_response))

    def control(
        self, route: str, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD")
        if route == "ping" and method == "GET":
            body: dict[str, Any] = {
                "service": MODULE,
                "pid": os.getpid(),
                "directory": str(self.directory),
                "started": self.started,
                "restored": self.restored,
                "saves": self.saves,
            }
        elif route == "save" and method == "POST":
            try:
                body = self.save("requested")
            except Exception as exc:  # a failed save must reach the verb that asked for it
                log(f"save FAILED: {type(exc).__name__}: {exc}")
                return _json(start_response, "500 Internal Server Error", {"error": str(exc)})
        else:
            return _json(start_response, "404 Not Found", {"error": f"no route {route}"})
        return _json(start_response, "200 OK", body)


def _json(start_response: StartResponse, status: str, body: dict[str, Any]) -> list[bytes]:
    data = json.dumps(body).encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    start_response(status, headers)
    return [data]


def log(text: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {text}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=MODULE, description=__doc__)
    parser.add_argument("--dir", required=True, type=Path, help="the workspace's endpoint/ folder")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: a free one)")
    args = parser.parse_args(argv)
    directory: Path = args.dir.resolve()

    # before moto is imported: no 1,301 fake AMIs; bodies too big for memory spill into the
    # workspace (not a tmpfs /tmp)
    os.environ["MOTO_EC2_LOAD_DEFAULT_AMIS"] = "false"
    spill = directory / "tmp"
    spill.mkdir(mode=0o700, exist_ok=True)
    for leftover in spill.iterdir():
        leftover.unlink(missing_ok=True)
    tempfile.tempdir = str(spill)

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

    from suitcase.aws import endpoint_models, endpoint_state

    endpoint_state.install()
    fixes = endpoint_models.install()
    restored = endpoint_state.load(directory)
    log(restored)
    log(f"moto model fixes: {', '.join(fixes) or 'none'}")

    app = Endpoint(directory, DomainDispatcherApplication(create_backend_app), restored)
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
        log(f"signal {signum}: saving and stopping")
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
    signal.pthread_sigmask(signal.SIG_UNBLOCK, stopping)
    tmp = directory / ".port.tmp"
    tmp.write_text(f"{port}\n")
    tmp.replace(directory / "port")
    log(f"listening on http://127.0.0.1:{port} (pid {os.getpid()})")
    while not stop.wait(1.0):  # short waits: a pending handler runs within a second
        pass
    server.shutdown()
    try:
        app.save("stop")
    except Exception as exc:
        log(f"save FAILED at stop: {type(exc).__name__}: {exc}")  # the last line: stop reads it
        return 1
    (directory / "port").unlink(missing_ok=True)
    log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
