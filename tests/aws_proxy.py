"""A loopback HTTP proxy in front of an AWS endpoint (S3, EC2, EBS direct) that injects faults.

The endpoint never fails on its own, so tests put this between Suitcase and it to prove Suitcase
copes with, or notices, what real networks and AWS do:

    with launch("twin", root) as upstream, FaultProxy(upstream.url) as proxy:
        proxy.add(Fault("503", when=is_upload_part, probability=0.2))
        ...  # point AWS_ENDPOINT_URL at proxy.url
        assert proxy.hits["503"] > 0

Faults: `drop` (close the connection without an answer), `500`, `503`, `slowdown` (S3's 503
SlowDown), `throttle` (EC2's 400 RequestLimitExceeded, EBS's 429 ThrottlingException), `flip` (one
byte of the request body inverted on its way), `delay` (sleep `seconds`, then forward),
`corrupt_read` (byte 0 of the answer's body inverted on its way back). An error is shaped as the
request's service answers it (`Request.service`): S3's `<Error>` XML, EC2's
`<Response><Errors><Error>` XML, EBS direct's JSON with `x-amzn-ErrorType`. A failing fault hits
one request (and its retries) at most `max_streak` times in a row.
"""

from __future__ import annotations

import collections
import contextlib
import http.client
import json
import random
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "upgrade"}


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    @property
    def signature(self) -> str:
        """Equal for a request and its retries."""
        query = "&".join(f"{k}={v}" for k, v in sorted(self.query.items()))
        return f"{self.method} {self.path}?{query} {self.headers.get('range', '')} {self.action}"

    @property
    def service(self) -> str:
        """`ebs` (the EBS direct APIs: /snapshots...), `ec2` (a query API Action: EC2, and STS,
        which shapes its errors alike), or `s3`."""
        if self.path.startswith("/snapshots"):
            return "ebs"
        if self.action and not self.headers.get("x-amz-target"):
            return "ec2"
        return "s3"

    @property
    def action(self) -> str:
        """EC2's query Action, or the JSON X-Amz-Target operation, or '' (REST: S3, EBS)."""
        if self.headers.get("x-amz-target"):
            return self.headers["x-amz-target"].rsplit(".", 1)[-1]
        if self.body[:7] == b"Action=" or b"&Action=" in self.body:
            form = urllib.parse.parse_qs(self.body.decode(errors="replace"))
            return form.get("Action", [""])[0]
        return self.query.get("Action", [""])[0]


def is_upload_part(req: Request) -> bool:
    return req.method == "PUT" and "partNumber" in req.query


def is_s3_data(req: Request) -> bool:
    """A part, an object PUT or a GET of object data (not a listing or HEAD)."""
    if req.method == "PUT":
        return bool(req.body)
    return req.method == "GET" and "list-type" not in req.query and req.path.count("/") >= 2


def any_request(req: Request) -> bool:
    return True


def is_ec2(req: Request) -> bool:
    return req.service == "ec2"


def is_ebs(req: Request) -> bool:
    return req.service == "ebs"


def is_ec2_or_ebs(req: Request) -> bool:
    return req.service in ("ec2", "ebs")


def is_ebs_put(req: Request) -> bool:
    """PutSnapshotBlock."""
    return is_ebs(req) and req.method == "PUT"


def is_ebs_block_read(req: Request) -> bool:
    """GetSnapshotBlock."""
    return is_ebs(req) and req.method == "GET" and "/blocks/" in req.path


@dataclass
class Fault:
    kind: str
    when: Callable[[Request], bool] = any_request
    probability: float = 1.0
    limit: int | None = None  # at most this many times
    seconds: float = 0.0  # for `delay`
    used: int = 0


_FAILS = {"drop", "500", "503", "slowdown", "throttle"}
#: service -> fault kind -> (status, error code, message)
_ERRORS = {
    "s3": {
        "500": (500, "InternalError", "We encountered an internal error. Please try again."),
        "503": (503, "ServiceUnavailable", "Please reduce your request rate."),
        "slowdown": (503, "SlowDown", "Please reduce your request rate."),
        "throttle": (400, "RequestLimitExceeded", "Request limit exceeded."),
    },
    "ec2": {
        "500": (500, "InternalError", "An internal error has occurred."),
        "503": (503, "Unavailable", "The server is overloaded and can't handle the request."),
        "slowdown": (503, "Unavailable", "The server is overloaded and can't handle the request."),
        "throttle": (400, "RequestLimitExceeded", "Request limit exceeded."),
    },
    "ebs": {
        "500": (500, "InternalServerException", "An internal error has occurred."),
        "503": (503, "ServiceUnavailableException", "The service is unavailable."),
        "slowdown": (503, "ServiceUnavailableException", "The service is unavailable."),
        "throttle": (429, "ThrottlingException", "Rate exceeded."),
    },
}


