"""Fixes to moto's models, applied inside the embedded endpoint process at start.

Where moto answers unlike AWS for something Suitcase relies on, fix it *here*, so Suitcase's
client code is the same for AWS and for the endpoint (DESIGN: "The embedded default"). Each fix
is a function that patches one moto model, registered in FIXES with the AWS rule it follows, and
has a test over HTTP against a real endpoint process that states that rule.

Known gaps for the AMI work (issue 10) to fix here: RegisterImage keeps only Name and
Description; EBS reports a BlockSize of 512 (AWS: 524,288); ListSnapshotBlocks is unsorted and
unpaged; a snapshot used by an AMI can be deleted.

Persistence (bodies and blocks in data files, the state in SQLite) is not a fidelity fix: it
lives in `suitcase.aws.endpoint_store`.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import re
import sys
import threading
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

#: (name, the AWS rule it follows, the function that patches moto). Applied in order, once, at
#: start; a fix of a service's models wraps its patch in `after_import("moto.ec2.models", ...)`.
FIXES: list[tuple[str, str, Callable[[], None]]] = []

_installed: list[str] = []


_after: dict[str, list[Callable[[ModuleType], None]]] = {}


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs hooks right after a moto module is first imported: moto imports a service only on
    its first request, and importing them all at start would cost seconds and 100 MB."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in _after:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return None
        loader: Any = spec.loader
        exec_module = loader.exec_module

        def exec_then_hook(module: ModuleType) -> None:
            exec_module(module)
            for hook in _after.pop(fullname, []):
                hook(module)

        loader.exec_module = exec_then_hook
        return spec


def after_import(module: str, hook: Callable[[ModuleType], None]) -> None:
    """Call `hook(module)` once `module` is imported (now, if it already is)."""
    if module in sys.modules:
        hook(sys.modules[module])
        return
    _after.setdefault(module, []).append(hook)
    if not any(isinstance(f, _AfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport())


def fix(name: str, rule: str) -> Callable[[Callable[[], None]], Callable[[], None]]:
    """Register a model fix: `@fix("ebs-block-size", "EBS direct APIs use 524,288-byte blocks")`."""

    def register(patch: Callable[[], None]) -> Callable[[], None]:
        FIXES.append((name, rule, patch))
        return patch

    return register


def install() -> list[str]:
    """Apply every registered fix (idempotent); returns the names applied, for the log."""
    for name, _rule, patch in FIXES:
        if name not in _installed:
            patch()
            _installed.append(name)
    return list(_installed)


# --- S3: a ranged GET reads only its range -----------------------------------------------------

_ranged = threading.local()
_SIMPLE_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class RangeView:
    """An object body as moto's range handling sees it (`len`, one slice), read on demand."""

    def __init__(self, key: Any) -> None:
        self.key = key

    def __len__(self) -> int:
        return int(self.key.size)

    def __bool__(self) -> bool:
        return len(self) > 0

    def __getitem__(self, span: slice) -> bytes:
        start, stop, _ = span.indices(len(self))
        with self.key.lock:
            buffer = self.key._value_buffer
            buffer.seek(start)
            data: bytes = buffer.read(max(0, stop - start))
        return data

    def __bytes__(self) -> bytes:
        return self[0 : len(self)]


@fix(
    "s3-ranged-get",
    "GetObject with a Range reads that range only (moto read the whole object for each range: "
    "a transfer manager's ranged download of a 1 GiB object took 216 s)",
)
def _ranged_get() -> None:
    def patch(models: ModuleType) -> None:
        from moto.s3 import responses

        key_class: Any = models.FakeKey
        value_property = key_class.__dict__["value"]

        def get_value(self: Any) -> Any:
            if getattr(_ranged, "on", False):
                return RangeView(self)
            return value_property.fget(self)

        key_class.value = property(get_value, value_property.fset)
        response_class: Any = responses.S3Response
        key_response = response_class.key_response

        def ranged_key_response(self: Any, request: Any, full_url: str, headers: Any) -> Any:
            simple = request.method == "GET" and _SIMPLE_RANGE.match(
                request.headers.get("range", "")
            )
            if not simple:
                return key_response(self, request, full_url, headers)
            _ranged.on = True
            try:
                status, response_headers, body = key_response(self, request, full_url, headers)
            finally:
                _ranged.on = False
            if isinstance(body, RangeView):  # the range was not applied: the whole body
                body = bytes(body)
            return status, response_headers, body

        response_class.key_response = ranged_key_response

    after_import("moto.s3.models", patch)


# --- S3: completing a multipart upload streams its parts ---------------------------------------

CHUNK = 8 * 1024 * 1024


class FileBody:
    """A completed object's body already in a (spooled) file: the new object adopts it."""

    def __init__(self, file: Any, size: int) -> None:
        self.file, self.size = file, size


