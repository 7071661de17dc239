"""A loopback HTTP proxy in front of the endpoint that fails a share of EC2 and EBS calls the way
AWS does when it is busy: 503 ServiceUnavailable, EC2's RequestLimitExceeded, EBS's 429
ThrottlingException. Everything else passes through unchanged."""

from __future__ import annotations

import http.client
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "content-length"}


class FaultyProxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        upstream: str,
        rate: float,
        seed: int = 7,
        corrupt_reads: bool = False,
        delay: float = 0.0,
    ) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.rate = rate
        self.corrupt_reads = corrupt_reads  # flip one byte of every GetSnapshotBlock body
        self.delay = delay  # seconds each PutSnapshotBlock is held: a slow link
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.faults = 0
        self.requests = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def should_fail(self) -> bool:
        with self.lock:
            self.requests += 1
            fail = self.random.random() < self.rate
            self.faults += fail
            return fail


class _Handler(BaseHTTPRequestHandler):
    server: FaultyProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        ebs = self.path.startswith("/snapshots")
        ec2 = b"Action=" in body
        if (ebs or ec2) and self.server.should_fail():
            self._fault(ebs)
            return
        if ebs and self.command == "PUT" and self.server.delay:
            time.sleep(self.server.delay)
        upstream = http.client.HTTPConnection(*self.server.upstream, timeout=60)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
            upstream.request(self.command, self.path, body=body, headers=headers)
            answer = upstream.getresponse()
            data = answer.read()
            if self.server.corrupt_reads and self.command == "GET" and "/blocks/" in self.path:
                data = bytes([data[0] ^ 1]) + data[1:]
            self.send_response(answer.status, answer.reason)
            for key, value in answer.getheaders():
                if key.lower() not in _HOP:
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        finally:
            upstream.close()

    def _fault(self, ebs: bool) -> None:
        kind = self.server.random.choice(["503", "throttle"])
        if ebs:
            status = 503 if kind == "503" else 429
            error = "ServiceUnavailableException" if kind == "503" else "ThrottlingException"
            body = b'{"message": "injected fault"}'
            self.send_response(status)
            self.send_header("x-amzn-ErrorType", error)
            self.send_header("Content-Type", "application/json")
        else:
            status = 503 if kind == "503" else 400
            code = "Unavailable" if kind == "503" else "RequestLimitExceeded"
            body = (
                f"<Response><Errors><Error><Code>{code}</Code><Message>injected fault</Message>"
                "</Error></Errors><RequestID>fault</RequestID></Response>"
            ).encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward


@contextmanager
def faulty_proxy(
    upstream: str, rate: float = 0.2, corrupt_reads: bool = False, delay: float = 0.0
) -> Iterator[FaultyProxy]:
    proxy = FaultyProxy(upstream, rate, corrupt_reads=corrupt_reads, delay=delay)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()