def error_body(service: str, code: str, message: str) -> tuple[bytes, dict[str, str]]:
    """An error as `service` carries it: (body, headers)."""
    if service == "ebs":
        body = json.dumps({"message": message}).encode()
        return body, {"Content-Type": "application/json", "x-amzn-ErrorType": code}
    if service == "ec2":
        body = (
            f"<?xml version='1.0' encoding='UTF-8'?><Response><Errors><Error><Code>{code}</Code>"
            f"<Message>{message}</Message></Error></Errors><RequestID>fault</RequestID></Response>"
        ).encode()
        return body, {"Content-Type": "text/xml"}
    body = (
        f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
        f"<Message>{message}</Message></Error>"
    ).encode()
    return body, {"Content-Type": "application/xml"}


@dataclass
class FaultProxy:
    upstream: str
    seed: int = 0
    faults: list[Fault] = field(default_factory=list)
    hits: collections.Counter[str] = field(default_factory=collections.Counter)
    requests: int = 0
    log: list[tuple[str, str, str]] = field(default_factory=list)  # method, path, query keys
    #: a failing fault hits one request (and its retries) at most this many times in a row, so a
    #: client with bounded retries (5 attempts) can always finish: the point is to prove it retries
    max_streak: int = 2

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self._lock = threading.Lock()
        self._streak: collections.Counter[str] = collections.Counter()
        parsed = urllib.parse.urlsplit(self.upstream)
        self._host, self._port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()

    def _choose(self, req: Request) -> Fault | None:
        with self._lock:
            self.requests += 1
            self.log.append((req.method, req.path, "&".join(sorted(req.query))))
            for fault in self.faults:
                if fault.limit is not None and fault.used >= fault.limit:
                    continue
                if fault.when(req) and self._random.random() < fault.probability:
                    if fault.kind in _FAILS and self._streak[req.signature] >= self.max_streak:
                        break  # the next retry of this request gets through
                    if fault.kind in _FAILS:
                        self._streak[req.signature] += 1
                    fault.used += 1
                    self.hits[fault.kind] += 1
                    return fault
            self._streak.pop(req.signature, None)
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    out = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return out
                        out += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _any(self) -> None:
                body = self._body()
                declared = self.headers.get("Content-Length")
                if declared is not None and len(body) < int(declared):
                    # the client died mid-body: S3 would never store a short part, nor do we
                    self.close_connection = True
                    return
                split = urllib.parse.urlsplit(self.path)
                headers = {k.lower(): v for k, v in self.headers.items()}
                req = Request(
                    self.command,
                    split.path,
                    urllib.parse.parse_qs(split.query, keep_blank_values=True),
                    headers,
                    body,
                )
                fault = proxy._choose(req)
                if fault is not None and fault.kind == "drop":
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                errors = _ERRORS[req.service]
                if fault is not None and fault.kind in errors:
                    status, code, message = errors[fault.kind]
                    data, answer_headers = error_body(req.service, code, message)
                    self.send_response(status)
                    for key, value in answer_headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                if fault is not None and fault.kind == "flip" and body:
                    spot = len(body) // 2
                    body = body[:spot] + bytes([body[spot] ^ 0xFF]) + body[spot + 1 :]
                if fault is not None and fault.kind == "delay":
                    time.sleep(fault.seconds)
                self._forward(body, corrupt=fault is not None and fault.kind == "corrupt_read")

            def _forward(self, body: bytes, corrupt: bool = False) -> None:
                conn = http.client.HTTPConnection(proxy._host, proxy._port, timeout=120)
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in _HOP and k.lower() != "content-length"
                }
                headers["Content-Length"] = str(len(body))
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    answer = conn.getresponse()
                    data = answer.read()
                finally:
                    conn.close()
                if corrupt and data:
                    data = bytes([data[0] ^ 1]) + data[1:]
                self.send_response(answer.status, answer.reason)
                head = self.command == "HEAD"  # keeps the object's Content-Length, sends no body
                for key, value in answer.getheaders():
                    if key.lower() not in _HOP and (head or key.lower() != "content-length"):
                        self.send_header(key, value)
                if not head:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

        return Handler