def _crc(algorithm: str, chunk: bytes, value: int) -> int:
    """One step of the full-object CRC, with the same fallbacks as moto's compute_checksum."""
    import binascii

    from moto.core.compat import HAS_CRT

    if algorithm == "CRC64NVME" and HAS_CRT:
        from awscrt import checksums  # type: ignore[import-not-found,unused-ignore]

        return int(checksums.crc64nvme(chunk, value))
    if algorithm == "CRC32C":
        try:
            import crc32c  # type: ignore[import-not-found]

            return int(crc32c.crc32c(chunk, value))
        except ImportError:
            pass
    return binascii.crc32(chunk, value)


def _crc_width(algorithm: str) -> int:
    from moto.core.compat import HAS_CRT

    return 8 if algorithm == "CRC64NVME" and HAS_CRT else 4


@fix(
    "s3-streaming-complete",
    "CompleteMultipartUpload joins the parts without holding the object in memory (moto built "
    "it in memory up to four times over: a 1 GiB upload peaked at 2.5 GB RSS)",
)
def _streaming_complete() -> None:
    def patch(models: ModuleType) -> None:
        import base64
        import codecs
        import tempfile

        from moto.s3 import exceptions
        from moto.s3.models import MultipartChecksumBuilder
        from moto.settings import S3_UPLOAD_PART_MIN_SIZE

        multipart_class: Any = models.FakeMultipart
        original_complete = multipart_class.complete
        key_class: Any = models.FakeKey
        value_property = key_class.__dict__["value"]

        def set_value(self: Any, new_value: Any) -> None:
            if isinstance(new_value, FileBody):  # adopt the joined parts' file: no copy
                self._value_buffer = new_value.file
                self.contentsize = new_value.size
                self._suitcase_blob = None
                return
            value_property.fset(self, new_value)

        key_class.value = property(value_property.fget, set_value)

        def complete(self: Any, body: Any) -> tuple[Any, str, tuple[str, str, int] | None]:
            builder = MultipartChecksumBuilder(
                self.metadata.get("x-amz-checksum-algorithm"),
                self.metadata.get("x-amz-checksum-type"),
            )
            full = builder.checksum_type == "FULL_OBJECT"
            if full and builder.checksum_algorithm not in ("CRC32", "CRC32C", "CRC64NVME"):
                result: tuple[Any, str, tuple[str, str, int] | None] = original_complete(self, body)
                return result  # not a combination AWS accepts: moto's own answer
            from suitcase.aws.endpoint_store import BlobBody

            # parts kept by the endpoint's store are joined by naming them: no byte is copied
            stored = all(isinstance(p._value_buffer, BlobBody) for p in self.parts.values())
            segments: list[tuple[str, int]] = []
            joined = (
                None
                if stored
                else tempfile.SpooledTemporaryFile(models.get_s3_default_key_buffer_size())  # noqa: SIM115
            )
            md5s, crc, size, count, last = bytearray(), 0, 0, 0, None
            for number, etag in body:
                part = self.parts.get(number)
                if part is None or part.etag.replace('"', "") != etag.replace('"', ""):
                    raise exceptions.InvalidPart()
                if last is not None and last.contentsize < S3_UPLOAD_PART_MIN_SIZE:
                    raise exceptions.EntityTooSmall()
                md5s.extend(codecs.decode(part.etag.replace('"', ""), "hex"))
                if not full:  # a composite checksum is over each part: one part in memory
                    builder.addPart(part.value)
                with part.lock:
                    part._value_buffer.seek(0)
                    if joined is None:
                        segments.extend(part._value_buffer.segments)
                        size += part._value_buffer.size
                    while (full or joined is not None) and (
                        chunk := part._value_buffer.read(CHUNK)
                    ):
                        if joined is not None:
                            joined.write(chunk)
                            size += len(chunk)
                        if full:
                            crc = _crc(builder.checksum_algorithm, chunk, crc)
                last, count = part, count + 1
            if count == 0:
                raise exceptions.MalformedXML()
            checksum: tuple[str, str, int] | None
            if full:
                digest = crc.to_bytes(_crc_width(builder.checksum_algorithm), "big")
                checksum = ("FULL_OBJECT", base64.b64encode(digest).decode(), 1)
            else:
                checksum = builder.build()
            etag = models.md5_hash()
            etag.update(bytes(md5s))
            tag = f"{etag.hexdigest()}-{count}"
            if joined is None:
                store = next(iter(self.parts.values()))._value_buffer.store
                return BlobBody(store, segments), tag, checksum
            return FileBody(joined, size), tag, checksum

        multipart_class.complete = complete

    after_import("moto.s3.models", patch)


# --- S3: CompleteMultipartUpload checks the full-object checksum it is sent ---------------------

_completing = threading.local()


@fix(
    "s3-complete-checks-full-object-checksum",
    "CompleteMultipartUpload of a FULL_OBJECT upload compares the checksum the client sends "
    "(x-amz-checksum-crc64nvme) with the assembled object's and answers 400 BadDigest when they "
    "differ, leaving the upload open (moto stored the object and ignored the value sent)",
)
def _complete_checks_checksum() -> None:
    def patch(models: ModuleType) -> None:
        from moto.s3 import responses
        from moto.s3.exceptions import S3ClientError

        class BadDigest(S3ClientError):
            def __init__(self, algorithm: str) -> None:
                super().__init__(
                    "BadDigest",
                    f"The {algorithm.lower()} you specified did not match the calculated checksum.",
                )

        response_class: Any = responses.S3Response
        key_response_post = response_class._key_response_post

        def remembering_post(self: Any, request: Any, *args: Any) -> Any:
            # the multipart model never sees the request: hand it the checksums sent with it
            _completing.sent = {
                name.lower(): value
                for name, value in request.headers.items()
                if name.lower().startswith("x-amz-checksum-")
            }
            try:
                return key_response_post(self, request, *args)
            finally:
                _completing.sent = {}

        response_class._key_response_post = remembering_post
        multipart_class: Any = models.FakeMultipart
        complete = multipart_class.complete  # the streaming one, when registered before this

        def checked_complete(self: Any, body: Any) -> Any:
            value, etag, checksum = complete(self, body)
            algorithm = self.metadata.get("x-amz-checksum-algorithm")
            if checksum and algorithm and checksum[0] == "FULL_OBJECT":
                sent = getattr(_completing, "sent", {}).get(f"x-amz-checksum-{algorithm.lower()}")
                if sent is not None and sent != checksum[1]:
                    raise BadDigest(algorithm)  # before the object exists: the upload stays
            return value, etag, checksum

        multipart_class.complete = checked_complete

    after_import("moto.s3.models", patch)


# --- S3: the bucket owner condition -------------------------------------------------------------


@fix(
    "s3-expected-bucket-owner",
    "A request with ExpectedBucketOwner (x-amz-expected-bucket-owner) naming an account that "
    "does not own the bucket answers 403 AccessDenied and changes nothing (moto ignored it)",
)
def _expected_bucket_owner() -> None:
    def patch(responses: ModuleType) -> None:
        from moto.s3.exceptions import S3AccessDeniedError
        from moto.s3.models import s3_backends

        response_class: Any = responses.S3Response
        authorize = response_class._authenticate_and_authorize_s3_action

        def authorize_owner(
            self: Any, bucket_name: str | None = None, key_name: str | None = None
        ) -> None:
            authorize(self, bucket_name=bucket_name, key_name=key_name)
            expected = (self.headers or {}).get("x-amz-expected-bucket-owner")
            if not expected or not bucket_name:
                return
            # every action on a bucket or its objects passes here before it acts
            mine = self.backend.buckets.get(bucket_name)
            owner = (
                mine.account_id
                if mine is not None
                else s3_backends.bucket_accounts.get(bucket_name, (None, None))[1]
            )
            if owner is not None and owner != expected:
                raise S3AccessDeniedError()

        response_class._authenticate_and_authorize_s3_action = authorize_owner

    after_import("moto.s3.responses", patch)


# --- S3: an aws-chunked body is decoded in one pass ----------------------------------------------


@fix(
    "s3-aws-chunked-linear",
    "An aws-chunked upload body (boto3's flexible checksums) is decoded into one buffer (moto "
    "appended chunk by chunk, copying the body so far each time: twice the body in memory)",
)
def _linear_chunked() -> None:
    def patch(responses: ModuleType) -> None:
        import io

        response_class: Any = responses.S3Response

        def handle_encoded_body(self: Any, body: Any) -> bytes:
            if not body:
                return b""
            stream = io.BytesIO(body) if isinstance(body, bytes) else body
            pieces = []
            size = int(stream.readline().strip(), 16)
            while size > 0:
                pieces.append(stream.read(size))
                stream.readline()  # the chunk's closing CRLF
                size = int(stream.readline().strip(), 16)
            return b"".join(pieces)  # what follows the last chunk is the trailer (checksums)

        response_class._handle_encoded_body = handle_encoded_body

    after_import("moto.s3.responses", patch)


# --- EC2 and EBS: AMIs and snapshots as AWS keeps them (suitcase.aws.moto_fixes) --------------


@fix(
    "ami-ebs-fidelity",
    "RegisterImage keeps every attribute it is sent and maps the given snapshot; EBS direct "
    "blocks are 524,288 bytes; a snapshot an AMI uses cannot be deleted; PV-GRUB AKIs exist",
)
def _ami_and_ebs() -> None:
    from suitcase.aws import moto_fixes

    moto_fixes.apply()
